//! Salesforce record IDs: 15 case-sensitive characters plus a 3-character case checksum.
//!
//! The first three characters are the object's key prefix (`005` User, `0PS` PermissionSet...).
//! The API always answers with 18 characters and accepts 15 or 18 on input.

use std::fmt;

const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An 18-character record ID. `Copy` and ordered byte-wise, as the emulator's tables are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id([u8; 18]);

impl Id {
    /// The ID with key `prefix` (3 characters) and sequence number `n`, as Salesforce lays
    /// them out: prefix, a 2-character instance part, then a base-62 counter.
    pub fn new(prefix: &str, n: u64) -> Id {
        let prefix = prefix.as_bytes();
        assert_eq!(prefix.len(), 3, "key prefixes have three characters");
        let mut bytes = [b'0'; 18];
        bytes[..3].copy_from_slice(prefix);
        // Characters 3-4: the instance ("5g" looks like a real pod's).
        bytes[3] = b'5';
        bytes[4] = b'g';
        let mut rest = n;
        for slot in (5..15).rev() {
            bytes[slot] = BASE62[(rest % 62) as usize];
            rest /= 62;
        }
        let sum = checksum(&bytes[..15]);
        bytes[15..].copy_from_slice(&sum);
        Id(bytes)
    }

    /// Parses a 15- or 18-character ID. An 18-character input must carry the right checksum.
    pub fn parse(text: &str) -> Option<Id> {
        let bytes = text.as_bytes();
        if !(bytes.len() == 15 || bytes.len() == 18) || !bytes.iter().all(u8::is_ascii_alphanumeric)
        {
            return None;
        }
        let mut id = [0u8; 18];
        id[..15].copy_from_slice(&bytes[..15]);
        let sum = checksum(&bytes[..15]);
        if bytes.len() == 18 && !bytes[15..].eq_ignore_ascii_case(&sum) {
            return None;
        }
        id[15..].copy_from_slice(&sum);
        Some(Id(id))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("IDs are ASCII")
    }

    pub fn prefix(&self) -> &str {
        &self.as_str()[..3]
    }
}

/// For each 5-character chunk, bit i is set when character i is an upper-case letter; the
/// 5-bit value indexes `ABCDEFGHIJKLMNOPQRSTUVWXYZ012345`.
fn checksum(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk_index, chunk) in id15.chunks(5).enumerate() {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out[chunk_index] = CHECKSUM_ALPHABET[bits];
    }
    out
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_the_documented_example() {
        assert_eq!(
            Id::parse("A00000000000000").unwrap().as_str(),
            "A00000000000000BAA"
        );
    }

    #[test]
    fn fifteen_and_eighteen_characters_name_the_same_record() {
        let id = Id::new("005", 123_456_789);
        assert_eq!(id.as_str().len(), 18);
        assert_eq!(Id::parse(&id.as_str()[..15]), Some(id));
        assert_eq!(Id::parse(id.as_str()), Some(id));
        assert_eq!(id.prefix(), "005");
    }

    #[test]
    fn bad_ids_are_refused() {
        let id = Id::new("0PS", 42);
        let mut wrong = id.as_str().to_owned();
        wrong.replace_range(15..18, "ZZZ");
        assert_eq!(Id::parse(&wrong), None, "wrong checksum");
        assert_eq!(Id::parse("005'; DROP"), None);
        assert_eq!(Id::parse("005"), None);
    }

    #[test]
    fn ids_sort_by_sequence_within_a_prefix() {
        let ids: Vec<_> = (0..200).map(|n| Id::new("005", n)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
