//! The peers of `kvs bench` that cannot be built with kvs, under the same
//! workloads: OpenDAL's and keyv's SQLite services, openkeyv's DynamoDB
//! store, and the PostgreSQL stores of OpenDAL, openkeyv and keyv. `kvs bench` runs this with the keys, durations, rounds
//! and task counts of its own run and reads one JSON result line per
//! measurement from stdout. Each library is used as its documentation
//! shows, through the subjects of `kvs_bench::subjects::libraries`.
//!
//! ```text
//! kvs-bench-peers --keys 10000 --duration-ms 50 --rounds 1 --tasks 1,64 --sqlite /tmp/x
//! kvs-bench-peers --keys 10000 --dynamodb http://127.0.0.1:5006 --region us-east-1
//! kvs-bench-peers --keys 10000 --postgres postgres://kvs@127.0.0.1:5439/postgres
//! ```

use kvs_bench::subjects::libraries::{Keyv, OpenDal, OpenKeyv};
use kvs_bench::{run_subject, Line, OpError, OpResult, Plan, Subject, Workload};
use openkeyv::AsyncDestroyStore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The table openkeyv's store creates (with its own key schema) and this
/// run deletes at the end.
const OPENKEYV_TABLE: &str = "kvs-bench-openkeyv";

struct Args {
    plan: Plan,
    /// Where the SQLite files go, if the SQLite peers are to run.
    sqlite: Option<PathBuf>,
    /// The DynamoDB endpoint (empty: AWS's own), if the DynamoDB peer is
    /// to run.
    dynamodb: Option<String>,
    /// The AWS region; empty: from the environment, as the SDK finds it.
    region: String,
    /// The PostgreSQL server's URL, if the PostgreSQL peers are to run.
    postgres: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        plan: Plan {
            workloads: Workload::ALL.to_vec(),
            tasks: vec![1, 64],
            keys: 10_000,
            duration: Duration::from_millis(50),
            rounds: 1,
        },
        sqlite: None,
        dynamodb: None,
        region: String::new(),
        postgres: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        let plan = &mut args.plan;
        match flag.as_str() {
            "--keys" => plan.keys = number(&value)?,
            "--duration-ms" => plan.duration = Duration::from_millis(number(&value)? as u64),
            "--rounds" => plan.rounds = number(&value)?,
            "--tasks" => {
                plan.tasks = value.split(',').map(number).collect::<Result<_, _>>()?;
            }
            "--workloads" => {
                plan.workloads = value
                    .split(',')
                    .map(|name| {
                        Workload::from_name(name)
                            .ok_or_else(|| format!("unknown workload {name:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--sqlite" => args.sqlite = Some(PathBuf::from(value)),
            "--dynamodb" => args.dynamodb = Some(value),
            "--region" => args.region = value,
            "--postgres" => args.postgres = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn main() {
    let result = parse().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting tokio: {e}"))?
            .block_on(run(args))
    });
    if let Err(e) = result {
        eprintln!("kvs-bench-peers: {e}");
        std::process::exit(1);
    }
}

fn print(line: &Line) {
    match serde_json::to_string(line) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("kvs-bench-peers: {e}"),
    }
}

async fn run(args: Args) -> Result<(), String> {
    if let Some(dir) = &args.sqlite {
        sqlite(dir, &args.plan).await?;
    }
    if let Some(endpoint) = &args.dynamodb {
        dynamodb(&args, endpoint).await?;
    }
    if let Some(url) = &args.postgres {
        postgres(url, &args.plan).await?;
    }
    Ok(())
}

/// The tables the PostgreSQL peers write, dropped before and after.
const POSTGRES_TABLES: [&str; 4] = [
    "kvs_bench_opendal",
    "kvs_bench_keyv",
    "kvs_bench_openkeyv",
    "kvs_bench_openkeyv_changes",
];

async fn drop_postgres_tables(pool: &sqlx::PgPool) -> Result<(), String> {
    for table in POSTGRES_TABLES {
        sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
            .execute(pool)
            .await
            .map_err(|e| format!("dropping {table}: {e}"))?;
    }
    Ok(())
}

/// OpenDAL's, keyv's and openkeyv's PostgreSQL stores on the server at
/// `url`, each on a table of its own, as their documentation shows.
async fn postgres(url: &str, plan: &Plan) -> Result<(), String> {
    let pool = sqlx::PgPool::connect(url)
        .await
        .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
    drop_postgres_tables(&pool).await?;
    let result = postgres_peers(url, &pool, plan).await;
    let dropped = drop_postgres_tables(&pool).await;
    result.and(dropped)
}

async fn postgres_peers(url: &str, pool: &sqlx::PgPool, plan: &Plan) -> Result<(), String> {
    // OpenDAL's service reads and writes a table it does not create.
    sqlx::query("CREATE TABLE kvs_bench_opendal (key text PRIMARY KEY, value bytea NOT NULL)")
        .execute(pool)
        .await
        .map_err(|e| e.to_string())?;
    let builder = opendal::services::Postgresql::default()
        .connection_string(url)
        .table("kvs_bench_opendal")
        .key_field("key")
        .value_field("value");
    let op = opendal::Operator::new(builder).map_err(|e| e.to_string())?;
    run_subject(
        "postgres",
        "opendal",
        "postgres",
        "same server; services::Postgresql, its own pool",
        OpenDal(op),
        plan,
        print,
    )
    .await?;

    let store = keyv::adapter::postgres::PostgresStoreBuilder::new()
        .pool(Arc::new(pool.clone()))
        .table_name("kvs_bench_keyv")
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let keyv = keyv::Keyv::try_new(store)
        .await
        .map_err(|e| e.to_string())?;
    run_subject(
        "postgres",
        "keyv",
        "postgres",
        "same server; adapter::postgres::PostgresStore on an sqlx pool of 10; JSON string values",
        Keyv(keyv),
        plan,
        print,
    )
    .await?;

    let store = openkeyv::store::postgres::PostgresStore::from_pool(
        pool.clone(),
        Some("kvs_bench_openkeyv"),
    )
    .await
    .map_err(|e| e.to_string())?;
    run_subject(
        "postgres",
        "openkeyv",
        "postgres",
        "same server; store::postgres::PostgresStore on an sqlx pool of 10 (its defaults: a change log row per write)",
        OpenKeyv(store),
        plan,
        print,
    )
    .await
    .map(drop)
}

async fn sqlite(dir: &Path, plan: &Plan) -> Result<(), String> {
    let path = dir.join("kvs-bench-opendal.db");
    let opendal = OpenDalSqlite::open(&path).await?;
    run_subject(
        "sqlite",
        "opendal",
        "sqlite-full",
        "WAL (set on the file), synchronous=FULL (OpenDAL's, not configurable); services::Sqlite",
        opendal,
        plan,
        print,
    )
    .await?;
    remove(&path);

    let path = dir.join("kvs-bench-keyv.db");
    let keyv = keyv_sqlite(&path).await?;
    run_subject(
        "sqlite",
        "keyv",
        "sqlite-normal",
        "WAL, synchronous=NORMAL (a pool passed to SqliteStoreBuilder::pool); JSON string values",
        keyv,
        plan,
        print,
    )
    .await?;
    remove(&path);
    Ok(())
}

async fn dynamodb(args: &Args, endpoint: &str) -> Result<(), String> {
    let client = dynamodb_client(endpoint, &args.region).await;
    create_openkeyv_table(&client).await?;
    let store =
        openkeyv::store::dynamodb::DynamoDBStore::from_client(client.clone(), OPENKEYV_TABLE);
    let settings = format!(
        "same endpoint; store::dynamodb::DynamoDBStore, table {OPENKEYV_TABLE} of its own schema"
    );
    let result = run_subject(
        "dynamodb",
        "openkeyv",
        "dynamodb",
        &settings,
        OpenKeyv(store),
        &args.plan,
        print,
    )
    .await;
    // The table is this run's own: drop it whether or not the run passed.
    let dropped = openkeyv::store::dynamodb::DynamoDBStore::from_client(client, OPENKEYV_TABLE)
        .destroy()
        .await
        .map_err(|e| format!("deleting table {OPENKEYV_TABLE}: {e}"));
    result?;
    dropped.map(drop)
}

/// A client built as kvs builds its own: region and endpoint as given
/// (empty: the SDK's defaults), credentials from the environment.
async fn dynamodb_client(endpoint: &str, region: &str) -> aws_sdk_dynamodb::Client {
    let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if !region.is_empty() {
        sdk = sdk.region(aws_config::Region::new(region.to_owned()));
    }
    if !endpoint.is_empty() {
        sdk = sdk.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::new(&sdk.load().await)
}

/// The table openkeyv's `DynamoDBStore::new` creates (it does not create
/// one for a store built `from_client`): `collection` (hash) and `key`
/// (range), both strings, on demand. A table left by an interrupted run is
/// dropped first.
async fn create_openkeyv_table(client: &aws_sdk_dynamodb::Client) -> Result<(), String> {
    use aws_sdk_dynamodb::client::Waiters;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let _ = client
        .delete_table()
        .table_name(OPENKEYV_TABLE)
        .send()
        .await;
    let fail = |e: &dyn std::fmt::Display| format!("creating table {OPENKEYV_TABLE}: {e}");
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| fail(&e))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| fail(&e))
    };
    client
        .create_table()
        .table_name(OPENKEYV_TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("collection")?)
        .attribute_definitions(attribute("key")?)
        .key_schema(key("collection", KeyType::Hash)?)
        .key_schema(key("key", KeyType::Range)?)
        .send()
        .await
        .map_err(|e| fail(&aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    client
        .wait_until_table_exists()
        .table_name(OPENKEYV_TABLE)
        .wait(std::time::Duration::from_secs(120))
        .await
        .map_err(|e| fail(&aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    Ok(())
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

/// OpenDAL's sqlite service, and a pool on its file for the load only.
struct OpenDalSqlite {
    op: OpenDal,
    pool: sqlx::SqlitePool,
}

impl OpenDalSqlite {
    /// The service reads and writes a table it does not create, and leaves
    /// the journal mode alone: the table is created here, and the file is
    /// made WAL (a property of the file), like kvs's, so that both compare
    /// at WAL + synchronous=FULL.
    async fn open(path: &Path) -> Result<OpenDalSqlite, String> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
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
        let builder = opendal::services::Sqlite::default()
            .connection_string(&url)
            .table("kv")
            .key_field("key")
            .value_field("value");
        let op = opendal::Operator::new(builder).map_err(|e| e.to_string())?;
        Ok(OpenDalSqlite {
            op: OpenDal(op),
            pool,
        })
    }
}

impl Subject for OpenDalSqlite {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        self.op.set(key, value).await
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        self.op.get(key).await
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        self.op.list(prefix).await
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        self.op.count(prefix).await
    }

    /// Rows written straight into the service's table, 1,000 a
    /// transaction: OpenDAL has no batch write, and one fsync per row made
    /// the load take most of a `--quick` run. The load is not measured.
    async fn load(&self, entries: Vec<(String, Vec<u8>)>) -> OpResult<()> {
        for chunk in entries.chunks(1_000) {
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(|e| OpError::failed("sqlx begin", e))?;
            for (key, value) in chunk {
                sqlx::query("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| OpError::failed("sqlx insert", e))?;
            }
            tx.commit()
                .await
                .map_err(|e| OpError::failed("sqlx commit", e))?;
        }
        Ok(())
    }
}

/// keyv's SQLite store on a WAL/NORMAL pool.
async fn keyv_sqlite(path: &Path) -> Result<Keyv, String> {
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
        .map(Keyv)
        .map_err(|e| e.to_string())
}
