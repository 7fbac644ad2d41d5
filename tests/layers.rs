//! The crate's top-level modules import one way (STYLE.md: http2 → upstream → balance
//! → table → proxy and health → app, the API a leaf that only reads).
//!
//! Reads every file under `src/` (production code: unit-test modules are left out),
//! collects the `crate::<module>` paths each top-level
//! module uses (in `use` lines and inline paths, grouped imports included), and finds
//! the import cycles (strongly connected components of that graph). The cycles that
//! exist today are listed in [`KNOWN_CYCLE_EDGES`], to be removed (issue 15); the test
//! fails on any new edge inside a cycle, and on a listed edge that no longer closes
//! one, so the list can only shrink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Edges (importer, imported) that sit on an import cycle today: one component
/// reaching from `dynamic` (which names `provider`'s task states) through `config`,
/// `telemetry` (which reaches `app`), `balance` (which reaches `proxy`, `table` and
/// `watcher`) and back.
const KNOWN_CYCLE_EDGES: &[(&str, &str)] = &[
    ("api", "app"),
    ("api", "balance"),
    ("api", "config"),
    ("api", "dynamic"),
    ("api", "provider"),
    ("api", "table"),
    ("api", "telemetry"),
    ("api", "tls"),
    ("app", "api"),
    ("app", "balance"),
    ("app", "config"),
    ("app", "dynamic"),
    ("app", "labels"),
    ("app", "provider"),
    ("app", "proxy"),
    ("app", "table"),
    ("app", "telemetry"),
    ("app", "tls"),
    ("app", "watcher"),
    ("balance", "dynamic"),
    ("balance", "provider"),
    ("balance", "proxy"),
    ("balance", "table"),
    ("balance", "telemetry"),
    ("balance", "tls"),
    ("balance", "watcher"),
    ("config", "telemetry"),
    ("dynamic", "provider"),
    ("labels", "balance"),
    ("labels", "dynamic"),
    ("labels", "provider"),
    ("labels", "telemetry"),
    ("provider", "config"),
    ("proxy", "balance"),
    ("proxy", "dynamic"),
    ("proxy", "table"),
    ("proxy", "telemetry"),
    ("proxy", "tls"),
    ("table", "balance"),
    ("table", "dynamic"),
    ("table", "proxy"),
    ("table", "telemetry"),
    ("table", "tls"),
    ("telemetry", "app"),
    ("telemetry", "balance"),
    ("telemetry", "dynamic"),
    ("tls", "config"),
    ("watcher", "dynamic"),
    ("watcher", "labels"),
    ("watcher", "provider"),
    ("watcher", "proxy"),
    ("watcher", "table"),
];

/// The top-level module a file under `src/` belongs to (`None`: the crate roots).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The top-level modules named by `crate::` paths in `text`, comments left out.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: Vec<&str> = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    let code = code.join("\n");
    {
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a::B, c}`: each item's first segment.
                let mut depth = 0usize;
                let mut item_start = true;
                let mut ident = String::new();
                for c in group.chars() {
                    let ident_char = c.is_alphanumeric() || c == '_';
                    if item_start && ident_char {
                        ident.push(c);
                        continue;
                    }
                    if !ident.is_empty() {
                        out.insert(std::mem::take(&mut ident));
                        item_start = false;
                    }
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        _ => {}
                    }
                }
                if !ident.is_empty() {
                    out.insert(ident);
                }
            } else {
                let ident: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !ident.is_empty() {
                    out.insert(ident);
                }
            }
        }
    }
    out
}

fn walk(dir: &Path, root: &Path, graph: &mut BTreeMap<String, BTreeSet<String>>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, root, graph);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let rel = path.strip_prefix(root).expect("under src");
        let Some(module) = module_of(rel) else {
            continue;
        };
        // Production code only: a module's unit tests may reach anywhere.
        if path.file_name().is_some_and(|n| n == "tests.rs")
            || rel.components().any(|c| c.as_os_str() == "tests")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        let entry = graph.entry(module.clone()).or_default();
        for target in imports(text) {
            if target != module {
                entry.insert(target);
            }
        }
    }
}

/// Tarjan's strongly connected components.
fn components(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !graph.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn import_cycles_between_layers_only_shrink() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    walk(&root, &root, &mut graph);
    assert!(
        graph.contains_key("proxy") && graph.contains_key("http2"),
        "{graph:?}"
    );
    let mut on_cycles: BTreeSet<(String, String)> = BTreeSet::new();
    for comp in components(&graph).into_iter().filter(|c| c.len() > 1) {
        for from in &comp {
            for to in &graph[from] {
                if comp.contains(to) {
                    on_cycles.insert((from.clone(), to.clone()));
                }
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN_CYCLE_EDGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let listing: Vec<String> = on_cycles
        .iter()
        .map(|(a, b)| format!("    ({a:?}, {b:?}),"))
        .collect();
    let new: Vec<_> = on_cycles.difference(&known).collect();
    assert!(
        new.is_empty(),
        "new imports close a cycle between layers: {new:?}\nedges on cycles now:\n{}",
        listing.join("\n")
    );
    let gone: Vec<_> = known.difference(&on_cycles).collect();
    assert!(
        gone.is_empty(),
        "these edges no longer close a cycle: remove them from KNOWN_CYCLE_EDGES: {gone:?}"
    );
}

#[test]
fn grouped_and_inline_imports_are_seen() {
    let text = "use crate::{a::B, c, d::{E, F}};\nuse crate::{\n    k::L,\n    m,\n};\n\
                let x = crate::g::h(); // crate::z\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g", "k", "m"]);
}
