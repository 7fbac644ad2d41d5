//! Query-string lookups for the `Query` and `QueryRegexp` matchers.
//!
//! A small splitter over the raw query (`&`-separated `key=value` pairs,
//! percent-decoding and `+` as space, like HTML form encoding). It borrows
//! whenever a key or value needs no decoding, so most lookups do not allocate.

use std::borrow::Cow;

use regex::Regex;

/// What a query parameter's value must satisfy.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Want<'a> {
    /// Any value, including none (`?debug`).
    Present,
    Equals(&'a str),
    Regex(&'a Regex),
}

/// Whether some parameter named `key` in `query` satisfies `want`.
pub(crate) fn has(query: Option<&str>, key: &str, want: Want<'_>) -> bool {
    let Some(query) = query else {
        return false;
    };
    query.split('&').filter(|p| !p.is_empty()).any(|pair| {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(raw_key) != key {
            return false;
        }
        match want {
            Want::Present => true,
            Want::Equals(v) => decode(raw_value) == v,
            Want::Regex(re) => re.is_match(&decode(raw_value)),
        }
    })
}

/// Form-style decoding: `+` is a space, `%XX` a byte; malformed escapes are
/// kept literally (browsers and Go both tolerate them rather than reject).
pub(crate) fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['%', '+']) {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex(*b));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        let cases = [
            ("plain", "plain", true),
            ("a+b", "a b", false),
            ("a%20b", "a b", false),
            ("%7e%7E", "~~", false),
            ("100%", "100%", false),
            ("%zz%4", "%zz%4", false),
            ("%C3%A9", "é", false),
            ("%FF", "\u{FFFD}", false),
            ("", "", true),
        ];
        for (raw, want, borrowed) in cases {
            let got = decode(raw);
            assert_eq!(got, want, "{raw:?}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), borrowed, "{raw:?}");
        }
    }

    #[test]
    fn lookups() {
        let re = Regex::new("^[0-9]+$").expect("test regex");
        let cases: Vec<(Option<&str>, &str, Want<'_>, bool)> = vec![
            (None, "a", Want::Present, false),
            (Some(""), "a", Want::Present, false),
            (Some("a"), "a", Want::Present, true),
            (Some("a="), "a", Want::Present, true),
            (Some("b=1&a=2"), "a", Want::Equals("2"), true),
            (Some("a=1&a=2"), "a", Want::Equals("2"), true),
            (Some("a=1&a=2"), "a", Want::Equals("3"), false),
            (Some("ab=1"), "a", Want::Present, false),
            (Some("a=x=y"), "a", Want::Equals("x=y"), true),
            (Some("my+key=a%20b"), "my key", Want::Equals("a b"), true),
            (Some("a"), "a", Want::Equals(""), true),
            (Some("&&a=1&&"), "a", Want::Equals("1"), true),
            (Some("n=42"), "n", Want::Regex(&re), true),
            (Some("n=4x2"), "n", Want::Regex(&re), false),
            (Some("m=42"), "n", Want::Regex(&re), false),
        ];
        for (query, key, want, expected) in cases {
            assert_eq!(
                has(query, key, want),
                expected,
                "{query:?} {key:?} {want:?}"
            );
        }
    }
}
