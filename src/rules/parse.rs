//! Recursive-descent parser from tokens to a language-neutral AST.
//!
//! The AST only knows calls with string arguments and the `!`, `&&`, `||`
//! combinators (`&&` binds tighter than `||`); which call names exist and
//! what their arguments mean is decided later by each language (HTTP rules in
//! `compile.rs`, provider constraints in `constraints.rs`).

use super::lexer::{Lexer, Tok, Token};
use super::RuleError;

/// How deeply `(` and `!` may nest. The parser and the evaluator recurse, so
/// this bound keeps hostile input from overflowing the stack.
pub(crate) const MAX_DEPTH: usize = 64;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    Call(Call),
    Not(Box<Expr>),
    /// Two or more operands.
    And(Vec<Expr>),
    /// Two or more operands.
    Or(Vec<Expr>),
}

/// `Name(args...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub name: String,
    pub column: usize,
    pub args: Vec<Arg>,
}

/// A string argument with the column of its opening quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arg {
    pub value: String,
    pub column: usize,
}

/// Parses a whole expression; anything left over is an error.
pub(crate) fn parse(input: &str) -> Result<Expr, RuleError> {
    let mut p = Parser {
        lexer: Lexer::new(input),
        peeked: None,
        depth: 0,
    };
    if p.peek()?.is_none() {
        return Err(RuleError {
            column: 1,
            message: "empty rule".to_string(),
        });
    }
    let expr = p.or()?;
    match p.next()? {
        None => Ok(expr),
        Some(t) => Err(RuleError {
            column: t.column,
            message: format!(
                "unexpected {} after a complete expression (missing `&&` or `||`?)",
                t.tok.describe()
            ),
        }),
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    /// One token of lookahead; `Some(None)` means end of input was peeked.
    peeked: Option<Option<Token>>,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&mut self) -> Result<Option<&Token>, RuleError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().and_then(Option::as_ref))
    }

    fn next(&mut self) -> Result<Option<Token>, RuleError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }

    fn peek_is(&mut self, tok: &Tok) -> Result<bool, RuleError> {
        Ok(self.peek()?.is_some_and(|t| &t.tok == tok))
    }

    /// An error at `found`, or at the end of input when there is no token.
    fn error_at(&self, found: Option<&Token>, message: impl FnOnce(&str) -> String) -> RuleError {
        match found {
            Some(t) => RuleError {
                column: t.column,
                message: message(&t.tok.describe()),
            },
            None => RuleError {
                column: self.lexer.column(),
                message: message("end of rule"),
            },
        }
    }

    fn enter(&mut self, column: usize) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(RuleError {
                column,
                message: format!("expression nests deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut items = vec![self.and()?];
        while self.peek_is(&Tok::Or)? {
            self.next()?;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut items = vec![self.unary()?];
        while self.peek_is(&Tok::And)? {
            self.next()?;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, RuleError> {
        let token = self.next()?;
        match token {
            Some(Token {
                tok: Tok::Not,
                column,
            }) => {
                self.enter(column)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Some(Token {
                tok: Tok::LParen,
                column,
            }) => {
                self.enter(column)?;
                let inner = self.or()?;
                let close = self.next()?;
                if !matches!(
                    close,
                    Some(Token {
                        tok: Tok::RParen,
                        ..
                    })
                ) {
                    return Err(self.error_at(close.as_ref(), |found| {
                        format!("missing `)` to close the `(` at column {column}, found {found}")
                    }));
                }
                self.depth -= 1;
                Ok(inner)
            }
            Some(Token {
                tok: Tok::Ident(name),
                column,
            }) => self.call(name, column),
            other => Err(self.error_at(other.as_ref(), |found| {
                format!("expected a matcher such as `Host(...)`, `!` or `(`, found {found}")
            })),
        }
    }

    fn call(&mut self, name: String, column: usize) -> Result<Expr, RuleError> {
        let open = self.next()?;
        if !matches!(
            open,
            Some(Token {
                tok: Tok::LParen,
                ..
            })
        ) {
            return Err(self.error_at(open.as_ref(), |found| {
                format!("expected `(` after `{name}`, found {found}")
            }));
        }
        let mut args = Vec::new();
        loop {
            // `)` may follow `(` directly or a trailing comma, as in Go calls.
            if self.peek_is(&Tok::RParen)? {
                self.next()?;
                break;
            }
            match self.next()? {
                Some(Token {
                    tok: Tok::Str(value),
                    column,
                }) => args.push(Arg { value, column }),
                other => {
                    return Err(self.error_at(other.as_ref(), |found| {
                        let quoted = "in backticks or double quotes";
                        format!("expected a string argument of `{name}` {quoted}, found {found}")
                    }))
                }
            }
            match self.next()? {
                Some(Token {
                    tok: Tok::Comma, ..
                }) => {}
                Some(Token {
                    tok: Tok::RParen, ..
                }) => break,
                other => {
                    return Err(self.error_at(other.as_ref(), |found| {
                        format!("missing `)` after the arguments of `{name}`, found {found}")
                    }))
                }
            }
        }
        Ok(Expr::Call(Call { name, column, args }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, column: usize, args: &[(&str, usize)]) -> Expr {
        Expr::Call(Call {
            name: name.to_string(),
            column,
            args: args
                .iter()
                .map(|&(v, c)| Arg {
                    value: v.to_string(),
                    column: c,
                })
                .collect(),
        })
    }

    #[test]
    fn shapes() {
        let a = || call("A", 1, &[]);
        let cases = vec![
            ("A()", a()),
            ("((A()))", call("A", 3, &[])),
            ("A(`x`, \"y\",)", call("A", 1, &[("x", 3), ("y", 8)])),
            ("!A()", Expr::Not(Box::new(call("A", 2, &[])))),
            (
                "!!A()",
                Expr::Not(Box::new(Expr::Not(Box::new(call("A", 3, &[]))))),
            ),
            (
                "A() && B() || C()",
                Expr::Or(vec![
                    Expr::And(vec![a(), call("B", 8, &[])]),
                    call("C", 15, &[]),
                ]),
            ),
            (
                "A() || B() && C()",
                Expr::Or(vec![
                    a(),
                    Expr::And(vec![call("B", 8, &[]), call("C", 15, &[])]),
                ]),
            ),
            (
                "A() && (B() || C())",
                Expr::And(vec![
                    a(),
                    Expr::Or(vec![call("B", 9, &[]), call("C", 16, &[])]),
                ]),
            ),
            (
                "!A() && B()",
                Expr::And(vec![
                    Expr::Not(Box::new(call("A", 2, &[]))),
                    call("B", 9, &[]),
                ]),
            ),
            (
                "A()&&B()&&C()",
                Expr::And(vec![a(), call("B", 6, &[]), call("C", 11, &[])]),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn syntax_errors() {
        let cases = [
            ("", 1, "empty rule"),
            ("   ", 1, "empty rule"),
            ("A() B()", 5, "unexpected `B` after a complete expression"),
            ("A())", 4, "unexpected `)` after a complete expression"),
            ("A", 2, "expected `(` after `A`, found end of rule"),
            ("A `x`", 3, "expected `(` after `A`, found a string"),
            ("A(x)", 3, "expected a string argument of `A`"),
            (
                "A(`x` `y`)",
                7,
                "missing `)` after the arguments of `A`, found a string",
            ),
            (
                "A(`x`",
                6,
                "missing `)` after the arguments of `A`, found end of rule",
            ),
            ("A(,)", 3, "expected a string argument of `A`"),
            ("A(`x`,,)", 7, "expected a string argument of `A`"),
            (
                "(A()",
                5,
                "missing `)` to close the `(` at column 1, found end of rule",
            ),
            (
                "(A() B()",
                6,
                "missing `)` to close the `(` at column 1, found `B`",
            ),
            (
                "A() &&",
                7,
                "expected a matcher such as `Host(...)`, `!` or `(`, found end",
            ),
            (
                "|| A()",
                1,
                "expected a matcher such as `Host(...)`, `!` or `(`, found `||`",
            ),
            ("A() && || B()", 8, "expected a matcher"),
            ("()", 2, "expected a matcher"),
            (
                "`x`",
                1,
                "expected a matcher such as `Host(...)`, `!` or `(`, found a string",
            ),
            ("A(`x) && B()", 3, "unterminated string"),
            ("A() $ (", 5, "unexpected character '$'"),
        ];
        for (input, column, message) in cases {
            let got = parse(input).expect_err(input);
            assert_eq!(got.column, column, "input {input:?}: {got}");
            assert!(got.message.starts_with(message), "input {input:?}: {got}");
        }
    }

    #[test]
    fn nesting_limit() {
        let ok = format!("{}A(){}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!(
            "{}A(){}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let e = parse(&deep).expect_err("too deep");
        assert_eq!(e.column, MAX_DEPTH + 1);
        let nots = format!("{}A()", "!".repeat(100_000));
        assert_eq!(parse(&nots).expect_err("too deep").column, MAX_DEPTH + 1);
        // Long flat chains do not recurse and are fine.
        let chain = vec!["A()"; 10_000].join(" || ");
        assert!(matches!(parse(&chain), Ok(Expr::Or(v)) if v.len() == 10_000));
    }
}
