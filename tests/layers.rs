//! The crate's top-level modules import one way, bottom to top, in the order of
//! [`LAYERS`] (STYLE.md, "A layout that shows the architecture"): the wire
//! (`http2`) → connections to servers (`upstream`) → `balance` → `table` → `proxy`
//! and `health` → `app`, with the configuration side (`config`, `provider`,
//! `dynamic`, `labels`) below the data plane and the API a leaf under `app` that
//! only reads.
//!
//! Reads every file under `src/` (production code: unit-test modules are left out),
//! collects the `crate::<module>` paths each top-level module uses (in `use` lines
//! and inline paths, grouped imports included), then fails on any import cycle
//! between modules (strongly connected components of that graph), printing the
//! edges on it, and on any import that does not go to a lower layer, printing the
//! file and the edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom to top. A module imports only modules of lower layers; the
/// modules of one layer do not import each other. A new top-level module needs a
/// place here.
const LAYERS: &[&[&str]] = &[
    // Vocabulary and the wire: import nothing of gantry's.
    &["http2", "node", "rules", "telemetry"],
    // Static configuration; the routes index over compiled rules.
    &["config", "route_index"],
    // Providers' raw tasks; TLS material from the static config.
    &["provider", "tls"],
    // The serialisable configuration (names the providers' task states).
    &["dynamic"],
    // Labels → DynamicConfig; connections to servers and the exchange of a call.
    &["labels", "upstream"],
    // Endpoints' live state and the strategies that pick them.
    &["balance"],
    // DynamicConfig → RoutingTable, shared as SharedTable.
    &["table"],
    // Provider snapshots → published tables.
    &["watcher"],
    // The call pipeline; the loops that watch servers over the table.
    &["proxy", "health"],
    // The dashboard and API: reads everything, imported only by the wiring.
    &["api"],
    // Wires it all together.
    &["app"],
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

/// Each import edge between top-level modules (importer, imported), with the files
/// (relative to `src/`) that make it.
type Edges = BTreeMap<(String, String), BTreeSet<String>>;

fn walk(
    dir: &Path,
    root: &Path,
    graph: &mut BTreeMap<String, BTreeSet<String>>,
    edges: &mut Edges,
) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, root, graph, edges);
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
                entry.insert(target.clone());
                edges
                    .entry((module.clone(), target))
                    .or_default()
                    .insert(rel.display().to_string());
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

/// The import graph of `src/` and its edges with the files behind them.
fn crate_graph() -> (BTreeMap<String, BTreeSet<String>>, Edges) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    let mut edges = Edges::new();
    walk(&root, &root, &mut graph, &mut edges);
    assert!(
        graph.contains_key("proxy") && graph.contains_key("http2"),
        "{graph:?}"
    );
    (graph, edges)
}

fn show(edge: &(String, String), files: &BTreeSet<String>) -> String {
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    format!(
        "    {} -> {} (src/{})",
        edge.0,
        edge.1,
        files.join(", src/")
    )
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let (graph, edges) = crate_graph();
    let mut found = Vec::new();
    for comp in components(&graph).into_iter().filter(|c| c.len() > 1) {
        let on_cycle: Vec<String> = edges
            .iter()
            .filter(|((from, to), _)| comp.contains(from) && comp.contains(to))
            .map(|(edge, files)| show(edge, files))
            .collect();
        found.push(format!(
            "cycle among {comp:?}, through these imports:\n{}",
            on_cycle.join("\n")
        ));
    }
    assert!(
        found.is_empty(),
        "top-level modules import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn imports_go_down_the_layers() {
    let (graph, edges) = crate_graph();
    let mut rank: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, layer) in LAYERS.iter().enumerate() {
        for module in *layer {
            assert!(
                rank.insert(module, i).is_none(),
                "{module} is listed twice in LAYERS"
            );
        }
    }
    let unplaced: Vec<&String> = graph
        .keys()
        .filter(|m| !rank.contains_key(m.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules without a place in LAYERS: {unplaced:?}"
    );
    let gone: Vec<&&str> = rank.keys().filter(|m| !graph.contains_key(**m)).collect();
    assert!(
        gone.is_empty(),
        "LAYERS names modules src/ does not have: {gone:?}"
    );
    let upward: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| {
            // Paths to things that are not top-level modules (`crate::Foo`) are
            // not layer edges.
            rank.get(to.as_str())
                .is_some_and(|&to_rank| to_rank >= rank[from.as_str()])
        })
        .map(|(edge, files)| {
            format!(
                "{} (layer {} imports layer {})",
                show(edge, files),
                rank[edge.0.as_str()],
                rank[edge.1.as_str()]
            )
        })
        .collect();
    assert!(
        upward.is_empty(),
        "imports that do not go to a lower layer (LAYERS, bottom to top, is \
         {LAYERS:?}):\n{}",
        upward.join("\n")
    );
}

#[test]
fn grouped_and_inline_imports_are_seen() {
    let text = "use crate::{a::B, c, d::{E, F}};\nuse crate::{\n    k::L,\n    m,\n};\n\
                let x = crate::g::h(); // crate::z\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g", "k", "m"]);
}
