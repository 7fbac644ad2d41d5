//! The `gantry` command line: `gantry check` prints the configuration and every
//! error, and its exit code says whether there was any.

use std::path::Path;
use std::process::Command;

fn gantry(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .output()
        .expect("run gantry");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_string_lossy().into_owned()
}

/// A temporary directory with a config whose file provider reads `tasks`; the
/// config's path.
fn setup(tasks: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), "config.toml", CONFIG);
    write(dir.path(), "tasks.toml", tasks);
    (dir, config)
}

const CONFIG: &str =
    "[entrypoints.web]\naddress = \"127.0.0.1:0\"\n[providers.file]\npath = \"tasks.toml\"\n";

#[test]
fn check_passes_on_the_repository_demo_config() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let (code, out, err) = gantry(&["check", "--config", config]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("rg [enabled]"), "{out}");
    assert!(out.contains("h2c://127.0.0.1:50061"), "{out}");
    assert!(out.contains("h2c://127.0.0.1:50062"), "{out}");
    assert!(out.contains("errors (0)"), "{out}");
}

#[test]
fn check_reports_label_errors_and_exits_1() {
    let (_dir, config) = setup(
        r#"
[[task]]
id = "svc-1"
ip = "127.0.0.1"
ports = [9000]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.api.rule" = "Host(`a.example`) &&"
"traefik.http.routers.ok.rule" = "Host(`b.example`)"
"#,
    );
    let (code, out, _) = gantry(&["check", "--config", &config]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("api [DISABLED]"), "{out}");
    assert!(out.contains("ok [enabled]"), "{out}");
    assert!(out.contains("traefik.http.routers.api.rule"), "{out}");
    assert!(out.contains("svc-1"), "{out}");
    assert!(out.contains("column"), "{out}");

    let (code, json, _) = gantry(&["check", "--config", &config, "--json"]);
    assert_eq!(code, 1);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(parsed["routers"]["api"]["status"], "disabled");
}

#[test]
fn check_fails_closed_on_v1_auth_and_passes_with_only_warnings() {
    // A task migrated from Traefik v1 with basic auth gantry does not implement yet,
    // and one with only another provider's label.
    let (dir, config) = setup(
        r#"
[[task]]
id = "admin-1"
ip = "127.0.0.1"
ports = [9000]
[task.labels]
"traefik.enable" = "true"
"traefik.backend" = "admin"
"traefik.frontend.rule" = "Host:admin.example.com"
"traefik.frontend.auth.basic.users" = "ops:$apr1$x$y"

[[task]]
id = "api-1"
ip = "127.0.0.1"
ports = [9001]
[task.labels]
"traefik.enable" = "true"
"traefik.docker.network" = "proxy"
"traefik.http.routers.api.rule" = "Host(`api.example.com`)"
"#,
    );
    let (code, out, _) = gantry(&["check", "--config", &config]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("admin [DISABLED]"), "{out}");
    assert!(out.contains("api [enabled]"), "{out}");
    assert!(
        out.contains("\"traefik.frontend.auth.basic.users\""),
        "{out}"
    );
    assert!(out.contains("errors (1)"), "{out}");
    assert!(out.contains("warnings (1)"), "{out}");

    // Only the warning left: exit 0, and 1 with --strict.
    let tasks = std::fs::read_to_string(dir.path().join("tasks.toml")).expect("read");
    let tasks = tasks.replace(
        "\"traefik.frontend.auth.basic.users\" = \"ops:$apr1$x$y\"\n",
        "",
    );
    write(dir.path(), "tasks.toml", &tasks);
    let (code, out, _) = gantry(&["check", "--config", &config]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("admin [enabled]"), "{out}");
    assert!(out.contains("errors (0)"), "{out}");
    assert!(out.contains("warnings (1)"), "{out}");
    assert!(out.contains("traefik.docker.network"), "{out}");
    let (code, out, _) = gantry(&["check", "--config", &config, "--strict"]);
    assert_eq!(code, 1, "{out}");
    let (code, json, _) = gantry(&["check", "--config", &config, "--json"]);
    assert_eq!(code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(parsed["errors"][0]["severity"], "warning", "{json}");
}

#[test]
fn check_lists_middlewares_and_names_an_unknown_type() {
    let (_dir, config) = setup(
        r#"
[[task]]
id = "orders-1"
ip = "127.0.0.1"
ports = [9000]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.orders.rule" = "Host(`orders.example`)"
"traefik.http.routers.orders.middlewares" = "strip,limit"
"traefik.http.middlewares.strip.stripprefix.prefixes" = "/orders"
"traefik.http.middlewares.limit.ratelimiter.average" = "50"
"#,
    );
    let (code, out, _) = gantry(&["check", "--config", &config]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("orders [DISABLED]"), "{out}");
    assert!(out.contains("middlewares: strip -> limit"), "{out}");
    assert!(out.contains("middlewares (2):"), "{out}");
    assert!(
        out.contains("strip [enabled] type=stripPrefix options=1 used by: orders"),
        "{out}"
    );
    assert!(out.contains("limit [DISABLED] type=? "), "{out}");
    assert!(
        out.contains("\"traefik.http.middlewares.limit.ratelimiter.average\"): unknown middleware type \"ratelimiter\""),
        "{out}"
    );
}

#[test]
fn bad_config_file_names_the_key_and_line_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "config.toml",
        "[entrypoints.web]\naddress = \"127.0.0.1:0\"\n\n[providers.file]\npath = \"t.toml\"\nwatchh = true\n",
    );
    let (code, _, err) = gantry(&["check", "--config", &config]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 6") && err.contains("watchh"), "{err}");

    let (code, _, err) = gantry(&["check", "--config", "/nonexistent/gantry.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/gantry.toml"), "{err}");
}

#[test]
fn check_reports_an_unreadable_tasks_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), "config.toml", CONFIG);
    write(dir.path(), "tasks.toml", "[[task]]\nid = 1\n");
    let (code, out, _) = gantry(&["check", "--config", &config]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("provider \"file\""), "{out}");
    assert!(out.contains("line 2"), "{out}");
}

#[test]
fn check_loads_certificates_and_names_the_file_at_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = crate::support::pki::TestCa::new("check CA");
    let (cert, _) = ca.write_leaf(dir.path(), "site", &["a.test"]);
    let (_, other_key) = ca.write_leaf(dir.path(), "other", &["b.test"]);
    write(dir.path(), "tasks.toml", "task = []\n");
    let tls = |key: &Path| {
        format!(
            "{CONFIG}[entrypoints.secure]\naddress = \"127.0.0.1:0\"\n[entrypoints.secure.tls]\n\
             certificates = [{{ cert = {:?}, key = {:?} }}]\n",
            cert.display().to_string(),
            key.display().to_string()
        )
    };
    let good = write(dir.path(), "good.toml", &tls(&dir.path().join("site.key")));
    let (code, out, err) = gantry(&["check", "--config", &good]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let bad = write(dir.path(), "bad.toml", &tls(&other_key));
    let (code, _, err) = gantry(&["check", "--config", &bad]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("entrypoints.secure.tls") && err.contains("other.key does not match"),
        "{err}"
    );
}
