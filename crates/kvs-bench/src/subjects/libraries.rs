//! The libraries a user would pick instead of kvs — OpenDAL, openkeyv and
//! keyv — each driven through its own generic API, so that one impl serves
//! every service of the library: memory and redis here, sqlite and
//! dynamodb in `bench/peers` (whose dependencies cannot share this
//! workspace's lockfile). The constructors for a given service live with
//! that backend's peers.

use crate::subject::{OpError, OpResult, Subject};

/// An OpenDAL `Operator` on any service: keys are paths.
pub struct OpenDal(pub opendal::Operator);

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

/// An openkeyv store (memory, redis, dynamodb) through its
/// `AsyncKeyValue` trait.
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

    /// `put_many` in batches of 1,000 (DynamoDB's store sends them as
    /// BatchWriteItem): the load is not measured.
    async fn load(&self, entries: Vec<(String, Vec<u8>)>) -> OpResult<()> {
        for chunk in entries.chunks(1_000) {
            let keys: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
            let values: Vec<openkeyv::value::Value> = chunk
                .iter()
                .map(|(_, v)| openkeyv::value::Value::binary(v.clone()))
                .collect();
            self.0
                .put_many(&keys, &values, None, None)
                .await
                .map_err(|e| OpError::failed("openkeyv put_many", e))?;
        }
        Ok(())
    }
}

/// A keyv store (redis, sqlite). Values are JSON (`serde_json::Value`):
/// the bytes are stored as a JSON string, which is what a keyv user would
/// do.
pub struct Keyv(pub keyv::Keyv);

impl Subject for Keyv {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        let text = String::from_utf8_lossy(value).into_owned();
        self.0
            .set(key, text)
            .await
            .map_err(|e| OpError::failed("keyv set", e))
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        let value = self
            .0
            .get(key)
            .await
            .map_err(|e| OpError::failed("keyv get", e))?;
        Ok(value.map(|v| v.as_str().map_or(0, str::len)))
    }

    async fn list(&self, _prefix: &str) -> OpResult<usize> {
        Err(OpError::Unsupported("keyv cannot list keys"))
    }

    async fn count(&self, _prefix: &str) -> OpResult<usize> {
        Err(OpError::Unsupported("keyv cannot count keys"))
    }
}
