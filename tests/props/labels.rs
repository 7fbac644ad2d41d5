//! Labels → `DynamicConfig`: arbitrary label maps never panic and every error names a
//! task of the input and one of its labels; what is enabled is routable; the result
//! does not depend on task order or on the case of keywords in keys; a bad label is
//! reported with its task and key; and bad tasks lose nothing defined by good ones.

use std::collections::{BTreeMap, BTreeSet};

use gantry::dynamic::{DynamicConfig, ObjectRef, Status};
use gantry::labels::{build, LabelOptions};
use gantry::provider::Task;
use proptest::prelude::*;
use proptest::sample::select;

use super::config;
use super::label_inputs::{
    any_tasks, good_labels, good_tasks, label_map, options, plain_task, recase, setting_value,
    NAMES, TEMPLATES,
};

// ---- checks -----------------------------------------------------------------------

/// Every error names a task of the input and, when it names a label, one that task
/// has; errors sit on existing objects, which they disable; enabled objects are
/// error-free and routable (rule compiles, service enabled, split children enabled).
fn check_consistent(tasks: &[Task], config: &DynamicConfig) -> Result<(), TestCaseError> {
    for e in &config.errors {
        if let Some(id) = &e.task {
            let owners: Vec<&Task> = tasks
                .iter()
                .filter(|t| &t.id == id && t.provider == e.provider)
                .collect();
            prop_assert!(
                !owners.is_empty(),
                "error names no task of the input: {:?}",
                e
            );
            if let Some(label) = &e.label {
                prop_assert!(
                    owners.iter().any(|t| t.labels.contains_key(label)),
                    "error names a label task {} does not have: {:?}",
                    id,
                    e
                );
            }
        }
        match &e.object {
            ObjectRef::Router(name) => {
                let r = config.routers.get(name);
                prop_assert!(r.is_some_and(|r| r.status == Status::Disabled), "{:?}", e);
            }
            ObjectRef::Service(name) => {
                let s = config.services.get(name);
                prop_assert!(s.is_some_and(|s| s.status == Status::Disabled), "{:?}", e);
            }
            ObjectRef::Middleware(name) => {
                let m = config.middlewares.get(name);
                prop_assert!(m.is_some_and(|m| m.status == Status::Disabled), "{:?}", e);
            }
            ObjectRef::Task(_) | ObjectRef::Provider(_) => {}
        }
    }
    for (name, s) in &config.services {
        prop_assert_eq!(
            s.status == Status::Enabled,
            s.errors.is_empty(),
            "service {}",
            name
        );
        if s.status == Status::Enabled {
            for child in &s.weighted {
                let c = config.services.get(&child.name);
                prop_assert!(
                    c.is_some_and(|c| c.status == Status::Enabled && c.weighted.is_empty()),
                    "enabled split {} uses {:?}",
                    name,
                    child.name
                );
            }
        }
    }
    for (name, r) in &config.routers {
        prop_assert_eq!(
            r.status == Status::Enabled,
            r.errors.is_empty(),
            "router {}",
            name
        );
        if r.status == Status::Enabled {
            prop_assert!(
                gantry::rules::compile(&r.rule).is_ok(),
                "router {} rule {}",
                name,
                r.rule
            );
            let s = config.services.get(&r.service);
            prop_assert!(
                s.is_some_and(|s| s.status == Status::Enabled),
                "enabled router {} uses service {:?}",
                name,
                r.service
            );
        }
    }
    Ok(())
}

fn unique_ids(tasks: &[Task]) -> bool {
    let ids: BTreeSet<(&str, &str)> = tasks
        .iter()
        .map(|t| (t.provider.as_str(), t.id.as_str()))
        .collect();
    ids.len() == tasks.len()
}

/// Bad labels that each break one router or service, by key suffix (`{r}` and `{s}`:
/// a router of the task and its service) and value.
const BAD: &[(&str, &str)] = &[
    ("http.routers.good-r{r}.rule", "PathPrefix(`/x`"),
    ("http.routers.good-r{r}.rule", "Host:a.com"),
    ("http.routers.good-r{r}.priority", "high"),
    ("http.routers.good-r{r}.entrypoints", "web,,x"),
    ("http.routers.good-r{r}.tls", "yes"),
    ("http.routers.good-r{r}.middlewares", "auth"),
    ("http.routers.good-r{r}.retry.attempts", "9"),
    ("http.routers.good-r{r}.nonsense", "1"),
    ("http.services.good-s{s}.loadbalancer.server.port", "0"),
    ("http.services.good-s{s}.loadbalancer.server.scheme", "grpc"),
    ("http.services.good-s{s}.loadbalancer.server.weight", "-1"),
    ("http.services.good-s{s}.loadbalancer.strategy", "random"),
    (
        "http.services.good-s{s}.loadbalancer.healthcheck.interval",
        "soon",
    ),
    (
        "http.services.good-s{s}.loadbalancer.passhostheader",
        "maybe",
    ),
    ("http.services.good-s{s}.loadbalancer.healthcheck.port", "0"),
    (
        "http.services.good-s{s}.loadbalancer.healthcheck.scheme",
        "https",
    ),
    // On a task read as v2, a v1 label that restricts access still fails closed.
    ("frontend.auth.basic.users", "ops:x"),
    ("http.services.good-s{s}.loadbalancer.nonsense", "1"),
    ("tcp.routers.x.rule", "HostSNI(`*`)"),
    ("nonsense", "1"),
];

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary labels on arbitrary tasks: no panic, and the result is consistent.
    #[test]
    fn arbitrary_labels_give_a_consistent_config(tasks in any_tasks(5), opts in options()) {
        let config = build(&tasks, &opts);
        check_consistent(&tasks, &config)?;
    }

    /// Every real setting given the same value, whatever it is: no panic, a consistent
    /// config, and every error about the one task.
    #[test]
    fn every_setting_takes_any_value(value in setting_value(), name in select(NAMES)) {
        let mut labels: BTreeMap<String, String> = TEMPLATES
            .iter()
            .map(|t| (format!("traefik.{}", t.replace("{}", name)), value.clone()))
            .collect();
        labels.insert("traefik.enable".to_string(), "true".to_string());
        let tasks = [plain_task("t0", &[80], labels)];
        let config = build(&tasks, &LabelOptions::default());
        check_consistent(&tasks, &config)?;
        prop_assert!(config.errors.iter().all(|e| e.task.as_deref() == Some("t0")));
    }

    /// The result does not depend on the order of tasks (ids unique per provider, as
    /// providers guarantee).
    #[test]
    fn task_order_does_not_matter(
        tasks in any_tasks(6),
        opts in options(),
        order in any::<u64>(),
    ) {
        prop_assume!(unique_ids(&tasks));
        let mut shuffled = tasks.clone();
        // A rotation and a reversal, chosen by the seed.
        let n = shuffled.len();
        shuffled.rotate_left((order as usize) % n);
        if order & 1 == 1 {
            shuffled.reverse();
        }
        prop_assert_eq!(build(&shuffled, &opts), build(&tasks, &opts));
    }

    /// Well-formed tasks build without a single error, and the case of the prefix and
    /// keywords in their keys changes nothing.
    #[test]
    fn good_tasks_build_clean_whatever_the_key_case(tasks in good_tasks()) {
        let opts = LabelOptions::default();
        let config = build(&tasks, &opts);
        prop_assert!(config.errors.is_empty(), "{:?}", config.errors);
        prop_assert!(!config.routers.is_empty());
        check_consistent(&tasks, &config)?;
        let recased: Vec<Task> = tasks
            .iter()
            .map(|t| Task { labels: recase(&t.labels), ..t.clone() })
            .collect();
        prop_assert_eq!(build(&recased, &opts), config);
    }

    /// One bad label on a good task: an error (not a warning) names that task and that
    /// label key. (v1 labels on such a task are only warnings, as Traefik v2 ignores
    /// them, unless they restrict access.)
    #[test]
    fn a_bad_label_is_reported_with_its_task_and_key(
        routers in proptest::collection::btree_set(0usize..4, 1..3),
        bad in select(BAD),
        prefix in select(&["traefik", "Traefik"][..]),
    ) {
        let mut labels = good_labels(&routers, 1);
        // A router the task defines well otherwise: a router with two problems (say, a
        // bad rule and no service) is reported for one of them only.
        let r = routers.iter().next().copied().unwrap_or_default();
        let suffix = bad.0.replace("{r}", &r.to_string()).replace("{s}", &(r % 2).to_string());
        let key = format!("{prefix}.{suffix}");
        labels.retain(|k, _| !k.eq_ignore_ascii_case(&key));
        labels.insert(key.clone(), bad.1.to_string());
        let tasks = [plain_task("culprit", &[8080, 8081], labels)];
        let config = build(&tasks, &LabelOptions::default());
        prop_assert!(
            config.errors.iter().any(|e| e.is_error()
                && e.task.as_deref() == Some("culprit")
                && e.label.as_deref() == Some(key.as_str())),
            "no error names task culprit and label {}: {:?}",
            key,
            config.errors
        );
        check_consistent(&tasks, &config)?;
    }

    /// The same setting in two key spellings is an error naming one of them, never a
    /// silent pick.
    #[test]
    fn a_setting_given_twice_is_reported(
        routers in proptest::collection::btree_set(0usize..4, 1..3),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut labels = good_labels(&routers, 1);
        let keys: Vec<String> = labels.keys().filter(|k| *k != "traefik.enable").cloned().collect();
        let key = pick.get(&keys).clone();
        let twin = key.replacen("traefik.", "Traefik.", 1);
        labels.insert(twin.clone(), "80".to_string());
        let tasks = [plain_task("twice", &[8080, 8081], labels)];
        let config = build(&tasks, &LabelOptions::default());
        prop_assert!(
            config.errors.iter().any(|e| e.task.as_deref() == Some("twice")
                && (e.label.as_deref() == Some(key.as_str())
                    || e.label.as_deref() == Some(twin.as_str()))),
            "{} and {} both set, errors {:?}",
            key,
            twin,
            config.errors
        );
    }

    /// Bad input loses nothing: tasks with arbitrary labels that never mention the good
    /// tasks' names leave every router and service of the good tasks exactly as the good
    /// tasks alone define them.
    #[test]
    fn bad_tasks_lose_nothing(
        good in good_tasks(),
        bad in proptest::collection::vec(label_map(12), 1..4),
    ) {
        let opts = LabelOptions { exposed_by_default: true, ..LabelOptions::default() };
        let alone = build(&good, &opts);
        prop_assert!(alone.errors.is_empty(), "{:?}", alone.errors);
        let mut all = good.clone();
        for (i, mut labels) in bad.into_iter().enumerate() {
            labels.retain(|k, v| !k.contains("good") && !v.contains("good"));
            all.push(plain_task(&format!("bad-{i}"), &[80], labels));
        }
        let mixed = build(&all, &opts);
        for (name, r) in &alone.routers {
            prop_assert_eq!(mixed.routers.get(name), Some(r), "router {}", name);
        }
        for (name, s) in &alone.services {
            prop_assert_eq!(mixed.services.get(name), Some(s), "service {}", name);
        }
        check_consistent(&all, &mixed)?;
    }
}
