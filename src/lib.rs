//! gantry: a router for AWS ECS that reads routing from Docker labels and balances
//! gRPC per call.
//!
//! The pipeline: [`provider`]s publish task snapshots → the [`watcher`] merges and
//! throttles them → [`labels`] turns labels into a [`dynamic::DynamicConfig`] →
//! [`table`] compiles it into an immutable [`table::RoutingTable`] swapped with
//! `ArcSwap` → the [`proxy`] serves requests from whatever table is current.
//!
//! Modules import one way, bottom to top: the wire ([`http2`]) → connections to
//! servers ([`upstream`]) → [`balance`] → [`table`] → [`proxy`] and [`health`] →
//! [`app`], with the configuration side ([`config`], [`provider`], [`dynamic`],
//! [`labels`]) below the data plane and [`api`] a leaf under `app` that only reads
//! (the full order is `LAYERS` in tests/layers.rs).
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod balance;
pub mod config;
pub mod dynamic;
pub mod health;
pub mod http2;
pub mod labels;
pub mod node;
pub mod provider;
pub mod proxy;
pub mod route_index;
pub mod rules;
pub mod table;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod watcher;
