//! What each permission set opens beyond system permissions: object permissions, field
//! permissions and setup entities (connected apps, Apex classes, custom permissions), and the
//! muting permission sets of some permission set groups.
//!
//! Generated after the rest of the org from a random stream of its own, so the identity
//! records (and their ids) are the same as an org generated without them. Group aggregate
//! sets hold their group's result: the components' permissions OR'ed, muted ones removed;
//! an `Outdated` group's aggregate lags (its last component is not in it yet).

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Preset, Row, DAY_MS, GENERATED_AT_MS};
use crate::id::Id;
use crate::org::Org;
use crate::record::Value;
use crate::schema::{ObjectType, OBJECT_PERMISSION_FIELDS, PERMISSION_FIELDS};

/// Standard and common custom objects with the fields field-level security covers.
const OBJECTS: &[(&str, &[&str])] = &[
    (
        "Account",
        &[
            "AccountNumber",
            "AnnualRevenue",
            "BillingCity",
            "BillingStreet",
            "Description",
            "Industry",
            "NumberOfEmployees",
            "Phone",
            "Rating",
            "Website",
            "Credit_Limit__c",
            "Tax_Id__c",
        ],
    ),
    (
        "Contact",
        &[
            "AssistantName",
            "Birthdate",
            "Department",
            "Email",
            "HomePhone",
            "MailingCity",
            "MailingStreet",
            "MobilePhone",
            "Phone",
            "Title",
            "SSN__c",
            "Salary__c",
        ],
    ),
    (
        "Opportunity",
        &[
            "Amount",
            "CloseDate",
            "Description",
            "ExpectedRevenue",
            "ForecastCategoryName",
            "LeadSource",
            "NextStep",
            "Probability",
            "StageName",
            "Discount__c",
            "Margin__c",
        ],
    ),
    (
        "Lead",
        &[
            "AnnualRevenue",
            "Company",
            "Email",
            "Industry",
            "LeadSource",
            "Phone",
            "Rating",
            "Status",
            "Title",
            "Website",
        ],
    ),
    (
        "Case",
        &[
            "Description",
            "Origin",
            "Priority",
            "Reason",
            "Status",
            "Subject",
            "SuppliedEmail",
            "SuppliedPhone",
            "Escalation_Notes__c",
        ],
    ),
    (
        "Campaign",
        &[
            "ActualCost",
            "BudgetedCost",
            "EndDate",
            "ExpectedRevenue",
            "StartDate",
            "Status",
        ],
    ),
    (
        "Contract",
        &[
            "ContractTerm",
            "Description",
            "EndDate",
            "SpecialTerms",
            "StartDate",
            "Status",
        ],
    ),
    (
        "Refund__c",
        &[
            "Amount__c",
            "Approved_By__c",
            "Bank_Account__c",
            "Reason__c",
            "Status__c",
        ],
    ),
    (
        "Invoice__c",
        &[
            "Amount__c",
            "Due_Date__c",
            "Paid__c",
            "Payment_Terms__c",
            "Tax__c",
        ],
    ),
    (
        "Employee_Record__c",
        &[
            "Compensation__c",
            "Home_Address__c",
            "Performance_Rating__c",
            "SSN__c",
        ],
    ),
];

/// Fields of each generated custom object (`Custom_N__c`), as large orgs have dozens of them.
const CUSTOM_FIELDS: usize = 20;

const CONNECTED_APPS: &[&str] = &[
    "DataLoader",
    "Salesforce Mobile",
    "Workbench",
    "Okta",
    "Provost",
    "Tableau",
];
const APEX_CLASSES: &[&str] = &[
    "RefundService",
    "InvoiceBatch",
    "LeadRouter",
    "CaseEscalation",
    "AccountMerge",
    "QuoteCalculator",
];
const CUSTOM_PERMISSIONS: &[&str] = &[
    "Approve_Refunds",
    "Export_Customer_Data",
    "Bypass_Validation_Rules",
    "View_Salary",
    "Close_Cases",
    "Override_Discounts",
];

/// Muting sets mute these when a component of their group holds them.
const MUTABLE: &[&str] = &[
    "PermissionsModifyAllData",
    "PermissionsViewAllData",
    "PermissionsManageUsers",
    "PermissionsAuthorApex",
    "PermissionsExportReport",
    "PermissionsApiEnabled",
];

/// What one permission set opens.
#[derive(Default, Clone)]
struct Access {
    /// Object -> flags in [`OBJECT_PERMISSION_FIELDS`] order.
    objects: BTreeMap<String, [bool; 7]>,
    /// `Object.Field` -> (read, edit).
    fields: BTreeMap<String, (bool, bool)>,
    entities: BTreeSet<Id>,
}

impl Access {
    fn merge(&mut self, other: &Access) {
        for (object, flags) in &other.objects {
            let mine = self.objects.entry(object.clone()).or_default();
            for (m, o) in mine.iter_mut().zip(flags) {
                *m |= o;
            }
        }
        for (field, (read, edit)) in &other.fields {
            let mine = self.fields.entry(field.clone()).or_default();
            mine.0 |= read;
            mine.1 |= edit;
        }
        self.entities.extend(other.entities.iter().copied());
    }
}

pub(super) fn generate(org: &mut Org, preset: Preset, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_acce55);
    let stamp = GENERATED_AT_MS - 10 * DAY_MS;
    let mut objects: Vec<(String, Vec<String>)> = OBJECTS
        .iter()
        .map(|(o, fields)| {
            (
                (*o).to_owned(),
                fields.iter().map(|f| (*f).to_owned()).collect(),
            )
        })
        .collect();
    for n in 0..preset.custom_objects {
        objects.push((
            format!("Custom_{n}__c"),
            (0..CUSTOM_FIELDS)
                .map(|f| format!("Field_{f}__c"))
                .collect(),
        ));
    }
    let mut entities: Vec<Id> = Vec::new();
    for (object, names, name_field) in [
        (ObjectType::ConnectedApplication, CONNECTED_APPS, "Name"),
        (ObjectType::ApexClass, APEX_CLASSES, "Name"),
        (
            ObjectType::CustomPermission,
            CUSTOM_PERMISSIONS,
            "DeveloperName",
        ),
    ] {
        for name in names {
            let mut row = Row::new(org, object).text(name_field, *name);
            if object == ObjectType::CustomPermission {
                row = row.text("MasterLabel", name.replace('_', " "));
            }
            entities.push(row.stamped(stamp, stamp).insert(org));
        }
    }

    let schema = ObjectType::PermissionSet.schema();
    let index = |name: &str| schema.field_index(name).expect("known field");
    let sets: Vec<(Id, bool, bool, Option<Id>)> = org
        .table(ObjectType::PermissionSet)
        .live
        .values()
        .map(|ps| {
            (
                ps.id(),
                ps.get(index("IsOwnedByProfile")).as_bool() == Some(true),
                ps.get(index("PermissionsModifyAllData")).as_bool() == Some(true),
                ps.get(index("PermissionSetGroupId")).as_id(),
            )
        })
        .collect();
    let mut access: BTreeMap<Id, Access> = BTreeMap::new();
    for &(id, owned, admin, group) in &sets {
        if group.is_some() {
            continue;
        }
        let mut opens = Access::default();
        let share = if admin {
            objects.len()
        } else if owned {
            (objects.len() * 3 / 10).max(2)
        } else {
            rng.gen_range(1..=5).min(objects.len())
        };
        for (object, fields) in objects.choose_multiple(&mut rng, share) {
            let edit = admin || rng.gen_bool(0.6);
            let delete = admin || (edit && rng.gen_bool(0.3));
            let view_all = admin || rng.gen_bool(0.05);
            let modify_all = admin || (delete && rng.gen_bool(0.05));
            let flags = [
                true,
                edit && rng.gen_bool(0.8),
                edit,
                delete,
                view_all || modify_all,
                modify_all,
                admin || rng.gen_bool(0.02),
            ];
            opens.objects.insert(object.clone(), flags);
            for field in fields {
                if admin || rng.gen_bool(0.8) {
                    let field_edit = edit && (admin || rng.gen_bool(0.6));
                    opens
                        .fields
                        .insert(format!("{object}.{field}"), (true, field_edit));
                }
            }
        }
        let count = if admin {
            entities.len()
        } else {
            rng.gen_range(0..=2)
        };
        opens
            .entities
            .extend(entities.choose_multiple(&mut rng, count).copied());
        access.insert(id, opens);
    }

    // Groups: some get a muting set; each aggregate holds its group's result.
    let component = ObjectType::PermissionSetGroupComponent.schema();
    let (group_index, set_index) = (
        component
            .field_index("PermissionSetGroupId")
            .expect("known field"),
        component
            .field_index("PermissionSetId")
            .expect("known field"),
    );
    let mut components: BTreeMap<Id, Vec<Id>> = BTreeMap::new();
    for row in org
        .table(ObjectType::PermissionSetGroupComponent)
        .live
        .values()
    {
        if let (Some(group), Some(set)) = (row.get(group_index).as_id(), row.get(set_index).as_id())
        {
            components.entry(group).or_default().push(set);
        }
    }
    let group_schema = ObjectType::PermissionSetGroup.schema();
    let status_index = group_schema.field_index("Status").expect("known field");
    let name_index = group_schema
        .field_index("DeveloperName")
        .expect("known field");
    let mut muting_sets = 0;
    for &(aggregate, _, _, group) in &sets {
        let Some(group) = group else { continue };
        let Some(group_record) = org.get(ObjectType::PermissionSetGroup, group).cloned() else {
            continue;
        };
        let parts = components.get(&group).cloned().unwrap_or_default();
        let outdated = group_record.get(status_index).as_text() != Some("Updated");
        // An outdated group's aggregate has not taken in its last component yet.
        let counted = if outdated && parts.len() > 1 {
            &parts[..parts.len() - 1]
        } else {
            &parts[..]
        };
        let mut flags = BTreeSet::new();
        let mut opens = Access::default();
        for part in counted {
            let record = org
                .get(ObjectType::PermissionSet, *part)
                .expect("a component set");
            for field in PERMISSION_FIELDS {
                if record.get(index(field)).as_bool() == Some(true) {
                    flags.insert(*field);
                }
            }
            if let Some(part_access) = access.get(part) {
                opens.merge(&part_access.clone());
            }
        }
        let holdable: Vec<&str> = MUTABLE
            .iter()
            .copied()
            .filter(|p| flags.contains(p))
            .collect();
        // The first group that can have one always does, so that small orgs show muting.
        if !holdable.is_empty() && (muting_sets == 0 || rng.gen_bool(0.4)) {
            muting_sets += 1;
            let how_many = rng.gen_range(1..=holdable.len().min(2));
            let muted: Vec<&str> = holdable
                .choose_multiple(&mut rng, how_many)
                .copied()
                .collect();
            let name = group_record.get(name_index).as_text().unwrap_or("Group");
            let mut muting = Row::new(org, ObjectType::MutingPermissionSet)
                .text("DeveloperName", format!("{name}_Muted"))
                .text("MasterLabel", format!("{name} muted"));
            for permission in &muted {
                muting = muting.set(permission, Value::Bool(true));
                flags.remove(permission);
            }
            let muting = muting.stamped(stamp, stamp).insert(org);
            Row::new(org, ObjectType::PermissionSetGroupComponent)
                .set("PermissionSetGroupId", Value::Id(group))
                .set("PermissionSetId", Value::Id(muting))
                .stamped(stamp, stamp)
                .insert(org);
        }
        let mut record = (**org
            .get(ObjectType::PermissionSet, aggregate)
            .expect("the aggregate"))
        .clone();
        for field in PERMISSION_FIELDS {
            record.values[index(field)] = Value::Bool(flags.contains(field));
        }
        org.replace(ObjectType::PermissionSet, record);
        access.insert(aggregate, opens);
    }

    for (parent, opens) in &access {
        // What a set opens was last changed when the set was: its rows carry the set's stamp,
        // so that, as in a real org, they were not all written in one moment.
        let stamp = match org
            .get(ObjectType::PermissionSet, *parent)
            .map(|set| set.get(index("SystemModstamp")))
        {
            Some(Value::DateTime(at)) => *at,
            _ => stamp,
        };
        for (object, flags) in &opens.objects {
            let mut row = Row::new(org, ObjectType::ObjectPermissions)
                .set("ParentId", Value::Id(*parent))
                .text("SobjectType", object.as_str());
            for (field, on) in OBJECT_PERMISSION_FIELDS.iter().zip(flags) {
                row = row.set(field, Value::Bool(*on));
            }
            row.stamped(stamp, stamp).insert(org);
        }
        for (field, (read, edit)) in &opens.fields {
            let object = field.split('.').next().unwrap_or_default();
            Row::new(org, ObjectType::FieldPermissions)
                .set("ParentId", Value::Id(*parent))
                .text("SobjectType", object)
                .text("Field", field.as_str())
                .set("PermissionsRead", Value::Bool(*read))
                .set("PermissionsEdit", Value::Bool(*edit))
                .stamped(stamp, stamp)
                .insert(org);
        }
        for entity in &opens.entities {
            let kind = org.find(*entity).map(|(o, _)| o.name()).unwrap_or_default();
            Row::new(org, ObjectType::SetupEntityAccess)
                .set("ParentId", Value::Id(*parent))
                .set("SetupEntityId", Value::Id(*entity))
                .text("SetupEntityType", kind)
                .stamped(stamp, stamp)
                .insert(org);
        }
    }
}
