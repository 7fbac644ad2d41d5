//! Provider constraint text → `Constraint::parse`, then matched against labels made
//! of its own string literals: never a panic, error columns within the input.
#![no_main]

use std::collections::BTreeMap;

use gantry::rules::constraints::Constraint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    match Constraint::parse(expr) {
        Ok(c) => {
            let literals: Vec<&str> = expr.split('`').skip(1).step_by(2).collect();
            let labels: BTreeMap<String, String> = literals
                .chunks(2)
                .map(|p| {
                    (
                        p[0].to_string(),
                        p.get(1).copied().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let _ = c.matches(&labels);
            let _ = c.matches(&BTreeMap::new());
        }
        Err(e) => {
            let end = expr.chars().count() + 1;
            assert!((1..=end).contains(&e.column), "{expr:?}: {e}");
        }
    }
});
