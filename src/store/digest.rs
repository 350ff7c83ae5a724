//! A row's content digest: 64-bit FNV-1a over its canonical JSON form (object keys sorted, so
//! a map read back from PostgreSQL's JSONB, which reorders keys, digests as it did before it
//! was stored). Stable across builds and Rust versions (unlike `std`'s hasher), so digests
//! stored by one Provost compare with the next. Not a security measure: it only tells a sync
//! whether a row changed.

use std::io;

use serde::Serialize;
use serde_json::Value;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

struct Fnv(u64);

impl io::Write for Fnv {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(PRIME);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The digest of `row`, as the store keeps it (a signed 64-bit column).
pub fn of<T: Serialize>(row: &T) -> i64 {
    of_value(&serde_json::to_value(row).expect("identity rows serialise to JSON"))
}

/// The digest of a row already in JSON form.
pub fn of_value(value: &Value) -> i64 {
    let mut hasher = Fnv(OFFSET);
    feed(value, &mut hasher);
    hasher.0 as i64
}

fn feed(value: &Value, hasher: &mut Fnv) {
    use std::io::Write;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let _ = hasher.write(b"{");
            for key in keys {
                feed(&Value::String(key.clone()), hasher);
                let _ = hasher.write(b":");
                feed(&map[key.as_str()], hasher);
                let _ = hasher.write(b",");
            }
            let _ = hasher.write(b"}");
        }
        Value::Array(items) => {
            let _ = hasher.write(b"[");
            for item in items {
                feed(item, hasher);
                let _ = hasher.write(b",");
            }
            let _ = hasher.write(b"]");
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *hasher, scalar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_gives_equal_digests_and_any_change_another() {
        let a = serde_json::json!({"id": "005A", "active": true});
        let b = serde_json::json!({"active": true, "id": "005A"});
        let c = serde_json::json!({"id": "005A", "active": false});
        assert_eq!(
            of(&a),
            of(&b),
            "JSON objects compare by content, not key order"
        );
        assert_ne!(of(&a), of(&c));
        // Pinned: a stored digest must mean the same thing after an upgrade.
        assert_eq!(of(&serde_json::Value::Null), 6601085983368743140);
    }
}
