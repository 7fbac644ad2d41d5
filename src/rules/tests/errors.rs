//! Every compile error kind, with its exact column.

use super::super::{compile, RuleError};

fn error(rule: &str) -> RuleError {
    match compile(rule) {
        Ok(m) => panic!("{rule:?} should not compile, got {m:?}"),
        Err(e) => e,
    }
}

#[test]
fn columns_and_messages() {
    // (rule, column, text the message must contain)
    let cases: &[(&str, usize, &str)] = &[
        // Empty input.
        ("", 1, "empty rule"),
        ("  \n ", 1, "empty rule"),
        // Unknown names.
        ("Hots(`a`)", 1, "unknown matcher `Hots`"),
        ("Host(`a`) && Foo(`b`)", 14, "unknown matcher `Foo`"),
        ("Host(`é`) && Bad()", 14, "unknown matcher `Bad`"),
        ("HostSNI(`a`)", 1, "unknown matcher `HostSNI`"),
        // Argument counts: too few at the name, too many at the first extra.
        (
            "Host()",
            1,
            "`Host` takes at least 1 argument (host names), got 0",
        ),
        (
            "Header(`a`)",
            1,
            "`Header` takes 2 arguments (name, value), got 1",
        ),
        (
            "Header(`a`, `b`, `c`)",
            18,
            "`Header` takes 2 arguments (name, value), got 3",
        ),
        (
            "PathRegexp(`a`, `b`)",
            17,
            "`PathRegexp` takes 1 argument (regex), got 2",
        ),
        (
            "GRPCMethod(`a`)",
            1,
            "`GRPCMethod` takes 2 arguments (service, method), got 1",
        ),
        (
            "GRPCService(`a`, `b`)",
            18,
            "`GRPCService` takes 1 argument (service), got 2",
        ),
        (
            "Query()",
            1,
            "`Query` takes 1 to 2 arguments (key, value), got 0",
        ),
        (
            "Query(`a`, `b`, `c`)",
            17,
            "`Query` takes 1 to 2 arguments (key, value), got 3",
        ),
        (
            "QueryRegexp(`a`)",
            1,
            "`QueryRegexp` takes 2 arguments (key, regex), got 1",
        ),
        ("ClientIP()", 1, "`ClientIP` takes at least 1 argument"),
        // Lexical and syntax errors.
        ("Host(`a)", 6, "unterminated string"),
        ("Host(\"a)", 6, "unterminated string"),
        ("Host(\"a\\\")", 6, "unterminated string"),
        (
            "Host(`a`) & Path(`/`)",
            11,
            "unexpected `&` (did you mean `&&`?)",
        ),
        (
            "Host(`a`) | Path(`/`)",
            11,
            "unexpected `|` (did you mean `||`?)",
        ),
        ("Host:a.com", 5, "unexpected `:`"),
        (
            "Host(`a`",
            9,
            "missing `)` after the arguments of `Host`, found end of rule",
        ),
        (
            "Host(`a` && Path(`/`)",
            10,
            "missing `)` after the arguments of `Host`, found `&&`",
        ),
        (
            "(Host(`a`)",
            11,
            "missing `)` to close the `(` at column 1, found end of rule",
        ),
        (
            "Host(`a`) Path(`/b`)",
            11,
            "unexpected `Path` after a complete expression",
        ),
        (
            "Host(`a`))",
            10,
            "unexpected `)` after a complete expression",
        ),
        (
            "Host(`a`) &&",
            13,
            "expected a matcher such as `Host(...)`, `!` or `(`, found end",
        ),
        ("&& Host(`a`)", 1, "found `&&`"),
        ("Host", 5, "expected `(` after `Host`, found end of rule"),
        ("Host(a)", 6, "expected a string argument of `Host`"),
        ("Host(`a`,,)", 10, "expected a string argument of `Host`"),
        // Empty values.
        (
            "Host(``)",
            6,
            "`Host`: empty argument where a value is required",
        ),
        ("Host(`a`, ``)", 11, "`Host`: empty argument"),
        ("Path(\"\")", 6, "`Path`: empty argument"),
        ("Query(``)", 7, "`Query`: empty argument"),
        ("QueryRegexp(`k`, ``)", 18, "`QueryRegexp`: empty argument"),
        ("Header(``, `v`)", 8, "`Header`: empty argument"),
        (
            "HeaderRegexp(`X`, ``)",
            19,
            "`HeaderRegexp`: empty argument",
        ),
        (
            "GRPCMethod(`pkg.Svc`, ``)",
            23,
            "`GRPCMethod`: empty argument",
        ),
        ("Method(``)", 8, "`Method`: empty argument"),
        // Invalid values.
        ("Path(`a`)", 6, "`Path`: path `a` must start with `/`"),
        (
            "PathPrefix(`api`)",
            12,
            "`PathPrefix`: path `api` must start with `/`",
        ),
        (
            "Header(`bad name`, `v`)",
            8,
            "`Header`: `bad name` is not a valid header name",
        ),
        (
            "Header(`X`, \"a\nb\")",
            13,
            "`Header`: not a valid header value",
        ),
        (
            "Method(`G ET`)",
            8,
            "`Method`: `G ET` is not a valid HTTP method",
        ),
        (
            "ClientIP(`10.0.0.0/33`)",
            10,
            "`10.0.0.0/33` is not an IP address or CIDR network",
        ),
        (
            "ClientIP(`10.0.0.1`, `nope`)",
            22,
            "`nope` is not an IP address or CIDR network",
        ),
        ("GRPCService(`/pkg.Svc`)", 13, "must not contain `/`"),
        ("GRPCMethod(`pkg.Svc`, `Get/x`)", 23, "must not contain `/`"),
        ("Query(`=v`)", 7, "empty key in `=v`"),
        (
            "Query(`a=1`, `b`)",
            14,
            "expected `key=value` like the first argument",
        ),
        // Regexes: the column of the argument and the regex crate's reason.
        (
            "HostRegexp(`(`)",
            12,
            "`HostRegexp`: invalid regex: unclosed group",
        ),
        (
            "PathRegexp(`[a-`)",
            12,
            "`PathRegexp`: invalid regex: unclosed character class",
        ),
        ("PathRegexp(`a)`)", 12, "invalid regex: unopened group"),
        (
            "HeaderRegexp(`X`, `(?P<`)",
            19,
            "`HeaderRegexp`: invalid regex",
        ),
        (
            "QueryRegexp(`k`, `*`)",
            18,
            "invalid regex: repetition operator missing expression",
        ),
        ("HostRegexp(`a{1000}{1000}{1000}`)", 12, "invalid regex"),
        ("HostRegexp(`{a:[0-9]{2}`)", 12, "unbalanced `{`"),
        (
            "HostRegexp(`{a:(}.com`)",
            12,
            "`HostRegexp`: invalid regex in variable `a`: unclosed group",
        ),
        // Patterns that only parse once wrapped would escape the anchors.
        ("HostRegexp(`a)|(?:b`)", 12, "invalid regex: unopened group"),
        (
            "PathRegexp(`/a)|(?:b`)",
            12,
            "invalid regex: unopened group",
        ),
        (
            "Path(`/u/{a:x)|(y}`)",
            6,
            "invalid regex in variable `a`: unopened group",
        ),
        ("Path(`/u/{id:(}`)", 6, "`Path`: invalid regex"),
    ];
    for &(rule, column, message) in cases {
        let e = error(rule);
        assert_eq!(e.column, column, "{rule:?}: {e}");
        assert!(e.message.contains(message), "{rule:?}: {e}");
        assert!(
            !e.message.contains('\n'),
            "{rule:?}: one-line message: {e:?}"
        );
    }
}

#[test]
fn unknown_matcher_lists_known_ones() {
    assert_eq!(
        error("Nope(`a`)").message,
        "unknown matcher `Nope`; known matchers: Host, HostRegexp, Path, PathPrefix, \
         PathRegexp, Method, Header, HeaderRegexp, Query, QueryRegexp, ClientIP, \
         GRPCService, GRPCMethod"
    );
}

#[test]
fn display() {
    assert_eq!(
        error("Host(``)").to_string(),
        "column 6: `Host`: empty argument where a value is required"
    );
}

#[test]
fn error_order() {
    // Syntax is checked over the whole rule before matcher names and
    // arguments, so a syntax error is reported even after a bad name.
    assert_eq!(error("Nope(`a`) && Host(`b`").column, 22);
    // Lexing is lazy, so a bad character late in the rule does not hide an
    // earlier syntax error.
    assert_eq!(error("Host(`a` Path $").column, 10);
    // Between two semantic errors, the leftmost is reported.
    assert_eq!(error("Host(``) && Nope()").column, 6);
}
