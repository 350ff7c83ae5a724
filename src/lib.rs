//! Provost: identity governance for Salesforce orgs.
//!
//! The binary (`src/main.rs`) only calls [`cli::main`]; everything lives here so that the
//! integration tests and benchmarks use the same code.

pub mod audit;
pub mod cli;
pub mod config;
pub mod connect;
pub mod demo;
pub mod emulator;
pub mod http;
pub mod orgs;
pub mod preflight;
pub mod provisioning;
pub mod reports;
pub mod scim;
pub mod secrets;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod times;
pub mod tokens;
pub mod webhooks;
