//! Property tests of the parsers: rules (v2/v3 and v1) and provider constraints,
//! labels, config.toml and the tasks file. Random and mutated input gets an error, never
//! a panic; generated valid input is accepted, means what a small model of it says, and
//! survives the rewrites that should not change it (parentheses, quotes, order).
//!
//! Case counts are modest so that the whole binary runs in seconds in a debug build.
//! Failures are not persisted to files: a failure found here becomes an explicit case.

use proptest::test_runner::Config;

#[path = "props/config.rs"]
mod config_file;
#[path = "props/constraints.rs"]
mod constraints;
#[path = "props/edits.rs"]
mod edits;
#[path = "props/label_inputs.rs"]
mod label_inputs;
#[path = "props/label_segments.rs"]
mod label_segments;
#[path = "props/labels.rs"]
mod labels;
#[path = "props/rules.rs"]
mod rules;
#[path = "props/rules_v1.rs"]
mod rules_v1;
#[path = "props/tasks_file.rs"]
mod tasks_file;

/// The runner configuration of every property: `cases` inputs, no regression files.
pub(crate) fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text that tends to reach deep into the parsers: their own punctuation, quotes,
/// words, whitespace and a few multi-byte characters, besides anything at all.
pub(crate) fn noisy_text(max: usize) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        4 => proptest::sample::select(vec![
            "(", ")", ",", "!", "&&", "||", "&", "|", "`", "\"", "\\", " ", "\n", "\t", ":",
            ";", "=", "{", "}", "[", "]", ".", "/", "*", "+", "?", "$", "^", "é", "\u{1F600}",
            "\u{0}", "#", "'", "a", "x", "0", "1", "-",
        ])
        .prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..max).prop_map(|v| v.concat())
}
