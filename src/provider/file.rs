//! The file provider: tasks from a TOML file shaped like what the ECS provider reads,
//! so labels can be tried locally before a deploy.
//!
//! The file is watched (inotify via `notify`, on its directory so editors' atomic
//! renames are seen) and re-read after a short quiet period. A file that fails to
//! read or parse is reported and publishes nothing: the last good snapshot keeps
//! serving. A slow poll backs the watcher up in case an event is lost.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::{Lifecycle, PortMapping, ProviderStatus, ProviderUpdate, Task, TaskHealth, UpdateTx};

/// Provider name used in task ids, errors and the API.
pub const NAME: &str = "file";

/// Quiet time after the last change event before the file is read, and between the
/// two reads that must agree before a changed file is taken.
const SETTLE: Duration = Duration::from_millis(30);
/// Re-check the file this often even without events.
const POLL: Duration = Duration::from_secs(2);

/// Why the tasks file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read tasks file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tasks file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TasksFile {
    #[serde(default)]
    task: Vec<TaskEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskEntry {
    id: String,
    ip: IpAddr,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    health: TaskHealth,
    #[serde(default)]
    lifecycle: Lifecycle,
    #[serde(default)]
    ports: Vec<PortEntry>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// `50061`, or `{ container = 50061, host = 32768 }` for a bridge-mode mapping.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PortEntry {
    Same(u16),
    Mapped(MappedPort),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappedPort {
    container: u16,
    host: u16,
}

/// Parses tasks file text. Errors name the line (toml's spans) or the task.
///
/// An empty file is refused: it is what a writer that truncates and then writes
/// leaves for a moment, and serving it would drop every route. A file that means
/// "no tasks" says so: `task = []`.
pub fn parse(text: &str) -> Result<Vec<Task>, String> {
    if text.trim().is_empty() {
        return Err(
            "the file is empty (a writer may be mid-write); to remove every task, write `task = []`"
                .to_string(),
        );
    }
    let file: TasksFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, t) in file.task.iter().enumerate() {
        if t.id.trim().is_empty() {
            return Err(format!("task #{}: id must not be empty", i + 1));
        }
        if let Some(first) = seen.insert(&t.id, i) {
            return Err(format!(
                "task #{} and task #{} have the same id {:?}: ids must be unique",
                first + 1,
                i + 1,
                t.id
            ));
        }
        for p in &t.ports {
            let (c, h) = match p {
                PortEntry::Same(p) => (*p, *p),
                PortEntry::Mapped(m) => (m.container, m.host),
            };
            if c == 0 || h == 0 {
                return Err(format!("task {:?}: port 0 is not a valid port", t.id));
            }
        }
    }
    Ok(file
        .task
        .into_iter()
        .map(|t| {
            let mut ports: Vec<PortMapping> = t
                .ports
                .iter()
                .map(|p| match p {
                    PortEntry::Same(p) => PortMapping {
                        container: *p,
                        host: *p,
                    },
                    PortEntry::Mapped(m) => PortMapping {
                        container: m.container,
                        host: m.host,
                    },
                })
                .collect();
            ports.sort();
            ports.dedup();
            Task {
                id: t.id,
                provider: NAME.to_string(),
                ip: t.ip,
                zone: t.zone,
                group: t.group,
                container: t.container,
                lifecycle: t.lifecycle,
                health: t.health,
                ports,
                labels: t.labels,
            }
        })
        .collect())
}

/// Reads and parses the tasks file once.
pub fn read(path: &Path) -> Result<Vec<Task>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|message| FileError::Invalid {
        path: path.to_path_buf(),
        message,
    })
}

/// Watches a tasks file and publishes its tasks.
pub struct FileProvider {
    path: PathBuf,
    watch: bool,
    status: Arc<ProviderStatus>,
}

impl FileProvider {
    pub fn new(path: PathBuf, watch: bool) -> FileProvider {
        FileProvider {
            path,
            watch,
            status: Arc::new(ProviderStatus::new(NAME)),
        }
    }

    pub fn status(&self) -> Arc<ProviderStatus> {
        self.status.clone()
    }

    /// Publishes the file now, then on every change until the receiver is gone.
    pub async fn run(self, tx: UpdateTx) {
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<()>();
        // Kept alive for the life of the loop; dropping it stops the watch.
        let _watcher = if self.watch {
            match watch_dir(&self.path, ev_tx) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot watch tasks file; polling every {POLL:?}");
                    None
                }
            }
        } else {
            None
        };
        let mut last_text: Option<String> = None;
        let mut last_good: Arc<Vec<Task>> = Arc::new(Vec::new());
        loop {
            self.reload(&tx, &mut last_text, &mut last_good).await;
            if !self.watch {
                // Nothing more to do, but keep the sender alive so the watcher keeps
                // this provider's snapshot.
                tx.closed().await;
                return;
            }
            tokio::select! {
                ev = ev_rx.recv() => {
                    if ev.is_none() {
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                    // Wait for the writer to finish: read once things are quiet.
                    while let Ok(Some(())) = tokio::time::timeout(SETTLE, ev_rx.recv()).await {}
                }
                _ = tokio::time::sleep(POLL) => {}
                _ = tx.closed() => return,
            }
        }
    }

    async fn reload(
        &self,
        tx: &UpdateTx,
        last_text: &mut Option<String>,
        last_good: &mut Arc<Vec<Task>>,
    ) {
        let text = match self.read_settled(last_text.as_deref()).await {
            Ok(Some(t)) => t,
            Ok(None) => return,
            Err(source) => {
                let err = FileError::Read {
                    path: self.path.clone(),
                    source,
                };
                self.fail(tx, last_good, err.to_string());
                *last_text = None;
                return;
            }
        };
        let started = std::time::Instant::now();
        match parse(&text) {
            Ok(tasks) => {
                let tasks = Arc::new(tasks);
                self.status.record_ok(tasks.len(), started.elapsed());
                *last_good = tasks.clone();
                tx.send_replace(Some(Arc::new(ProviderUpdate { tasks, error: None })));
                tracing::info!(path = %self.path.display(), tasks = last_good.len(), "tasks file loaded");
            }
            Err(message) => {
                let err = FileError::Invalid {
                    path: self.path.clone(),
                    message,
                };
                self.fail(tx, last_good, err.to_string());
            }
        }
        *last_text = Some(text);
    }

    /// Reads the file; `None` if it equals `last`. A changed file is only taken once
    /// two reads [`SETTLE`] apart agree: a writer that truncates and then writes in
    /// place (not an atomic rename) is never seen half-written, whatever woke us.
    async fn read_settled(&self, last: Option<&str>) -> std::io::Result<Option<String>> {
        let mut text = tokio::fs::read_to_string(&self.path).await?;
        for _ in 0..50 {
            if last == Some(text.as_str()) {
                return Ok(None);
            }
            tokio::time::sleep(SETTLE).await;
            let again = tokio::fs::read_to_string(&self.path).await?;
            if again == text {
                return Ok(Some(text));
            }
            text = again;
        }
        // Still changing after 50 tries (a writer appending continuously): take it.
        Ok(Some(text))
    }

    /// Reports a failed read: the last good tasks keep serving, with the error beside.
    fn fail(&self, tx: &UpdateTx, last_good: &Arc<Vec<Task>>, error: String) {
        tracing::warn!(%error, "tasks file rejected; the last good version keeps serving");
        self.status.record_error(error.clone());
        // Until a first good read, `last_good` is empty: nothing is served from this
        // provider, and the error is what the dashboard shows.
        tx.send_replace(Some(Arc::new(ProviderUpdate {
            tasks: last_good.clone(),
            error: Some(error),
        })));
    }
}

fn watch_dir(
    path: &Path,
    events: mpsc::UnboundedSender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let relevant = match &res {
            Ok(ev) => ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name),
            Err(_) => true,
        };
        if relevant {
            let _ = events.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let tasks = parse(
            r#"
[[task]]
id = "route-guide-a"
ip = "127.0.0.1"
zone = "us-east-1a"
health = "HEALTHY"
ports = [50061, { container = 80, host = 32768 }]
[task.labels]
"traefik.enable" = "true"

[[task]]
id = "b"
ip = "::1"
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].health, TaskHealth::Healthy);
        assert_eq!(tasks[0].zone.as_deref(), Some("us-east-1a"));
        assert_eq!(tasks[0].host_port(80), Some(32768));
        assert_eq!(tasks[0].host_port(50061), Some(50061));
        assert_eq!(
            tasks[0].labels.get("traefik.enable").map(String::as_str),
            Some("true")
        );
        assert_eq!(tasks[1].health, TaskHealth::Unknown);
        assert_eq!(tasks[1].lifecycle, Lifecycle::Running);
        assert_eq!(tasks[1].provider, "file");
    }

    #[test]
    fn no_tasks_must_be_said_explicitly() {
        assert_eq!(parse("task = []\n").map(|t| t.len()), Ok(0));
        assert_eq!(parse("# nothing yet\ntask = []").map(|t| t.len()), Ok(0));
        for empty in ["", "\n", "  \n\t"] {
            let err = parse(empty).err().unwrap_or_default();
            assert!(
                err.contains("empty") && err.contains("task = []"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn errors_say_where() {
        let cases: &[(&str, &[&str])] = &[
            ("[[task]]\nid = \"a\"\nip = \"1.2.3\"\n", &["line 3", "ip"]),
            ("[[task]]\nid = \"a\"\nip = \"127.0.0.1\"\nport = [1]\n", &["line 4", "port"]),
            ("[[task]]\nid = \"a\"\nip = \"127.0.0.1\"\nhealth = \"GOOD\"\n", &["line 4"]),
            ("[[task]]\nid = \"a\"\nip = \"127.0.0.1\"\nports = [70000]\n", &["line 4"]),
            ("[[task]]\nid = \"a\"\nip = \"127.0.0.1\"\n[[task]]\nid = \"a\"\nip = \"127.0.0.1\"\n", &["task #1 and task #2", "\"a\""]),
            ("[[task]]\nid = \"a\"\nip = \"127.0.0.1\"\nports = [0]\n", &["port 0"]),
            ("[[task]\n", &["line 1"]),
            ("[[task]]\nip = \"127.0.0.1\"\n", &["id"]),
        ];
        for (text, needles) in cases {
            let err = match parse(text) {
                Ok(_) => panic!("should fail: {text}"),
                Err(e) => e,
            };
            for n in *needles {
                assert!(err.contains(n), "{err:?} should mention {n:?}");
            }
        }
    }
}
