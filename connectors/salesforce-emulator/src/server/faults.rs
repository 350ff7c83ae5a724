//! Faults injected on purpose, so clients can be tested against what real orgs do on a bad day.
//! Set at start and changed while running through the admin path.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every REST call (`/services/data`), while it counts as in flight.
    pub latency_ms: u64,
    /// Share (0..1) of REST calls answered 503 SERVER_UNAVAILABLE.
    pub unavailable_rate: f64,
    /// Share of REST calls answered with an HTML error page instead of JSON.
    pub html_error_rate: f64,
    /// Share of REST responses whose body is cut off mid-way (connection dropped).
    pub cut_connection_rate: f64,
    /// Share of record writes failing with UNABLE_TO_LOCK_ROW.
    pub lock_row_rate: f64,
    /// Access tokens stop working after this many REST calls each (401 INVALID_SESSION_ID).
    pub expire_sessions_after_calls: Option<u64>,
    /// More concurrent REST calls than this get REQUEST_LIMIT_EXCEEDED (ConcurrentRequests).
    pub max_concurrent_requests: Option<usize>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            unavailable_rate: 0.0,
            html_error_rate: 0.0,
            cut_connection_rate: 0.0,
            lock_row_rate: 0.0,
            expire_sessions_after_calls: None,
            max_concurrent_requests: None,
        }
    }
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("unavailable_rate", self.unavailable_rate),
            ("html_error_rate", self.html_error_rate),
            ("cut_connection_rate", self.cut_connection_rate),
            ("lock_row_rate", self.lock_row_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        Ok(())
    }
}

/// The dice the faults are rolled with: seeded, so a test run is repeatable.
pub struct Dice(ChaCha8Rng);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(ChaCha8Rng::seed_from_u64(seed))
    }

    pub fn roll(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.0.gen_bool(rate.min(1.0))
    }
}
