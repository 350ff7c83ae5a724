//! Writes query results as Salesforce's JSON, straight into a byte buffer.
//!
//! Pages of 2,000 records are the emulator's hottest path, so records are not built as
//! `serde_json::Value` trees first: a render plan made once per query says what to write,
//! parent relationships grouped under their first mention, as Salesforce groups them.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use crate::id::Id;
use crate::org::Org;
use crate::record::{Record, Value};
use crate::schema::ObjectType;

/// One thing to write for each record.
#[derive(Debug)]
pub(super) enum Node {
    Field {
        index: usize,
        name: &'static str,
    },
    /// A parent relationship: the reference field, the object it points to, what to write of it.
    Parent {
        name: &'static str,
        field: usize,
        target: ObjectType,
        nodes: Vec<Node>,
    },
    /// A child subquery: its position among the query's child subqueries.
    Child {
        slot: usize,
    },
}

/// Adds a field reached through `hops` to the plan, reusing the parent node of an earlier
/// field on the same relationship.
pub(super) fn add_field(
    nodes: &mut Vec<Node>,
    hops: &[(usize, ObjectType, &'static str)],
    index: usize,
    name: &'static str,
) {
    match hops.split_first() {
        None => {
            if !nodes
                .iter()
                .any(|n| matches!(n, Node::Field { index: i, .. } if *i == index))
            {
                nodes.push(Node::Field { index, name });
            }
        }
        Some((&(field, target, relationship), rest)) => {
            let position = nodes
                .iter()
                .position(|n| matches!(n, Node::Parent { name, .. } if *name == relationship))
                .unwrap_or_else(|| {
                    nodes.push(Node::Parent {
                        name: relationship,
                        field,
                        target,
                        nodes: Vec::new(),
                    });
                    nodes.len() - 1
                });
            if let Node::Parent { nodes: inner, .. } = &mut nodes[position] {
                add_field(inner, rest, index, name);
            }
        }
    }
}

/// What the writer needs to know about a child subquery.
pub(super) trait ChildWriter {
    fn relationship(&self, slot: usize) -> &'static str;
    fn write_child_record(
        &self,
        slot: usize,
        org: &Org,
        record: &Record,
        version: &str,
        out: &mut Vec<u8>,
    );
}

pub(super) struct Writer<'a, C: ChildWriter> {
    pub org: &'a Org,
    pub version: &'a str,
    pub children: &'a [HashMap<Id, Vec<Arc<Record>>>],
    pub child_writer: &'a C,
}

impl<C: ChildWriter> Writer<'_, C> {
    pub fn record(&self, object: ObjectType, nodes: &[Node], record: &Record, out: &mut Vec<u8>) {
        out.push(b'{');
        write_attributes(object, record.id(), self.version, out);
        for node in nodes {
            out.push(b',');
            match node {
                Node::Field { index, name } => {
                    write_key(name, out);
                    write_value(record.get(*index), out);
                }
                Node::Parent {
                    name,
                    field,
                    target,
                    nodes,
                } => {
                    write_key(name, out);
                    match record
                        .get(*field)
                        .as_id()
                        .and_then(|id| self.org.get(*target, id))
                    {
                        Some(parent) => {
                            let parents = Writer {
                                org: self.org,
                                version: self.version,
                                children: &[],
                                child_writer: self.child_writer,
                            };
                            parents.record(*target, nodes, parent, out);
                        }
                        None => out.extend_from_slice(b"null"),
                    }
                }
                Node::Child { slot } => {
                    write_key(self.child_writer.relationship(*slot), out);
                    match self
                        .children
                        .get(*slot)
                        .and_then(|rows| rows.get(&record.id()))
                    {
                        // Salesforce answers an empty child relationship with null.
                        Some(rows) if !rows.is_empty() => {
                            let _ = write!(
                                out,
                                "{{\"totalSize\":{},\"done\":true,\"records\":[",
                                rows.len()
                            );
                            for (i, row) in rows.iter().enumerate() {
                                if i > 0 {
                                    out.push(b',');
                                }
                                self.child_writer.write_child_record(
                                    *slot,
                                    self.org,
                                    row,
                                    self.version,
                                    out,
                                );
                            }
                            out.extend_from_slice(b"]}");
                        }
                        _ => out.extend_from_slice(b"null"),
                    }
                }
            }
        }
        out.push(b'}');
    }
}

fn write_attributes(object: ObjectType, id: Id, version: &str, out: &mut Vec<u8>) {
    let name = object.name();
    let _ = write!(
        out,
        "\"attributes\":{{\"type\":\"{name}\",\"url\":\"/services/data/v{version}/sobjects/{name}/{id}\"}}"
    );
}

fn write_key(name: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

pub(super) fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Text(text) => write_string(text, out),
        Value::Id(id) => {
            out.push(b'"');
            out.extend_from_slice(id.as_str().as_bytes());
            out.push(b'"');
        }
        Value::DateTime(ms) => {
            out.push(b'"');
            write_datetime(*ms, out);
            out.push(b'"');
        }
        Value::Date(days) => {
            out.push(b'"');
            let (y, m, d) = civil_from_days(i64::from(*days));
            let _ = write!(out, "{y:04}-{m:02}-{d:02}");
            out.push(b'"');
        }
    }
}

/// A JSON string: quotes, backslashes and control characters escaped, the rest as UTF-8.
pub(super) fn write_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `2024-01-02T03:04:05.000+0000` without going through a calendar library.
fn write_datetime(ms: i64, out: &mut Vec<u8>) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, rest) = (in_day / 3_600_000, in_day % 3_600_000);
    let (min, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}+0000"
    );
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_the_calendar_library() {
        for ms in [
            0i64,
            1_704_164_645_007,
            951_782_400_000,
            4_102_444_799_999,
            -86_400_000,
        ] {
            let mut out = Vec::new();
            write_datetime(ms, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                crate::record::format_datetime(ms)
            );
        }
        for days in [0, 19_782, 11_016, -1] {
            let mut out = Vec::new();
            write_value(&Value::Date(days), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("\"{}\"", crate::record::format_date(days))
            );
        }
    }

    #[test]
    fn strings_escape_as_json_does() {
        for text in [
            "plain",
            "O'Brien \"quoted\"",
            "back\\slash",
            "line\nbreak\ttab\u{1}",
            "Zoë Nguyễn",
        ] {
            let mut out = Vec::new();
            write_string(text, &mut out);
            let parsed: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(parsed, text);
        }
    }
}
