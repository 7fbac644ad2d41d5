//! gRPC status codes: their names, sets of them as written in a label value, and
//! the `grpc-status` of a header block.
//!
//! A health check that calls an arbitrary method decides "alive" by the status the
//! server answers with, and which statuses count is configured with a short list:
//! numbers (`0`), inclusive ranges (`0-2`), or the codes' canonical names (`OK`,
//! `UNIMPLEMENTED`, any case), separated by commas, spaces allowed around each part.
//! This module owns that syntax: [`CodeSet::parse`] turns it into a bitmask, rejecting
//! anything else with a message that names the offending part, and `Display` writes a
//! set back in one canonical form, so what the dashboard shows can be pasted back into
//! a label. It also owns the table of code names, used when a reason names a status.

use std::fmt;
use std::str::FromStr;

use http::HeaderMap;

/// The highest gRPC status code (UNAUTHENTICATED).
pub const MAX_CODE: u8 = 16;

/// Canonical names of the gRPC status codes, indexed by code.
const NAMES: [&str; MAX_CODE as usize + 1] = super::GRPC_CODES;

/// The canonical name of a gRPC status code (`12` → `UNIMPLEMENTED`), if it is one.
pub fn code_name(code: u32) -> Option<&'static str> {
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
}

/// The `grpc-status` of a header block, if it has a valid one.
pub fn grpc_status(headers: &HeaderMap) -> Option<u8> {
    static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
    let v = headers.get(&GRPC_STATUS)?.as_bytes();
    if v.is_empty() || v.len() > 2 {
        return None;
    }
    let mut code: u8 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        code = code * 10 + (b - b'0');
    }
    Some(code)
}

/// A set of gRPC status codes (0 through 16). The default is `{0}` (only OK).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeSet(u32);

impl CodeSet {
    /// Parses a list such as `"0"`, `"0,12"`, `"0-2, 12"` or `"OK, unimplemented"`.
    ///
    /// The error is a message for a person, naming the part that is wrong.
    pub fn parse(text: &str) -> Result<CodeSet, String> {
        if text.trim().is_empty() {
            return Err("empty list of gRPC status codes".to_string());
        }
        let mut bits = 0u32;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!(
                    "{text:?}: empty entry in the list of gRPC status codes"
                ));
            }
            let (low, high) = match part.split_once('-') {
                None => {
                    let code = one_code(part)?;
                    (code, code)
                }
                Some((from, to)) => {
                    let (from, to) = (from.trim(), to.trim());
                    if from.is_empty() || to.is_empty() {
                        return Err(format!("{part:?}: a range needs a first and a last code"));
                    }
                    let (low, high) = (one_code(from)?, one_code(to)?);
                    if high < low {
                        return Err(format!("{part:?}: range ends before it starts"));
                    }
                    (low, high)
                }
            };
            for code in low..=high {
                bits |= 1 << code;
            }
        }
        Ok(CodeSet(bits))
    }

    /// The set as bits (bit `n` for code `n`).
    pub fn bits(&self) -> u32 {
        self.0
    }

    /// Whether `code` is in the set (codes above 16 never are).
    pub fn contains(&self, code: u8) -> bool {
        code <= MAX_CODE && self.0 & (1 << code) != 0
    }
}

/// One code, by number or by name.
fn one_code(word: &str) -> Result<u8, String> {
    let not_a_code = || format!("{word:?} is not a gRPC status code (0-{MAX_CODE})");
    if word.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: a number, though possibly too large for any integer type.
        return match word.parse::<u8>() {
            Ok(code) if code <= MAX_CODE => Ok(code),
            _ => Err(not_a_code()),
        };
    }
    NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(word))
        .and_then(|i| u8::try_from(i).ok())
        .ok_or_else(not_a_code)
}

impl Default for CodeSet {
    fn default() -> CodeSet {
        CodeSet(1)
    }
}

impl FromStr for CodeSet {
    type Err = String;

    fn from_str(text: &str) -> Result<CodeSet, String> {
        CodeSet::parse(text)
    }
}

/// Canonical form: ascending numbers, runs of three or more codes as `low-high`,
/// comma-separated without spaces (`"0-2,5,6,12"`).
impl fmt::Display for CodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut code = 0u8;
        while code <= MAX_CODE {
            if !self.contains(code) {
                code += 1;
                continue;
            }
            let mut last = code;
            while last < MAX_CODE && self.contains(last + 1) {
                last += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            match last - code {
                0 => write!(f, "{code}")?,
                1 => write!(f, "{code},{last}")?,
                _ => write!(f, "{code}-{last}")?,
            }
            code = last + 1;
        }
        Ok(())
    }
}

impl fmt::Debug for CodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn grpc_status_values() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        for (v, want) in [
            ("0", Some(0)),
            ("14", Some(14)),
            ("16", Some(16)),
            ("99", Some(99)),
            ("", None),
            ("1x", None),
            ("123", None),
            ("-1", None),
        ] {
            h.insert("grpc-status", HeaderValue::from_static(v));
            assert_eq!(grpc_status(&h), want, "{v:?}");
        }
    }

    fn codes(set: CodeSet) -> Vec<u8> {
        (0..=20).filter(|&c| set.contains(c)).collect()
    }

    #[test]
    fn parses_valid_lists() {
        let table: &[(&str, &[u8], &str)] = &[
            ("0", &[0], "0"),
            ("12", &[12], "12"),
            ("0,12", &[0, 12], "0,12"),
            ("0-2,12", &[0, 1, 2, 12], "0-2,12"),
            (" 0 - 2 , 12 ", &[0, 1, 2, 12], "0-2,12"),
            ("OK", &[0], "0"),
            ("ok,Unimplemented", &[0, 12], "0,12"),
            ("OK-UNKNOWN", &[0, 1, 2], "0-2"),
            ("0-16", &(0..=16).collect::<Vec<_>>(), "0-16"),
            ("16", &[16], "16"),
            ("3-3", &[3], "3"),
            ("5,6", &[5, 6], "5,6"),
            ("6,5,5", &[5, 6], "5,6"),
            ("0-2,1-4", &[0, 1, 2, 3, 4], "0-4"),
            ("007", &[7], "7"),
            ("UNAUTHENTICATED, data_loss", &[15, 16], "15,16"),
        ];
        for &(text, want, canonical) in table {
            let set = CodeSet::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(codes(set), want, "{text:?}");
            assert_eq!(set.to_string(), canonical, "{text:?}");
            // The canonical form parses back to the same set.
            assert_eq!(CodeSet::parse(canonical), Ok(set), "{canonical:?}");
            assert_eq!(text.parse::<CodeSet>(), Ok(set), "{text:?}");
        }
    }

    #[test]
    fn rejects_invalid_lists_naming_the_part() {
        let table: &[(&str, &str)] = &[
            ("", "empty list of gRPC status codes"),
            ("   ", "empty list of gRPC status codes"),
            ("17", r#""17" is not a gRPC status code (0-16)"#),
            ("0,17", r#""17" is not a gRPC status code (0-16)"#),
            ("256", r#""256" is not a gRPC status code (0-16)"#),
            (
                "99999999999999999999",
                r#""99999999999999999999" is not a gRPC status code (0-16)"#,
            ),
            ("5-2", r#""5-2": range ends before it starts"#),
            ("0, 5 - 2", r#""5 - 2": range ends before it starts"#),
            ("0-17", r#""17" is not a gRPC status code (0-16)"#),
            ("-1", r#""-1": a range needs a first and a last code"#),
            ("3-", r#""3-": a range needs a first and a last code"#),
            ("1-2-3", r#""2-3" is not a gRPC status code (0-16)"#),
            (
                "0,,2",
                r#""0,,2": empty entry in the list of gRPC status codes"#,
            ),
            (
                "0,",
                r#""0,": empty entry in the list of gRPC status codes"#,
            ),
            ("NOPE", r#""NOPE" is not a gRPC status code (0-16)"#),
            ("+1", r#""+1" is not a gRPC status code (0-16)"#),
            (
                "OK UNKNOWN",
                r#""OK UNKNOWN" is not a gRPC status code (0-16)"#,
            ),
        ];
        for &(text, want) in table {
            assert_eq!(CodeSet::parse(text), Err(want.to_string()), "{text:?}");
        }
    }

    #[test]
    fn default_is_ok_only() {
        let set = CodeSet::default();
        assert_eq!(codes(set), [0]);
        assert_eq!(set.to_string(), "0");
        assert_eq!(format!("{set:?}"), "CodeSet(0)");
    }

    #[test]
    fn contains_is_false_outside_the_code_range() {
        let all = CodeSet::parse("0-16").unwrap();
        assert!(all.contains(16));
        assert!(!all.contains(17));
        assert!(!all.contains(31));
        assert!(!all.contains(255));
    }

    #[test]
    fn names_every_code() {
        let table: &[(u32, Option<&str>)] = &[
            (0, Some("OK")),
            (2, Some("UNKNOWN")),
            (5, Some("NOT_FOUND")),
            (12, Some("UNIMPLEMENTED")),
            (14, Some("UNAVAILABLE")),
            (16, Some("UNAUTHENTICATED")),
            (17, None),
            (u32::MAX, None),
        ];
        for &(code, name) in table {
            assert_eq!(code_name(code), name, "{code}");
        }
        // Every name parses back to its own code.
        for (code, name) in NAMES.iter().enumerate() {
            let set = CodeSet::parse(name).unwrap();
            assert_eq!(codes(set), [code as u8], "{name}");
        }
    }
}
