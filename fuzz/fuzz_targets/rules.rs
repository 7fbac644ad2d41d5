//! Rule text → `compile`: never a panic; an error's column lies within the rule (or
//! just past its end); a compiled rule's index hint holds for every request it matches.
//! Requests are made of the rule's own string literals, so that some of them match.
#![no_main]

use std::net::IpAddr;

use gantry::rules::{compile, RequestInfo};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rule) = std::str::from_utf8(data) else {
        return;
    };
    let matcher = match compile(rule) {
        Ok(m) => m,
        Err(e) => {
            let end = rule.chars().count() + 1;
            assert!(
                (1..=end).contains(&e.column),
                "column {} outside 1..={end} for {rule:?}: {e}",
                e.column
            );
            return;
        }
    };
    let hint = matcher.index_hint();
    let literals = literals(rule);
    let mut headers = HeaderMap::new();
    for pair in literals.chunks(2) {
        if let [name, value] = pair {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
    }
    let methods = [Method::GET, Method::POST];
    let ips: [IpAddr; 2] = [
        [10, 0, 0, 1].into(),
        [0, 0, 0, 0, 0, 0xffff, 0x0a00, 1].into(),
    ];
    for host in literals
        .iter()
        .map(String::as_str)
        .chain(["", "a.com"])
        .take(8)
    {
        for path in literals.iter().map(String::as_str).chain(["/"]).take(8) {
            for (i, method) in methods.iter().enumerate() {
                let query = literals.get(i).map(|k| format!("{k}={path}"));
                let req = RequestInfo {
                    method,
                    host,
                    path,
                    query: query.as_deref(),
                    headers: &headers,
                    client_ip: ips[i],
                };
                if !matcher.matches(&req) {
                    continue;
                }
                if let Some(hosts) = &hint.hosts {
                    assert!(
                        hosts.contains(&host.to_ascii_lowercase()),
                        "{rule:?} matched host {host:?} outside its hint {hosts:?}"
                    );
                }
                if let Some(prefix) = &hint.path_prefix {
                    assert!(
                        path.starts_with(prefix.as_str()),
                        "{rule:?} matched path {path:?} outside its hint {prefix:?}"
                    );
                }
            }
        }
    }
});

/// The contents of the rule's backtick-quoted strings.
fn literals(rule: &str) -> Vec<String> {
    rule.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}
