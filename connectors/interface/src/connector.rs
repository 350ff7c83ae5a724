//! The seam between Provost's core and a connector.
//!
//! A connector declares the resource types it reads, in the order a sync should read them,
//! and reads each page by page. A page's cursor is opaque text the core stores as a
//! checkpoint: a run stopped by a quota or a crash resumes from the last cursor it saved.
//! Provisioning is a separate, optional capability (a later issue adds it).
//!
//! ## Keys and coverage
//! Every row a resource yields has an id that is either a source record's key or that key
//! followed by `:` and a suffix (`005...:profile`, `0Pa...:0PS...`): the rows of one record sort
//! together. A resource's keys all have the same length (Salesforce's 18-character ids), so no
//! key is the beginning of another. A page says which keys it [covers](Coverage): for those, the
//! page's rows are the complete truth, so a stored row of the same resource under a covered key
//! that the page does not carry is gone from the source. That is how the core finds removals
//! without holding a resource's keys in memory: the pages of a full read cover the key space
//! between them, each a range of keys; a read of changes since a [`Watermark`] covers just the
//! records it names. Since every page says exactly what it covers, pages can be compared in any
//! order.
//!
//! ## Streams
//! A large resource can be read as several [streams](Connector::streams) side by side: each
//! stream is its own ordered read of a key range, page after page, and together they cover the
//! resource's key space. The core reads a few streams at once and keeps each one's cursor as
//! part of the resource's checkpoint.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{Account, Entitlement, Grant, Permission};

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

/// How far a resource has been read, for reading only what changed next time. Opaque to the
/// core (for Salesforce, a `SystemModstamp`); stored when a run completes the resource.
///
/// One that begins with [`ROWS_AS_READ`] says what the rows were when read (a fingerprint), not
/// from when to read changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark(pub String);

/// The beginning of a [`Watermark`] that says what a resource's rows were when read: Provost's
/// own writes of such a resource's rows (provisioning) make it untrue of what the store holds,
/// so the core drops it then, and keeps none from a run they overlapped.
pub const ROWS_AS_READ: &str = "rows:";

/// Which keys a page holds the complete rows of (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// Every key after `after` (from the first key when `None`) up to and including `through`
    /// (to the last when `None`), in the byte order of the ids: a page of a full read.
    Range {
        after: Option<String>,
        through: Option<String>,
    },
    /// Only these records' keys, in any order: a read of changes. A named key without rows is
    /// a record that is gone or no longer matches the connector's filters.
    Records(Vec<String>),
}

impl Default for Coverage {
    /// Every key.
    fn default() -> Self {
        Coverage::Range {
            after: None,
            through: None,
        }
    }
}

/// What one page brought. A page may carry several kinds: a user page carries the accounts
/// and the grants their records imply (profile, role, license).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub accounts: Vec<Account>,
    pub entitlements: Vec<Entitlement>,
    pub grants: Vec<Grant>,
    /// What the page's entitlements open (object, field, setup-entity permissions).
    pub permissions: Vec<Permission>,
    /// The keys this page is the complete truth for.
    pub coverage: Coverage,
    /// Where a later read of changes should start, once this resource is read to the end:
    /// set by connectors that can read changes, on the pages of a read. Or what tells a later
    /// read that nothing changed (a fingerprint). The core stores it when the resource is read
    /// to the end, and gives it back as the next incremental read's `since` (after a read that
    /// skipped rows, that read's own `since`); a resource whose pages carry none is read whole
    /// next time. An empty one says this read's must not be kept (it saw rows newer than its
    /// fingerprint): the core then keeps `since`, as after skipped rows, unless `since` is of the
    /// rows as read ([`ROWS_AS_READ`]), which then describes older rows than the store holds.
    pub watermark: Option<Watermark>,
    /// Where the next page starts; `None` when the resource is read to the end.
    pub next: Option<Cursor>,
    /// How many source records the whole resource holds, when the source says (progress bars).
    pub total: Option<u64>,
    /// How many source records this page read (a user record gives an account and grants).
    pub records: u64,
}

/// Why reading failed, in terms the core can act on.
#[derive(Debug, Clone, thiserror::Error)]
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

/// The source's API quota as it last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quota {
    pub used: u64,
    pub limit: u64,
}

/// A connector that reads an identity system.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The resource types to read, in order.
    fn resource_types(&self) -> &'static [ResourceType];

    /// Reads one page of `resource`, from the start or from `cursor`. With `since`, reads only
    /// what changed after that watermark where the connector can (its pages then cover
    /// [`Coverage::Records`]); a connector that cannot reads everything, as without.
    async fn read_page(
        &self,
        resource: &ResourceType,
        cursor: Option<&Cursor>,
        since: Option<&Watermark>,
    ) -> Result<Page, ConnectorError>;

    /// The streams a full read of `resource` from the start is made of, for reading up to
    /// `ways` of them at once: each stream's start cursor (`None`: the resource's own start).
    /// Each stream is read with [`read_page`](Connector::read_page) from its start until a page
    /// has no `next`; between them, their pages cover every key of the resource. The default
    /// is one stream.
    async fn streams(
        &self,
        resource: &ResourceType,
        since: Option<&Watermark>,
        ways: usize,
    ) -> Result<Vec<Option<Cursor>>, ConnectorError> {
        let _ = (resource, since, ways);
        Ok(vec![None])
    }

    /// The source's API quota, when it reports one.
    fn quota(&self) -> Option<Quota> {
        None
    }

    /// API calls this connector has made so far.
    fn calls(&self) -> u64 {
        0
    }
}
