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
    start_with(port, dir, &[]);
}

/// Starts a server with `extra` settings after the defaults (a later
/// setting wins).
fn start_with(port: u16, dir: &std::path::Path, extra: &[&str]) {
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
        .args(extra)
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

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to the server started in `dir`.
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

/// With the ordered index, a server killed with SIGKILL in the middle of
/// writes comes back (from its append-only file) with an index that holds
/// exactly its keys: each write changed the key and the index in one
/// script, which the file records whole or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_survives_a_server_killed_mid_write() {
    if !can_run("indexed restart") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let durable = ["--appendonly", "yes", "--appendfsync", "always"];
    start_with(port, dir.path(), &durable);
    let url = format!("redis://127.0.0.1:{port}/0?namespace=idx&index=true&command_timeout=2s");
    let store = kvs::open(&Config::from_url(&url).expect("url"))
        .await
        .expect("open");
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = std::sync::Arc::clone(&store);
            let running = std::sync::Arc::clone(&running);
            tokio::spawn(async move {
                let mut i = 0u64;
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("w{w}:{:03}", i % 500);
                    // Failures while the server is down are expected.
                    let _ = match i % 3 {
                        0 => store.set(&key, b"v", None).await,
                        1 => store.set(&key, b"t", Some(Duration::from_secs(600))).await,
                        _ => store.delete(&format!("w{w}:{:03}", (i * 7) % 500)).await,
                    };
                    i += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(dir.path(), "KILL");
    tokio::time::sleep(Duration::from_millis(200)).await;
    start_with(port, dir.path(), &durable);
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }

    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("idx:*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.sort();
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg("idx\\i")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("ZRANGE");
    let keys: Vec<String> = keys.iter().map(|k| k["idx:".len()..].to_owned()).collect();
    assert!(!keys.is_empty(), "some writes survived the kill");
    assert_eq!(members, keys, "the index holds exactly the keys");
    // And the store that lived through it lists them.
    assert_eq!(store.list("").await.expect("list"), keys);
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

/// `kvs::open` of the server at `port` with `layers` (YAML list).
async fn open_layered(port: u16, namespace: &str, layers: &str) -> std::sync::Arc<dyn Store> {
    let mut config = Config::from_url(&format!("redis://127.0.0.1:{port}/0")).expect("url");
    config.namespace = namespace.into();
    config.layers = Config::from_yaml(&format!("type: memory\nlayers: {layers}\n"))
        .expect("layers")
        .layers;
    kvs::open(&config).await.expect("open")
}

/// With `timeout` inside `retry`, a read rides out a server stopped with
/// SIGSTOP (each try gets its own deadline, then a pause) and answers once
/// the server is back; an `increment` is never repeated: it fails after one
/// deadline, and the server, once resumed, applies it exactly once.
#[tokio::test]
async fn retry_and_timeout_ride_out_a_stopped_server_and_never_repeat_an_increment() {
    if !can_run("retry across SIGSTOP") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    start(port, dir.path());
    let store = open_layered(
        port,
        "retry",
        "[{ timeout: 300ms }, { retry: { attempts: 40, initial: 100ms, max: 400ms } }]",
    )
    .await;
    store.set("k", b"1", None).await.expect("set");

    signal(dir.path(), "STOP");
    let resume = {
        let dir = dir.path().to_owned();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            signal(&dir, "CONT");
        })
    };
    let started = Instant::now();
    let read = store.get("k").await;
    let waited = started.elapsed();
    resume.join().expect("resume thread");
    assert_eq!(
        read.expect("the retried get answers once the server is back"),
        &b"1"[..]
    );
    // It could only have answered after the server resumed.
    assert!(
        waited >= Duration::from_millis(1400),
        "answered after {waited:?}"
    );

    signal(dir.path(), "STOP");
    let started = Instant::now();
    let increment = store.increment("n", 1).await;
    let waited = started.elapsed();
    signal(dir.path(), "CONT");
    assert!(
        matches!(&increment, Err(e) if e.is_temporary() && e.to_string().contains("did not answer within 300ms")),
        "{increment:?}"
    );
    // One deadline, no retries (generous room for a loaded machine).
    assert!(waited < Duration::from_secs(2), "increment took {waited:?}");
    // The request was sent before the deadline: the resumed server applies
    // it once, and nobody sent it again.
    assert_eq!(store.get("n").await.expect("get n"), &b"1"[..]);
    store.close().await.expect("close");
    stop(port);
}

/// A TCP proxy to `target` on a free port: `cut()` drops every open
/// connection and refuses new ones for `refuse`, as a failing load balancer
/// or a network blip does.
struct DroppingProxy {
    port: u16,
    cuts: tokio::sync::watch::Sender<u64>,
    refuse_until: std::sync::Arc<std::sync::Mutex<Instant>>,
}

impl DroppingProxy {
    async fn start(target: u16) -> DroppingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (cuts, watch) = tokio::sync::watch::channel(0u64);
        let refuse_until = std::sync::Arc::new(std::sync::Mutex::new(Instant::now()));
        let refusing = refuse_until.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if Instant::now() < *refusing.lock().expect("lock") {
                    drop(client);
                    continue;
                }
                let mut watch = watch.clone();
                watch.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.changed() => {}
                    }
                });
            }
        });
        DroppingProxy {
            port,
            cuts,
            refuse_until,
        }
    }

    fn cut(&self, refuse: Duration) {
        *self.refuse_until.lock().expect("lock") = Instant::now() + refuse;
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// Through a proxy that drops every connection and refuses new ones for a
/// moment, the bare store fails a call, and the same store behind the
/// retry layer answers every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_hides_dropped_connections_that_the_bare_store_reports() {
    if !can_run("dropping proxy") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    start(port, dir.path());
    let proxy = DroppingProxy::start(port).await;
    let bare = open_layered(proxy.port, "proxy", "[]").await;
    let retried = open_layered(
        proxy.port,
        "proxy",
        "[{ retry: { attempts: 10, initial: 100ms, max: 500ms } }]",
    )
    .await;
    retried.set("k", b"v", None).await.expect("set");

    let mut bare_errors = 0;
    for round in 0..3 {
        proxy.cut(Duration::from_millis(400));
        for _ in 0..5 {
            match bare.get("k").await {
                Ok(_) => {}
                Err(e) => {
                    assert!(e.is_temporary(), "a dropped connection is temporary: {e}");
                    bare_errors += 1;
                }
            }
        }
        proxy.cut(Duration::from_millis(400));
        for i in 0..5 {
            let got = retried.get("k").await;
            assert_eq!(
                got.unwrap_or_else(|e| panic!("round {round}, get {i}: {e}")),
                &b"v"[..]
            );
            retried
                .set("k", b"v", None)
                .await
                .unwrap_or_else(|e| panic!("round {round}, set {i}: {e}"));
        }
    }
    assert!(
        bare_errors > 0,
        "the proxy's cuts never reached the bare store"
    );
    retried.close().await.expect("close");
    bare.close().await.expect("close");
    stop(port);
}

// ---- tiered stores kept coherent by the invalidation bus --------------

fn tiered_layers(port: u16) -> String {
    format!(
        "[{{ tiered: {{ max_entries: 1000, ttl: 60s, bus: \"redis://127.0.0.1:{port}/0\" }} }}]"
    )
}

fn micros_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros()
}

/// Not a test of its own: the reading process of the tiered tests, active
/// only with `KVS_TIERED_PORT` set. It reads `k` every millisecond through
/// its own tiered store and prints each new value with the time it saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_reader_child() {
    let Ok(port) = std::env::var("KVS_TIERED_PORT") else {
        return;
    };
    let port: u16 = port.parse().expect("port");
    let namespace = std::env::var("KVS_TIERED_NAMESPACE").expect("namespace");
    let store = open_layered(port, &namespace, &tiered_layers(port)).await;
    let mut last = Vec::new();
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        // Errors (the server restarting) are expected: keep reading.
        if let Ok(value) = store.get("k").await {
            if value[..] != last[..] {
                // A line of its own: the harness's "test … " has no newline.
                println!(
                    "\nSEEN {} {}",
                    String::from_utf8_lossy(&value),
                    micros_now()
                );
                last = value.to_vec();
                if &value[..] == b"stop" {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The parent's view of the reader: its lines, as they come.
struct Reader {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Reader {
    fn start(port: u16, namespace: &str) -> Reader {
        use std::io::BufRead;
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "tiered_reader_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KVS_TIERED_PORT", port.to_string())
            .env("KVS_TIERED_NAMESPACE", namespace)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the reader");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Reader { child, lines }
    }

    /// The time (µs since the epoch) the reader first saw `value`.
    fn seen(&self, value: &str) -> u128 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(rest) = line.trim_start().strip_prefix(&format!("SEEN {value} ")) {
                return rest.trim().parse().expect("micros");
            }
        }
        panic!("the reader never saw {value:?}");
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `rounds` new values of `k`, each once the reader holds the one
/// before in its local tier (it read it, and keeps it for 60 s), and
/// returns the slowest time from a write to the reader seeing it.
async fn slowest_invalidation(
    store: &dyn Store,
    reader: &Reader,
    tag: &str,
    rounds: usize,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        let value = format!("{tag}-{round}");
        let written = micros_now();
        store.set("k", value.as_bytes(), None).await.expect("set");
        let seen = reader.seen(&value);
        slowest = slowest.max(Duration::from_micros(seen.saturating_sub(written) as u64));
        // Let the reader read it a few times: it is in its L1 now.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slowest
}

/// Two processes with tiered stores over one Redis: a `set` in one reaches
/// the other's next read within 100 ms — although the other holds the old
/// value in its local tier for 60 s — and again after Redis restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_stores_in_two_processes_stay_coherent_across_a_restart() {
    if !can_run("tiered bus") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    start(port, dir.path());
    let namespace = "tiered-coherence";
    let store = open_layered(port, namespace, &tiered_layers(port)).await;
    store.set("k", b"start", None).await.expect("set");
    let reader = Reader::start(port, namespace);
    reader.seen("start");
    // Let both buses subscribe.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = slowest_invalidation(&*store, &reader, "before", 20).await;
    assert!(
        before <= Duration::from_millis(100),
        "slowest invalidation {before:?}"
    );

    stop(port);
    start(port, dir.path());
    // The server came back empty; the stores reconnect by themselves.
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.set("k", b"restarted", None).await.is_err() {
        assert!(Instant::now() < deadline, "the store did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reader.seen("restarted");
    // Long enough for both buses to resubscribe (their pauses end at 2 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = slowest_invalidation(&*store, &reader, "after", 20).await;
    assert!(
        after <= Duration::from_millis(100),
        "slowest invalidation after the restart {after:?}"
    );
    eprintln!("tiered invalidation: slowest {before:?} before the restart, {after:?} after");
    store.set("k", b"stop", None).await.expect("set");
    reader.seen("stop");
    stop(port);
}
