//! The PostgreSQL backend: [`PostgresStore`].
//!
//! # Design
//!
//! One table, keyed by `(namespace, key)`, shared by every namespace (see
//! `sql.rs` for the schema and every statement). Each operation is one
//! statement, so PostgreSQL makes it atomic without a transaction of ours:
//! an upsert for `set`, `INSERT … ON CONFLICT` that replaces only an
//! expired row for `set_if_absent`, a conditional `UPDATE` for
//! compare-and-swap, one upsert with the arithmetic in SQL for
//! `increment`, arrays (`unnest`, `= ANY`) for the batches and one range
//! `DELETE` for `delete_prefix`.
//!
//! Connections come from a `deadpool-postgres` pool (`pool_size`), which
//! replaces a broken connection on its next use: after a server restart
//! the calls in flight fail with a temporary error, and the store works
//! again without being reopened. Every call is bounded by
//! `command_timeout`.
//!
//! The table is created (with `create_table`) under a transaction-scoped
//! advisory lock, so processes opening the same database at once do not
//! race on `CREATE TABLE IF NOT EXISTS`. Expired rows are invisible at
//! once; a sweep deletes them in batches of 1,000 every
//! `cleanup_interval`, in one process at a time (a session advisory lock
//! taken with `pg_try_advisory_lock`).
//!
//! TLS is rustls, verified, when the URL's `sslmode` asks for it (see
//! `tls.rs`).
//!
//! Documents are native: a second table, `<table>_documents`, holds them
//! as `jsonb`, and filters are pushed down into SQL (see `documents.rs`).
//!
//! # Files
//!
//! `sql.rs` (the key table's statements), `documents.rs` (the documents
//! table and filter push-down), `tls.rs` (`sslmode`), `errors.rs` (PostgreSQL's errors as
//! kvs's).

mod documents;
mod errors;
mod sql;
mod tls;

use crate::config::PostgresConfig;
use crate::deadline::{check_batch_ttl, check_ttl, deadline_ms, remaining, NEVER};
use crate::expiry::{Clock, SystemClock};
use crate::future::check;
use crate::generic::{last_of_each, next_counter, validate_all};
use crate::key::{normalize_namespace, prefix_successor, validate_key, validate_prefix};
use crate::{DocumentStore, Entry, Error, Result, Store, StoreFuture};
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use documents::DocSql;
use errors::{pool_error, postgres_error};
use sql::Sql;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::ToSql;

const BACKEND: &str = "postgres";
/// A `bytea` field holds at most 1 GB; less room for the message around it.
const MAX_VALUE_LEN: usize = (1 << 30) - (1 << 20);
/// Expired rows deleted per sweep statement.
const SWEEP_BATCH: i64 = 1_000;

/// A store in a table of a PostgreSQL database.
///
/// ```no_run
/// # async fn run() -> kvs::Result<()> {
/// use kvs::Store;
/// let config = kvs::Config::from_url("postgres://app@127.0.0.1:5432/app?namespace=sessions")?;
/// let store = kvs::open(&config).await?;
/// store.set("s:1", b"ada", None).await?;
/// # Ok(())
/// # }
/// ```
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    namespace: String,
    sql: Sql,
    docs: DocSql,
    clock: Arc<dyn Clock>,
    closed: AtomicBool,
    command_timeout: Duration,
    /// The sweep task, stopped by `close` and on drop.
    sweeper: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Where the table lives, for error messages (no password).
    place: String,
}

impl PostgresStore {
    /// Connects to the database `config.url` names, creates the table if
    /// asked to, and opens it for `namespace`.
    pub async fn open(namespace: &str, config: PostgresConfig) -> Result<PostgresStore> {
        PostgresStore::open_with_clock(namespace, config, Arc::new(SystemClock)).await
    }

    /// Like [`PostgresStore::open`], reading time from `clock`.
    pub async fn open_with_clock(
        namespace: &str,
        config: PostgresConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<PostgresStore> {
        let namespace = normalize_namespace(namespace)?;
        let table = quote_identifier(&config.table)?;
        let index = quote_identifier(&format!("{}_expires_at", config.table))?;
        let (url, tls) = tls::split(&config.url)?;
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::config(format!(
                "postgres: the url is not a PostgreSQL connection URL: {e}"
            ))
        })?;
        if !config.password.is_empty() {
            pg.password(config.password.as_bytes());
        }
        pg.connect_timeout(config.connect_timeout);
        pg.ssl_mode(tls.ssl_mode());
        let place = describe(&pg, &config.table);
        let recycling = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls.connector()? {
            Some(rustls) => Manager::from_config(pg, rustls, recycling()),
            None => Manager::from_config(pg, tokio_postgres::NoTls, recycling()),
        };
        // No timeouts of the pool's own: every call, waiting for a
        // connection and making one included, is bounded by the command
        // timeout in `with_client` (one timer a call, not three).
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .build()
            .map_err(|e| {
                Error::config(format!("postgres: cannot build the connection pool: {e}"))
            })?;
        let inner = Arc::new(Inner {
            pool,
            namespace,
            sql: Sql::new(&table, &index),
            docs: DocSql::new(&config.table),
            clock,
            closed: AtomicBool::new(false),
            command_timeout: config.command_timeout,
            sweeper: parking_lot::Mutex::new(None),
            place,
        });
        if config.create_table {
            inner.create_table(&config.table).await?;
        } else {
            // Fail at open, not at the first call, if the table is missing.
            inner.count_query("", 0).await?;
        }
        if !config.cleanup_interval.is_zero() {
            let sweeper = tokio::spawn(sweep_forever(
                Arc::downgrade(&inner),
                config.cleanup_interval,
            ));
            *inner.sweeper.lock() = Some(sweeper);
        }
        Ok(PostgresStore { inner })
    }

    /// A PostgreSQL store for `namespace` with its document layer.
    pub async fn open_documents(
        namespace: &str,
        config: PostgresConfig,
    ) -> Result<Arc<dyn DocumentStore>> {
        PostgresStore::open_documents_with_clock(namespace, config, Arc::new(SystemClock)).await
    }

    /// Like [`PostgresStore::open_documents`], reading time from `clock`.
    pub async fn open_documents_with_clock(
        namespace: &str,
        config: PostgresConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<dyn DocumentStore>> {
        let create_table = config.create_table;
        let store = PostgresStore::open_with_clock(namespace, config, clock).await?;
        if !create_table {
            store.inner.check_documents_table().await?;
        }
        Ok(Arc::new(store))
    }

    /// The namespace this store was opened for.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }
}

/// `name` as a quoted SQL identifier, refusing anything but letters,
/// digits and `_` (a table name from a file must not be SQL).
fn quote_identifier(name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && name.len() <= 50
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(Error::config(format!(
            "postgres: table {name:?} must be 1 to 50 letters, digits or _, not starting with a digit"
        )));
    }
    Ok(format!("\"{name}\""))
}

/// `table on host:port/database`, for errors: never the password.
fn describe(pg: &tokio_postgres::Config, table: &str) -> String {
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let db = pg.get_dbname().unwrap_or("postgres");
    format!("table {table} on {host}:{port}/{db}")
}

/// `ms` as a column value; `None` (NULL) for never.
fn sql_time(ms: u64) -> Option<i64> {
    if ms == NEVER {
        None
    } else {
        i64::try_from(ms).ok()
    }
}

impl Inner {
    fn now(&self) -> i64 {
        i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX)
    }

    fn open_check(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Runs `work` on a pooled connection within `command_timeout`.
    async fn with_client<T, F, Fut>(&self, what: &str, work: F) -> Result<T>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut,
        Fut: Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    {
        self.open_check()?;
        let attempt = async {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| pool_error(&self.place, what, e))?;
            work(client)
                .await
                .map_err(|e| postgres_error(&self.place, what, e))
        };
        match tokio::time::timeout(self.command_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Error::backend(
                BACKEND,
                format!("{what} on {}", self.place),
                format!(
                    "no answer within the command timeout of {}",
                    crate::format_duration(self.command_timeout)
                ),
            )
            .temporary_if(true)),
        }
    }

    /// One statement's rows.
    async fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        self.with_client(what, |client| async move {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        })
        .await
    }

    /// One statement's count of changed rows.
    async fn execute(&self, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.with_client(what, |client| async move {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        })
        .await
    }

    async fn create_table(&self, table: &str) -> Result<()> {
        let lock_name = format!("kvs table {table}");
        let create = &self.sql.create;
        let docs_create = &self.docs.create;
        self.with_client("creating the table", |mut client| async move {
            let transaction = client.transaction().await?;
            // Processes creating the table at once take turns.
            transaction
                .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_name])
                .await?;
            for statement in create.iter().chain(docs_create) {
                transaction.execute(statement.as_str(), &[]).await?;
            }
            transaction.commit().await
        })
        .await
    }

    async fn count_query(&self, prefix: &str, now: i64) -> Result<usize> {
        let (ns, start) = (&self.namespace, prefix.as_bytes());
        let sql = &self.sql;
        let rows = self
            .query_prefix(
                "counting keys",
                prefix,
                (&sql.count_from, &sql.count_range),
                &[ns, &start, &now],
            )
            .await?;
        Ok(first_count(&rows))
    }

    /// Runs the statement for `prefix`'s range of keys: `statements.1`
    /// with the range's end as one more, last parameter, or
    /// `statements.0` when the prefix has no successor (it is empty or
    /// all `0xFF`) and the range is open-ended.
    async fn query_prefix(
        &self,
        what: &str,
        prefix: &str,
        statements: (&str, &str),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let end = prefix_successor(prefix.as_bytes());
        let mut all = params.to_vec();
        let sql = match &end {
            Some(end) => {
                all.push(end);
                statements.1
            }
            None => statements.0,
        };
        self.query(what, sql, &all).await
    }

    /// Keys under `prefix` after `after` (or from the prefix itself), up
    /// to `limit` (`None`: all).
    async fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<String>> {
        let rows = self
            .ranged("listing keys", &self.sql.keys, prefix, after, limit)
            .await?;
        rows.iter().map(|row| key_of(row.get(0))).collect()
    }

    /// The rows `statements` read under `prefix`, after `after` (or from
    /// the prefix itself), up to `limit` (`None`: all).
    async fn ranged(
        &self,
        what: &str,
        statements: &sql::Ranged,
        prefix: &str,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<tokio_postgres::Row>> {
        let (ns, now, start) = (&self.namespace, self.now(), prefix.as_bytes());
        match after.filter(|a| *a >= prefix) {
            None => {
                let pair = (statements.from.as_str(), statements.range.as_str());
                self.query_prefix(what, prefix, pair, &[ns, &start, &now, &limit])
                    .await
            }
            Some(after) => {
                let after = after.as_bytes();
                let pair = (
                    statements.page_from.as_str(),
                    statements.page_range.as_str(),
                );
                let params: [&(dyn ToSql + Sync); 5] = [ns, &start, &now, &limit, &after];
                self.query_prefix(what, prefix, pair, &params).await
            }
        }
    }
}

/// The value in the first row, or `NotFound` when the statement found
/// no live row.
fn first_value(rows: &[tokio_postgres::Row]) -> Result<Bytes> {
    match rows.first() {
        Some(row) => Ok(Bytes::from(row.get::<_, Vec<u8>>(0))),
        None => Err(Error::NotFound),
    }
}

/// The `count(*)` in the first row (0 without one).
fn first_count(rows: &[tokio_postgres::Row]) -> usize {
    let count: i64 = rows.first().map_or(0, |row| row.get(0));
    usize::try_from(count).unwrap_or(0)
}

/// A key read back: the bytes of a UTF-8 key kvs wrote.
fn key_of(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        Error::backend(
            BACKEND,
            "reading a key",
            format!("a key in the table is not UTF-8: {e}"),
        )
    })
}

/// The sweep: every `interval`, batches of expired rows, in one process
/// at a time (the others find the advisory lock taken and skip a turn).
async fn sweep_forever(inner: std::sync::Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = sweep_turn(&inner).await {
            tracing::debug!(error = %e, "kvs postgres: a sweep failed");
        }
    }
}

async fn sweep_turn(inner: &Inner) -> Result<()> {
    let lock = "kvs sweep".to_owned();
    let locked = inner
        .with_client("taking the sweep lock", |client| async move {
            let row = client
                .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&lock])
                .await?;
            let locked: bool = row.get(0);
            if locked {
                // Batches until one comes back short, on this connection,
                // which holds the session lock; then let it go.
                loop {
                    let now = i64::try_from(inner.clock.now_ms()).unwrap_or(i64::MAX);
                    let gone = client
                        .execute(inner.sql.sweep.as_str(), &[&now, &SWEEP_BATCH])
                        .await?;
                    if gone < SWEEP_BATCH as u64 || inner.closed.load(Ordering::Acquire) {
                        break;
                    }
                }
                client
                    .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock])
                    .await?;
            }
            Ok(locked)
        })
        .await?;
    if !locked {
        tracing::debug!("kvs postgres: another process is sweeping");
    }
    Ok(())
}

fn too_large(key: &str, value: &[u8]) -> Result<()> {
    Error::check_value_size(BACKEND, key, value.len(), MAX_VALUE_LEN)
}

impl Store for PostgresStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let now = i.now();
            let rows = i
                .query(
                    "reading a key",
                    &i.sql.get,
                    &[&i.namespace, &key.as_bytes(), &now],
                )
                .await?;
            first_value(&rows)
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
            let i = &*self.inner;
            let expires = sql_time(deadline_ms(i.clock.now_ms(), ttl));
            i.execute(
                "writing a key",
                &i.sql.set,
                &[&i.namespace, &key.as_bytes(), &value, &expires],
            )
            .await
            .map(drop)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            i.execute(
                "deleting a key",
                &i.sql.delete,
                &[&i.namespace, &key.as_bytes()],
            )
            .await
            .map(drop)
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let now = i.now();
            let rows = i
                .query(
                    "checking a key",
                    &i.sql.exists,
                    &[&i.namespace, &key.as_bytes(), &now],
                )
                .await?;
            Ok(!rows.is_empty())
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(self.inner.keys(prefix, None, None))
    }

    fn count<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(async move { self.inner.count_query(prefix, self.inner.now()).await })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        self.inner.closed.store(true, Ordering::Release);
        if let Some(sweeper) = self.inner.sweeper.lock().take() {
            sweeper.abort();
        }
        self.inner.pool.close();
        StoreFuture::ready(Ok(()))
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let now = i.now();
            let rows = i
                .query(
                    "reading a TTL",
                    &i.sql.ttl,
                    &[&i.namespace, &key.as_bytes(), &now],
                )
                .await?;
            let row = rows.first().ok_or(Error::NotFound)?;
            let deadline: Option<i64> = row.get(0);
            let deadline = deadline.map_or(NEVER, |d| u64::try_from(d).unwrap_or(0));
            Ok(remaining(deadline, i.clock.now_ms()))
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        check!(validate_all(keys.iter().copied()));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            i.open_check()?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            let now = i.now();
            let rows = i
                .query(
                    "reading keys",
                    &i.sql.get_many,
                    &[&i.namespace, &wanted, &now],
                )
                .await?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                found.insert(
                    row.get::<_, Vec<u8>>(0),
                    Bytes::from(row.get::<_, Vec<u8>>(1)),
                );
            }
            Ok(keys
                .iter()
                .map(|k| found.get(k.as_bytes()).cloned())
                .collect())
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
            let i = &*self.inner;
            i.open_check()?;
            if entries.is_empty() {
                return Ok(());
            }
            // One row per key: ON CONFLICT cannot touch a row twice.
            let entries = last_of_each(entries);
            let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_bytes()).collect();
            let values: Vec<&[u8]> = entries.iter().map(|(_, v)| *v).collect();
            let expires = sql_time(deadline_ms(i.clock.now_ms(), ttl));
            i.execute(
                "writing keys",
                &i.sql.set_many,
                &[&i.namespace, &keys, &values, &expires],
            )
            .await
            .map(drop)
        })
    }

    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        check!(validate_all(keys.iter().copied()));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            i.open_check()?;
            if keys.is_empty() {
                return Ok(0);
            }
            let mut unique: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            unique.sort_unstable();
            unique.dedup();
            let now = i.now();
            let rows = i
                .query(
                    "deleting keys",
                    &i.sql.delete_many,
                    &[&i.namespace, &unique, &now],
                )
                .await?;
            Ok(first_count(&rows))
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
            let i = &*self.inner;
            let now = i.now();
            let expires = sql_time(deadline_ms(i.clock.now_ms(), ttl));
            let rows = i
                .query(
                    "writing a key if absent",
                    &i.sql.set_if_absent,
                    &[&i.namespace, &key.as_bytes(), &value, &expires, &now],
                )
                .await?;
            Ok(!rows.is_empty())
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let Some(expected) = expected else {
            return self.set_if_absent(key, new, ttl);
        };
        check!(check_ttl(key, ttl));
        check!(validate_key(key).and_then(|()| too_large(key, new)));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let now = i.now();
            let expires = sql_time(deadline_ms(i.clock.now_ms(), ttl));
            let changed = i
                .execute(
                    "swapping a value",
                    &i.sql.swap,
                    &[
                        &i.namespace,
                        &key.as_bytes(),
                        &expected,
                        &new,
                        &expires,
                        &now,
                    ],
                )
                .await?;
            Ok(changed == 1)
        })
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            loop {
                let now = i.now();
                let rows = i
                    .query(
                        "incrementing a counter",
                        &i.sql.increment,
                        &[&i.namespace, &key.as_bytes(), &delta, &now],
                    )
                    .await?;
                if let Some(row) = rows.first() {
                    let text: Vec<u8> = row.get(0);
                    return crate::raw::parse_counter(&text).ok_or_else(|| {
                        Error::backend(
                            BACKEND,
                            "incrementing a counter",
                            "the server wrote no counter",
                        )
                    });
                }
                // Refused, and nothing changed: say why, from the value.
                let rows = i
                    .query(
                        "reading a counter",
                        &i.sql.current,
                        &[&i.namespace, &key.as_bytes(), &now],
                    )
                    .await?;
                if let Some(row) = rows.first() {
                    let current: Vec<u8> = row.get(0);
                    next_counter(key, Some(&current), delta)?;
                }
                // Changed in between (now a counter, or gone): again.
            }
        })
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        let touched = self.get_and_touch(key, ttl);
        StoreFuture::boxed(async move { touched.await.map(drop) })
    }

    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Bytes> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let now = i.now();
            let expires = sql_time(deadline_ms(i.clock.now_ms(), Some(ttl)));
            let rows = i
                .query(
                    "touching a key",
                    &i.sql.touch,
                    &[&i.namespace, &key.as_bytes(), &expires, &now],
                )
                .await?;
            first_value(&rows)
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
            let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
            let keys = self
                .inner
                .keys(prefix, start_after, Some(limit_sql))
                .await?;
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
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let limit_sql = Some(i64::try_from(limit).unwrap_or(i64::MAX));
            let rows = i
                .ranged(
                    "reading a page of entries",
                    &i.sql.entries,
                    prefix,
                    start_after,
                    limit_sql,
                )
                .await?;
            let now = i.clock.now_ms();
            let entries = rows
                .iter()
                .map(|row| {
                    let deadline: Option<i64> = row.get(2);
                    Ok(Entry {
                        key: key_of(row.get(0))?,
                        value: Bytes::from(row.get::<_, Vec<u8>>(1)),
                        ttl: deadline.and_then(|d| remaining(u64::try_from(d).unwrap_or(0), now)),
                    })
                })
                .collect::<Result<Vec<Entry>>>()?;
            // Every row read is live, so a full page is the listing's.
            let next =
                (limit > 0 && entries.len() == limit).then(|| entries[limit - 1].key.clone());
            Ok((entries, next))
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let now = i.now();
            let start = prefix.as_bytes();
            let statements = (i.sql.delete_from.as_str(), i.sql.delete_range.as_str());
            let rows = i
                .query_prefix(
                    "deleting a prefix",
                    prefix,
                    statements,
                    &[&i.namespace, &start, &now],
                )
                .await?;
            Ok(first_count(&rows))
        })
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(sweeper) = self.inner.sweeper.lock().take() {
            sweeper.abort();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("place", &self.inner.place)
            .field("namespace", &self.inner.namespace)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
