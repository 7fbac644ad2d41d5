//! Calls from HTTP/1.1 clients, served by hyper: each request is placed like any
//! other ([`ConnCtx::place`]) and sent with [`Upstream::send`], retried as its
//! router and the retry budget allow, and its response streamed back with the call
//! riding in the body.
//!
//! [`Upstream::send`]: crate::upstream::Upstream::send

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::entrypoint::{ActiveCall, Activity};
use super::respond::{failure, is_grpc, Failure};
use super::{deadline, headers, ConnCtx, Placement};
use crate::balance::Endpoint;
use crate::upstream::{Kept, RequestBody};

/// Serves the requests of one HTTP/1.1 client connection.
#[derive(Clone)]
pub(crate) struct ConnService {
    pub ctx: Arc<ConnCtx>,
    /// Calls open on this client connection (for its idle timeout).
    pub activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let ctx = self.ctx.clone();
        let active = ActiveCall::start(&self.activity);
        Box::pin(async move { Ok(forward(&ctx, req).await.map(|body| body.hold(active))) })
    }
}

async fn forward(ctx: &ConnCtx, req: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let grpc = is_grpc(req.headers());
    let deadline = if grpc {
        deadline::grpc_timeout(req.headers()).and_then(|t| started.checked_add(t))
    } else {
        None
    };
    let placed = match ctx.place(&req, started, grpc) {
        Placement::Placed(p) => p,
        Placement::Refused(f, msg) => return failure(grpc, f, &msg),
    };
    let super::Placed {
        mut call,
        route_name,
        service_name,
        set_cookie,
        retry: retry_rule,
        bytes_in,
        pass_host,
    } = placed;
    let endpoint = call.endpoint().clone();
    let mut req = req.map(|body| RequestBody::new(body, bytes_in));
    // Kept before `prepare` rewrites it for one server.
    let kept = retry_rule.as_ref().map(|_| Kept::keep(&mut req));
    let mut attempts_left = retry_rule.as_ref().map_or(0, |r| r.attempts);
    if let Err(msg) = ctx.prepare(&mut req, &endpoint, pass_host) {
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
                            replay_to(ctx, &service_name, &endpoint, kept, pass_host)
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
        if let (false, Some(mut again)) = (retried, e.request) {
            if let Some(next) = ctx.retry_target(&service_name, &endpoint, again.headers()) {
                super::retarget(&mut again, &next, pass_host);
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
            if let Some((next, again)) = replay_to(ctx, &service_name, &endpoint, kept, pass_host) {
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

/// The server and request for another attempt of a call a server answered, if
/// its body was kept whole and the retry budget allows.
fn replay_to(
    ctx: &ConnCtx,
    service: &str,
    failed: &Arc<Endpoint>,
    kept: &Kept,
    pass_host: bool,
) -> Option<(Arc<Endpoint>, Request<RequestBody>)> {
    let mut again = kept.again()?;
    let pick = ctx.replay_target(service, failed, again.headers(), false)?;
    ctx.prepare(&mut again, &pick, pass_host).ok()?;
    Some((pick, again))
}
