//! Passive outlier detection: servers whose calls fail are ejected for a while.
//!
//! Two detectors, both reading the outcome of every call (the `grpc-status` in the
//! trailers or a trailers-only head, a broken stream, a failed dial, an HTTP status):
//!
//! - **consecutive**: a server that fails `consecutive` calls in a row is ejected at
//!   once, from the call path;
//! - **failure percentage**: every `interval`, a server with at least `min_requests`
//!   calls, at least `failure_percent` of them failed, and a failure rate at least
//!   twice its peers' is ejected. The comparison keeps a service-wide outage (a
//!   shared database down) from ejecting servers that are no worse than the rest.
//!
//! A failure is a reset or broken stream, a failed dial, HTTP 502/503/504, or a gRPC
//! code in the service's list (`UNAVAILABLE` by default). A client cancelling is
//! neither failure nor success.
//!
//! An ejection lasts `ejection × times ejected` (capped at `max_ejection`); the count
//! drops by one for every interval the server spends in service, so only a server
//! that keeps failing stays out longer and longer. At most `max_ejection_percent` of a
//! service's servers are out at once (and none of a service with one server). A
//! returning server slow-starts: its share of calls grows from 10% to all over
//! `slow_start`.
//!
//! The call path touches only atomics: a per-server bit mask of failure codes, three
//! counters, the ejected flag and the slow-start share. Everything timed (returns,
//! windows, the slow-start ramp) is done by one sweeper task, every 100 ms
//! ([`crate::health::outlier`], driving a [`Detector`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};

use super::{Endpoint, EndpointKey};
use crate::dynamic::OutlierDetection;
use crate::telemetry::codes::CodeSet;
use crate::telemetry::Outcome;

/// A returning server's first share of calls, per mille.
const SLOW_START_FLOOR: u32 = 100;
const FULL: u32 = 1000;
/// Set in [`OutlierState::mask`] while detection is on for the server.
const ENABLED: u32 = 1 << 31;

/// One service's detector: its settings and how many of its servers are out.
#[derive(Debug)]
pub struct Group {
    settings: OutlierDetection,
    failure_codes: u32,
    interval: Duration,
    ejection: Duration,
    max_ejection: Duration,
    slow_start: Duration,
    members: AtomicU32,
    ejected: AtomicU32,
}

impl Group {
    pub fn new(settings: &OutlierDetection) -> Group {
        // The label reader only lets valid code lists through.
        let codes = CodeSet::parse(&settings.codes).unwrap_or_default();
        Group {
            failure_codes: codes.bits(),
            interval: Duration::from_millis(settings.interval_ms.max(1)),
            ejection: Duration::from_millis(settings.ejection_ms),
            max_ejection: Duration::from_millis(settings.max_ejection_ms.max(settings.ejection_ms)),
            slow_start: Duration::from_millis(settings.slow_start_ms),
            settings: settings.clone(),
            members: AtomicU32::new(0),
            ejected: AtomicU32::new(0),
        }
    }

    /// How many servers may be out at once: the configured share, rounded down, but
    /// at least one of two or more (a share that allows none would turn detection off
    /// for small services, where one sick task hurts most).
    pub fn max_ejected(&self) -> u32 {
        let members = self.members.load(Ordering::Relaxed);
        let percent = self.settings.max_ejection_percent.min(100);
        if members < 2 || percent == 0 {
            return 0;
        }
        (members * percent / 100).max(1)
    }

    /// Takes one ejection slot, if the service has one left.
    fn reserve(&self) -> bool {
        let max = self.max_ejected();
        self.ejected
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        let _ = self
            .ejected
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    fn ejection_for(&self, times: u32) -> Duration {
        self.ejection
            .saturating_mul(times.max(1))
            .min(self.max_ejection)
    }
}

/// The timed part of a server's state, replaced whole when something changes (the
/// [`OutlierState::ejected`] flag decides who may: only the caller that sets it
/// ejects, only the sweeper clears it).
#[derive(Debug, Clone, Default)]
struct Ejection {
    until: Option<Instant>,
    /// Ejections not yet forgiven (the next one lasts this many times longer).
    times: u32,
    reason: Option<String>,
    /// When the server last came back (slow start runs from here).
    returned: Option<Instant>,
}

/// One server's detector state, on its [`Endpoint`].
#[derive(Debug)]
pub struct OutlierState {
    group: ArcSwapOption<Group>,
    /// Failure codes as bits, plus [`ENABLED`]; 0 while no detection applies.
    mask: AtomicU32,
    consecutive_limit: AtomicU32,
    consecutive: AtomicU32,
    /// Calls and failures since the current window started.
    calls: AtomicU32,
    failures: AtomicU32,
    ejected: AtomicBool,
    /// Share of the calls it is picked for that it takes, per mille (slow start).
    admit: AtomicU32,
    ejections: AtomicU64,
    ejection: ArcSwap<Ejection>,
}

impl Default for OutlierState {
    fn default() -> OutlierState {
        OutlierState {
            group: ArcSwapOption::empty(),
            mask: AtomicU32::new(0),
            consecutive_limit: AtomicU32::new(0),
            consecutive: AtomicU32::new(0),
            calls: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            admit: AtomicU32::new(FULL),
            ejections: AtomicU64::new(0),
            ejection: ArcSwap::from_pointee(Ejection::default()),
        }
    }
}

/// Whether an outcome is a failure for a server (None: it says nothing about it).
fn is_failure(mask: u32, outcome: Outcome) -> Option<bool> {
    match outcome {
        Outcome::Cancelled => None,
        Outcome::Reset => Some(true),
        Outcome::Grpc(code) => Some(code < 17 && mask & (1 << code) != 0),
        Outcome::Http(status) => Some(matches!(status, 502..=504)),
    }
}

impl OutlierState {
    /// Counts a finished call on the server `who`; ejects it when it reaches the
    /// consecutive-failure limit. The call path: atomics only, unless it ejects.
    pub fn observe(&self, outcome: Outcome, who: &str) {
        let mask = self.mask.load(Ordering::Relaxed);
        if mask == 0 {
            return;
        }
        let Some(failed) = is_failure(mask, outcome) else {
            return;
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !failed {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            return;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        let run = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = self.consecutive_limit.load(Ordering::Relaxed);
        if limit > 0 && run >= limit && !self.is_ejected() {
            if let Some(group) = self.group.load_full() {
                self.eject(
                    &group,
                    Instant::now(),
                    who,
                    format!("{run} failed calls in a row"),
                );
            }
        }
    }

    /// Ejected: no new calls until the ejection ends.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Per mille of the calls it is picked for that a slow-starting server takes.
    pub fn admit_permille(&self) -> u32 {
        self.admit.load(Ordering::Relaxed)
    }

    /// Why the server is ejected, while it is.
    pub fn reason(&self) -> Option<String> {
        if !self.is_ejected() {
            return None;
        }
        self.ejection.load().reason.clone()
    }

    /// Ejections so far.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Puts the server under `group`'s detection, or takes it out of any (which ends
    /// an ejection at once: the service no longer asks for one). The sweeper does
    /// this as tables change; public for benchmarks.
    pub fn attach(&self, group: Option<Arc<Group>>) {
        match &group {
            Some(g) => {
                let mask = if g.settings.is_enabled() {
                    ENABLED | g.failure_codes
                } else {
                    0
                };
                self.consecutive_limit
                    .store(g.settings.consecutive, Ordering::Relaxed);
                self.mask.store(mask, Ordering::Relaxed);
            }
            None => {
                self.mask.store(0, Ordering::Relaxed);
                self.ejection.store(Arc::default());
                self.ejected.store(false, Ordering::Relaxed);
                self.admit.store(FULL, Ordering::Relaxed);
            }
        }
        self.consecutive.store(0, Ordering::Relaxed);
        self.group.store(group);
    }

    fn eject(&self, group: &Group, now: Instant, who: &str, why: String) -> bool {
        if self
            .ejected
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        if !group.reserve() {
            self.ejected.store(false, Ordering::Release);
            return false;
        }
        let mut reason = String::new();
        self.ejection.rcu(|old| {
            let times = old.times.saturating_add(1);
            let length = group.ejection_for(times);
            reason = format!("ejected for {}: {why}", show(length));
            Ejection {
                until: Some(now + length),
                times,
                reason: Some(reason.clone()),
                returned: None,
            }
        });
        tracing::warn!(server = %who, %reason, "outlier ejected");
        self.admit.store(FULL, Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Ends an ejection that has run its time; moves the slow-start ramp.
    fn tick(&self, group: &Group, now: Instant, who: &str) {
        if self.is_ejected() {
            let e = self.ejection.load_full();
            if e.until.is_some_and(|until| now >= until) {
                self.ejection.store(Arc::new(Ejection {
                    until: None,
                    reason: None,
                    returned: Some(now),
                    times: e.times,
                }));
                let admit = if group.slow_start.is_zero() {
                    FULL
                } else {
                    SLOW_START_FLOOR
                };
                self.admit.store(admit, Ordering::Relaxed);
                // Failures before the ejection say nothing about the server now.
                self.calls.store(0, Ordering::Relaxed);
                self.failures.store(0, Ordering::Relaxed);
                self.consecutive.store(0, Ordering::Relaxed);
                self.ejected.store(false, Ordering::Release);
                group.release();
                tracing::info!(server = %who, "outlier ejection over: back in service");
            }
        } else if self.admit_permille() < FULL {
            let e = self.ejection.load();
            let share = match e.returned {
                Some(at) if !group.slow_start.is_zero() => {
                    let ramp = now.saturating_duration_since(at).as_secs_f64()
                        / group.slow_start.as_secs_f64();
                    let span = f64::from(FULL - SLOW_START_FLOOR);
                    (f64::from(SLOW_START_FLOOR) + span * ramp.min(1.0)) as u32
                }
                _ => FULL,
            };
            self.admit.store(share.min(FULL), Ordering::Relaxed);
        }
    }

    /// The window's calls and failures, starting a new window.
    fn take_window(&self) -> (u32, u32) {
        (
            self.calls.swap(0, Ordering::Relaxed),
            self.failures.swap(0, Ordering::Relaxed),
        )
    }

    /// A whole interval spent in service forgives one past ejection.
    fn forgive(&self, now: Instant, interval: Duration) {
        if self.is_ejected() {
            return;
        }
        let e = self.ejection.load();
        let served = e
            .returned
            .is_none_or(|at| now.saturating_duration_since(at) >= interval);
        if served && e.times > 0 {
            drop(e);
            self.ejection.rcu(|old| {
                // Ejected meanwhile: nothing to forgive.
                if self.is_ejected() {
                    return Ejection::clone(old);
                }
                Ejection {
                    times: old.times.saturating_sub(1),
                    ..Ejection::clone(old)
                }
            });
        }
    }
}

fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Ends the window of a group: ejects members failing at least the configured
/// percentage of at least `min_requests` calls, at twice their peers' rate or more.
fn close_window(group: &Group, members: &[Arc<Endpoint>], now: Instant) {
    let windows: Vec<(u32, u32)> = members.iter().map(|e| e.outlier().take_window()).collect();
    judge(group, members, &windows, now);
    for e in members {
        e.outlier().forgive(now, group.interval);
    }
}

fn judge(group: &Group, members: &[Arc<Endpoint>], windows: &[(u32, u32)], now: Instant) {
    let settings = &group.settings;
    if settings.failure_percent == 0 {
        return;
    }
    let (total_calls, total_failures) = windows.iter().fold((0u64, 0u64), |(c, f), w| {
        (c + u64::from(w.0), f + u64::from(w.1))
    });
    let min = u64::from(settings.min_requests.max(1));
    for (e, &(calls, failures)) in members.iter().zip(windows) {
        let (calls, failures) = (u64::from(calls), u64::from(failures));
        if calls < min || failures * 100 < calls * u64::from(settings.failure_percent) {
            continue;
        }
        let (rest_calls, rest_failures) = (total_calls - calls, total_failures - failures);
        // Its peers must have been tried enough to compare, and fail half as often.
        if rest_calls < min || failures * rest_calls < 2 * rest_failures * calls {
            continue;
        }
        let why = format!(
            "{failures} of {calls} calls failed ({}%) in {}, its peers {rest_failures} of {rest_calls}",
            failures * 100 / calls,
            show(group.interval)
        );
        e.outlier().eject(group, now, e.display(), why);
    }
}

/// A group and the servers it watches now.
struct Watched {
    group: Arc<Group>,
    members: Vec<Arc<Endpoint>>,
    window_started: Instant,
}

/// The detector's timed side: every watched service's group and members, kept in
/// line with each new routing table ([`Detector::reconcile`]) and swept every tick
/// ([`Detector::sweep`]) by the loop in [`crate::health::outlier`].
#[derive(Default)]
pub struct Detector {
    watched: HashMap<Arc<str>, Watched>,
    attached: HashMap<EndpointKey, Weak<Endpoint>>,
}

impl Detector {
    /// Groups and members for a new table, given each service with detection on (its
    /// name, settings and servers): a group is kept while its settings are unchanged
    /// (so ejections and windows survive reloads); a server in two services is
    /// watched by the first; a server no longer watched is detached.
    pub fn reconcile<'a>(
        &mut self,
        services: impl IntoIterator<Item = (&'a Arc<str>, &'a OutlierDetection, &'a [Arc<Endpoint>])>,
        now: Instant,
    ) {
        let mut old = std::mem::take(&mut self.watched);
        let mut claimed: HashSet<EndpointKey> = HashSet::new();
        for (name, settings, endpoints) in services {
            let (group, window_started) = match old.remove(name) {
                Some(w) if w.group.settings == *settings => (w.group, w.window_started),
                _ => (Arc::new(Group::new(settings)), now),
            };
            let mut members = Vec::new();
            for e in endpoints {
                if !claimed.insert(e.key().clone()) {
                    continue;
                }
                let same = e
                    .outlier()
                    .group
                    .load()
                    .as_ref()
                    .is_some_and(|g| Arc::ptr_eq(g, &group));
                if !same {
                    e.outlier().attach(Some(group.clone()));
                }
                self.attached.insert(e.key().clone(), Arc::downgrade(e));
                members.push(e.clone());
            }
            group.members.store(members.len() as u32, Ordering::Relaxed);
            self.watched.insert(
                name.clone(),
                Watched {
                    group,
                    members,
                    window_started,
                },
            );
        }
        self.attached.retain(|key, weak| {
            if claimed.contains(key) {
                return true;
            }
            if let Some(e) = weak.upgrade() {
                e.outlier().attach(None);
            }
            false
        });
    }

    /// Ends ejections that ran their time, moves slow starts, closes windows.
    pub fn sweep(&mut self, now: Instant) {
        for w in self.watched.values_mut() {
            let mut out = 0;
            for e in &w.members {
                e.outlier().tick(&w.group, now, e.display());
                out += u32::from(e.outlier().is_ejected());
            }
            // The true count, whatever raced with the call path.
            w.group.ejected.store(out, Ordering::Relaxed);
            if now.saturating_duration_since(w.window_started) >= w.group.interval {
                w.window_started = now;
                close_window(&w.group, &w.members, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OutlierDetection {
        OutlierDetection {
            slow_start_ms: 1_000,
            ..OutlierDetection::default()
        }
    }

    fn attached(n: usize, s: &OutlierDetection) -> (Vec<Arc<Endpoint>>, Arc<Group>) {
        let eps = crate::balance::test_endpoints(n);
        let group = Arc::new(Group::new(s));
        group.members.store(n as u32, Ordering::Relaxed);
        for e in &eps {
            e.outlier().attach(Some(group.clone()));
        }
        (eps, group)
    }

    const UNAVAILABLE: Outcome = Outcome::Grpc(14);
    const OK: Outcome = Outcome::Grpc(0);

    #[test]
    fn what_counts_as_a_failure() {
        let mask = ENABLED | CodeSet::parse("UNAVAILABLE").unwrap().bits();
        assert_eq!(is_failure(mask, UNAVAILABLE), Some(true));
        assert_eq!(is_failure(mask, Outcome::Grpc(5)), Some(false)); // NOT_FOUND: the caller's
        assert_eq!(is_failure(mask, OK), Some(false));
        assert_eq!(is_failure(mask, Outcome::Grpc(99)), Some(false));
        assert_eq!(is_failure(mask, Outcome::Reset), Some(true));
        assert_eq!(is_failure(mask, Outcome::Http(503)), Some(true));
        assert_eq!(is_failure(mask, Outcome::Http(500)), Some(false));
        assert_eq!(is_failure(mask, Outcome::Cancelled), None);
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_run() {
        let (eps, group) = attached(2, &settings());
        let o = eps[0].outlier();
        for _ in 0..4 {
            o.observe(UNAVAILABLE, "a");
        }
        o.observe(OK, "a");
        for _ in 0..4 {
            o.observe(UNAVAILABLE, "a");
        }
        assert!(!o.is_ejected());
        o.observe(UNAVAILABLE, "a");
        assert!(o.is_ejected());
        assert!(!eps[0].is_available());
        assert_eq!(group.ejected.load(Ordering::Relaxed), 1);
        assert!(
            o.reason().unwrap().contains("5 failed calls in a row"),
            "{:?}",
            o.reason()
        );
        assert_eq!(o.ejections(), 1);
    }

    #[test]
    fn never_more_than_the_allowed_share_and_never_a_lone_server() {
        let (eps, group) = attached(2, &settings());
        for e in &eps {
            for _ in 0..10 {
                e.outlier().observe(UNAVAILABLE, "x");
            }
        }
        assert_eq!(group.max_ejected(), 1);
        assert_eq!(eps.iter().filter(|e| e.outlier().is_ejected()).count(), 1);

        let (one, _) = attached(1, &settings());
        for _ in 0..10 {
            one[0].outlier().observe(UNAVAILABLE, "x");
        }
        assert!(!one[0].outlier().is_ejected());

        let (ten, group) = attached(10, &settings());
        assert_eq!(group.max_ejected(), 5);
        for e in &ten {
            for _ in 0..5 {
                e.outlier().observe(Outcome::Reset, "x");
            }
        }
        assert_eq!(ten.iter().filter(|e| e.outlier().is_ejected()).count(), 5);
    }

    #[test]
    fn ejections_grow_end_and_slow_start() {
        let (eps, group) = attached(2, &settings());
        let o = eps[0].outlier();
        let t0 = Instant::now();
        assert!(o.eject(&group, t0, "a", "test".into()));
        assert!(o.reason().unwrap().starts_with("ejected for 30s"));
        o.tick(&group, t0 + Duration::from_secs(29), "a");
        assert!(o.is_ejected());
        let back = t0 + Duration::from_secs(30);
        o.tick(&group, back, "a");
        assert!(!o.is_ejected());
        assert_eq!(group.ejected.load(Ordering::Relaxed), 0);
        assert_eq!(o.admit_permille(), SLOW_START_FLOOR);
        o.tick(&group, back + Duration::from_millis(500), "a");
        assert_eq!(o.admit_permille(), 550);
        o.tick(&group, back + Duration::from_secs(2), "a");
        assert_eq!(o.admit_permille(), FULL);
        // Ejected again before being forgiven: twice as long.
        assert!(o.eject(&group, back, "a", "again".into()));
        assert!(
            o.reason().unwrap().starts_with("ejected for 60s"),
            "{:?}",
            o.reason()
        );
        // Capped at the maximum.
        assert_eq!(group.ejection_for(100), Duration::from_secs(300));
    }

    #[test]
    fn failure_percentage_ejects_the_worse_server_only() {
        let s = OutlierDetection {
            consecutive: 0,
            ..settings()
        };
        let (eps, group) = attached(3, &s);
        // Server 0: 20% UNAVAILABLE; servers 1 and 2: 1%.
        for i in 0..100 {
            eps[0]
                .outlier()
                .observe(if i % 5 == 0 { UNAVAILABLE } else { OK }, "a");
            for e in &eps[1..] {
                e.outlier()
                    .observe(if i == 50 { UNAVAILABLE } else { OK }, "b");
            }
        }
        close_window(&group, &eps, Instant::now());
        assert!(eps[0].outlier().is_ejected());
        assert!(eps[0]
            .outlier()
            .reason()
            .unwrap()
            .contains("20 of 100 calls failed (20%)"));
        assert!(!eps[1].outlier().is_ejected() && !eps[2].outlier().is_ejected());
    }

    #[test]
    fn a_service_wide_failure_ejects_nobody() {
        let s = OutlierDetection {
            consecutive: 0,
            ..settings()
        };
        let (eps, group) = attached(3, &s);
        for i in 0..100 {
            for e in &eps {
                e.outlier()
                    .observe(if i % 3 == 0 { UNAVAILABLE } else { OK }, "x");
            }
        }
        close_window(&group, &eps, Instant::now());
        assert!(eps.iter().all(|e| !e.outlier().is_ejected()));
        // Too few calls to judge: nobody either.
        for _ in 0..10 {
            eps[0].outlier().observe(UNAVAILABLE, "a");
            eps[1].outlier().observe(OK, "b");
        }
        close_window(&group, &eps, Instant::now());
        assert!(eps.iter().all(|e| !e.outlier().is_ejected()));
    }

    #[test]
    fn detaching_ends_an_ejection_and_stops_counting() {
        let (eps, group) = attached(2, &settings());
        let o = eps[0].outlier();
        assert!(o.eject(&group, Instant::now(), "a", "test".into()));
        o.attach(None);
        assert!(!o.is_ejected());
        for _ in 0..10 {
            o.observe(UNAVAILABLE, "a");
        }
        assert!(!o.is_ejected());
        assert_eq!(o.take_window(), (0, 0));
    }
}
