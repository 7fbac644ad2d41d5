//! Traefik provider constraints over a task's labels, such as
//! ``Label(`team`, `payments`) && !LabelRegex(`env`, `dev.*`)``.
//!
//! The syntax is the rule language's (same lexer and parser, same error
//! columns); only the function names differ: `Label(key, value)` and
//! `LabelRegex(key, regex)`, the regex matching the whole label value.

use std::collections::BTreeMap;

use regex::Regex;

use super::parse::{self, Arg, Call, Expr};
use super::{regex_error, RuleError};

/// A compiled constraint expression.
#[derive(Debug, Clone)]
pub struct Constraint {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Label(String, String),
    /// Anchored at both ends.
    LabelRegex(String, Regex),
}

impl Constraint {
    /// Parses a constraint expression. Function names are case-insensitive.
    pub fn parse(expr: &str) -> Result<Constraint, RuleError> {
        let ast = parse::parse(expr)?;
        Ok(Constraint {
            root: compile(&ast)?,
        })
    }

    /// Whether a task with these labels satisfies the constraint.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.root.matches(labels)
    }
}

impl Node {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Node::And(nodes) => nodes.iter().all(|n| n.matches(labels)),
            Node::Or(nodes) => nodes.iter().any(|n| n.matches(labels)),
            Node::Not(node) => !node.matches(labels),
            Node::Label(key, value) => labels.get(key) == Some(value),
            Node::LabelRegex(key, re) => labels.get(key).is_some_and(|v| re.is_match(v)),
        }
    }
}

fn compile(expr: &Expr) -> Result<Node, RuleError> {
    let all = |items: &[Expr]| items.iter().map(compile).collect::<Result<Vec<_>, _>>();
    Ok(match expr {
        Expr::Call(call) => function(call)?,
        Expr::Not(inner) => Node::Not(Box::new(compile(inner)?)),
        Expr::And(items) => Node::And(all(items)?),
        Expr::Or(items) => Node::Or(all(items)?),
    })
}

fn function(call: &Call) -> Result<Node, RuleError> {
    let regex = if call.name.eq_ignore_ascii_case("Label") {
        false
    } else if call.name.eq_ignore_ascii_case("LabelRegex") {
        true
    } else {
        return Err(RuleError {
            column: call.column,
            message: format!(
                "unknown constraint `{}`; known constraints: Label, LabelRegex",
                call.name
            ),
        });
    };
    let name = if regex { "LabelRegex" } else { "Label" };
    let (key, value) = match call.args.as_slice() {
        [key, value] => (key, value),
        args => {
            return Err(RuleError {
                column: args.get(2).map_or(call.column, |a| a.column),
                message: format!(
                    "`{name}` takes 2 arguments (key, value), got {}",
                    args.len()
                ),
            })
        }
    };
    let empty = |a: &Arg| RuleError {
        column: a.column,
        message: format!("`{name}`: empty argument where a value is required"),
    };
    if key.value.is_empty() {
        return Err(empty(key));
    }
    if !regex {
        return Ok(Node::Label(key.value.clone(), value.value.clone()));
    }
    if value.value.is_empty() {
        return Err(empty(value));
    }
    // Validate the pattern alone first so the message describes what was
    // written, then anchor it: the whole value must match.
    let re = Regex::new(&value.value)
        .and_then(|_| Regex::new(&format!("^(?:{})$", value.value)))
        .map_err(|e| RuleError {
            column: value.column,
            message: format!("`{name}`: invalid regex: {}", regex_error(&e)),
        })?;
    Ok(Node::LabelRegex(key.value.clone(), re))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn evaluation() {
        let task = labels(&[
            ("team", "payments"),
            ("env", "prod-eu"),
            ("empty", ""),
            ("traefik.enable", "true"),
        ]);
        let cases = [
            ("Label(`team`, `payments`)", true),
            ("Label(`team`, `Payments`)", false),
            ("Label(`missing`, ``)", false),
            ("Label(`empty`, ``)", true),
            ("label(`traefik.enable`, \"true\")", true),
            ("LabelRegex(`env`, `prod-.*`)", true),
            ("LabelRegex(`env`, `prod`)", false),
            ("LabelRegex(`env`, `eu`)", false),
            ("LabelRegex(`env`, `.*eu`)", true),
            ("LabelRegex(`env`, `prod|prod-eu`)", true),
            ("LabelRegex(`missing`, `.*`)", false),
            ("!Label(`team`, `ops`)", true),
            ("!Label(`team`, `payments`)", false),
            ("Label(`team`, `payments`) && Label(`env`, `prod-eu`)", true),
            ("Label(`team`, `payments`) && Label(`env`, `dev`)", false),
            ("Label(`team`, `ops`) || Label(`env`, `prod-eu`)", true),
            ("Label(`team`, `ops`) || Label(`env`, `dev`)", false),
            (
                "Label(`team`, `ops`) || Label(`team`, `payments`) && !Label(`env`, `dev`)",
                true,
            ),
            (
                "(Label(`team`, `ops`) || Label(`team`, `payments`)) && Label(`env`, `dev`)",
                false,
            ),
        ];
        for (expr, want) in cases {
            let c = Constraint::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(c.matches(&task), want, "{expr}");
        }
        let none = labels(&[]);
        let c = Constraint::parse("!Label(`a`, `b`)").expect("parses");
        assert!(c.matches(&none));
    }

    #[test]
    fn errors() {
        let cases = [
            ("", 1, "empty rule"),
            (
                "Host(`a`)",
                1,
                "unknown constraint `Host`; known constraints: Label, LabelRegex",
            ),
            (
                "Label(`a`)",
                1,
                "`Label` takes 2 arguments (key, value), got 1",
            ),
            (
                "Label(`a`, `b`, `c`)",
                17,
                "`Label` takes 2 arguments (key, value), got 3",
            ),
            ("Label(``, `b`)", 7, "`Label`: empty argument"),
            ("LabelRegex(`a`, ``)", 17, "`LabelRegex`: empty argument"),
            (
                "LabelRegex(`a`, `(`)",
                17,
                "`LabelRegex`: invalid regex: unclosed group",
            ),
            ("Label(`a`, `b`) &&", 19, "expected a matcher"),
            ("Label(`a`, `b`) Label(`c`, `d`)", 17, "unexpected `Label`"),
            ("Label(`a`, `b) ", 12, "unterminated string"),
            (
                "Label(`a`, `b`) && LabelX(`a`, `b`)",
                20,
                "unknown constraint `LabelX`",
            ),
        ];
        for (expr, column, message) in cases {
            let got = Constraint::parse(expr).expect_err(expr);
            assert_eq!(got.column, column, "{expr}: {got}");
            assert!(got.message.starts_with(message), "{expr}: {got}");
        }
    }
}
