//! The Redis backend against the raw `redis` client sending the same
//! commands to the same server, in the same run, printed as ratios.
//!
//! `cargo bench -p kvs-store --all-features --bench redis` (`-- --quick`). The
//! bench starts a Redis server of its own on a free loopback port.

use common::{print_rows, Row};
use kvs::{RedisStore, Store};
use redis::AsyncCommands;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

const VALUE_LEN: usize = 100;

struct Server(u16);

impl Server {
    fn start(dir: &std::path::Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let ok = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "this bench needs redis-server (Debian package redis-server)"
        );
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server(port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.0.to_string(), "shutdown", "nosave"])
            .output();
    }
}

/// `redis-benchmark -c 50 -P 100 -t get -d 100` on the server at `port`:
/// GETs per second, or `None` (with a note) if it is not installed.
fn redis_benchmark_p100(port: u16, requests: usize) -> Option<f64> {
    let out = std::process::Command::new("redis-benchmark")
        // SET first, so that the GETs read a 100-byte value, as kvs's do.
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "50",
            "-P",
            "100",
            "-t",
            "set,get",
        ])
        .args([
            "-d",
            &VALUE_LEN.to_string(),
            "-n",
            &requests.to_string(),
            "-q",
        ])
        .output();
    let Ok(out) = out else {
        eprintln!("redis-benchmark is not installed: no -P 100 comparison");
        return None;
    };
    // `GET: 3123456.00 requests per second, p50=...`, among \r-separated progress.
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .split(['\r', '\n'])
        .map(str::trim)
        .find(|l| l.starts_with("GET: ") && l.contains("requests per second"))?
        .to_owned();
    let rate = line
        .strip_prefix("GET: ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok();
    if rate.is_none() {
        eprintln!("could not read redis-benchmark's output: {line:?}");
    }
    rate
}

/// Runs `ops` operations split over `tasks` tasks; returns ops/s.
fn run<F, Fut>(rt: &tokio::runtime::Runtime, ops: usize, tasks: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..tasks {
            let op = Arc::clone(&op);
            handles.push(tokio::spawn(async move {
                for i in (t..ops).step_by(tasks) {
                    op(i).await;
                }
            }));
        }
        for h in handles {
            h.await.expect("task");
        }
    });
    ops as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let ops = if quick { 5_000 } else { 50_000 };
    let list_keys = if quick { 20_000 } else { 100_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let url = format!("redis://127.0.0.1:{}/0", server.0);
    let config = kvs::Config::from_url(&url).expect("url").redis;
    let store: Arc<dyn Store> = Arc::new(
        rt.block_on(RedisStore::open("bench", config))
            .expect("open"),
    );
    let raw = rt
        .block_on(
            redis::Client::open(url.as_str())
                .expect("client")
                .get_connection_manager(),
        )
        .expect("raw connection");
    let value: Arc<Vec<u8>> = Arc::new(vec![0xAB; VALUE_LEN]);
    let mut rows = Vec::new();

    for tasks in [1, 64] {
        let (s, v) = (Arc::clone(&store), Arc::clone(&value));
        let kvs_set = run(&rt, ops, tasks, move |i| {
            let (s, v) = (Arc::clone(&s), Arc::clone(&v));
            async move {
                s.set(&format!("k{:08}", i % 10_000), &v, None)
                    .await
                    .expect("set")
            }
        });
        let (r, v) = (raw.clone(), Arc::clone(&value));
        let raw_set = run(&rt, ops, tasks, move |i| {
            let (mut r, v) = (r.clone(), Arc::clone(&v));
            async move {
                r.set::<_, _, ()>(format!("bench:k{:08}", i % 10_000), v.as_slice())
                    .await
                    .expect("set")
            }
        });
        rows.push(Row::new(
            format!("redis set, {tasks} task(s)"),
            kvs_set,
            "redis crate",
            raw_set,
            Some(0.9),
        ));
        let s = Arc::clone(&store);
        let kvs_get = run(&rt, ops, tasks, move |i| {
            let s = Arc::clone(&s);
            async move {
                s.get(&format!("k{:08}", i % 10_000)).await.expect("get");
            }
        });
        let r = raw.clone();
        let raw_get = run(&rt, ops, tasks, move |i| {
            let mut r = r.clone();
            async move {
                let v: Option<Vec<u8>> = r
                    .get(format!("bench:k{:08}", i % 10_000))
                    .await
                    .expect("get");
                assert!(v.is_some());
            }
        });
        rows.push(Row::new(
            format!("redis get, {tasks} task(s)"),
            kvs_get,
            "redis crate",
            raw_get,
            Some(0.9),
        ));
    }

    // Batches: 100 keys per call against 100 single calls (kvs both).
    let keys: Vec<String> = (0..100).map(|i| format!("k{i:08}")).collect();
    let batches = if quick { 200 } else { 1_000 };
    let start = Instant::now();
    rt.block_on(async {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        for _ in 0..batches {
            store.get_many(&refs).await.expect("get_many");
        }
    });
    let get_many = (batches * 100) as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..batches / 10 {
            for key in &keys {
                store.get(key).await.expect("get");
            }
        }
    });
    let singles = (batches / 10 * 100) as f64 / start.elapsed().as_secs_f64();
    rows.push(Row::new(
        "redis get_many x100",
        get_many,
        "kvs get x100",
        singles,
        Some(10.0),
    ));
    // Against `redis-benchmark -P 100` (50 clients, each pipelining 100
    // GETs): 50 tasks, each calling get_many with 100 keys, over one
    // multiplexed connection and over a pool of 4.
    let pipelined = redis_benchmark_p100(server.0, if quick { 200_000 } else { 2_000_000 });
    for pool_size in [1, 4] {
        let mut config = kvs::Config::from_url(&url).expect("url").redis;
        config.pool_size = pool_size;
        let pooled: Arc<dyn Store> = Arc::new(
            rt.block_on(RedisStore::open("bench", config))
                .expect("open"),
        );
        let keys = Arc::new(keys.clone());
        let calls = if quick { 2_000 } else { 20_000 };
        let per_call = run(&rt, calls, 50, move |_| {
            let (s, keys) = (Arc::clone(&pooled), Arc::clone(&keys));
            async move {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                s.get_many(&refs).await.expect("get_many");
            }
        });
        if let Some(pipelined) = pipelined {
            rows.push(Row::new(
                format!("redis get_many x100, 50 tasks, pool_size {pool_size}"),
                per_call * 100.0,
                "redis-benchmark -c 50 -P 100 GET",
                pipelined,
                Some(0.9),
            ));
        }
    }

    let entries: Vec<(&str, &[u8])> = keys
        .iter()
        .map(|k| (k.as_str(), value.as_slice()))
        .collect();
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..batches {
            store.set_many(&entries, None).await.expect("set_many");
        }
    });
    let set_many = (batches * 100) as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..batches / 10 {
            for (key, value) in &entries {
                store.set(key, value, None).await.expect("set");
            }
        }
    });
    let set_singles = (batches / 10 * 100) as f64 / start.elapsed().as_secs_f64();
    rows.push(Row::new(
        "redis set_many x100",
        set_many,
        "kvs set x100",
        set_singles,
        Some(10.0),
    ));

    // list of 1,000 matches among `list_keys` keys: kvs against SCAN + sort by hand.
    rt.block_on(async {
        let all: Vec<String> = (0..list_keys).map(|i| format!("l{i:07}")).collect();
        for chunk in all.chunks(1_000) {
            let entries: Vec<(&str, &[u8])> =
                chunk.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
            store.set_many(&entries, None).await.expect("fill");
        }
    });
    let lists = if quick { 5 } else { 20 };
    let start = Instant::now();
    rt.block_on(async {
        for j in 0..lists {
            assert_eq!(
                store.list(&format!("l{:04}", j)).await.expect("list").len(),
                1_000
            );
        }
    });
    let kvs_list = lists as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    rt.block_on(async {
        let mut r = raw.clone();
        for j in 0..lists {
            let pattern = format!("bench:l{:04}*", j);
            let mut cursor = 0u64;
            let mut found: Vec<String> = Vec::new();
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut r)
                    .await
                    .expect("scan");
                found.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            found.sort_unstable();
            found.dedup();
            assert_eq!(found.len(), 1_000);
        }
    });
    let raw_list = lists as f64 / start.elapsed().as_secs_f64();
    rows.push(Row::new(
        format!("redis list 1000 of {list_keys}"),
        kvs_list,
        "redis crate SCAN",
        raw_list,
        Some(0.9),
    ));
    rt.block_on(store.close()).expect("close");
    drop(server);
    println!();
    println!(
        "kvs Redis backend vs the redis crate ({VALUE_LEN}-byte values, same server, same run)"
    );
    println!();
    print_rows(&rows);
}
