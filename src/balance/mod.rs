//! Choosing a server for each call.
//!
//! An [`Endpoint`] is one server's live state (in-flight calls, counters, health,
//! its upstream connections), shared by `Arc` and carried across routing-table
//! rebuilds so a rebuild never resets load, health or connections. A [`Balancer`]
//! is the immutable per-service selector built at each rebuild.

mod endpoint;
pub mod probe;
mod wrr;

pub use endpoint::{Endpoint, EndpointKey, Health};
pub use wrr::Balancer;
