//! Traefik v1/v2 (gorilla/mux) templates: `{name}` and `{name:regex}`
//! variables inside host and path values, turned into plain regexes.
//!
//! A template is recognised only by a `{` that starts an identifier followed
//! by `}` or `:`, so v3 regex quantifiers such as `[a-z]{3}` or `{2,4}` are
//! never mistaken for one.

/// Whether `value` contains at least one `{name}` or `{name:re}` variable.
pub(crate) fn is_template(value: &str) -> bool {
    let chars: Vec<char> = value.chars().collect();
    (0..chars.len()).any(|i| variable_starts_at(&chars, i))
}

/// Translates a template to an unanchored regex: literal text is escaped,
/// `{name:re}` becomes `(?:re)` and `{name}` becomes `(?:default)`.
/// The error message says what is malformed.
pub(crate) fn to_regex(value: &str, default: &str) -> Result<String, String> {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut literal = String::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if !variable_starts_at(&chars, i) {
            literal.push(c);
            i += 1;
            continue;
        }
        out.push_str(&regex::escape(&literal));
        literal.clear();
        // Find the matching `}`; the variable's regex may itself use braces.
        let mut depth = 0usize;
        let mut end = None;
        for (j, &c) in chars.iter().enumerate().skip(i) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return Err(format!(
                "unbalanced `{{` at character {} of the template",
                i + 1
            ));
        };
        let body: String = chars.get(i + 1..end).unwrap_or_default().iter().collect();
        match body.split_once(':') {
            Some((name, re)) if !re.is_empty() => {
                // Checked alone so that one variable's regex cannot close
                // the group around it and leak into the next.
                if let Err(e) = regex::Regex::new(re) {
                    return Err(format!(
                        "invalid regex in variable `{name}`: {}",
                        super::regex_error(&e)
                    ));
                }
                out.push_str("(?:");
                out.push_str(re);
                out.push(')');
            }
            Some((name, _)) => return Err(format!("empty regex for variable `{name}`")),
            None => {
                out.push_str("(?:");
                out.push_str(default);
                out.push(')');
            }
        }
        i = end + 1;
    }
    out.push_str(&regex::escape(&literal));
    Ok(out)
}

/// `{` at `i`, not escaped, then an identifier, then `}` or `:`.
fn variable_starts_at(chars: &[char], i: usize) -> bool {
    let escaped = i.checked_sub(1).and_then(|j| chars.get(j)) == Some(&'\\');
    if chars.get(i) != Some(&'{') || escaped {
        return false;
    }
    match chars.get(i + 1) {
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {}
        _ => return false,
    }
    let rest = chars.iter().skip(i + 2);
    for &c in rest {
        if c == '}' || c == ':' {
            return true;
        }
        if !(c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        let cases = [
            ("{sub}.example.com", true),
            ("{sub:[a-z]+}.example.com", true),
            ("/api/{id:[0-9]{1,3}}", true),
            ("[a-z]{3}\\.example\\.com", false),
            ("a{2,4}", false),
            ("\\{name}", false),
            ("{", false),
            ("{name", false),
            ("{na-me}", false),
            ("", false),
        ];
        for (value, want) in cases {
            assert_eq!(is_template(value), want, "{value:?}");
        }
    }

    #[test]
    fn translation() {
        let cases = [
            ("{sub}.example.com", "[^.]+", "(?:[^.]+)\\.example\\.com"),
            (
                "{sub:[a-z]+}.example.com",
                "[^.]+",
                "(?:[a-z]+)\\.example\\.com",
            ),
            ("/api/{id:[0-9]{1,3}}/x", "[^/]+", "/api/(?:[0-9]{1,3})/x"),
            ("/a/{x}/{y}", "[^/]+", "/a/(?:[^/]+)/(?:[^/]+)"),
            ("/a+b/{x}", "[^/]+", "/a\\+b/(?:[^/]+)"),
        ];
        for (value, default, want) in cases {
            assert_eq!(to_regex(value, default).as_deref(), Ok(want), "{value:?}");
        }
    }

    #[test]
    fn malformed() {
        assert!(to_regex("{a:[0-9]{2}", "x")
            .is_err_and(|e| e.contains("unbalanced `{` at character 1")));
        assert!(to_regex("x{a:}", "x").is_err_and(|e| e.contains("empty regex for variable `a`")));
        assert!(to_regex("{a:x)(}", "x")
            .is_err_and(|e| e.contains("invalid regex in variable `a`: unopened group")));
    }
}
