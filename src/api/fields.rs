//! Field selection for JSON API responses: the `?fields=` query parameter.
//!
//! This module owns parsing a field mask, checking it against the shape of a response
//! item, and pruning a `serde_json::Value` down to the selected fields. The semantics
//! follow `google.protobuf.FieldMask`
//! (<https://protobuf.dev/reference/protobuf/google.protobuf/#field-mask>), in its JSON
//! form: a single string of comma-separated paths, each a dot-separated list of
//! (camelCase) field names, e.g. `fields=name,loadBalancer.servers.url,stats.requests`.
//!
//! - A path selects the field it names and everything below it; paths merge, so `a`
//!   and `a.b` select all of `a`, and `a.b` with `a.c` select both.
//! - As in FieldMask, a repeated field (a JSON array) may be the last segment of a path,
//!   selecting the whole list. As an extension, it may also be the parent of the last
//!   segment: `loadBalancer.servers.url` keeps `url` in every server. Anything deeper
//!   below a list (`a.list.b.c`), or a list of lists, is rejected by [`FieldMask::check`].
//! - Maps (e.g. `serverStatus`, `grpcStatus`) are selectable only whole: their keys are
//!   data, not field names. [`Shape::of`] makes this so when the sample given to it has
//!   EMPTY maps, so build samples with empty maps, and with one element in every list
//!   of objects (the fields of an empty list's elements are unknown).
//! - A field absent from a value is skipped silently when applying; only
//!   [`FieldMask::check`] reports unknown paths (the API answers those with 400).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

/// A parsed `fields=` mask: the paths as given, and the tree of their segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMask {
    paths: Vec<String>,
    root: Node,
}

/// One level of the selection tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    /// Everything below this point is selected (some path ended here).
    whole: bool,
    /// Selected subfields, when not `whole`.
    children: BTreeMap<String, Node>,
}

/// Why a mask was refused. Every message names the offending path as the user wrote it
/// (spaces around it trimmed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MaskError {
    #[error("empty field mask")]
    Empty,
    #[error("empty field path in field mask \"{mask}\"")]
    EmptyPath { mask: String },
    #[error("invalid field path \"{path}\": empty segment")]
    EmptySegment { path: String },
    #[error(
        "invalid field path \"{path}\": segment \"{segment}\" may contain only letters, digits and '_'"
    )]
    InvalidSegment { path: String, segment: String },
    /// `parent` is the dotted prefix before `field` ("" at the top level); `known` lists
    /// the fields there (empty when the parent has no selectable subfields).
    #[error("unknown field path \"{path}\": {}", describe_unknown(.field, .parent, .known))]
    Unknown {
        path: String,
        field: String,
        parent: String,
        known: Vec<String>,
    },
    #[error(
        "invalid field path \"{path}\": \"{field}\" is a repeated field; it may only be the last segment (the whole list) or the one before it (a field of every element)"
    )]
    Repeated { path: String, field: String },
}

fn describe_unknown(field: &str, parent: &str, known: &[String]) -> String {
    let mut out = if parent.is_empty() {
        format!("no field \"{field}\" at the top level")
    } else {
        format!("no field \"{field}\" in \"{parent}\"")
    };
    if known.is_empty() {
        out.push_str(" (it has no subfields to select; select it whole)");
    } else {
        let _ = write!(out, " (fields there: {})", known.join(", "));
    }
    out
}

/// The structure of one response item, used to check masks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A scalar, null, or something selectable only whole (a map).
    Leaf,
    /// An object with known fields.
    Object(BTreeMap<String, Shape>),
    /// A repeated field; the shape of its elements.
    List(Box<Shape>),
}

impl Shape {
    /// Shape of a sample value: a non-empty object → `Object` (an EMPTY object or null →
    /// `Leaf`, so maps are selectable only whole); an array → `List` of the merged shape
    /// of all its elements (an empty array → `List(Leaf)`); anything else → `Leaf`.
    ///
    /// Merging: `Leaf` yields to anything (a null in one element, an object in another
    /// → the object), objects take the union of their fields, lists merge their
    /// elements; on an object/list conflict the first seen wins.
    pub fn of(sample: &Value) -> Shape {
        match sample {
            Value::Object(map) if !map.is_empty() => {
                Shape::Object(map.iter().map(|(k, v)| (k.clone(), Shape::of(v))).collect())
            }
            Value::Array(items) => Shape::List(Box::new(
                items.iter().map(Shape::of).fold(Shape::Leaf, Shape::merge),
            )),
            _ => Shape::Leaf,
        }
    }

    fn merge(self, other: Shape) -> Shape {
        match (self, other) {
            (Shape::Leaf, s) | (s, Shape::Leaf) => s,
            (Shape::Object(mut a), Shape::Object(b)) => {
                for (k, v) in b {
                    let merged = match a.remove(&k) {
                        Some(old) => old.merge(v),
                        None => v,
                    };
                    a.insert(k, merged);
                }
                Shape::Object(a)
            }
            (Shape::List(a), Shape::List(b)) => Shape::List(Box::new(a.merge(*b))),
            (first, _) => first,
        }
    }
}

fn valid_segment(seg: &str) -> bool {
    seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl FieldMask {
    /// Parses `a,b.c, d.e.f`: comma-separated paths, spaces around each path trimmed
    /// (several `fields` parameters can be joined by the caller with `,`). Errors: an
    /// empty mask, an empty path (`a,,b`, `a,`, ` , `), an empty segment (`a..b`, `a.`),
    /// a segment with characters other than `[A-Za-z0-9_]`. Repeated paths count once.
    pub fn parse(s: &str) -> Result<FieldMask, MaskError> {
        if s.trim().is_empty() {
            return Err(MaskError::Empty);
        }
        let mut mask = FieldMask {
            paths: Vec::new(),
            root: Node::default(),
        };
        for path in s.split(',').map(str::trim) {
            if path.is_empty() {
                return Err(MaskError::EmptyPath {
                    mask: s.trim().to_owned(),
                });
            }
            for seg in path.split('.') {
                if seg.is_empty() {
                    return Err(MaskError::EmptySegment {
                        path: path.to_owned(),
                    });
                }
                if !valid_segment(seg) {
                    return Err(MaskError::InvalidSegment {
                        path: path.to_owned(),
                        segment: seg.to_owned(),
                    });
                }
            }
            if mask.paths.iter().any(|p| p == path) {
                continue;
            }
            mask.root.insert(path.split('.'));
            mask.paths.push(path.to_owned());
        }
        Ok(mask)
    }

    /// Checks every path against the shape of ONE response item (a `List` shape at the
    /// top is taken as a list of such items). An unknown segment, or one below a `Leaf`,
    /// is [`MaskError::Unknown`]; a repeated field anywhere but the last segment or the
    /// parent of the last, or a list of lists on the path, is [`MaskError::Repeated`].
    pub fn check(&self, shape: &Shape) -> Result<(), MaskError> {
        let mut root = shape;
        while let Shape::List(inner) = root {
            root = inner;
        }
        self.paths
            .iter()
            .try_for_each(|path| check_path(path, root))
    }

    /// Keeps only the selected paths of one item. Objects keep their selected keys (in
    /// their original order); arrays apply the remaining path to every element; a key
    /// absent from the value is skipped silently; a path that ends at a subtree keeps it
    /// whole (null included). Where a path continues but the value is neither an object
    /// nor an array, the value is dropped (its key, or its element of an array); a
    /// top-level value dropped that way becomes `null`.
    pub fn apply(&self, value: Value) -> Value {
        select(value, &self.root).unwrap_or(Value::Null)
    }

    /// For list responses: [`apply`](Self::apply) to every element of a top-level array,
    /// keeping their count and order; a non-array is treated as one item.
    pub fn apply_each(&self, value: Value) -> Value {
        match value {
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.apply(v)).collect()),
            other => self.apply(other),
        }
    }

    /// The paths as given (trimmed, duplicates removed, in order), for logs.
    pub fn paths(&self) -> Vec<String> {
        self.paths.clone()
    }
}

impl Node {
    fn insert<'a>(&mut self, segs: impl Iterator<Item = &'a str>) {
        let mut node = self;
        for seg in segs {
            if node.whole {
                return;
            }
            node = node.children.entry(seg.to_owned()).or_default();
        }
        node.whole = true;
        node.children.clear();
    }
}

fn select(value: Value, node: &Node) -> Option<Value> {
    if node.whole {
        return Some(value);
    }
    match value {
        Value::Object(map) => Some(Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| {
                    let child = node.children.get(k.as_str())?;
                    select(v, child).map(|v| (k, v))
                })
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(|v| select(v, node)).collect(),
        )),
        _ => None,
    }
}

/// The dotted prefix of `path` before its segment `i`.
fn prefix(path: &str, i: usize) -> String {
    path.split('.').take(i).collect::<Vec<_>>().join(".")
}

fn check_path(path: &str, root: &Shape) -> Result<(), MaskError> {
    let segs: Vec<&str> = path.split('.').collect();
    let n = segs.len();
    let mut cur = root;
    for (i, &seg) in segs.iter().enumerate() {
        let fields = match cur {
            Shape::Object(fields) => fields,
            Shape::Leaf => {
                return Err(MaskError::Unknown {
                    path: path.to_owned(),
                    field: seg.to_owned(),
                    parent: prefix(path, i),
                    known: Vec::new(),
                })
            }
            // Only reachable through a list's elements: a list of lists.
            Shape::List(_) => {
                return Err(MaskError::Repeated {
                    path: path.to_owned(),
                    field: segs[i.saturating_sub(1)].to_owned(),
                })
            }
        };
        let Some(next) = fields.get(seg) else {
            return Err(MaskError::Unknown {
                path: path.to_owned(),
                field: seg.to_owned(),
                parent: prefix(path, i),
                known: fields.keys().cloned().collect(),
            });
        };
        cur = match next {
            Shape::List(_) if i + 2 < n => {
                return Err(MaskError::Repeated {
                    path: path.to_owned(),
                    field: seg.to_owned(),
                })
            }
            Shape::List(inner) if i + 1 < n => inner,
            other => other,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Value {
        json!({"name":"rg@file","status":"enabled","error":[],"usedBy":["rg@file"],
            "loadBalancer":{"strategy":"wrr","servers":[
                {"url":"h2c://127.0.0.1:1","weight":1,"taskId":"a","zone":null,"grpcStatus":{"OK":3}},
                {"url":"h2c://127.0.0.1:2","weight":3,"taskId":"b","zone":"us-east-1a","grpcStatus":{}}]},
            "serverStatus":{"h2c://127.0.0.1:1":"UP"},"stats":{"requests":4,"p99Ms":null}})
    }

    /// What a handler would pass to `Shape::of`: one element per list, EMPTY maps.
    fn service_shape() -> Shape {
        Shape::of(&json!({"name":"","status":"","error":[],"usedBy":[""],
            "loadBalancer":{"strategy":"","servers":[
                {"url":"","weight":0,"taskId":"","zone":null,"grpcStatus":{}}]},
            "serverStatus":{},"stats":{"requests":0,"p99Ms":null}}))
    }

    fn mask(s: &str) -> FieldMask {
        match FieldMask::parse(s) {
            Ok(m) => m,
            Err(e) => panic!("parse {s:?}: {e}"),
        }
    }

    #[test]
    fn parse_normalises_paths() {
        let cases: &[(&str, &[&str])] = &[
            ("name", &["name"]),
            ("a,b.c, d.e.f", &["a", "b.c", "d.e.f"]),
            ("  name ,\tstats.requests  ", &["name", "stats.requests"]),
            ("name,status,name", &["name", "status"]),
            ("a_1,B2.c3", &["a_1", "B2.c3"]),
        ];
        for (input, want) in cases {
            assert_eq!(mask(input).paths(), *want, "input {input:?}");
        }
    }

    #[test]
    fn parse_errors() {
        let path = |p: &str| p.to_owned();
        let cases = [
            ("", MaskError::Empty),
            ("   ", MaskError::Empty),
            ("a..b", MaskError::EmptySegment { path: path("a..b") }),
            ("a.", MaskError::EmptySegment { path: path("a.") }),
            (".a", MaskError::EmptySegment { path: path(".a") }),
            (" , ", MaskError::EmptyPath { mask: path(",") }),
            (",,", MaskError::EmptyPath { mask: path(",,") }),
            (
                "name,",
                MaskError::EmptyPath {
                    mask: path("name,"),
                },
            ),
            (
                "a-b",
                MaskError::InvalidSegment {
                    path: path("a-b"),
                    segment: path("a-b"),
                },
            ),
            (
                " x.a b ",
                MaskError::InvalidSegment {
                    path: path("x.a b"),
                    segment: path("a b"),
                },
            ),
        ];
        for (input, want) in cases {
            let got = FieldMask::parse(input);
            assert_eq!(got, Err(want), "input {input:?}");
        }
    }

    #[test]
    fn parse_error_messages_name_the_path() {
        for (input, needle) in [
            ("a..b", "\"a..b\""),
            ("name, stats.", "\"stats.\""),
            ("a-b", "\"a-b\""),
        ] {
            let msg = match FieldMask::parse(input) {
                Err(e) => e.to_string(),
                Ok(m) => panic!("{input:?} parsed as {:?}", m.paths()),
            };
            assert!(msg.contains(needle), "{input:?}: {msg}");
        }
    }

    #[test]
    fn apply_selects_fields() {
        let servers = |a: Value, b: Value| json!({"loadBalancer": {"servers": [a, b]}});
        let cases = [
            ("name", json!({"name": "rg@file"})),
            (
                "name,status,usedBy",
                json!({"name": "rg@file", "status": "enabled", "usedBy": ["rg@file"]}),
            ),
            ("stats.requests", json!({"stats": {"requests": 4}})),
            (
                "loadBalancer.servers.url",
                servers(
                    json!({"url": "h2c://127.0.0.1:1"}),
                    json!({"url": "h2c://127.0.0.1:2"}),
                ),
            ),
            (
                "loadBalancer.servers",
                json!({"loadBalancer": {"servers": service()["loadBalancer"]["servers"]}}),
            ),
            // Overlapping: the shorter path wins, whatever the order.
            (
                "loadBalancer.strategy,loadBalancer",
                json!({"loadBalancer": service()["loadBalancer"]}),
            ),
            (
                "loadBalancer,loadBalancer.strategy",
                json!({"loadBalancer": service()["loadBalancer"]}),
            ),
            // Siblings merge.
            (
                "loadBalancer.strategy,loadBalancer.servers.weight",
                json!({"loadBalancer": {"strategy": "wrr", "servers": [{"weight": 1}, {"weight": 3}]}}),
            ),
            (
                "loadBalancer.servers.url,loadBalancer.servers.weight",
                servers(
                    json!({"url": "h2c://127.0.0.1:1", "weight": 1}),
                    json!({"url": "h2c://127.0.0.1:2", "weight": 3}),
                ),
            ),
            // Nulls are kept when selected.
            ("stats.p99Ms", json!({"stats": {"p99Ms": null}})),
            (
                "loadBalancer.servers.zone",
                servers(json!({"zone": null}), json!({"zone": "us-east-1a"})),
            ),
            // Maps and empty lists whole.
            (
                "serverStatus,error",
                json!({"serverStatus": {"h2c://127.0.0.1:1": "UP"}, "error": []}),
            ),
            (
                "loadBalancer.servers.grpcStatus",
                servers(json!({"grpcStatus": {"OK": 3}}), json!({"grpcStatus": {}})),
            ),
            // Absent keys are skipped silently.
            ("tasks", json!({})),
            ("name,stats.nope", json!({"name": "rg@file", "stats": {}})),
            // A path continuing below a scalar drops it.
            ("name.x", json!({})),
            ("loadBalancer.servers.url.x", servers(json!({}), json!({}))),
        ];
        for (m, want) in cases {
            assert_eq!(mask(m).apply(service()), want, "mask {m:?}");
        }
    }

    #[test]
    fn apply_drops_scalar_elements_where_the_path_continues() {
        let v = json!({"xs": [{"a": 1, "b": 2}, 7, null, {"b": 3}]});
        assert_eq!(
            mask("xs.a").apply(v),
            json!({"xs": [{"a": 1}, {}]}),
            "scalars below a continuing path go"
        );
        assert_eq!(mask("a").apply(json!(3)), Value::Null);
    }

    #[test]
    fn apply_each_on_a_list_response() {
        let mut other = service();
        other["name"] = json!("other@ecs");
        other["stats"]["requests"] = json!(9);
        let list = json!([service(), other]);
        let m = mask("name, stats.requests");
        assert_eq!(
            m.apply_each(list),
            json!([
                {"name": "rg@file", "stats": {"requests": 4}},
                {"name": "other@ecs", "stats": {"requests": 9}},
            ])
        );
        assert_eq!(m.apply_each(service()), m.apply(service()));
    }

    #[test]
    fn check_accepts_valid_paths() {
        let shape = service_shape();
        for m in [
            "name",
            "name,status,error,usedBy",
            "stats.requests,stats.p99Ms",
            "loadBalancer",
            "loadBalancer.servers",
            "loadBalancer.servers.url",
            "loadBalancer.servers.zone,loadBalancer.strategy",
            "loadBalancer.servers.grpcStatus",
            "serverStatus",
        ] {
            assert_eq!(mask(m).check(&shape), Ok(()), "mask {m:?}");
        }
        // A list shape at the top is a list of items.
        let list = Shape::List(Box::new(shape));
        assert_eq!(mask("loadBalancer.servers.url").check(&list), Ok(()));
    }

    #[test]
    fn check_rejects_unknown_and_repeated_paths() {
        let s = |v: &str| v.to_owned();
        let unknown = |path: &str, field: &str, parent: &str, known: &[&str]| MaskError::Unknown {
            path: s(path),
            field: s(field),
            parent: s(parent),
            known: known.iter().map(|k| s(k)).collect(),
        };
        let top = [
            "error",
            "loadBalancer",
            "name",
            "serverStatus",
            "stats",
            "status",
            "usedBy",
        ];
        let server = ["grpcStatus", "taskId", "url", "weight", "zone"];
        let cases = [
            ("nope", unknown("nope", "nope", "", &top)),
            ("name, Name", unknown("Name", "Name", "", &top)),
            (
                "loadBalancer.servers.urll",
                unknown(
                    "loadBalancer.servers.urll",
                    "urll",
                    "loadBalancer.servers",
                    &server,
                ),
            ),
            ("name.x", unknown("name.x", "x", "name", &[])),
            (
                "stats.p99Ms.x",
                unknown("stats.p99Ms.x", "x", "stats.p99Ms", &[]),
            ),
            ("usedBy.x", unknown("usedBy.x", "x", "usedBy", &[])),
            (
                "serverStatus.up",
                unknown("serverStatus.up", "up", "serverStatus", &[]),
            ),
            (
                "loadBalancer.servers.grpcStatus.OK",
                MaskError::Repeated {
                    path: s("loadBalancer.servers.grpcStatus.OK"),
                    field: s("servers"),
                },
            ),
        ];
        let shape = service_shape();
        for (m, want) in cases {
            assert_eq!(mask(m).check(&shape), Err(want), "mask {m:?}");
        }
    }

    #[test]
    fn check_rejects_lists_below_the_parent_of_the_last_segment() {
        let shape = Shape::of(&json!({
            "loadBalancer": {"servers": [{"url": "", "tags": [{"x": 1}]}]},
            "grid": [[{"a": 1}]],
        }));
        let repeated = |path: &str, field: &str| {
            Err(MaskError::Repeated {
                path: path.to_owned(),
                field: field.to_owned(),
            })
        };
        let cases = [
            ("loadBalancer.servers.tags", Ok(())),
            (
                "loadBalancer.servers.tags.x",
                repeated("loadBalancer.servers.tags.x", "servers"),
            ),
            ("grid", Ok(())),
            ("grid.a", repeated("grid.a", "grid")),
        ];
        for (m, want) in cases {
            assert_eq!(mask(m).check(&shape), want, "mask {m:?}");
        }
    }

    #[test]
    fn check_error_messages() {
        let shape = service_shape();
        let msg = |m: &str| match mask(m).check(&shape) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{m:?} passed"),
        };
        assert_eq!(
            msg("loadBalancer.servers.urll"),
            "unknown field path \"loadBalancer.servers.urll\": no field \"urll\" in \
             \"loadBalancer.servers\" (fields there: grpcStatus, taskId, url, weight, zone)"
        );
        let top = msg("name,nope");
        assert!(top.contains("\"nope\""), "{top}");
        assert!(top.contains("at the top level"), "{top}");
        let leaf = msg("name.x");
        assert!(
            leaf.contains("\"name.x\"") && leaf.contains("no subfields"),
            "{leaf}"
        );
        let shape = Shape::of(&json!({"a": {"list": [{"b": {"c": 1}}]}}));
        let repeated = match mask("a.list.b.c").check(&shape) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("a.list.b.c passed"),
        };
        assert!(
            repeated.contains("\"a.list.b.c\"") && repeated.contains("\"list\" is a repeated"),
            "{repeated}"
        );
    }

    #[test]
    fn shape_of_samples() {
        let obj = |fields: &[(&str, Shape)]| {
            Shape::Object(
                fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            )
        };
        let list = |s: Shape| Shape::List(Box::new(s));
        let cases = [
            (json!(null), Shape::Leaf),
            (json!({}), Shape::Leaf),
            (json!("s"), Shape::Leaf),
            (json!(1.5), Shape::Leaf),
            (json!([]), list(Shape::Leaf)),
            (
                json!({"m": {}, "n": null}),
                obj(&[("m", Shape::Leaf), ("n", Shape::Leaf)]),
            ),
            // Elements merge: union of fields, Leaf yields to structure.
            (
                json!([{"a": 1, "b": null}, {"b": {"c": [1]}}, {"b": {"d": 2}}]),
                list(obj(&[
                    ("a", Shape::Leaf),
                    ("b", obj(&[("c", list(Shape::Leaf)), ("d", Shape::Leaf)])),
                ])),
            ),
            // Object vs list: the first seen wins.
            (json!([{"a": 1}, [1]]), list(obj(&[("a", Shape::Leaf)]))),
        ];
        for (sample, want) in cases {
            assert_eq!(Shape::of(&sample), want, "sample {sample}");
        }
    }

    #[test]
    fn non_empty_sample_maps_expose_their_keys() {
        // Why samples must use empty maps: a non-empty map looks like an object.
        let shape = Shape::of(&service());
        assert_eq!(mask("stats.requests").check(&shape), Ok(()));
        assert!(matches!(
            mask("serverStatus.x").check(&shape),
            Err(MaskError::Unknown { ref known, .. }) if known == &["h2c://127.0.0.1:1"]
        ));
    }
}
