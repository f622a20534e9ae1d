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

mod bench;
mod copy;
mod transfer;

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
    /// Remove every key starting with PREFIX; print how many there were.
    DeletePrefix { prefix: String },
    /// Remove every key of the namespace; print how many there were.
    Clear {
        /// Required: clearing cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Write every key (or those under --prefix) as JSON Lines:
    /// {"key", "value", "encoding" (base64 for non-UTF-8 values), "ttl_ms"}.
    Export(transfer::ExportArgs),
    /// Read keys from JSON Lines (what `export` writes), from FILE or stdin.
    Import(transfer::ImportArgs),
    /// Copy every key (with its TTL) from SRC to DST, e.g.
    /// `kvs copy sqlite://./app.db redis://127.0.0.1:6379/0 --verify`.
    Copy(copy::CopyArgs),
    /// Measure kvs against the raw clients of its engines and against other
    /// key-value libraries (default: the embedded backends, in a temporary
    /// directory; --store for others, e.g. redis://127.0.0.1:6379/0).
    Bench(bench::BenchArgs),
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
                | Command::Export(_)
        )
    }
}

pub(crate) fn parse_ttl(text: &str) -> Result<Duration, String> {
    kvs::parse_duration(text).map_err(|e| e.to_string())
}

/// Exit code for a key that is not there.
const NOT_FOUND: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cli = match cli.command {
        Command::Bench(args) => return bench::run(cli.store, args),
        _ => cli,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let result = match cli.command {
        // SRC and DST are its arguments: no store of --store is opened.
        Command::Copy(args) => runtime.block_on(copy::run(args, cli.namespace)),
        _ => runtime.block_on(run(cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::NotFound) => {
            eprintln!("kvs: key not found");
            ExitCode::from(NOT_FOUND)
        }
        Err(Failure::Usage(message)) => {
            let _ = fail(&message);
            ExitCode::from(USAGE)
        }
        Err(Failure::Message(message)) => fail(&message),
    }
}

/// Exit code for bad usage (clap uses it for bad flags too).
const USAGE: u8 = 2;

/// Why a command failed: a missing key and bad usage have exit codes of
/// their own.
pub(crate) enum Failure {
    NotFound,
    /// The command line (an argument, a URL, a key) is wrong: exit 2.
    Usage(String),
    Message(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e {
            Error::NotFound => Failure::NotFound,
            // What the user typed is wrong, not the store.
            Error::InvalidKey { .. }
            | Error::InvalidNamespace { .. }
            | Error::InvalidConfig { .. }
            | Error::InvalidTtl { .. } => Failure::Usage(e.to_string()),
            e => Failure::Message(e.to_string()),
        }
    }
}

fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure::Message(format!("{what}: {e}"))
}

pub(crate) fn fail(message: &str) -> ExitCode {
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
        config_file(file)?
    } else {
        default_config()?
    };
    if let Some(namespace) = &cli.namespace {
        config.namespace = namespace.clone();
    }
    Ok(config)
}

/// A YAML or JSON configuration file (JSON by its extension).
fn config_file(file: &std::path::Path) -> kvs::Result<Config> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::InvalidConfig {
        message: format!("cannot read {}: {e}", file.display()),
    })?;
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        Config::from_json(&text)
    } else {
        Config::from_yaml(&text)
    }
}

/// A store named on the command line: a URL, or the path of a
/// configuration file.
pub(crate) fn store_config(text: &str) -> kvs::Result<Config> {
    if text.contains("://") {
        return Config::from_url(text);
    }
    let path = std::path::Path::new(text);
    if path.is_file() {
        return config_file(path);
    }
    Err(Error::InvalidConfig {
        message: format!(
            "{text:?} is neither a store URL (sqlite://PATH, redis://HOST:PORT, ...) nor a \
             configuration file"
        ),
    })
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
    if let Some(message) = missing_backend(config.backend) {
        return Err(Failure::Message(message));
    }
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

/// What to say if this build lacks the backend `kind`: the kvs-cli
/// feature it needs.
pub(crate) fn missing_backend(kind: kvs::BackendKind) -> Option<String> {
    let feature = match kind {
        kvs::BackendKind::Redis if !cfg!(feature = "redis") => "redis",
        kvs::BackendKind::DynamoDb if !cfg!(feature = "dynamodb") => "dynamodb",
        _ => return None,
    };
    Some(format!(
        "this kvs was built without the {} backend; build it with the kvs-cli feature `{feature}` \
         (cargo install kvs-cli --features {feature}, or --features full)",
        kind.name()
    ))
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
        Command::DeletePrefix { prefix } => {
            if prefix.is_empty() {
                return Err(Failure::Usage(
                    "delete-prefix: an empty prefix is every key; use `kvs clear --yes`".into(),
                ));
            }
            writeln!(out, "{}", store.delete_prefix(&prefix).await?)
        }
        Command::Clear { yes } => {
            if !yes {
                return Err(Failure::Usage(
                    "clear removes every key of the namespace; add --yes to do it".into(),
                ));
            }
            writeln!(out, "{}", store.clear().await?)
        }
        Command::Export(args) => return transfer::export(store, args).await,
        Command::Import(args) => return transfer::import(store, args).await,
        // Handled in main, before a store is opened.
        Command::Bench(_) | Command::Copy(_) => Ok(()),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| io_failure("writing to stdout", e))
}
