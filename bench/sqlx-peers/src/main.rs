//! OpenDAL's and keyv's SQLite services under the kvs benchmark's
//! workloads. `kvs bench` runs this with the keys, duration and task counts
//! of its own run and reads one JSON result line per measurement from
//! stdout. Both libraries are used as their documentation shows, with the
//! table created first (OpenDAL's service does not create it).
//!
//! ```text
//! kvs-bench-sqlx-peers --keys 10000 --duration-ms 80 --tasks 1,64 --dir /tmp/x
//! ```

use kvs_bench::{run_subject, OpError, OpResult, Subject, Workload};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

struct Args {
    keys: usize,
    duration: Duration,
    tasks: Vec<usize>,
    workloads: Vec<Workload>,
    dir: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        keys: 10_000,
        duration: Duration::from_millis(80),
        tasks: vec![1, 64],
        workloads: Workload::ALL.to_vec(),
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--keys" => args.keys = number(&value)?,
            "--duration-ms" => args.duration = Duration::from_millis(number(&value)? as u64),
            "--tasks" => {
                args.tasks = value.split(',').map(number).collect::<Result<_, _>>()?;
            }
            "--workloads" => {
                args.workloads = value
                    .split(',')
                    .map(|name| {
                        Workload::ALL
                            .into_iter()
                            .find(|w| w.name() == name)
                            .ok_or_else(|| format!("unknown workload {name:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--dir" => args.dir = PathBuf::from(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("kvs-bench-sqlx-peers: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = parse()?;
    let print = |line: &kvs_bench::Line| match serde_json::to_string(line) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("kvs-bench-sqlx-peers: {e}"),
    };

    let path = args.dir.join("kvs-bench-opendal.db");
    let opendal = OpenDalSqlite::open(&path).await?;
    run_subject(
        "sqlite",
        "opendal",
        "sqlite-full",
        "WAL (set on the file), synchronous=FULL (OpenDAL's, not configurable); services::Sqlite",
        opendal,
        &args.workloads,
        &args.tasks,
        args.keys,
        args.duration,
        print,
    )
    .await?;
    remove(&path);

    let path = args.dir.join("kvs-bench-keyv.db");
    let keyv = KeyvSqlite::open(&path).await?;
    run_subject(
        "sqlite",
        "keyv",
        "sqlite-normal",
        "WAL, synchronous=NORMAL (a pool passed to SqliteStoreBuilder::pool); JSON string values",
        keyv,
        &args.workloads,
        &args.tasks,
        args.keys,
        args.duration,
        print,
    )
    .await?;
    remove(&path);
    Ok(())
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

/// OpenDAL's sqlite service.
struct OpenDalSqlite(opendal::Operator);

impl OpenDalSqlite {
    async fn open(path: &Path) -> Result<OpenDalSqlite, String> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        // The service reads and writes a table it does not create, and
        // leaves the journal mode alone: the file is made WAL here (WAL is
        // a property of the file), like kvs's, so that both compare at
        // WAL + synchronous=FULL.
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| e.to_string())?
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        sqlx::query("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB)")
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())?;
        pool.close().await;
        let builder = opendal::services::Sqlite::default()
            .connection_string(&url)
            .table("kv")
            .key_field("key")
            .value_field("value");
        let op = opendal::Operator::new(builder).map_err(|e| e.to_string())?;
        Ok(OpenDalSqlite(op))
    }
}

impl Subject for OpenDalSqlite {
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

    async fn list(&self, _prefix: &str) -> OpResult<usize> {
        Err(OpError::Unsupported("OpenDAL's sqlite service cannot list"))
    }

    async fn count(&self, _prefix: &str) -> OpResult<usize> {
        Err(OpError::Unsupported("OpenDAL's sqlite service cannot list"))
    }
}

/// keyv's SQLite store on a WAL/NORMAL pool.
struct KeyvSqlite(keyv::Keyv);

impl KeyvSqlite {
    async fn open(path: &Path) -> Result<KeyvSqlite, String> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        let store = keyv::adapter::sqlite::SqliteStoreBuilder::new()
            .pool(Arc::new(pool))
            .table_name("kv")
            .build()
            .await
            .map_err(|e| e.to_string())?;
        keyv::Keyv::try_new(store)
            .await
            .map(KeyvSqlite)
            .map_err(|e| e.to_string())
    }
}

impl Subject for KeyvSqlite {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        self.0
            .set(key, String::from_utf8_lossy(value).into_owned())
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
