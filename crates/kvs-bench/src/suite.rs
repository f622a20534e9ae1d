//! The whole benchmark: which subjects run on which backend, in what
//! classes (which kvs settings each peer is compared with), and the run.

use crate::measure::{self, Measurement, Run};
use crate::report::{self, Comparison, Line, BUFFERED_LEVELDB};
use crate::subjects::kvs::Kvs;
use crate::subjects::{dynamodb, leveldb, memory, postgres, redis, sqlite};
use crate::workload::Workload;
use crate::{external, OpError, OpResult, Subject};
use indicatif::{ProgressBar, ProgressStyle};
use kvs::Store;
use kvs::{BackendKind, Config};
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Store URLs (`memory://`, `sqlite://PATH`, `leveldb://PATH`,
    /// `redis://HOST:PORT/DB`, `dynamodb://TABLE?endpoint=URL`); empty
    /// means the embedded backends, in a temporary directory.
    pub stores: Vec<String>,
    /// Keys in the main key space (rounded up to a multiple of 100).
    pub keys: usize,
    /// How long each workload runs per subject and task count.
    pub duration: Duration,
    /// How many times each measurement is taken, subjects taking turns;
    /// the best counts.
    pub rounds: usize,
    /// The task counts.
    pub tasks: Vec<usize>,
    /// The workloads.
    pub workloads: Vec<Workload>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Build and run the peers that cannot be built with kvs
    /// (`bench/peers`: OpenDAL's and keyv's SQLite, openkeyv's DynamoDB).
    pub external: bool,
    /// Where file backends put their files (default: a temporary directory).
    pub dir: Option<PathBuf>,
}

impl Options {
    /// The `--quick` run: 10,000 keys, one turn of 50 ms per measurement.
    pub fn quick() -> Options {
        Options {
            keys: 10_000,
            duration: Duration::from_millis(50),
            rounds: 1,
            ..Options::full()
        }
    }

    /// The full run: 100,000 keys, best of 3 turns of 1 s per measurement.
    pub fn full() -> Options {
        Options {
            stores: Vec::new(),
            keys: 100_000,
            duration: Duration::from_secs(1),
            rounds: 3,
            tasks: vec![1, 64],
            workloads: Workload::ALL.to_vec(),
            progress: false,
            external: true,
            dir: None,
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One line per subject, workload and task count.
    pub lines: Vec<Line>,
    /// kvs against each peer.
    pub comparisons: Vec<Comparison>,
}

/// The subjects that are raw clients (target 0.9×), not libraries (1.0×).
const RAW: [&str; 8] = [
    "dashmap",
    "moka",
    "rusqlite",
    "rusty-leveldb",
    "redis",
    "aws-sdk-dynamodb",
    "tokio-postgres",
    "one-at-a-time",
];

/// Runs the benchmark described by `options`.
pub async fn run(options: &Options) -> Result<Report, String> {
    let keys = options.keys.div_ceil(100).max(1) * 100;
    let temp = tempfile::Builder::new()
        .prefix("kvs-bench-")
        .tempdir_in(options.dir.clone().unwrap_or_else(std::env::temp_dir))
        .map_err(|e| format!("creating a directory for the benchmark files: {e}"))?;
    let stores = if options.stores.is_empty() {
        let dir = temp.path().display();
        vec![
            "memory://".to_owned(),
            format!("sqlite://{dir}/kvs.db"),
            format!("leveldb://{dir}/leveldb"),
        ]
    } else {
        options.stores.clone()
    };
    let mut configs = Vec::new();
    for url in &stores {
        let config = Config::from_url(url).map_err(|e| e.to_string())?;
        configs.push(config);
    }

    let rounds = options.rounds.max(1);
    let runs_per_subject = options.workloads.len() * options.tasks.len() * rounds;
    let writes = options
        .workloads
        .iter()
        .filter(|w| matches!(w, Workload::Set(_)))
        .count()
        * options.tasks.len()
        * rounds;
    let total: usize = configs
        .iter()
        .map(|c| match c.backend {
            BackendKind::Memory => 5 * runs_per_subject,
            BackendKind::Sqlite => {
                3 * runs_per_subject
                    + writes
                    + if options.external {
                        2 * runs_per_subject / rounds
                    } else {
                        0
                    }
            }
            BackendKind::LevelDb => 2 * runs_per_subject + 2 * writes,
            BackendKind::Redis if c.redis.index => 2 * runs_per_subject,
            BackendKind::Redis => 5 * runs_per_subject,
            BackendKind::DynamoDb => {
                2 * runs_per_subject
                    + if options.external {
                        runs_per_subject / rounds
                    } else {
                        0
                    }
            }
            BackendKind::Postgres => {
                2 * runs_per_subject
                    + if options.external {
                        3 * runs_per_subject / rounds
                    } else {
                        0
                    }
            }
            _ => runs_per_subject,
        })
        .sum();
    let bar = if options.progress {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );

    let mut bench = Bench {
        options,
        keys,
        bar,
        lines: Vec::new(),
        group: Vec::new(),
        stores: Vec::new(),
    };
    for config in configs {
        match config.backend {
            BackendKind::Memory => bench.memory().await?,
            BackendKind::Sqlite => bench.sqlite(config, temp.path()).await?,
            BackendKind::LevelDb => bench.leveldb(config).await?,
            BackendKind::Redis => bench.redis(config).await?,
            BackendKind::DynamoDb => bench.dynamodb(config).await?,
            BackendKind::Postgres => bench.postgres(config).await?,
            _ => bench.kvs_only(config).await?,
        }
    }
    bench.bar.finish_and_clear();
    let mut comparisons = report::compare(&bench.lines, |s| RAW.contains(&s));
    comparisons.extend(group_commit(
        &bench.lines,
        options.tasks.iter().copied().max().unwrap_or(1),
    ));
    comparisons.extend(report::index_gain(&bench.lines));
    Ok(Report {
        lines: bench.lines,
        comparisons,
    })
}

/// Durable writes from `many` tasks (64 by default) against one-at-a-time
/// durable commits: kvs itself at one task, where each write is one commit
/// and one fsync. Group commit must make the many ≥ 5× the one.
fn group_commit(lines: &[Line], many: usize) -> Vec<Comparison> {
    let mut out = Vec::new();
    if many < 2 {
        return out;
    }
    for class in ["sqlite-full", "leveldb-sync"] {
        let find = |tasks: usize| {
            lines.iter().find(|l| {
                l.class == class
                    && l.subject == "kvs"
                    && l.workload == "set_100B"
                    && l.tasks == tasks
            })
        };
        let (Some(kvs), Some(one)) = (find(many), find(1)) else {
            continue;
        };
        if let (Some(k), Some(o)) = (&kvs.measurement, &one.measurement) {
            out.push(Comparison {
                kind: "comparison".into(),
                backend: kvs.backend.clone(),
                workload: "set_100B".into(),
                tasks: many,
                peer: "one-at-a-time".into(),
                settings: format!(
                    "{}; peer: kvs at 1 task, one commit and fsync per write",
                    kvs.settings
                ),
                kvs_ops_per_sec: k.ops_per_sec,
                peer_ops_per_sec: Some(o.ops_per_sec),
                ratio: Some(k.ops_per_sec / o.ops_per_sec),
                target: 5.0,
                note: None,
            });
        }
    }
    out
}

/// A loaded subject behind a trait object, so that subjects of different
/// types can take turns on each workload.
trait Ready: Send + Sync {
    fn measure(&self, run: Run)
        -> Pin<Box<dyn Future<Output = OpResult<Measurement>> + Send + '_>>;
}

impl<S: Subject> Ready for Arc<S> {
    fn measure(
        &self,
        run: Run,
    ) -> Pin<Box<dyn Future<Output = OpResult<Measurement>> + Send + '_>> {
        Box::pin(measure::measure(self, run))
    }
}

/// One subject of a backend's group.
struct Entry {
    name: &'static str,
    class: &'static str,
    settings: String,
    /// Durable variants run only the `set` workloads.
    writes_only: bool,
    subject: Box<dyn Ready>,
}

struct Bench<'o> {
    options: &'o Options,
    keys: usize,
    bar: ProgressBar,
    lines: Vec<Line>,
    /// The backend's subjects, loaded, waiting for `race`.
    group: Vec<Entry>,
    /// kvs stores to clear and close once the group has run.
    stores: Vec<Arc<dyn Store>>,
}

impl Bench<'_> {
    /// Loads `subject` and adds it to the group.
    async fn add<S: Subject>(
        &mut self,
        name: &'static str,
        class: &'static str,
        settings: &str,
        subject: S,
        writes_only: bool,
    ) -> Result<(), String> {
        self.bar.set_message(format!("loading {name} ({class})"));
        measure::load(&subject, self.keys)
            .await
            .map_err(|e| format!("loading {name} ({class}): {e:?}"))?;
        self.group.push(Entry {
            name,
            class,
            settings: settings.to_owned(),
            writes_only,
            subject: Box::new(Arc::new(subject)),
        });
        Ok(())
    }

    /// Adds a kvs store opened from `config`.
    async fn add_kvs(
        &mut self,
        config: Config,
        class: &'static str,
        settings: &str,
        writes_only: bool,
    ) -> Result<(), String> {
        self.add_kvs_as("kvs", "kvs-bench-kvs", config, class, settings, writes_only)
            .await
    }

    /// Adds a kvs store opened from `config` in `namespace`, as the
    /// subject `name`.
    async fn add_kvs_as(
        &mut self,
        name: &'static str,
        namespace: &str,
        mut config: Config,
        class: &'static str,
        settings: &str,
        writes_only: bool,
    ) -> Result<(), String> {
        config.namespace = namespace.into();
        let store = kvs::open(&config)
            .await
            .map_err(|e| format!("opening {name} ({class}): {e}"))?;
        // A store left over from an interrupted run would hold other keys.
        store.clear().await.map_err(|e| e.to_string())?;
        self.stores.push(Arc::clone(&store));
        self.add(name, class, settings, Kvs(store), writes_only)
            .await
    }

    /// Runs every workload and task count on every subject of the group,
    /// the subjects taking turns (so that a slow moment of a noisy machine
    /// falls on all of them), `rounds` times, keeping each one's best.
    async fn race(&mut self, backend: &str) -> Result<(), String> {
        let group = std::mem::take(&mut self.group);
        for &workload in &self.options.workloads {
            for &tasks in &self.options.tasks {
                let run = Run {
                    workload,
                    tasks,
                    keys: self.keys,
                    duration: self.options.duration,
                };
                let mut best: Vec<Option<OpResult<Measurement>>> =
                    group.iter().map(|_| None).collect();
                for _ in 0..self.options.rounds.max(1) {
                    for (entry, best) in group.iter().zip(best.iter_mut()) {
                        if entry.writes_only && !matches!(workload, Workload::Set(_)) {
                            continue;
                        }
                        if matches!(best, Some(Err(_))) {
                            continue;
                        }
                        self.bar
                            .set_message(format!("{backend}: {} {workload} × {tasks}", entry.name));
                        let result = entry.subject.measure(run).await;
                        self.bar.inc(1);
                        match (result, &*best) {
                            (Err(OpError::Failed(e)), _) => {
                                return Err(format!(
                                    "{} ({backend}) {workload} × {tasks}: {e}",
                                    entry.name
                                ))
                            }
                            (Ok(m), Some(Ok(old))) if m.ops_per_sec <= old.ops_per_sec => {}
                            (result, _) => *best = Some(result),
                        }
                    }
                }
                for (entry, best) in group.iter().zip(best) {
                    let Some(result) = best else { continue };
                    let (measurement, unsupported) = match result {
                        Ok(m) => (Some(m), None),
                        Err(e) => (
                            None,
                            Some(match e {
                                OpError::Unsupported(why) => why.to_owned(),
                                OpError::Failed(e) => e,
                            }),
                        ),
                    };
                    self.lines.push(Line {
                        kind: "result".into(),
                        backend: backend.into(),
                        subject: entry.name.into(),
                        class: entry.class.into(),
                        settings: entry.settings.clone(),
                        workload: workload.name(),
                        tasks,
                        measurement,
                        unsupported,
                    });
                }
            }
        }
        drop(group);
        for store in std::mem::take(&mut self.stores) {
            store.clear().await.map_err(|e| e.to_string())?;
            store.close().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn memory(&mut self) -> Result<(), String> {
        let config = Config::from_url("memory://").map_err(|e| e.to_string())?;
        self.add_kvs(config, "memory", "in process", false).await?;
        self.add(
            "dashmap",
            "memory",
            "DashMap<String, Bytes>",
            memory::DashMapPeer::default(),
            false,
        )
        .await?;
        self.add(
            "moka",
            "memory",
            "moka::future::Cache, unbounded",
            memory::MokaPeer::default(),
            false,
        )
        .await?;
        let opendal = memory::opendal().map_err(|e| format!("{e:?}"))?;
        self.add("opendal", "memory", "services::Memory", opendal, false)
            .await?;
        let openkeyv = memory::openkeyv();
        self.add(
            "openkeyv",
            "memory",
            "store::memory::MemoryStore",
            openkeyv,
            false,
        )
        .await?;
        self.race("memory").await
    }

    async fn sqlite(&mut self, config: Config, temp: &Path) -> Result<(), String> {
        let dir = config
            .sqlite
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| temp.to_path_buf(), Path::to_path_buf);
        let normal = "WAL, synchronous=NORMAL";
        let full = "WAL, synchronous=FULL";
        let files = [
            "kvs-bench-full.db",
            "kvs-bench-rusqlite.db",
            "kvs-bench-rusqlite-full.db",
        ];

        let mut kvs_normal = config.clone();
        kvs_normal.sqlite.sync_writes = false;
        self.add_kvs(kvs_normal, "sqlite-normal", normal, false)
            .await?;
        // One file per durability: stores of one file share its settings.
        let mut kvs_full = config;
        kvs_full.sqlite.path = dir.join(files[0]);
        kvs_full.sqlite.sync_writes = true;
        self.add_kvs(kvs_full, "sqlite-full", full, false).await?;
        let raw =
            sqlite::Rusqlite::open(&dir.join(files[1]), false).map_err(|e| format!("{e:?}"))?;
        let settings = format!("{normal}; spawn_blocking, 4 readers + 1 writer");
        self.add("rusqlite", "sqlite-normal", &settings, raw, false)
            .await?;
        let raw =
            sqlite::Rusqlite::open(&dir.join(files[2]), true).map_err(|e| format!("{e:?}"))?;
        let settings = format!("{full}; spawn_blocking, 1 writer");
        self.add("rusqlite", "sqlite-full", &settings, raw, true)
            .await?;
        self.race("sqlite").await?;

        let args = ["--sqlite".into(), dir.clone().into_os_string()];
        self.external("sqlite", &args).await?;
        for name in files {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.join(format!("{name}{suffix}")));
            }
        }
        Ok(())
    }

    async fn leveldb(&mut self, config: Config) -> Result<(), String> {
        let dir = config.leveldb.path.clone();
        let raw_dirs = [
            dir.join("kvs-bench-rusty-leveldb"),
            dir.join("kvs-bench-rusty-leveldb-sync"),
            dir.join("kvs-bench-rusty-leveldb-buffered"),
        ];
        let mut lazy = config.clone();
        lazy.leveldb.sync_writes = false;
        self.add_kvs(lazy, "leveldb", "writes not synced", false)
            .await?;
        // Each namespace is a database of its own: the durable one apart.
        let mut durable = config;
        durable.leveldb.sync_writes = true;
        durable.leveldb.path = dir.join("kvs-bench-sync");
        self.add_kvs(durable, "leveldb-sync", "every write synced", true)
            .await?;
        use leveldb::{RustyLevelDb, Writes};
        let open = |dir: &std::path::Path, writes| {
            RustyLevelDb::open(dir, writes).map_err(|e| format!("{e:?}"))
        };
        self.add(
            "rusty-leveldb",
            "leveldb",
            "AsyncDB on kvs's Env, each write flushed to the OS, as kvs's",
            open(&raw_dirs[0], Writes::Flushed)?,
            false,
        )
        .await?;
        self.add(
            "rusty-leveldb",
            "leveldb-sync",
            "AsyncDB on kvs's Env, each write fdatasynced, as kvs's",
            open(&raw_dirs[1], Writes::Synced)?,
            true,
        )
        .await?;
        self.add(
            BUFFERED_LEVELDB,
            "leveldb",
            "AsyncDB defaults: writes wait in a user-space buffer, not flushed",
            open(&raw_dirs[2], Writes::Buffered)?,
            false,
        )
        .await?;
        self.race("leveldb").await?;
        for raw_dir in raw_dirs.iter().chain([&dir.join("kvs-bench-sync")]) {
            let _ = std::fs::remove_dir_all(raw_dir);
        }
        Ok(())
    }

    async fn redis(&mut self, config: Config) -> Result<(), String> {
        let url = redis_url(&config);
        let same = format!("same server ({})", config.redis.addr);
        redis::clean(&url).await.map_err(|e| format!("{e:?}"))?;
        if config.redis.index {
            return self.redis_index(config, &url, &same).await;
        }
        self.add_kvs(config.clone(), "redis", &same, false).await?;
        let raw = redis::RawRedis::connect(&url)
            .await
            .map_err(|e| format!("{e:?}"))?;
        self.add(
            "redis",
            "redis",
            &format!("{same}; ConnectionManager"),
            raw,
            false,
        )
        .await?;
        let opendal = redis::opendal(
            &format!("tcp://{}", config.redis.addr),
            i64::from(config.redis.db),
        )
        .map_err(|e| format!("{e:?}"))?;
        self.add(
            "opendal",
            "redis",
            &format!("{same}; services::Redis"),
            opendal,
            false,
        )
        .await?;
        let openkeyv = redis::openkeyv(&url).await.map_err(|e| format!("{e:?}"))?;
        self.add(
            "openkeyv",
            "redis",
            &format!("{same}; store::redis::RedisStore"),
            openkeyv,
            false,
        )
        .await?;
        let keyv = redis::keyv(&url).await.map_err(|e| format!("{e:?}"))?;
        self.add(
            "keyv",
            "redis",
            &format!("{same}; JSON string values"),
            keyv,
            false,
        )
        .await?;
        self.race("redis").await?;
        redis::clean(&url).await.map_err(|e| format!("{e:?}"))
    }

    /// With `index=true`: kvs with the ordered index against kvs without
    /// it, on the same server in the same run (the raw client and the
    /// peers list by `SCAN`, as kvs without the index does: the plain run
    /// has their lines).
    async fn redis_index(&mut self, config: Config, url: &str, same: &str) -> Result<(), String> {
        let settings = format!("{same}; ordered index against SCAN listing");
        self.add_kvs(config.clone(), "redis-index", &settings, false)
            .await?;
        let mut plain = config;
        plain.redis.index = false;
        self.add_kvs_as(
            report::KVS_WITHOUT_INDEX,
            "kvs-bench-scan",
            plain,
            "redis-index",
            &settings,
            false,
        )
        .await?;
        self.race("redis").await?;
        redis::clean(url).await.map_err(|e| format!("{e:?}"))
    }

    async fn dynamodb(&mut self, config: Config) -> Result<(), String> {
        let same = format!(
            "same endpoint ({}), table {}",
            if config.dynamodb.endpoint.is_empty() {
                "AWS"
            } else {
                &config.dynamodb.endpoint
            },
            config.dynamodb.table_name
        );
        self.add_kvs(config.clone(), "dynamodb", &same, false)
            .await?;
        let mut loader = config.clone();
        loader.namespace = dynamodb::RAW_NAMESPACE.into();
        let loader = kvs::open(&loader)
            .await
            .map_err(|e| format!("opening kvs on {}: {e}", dynamodb::RAW_NAMESPACE))?;
        loader.clear().await.map_err(|e| e.to_string())?;
        self.stores.push(Arc::clone(&loader));
        let raw = dynamodb::RawDynamoDb::connect(&config.dynamodb, loader).await;
        self.add(
            "aws-sdk-dynamodb",
            "dynamodb",
            &format!("{same}; one Client, consistent reads"),
            raw,
            false,
        )
        .await?;
        self.race("dynamodb").await?;

        let args = [
            "--dynamodb".into(),
            config.dynamodb.endpoint.clone().into(),
            "--region".into(),
            config.dynamodb.region.clone().into(),
        ];
        self.external("dynamodb", &args).await
    }

    async fn postgres(&mut self, config: Config) -> Result<(), String> {
        // The URL's Debug form hides a password, quoted: unquote it.
        let shown = format!("{:?}", kvs::raw::RedactedUrl(&config.postgres.url));
        let same = format!("same server ({})", shown.trim_matches('"'));
        let fail = |e: OpError| format!("{e:?}");
        self.add_kvs(
            config.clone(),
            "postgres",
            &format!("{same}; pool of 8"),
            false,
        )
        .await?;
        let raw = postgres::RawPostgres::connect(&config.postgres.url, &config.postgres.password)
            .await
            .map_err(fail)?;
        raw.reset().await.map_err(fail)?;
        let admin = raw.clone();
        self.add(
            "tokio-postgres",
            "postgres",
            &format!("{same}; deadpool-postgres pool of 8, prepared statements"),
            raw,
            false,
        )
        .await?;
        admin
            .vacuum(&[&config.postgres.table, postgres::TABLE])
            .await
            .map_err(fail)?;
        self.race("postgres").await?;
        admin.clean().await.map_err(fail)?;
        let args = ["--postgres".into(), config.postgres.url.clone().into()];
        self.external("postgres", &args).await
    }

    /// Runs `backend`'s peers in `bench/peers` (with `args` saying where),
    /// unless the options leave them out, and adds their lines.
    async fn external(&mut self, backend: &str, args: &[OsString]) -> Result<(), String> {
        if !self.options.external {
            return Ok(());
        }
        self.bar
            .set_message(format!("{backend}: building and running bench/peers"));
        let lines = external::peers(self.options, self.keys, args).await?;
        self.bar.inc(lines.len() as u64);
        self.lines.extend(lines);
        Ok(())
    }

    /// A backend without peers here: kvs's own figures only.
    async fn kvs_only(&mut self, config: Config) -> Result<(), String> {
        let backend = backend_name(config.backend);
        self.add_kvs(config, "as-configured", "as configured", false)
            .await?;
        self.race(backend).await
    }
}

fn backend_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Memory => "memory",
        BackendKind::Sqlite => "sqlite",
        BackendKind::LevelDb => "leveldb",
        BackendKind::Redis => "redis",
        BackendKind::Postgres => "postgres",
        _ => "dynamodb",
    }
}

/// The URL the peers connect with (kvs's own config holds the same). It
/// may hold the password: it is never printed.
fn redis_url(config: &Config) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let r = &config.redis;
    let scheme = if r.tls { "rediss" } else { "redis" };
    let user = utf8_percent_encode(&r.username, NON_ALPHANUMERIC);
    let password = utf8_percent_encode(&r.password, NON_ALPHANUMERIC);
    match (r.username.is_empty(), r.password.is_empty()) {
        (true, true) => format!("{scheme}://{}/{}", r.addr, r.db),
        (true, false) => format!("{scheme}://:{password}@{}/{}", r.addr, r.db),
        (false, _) => format!("{scheme}://{user}:{password}@{}/{}", r.addr, r.db),
    }
}
