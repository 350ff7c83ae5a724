//! Integration tests: through the real binary, the real HTTP stack on loopback, and real
//! SQLite and PostgreSQL databases. One test binary with modules, so it links once.

mod access;
mod browser;
mod cli;
mod console;
mod docs;
mod hardening;
mod helpers;
mod http;
mod openapi;
mod provisioning;
mod reports;
mod reviews;
mod scim;
mod scim_filters;
mod store;
mod sync;
mod webhooks;
