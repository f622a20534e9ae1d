//! A Redis server that dies and comes back, or stops answering: operations
//! in between fail with `Error::Backend` within the timeout (no hang, no
//! panic), and the same store works again afterwards without being
//! reopened. Each test runs a server of its own on a free loopback port, so
//! it can stop that server and count its connections.

use kvs::{Config, Error, RedisStore, Store};
use std::process::Command;
use std::time::{Duration, Instant};

fn redis_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(port: u16, dir: &std::path::Path) {
    let status = Command::new("redis-server")
        .arg("--pidfile")
        .arg(dir.join("redis.pid"))
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
        .expect("start redis-server");
    assert!(status.success());
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not start on port {port}");
}

fn stop(port: u16) {
    let _ = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "shutdown", "nosave"])
        .output();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the test can run; a loud line (or, in CI, a failure) if not.
fn can_run(test: &str) -> bool {
    if redis_available() {
        return true;
    }
    assert!(
        !kvs::testkit::env::require_all(),
        "redis-server is missing; scripts/test installs it"
    );
    eprintln!("!!!!! SKIPPED: Redis {test} test — redis-server is not installed !!!!!");
    false
}

/// Sends `signal` (`STOP` or `CONT`) to the server started in `dir`.
fn signal(dir: &std::path::Path, signal: &str) {
    let pid = std::fs::read_to_string(dir.join("redis.pid")).expect("redis pid file");
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.trim())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The number of client connections the server at `port` has, besides the
/// `redis-cli` that asks.
fn clients(port: u16) -> usize {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "CLIENT", "LIST"])
        .output()
        .expect("redis-cli CLIENT LIST");
    String::from_utf8_lossy(&out.stdout).lines().count() - 1
}

#[tokio::test]
async fn the_store_survives_a_server_restart() {
    if !can_run("restart") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    start(port, dir.path());
    let config = Config::from_url(&format!("redis://127.0.0.1:{port}/0")).expect("url");
    let store = RedisStore::open("restart", config.redis)
        .await
        .expect("open");
    store.set("before", b"1", None).await.expect("set");

    stop(port);
    let started = Instant::now();
    match store.get("before").await {
        Err(e @ Error::Backend { .. }) => {
            assert!(e.is_temporary(), "a server that is down is temporary: {e}");
        }
        other => panic!("with the server down, expected Error::Backend, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a dead server must not hang a call: {:?}",
        started.elapsed()
    );
    assert!(matches!(
        store.set("during", b"x", None).await,
        Err(Error::Backend { .. })
    ));

    start(port, dir.path());
    // The connection manager reconnects in the background; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.set("after", b"2", None).await {
            Ok(()) => break,
            Err(Error::Backend { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the store did not recover after the restart: {e}"),
        }
    }
    assert_eq!(&store.get("after").await.expect("get")[..], b"2");
    // The server started empty (nothing is saved), as a restarted cache would.
    assert!(matches!(store.get("before").await, Err(Error::NotFound)));
    store.close().await.expect("close");
    stop(port);
}

#[tokio::test]
async fn a_server_that_stops_answering_gives_an_error_after_the_command_timeout() {
    if !can_run("hung server") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    start(port, dir.path());
    let url = format!("redis://127.0.0.1:{port}/0?command_timeout=300ms");
    let config = Config::from_url(&url).expect("url");
    assert_eq!(config.redis.command_timeout, Duration::from_millis(300));
    let store = RedisStore::open("hung", config.redis).await.expect("open");
    store.set("k", b"1", None).await.expect("set");

    // The process is alive and its socket open, but nothing answers.
    signal(dir.path(), "STOP");
    let started = Instant::now();
    let result = store.get("k").await;
    let waited = started.elapsed();
    signal(dir.path(), "CONT");
    assert!(
        matches!(&result, Err(e @ Error::Backend { .. }) if e.is_temporary()),
        "expected a temporary Error::Backend from a hung server, got {result:?}"
    );
    // 300 ms configured; generous room for a loaded machine, far below
    // the 5 s default.
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.get("k").await {
            Ok(v) => break assert_eq!(&v[..], b"1"),
            Err(Error::Backend { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the store did not recover once the server answered: {e}"),
        }
    }
    store.close().await.expect("close");
    stop(port);
}

#[tokio::test]
async fn pool_size_opens_that_many_connections_and_uses_them_all() {
    if !can_run("pool size") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    start(port, dir.path());
    let url = format!("redis://127.0.0.1:{port}/0?pool_size=3");
    let config = Config::from_url(&url).expect("url");
    let store = std::sync::Arc::new(RedisStore::open("pool", config.redis).await.expect("open"));
    assert_eq!(clients(port), 3);

    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let key = format!("t{t}-{i}");
                    store.set(&key, key.as_bytes(), None).await.expect("set");
                    assert_eq!(&store.get(&key).await.expect("get")[..], key.as_bytes());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(store.count("").await.expect("count"), 32 * 50);
    // Every connection carried commands: each has run more than the
    // handshake (`cmd=` of CLIENT LIST names the last command).
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "CLIENT", "LIST"])
        .output()
        .expect("redis-cli CLIENT LIST");
    let list = String::from_utf8_lossy(&out.stdout);
    let used = list
        .lines()
        .filter(|l| l.contains("cmd=set") || l.contains("cmd=get") || l.contains("cmd=scan"))
        .count();
    assert_eq!(used, 3, "{list}");
    store.close().await.expect("close");
    stop(port);
}

/// `is_temporary` tells a failure worth retrying (nobody listens yet, the
/// server stopped answering) from one that will only fail again (a value
/// that is not a counter).
#[tokio::test]
async fn temporary_failures_say_so_and_bad_requests_do_not() {
    if !can_run("temporary errors") {
        return;
    }
    let port = free_port();
    let mut config = Config::from_url(&format!("redis://127.0.0.1:{port}/0?connect_timeout=500ms"))
        .expect("url");
    config.namespace = "temporary".into();
    match kvs::open(&config).await {
        Err(e) => assert!(e.is_temporary(), "a refused connection: {e}"),
        Ok(_) => panic!("nothing listens on port {port}, yet the store opened"),
    }

    let dir = tempfile::tempdir().expect("temp dir");
    start(port, dir.path());
    let store = kvs::open(&config).await.expect("open");
    store.set("text", b"abc", None).await.expect("set");
    let err = store.increment("text", 1).await.unwrap_err();
    assert!(!err.is_temporary(), "a value that is no counter: {err}");
    stop(port);
}

/// `connect_timeout` bounds the whole wait for a connection, however many
/// attempts the client makes inside it (it was the bound of each of three
/// attempts). The "server" here accepts connections (the kernel does, into
/// the listen backlog) and never answers.
#[tokio::test]
async fn connect_timeout_bounds_the_whole_wait() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let config =
        Config::from_url(&format!("redis://127.0.0.1:{port}/0?connect_timeout=1s")).expect("url");
    let started = Instant::now();
    let err = kvs::open(&config).await.err().expect("nothing answers");
    let waited = started.elapsed();
    assert!(err.is_temporary(), "{err}");
    assert!(err.to_string().contains("connect_timeout (1s)"), "{err}");
    // One timeout and a generous margin; three attempts took 3 s or more.
    assert!(waited < Duration::from_millis(2500), "waited {waited:?}");
    drop(silent);
}

/// A `rediss://` URL to a server that does not speak TLS says so, instead
/// of only "timed out".
#[tokio::test]
async fn tls_to_a_plain_server_says_the_handshake_failed() {
    if !can_run("TLS mismatch") {
        return;
    }
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    start(port, dir.path());
    let config =
        Config::from_url(&format!("rediss://127.0.0.1:{port}/0?connect_timeout=1s")).expect("url");
    let err = kvs::open(&config)
        .await
        .err()
        .expect("no TLS on a plain server");
    stop(port);
    let text = err.to_string();
    assert!(text.contains("is the server serving TLS"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
}
