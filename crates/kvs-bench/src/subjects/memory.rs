//! In-memory peers: the raw maps (`dashmap`, `moka`) and the libraries
//! with a memory service (OpenDAL, openkeyv). The raw maps cannot list by
//! prefix; they are listed the way a user would have to: walk every key
//! and keep the matches. OpenDAL lists its root recursively and filters.

use crate::subject::{OpError, OpResult, Subject};
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

/// An OpenDAL `Operator` on any service (memory, redis): keys are paths.
pub struct OpenDal(pub opendal::Operator);

impl OpenDal {
    /// OpenDAL's memory service.
    pub fn memory() -> OpResult<OpenDal> {
        let op = opendal::Operator::new(opendal::services::Memory::default())
            .map_err(|e| OpError::failed("opendal memory", e))?;
        Ok(OpenDal(op))
    }
}

impl Subject for OpenDal {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        self.0
            .write(key, value.to_vec())
            .await
            .map(drop)
            .map_err(|e| OpError::failed("opendal write", e))
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        match self.0.read(key).await {
            Ok(buffer) => Ok(Some(buffer.to_bytes().len())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(OpError::failed("opendal read", e)),
        }
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        if !self.0.info().capability().list {
            return Err(OpError::Unsupported("this OpenDAL service cannot list"));
        }
        // OpenDAL lists a "directory"; a key prefix needs a recursive
        // listing of the root, filtered.
        let entries = self
            .0
            .list_with("")
            .recursive(true)
            .await
            .map_err(|e| OpError::failed("opendal list", e))?;
        let mut keys: Vec<&str> = entries
            .iter()
            .map(|e| e.path())
            .filter(|p| p.starts_with(prefix))
            .collect();
        keys.sort_unstable();
        Ok(keys.len())
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        self.list(prefix).await
    }
}

/// An openkeyv store (memory, redis) through its `AsyncKeyValue` trait.
pub struct OpenKeyv<S>(pub S);

impl<S> Subject for OpenKeyv<S>
where
    S: openkeyv::AsyncKeyValue + 'static,
{
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        self.0
            .put(
                key,
                openkeyv::value::Value::binary(value.to_vec()),
                None,
                None,
            )
            .await
            .map_err(|e| OpError::failed("openkeyv put", e))
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        self.0
            .get(key, None)
            .await
            .map(|v| v.map(|v| v.bytes().len()))
            .map_err(|e| OpError::failed("openkeyv get", e))
    }

    async fn list(&self, _prefix: &str) -> OpResult<usize> {
        // `keys()` returns at most 10,000 keys of a collection and has no
        // prefix: a prefix listing over more keys is not possible.
        Err(OpError::Unsupported(
            "openkeyv has no prefix query and keys() stops at 10,000",
        ))
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        self.list(prefix).await
    }
}
