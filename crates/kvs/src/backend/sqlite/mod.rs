//! The SQLite backend: [`SqliteStore`] (feature `sqlite`).
//!
//! # Schema
//!
//! One database file holds any number of namespaces, in one ordinary table
//! that `sqlite3 kvs.db` can read:
//!
//! ```sql
//! CREATE TABLE kvs (
//!     namespace  TEXT    NOT NULL,
//!     key        TEXT    NOT NULL,
//!     value      BLOB    NOT NULL,
//!     expires_at INTEGER,            -- ms since the Unix epoch; NULL = never
//!     PRIMARY KEY (namespace, key)
//! ) WITHOUT ROWID;
//! CREATE INDEX kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;
//! ```
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
//! `PRAGMA user_version` is the schema version (1). Text compares with
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
//!   than a direct call — no thread to hand over to and wake.
//! - **The expiry sweep** runs on a thread of its own, every
//!   `cleanup_interval`, on the same write connection.
//! - **Reads** run on tokio's blocking pool, each on a connection from a
//!   small pool. In WAL mode readers never wait for the writer.
//!
//! Stores opened on the same file in one process share the write
//! connection, the sweep and the read pool; the file is closed when the
//! last of them is closed.
//!
//! # Durability
//!
//! The database runs in WAL mode. With `sync_writes: false` (the default,
//! `synchronous=NORMAL`) an acknowledged write survives the process being
//! killed; with `sync_writes: true` (`synchronous=FULL`) it also survives a
//! power loss, because each commit is `fsync`ed before it is acknowledged.

use crate::config::SqliteConfig;
use crate::expiry::{check_ttl, deadline_ms, remaining, Clock, SystemClock, NEVER};
use crate::future::check;
use crate::generic::next_counter;
use crate::key::{normalize_namespace, prefix_successor_str, validate_key, validate_prefix};
use crate::registry::{absolute, Registry};
use crate::{Error, Result, Store, StoreFuture};
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

mod documents;

const BACKEND: &str = "sqlite";
/// The schema version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;
/// SQLite's default limit on a string or blob (SQLITE_MAX_LENGTH), less room
/// for the row's other columns.
const MAX_VALUE_LEN: usize = 1_000_000_000 - 4096;
/// The live keys of namespace ?1 in the range [?2, ?3) at time ?4.
const LIST_SQL: &str = "SELECT key FROM kvs WHERE namespace = ?1 AND key >= ?2 AND key < ?3 \
     AND (expires_at IS NULL OR expires_at >= ?4) ORDER BY key";
/// How many keys [`LIST_SQL`] returns.
const COUNT_SQL: &str = "SELECT count(*) FROM kvs WHERE namespace = ?1 AND key >= ?2 AND key < ?3 \
     AND (expires_at IS NULL OR expires_at >= ?4)";
/// Stores ?3 under key ?2 of namespace ?1 with deadline ?4.
///
/// Not `INSERT OR REPLACE`: on this table (a partial index on
/// `expires_at`, values past the page) it ran at 0.3–0.6× this upsert on
/// single sets, measured.
const UPSERT_SQL: &str = "INSERT INTO kvs (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";
/// A page of [`LIST_SQL`] from its start: at most ?5 keys.
const FIRST_PAGE_SQL: &str = "SELECT key FROM kvs WHERE namespace = ?1 AND key >= ?2 AND key < ?3 \
     AND (expires_at IS NULL OR expires_at >= ?4) ORDER BY key LIMIT ?5";
/// A later page: at most ?5 keys after ?2, which is at or after the prefix.
/// (One statement with both `key >= prefix` and `key > after` let the
/// planner start every page at the prefix, making a full scan quadratic.)
const NEXT_PAGE_SQL: &str = "SELECT key FROM kvs WHERE namespace = ?1 AND key > ?2 AND key < ?3 \
     AND (expires_at IS NULL OR expires_at >= ?4) ORDER BY key LIMIT ?5";
/// Writes committed in one transaction at most.
const MAX_BATCH: usize = 1024;
/// Expired rows deleted per sweep statement, so writes can interleave.
const SWEEP_BATCH: usize = 1000;
/// Read connections per database: the most reads that run at once.
const READ_SLOTS: usize = 4;
/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

/// One open database file, shared by every store opened on it.
struct Database {
    path: PathBuf,
    /// The only write connection. Its holder commits `queued`.
    writer: Mutex<Connection>,
    /// Writes waiting for the holder of `writer`, in the order they came.
    queued: Mutex<Vec<Command>>,
    /// Dropping it stops the sweep thread.
    stop_sweeps: Mutex<Option<mpsc::Sender<()>>>,
    sweeper: Mutex<Option<JoinHandle<()>>>,
    /// The read connections. At most `READ_SLOTS` are ever open: a read
    /// that finds none idle waits, on its blocking-pool thread, for the
    /// next one given back (`reader_free`) rather than opening one more
    /// (parsing the schema) to drop after. Waiting there, not on an async
    /// semaphore before `spawn_blocking`, hands a freed connection straight
    /// to a thread that is ready to use it: under 64 tasks the async
    /// hand-over (wake the task, then spawn) left connections idle and
    /// halved read throughput.
    readers: Mutex<ReadPool>,
    reader_free: Condvar,
}

/// The read connections of a [`Database`].
#[derive(Default)]
struct ReadPool {
    idle: Vec<Connection>,
    /// Idle and in use.
    open: usize,
}

/// A read connection, given back to the pool when dropped (also when the
/// read panicked: the connection holds no state of the read).
struct Reader<'a> {
    database: &'a Database,
    /// `Some` until dropped.
    conn: Option<Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Invariant: `conn` is `Some` from creation until `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.database.readers.lock().idle.push(conn);
            self.database.reader_free.notify_one();
        }
    }
}

/// The database files open in this process.
static OPEN: Registry<Database> = Registry::new();

enum Write {
    Set {
        key: String,
        value: Vec<u8>,
        expires_at: Option<i64>,
    },
    Delete {
        key: String,
    },
    /// Upsert a document; `now` becomes `updated_at` (and `created_at` of a
    /// new one).
    PutDoc {
        collection: String,
        id: String,
        body: String,
        now: i64,
    },
    DeleteDoc {
        collection: String,
        id: String,
    },
    SetMany {
        entries: Vec<(String, Vec<u8>)>,
        expires_at: Option<i64>,
    },
    /// Answers with the number of live keys deleted.
    DeleteMany {
        keys: Vec<String>,
        now: i64,
    },
    /// Answers with whether it swapped; `expected: None` means "absent".
    CompareAndSwap {
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        expires_at: Option<i64>,
        now: i64,
    },
    /// Answers with the new value.
    Increment {
        key: String,
        delta: i64,
        now: i64,
    },
    /// `NotFound` unless the key is live.
    Expire {
        key: String,
        expires_at: Option<i64>,
        now: i64,
    },
    /// Answers with the number of live keys deleted.
    DeletePrefix {
        start: String,
        end: rusqlite::types::Value,
        now: i64,
    },
}

impl Write {
    /// Whether the write is one statement, which needs no transaction of
    /// its own to be atomic.
    fn is_single_statement(&self) -> bool {
        matches!(
            self,
            Write::Set { .. }
                | Write::Delete { .. }
                | Write::PutDoc { .. }
                | Write::DeleteDoc { .. }
                | Write::CompareAndSwap { .. }
                | Write::Expire { .. }
        )
    }
}

/// What a write answers.
enum Outcome {
    Done,
    Flag(bool),
    Count(usize),
    Number(i64),
}

struct Command {
    namespace: Arc<str>,
    write: Write,
    done: oneshot::Sender<Result<Outcome>>,
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

    fn write<'a>(&'a self, write: Write) -> StoreFuture<'a, ()> {
        self.write_for(write, |outcome| {
            matches!(outcome, Outcome::Done).then_some(())
        })
    }

    /// Queues `write` for the next commit (flat combining: whichever
    /// blocking task holds the write connection commits every queued write
    /// in one transaction; see `Database::commit_queued`); `unpack` reads
    /// its answer.
    fn write_for<'a, T: Send + 'static>(
        &'a self,
        write: Write,
        unpack: fn(Outcome) -> Option<T>,
    ) -> StoreFuture<'a, T> {
        let database = match self.database() {
            Ok(db) => db,
            Err(e) => return StoreFuture::ready(Err(e)),
        };
        let (done, result) = oneshot::channel();
        let command = Command {
            namespace: Arc::clone(&self.namespace),
            write,
            done,
        };
        StoreFuture::boxed(async move {
            database.queued.lock().push(command);
            // This task commits whatever is queued when it gets the write
            // connection, which may be nothing if an earlier holder already
            // committed our write with its own.
            tokio::task::spawn_blocking(move || database.commit_queued());
            // A queued write is dropped unanswered only if its commit task
            // could not run (the runtime is shutting down).
            let outcome = result.await.unwrap_or(Err(Error::Closed))?;
            unpack(outcome).ok_or_else(|| {
                Error::backend(
                    BACKEND,
                    "writing",
                    "the writer answered with the wrong kind of result",
                )
            })
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
        self.write(Write::Set {
            key: key.to_owned(),
            value: value.to_vec(),
            expires_at,
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        check!(validate_key(key));
        self.write(Write::Delete {
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
        check!(entries
            .first()
            .map_or(Ok(()), |(key, _)| check_ttl(key, ttl)));
        for (key, value) in entries {
            check!(validate_key(key).and_then(|()| check_size(key, value)));
        }
        let expires_at = to_sql_time(deadline_ms(self.clock.now_ms(), ttl));
        let entries = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        self.write(Write::SetMany {
            entries,
            expires_at,
        })
    }

    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        check!(keys.iter().try_for_each(|k| validate_key(k)));
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self.write_for(
            Write::DeleteMany {
                keys,
                now: self.now(),
            },
            count,
        )
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
        let write = Write::CompareAndSwap {
            key: key.to_owned(),
            expected: expected.map(<[u8]>::to_vec),
            value: new.to_vec(),
            expires_at: to_sql_time(deadline_ms(self.clock.now_ms(), ttl)),
            now: self.now(),
        };
        self.write_for(write, |o| match o {
            Outcome::Flag(b) => Some(b),
            _ => None,
        })
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        check!(validate_key(key));
        let write = Write::Increment {
            key: key.to_owned(),
            delta,
            now: self.now(),
        };
        self.write_for(write, |o| match o {
            Outcome::Number(n) => Some(n),
            _ => None,
        })
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        let write = Write::Expire {
            key: key.to_owned(),
            expires_at: to_sql_time(deadline_ms(self.clock.now_ms(), Some(ttl))),
            now: self.now(),
        };
        self.write(write)
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

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        let write = Write::DeletePrefix {
            start: prefix.to_owned(),
            end: upper_bound(prefix),
            now: self.now(),
        };
        self.write_for(write, count)
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

fn count(outcome: Outcome) -> Option<usize> {
    match outcome {
        Outcome::Count(n) => Some(n),
        _ => None,
    }
}

/// `ValueTooLarge` for a value SQLite cannot hold.
fn check_size(key: &str, value: &[u8]) -> Result<()> {
    Error::check_value_size(BACKEND, key, value.len(), MAX_VALUE_LEN)
}

/// Milliseconds as SQLite's `INTEGER`, `None` (NULL) for never.
fn to_sql_time(ms: u64) -> Option<i64> {
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

impl Database {
    /// The database at `config.path`, shared with other stores of this process.
    fn open_shared(config: &SqliteConfig, clock: Arc<dyn Clock>) -> Result<Arc<Database>> {
        if config.path.as_os_str().is_empty() {
            return Err(Error::config("sqlite.path is empty; name a database file"));
        }
        let path = absolute(&config.path, "sqlite path")?;
        if path.file_name().is_none() {
            return Err(Error::config(format!(
                "sqlite path {} does not name a file",
                path.display()
            )));
        }
        OPEN.get_or_open(&path, |path| {
            Database::open(path.to_path_buf(), config, clock)
        })
    }

    fn open(path: PathBuf, config: &SqliteConfig, clock: Arc<dyn Clock>) -> Result<Arc<Database>> {
        // Checked here, under the registry's lock, so a store of this
        // process that is creating the file meanwhile is found instead.
        if !config.create_if_missing && !path.exists() {
            return Err(Error::NoStore { path });
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::backend(
                    BACKEND,
                    format!("creating the directory {}", parent.display()),
                    e,
                )
            })?;
        }
        let conn = connect(&path)?;
        let synchronous = if config.sync_writes { "FULL" } else { "NORMAL" };
        let setup = format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};");
        conn.execute_batch(&setup)
            .map_err(|e| sqlite_error(&path, "setting up", e))?;
        create_schema(&conn, &path)?;
        let database = Arc::new(Database {
            path,
            writer: Mutex::new(conn),
            queued: Mutex::new(Vec::new()),
            stop_sweeps: Mutex::new(None),
            sweeper: Mutex::new(None),
            readers: Mutex::new(ReadPool::default()),
            reader_free: Condvar::new(),
        });
        let interval = config.cleanup_interval;
        if !interval.is_zero() {
            let (stop, stopped) = mpsc::channel();
            // The thread holds only a weak reference: the database closes
            // when its last store does, and the thread then ends.
            let weak = Arc::downgrade(&database);
            let sweeper = std::thread::Builder::new()
                .name("kvs-sqlite-sweep".into())
                .spawn(move || sweep_loop(&weak, &stopped, interval, clock.as_ref()))
                .map_err(|e| Error::backend(BACKEND, "starting the sweep thread", e))?;
            *database.stop_sweeps.lock() = Some(stop);
            *database.sweeper.lock() = Some(sweeper);
        }
        Ok(database)
    }

    /// Commits every queued write, in batches of at most `MAX_BATCH`, on
    /// the write connection. Runs on the blocking pool.
    fn commit_queued(&self) {
        let conn = self.writer.lock();
        loop {
            let batch: Vec<Command> = {
                let mut queued = self.queued.lock();
                let take = queued.len().min(MAX_BATCH);
                queued.drain(..take).collect()
            };
            if batch.is_empty() {
                return;
            }
            commit(&conn, &self.path, batch);
        }
    }

    /// A read connection: an idle one, a new one while fewer than
    /// `READ_SLOTS` are open, or else the next one given back. Blocks, so
    /// it runs on the blocking pool.
    fn reader(&self) -> Result<Reader<'_>> {
        let mut pool = self.readers.lock();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Reader {
                    database: self,
                    conn: Some(conn),
                });
            }
            if pool.open < READ_SLOTS {
                pool.open += 1;
                drop(pool);
                return match connect(&self.path) {
                    Ok(conn) => Ok(Reader {
                        database: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        // Another read may succeed where this one failed.
                        self.readers.lock().open -= 1;
                        self.reader_free.notify_one();
                        Err(e)
                    }
                };
            }
            self.reader_free.wait(&mut pool);
        }
    }

    fn error(&self, what: &str, e: rusqlite::Error) -> Error {
        sqlite_error(&self.path, what, e)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Every write has been answered: each in-flight write holds the
        // database. Stopping the sweep is all that is left.
        drop(self.stop_sweeps.lock().take());
        if let Some(sweeper) = self.sweeper.lock().take() {
            // The last reference may be the sweep's own, taken for a sweep.
            if sweeper.thread().id() != std::thread::current().id() && sweeper.join().is_err() {
                tracing::error!(path = %self.path.display(), "kvs sqlite sweep thread panicked");
            }
        }
        self.readers.lock().idle.clear();
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| sqlite_error(path, "opening", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sqlite_error(path, "configuring", e))?;
    // The query planner's stability guarantee: a statement keeps its plan
    // whatever values are bound. Without it, SQLite (built with STAT4, as
    // rusqlite's bundled build is) marks a range on the second column of
    // the (namespace, key) primary key as depending on the bound values,
    // and the statement cache's clear-bindings then forces a full
    // re-prepare of every list, count and page query on each use: 8.5 µs
    // instead of 1.7 µs per 100-key listing, measured. Every statement
    // here has one right plan (the primary key, or the expiry index).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(|e| sqlite_error(path, "configuring", e))?;
    Ok(conn)
}

fn create_schema(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| sqlite_error(path, "reading the schema version of", e))?;
    if version > SCHEMA_VERSION {
        return Err(Error::backend(
            BACKEND,
            format!("opening {}", path.display()),
            format!("its kvs schema version is {version}, newer than this kvs understands ({SCHEMA_VERSION}); upgrade kvs"),
        ));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    // IMMEDIATE takes the write lock at once (waiting up to the busy
    // timeout), so two processes creating the schema together take turns
    // instead of one failing with "database is locked".
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS kvs (
             namespace  TEXT    NOT NULL,
             key        TEXT    NOT NULL,
             value      BLOB    NOT NULL,
             expires_at INTEGER,
             PRIMARY KEY (namespace, key)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;
         CREATE TABLE IF NOT EXISTS kvs_docs (
             namespace  TEXT    NOT NULL,
             collection TEXT    NOT NULL,
             id         TEXT    NOT NULL,
             body       TEXT    NOT NULL,
             created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL,
             PRIMARY KEY (namespace, collection, id)
         ) WITHOUT ROWID;
         PRAGMA user_version = 1;
         COMMIT;",
    )
    .map_err(|e| sqlite_error(path, "creating the schema in", e))
}

/// The one mapping of SQLite's errors: a busy or locked database (another
/// connection or process holds the lock past the busy timeout) is worth
/// retrying; anything else is not.
fn sqlite_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    let temporary = is_busy(&e);
    Error::backend(BACKEND, format!("{what} {}", path.display()), e).temporary_if(temporary)
}

/// Whether `e` says the database is busy or locked.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Sweeps expired rows every `interval` until told to stop (or the
/// database is gone).
fn sweep_loop(
    database: &std::sync::Weak<Database>,
    stopped: &mpsc::Receiver<()>,
    interval: Duration,
    clock: &dyn Clock,
) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        let Some(database) = database.upgrade() else {
            return;
        };
        let conn = database.writer.lock();
        if let Err(e) = sweep(&conn, clock.now_ms()) {
            tracing::warn!(path = %database.path.display(), error = %e, "kvs sqlite expiry sweep failed");
        }
    }
}

/// Applies `batch` in one transaction and answers each command.
///
/// A statement that fails has no effect and fails only its own command;
/// if the commit fails, every command fails.
fn commit(conn: &Connection, path: &Path, mut batch: Vec<Command>) {
    // A lone one-statement write is its own transaction: no BEGIN/COMMIT
    // round. Anything else runs in one IMMEDIATE transaction, which makes
    // read-modify-write operations atomic across processes too.
    if batch.len() == 1 && batch[0].write.is_single_statement() {
        if let Some(command) = batch.pop() {
            let result = apply(conn, path, &command.namespace, &command.write);
            let _ = command.done.send(result);
        }
        return;
    }
    let statement = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    if let Err(e) = statement("BEGIN IMMEDIATE") {
        fail_all(
            path,
            "starting a write to",
            e,
            batch.into_iter().map(|c| c.done),
        );
        return;
    }
    let results: Vec<(oneshot::Sender<Result<Outcome>>, Result<Outcome>)> = batch
        .into_iter()
        .map(|command| {
            let result = apply(conn, path, &command.namespace, &command.write);
            (command.done, result)
        })
        .collect();
    match statement("COMMIT") {
        Ok(_) => {
            for (done, result) in results {
                let _ = done.send(result);
            }
        }
        Err(e) => {
            let _ = statement("ROLLBACK");
            fail_all(
                path,
                "committing to",
                e,
                results.into_iter().map(|(done, _)| done),
            );
        }
    }
}

/// Answers every waiting write with the same failure (one source, shared).
fn fail_all(
    path: &Path,
    what: &str,
    e: rusqlite::Error,
    waiting: impl Iterator<Item = oneshot::Sender<Result<Outcome>>>,
) {
    let temporary = is_busy(&e);
    let source = Arc::new(e);
    for done in waiting {
        let error = Error::backend(
            BACKEND,
            format!("{what} {}", path.display()),
            Arc::clone(&source),
        );
        let _ = done.send(Err(error.temporary_if(temporary)));
    }
}

/// Performs one write; a failed one changes nothing.
fn apply(conn: &Connection, path: &Path, namespace: &str, write: &Write) -> Result<Outcome> {
    apply_sql(conn, namespace, write)
        .map_err(|e| sqlite_error(path, "writing to", e))
        .and_then(|outcome| outcome)
}

/// The SQL of [`apply`]; the inner result carries the refusals that are
/// not SQLite's (a missing key, a value that is not a counter).
fn apply_sql(
    conn: &Connection,
    namespace: &str,
    write: &Write,
) -> rusqlite::Result<Result<Outcome>> {
    match write {
        Write::Set {
            key,
            value,
            expires_at,
        } => {
            conn.prepare_cached(UPSERT_SQL)?
                .execute(params![namespace, key, value, expires_at])?;
        }
        Write::Delete { key } => {
            conn.prepare_cached("DELETE FROM kvs WHERE namespace = ?1 AND key = ?2")?
                .execute(params![namespace, key])?;
        }
        Write::PutDoc {
            collection,
            id,
            body,
            now,
        } => {
            // One statement keeps `created_at` and moves `updated_at`
            // forward atomically, whoever else writes the document.
            conn.prepare_cached(
                "INSERT INTO kvs_docs (namespace, collection, id, body, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
                 ON CONFLICT (namespace, collection, id) DO UPDATE SET body = excluded.body, \
                 updated_at = max(excluded.updated_at, kvs_docs.updated_at + 1)",
            )?
            .execute(params![namespace, collection, id, body, now])?;
        }
        Write::DeleteDoc { collection, id } => {
            conn.prepare_cached(
                "DELETE FROM kvs_docs WHERE namespace = ?1 AND collection = ?2 AND id = ?3",
            )?
            .execute(params![namespace, collection, id])?;
        }
        Write::SetMany {
            entries,
            expires_at,
        } => {
            let mut upsert = conn.prepare_cached(UPSERT_SQL)?;
            for (key, value) in entries {
                upsert.execute(params![namespace, key, value, expires_at])?;
            }
        }
        Write::DeleteMany { keys, now } => {
            let mut seen = std::collections::HashSet::new();
            let mut deleted = 0;
            for key in keys.iter().filter(|k| seen.insert(k.as_str())) {
                deleted += conn
                    .prepare_cached(
                        "DELETE FROM kvs WHERE namespace = ?1 AND key = ?2 \
                         AND (expires_at IS NULL OR expires_at >= ?3)",
                    )?
                    .execute(params![namespace, key, now])?;
                // An expired leftover goes too, uncounted.
                conn.prepare_cached("DELETE FROM kvs WHERE namespace = ?1 AND key = ?2")?
                    .execute(params![namespace, key])?;
            }
            return Ok(Ok(Outcome::Count(deleted)));
        }
        Write::CompareAndSwap {
            key,
            expected: None,
            value,
            expires_at,
            now,
        } => {
            // Inserts, or replaces an expired row; a live row stays.
            let changed = conn
                .prepare_cached(
                    "INSERT INTO kvs (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (namespace, key) DO UPDATE \
                     SET value = excluded.value, expires_at = excluded.expires_at \
                     WHERE kvs.expires_at IS NOT NULL AND kvs.expires_at < ?5",
                )?
                .execute(params![namespace, key, value, expires_at, now])?;
            return Ok(Ok(Outcome::Flag(changed == 1)));
        }
        Write::CompareAndSwap {
            key,
            expected: Some(expected),
            value,
            expires_at,
            now,
        } => {
            let changed = conn
                .prepare_cached(
                    "UPDATE kvs SET value = ?3, expires_at = ?4 \
                     WHERE namespace = ?1 AND key = ?2 AND value = ?5 \
                     AND (expires_at IS NULL OR expires_at >= ?6)",
                )?
                .execute(params![namespace, key, value, expires_at, expected, now])?;
            return Ok(Ok(Outcome::Flag(changed == 1)));
        }
        Write::Increment { key, delta, now } => {
            let current: Option<(Vec<u8>, Option<i64>)> = conn
                .prepare_cached(
                    "SELECT value, expires_at FROM kvs WHERE namespace = ?1 AND key = ?2 \
                     AND (expires_at IS NULL OR expires_at >= ?3)",
                )?
                .query_row(params![namespace, key, now], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let next = match next_counter(key, current.as_ref().map(|(v, _)| &v[..]), *delta) {
                Ok(next) => next,
                Err(e) => return Ok(Err(e)),
            };
            let expires_at = current.and_then(|(_, expires_at)| expires_at);
            conn.prepare_cached(UPSERT_SQL)?.execute(params![
                namespace,
                key,
                next.to_string().into_bytes(),
                expires_at
            ])?;
            return Ok(Ok(Outcome::Number(next)));
        }
        Write::Expire {
            key,
            expires_at,
            now,
        } => {
            let changed = conn
                .prepare_cached(
                    "UPDATE kvs SET expires_at = ?3 WHERE namespace = ?1 AND key = ?2 \
                     AND (expires_at IS NULL OR expires_at >= ?4)",
                )?
                .execute(params![namespace, key, expires_at, now])?;
            if changed == 0 {
                return Ok(Err(Error::NotFound));
            }
        }
        Write::DeletePrefix { start, end, now } => {
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM kvs WHERE namespace = ?1 AND key >= ?2 AND key < ?3 \
                     AND (expires_at IS NULL OR expires_at >= ?4)",
                )?
                .execute(params![namespace, start, end, now])?;
            conn.prepare_cached("DELETE FROM kvs WHERE namespace = ?1 AND key >= ?2 AND key < ?3")?
                .execute(params![namespace, start, end])?;
            return Ok(Ok(Outcome::Count(deleted)));
        }
    }
    Ok(Ok(Outcome::Done))
}

/// Deletes rows whose deadline has passed, in batches, through the
/// `kvs_expiry` index; returns how many.
fn sweep(conn: &Connection, now_ms: u64) -> rusqlite::Result<usize> {
    let now = to_sql_time(now_ms).unwrap_or(i64::MAX);
    let mut removed = 0;
    loop {
        let n = conn
            .prepare_cached(
                "DELETE FROM kvs WHERE (namespace, key) IN \
                 (SELECT namespace, key FROM kvs WHERE expires_at < ?1 LIMIT ?2)",
            )?
            .execute(params![now, SWEEP_BATCH as i64])?;
        removed += n;
        if n < SWEEP_BATCH {
            return Ok(removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn prefix_queries_use_the_primary_key_range() {
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
                plan.contains("USING PRIMARY KEY (namespace=? AND key>? AND key<?)"),
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
            apply(
                &conn,
                Path::new(":memory:"),
                "n",
                &Write::Set {
                    key: format!("k{i}"),
                    value: vec![],
                    expires_at: expires,
                },
            )
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
