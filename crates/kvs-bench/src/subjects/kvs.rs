//! kvs itself, used as an application would: through `Arc<dyn Store>`.

use crate::subject::{OpError, OpResult, Subject};
use kvs::{Error, Store};
use std::sync::Arc;

/// A kvs store of any backend.
pub struct Kvs(pub Arc<dyn Store>);

fn failed(what: &str, e: Error) -> OpError {
    OpError::failed(what, e)
}

impl Subject for Kvs {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        self.0
            .set(key, value, None)
            .await
            .map_err(|e| failed("set", e))
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        match self.0.get(key).await {
            Ok(v) => Ok(Some(v.len())),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(failed("get", e)),
        }
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        self.0
            .list(prefix)
            .await
            .map(|k| k.len())
            .map_err(|e| failed("list", e))
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        self.0.count(prefix).await.map_err(|e| failed("count", e))
    }

    /// `set_many` in batches of 1,000: the load is not measured.
    async fn load(&self, entries: Vec<(String, Vec<u8>)>) -> OpResult<()> {
        for chunk in entries.chunks(1_000) {
            let batch: Vec<(&str, &[u8])> = chunk
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            self.0
                .set_many(&batch, None)
                .await
                .map_err(|e| failed("set_many", e))?;
        }
        Ok(())
    }
}
