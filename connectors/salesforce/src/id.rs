//! Salesforce record IDs, validated before they go anywhere near a query.

use std::fmt;

const CHECKSUM: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// An 18-character Salesforce ID. Parsing accepts 15 characters (adding the checksum) or 18
/// (checking it), so a value that reaches SOQL is always exactly an ID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SalesforceId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Salesforce ID: expected 15 or 18 letters and digits, such as 005000000000001AAA")]
pub struct InvalidId(pub String);

impl SalesforceId {
    pub fn parse(text: &str) -> Result<SalesforceId, InvalidId> {
        let bytes = text.as_bytes();
        if !(bytes.len() == 15 || bytes.len() == 18) || !bytes.iter().all(u8::is_ascii_alphanumeric)
        {
            return Err(InvalidId(text.to_owned()));
        }
        let mut sum = String::with_capacity(3);
        for chunk in bytes[..15].chunks(5) {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            sum.push(CHECKSUM[bits] as char);
        }
        if bytes.len() == 18 && !text[15..].eq_ignore_ascii_case(&sum) {
            return Err(InvalidId(text.to_owned()));
        }
        Ok(SalesforceId(format!("{}{sum}", &text[..15])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key prefix naming the object type (`005` User, `0PS` PermissionSet...).
    pub fn prefix(&self) -> &str {
        &self.0[..3]
    }

    /// `parts - 1` IDs that cut the IDs after `low` up to `high` (of one object) into `parts`
    /// spans of about equal width, in ascending order: the bounds of ranges read side by side.
    /// Record IDs count up in base 62 after the key prefix, so equal widths hold about equal
    /// numbers of records. Fewer (none) when the span is too narrow or the prefixes differ.
    pub fn cuts(low: &SalesforceId, high: &SalesforceId, parts: usize) -> Vec<SalesforceId> {
        if low.prefix() != high.prefix() || parts < 2 {
            return Vec::new();
        }
        let (Some(from), Some(to)) = (base62(&low.0[3..15]), base62(&high.0[3..15])) else {
            return Vec::new();
        };
        if to <= from {
            return Vec::new();
        }
        let width = to - from;
        let mut cuts: Vec<SalesforceId> = Vec::with_capacity(parts - 1);
        for i in 1..parts {
            let at = from + width * i as u128 / parts as u128;
            if at <= from
                || cuts
                    .last()
                    .is_some_and(|last| base62(&last.0[3..15]) == Some(at))
            {
                continue;
            }
            let text = format!("{}{}", low.prefix(), to_base62(at));
            if let Ok(id) = SalesforceId::parse(&text) {
                cuts.push(id);
            }
        }
        cuts
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The number 12 base-62 characters spell, in ASCII order (which is Salesforce's ID order).
fn base62(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, c| {
        let value = BASE62.iter().position(|&d| d == c)? as u128;
        Some(acc * 62 + value)
    })
}

fn to_base62(mut n: u128) -> String {
    let mut digits = [b'0'; 12];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits.to_vec()).expect("ASCII")
}

impl fmt::Display for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SalesforceId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_characters_gain_their_checksum() {
        assert_eq!(
            SalesforceId::parse("A00000000000000").unwrap().as_str(),
            "A00000000000000BAA"
        );
        let id = SalesforceId::parse("0055g0000000001AAA").unwrap();
        assert_eq!(SalesforceId::parse("0055g0000000001").unwrap(), id);
        assert_eq!(id.prefix(), "005");
    }

    #[test]
    fn cuts_split_a_span_evenly_and_in_order() {
        let low = SalesforceId::parse("0PS5g0000000001").unwrap();
        let high = SalesforceId::parse("0PS5g00000003E9").unwrap();
        let cuts = SalesforceId::cuts(&low, &high, 4);
        assert_eq!(cuts.len(), 3);
        let mut previous = low.clone();
        for cut in &cuts {
            assert!(previous.as_str() < cut.as_str(), "{previous} < {cut}");
            assert_eq!(cut.prefix(), "0PS");
            previous = cut.clone();
        }
        assert!(previous.as_str() < high.as_str());
        assert!(SalesforceId::cuts(&low, &low, 4).is_empty());
        let user = SalesforceId::parse("0055g0000000001").unwrap();
        assert!(
            SalesforceId::cuts(&low, &user, 4).is_empty(),
            "other objects"
        );
        let next = SalesforceId::parse("0PS5g0000000002").unwrap();
        assert!(
            SalesforceId::cuts(&low, &next, 4).is_empty(),
            "no room between"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "005",
            "0055g0000000001ZZZ",
            "005' OR Id != '",
            "0055g00000000\u{e9}1",
        ] {
            assert!(SalesforceId::parse(bad).is_err(), "{bad}");
        }
    }
}
