//! The raw PostgreSQL client, on the same server as the kvs store:
//! `tokio-postgres` behind a `deadpool-postgres` pool of the same size as
//! kvs's (8), with cached prepared statements, on a table a user would
//! write (`key text COLLATE "C" PRIMARY KEY, value bytea`), durable as
//! kvs's (the server's `synchronous_commit`, on by default). Its table is
//! dropped before and after a run.

use crate::subject::{OpError, OpResult, Subject};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

/// The raw client's table.
pub const TABLE: &str = "kvs_bench_raw";

/// `tokio-postgres` through a pool (a clone shares it).
#[derive(Clone)]
pub struct RawPostgres {
    pool: Pool,
}

impl RawPostgres {
    /// Connects to `url` (with `password`, unless empty).
    pub async fn connect(url: &str, password: &str) -> OpResult<RawPostgres> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| OpError::failed("postgres url", e))?;
        if !password.is_empty() {
            config.password(password);
        }
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .build()
            .map_err(|e| OpError::failed("postgres pool", e))?;
        Ok(RawPostgres { pool })
    }

    /// An empty table, in place of one an interrupted run may have left.
    pub async fn reset(&self) -> OpResult<()> {
        self.batch(&format!(
            "DROP TABLE IF EXISTS {TABLE}; \
             CREATE TABLE {TABLE} (key text COLLATE \"C\" PRIMARY KEY, value bytea NOT NULL)"
        ))
        .await
    }

    async fn client(&self) -> OpResult<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| OpError::failed("postgres connection", e))
    }

    async fn batch(&self, sql: &str) -> OpResult<()> {
        self.client()
            .await?
            .batch_execute(sql)
            .await
            .map_err(|e| OpError::failed("postgres", e))
    }

    /// `VACUUM ANALYZE` of `tables`: after a bulk load, so that every
    /// subject's listing and counting run as on a table autovacuum has
    /// seen (index-only scans need the visibility map it sets), not on
    /// whichever table autovacuum happened to reach first.
    pub async fn vacuum(&self, tables: &[&str]) -> OpResult<()> {
        for table in tables {
            self.batch(&format!("VACUUM ANALYZE \"{table}\"")).await?;
        }
        Ok(())
    }

    /// Drops the table.
    pub async fn clean(&self) -> OpResult<()> {
        self.batch(&format!("DROP TABLE IF EXISTS {TABLE}")).await
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> OpResult<Vec<tokio_postgres::Row>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| OpError::failed("postgres prepare", e))?;
        client
            .query(&statement, params)
            .await
            .map_err(|e| OpError::failed("postgres query", e))
    }
}

/// The end of `prefix`'s range: its last byte plus one (the benchmark's
/// prefixes are ASCII digits and letters).
fn successor(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).unwrap_or_default()
}

impl Subject for RawPostgres {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        let sql = format!(
            "INSERT INTO {TABLE} (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        );
        self.query(&sql, &[&key, &value]).await.map(drop)
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        let sql = format!("SELECT value FROM {TABLE} WHERE key = $1");
        let rows = self.query(&sql, &[&key]).await?;
        Ok(rows.first().map(|row| row.get::<_, Vec<u8>>(0).len()))
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        let sql = format!("SELECT key FROM {TABLE} WHERE key >= $1 AND key < $2 ORDER BY key");
        let rows = self.query(&sql, &[&prefix, &successor(prefix)]).await?;
        let keys: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        Ok(keys.len())
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        let sql = format!("SELECT count(*) FROM {TABLE} WHERE key >= $1 AND key < $2");
        let rows = self.query(&sql, &[&prefix, &successor(prefix)]).await?;
        let count: i64 = rows.first().map_or(0, |row| row.get(0));
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Batches of 1,000 rows through `unnest`.
    async fn load(&self, entries: Vec<(String, Vec<u8>)>) -> OpResult<()> {
        let sql = format!(
            "INSERT INTO {TABLE} (key, value) SELECT * FROM unnest($1::text[], $2::bytea[]) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        );
        for chunk in entries.chunks(1_000) {
            let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
            let values: Vec<&[u8]> = chunk.iter().map(|(_, v)| v.as_slice()).collect();
            self.query(&sql, &[&keys, &values]).await?;
        }
        Ok(())
    }
}
