//! The dashboard in a real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `tests/browser/`; `scripts/browser-setup.sh` installs both).
//!
//! Gantry runs the demo's tasks (`examples/tasks.toml`, with the backends on free
//! ports); the browser finds the demo's router, service and servers, the test stops
//! one backend, and the page must show that server DOWN within 3 s without a reload.
//! The screenshot is kept at `target/test-artifacts/dashboard.png`.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{Backend, Gateway};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_demo_and_a_server_going_down() {
    let browser_dir = root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/browser-setup.sh (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/browser-setup.sh (scripts/test.sh does)"
    );

    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let demo = std::fs::read_to_string(root().join("examples/tasks.toml")).expect("demo tasks");
    // And a service whose https servers are not verified: the page must warn.
    let insecure = r#"
[[task]]
id = "legacy"
ip = "127.0.0.1"
ports = [9]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.legacy.rule" = "PathPrefix(`/legacy.Svc/`)"
"traefik.http.services.legacy.loadbalancer.server.scheme" = "https"
"traefik.http.services.legacy.loadbalancer.tls.insecure_skip_verify" = "true"
"traefik.docker.network" = "proxy"

[[task]]
id = "admin"
ip = "127.0.0.1"
ports = [9]
[task.labels]
"traefik.enable" = "true"
"traefik.frontend.rule" = "Host:admin.example.com"
"traefik.frontend.auth.basic.users" = "ops:$apr1$x$y"
"#;
    let tasks = demo
        .replace("50061", &a.addr.port().to_string())
        .replace("50062", &b.addr.port().to_string())
        + insecure;
    let gw = Gateway::start(&tasks).await;
    // Some traffic, so the page has numbers to show.
    let mut client = gw.echo().await;
    for _ in 0..20 {
        client
            .unary(support::proto::echo::EchoRequest::default())
            .await
            .expect("call through gantry");
    }

    let shots = root().join("target/test-artifacts");
    std::fs::create_dir_all(&shots).expect("artifacts dir");
    let screenshot = shots.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let server_b = format!("h2c://{}", b.addr);
    let mut child = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .args(["--url", &format!("{}/", gw.api_url())])
        .args(["--router", "rg@file", "--service", "rg@file"])
        .args(["--server", &server_b])
        .args(["--warned", "legacy@file"])
        .args(["--refused", "traefik.frontend.auth.basic.users"])
        .args(["--ignored", "traefik.docker.network"])
        .arg("--screenshot")
        .arg(&screenshot)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs (scripts/browser-setup.sh checks it is installed)");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");

    // The driver's lines, read on a thread so waiting on them has a deadline.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| -> String {
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the browser driver said nothing while waiting for {what}"))
    };

    let first = next_line("READY");
    assert_eq!(first, "READY", "the dashboard did not show the demo");
    b.kill();
    writeln!(stdin, "STOPPED").expect("tell the driver");
    let mut lines = Vec::new();
    loop {
        let line = next_line("OK");
        let done = line == "OK" || line.starts_with("FAIL");
        lines.push(line);
        if done {
            break;
        }
    }
    let status = child.wait().expect("driver exits");
    assert!(
        status.success() && lines.last().is_some_and(|l| l == "OK"),
        "{lines:?}"
    );
    let down_after: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("DOWN_AFTER_MS "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no DOWN_AFTER_MS in {lines:?}"));
    assert!(down_after <= 3_000, "DOWN after {down_after} ms");
    let png = std::fs::read(&screenshot).expect("screenshot saved");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!(
        "server DOWN on the page {down_after} ms after it stopped; screenshot {}",
        screenshot.display()
    );
}
