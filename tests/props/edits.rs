//! Shared by the config.toml and tasks file properties: TOML-shaped noise, the edits
//! that break a valid file, and what an error must say.

use proptest::prelude::*;
use proptest::sample::select;

use super::noisy_text;

/// TOML-shaped noise: section headers, keys, values and the parsers' punctuation.
pub(crate) fn toml_noise() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => select(vec![
            "[entrypoints.web]\n", "[api]\n", "[api.auth]\n", "[providers]\n",
            "[providers.file]\n", "[providers.ecs]\n", "[node]\n", "[runtime]\n", "[log]\n",
            "[access_log]\n", "[[task]]\n", "[task.labels]\n", "address = \"127.0.0.1:8000\"\n",
            "path = \"t.toml\"\n", "clusters = [\"a\"]\n", "id = \"a\"\n", "ip = \"10.0.0.1\"\n",
            "ports = [80, { container = 80, host = 0 }]\n", "worker_threads = 0\n",
            "drain_seconds = 99999999999999999999\n", "zone = \"\"\n", "token = \"x\"\n",
            "constraints = \"Label(`a`\"\n", "\"traefik.enable\" = \"true\"\n",
            "health = \"HEALTHY\"\n", "lifecycle = \"STOPPED\"\n", "task = []\n",
            "=", "\"", "'", "[", "]", "{", "}", ",", ".", "\n", " ", "#", "\\", "\"\"\"",
            "1", "-", "true", "inf", "nan", "1979-05-27T07:32:00Z", "0x10", "1e999",
        ])
        .prop_map(str::to_string),
        1 => noisy_text(6),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// Whether an error says where: toml's line, or the key, section or task at fault.
pub(crate) fn says_where(message: &str) -> bool {
    const KEYS: &[&str] = &[
        "entrypoints",
        "api",
        "providers",
        "node.",
        "runtime.",
        "log",
        "access_log",
        "upstream",
        "task #",
        "task \"",
        "the file is empty",
        "no provider",
        "no [entrypoints",
    ];
    message.contains("line ") || KEYS.iter().any(|k| message.starts_with(k))
}

/// Edits a valid file the way people and truncating writers break one.
pub(crate) fn mutate(text: &str, edit: u8, at: prop::sample::Index, fragment: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let i = at.index(lines.len().max(1));
    match edit % 6 {
        // Truncated mid-write.
        0 => text
            .chars()
            .take(at.index(text.chars().count() + 1))
            .collect(),
        // A line lost.
        1 => {
            let mut l = lines.clone();
            if i < l.len() {
                l.remove(i);
            }
            l.join("\n")
        }
        // A line twice.
        2 => {
            let mut l = lines.clone();
            if let Some(line) = lines.get(i) {
                l.insert(i, line);
            }
            l.join("\n")
        }
        // A value replaced by junk.
        3 => lines
            .iter()
            .enumerate()
            .map(|(j, line)| match line.split_once(" = ") {
                Some((key, _)) if j == i => format!("{key} = {fragment}"),
                _ => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        // Junk inserted at a character.
        4 => {
            let mut chars: Vec<char> = text.chars().collect();
            let c = at.index(chars.len() + 1);
            chars.splice(c..c, fragment.chars());
            chars.into_iter().collect()
        }
        // An unknown key in some section.
        _ => {
            let mut l = lines.clone();
            let extra = format!("surely_unknown_{} = 1", fragment.len());
            l.insert(i.min(l.len()), &extra);
            l.join("\n")
        }
    }
}

/// TOML values of every type and edge: what a key may be given by mistake.
pub(crate) const ODD_VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "-0.0",
    "nan",
    "inf",
    "true",
    "\"\"",
    "\" \"",
    "\"\\u0000\"",
    "\"0.0.0.0:0\"",
    "\"[::]:65535\"",
    "\"localhost:80\"",
    "\"1.2\"",
    "\"é\"",
    "[]",
    "[\"\"]",
    "[1, 2]",
    "{}",
    "{ cert = \"\", key = \"\" }",
    "1979-05-27T07:32:00Z",
];

/// `text` with the value of its `i`th line (a `key = value` line) replaced.
pub(crate) fn with_value(text: &str, i: usize, value: &str) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let (key, _) = lines.get(i)?.split_once(" = ")?;
    lines[i] = format!("{key} = {value}");
    Some(lines.join("\n"))
}
