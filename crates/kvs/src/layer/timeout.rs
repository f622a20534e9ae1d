//! The timeout layer: a deadline for every call.

use super::around::{Around, AroundStore, Call, Measure};
use crate::{Error, Result, StoreFuture};
use std::time::Duration;

/// Gives every call `limit` to answer; a call that has not answered by
/// then is dropped and fails with a temporary [`Error::Backend`] ("did
/// not answer within ..."), so a [`Retry`](super::Retry) layer outside
/// it tries again where that is safe.
///
/// A call that timed out may still have been applied (a write sent to a
/// server that answers late): the retry layer does not repeat the calls
/// for which that matters. Calls that answer at once (the memory store)
/// never start a timer. Uses tokio's timer, as the networked backends
/// do. In a configuration file: `layers: [{ timeout: 2s }]`.
///
/// ```
/// use std::time::Duration;
/// use kvs::layer::Timeout;
///
/// let timeout = Timeout::new(Duration::from_secs(2)).unwrap();
/// assert!(Timeout::new(Duration::ZERO).is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Timeout {
    limit: Duration,
    backend: &'static str,
}

impl Timeout {
    /// Calls get `limit` to answer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero limit.
    pub fn new(limit: Duration) -> Result<Timeout> {
        if limit.is_zero() {
            return Err(Error::config(
                "timeout: the limit is 0; give a duration such as 2s",
            ));
        }
        Ok(Timeout {
            limit,
            backend: "store",
        })
    }

    /// Names `backend` in the errors (what [`open`](crate::open) does).
    pub fn for_backend(mut self, backend: &'static str) -> Timeout {
        self.backend = backend;
        self
    }
}

super::layer_wraps_with!(Timeout, |layer, inner| TimeoutStore::new(inner, *layer));

/// A store behind the [`Timeout`] layer.
pub type TimeoutStore<S> = AroundStore<S, Timeout>;

impl Around for Timeout {
    fn around<'a, T: Measure + Send + 'a>(
        &'a self,
        call: Call<'a>,
        make: impl Fn() -> StoreFuture<'a, T> + Send + Sync + 'a,
    ) -> StoreFuture<'a, T> {
        let future = match make().into_ready() {
            Ok(result) => return StoreFuture::ready(result),
            Err(future) => future,
        };
        let layer = *self;
        StoreFuture::boxed(async move {
            match tokio::time::timeout(layer.limit, future).await {
                Ok(result) => result,
                Err(_) => Err(Error::backend(
                    layer.backend,
                    format!(
                        "{} did not answer within {:?} (the timeout layer)",
                        call.operation.name(),
                        layer.limit
                    ),
                    "deadline passed",
                )
                .temporary_if(true)),
            }
        })
    }
}
