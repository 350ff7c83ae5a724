//! Telling that a resource has not changed since the last read without reading it again.
//!
//! Object and field permissions, permission set and license assignments and group members have
//! no `deleted` endpoint, so a read of changes cannot find what was removed, and an incremental
//! sync read every row of them again: in a large org, over a million rows, nearly all of its
//! calls. Yet most days few of them change.
//!
//! A read takes the resource's fingerprint before it reads the rows: the latest
//! `SystemModstamp` and a digest of every row stamped in the [`WINDOW`] before it, then how
//! many rows there are (`SELECT COUNT()`, or a full read's first page), and a digest of what
//! the rows mean besides their values (the query that reads them, and of assignments the sets
//! each group grants). The next incremental sync takes the fingerprint again and reads the rows
//! again only when it differs:
//! - a row created or changed gets a `SystemModstamp` later than the latest one read, or, in a
//!   transaction that committed late, one within the window, whose digest then differs;
//! - a row changed twice within the same stamp changes the window's digest (it covers the
//!   rows' values, not only their stamps);
//! - a row removed lowers the count, unless a row was created too, which moves the stamp.
//!
//! A fingerprint must describe the rows the store holds once they are read. A row removed
//! between the latest rows and the count is left out by both the count and the read; one
//! removed during the read leaves a count higher than the org's next one. A row created or
//! changed after the latest rows were taken is
//! stamped later than the fingerprint's latest stamp: a page that brings one tells the core not
//! to keep the fingerprint (an empty watermark), and the next sync reads the resource whole.
//! When the fingerprint equals the last one, nothing is read: a change made meanwhile shows
//! in the next one.
//!
//! Taking it costs one call, the latest rows and the count in one `composite` call, in that
//! order (two when the window is read by itself, and of a resource held by users, see below,
//! up to four more); a resource of one page costs one to read, so it is
//! read whole: once a read found it so, the next reads its first page before anything else,
//! and takes a fingerprint only when that page says it has grown. When the [`WINDOW_ROWS`] latest rows all fall within the window (a set deployed
//! with its field permissions writes hundreds of rows at once), the window is read by itself,
//! if it holds at most a quarter of the rows; otherwise the resource has no fingerprint until a
//! later change moves the latest stamp.
//!
//! ## Resources held by users
//! Which assignments and memberships a sync keeps depends on their holders: when the options
//! leave out inactive or portal users, a user deactivated takes theirs out of the read, one
//! activated brings theirs in, and no row of the resource changes. So the fingerprint of such a
//! resource is of every user's rows, and it names the latest stamp of any user, taken before
//! its rows are read (the one the users' read took, or one taken then). When the rows are unchanged, the sync reads only the rows
//! of the users changed since the last fingerprint's stamp (less the overlap of a read of
//! changes): those it keeps, and the keys of those it leaves out, which go. A user who entered
//! or left the filters was changed, so is among them. When those rows are more than a quarter
//! of the resource, it is read whole instead. That costs a count of them, a read of each kind
//! (and the permission set groups' components, for assignments, which their read needs anyway).
//!
//! What it assumes is what a read of changes assumes: no transaction commits a row with a stamp
//! older than the window. And one more: a row stamped at or before the latest stamp that
//! commits after the latest rows were taken (in the same moment, or late within the window),
//! is read, and is removed again before the next sync, with nothing else changed, stays in the
//! store until the resource next changes. The fingerprint names the connector's version, so a release that maps these
//! rows differently reads them again.

use chrono::TimeDelta;
use serde_json::Value;
use sha2::{Digest, Sha256};

use provost_connector::connector::ROWS_AS_READ;
use provost_connector::times::{parse_datetime, Timestamp};

use crate::record::Record;

/// How far before the latest stamp the digest reaches (as far as a read of changes looks
/// back: [`super::WATERMARK_OVERLAP`]).
pub(super) const WINDOW: TimeDelta = super::WATERMARK_OVERLAP;

/// How many of the latest rows the fingerprint's first query reads.
pub(super) const WINDOW_ROWS: u32 = 200;

/// The stamp field the fingerprint orders by.
pub(super) const STAMP: &str = "SystemModstamp";

/// A fingerprint's format and the connector's version: a fingerprint taken by another never
/// matches. Raise the number when the fingerprint or the mapping of these rows changes.
const VERSION: &str = concat!("fp2-", env!("CARGO_PKG_VERSION"));

/// Where a fingerprint of a resource held by users names the users' latest stamp.
const USERS: &str = "|users>";

/// The users' latest stamp of an org without users.
pub(super) const NO_STAMP: &str = "none";

/// What the latest rows tell of the window.
pub(super) enum Latest {
    /// The window, digested.
    Window(Window),
    /// The rows read may not be all the window holds: read it by itself, from `start`.
    Fuller { newest: String, start: Timestamp },
    /// A stamp is not a date-time: no fingerprint.
    Unreadable,
}

/// The window from the answer to `SELECT fields, SystemModstamp ... ORDER BY SystemModstamp
/// DESC LIMIT WINDOW_ROWS`, whose fields are `fields`; `complete` when the answer came whole
/// (Salesforce may answer in smaller pages than asked).
pub(super) fn window(latest: &[Record], complete: bool, fields: &[&'static str]) -> Latest {
    let Some(newest) = latest.first() else {
        return match complete {
            true => Latest::Window(Window::new(fields, None)),
            false => Latest::Unreadable,
        };
    };
    let Some((newest, start)) = stamp(newest).and_then(|text| {
        let start = parse_datetime(&text)? - WINDOW;
        Some((text, start))
    }) else {
        return Latest::Unreadable;
    };
    let mut within = Vec::new();
    for record in latest {
        match stamp(record).as_deref().and_then(parse_datetime) {
            Some(at) if at < start => break,
            Some(_) => within.push(record),
            None => return Latest::Unreadable,
        }
    }
    if within.len() == latest.len() && (!complete || latest.len() >= WINDOW_ROWS as usize) {
        return Latest::Fuller { newest, start };
    }
    // The order among equal stamps is Salesforce's to choose: digest the rows by ID.
    within.sort_by_key(|record| id(record));
    let mut window = Window::new(fields, Some(newest));
    for record in within {
        window.row(record);
    }
    Latest::Window(window)
}

/// Whether a window of `rows` is worth reading by itself to fingerprint a resource of
/// `total`: reading it costs what reading a quarter of the resource would, at most.
pub(super) fn worth_reading(rows: u64, total: u64) -> bool {
    rows.saturating_mul(4) <= total
}

/// A window's digest, fed its rows in ID order: of the fields selected (a change of the fields
/// read is a change too: a field FLS hides or shows again) and the rows' values of them.
pub(super) struct Window {
    fields: Vec<&'static str>,
    /// The latest stamp, as Salesforce wrote it; `None` for a resource without rows.
    newest: Option<String>,
    rows: u64,
    hash: Sha256,
}

impl Window {
    pub(super) fn new(fields: &[&'static str], newest: Option<String>) -> Window {
        let mut hash = Sha256::new();
        for field in fields.iter().chain([&STAMP]) {
            hash.update(field.as_bytes());
            hash.update([0]);
        }
        Window {
            fields: fields.to_vec(),
            newest,
            rows: 0,
            hash,
        }
    }

    pub(super) fn row(&mut self, record: &Record) {
        self.rows += 1;
        self.hash.update([1]);
        for field in self.fields.iter().chain([&STAMP]) {
            let value = record.get(field).unwrap_or(&Value::Null);
            self.hash.update(value.to_string().as_bytes());
            self.hash.update([0]);
        }
    }

    /// The fingerprint of a resource of `count` rows with this window, whose rows mean what
    /// `context` says (each part digested), taken when `users` was the latest stamp of any user
    /// (of a resource held by users that the options filter).
    pub(super) fn fingerprint(
        self,
        count: u64,
        context: &[String],
        users: Option<String>,
    ) -> Fingerprint {
        let mut meaning = Sha256::new();
        for part in context {
            meaning.update(part.as_bytes());
            meaning.update([0]);
        }
        let mut text = format!(
            "{ROWS_AS_READ}{VERSION}|{}|{}|{}|{count}|{}",
            self.newest.as_deref().unwrap_or(NO_STAMP),
            self.rows,
            hex(self.hash.finalize().as_slice()),
            hex(meaning.finalize().as_slice()),
        );
        if let Some(users) = users {
            text.push_str(USERS);
            text.push_str(&users);
        }
        Fingerprint {
            text,
            count,
            newest: self.newest,
        }
    }
}

/// A fingerprint's text without its users' stamp, and that stamp.
fn split_users(text: &str) -> (&str, Option<&str>) {
    match text.split_once(USERS) {
        Some((rows, users)) => (rows, Some(users)),
        None => (text, None),
    }
}

fn hex(digest: &[u8]) -> String {
    digest[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A resource's fingerprint as taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fingerprint {
    /// What is stored as the resource's watermark.
    pub text: String,
    /// The rows counted.
    pub count: u64,
    /// The latest stamp, as Salesforce wrote it; `None` for a resource without rows.
    pub newest: Option<String>,
}

/// What a fingerprint says of the resource since the last read's.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Since<'a> {
    /// Read it whole.
    Changed,
    /// Nothing to read.
    Unchanged,
    /// Its rows are unchanged; its holders are to be read again from the users changed
    /// since `users` (the users' latest stamp when the last read's fingerprint was taken).
    UnchangedRows { users: &'a str },
}

impl Fingerprint {
    /// What this fingerprint says given `since`, the last read's.
    pub(super) fn against<'a>(&self, since: &'a str) -> Since<'a> {
        let (rows, users) = split_users(&self.text);
        let (rows_then, users_then) = split_users(since);
        match (rows == rows_then, users, users_then) {
            (false, _, _) => Since::Changed,
            (true, None, _) => Since::Unchanged,
            (true, Some(_), Some(users)) if parse_datetime(users).is_some() => {
                Since::UnchangedRows { users }
            }
            // Taken in an org without users (or not a stamp): read whole.
            (true, Some(_), _) => Since::Changed,
        }
    }
}

fn stamp(record: &Record) -> Option<String> {
    record.get(STAMP).and_then(Value::as_str).map(str::to_owned)
}

fn id(record: &Record) -> &str {
    record.get("Id").and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: [&str; 3] = ["Id", "Field", "PermissionsEdit"];

    fn row(id: &str, stamp: &str, edit: bool) -> Record {
        Record::from_value(
            json!({"Id": id, "Field": "Contact.Email", "PermissionsEdit": edit, STAMP: stamp}),
        )
        .unwrap()
    }

    fn taken(latest: Latest, count: u64) -> String {
        match latest {
            Latest::Window(window) => window.fingerprint(count, &[], None).text,
            _ => panic!("a window"),
        }
    }

    #[test]
    fn the_window_is_the_rows_within_five_minutes_of_the_latest_in_any_order() {
        let latest = [
            row("01k3", "2026-03-01T10:00:00.000+0000", true),
            row("01k2", "2026-03-01T10:00:00.000+0000", false),
            row("01k1", "2026-03-01T09:56:00.000+0000", true),
            row("01k0", "2026-03-01T09:00:00.000+0000", true),
        ];
        let one = taken(window(&latest, true, &FIELDS), 4);
        let prefix = concat!(
            "rows:fp2-",
            env!("CARGO_PKG_VERSION"),
            "|2026-03-01T10:00:00.000+0000|3|"
        );
        assert!(one.starts_with(prefix), "{one}");
        assert!(one.contains("|4|"), "{one}");
        // Equal stamps come in either order.
        let swapped = [
            latest[1].clone(),
            latest[0].clone(),
            latest[2].clone(),
            latest[3].clone(),
        ];
        assert_eq!(taken(window(&swapped, true, &FIELDS), 4), one);
        // A row outside the window does not count; a value inside it does, at the same stamp;
        // so does the count.
        let mut older = latest.clone();
        older[3] = row("01k0", "2026-03-01T09:00:00.000+0000", false);
        assert_eq!(taken(window(&older, true, &FIELDS), 4), one);
        let mut edited = latest.clone();
        edited[1] = row("01k2", "2026-03-01T10:00:00.000+0000", true);
        assert_ne!(taken(window(&edited, true, &FIELDS), 4), one);
        assert_ne!(taken(window(&latest, true, &FIELDS), 3), one);
        // Other fields read: another fingerprint.
        assert_ne!(taken(window(&latest, true, &FIELDS[..2]), 4), one);
        // Fed row by row in ID order, as a window read by itself is: the same.
        let mut fed = Window::new(&FIELDS, Some("2026-03-01T10:00:00.000+0000".to_owned()));
        for record in [&latest[2], &latest[1], &latest[0]] {
            fed.row(record);
        }
        let fed = fed.fingerprint(4, &[], None);
        assert_eq!(fed.text, one);
        assert_eq!(fed.count, 4);
    }

    #[test]
    fn the_rows_meaning_is_part_of_it_and_the_users_stamp_tells_whose_rows_to_read_again() {
        let latest = [row("01k1", "2026-03-01T10:00:00.000+0000", true)];
        let take = |context: &[String], users: Option<&str>| match window(&latest, true, &FIELDS) {
            Latest::Window(window) => window.fingerprint(1, context, users.map(str::to_owned)),
            _ => panic!("a window"),
        };
        let query = ["SELECT Id FROM PermissionSetAssignment".to_owned()];
        let plain = take(&query, None);
        assert_eq!(plain.against(&plain.text), Since::Unchanged);
        // Another query (the options changed) or other group components: another fingerprint.
        let other = ["SELECT Id FROM PermissionSetAssignment WHERE x".to_owned()];
        assert_eq!(take(&other, None).against(&plain.text), Since::Changed);
        let grouped = [query[0].clone(), "0PG1:0PS1,0PS2".to_owned()];
        assert_eq!(take(&grouped, None).against(&plain.text), Since::Changed);

        // Of a resource held by users: unchanged rows, whichever users' stamp each was taken
        // at; the holders are read again from the last read's.
        let then = take(&query, Some("2026-03-02T08:00:00.000+0000"));
        let now = take(&query, Some("2026-03-04T08:00:00.000+0000"));
        assert!(then.text.ends_with("|users>2026-03-02T08:00:00.000+0000"));
        assert_eq!(
            now.against(&then.text),
            Since::UnchangedRows {
                users: "2026-03-02T08:00:00.000+0000"
            }
        );
        // Taken without users before, with them now (the options changed), or in an org
        // without users: read whole.
        assert_eq!(now.against(&plain.text), Since::Changed);
        let empty = take(&query, Some(NO_STAMP));
        assert_eq!(now.against(&empty.text), Since::Changed);
        // A row changed: read whole.
        let mut edited = latest.clone();
        edited[0] = row("01k1", "2026-03-01T10:00:00.000+0000", false);
        let changed = match window(&edited, true, &FIELDS) {
            Latest::Window(window) => window.fingerprint(1, &query, Some("x".to_owned())),
            _ => panic!("a window"),
        };
        assert_eq!(changed.against(&then.text), Since::Changed);
    }

    #[test]
    fn a_window_fuller_than_the_answer_is_read_by_itself_and_unreadable_stamps_give_none() {
        let full: Vec<Record> = (0..WINDOW_ROWS)
            .map(|i| row(&format!("01k{i:04}"), "2026-03-01T10:00:00.000+0000", true))
            .collect();
        let fuller = |latest: Latest| match latest {
            Latest::Fuller { newest, start } => Some((newest, start)),
            _ => None,
        };
        assert_eq!(
            fuller(window(&full, true, &FIELDS)),
            Some((
                "2026-03-01T10:00:00.000+0000".to_owned(),
                parse_datetime("2026-03-01T09:55:00.000+0000").unwrap()
            ))
        );
        // An answer in a smaller page than asked: the rest of the window may be unread.
        assert!(fuller(window(&full[..3], false, &FIELDS)).is_some());
        assert!(matches!(window(&[], false, &FIELDS), Latest::Unreadable));
        let mut ends_before = full.clone();
        ends_before[WINDOW_ROWS as usize - 1] = row("01k9999", "2026-03-01T09:00:00.000Z", true);
        assert!(matches!(
            window(&ends_before, true, &FIELDS),
            Latest::Window(_)
        ));
        assert!(matches!(
            window(&[row("01k1", "yesterday", true)], true, &FIELDS),
            Latest::Unreadable
        ));
        assert!(taken(window(&[], true, &FIELDS), 0).contains("|none|0|"));
        assert!(worth_reading(250, 1_000) && !worth_reading(251, 1_000));
    }
}
