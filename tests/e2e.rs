//! gantry's end-to-end tests, in one test binary: each module is one area (tests/<area>.rs),
//! all of them sharing tests/support/. One binary links the dependencies once instead of
//! once per area, which keeps the build small enough for a CI disk and quicker to link.

mod support;

mod api;
mod bad_input;
mod balancing;
mod cli;
mod conformance;
mod dashboard;
mod deadlines;
mod ecs;
mod http;
mod http2;
mod interop;
mod label_corpus;
mod layers;
mod lifecycle;
mod outliers;
mod paused;
mod proxy;
mod reload;
mod resilience;
mod retries;
mod splits;
mod tls;
mod zones;
