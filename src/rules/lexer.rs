//! Tokenizer shared by the rule language and the constraint language.
//!
//! It owns the lexical level only: identifiers, punctuation, `&&`, `||`, `!`
//! and string literals (backticks, or double quotes with `\"` and `\\`
//! escapes). Every token carries its 1-based column counted in characters, so
//! errors can point at it whatever the input's encoding width.

use super::RuleError;

/// One lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A matcher or function name such as `Host`.
    Ident(String),
    /// A string literal's decoded contents.
    Str(String),
    LParen,
    RParen,
    Comma,
    And,
    Or,
    Not,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::LParen => "`(`".to_string(),
            Tok::RParen => "`)`".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::And => "`&&`".to_string(),
            Tok::Or => "`||`".to_string(),
            Tok::Not => "`!`".to_string(),
        }
    }
}

/// A token with the column of its first character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub column: usize,
}

/// Pull-based lexer: the parser asks for tokens one at a time so that the
/// first error reported is the leftmost one, lexical or syntactic.
pub(crate) struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    /// Column of the next character to be read.
    column: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(input: &'a str) -> Self {
        Lexer {
            chars: input.chars().peekable(),
            column: 1,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        self.column += 1;
        Some(c)
    }

    /// Column just past the last character read (where "end of rule" is).
    pub(crate) fn column(&self) -> usize {
        self.column
    }

    /// The next token, `Ok(None)` at end of input.
    pub(crate) fn next_token(&mut self) -> Result<Option<Token>, RuleError> {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.bump();
        }
        let column = self.column;
        let Some(c) = self.bump() else {
            return Ok(None);
        };
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '!' => Tok::Not,
            '&' | '|' => {
                if self.chars.peek() == Some(&c) {
                    self.bump();
                    if c == '&' {
                        Tok::And
                    } else {
                        Tok::Or
                    }
                } else {
                    return Err(err(
                        column,
                        format!("unexpected `{c}` (did you mean `{c}{c}`?)"),
                    ));
                }
            }
            '`' => Tok::Str(self.backtick(column)?),
            '"' => Tok::Str(self.double_quoted(column)?),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::from(c);
                while let Some(&c) = self.chars.peek() {
                    if !(c.is_ascii_alphanumeric() || c == '_') {
                        break;
                    }
                    name.push(c);
                    self.bump();
                }
                Tok::Ident(name)
            }
            ':' => {
                // The commonest way to get here is pasting a v1 `Host:a.com` rule.
                return Err(err(
                    column,
                    "unexpected `:` (Traefik v1 syntax? write `Host(`a.com`)`)".to_string(),
                ));
            }
            '\'' => {
                return Err(err(
                    column,
                    "unexpected `'`: strings are quoted with backticks or double quotes"
                        .to_string(),
                ));
            }
            other => {
                return Err(err(column, format!("unexpected character {other:?}")));
            }
        };
        Ok(Some(Token { tok, column }))
    }

    fn backtick(&mut self, start: usize) -> Result<String, RuleError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('`') => return Ok(out),
                Some(c) => out.push(c),
                None => return Err(unterminated(start)),
            }
        }
    }

    fn double_quoted(&mut self, start: usize) -> Result<String, RuleError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c @ ('"' | '\\')) => out.push(c),
                    // Other backslashes are kept as written so that regexes
                    // such as "\d+" mean what they look like.
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => return Err(unterminated(start)),
                },
                Some(c) => out.push(c),
                None => return Err(unterminated(start)),
            }
        }
    }
}

fn err(column: usize, message: String) -> RuleError {
    RuleError { column, message }
}

fn unterminated(column: usize) -> RuleError {
    err(column, "unterminated string".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_all(input: &str) -> Result<Vec<(Tok, usize)>, RuleError> {
        let mut lexer = Lexer::new(input);
        let mut out = Vec::new();
        while let Some(t) = lexer.next_token()? {
            out.push((t.tok, t.column));
        }
        Ok(out)
    }

    fn s(v: &str) -> Tok {
        Tok::Str(v.to_string())
    }

    fn id(v: &str) -> Tok {
        Tok::Ident(v.to_string())
    }

    #[test]
    fn tokens_and_columns() {
        let cases: Vec<(&str, Vec<(Tok, usize)>)> = vec![
            ("", vec![]),
            ("   \t\n", vec![]),
            (
                "Host(`a`)",
                vec![
                    (id("Host"), 1),
                    (Tok::LParen, 5),
                    (s("a"), 6),
                    (Tok::RParen, 9),
                ],
            ),
            (
                " !a && b||c ,",
                vec![
                    (Tok::Not, 2),
                    (id("a"), 3),
                    (Tok::And, 5),
                    (id("b"), 8),
                    (Tok::Or, 9),
                    (id("c"), 11),
                    (Tok::Comma, 13),
                ],
            ),
            (r#""a\"b\\c\d""#, vec![(s(r#"a"b\c\d"#), 1)]),
            ("`a\\\"`", vec![(s("a\\\""), 1)]),
            // Columns count characters, not bytes.
            ("`é` x", vec![(s("é"), 1), (id("x"), 5)]),
            ("_x1 Y_2", vec![(id("_x1"), 1), (id("Y_2"), 5)]),
            ("\"\"", vec![(s(""), 1)]),
        ];
        for (input, want) in cases {
            assert_eq!(lex_all(input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn lexical_errors() {
        let cases = [
            ("`abc", 1, "unterminated string"),
            ("a \"abc", 3, "unterminated string"),
            ("\"ab\\", 1, "unterminated string"),
            ("\"ab\\\"", 1, "unterminated string"),
            ("a & b", 3, "unexpected `&` (did you mean `&&`?)"),
            ("a | b", 3, "unexpected `|` (did you mean `||`?)"),
            ("é$", 1, "unexpected character 'é'"),
            ("a $", 3, "unexpected character '$'"),
            ("Host:a", 5, "unexpected `:`"),
            ("'a'", 1, "unexpected `'`"),
        ];
        for (input, column, message) in cases {
            let got = lex_all(input).expect_err(input);
            assert_eq!(got.column, column, "input {input:?}: {got}");
            assert!(got.message.starts_with(message), "input {input:?}: {got}");
        }
    }
}
