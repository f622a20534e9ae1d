//! Configuration: which backend, which namespace, and each backend's section.
//!
//! Two shapes parse, from YAML or JSON. The sectioned one:
//!
//! ```yaml
//! type: leveldb            # memory | sqlite | leveldb | redis | dynamodb
//! namespace: sessions
//! memory:   { cleanup_interval: 5m }
//! leveldb:  { path: ./data, sync_writes: true, cleanup_interval: 5m }
//! redis:    { addr: 127.0.0.1:6379, password: "", db: 0, pool_size: 0, command_timeout: 5s }
//! sqlite:   { path: ./kvs.db }
//! dynamodb: { table_name: kvs, region: us-east-1, endpoint: http://127.0.0.1:8000, create_table: true }
//! ```
//!
//! and the flat one, with `path`, `table_name` and `region` at the top:
//!
//! ```yaml
//! type: sqlite
//! path: ./kvs.db
//! ```
//!
//! Durations are Go-style strings (`"5m"`, `"1h30m"`, `"250ms"`); see
//! [`parse_duration`](crate::parse_duration). Unknown fields are refused, so
//! a misspelt option is an error rather than a silent default.

use crate::duration::parse_duration;
use crate::{Error, Result};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The default interval between expiry sweeps of the backends that sweep.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The Redis backend's connect and command timeout unless configured.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// A storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BackendKind {
    /// In-process memory; nothing survives the process.
    #[default]
    Memory,
    /// One SQLite database file.
    Sqlite,
    /// One LevelDB directory per namespace.
    LevelDb,
    /// A Redis server or cluster.
    Redis,
    /// An Amazon DynamoDB table.
    DynamoDb,
    /// A table in a PostgreSQL database.
    Postgres,
}

impl BackendKind {
    /// Every backend, in the order the docs list them.
    pub const ALL: [BackendKind; 6] = [
        BackendKind::Memory,
        BackendKind::Sqlite,
        BackendKind::LevelDb,
        BackendKind::Redis,
        BackendKind::DynamoDb,
        BackendKind::Postgres,
    ];

    /// The name used for `type` in configuration files (`"leveldb"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Sqlite => "sqlite",
            BackendKind::LevelDb => "leveldb",
            BackendKind::Redis => "redis",
            BackendKind::DynamoDb => "dynamodb",
            BackendKind::Postgres => "postgres",
        }
    }

    /// Parses a `type` value; the error names the value and the accepted ones.
    ///
    /// ```
    /// use kvs::BackendKind;
    ///
    /// assert_eq!(BackendKind::parse("LevelDB").unwrap(), BackendKind::LevelDb);
    /// let err = BackendKind::parse("mongo").unwrap_err().to_string();
    /// assert!(err.contains("\"mongo\"") && err.contains("memory, sqlite, leveldb, redis, dynamodb, postgres"));
    /// ```
    pub fn parse(name: &str) -> Result<BackendKind> {
        let wanted = name.trim();
        if wanted.eq_ignore_ascii_case("postgresql") {
            return Ok(BackendKind::Postgres);
        }
        BackendKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                let accepted: Vec<_> = BackendKind::ALL.iter().map(|k| k.name()).collect();
                Error::config(format!(
                    "unknown store type {name:?}; expected one of {}",
                    accepted.join(", ")
                ))
            })
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything [`open`](crate::open) needs to open a store.
///
/// Build one from a file with [`Config::from_yaml`] / [`Config::from_json`],
/// or in code:
///
/// ```
/// use kvs::{BackendKind, Config};
///
/// let mut config = Config::new(BackendKind::Memory);
/// config.namespace = "sessions".into();
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Config {
    /// Which backend to open (`type` in files).
    pub backend: BackendKind,
    /// The namespace the store is opened for; `""` means `"default"`.
    pub namespace: String,
    /// Settings of the memory backend.
    pub memory: MemoryConfig,
    /// Settings of the LevelDB backend.
    pub leveldb: LevelDbConfig,
    /// Settings of the Redis backend.
    pub redis: RedisConfig,
    /// Settings of the SQLite backend.
    pub sqlite: SqliteConfig,
    /// Settings of the DynamoDB backend.
    pub dynamodb: DynamoDbConfig,
    /// Settings of the PostgreSQL backend.
    pub postgres: PostgresConfig,
    /// The layers [`open`](crate::open) puts around the store, the first
    /// innermost (`layers:` in files; see [`layer`](crate::layer)).
    pub layers: Vec<crate::layer::LayerConfig>,
}

/// Settings of the memory backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// How often the background sweep drops expired entries (default 5 min).
    /// Expired entries are invisible at once whatever this says; the sweep
    /// only frees their memory. `0` turns the sweep off.
    #[serde(deserialize_with = "de_duration")]
    pub cleanup_interval: Duration,
    /// The most entries the store holds (none by default). A write that
    /// would go past it first evicts entries (expired ones first, then
    /// the least recently read, by the CLOCK algorithm): a bounded cache.
    pub max_entries: Option<usize>,
    /// The most bytes of keys and values the store holds (none by
    /// default), kept as `max_entries` is. A value larger than this is
    /// [`Error::ValueTooLarge`](crate::Error::ValueTooLarge).
    pub max_bytes: Option<usize>,
}

impl Default for MemoryConfig {
    fn default() -> MemoryConfig {
        MemoryConfig {
            cleanup_interval: DEFAULT_CLEANUP_INTERVAL,
            max_entries: None,
            max_bytes: None,
        }
    }
}

impl MemoryConfig {
    /// The default settings with a bound of `max_entries` entries.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kvs::Result<()> {
    /// use kvs::{MemoryConfig, MemoryStore, Store};
    /// let store = MemoryStore::new("l1", MemoryConfig::bounded(2))?;
    /// for key in ["a", "b", "c"] {
    ///     store.set(key, b"v", None).await?;
    /// }
    /// assert_eq!(store.count("").await?, 2);
    /// assert_eq!(store.evictions(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn bounded(max_entries: usize) -> MemoryConfig {
        MemoryConfig {
            max_entries: Some(max_entries),
            ..MemoryConfig::default()
        }
    }
}

/// Settings of the LevelDB backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LevelDbConfig {
    /// The directory that holds one LevelDB database per namespace. Empty
    /// means the platform's data directory.
    pub path: PathBuf,
    /// Make every write reach the disk before it is acknowledged.
    pub sync_writes: bool,
    /// How often the background sweep deletes expired entries (default 5 min).
    #[serde(deserialize_with = "de_duration")]
    pub cleanup_interval: Duration,
    /// `true` (the default): a namespace without a database gets one.
    /// `false`: opening it is [`Error::NoStore`] and creates nothing (the
    /// `kvs` command's reading commands open this way).
    pub create_if_missing: bool,
}

impl Default for LevelDbConfig {
    fn default() -> LevelDbConfig {
        LevelDbConfig {
            path: PathBuf::new(),
            sync_writes: false,
            cleanup_interval: DEFAULT_CLEANUP_INTERVAL,
            create_if_missing: true,
        }
    }
}

/// Settings of the Redis backend.
///
/// `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `host:port` of the server.
    pub addr: String,
    /// The ACL user name; empty for the default user.
    pub username: String,
    /// The password (`AUTH`); empty for none.
    pub password: String,
    /// Connect with TLS (`rediss://`).
    pub tls: bool,
    /// Seed nodes (`host:port`) of a Redis Cluster; empty for a single
    /// server at `addr`.
    pub cluster_nodes: Vec<String>,
    /// The database number.
    pub db: u32,
    /// Multiplexed connections to keep (each carries many concurrent
    /// commands); `0` or `1` means one.
    pub pool_size: usize,
    /// How long connecting (and reconnecting) may take (default 5 s).
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// How long one command may wait for its reply (default 5 s); a server
    /// that stops answering gives `Error::Backend` after this.
    #[serde(deserialize_with = "de_duration")]
    pub command_timeout: Duration,
    /// Keep an ordered index of the namespace's keys (a sorted set, kept in
    /// the same atomic step as every write), so listing, counting, paging
    /// and prefix deletes cost O(log n + matches) instead of a `SCAN` of the
    /// whole server. Off by default; see the Redis backend's docs for the
    /// key form it uses on a cluster and how to build the index for a
    /// namespace that already holds keys.
    pub index: bool,
}

impl Default for RedisConfig {
    fn default() -> RedisConfig {
        RedisConfig {
            addr: "127.0.0.1:6379".into(),
            username: String::new(),
            password: String::new(),
            tls: false,
            cluster_nodes: Vec::new(),
            db: 0,
            pool_size: 0,
            connect_timeout: DEFAULT_REDIS_TIMEOUT,
            command_timeout: DEFAULT_REDIS_TIMEOUT,
            index: false,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("addr", &self.addr)
            .field("username", &self.username)
            .field("password", &Redacted(!self.password.is_empty()))
            .field("tls", &self.tls)
            .field("cluster_nodes", &self.cluster_nodes)
            .field("db", &self.db)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("index", &self.index)
            .finish()
    }
}

/// Shows whether a secret is set, never the secret.
struct Redacted(bool);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "\"<redacted>\"" } else { "\"\"" })
    }
}

/// Settings of the SQLite backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database file (default `./kvs.db`); missing parent directories
    /// are created.
    pub path: PathBuf,
    /// `true`: every commit reaches the disk before it is acknowledged
    /// (`synchronous=FULL`), so it survives a power loss. `false` (the
    /// default): `synchronous=NORMAL`, which in WAL mode still survives the
    /// process being killed, but a power loss can lose the last commits.
    pub sync_writes: bool,
    /// How often expired rows are deleted (default 5 min). Expired rows are
    /// invisible at once whatever this says. `0` turns the sweep off.
    #[serde(deserialize_with = "de_duration")]
    pub cleanup_interval: Duration,
    /// `true` (the default): a missing file (and its directories) is
    /// created. `false`: opening it is [`Error::NoStore`] and creates
    /// nothing (the `kvs` command's reading commands open this way).
    pub create_if_missing: bool,
}

impl Default for SqliteConfig {
    fn default() -> SqliteConfig {
        SqliteConfig {
            path: PathBuf::from("./kvs.db"),
            sync_writes: false,
            cleanup_interval: DEFAULT_CLEANUP_INTERVAL,
            create_if_missing: true,
        }
    }
}

/// Settings of the DynamoDB backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DynamoDbConfig {
    /// The table (default `kvs`).
    pub table_name: String,
    /// The AWS region; empty means the standard AWS configuration chain.
    pub region: String,
    /// An endpoint URL for a local emulator; empty means AWS.
    pub endpoint: String,
    /// Create the table (and turn on its TTL) if it does not exist.
    pub create_table: bool,
}

impl Default for DynamoDbConfig {
    fn default() -> DynamoDbConfig {
        DynamoDbConfig {
            table_name: "kvs".into(),
            region: String::new(),
            endpoint: String::new(),
            create_table: false,
        }
    }
}

/// The PostgreSQL backend's connect and command timeout unless configured.
pub const DEFAULT_POSTGRES_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the PostgreSQL backend.
///
/// `Debug` never shows the password, whether in `password` or in `url`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// A libpq-style connection URL (`postgres://user@host:port/db`,
    /// with `application_name`, `options`, … as PostgreSQL reads them).
    ///
    /// TLS: `sslmode=require` or `verify-full` connects with rustls or
    /// not at all, and always verifies the server's certificate (against
    /// the PEM file `sslrootcert` names, or the Mozilla roots) and host
    /// name; `disable`, `prefer` or no `sslmode` is plain TCP.
    /// `verify-ca` is refused.
    pub url: String,
    /// The password, if not in the URL.
    pub password: String,
    /// Connections to keep (default 8).
    pub pool_size: usize,
    /// The table (default `kvs`), in the connection's search path.
    pub table: String,
    /// Create the table and its index if they do not exist (default `true`).
    pub create_table: bool,
    /// How long connecting may take (default 5 s).
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// How long one statement may take (default 5 s); a server that stops
    /// answering gives a temporary `Error::Backend` after this.
    #[serde(deserialize_with = "de_duration")]
    pub command_timeout: Duration,
    /// How often expired rows are deleted (default 5 min), in batches, by
    /// one process at a time. `0` turns the sweep off.
    #[serde(deserialize_with = "de_duration")]
    pub cleanup_interval: Duration,
}

impl Default for PostgresConfig {
    fn default() -> PostgresConfig {
        PostgresConfig {
            url: "postgres://localhost/postgres".into(),
            password: String::new(),
            pool_size: 8,
            table: "kvs".into(),
            create_table: true,
            connect_timeout: DEFAULT_POSTGRES_TIMEOUT,
            command_timeout: DEFAULT_POSTGRES_TIMEOUT,
            cleanup_interval: DEFAULT_CLEANUP_INTERVAL,
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &RedactedUrl(&self.url))
            .field("password", &Redacted(!self.password.is_empty()))
            .field("pool_size", &self.pool_size)
            .field("table", &self.table)
            .field("create_table", &self.create_table)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("cleanup_interval", &self.cleanup_interval)
            .finish()
    }
}

/// A URL whose `Debug` shows it with its password, if any, replaced by
/// `<redacted>` (what the configuration's `Debug` and the `kvs` command
/// show of a connection URL).
///
/// ```
/// let shown = format!("{:?}", kvs::raw::RedactedUrl("postgres://app:s3cret@db:5432/app"));
/// assert!(!shown.contains("s3cret") && shown.contains("db:5432"));
/// ```
pub struct RedactedUrl<'a>(pub &'a str);

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("<redacted>"));
                write!(f, "{:?}", url.as_str())
            }
            Ok(_) => write!(f, "{:?}", self.0),
            Err(_) => f.write_str("\"<not a URL>\""),
        }
    }
}

/// The file shape: both the sectioned and the flat fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(rename = "type")]
    backend: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    memory: Option<MemoryConfig>,
    leveldb: Option<LevelDbConfig>,
    redis: Option<RedisConfig>,
    sqlite: Option<SqliteConfig>,
    dynamodb: Option<DynamoDbConfig>,
    postgres: Option<PostgresConfig>,
    #[serde(default, deserialize_with = "crate::layer::config::de_layers")]
    layers: Vec<crate::layer::LayerConfig>,
    // The flat shape.
    path: Option<PathBuf>,
    table_name: Option<String>,
    region: Option<String>,
}

impl Config {
    /// A configuration for `backend` with every other setting at its default.
    pub fn new(backend: BackendKind) -> Config {
        Config {
            backend,
            ..Config::default()
        }
    }

    /// Parses a YAML configuration (either shape, see the module docs).
    ///
    /// ```
    /// use kvs::{BackendKind, Config};
    ///
    /// let config = Config::from_yaml("type: sqlite\npath: ./app.db\nnamespace: prefs").unwrap();
    /// assert_eq!(config.backend, BackendKind::Sqlite);
    /// assert_eq!(config.sqlite.path, std::path::Path::new("./app.db"));
    /// assert_eq!(config.namespace, "prefs");
    /// ```
    pub fn from_yaml(text: &str) -> Result<Config> {
        // `serde_yaml` is deprecated and unmaintained. `serde-saphyr` is
        // maintained, pure Rust (no C-translated libyaml), YAML 1.2, parses
        // without panicking on malformed input and bounds alias expansion,
        // which matters for configuration read from files.
        // No snippet in errors: the lines around a mistake may hold a
        // password (`redis: { password: ... }`), and errors get logged.
        // The message still names the line, column and field.
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        let file: FileConfig = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| Error::config(format!("cannot parse YAML: {e}")))?;
        file.resolve()
    }

    /// Parses a store URL: `memory://`, `sqlite://PATH`, `leveldb://PATH`,
    /// `redis://[user:pass@]host:port/db`, `rediss://...` (TLS) or
    /// `dynamodb://TABLE?region=...&endpoint=...`, each with an optional
    /// `?namespace=...`.
    ///
    /// Other query parameters: `sync_writes` and `cleanup_interval` (sqlite,
    /// leveldb), `cleanup_interval` (memory), `pool_size` (redis), `region`,
    /// `endpoint` and `create_table` (dynamodb). Paths and credentials are
    /// percent-decoded. An unknown parameter is an error, and no error
    /// repeats a password.
    ///
    /// ```
    /// use kvs::{BackendKind, Config};
    ///
    /// let config = Config::from_url("sqlite:///var/lib/app/kvs.db?namespace=prefs").unwrap();
    /// assert_eq!(config.backend, BackendKind::Sqlite);
    /// assert_eq!(config.sqlite.path, std::path::Path::new("/var/lib/app/kvs.db"));
    /// assert_eq!(config.namespace, "prefs");
    ///
    /// let config = Config::from_url("redis://app:s3cret@cache:6380/2").unwrap();
    /// assert_eq!((config.redis.addr.as_str(), config.redis.db), ("cache:6380", 2));
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// ```
    pub fn from_url(url: &str) -> Result<Config> {
        crate::store_url::parse(url)
    }

    /// Parses a JSON configuration (either shape, see the module docs).
    ///
    /// ```
    /// use kvs::{BackendKind, Config};
    ///
    /// let config = Config::from_json(r#"{"type": "memory", "memory": {"cleanup_interval": "1m"}}"#).unwrap();
    /// assert_eq!(config.memory.cleanup_interval, std::time::Duration::from_secs(60));
    /// ```
    pub fn from_json(text: &str) -> Result<Config> {
        let file: FileConfig = serde_json::from_str(text)
            .map_err(|e| Error::config(format!("cannot parse JSON: {e}")))?;
        file.resolve()
    }
}

impl FileConfig {
    fn resolve(self) -> Result<Config> {
        let Some(name) = self.backend else {
            return Err(Error::config(
                "missing field `type`; expected one of memory, sqlite, leveldb, redis, dynamodb, postgres",
            ));
        };
        let backend = BackendKind::parse(&name)?;
        let mut config = Config {
            backend,
            namespace: self.namespace.unwrap_or_default(),
            memory: self.memory.unwrap_or_default(),
            leveldb: self.leveldb.unwrap_or_default(),
            redis: self.redis.unwrap_or_default(),
            sqlite: self.sqlite.unwrap_or_default(),
            dynamodb: self.dynamodb.unwrap_or_default(),
            postgres: self.postgres.unwrap_or_default(),
            layers: self.layers,
        };
        // Settings that cannot work together fail here, not at `open`.
        for layer in &config.layers {
            layer.build(&config)?;
        }
        let misplaced = [
            (
                "path",
                self.path.is_some()
                    && !matches!(backend, BackendKind::Sqlite | BackendKind::LevelDb),
            ),
            (
                "table_name",
                self.table_name.is_some() && backend != BackendKind::DynamoDb,
            ),
            (
                "region",
                self.region.is_some() && backend != BackendKind::DynamoDb,
            ),
        ];
        if let Some((field, _)) = misplaced.iter().find(|(_, bad)| *bad) {
            let owners = if *field == "path" {
                "sqlite and leveldb"
            } else {
                "dynamodb"
            };
            return Err(Error::config(format!(
                "top-level `{field}` applies to {owners}, not to {backend}"
            )));
        }
        // A section field that differs from its default was set in the file.
        let sqlite_path_set = config.sqlite.path != SqliteConfig::default().path;
        let leveldb_path_set = !config.leveldb.path.as_os_str().is_empty();
        let dynamo_default = DynamoDbConfig::default();
        let table_set = config.dynamodb.table_name != dynamo_default.table_name;
        let region_set = config.dynamodb.region != dynamo_default.region;
        match backend {
            BackendKind::Sqlite => {
                if let Some(path) = flat(backend, "path", self.path, sqlite_path_set)? {
                    config.sqlite.path = path;
                }
            }
            BackendKind::LevelDb => {
                if let Some(path) = flat(backend, "path", self.path, leveldb_path_set)? {
                    config.leveldb.path = path;
                }
            }
            BackendKind::DynamoDb => {
                if let Some(table) = flat(backend, "table_name", self.table_name, table_set)? {
                    config.dynamodb.table_name = table;
                }
                if let Some(region) = flat(backend, "region", self.region, region_set)? {
                    config.dynamodb.region = region;
                }
            }
            _ => {}
        }
        Ok(config)
    }
}

/// A flat-shape field: `Some(value)` to apply, or an error if the backend's
/// section sets the same field too.
fn flat<T>(
    backend: BackendKind,
    field: &str,
    value: Option<T>,
    section_sets_it: bool,
) -> Result<Option<T>> {
    if value.is_some() && section_sets_it {
        return Err(Error::config(format!(
            "`{field}` is given both at the top level and in the `{backend}` section; keep one"
        )));
    }
    Ok(value)
}

/// [`de_duration`] for an optional field (with `#[serde(default)]`).
pub(crate) fn de_opt_duration<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(de).map(Some)
}

/// Reads a duration written as a Go-style string, or the number `0`.
pub(crate) fn de_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    match Raw::deserialize(de)? {
        Raw::Text(text) => parse_duration(&text).map_err(serde::de::Error::custom),
        Raw::Number(0) => Ok(Duration::ZERO),
        Raw::Number(n) => Err(serde::de::Error::custom(format!(
            "duration {n} has no unit; write it like \"{n}s\" or \"{n}ms\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration that holds a password and one other mistake: the
    /// error names the mistake, never the password (errors get logged).
    #[test]
    fn config_errors_never_show_a_password() {
        let secret = "s3cret-Pa55";
        let yaml = [
            format!(
                "type: redis\nredis:\n  addr: 127.0.0.1:6379\n  password: {secret}\n  db: [1, 2]\n"
            ),
            format!("type: redis\nredis:\n  password: \"{secret}\"\n  pool_size: many\n"),
            format!("type: redis\nredis:\n  password: {secret}\n  colour: blue\n"),
            format!("type: rediz\nredis:\n  password: {secret}\n"),
            format!("type: redis\nredis:\n  password: {secret}\n  addr: [unclosed\n"),
        ];
        for text in &yaml {
            let err = Config::from_yaml(text).unwrap_err().to_string();
            assert!(
                !err.contains(secret),
                "the YAML error shows the password: {err}"
            );
            assert!(matches!(
                Config::from_yaml(text),
                Err(Error::InvalidConfig { .. })
            ));
        }
        let json = [
            format!(r#"{{"type":"redis","redis":{{"password":"{secret}","db":"x"}}}}"#),
            format!(r#"{{"type":"redis","redis":{{"password":"{secret}","colour":1}}}}"#),
            format!(r#"{{"type":"redis","redis":{{"password":"{secret}""#),
        ];
        for text in &json {
            let err = Config::from_json(text).unwrap_err().to_string();
            assert!(
                !err.contains(secret),
                "the JSON error shows the password: {err}"
            );
        }
        for url in [
            format!("redis://app:{secret}@127.0.0.1:6379/x"),
            format!("redis://app:{secret}@127.0.0.1:6379/0?colour=blue"),
            format!("redis://:{secret}@127.0.0.1:notaport/0"),
        ] {
            let err = Config::from_url(&url).unwrap_err().to_string();
            assert!(
                !err.contains(secret),
                "the URL error shows the password: {err}"
            );
        }
    }

    const SECTIONED: &str = r#"
type: leveldb            # memory | leveldb | redis | sqlite | dynamodb
namespace: sessions
memory:   { cleanup_interval: 5m }
leveldb:  { path: ./data, sync_writes: true, cleanup_interval: 1h30m }
redis:    { addr: 127.0.0.1:6379, password: "hunter2", db: 3, pool_size: 8 }
sqlite:   { path: ./kvs.db }
dynamodb: { table_name: kvs, region: us-east-1, endpoint: http://127.0.0.1:8000, create_table: true }
"#;

    #[test]
    fn sectioned_yaml() {
        let c = Config::from_yaml(SECTIONED).unwrap();
        assert_eq!(c.backend, BackendKind::LevelDb);
        assert_eq!(c.namespace, "sessions");
        assert_eq!(c.memory.cleanup_interval, Duration::from_secs(300));
        assert_eq!(c.leveldb.path, PathBuf::from("./data"));
        assert!(c.leveldb.sync_writes);
        assert_eq!(c.leveldb.cleanup_interval, Duration::from_secs(5400));
        assert_eq!(c.redis.db, 3);
        assert_eq!(c.redis.pool_size, 8);
        assert_eq!(c.dynamodb.endpoint, "http://127.0.0.1:8000");
        assert!(c.dynamodb.create_table);
    }

    #[test]
    fn sectioned_json_matches_yaml() {
        let json = r#"{"type":"leveldb","namespace":"sessions",
            "memory":{"cleanup_interval":"5m"},
            "leveldb":{"path":"./data","sync_writes":true,"cleanup_interval":"1h30m"},
            "redis":{"addr":"127.0.0.1:6379","password":"hunter2","db":3,"pool_size":8},
            "sqlite":{"path":"./kvs.db"},
            "dynamodb":{"table_name":"kvs","region":"us-east-1","endpoint":"http://127.0.0.1:8000","create_table":true}}"#;
        assert_eq!(
            Config::from_json(json).unwrap(),
            Config::from_yaml(SECTIONED).unwrap()
        );
    }

    #[test]
    fn flat_shape() {
        let c = Config::from_yaml("type: sqlite\npath: /tmp/x.db").unwrap();
        assert_eq!(c.sqlite.path, PathBuf::from("/tmp/x.db"));
        let c = Config::from_json(r#"{"type":"dynamodb","table_name":"t","region":"eu-west-1"}"#)
            .unwrap();
        assert_eq!(
            (c.dynamodb.table_name.as_str(), c.dynamodb.region.as_str()),
            ("t", "eu-west-1")
        );
        let c = Config::from_yaml("type: leveldb\npath: ./ldb").unwrap();
        assert_eq!(c.leveldb.path, PathBuf::from("./ldb"));
    }

    #[test]
    fn defaults() {
        let c = Config::from_yaml("type: memory").unwrap();
        assert_eq!(c.namespace, "");
        assert_eq!(c.memory.cleanup_interval, DEFAULT_CLEANUP_INTERVAL);
        assert_eq!(c.sqlite.path, PathBuf::from("./kvs.db"));
        assert_eq!(c.redis.addr, "127.0.0.1:6379");
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("type: mongo", "\"mongo\""),
            ("type: mongo", "memory, sqlite, leveldb, redis, dynamodb"),
            ("namespace: x", "missing field `type`"),
            ("type: memory\nmemroy: {}", "memroy"),
            (
                "type: memory\nmemory: { cleanup_interval: 5 }",
                "has no unit",
            ),
            ("type: memory\nmemory: { cleanup_interval: 5x }", "\"5x\""),
            ("type: redis\npath: ./x", "not to redis"),
            ("type: sqlite\npath: a.db\nsqlite: { path: b.db }", "both"),
            ("type: [", "YAML"),
            ("", "type"),
        ];
        for (yaml, needle) in cases {
            let err = Config::from_yaml(yaml).unwrap_err();
            assert!(
                matches!(err, Error::InvalidConfig { .. }),
                "{yaml}: {err:?}"
            );
            assert!(err.to_string().contains(needle), "{yaml}: {err}");
        }
        let err = Config::from_json("{").unwrap_err();
        assert!(err.to_string().contains("JSON"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = Config::from_yaml(SECTIONED).unwrap();
        let text = format!("{c:?} {:?} {:#?}", c.redis, c);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    proptest::proptest! {
        /// Arbitrary text gives a config or an `InvalidConfig`, never a panic.
        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            for result in [Config::from_yaml(&text), Config::from_json(&text)] {
                if let Err(e) = result {
                    proptest::prop_assert!(matches!(e, Error::InvalidConfig { .. }), "{e:?}");
                }
            }
        }

        /// Near-valid documents: known keys with random values.
        #[test]
        fn near_valid_yaml_never_panics(
            kind in "(memory|sqlite|leveldb|redis|dynamodb|x)",
            key in "(namespace|path|table_name|region|memory|leveldb|redis|sqlite|dynamodb)",
            value in "[a-z0-9:{}\\[\\], \"'.-]{0,20}",
        ) {
            let text = format!("type: {kind}\n{key}: {value}\n");
            if let Err(e) = Config::from_yaml(&text) {
                proptest::prop_assert!(matches!(e, Error::InvalidConfig { .. }), "{e:?}");
            }
        }
    }

    #[test]
    fn type_names_are_case_insensitive() {
        assert_eq!(
            Config::from_yaml("type: DynamoDB").unwrap().backend,
            BackendKind::DynamoDb
        );
    }
}
