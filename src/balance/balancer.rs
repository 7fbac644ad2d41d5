//! A service's balancer: the immutable selector built at each table rebuild for the
//! service's strategy.
//!
//! - `wrr`: smooth weighted round robin ([`super::wrr`]).
//! - `p2c`: power of two choices ([`super::p2c`]) over each server's load, its
//!   peak-EWMA time to response headers ([`super::ewma`]) times its calls in flight
//!   plus one, divided by its weight (tower's and linkerd's load measure).
//! - `hash`: consistent hashing ([`super::ring`]) of a request header or gRPC metadata
//!   value: a key stays on its server while that server is available, and a server
//!   joining or leaving moves only about 1/N of the keys. Calls without the header are
//!   round-robined.
//! - `sticky`: a client's first call is round-robined and answered with a cookie naming
//!   its server (a hash of the server's identity, not its address); later calls with the
//!   cookie go there while it is available, else elsewhere with a new cookie.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE};

use super::p2c::{self, Candidate};
use super::ring::{hash_bytes, Ring};
use super::wrr::Wrr;
use super::Endpoint;
use crate::dynamic::{StickyCookie, Strategy, ZoneAffinity};

/// The server picked for a call.
#[derive(Debug)]
pub struct Pick<'a> {
    pub endpoint: &'a Arc<Endpoint>,
    /// A `Set-Cookie` value to add to the response (sticky sessions).
    pub set_cookie: Option<HeaderValue>,
}

/// A service's selector.
#[derive(Debug)]
pub struct Balancer {
    wrr: Wrr,
    /// The servers with their weights (p2c's candidates).
    weighted: Box<[Weighted]>,
    kind: Kind,
    /// Zone affinity: the same strategy over the servers in gantry's zone.
    zone: Option<Box<Zone>>,
}

/// The local part of a service with zone affinity.
#[derive(Debug)]
struct Zone {
    local: Balancer,
    /// Percent of calls kept local while the zone is healthy.
    share: u32,
    /// Local servers UP needed to keep calls local.
    needed: usize,
    calls: AtomicU64,
}

impl Zone {
    /// Enough local servers are UP.
    fn healthy(&self) -> bool {
        let mut up = 0;
        for e in self.local.endpoints() {
            up += usize::from(e.is_available());
            if up >= self.needed {
                return true;
            }
        }
        false
    }

    /// This call stays local (spreading the non-local share evenly over calls).
    fn keep(&self) -> bool {
        self.share >= 100
            || (self.calls.fetch_add(1, Ordering::Relaxed) % 100) < u64::from(self.share)
    }
}

#[derive(Debug)]
enum Kind {
    Wrr,
    P2c,
    Hash { header: HeaderName, ring: Ring },
    Sticky(Sticky),
}

#[derive(Debug)]
struct Sticky {
    name: Box<str>,
    /// Per server: the id its cookie carries, and the whole `Set-Cookie` value.
    ids: Box<[u64]>,
    set_cookie: Box<[HeaderValue]>,
}

impl Balancer {
    /// Builds the selector for `servers` (weight 0: never picked).
    pub fn new(servers: Vec<(Arc<Endpoint>, u32)>, strategy: &Strategy) -> Balancer {
        let weights: Vec<u32> = servers.iter().map(|(_, w)| *w).collect();
        let weighted = servers
            .iter()
            .map(|(e, w)| Weighted {
                endpoint: e.clone(),
                weight: *w,
            })
            .collect();
        let identities: Vec<Vec<u8>> = servers
            .iter()
            .map(|(e, _)| e.display().as_bytes().to_vec())
            .collect();
        let kind = match strategy {
            Strategy::Wrr => Kind::Wrr,
            Strategy::P2c => Kind::P2c,
            Strategy::Hash { header } => match HeaderName::from_bytes(header.as_bytes()) {
                Ok(header) => {
                    let members: Vec<(&[u8], u32)> = identities
                        .iter()
                        .zip(weights.iter())
                        .map(|(id, w)| (id.as_slice(), *w))
                        .collect();
                    Kind::Hash {
                        header,
                        ring: Ring::new(&members),
                    }
                }
                // The label reader only lets valid names through.
                Err(_) => Kind::Wrr,
            },
            Strategy::Sticky { cookie } => Kind::Sticky(Sticky::new(cookie, &identities)),
        };
        Balancer {
            wrr: Wrr::new(servers),
            weighted,
            kind,
            zone: None,
        }
    }

    /// Like [`Balancer::new`], preferring the servers marked `local` (in gantry's
    /// zone): `affinity.share` percent of calls go to them while at least
    /// `min_servers` and `min_healthy_percent` of them are UP; otherwise, and for the
    /// rest, every server is a candidate.
    pub fn in_zone(
        servers: Vec<(Arc<Endpoint>, u32)>,
        strategy: &Strategy,
        affinity: &ZoneAffinity,
        local: &[bool],
    ) -> Balancer {
        let in_zone: Vec<(Arc<Endpoint>, u32)> = servers
            .iter()
            .zip(local.iter().chain(std::iter::repeat(&false)))
            .filter(|(_, l)| **l)
            .map(|(s, _)| s.clone())
            .collect();
        let count = in_zone.len();
        let mut b = Balancer::new(servers, strategy);
        if count > 0 {
            let healthy = (count * affinity.min_healthy_percent.min(100) as usize).div_ceil(100);
            b.zone = Some(Box::new(Zone {
                local: Balancer::new(in_zone, strategy),
                share: affinity.share.min(100),
                needed: healthy.max(affinity.min_servers as usize).max(1),
                calls: AtomicU64::new(0),
            }));
        }
        b
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        self.wrr.endpoints()
    }

    /// Picks a server for a call with these request headers.
    pub fn select(&self, headers: &HeaderMap) -> Option<Pick<'_>> {
        if let Some(zone) = &self.zone {
            if zone.healthy() && zone.keep() {
                if let Some(pick) = zone.local.select(headers) {
                    if pick.endpoint.is_available() {
                        return Some(pick);
                    }
                }
            }
        }
        let endpoints = self.endpoints();
        let plain = |e| Pick {
            endpoint: e,
            set_cookie: None,
        };
        match &self.kind {
            Kind::Wrr => admit(self.wrr.select(), || self.wrr.select()).map(plain),
            Kind::P2c => {
                let pick = || match p2c::pick(&self.weighted, &mut rand::rng()) {
                    Some(i) => endpoints.get(i),
                    // Nothing available: round robin has the last resort.
                    None => self.wrr.select(),
                };
                admit(pick(), pick).map(plain)
            }
            Kind::Hash { header, ring } => {
                let key = headers.get(header).map(|v| hash_bytes(v.as_bytes()));
                let owner = key.and_then(|k| {
                    ring.pick(k, |i| endpoints.get(i).is_some_and(|e| e.is_available()))
                });
                match owner {
                    Some(i) => endpoints.get(i).map(plain),
                    None => self.wrr.select().map(plain),
                }
            }
            Kind::Sticky(sticky) => {
                if let Some(i) = sticky.find(headers) {
                    if let Some(e) = endpoints.get(i).filter(|e| e.is_available()) {
                        return Some(plain(e));
                    }
                }
                let e = self.wrr.select()?;
                let i = endpoints.iter().position(|x| Arc::ptr_eq(x, e))?;
                Some(Pick {
                    endpoint: e,
                    set_cookie: sticky.set_cookie.get(i).cloned(),
                })
            }
        }
    }
}

/// A slow-starting server (back from an outlier ejection) takes only its growing
/// share of the calls it is picked for; the others are picked again, once.
/// (Hashing and sticky sessions keep their keys: a pinned call is not moved.)
fn admit<'a>(
    first: Option<&'a Arc<Endpoint>>,
    again: impl FnOnce() -> Option<&'a Arc<Endpoint>>,
) -> Option<&'a Arc<Endpoint>> {
    let e = first?;
    let share = e.outlier().admit_permille();
    if share >= 1000 || rand::random_range(0..1000) < share {
        return Some(e);
    }
    again().or(Some(e))
}

/// A server as p2c sees it; built once per table, so a pick allocates nothing.
#[derive(Debug)]
struct Weighted {
    endpoint: Arc<Endpoint>,
    weight: u32,
}

impl Candidate for Weighted {
    fn is_available(&self) -> bool {
        self.weight > 0 && self.endpoint.is_available()
    }

    fn load(&self) -> f64 {
        let pending = self.endpoint.in_flight() as f64 + 1.0;
        let rtt = self.endpoint.latency().estimate_nanos(Instant::now());
        rtt * pending / f64::from(self.weight.max(1))
    }
}

impl Sticky {
    fn new(cookie: &StickyCookie, identities: &[Vec<u8>]) -> Sticky {
        let ids: Box<[u64]> = identities.iter().map(|i| hash_bytes(i)).collect();
        let set_cookie = ids
            .iter()
            .map(|id| {
                let mut v = format!("{}={id:016x}; Path=/", cookie.name);
                if let Some(age) = cookie.max_age {
                    v.push_str(&format!("; Max-Age={age}"));
                }
                if cookie.secure {
                    v.push_str("; Secure");
                }
                if cookie.http_only {
                    v.push_str("; HttpOnly");
                }
                if let Some(s) = &cookie.same_site {
                    v.push_str(&format!("; SameSite={s}"));
                }
                HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
            })
            .collect();
        Sticky {
            name: cookie.name.as_str().into(),
            ids,
            set_cookie,
        }
    }

    /// The server the request's cookie names, if any.
    fn find(&self, headers: &HeaderMap) -> Option<usize> {
        for value in headers.get_all(COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            for pair in text.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k != &*self.name {
                    continue;
                }
                let id = u64::from_str_radix(v.trim(), 16).ok()?;
                return self.ids.iter().position(|x| *x == id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{Lifecycle, TaskHealth};
    use std::time::Duration;

    fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
        crate::balance::test_endpoints(n)
    }

    fn index(p: &Pick<'_>) -> usize {
        p.endpoint.address().port() as usize - 1000
    }

    #[test]
    fn p2c_avoids_the_slow_server() {
        let eps = endpoints(2);
        let now = Instant::now();
        eps[0].latency().observe(Duration::from_millis(1), now);
        eps[1].latency().observe(Duration::from_millis(10), now);
        let b = Balancer::new(eps.iter().map(|e| (e.clone(), 1)).collect(), &Strategy::P2c);
        let mut counts = [0; 2];
        for _ in 0..1_000 {
            counts[index(&b.select(&HeaderMap::new()).unwrap())] += 1;
        }
        assert!(counts[1] < 200, "{counts:?}");
        eps[0].observe_platform(TaskHealth::Unhealthy, Lifecycle::Running);
        assert_eq!(index(&b.select(&HeaderMap::new()).unwrap()), 1);
    }

    #[test]
    fn hashing_keeps_keys_and_falls_back_without_one() {
        let eps = endpoints(4);
        let strategy = Strategy::Hash {
            header: "x-tenant-id".into(),
        };
        let b = Balancer::new(eps.iter().map(|e| (e.clone(), 1)).collect(), &strategy);
        let mut h = HeaderMap::new();
        let mut owners = Vec::new();
        for k in 0..200 {
            h.insert(
                "x-tenant-id",
                HeaderValue::from_str(&format!("tenant-{k}")).unwrap(),
            );
            let first = index(&b.select(&h).unwrap());
            for _ in 0..3 {
                assert_eq!(index(&b.select(&h).unwrap()), first);
            }
            owners.push(first);
        }
        assert!((0..4).all(|i| owners.contains(&i)), "{owners:?}");
        // A down server's keys go elsewhere; the others stay put.
        eps[2].observe_platform(TaskHealth::Unhealthy, Lifecycle::Running);
        for (k, owner) in owners.iter().enumerate() {
            h.insert(
                "x-tenant-id",
                HeaderValue::from_str(&format!("tenant-{k}")).unwrap(),
            );
            let now = index(&b.select(&h).unwrap());
            if *owner == 2 {
                assert_ne!(now, 2);
            } else {
                assert_eq!(now, *owner);
            }
        }
        assert!(b.select(&HeaderMap::new()).is_some());
    }

    #[test]
    fn sticky_cookie_pins_a_client() {
        let eps = endpoints(3);
        let strategy = Strategy::Sticky {
            cookie: StickyCookie {
                name: "s".into(),
                secure: true,
                http_only: true,
                same_site: Some("Lax".into()),
                max_age: Some(60),
            },
        };
        let b = Balancer::new(eps.iter().map(|e| (e.clone(), 1)).collect(), &strategy);
        let first = b.select(&HeaderMap::new()).unwrap();
        let set = first.set_cookie.clone().expect("a cookie for a new client");
        let set = set.to_str().unwrap().to_string();
        assert!(
            set.ends_with("; Path=/; Max-Age=60; Secure; HttpOnly; SameSite=Lax"),
            "{set}"
        );
        assert!(
            !set.contains("127.0.0.1"),
            "the cookie must not reveal addresses: {set}"
        );
        let server = index(&first);
        let mut h = HeaderMap::new();
        let pair = set.split(';').next().unwrap();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).unwrap(),
        );
        for _ in 0..10 {
            let p = b.select(&h).unwrap();
            assert_eq!(index(&p), server);
            assert!(p.set_cookie.is_none());
        }
        eps[server].observe_platform(TaskHealth::Unhealthy, Lifecycle::Running);
        let moved = b.select(&h).unwrap();
        assert_ne!(index(&moved), server);
        assert!(moved.set_cookie.is_some());
    }
}
