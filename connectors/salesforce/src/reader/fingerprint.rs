//! Telling that a resource has not changed since the last read without reading it again.
//!
//! Object and field permissions have no `deleted` endpoint, so a read of changes cannot find
//! what was removed, and an incremental sync read every row of them again: in a large org,
//! hundreds of thousands of rows, half of its calls. Yet most days nobody touches them.
//!
//! A read takes the resource's fingerprint before it reads the rows: the latest
//! `SystemModstamp`, a digest of every row stamped in the [`WINDOW`] before it, and (from the
//! first page's `totalSize`) how many rows there are. The next incremental sync takes the
//! fingerprint again and reads the rows again only when it differs:
//! - a row created or changed gets a `SystemModstamp` later than the latest one read, or, in a
//!   transaction that committed late, one within the window, whose digest then differs;
//! - a row changed twice within the same stamp changes the window's digest (it covers the
//!   rows' values, not only their stamps);
//! - a row removed lowers the count, unless a row was created too, which moves the stamp.
//!
//! Taking it costs two calls: the [`WINDOW_ROWS`] latest rows, and the read's first page. When
//! they all fall within the window (a set deployed with its field permissions writes hundreds of
//! rows at once), the window is read by itself, if it holds at most a quarter of the rows;
//! otherwise the resource has no fingerprint until a later change moves the latest stamp.
//! Before a resource is taken as unchanged, one more call checks that its latest stamp has not
//! moved while the fingerprint was taken (a row created between the window and the count would
//! hide a row removed).
//!
//! What it assumes is what a read of changes assumes: no transaction commits a row with a stamp
//! older than the window. A resource read whole ends with the fingerprint taken before it, so
//! whatever changes during the read makes the next one differ. The fingerprint names the
//! connector's version, so a release that maps these rows differently reads them again.

use chrono::TimeDelta;
use serde_json::Value;
use sha2::{Digest, Sha256};

use provost_connector::times::{parse_datetime, Timestamp};

/// How far before the latest stamp the digest reaches (as far as a read of changes looks
/// back: [`super::WATERMARK_OVERLAP`]).
pub(super) const WINDOW: TimeDelta = super::WATERMARK_OVERLAP;

/// How many of the latest rows the fingerprint's first query reads.
pub(super) const WINDOW_ROWS: u32 = 200;

/// The stamp field the fingerprint orders by.
pub(super) const STAMP: &str = "SystemModstamp";

/// A fingerprint's format and the connector's version: a fingerprint taken by another never
/// matches. Raise the number when the fingerprint or the mapping of these rows changes.
const VERSION: &str = concat!("fp1-", env!("CARGO_PKG_VERSION"));

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
pub(super) fn window(latest: &[Value], complete: bool, fields: &[&'static str]) -> Latest {
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

    pub(super) fn row(&mut self, record: &Value) {
        self.rows += 1;
        self.hash.update([1]);
        for field in self.fields.iter().chain([&STAMP]) {
            let value = record.get(*field).unwrap_or(&Value::Null);
            self.hash.update(value.to_string().as_bytes());
            self.hash.update([0]);
        }
    }

    /// The fingerprint of a resource of `count` rows with this window.
    pub(super) fn fingerprint(self, count: u64) -> Fingerprint {
        let digest: String = self.hash.finalize()[..16]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Fingerprint {
            text: format!(
                "{VERSION}|{}|{}|{digest}|{count}",
                self.newest.as_deref().unwrap_or("none"),
                self.rows
            ),
            newest: self.newest,
        }
    }
}

/// A resource's fingerprint as taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fingerprint {
    /// What is stored as the resource's watermark.
    pub text: String,
    /// The latest stamp it was taken at, to check that it has not moved since.
    pub newest: Option<String>,
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

    fn taken(latest: Latest, count: u64) -> String {
        match latest {
            Latest::Window(window) => window.fingerprint(count).text,
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
            "fp1-",
            env!("CARGO_PKG_VERSION"),
            "|2026-03-01T10:00:00.000+0000|3|"
        );
        assert!(one.starts_with(prefix), "{one}");
        assert!(one.ends_with("|4"), "{one}");
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
        let fed = fed.fingerprint(4);
        assert_eq!(fed.text, one);
        assert_eq!(fed.newest.as_deref(), Some("2026-03-01T10:00:00.000+0000"));
    }

    #[test]
    fn a_window_fuller_than_the_answer_is_read_by_itself_and_unreadable_stamps_give_none() {
        let full: Vec<Value> = (0..WINDOW_ROWS)
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
