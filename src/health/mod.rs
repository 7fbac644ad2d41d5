//! The loops that watch servers over the current routing table, beside the data
//! plane: active health checks ([`checks`], one [`probe`] task per checked server),
//! reachability dials ([`reachability`]), the outlier detector's timed work
//! ([`outlier`]) and the end of removed servers' drains ([`drain`]).
//!
//! Each reads the table's endpoints and writes what it finds into their live state
//! (in [`crate::balance`]), which the picks read; none of them is on a call's path.

pub mod checks;
pub mod drain;
pub mod outlier;
pub mod probe;
pub mod reachability;
