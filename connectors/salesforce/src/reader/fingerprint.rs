//! Telling that a resource has not changed since the last read without reading it again.
//!
//! Object and field permissions have no `deleted` endpoint, so a read of changes cannot find
//! what was removed, and an incremental sync read every row of them again: in a large org,
//! hundreds of thousands of rows, half of its calls. Yet most days nobody touches them.
//!
//! A read takes the resource's fingerprint before its first page: the latest
//! `SystemModstamp`, a digest of every row changed in the [`WINDOW`] before it, and (from the
//! first page's `totalSize`) how many rows there are. The next incremental sync takes the
//! fingerprint again, in two calls, and reads the rows again only when it differs:
//! - a row created or changed gets a `SystemModstamp` later than the latest one read, or, in a
//!   transaction that committed late, one within the window, whose digest then differs;
//! - a row changed twice within the same stamp changes the window's digest (it covers the
//!   rows' values, not only their stamps);
//! - a row removed lowers the count, unless a row was created too, which moves the stamp.
//!
//! What it assumes is what a read of changes assumes: no transaction commits a row with a stamp
//! older than the window. A resource read whole ends with the fingerprint taken before it, so
//! whatever changes during the read makes the next one differ.

use chrono::TimeDelta;
use serde_json::Value;
use sha2::{Digest, Sha256};

use provost_connector::times::parse_datetime;

/// How far before the latest stamp the digest reaches (as far as a read of changes looks
/// back: [`super::WATERMARK_OVERLAP`]).
pub(super) const WINDOW: TimeDelta = super::WATERMARK_OVERLAP;

/// How many of the latest rows the fingerprint's first query reads. When all of them fall
/// within the window (a set deployed with its field permissions writes hundreds of rows in one
/// moment), the window is read by itself, up to [`WINDOW_PAGES`] pages.
pub(super) const WINDOW_ROWS: u32 = 200;

/// The most pages a window read by itself may take; a larger window gives no fingerprint
/// this time (the resource is read whole next time).
pub(super) const WINDOW_PAGES: u64 = 5;

/// The stamp field the fingerprint orders by.
pub(super) const STAMP: &str = "SystemModstamp";

/// Marks a fingerprint's format: a fingerprint of an older format never matches.
const VERSION: &str = "fp1";

/// What the latest rows tell of the window.
pub(super) enum Latest {
    /// The window, digested: the fingerprint's first part.
    Window(String),
    /// Every row read falls within the window, which begins at this stamp: read it by itself.
    Fuller(String),
    /// A stamp is not a date-time: no fingerprint.
    Unreadable,
}

/// The window from the answer to `SELECT fields, SystemModstamp ... ORDER BY SystemModstamp
/// DESC LIMIT WINDOW_ROWS`, whose fields are `fields`.
pub(super) fn window(latest: &[Value], fields: &[&str]) -> Latest {
    let Some(newest) = latest.first() else {
        return Latest::Window(Window::new(fields, "none").finish());
    };
    let Some((newest_text, since)) = stamp(newest).and_then(|text| {
        let since = parse_datetime(&text)? - WINDOW;
        Some((text, since))
    }) else {
        return Latest::Unreadable;
    };
    let mut within = Vec::new();
    for record in latest {
        match stamp(record).as_deref().and_then(parse_datetime) {
            Some(at) if at < since => break,
            Some(_) => within.push(record),
            None => return Latest::Unreadable,
        }
    }
    if within.len() == latest.len() && latest.len() >= WINDOW_ROWS as usize {
        return Latest::Fuller(newest_text);
    }
    // The order among equal stamps is Salesforce's to choose: digest the rows by ID.
    within.sort_by_key(|record| id(record));
    let mut window = Window::new(fields, &newest_text);
    for record in within {
        window.row(record);
    }
    Latest::Window(window.finish())
}

/// The first stamp within the window that ends at `newest` (as Salesforce writes it).
pub(super) fn window_start(newest: &str) -> Option<provost_connector::times::Timestamp> {
    Some(parse_datetime(newest)? - WINDOW)
}

/// The fingerprint: the window and how many rows the resource holds.
pub(super) fn fingerprint(window: &str, count: u64) -> String {
    format!("{window}|{count}")
}

/// A window's digest, fed its rows in ID order: of the fields selected (a change of the fields
/// read is a change too: a field FLS hides or shows again) and the rows' values of them.
pub(super) struct Window<'a> {
    fields: &'a [&'a str],
    newest: String,
    rows: u64,
    hash: Sha256,
}

impl<'a> Window<'a> {
    pub(super) fn new(fields: &'a [&'a str], newest: &str) -> Window<'a> {
        let mut hash = Sha256::new();
        for field in fields.iter().chain([&STAMP]) {
            hash.update(field.as_bytes());
            hash.update([0]);
        }
        Window {
            fields,
            newest: newest.to_owned(),
            rows: 0,
            hash,
        }
    }

    pub(super) fn row(&mut self, record: &Value) {
        self.rows += 1;
        self.hash.update([1]);
        for field in self.fields.iter().chain([&STAMP]) {
            let value = record.get(*field).unwrap_or(&Value::Null);
            self.hash.update(value.to_string().as_bytes());
            self.hash.update([0]);
        }
    }

    pub(super) fn finish(self) -> String {
        let digest: String = self.hash.finalize()[..16]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("{VERSION}|{}|{}|{digest}", self.newest, self.rows)
    }
}

fn stamp(record: &Value) -> Option<String> {
    record.get(STAMP).and_then(Value::as_str).map(str::to_owned)
}

fn id(record: &Value) -> &str {
    record.get("Id").and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: [&str; 3] = ["Id", "Field", "PermissionsEdit"];

    fn row(id: &str, stamp: &str, edit: bool) -> Value {
        json!({"Id": id, "Field": "Contact.Email", "PermissionsEdit": edit, STAMP: stamp})
    }

    #[test]
    fn the_window_is_the_rows_within_five_minutes_of_the_latest_in_any_order() {
        let latest = [
            row("01k3", "2026-03-01T10:00:00.000+0000", true),
            row("01k2", "2026-03-01T10:00:00.000+0000", false),
            row("01k1", "2026-03-01T09:56:00.000+0000", true),
            row("01k0", "2026-03-01T09:00:00.000+0000", true),
        ];
        let one = known(window(&latest, &FIELDS));
        assert!(
            one.starts_with("fp1|2026-03-01T10:00:00.000+0000|3|"),
            "{one}"
        );
        // Equal stamps come in either order.
        let swapped = [
            latest[1].clone(),
            latest[0].clone(),
            latest[2].clone(),
            latest[3].clone(),
        ];
        assert_eq!(known(window(&swapped, &FIELDS)), one);
        // A row outside the window does not count; a value inside it does, at the same stamp.
        let mut older = latest.clone();
        older[3] = row("01k0", "2026-03-01T09:00:00.000+0000", false);
        assert_eq!(known(window(&older, &FIELDS)), one);
        let mut edited = latest.clone();
        edited[1] = row("01k2", "2026-03-01T10:00:00.000+0000", true);
        assert_ne!(known(window(&edited, &FIELDS)), one);
        // Other fields read: another fingerprint.
        assert_ne!(known(window(&latest, &FIELDS[..2])), one);
        // Fed row by row in ID order, the same digest.
        let mut fed = Window::new(&FIELDS, "2026-03-01T10:00:00.000+0000");
        for record in [&latest[2], &latest[1], &latest[0]] {
            fed.row(record);
        }
        assert_eq!(fed.finish(), one);
        assert_eq!(fingerprint(&one, 4), format!("{one}|4"));
    }

    #[test]
    fn a_window_fuller_than_the_query_is_read_by_itself_and_unreadable_stamps_give_none() {
        let full: Vec<Value> = (0..WINDOW_ROWS)
            .map(|i| row(&format!("01k{i:04}"), "2026-03-01T10:00:00.000+0000", true))
            .collect();
        assert!(matches!(
            window(&full, &FIELDS),
            Latest::Fuller(newest) if newest == "2026-03-01T10:00:00.000+0000"
        ));
        assert_eq!(
            window_start("2026-03-01T10:00:00.000+0000"),
            parse_datetime("2026-03-01T09:55:00.000+0000")
        );
        let mut ends_before = full.clone();
        ends_before[WINDOW_ROWS as usize - 1] = row("01k9999", "2026-03-01T09:00:00.000Z", true);
        assert!(matches!(window(&ends_before, &FIELDS), Latest::Window(_)));
        assert!(matches!(
            window(&[row("01k1", "yesterday", true)], &FIELDS),
            Latest::Unreadable
        ));
        assert!(known(window(&[], &FIELDS)).starts_with("fp1|none|0|"));
    }

    fn known(latest: Latest) -> String {
        match latest {
            Latest::Window(window) => window,
            _ => panic!("a window"),
        }
    }
}
