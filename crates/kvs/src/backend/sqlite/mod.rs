//! The SQLite backend: [`SqliteStore`] (feature `sqlite`).
//!
//! # Schema
//!
//! One database file holds any number of namespaces, in one ordinary table
//! that `sqlite3 kvs.db` can read:
//!
//! ```sql
//! CREATE TABLE kvs (
//!     id         INTEGER PRIMARY KEY,
//!     namespace  TEXT    NOT NULL,
//!     key        TEXT    NOT NULL,
//!     expires_at INTEGER,            -- ms since the Unix epoch; NULL = never
//!     value      BLOB    NOT NULL
//! );
//! CREATE UNIQUE INDEX kvs_key ON kvs (namespace, key);
//! CREATE INDEX kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;
//! ```
//!
//! A rowid table, so that values of a few KB fit on their row's page; files
//! of schema version 1 (a `WITHOUT ROWID` table) are migrated on open, in
//! one transaction (see the `schema` module).
//!
//! Documents (the [`DocumentStore`](crate::DocumentStore) side) live in a
//! second table, apart from plain keys; see the `documents` module:
//!
//! ```sql
//! CREATE TABLE kvs_docs (
//!     namespace  TEXT    NOT NULL,
//!     collection TEXT    NOT NULL,
//!     id         TEXT    NOT NULL,
//!     body       TEXT    NOT NULL,   -- {"v":1,"data":{...},"metadata":{...}}
//!     created_at INTEGER NOT NULL,   -- ms since the Unix epoch
//!     updated_at INTEGER NOT NULL,
//!     PRIMARY KEY (namespace, collection, id)
//! ) WITHOUT ROWID;
//! ```
//!
//! `PRAGMA user_version` is the schema version (2). Text compares with
//! SQLite's `BINARY` collation, which is byte order, so `ORDER BY key` is the
//! order the [`Store`] contract asks for. A prefix query is the index range
//! `key >= prefix AND key < successor(prefix)`
//! ([`prefix_successor_str`]) — never `LIKE` or `GLOB`, which treat `%`, `_`,
//! `*` as wildcards and fold ASCII case.
//!
//! Every read filters `expires_at`, so an expired row is invisible at once;
//! the sweep deletes expired rows through the partial index on
//! `expires_at`, touching only them.
//!
//! # Threads
//!
//! SQLite calls block, so none runs on the async executor:
//!
//! - **Writes** join a queue per database file and run on tokio's blocking
//!   pool on the only write connection. Whichever write holds that
//!   connection commits every write queued so far in one transaction (group
//!   commit, by flat combining): with `sync_writes: true`, many tasks
//!   writing at once share each `fsync`, while a lone write costs no more
//!   than a direct call — no thread to hand over to and wake (`writer.rs`;
//!   each write is a type of its own in `writes.rs`, with its SQL and the
//!   type of its answer). A write of several statements runs under a
//!   savepoint, so one that fails partway leaves nothing behind while the
//!   rest of its batch commits.
//! - **The expiry sweep** runs on a thread of its own, every
//!   `cleanup_interval`, on the same write connection (`sweeper.rs`).
//! - **Reads** run on tokio's blocking pool, each on a connection from a
//!   small pool (`read_pool.rs`). In WAL mode readers never wait for the
//!   writer.
//!
//! Stores opened on the same file in one process share the write
//! connection, the sweep and the read pool (`database.rs`); the file is
//! closed when the last of them is closed.
//!
//! # Durability
//!
//! The database runs in WAL mode. With `sync_writes: false` (the default,
//! `synchronous=NORMAL`) an acknowledged write survives the process being
//! killed; with `sync_writes: true` (`synchronous=FULL`) it also survives a
//! power loss, because each commit is `fsync`ed before it is acknowledged.

mod database;
mod documents;
mod read_pool;
mod schema;
mod sweeper;
mod writer;
mod writes;

use crate::config::SqliteConfig;
use crate::deadline::{check_batch_ttl, check_ttl, deadline_ms, remaining, NEVER};
use crate::expiry::{Clock, SystemClock};
use crate::future::check;
use crate::key::{normalize_namespace, prefix_successor_str, validate_key, validate_prefix};
use crate::{Entry, Error, Result, Store, StoreFuture};
use bytes::Bytes;
use database::Database;
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use writes::{
    CompareAndSwap, Delete, DeleteMany, DeletePrefix, Expire, GetAndTouch, Increment, Set, SetMany,
};

const BACKEND: &str = "sqlite";
/// SQLite's default limit on a string or blob (SQLITE_MAX_LENGTH), less room
/// for the row's other columns.
const MAX_VALUE_LEN: usize = 1_000_000_000 - 4096;
/// The rows of namespace ?1 from ?2 (`>=` or `>`, the `$from` operator) to
/// ?3 (excluded) that are live at time ?4. The key index answers this alone,
/// since it holds every row's id, less the ids of the expired rows, which the
/// expiry index finds (the sweep keeps them few). Testing `expires_at` row by
/// row instead visits each row's own page, a third slower for 100 keys.
macro_rules! live_keys {
    ($from:literal) => {
        concat!(
            "FROM kvs WHERE namespace = ?1 AND key ",
            $from,
            " ?2 AND key < ?3 AND id NOT IN (SELECT id FROM kvs WHERE expires_at < ?4)"
        )
    };
}
/// The live keys of namespace ?1 in the range [?2, ?3) at time ?4.
const LIST_SQL: &str = concat!("SELECT key ", live_keys!(">="), " ORDER BY key");
/// How many keys [`LIST_SQL`] returns.
const COUNT_SQL: &str = concat!("SELECT count(*) ", live_keys!(">="));
/// A page of [`LIST_SQL`] from its start: at most ?5 keys.
const FIRST_PAGE_SQL: &str = concat!("SELECT key ", live_keys!(">="), " ORDER BY key LIMIT ?5");
/// A later page: at most ?5 keys after ?2, which is at or after the prefix.
/// (One statement with both `key >= prefix` and `key > after` let the
/// planner start every page at the prefix, making a full scan quadratic.)
const NEXT_PAGE_SQL: &str = concat!("SELECT key ", live_keys!(">"), " ORDER BY key LIMIT ?5");

/// The rows of a page with their values and deadlines, for
/// `entries_page`: the same range as the page queries, with the value read
/// from the table anyway, so the plain expiry test is as cheap as any.
macro_rules! entries_sql {
    ($from:literal) => {
        concat!(
            "SELECT key, value, expires_at FROM kvs WHERE namespace = ?1 AND key ",
            $from,
            " ?2 AND key < ?3 AND (expires_at IS NULL OR expires_at >= ?4) ORDER BY key LIMIT ?5"
        )
    };
}
const FIRST_ENTRIES_SQL: &str = entries_sql!(">=");
const NEXT_ENTRIES_SQL: &str = entries_sql!(">");

/// A store in a SQLite database file.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use kvs::{SqliteConfig, SqliteStore, Store};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut config = SqliteConfig::default();
/// config.path = dir.path().join("app.db");
/// let store = SqliteStore::open("prefs", config).await?;
/// store.set("theme", b"dark", None).await?;
/// assert_eq!(&store.get("theme").await?[..], b"dark");
/// store.close().await?;
/// # Ok(())
/// # }
/// ```
pub struct SqliteStore {
    namespace: Arc<str>,
    clock: Arc<dyn Clock>,
    /// `None` once closed; every operation takes a clone of the `Arc` first,
    /// so an operation racing with `close` either has it and completes, or
    /// finds `None` and returns `Closed`.
    database: Mutex<Option<Arc<Database>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `config.path` for `namespace`.
    pub async fn open(namespace: &str, config: SqliteConfig) -> Result<SqliteStore> {
        SqliteStore::open_with_clock(namespace, config, Arc::new(SystemClock)).await
    }

    /// Like [`SqliteStore::open`], reading time from `clock`.
    pub async fn open_with_clock(
        namespace: &str,
        config: SqliteConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<SqliteStore> {
        let namespace: Arc<str> = normalize_namespace(namespace)?.into();
        let sweep_clock = Arc::clone(&clock);
        let database = blocking(move || Database::open_shared(&config, sweep_clock)).await?;
        Ok(SqliteStore {
            namespace,
            clock,
            database: Mutex::new(Some(database)),
        })
    }

    /// Opens `namespace` with its document layer. A `SqliteStore` is a
    /// [`DocumentStore`](crate::DocumentStore) itself (documents have a table of their own, with
    /// filters pushed down to SQL); this is [`SqliteStore::open`] behind
    /// the trait object, for the naming scheme every backend shares.
    pub async fn open_documents(
        namespace: &str,
        config: SqliteConfig,
    ) -> Result<Arc<dyn crate::DocumentStore>> {
        Ok(Arc::new(SqliteStore::open(namespace, config).await?))
    }

    /// Like [`SqliteStore::open_documents`], reading time from `clock`.
    pub async fn open_documents_with_clock(
        namespace: &str,
        config: SqliteConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<dyn crate::DocumentStore>> {
        Ok(Arc::new(
            SqliteStore::open_with_clock(namespace, config, clock).await?,
        ))
    }

    /// The database file.
    pub fn path(&self) -> Option<PathBuf> {
        self.database.lock().as_ref().map(|db| db.path.clone())
    }

    fn database(&self) -> Result<Arc<Database>> {
        self.database.lock().clone().ok_or(Error::Closed)
    }

    fn now(&self) -> i64 {
        to_sql_time(self.clock.now_ms()).unwrap_or(i64::MAX)
    }

    /// Runs `read` on a pooled connection on tokio's blocking pool.
    fn read<'a, T: Send + 'static>(
        &'a self,
        what: &'static str,
        read: impl FnOnce(&Connection, &str, i64) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let database = match self.database() {
            Ok(db) => db,
            Err(e) => return StoreFuture::ready(Err(e)),
        };
        let namespace = Arc::clone(&self.namespace);
        let now = self.now();
        StoreFuture::boxed(async move {
            blocking(move || {
                let conn = database.reader()?;
                read(&conn, &namespace, now).map_err(|e| database.error(what, e))
            })
            .await
        })
    }
}

impl Store for SqliteStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        check!(validate_key(key));
        let key = key.to_owned();
        let read = self.read("reading a key", move |conn, namespace, now| {
            conn.prepare_cached(
                "SELECT value FROM kvs WHERE namespace = ?1 AND key = ?2 \
                 AND (expires_at IS NULL OR expires_at >= ?3)",
            )?
            .query_row(params![namespace, key, now], |row| row.get::<_, Vec<u8>>(0))
            .optional()
        });
        StoreFuture::boxed(async move {
            match read.await? {
                Some(value) => Ok(Bytes::from(value)),
                None => Err(Error::NotFound),
            }
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, ttl));
        check!(validate_key(key).and_then(|()| check_size(key, value)));
        let expires_at = to_sql_time(deadline_ms(self.clock.now_ms(), ttl));
        self.write(Set {
            key: key.to_owned(),
            value: value.to_vec(),
            expires_at,
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        check!(validate_key(key));
        self.write(Delete {
            key: key.to_owned(),
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        check!(validate_key(key));
        let key = key.to_owned();
        self.read("checking a key", move |conn, namespace, now| {
            conn.prepare_cached(
                "SELECT 1 FROM kvs WHERE namespace = ?1 AND key = ?2 \
                 AND (expires_at IS NULL OR expires_at >= ?3)",
            )?
            .exists(params![namespace, key, now])
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        check!(validate_prefix(prefix));
        let (start, end) = (prefix.to_owned(), upper_bound(prefix));
        self.read("listing keys", move |conn, namespace, now| {
            let mut statement = conn.prepare_cached(LIST_SQL)?;
            let keys = statement
                .query_map(params![namespace, start, end, now], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>();
            keys
        })
    }

    fn count<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        let (start, end) = (prefix.to_owned(), upper_bound(prefix));
        self.read("counting keys", move |conn, namespace, now| {
            let count: i64 = conn
                .prepare_cached(COUNT_SQL)?
                .query_row(params![namespace, start, end, now], |row| row.get(0))?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        check!(validate_key(key));
        let key = key.to_owned();
        let read = self.read("reading a key's TTL", move |conn, namespace, now| {
            conn.prepare_cached(
                "SELECT expires_at FROM kvs WHERE namespace = ?1 AND key = ?2 \
                 AND (expires_at IS NULL OR expires_at >= ?3)",
            )?
            .query_row(params![namespace, key, now], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .optional()
        });
        let now = self.clock.now_ms();
        StoreFuture::boxed(async move {
            match read.await? {
                Some(None) => Ok(None),
                Some(Some(deadline)) => Ok(remaining(u64::try_from(deadline).unwrap_or(0), now)),
                None => Err(Error::NotFound),
            }
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        check!(keys.iter().try_for_each(|k| validate_key(k)));
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.read("reading keys", move |conn, namespace, now| {
            let mut get = conn.prepare_cached(
                "SELECT value FROM kvs WHERE namespace = ?1 AND key = ?2 \
                 AND (expires_at IS NULL OR expires_at >= ?3)",
            )?;
            keys.iter()
                .map(|key| {
                    get.query_row(params![namespace, key, now], |row| row.get::<_, Vec<u8>>(0))
                        .optional()
                        .map(|v| v.map(Bytes::from))
                })
                .collect()
        })
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(check_batch_ttl(entries, ttl));
        for (key, value) in entries {
            check!(validate_key(key).and_then(|()| check_size(key, value)));
        }
        let expires_at = to_sql_time(deadline_ms(self.clock.now_ms(), ttl));
        let entries = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        self.write(SetMany {
            entries,
            expires_at,
        })
    }

    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        check!(keys.iter().try_for_each(|k| validate_key(k)));
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self.write(DeleteMany {
            keys,
            now: self.now(),
        })
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(check_ttl(key, ttl));
        self.compare_and_swap(key, None, value, ttl)
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(check_ttl(key, ttl));
        check!(validate_key(key).and_then(|()| check_size(key, new)));
        let write = CompareAndSwap {
            key: key.to_owned(),
            expected: expected.map(<[u8]>::to_vec),
            value: new.to_vec(),
            expires_at: to_sql_time(deadline_ms(self.clock.now_ms(), ttl)),
            now: self.now(),
        };
        self.write(write)
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        check!(validate_key(key));
        let write = Increment {
            key: key.to_owned(),
            delta,
            now: self.now(),
        };
        self.write(write)
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        let write = Expire {
            key: key.to_owned(),
            expires_at: to_sql_time(deadline_ms(self.clock.now_ms(), Some(ttl))),
            now: self.now(),
        };
        self.write(write)
    }

    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Bytes> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        let write = GetAndTouch {
            key: key.to_owned(),
            expires_at: to_sql_time(deadline_ms(self.clock.now_ms(), Some(ttl))),
            now: self.now(),
        };
        let value = self.write(write);
        StoreFuture::boxed(async move { value.await.map(Bytes::from) })
    }

    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<String>, Option<String>)> {
        check!(validate_prefix(prefix));
        let end = upper_bound(prefix);
        let (sql, start) = match start_after {
            Some(after) if after >= prefix => (NEXT_PAGE_SQL, after.to_owned()),
            _ => (FIRST_PAGE_SQL, prefix.to_owned()),
        };
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let page = self.read("listing a page of keys", move |conn, namespace, now| {
            let mut statement = conn.prepare_cached(sql)?;
            let keys = statement
                .query_map(params![namespace, start, end, now, limit_sql], |row| {
                    row.get(0)
                })?
                .collect::<rusqlite::Result<Vec<String>>>();
            keys
        });
        StoreFuture::boxed(async move {
            let keys = page.await?;
            let next = (limit > 0 && keys.len() == limit).then(|| keys[limit - 1].clone());
            Ok((keys, next))
        })
    }

    fn entries_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<Entry>, Option<String>)> {
        check!(validate_prefix(prefix));
        let end = upper_bound(prefix);
        let (sql, start) = match start_after {
            Some(after) if after >= prefix => (NEXT_ENTRIES_SQL, after.to_owned()),
            _ => (FIRST_ENTRIES_SQL, prefix.to_owned()),
        };
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let now = self.clock.now_ms();
        let page = self.read(
            "reading a page of entries",
            move |conn, namespace, now_sql| {
                let mut statement = conn.prepare_cached(sql)?;
                let rows = statement
                    .query_map(params![namespace, start, end, now_sql, limit_sql], |row| {
                        let deadline: Option<i64> = row.get(2)?;
                        Ok(Entry {
                            key: row.get(0)?,
                            value: Bytes::from(row.get::<_, Vec<u8>>(1)?),
                            ttl: deadline
                                .and_then(|d| remaining(u64::try_from(d).unwrap_or(0), now)),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<Entry>>>();
                rows
            },
        );
        StoreFuture::boxed(async move {
            let entries = page.await?;
            // Every row of the range is live, so a full page is the listing's.
            let next =
                (limit > 0 && entries.len() == limit).then(|| entries[limit - 1].key.clone());
            Ok((entries, next))
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        let write = DeletePrefix {
            start: prefix.to_owned(),
            end: upper_bound(prefix),
            now: self.now(),
        };
        self.write(write)
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        let database = self.database.lock().take();
        StoreFuture::boxed(async move {
            // The last store to let go of the database stops its writer and
            // closes its connections; that blocks, so it runs off the executor.
            if let Some(database) = database {
                blocking(move || {
                    drop(database);
                    Ok(())
                })
                .await?;
            }
            Ok(())
        })
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("namespace", &self.namespace)
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

/// The end of the key range of `prefix`: every key starting with it sorts
/// below, every other key above it sorts at or above.
///
/// With no text successor (the prefix is `""`), an empty BLOB: SQLite
/// sorts every BLOB after every TEXT. Always binding a bound (rather than
/// writing `?3 IS NULL OR key < ?3`) lets the planner use it as the end of
/// the index range; with the `OR`, a scan ran on to the namespace's end.
fn upper_bound(prefix: &str) -> rusqlite::types::Value {
    match prefix_successor_str(prefix) {
        Some(end) => rusqlite::types::Value::Text(end),
        None => rusqlite::types::Value::Blob(Vec::new()),
    }
}

/// `ValueTooLarge` for a value SQLite cannot hold.
fn check_size(key: &str, value: &[u8]) -> Result<()> {
    Error::check_value_size(BACKEND, key, value.len(), MAX_VALUE_LEN)
}

/// Milliseconds as SQLite's `INTEGER`, `None` (NULL) for never.
pub(super) fn to_sql_time(ms: u64) -> Option<i64> {
    if ms == NEVER {
        return None;
    }
    // Beyond year 292 million: as good as never.
    i64::try_from(ms).ok()
}

/// Runs blocking work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(Error::backend(BACKEND, "a blocking SQLite task failed", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::database::connect;
    use super::read_pool::READ_SLOTS;
    use super::schema::create_schema;
    use super::sweeper::sweep;
    use super::writes::Write;
    use super::*;
    use std::path::Path;

    #[test]
    fn sweep_uses_the_expiry_index() {
        let conn = Connection::open_in_memory().unwrap();
        create_schema(&conn, Path::new(":memory:")).unwrap();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT namespace, key FROM kvs WHERE expires_at < 5 LIMIT 10",
            )
            .unwrap()
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("kvs_expiry")),
            "{plan:?}"
        );
    }

    #[test]
    fn prefix_queries_use_the_key_index_range() {
        let conn = Connection::open_in_memory().unwrap();
        create_schema(&conn, Path::new(":memory:")).unwrap();
        for (sql, limit) in [
            (LIST_SQL, None),
            (COUNT_SQL, None),
            (FIRST_PAGE_SQL, Some(10)),
            (NEXT_PAGE_SQL, Some(10)),
        ] {
            let mut args: Vec<rusqlite::types::Value> = vec![
                "n".to_owned().into(),
                "a".to_owned().into(),
                "b".to_owned().into(),
                0.into(),
            ];
            args.extend(limit.map(rusqlite::types::Value::Integer));
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(rusqlite::params_from_iter(args), |row| {
                    row.get::<_, String>(3)
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let plan = plan.join(" | ");
            assert!(
                plan.contains("USING COVERING INDEX kvs_key (namespace=? AND key>? AND key<?)")
                    && plan.contains("USING COVERING INDEX kvs_expiry (expires_at<?)"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "no sort step: {plan}");
        }
    }

    /// 64 reads at once share the `READ_SLOTS` read connections: the
    /// others wait for one instead of opening more, and every connection
    /// is back in the pool when they are done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_reads_at_once_share_the_read_connections() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig {
            path: dir.path().join("pool.db"),
            ..SqliteConfig::default()
        };
        let store = Arc::new(SqliteStore::open("pool", config).await.unwrap());
        store.set("k", b"v", None).await.unwrap();
        let reads: Vec<_> = (0..64)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.list("").await })
            })
            .collect();
        for read in reads {
            assert_eq!(read.await.unwrap().unwrap(), ["k"]);
        }
        let database = store.database().unwrap();
        let pool = database.readers.lock();
        assert!(pool.open <= READ_SLOTS, "{} open", pool.open);
        assert_eq!(pool.idle.len(), pool.open);
    }

    /// A cached prefix query is prepared once per connection, not once per
    /// use: without the planner's stability guarantee (see `connect`) every
    /// new prefix bound to it made SQLite prepare it again.
    #[test]
    fn cached_prefix_queries_are_not_prepared_again_for_each_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.db");
        let conn = connect(&path).unwrap();
        create_schema(&conn, &path).unwrap();
        for sql in [LIST_SQL, COUNT_SQL] {
            for i in 0..20 {
                let prefix = format!("k{i:03}");
                let mut statement = conn.prepare_cached(sql).unwrap();
                let mut rows = statement
                    .query(params!["ns", prefix, upper_bound(&prefix), i])
                    .unwrap();
                while rows.next().unwrap().is_some() {}
            }
            let statement = conn.prepare_cached(sql).unwrap();
            assert_eq!(
                statement.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    #[test]
    fn the_upper_bound_of_the_empty_prefix_is_above_every_key() {
        let conn = Connection::open_in_memory().unwrap();
        let above: bool = conn
            .query_row(
                "SELECT ?1 < ?2",
                params!["\u{10ffff}\u{10ffff}", upper_bound("")],
                |r| r.get(0),
            )
            .unwrap();
        assert!(above);
    }

    #[test]
    fn sweep_deletes_only_expired_rows() {
        let conn = Connection::open_in_memory().unwrap();
        create_schema(&conn, Path::new(":memory:")).unwrap();
        for i in 0..2500 {
            let expires: Option<i64> = if i % 2 == 0 { Some(100) } else { None };
            Set {
                key: format!("k{i}"),
                value: vec![],
                expires_at: expires,
            }
            .apply(&conn, "n")
            .unwrap()
            .unwrap();
        }
        assert_eq!(
            sweep(&conn, 100).unwrap(),
            0,
            "a row at its deadline is still live"
        );
        assert_eq!(sweep(&conn, 101).unwrap(), 1250);
        let left: i64 = conn
            .query_row("SELECT count(*) FROM kvs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1250);
    }
}
