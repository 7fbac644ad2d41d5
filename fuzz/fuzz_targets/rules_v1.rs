//! Traefik v1 rule text → `translate_v1`: never a panic; an error's column lies within
//! the input (or just past its end); a translation always compiles, as documented.
#![no_main]

use gantry::rules::{compile, translate_v1};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rule) = std::str::from_utf8(data) else {
        return;
    };
    match translate_v1(rule) {
        Ok(v2) => {
            if let Err(e) = compile(&v2) {
                panic!("{rule:?} translated to {v2:?}, which does not compile: {e}");
            }
        }
        Err(e) => {
            let end = rule.chars().count() + 1;
            assert!(
                (1..=end).contains(&e.column),
                "column {} outside 1..={end} for {rule:?}: {e}",
                e.column
            );
        }
    }
});
