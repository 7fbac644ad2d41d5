//! Traefik v1 `frontend.rule` translation: outputs, their meaning, errors.

use super::super::translate_v1;
use super::support::{compiled, req};

#[test]
fn translations() {
    let cases = [
        (
            "Host:a.com,b.com;PathPrefix:/x",
            "(Host(`a.com`) || Host(`b.com`)) && PathPrefix(`/x`)",
        ),
        ("Host:a.com", "Host(`a.com`)"),
        ("Host:a.com,b.com", "Host(`a.com`) || Host(`b.com`)"),
        (
            "host:a.com; pathprefix:/api",
            "Host(`a.com`) && PathPrefix(`/api`)",
        ),
        (
            " Host: a.com , b.com ;Path:/x;",
            "(Host(`a.com`) || Host(`b.com`)) && Path(`/x`)",
        ),
        ("Host:a.com,,b.com", "Host(`a.com`) || Host(`b.com`)"),
        ("Host:a.com;;Path:/x", "Host(`a.com`) && Path(`/x`)"),
        ("Method:GET,POST", "Method(`GET`) || Method(`POST`)"),
        ("Headers:X-Env,prod", "Header(`X-Env`, `prod`)"),
        ("Headers:X-List,a,b", "Header(`X-List`, `a,b`)"),
        (
            "HeadersRegexp:Content-Type,application/(json|grpc){1,2}",
            "HeaderRegexp(`Content-Type`, `application/(json|grpc){1,2}`)",
        ),
        (
            "Query:env=prod,debug",
            "Query(`env`, `prod`) || Query(`debug`)",
        ),
        ("Query:k=", "Query(`k`, ``)"),
        ("Query:k=a=b", "Query(`k`, `a=b`)"),
        (
            "HostRegexp:{sub:[a-z]+}.example.com",
            "HostRegexp(`{sub:[a-z]+}.example.com`)",
        ),
        (
            // Commas inside a template's regex do not split values, and a
            // value without variables is a literal host, as in v1.
            "HostRegexp:{id:[0-9]{1,3}}.example.com,example.org",
            "HostRegexp(`{id:[0-9]{1,3}}.example.com`) || Host(`example.org`)",
        ),
        ("Path:/users/{id:[0-9]+}", "Path(`/users/{id:[0-9]+}`)"),
        (
            "PathPrefix:/a,/b;Method:GET;Headers:X,y",
            "(PathPrefix(`/a`) || PathPrefix(`/b`)) && Method(`GET`) && Header(`X`, `y`)",
        ),
    ];
    for (v1, want) in cases {
        let got = translate_v1(v1).unwrap_or_else(|e| panic!("{v1:?}: {e}"));
        assert_eq!(got, want, "{v1:?}");
        compiled(&got);
    }
}

#[test]
fn translated_rules_mean_the_same() {
    let m = compiled(&translate_v1("Host:a.com,b.com;PathPrefix:/x").expect("translates"));
    assert!(m.matches(&req("GET b.com /x/y").info()));
    assert!(m.matches(&req("GET A.COM /x").info()));
    assert!(!m.matches(&req("GET c.com /x").info()));
    assert!(!m.matches(&req("GET a.com /y").info()));

    let m = compiled(&translate_v1("HostRegexp:{sub:[a-z]+}.example.com").expect("translates"));
    assert!(m.matches(&req("GET api.example.com /").info()));
    assert!(!m.matches(&req("GET api.exampleXcom /").info()));

    let m = compiled(&translate_v1("HostRegexp:example.com").expect("translates"));
    assert!(m.matches(&req("GET example.com /").info()));
    assert!(!m.matches(&req("GET exampleXcom /").info()));

    let m = compiled(&translate_v1("Query:env=prod,debug").expect("translates"));
    assert!(m.matches(&req("GET h /?debug").info()));
    assert!(m.matches(&req("GET h /?env=prod").info()));
    assert!(!m.matches(&req("GET h /?env=dev").info()));
}

#[test]
fn errors() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "empty rule"),
        (" ; ; ", 1, "empty rule"),
        (
            "PathPrefixStrip:/api",
            1,
            "PathPrefixStrip is a path-rewriting modifier that gantry does not support; \
             use PathPrefix",
        ),
        (
            "Host:a.com;PathStrip:/x",
            12,
            "PathStrip is a path-rewriting modifier that gantry does not support; use Path",
        ),
        (
            "Host:a; addprefix:/x",
            9,
            "AddPrefix is a path-rewriting modifier",
        ),
        (
            "ReplacePathRegex:^/a/(.*) /b/$1",
            1,
            "ReplacePathRegex is a path-rewriting",
        ),
        (
            "Hots:a.com",
            1,
            "unknown v1 matcher `Hots`; known matchers: Host, HostRegexp, Path, PathPrefix, \
             Method, Headers, HeadersRegexp, Query",
        ),
        ("Host:a.com; Foo:x", 13, "unknown v1 matcher `Foo`"),
        ("Host(`a.com`)", 1, "expected `Name:value`"),
        (
            "Host:a.com;  Path",
            14,
            "expected `Name:value`, found `Path`",
        ),
        ("Host:", 6, "Host needs at least one value"),
        ("Host: , ", 6, "Host needs at least one value"),
        ("Path:/a;Host:", 14, "Host needs at least one value"),
        ("Host:a`b", 7, "Host: values cannot contain a backtick"),
        (
            "Host:a.com;Path:x",
            17,
            "`Path`: path `x` must start with `/`",
        ),
        ("Path:/a,b", 9, "`Path`: path `b` must start with `/`"),
        (
            "Headers:X-Env",
            9,
            "Headers takes `Name,Value`, found `X-Env`",
        ),
        (
            "Headers:bad name,v",
            9,
            "`bad name` is not a valid header name",
        ),
        ("Headers:,v", 9, "`Header`: empty argument"),
        ("Headers:X,a\u{1}b", 11, "not a valid header value"),
        ("HeadersRegexp:X,(", 17, "invalid regex: unclosed group"),
        ("Method:G ET", 8, "`G ET` is not a valid HTTP method"),
        ("Query:=v", 7, "`Query`: empty argument"),
        ("Query:a=1, =2", 12, "`Query`: empty argument"),
        (
            "HostRegexp:{a:(}.com",
            12,
            "invalid regex in variable `a`: unclosed group",
        ),
    ];
    for &(v1, column, message) in cases {
        let e = match translate_v1(v1) {
            Ok(out) => panic!("{v1:?} should not translate, got {out:?}"),
            Err(e) => e,
        };
        assert_eq!(e.column, column, "{v1:?}: {e}");
        assert!(e.message.contains(message), "{v1:?}: {e}");
    }
}
