//! [`StoreFuture`], the future every [`Store`](crate::Store) method
//! returns, and [`KeyStream`], the stream of [`Store::scan`](crate::Store::scan).

use crate::Result;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The stream [`Store::scan`](crate::Store::scan) returns.
pub type KeyStream<'a> = Pin<Box<dyn futures_core::Stream<Item = Result<String>> + Send + 'a>>;

/// The future returned by [`Store`](crate::Store)'s methods: `.await` it
/// for the result.
///
/// It is `Send`, and either already holds its result
/// ([`StoreFuture::ready`], no allocation) or wraps a boxed future
/// ([`StoreFuture::boxed`]).
///
/// # Cooperative scheduling
///
/// A ready future still takes part in tokio's cooperative budget
/// (`tokio::task::coop`): every sixteenth one spends a unit of the task's
/// budget, and once the budget is spent it yields before answering, as
/// tokio's own channels and sockets do. Without that, a task looping on a memory store
/// never yields, and on a multi-thread runtime it starves the timers and
/// the other tasks of its worker. Outside a tokio runtime there is no
/// budget and a ready future answers at its first poll.
#[must_use = "a StoreFuture does nothing unless awaited"]
pub struct StoreFuture<'a, T>(Repr<'a, T>);

enum Repr<'a, T> {
    /// `None` once the result has been handed out.
    Ready(Option<Result<T>>),
    Boxed(Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>),
}

impl<'a, T> StoreFuture<'a, T> {
    /// A future that is already complete.
    pub fn ready(result: Result<T>) -> StoreFuture<'a, T> {
        StoreFuture(Repr::Ready(Some(result)))
    }

    /// A future that runs `future`.
    pub fn boxed(future: impl Future<Output = Result<T>> + Send + 'a) -> StoreFuture<'a, T> {
        StoreFuture(Repr::Boxed(Box::pin(future)))
    }

    /// The result, if this future already holds it; else the future.
    ///
    /// A wrapper that only looks at results (the observability layer)
    /// answers a ready call with a ready future of its own, instead of
    /// boxing a future around it.
    pub fn into_ready(self) -> std::result::Result<Result<T>, StoreFuture<'a, T>> {
        match self.0 {
            Repr::Ready(Some(result)) => Ok(result),
            repr => Err(StoreFuture(repr)),
        }
    }
}

// Never pins a `T`: a ready result is moved out, and a boxed future is
// pinned by its box.
impl<T> Unpin for StoreFuture<'_, T> {}

impl<T> Future for StoreFuture<'_, T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match &mut self.get_mut().0 {
            Repr::Ready(result) => {
                // Every READY_POLLS_PER_UNIT-th ready answer on this thread
                // spends a unit of the task's budget, and is Pending (with
                // the waker registered) when the budget is spent; see
                // "Cooperative scheduling" above.
                if spend_a_unit() {
                    ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
                }
                match result.take() {
                    Some(result) => Poll::Ready(result),
                    None => panic!("StoreFuture polled after it completed"),
                }
            }
            // A boxed future awaits tokio's own resources, which spend the
            // budget themselves.
            Repr::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

/// Ready answers per unit of tokio's cooperative budget (128 units a
/// task poll): a task doing nothing but memory-store calls yields every
/// 2,048 of them, about every millisecond. Spending a unit on every answer
/// made a lone task yield every 128 calls, and measured 0.69-0.86x
/// dashmap's single-task throughput (`kvs bench --store memory://`).
const READY_POLLS_PER_UNIT: u32 = 16;

thread_local! {
    /// Ready answers on this thread since it last spent a budget unit.
    static READY_POLLS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts a ready answer; `true` when it is the one to spend a unit.
fn spend_a_unit() -> bool {
    READY_POLLS.with(|polls| {
        let n = polls.get() + 1;
        let spend = n >= READY_POLLS_PER_UNIT;
        polls.set(if spend { 0 } else { n });
        spend
    })
}

impl<T> std::fmt::Debug for StoreFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.0 {
            Repr::Ready(Some(_)) => "ready",
            Repr::Ready(None) => "done",
            Repr::Boxed(_) => "pending",
        };
        f.debug_tuple("StoreFuture").field(&state).finish()
    }
}

/// In a method returning a [`StoreFuture`]: returns the error of `$check`
/// as a ready future, before any work starts. (Used by the backends that
/// are cargo features.)
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "leveldb",
        feature = "redis",
        feature = "dynamodb"
    )),
    allow(unused_macros)
)]
macro_rules! check {
    ($check:expr) => {
        if let Err(e) = $check {
            return $crate::StoreFuture::ready(Err(e));
        }
    };
}
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "leveldb",
        feature = "redis",
        feature = "dynamodb"
    )),
    allow(unused_imports)
)]
pub(crate) use check;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use std::sync::Arc;

    #[test]
    fn store_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let store: Arc<dyn Store> =
            Arc::new(crate::MemoryStore::new("t", Default::default()).unwrap());
        assert_send(&store.get("k"));
        assert_send(&store.list(""));
    }

    #[test]
    fn a_ready_future_answers_outside_any_runtime() {
        let future = StoreFuture::ready(Ok(7));
        assert_eq!(
            futures_util::FutureExt::now_or_never(future)
                .unwrap()
                .unwrap(),
            7
        );
    }
}
