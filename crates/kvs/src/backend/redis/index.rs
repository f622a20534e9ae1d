//! The ordered index of a namespace (`index: true`): listing that costs
//! O(log n + matches) instead of a `SCAN` of the whole server.
//!
//! # Layout
//!
//! Every namespace has a *root*: its escaped name `E` on a single server,
//! `{E}` on a cluster, where the braces make `E` the hash tag, so that the
//! namespace's keys and its index share one hash slot (and one master).
//! Under the root live:
//!
//! | key       | type       | holds                                         |
//! |-----------|------------|-----------------------------------------------|
//! | `R:<key>` | string     | the value of `<key>` (on a single server the  |
//! |           |            | same key a store without the index uses)      |
//! | `R\i`     | sorted set | every key of the namespace, all scores 0, so  |
//! |           |            | `ZRANGEBYLEX` answers them in byte order      |
//! | `R\t`     | sorted set | the keys with a TTL, scored by the millisecond|
//! |           |            | they expire (the server's clock)              |
//! | `R\m`     | hash       | the index's state: `ready`, or `building` and |
//! |           |            | the cursor a build resumes from               |
//!
//! `\` is escaped inside `E`, so none of the last three is ever a key of
//! any namespace (the same argument as the documents' `E\d:`).
//!
//! # Invariants
//!
//! - Every write and delete changes the key and both sets in one Lua
//!   script, so the index holds every live key.
//! - A key that expires stays in `R\i` until it is pruned: each listing
//!   first prunes every due member of `R\t` (in steps of
//!   `PRUNE_PER_LISTING` (1,000)), so a listing never answers an expired key;
//!   each write prunes `PRUNE_PER_WRITE` (2) due members on its way. The
//!   index therefore holds at most the live keys plus the keys that
//!   expired since the last listing. When nothing lists, each write that
//!   gives a key a deadline (a script) also prunes two due members, so
//!   pruning keeps pace with expiry: every key that expires was given its
//!   deadline by such a write. (Writes without a TTL and deletes are one
//!   `MULTI`/`EXEC` instead of a script: they add no deadline.)
//! - A key deleted or evicted outside kvs stays in the index (it is
//!   listed until kvs deletes or rewrites it): use an eviction policy that
//!   never evicts these keys (`noeviction` or `volatile-*`).

use super::scripts::{IndexScripts, INDEX};
use super::RedisStore;
use crate::config::RedisConfig;
use crate::key::{escape_namespace, namespace_prefix, normalize_namespace};
use crate::{Error, Result};
use redis::Value;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

/// How many keys one build step, one prefix-delete step or one `SCAN`
/// step handles.
const STEP: usize = 1000;

/// The `COUNT` of the `SCAN` that looks for keys of a namespace without an
/// index yet: larger than [`STEP`], since it only looks, so that opening a
/// new namespace on a large server takes few round trips.
const PROBE_STEP: usize = 10_000;

/// The index of a store opened with `index: true` (or on a namespace that
/// has one).
pub(super) struct Index {
    /// The namespace, for errors.
    namespace: String,
    /// `R\i`: the namespace's keys.
    pub(super) keys: String,
    /// `R\t`: the deadlines of those with a TTL.
    pub(super) deadlines: String,
    /// `R\m`: the state hash.
    pub(super) state: String,
    /// Set once the state hash has said `ready`; it never goes back.
    ready: AtomicBool,
}

/// What [`RedisStore::build_index`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IndexBuild {
    /// Keys of the namespace this build found and added (a key written
    /// during the build by an indexed store is in the index either way).
    pub added: u64,
    /// Whether this build went on from where an interrupted one stopped.
    pub resumed: bool,
    /// Whether the index is complete (listing works); `false` when
    /// `progress` stopped the build.
    pub complete: bool,
}

/// The root of `namespace`'s index keys (see the module docs).
fn root(namespace: &str, cluster: bool) -> Result<String> {
    let escaped = escape_namespace(namespace);
    if !cluster {
        return Ok(escaped);
    }
    // Redis hashes what lies between the first `{` and the first `}` after
    // it, unless that is empty: a namespace starting with `}` would spread
    // its keys over every slot.
    if escaped.starts_with('}') {
        return Err(Error::InvalidNamespace {
            namespace: namespace.to_owned(),
            reason: "with index: true on a cluster the namespace is a hash tag, \
                     which cannot start with '}'"
                .into(),
        });
    }
    Ok(format!("{{{escaped}}}"))
}

/// The name of the store's index set, for errors.
fn index_name(store: &RedisStore) -> &str {
    store.index.as_ref().map_or("", |i| i.keys.as_str())
}

/// The `ZRANGEBYLEX` bounds of the keys starting with `prefix` and sorting
/// after `start_after`. Keys are UTF-8, which never holds the byte 0xFF, so
/// every key starting with `prefix` sorts before `prefix` + 0xFF.
fn lex_range(prefix: &str, start_after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let min = match start_after {
        Some(after) if after >= prefix => [b"(", after.as_bytes()].concat(),
        _ if prefix.is_empty() => b"-".to_vec(),
        _ => [b"[", prefix.as_bytes()].concat(),
    };
    let max = if prefix.is_empty() {
        b"+".to_vec()
    } else {
        [b"(", prefix.as_bytes(), &[0xFF]].concat()
    };
    (min, max)
}

impl RedisStore {
    /// Connects for the plain keys of `namespace`, with the index when
    /// `config.index` asks for it or the namespace already has one (so a
    /// store opened without `index: true` never writes around an index).
    pub(super) async fn connect_namespace(
        namespace: &str,
        config: &RedisConfig,
    ) -> Result<RedisStore> {
        let cluster = !config.cluster_nodes.is_empty();
        let mut store = RedisStore::connect(namespace_prefix(namespace), config).await?;
        let root = match root(namespace, cluster) {
            Ok(root) => root,
            // Such a namespace never has an index, and needs none.
            Err(_) if !config.index => return Ok(store),
            Err(e) => return Err(e),
        };
        let state_key = format!("{root}\\m");
        let state: Option<String> = redis::cmd("HGET")
            .arg(&state_key)
            .arg("state")
            .query_async(&mut store.conn()?)
            .await
            .map_err(|e| store.error("reading the index state", e))?;
        if !config.index && state.is_none() {
            return Ok(store);
        }
        // Known complete now, or learned at the first listing (`check_ready`).
        let mut ready = state.as_deref() == Some("ready");
        if state.is_none() {
            let plain = store.any_plain_key().await?;
            if cluster && plain {
                return Err(Error::backend(
                    super::BACKEND,
                    format!("opening namespace {namespace:?} with index: true"),
                    "it holds keys written without the index, and on a cluster the index keeps \
                     the namespace in one hash slot, under other key names; copy them into a \
                     new namespace opened with index=true (kvs copy), or open it without the \
                     index",
                ));
            }
            if !plain {
                // A new namespace: its index is complete from the start
                // (unless a build began meanwhile: then HSETNX sets nothing).
                ready = redis::cmd("HSETNX")
                    .arg(&state_key)
                    .arg("state")
                    .arg("ready")
                    .query_async::<bool>(&mut store.conn()?)
                    .await
                    .map_err(|e| store.error("creating the index state", e))?;
            }
        }
        store.prefix = format!("{root}:");
        store.index = Some(Index {
            namespace: namespace.to_owned(),
            keys: format!("{root}\\i"),
            deadlines: format!("{root}\\t"),
            state: state_key,
            ready: AtomicBool::new(ready),
        });
        Ok(store)
    }

    /// Builds the ordered index of `namespace` on the server of `config`
    /// from one `SCAN` pass over its keys, while other stores go on
    /// reading and writing (open them with `index: true`: their writes keep
    /// the index from the start, and their listings wait for the build).
    /// An interrupted build goes on from where it stopped; a complete index
    /// is left as it is.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kvs::Result<()> {
    /// let mut config = kvs::RedisConfig::default();
    /// config.addr = "127.0.0.1:6379".into();
    /// let build = kvs::RedisStore::build_index("sessions", config).await?;
    /// assert!(build.complete);
    /// println!("{} keys added", build.added);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn build_index(namespace: &str, config: RedisConfig) -> Result<IndexBuild> {
        RedisStore::build_index_with(namespace, config, |_| ControlFlow::Continue(())).await
    }

    /// [`RedisStore::build_index`], calling `progress` after each step of
    /// up to 1,000 scanned keys (each step is recorded on the server
    /// before the call): `ControlFlow::Break` stops the build there, to be
    /// resumed by the next call.
    pub async fn build_index_with(
        namespace: &str,
        mut config: RedisConfig,
        mut progress: impl FnMut(&IndexBuild) -> ControlFlow<()>,
    ) -> Result<IndexBuild> {
        let namespace = normalize_namespace(namespace)?;
        config.index = true;
        let store = RedisStore::connect_namespace(&namespace, &config).await?;
        let index = store.index()?;
        let mut conn = store.conn()?;
        let (state, cursor): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&index.state)
            .arg("state")
            .arg("cursor")
            .query_async(&mut conn)
            .await
            .map_err(|e| store.error("reading the index state", e))?;
        let mut build = IndexBuild {
            resumed: cursor.is_some(),
            complete: state.as_deref() == Some("ready"),
            ..IndexBuild::default()
        };
        if build.complete {
            return Ok(build);
        }
        redis::cmd("HSET")
            .arg(&index.state)
            .arg("state")
            .arg("building")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| store.error("starting the index build", e))?;
        let pattern = format!("{}*", super::scan::glob_escape(&store.prefix));
        let mut cursor = match cursor {
            None => 0,
            Some(c) => c.parse::<u64>().map_err(|_| {
                Error::backend(
                    super::BACKEND,
                    format!("resuming the index build of namespace {namespace:?}"),
                    format!(
                        "the cursor {c:?} in {} is not a SCAN cursor; delete that hash to start over",
                        index.state
                    ),
                )
            })?,
        };
        loop {
            let (next, batch) = store
                .scan_step(
                    &mut conn,
                    cursor,
                    &pattern,
                    STEP,
                    "scanning keys for the index",
                )
                .await?;
            let members: Vec<&str> = batch
                .iter()
                .filter_map(|k| k.strip_prefix(&store.prefix))
                .collect();
            let mut call = INDEX.build_step.prepare_invoke();
            call.key(&index.keys)
                .key(&index.deadlines)
                .key(&index.state)
                .arg(&store.prefix)
                .arg(next);
            for m in &members {
                call.arg(*m);
            }
            call.invoke_async::<()>(&mut conn)
                .await
                .map_err(|e| store.error("adding keys to the index", e))?;
            build.added += members.len() as u64;
            build.complete = next == 0;
            if build.complete || progress(&build).is_break() {
                return Ok(build);
            }
            cursor = next;
        }
    }

    /// The index, for the callers that are only reached with one.
    fn index(&self) -> Result<&Index> {
        self.index.as_ref().ok_or_else(|| {
            Error::backend(
                super::BACKEND,
                "using the index",
                "this store has no index (internal error)",
            )
        })
    }

    /// Whether the namespace holds any key in the plain form (found by a
    /// `SCAN` that stops at the first; a full pass for an empty namespace,
    /// which is what opening a namespace without an index costs, once).
    async fn any_plain_key(&self) -> Result<bool> {
        let pattern = format!("{}*", super::scan::glob_escape(&self.prefix));
        for mut node in self.scan_nodes()? {
            let mut cursor = 0;
            loop {
                let (next, batch) = self
                    .scan_step(
                        &mut node,
                        cursor,
                        &pattern,
                        PROBE_STEP,
                        "looking for keys written without the index",
                    )
                    .await?;
                if !batch.is_empty() {
                    return Ok(true);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(false)
    }

    /// `Ok` once the index is complete; otherwise an error that says why
    /// listing would miss keys, and how to build the index.
    async fn check_ready(&self, index: &Index) -> Result<()> {
        if index.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let state: Option<String> = redis::cmd("HGET")
            .arg(&index.state)
            .arg("state")
            .query_async(&mut self.conn()?)
            .await
            .map_err(|e| self.error("reading the index state", e))?;
        let why = match state.as_deref() {
            Some("ready") => {
                index.ready.store(true, Ordering::Release);
                return Ok(());
            }
            Some("building") => "its index is being built (`kvs index build` is running, or was interrupted: run it again to finish)",
            _ => "it holds keys written without the index, and has no index yet; build one with `kvs index build` (with --store and this namespace) or RedisStore::build_index",
        };
        Err(Error::backend(
            super::BACKEND,
            format!("listing namespace {:?} on {}", index.namespace, self.addr),
            why,
        ))
    }

    /// A call of an index script on `keys` (after the index's two sets)
    /// with `args` (after the namespace prefix).
    pub(super) fn index_call(
        &self,
        script: &'static redis::Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<redis::ScriptInvocation<'static>> {
        let index = self.index()?;
        let mut call = script.prepare_invoke();
        call.key(&index.keys).key(&index.deadlines);
        for key in keys {
            call.key(self.key(key));
        }
        call.arg(&self.prefix);
        for arg in args {
            call.arg(*arg);
        }
        Ok(call)
    }

    /// Runs an index script (see [`RedisStore::index_call`]); `what` names
    /// it in an error.
    pub(super) async fn indexed<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: impl FnOnce(&'static IndexScripts) -> &'static redis::Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T> {
        self.index_call(script(&INDEX), keys, args)?
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(|e| self.error(what, e))
    }

    /// Writes `entries` without a TTL, with the index, in one
    /// `MULTI`/`EXEC`: no script, which costs the server less. They need
    /// not prune: they give no key a deadline, and each write that does
    /// (a script) prunes two.
    pub(super) async fn indexed_set_plain(&self, entries: &[(&str, &[u8])]) -> Result<()> {
        let index = self.index()?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        if let [(key, value)] = entries {
            pipe.set(self.key(key), *value).ignore();
        } else {
            let pairs: Vec<(String, &[u8])> =
                entries.iter().map(|(k, v)| (self.key(k), *v)).collect();
            pipe.mset(&pairs).ignore();
        }
        let members: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        let scored: Vec<(u8, &str)> = members.iter().map(|m| (0, *m)).collect();
        pipe.zadd_multiple(&index.keys, &scored).ignore();
        // A key that had a TTL has it no more.
        pipe.zrem(&index.deadlines, &members).ignore();
        pipe.query_async::<()>(&mut self.conn()?)
            .await
            .map_err(|e| self.error("SET (indexed)", e))
    }

    /// Deletes `keys` (at least one) with their index entries, in one
    /// `MULTI`/`EXEC`; returns how many existed (a repeated key once).
    pub(super) async fn indexed_delete(&self, keys: &[&str]) -> Result<usize> {
        let index = self.index()?;
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&full)
            .zrem(&index.keys, keys)
            .ignore()
            .zrem(&index.deadlines, keys)
            .ignore();
        let (deleted,): (usize,) = pipe
            .query_async(&mut self.conn()?)
            .await
            .map_err(|e| self.error("DEL (indexed)", e))?;
        Ok(deleted)
    }

    /// The keys starting with `prefix` after `start_after`, up to `limit`
    /// (all with `None`), from the index.
    pub(super) async fn indexed_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        match self
            .indexed_listing(prefix, start_after, limit, "keys")
            .await?
        {
            Value::Array(keys) => keys
                .into_iter()
                .map(|k| match k {
                    Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|e| {
                        Error::backend(
                            super::BACKEND,
                            format!("listing the index {} on {}", index_name(self), self.addr),
                            format!("a member is not UTF-8, so not a kvs key: {e}"),
                        )
                    }),
                    other => Err(self.unexpected("ZRANGEBYLEX", &other)),
                })
                .collect(),
            other => Err(self.unexpected("ZRANGEBYLEX", &other)),
        }
    }

    /// How many keys start with `prefix`, from the index (`ZLEXCOUNT`).
    pub(super) async fn indexed_count(&self, prefix: &str) -> Result<usize> {
        match self.indexed_listing(prefix, None, 0, "count").await? {
            Value::Int(n) => Ok(usize::try_from(n).unwrap_or(0)),
            other => Err(self.unexpected("ZLEXCOUNT", &other)),
        }
    }

    /// Runs the listing script until it has pruned every due member, and
    /// returns its answer.
    async fn indexed_listing(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: i64,
        mode: &str,
    ) -> Result<Value> {
        let index = self.index()?;
        self.check_ready(index).await?;
        let (min, max) = lex_range(prefix, start_after);
        let limit = limit.to_string();
        loop {
            let reply: Vec<Value> = self
                .indexed(
                    "listing the index",
                    |s| &s.list,
                    &[],
                    &[&min, &max, limit.as_bytes(), mode.as_bytes()],
                )
                .await?;
            let mut reply = reply.into_iter();
            match (reply.next(), reply.next()) {
                // It pruned its fill: more may be due.
                (Some(Value::Int(0)), None) => continue,
                (Some(Value::Int(1)), Some(answer)) => return Ok(answer),
                (first, _) => {
                    return Err(self.unexpected("the listing script", &first.unwrap_or(Value::Nil)))
                }
            }
        }
    }

    /// Deletes the keys starting with `prefix` in steps of [`STEP`];
    /// returns how many were live.
    pub(super) async fn indexed_delete_prefix(&self, prefix: &str) -> Result<usize> {
        let index = self.index()?;
        self.check_ready(index).await?;
        let (min, max) = lex_range(prefix, None);
        let step = STEP.to_string();
        let mut deleted = 0;
        loop {
            let (read, live): (usize, usize) = self
                .indexed(
                    "deleting keys by prefix",
                    |s| &s.delete_range,
                    &[],
                    &[&min, &max, step.as_bytes()],
                )
                .await?;
            deleted += live;
            if read < STEP {
                return Ok(deleted);
            }
        }
    }

    fn unexpected(&self, what: &str, value: &Value) -> Error {
        Error::backend(
            super::BACKEND,
            format!("{what} on {}", self.addr),
            format!("unexpected reply {value:?}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_root_is_a_hash_tag() {
        assert_eq!(root("sessions", false).unwrap(), "sessions");
        assert_eq!(root("a:b", true).unwrap(), "{a\\:b}");
        assert!(root("}x", true).is_err());
        assert_eq!(root("x}", true).unwrap(), "{x}}");
    }

    #[test]
    fn lex_ranges_cover_exactly_the_prefix() {
        assert_eq!(lex_range("", None), (b"-".to_vec(), b"+".to_vec()));
        assert_eq!(
            lex_range("ab", None),
            (b"[ab".to_vec(), b"(ab\xff".to_vec())
        );
        assert_eq!(
            lex_range("ab", Some("abc")),
            (b"(abc".to_vec(), b"(ab\xff".to_vec())
        );
        // A cursor before the prefix starts at the prefix.
        assert_eq!(lex_range("ab", Some("a")).0, b"[ab".to_vec());
    }
}
