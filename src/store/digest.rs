//! A row's content digest: 64-bit FNV-1a over the row's JSON as Provost serialises it.
//!
//! Stable across builds and Rust versions (unlike `std`'s hasher), so digests stored by one
//! Provost compare with the next. The JSON is the row's own serialisation, taken from the row
//! as the connector built it (its attributes in the connector's order): a row rebuilt from
//! what a database returns (PostgreSQL's JSONB reorders object keys) must not be digested.
//! Not a security measure: it only tells a sync whether a row changed.

use std::io;

use serde::Serialize;

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
    let mut hasher = Fnv(OFFSET);
    serde_json::to_writer(&mut hasher, row).expect("identity rows serialise to JSON");
    hasher.0 as i64
}

/// The digest of a row already serialised (the same as [`of`] on the row).
pub fn of_json(text: &str) -> i64 {
    use io::Write;
    let mut hasher = Fnv(OFFSET);
    let _ = hasher.write(text.as_bytes());
    hasher.0 as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rows_give_equal_digests_and_any_change_another() {
        let a = serde_json::json!({"id": "005A", "active": true});
        let c = serde_json::json!({"id": "005A", "active": false});
        assert_eq!(of(&a), of(&a.clone()));
        assert_ne!(of(&a), of(&c));
        assert_eq!(of(&a), of_json(&serde_json::to_string(&a).unwrap()));
        // Pinned: a stored digest must mean the same thing after an upgrade.
        assert_eq!(of(&serde_json::Value::Null), 6601085983368743140);
    }
}
