//! A Salesforce org emulator: OAuth, REST, SOQL, business rules and injected faults, so that
//! Provost's tests, benchmarks and demo have a faithful Salesforce to talk to.
//!
//! The facts it reproduces are in `shared/SALESFORCE.md`; behaviour that file does not pin down
//! is marked UNCONFIRMED where it is chosen.

pub mod error;
pub mod fixture;
pub mod generate;
pub mod id;
pub mod org;
pub mod record;
pub mod rules;
pub mod schema;
pub mod server;
pub mod soql;

pub use generate::Preset;
pub use server::{Emulator, EmulatorConfig, Faults};
