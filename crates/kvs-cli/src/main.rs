//! `kvs`: the command line of the kvs key-value library.
//!
//! ```text
//! kvs set greeting hello --ttl 10m
//! kvs get greeting                 # prints the value, raw
//! kvs --store redis://127.0.0.1:6379/0 list user:
//! kvs bench --quick                # kvs against raw clients and other libraries
//! ```
//!
//! Exit codes: 0 success, 1 error, 2 bad usage, 3 key not found.

use clap::{Parser, Subcommand};
use kvs::{Config, Error, Store};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Get, set and list keys in any kvs store: memory, SQLite, LevelDB, Redis, DynamoDB.
///
/// Without --store or --config (or KVS_STORE), kvs uses a SQLite database
/// in the platform's data directory.
#[derive(Parser, Debug)]
#[command(name = "kvs", version, about, after_help = STORE_HELP)]
struct Cli {
    /// The store, as a URL (see below). Also read from KVS_STORE. `bench`
    /// takes it more than once, to compare several stores in one run.
    #[arg(
        long,
        global = true,
        env = "KVS_STORE",
        conflicts_with = "config",
        hide_env_values = true,
        action = clap::ArgAction::Append
    )]
    store: Vec<String>,

    /// A YAML or JSON configuration file (`type: sqlite`, ...).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The namespace, overriding the one in the URL or file.
    #[arg(long, short, global = true)]
    namespace: Option<String>,

    #[command(subcommand)]
    command: Command,
}

const STORE_HELP: &str = "\
Store URLs:
  memory://
  sqlite://PATH                      e.g. sqlite://./app.db, sqlite:///var/lib/app/kvs.db
  leveldb://PATH
  redis://[user:pass@]host:port/db   rediss:// for TLS
  dynamodb://TABLE?region=R&endpoint=URL
each with an optional ?namespace=NAME.

Exit codes: 0 success, 1 error, 2 bad usage, 3 key not found.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the value of KEY to stdout, as raw bytes.
    Get { key: String },
    /// Store VALUE (or, without it, everything on stdin) under KEY.
    Set {
        key: String,
        value: Option<String>,
        /// Expire the key after this long: 30s, 10m, 1h30m.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
    },
    /// Remove KEY (succeeds if it is absent).
    Delete { key: String },
    /// Print true or false; exit 0 either way.
    Exists { key: String },
    /// Print the keys starting with PREFIX (all keys without it), one a line, sorted.
    List { prefix: Option<String> },
    /// Print how many keys start with PREFIX (all keys without it).
    Count { prefix: Option<String> },
    /// Print the time KEY has left (`1h29m58.5s`), or `none` if it never expires.
    Ttl { key: String },
    /// Measure kvs against the raw clients of its engines and against other
    /// key-value libraries (default: the embedded backends, in a temporary
    /// directory; --store for others, e.g. redis://127.0.0.1:6379/0).
    Bench(BenchArgs),
}

impl Command {
    /// Whether the command only reads the store.
    fn only_reads(&self) -> bool {
        matches!(
            self,
            Command::Get { .. }
                | Command::Exists { .. }
                | Command::List { .. }
                | Command::Count { .. }
                | Command::Ttl { .. }
        )
    }
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// A short run (10,000 keys, 50 ms per measurement): under 20 s on the
    /// embedded backends, once built.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object per line instead of tables.
    #[arg(long)]
    json: bool,
    /// Keys in the data set (default 100,000; 10,000 with --quick).
    #[arg(long)]
    keys: Option<usize>,
    /// How long each measurement runs (default 1s; 50ms with --quick).
    #[arg(long, value_parser = parse_ttl)]
    duration: Option<Duration>,
    /// Measurements per subject and workload, the subjects taking turns;
    /// the best counts (default 3; 1 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Task counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    tasks: Vec<usize>,
    /// Workloads, comma-separated (default: all of get_100B, get_4KB,
    /// mix_90_10, list_100, count_100, set_100B, set_4KB).
    #[arg(long, value_delimiter = ',', value_parser = parse_workload)]
    workloads: Vec<kvs_bench::Workload>,
    /// Skip the peers that cannot be built with kvs (OpenDAL's and keyv's
    /// SQLite, openkeyv's DynamoDB), which `bench/peers` builds with cargo
    /// on first use.
    #[arg(long, alias = "no-sqlx-peers")]
    no_external_peers: bool,
    /// Where file backends put their files (default: the temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn parse_workload(name: &str) -> Result<kvs_bench::Workload, String> {
    kvs_bench::Workload::from_name(name).ok_or_else(|| {
        let names: Vec<String> = kvs_bench::Workload::ALL.iter().map(|w| w.name()).collect();
        format!(
            "unknown workload {name:?}; expected one of {}",
            names.join(", ")
        )
    })
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    kvs::parse_duration(text).map_err(|e| e.to_string())
}

/// Exit code for a key that is not there.
const NOT_FOUND: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Bench(args) = cli.command {
        return bench(cli.store, args);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::NotFound) => {
            eprintln!("kvs: key not found");
            ExitCode::from(NOT_FOUND)
        }
        Err(Failure::Message(message)) => fail(&message),
    }
}

/// Why a command failed: a missing key has an exit code of its own.
enum Failure {
    NotFound,
    Message(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e {
            Error::NotFound => Failure::NotFound,
            e => Failure::Message(e.to_string()),
        }
    }
}

fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure::Message(format!("{what}: {e}"))
}

fn fail(message: &str) -> ExitCode {
    let message = message.strip_prefix("kvs: ").unwrap_or(message);
    eprintln!("kvs: {message}");
    ExitCode::FAILURE
}

fn config(cli: &Cli) -> kvs::Result<Config> {
    if cli.store.len() > 1 {
        return Err(Error::InvalidConfig {
            message: "--store was given more than once; only `kvs bench` takes several".into(),
        });
    }
    let mut config = if let Some(url) = cli.store.first() {
        Config::from_url(url)?
    } else if let Some(file) = &cli.config {
        let text = std::fs::read_to_string(file).map_err(|e| Error::InvalidConfig {
            message: format!("cannot read {}: {e}", file.display()),
        })?;
        let is_json = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            Config::from_json(&text)?
        } else {
            Config::from_yaml(&text)?
        }
    } else {
        default_config()?
    };
    if let Some(namespace) = &cli.namespace {
        config.namespace = namespace.clone();
    }
    Ok(config)
}

/// SQLite in the platform's data directory: `<data dir>/kvs/kvs.db`.
fn default_config() -> kvs::Result<Config> {
    let dir = dirs::data_dir().ok_or_else(|| Error::InvalidConfig {
        message: "this platform has no data directory; pass --store or --config".into(),
    })?;
    let mut config = Config::new(kvs::BackendKind::Sqlite);
    config.sqlite.path = dir.join("kvs").join("kvs.db");
    Ok(config)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let mut config = config(&cli)?;
    if cli.command.only_reads() {
        // Reading never creates: a mistyped path is "no store at PATH",
        // not a new empty database (and its directories) left behind.
        config.sqlite.create_if_missing = false;
        config.leveldb.create_if_missing = false;
    }
    let store = kvs::open(&config).await?;
    let result = execute(&*store, cli.command).await;
    let closed = store.close().await;
    result?;
    Ok(closed?)
}

async fn execute(store: &dyn Store, command: Command) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let written = match command {
        Command::Get { key } => {
            let value = store.get(&key).await?;
            out.write_all(&value)
        }
        Command::Set { key, value, ttl } => {
            let value = match value {
                Some(value) => value.into_bytes(),
                None => {
                    let mut buffer = Vec::new();
                    tokio::io::stdin()
                        .read_to_end(&mut buffer)
                        .await
                        .map_err(|e| io_failure("reading the value from stdin", e))?;
                    buffer
                }
            };
            store.set(&key, &value, ttl).await?;
            Ok(())
        }
        Command::Delete { key } => {
            store.delete(&key).await?;
            Ok(())
        }
        Command::Exists { key } => writeln!(out, "{}", store.exists(&key).await?),
        Command::List { prefix } => {
            let mut written = Ok(());
            for key in store.list(prefix.as_deref().unwrap_or("")).await? {
                written = writeln!(out, "{key}");
                if written.is_err() {
                    break;
                }
            }
            written
        }
        Command::Ttl { key } => match store.ttl(&key).await? {
            Some(left) => writeln!(out, "{}", kvs::format_duration(left)),
            None => writeln!(out, "none"),
        },
        Command::Count { prefix } => writeln!(
            out,
            "{}",
            store.count(prefix.as_deref().unwrap_or("")).await?
        ),
        Command::Bench(_) => Ok(()), // handled in main, before a store is opened
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| io_failure("writing to stdout", e))
}

/// `kvs bench`: runs on a multi-threaded runtime (64 tasks need more than
/// one thread), prints tables or JSON lines.
fn bench(stores: Vec<String>, args: BenchArgs) -> ExitCode {
    let mut options = if args.quick {
        kvs_bench::Options::quick()
    } else {
        kvs_bench::Options::full()
    };
    options.stores = stores;
    if let Some(keys) = args.keys {
        options.keys = keys;
    }
    if let Some(duration) = args.duration {
        options.duration = duration;
    }
    if let Some(rounds) = args.rounds {
        options.rounds = rounds;
    }
    options.tasks = args.tasks;
    if !args.workloads.is_empty() {
        options.workloads = args.workloads;
    }
    options.external = !args.no_external_peers;
    options.dir = args.dir;
    options.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if options.tasks.contains(&0) {
        return fail("--tasks: every task count must be at least 1");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let report = match runtime.block_on(kvs_bench::run(&options)) {
        Ok(report) => report,
        Err(e) => return fail(&format!("bench: {e}")),
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let mut result = Ok(());
        for line in &report.lines {
            result = result.and_then(|()| json_line(&mut out, line));
        }
        for comparison in &report.comparisons {
            result = result.and_then(|()| json_line(&mut out, comparison));
        }
        result
    } else {
        let met = report.comparisons.iter().filter(|c| c.met()).count();
        write!(
            out,
            "{}\n{}\n{met} of {} comparisons met their target (raw clients: 0.9×, other libraries: 1.0×, group commit: 5×).\n",
            kvs_bench::report::results_table(&report.lines),
            kvs_bench::report::comparisons_table(&report.comparisons),
            report.comparisons.len()
        )
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("writing to stdout: {e}")),
    }
}

fn json_line(out: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)
}
