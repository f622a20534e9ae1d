//! A Redis server that dies and comes back: operations in between fail
//! with `Error::Backend` within the timeout (no hang, no panic), and the
//! same store works again after the restart without being reopened. The
//! test runs a server of its own on a free loopback port.

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

#[tokio::test]
async fn the_store_survives_a_server_restart() {
    if !redis_available() {
        assert!(
            !kvs::testkit::env::require_all(),
            "redis-server is missing; scripts/test installs it"
        );
        eprintln!("!!!!! SKIPPED: Redis restart test — redis-server is not installed !!!!!");
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
        Err(Error::Backend { .. }) => {}
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
