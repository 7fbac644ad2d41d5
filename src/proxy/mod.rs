//! The data plane: entrypoints accept HTTP/1.1 and h2c, each request is matched
//! against the current routing table, a server is picked for it alone, and the call
//! is forwarded with bodies, trailers and cancellation streaming both ways.
//!
//! HTTP/2 clients are served by gantry's own HTTP/2 ([`downstream`], over
//! [`crate::http2`]): one task per client connection, each call an
//! [`crate::upstream::exchange::Exchange`] handed to the server's connection task
//! ([`crate::upstream`]).
//! HTTP/1.1 clients are served by hyper ([`service`]). Both place a call the same
//! way ([`ConnCtx::place`]).
//!
//! Per request: one `ArcSwap` load, a lookup in the routes indexed by host and path
//! ([`crate::route_index`]) running only the candidates' precompiled matchers, a pick,
//! header rewriting in place, and the upstream send. No locks are held across awaits;
//! the table `Arc` is released before the call goes out, so a long stream never pins
//! an old table.

pub mod body;
pub mod call;
mod deadline;
mod downstream;
mod entrypoint;
mod headers;
pub mod respond;
mod service;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use http::uri::{Authority, PathAndQuery, Scheme as UriScheme};
use http::{header::HOST, HeaderValue, Request, Uri, Version};

pub use entrypoint::{bind, Entrypoint, Guards, Settings as EntrypointSettings};

use crate::balance::Endpoint;
use crate::dynamic::Scheme;
use crate::rules::RequestInfo;
use crate::table::{RetryRule, SharedTable};
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::CallStats;
use call::{record_refused, Call, LogContext, Scopes};
use respond::Failure;

/// What every call on one client connection shares.
pub(crate) struct ConnCtx {
    pub table: SharedTable,
    pub entrypoint: usize,
    pub entrypoint_name: Arc<str>,
    /// Calls through this entrypoint.
    pub stats: Arc<CallStats>,
    pub access_log: Option<Arc<AccessLog>>,
    pub client: SocketAddr,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// The client's address as a header value (`X-Forwarded-For`), made once.
    pub client_ip: HeaderValue,
    /// The entrypoint's count of connections closed to protect it.
    pub guards: Arc<entrypoint::Guards>,
}

/// A call the router placed on a server.
pub(crate) struct Placed {
    pub call: Call,
    pub route_name: Arc<str>,
    pub service_name: Arc<str>,
    /// A sticky-session cookie to set on the response.
    pub set_cookie: Option<HeaderValue>,
    /// The router retries this call when its answer says so.
    pub retry: Option<Arc<RetryRule>>,
    /// The client's Host goes to the server as it came (`passhostheader`).
    pub pass_host: bool,
    /// Request body bytes, for the access log (when it is on).
    pub bytes_in: Option<Arc<AtomicU64>>,
}

/// Where a call goes, or why it goes nowhere (counted and logged already).
pub(crate) enum Placement {
    Placed(Placed),
    Refused(Failure, String),
}

impl ConnCtx {
    /// Matches a request to a router, picks a server of its service and starts the
    /// call's bookkeeping there.
    pub(crate) fn place<B>(&self, req: &Request<B>, started: Instant, grpc: bool) -> Placement {
        let mut log = self.log_context(req);
        let mut scopes = Scopes {
            entrypoint: self.stats.clone(),
            route: None,
            service: None,
        };
        let table = self.table.load();
        let info = RequestInfo {
            method: req.method(),
            host: headers::request_host(req.uri(), req.headers()).unwrap_or(""),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
            client_ip: self.client.ip(),
        };
        let Some(route) = table.route(self.entrypoint, &info) else {
            let msg = format!(
                "no router matches {} {} on entrypoint {}",
                req.method(),
                req.uri().path(),
                self.entrypoint_name
            );
            let (outcome, status) = Failure::NoRoute.outcome(grpc);
            record_refused(started, &scopes, outcome, status, log);
            return Placement::Refused(Failure::NoRoute, msg);
        };
        let service = table.resolve_service(route.service());
        service.retry.deposit();
        scopes.route = Some(route.stats.clone());
        scopes.service = Some(service.stats.clone());
        if let Some(ctx) = log.as_mut() {
            ctx.router = Some(route.name.clone());
            ctx.service = Some(service.name.clone());
        }
        let Some(pick) = service.balancer.select(req.headers()) else {
            let msg = format!(
                "service {:?} of router {:?} has no available server",
                service.name, route.name
            );
            let (outcome, status) = Failure::NoServer.outcome(grpc);
            record_refused(started, &scopes, outcome, status, log);
            return Placement::Refused(Failure::NoServer, msg);
        };
        let retry = route
            .retry
            .as_ref()
            .filter(|r| r.applies(req.method(), req.uri().path(), grpc))
            .cloned();
        let bytes_in = log.as_ref().map(|ctx| ctx.bytes_in.clone());
        let call = Call::start(started, grpc, scopes, pick.endpoint.clone(), log);
        Placement::Placed(Placed {
            call,
            route_name: route.name.clone(),
            service_name: service.name.clone(),
            set_cookie: pick.set_cookie,
            retry,
            bytes_in,
            pass_host: service.pass_host,
        })
    }

    /// Another server of `service` for a call `failed` never saw, if the retry budget
    /// allows one. Only a server speaking the same protocol: the request is ready for it.
    pub(crate) fn retry_target(
        &self,
        service: &str,
        failed: &Arc<Endpoint>,
        headers: &http::HeaderMap,
    ) -> Option<Arc<Endpoint>> {
        let table = self.table.load();
        let service = table.service_named(service)?;
        // The failed server may still be picked (it is marked down only as this
        // call fails): a few more picks for round robin or p2c to move past it.
        // Hashing and stickiness pick it every time, and the call fails.
        let mut pick = service.balancer.select(headers)?.endpoint;
        for _ in 0..3 {
            if !Arc::ptr_eq(pick, failed) {
                break;
            }
            pick = service.balancer.select(headers)?.endpoint;
        }
        let other = !Arc::ptr_eq(pick, failed) && pick.scheme() == failed.scheme();
        (other && service.retry.withdraw(Instant::now())).then(|| pick.clone())
    }

    /// The server for another attempt of a call a server answered (its router
    /// retries it), if the retry budget allows: another server when the service has
    /// one UP, else the same one again. With `same_scheme`, only a server speaking
    /// the protocol the request was prepared for.
    pub(crate) fn replay_target(
        &self,
        service: &str,
        failed: &Arc<Endpoint>,
        headers: &http::HeaderMap,
        same_scheme: bool,
    ) -> Option<Arc<Endpoint>> {
        let table = self.table.load();
        let entry = table.service_named(service)?;
        let mut pick = entry.balancer.select(headers)?.endpoint.clone();
        if Arc::ptr_eq(&pick, failed) {
            // One more pick, for round robin to move on; a lone server is retried.
            if let Some(other) = entry.balancer.select(headers) {
                pick = other.endpoint.clone();
            }
        }
        if same_scheme && pick.scheme() != failed.scheme() {
            pick = failed.clone();
        }
        entry.retry.withdraw(Instant::now()).then_some(pick)
    }

    /// What the access log needs of this request, when logging is on.
    fn log_context<B>(&self, req: &Request<B>) -> Option<Box<LogContext>> {
        let log = self.access_log.as_ref()?;
        Some(Box::new(LogContext {
            log: log.clone(),
            entrypoint: self.entrypoint_name.clone(),
            router: None,
            service: None,
            client: self.client,
            method: req.method().clone(),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            traceparent: req.headers().get("traceparent").cloned(),
            bytes_in: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// Rewrites the request for the server: URI, version, hop-by-hop and forwarding
    /// headers. Without `pass_host` the server's own address replaces the client's
    /// Host / :authority (which X-Forwarded-Host keeps). Errors are messages for the
    /// client.
    pub(crate) fn prepare<B>(
        &self,
        req: &mut Request<B>,
        endpoint: &Endpoint,
        pass_host: bool,
    ) -> Result<(), String> {
        let host = headers::request_host(req.uri(), req.headers())
            .and_then(|h| HeaderValue::from_str(h).ok());
        let authority = match req.uri().authority() {
            Some(a) => Some(a.clone()),
            None => req
                .headers()
                .get(HOST)
                .and_then(|h| Authority::try_from(h.as_bytes()).ok()),
        };
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let h2 = endpoint.scheme().is_h2();
        let from_h2 = req.version() == Version::HTTP_2;
        let headers = req.headers_mut();
        if !(h2 && from_h2) {
            // HTTP/2 heads carry no hop-by-hop fields (checked as they were read),
            // so only a hop from or to HTTP/1.1 has any to drop.
            headers::strip_hop_by_hop(headers, h2);
        }
        headers::add_forwarded(headers, &self.client_ip, self.proto, host);
        let target = if h2 {
            // HTTP/2 carries the host in :authority; a Host header beside it is redundant.
            headers.remove(HOST);
            match authority {
                Some(a) if pass_host => a,
                _ => endpoint.authority().clone(),
            }
        } else {
            if !pass_host {
                set_host(headers, endpoint);
            } else if !headers.contains_key(HOST) {
                if let Some(a) = &authority {
                    if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                        headers.insert(HOST, v);
                    }
                }
            }
            endpoint.authority().clone()
        };
        let scheme = match endpoint.scheme() {
            Scheme::Https => UriScheme::HTTPS,
            _ => UriScheme::HTTP,
        };
        *req.uri_mut() = Uri::builder()
            .scheme(scheme)
            .authority(target)
            .path_and_query(path)
            .build()
            .map_err(|e| format!("cannot build the request URI: {e}"))?;
        *req.version_mut() = if h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        Ok(())
    }
}

/// Points a request prepared for one server at another of the same protocol: an
/// HTTP/1.1 request names its server in the URI; an h2c one carries the client's
/// authority and fits any, unless the service does not pass the client's host
/// (`pass_host` false), when the new server's address goes in its place.
pub(crate) fn retarget<B>(req: &mut Request<B>, endpoint: &Endpoint, pass_host: bool) {
    let h2 = endpoint.scheme().is_h2();
    if h2 && pass_host {
        return;
    }
    if !h2 && !pass_host {
        set_host(req.headers_mut(), endpoint);
    }
    let scheme = req.uri().scheme().cloned().unwrap_or(UriScheme::HTTP);
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    if let Ok(uri) = Uri::builder()
        .scheme(scheme)
        .authority(endpoint.authority().clone())
        .path_and_query(path)
        .build()
    {
        *req.uri_mut() = uri;
    }
}

/// The server's own address as the Host header (`passhostheader=false`).
fn set_host(headers: &mut http::HeaderMap, endpoint: &Endpoint) {
    if let Ok(v) = HeaderValue::from_str(endpoint.authority().as_str()) {
        headers.insert(HOST, v);
    }
}
