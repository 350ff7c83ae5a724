//! The connector interface of Provost: the identity model the core stores, and the pieces
//! every connector shares.

pub mod connector;
pub mod model;
pub mod preflight;
pub mod provisioner;
pub mod secret;
pub mod times;
