//! config.toml text → `config::parse`: never a panic; every error is a non-empty
//! message.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match gantry::config::parse(text, PathBuf::from("/etc/gantry")) {
        Ok(loaded) => {
            let _ = loaded.file_provider_path();
            let _ = loaded.access_log_target();
            let _ = (loaded.throttle(), loaded.drain());
        }
        Err(e) => assert!(!e.trim().is_empty(), "empty error for {text:?}"),
    }
});
