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
