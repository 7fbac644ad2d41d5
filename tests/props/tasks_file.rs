//! The tasks file: any text and edits of valid files get a result, never a panic,
//! and an error says where (a line or a task); generated files read back as the
//! tasks they describe.

use std::collections::BTreeMap;
use std::net::IpAddr;

use gantry::provider::{Lifecycle, PortMapping, Task, TaskHealth};
use proptest::prelude::*;
use proptest::sample::select;
use serde::Serialize;

use super::config;
use super::edits::{mutate, says_where, toml_noise, with_value, ODD_VALUES};

#[derive(Debug, Clone, Serialize)]
struct TasksFile {
    task: Vec<TaskEntry>,
}

#[derive(Debug, Clone, Serialize)]
struct TaskEntry {
    id: String,
    ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<TaskHealth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle: Option<Lifecycle>,
    ports: Vec<PortEntry>,
    labels: BTreeMap<String, String>,
}

/// `80`, or `{ container = 80, host = 32768 }`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum PortEntry {
    Same(u16),
    Mapped { container: u16, host: u16 },
}

/// Printable text that TOML strings carry: anything but control characters.
fn printable(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        any::<char>().prop_filter("printable", |c| !c.is_control()),
        0..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn task_entry(id: String) -> impl Strategy<Value = TaskEntry> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u16; 8]>().prop_map(IpAddr::from),
    ];
    let port = prop_oneof![
        (1u16..=u16::MAX).prop_map(PortEntry::Same),
        (1u16..=u16::MAX, 1u16..=u16::MAX)
            .prop_map(|(container, host)| PortEntry::Mapped { container, host }),
    ];
    let health = select(
        &[
            TaskHealth::Healthy,
            TaskHealth::Unhealthy,
            TaskHealth::Unknown,
        ][..],
    );
    let lifecycle = select(
        &[
            Lifecycle::Pending,
            Lifecycle::Running,
            Lifecycle::Stopping,
            Lifecycle::Stopped,
        ][..],
    );
    (
        ip,
        proptest::option::of(printable(12)),
        proptest::option::of(printable(12)),
        proptest::option::of(printable(12)),
        proptest::option::of(health),
        proptest::option::of(lifecycle),
        proptest::collection::vec(port, 0..4),
        proptest::collection::btree_map(printable(24), printable(24), 0..5),
    )
        .prop_map(
            move |(ip, zone, group, container, health, lifecycle, ports, labels)| TaskEntry {
                id: id.clone(),
                ip,
                zone,
                group,
                container,
                health,
                lifecycle,
                ports,
                labels,
            },
        )
}

fn valid_tasks_file() -> impl Strategy<Value = TasksFile> {
    let id = (printable(10), 0usize..1000).prop_map(|(text, n)| format!("{n}-{text}"));
    proptest::collection::btree_set(id, 0..5).prop_flat_map(|ids| {
        ids.into_iter()
            .map(task_entry)
            .collect::<Vec<_>>()
            .prop_map(|task| TasksFile { task })
    })
}

/// The tasks a file is meant to give: provider `file`, defaults filled in, ports
/// sorted without repeats.
fn expected_tasks(file: &TasksFile) -> Vec<Task> {
    file.task
        .iter()
        .map(|t| {
            let mut ports: Vec<PortMapping> = t
                .ports
                .iter()
                .map(|p| match *p {
                    PortEntry::Same(p) => PortMapping {
                        container: p,
                        host: p,
                    },
                    PortEntry::Mapped { container, host } => PortMapping { container, host },
                })
                .collect();
            ports.sort();
            ports.dedup();
            Task {
                id: t.id.clone(),
                provider: "file".to_string(),
                ip: t.ip,
                zone: t.zone.clone(),
                group: t.group.clone(),
                container: t.container.clone(),
                lifecycle: t.lifecycle.unwrap_or_default(),
                health: t.health.unwrap_or_default(),
                ports,
                labels: t.labels.clone(),
            }
        })
        .collect()
}

fn render_tasks(file: &TasksFile) -> Result<String, TestCaseError> {
    if file.task.is_empty() {
        return Ok("task = []\n".to_string());
    }
    toml::to_string(file).map_err(|e| TestCaseError::fail(format!("cannot write {file:?}: {e}")))
}

/// A task with every key the tasks file knows.
const FULL_TASKS: &str = r#"[[task]]
id = "route-guide-a"
ip = "127.0.0.1"
zone = "us-east-1a"
group = "service:route-guide"
container = "app"
health = "HEALTHY"
lifecycle = "RUNNING"
ports = [50061, { container = 80, host = 32768 }]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.rg.rule" = "GRPCService(`routeguide.RouteGuide`)"

[[task]]
id = "b"
ip = "::1"
"#;

/// Every key of a full tasks file given every odd value, one at a time: an answer,
/// and an error that says where.
#[test]
fn every_task_key_takes_any_value() {
    assert!(gantry::provider::file::parse(FULL_TASKS).is_ok_and(|t| t.len() == 2));
    for i in 0..FULL_TASKS.lines().count() {
        for value in ODD_VALUES {
            let Some(text) = with_value(FULL_TASKS, i, value) else {
                continue;
            };
            if let Err(e) = gantry::provider::file::parse(&text) {
                assert!(
                    says_where(&e),
                    "error does not say where: {e:?}\nfor {text}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Any text as a tasks file: an answer, and an error that says where.
    #[test]
    fn any_tasks_text_gets_an_answer(text in prop_oneof![toml_noise(), any::<String>()]) {
        if let Err(e) = gantry::provider::file::parse(&text) {
            prop_assert!(says_where(&e), "error does not say where: {:?}\nfor {:?}", e, text);
        }
    }

    /// A generated tasks file reads back as the tasks it describes.
    #[test]
    fn a_valid_tasks_file_reads_back(file in valid_tasks_file()) {
        let text = render_tasks(&file)?;
        let tasks = gantry::provider::file::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("refused: {e}\n{text}")))?;
        prop_assert_eq!(tasks, expected_tasks(&file), "{}", text);
    }

    /// A valid tasks file broken the usual ways: an answer, and an error that says
    /// where; what still parses has unique, non-blank ids and no port 0.
    #[test]
    fn a_broken_tasks_file_says_where(
        file in valid_tasks_file(),
        edit in any::<u8>(),
        at in any::<prop::sample::Index>(),
        fragment in toml_noise(),
    ) {
        let text = mutate(&render_tasks(&file)?, edit, at, &fragment);
        match gantry::provider::file::parse(&text) {
            Ok(tasks) => {
                let ids: std::collections::BTreeSet<&str> =
                    tasks.iter().map(|t| t.id.as_str()).collect();
                prop_assert_eq!(ids.len(), tasks.len());
                for t in &tasks {
                    prop_assert!(!t.id.trim().is_empty());
                    prop_assert!(t.ports.iter().all(|p| p.container != 0 && p.host != 0));
                }
            }
            Err(e) => prop_assert!(says_where(&e), "error does not say where: {:?}\nfor {:?}", e, text),
        }
    }
}
