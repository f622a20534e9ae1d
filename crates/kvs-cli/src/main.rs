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
use kvs::{Config, Error};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod bench;
mod commands;
mod copy;
mod index;
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

    /// Print what reading commands return as JSON (one value; `doc query`:
    /// one object a line).
    #[arg(long, global = true)]
    json: bool,

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
    #[command(flatten)]
    Store(commands::StoreCommand),
    /// Copy every key (with its TTL) from SRC to DST, e.g.
    /// `kvs copy sqlite://./app.db redis://127.0.0.1:6379/0 --verify`.
    Copy(copy::CopyArgs),
    /// The ordered index of a Redis namespace: `kvs --store 'redis://…?namespace=s' index build`.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// Print a completion script: `kvs completions bash > /etc/bash_completion.d/kvs`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Measure kvs against the raw clients of its engines and against other
    /// key-value libraries: runs the kvs-bench binary (`kvs bench --help`
    /// lists its options; --store, more than once, for servers).
    Bench(bench::BenchArgs),
}

pub(crate) fn parse_ttl(text: &str) -> Result<Duration, String> {
    kvs::parse_duration(text).map_err(|e| match e {
        Error::InvalidConfig { message } => message,
        e => e.to_string(),
    })
}

/// Help and version as clap prints them; any other parse error as one
/// line, exit 2 (clap's own text adds a usage block and a hint).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { USAGE } else { 0 });
    }
    let text = e.render().to_string();
    // The message, which may continue on indented lines, up to the usage block.
    let message: Vec<&str> = text
        .lines()
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    let _ = fail(&format!("{message} (see kvs --help)"));
    ExitCode::from(USAGE)
}

/// Exit code for a key that is not there.
const NOT_FOUND: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    logging();
    let cli = match cli.command {
        Command::Bench(args) => return bench::run(cli.store, cli.json, args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "kvs", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
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
        Command::Copy(args) => runtime.block_on(copy::run(args, cli.namespace, cli.json)),
        Command::Index(command) => match config(&cli) {
            Ok(config) => runtime.block_on(index::run(config, command, cli.json)),
            Err(e) => Err(e.into()),
        },
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

/// `RUST_LOG=kvs=debug` (targets and levels, as `tracing`'s `Targets`
/// reads them) logs to stderr; unset, nothing is logged.
fn logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let Ok(spec) = std::env::var("RUST_LOG") else {
        return;
    };
    match spec.parse::<tracing_subscriber::filter::Targets>() {
        Ok(filter) => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(true);
            let _ = tracing_subscriber::registry()
                .with(layer)
                .with(filter)
                .try_init();
        }
        Err(e) => eprintln!("kvs: RUST_LOG={spec:?} is not a log filter ({e}); not logging"),
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
            | Error::InvalidTtl { .. }
            | Error::InvalidQuery { .. } => Failure::Usage(e.to_string()),
            e => Failure::Message(e.to_string()),
        }
    }
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
    Ok(observed(config))
}

/// With `RUST_LOG` set, `config` with the observability layer outermost,
/// so that every call the command makes is a span in the log (no
/// metrics: nothing would export them).
pub(crate) fn observed(mut config: Config) -> Config {
    if std::env::var_os("RUST_LOG").is_some() {
        config.layers.push(kvs::layer::LayerConfig::Observability {
            metrics: false,
            keys: false,
        });
    }
    config
}

/// A YAML or JSON configuration file (JSON by its extension).
fn config_file(file: &std::path::Path) -> kvs::Result<Config> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::InvalidConfig {
        message: format!("cannot read {}: {e}", file.display()),
    })?;
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed = if is_json {
        Config::from_json(&text)
    } else {
        Config::from_yaml(&text)
    };
    // The file's name, so that "line 2, column 10" can be found.
    parsed.map_err(|e| match e {
        Error::InvalidConfig { message } => Error::InvalidConfig {
            message: format!("{}: {message}", file.display()),
        },
        other => other,
    })
}

/// A store named on the command line: a URL, or the path of a
/// configuration file.
pub(crate) fn store_config(text: &str) -> kvs::Result<Config> {
    if text.contains("://") {
        return Config::from_url(text).map(observed);
    }
    let path = std::path::Path::new(text);
    if path.is_file() {
        return config_file(path).map(observed);
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
    let Command::Store(command) = cli.command else {
        return Err(Failure::Message("internal: not a store command".into()));
    };
    if command.only_reads() {
        // Reading never creates: a mistyped path is "no store at PATH",
        // not a new empty database (and its directories) left behind.
        config.sqlite.create_if_missing = false;
        config.leveldb.create_if_missing = false;
    }
    let opened = if command.uses_documents() {
        commands::Opened::Documents(kvs::open_documents(&config).await?)
    } else {
        commands::Opened::Keys(kvs::open(&config).await?)
    };
    let result = commands::execute(&opened, command, cli.json).await;
    let closed = opened.close().await;
    result?;
    Ok(closed?)
}

/// What to say if this build lacks the backend `kind`: the kvs-cli
/// feature it needs.
pub(crate) fn missing_backend(kind: kvs::BackendKind) -> Option<String> {
    let feature = match kind {
        kvs::BackendKind::Redis if !cfg!(feature = "redis") => "redis",
        kvs::BackendKind::DynamoDb if !cfg!(feature = "dynamodb") => "dynamodb",
        kvs::BackendKind::Postgres if !cfg!(feature = "postgres") => "postgres",
        _ => return None,
    };
    Some(format!(
        "this kvs was built without the {} backend; build it with the kvs-cli feature `{feature}` \
         (cargo install kvs-cli --features {feature}, or --features full)",
        kind.name()
    ))
}
