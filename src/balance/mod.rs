//! Choosing a server for each call.
//!
//! An [`Endpoint`] is one server's live state (in-flight calls, counters, health,
//! its upstream connections), shared by `Arc` and carried across routing-table
//! rebuilds so a rebuild never resets load, health or connections. A [`Balancer`]
//! is the immutable per-service selector built at each rebuild.
//!
//! The verdicts a pick reads live here too: active health checks' ([`HealthState`])
//! and outlier detection's ([`outlier`]); the loops that produce them over the
//! routing table are [`crate::health`]'s.

mod balancer;
mod endpoint;
pub mod ewma;
pub mod outlier;
pub mod p2c;
pub mod retry;
pub mod ring;
mod split;
mod verdict;
mod wrr;

pub use balancer::{Balancer, Pick};
pub use endpoint::{Endpoint, EndpointKey, Health};
pub use split::Split;
pub use verdict::{HealthState, Thresholds};

/// `n` h2c endpoints `t<i>@127.0.0.1:<1000+i>`, for unit tests.
#[cfg(test)]
pub(crate) fn test_endpoints(n: usize) -> Vec<std::sync::Arc<Endpoint>> {
    (0..n)
        .map(|i| {
            std::sync::Arc::new(Endpoint::new(EndpointKey {
                task: format!("t{i}"),
                address: ([127, 0, 0, 1], 1000 + i as u16).into(),
                scheme: crate::dynamic::Scheme::H2c,
                tls: None,
            }))
        })
        .collect()
}
