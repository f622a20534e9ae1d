//! Redis peers, all on the same server as the kvs store: the `redis` crate
//! (one multiplexed, reconnecting connection, as kvs uses), OpenDAL's redis
//! service, openkeyv and keyv. Each writes under its own `kvs-bench-…`
//! prefix, which [`clean`] removes before and after a run.

use crate::subject::{OpError, OpResult, Subject};
use crate::subjects::libraries::{Keyv, OpenDal, OpenKeyv};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

/// The prefix every benchmark key on a Redis server starts with.
pub const PREFIX: &str = "kvs-bench-";

/// The `redis` crate: `GET`/`SET`, and `SCAN MATCH` + sort for listing,
/// exactly what kvs sends.
pub struct RawRedis {
    conn: ConnectionManager,
    prefix: String,
}

impl RawRedis {
    /// Connects to `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> OpResult<RawRedis> {
        let client = redis::Client::open(url).map_err(|e| OpError::failed("redis client", e))?;
        let conn = ConnectionManager::new(client)
            .await
            .map_err(|e| OpError::failed("redis connect", e))?;
        Ok(RawRedis {
            conn,
            prefix: format!("{PREFIX}raw:"),
        })
    }

    async fn scan(&self, pattern: &str) -> OpResult<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| OpError::failed("redis SCAN", e))?;
            keys.extend(batch);
            if next == 0 {
                keys.sort_unstable();
                keys.dedup();
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

impl Subject for RawRedis {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        self.conn
            .clone()
            .set(format!("{}{key}", self.prefix), value)
            .await
            .map_err(|e| OpError::failed("redis SET", e))
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        let value: Option<Vec<u8>> = self
            .conn
            .clone()
            .get(format!("{}{key}", self.prefix))
            .await
            .map_err(|e| OpError::failed("redis GET", e))?;
        Ok(value.map(|v| v.len()))
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        // The benchmark's prefixes hold no glob characters.
        let keys = self.scan(&format!("{}{prefix}*", self.prefix)).await?;
        Ok(keys.len())
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        self.list(prefix).await
    }

    /// Pipelines of 1,000 `SET`s.
    async fn load(&self, entries: Vec<(String, Vec<u8>)>) -> OpResult<()> {
        for chunk in entries.chunks(1_000) {
            let mut pipe = redis::pipe();
            for (k, v) in chunk {
                pipe.set(format!("{}{k}", self.prefix), v).ignore();
            }
            pipe.query_async::<()>(&mut self.conn.clone())
                .await
                .map_err(|e| OpError::failed("redis pipeline", e))?;
        }
        Ok(())
    }
}

/// Deletes every benchmark key from the server at `url`: `kvs-bench-*`,
/// and openkeyv's, which it prefixes with the keyspace's length
/// (`18:kvs-bench-openkeyv…`).
pub async fn clean(url: &str) -> OpResult<()> {
    let raw = RawRedis::connect(url).await?;
    let mut keys = raw.scan(&format!("{PREFIX}*")).await?;
    keys.extend(raw.scan(&format!("[0-9]*:{PREFIX}*")).await?);
    for chunk in keys.chunks(1_000) {
        raw.conn
            .clone()
            .del::<_, ()>(chunk)
            .await
            .map_err(|e| OpError::failed("redis DEL", e))?;
    }
    Ok(())
}

/// OpenDAL's redis service on the server at `endpoint` (`tcp://host:port`).
pub fn opendal(endpoint: &str, db: i64) -> OpResult<OpenDal> {
    let builder = opendal::services::Redis::default()
        .endpoint(endpoint)
        .db(db)
        .root(&format!("/{PREFIX}opendal/"));
    let op = opendal::Operator::new(builder).map_err(|e| OpError::failed("opendal redis", e))?;
    Ok(OpenDal(op))
}

/// openkeyv's redis store.
pub async fn openkeyv(url: &str) -> OpResult<OpenKeyv<openkeyv::store::redis::RedisStore>> {
    let config =
        openkeyv::store::redis::RedisConfig::new(None).with_keyspace(format!("{PREFIX}openkeyv"));
    openkeyv::store::redis::RedisStore::new_with_config(url, config)
        .await
        .map(OpenKeyv)
        .map_err(|e| OpError::failed("openkeyv redis", e))
}

/// keyv's redis store.
pub async fn keyv(url: &str) -> OpResult<Keyv> {
    let store = keyv::adapter::redis::RedisStoreBuilder::new()
        .uri(url)
        .namespace(format!("{PREFIX}keyv"))
        .build()
        .await
        .map_err(|e| OpError::failed("keyv redis", e))?;
    keyv::Keyv::try_new(store)
        .await
        .map(Keyv)
        .map_err(|e| OpError::failed("keyv", e))
}
