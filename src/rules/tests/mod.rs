//! Cross-module tests of the public API: matching tables, error columns,
//! v1 translations and robustness against arbitrary input.

mod errors;
mod fields;
mod matching;
mod robustness;
mod support;
mod v1;
