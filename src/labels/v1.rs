//! Traefik 1.x labels, translated into the v2 settings they stand for.
//!
//! Tasks migrated from Traefik 1 still carry `<prefix>.frontend.rule`,
//! `<prefix>.frontend.priority`, `<prefix>.frontend.entryPoints`, `<prefix>.protocol`,
//! `<prefix>.port`, `<prefix>.weight` and `<prefix>.backend`. They describe one service
//! named by `backend` (default: the task's default name) and, when a `frontend.*` label
//! is present, one router of the same name pointing at it.
//!
//! v2 labels for the same router or service win field by field, so a task can be
//! migrated one label at a time. A v1 value that a v2 label overrides is not in effect,
//! so it is not reported even if it is invalid.

use crate::provider::Task;

use super::parse::{self, Problem, RouterLabels, ServiceLabels, TaskLabels, Value};

/// A v1 label: its key as written and its value.
type Raw = Option<(String, String)>;

/// The v1 labels of one task, as found; parsed by [`apply`].
#[derive(Debug, Default)]
pub(crate) struct V1Labels {
    frontend_rule: Raw,
    frontend_priority: Raw,
    frontend_entry_points: Raw,
    protocol: Raw,
    port: Raw,
    weight: Raw,
    backend: Raw,
}

impl V1Labels {
    /// Keeps `key` if it is a v1 label (`lower` is its part after the prefix, split on
    /// dots and lowercased); returns whether it was one.
    pub(crate) fn take(
        &mut self,
        key: &str,
        lower: &[&str],
        value: &str,
        problems: &mut Vec<Problem>,
    ) -> bool {
        let slot = match lower {
            ["frontend", "rule"] => &mut self.frontend_rule,
            ["frontend", "priority"] => &mut self.frontend_priority,
            ["frontend", "entrypoints"] => &mut self.frontend_entry_points,
            ["protocol"] => &mut self.protocol,
            ["port"] => &mut self.port,
            ["weight"] => &mut self.weight,
            ["backend"] => &mut self.backend,
            _ => return false,
        };
        match slot {
            Some((first, _)) => problems.push(Problem::at(
                key,
                format!("set twice: also set by label {first:?}"),
            )),
            None => *slot = Some((key.to_string(), value.to_string())),
        }
        true
    }

    fn is_empty(&self) -> bool {
        [
            &self.frontend_rule,
            &self.frontend_priority,
            &self.frontend_entry_points,
            &self.protocol,
            &self.port,
            &self.weight,
            &self.backend,
        ]
        .iter()
        .all(|raw| raw.is_none())
    }
}

/// Translates `v1` and folds it under the v2 settings already in `out`.
pub(crate) fn apply(task: &Task, v1: V1Labels, out: &mut TaskLabels) {
    if v1.is_empty() {
        return;
    }
    let backend = match &v1.backend {
        Some((key, value)) => match parse::parse_name(value) {
            Ok(name) => name,
            Err(message) => {
                out.problems.push(Problem::at(key, message));
                task.default_name()
            }
        },
        None => task.default_name(),
    };
    if backend.is_empty() {
        // Only for a task whose id has no letter or digit: nothing to name objects after.
        out.problems.push(Problem::general(
            "v1 labels ignored: no backend label and the task has no default name",
        ));
        return;
    }

    let service = ServiceLabels {
        port: value(&v1.port, parse::parse_port),
        scheme: value(&v1.protocol, |s| {
            parse::parse_scheme(s)
                .map_err(|_| format!("invalid protocol {s:?}: expected http, h2c or https"))
        }),
        weight: value(&v1.weight, parse::parse_weight),
        pass_host_header: None,
        balancing: Default::default(),
        weighted: Default::default(),
        problems: Vec::new(),
    };
    merge_service(out.services.entry(backend.clone()).or_default(), service);

    let has_frontend = v1.frontend_rule.is_some()
        || v1.frontend_priority.is_some()
        || v1.frontend_entry_points.is_some();
    if has_frontend {
        let router = RouterLabels {
            rule: value(&v1.frontend_rule, translate),
            priority: value(&v1.frontend_priority, parse::parse_priority),
            // A v1 frontend always points at its own backend.
            service: Some(Value {
                label: v1.backend.as_ref().map(|(key, _)| key.clone()),
                parsed: Ok(backend.clone()),
            }),
            entry_points: value(&v1.frontend_entry_points, parse::parse_entry_points),
            tls: None,
            tls_options: Vec::new(),
            problems: Vec::new(),
            ..RouterLabels::default()
        };
        merge_router(out.routers.entry(backend).or_default(), router);
    }
}

/// Parses a v1 label's value, remembering which label it came from.
fn value<T>(raw: &Raw, parse: impl Fn(&str) -> Result<T, String>) -> Option<Value<T>> {
    raw.as_ref()
        .map(|(key, value)| Value::from_label(key, parse(value)))
}

/// Translates a v1 rule (`Host:a.com;PathPrefix:/x`) into v2 syntax.
fn translate(value: &str) -> Result<String, String> {
    let rule = parse::parse_rule(value)?;
    crate::rules::translate_v1(&rule).map_err(|e| format!("invalid v1 rule: {e}"))
}

/// Fills the fields `dst` (from v2 labels) leaves unset with the v1 ones.
fn merge_router(dst: &mut RouterLabels, v1: RouterLabels) {
    fill(&mut dst.rule, v1.rule);
    fill(&mut dst.priority, v1.priority);
    fill(&mut dst.service, v1.service);
    fill(&mut dst.entry_points, v1.entry_points);
    fill(&mut dst.tls, v1.tls);
    dst.problems.extend(v1.problems);
}

/// Fills the fields `dst` (from v2 labels) leaves unset with the v1 ones.
fn merge_service(dst: &mut ServiceLabels, v1: ServiceLabels) {
    fill(&mut dst.port, v1.port);
    fill(&mut dst.scheme, v1.scheme);
    fill(&mut dst.weight, v1.weight);
    fill(&mut dst.pass_host_header, v1.pass_host_header);
    dst.problems.extend(v1.problems);
}

fn fill<T>(dst: &mut Option<T>, v1: Option<T>) {
    if dst.is_none() {
        *dst = v1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamic::Scheme;
    use crate::labels::tests::task;

    fn parsed(labels: &[(&str, &str)]) -> TaskLabels {
        let t = task("t1", &[80], labels);
        parse::parse_task(&t, "traefik")
    }

    #[test]
    fn every_v1_key_is_translated() {
        let got = parsed(&[
            ("traefik.frontend.rule", "Host:a.com"),
            ("traefik.frontend.priority", "7"),
            ("traefik.frontend.entryPoints", "web,websecure"),
            ("traefik.protocol", "h2c"),
            ("traefik.port", "9000"),
            ("traefik.weight", "3"),
            ("traefik.backend", "api"),
        ]);
        assert!(got.problems.is_empty(), "{:?}", got.problems);
        let service = &got.services["api"];
        assert_eq!(service.port.as_ref().unwrap().parsed, Ok(9000));
        assert_eq!(
            service.port.as_ref().unwrap().label.as_deref(),
            Some("traefik.port")
        );
        assert_eq!(service.scheme.as_ref().unwrap().parsed, Ok(Scheme::H2c));
        assert_eq!(service.weight.as_ref().unwrap().parsed, Ok(3));
        let router = &got.routers["api"];
        assert_eq!(
            router.rule.as_ref().unwrap().parsed,
            crate::rules::translate_v1("Host:a.com").map_err(|e| e.to_string())
        );
        assert_eq!(router.priority.as_ref().unwrap().parsed, Ok(7));
        assert_eq!(
            router.service.as_ref().unwrap().parsed,
            Ok("api".to_string())
        );
        assert_eq!(
            router.entry_points.as_ref().unwrap().parsed,
            Ok(vec!["web".to_string(), "websecure".to_string()])
        );
    }

    #[test]
    fn v1_keys_match_in_any_case() {
        let got = parsed(&[
            ("traefik.Frontend.EntryPoints", "web"),
            ("traefik.PORT", "81"),
        ]);
        assert!(got.problems.is_empty(), "{:?}", got.problems);
        let name = task("t1", &[], &[]).default_name();
        assert!(got.routers[&name].entry_points.is_some());
        assert_eq!(got.services[&name].port.as_ref().unwrap().parsed, Ok(81));
    }

    #[test]
    fn v2_wins_field_by_field_and_hides_overridden_v1_errors() {
        let got = parsed(&[
            ("traefik.backend", "api"),
            ("traefik.port", "not-a-port"),
            ("traefik.protocol", "h2c"),
            ("traefik.frontend.rule", "Host:a.com"),
            ("traefik.frontend.priority", "3"),
            ("traefik.http.services.api.loadbalancer.server.port", "8080"),
            ("traefik.http.routers.api.rule", "PathPrefix(`/v2`)"),
        ]);
        let service = &got.services["api"];
        assert_eq!(service.port.as_ref().unwrap().parsed, Ok(8080));
        assert_eq!(service.scheme.as_ref().unwrap().parsed, Ok(Scheme::H2c));
        let router = &got.routers["api"];
        assert_eq!(
            router.rule.as_ref().unwrap().parsed,
            Ok("PathPrefix(`/v2`)".to_string())
        );
        assert_eq!(router.priority.as_ref().unwrap().parsed, Ok(3));
    }

    #[test]
    fn service_only_without_frontend_labels() {
        let got = parsed(&[("traefik.port", "81")]);
        assert!(got.routers.is_empty());
        assert_eq!(got.services.len(), 1);
    }

    #[test]
    fn bad_v1_values_stay_in_their_slots() {
        let got = parsed(&[
            ("traefik.protocol", "ftp"),
            ("traefik.weight", "-2"),
            ("traefik.frontend.priority", "x"),
            ("traefik.backend", " "),
        ]);
        // An empty backend is the task's problem; the default name is used instead.
        assert_eq!(got.problems.len(), 1);
        assert_eq!(got.problems[0].label.as_deref(), Some("traefik.backend"));
        let name = task("t1", &[], &[]).default_name();
        let service = &got.services[&name];
        assert_eq!(
            service.scheme.as_ref().unwrap().parsed,
            Err("invalid protocol \"ftp\": expected http, h2c or https".to_string())
        );
        assert!(service.weight.as_ref().unwrap().parsed.is_err());
        assert!(got.routers[&name]
            .priority
            .as_ref()
            .unwrap()
            .parsed
            .is_err());
    }
}
