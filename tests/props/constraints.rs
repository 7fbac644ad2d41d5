//! Provider constraints: generated ones parse and match what a model of them says.

use std::collections::BTreeMap;

use gantry::rules::constraints::Constraint;
use proptest::prelude::*;
use proptest::sample::select;

use super::config;
use super::rules::pick;

const LABEL_KEYS: &[&str] = &["team", "env", "traefik.enable"];
const LABEL_VALUES: &[&str] = &["payments", "dev", "dev-1", "prod", "true"];

#[derive(Debug, Clone)]
enum Cons {
    Label(String, String),
    /// Key and a regex that must match the whole value.
    LabelRegex(String, &'static str),
    Not(Box<Cons>),
    And(Vec<Cons>),
    Or(Vec<Cons>),
}

impl Cons {
    fn render(&self) -> String {
        let wrap = |c: &Cons| match c {
            Cons::And(_) | Cons::Or(_) => format!("({})", c.render()),
            _ => c.render(),
        };
        match self {
            Cons::Label(k, v) => format!("Label(`{k}`, `{v}`)"),
            Cons::LabelRegex(k, re) => format!("LabelRegex(`{k}`, `{re}`)"),
            Cons::Not(c) => format!("!{}", wrap(c)),
            Cons::And(cs) => cs.iter().map(wrap).collect::<Vec<_>>().join(" && "),
            Cons::Or(cs) => cs.iter().map(wrap).collect::<Vec<_>>().join(" || "),
        }
    }

    fn model(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Cons::Label(k, v) => labels.get(k) == Some(v),
            Cons::LabelRegex(k, re) => labels.get(k).is_some_and(|v| match *re {
                "dev.*" => v.starts_with("dev"),
                "p[a-z]+" => {
                    v.len() > 1
                        && v.starts_with('p')
                        && v[1..].bytes().all(|b| b.is_ascii_lowercase())
                }
                // `dev|prod` is anchored as a whole: exactly one of the two.
                "dev|prod" => v == "dev" || v == "prod",
                other => unreachable!("no model for {other}"),
            }),
            Cons::Not(c) => !c.model(labels),
            Cons::And(cs) => cs.iter().all(|c| c.model(labels)),
            Cons::Or(cs) => cs.iter().any(|c| c.model(labels)),
        }
    }
}

fn constraint() -> impl Strategy<Value = Cons> {
    let leaf = prop_oneof![
        (pick(LABEL_KEYS), pick(LABEL_VALUES)).prop_map(|(k, v)| Cons::Label(k, v)),
        (
            pick(LABEL_KEYS),
            select(&["dev.*", "p[a-z]+", "dev|prod"][..])
        )
            .prop_map(|(k, re)| Cons::LabelRegex(k, re)),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| Cons::Not(Box::new(c))),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Cons::And),
            proptest::collection::vec(inner, 2..4).prop_map(Cons::Or),
        ]
    })
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(pick(LABEL_KEYS), pick(LABEL_VALUES), 0..4)
}

proptest! {
    #![proptest_config(config(512))]

    /// A constraint from the grammar parses and matches what the model says.
    #[test]
    fn constraints_match_what_the_model_says(
        c in constraint(),
        tasks in proptest::collection::vec(labels(), 1..8),
    ) {
        let text = c.render();
        let parsed = Constraint::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?} does not parse: {e}")))?;
        for labels in &tasks {
            prop_assert_eq!(parsed.matches(labels), c.model(labels), "{} on {:?}", text, labels);
        }
    }
}
