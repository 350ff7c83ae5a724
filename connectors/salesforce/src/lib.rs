//! Provost's Salesforce connector.
//!
//! Built so far: authentication (JWT bearer, client credentials, refresh token), a resilient
//! REST client and a SOQL builder. The web server flow, preflight and reading the access model
//! through the connector interface are the rest of the connector issue.

pub mod auth;
pub mod client;
pub mod composite;
pub mod error;
pub mod id;
pub mod limits;
pub mod preflight;
pub mod provisioner;
pub mod reader;
pub mod record;
pub mod retry;
pub mod schema;
pub mod soql;

pub use auth::{Credentials, Session};
pub use client::{ClientConfig, QueryPage, SalesforceClient};
pub use error::SalesforceError;
pub use id::SalesforceId;
pub use limits::ApiUsage;
pub use record::Record;
pub use retry::RetryPolicy;
