//! The data plane: entrypoints accept HTTP/1.1 and h2c, each request is matched
//! against the current routing table, a server is picked for it alone, and the call
//! is forwarded with bodies, trailers and cancellation streaming both ways.
//!
//! Per request: one `ArcSwap` load, a lookup in the routes indexed by host and path
//! ([`crate::route_index`]) running only the candidates' precompiled matchers, a pick,
//! header rewriting in place, and the upstream send. No locks are held across awaits;
//! the table `Arc` is released before the call goes out, so a long stream never pins
//! an old table.

pub mod body;
pub mod call;
pub mod coalesce;
mod deadline;
mod entrypoint;
mod headers;
pub mod respond;
pub mod retry;
pub mod upstream;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::uri::{Authority, PathAndQuery, Scheme as UriScheme};
use http::{header::HOST, HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;

pub use entrypoint::{bind, Entrypoint};

use crate::balance::Endpoint;
use crate::dynamic::Scheme;
use crate::rules::RequestInfo;
use crate::table::RoutingTable;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::CallStats;
use body::{ProxyBody, RequestBody};
use call::{record_refused, Call, LogContext, Scopes};
use respond::{failure, is_grpc, Failure};

/// The routing table every entrypoint reads; swapped whole by the watcher.
pub type SharedTable = Arc<ArcSwap<RoutingTable>>;

/// Serves the requests of one client connection.
#[derive(Clone)]
pub(crate) struct ConnService {
    table: SharedTable,
    entrypoint: usize,
    entrypoint_name: Arc<str>,
    /// Calls through this entrypoint.
    stats: Arc<CallStats>,
    access_log: Option<Arc<AccessLog>>,
    client: SocketAddr,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    proto: &'static str,
    /// The client's address as a header value (`X-Forwarded-For`), made once.
    client_ip: HeaderValue,
    /// Calls open on this client connection (for its idle timeout).
    activity: Arc<entrypoint::Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        let active = entrypoint::ActiveCall::start(&self.activity);
        Box::pin(async move { Ok(this.forward(req).await.map(|body| body.hold(active))) })
    }
}

impl ConnService {
    async fn forward(self, req: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        let grpc = is_grpc(req.headers());
        let deadline = if grpc {
            deadline::grpc_timeout(req.headers()).and_then(|t| started.checked_add(t))
        } else {
            None
        };
        let mut log = self.log_context(&req);
        let mut scopes = Scopes {
            entrypoint: self.stats.clone(),
            route: None,
            service: None,
        };
        let (endpoint, route_name, service_name, set_cookie, retry_rule) = {
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
                return failure(grpc, Failure::NoRoute, &msg);
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
                return failure(grpc, Failure::NoServer, &msg);
            };
            let retry_rule = route
                .retry
                .as_ref()
                .filter(|r| r.applies(req.method(), req.uri().path(), grpc))
                .cloned();
            (
                pick.endpoint.clone(),
                route.name.clone(),
                service.name.clone(),
                pick.set_cookie,
                retry_rule,
            )
        };
        let bytes_in = log.as_ref().map(|ctx| ctx.bytes_in.clone());
        let mut call = Call::start(started, grpc, scopes, endpoint, log);
        let endpoint = call.endpoint().clone();
        let mut req = req.map(|body| RequestBody::new(body, bytes_in));
        // Kept before `prepare` rewrites it for one server.
        let kept = retry_rule.as_ref().map(|_| retry::Kept::keep(&mut req));
        let mut attempts_left = retry_rule.as_ref().map_or(0, |r| r.attempts);
        if let Err(msg) = self.prepare(&mut req, &endpoint) {
            call.fail(Failure::Unreachable.outcome(grpc).0);
            return failure(grpc, Failure::Unreachable, &msg);
        }
        let mut endpoint = endpoint;
        let mut retried = false;
        loop {
            let sent = match deadline {
                Some(at) => {
                    match tokio::time::timeout_at(at.into(), endpoint.upstream().send(req)).await {
                        Ok(sent) => sent,
                        Err(_) => {
                            // The server's stream is cancelled as the send is dropped.
                            call.fail(Failure::Deadline.outcome(grpc).0);
                            let msg = format!(
                                "deadline exceeded: gantry ended the call after the client's grpc-timeout, waiting for server {} of service {service_name:?}",
                                endpoint.address()
                            );
                            return failure(grpc, Failure::Deadline, &msg);
                        }
                    }
                }
                None => endpoint.upstream().send(req).await,
            };
            let e = match sent {
                Ok(res) => {
                    endpoint.observe_reachable();
                    let answer = retry_rule.as_ref().and_then(|r| {
                        let ended = http_body::Body::is_end_stream(res.body());
                        r.retryable(grpc, res.status(), res.headers(), ended)
                    });
                    if let (Some(outcome), Some(kept)) = (answer, &kept) {
                        if attempts_left > 0 {
                            if let Some((next, again)) =
                                self.replay_to(&service_name, &endpoint, kept)
                            {
                                tracing::debug!(service = %service_name, from = %endpoint.display(), to = %next.display(), "retrying a call its router retries");
                                attempts_left -= 1;
                                call.retarget(next.clone(), outcome);
                                endpoint = next;
                                req = again;
                                continue;
                            }
                        }
                    }
                    let (mut parts, body) = res.into_parts();
                    headers::strip_hop_by_hop(&mut parts.headers, false);
                    if let Some(cookie) = set_cookie {
                        parts.headers.append(http::header::SET_COOKIE, cookie);
                    }
                    call.respond(parts.status, &parts.headers);
                    let body = ProxyBody::upstream(body, call, deadline);
                    return Response::from_parts(parts, body);
                }
                Err(e) => e,
            };
            if e.error.is_connect() {
                endpoint.observe_unreachable(e.error.to_string());
            }
            // A call no server saw is sent once more, elsewhere, within the budget.
            if let (false, Some(again)) = (retried, e.request) {
                if let Some(next) = self.retry_target(&service_name, &endpoint, again.headers()) {
                    tracing::debug!(service = %service_name, from = %endpoint.display(), to = %next.display(), error = %e.error, "retrying a call no server saw");
                    retried = true;
                    call.retarget(next.clone(), Failure::Unreachable.outcome(grpc).0);
                    endpoint = next;
                    req = again;
                    continue;
                }
            }
            // A call a server may have seen, reset before any answer: only if its
            // router retries.
            if let (true, Some(kept)) = (attempts_left > 0, &kept) {
                if let Some((next, again)) = self.replay_to(&service_name, &endpoint, kept) {
                    tracing::debug!(service = %service_name, from = %endpoint.display(), to = %next.display(), error = %e.error, "retrying a failed call its router retries");
                    attempts_left -= 1;
                    call.retarget(next.clone(), crate::telemetry::Outcome::Reset);
                    endpoint = next;
                    req = again;
                    continue;
                }
            }
            call.fail(Failure::Unreachable.outcome(grpc).0);
            tracing::debug!(router = %route_name, service = %service_name, server = %endpoint.display(), error = %e.error, "upstream call failed");
            let msg = format!(
                "service {service_name:?} of router {route_name:?}: server {} failed: {}",
                endpoint.address(),
                e.error
            );
            return failure(grpc, Failure::Unreachable, &msg);
        }
    }

    /// Another server of `service` for a call `failed` never saw, if the retry budget
    /// allows one. Only a server speaking the same protocol: the request is ready for it.
    fn retry_target(
        &self,
        service: &str,
        failed: &Arc<Endpoint>,
        headers: &http::HeaderMap,
    ) -> Option<Arc<Endpoint>> {
        let table = self.table.load();
        let service = table.service_named(service)?;
        let pick = service.balancer.select(headers)?;
        let other =
            !Arc::ptr_eq(pick.endpoint, failed) && pick.endpoint.scheme() == failed.scheme();
        (other && service.retry.withdraw(Instant::now())).then(|| pick.endpoint.clone())
    }

    /// The server and request for another attempt of a call a server answered, if
    /// its body was kept whole and the retry budget allows: another server when the
    /// service has one UP, else the same one again.
    fn replay_to(
        &self,
        service: &str,
        failed: &Arc<Endpoint>,
        kept: &retry::Kept,
    ) -> Option<(Arc<Endpoint>, Request<RequestBody>)> {
        let mut again = kept.again()?;
        let table = self.table.load();
        let entry = table.service_named(service)?;
        let mut pick = entry.balancer.select(again.headers())?.endpoint.clone();
        if Arc::ptr_eq(&pick, failed) {
            // One more pick, for round robin to move on; a lone server is retried.
            if let Some(other) = entry.balancer.select(again.headers()) {
                pick = other.endpoint.clone();
            }
        }
        if !entry.retry.withdraw(Instant::now()) {
            return None;
        }
        self.prepare(&mut again, &pick).ok()?;
        Some((pick, again))
    }

    /// What the access log needs of this request, when logging is on.
    fn log_context(&self, req: &Request<Incoming>) -> Option<Box<LogContext>> {
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
    /// headers. Errors are messages for the client.
    fn prepare(&self, req: &mut Request<RequestBody>, endpoint: &Endpoint) -> Result<(), String> {
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
        let h2 = endpoint.scheme() == Scheme::H2c;
        let headers = req.headers_mut();
        headers::strip_hop_by_hop(headers, h2);
        headers::add_forwarded(headers, &self.client_ip, self.proto, host);
        let target = if h2 {
            // HTTP/2 carries the host in :authority; a Host header beside it is redundant.
            headers.remove(HOST);
            authority.unwrap_or_else(|| endpoint.authority().clone())
        } else {
            if !headers.contains_key(HOST) {
                if let Some(a) = &authority {
                    if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                        headers.insert(HOST, v);
                    }
                }
            }
            endpoint.authority().clone()
        };
        *req.uri_mut() = Uri::builder()
            .scheme(UriScheme::HTTP)
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
