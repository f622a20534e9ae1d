//! PostgreSQL servers of the tests' own:
//!
//! - one that crashes and comes back, or stops answering: calls in
//!   between fail with `Error::Backend` within the command timeout (no
//!   hang, no panic), the same store works again afterwards without being
//!   reopened, and no acknowledged write is lost to the crash;
//! - one that accepts only TLS: kvs connects with `sslmode=verify-full`
//!   and the test's CA, and refuses a server it cannot verify.
//!
//! Each test runs a server of its own (`initdb` in a temporary directory,
//! a free loopback port) from the binaries `KVS_TEST_POSTGRES_BIN` names,
//! so it can crash, freeze and reconfigure that server without touching
//! anyone else's.

use kvs::{Config, Error, Store};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A PostgreSQL server of this test's own.
struct Server {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Runs a PostgreSQL program: as `postgres` when this is root, since the
/// server refuses to run as root.
fn pg(bin: &Path, program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn run(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    /// A new server, started; `None` (with a loud line, or a failure in
    /// CI) when the PostgreSQL binaries are not known.
    fn start(test: &str) -> Option<Server> {
        Server::start_with(test, |_| {})
    }

    /// Like [`Server::start`], with `setup` run on the data directory
    /// between `initdb` and the first start.
    fn start_with(test: &str, setup: impl FnOnce(&Path)) -> Option<Server> {
        let bin = match std::env::var("KVS_TEST_POSTGRES_BIN") {
            Ok(bin) if Path::new(&bin).join("initdb").exists() => PathBuf::from(bin),
            _ => {
                assert!(
                    !kvs::testkit::env::require_all(),
                    "KVS_TEST_POSTGRES_BIN does not name PostgreSQL's binaries; scripts/test sets it"
                );
                eprintln!(
                    "!!!!! SKIPPED: PostgreSQL {test} test — KVS_TEST_POSTGRES_BIN is not set \
                     (scripts/test sets it) !!!!!"
                );
                return None;
            }
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let _ = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .output();
        let data = dir.path().join("data");
        let mut initdb = pg(&bin, "initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "kvs", "-A", "trust", "--no-sync"]);
        run(initdb, "initdb");
        setup(&data);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let server = Server {
            bin,
            data,
            port,
            _dir: dir,
        };
        server.up();
        Some(server)
    }

    fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.data.display()
        );
        let mut start = pg(&self.bin, "pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        run(start, "pg_ctl start");
    }

    /// Stops the server the way a crash does: no shutdown checkpoint, so
    /// the next start runs crash recovery from the WAL.
    fn crash(&self) {
        let mut stop = pg(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "immediate", "stop"]);
        run(stop, "pg_ctl stop -m immediate");
    }

    /// Sends `signal` to the postmaster and every process it started.
    fn signal(&self, signal: &str) {
        let pid =
            std::fs::read_to_string(self.data.join("postmaster.pid")).expect("postmaster.pid");
        let pid = pid.lines().next().expect("a pid").trim().to_owned();
        let _ = Command::new("pkill")
            .args([&format!("-{signal}"), "-P", &pid])
            .status();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
    }

    fn url(&self) -> String {
        format!(
            "postgres://kvs@127.0.0.1:{}/postgres?namespace=restart&command_timeout=2s&connect_timeout=2s",
            self.port
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal("CONT");
        let mut stop = pg(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "immediate", "stop"]);
        let _ = stop.output();
    }
}

async fn open(server: &Server) -> Arc<dyn Store> {
    let config = Config::from_url(&server.url()).expect("config");
    kvs::open(&config).await.expect("open")
}

/// Calls `set` until one succeeds, within `limit`.
async fn until_it_works(store: &dyn Store, limit: Duration) -> Duration {
    let began = Instant::now();
    loop {
        match store.set("probe", b"1", None).await {
            Ok(()) => return began.elapsed(),
            Err(e) => {
                assert!(
                    matches!(e, Error::Backend { .. }),
                    "not a backend error: {e}"
                );
                assert!(
                    began.elapsed() < limit,
                    "still failing after {limit:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_is_recovered_without_reopening_and_keeps_every_acknowledged_write() {
    let Some(server) = Server::start("restart") else {
        return;
    };
    let store = open(&server).await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (store, acked, failures, stop) = (
            Arc::clone(&store),
            Arc::clone(&acked),
            Arc::clone(&failures),
            Arc::clone(&stop),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let key = format!("w{writer}-{i:06}");
                let began = Instant::now();
                match store.set(&key, key.as_bytes(), None).await {
                    Ok(()) => acked.lock().expect("acks").push(key),
                    Err(e) => {
                        // Within the 2 s command timeout, with a margin.
                        assert!(
                            began.elapsed() < Duration::from_secs(10),
                            "a call hung: {e}"
                        );
                        failures.lock().expect("failures").push(e.to_string());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                i += 1;
            }
        }));
    }
    let wait_for = |n: usize| {
        let acked = Arc::clone(&acked);
        async move {
            let began = Instant::now();
            while acked.lock().expect("acks").len() < n {
                assert!(began.elapsed() < Duration::from_secs(60), "writes stalled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(200).await;
    server.crash();
    // While it is down, calls fail (they do not hang) ...
    let down = store.get("w0-000000").await;
    assert!(
        matches!(down, Err(Error::Backend { .. })),
        "a call to a stopped server: {down:?}"
    );
    let before = acked.lock().expect("acks").len();
    server.up();
    // ... and once it is back, the same store works again.
    let took = until_it_works(&*store, Duration::from_secs(30)).await;
    wait_for(before + 200).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    for writer in writers {
        writer.await.expect("a writer panicked");
    }
    let acked = acked.lock().expect("acks").clone();
    let failures = failures.lock().expect("failures").clone();
    assert!(!failures.is_empty(), "the crash failed no call");
    let refs: Vec<&str> = acked.iter().map(String::as_str).collect();
    let mut lost = Vec::new();
    for chunk in refs.chunks(500) {
        let values = store.get_many(chunk).await.expect("get_many");
        for (key, value) in chunk.iter().zip(values) {
            if value.as_deref() != Some(key.as_bytes()) {
                lost.push(*key);
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost to the crash, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    eprintln!(
        "postgres crash: {} acknowledged writes kept, {} calls failed while it was down, \
         working again {took:?} after the restart; e.g. {:?}",
        acked.len(),
        failures.len(),
        failures.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_times_out_and_is_used_again_when_it_answers() {
    let Some(server) = Server::start("frozen server") else {
        return;
    };
    let store = open(&server).await;
    store.set("k", b"v", None).await.expect("set");
    server.signal("STOP");
    let began = Instant::now();
    let frozen = store.get("k").await;
    let took = began.elapsed();
    server.signal("CONT");
    match frozen {
        Err(e @ Error::Backend { .. }) => {
            assert!(e.is_temporary(), "a timeout is worth retrying: {e}");
            assert!(e.to_string().contains("timeout"), "{e}");
        }
        other => panic!("a call to a frozen server: {other:?}"),
    }
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "the 2 s command timeout took {took:?}"
    );
    until_it_works(&*store, Duration::from_secs(30)).await;
    assert_eq!(&store.get("k").await.expect("get")[..], b"v");
}

/// Runs openssl in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let mut command = Command::new("openssl");
    command.current_dir(dir).args(args);
    run(command, &format!("openssl {}", args[0]));
}

/// A CA (`ca.pem`) in `dir`, and a server certificate it signed for
/// `localhost` and 127.0.0.1 in the data directory, with `ssl = on` and a
/// pg_hba.conf that refuses TCP without TLS.
fn tls_server(data: &Path, dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=kvs test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    for file in ["server.crt", "server.key"] {
        std::fs::copy(dir.join(file), data.join(file)).expect("copy into the data directory");
        let _ = Command::new("chown")
            .arg("postgres")
            .arg(data.join(file))
            .output();
        let _ = Command::new("chmod")
            .arg("600")
            .arg(data.join(file))
            .output();
    }
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .expect("postgresql.conf");
    use std::io::Write as _;
    writeln!(
        conf,
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'"
    )
    .expect("ssl settings");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .expect("pg_hba.conf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_when_the_url_asks_for_it() {
    let certs = tempfile::tempdir().expect("temp dir");
    let Some(server) = Server::start_with("TLS", |data| tls_server(data, certs.path())) else {
        return;
    };
    let ca = certs.path().join("ca.pem").display().to_string();
    let url = |host: &str, query: &str| {
        format!(
            "postgres://kvs@{host}:{}/postgres?namespace=tls&connect_timeout=5s&{query}",
            server.port
        )
    };
    let open = |url: String| async move {
        let config = Config::from_url(&url).expect("config");
        kvs::open(&config).await
    };

    // Verified against the test's CA, by IP address and by name.
    for host in ["127.0.0.1", "localhost"] {
        let query = format!("sslmode=verify-full&sslrootcert={ca}&hostaddr=127.0.0.1");
        let store = open(url(host, &query))
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        store.set("k", b"v", None).await.expect("set over TLS");
        assert_eq!(&store.get("k").await.expect("get")[..], b"v");
        store.close().await.expect("close");
    }
    // `require` verifies too.
    let store = open(url(
        "127.0.0.1",
        &format!("sslmode=require&sslrootcert={ca}"),
    ))
    .await
    .expect("require with the CA");
    store.close().await.expect("close");

    // The server refuses plain TCP: without sslmode kvs does not encrypt.
    let plain = open(url("127.0.0.1", "sslmode=disable"))
        .await
        .err()
        .expect("plain TCP is refused");
    assert!(
        plain.to_string().contains("no encryption") || plain.to_string().contains("pg_hba"),
        "{plain}"
    );
    // A certificate no known root signed, and a name it was not issued for.
    let unknown = open(url("127.0.0.1", "sslmode=require"))
        .await
        .err()
        .expect("an unknown CA");
    let wrong_name = open(url(
        "wrong.example",
        &format!("sslmode=verify-full&sslrootcert={ca}&hostaddr=127.0.0.1"),
    ))
    .await
    .err()
    .expect("a wrong host name");
    for (e, needle) in [(&unknown, "certificate"), (&wrong_name, "certificate")] {
        let text = e.to_string();
        assert!(text.contains(needle) && !text.contains('\n'), "{text}");
    }
    eprintln!("postgres TLS: verified by IP and name; refused: {plain} | {unknown} | {wrong_name}");
}
