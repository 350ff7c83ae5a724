//! The database URL, which may carry a password and so never prints whole.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const REDACTED: &str = "[redacted]";

/// A database URL. It may carry a password (`postgres://user:pass@host/db`), so it is shown
/// with the password replaced and handed out whole only through [`DatabaseUrl::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(value: impl Into<String>) -> Self {
        DatabaseUrl(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `[redacted]`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut parsed) if parsed.password().is_some() => {
                // `set_password` only fails for URLs that cannot carry one, which this has.
                let _ = parsed.set_password(Some(REDACTED));
                parsed.to_string()
            }
            Ok(_) => self.0.clone(),
            // Not a URL (a bare SQLite path): nothing that looks like a password to hide,
            // but an unparseable string could still be a mistyped secret-bearing URL.
            Err(_) if self.0.contains('@') => REDACTED.to_owned(),
            Err(_) => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(DatabaseUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_never_print() {
        let url = DatabaseUrl::new("postgres://provost:s3cr3t@db.internal:5432/provost");
        for shown in [
            format!("{url}"),
            format!("{url:?}"),
            serde_json::to_string(&url).unwrap(),
        ] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("db.internal"), "{shown}");
        }
        assert_eq!(
            DatabaseUrl::new("sqlite://provost.db").to_string(),
            "sqlite://provost.db"
        );
        assert_eq!(
            url.expose(),
            "postgres://provost:s3cr3t@db.internal:5432/provost"
        );
    }
}
