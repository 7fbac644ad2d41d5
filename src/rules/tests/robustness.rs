//! No input makes the parsers panic, and every successful v1 translation
//! compiles. Inputs are random text and random sequences of the language's
//! own fragments (which reach far deeper than random bytes), from a seeded
//! generator so that runs are reproducible and need no extra crate.

use super::super::constraints::Constraint;
use super::super::{compile, translate_v1};
use super::support::req;

const FRAGMENTS: &[&str] = &[
    "Host",
    "HostRegexp",
    "Path",
    "PathPrefix",
    "PathRegexp",
    "Method",
    "Header",
    "Headers",
    "HeaderRegexp",
    "Query",
    "QueryRegexp",
    "ClientIP",
    "GRPCService",
    "GRPCMethod",
    "Label",
    "LabelRegex",
    "PathPrefixStrip",
    "(",
    ")",
    "((",
    "))",
    ",",
    "&&",
    "||",
    "!",
    "&",
    "|",
    " ",
    "`",
    "\"",
    "\\",
    "`a`",
    "`/x`",
    "`é`",
    "\"q\\\"\"",
    "`{a:[0-9]+}`",
    "`{a}`",
    "{",
    "}",
    "`(`",
    "`10.0.0.0/8`",
    "`::1`",
    "`k=v`",
    "`GET`",
    "`[a-`",
    ":",
    ";",
    "=",
    "a.com",
    "/p",
    "\u{0}",
    "\n",
    "\u{1F600}",
    "`a{99999}`",
];

/// Runs every entry point on `input`; only a panic fails. Returns whether
/// it compiled as an HTTP rule, so generators can show they reach the
/// matchers and not only the error paths.
fn exercise(input: &str) -> bool {
    let compiled = compile(input);
    if let Ok(m) = &compiled {
        let _ = m.index_hint();
        let requests = [
            req("GET a.com /x?k=v").header("x", b"a"),
            req("POST \u{e9} /?a%zz=%FF+").ip("::ffff:10.0.0.1"),
        ];
        for r in &requests {
            let _ = m.matches(&r.info());
        }
    }
    let _ = Constraint::parse(input);
    if let Ok(v2) = translate_v1(input) {
        assert!(
            compile(&v2).is_ok(),
            "{input:?} translated to {v2:?}, which does not compile"
        );
    }
    compiled.is_ok()
}

/// A small deterministic generator so the loop below is reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 0
    }
}

#[test]
fn random_fragment_sequences_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let len = rng.next() % 24;
        let input: String = (0..len)
            .map(|_| FRAGMENTS[rng.next() % FRAGMENTS.len()])
            .collect();
        exercise(&input);
    }
}

#[test]
fn truncations_of_valid_rules_never_panic() {
    let rules = [
        "Host(`a.com`, \"b\\\"c\") && !(PathPrefix(`/x`) || Query(`k`, `v`))",
        "HostRegexp(`{sub:[a-z]{1,3}}.example.com`) && ClientIP(`10.0.0.0/8`, `::1`)",
        "Host:a.com,b.com;PathPrefix:/x;Headers:X,y;Query:a=1",
        "Label(`a`, `b`) && !LabelRegex(`c`, `d.*`)",
        "GRPCMethod(`pkg.Svc`, `Get`) || GRPCService(`pkg.Other`)",
    ];
    for rule in rules {
        let chars: Vec<char> = rule.chars().collect();
        for start in 0..chars.len() {
            for end in start..=chars.len() {
                exercise(&chars[start..end].iter().collect::<String>());
            }
        }
    }
}

/// Random Unicode text, weighted towards ASCII punctuation.
fn random_text(rng: &mut XorShift) -> String {
    const ALPHABET: &str = "ab`\"\\(),!&|:;={}[]^$*+?./- \t\n";
    let alphabet: Vec<char> = ALPHABET.chars().collect();
    let len = rng.next() % 48;
    (0..len)
        .map(|_| match rng.next() % 4 {
            0 => char::from_u32((rng.next() % 0x11_0000) as u32).unwrap_or('x'),
            1 => char::from((rng.next() % 128) as u8),
            _ => alphabet[rng.next() % alphabet.len()],
        })
        .collect()
}

#[test]
fn random_text_never_panics() {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    for _ in 0..20_000 {
        exercise(&random_text(&mut rng));
    }
}

#[test]
fn random_v1_shaped_input_never_panics() {
    const NAMES: &[&str] = &[
        "Host",
        "host",
        "HostRegexp",
        "Path",
        "PathPrefix",
        "Method",
        "Headers",
        "HeadersRegexp",
        "Query",
        "PathStrip",
        "AddPrefix",
        "Nope",
        "",
    ];
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for _ in 0..20_000 {
        let segments: Vec<String> = (0..rng.next() % 4)
            .map(|_| {
                let name = NAMES[rng.next() % NAMES.len()];
                format!("{name}:{}", random_text(&mut rng))
            })
            .collect();
        exercise(&segments.join(";"));
    }
}

const NAMES: &[&str] = &[
    "Host",
    "HostRegexp",
    "Path",
    "PathPrefix",
    "PathRegexp",
    "Method",
    "Header",
    "HeaderRegexp",
    "Query",
    "QueryRegexp",
    "ClientIP",
    "GRPCService",
    "GRPCMethod",
    "Headers",
    "host",
    "Label",
];
const ARGS: &[&str] = &[
    "a.com",
    "/x",
    "/",
    "x",
    "GET",
    "10.0.0.0/8",
    "::1",
    "k=v",
    "k",
    "{a:[0-9]+}.b",
    "/u/{id}",
    "(",
    "[a-",
    ".*",
    "a{2}",
    "",
    "X-Env",
    "bad name",
    "pkg.Svc",
    "\u{e9}",
];

/// A random, mostly well-formed rule of bounded depth.
fn random_rule(rng: &mut XorShift, depth: usize) -> String {
    match rng.next() % 6 {
        0 if depth < 4 => format!(
            "({} || {})",
            random_rule(rng, depth + 1),
            random_rule(rng, depth + 1)
        ),
        1 if depth < 4 => format!(
            "{} && {}",
            random_rule(rng, depth + 1),
            random_rule(rng, depth + 1)
        ),
        2 if depth < 4 => format!("!{}", random_rule(rng, depth + 1)),
        _ => {
            let name = NAMES[rng.next() % NAMES.len()];
            let args: Vec<String> = (0..1 + rng.next() % 2)
                .map(|_| {
                    let a = ARGS[rng.next() % ARGS.len()];
                    if rng.coin() {
                        format!("`{a}`")
                    } else {
                        format!("{a:?}")
                    }
                })
                .collect();
            format!("{name}({})", args.join(", "))
        }
    }
}

#[test]
fn random_rules_and_their_mutations_never_panic() {
    let mut rng = XorShift(0x5851_F42D_4C95_7F2D);
    let mut compiled = 0;
    for _ in 0..10_000 {
        let rule = random_rule(&mut rng, 0);
        compiled += usize::from(exercise(&rule));
        // One random edit: drop a character or insert a fragment.
        let mut chars: Vec<char> = rule.chars().collect();
        let at = rng.next() % (chars.len() + 1);
        if rng.coin() && at < chars.len() {
            chars.remove(at);
        } else {
            let fragment = FRAGMENTS[rng.next() % FRAGMENTS.len()];
            chars.splice(at..at, fragment.chars());
        }
        exercise(&chars.into_iter().collect::<String>());
    }
    // The generator must reach compiled matchers, not only error paths.
    assert!(compiled > 1_000, "only {compiled} random rules compiled");
}
