//! What is measured: a [`Subject`] is kvs or one of its peers, driven
//! through the same four operations.

use std::future::Future;

/// Why an operation of a subject failed.
#[derive(Debug, Clone)]
pub enum OpError {
    /// The subject cannot do this at all (say, no prefix listing); the
    /// workload is reported as not comparable.
    Unsupported(&'static str),
    /// It can, but this call failed; the run stops with this message.
    Failed(String),
}

impl OpError {
    /// A failure described by `what` and the underlying error.
    pub fn failed(what: &str, e: impl std::fmt::Display) -> OpError {
        OpError::Failed(format!("{what}: {e}"))
    }
}

/// The result of one operation.
pub type OpResult<T> = Result<T, OpError>;

/// A store under measurement. Each method does what a user of that store
/// would write for the operation; none may cut a corner the others cannot
/// (every `get` returns the value's bytes, every `list` the key names).
pub trait Subject: Send + Sync + 'static {
    /// Stores `value` under `key`.
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = OpResult<()>> + Send;

    /// The length of the value under `key`, or `None` if it is absent.
    fn get(&self, key: &str) -> impl Future<Output = OpResult<Option<usize>>> + Send;

    /// The keys starting with `prefix`: how many were returned.
    fn list(&self, prefix: &str) -> impl Future<Output = OpResult<usize>> + Send;

    /// How many keys start with `prefix`.
    fn count(&self, prefix: &str) -> impl Future<Output = OpResult<usize>> + Send;

    /// Stores every entry before a run; by default 64 concurrent `set`s
    /// at a time. Subjects with a faster native bulk path may use it: the
    /// load is not measured.
    fn load(&self, entries: Vec<(String, Vec<u8>)>) -> impl Future<Output = OpResult<()>> + Send
    where
        Self: Sized,
    {
        async move {
            for chunk in entries.chunks(64) {
                let writes = chunk.iter().map(|(k, v)| self.set(k, v));
                for result in futures_util::future::join_all(writes).await {
                    result?;
                }
            }
            Ok(())
        }
    }
}
