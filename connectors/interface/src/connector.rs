//! The seam between Provost's core and a connector.
//!
//! A connector declares the resource types it reads, in the order a sync should read them,
//! and reads each page by page. A page's cursor is opaque text the core stores as a
//! checkpoint: a run stopped by a quota or a crash resumes from the last cursor it saved.
//! Provisioning is a separate, optional capability (a later issue adds it).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{Account, Entitlement, Grant};

/// One kind of thing a connector reads, such as Salesforce's permission set assignments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ResourceType {
    /// Stable identifier, used in checkpoints and progress (`users`, `permission_sets`...).
    pub id: &'static str,
    pub label: &'static str,
}

/// Where to continue reading a resource. Opaque to the core; stored as a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor(pub String);

/// What one page brought. A page may carry several kinds: a user page carries the accounts
/// and the grants their records imply (profile, role, license).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub accounts: Vec<Account>,
    pub entitlements: Vec<Entitlement>,
    pub grants: Vec<Grant>,
    /// Where the next page starts; `None` when the resource is read to the end.
    pub next: Option<Cursor>,
    /// How many source records the whole resource holds, when the source says (progress bars).
    pub total: Option<u64>,
}

/// Why reading failed, in terms the core can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The source's API quota is used up: pause the run and resume from its checkpoint later.
    #[error("{message}")]
    QuotaExhausted { message: String },
    /// A transient failure outlasted the connector's own retries: the run can be tried again.
    #[error("{message}")]
    Unavailable { message: String },
    /// Credentials or permissions: nothing changes until someone fixes the configuration.
    #[error("{message}")]
    Denied { message: String },
    /// The cursor cannot be used (expired or from another version); restart the resource.
    #[error("{message}")]
    InvalidCursor { message: String },
    #[error("{message}")]
    Other { message: String },
}

/// A connector that reads an identity system.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The resource types to read, in order.
    fn resource_types(&self) -> &'static [ResourceType];

    /// Reads one page of `resource`, from the start or from `cursor`.
    async fn read_page(
        &self,
        resource: &ResourceType,
        cursor: Option<&Cursor>,
    ) -> Result<Page, ConnectorError>;
}
