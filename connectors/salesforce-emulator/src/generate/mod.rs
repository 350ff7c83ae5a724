//! Generated orgs, deterministic from a seed: the same preset and seed give the same org,
//! IDs included, so tests and benchmarks can name what they expect.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::id::Id;
use crate::org::Org;
use crate::record::{Record, Value};
use crate::rules;
use crate::schema::{ObjectType, PERMISSION_FIELDS};

mod access;

/// The sizes of a generated org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub users: usize,
    pub custom_profiles: usize,
    pub permission_sets: usize,
    pub permission_set_groups: usize,
    pub public_groups: usize,
    pub roles: usize,
    /// Custom objects besides the standard ones, each with 20 fields under field-level
    /// security: what makes FieldPermissions run to hundreds of thousands of rows.
    pub custom_objects: usize,
}

impl Preset {
    pub const SMALL: Preset = Preset {
        users: 50,
        custom_profiles: 4,
        permission_sets: 20,
        permission_set_groups: 4,
        public_groups: 4,
        roles: 8,
        custom_objects: 2,
    };
    pub const MEDIUM: Preset = Preset {
        users: 10_000,
        custom_profiles: 60,
        permission_sets: 400,
        permission_set_groups: 30,
        public_groups: 40,
        roles: 80,
        custom_objects: 20,
    };
    pub const LARGE: Preset = Preset {
        users: 100_000,
        custom_profiles: 288,
        permission_sets: 1_500,
        permission_set_groups: 100,
        public_groups: 100,
        roles: 400,
        custom_objects: 150,
    };

    /// Twice `LARGE`: for checking how memory grows with the org.
    pub const XLARGE: Preset = Preset {
        users: 200_000,
        custom_profiles: 576,
        permission_sets: 3_000,
        permission_set_groups: 200,
        public_groups: 200,
        roles: 800,
        custom_objects: 300,
    };

    pub fn by_name(name: &str) -> Option<Preset> {
        match name {
            "small" => Some(Preset::SMALL),
            "medium" => Some(Preset::MEDIUM),
            "large" => Some(Preset::LARGE),
            "xlarge" => Some(Preset::XLARGE),
            _ => None,
        }
    }
}

/// The username of the generated org's integration user (System Administrator), which the
/// emulator's connected app lets in.
pub fn integration_username(org_name: &str) -> String {
    format!("integration@{}.example.com", domain_of(org_name))
}

fn domain_of(org_name: &str) -> String {
    org_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

/// Fixed "now" of generated data (2026-01-01T00:00:00Z), so generated stamps are deterministic
/// and always earlier than any change made while the emulator runs.
const GENERATED_AT_MS: i64 = 1_767_225_600_000;
const DAY_MS: i64 = 86_400_000;

const FIRST_NAMES: &[&str] = &[
    "Ada", "Ben", "Chloé", "Dmitri", "Émile", "Fatima", "Grace", "Hiroshi", "Inès", "Jürgen",
    "Kofi", "Łukasz", "Maria", "Nguyễn", "Olivia", "Pedro", "Quinn", "Renée", "Søren", "Tomás",
    "Uma", "Vikram", "Wei", "Xavier", "Yasmin", "Zoë", "José", "Ōta", "Siobhán", "Mary Jo",
];
const LAST_NAMES: &[&str] = &[
    "O'Brien",
    "Smith",
    "Müller",
    "García",
    "Dubois",
    "Kowalski",
    "Tanaka",
    "Okafor",
    "D'Angelo",
    "Nakamura",
    "Johansson",
    "Novák",
    "Rossi",
    "Øvergaard",
    "Núñez",
    "Al-Sayed",
    "Chen",
    "O'Connor",
    "Van der Berg",
    "Ivanova",
    "Kim",
    "Patel",
    "Schäfer",
    "Lefèvre",
    "Brown",
];
const DOMAINS: &[&str] = &[
    "Sales",
    "Service",
    "Finance",
    "Marketing",
    "Ops",
    "Legal",
    "HR",
    "IT",
    "Support",
    "Analytics",
];
const ABILITIES: &[&str] = &[
    "Read", "Edit", "Export", "Approve", "Admin", "Report", "Manage", "Audit",
];

struct LicenseSpec {
    name: &'static str,
    key: &'static str,
    user_type: &'static str,
}

const LICENSES: &[LicenseSpec] = &[
    LicenseSpec {
        name: "Salesforce",
        key: "SFDC",
        user_type: "Standard",
    },
    LicenseSpec {
        name: "Salesforce Platform",
        key: "AUL",
        user_type: "Standard",
    },
    LicenseSpec {
        name: "Chatter Free",
        key: "PID_Chatter",
        user_type: "CsnOnly",
    },
    LicenseSpec {
        name: "Customer Community",
        key: "PID_Customer_Community",
        user_type: "CspLitePortal",
    },
    LicenseSpec {
        name: "Customer Community Plus",
        key: "PID_Customer_Community_Plus",
        user_type: "PowerCustomerSuccess",
    },
    LicenseSpec {
        name: "Partner Community",
        key: "PID_Partner_Community",
        user_type: "PowerPartner",
    },
    LicenseSpec {
        name: "Customer Portal Manager Standard",
        key: "PID_Customer_Portal_Standard",
        user_type: "CustomerSuccess",
    },
    LicenseSpec {
        name: "Self-Service",
        key: "PID_Self_Service",
        user_type: "SelfService",
    },
    LicenseSpec {
        name: "Guest User License",
        key: "PID_Guest_User",
        user_type: "Guest",
    },
];

/// Standard profiles: (name, license index, is admin).
const STANDARD_PROFILES: &[(&str, usize, bool)] = &[
    ("System Administrator", 0, true),
    ("Standard User", 0, false),
    ("Read Only", 0, false),
    ("Minimum Access - Salesforce", 0, false),
    ("Standard Platform User", 1, false),
    ("Chatter Free User", 2, false),
    ("Customer Community User", 3, false),
    ("Customer Community Plus User", 4, false),
    ("Partner Community User", 5, false),
    ("Customer Portal Manager Standard", 6, false),
    ("Self Service User", 7, false),
    ("Site Guest User", 8, false),
];

/// Builds one row field by field.
struct Row {
    object: ObjectType,
    record: Record,
}

impl Row {
    fn new(org: &mut Org, object: ObjectType) -> Row {
        let mut values = vec![Value::Null; object.schema().fields.len()];
        values[0] = Value::Id(org.next_id(object));
        for (i, field) in object.schema().fields.iter().enumerate() {
            if field.name.starts_with("Permissions") || field.name == "IsDeleted" {
                values[i] = Value::Bool(false);
            }
        }
        Row {
            object,
            record: Record { values },
        }
    }

    fn id(&self) -> Id {
        self.record.id()
    }

    fn set(mut self, name: &str, value: Value) -> Row {
        let index = self
            .object
            .schema()
            .field_index(name)
            .unwrap_or_else(|| panic!("{} has no field {name}", self.object.name()));
        self.record.values[index] = value;
        self
    }

    fn text(self, name: &str, text: impl Into<Box<str>>) -> Row {
        self.set(name, Value::Text(text.into()))
    }

    fn stamped(self, created: i64, modified: i64) -> Row {
        let schema = self.object.schema();
        let mut row = self;
        if schema.field_index("CreatedDate").is_some() {
            row = row.set("CreatedDate", Value::DateTime(created));
        }
        if schema.field_index("LastModifiedDate").is_some() {
            row = row.set("LastModifiedDate", Value::DateTime(modified));
        }
        row.set("SystemModstamp", Value::DateTime(modified))
    }

    fn insert(self, org: &mut Org) -> Id {
        let id = self.id();
        org.insert(self.object, self.record);
        id
    }
}

/// Generates an org named `name` with the sizes of `preset`.
pub fn generate(name: &str, preset: Preset, seed: u64) -> Org {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut org = Org::new(name, seed, GENERATED_AT_MS - 3_000 * DAY_MS);
    let domain = domain_of(name);
    let stamps = |rng: &mut ChaCha8Rng| {
        let created = GENERATED_AT_MS - rng.gen_range(30..2_000) * DAY_MS;
        let modified = (created + rng.gen_range(0..30) * DAY_MS).min(GENERATED_AT_MS - DAY_MS);
        (created, modified)
    };

    // Licenses: seat counts are filled in once users exist.
    let licenses: Vec<Id> = LICENSES
        .iter()
        .map(|spec| {
            let (c, m) = stamps(&mut rng);
            Row::new(&mut org, ObjectType::UserLicense)
                .text("Name", spec.name)
                .text("MasterLabel", spec.name)
                .text("LicenseDefinitionKey", spec.key)
                .text("Status", "Active")
                .set("TotalLicenses", Value::Int(0))
                .set("UsedLicenses", Value::Int(0))
                .stamped(c, m)
                .insert(&mut org)
        })
        .collect();

    // Profiles, each with the permission set it owns.
    struct ProfileInfo {
        id: Id,
        license: usize,
    }
    let mut profiles: Vec<ProfileInfo> = Vec::new();
    let mut profile_sets: Vec<Id> = Vec::new();
    let customs = (0..preset.custom_profiles).map(|n| {
        let license = if n % 4 == 3 { 1 } else { 0 };
        (
            format!(
                "{} {}",
                DOMAINS[n % DOMAINS.len()],
                ["Rep", "Manager", "Analyst", "Agent"][n / DOMAINS.len() % 4]
            ) + &format!(" {n}"),
            license,
            false,
        )
    });
    let all_profiles: Vec<(String, usize, bool)> = STANDARD_PROFILES
        .iter()
        .map(|(n, l, a)| ((*n).to_owned(), *l, *a))
        .chain(customs)
        .collect();
    for (profile_name, license, admin) in all_profiles {
        let (c, m) = stamps(&mut rng);
        let mut permissions: Vec<&str> = Vec::new();
        if admin {
            permissions.extend(PERMISSION_FIELDS);
        } else if LICENSES[license].user_type == "Standard" {
            permissions.push("PermissionsApiEnabled");
            if rng.gen_bool(0.05) {
                permissions.push("PermissionsViewAllData");
            }
            if rng.gen_bool(0.03) {
                permissions.push("PermissionsManageUsers");
            }
            if rng.gen_bool(0.3) {
                permissions.push("PermissionsExportReport");
            }
        }
        let mut profile = Row::new(&mut org, ObjectType::Profile)
            .text("Name", profile_name.as_str())
            .set("UserLicenseId", Value::Id(licenses[license]))
            .text("UserType", LICENSES[license].user_type)
            .stamped(c, m);
        for permission in &permissions {
            profile = profile.set(permission, Value::Bool(true));
        }
        let profile_id = profile.insert(&mut org);
        let mut owned = Row::new(&mut org, ObjectType::PermissionSet);
        let owned_name = format!("X{}", &owned.id().as_str()[..15]);
        owned = owned
            .text("Name", owned_name)
            .text("Label", format!("{profile_name} (profile)"))
            .set("IsOwnedByProfile", Value::Bool(true))
            .set("ProfileId", Value::Id(profile_id))
            .set("LicenseId", Value::Id(licenses[license]))
            .set(
                "IsCustom",
                Value::Bool(!STANDARD_PROFILES.iter().any(|(n, _, _)| *n == profile_name)),
            )
            .text("Type", "Profile")
            .stamped(c, m);
        for permission in &permissions {
            owned = owned.set(permission, Value::Bool(true));
        }
        profile_sets.push(owned.insert(&mut org));
        profiles.push(ProfileInfo {
            id: profile_id,
            license,
        });
    }

    // Grantable permission sets. About one in ten needs the Salesforce license.
    let mut grantable_sets: Vec<(Id, Option<usize>)> = Vec::new();
    for n in 0..preset.permission_sets {
        let (c, m) = stamps(&mut rng);
        let domain_name = DOMAINS[n % DOMAINS.len()];
        let ability = ABILITIES[(n / DOMAINS.len()) % ABILITIES.len()];
        let license = if rng.gen_bool(0.1) { Some(0) } else { None };
        let mut set = Row::new(&mut org, ObjectType::PermissionSet)
            .text("Name", format!("{domain_name}_{ability}_{n}"))
            .text("Label", format!("{domain_name} {ability} {n}"))
            .text(
                "Description",
                format!(
                    "Lets {domain_name} users {} records",
                    ability.to_lowercase()
                ),
            )
            .set("IsOwnedByProfile", Value::Bool(false))
            .set("IsCustom", Value::Bool(true))
            .text("Type", "Regular")
            .set(
                "LicenseId",
                license.map_or(Value::Null, |l| Value::Id(licenses[l])),
            )
            .stamped(c, m);
        for (permission, chance) in [
            ("PermissionsApiEnabled", 0.3),
            ("PermissionsModifyAllData", 0.01),
            ("PermissionsViewAllData", 0.02),
            ("PermissionsManageUsers", 0.02),
            ("PermissionsAuthorApex", 0.02),
            ("PermissionsCustomizeApplication", 0.02),
            ("PermissionsAssignPermissionSets", 0.02),
            ("PermissionsResetPasswords", 0.03),
            ("PermissionsViewSetup", 0.05),
            ("PermissionsExportReport", 0.1),
        ] {
            if rng.gen_bool(chance) {
                set = set.set(permission, Value::Bool(true));
            }
        }
        grantable_sets.push((set.insert(&mut org), license));
    }

    // Permission set groups of unlicensed sets, each with its aggregate set.
    let unlicensed: Vec<Id> = grantable_sets
        .iter()
        .filter(|(_, l)| l.is_none())
        .map(|(id, _)| *id)
        .collect();
    let mut groups: Vec<Id> = Vec::new();
    for n in 0..preset.permission_set_groups {
        let (c, m) = stamps(&mut rng);
        let label = format!("{} Bundle {n}", DOMAINS[n % DOMAINS.len()]);
        let status = if rng.gen_bool(0.05) {
            "Outdated"
        } else {
            "Updated"
        };
        let group = Row::new(&mut org, ObjectType::PermissionSetGroup)
            .text(
                "DeveloperName",
                format!("{}_Bundle_{n}", DOMAINS[n % DOMAINS.len()]),
            )
            .text("MasterLabel", label.as_str())
            .text("Status", status)
            .stamped(c, m)
            .insert(&mut org);
        let aggregate = rules::insert_aggregate_set(&mut org, group, &label, m);
        let count = rng.gen_range(2..=6).min(unlicensed.len());
        let mut flags = vec![false; PERMISSION_FIELDS.len()];
        for component in unlicensed.choose_multiple(&mut rng, count) {
            Row::new(&mut org, ObjectType::PermissionSetGroupComponent)
                .set("PermissionSetGroupId", Value::Id(group))
                .set("PermissionSetId", Value::Id(*component))
                .stamped(c, m)
                .insert(&mut org);
            let record = org
                .get(ObjectType::PermissionSet, *component)
                .expect("inserted")
                .clone();
            for (i, field) in PERMISSION_FIELDS.iter().enumerate() {
                let index = ObjectType::PermissionSet
                    .schema()
                    .field_index(field)
                    .expect("permission field");
                flags[i] |= record.get(index).as_bool() == Some(true);
            }
        }
        let mut aggregate_record = (**org
            .get(ObjectType::PermissionSet, aggregate)
            .expect("inserted"))
        .clone();
        for (i, field) in PERMISSION_FIELDS.iter().enumerate() {
            let index = ObjectType::PermissionSet
                .schema()
                .field_index(field)
                .expect("permission field");
            aggregate_record.values[index] = Value::Bool(flags[i]);
        }
        org.replace(ObjectType::PermissionSet, aggregate_record);
        groups.push(group);
    }

    // Permission set licenses.
    let mut set_licenses: Vec<Id> = Vec::new();
    for (n, label) in [
        "Sales Console User",
        "Identity Connect",
        "CRM User",
        "Analytics Platform",
    ]
    .iter()
    .enumerate()
    {
        let (c, m) = stamps(&mut rng);
        set_licenses.push(
            Row::new(&mut org, ObjectType::PermissionSetLicense)
                .text("DeveloperName", label.replace(' ', ""))
                .text("MasterLabel", *label)
                .text("Status", "Active")
                .set(
                    "TotalLicenses",
                    Value::Int((preset.users / (3 + n)) as i64 + 10),
                )
                .set("UsedLicenses", Value::Int(0))
                .stamped(c, m)
                .insert(&mut org),
        );
    }

    // A role hierarchy: a CEO, then each role under an earlier one.
    let mut roles: Vec<Id> = Vec::new();
    for n in 0..preset.roles {
        let (c, m) = stamps(&mut rng);
        let parent = if roles.is_empty() {
            None
        } else {
            Some(roles[rng.gen_range(0..roles.len()).min(n / 3)])
        };
        let label = if n == 0 {
            "CEO".to_owned()
        } else {
            format!(
                "{} {} {n}",
                DOMAINS[n % DOMAINS.len()],
                ["Director", "Manager", "Lead", "Team"][n % 4]
            )
        };
        roles.push(
            Row::new(&mut org, ObjectType::UserRole)
                .text("Name", label.as_str())
                .text("DeveloperName", label.replace([' ', '-'], "_"))
                .set("ParentRoleId", parent.map_or(Value::Null, Value::Id))
                .stamped(c, m)
                .insert(&mut org),
        );
    }

    // Users. The first is the integration user the connected app lets in.
    let by_type = |user_type: &str| -> Vec<usize> {
        profiles
            .iter()
            .enumerate()
            .filter(|(_, p)| LICENSES[p.license].user_type == user_type)
            .map(|(i, _)| i)
            .collect()
    };
    let standard_profiles = by_type("Standard");
    let external_types = [
        "PowerPartner",
        "PowerCustomerSuccess",
        "CustomerSuccess",
        "CspLitePortal",
        "SelfService",
    ];
    let mut users: Vec<(Id, usize)> = Vec::with_capacity(preset.users);
    let mut used = vec![0i64; LICENSES.len()];
    for n in 0..preset.users {
        let (c, m) = stamps(&mut rng);
        let roll: f64 = rng.gen();
        let profile_index = if n == 0 {
            0
        } else if roll < 0.70 {
            standard_profiles[1 + rng.gen_range(0..standard_profiles.len() - 1)]
        } else if roll < 0.79 {
            by_type("CsnOnly")[0]
        } else if roll < 0.99 {
            by_type(external_types[rng.gen_range(0..external_types.len())])[0]
        } else {
            by_type("Guest")[0]
        };
        let profile = &profiles[profile_index];
        let user_type = LICENSES[profile.license].user_type;
        let first = FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.gen_range(0..LAST_NAMES.len())];
        let username = if n == 0 {
            integration_username(name)
        } else {
            let local: String = format!("{}.{}", ascii_fold(first), ascii_fold(last))
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '\''))
                .collect::<String>()
                .to_lowercase();
            format!("{local}.{n}@{domain}.example.com")
        };
        let (first, last) = if n == 0 {
            ("Integration", "User")
        } else {
            (first, last)
        };
        let active = n == 0 || rng.gen_bool(0.9);
        let last_login = if user_type == "Guest" || rng.gen_bool(0.05) {
            Value::Null
        } else {
            Value::DateTime(
                GENERATED_AT_MS - rng.gen_range(0..400) * DAY_MS - rng.gen_range(0..DAY_MS),
            )
        };
        let role = if user_type == "Standard" && !roles.is_empty() && rng.gen_bool(0.8) {
            Value::Id(roles[rng.gen_range(0..roles.len())])
        } else {
            Value::Null
        };
        let external = external_types.contains(&user_type) || user_type == "Guest";
        let user = Row::new(&mut org, ObjectType::User)
            .text("Username", username.as_str())
            .text("Email", username.replace('\'', ""))
            .text("FirstName", first)
            .text("LastName", last)
            .text("Name", format!("{first} {last}"))
            .text("Alias", format!("u{n}").chars().take(8).collect::<String>())
            .text("CommunityNickname", format!("user{n}"))
            .set(
                "FederationIdentifier",
                if rng.gen_bool(0.6) {
                    Value::text(format!("E{n:07}"))
                } else {
                    Value::Null
                },
            )
            .set("IsActive", Value::Bool(active))
            .text("UserType", user_type)
            .set("ProfileId", Value::Id(profile.id))
            .set("UserRoleId", role)
            .set(
                "ManagerId",
                if n > 1 && rng.gen_bool(0.6) {
                    Value::Id(users[rng.gen_range(0..users.len())].0)
                } else {
                    Value::Null
                },
            )
            .set("IsPortalEnabled", Value::Bool(external))
            .text("Department", DOMAINS[rng.gen_range(0..DOMAINS.len())])
            .set("LastLoginDate", last_login)
            .text("TimeZoneSidKey", "America/Los_Angeles")
            .text("LocaleSidKey", "en_US")
            .text("EmailEncodingKey", "UTF-8")
            .text("LanguageLocaleKey", "en_US")
            .stamped(c, m);
        let user_id = user.insert(&mut org);
        if active {
            used[profile.license] += 1;
        }
        let frozen = n != 0 && active && rng.gen_bool(0.02);
        rules::insert_login(&mut org, user_id, frozen, m);
        rules::insert_assignment(&mut org, user_id, profile_sets[profile_index], None, m);
        users.push((user_id, profile_index));
    }

    // Assignments: internal users hold a few sets and sometimes a group; external users fewer.
    let mut license_used = vec![0i64; set_licenses.len()];
    for &(user, profile_index) in &users {
        let license = profiles[profile_index].license;
        let internal = LICENSES[license].user_type == "Standard";
        let (c, _) = stamps(&mut rng);
        let count = if internal {
            rng.gen_range(0..=8)
        } else {
            rng.gen_range(0..=1)
        };
        let mut held: Vec<Id> = Vec::new();
        for _ in 0..count {
            let (set, set_license) = grantable_sets[rng.gen_range(0..grantable_sets.len())];
            if held.contains(&set) || set_license.is_some_and(|l| l != license) {
                continue;
            }
            held.push(set);
            let assignment = rules::insert_assignment(&mut org, user, set, None, c);
            if rng.gen_bool(0.05) {
                set_expiration(
                    &mut org,
                    assignment,
                    GENERATED_AT_MS + rng.gen_range(1..365) * DAY_MS,
                );
            }
        }
        if internal && !groups.is_empty() && rng.gen_bool(0.3) {
            let group = groups[rng.gen_range(0..groups.len())];
            let aggregate = rules_aggregate_of(&org, group);
            rules::insert_assignment(&mut org, user, aggregate, Some(group), c);
        }
        if internal && rng.gen_bool(0.15) {
            let which = rng.gen_range(0..set_licenses.len());
            Row::new(&mut org, ObjectType::PermissionSetLicenseAssign)
                .set("AssigneeId", Value::Id(user))
                .set("PermissionSetLicenseId", Value::Id(set_licenses[which]))
                .stamped(c, c)
                .insert(&mut org);
            license_used[which] += 1;
        }
    }

    // Public groups with members (users, sometimes another group), and a few queues.
    let mut public_groups: Vec<Id> = Vec::new();
    for n in 0..preset.public_groups {
        let (c, m) = stamps(&mut rng);
        let queue = n % 10 == 9;
        let label = format!(
            "{} {} {n}",
            DOMAINS[n % DOMAINS.len()],
            if queue { "Queue" } else { "Team" }
        );
        let group = Row::new(&mut org, ObjectType::Group)
            .text("Name", label.as_str())
            .text("DeveloperName", label.replace(' ', "_"))
            .text("Type", if queue { "Queue" } else { "Regular" })
            .stamped(c, m)
            .insert(&mut org);
        let members = rng.gen_range(3..=40).min(users.len());
        for (user, _) in users.choose_multiple(&mut rng, members) {
            Row::new(&mut org, ObjectType::GroupMember)
                .set("GroupId", Value::Id(group))
                .set("UserOrGroupId", Value::Id(*user))
                .set("SystemModstamp", Value::DateTime(m))
                .insert(&mut org);
        }
        if let Some(&nested) = public_groups.last() {
            if rng.gen_bool(0.2) {
                Row::new(&mut org, ObjectType::GroupMember)
                    .set("GroupId", Value::Id(group))
                    .set("UserOrGroupId", Value::Id(nested))
                    .set("SystemModstamp", Value::DateTime(m))
                    .insert(&mut org);
            }
        }
        public_groups.push(group);
    }

    // Seat counts: what is used plus some headroom.
    for (i, license) in licenses.iter().enumerate() {
        set_seats(
            &mut org,
            ObjectType::UserLicense,
            *license,
            used[i],
            used[i] + 25 + used[i] / 10,
        );
    }
    for (i, license) in set_licenses.iter().enumerate() {
        let total_index = ObjectType::PermissionSetLicense
            .schema()
            .field_index("TotalLicenses")
            .expect("known field");
        let total = match org
            .get(ObjectType::PermissionSetLicense, *license)
            .map(|r| r.get(total_index).clone())
        {
            Some(Value::Int(total)) => total.max(license_used[i]),
            _ => license_used[i],
        };
        set_seats(
            &mut org,
            ObjectType::PermissionSetLicense,
            *license,
            license_used[i],
            total,
        );
    }
    access::generate(&mut org, preset, seed);
    org
}

fn rules_aggregate_of(org: &Org, group: Id) -> Id {
    let schema = ObjectType::PermissionSet.schema();
    let index = schema
        .field_index("PermissionSetGroupId")
        .expect("known field");
    org.table(ObjectType::PermissionSet)
        .live
        .values()
        .rev()
        .find(|ps| ps.get(index).as_id() == Some(group))
        .map(|ps| ps.id())
        .expect("every group has an aggregate set")
}

fn set_expiration(org: &mut Org, assignment: Id, at: i64) {
    let o = ObjectType::PermissionSetAssignment;
    let mut record = (**org.get(o, assignment).expect("inserted")).clone();
    record.values[o
        .schema()
        .field_index("ExpirationDate")
        .expect("known field")] = Value::DateTime(at);
    org.replace(o, record);
}

fn set_seats(org: &mut Org, object: ObjectType, license: Id, used: i64, total: i64) {
    let schema = object.schema();
    let mut record = (**org.get(object, license).expect("inserted")).clone();
    record.values[schema.field_index("UsedLicenses").expect("known field")] = Value::Int(used);
    record.values[schema.field_index("TotalLicenses").expect("known field")] = Value::Int(total);
    org.replace(object, record);
}

/// The ASCII letters of a name, for usernames (`Zoë` -> `Zoe`).
fn ascii_fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'ễ' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'Ō' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            'Ł' => 'L',
            'Ø' => 'O',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_org() {
        let a = generate("Acme", Preset::SMALL, 7);
        let b = generate("Acme", Preset::SMALL, 7);
        for object in ObjectType::ALL {
            assert_eq!(
                a.table(object).live,
                b.table(object).live,
                "{}",
                object.name()
            );
        }
        let c = generate("Acme", Preset::SMALL, 8);
        assert_ne!(
            a.table(ObjectType::User).live,
            c.table(ObjectType::User).live
        );
    }

    #[test]
    fn access_rows_are_generated_with_muting_and_lagging_aggregates() {
        for (preset, name) in [(Preset::SMALL, "small"), (Preset::MEDIUM, "medium")] {
            let org = generate("Acme", preset, 1);
            eprintln!(
                "{name}: {} object, {} field, {} setup-entity permissions, {} muting sets",
                org.count(ObjectType::ObjectPermissions),
                org.count(ObjectType::FieldPermissions),
                org.count(ObjectType::SetupEntityAccess),
                org.count(ObjectType::MutingPermissionSet),
            );
            assert!(
                org.count(ObjectType::FieldPermissions) > org.count(ObjectType::ObjectPermissions)
            );
            assert!(org.count(ObjectType::SetupEntityAccess) > 0);
            assert!(org.count(ObjectType::MutingPermissionSet) > 0);
        }
    }

    #[test]
    fn small_org_has_the_expected_mix() {
        let org = generate("Acme", Preset::SMALL, 1);
        assert_eq!(org.count(ObjectType::User), 50);
        assert_eq!(org.count(ObjectType::UserLogin), 50);
        assert!(org
            .user_by_username(&integration_username("Acme"))
            .is_some());
        // Every user has exactly one profile-owned assignment.
        let profile_owned = org
            .table(ObjectType::PermissionSet)
            .live
            .values()
            .filter(|ps| {
                ps.get(
                    ObjectType::PermissionSet
                        .schema()
                        .field_index("IsOwnedByProfile")
                        .unwrap(),
                )
                .as_bool()
                    == Some(true)
            })
            .count();
        assert_eq!(
            profile_owned,
            STANDARD_PROFILES.len() + Preset::SMALL.custom_profiles
        );
    }
}
