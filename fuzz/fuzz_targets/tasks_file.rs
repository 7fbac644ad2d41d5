//! Tasks file text → `provider::file::parse`, and what parses on to `labels::build`:
//! never a panic; parsed tasks have unique, non-blank ids and no port 0.
#![no_main]

use std::collections::BTreeSet;

use gantry::labels::{build, LabelOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tasks = match gantry::provider::file::parse(text) {
        Ok(tasks) => tasks,
        Err(e) => {
            assert!(!e.trim().is_empty(), "empty error for {text:?}");
            return;
        }
    };
    let ids: BTreeSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), tasks.len(), "duplicate ids passed: {text:?}");
    for t in &tasks {
        assert!(!t.id.trim().is_empty());
        assert!(t.ports.iter().all(|p| p.container != 0 && p.host != 0));
    }
    let opts = LabelOptions {
        exposed_by_default: true,
        ..LabelOptions::default()
    };
    let _ = build(&tasks, &opts);
});
