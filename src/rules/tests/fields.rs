//! Rules × requests on headers and queries, combinators, and the
//! `Matcher`'s auto traits.

use super::super::Matcher;
use super::support::{check, compiled, req};

#[test]
fn headers() {
    let plain = req("GET h /");
    check(vec![
        (
            "Header(`X-Env`, `prod`)",
            vec![
                plain.clone().header("x-env", b"prod"),
                plain
                    .clone()
                    .header("x-env", b"dev")
                    .header("x-env", b"prod"),
            ],
            vec![
                plain.clone(),
                plain.clone().header("x-env", b"Prod"),
                plain.clone().header("x-env", b"prod,dev"),
                plain.clone().header("x-other", b"prod"),
            ],
        ),
        (
            "Headers(`content-type`, `application/grpc`)",
            vec![plain.clone().header("Content-Type", b"application/grpc")],
            vec![plain
                .clone()
                .header("Content-Type", b"application/grpc+proto")],
        ),
        (
            "Header(`X-Empty`, ``)",
            vec![plain.clone().header("x-empty", b"")],
            vec![plain.clone(), plain.clone().header("x-empty", b"a")],
        ),
        (
            "HeaderRegexp(`Content-Type`, `^application/grpc`)",
            vec![
                plain.clone().header("content-type", b"application/grpc"),
                plain
                    .clone()
                    .header("content-type", b"application/grpc+proto"),
            ],
            vec![
                plain
                    .clone()
                    .header("content-type", b"text/application/grpc"),
                plain.clone(),
            ],
        ),
        (
            // Unanchored, as in Traefik.
            "HeadersRegexp(`User-Agent`, `curl`)",
            vec![plain.clone().header("user-agent", b"x curl/8")],
            vec![plain.clone().header("user-agent", b"wget")],
        ),
        (
            // Values that are not visible ASCII are still matched, bytewise.
            "HeaderRegexp(`X-Bin`, `^caf`)",
            vec![plain.clone().header("x-bin", b"caf\xe9")],
            vec![plain
                .clone()
                .header("x-bin", b"xcaf\xe9")
                .header("x-bin", b"ca")],
        ),
    ]);
}

#[test]
fn queries() {
    check(vec![
        (
            "Query(`env`, `prod`)",
            vec![
                req("GET h /?env=prod"),
                req("GET h /?a=1&env=prod"),
                req("GET h /?env=dev&env=prod"),
            ],
            vec![
                req("GET h /"),
                req("GET h /?env=dev"),
                req("GET h /?env"),
                req("GET h /?xenv=prod"),
            ],
        ),
        (
            "Query(`debug`)",
            vec![
                req("GET h /?debug"),
                req("GET h /?debug=0"),
                req("GET h /?a&debug="),
            ],
            vec![req("GET h /?debugx=1"), req("GET h /")],
        ),
        (
            "Query(`q`, `a b`)",
            vec![req("GET h /?q=a+b"), req("GET h /?q=a%20b")],
            vec![req("GET h /?q=a%2Bb"), req("GET h /?q=ab")],
        ),
        (
            "Query(`my key`, `é`)",
            vec![req("GET h /?my%20key=%C3%A9")],
            vec![req("GET h /?my%20key=e")],
        ),
        (
            "Query(`k=v`)",
            vec![req("GET h /?k=v")],
            vec![req("GET h /?k=w")],
        ),
        (
            "Query(`a=1`, `b=2`)",
            vec![req("GET h /?b=2&a=1")],
            vec![req("GET h /?a=1"), req("GET h /?b=2")],
        ),
        (
            "QueryRegexp(`id`, `^[0-9]+$`)",
            vec![req("GET h /?id=42"), req("GET h /?id=x&id=7")],
            vec![req("GET h /?id=4x"), req("GET h /?id="), req("GET h /")],
        ),
        (
            "QueryRegexp(`s`, `a b`)",
            vec![req("GET h /?s=xa+by")],
            vec![req("GET h /?s=ab")],
        ),
    ]);
}

#[test]
fn combinators() {
    check(vec![
        (
            "Host(`a`) && PathPrefix(`/x`)",
            vec![req("GET a /x/1")],
            vec![req("GET b /x/1"), req("GET a /y")],
        ),
        (
            "Host(`a`) || Path(`/b`)",
            vec![req("GET a /z"), req("GET z /b")],
            vec![req("GET z /z")],
        ),
        (
            "!Host(`a`)",
            vec![req("GET b /")],
            vec![req("GET a /"), req("GET A /")],
        ),
        ("!!Host(`a`)", vec![req("GET a /")], vec![req("GET b /")]),
        (
            // && binds tighter than ||.
            "Host(`a`) || Host(`b`) && Path(`/p`)",
            vec![req("GET a /q"), req("GET b /p")],
            vec![req("GET b /q")],
        ),
        (
            "(Host(`a`) || Host(`b`)) && Path(`/p`)",
            vec![req("GET a /p"), req("GET b /p")],
            vec![req("GET a /q")],
        ),
        (
            "Host(`a`) && !(Path(`/private`) || PathPrefix(`/admin`))",
            vec![req("GET a /public")],
            vec![
                req("GET a /private"),
                req("GET a /admin/x"),
                req("GET b /public"),
            ],
        ),
        (
            "  Host( `a` ,\"b\" )\n&&\tMethod(\"GET\")  ",
            vec![req("GET b /")],
            vec![req("POST b /"), req("GET c /")],
        ),
        (
            "PathPrefix(`/api`) && (Method(`GET`) || Method(`HEAD`)) && !Query(`debug`)",
            vec![req("GET h /api"), req("HEAD h /api?x")],
            vec![req("POST h /api"), req("GET h /api?debug"), req("GET h /")],
        ),
        (
            "Header(`a`, `\\\"`) && Host(\"q\\\"uote\")",
            vec![req("GET q\"uote /").header("a", b"\\\"")],
            vec![req("GET q\"uote /").header("a", b"\"")],
        ),
    ]);
}

#[test]
fn matcher_is_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_traits::<Matcher>();
    assert_traits::<super::super::constraints::Constraint>();
    let m = compiled("Host(`a`)");
    let copy = m.clone();
    assert!(copy.matches(&req("GET a /").info()));
}
