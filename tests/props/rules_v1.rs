//! Traefik v1 rules: generated ones translate into rules that compile and match what
//! v1 meant (every `;` segment, any of its `,` values), whatever the matcher-name case.

use gantry::rules::translate_v1;
use proptest::prelude::*;
use proptest::sample::select;

use super::config;
use super::rules::{
    compiled, pick, request, some_of, Req, HEADER_NAMES, HEADER_VALUES, HOSTS, QUERY_KEYS,
    RULE_METHODS, RULE_PATHS,
};

/// A v1 matcher: `Name:value,value`.
#[derive(Debug, Clone)]
enum V1 {
    Host(Vec<String>),
    Path(Vec<String>),
    PathPrefix(Vec<String>),
    Method(Vec<String>),
    Headers(String, String),
    Query(Vec<(String, Option<String>)>),
}

impl V1 {
    fn render(&self, lower: bool) -> String {
        let (name, values) = match self {
            V1::Host(v) => ("Host", v.join(",")),
            V1::Path(v) => ("Path", v.join(",")),
            V1::PathPrefix(v) => ("PathPrefix", v.join(",")),
            V1::Method(v) => ("Method", v.join(",")),
            V1::Headers(n, v) => ("Headers", format!("{n},{v}")),
            V1::Query(pairs) => {
                let pairs: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| v.as_ref().map_or(k.clone(), |v| format!("{k}={v}")))
                    .collect();
                ("Query", pairs.join(","))
            }
        };
        let name = if lower {
            name.to_ascii_lowercase()
        } else {
            name.to_string()
        };
        format!("{name}:{values}")
    }

    /// Any of the values matches (Traefik v1 semantics).
    fn model(&self, r: &Req) -> bool {
        match self {
            V1::Host(v) => v.iter().any(|h| h.eq_ignore_ascii_case(&r.host)),
            V1::Path(v) => v.iter().any(|p| &r.path == p),
            V1::PathPrefix(v) => v.iter().any(|p| r.path.starts_with(p.as_str())),
            V1::Method(v) => v
                .iter()
                .any(|m| r.method.as_str() == m.to_ascii_uppercase()),
            V1::Headers(n, v) => r.header_is(n, v),
            V1::Query(pairs) => pairs.iter().any(|(k, v)| match v {
                None => r.params().iter().any(|(pk, _)| pk == k),
                Some(v) => r.params().iter().any(|(pk, pv)| pk == k && pv == v),
            }),
        }
    }
}

fn v1_matcher() -> impl Strategy<Value = V1> {
    let nonempty_value = select(&["1", "2"][..]).prop_map(str::to_string);
    let pair = (pick(QUERY_KEYS), proptest::option::of(nonempty_value));
    prop_oneof![
        some_of(HOSTS).prop_map(V1::Host),
        some_of(RULE_PATHS).prop_map(V1::Path),
        some_of(RULE_PATHS).prop_map(V1::PathPrefix),
        some_of(RULE_METHODS).prop_map(V1::Method),
        (pick(HEADER_NAMES), pick(HEADER_VALUES)).prop_map(|(n, v)| V1::Headers(n, v)),
        proptest::collection::vec(pair, 1..3).prop_map(V1::Query),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// A v1 rule from the grammar translates into a rule that compiles and matches
    /// what v1 meant: every `;` segment, any of its `,` values.
    #[test]
    fn v1_rules_translate_to_what_they_meant(
        segments in proptest::collection::vec(v1_matcher(), 1..4),
        lower in any::<bool>(),
        reqs in proptest::collection::vec(request(), 1..12),
    ) {
        let text = segments.iter().map(|s| s.render(lower)).collect::<Vec<_>>().join(";");
        let v2 = translate_v1(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?} does not translate: {e}")))?;
        let m = compiled(&v2)?;
        for req in &reqs {
            let want = segments.iter().all(|s| s.model(req));
            prop_assert_eq!(m.matches(&req.info()), want, "{} → {} on {:?}", text, v2, req);
        }
    }
}
