//! Labels → [`DynamicConfig`]: reads Traefik-style labels on tasks into routers,
//! services and servers, with every problem attached to the object it breaks.
//!
//! Follows Traefik's ECS provider (defaults, names, v1 labels), with one improvement:
//! an error disables only the broken router or service, never the whole configuration.
//!
//! The pipeline, per task in (provider, id) order:
//! 1. exposure: lifecycle, `<prefix>.enable`, constraints ([`build`]);
//! 2. [`parse`]: label keys → per-object typed settings, with [`v1`] labels folded in;
//! 3. [`resolve`]: defaults, server address, invalid values → problems;
//! 4. [`merge`]: objects merged by name across tasks, then rules and references checked.
//!
//! It is a pure function of its input, linear-ish in the number of labels, so it can
//! run on every change for thousands of tasks.

mod balancing;
mod healthcheck;
mod merge;
mod middleware;
mod parse;
mod resolve;
mod v1;

use crate::dynamic::{DynamicConfig, ObjectRef};
use crate::provider::{Lifecycle, Task};
use crate::rules::constraints::Constraint;

/// How labels are read (from `[providers]` in the static configuration).
#[derive(Debug, Clone)]
pub struct LabelOptions {
    /// First segment of every label gantry reads (`traefik`, so Traefik task
    /// definitions work unchanged). Matched case-insensitively.
    pub prefix: String,
    /// Whether a task without `<prefix>.enable` is routed.
    pub exposed_by_default: bool,
    /// Only tasks whose labels match are routed; `None` routes every exposed task.
    pub constraints: Option<Constraint>,
}

impl Default for LabelOptions {
    fn default() -> LabelOptions {
        LabelOptions {
            prefix: "traefik".to_string(),
            exposed_by_default: false,
            constraints: None,
        }
    }
}

/// Builds the dynamic configuration described by the labels of `tasks`.
///
/// The output does not depend on the order of `tasks`. Problems never abort the build:
/// each is listed in [`DynamicConfig::errors`] and, when it is about a router or
/// service, on that object, which is then disabled.
pub fn build(tasks: &[Task], opts: &LabelOptions) -> DynamicConfig {
    let mut sorted: Vec<&Task> = tasks.iter().collect();
    sorted.sort_by(|a, b| (&a.provider, &a.id).cmp(&(&b.provider, &b.id)));

    let mut merger = merge::Merger::default();
    let mut previous: Option<&Task> = None;
    for task in sorted {
        // Providers guarantee unique ids; a repeat would add a second server per task.
        if previous.is_some_and(|p| p.provider == task.provider && p.id == task.id) {
            merger.report(
                ObjectRef::Task(task.id.clone()),
                task,
                parse::Problem::general("duplicate task id: only the first one is used"),
            );
            continue;
        }
        previous = Some(task);
        // Providers normally leave these out already; a stopping task takes no new work.
        if task.lifecycle != Lifecycle::Running {
            continue;
        }
        match exposed(task, opts) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(problem) => {
                merger.report(ObjectRef::Task(task.id.clone()), task, problem);
                continue;
            }
        }
        let labels = parse::parse_task(task, &opts.prefix);
        let defs = resolve::resolve(task, &opts.prefix, labels);
        merger.add(task, defs);
    }
    let mut config = merger.finish();
    // Each https server carries its service's TLS settings: a server shared by two
    // services that verify differently gets two connections.
    for svc in config.services.values_mut() {
        for server in &mut svc.servers {
            if server.scheme == crate::dynamic::Scheme::Https {
                server.tls = Some(svc.load_balancer.tls.clone());
            }
        }
    }
    config
}

/// Whether `task` is to be routed: enabled (explicitly, or by default and not
/// explicitly disabled) and matching the constraints, which see all its labels.
fn exposed(task: &Task, opts: &LabelOptions) -> Result<bool, parse::Problem> {
    let enable = task.labels.iter().find(|(key, _)| {
        parse::strip_prefix(key, &opts.prefix)
            .is_some_and(|rest| rest.eq_ignore_ascii_case("enable"))
    });
    let enabled = match enable {
        Some((key, value)) => parse::parse_bool(value).map_err(|message| {
            parse::Problem::new(
                Some(key.clone()),
                format!("{message}; the task is not routed"),
            )
        })?,
        None => opts.exposed_by_default,
    };
    Ok(enabled
        && opts
            .constraints
            .as_ref()
            .is_none_or(|c| c.matches(&task.labels)))
}

#[cfg(test)]
pub(crate) mod tests;
