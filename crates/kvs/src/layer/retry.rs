//! The retry layer: a call that failed for a passing reason is tried
//! again, after a growing, jittered pause.

use super::around::{Around, AroundStore, Call, Measure};
use crate::{Error, Result, StoreFuture};
use std::hash::BuildHasher;
use std::time::Duration;

/// Tries a call again when it fails with an error that
/// [`is_temporary`](Error::is_temporary) (a refused or dropped connection,
/// a timeout, throttling, a busy file), up to `attempts` tries in all,
/// pausing `initial`, then twice that, and so on up to `max`, each pause
/// jittered to between half and all of it so that clients do not retry in
/// step.
///
/// # What is retried
///
/// A call whose outcome is unknown (the request may have been applied
/// before the connection broke) is only retried when doing it twice is
/// the same as doing it once:
///
/// | operation | retried |
/// |-----------|---------|
/// | `get`, `exists`, `ttl`, `list`, `count`, `get_many`, `list_page`, `entries_page`, `scan` (each page) | yes: reads |
/// | `set`, `set_many`, `delete`, `delete_many`, `expire`, `persist`, `delete_prefix`, `clear`, `close` | yes: the same result however often applied (a retried `delete_many` may count fewer keys) |
/// | `increment` | **no**: applied twice it adds twice |
/// | `set_if_absent`, `compare_and_swap` | **no**: a first try that succeeded unseen makes the retry answer `false` |
///
/// A failure that is not temporary (a bad key, a wrong password, a
/// closed store) is returned at once. Each retry is a WARN event (target
/// `kvs`) naming the operation and the error's kind. Pauses use tokio's
/// timer, as the networked backends do. In a configuration file, usually
/// outside a timeout so that each try has its own deadline:
/// `layers: [{ timeout: 2s }, { retry: { attempts: 3, initial: 50ms, max: 2s } }]`.
///
/// ```
/// use std::time::Duration;
/// use kvs::layer::{LayerExt, Retry};
///
/// let retry = Retry::new(4, Duration::from_millis(20), Duration::from_secs(1)).unwrap();
/// let err = Retry::new(0, Duration::from_millis(20), Duration::from_secs(1)).unwrap_err();
/// assert!(err.to_string().contains("attempts"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    attempts: u32,
    initial: Duration,
    max: Duration,
}

impl Retry {
    /// Up to `attempts` tries (the first included), pausing from
    /// `initial` up to `max`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for no attempts, or `initial` above `max`.
    pub fn new(attempts: u32, initial: Duration, max: Duration) -> Result<Retry> {
        if attempts == 0 {
            return Err(Error::config(
                "retry: `attempts` is 0; it counts the first try, so it must be at least 1",
            ));
        }
        if initial > max {
            return Err(Error::config(format!(
                "retry: `initial` of {initial:?} is above `max` of {max:?}"
            )));
        }
        Ok(Retry {
            attempts,
            initial,
            max,
        })
    }

    /// The pause before try number `attempt + 1` (`attempt` ≥ 1).
    fn pause(&self, attempt: u32) -> Duration {
        let full = self
            .initial
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.max);
        // Jitter: a uniform point in [full / 2, full]. RandomState is seeded
        // afresh for every instance, which is random enough for spreading
        // clients out (this is no secret).
        let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
        let half = full / 2;
        half + half.mul_f64((random % 1_000_000) as f64 / 1_000_000.0)
    }
}

super::layer_wraps_with!(Retry, |layer, inner| RetryStore::new(inner, *layer));

/// A store behind the [`Retry`] layer.
pub type RetryStore<S> = AroundStore<S, Retry>;

impl Around for Retry {
    fn around<'a, T: Measure + Send + 'a>(
        &'a self,
        call: Call<'a>,
        make: impl Fn() -> StoreFuture<'a, T> + Send + Sync + 'a,
    ) -> StoreFuture<'a, T> {
        let first = make();
        if !call.idempotent || self.attempts == 1 {
            return first;
        }
        // An answer at once that needs no retry stays an answer at once.
        let first = match first.into_ready() {
            Ok(result) if !result.as_ref().is_err_and(Error::is_temporary) => {
                return StoreFuture::ready(result)
            }
            Ok(result) => StoreFuture::ready(result),
            Err(future) => future,
        };
        let layer = *self;
        StoreFuture::boxed(async move {
            let mut result = first.await;
            let mut attempt = 1;
            while attempt < layer.attempts {
                match &result {
                    Err(e) if e.is_temporary() => {
                        let pause = layer.pause(attempt);
                        tracing::warn!(
                            target: "kvs",
                            operation = call.operation.name(),
                            error = e.kind(),
                            attempt,
                            pause_ms = pause.as_millis() as u64,
                            "retrying"
                        );
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                        result = make().await;
                    }
                    _ => break,
                }
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_maximum_and_are_jittered_down_to_half() {
        let retry = Retry::new(10, Duration::from_millis(100), Duration::from_secs(1)).unwrap();
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (9, 1000)] {
            let full = Duration::from_millis(full);
            for _ in 0..20 {
                let pause = retry.pause(attempt);
                assert!(pause >= full / 2 && pause <= full, "{attempt}: {pause:?}");
            }
        }
        // A huge attempt number neither overflows nor panics.
        assert!(retry.pause(u32::MAX) <= Duration::from_secs(1));
    }
}
