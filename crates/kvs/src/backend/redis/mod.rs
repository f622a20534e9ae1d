//! The Redis backend: [`RedisStore`] (feature `redis`).
//!
//! # Key form
//!
//! A key is stored under [`encode_key(namespace, key)`](crate::raw::encode_key):
//! namespace `sessions` and key `user:1` are the Redis key `sessions:user:1`
//! (a `:` or `\` inside the namespace is escaped with `\`), so
//! `redis-cli GET sessions:user:1` reads what kvs wrote, and the reverse.
//! Documents live under `<escaped namespace>\d:<escaped collection>:<id>`,
//! a form no plain key can take.
//!
//! # Commands
//!
//! TTLs are Redis's own (`SET … PX`, `PEXPIRE`, `PERSIST`, `PTTL`); `list`
//! and `count` run `SCAN MATCH` with every glob character of the namespace
//! and prefix escaped and a large `COUNT` hint, then de-duplicate and sort
//! (SCAN may return a key twice and in any order). `set_if_absent` is
//! `SET NX`, `compare_and_swap` a Lua script, `increment` `INCRBY`.
//!
//! A `SCAN` walks every key of the database, whatever the prefix: one step
//! per 1,000 keys on the server. With `index: true` the namespace keeps an
//! ordered index instead (`index.rs`): every write is one Lua script that
//! changes the key and the index together, and listing, counting, paging
//! and prefix deletes read the index, O(log n + matches). On a cluster the
//! indexed form of a key is `{<namespace>}:<key>` (the namespace as hash
//! tag, so that a script reaches the key and the index on one node).
//!
//! # Client
//!
//! The `redis` crate's `ConnectionManager`: a multiplexed connection that
//! every task shares, reconnecting by itself after a failure (`pool_size`
//! of them, taken in turn, when one socket is not enough). Connecting is
//! bounded by `connect_timeout` and every command by `command_timeout`, so
//! a dead or hung server gives `Error::Backend`, not a hang. (`fred` was the alternative; `redis` is the
//! crate the issue names first, and one multiplexed connection already
//! pipelines concurrent tasks.)
//!
//! # Files
//!
//! `connections.rs` (the pool, reconnecting, the one error mapping),
//! `cluster.rs` (connecting to a cluster, finding its masters), `scan.rs`
//! (listing by `SCAN`), `index.rs` (the ordered index: its keys, building
//! it, listing from it), `scripts.rs` (the Lua scripts).

mod cluster;
mod connections;
mod index;
mod scan;
mod scripts;

pub use index::IndexBuild;

use crate::config::RedisConfig;
use crate::deadline::{check_batch_ttl, check_ttl};
use crate::document::{DocSpace, Documents};
use crate::expiry::{Clock, SystemClock};
use crate::future::check;
use crate::generic::last_of_each;
use crate::key::{normalize_namespace, validate_key, validate_prefix};
use crate::{DocumentStore, Error, KeyStream, Result, Store, StoreFuture};
use bytes::Bytes;
use connections::{redis_error, Conn, Connections};
use parking_lot::Mutex;
use redis::{AsyncCommands, ErrorKind, RedisError};
use scan::SCAN_COUNT;
use scripts::CAS_SCRIPT;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

const BACKEND: &str = "redis";
/// Redis's largest string value.
const MAX_VALUE_LEN: usize = 512 * 1024 * 1024;

/// A store in a Redis server or a Redis Cluster.
pub struct RedisStore {
    /// The escaped namespace and separator every key starts with.
    prefix: String,
    addr: String,
    /// Every connection the store holds; `None` once closed, which drops
    /// them all (their driver tasks end with the last handle).
    conns: Mutex<Option<Connections>>,
    /// Which connection of the pool the next command takes.
    next: AtomicUsize,
    /// The ordered index of the namespace, when it has one: then every
    /// write goes through an index script and listing reads the index.
    index: Option<index::Index>,
}

impl RedisStore {
    /// Connects to the server in `config` for `namespace`.
    pub async fn open(namespace: &str, config: RedisConfig) -> Result<RedisStore> {
        let namespace = normalize_namespace(namespace)?;
        RedisStore::connect_namespace(&namespace, &config).await
    }

    /// Like [`RedisStore::open`]; for the naming scheme every backend
    /// shares. Redis expires keys by the server's clock, so plain keys
    /// never read `clock`.
    pub async fn open_with_clock(
        namespace: &str,
        config: RedisConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<RedisStore> {
        let _ = clock;
        RedisStore::open(namespace, config).await
    }

    /// Opens `namespace` with its document layer.
    pub async fn open_documents(
        namespace: &str,
        config: RedisConfig,
    ) -> Result<Arc<dyn DocumentStore>> {
        RedisStore::open_documents_with_clock(namespace, config, Arc::new(SystemClock)).await
    }

    /// Like [`RedisStore::open_documents`], with documents' timestamps
    /// read from `clock`.
    pub async fn open_documents_with_clock(
        namespace: &str,
        config: RedisConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<dyn DocumentStore>> {
        let namespace = normalize_namespace(namespace)?;
        let keys = RedisStore::connect_namespace(&namespace, &config).await?;
        let docs = RedisStore::connect(documents_prefix(&namespace), &config).await?;
        Ok(Arc::new(Documents::new(keys, docs, clock)))
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    fn error(&self, what: &str, e: RedisError) -> Error {
        redis_error(format!("{what} on {}", self.addr), e)
    }
}

/// The prefix of documents of `namespace`: `\d` can follow an escaped
/// namespace only here, so no plain key ever has this prefix.
pub(crate) fn documents_prefix(namespace: &str) -> String {
    let mut prefix = crate::key::escape_namespace(namespace);
    prefix.push_str("\\d:");
    prefix
}

/// Milliseconds for `PX`, or `None` for no TTL.
fn px(ttl: Option<Duration>) -> Option<u64> {
    match ttl {
        Some(ttl) if !ttl.is_zero() => {
            Some(u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
        }
        _ => None,
    }
}

fn too_large(key: &str, value: &[u8]) -> Result<()> {
    Error::check_value_size(BACKEND, key, value.len(), MAX_VALUE_LEN)
}

impl Store for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let value: Option<Vec<u8>> = self
                .conn()?
                .get(self.key(key))
                .await
                .map_err(|e| self.error("GET", e))?;
            value.map(Bytes::from).ok_or(Error::NotFound)
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, ttl));
        check!(validate_key(key).and_then(|()| too_large(key, value)));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                let Some(ms) = px(ttl) else {
                    return self.indexed_set_plain(&[(key, value)]).await;
                };
                let ms = ms.to_string();
                let args: [&[u8]; 4] = [key.as_bytes(), value, ms.as_bytes(), b"0"];
                return self
                    .indexed::<i64>("SET (indexed)", |s| &s.set, &[key], &args)
                    .await
                    .map(drop);
            }
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(key)).arg(value);
            if let Some(ms) = px(ttl) {
                cmd.arg("PX").arg(ms);
            }
            cmd.query_async::<()>(&mut self.conn()?)
                .await
                .map_err(|e| self.error("SET", e))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                return self.indexed_delete(&[key]).await.map(drop);
            }
            self.conn()?
                .del::<_, ()>(self.key(key))
                .await
                .map_err(|e| self.error("DEL", e))
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            self.conn()?
                .exists(self.key(key))
                .await
                .map_err(|e| self.error("EXISTS", e))
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(self.keys_of(prefix))
    }

    fn count<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                return self.indexed_count(prefix).await;
            }
            Ok(self.scan_keys(prefix).await?.len())
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        drop(self.conns.lock().take());
        StoreFuture::ready(Ok(()))
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let ms: i64 = self
                .conn()?
                .pttl(self.key(key))
                .await
                .map_err(|e| self.error("PTTL", e))?;
            match ms {
                -2 => Err(Error::NotFound),
                -1 => Ok(None),
                ms => Ok(Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))),
            }
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        check!(keys.iter().try_for_each(|k| validate_key(k)));
        StoreFuture::boxed(async move {
            // Closed first, even for an empty batch.
            let mut conn = self.conn()?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&full)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error("MGET", e))?;
            Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
        })
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(check_batch_ttl(entries, ttl));
        check!(entries
            .iter()
            .try_for_each(|(k, v)| validate_key(k).and_then(|()| too_large(k, v))));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                if entries.is_empty() {
                    self.conn()?;
                    return Ok(());
                }
                // One step: on a cluster the keys share the namespace's slot.
                let Some(ms) = px(ttl) else {
                    return self.indexed_set_plain(entries).await;
                };
                let ms = ms.to_string();
                let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
                let mut args: Vec<&[u8]> = Vec::with_capacity(1 + 2 * entries.len());
                args.push(ms.as_bytes());
                for (key, value) in entries {
                    args.push(key.as_bytes());
                    args.push(value);
                }
                return self
                    .indexed::<i64>("SET (indexed batch)", |s| &s.set_many, &keys, &args)
                    .await
                    .map(drop);
            }
            let mut conn = self.conn()?;
            let set = |key: &str, value: &[u8]| {
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.key(key)).arg(value);
                if let Some(ms) = px(ttl) {
                    cmd.arg("PX").arg(ms);
                }
                cmd
            };
            if matches!(conn, Conn::Cluster(_)) {
                // A pipeline must stay within one slot on a cluster: send the
                // writes concurrently instead, each routed to its node. They
                // may land in any order, so a repeated key is sent once, with
                // its last value.
                let writes = last_of_each(entries).into_iter().map(|(key, value)| {
                    let mut conn = conn.clone();
                    let cmd = set(key, value);
                    async move { cmd.query_async::<()>(&mut conn).await }
                });
                return futures_util::future::try_join_all(writes)
                    .await
                    .map(drop)
                    .map_err(|e| self.error("SET (concurrent)", e));
            }
            // One MULTI/EXEC round trip on a single server.
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (key, value) in entries {
                pipe.add_command(set(key, value)).ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| self.error("SET (pipelined)", e))
        })
    }

    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        check!(keys.iter().try_for_each(|k| validate_key(k)));
        StoreFuture::boxed(async move {
            // Closed first, even for an empty batch.
            let mut conn = self.conn()?;
            if keys.is_empty() {
                return Ok(0);
            }
            if self.index.is_some() {
                return self.indexed_delete(keys).await;
            }
            let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
            // DEL counts each existing key once, duplicates included once.
            conn.del(full).await.map_err(|e| self.error("DEL", e))
        })
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(check_ttl(key, ttl));
        check!(validate_key(key).and_then(|()| too_large(key, value)));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                let ms = px(ttl).unwrap_or(0).to_string();
                let args: [&[u8]; 4] = [key.as_bytes(), value, ms.as_bytes(), b"1"];
                let set: i64 = self
                    .indexed("SET NX (indexed)", |s| &s.set, &[key], &args)
                    .await?;
                return Ok(set == 1);
            }
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(key)).arg(value).arg("NX");
            if let Some(ms) = px(ttl) {
                cmd.arg("PX").arg(ms);
            }
            let set: Option<String> = cmd
                .query_async(&mut self.conn()?)
                .await
                .map_err(|e| self.error("SET NX", e))?;
            Ok(set.is_some())
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(check_ttl(key, ttl));
        let Some(expected) = expected else {
            return self.set_if_absent(key, new, ttl);
        };
        check!(validate_key(key).and_then(|()| too_large(key, new)));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                let ms = px(ttl).unwrap_or(0).to_string();
                let args: [&[u8]; 4] = [key.as_bytes(), expected, new, ms.as_bytes()];
                let swapped: i64 = self
                    .indexed(
                        "compare-and-swap script (indexed)",
                        |s| &s.compare_and_swap,
                        &[key],
                        &args,
                    )
                    .await?;
                return Ok(swapped == 1);
            }
            let swapped: i64 = redis::Script::new(CAS_SCRIPT)
                .key(self.key(key))
                .arg(expected)
                .arg(new)
                .arg(px(ttl).unwrap_or(0))
                .invoke_async(&mut self.conn()?)
                .await
                .map_err(|e| self.error("compare-and-swap script", e))?;
            Ok(swapped == 1)
        })
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let result = if self.index.is_some() {
                let delta = delta.to_string();
                let args: [&[u8]; 2] = [key.as_bytes(), delta.as_bytes()];
                self.index_call(&scripts::INDEX.increment, &[key], &args)?
                    .invoke_async(&mut self.conn()?)
                    .await
            } else {
                self.conn()?.incr::<_, _, i64>(self.key(key), delta).await
            };
            match result {
                Ok(n) => Ok(n),
                // Redis refuses a non-integer value or an overflow and changes nothing.
                Err(e) if e.kind() == ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                    Err(Error::InvalidValue {
                        key: key.to_owned(),
                        reason: format!("cannot be incremented: {e}"),
                    })
                }
                Err(e) => Err(self.error("INCRBY", e)),
            }
        })
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                let ms = px(Some(ttl)).unwrap_or(0).to_string();
                let args: [&[u8]; 2] = [key.as_bytes(), ms.as_bytes()];
                let exists: i64 = self
                    .indexed("PEXPIRE/PERSIST (indexed)", |s| &s.expire, &[key], &args)
                    .await?;
                return if exists == 1 {
                    Ok(())
                } else {
                    Err(Error::NotFound)
                };
            }
            let mut conn = self.conn()?;
            let full = self.key(key);
            let changed: bool = match px(Some(ttl)) {
                Some(ms) => {
                    conn.pexpire(&full, i64::try_from(ms).unwrap_or(i64::MAX))
                        .await
                }
                // PERSIST answers 0 for a key without TTL too; tell it apart.
                None => match conn.persist::<_, bool>(&full).await {
                    Ok(true) => Ok(true),
                    Ok(false) => conn.exists(&full).await,
                    Err(e) => Err(e),
                },
            }
            .map_err(|e| self.error("PEXPIRE/PERSIST", e))?;
            if changed {
                Ok(())
            } else {
                Err(Error::NotFound)
            }
        })
    }

    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Bytes> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                let ms = px(Some(ttl)).unwrap_or(0).to_string();
                let args: [&[u8]; 2] = [key.as_bytes(), ms.as_bytes()];
                let value: Option<Vec<u8>> = self
                    .indexed("GETEX (indexed)", |s| &s.get_and_touch, &[key], &args)
                    .await?;
                return value.map(Bytes::from).ok_or(Error::NotFound);
            }
            // GETEX (Redis 6.2): the read and the new TTL in one command.
            let mut cmd = redis::cmd("GETEX");
            cmd.arg(self.key(key));
            match px(Some(ttl)) {
                Some(ms) => cmd.arg("PX").arg(ms),
                None => cmd.arg("PERSIST"),
            };
            let value: Option<Vec<u8>> = cmd
                .query_async(&mut self.conn()?)
                .await
                .map_err(|e| self.error("GETEX", e))?;
            value.map(Bytes::from).ok_or(Error::NotFound)
        })
    }

    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<String>, Option<String>)> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                let page = self.indexed_keys(prefix, start_after, Some(limit)).await?;
                let next = (limit > 0 && page.len() == limit).then(|| page[limit - 1].clone());
                return Ok((page, next));
            }
            // Redis keeps no order: a page is cut from a sorted scan.
            let keys = self.scan_keys(prefix).await?;
            let start = match start_after {
                Some(after) => keys.partition_point(|k| k.as_str() <= after),
                None => 0,
            };
            let page: Vec<String> = keys.into_iter().skip(start).take(limit).collect();
            let next = (limit > 0 && page.len() == limit).then(|| page[limit - 1].clone());
            Ok((page, next))
        })
    }

    /// One pass: a `SCAN` of the matching keys, one sort, then the keys
    /// one by one (never their values). `list_page` would `SCAN` again for
    /// every page.
    fn scan<'a>(&'a self, prefix: &'a str) -> KeyStream<'a> {
        use futures_util::StreamExt;
        if self.index.is_some() {
            // With the index, pages are cheap: never hold every key.
            return crate::generic::scan_by_pages(self, prefix);
        }
        let keys = async move {
            validate_prefix(prefix)?;
            self.scan_keys(prefix).await
        };
        Box::pin(
            futures_util::stream::once(keys)
                .map(|keys| match keys {
                    Ok(keys) => futures_util::stream::iter(keys.into_iter().map(Ok)).left_stream(),
                    Err(e) => futures_util::stream::iter([Err(e)]).right_stream(),
                })
                .flatten(),
        )
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(async move {
            if self.index.is_some() {
                return self.indexed_delete_prefix(prefix).await;
            }
            let keys = self.scan_keys(prefix).await?;
            let mut deleted = 0;
            for chunk in keys.chunks(SCAN_COUNT) {
                let full: Vec<String> = chunk.iter().map(|k| self.key(k)).collect();
                let n: usize = self
                    .conn()?
                    .del(full)
                    .await
                    .map_err(|e| self.error("DEL", e))?;
                deleted += n;
            }
            Ok(deleted)
        })
    }
}

impl DocSpace for RedisStore {
    fn scan_values<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Bytes)>> {
        StoreFuture::boxed(async move {
            let keys = self.keys_of(prefix).await?;
            let mut pairs = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(SCAN_COUNT) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let values = self.get_many(&refs).await?;
                pairs.extend(
                    chunk
                        .iter()
                        .cloned()
                        .zip(values)
                        .filter_map(|(k, v)| v.map(|v| (k, v))),
                );
            }
            Ok(pairs)
        })
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("addr", &self.addr)
            .field("prefix", &self.prefix)
            .field("index", &self.index.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::namespace_prefix;

    #[test]
    fn document_keys_never_look_like_plain_keys() {
        for namespace in ["a", "a:b", "a\\", "a\\d"] {
            let docs = documents_prefix(namespace);
            for other in ["a", "a:b", "a\\", "a\\d", "a\\d:"] {
                assert!(
                    !docs.starts_with(&namespace_prefix(other)),
                    "{namespace:?} docs vs {other:?} keys"
                );
                assert!(
                    !namespace_prefix(other).starts_with(&docs),
                    "{namespace:?} docs vs {other:?} keys"
                );
            }
        }
    }
}
