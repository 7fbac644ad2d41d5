//! gantry: a router for AWS ECS that reads routing from Docker labels and balances
//! gRPC per call.
//!
//! The pipeline: [`provider`]s publish task snapshots → the [`watcher`] merges and
//! throttles them → [`labels`] turns labels into a [`dynamic::DynamicConfig`] →
//! [`table`] compiles it into an immutable [`table::RoutingTable`] swapped with
//! `ArcSwap` → the [`proxy`] serves requests from whatever table is current.
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
