//! The org's data: one table per object, live and deleted rows, and the indexes the business
//! rules need. Knows nothing of HTTP or SOQL; `rules` decides what a write may do.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::id::Id;
use crate::record::{Record, Value};
use crate::schema::{Feature, ObjectType};

/// Rows of one object, in ID order. Rows are immutable behind `Arc`, so a query cursor can
/// hold the rows it matched while writes replace them (the snapshot Salesforce's cursors give).
#[derive(Debug, Default, Clone)]
pub struct Table {
    pub live: BTreeMap<Id, Arc<Record>>,
    /// Deleted rows, `IsDeleted = true`, visible to `queryAll` only.
    pub deleted: BTreeMap<Id, Arc<Record>>,
}

#[derive(Debug, Clone)]
pub struct Org {
    pub organization_id: Id,
    pub name: String,
    pub is_sandbox: bool,
    features: HashSet<Feature>,
    /// Fields field-level security hides from the API's users: (object, field index).
    /// (Inferred simplification: Salesforce hides per profile and permission set; here every
    /// API user of the org is hidden the same fields.)
    hidden_fields: HashSet<(ObjectType, usize)>,
    tables: Vec<Table>,
    sequences: Vec<u64>,
    last_stamp: i64,
    usernames: HashMap<String, Id>,
    /// (assignee, permission set or group) of every live PermissionSetAssignment.
    assignments: HashSet<(Id, Id)>,
    /// The permission sets (profile-owned and group aggregates included) each user is assigned.
    sets_by_user: HashMap<Id, Vec<Id>>,
    logins: HashMap<Id, Id>,
}

impl Org {
    /// An empty org (just its Organization row) created at `created_ms`.
    pub fn new(name: &str, seed: u64, created_ms: i64) -> Org {
        let mut org = Org {
            organization_id: Id::new("00D", 1 + seed % 1_000_000),
            name: name.to_owned(),
            is_sandbox: false,
            features: [Feature::PermissionSetGroups, Feature::PermissionSetLicenses]
                .into_iter()
                .collect(),
            hidden_fields: HashSet::new(),
            tables: vec![Table::default(); ObjectType::ALL.len()],
            sequences: vec![0; ObjectType::ALL.len()],
            last_stamp: 0,
            usernames: HashMap::new(),
            assignments: HashSet::new(),
            sets_by_user: HashMap::new(),
            logins: HashMap::new(),
        };
        // The Organization row itself.
        let schema = ObjectType::Organization.schema();
        let mut values = vec![Value::Null; schema.fields.len()];
        values[0] = Value::Id(org.organization_id);
        let set = |values: &mut Vec<Value>, name: &str, value: Value| {
            values[schema.field_index(name).expect("known field")] = value;
        };
        set(&mut values, "Name", Value::text(name));
        set(
            &mut values,
            "OrganizationType",
            Value::text("Enterprise Edition"),
        );
        set(&mut values, "IsSandbox", Value::Bool(false));
        set(&mut values, "InstanceName", Value::text("EMU5"));
        set(&mut values, "DefaultLocaleSidKey", Value::text("en_US"));
        set(
            &mut values,
            "TimeZoneSidKey",
            Value::text("America/Los_Angeles"),
        );
        for field in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
            set(&mut values, field, Value::DateTime(created_ms));
        }
        let id = org.organization_id;
        org.table_mut(ObjectType::Organization)
            .live
            .insert(id, Arc::new(Record { values }));
        org
    }

    pub fn has_feature(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }

    /// Turns an optional feature on or off. Off, the org becomes one that never had it: its
    /// objects' rows go, and so do the rows that depended on them (group assignments and
    /// aggregate permission sets; permission set license assignments).
    pub fn set_feature(&mut self, feature: Feature, enabled: bool) {
        if enabled {
            self.features.insert(feature);
            return;
        }
        self.features.remove(&feature);
        match feature {
            Feature::PermissionSetGroups => {
                self.purge_where(ObjectType::PermissionSetAssignment, "PermissionSetGroupId");
                self.purge_where(ObjectType::PermissionSet, "PermissionSetGroupId");
                self.purge_all(ObjectType::PermissionSetGroupComponent);
                self.purge_all(ObjectType::PermissionSetGroup);
                self.purge_all(ObjectType::MutingPermissionSet);
                for object in [
                    ObjectType::ObjectPermissions,
                    ObjectType::FieldPermissions,
                    ObjectType::SetupEntityAccess,
                ] {
                    self.purge_orphans(object, "ParentId");
                }
            }
            Feature::PermissionSetLicenses => {
                self.purge_all(ObjectType::PermissionSetLicenseAssign);
                self.purge_all(ObjectType::PermissionSetLicense);
            }
        }
    }

    /// Removes, without a trace in `queryAll`, every row whose `field` is set.
    fn purge_where(&mut self, object: ObjectType, field: &str) {
        let index = object.schema().field_index(field).expect("known field");
        let ids: Vec<Id> = self
            .table(object)
            .live
            .values()
            .chain(self.table(object).deleted.values())
            .filter(|r| !r.get(index).is_null())
            .map(|r| r.id())
            .collect();
        for id in ids {
            self.purge(object, id);
        }
    }

    /// Removes every row whose `field` points at a record that no longer exists.
    fn purge_orphans(&mut self, object: ObjectType, field: &str) {
        let index = object.schema().field_index(field).expect("known field");
        let ids: Vec<Id> = self
            .table(object)
            .live
            .values()
            .filter(|r| {
                r.get(index)
                    .as_id()
                    .is_some_and(|to| self.find(to).is_none())
            })
            .map(|r| r.id())
            .collect();
        for id in ids {
            self.purge(object, id);
        }
    }

    fn purge_all(&mut self, object: ObjectType) {
        let ids: Vec<Id> = self
            .table(object)
            .live
            .keys()
            .chain(self.table(object).deleted.keys())
            .copied()
            .collect();
        for id in ids {
            self.purge(object, id);
        }
    }

    fn purge(&mut self, object: ObjectType, id: Id) {
        if let Some(old) = self.table_mut(object).live.remove(&id) {
            self.index(object, &old, false);
        }
        self.table_mut(object).deleted.remove(&id);
    }

    /// Whether this org has the object at all (optional features).
    pub fn has_object(&self, object: ObjectType) -> bool {
        object
            .feature()
            .is_none_or(|feature| self.has_feature(feature))
    }

    /// Whether the API's users see field `index` of `object`: not hidden by field-level
    /// security, and not a lookup to an object the org lacks (an org without permission set
    /// groups has no `PermissionSet.PermissionSetGroupId`: selecting it is INVALID_FIELD).
    pub fn field_visible(&self, object: ObjectType, index: usize) -> bool {
        let lookup_present = match object.schema().fields[index].field_type {
            crate::schema::FieldType::Reference(target) => self.has_object(target),
            _ => true,
        };
        lookup_present && !self.hidden_fields.contains(&(object, index))
    }

    /// Whether a client at API `version` (major) sees field `index` of `object`: visible, and
    /// not newer than the version.
    pub fn field_visible_at(&self, object: ObjectType, index: usize, version: u32) -> bool {
        object.schema().fields[index].since <= version && self.field_visible(object, index)
    }

    /// Hides `fields` (`Object.Field`) from the API's users, as field-level security does;
    /// the previous set is replaced. An unknown name, or one that cannot be hidden (`Id`,
    /// `Name` and required fields are always visible), is refused naming it.
    pub fn hide_fields(&mut self, fields: &[String]) -> Result<(), String> {
        let mut hidden = HashSet::new();
        for name in fields {
            let (object, field) = name
                .split_once('.')
                .ok_or_else(|| format!("`{name}` is not Object.Field"))?;
            let object = ObjectType::from_name(object)
                .ok_or_else(|| format!("`{name}`: no object `{object}`"))?;
            let index = object
                .schema()
                .field_index(field)
                .ok_or_else(|| format!("`{name}`: no field `{field}` on {}", object.name()))?;
            let schema = &object.schema().fields[index];
            if index == 0 || schema.required || schema.name == "Name" {
                return Err(format!(
                    "`{name}` cannot be hidden: field-level security does not apply to it"
                ));
            }
            hidden.insert((object, index));
        }
        self.hidden_fields = hidden;
        Ok(())
    }

    /// The hidden fields, as `Object.Field`, sorted.
    pub fn hidden_fields(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .hidden_fields
            .iter()
            .map(|(object, index)| {
                format!("{}.{}", object.name(), object.schema().fields[*index].name)
            })
            .collect();
        names.sort();
        names
    }

    pub fn table(&self, object: ObjectType) -> &Table {
        &self.tables[object as usize]
    }

    fn table_mut(&mut self, object: ObjectType) -> &mut Table {
        &mut self.tables[object as usize]
    }

    pub fn get(&self, object: ObjectType, id: Id) -> Option<&Arc<Record>> {
        self.table(object).live.get(&id)
    }

    /// A live record by ID alone, its type found from the key prefix.
    pub fn find(&self, id: Id) -> Option<(ObjectType, &Arc<Record>)> {
        let object = ObjectType::from_key_prefix(id.prefix())?;
        self.get(object, id).map(|record| (object, record))
    }

    pub fn is_deleted(&self, object: ObjectType, id: Id) -> bool {
        self.table(object).deleted.contains_key(&id)
    }

    pub fn count(&self, object: ObjectType) -> usize {
        self.table(object).live.len()
    }

    /// A fresh modification stamp: the wall clock in milliseconds, strictly increasing, so
    /// that `SystemModstamp` watermarks never miss a change made in the same millisecond.
    pub fn stamp(&mut self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.last_stamp = now.max(self.last_stamp + 1);
        self.last_stamp
    }

    /// A new ID for `object`, never one already used (a fixture may hold any IDs).
    pub fn next_id(&mut self, object: ObjectType) -> Id {
        loop {
            let sequence = &mut self.sequences[object as usize];
            *sequence += 1;
            let id = Id::new(object.key_prefix(), *sequence);
            let table = self.table(object);
            if !table.live.contains_key(&id) && !table.deleted.contains_key(&id) {
                return id;
            }
        }
    }

    pub fn user_by_username(&self, username: &str) -> Option<Id> {
        self.usernames.get(&username.to_lowercase()).copied()
    }

    pub fn has_assignment(&self, assignee: Id, target: Id) -> bool {
        self.assignments.contains(&(assignee, target))
    }

    /// Every permission set assigned to `user`, the profile's and group aggregates included.
    pub fn sets_of(&self, user: Id) -> &[Id] {
        self.sets_by_user
            .get(&user)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn login_of(&self, user: Id) -> Option<Id> {
        self.logins.get(&user).copied()
    }

    /// Stores a new row whose `values[0]` already holds its ID, keeping the indexes.
    pub fn insert(&mut self, object: ObjectType, record: Record) {
        self.index(object, &record, true);
        let id = record.id();
        self.table_mut(object).live.insert(id, Arc::new(record));
    }

    /// Replaces a live row.
    pub fn replace(&mut self, object: ObjectType, record: Record) {
        let id = record.id();
        if let Some(old) = self.table(object).live.get(&id).cloned() {
            self.index(object, &old, false);
        }
        self.index(object, &record, true);
        self.table_mut(object).live.insert(id, Arc::new(record));
    }

    /// Moves a live row to the deleted rows with `IsDeleted = true`; returns whether it was live.
    pub fn remove(&mut self, object: ObjectType, id: Id) -> bool {
        let Some(old) = self.table_mut(object).live.remove(&id) else {
            return false;
        };
        self.index(object, &old, false);
        let schema = object.schema();
        let mut record = (*old).clone();
        let stamp = self.stamp();
        if let Some(i) = schema.field_index("IsDeleted") {
            record.values[i] = Value::Bool(true);
        }
        if let Some(i) = schema.field_index("SystemModstamp") {
            record.values[i] = Value::DateTime(stamp);
        }
        self.table_mut(object).deleted.insert(id, Arc::new(record));
        true
    }

    fn index(&mut self, object: ObjectType, record: &Record, add: bool) {
        let schema = object.schema();
        let field = |name: &str| record.get(schema.field_index(name).expect("known field"));
        match object {
            ObjectType::User => {
                if let Some(username) = field("Username").as_text() {
                    let key = username.to_lowercase();
                    if add {
                        self.usernames.insert(key, record.id());
                    } else {
                        self.usernames.remove(&key);
                    }
                }
            }
            ObjectType::PermissionSetAssignment => {
                let assignee = field("AssigneeId").as_id();
                let target = field("PermissionSetGroupId")
                    .as_id()
                    .or_else(|| field("PermissionSetId").as_id());
                if let (Some(assignee), Some(target)) = (assignee, target) {
                    if add {
                        self.assignments.insert((assignee, target));
                    } else {
                        self.assignments.remove(&(assignee, target));
                    }
                }
                if let (Some(assignee), Some(set)) = (assignee, field("PermissionSetId").as_id()) {
                    let sets = self.sets_by_user.entry(assignee).or_default();
                    if add {
                        sets.push(set);
                    } else if let Some(at) = sets.iter().position(|s| *s == set) {
                        sets.swap_remove(at);
                    }
                }
            }
            ObjectType::UserLogin => {
                if let Some(user) = field("UserId").as_id() {
                    if add {
                        self.logins.insert(user, record.id());
                    } else {
                        self.logins.remove(&user);
                    }
                }
            }
            _ => {}
        }
    }
}
