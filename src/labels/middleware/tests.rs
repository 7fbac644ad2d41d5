use super::*;

/// Reads `labels` (`<name>.<type>.<option>=value`, below `http.middlewares.`) into one
/// definition per name.
fn read(labels: &[(&str, &str)]) -> BTreeMap<String, MiddlewareLabels> {
    let mut out: BTreeMap<String, MiddlewareLabels> = BTreeMap::new();
    for (key, value) in labels {
        let full = format!("traefik.http.middlewares.{key}");
        let segments: Vec<&str> = key.split('.').collect();
        out.entry(segments[0].to_string())
            .or_default()
            .add(&full, &segments[1..], value);
    }
    out
}

/// The label examples of Traefik v3's middleware documentation, one or more per
/// type: each is read with its type and options and no problem.
#[test]
fn traefiks_documented_examples_are_read() {
    let cases: &[(&str, &str, &str)] = &[
        ("add-foo.addprefix.prefix", "/foo", "addPrefix"),
        (
            "test-auth.basicauth.users",
            "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/",
            "basicAuth",
        ),
        (
            "test-auth.basicauth.usersfile",
            "/path/to/my/usersfile",
            "basicAuth",
        ),
        ("test-auth.basicauth.realm", "MyRealm", "basicAuth"),
        (
            "test-auth.basicauth.headerField",
            "X-WebAuth-User",
            "basicAuth",
        ),
        ("test-auth.basicauth.removeheader", "true", "basicAuth"),
        (
            "limit.buffering.maxRequestBodyBytes",
            "2000000",
            "buffering",
        ),
        (
            "secured.chain.middlewares",
            "https-only,known-ips,auth-users",
            "chain",
        ),
        (
            "latency-check.circuitbreaker.expression",
            "LatencyAtQuantileMS(50.0) > 100",
            "circuitBreaker",
        ),
        (
            "latency-check.circuitbreaker.checkperiod",
            "100ms",
            "circuitBreaker",
        ),
        ("test-compress.compress", "true", "compress"),
        (
            "test-compress.compress.excludedcontenttypes",
            "text/event-stream",
            "compress",
        ),
        ("autodetect.contenttype", "true", "contentType"),
        ("test-errors.errors.status", "500,501,503,505-599", "errors"),
        ("test-errors.errors.service", "serviceError", "errors"),
        ("test-errors.errors.query", "/{status}.html", "errors"),
        (
            "test-fwd.forwardauth.address",
            "https://example.com/auth",
            "forwardAuth",
        ),
        (
            "test-fwd.forwardauth.trustForwardHeader",
            "true",
            "forwardAuth",
        ),
        (
            "test-fwd.forwardauth.authResponseHeaders",
            "X-Auth-User, X-Secret",
            "forwardAuth",
        ),
        (
            "test-fwd.forwardauth.tls.ca",
            "path/to/local.crt",
            "forwardAuth",
        ),
        ("test-grpcweb.grpcweb.allowOrigins", "*", "grpcWeb"),
        (
            "testHeader.headers.customrequestheaders.X-Script-Name",
            "test",
            "headers",
        ),
        (
            "testHeader.headers.customresponseheaders.X-Custom-Response-Header",
            "",
            "headers",
        ),
        (
            "testHeader.headers.accesscontrolallowmethods",
            "GET,OPTIONS,PUT",
            "headers",
        ),
        (
            "testHeader.headers.accesscontrolalloworiginlist",
            "https://foo.bar.org,https://example.org",
            "headers",
        ),
        ("testHeader.headers.accesscontrolmaxage", "100", "headers"),
        ("testHeader.headers.addvaryheader", "true", "headers"),
        ("testHeader.headers.framedeny", "true", "headers"),
        ("testHeader.headers.browserxssfilter", "true", "headers"),
        (
            "test-ipallowlist.ipallowlist.sourcerange",
            "127.0.0.1/32, 192.168.1.7",
            "ipAllowList",
        ),
        (
            "test-ipallowlist.ipallowlist.ipstrategy.depth",
            "2",
            "ipAllowList",
        ),
        (
            "test-ipallowlist.ipallowlist.ipstrategy.excludedips",
            "127.0.0.1/32, 192.168.1.7",
            "ipAllowList",
        ),
        (
            "test-ipwhitelist.ipwhitelist.sourcerange",
            "127.0.0.1/32",
            "ipWhiteList",
        ),
        ("test-inflightreq.inflightreq.amount", "10", "inFlightReq"),
        (
            "test-inflightreq.inflightreq.sourcecriterion.ipstrategy.depth",
            "2",
            "inFlightReq",
        ),
        (
            "test-inflightreq.inflightreq.sourcecriterion.requestheadername",
            "username",
            "inFlightReq",
        ),
        (
            "test-inflightreq.inflightreq.sourcecriterion.requesthost",
            "true",
            "inFlightReq",
        ),
        (
            "test-passtlsclientcert.passtlsclientcert.pem",
            "true",
            "passTLSClientCert",
        ),
        (
            "test-passtlsclientcert.passtlsclientcert.info.subject.commonname",
            "true",
            "passTLSClientCert",
        ),
        ("test-ratelimit.ratelimit.average", "100", "rateLimit"),
        ("test-ratelimit.ratelimit.burst", "50", "rateLimit"),
        ("test-ratelimit.ratelimit.period", "1m", "rateLimit"),
        (
            "test-ratelimit.ratelimit.sourcecriterion.ipstrategy.depth",
            "2",
            "rateLimit",
        ),
        (
            "test-ratelimit.ratelimit.redis.endpoints",
            "127.0.0.1:6379",
            "rateLimit",
        ),
        (
            "test-redirectregex.redirectregex.regex",
            "^http://localhost/(.*)",
            "redirectRegex",
        ),
        (
            "test-redirectregex.redirectregex.replacement",
            "http://mydomain/${1}",
            "redirectRegex",
        ),
        (
            "test-redirectscheme.redirectscheme.scheme",
            "https",
            "redirectScheme",
        ),
        (
            "test-redirectscheme.redirectscheme.permanent",
            "true",
            "redirectScheme",
        ),
        (
            "test-redirectscheme.redirectscheme.port",
            "443",
            "redirectScheme",
        ),
        ("test-replacepath.replacepath.path", "/foo", "replacePath"),
        (
            "test-replacepathregex.replacepathregex.regex",
            "^/foo/(.*)",
            "replacePathRegex",
        ),
        (
            "test-replacepathregex.replacepathregex.replacement",
            "/bar/$1",
            "replacePathRegex",
        ),
        ("test-retry.retry.attempts", "4", "retry"),
        ("test-retry.retry.initialinterval", "100ms", "retry"),
        (
            "test-stripprefix.stripprefix.prefixes",
            "/foobar,/fiibar",
            "stripPrefix",
        ),
        (
            "test-stripprefixregex.stripprefixregex.regex",
            "/foo/[a-z0-9]+/[0-9]+/",
            "stripPrefixRegex",
        ),
        (
            "test-digest.digestauth.users",
            "test:traefik:a2688e031edb4be6a3797f3882655c05",
            "digestAuth",
        ),
    ];
    for (key, value, kind) in cases {
        let read = read(&[(key, value)]);
        let (_, m) = read.iter().next().unwrap();
        assert!(m.problems.is_empty(), "{key}={value}: {:?}", m.problems);
        assert_eq!(m.kind.as_ref().map(|k| k.0), Some(*kind), "{key}");
        let option = key.splitn(3, '.').nth(2);
        assert_eq!(m.options.len(), usize::from(option.is_some()), "{key}");
        if option.is_some() {
            assert_eq!(m.options.values().next().unwrap().value, *value, "{key}");
        }
    }
}

#[test]
fn options_match_in_any_case_and_map_entries_keep_their_names() {
    let read = read(&[
        ("h.Headers.CustomRequestHeaders.X-Request-Id", "abc"),
        ("h.headers.STSSeconds", "31536000"),
        ("h.headers.customResponseHeaders.X.Dotted", "1"),
    ]);
    let h = &read["h"];
    assert!(h.problems.is_empty(), "{:?}", h.problems);
    let keys: Vec<&str> = h.options.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "customrequestheaders.X-Request-Id",
            "customresponseheaders.X.Dotted",
            "stsseconds"
        ]
    );
}

#[test]
fn an_unknown_type_or_option_is_an_error_naming_its_label() {
    let read = read(&[
        ("a.ratelimitt.average", "10"),
        ("b.ratelimit.avrage", "10"),
        ("c.headers.customrequestheaders", "X-A:1"),
        ("d.stripprefix.prefixes.extra", "/a"),
    ]);
    let only = |name: &str| {
        let p = &read[name].problems;
        assert_eq!(p.len(), 1, "{name}: {p:?}");
        p[0].clone()
    };
    let a = only("a");
    assert_eq!(
        a.label.as_deref(),
        Some("traefik.http.middlewares.a.ratelimitt.average")
    );
    assert!(
        a.message.contains("unknown middleware type \"ratelimitt\""),
        "{}",
        a.message
    );
    assert!(
        a.message.contains("rateLimit"),
        "lists the types: {}",
        a.message
    );
    let b = only("b");
    assert!(
        b.message
            .contains("unknown option \"avrage\" of middleware type rateLimit"),
        "{}",
        b.message
    );
    assert!(
        b.message.contains("average"),
        "lists the options: {}",
        b.message
    );
    // A map needs the entry's name.
    assert!(only("c").message.contains("unknown option"));
    assert!(only("d").message.contains("unknown option"));
    assert!(read
        .values()
        .all(|m| m.problems.iter().all(Problem::is_error)));
}

#[test]
fn one_middleware_has_one_type_and_each_option_once() {
    let read = read(&[
        ("m.stripprefix.prefixes", "/a"),
        ("m.addprefix.prefix", "/b"),
        ("n.ratelimit.average", "10"),
        ("n.RateLimit.Average", "20"),
    ]);
    let m = &read["m"];
    assert_eq!(m.kind.as_ref().map(|k| k.0), Some("stripPrefix"));
    assert_eq!(m.problems.len(), 1);
    assert!(
        m.problems[0].message.contains("one type"),
        "{}",
        m.problems[0].message
    );
    let n = &read["n"];
    assert_eq!(n.problems.len(), 1);
    assert!(
        n.problems[0].message.contains("set twice"),
        "{}",
        n.problems[0].message
    );
    assert_eq!(n.options["average"].value, "10");
}

#[test]
fn a_router_lists_middlewares_in_order() {
    assert_eq!(
        parse_list(" auth@file, ratelimit ,auth@file").unwrap(),
        ["auth@file", "ratelimit", "auth@file"]
    );
    for bad in ["", "a,,b", "a@", "@file", "a@b@c"] {
        assert!(parse_list(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn every_type_has_a_distinct_name_and_known_support() {
    let mut names: Vec<String> = KINDS.iter().map(|k| k.name.to_ascii_lowercase()).collect();
    names.sort();
    let all = names.len();
    names.dedup();
    assert_eq!(names.len(), all);
    for k in KINDS {
        assert_eq!(
            kind(&k.name.to_ascii_uppercase()).map(|f| f.name),
            Some(k.name)
        );
    }
    assert!(matches!(
        kind("grpcweb").unwrap().support,
        Support::Refused(_)
    ));
    assert!(matches!(
        kind("digestauth").unwrap().support,
        Support::Refused(_)
    ));
}
