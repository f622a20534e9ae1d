//! In-memory peers: the raw maps (`dashmap`, `moka`) and the libraries
//! with a memory service (OpenDAL, openkeyv). The raw maps cannot list by
//! prefix; they are listed the way a user would have to: walk every key
//! and keep the matches. OpenDAL lists its root recursively and filters.

use crate::subject::{OpError, OpResult, Subject};
use crate::subjects::libraries::{OpenDal, OpenKeyv};
use bytes::Bytes;

/// `DashMap<String, Bytes>`, the fastest concurrent map a user would reach for.
#[derive(Default)]
pub struct DashMapPeer(dashmap::DashMap<String, Bytes>);

impl Subject for DashMapPeer {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        self.0.insert(key.to_owned(), Bytes::copy_from_slice(value));
        Ok(())
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        Ok(self.0.get(key).map(|v| v.value().clone().len()))
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        let mut keys: Vec<String> = self
            .0
            .iter()
            .filter(|e| e.key().starts_with(prefix))
            .map(|e| e.key().clone())
            .collect();
        keys.sort_unstable();
        Ok(keys.len())
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        Ok(self
            .0
            .iter()
            .filter(|e| e.key().starts_with(prefix))
            .count())
    }
}

/// `moka::future::Cache<String, Bytes>`, unbounded.
pub struct MokaPeer(moka::future::Cache<String, Bytes>);

impl Default for MokaPeer {
    fn default() -> MokaPeer {
        MokaPeer(moka::future::Cache::builder().build())
    }
}

impl MokaPeer {
    /// A cache of at most `capacity` entries (W-TinyLFU eviction).
    pub fn bounded(capacity: u64) -> MokaPeer {
        MokaPeer(
            moka::future::Cache::builder()
                .max_capacity(capacity)
                .build(),
        )
    }
}

impl Subject for MokaPeer {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        self.0
            .insert(key.to_owned(), Bytes::copy_from_slice(value))
            .await;
        Ok(())
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        Ok(self.0.get(key).await.map(|v| v.len()))
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        let mut keys: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| (*k).clone())
            .collect();
        keys.sort_unstable();
        Ok(keys.len())
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        Ok(self.0.iter().filter(|(k, _)| k.starts_with(prefix)).count())
    }
}

/// OpenDAL's memory service.
pub fn opendal() -> OpResult<OpenDal> {
    let op = opendal::Operator::new(opendal::services::Memory::default())
        .map_err(|e| OpError::failed("opendal memory", e))?;
    Ok(OpenDal(op))
}

/// openkeyv's memory store.
pub fn openkeyv() -> OpenKeyv<openkeyv::store::memory::MemoryStore> {
    OpenKeyv(openkeyv::store::memory::MemoryStore::new())
}
