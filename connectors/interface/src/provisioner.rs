//! The seam for changing a connected system: provisioning as a capability of a connector,
//! beside reading.
//!
//! The core decides *what* changes, as a [`Change`] in the model's terms, after checking it
//! against the synced model. The connector says *how*: [`Writes::prepare`] turns the change
//! into the system's own write (shown to approvers before anything happens, and kept with the
//! request), [`Provisioner::apply`] carries prepared writes out in the batches the system
//! takes, and [`Writes::effects`] says what a carried-out write did to the stored model, in
//! the reader's terms, so the store reflects it at once and the next sync finds nothing new.
//!
//! Every write is safe to apply again: a connector reports what it finds already done (an
//! assignment that exists, a record that is gone) as [`Applied::AlreadyDone`] rather than as
//! a failure, so a write whose answer was lost can be retried.

use crate::times::Timestamp;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connector::ConnectorError;
use crate::model::{Account, Entitlement, EntitlementKind, Grant};

/// A change the core decided on, in the model's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Give `account` the entitlement directly.
    Grant {
        account: String,
        entitlement: String,
        kind: EntitlementKind,
        /// When a time-bound grant ends (the core revokes it then; a system that can also
        /// end it by itself is told).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
    },
    /// Remove the direct grant `grant` (its id in the model, which is the system's record).
    Revoke {
        account: String,
        grant: String,
        entitlement: String,
        kind: EntitlementKind,
    },
    SetProfile {
        account: String,
        profile: String,
    },
    /// Give `account` the role, or none.
    SetRole {
        account: String,
        role: Option<String>,
    },
    SetActive {
        account: String,
        active: bool,
    },
    SetFrozen {
        account: String,
        frozen: bool,
    },
    /// Change some of the account's own fields: `Some(value)` sets one, `None` clears it.
    UpdateAccount {
        account: String,
        fields: Vec<(AccountField, Option<String>)>,
    },
    /// Make a new account with the profile `profile`.
    CreateAccount {
        account: NewAccount,
        profile: String,
    },
}

/// A field of an account a change may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountField {
    Username,
    Email,
    FirstName,
    LastName,
    Title,
    Department,
    FederationId,
}

impl AccountField {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountField::Username => "username",
            AccountField::Email => "email",
            AccountField::FirstName => "first_name",
            AccountField::LastName => "last_name",
            AccountField::Title => "title",
            AccountField::Department => "department",
            AccountField::FederationId => "federation_id",
        }
    }
}

/// A new account's fields (as a request gives them: unknown fields are refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub username: String,
    pub email: String,
    pub last_name: String,
    #[serde(default)]
    pub first_name: Option<String>,
    /// A short name, where the system has one; made from the names when absent.
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub federation_id: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

/// A change as the system will receive it: the connector's own description of the write,
/// opaque to the core, which shows it, stores it with the request and hands it back to
/// [`Provisioner::apply`].
pub type Write = Value;

/// A prepared write to apply, with what the connector needs to judge its answer.
#[derive(Debug, Clone, Copy)]
pub struct Pending<'a> {
    pub write: &'a Write,
    /// Which attempt this is (1 for the first): a later one may find its own earlier work
    /// already done.
    pub attempt: i64,
    /// When the change was asked for: what the system made before it was not made by it.
    pub requested_at: Timestamp,
}

/// How applying one write ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Made now; `record` is the system's record that holds it, where there is one.
    Done {
        record: Option<String>,
        answer: Value,
    },
    /// It was already so (made by an earlier attempt whose answer was lost, or by someone
    /// else): counted as done, saying why.
    AlreadyDone {
        record: Option<String>,
        answer: Value,
        note: String,
    },
    /// The system refused it for a reason trying again will not change. `code` is the
    /// system's error code, where it gave one (for metrics: counts by code).
    Refused {
        reason: String,
        answer: Value,
        code: Option<String>,
    },
    /// It could not be made now (the system busy, unreachable, its quota spent): try later.
    RetryLater {
        reason: String,
        code: Option<String>,
    },
}

/// What a carried-out change did to the stored model, in the reader's terms: `resource` is
/// the reader's resource type the row belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    AccountSaved {
        resource: &'static str,
        account: Account,
    },
    GrantSaved {
        resource: &'static str,
        grant: Grant,
    },
    GrantRemoved {
        id: String,
    },
}

/// What [`Writes::effects`] may read of the stored model.
#[async_trait]
pub trait ModelLookup: Send + Sync {
    async fn account(&self, id: &str) -> Result<Option<Account>, ConnectorError>;
    async fn entitlement(&self, id: &str) -> Result<Option<Entitlement>, ConnectorError>;
}

/// How a connector writes changes: pure, no call to the system, so plans can be shown before
/// anything is connected.
#[async_trait]
pub trait Writes: Send + Sync {
    /// The write that makes `change`.
    fn prepare(&self, change: &Change) -> Write;

    /// Whether the system can end a grant itself at a time (a time-bound grant); `Err` says
    /// why not and what to do.
    fn can_expire(&self) -> Result<(), String> {
        Ok(())
    }

    /// The write that takes back what `write` made, once it made `record` (a time-bound grant
    /// at its end); `None` when it cannot be taken back that way.
    fn undo(&self, write: &Write, record: &str) -> Option<Write>;

    /// What `write`, carried out with the system's `record`, did to the stored model.
    async fn effects(
        &self,
        write: &Write,
        record: Option<&str>,
        model: &dyn ModelLookup,
    ) -> Result<Vec<Effect>, ConnectorError>;
}

/// A connector's provisioning: carrying prepared writes out.
#[async_trait]
pub trait Provisioner: Send + Sync {
    /// Applies `writes`, in the batches the system takes; one outcome per write, in order.
    /// Never fails as a whole: what could not be done is said write by write.
    async fn apply(&self, writes: &[Pending<'_>]) -> Vec<Applied>;

    /// API calls made so far.
    fn calls(&self) -> u64 {
        0
    }
}
