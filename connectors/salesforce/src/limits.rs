//! The org's API usage, from the `Sforce-Limit-Info` header every REST answer carries.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ApiUsage {
    /// Requests used in the rolling 24 hours.
    pub used: u64,
    /// The org's daily allocation.
    pub max: u64,
}

impl ApiUsage {
    /// Parses `api-usage=USED/MAX` (used first; reading it the other way round is a known bug
    /// in other connectors). Other entries in the header are ignored.
    pub fn from_header(value: &str) -> Option<ApiUsage> {
        value.split(',').find_map(|part| {
            let (key, numbers) = part.trim().split_once('=')?;
            if key.trim() != "api-usage" {
                return None;
            }
            let (used, max) = numbers.split_once('/')?;
            Some(ApiUsage {
                used: used.trim().parse().ok()?,
                max: max.trim().parse().ok()?,
            })
        })
    }

    pub fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }
}

impl fmt::Display for ApiUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} requests used", self.used, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_comes_first() {
        let usage = ApiUsage::from_header("api-usage=18/15000").unwrap();
        assert_eq!(
            usage,
            ApiUsage {
                used: 18,
                max: 15000
            }
        );
        assert_eq!(usage.remaining(), 14982);
        assert_eq!(
            ApiUsage::from_header("per-app-api-usage=1/100(appName=x), api-usage=7/100"),
            Some(ApiUsage { used: 7, max: 100 })
        );
        assert_eq!(ApiUsage::from_header("api-usage=lots"), None);
    }
}
