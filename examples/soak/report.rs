//! The end: gantry's state after the load, the verdict on each failed call, and
//! the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::calls::{Failed, Kind, Load, MESSAGES};
use crate::fleet::{Fleet, Kill, Seen};
use crate::probe::{api, Sample};
use crate::Args;

/// A call on a killed backend must have failed within this long after the kill.
const FAIL_WITHIN: Duration = Duration::from_secs(5);

/// One server as the API shows it.
#[derive(Debug, Default)]
struct ServerState {
    health: String,
    reason: String,
    in_flight: u64,
}

impl ServerState {
    /// Taken out by outlier detection: the failed calls of a kill eject a server
    /// for 30 s (more when it happens again), after its backend is back.
    fn ejected(&self) -> bool {
        self.health == "DOWN" && self.reason.contains("eject")
    }
}

/// gantry's state once the load is over.
#[derive(Debug, Default)]
pub(crate) struct After {
    /// The rewrite gantry serves.
    served_rewrite: Option<u64>,
    last_rewrite: u64,
    /// Every server of both services, by service and url.
    servers: BTreeMap<String, ServerState>,
    /// Calls in flight on gantry's entrypoints.
    in_flight: Option<u64>,
    error: Option<String>,
}

impl After {
    pub(crate) async fn read(api: SocketAddr, last_rewrite: u64) -> After {
        let mut after = After {
            last_rewrite,
            ..After::default()
        };
        match api::served_rewrite(api).await {
            Ok(n) => after.served_rewrite = Some(n),
            Err(e) => after.error = Some(e),
        }
        for service in ["echo@file", "echo-alt@file"] {
            let path = format!(
                "/api/http/services/{service}?fields=loadBalancer.servers.url,\
                 loadBalancer.servers.health,loadBalancer.servers.healthReason,\
                 loadBalancer.servers.inFlight"
            );
            match api::get(api, &path).await {
                Ok(v) => {
                    for s in v["loadBalancer"]["servers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let url = format!("{service} {}", s["url"].as_str().unwrap_or("?"));
                        let state = ServerState {
                            health: s["health"].as_str().unwrap_or("?").to_string(),
                            reason: s["healthReason"].as_str().unwrap_or_default().to_string(),
                            in_flight: s["inFlight"].as_u64().unwrap_or(0),
                        };
                        after.servers.insert(url, state);
                    }
                }
                Err(e) => after.error = Some(e),
            }
        }
        match api::get(api, "/api/overview?fields=stats.inFlight").await {
            Ok(v) => after.in_flight = v["stats"]["inFlight"].as_u64(),
            Err(e) => after.error = Some(e),
        }
        after
    }

    /// The last rewrite is served, every server is UP and nothing is in flight.
    pub(crate) fn settled(&self, backends: usize) -> bool {
        self.error.is_none()
            && self.served_rewrite == Some(self.last_rewrite)
            && self.servers.len() >= backends
            && self
                .servers
                .values()
                .all(|s| (s.health == "UP" || s.ejected()) && s.in_flight == 0)
            && self.in_flight == Some(0)
    }
}

/// How a failed call is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// In flight on a backend while it was killed (the backend saw it, or gantry's
    /// message names it).
    InFlightOnKilled,
    /// No backend saw it and nothing names one, but it was in flight during a kill.
    DuringKill,
    Unexplained,
}

pub(crate) struct Report<'a> {
    pub(crate) args: &'a Args,
    pub(crate) load: &'a Load,
    pub(crate) load_seconds: f64,
    pub(crate) seen: &'a Seen,
    pub(crate) fleet: &'a Fleet,
    pub(crate) samples: &'a [Sample],
    pub(crate) end_rss: Option<u64>,
    pub(crate) end_fds: Option<usize>,
    pub(crate) rewrites: u64,
    pub(crate) generations: (u64, u64, u64),
    pub(crate) after: &'a After,
}

impl Report<'_> {
    /// The backend a failed call was on: the one that saw it, else the one gantry's
    /// message names (`server 127.0.0.1:PORT failed`), else a reply's name.
    fn backend_of(&self, f: &Failed) -> Option<usize> {
        if let Some(b) = self.seen.get(f.id) {
            return Some(b);
        }
        let by_port = (0..self.fleet.backends.len()).find(|&i| {
            let addr = format!("127.0.0.1:{}", self.fleet.port_of(i));
            f.error.message.contains(&addr)
        });
        by_port.or_else(|| {
            let name = f.error.backend.as_deref()?;
            self.fleet.backends.iter().position(|b| b.name == name)
        })
    }

    /// Judges one failure; with the kill that explains it.
    fn judge(&self, f: &Failed) -> (Verdict, Option<Kill>) {
        let grace = Duration::from_millis(self.args.kill_grace_ms);
        let during =
            |k: &Kill| f.start <= k.to + grace && f.end >= k.from && f.end <= k.to + FAIL_WITHIN;
        let status = !matches!(f.error.code.as_str(), "MISMATCH" | "HUNG");
        match self.backend_of(f) {
            Some(b) => match self
                .fleet
                .kills
                .iter()
                .find(|k| k.backend == b && during(k))
            {
                Some(k) if status => (Verdict::InFlightOnKilled, Some(*k)),
                k => (Verdict::Unexplained, k.copied()),
            },
            None => match self.fleet.kills.iter().find(|k| during(k)) {
                Some(k) if status => (Verdict::DuringKill, Some(*k)),
                _ => (Verdict::Unexplained, None),
            },
        }
    }

    /// A message with backend addresses replaced by names, for grouping.
    fn anonymise(&self, message: &str) -> String {
        let mut m = message.to_string();
        for (i, b) in self.fleet.backends.iter().enumerate() {
            m = m.replace(&format!("127.0.0.1:{}", self.fleet.port_of(i)), &b.name);
        }
        m
    }

    /// What failures are grouped by: gantry's reason without the service, router
    /// and server it names (`service "echo" of router "echo": server … failed: `).
    fn group_key(&self, message: &str) -> String {
        let mut m = message;
        if m.starts_with("service ") {
            if let Some((_, why)) = m.split_once(" failed: ") {
                m = why;
            }
        }
        let mut m = m.to_string();
        for i in 0..self.fleet.backends.len() {
            m = m.replace(&format!("127.0.0.1:{}", self.fleet.port_of(i)), "<server>");
        }
        m
    }

    /// Prints the report; true if the soak passed.
    pub(crate) fn print(&self) -> bool {
        let a = self.args;
        let load = self.load;
        let mib = |kib: u64| kib as f64 / 1024.0;
        let done = load.done.load(Ordering::Relaxed);
        let failed_total: u64 = load.failed.iter().map(|f| f.load(Ordering::Relaxed)).sum();
        let failures = load.failures.lock().clone();
        let mut verdicts: BTreeMap<Verdict, Vec<(&Failed, Option<Kill>)>> = BTreeMap::new();
        for f in &failures {
            let (v, k) = self.judge(f);
            verdicts.entry(v).or_default().push((f, k));
        }
        // Failures past KEEP_FAILURES were not kept: count them as unexplained.
        let unkept = failed_total - failures.len() as u64;
        let count = |v: Verdict| verdicts.get(&v).map_or(0, Vec::len) as u64;
        let unexplained = count(Verdict::Unexplained) + unkept;
        let explained = count(Verdict::InFlightOnKilled) + count(Verdict::DuringKill);

        let mut problems: Vec<String> = Vec::new();
        let mut out = String::new();
        let _ = writeln!(out, "== gantry soak report ==");
        let _ = writeln!(
            out,
            "calls: {done} of {} in {:.1} s ({:.0} calls/s), {} in flight over {} HTTP/2 connections",
            a.calls,
            self.load_seconds,
            done as f64 / self.load_seconds.max(0.001),
            a.concurrency,
            a.conns
        );
        if done < a.calls {
            problems.push(format!(
                "only {done} of {} calls made within {} s",
                a.calls, a.max_seconds
            ));
        }
        for kind in Kind::ALL {
            let k = kind as usize;
            let ok = load.ok[k].load(Ordering::Relaxed);
            let failed = load.failed[k].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "  {:<14} {:>9} calls  {:>9} ok  {:>6} failed",
                kind.name(),
                ok + failed,
                ok,
                failed
            );
        }
        let _ = writeln!(
            out,
            "  (streams carry {MESSAGES} messages each way; payloads 32 B, 16 KiB for 1 call in 97)"
        );
        let _ = writeln!(
            out,
            "failed: {failed_total} (explained {explained}: {} in flight on a killed backend, \
             {} in flight during a kill, no backend named; unexplained {unexplained})",
            count(Verdict::InFlightOnKilled),
            count(Verdict::DuringKill),
        );
        let mut groups: BTreeMap<(Verdict, String), u64> = BTreeMap::new();
        for (v, list) in &verdicts {
            for (f, _) in list {
                let key = format!("{} {:?}", f.error.code, self.group_key(&f.error.message));
                *groups.entry((*v, key)).or_default() += 1;
            }
        }
        for ((v, key), n) in &groups {
            if *v != Verdict::Unexplained {
                let _ = writeln!(out, "  explained   {n:>5} × {key}");
            }
        }
        if let Some(list) = verdicts.get(&Verdict::Unexplained) {
            for (f, k) in list.iter().take(40) {
                let _ = writeln!(
                    out,
                    "  UNEXPLAINED call #{} {} at {:.3}–{:.3} s on {}: {} {:?}{}",
                    f.id,
                    f.kind.name(),
                    f.start.as_secs_f64(),
                    f.end.as_secs_f64(),
                    self.backend_of(f)
                        .map_or("no backend".to_string(), |b| format!("b{b}")),
                    f.error.code,
                    self.anonymise(&f.error.message),
                    k.map_or(String::new(), |k| format!(
                        " (b{} killed {:.3}–{:.3} s)",
                        k.backend,
                        k.from.as_secs_f64(),
                        k.to.as_secs_f64()
                    )),
                );
            }
            if list.len() > 40 {
                let _ = writeln!(out, "  … {} more unexplained", list.len() - 40);
            }
        }
        if unexplained > 0 {
            problems.push(format!("{unexplained} unexplained failed calls"));
        }
        let explained_kills: Vec<(&Failed, Kill)> = verdicts
            .iter()
            .filter(|(v, _)| **v != Verdict::Unexplained)
            .flat_map(|(_, l)| l)
            .filter_map(|(f, k)| k.map(|k| (*f, k)))
            .collect();
        if !explained_kills.is_empty() {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let late_end = explained_kills
                .iter()
                .map(|(f, k)| f.end.saturating_sub(k.to));
            let late: Vec<Duration> = explained_kills
                .iter()
                .filter(|(f, k)| f.start > k.to)
                .map(|(f, k)| f.start - k.to)
                .collect();
            let _ = writeln!(
                out,
                "  explained calls ended at most {:.1} ms after their backend's sockets closed; \
                 {} of them started after that (at most {:.1} ms after)",
                ms(late_end.max().unwrap_or_default()),
                late.len(),
                ms(late.iter().max().copied().unwrap_or_default()),
            );
        }

        let (gen_before, gen_start, gen_end) = self.generations;
        let lags: Vec<u64> = self.samples.iter().filter_map(|s| s.lag).collect();
        let _ = writeln!(
            out,
            "table swaps: {} rewrites of the tasks file, one every {} ms; gantry built {} routing \
             tables meanwhile (generation {}→{}, {} before the load)",
            self.rewrites,
            a.swap_ms,
            gen_end.saturating_sub(gen_start),
            gen_start,
            gen_end,
            gen_start.saturating_sub(gen_before),
        );
        let _ = writeln!(
            out,
            "  gantry served rewrite #{} at the end (the last written: #{}); \
             behind by at most {} rewrites in {} once-a-second looks",
            self.after
                .served_rewrite
                .map_or("?".to_string(), |n| n.to_string()),
            self.after.last_rewrite,
            lags.iter().max().copied().unwrap_or(0),
            lags.len()
        );
        if self.after.served_rewrite != Some(self.after.last_rewrite) {
            problems.push("gantry does not serve the last rewrite of the tasks file".into());
        }
        if gen_end.saturating_sub(gen_start) < self.rewrites / 2 {
            problems.push("gantry built fewer tables than half the rewrites".into());
        }

        let served = self.fleet.served();
        let _ = writeln!(
            out,
            "backend restarts: {} ({} backends, one killed every {:.1} s and down {:.1} s); calls \
             received: {}",
            self.fleet.kills.len(),
            a.backends,
            a.restart_ms as f64 / 1e3,
            a.down_ms as f64 / 1e3,
            served
                .iter()
                .enumerate()
                .map(|(i, n)| format!("b{i} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let servers = self.after.servers.values();
        let up = servers.clone().filter(|s| s.health == "UP").count();
        let ejected = servers.clone().filter(|s| s.ejected()).count();
        let stuck: u64 = servers.clone().map(|s| s.in_flight).sum();
        let others: Vec<String> = self
            .after
            .servers
            .iter()
            .filter(|(_, s)| s.health != "UP" && !s.ejected())
            .map(|(url, s)| format!("{url} {} ({})", s.health, s.reason))
            .collect();
        let _ = writeln!(
            out,
            "gantry after the load: {} servers: {up} UP, {ejected} DOWN ejected by outlier \
             detection (for 30 s after failed calls), {} otherwise{}; calls in flight: {stuck} on \
             servers, {} on entrypoints{}",
            self.after.servers.len(),
            others.len(),
            if others.is_empty() {
                String::new()
            } else {
                format!(" ({})", others.join(", "))
            },
            self.after
                .in_flight
                .map_or("?".to_string(), |n| n.to_string()),
            self.after
                .error
                .as_ref()
                .map_or(String::new(), |e| format!(" (API: {e})")),
        );
        if stuck > 0 || self.after.in_flight.is_some_and(|n| n > 0) {
            problems.push("gantry still counts calls in flight after the load".into());
        }
        if up + ejected < a.backends * 2 || !others.is_empty() {
            problems.push("not every server is back after the restarts".into());
        }

        // Memory.
        let warm_at = a.calls * a.warmup_percent / 100;
        let warm = self.samples.iter().find(|s| s.done >= warm_at);
        let _ = write!(out, "gantry RSS (MiB, every 10 s):");
        let mut next_at = 0.0;
        let mut shown = 0;
        for s in self.samples {
            if s.at.as_secs_f64() >= next_at {
                if shown % 10 == 0 {
                    let _ = write!(out, "\n ");
                }
                let _ = write!(out, " {:.0}s {:.1}", s.at.as_secs_f64(), mib(s.rss_kib));
                next_at = s.at.as_secs_f64().floor() + 10.0;
                shown += 1;
            }
        }
        let _ = writeln!(out);
        let max = self.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        match (warm, self.end_rss) {
            (Some(w), Some(end)) => {
                let limit = w.rss_kib as f64 * a.rss_factor + (a.rss_slack_mib * 1024) as f64;
                let after_warm: Vec<&Sample> =
                    self.samples.iter().filter(|s| s.at >= w.at).collect();
                let slope = per_minute(&after_warm);
                let ok = (end as f64) <= limit;
                let _ = writeln!(
                    out,
                    "  warm-up ({}% of calls, at {:.0} s) {:.1} MiB, end {:.1} MiB, max {:.1} MiB; \
                     trend after warm-up {:+.2} MiB/min; limit {:.1} × {} + {} = {:.1} MiB: {}",
                    a.warmup_percent,
                    w.at.as_secs_f64(),
                    mib(w.rss_kib),
                    mib(end),
                    mib(max),
                    slope,
                    mib(w.rss_kib),
                    a.rss_factor,
                    a.rss_slack_mib,
                    limit / 1024.0,
                    if ok { "no growth" } else { "GROWTH" }
                );
                if !ok {
                    problems.push("gantry's memory grew after the warm-up".into());
                }
                let _ = writeln!(
                    out,
                    "  open descriptors: {} at warm-up, {} at the end",
                    w.fds,
                    self.end_fds.map_or("?".to_string(), |n| n.to_string())
                );
            }
            _ => {
                let _ = writeln!(out, "  no warm-up sample or no end reading");
                problems.push("resident memory was not sampled".into());
            }
        }
        let pass = problems.is_empty();
        let _ = writeln!(
            out,
            "verdict: {}",
            if pass {
                "PASS".to_string()
            } else {
                format!("FAIL: {}", problems.join("; "))
            }
        );
        print!("{out}");
        pass
    }
}

/// Least-squares slope of RSS over time, MiB per minute.
fn per_minute(samples: &[&Sample]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let n = samples.len() as f64;
    let xs: Vec<f64> = samples.iter().map(|s| s.at.as_secs_f64() / 60.0).collect();
    let ys: Vec<f64> = samples.iter().map(|s| s.rss_kib as f64 / 1024.0).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}
