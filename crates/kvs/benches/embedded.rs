//! The SQLite and LevelDB backends against their raw crates (`rusqlite`,
//! `rusty-leveldb`) doing the same work with the same settings, in the same
//! run, printed as ratios.
//!
//! `cargo bench -p kvs-store --bench embedded` (add `-- --quick` for a short run).
//!
//! kvs never blocks the async executor: SQLite reads run on tokio's
//! blocking pool, SQLite writes on the blocking pool too (group commit on
//! one write connection), and every LevelDB call on the database's own
//! thread. So each raw client is measured twice:
//! - **off the executor**, as an async application must call it
//!   (`spawn_blocking` for rusqlite; a thread of its own for rusty-leveldb,
//!   whose handle is not `Send`) — the like-for-like peer;
//! - **on the calling thread**, blocking it — the floor no async wrapper
//!   reaches at one task, shown for reference.

use common::{best_rate, print_rows, shuffled, Row};
use kvs::{LevelDbConfig, LevelDbStore, SqliteConfig, SqliteStore, Store};
use parking_lot::Mutex;
use rusqlite::{params, Connection};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

mod common;

const VALUE_LEN: usize = 1024;

struct Sizes {
    ops: usize,
    durable_ops: usize,
    list_keys: usize,
    lists: usize,
    rounds: usize,
}

fn key(i: usize) -> String {
    format!("k{i:015}")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            ops: 3_000,
            durable_ops: 300,
            list_keys: 100_000,
            lists: 100,
            rounds: 1,
        }
    } else {
        Sizes {
            ops: 20_000,
            durable_ops: 2_000,
            list_keys: 1_000_000,
            lists: 500,
            rounds: 3,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    sqlite(&rt, dir.path(), &sizes, &mut rows, &mut notes);
    leveldb(&rt, dir.path(), &sizes, &mut rows, &mut notes);
    println!();
    println!(
        "kvs embedded backends vs raw crates ({VALUE_LEN}-byte values, 16-byte keys, 1 task unless noted)"
    );
    println!();
    print_rows(&rows);
    println!();
    for note in notes {
        println!("{note}");
    }
}

/// Runs `n` sets through `store` from `tasks` concurrent tasks; returns ops/s.
fn kvs_sets(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn Store>,
    n: usize,
    tasks: usize,
    tag: &str,
) -> f64 {
    let value = vec![0xAB_u8; VALUE_LEN];
    let start = Instant::now();
    rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = Arc::clone(store);
            let value = value.clone();
            let tag = tag.to_owned();
            handles.push(tokio::spawn(async move {
                for i in (t..n).step_by(tasks) {
                    store
                        .set(&format!("{tag}{i:010}"), &value, None)
                        .await
                        .expect("set");
                }
            }));
        }
        for h in handles {
            h.await.expect("task");
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

fn kvs_gets(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn Store>,
    keys: &[String],
    order: &[usize],
) -> f64 {
    let start = Instant::now();
    rt.block_on(async {
        for &i in order {
            black_box(store.get(&keys[i]).await.expect("get"));
        }
    });
    order.len() as f64 / start.elapsed().as_secs_f64()
}

/// The latency of `list` and `count` of 100 keys among `sizes.list_keys`
/// (keys `k{i:015}`), as a line for the report.
fn list_count_latency(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn Store>,
    sizes: &Sizes,
    name: &str,
) -> String {
    let prefixes: Vec<String> = shuffled(sizes.list_keys / 100, 9)
        .into_iter()
        .take(sizes.lists)
        .map(|j| format!("k{j:013}"))
        .collect();
    let list = best_rate(sizes.rounds, prefixes.len(), |_| {
        rt.block_on(async {
            for p in &prefixes {
                assert_eq!(store.list(p).await.expect("list").len(), 100);
            }
        })
    });
    let count = best_rate(sizes.rounds, prefixes.len(), |_| {
        rt.block_on(async {
            for p in &prefixes {
                assert_eq!(store.count(p).await.expect("count"), 100);
            }
        })
    });
    format!(
        "{name} list of 100 among {} keys: {:.0} us; count: {:.0} us (target < 2000 us)",
        sizes.list_keys,
        1e6 / list,
        1e6 / count
    )
}

// ---------------------------------------------------------------- SQLite

fn raw_sqlite(path: &Path, durable: bool) -> Connection {
    let conn = Connection::open(path).expect("open raw sqlite");
    let sync = if durable { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync};
         CREATE TABLE IF NOT EXISTS kvs (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
             expires_at INTEGER, PRIMARY KEY (namespace, key)) WITHOUT ROWID;"
    ))
    .expect("raw schema");
    conn
}

const RAW_SET: &str = "INSERT INTO kvs (namespace, key, value, expires_at) VALUES ('bench', ?1, ?2, NULL) \
     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";
const RAW_GET: &str = "SELECT value FROM kvs WHERE namespace = 'bench' AND key = ?1 \
     AND (expires_at IS NULL OR expires_at >= ?2)";

fn raw_sqlite_sets_sync(conn: &Connection, n: usize, tag: &str) -> f64 {
    let value = vec![0xAB_u8; VALUE_LEN];
    let start = Instant::now();
    for i in 0..n {
        conn.prepare_cached(RAW_SET)
            .expect("prepare")
            .execute(params![format!("{tag}{i:010}"), value])
            .expect("insert");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn raw_sqlite_sets_async(
    rt: &tokio::runtime::Runtime,
    conn: &Arc<Mutex<Connection>>,
    n: usize,
    tag: &str,
) -> f64 {
    let value = Arc::new(vec![0xAB_u8; VALUE_LEN]);
    let start = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            let (conn, value, key) = (
                Arc::clone(conn),
                Arc::clone(&value),
                format!("{tag}{i:010}"),
            );
            tokio::task::spawn_blocking(move || {
                conn.lock()
                    .prepare_cached(RAW_SET)
                    .expect("prepare")
                    .execute(params![key, *value])
                    .expect("insert");
            })
            .await
            .expect("task");
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

fn sqlite(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    for durable in [false, true] {
        let mode = if durable { "FULL" } else { "NORMAL" };
        let n = if durable {
            sizes.durable_ops
        } else {
            sizes.ops
        };
        let mut config = SqliteConfig::default();
        config.path = dir.join(format!("kvs-{mode}.db"));
        config.sync_writes = durable;
        let store: Arc<dyn Store> = Arc::new(
            rt.block_on(SqliteStore::open("bench", config))
                .expect("open"),
        );
        let raw = Arc::new(Mutex::new(raw_sqlite(
            &dir.join(format!("raw-{mode}.db")),
            durable,
        )));
        let kvs_rate = (0..sizes.rounds)
            .map(|r| kvs_sets(rt, &store, n, 1, &format!("s{r}-")))
            .fold(0.0, f64::max);
        let raw_async = (0..sizes.rounds)
            .map(|r| raw_sqlite_sets_async(rt, &raw, n, &format!("s{r}-")))
            .fold(0.0, f64::max);
        let raw_sync = (0..sizes.rounds)
            .map(|r| raw_sqlite_sets_sync(&raw.lock(), n, &format!("t{r}-")))
            .fold(0.0, f64::max);
        let workload = format!("sqlite set ({mode})");
        rows.push(Row::new(
            &workload,
            kvs_rate,
            "rusqlite, spawn_blocking",
            raw_async,
            Some(0.9),
        ));
        rows.push(Row::new(
            &workload,
            kvs_rate,
            "rusqlite, blocking caller",
            raw_sync,
            None,
        ));
        if durable {
            let many = kvs_sets(rt, &store, n * 4, 64, "m-");
            rows.push(Row::new(
                "sqlite set (FULL), 64 tasks",
                many,
                "rusqlite FULL, one at a time",
                raw_sync,
                Some(5.0),
            ));
            // set_many of 1,000 keys (one transaction) against 1,000 single
            // durable sets through kvs.
            let value = vec![0xAB_u8; VALUE_LEN];
            let keys: Vec<String> = (0..1000).map(|i| format!("batch-{i:06}")).collect();
            let entries: Vec<(&str, &[u8])> = keys
                .iter()
                .map(|k| (k.as_str(), value.as_slice()))
                .collect();
            let batched = best_rate(sizes.rounds, 1000, |_| {
                rt.block_on(store.set_many(&entries, None))
                    .expect("set_many");
            });
            let single = kvs_sets(rt, &store, 1000, 1, "single-");
            rows.push(Row::new(
                "sqlite set_many 1000 (FULL)",
                batched,
                "kvs single sets (FULL)",
                single,
                Some(20.0),
            ));
        }
        rt.block_on(store.close()).expect("close");
    }

    // get hit, on the NORMAL databases filled above.
    let mut config = SqliteConfig::default();
    config.path = dir.join("kvs-NORMAL.db");
    let store: Arc<dyn Store> = Arc::new(
        rt.block_on(SqliteStore::open("bench", config))
            .expect("open"),
    );
    let keys: Vec<String> = (0..sizes.ops).map(|i| format!("s0-{i:010}")).collect();
    let raw = Arc::new(Mutex::new(raw_sqlite(&dir.join("raw-NORMAL.db"), false)));
    let kvs_get = best_rate(sizes.rounds, sizes.ops, |r| {
        black_box(kvs_gets(rt, &store, &keys, &shuffled(keys.len(), r as u64)));
    });
    let raw_async = best_rate(sizes.rounds, sizes.ops, |r| {
        rt.block_on(async {
            for i in shuffled(keys.len(), r as u64) {
                let (conn, key) = (Arc::clone(&raw), keys[i].clone());
                let value: Vec<u8> = tokio::task::spawn_blocking(move || {
                    conn.lock()
                        .prepare_cached(RAW_GET)
                        .expect("prepare")
                        .query_row(params![key, 0], |row| row.get(0))
                        .expect("get")
                })
                .await
                .expect("task");
                black_box(value);
            }
        })
    });
    let raw_sync = best_rate(sizes.rounds, sizes.ops, |r| {
        let conn = raw.lock();
        for i in shuffled(keys.len(), r as u64) {
            let value: Vec<u8> = conn
                .prepare_cached(RAW_GET)
                .expect("prepare")
                .query_row(params![keys[i], 0], |row| row.get(0))
                .expect("get");
            black_box(value);
        }
    });
    rows.push(Row::new(
        "sqlite get (hit)",
        kvs_get,
        "rusqlite, spawn_blocking",
        raw_async,
        Some(0.9),
    ));
    rows.push(Row::new(
        "sqlite get (hit)",
        kvs_get,
        "rusqlite, blocking caller",
        raw_sync,
        None,
    ));
    rt.block_on(store.close()).expect("close");

    // list/count of 100 among `list_keys` keys.
    let path = dir.join("kvs-list.db");
    {
        let mut conn = raw_sqlite(&path, false);
        let tx = conn.transaction().expect("tx");
        {
            let mut insert = tx.prepare(RAW_SET).expect("prepare");
            for i in 0..sizes.list_keys {
                insert
                    .execute(params![key(i), b"v".as_slice()])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let mut config = SqliteConfig::default();
    config.path = path.clone();
    let store: Arc<dyn Store> = Arc::new(
        rt.block_on(SqliteStore::open("bench", config))
            .expect("open"),
    );
    notes.push(list_count_latency(rt, &store, sizes, "sqlite"));
    rt.block_on(store.close()).expect("close");
}

// ---------------------------------------------------------------- LevelDB

/// rusty-leveldb on a thread of its own, called over a channel: what an
/// async application must do with a handle that is not `Send`.
struct RawLevelDbThread {
    requests: std::sync::mpsc::Sender<RawRequest>,
}

/// A key, a value to put (or `None` to get), and where to answer.
type RawRequest = (
    Vec<u8>,
    Option<Vec<u8>>,
    tokio::sync::oneshot::Sender<Option<bytes::Bytes>>,
);

impl RawLevelDbThread {
    fn start(path: std::path::PathBuf) -> RawLevelDbThread {
        let (requests, queue) = std::sync::mpsc::channel::<RawRequest>();
        std::thread::spawn(move || {
            let mut db = rusty_leveldb::DB::open(path, rusty_leveldb::Options::default())
                .expect("open raw leveldb");
            while let Ok((key, value, reply)) = queue.recv() {
                let answer = match value {
                    Some(value) => {
                        let mut batch = rusty_leveldb::WriteBatch::default();
                        batch.put(&key, &value);
                        db.write(batch, true).expect("write");
                        None
                    }
                    None => db.get(&key),
                };
                let _ = reply.send(answer);
            }
        });
        RawLevelDbThread { requests }
    }

    async fn call(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Option<bytes::Bytes> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.requests.send((key, value, reply)).expect("send");
        answer.await.expect("answer")
    }
}

fn leveldb(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    // Same settings: kvs without sync_writes flushes each write to the OS,
    // as rusty-leveldb's `write(batch, true)` does with its default Env.
    let mut config = LevelDbConfig::default();
    config.path = dir.join("kvs-ldb");
    let store: Arc<dyn Store> = Arc::new(
        rt.block_on(LevelDbStore::open("bench", config.clone()))
            .expect("open"),
    );
    let raw_thread = RawLevelDbThread::start(dir.join("raw-ldb-thread"));
    let value = vec![0xAB_u8; VALUE_LEN];
    let kvs_set = (0..sizes.rounds)
        .map(|r| kvs_sets(rt, &store, sizes.ops, 1, &format!("s{r}-")))
        .fold(0.0, f64::max);
    let raw_async = best_rate(sizes.rounds, sizes.ops, |r| {
        rt.block_on(async {
            for i in 0..sizes.ops {
                raw_thread
                    .call(format!("ds{r}-{i:010}").into_bytes(), Some(value.clone()))
                    .await;
            }
        })
    });
    let mut raw = rusty_leveldb::DB::open(dir.join("raw-ldb"), rusty_leveldb::Options::default())
        .expect("open raw");
    let raw_sync = best_rate(sizes.rounds, sizes.ops, |r| {
        for i in 0..sizes.ops {
            let mut batch = rusty_leveldb::WriteBatch::default();
            batch.put(format!("ds{r}-{i:010}").as_bytes(), &value);
            raw.write(batch, true).expect("write");
        }
    });
    rows.push(Row::new(
        "leveldb set (flushed)",
        kvs_set,
        "rusty-leveldb, own thread",
        raw_async,
        Some(0.9),
    ));
    rows.push(Row::new(
        "leveldb set (flushed)",
        kvs_set,
        "rusty-leveldb, blocking caller",
        raw_sync,
        None,
    ));

    let keys: Vec<String> = (0..sizes.ops).map(|i| format!("s0-{i:010}")).collect();
    let kvs_get = best_rate(sizes.rounds, sizes.ops, |r| {
        black_box(kvs_gets(rt, &store, &keys, &shuffled(keys.len(), r as u64)));
    });
    let raw_async = best_rate(sizes.rounds, sizes.ops, |r| {
        rt.block_on(async {
            for i in shuffled(keys.len(), r as u64) {
                black_box(
                    raw_thread
                        .call(format!("d{}", keys[i]).into_bytes(), None)
                        .await
                        .expect("hit"),
                );
            }
        })
    });
    let raw_sync = best_rate(sizes.rounds, sizes.ops, |r| {
        for i in shuffled(keys.len(), r as u64) {
            black_box(raw.get(format!("d{}", keys[i]).as_bytes()).expect("hit"));
        }
    });
    rows.push(Row::new(
        "leveldb get (hit)",
        kvs_get,
        "rusty-leveldb, own thread",
        raw_async,
        Some(0.9),
    ));
    rows.push(Row::new(
        "leveldb get (hit)",
        kvs_get,
        "rusty-leveldb, blocking caller",
        raw_sync,
        None,
    ));

    // Durable: kvs alone (rusty-leveldb cannot fsync by itself), 1 and 64 tasks.
    let mut durable = config.clone();
    durable.path = dir.join("kvs-ldb-durable");
    durable.sync_writes = true;
    let durable_store: Arc<dyn Store> = Arc::new(
        rt.block_on(LevelDbStore::open("bench", durable))
            .expect("open"),
    );
    let one = kvs_sets(rt, &durable_store, sizes.durable_ops, 1, "d1-");
    let many = kvs_sets(rt, &durable_store, sizes.durable_ops * 4, 64, "d64-");
    rows.push(Row::new(
        "leveldb set (fdatasync), 64 tasks",
        many,
        "kvs leveldb fdatasync, 1 task",
        one,
        Some(5.0),
    ));
    rt.block_on(durable_store.close()).expect("close");
    rt.block_on(store.close()).expect("close");

    // list/count of 100 among `list_keys`: fill the namespace's database
    // with the raw crate in kvs's record format, then open it with kvs.
    let ns_dir = config.path.join(kvs::raw::namespace_dir_name("list"));
    {
        let mut db =
            rusty_leveldb::DB::open(&ns_dir, rusty_leveldb::Options::default()).expect("open raw");
        let mut record = u64::MAX.to_be_bytes().to_vec();
        record.push(b'v');
        for chunk in (0..sizes.list_keys).collect::<Vec<_>>().chunks(10_000) {
            let mut batch = rusty_leveldb::WriteBatch::default();
            for &i in chunk {
                batch.put(format!("d{}", key(i)).as_bytes(), &record);
            }
            db.write(batch, false).expect("write");
        }
        db.close().expect("close");
    }
    let store: Arc<dyn Store> = Arc::new(
        rt.block_on(LevelDbStore::open("list", config))
            .expect("open"),
    );
    notes.push(list_count_latency(rt, &store, sizes, "leveldb"));
    rt.block_on(store.close()).expect("close");
}
