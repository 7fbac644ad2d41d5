//! Rules × requests on host, path, method and client address.

use super::support::{check, req};

#[test]
fn hosts() {
    check(vec![
        (
            "Host(`example.com`)",
            vec![req("GET example.com /"), req("GET EXAMPLE.Com /x")],
            vec![
                req("GET www.example.com /"),
                req("GET example.co /"),
                req("GET  /"),
            ],
        ),
        (
            "Host(`Example.COM`)",
            vec![req("GET example.com /")],
            vec![req("GET example.org /")],
        ),
        (
            "Host(`a.com`, `b.com`)",
            vec![req("GET a.com /"), req("GET B.com /")],
            vec![req("GET c.com /")],
        ),
        (
            "HostHeader(`a.com`)",
            vec![req("GET a.com /")],
            vec![req("GET b.com /")],
        ),
        (
            "host(`a.com`)",
            vec![req("GET a.com /")],
            vec![req("GET b.com /")],
        ),
        (
            "HostRegexp(`^[a-z]+\\.example\\.com$`)",
            vec![req("GET api.example.com /"), req("GET API.Example.com /")],
            vec![req("GET a1.example.com /"), req("GET example.com /")],
        ),
        (
            // Anchored even when written without anchors.
            "HostRegexp(`[a-z]+\\.example\\.com`)",
            vec![req("GET api.example.com /")],
            vec![
                req("GET x.api.example.com.evil /"),
                req("GET 1.example.com /"),
            ],
        ),
        (
            "HostRegexp(`a|b`)",
            vec![req("GET a /"), req("GET b /")],
            vec![req("GET ab /"), req("GET xa /")],
        ),
        (
            "HostRegexp(`[a-z]{3}\\.io`)",
            vec![req("GET abc.io /")],
            vec![req("GET ab.io /")],
        ),
        (
            "HostRegexp(`{sub:[a-z]+}.example.com`)",
            vec![req("GET api.example.com /"), req("GET API.example.com /")],
            vec![req("GET apixexample.com /"), req("GET a.b.example.com /")],
        ),
        (
            "HostRegexp(`{sub}.example.com`, `example.org`)",
            vec![req("GET x-1.example.com /"), req("GET example.org /")],
            vec![req("GET a.b.example.com /"), req("GET .example.com /")],
        ),
    ]);
}

#[test]
fn paths() {
    check(vec![
        (
            "Path(`/a/b`)",
            vec![req("GET h /a/b"), req("GET h /a/b?x=1")],
            vec![req("GET h /a/b/"), req("GET h /a"), req("GET h /A/b")],
        ),
        (
            "Path(`/a`, `/b`)",
            vec![req("GET h /a"), req("GET h /b")],
            vec![req("GET h /c")],
        ),
        (
            "PathPrefix(`/api`)",
            vec![req("GET h /api"), req("GET h /api/x"), req("GET h /apix")],
            vec![req("GET h /ap"), req("GET h /x/api")],
        ),
        (
            "PathPrefix(`/`)",
            vec![req("GET h /"), req("GET h /anything")],
            vec![],
        ),
        (
            "PathRegexp(`/users/[0-9]+`)",
            vec![req("GET h /users/42"), req("GET h /users/42/posts")],
            vec![req("GET h /x/users/42"), req("GET h /users/")],
        ),
        (
            "PathRegexp(`^/v[12]/.*\\.json$`)",
            vec![req("GET h /v1/a.json"), req("GET h /v2/b/c.json")],
            vec![req("GET h /v3/a.json"), req("GET h /v1/a.jsonx")],
        ),
        (
            "Path(`/users/{id:[0-9]+}`)",
            vec![req("GET h /users/7")],
            vec![req("GET h /users/7/x"), req("GET h /users/x")],
        ),
        (
            "PathPrefix(`/users/{id}/`)",
            vec![req("GET h /users/abc/posts")],
            vec![
                req("GET h /users/a"),
                req("GET h /users//x"),
                req("GET h /x/users/a/b"),
            ],
        ),
        (
            "GRPCService(`pkg.Svc`)",
            vec![req("POST h /pkg.Svc/Get"), req("POST h /pkg.Svc/List")],
            vec![
                req("POST h /pkg.Svc2/Get"),
                req("POST h /pkg.Svc"),
                req("POST h /other.Svc/Get"),
            ],
        ),
        (
            "GRPCMethod(`pkg.Svc`, `Get`)",
            vec![req("POST h /pkg.Svc/Get")],
            vec![req("POST h /pkg.Svc/GetAll"), req("POST h /pkg.Svc/List")],
        ),
    ]);
}

#[test]
fn methods_and_client_ips() {
    check(vec![
        (
            "Method(`GET`)",
            vec![req("GET h /")],
            vec![req("POST h /"), req("get h /"), req("HEAD h /")],
        ),
        (
            // The rule's method is uppercased as Traefik does.
            "Method(`post`, `PUT`)",
            vec![req("POST h /"), req("PUT h /")],
            vec![req("post h /"), req("GET h /")],
        ),
        (
            "Method(`PURGE`)",
            vec![req("PURGE h /")],
            vec![req("GET h /")],
        ),
        (
            "ClientIP(`10.0.0.0/8`)",
            vec![
                req("GET h /").ip("10.1.2.3"),
                req("GET h /").ip("::ffff:10.9.9.9"),
            ],
            vec![req("GET h /").ip("11.0.0.1"), req("GET h /")],
        ),
        (
            "ClientIP(`192.0.2.1`, `2001:db8::/32`)",
            vec![req("GET h /"), req("GET h /").ip("2001:db8::5")],
            vec![
                req("GET h /").ip("192.0.2.2"),
                req("GET h /").ip("2001:db9::1"),
            ],
        ),
        (
            // Host bits in the network are ignored.
            "ClientIP(`10.1.2.3/16`)",
            vec![req("GET h /").ip("10.1.200.1")],
            vec![req("GET h /").ip("10.2.0.1")],
        ),
        (
            "ClientIP(`::1`)",
            vec![req("GET h /").ip("::1")],
            vec![req("GET h /").ip("127.0.0.1")],
        ),
    ]);
}
