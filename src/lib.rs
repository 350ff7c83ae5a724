//! Provost: identity governance for Salesforce orgs.
//!
//! The binary (`src/main.rs`) only calls [`cli::main`]; everything lives here so that the
//! integration tests and benchmarks use the same code.

pub mod audit;
pub mod cli;
pub mod config;
pub mod console;
pub mod http;
pub mod metrics;
pub mod org;
pub mod provisioning;
pub mod reports;
pub mod reviews;
pub mod scim;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tokens;
pub mod util;
pub mod webhooks;
