//! What gantry observes about the calls it routes: counters and latency per scope
//! (entrypoint, router, service, server), recent rates for the dashboard, JSON
//! access logs, and the gRPC status codes calls end with ([`codes`]). The API
//! renders them (`/metrics` is [`crate::api::metrics`]).
//!
//! The data plane only ever touches relaxed atomics here (see [`CallStats`]); every
//! reader works from those counters at read time, so observing costs nothing when
//! nobody looks.

pub mod access_log;
pub mod codes;
mod stats;
mod window;

pub use stats::{
    bucket_upper, is_error_slot, quantile, slot_name, CallStats, Outcome, BUCKETS, GRPC_CODES,
    SLOTS,
};
pub use window::{Rates, ERROR_WINDOW, RATE_WINDOW};
