//! Translation of Traefik v1 `frontend.rule`s into the v2/v3 language.
//!
//! v1 rules are `;`-separated matchers (all must match), each `Name:values`
//! with `,`-separated values (any may match), names case-insensitive, e.g.
//! `Host:a.com,b.com;PathPrefix:/x`. Each translated matcher is compiled on
//! its own so errors come back with columns in the v1 text.

use super::{compile, template, RuleError};

/// A piece of the input: its text and the column of its first character.
#[derive(Debug, Clone)]
struct Span {
    text: String,
    column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One v2 matcher per value, named by the field.
    Each(&'static str),
    /// `Name,Value` → the two-argument v2 matcher named by the field.
    Pair(&'static str),
    /// `k=v` or `k` → `Query(`k`, `v`)` or `Query(`k`)`.
    Query,
    /// A v1 modifier gantry does not support; the field says what to do.
    Unsupported(&'static str),
}

const NAMES: &[(&str, Kind)] = &[
    ("Host", Kind::Each("Host")),
    ("HostRegexp", Kind::Each("HostRegexp")),
    ("Path", Kind::Each("Path")),
    ("PathPrefix", Kind::Each("PathPrefix")),
    ("Method", Kind::Each("Method")),
    ("Headers", Kind::Pair("Header")),
    ("HeadersRegexp", Kind::Pair("HeaderRegexp")),
    ("Query", Kind::Query),
    ("PathStrip", Kind::Unsupported("use Path")),
    ("PathStripRegex", Kind::Unsupported("use Path")),
    ("PathPrefixStrip", Kind::Unsupported("use PathPrefix")),
    ("PathPrefixStripRegex", Kind::Unsupported("use PathPrefix")),
    ("AddPrefix", Kind::Unsupported("remove it")),
    ("ReplacePath", Kind::Unsupported("remove it")),
    ("ReplacePathRegex", Kind::Unsupported("remove it")),
];
/// How many entries of `NAMES` are supported matchers.
const SUPPORTED: usize = 8;

pub(crate) fn translate(rule: &str) -> Result<String, RuleError> {
    let segments: Vec<Span> = split(rule, 1, ';', false)
        .into_iter()
        .map(trim)
        .filter(|s| !s.text.is_empty())
        .collect();
    if segments.is_empty() {
        return Err(error(1, "empty rule".to_string()));
    }
    let several = segments.len() > 1;
    let mut parts = Vec::with_capacity(segments.len());
    for segment in &segments {
        let alternatives = matcher(segment)?;
        parts.push(if alternatives.len() > 1 && several {
            format!("({})", alternatives.join(" || "))
        } else {
            alternatives.join(" || ")
        });
    }
    Ok(parts.join(" && "))
}

/// Translates one `Name:values` matcher into its v2 alternatives.
fn matcher(segment: &Span) -> Result<Vec<String>, RuleError> {
    let Some((name, rest)) = segment.text.split_once(':') else {
        return Err(error(
            segment.column,
            format!("expected `Name:value`, found `{}`", segment.text),
        ));
    };
    let name = trim(Span {
        text: name.to_string(),
        column: segment.column,
    });
    let rest_column = segment.column + name_len(&segment.text) + 1;
    let Some(&(canonical, kind)) = NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(&name.text))
    else {
        let known: Vec<&str> = NAMES.iter().take(SUPPORTED).map(|(n, _)| *n).collect();
        return Err(error(
            name.column,
            format!(
                "unknown v1 matcher `{}`; known matchers: {}",
                name.text,
                known.join(", ")
            ),
        ));
    };
    let values: Vec<Span> = match kind {
        Kind::Unsupported(advice) => {
            let what = "is a path-rewriting modifier that gantry does not support";
            return Err(error(name.column, format!("{canonical} {what}; {advice}")));
        }
        // The value (or regex) may itself contain commas: split once.
        Kind::Pair(_) => split(rest, rest_column, ',', true)
            .into_iter()
            .map(trim)
            .collect(),
        Kind::Each(_) | Kind::Query => split(rest, rest_column, ',', false)
            .into_iter()
            .map(trim)
            .filter(|v| !v.text.is_empty())
            .collect(),
    };
    if let Some(v) = values.iter().find(|v| v.text.contains('`')) {
        let offset = v.text.chars().take_while(|&c| c != '`').count();
        return Err(error(
            v.column + offset,
            format!("{canonical}: values cannot contain a backtick"),
        ));
    }
    let mut out = Vec::new();
    match kind {
        Kind::Each(v2) => {
            for v in &values {
                // v1 HostRegexp values were gorilla templates: without a
                // `{var}` they are literal host names, not regexes.
                let v2 = if v2 == "HostRegexp" && !template::is_template(&v.text) {
                    "Host"
                } else {
                    v2
                };
                out.push(checked(&name, v2, &[v])?);
            }
        }
        Kind::Pair(v2) => match values.as_slice() {
            [header, value] => out.push(checked(&name, v2, &[header, value])?),
            _ => {
                return Err(error(
                    rest_column,
                    format!("{canonical} takes `Name,Value`, found `{rest}`"),
                ))
            }
        },
        Kind::Query => {
            for v in &values {
                let args: Vec<Span> = match split(&v.text, v.column, '=', true).as_slice() {
                    [key, value] => vec![key.clone(), value.clone()],
                    _ => vec![v.clone()],
                };
                let refs: Vec<&Span> = args.iter().collect();
                out.push(checked(&name, "Query", &refs)?);
            }
        }
        Kind::Unsupported(_) => {}
    }
    if out.is_empty() {
        return Err(error(
            rest_column,
            format!("{canonical} needs at least one value"),
        ));
    }
    Ok(out)
}

/// Builds ``v2(`a`, `b`)`` and compiles it, so any error is reported now,
/// at the column of the v1 value it came from (or of the matcher's name).
fn checked(name: &Span, v2: &str, args: &[&Span]) -> Result<String, RuleError> {
    let mut text = format!("{v2}(");
    let mut columns = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        columns.push((text.chars().count() + 1, arg.column));
        text.push('`');
        text.push_str(&arg.text);
        text.push('`');
    }
    text.push(')');
    match compile(&text) {
        Ok(_) => Ok(text),
        Err(e) => {
            let column = columns
                .iter()
                .find(|(ours, _)| *ours == e.column)
                .map_or(name.column, |(_, theirs)| *theirs);
            Err(error(column, e.message))
        }
    }
}

/// Splits on `sep` outside `{...}` (v1 templates hold regexes with commas);
/// with `once`, only at the first separator.
fn split(text: &str, column: usize, sep: char, once: bool) -> Vec<Span> {
    let mut out = Vec::new();
    let mut current = Span {
        text: String::new(),
        column,
    };
    let mut depth = 0usize;
    for (i, c) in text.chars().enumerate() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        // With `once`, only the first separator splits.
        let may_split = !once || out.is_empty();
        if c == sep && depth == 0 && may_split {
            let next = Span {
                text: String::new(),
                column: column + i + 1,
            };
            out.push(std::mem::replace(&mut current, next));
        } else {
            current.text.push(c);
        }
    }
    out.push(current);
    out
}

fn trim(span: Span) -> Span {
    let lead = span.text.chars().take_while(|c| c.is_whitespace()).count();
    Span {
        text: span.text.trim().to_string(),
        column: span.column + lead,
    }
}

/// Characters before the first `:`.
fn name_len(segment: &str) -> usize {
    segment.chars().take_while(|&c| c != ':').count()
}

fn error(column: usize, message: String) -> RuleError {
    RuleError { column, message }
}
