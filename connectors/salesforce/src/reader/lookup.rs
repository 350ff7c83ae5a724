//! A lookup a reader makes once and shares between its streams: frozen users, permission set
//! group components, muting sets, setup entities' names, the fields the org shows and those each
//! object's reads select.
//!
//! Several streams ask for the same lookup at about the same time (the six ranges of the
//! assignments each need the group components for their first page). One of them makes it;
//! the others wait and take its value. When making it fails, the client has already retried
//! it as long as it retries anything, so the callers that waited take that failure too instead
//! of each retrying in turn: during an outage, six waiting streams would otherwise spend six
//! times the retries (up to 6 attempts and about 8 s of backoff each) before the run stopped.
//! A caller that comes after a failure makes the lookup again.

use std::future::Future;

use crate::error::SalesforceError;

pub(super) struct Lookup<T, E = SalesforceError> {
    /// The value, once made; held locked while it is made, so callers wait in turn.
    value: tokio::sync::Mutex<Option<T>>,
    /// How many times making it failed, and the last failure.
    failed: std::sync::Mutex<(u64, Option<E>)>,
}

impl<T, E> Default for Lookup<T, E> {
    fn default() -> Self {
        Lookup {
            value: tokio::sync::Mutex::new(None),
            failed: std::sync::Mutex::new((0, None)),
        }
    }
}

impl<T: Clone, E: Clone> Lookup<T, E> {
    pub(super) fn new() -> Lookup<T, E> {
        Lookup::default()
    }

    /// The value, made by `make` if nobody has made it; the failure of a making this call
    /// waited for.
    pub(super) async fn get<F, Fut>(&self, make: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let failures_before = self.failed().0;
        let mut value = self.value.lock().await;
        if let Some(made) = &*value {
            return Ok(made.clone());
        }
        {
            let failed = self.failed();
            if let (failures, Some(failure)) = &*failed {
                if *failures != failures_before {
                    return Err(failure.clone());
                }
            }
        }
        match make().await {
            Ok(made) => {
                *value = Some(made.clone());
                Ok(made)
            }
            Err(err) => {
                let mut failed = self.failed();
                failed.0 += 1;
                failed.1 = Some(err.clone());
                Err(err)
            }
        }
    }

    /// Keeps `value` as made (taken by other means).
    pub(super) async fn set(&self, value: T) {
        *self.value.lock().await = Some(value);
    }

    /// Forgets the value: the next caller makes it again (a read from the start sees the org
    /// as it is now).
    pub(super) async fn forget(&self) {
        *self.value.lock().await = None;
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, (u64, Option<E>)> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    fn unavailable() -> SalesforceError {
        SalesforceError::Transport {
            url: "https://example.my.salesforce.com".into(),
            message: "connection failed".into(),
        }
    }

    #[tokio::test]
    async fn callers_waiting_for_a_failed_lookup_share_its_failure_and_a_later_caller_tries_again()
    {
        let lookup: Lookup<u32> = Lookup::new();
        let made = AtomicU32::new(0);
        let failing = || async {
            made.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(unavailable())
        };
        let (a, b, c) = tokio::join!(
            lookup.get(failing),
            lookup.get(failing),
            lookup.get(failing)
        );
        assert_eq!(
            made.load(Ordering::SeqCst),
            1,
            "made once for three waiters"
        );
        for result in [a, b, c] {
            assert!(
                matches!(result, Err(SalesforceError::Transport { .. })),
                "{result:?}"
            );
        }
        // After the failure, a new caller makes it again, and its value is kept.
        let value = lookup
            .get(|| async {
                made.fetch_add(1, Ordering::SeqCst);
                Ok(7)
            })
            .await
            .unwrap();
        assert_eq!((value, made.load(Ordering::SeqCst)), (7, 2));
        let kept = lookup.get(|| async { Ok(8) }).await.unwrap();
        assert_eq!(kept, 7, "made once, then kept");
        lookup.forget().await;
        let again = lookup.get(|| async { Ok(9) }).await.unwrap();
        assert_eq!(again, 9, "made again once forgotten");
    }

    #[tokio::test]
    async fn callers_waiting_for_a_lookup_that_succeeds_take_its_value() {
        let lookup: Lookup<u32> = Lookup::new();
        let made = AtomicU32::new(0);
        let making = || async {
            made.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(made.load(Ordering::SeqCst))
        };
        let (a, b) = tokio::join!(lookup.get(making), lookup.get(making));
        assert_eq!((a.unwrap(), b.unwrap()), (1, 1));
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }
}
