//! Bad input loses nothing: a broken label disables the object it belongs to, with an
//! error naming the task and label; everything else keeps routing real calls.

use crate::support;

use gantry::dynamic::{ObjectRef, Status};
use support::proto::echo::EchoRequest;
use support::{h2c_task, wait_until, within, Backend, Gateway, ECHO_RULE};

fn task_with_labels(id: &str, port: u16, labels: &[(&str, &str)]) -> String {
    let mut s = format!("\n[[task]]\nid = \"{id}\"\nip = \"127.0.0.1\"\nports = [{port}]\n[task.labels]\n\"traefik.enable\" = \"true\"\n");
    for (k, v) in labels {
        s += &format!("{k:?} = {v:?}\n");
    }
    s
}

struct Case {
    name: &'static str,
    tasks: Vec<(&'static str, Vec<(&'static str, &'static str)>)>,
    object: ObjectRef,
    /// Each must appear in one error about `object`.
    needles: Vec<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "malformed rule",
            tasks: vec![(
                "bad-rule",
                vec![
                    ("traefik.http.routers.bad.rule", "PathPrefix(`/bad`"),
                    (
                        "traefik.http.services.bad.loadbalancer.server.scheme",
                        "h2c",
                    ),
                ],
            )],
            object: ObjectRef::Router("bad".into()),
            needles: vec!["traefik.http.routers.bad.rule", "column", "bad-rule"],
        },
        Case {
            name: "unknown router key",
            tasks: vec![(
                "typo",
                vec![
                    ("traefik.http.routers.bad.rule", "PathPrefix(`/bad`)"),
                    ("traefik.http.routers.bad.rulez", "PathPrefix(`/x`)"),
                ],
            )],
            object: ObjectRef::Router("bad".into()),
            needles: vec!["traefik.http.routers.bad.rulez", "typo"],
        },
        Case {
            name: "unknown service key",
            tasks: vec![(
                "typo",
                vec![
                    ("traefik.http.routers.bad.rule", "PathPrefix(`/bad`)"),
                    ("traefik.http.services.bad.loadbalancer.server.prot", "80"),
                ],
            )],
            object: ObjectRef::Service("bad".into()),
            needles: vec!["traefik.http.services.bad.loadbalancer.server.prot"],
        },
        Case {
            name: "bad port",
            tasks: vec![(
                "bad-port",
                vec![
                    ("traefik.http.routers.bad.rule", "PathPrefix(`/bad`)"),
                    ("traefik.http.services.bad.loadbalancer.server.port", "80a"),
                ],
            )],
            object: ObjectRef::Service("bad".into()),
            needles: vec!["traefik.http.services.bad.loadbalancer.server.port", "80a"],
        },
        Case {
            name: "port out of range",
            tasks: vec![(
                "bad-port",
                vec![
                    ("traefik.http.routers.bad.rule", "PathPrefix(`/bad`)"),
                    (
                        "traefik.http.services.bad.loadbalancer.server.port",
                        "70000",
                    ),
                ],
            )],
            object: ObjectRef::Service("bad".into()),
            needles: vec!["70000"],
        },
        Case {
            name: "unknown service reference",
            tasks: vec![(
                "dangling",
                vec![
                    ("traefik.http.routers.bad.rule", "PathPrefix(`/bad`)"),
                    ("traefik.http.routers.bad.service", "nope"),
                    (
                        "traefik.http.services.other.loadbalancer.server.scheme",
                        "h2c",
                    ),
                ],
            )],
            object: ObjectRef::Router("bad".into()),
            needles: vec!["nope"],
        },
        Case {
            name: "conflicting duplicate definitions",
            tasks: vec![
                (
                    "dup-1",
                    vec![("traefik.http.routers.bad.rule", "PathPrefix(`/bad`)")],
                ),
                (
                    "dup-2",
                    vec![("traefik.http.routers.bad.rule", "PathPrefix(`/other`)")],
                ),
            ],
            object: ObjectRef::Router("bad".into()),
            needles: vec!["dup-1", "dup-2"],
        },
        Case {
            name: "bad v1 rule",
            tasks: vec![(
                "v1",
                vec![
                    ("traefik.frontend.rule", "Hots:a.example"),
                    ("traefik.backend", "bad"),
                    ("traefik.protocol", "h2c"),
                ],
            )],
            object: ObjectRef::Router("bad".into()),
            needles: vec!["traefik.frontend.rule"],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_label_disables_its_object_and_the_rest_keeps_routing() {
    let good = Backend::start("good").await;
    let other = Backend::start("other").await;
    for case in cases() {
        let mut tasks = h2c_task("good-task", &good, "echo", ECHO_RULE, 1);
        for (id, labels) in &case.tasks {
            tasks += &task_with_labels(id, other.addr.port(), labels);
        }
        let gw = Gateway::start(&tasks).await;
        let config = gw.gantry.config();
        let errors: Vec<String> = config
            .errors
            .iter()
            .filter(|e| e.object == case.object)
            .map(|e| e.to_string())
            .collect();
        assert!(
            case.needles
                .iter()
                .all(|n| errors.iter().any(|e| e.contains(n))),
            "{}: errors {errors:#?} should mention {:?}",
            case.name,
            case.needles
        );
        let status = match &case.object {
            ObjectRef::Router(n) => config.routers.get(n).map(|r| r.status),
            ObjectRef::Service(n) => config.services.get(n).map(|s| s.status),
            _ => None,
        };
        assert_eq!(
            status,
            Some(Status::Disabled),
            "{}: object not disabled",
            case.name
        );
        // The good router and service are untouched and serve real calls.
        assert_eq!(
            config.routers["echo"].status,
            Status::Enabled,
            "{}",
            case.name
        );
        assert!(config.routers["echo"].errors.is_empty(), "{}", case.name);
        let reply = gw
            .echo()
            .await
            .unary(EchoRequest::default())
            .await
            .unwrap_or_else(|e| panic!("{}: good route broken: {e:?}", case.name));
        assert_eq!(reply.into_inner().backend, "good", "{}", case.name);
        gw.gantry.shutdown(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(other.stats().calls(), 0, "a disabled object got traffic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_tasks_file_keeps_the_last_good_table() {
    let a = Backend::start("a").await;
    let tasks = h2c_task("task-a", &a, "echo", ECHO_RULE, 1);
    let gw = Gateway::start(&tasks).await;
    let mut echo = gw.echo().await;
    echo.unary(EchoRequest::default()).await.expect("call");

    for broken in [
        "[[task]\nid = \"x\"",                                 // TOML syntax
        "[[task]]\nid = \"x\"\nip = \"not-an-ip\"\n",          // bad value
        "[[task]]\nid = \"x\"\nip = \"127.0.0.1\"\nfoo = 1\n", // unknown key
    ] {
        let before = gw.gantry.generation();
        gw.write_tasks(broken);
        // The provider error becomes part of the configuration (shown to users).
        within(
            "the file error to be published",
            gw.gantry.wait_generation(before + 1),
        )
        .await;
        let config = gw.gantry.config();
        let err = config
            .errors
            .iter()
            .find(|e| e.object == ObjectRef::Provider("file".into()))
            .unwrap_or_else(|| panic!("no provider error for {broken:?}: {:?}", config.errors));
        assert!(err.message.contains("tasks.toml"), "{}", err.message);
        assert!(err.message.contains("line"), "{}", err.message);
        // The last good tasks keep serving.
        assert_eq!(config.services["echo"].servers.len(), 1);
        echo.unary(EchoRequest::default())
            .await
            .expect("calls keep working on the last good table");
        // Fix it again: the error goes away.
        gw.set_tasks(&tasks).await;
        assert!(gw.gantry.config().errors.is_empty());
    }
    let status = gw.gantry.providers()[0].last();
    assert!(status.error.is_none());
    wait_until(
        "all calls reached a",
        std::time::Duration::from_secs(1),
        || a.stats().calls() == 4,
    )
    .await;
}
