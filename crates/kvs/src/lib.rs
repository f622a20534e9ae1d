//! One async key-value API over many storage engines.
//!
//! Open a store from configuration and use it through [`Store`]; switching
//! from the embedded default to Redis or DynamoDB changes the configuration,
//! not the code.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kvs::Result<()> {
//! use std::time::Duration;
//!
//! let config = kvs::Config::from_yaml("type: memory\nnamespace: sessions")?;
//! let store = kvs::open(&config).await?;
//! store.set("user:1", b"ada", Some(Duration::from_secs(60))).await?;
//! assert_eq!(store.count("user:").await?, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`store`](Store): the `Store` trait, the contract every backend keeps,
//!   and [`StoreFuture`], the future its methods return;
//! - [`error`](Error): the one error type;
//! - [`config`](Config): configuration files and Go-style durations;
//! - [`expiry`]: the injectable clock and the longest TTL;
//! - [`typed`]: `store.typed::<T>()`, values as Rust types (JSON, MessagePack);
//! - [`layer`]: wrappers around any store (read-only, size limit, TTL
//!   clamp), stacked in code or by `layers:` in the configuration;
//! - [`cache`]: `get_or_set` with one load per key (in the process and,
//!   with a lease, across processes), tags, refresh-ahead, and the
//!   [`Tiered`](cache::Tiered) layer (a bounded memory tier kept coherent
//!   by a Redis bus);
//! - [`blocking`]: the same store without an async runtime;
//! - `backend/`: one module per engine, a folder per concern inside the
//!   larger ones;
//! - [`raw`]: for backend and layer authors only — key encodings, deadline
//!   arithmetic, the filter's syntax tree and the generic loops (crate-private
//!   modules `key`, `deadline`, `filter`, `generic`), less stable than the rest;
//! - `testkit` (feature `testkit`): the conformance suite every backend runs.
//!
//! # Feature flags
//!
//! | feature    | backend                         | default |
//! |------------|---------------------------------|---------|
//! | `memory`   | [`MemoryStore`] (always built)  | yes     |
//! | `sqlite`   | `SqliteStore`                   | yes     |
//! | `leveldb`  | `LevelDbStore`                  | yes     |
//! | `redis`    | `RedisStore` (server or cluster) | no     |
//! | `dynamodb` | `DynamoDbStore`                 | no      |
//! | `postgres` | `PostgresStore`                 | no      |
//! | `msgpack`  | [`typed::MessagePack`], a codec for [`Typed`] values | no |
//! | `full`     | all of the above                | no      |
//! | `testkit`  | `kvs::testkit`, not semver-stable | no    |
//!
//! A backend that is not compiled in (or not built yet) makes [`open`]
//! return [`Error::Unsupported`] naming the feature, never a panic.

#![warn(missing_docs)]
// On docs.rs (nightly), items behind a feature say which one.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
pub mod blocking;
pub mod cache;
mod config;
mod copy;
mod deadline;
mod document;
mod duration;
mod error;
pub mod expiry;
mod filter;
mod forward;
mod future;
mod generic;
mod key;
pub mod layer;
pub mod raw;
#[cfg_attr(not(any(feature = "sqlite", feature = "leveldb")), allow(dead_code))]
mod registry;
mod store;
mod store_url;
pub mod typed;
#[cfg(feature = "leveldb")]
mod worker;

#[cfg(feature = "testkit")]
pub mod testkit;

#[cfg(feature = "dynamodb")]
pub use backend::dynamodb::DynamoDbStore;
#[cfg(feature = "leveldb")]
pub use backend::leveldb::LevelDbStore;
pub use backend::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use backend::postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use backend::redis::{IndexBuild, RedisStore};
#[cfg(feature = "sqlite")]
pub use backend::sqlite::SqliteStore;
pub use config::{
    BackendKind, Config, DynamoDbConfig, LevelDbConfig, MemoryConfig, PostgresConfig, RedisConfig,
    SqliteConfig, DEFAULT_CLEANUP_INTERVAL,
};
pub use copy::{
    copy, copy_documents, copy_with_progress, CopyOptions, CopyPhase, CopyProgress, CopyReport,
    Mismatch, MAX_LISTED_MISMATCHES, TTL_TOLERANCE,
};
pub use document::{Document, DocumentStore, MAX_COLLECTION_LEN, MAX_ID_LEN};
pub use duration::{format_duration, parse_duration};
pub use error::{Error, Result};
pub use future::{KeyStream, StoreFuture};
pub use key::{DEFAULT_NAMESPACE, MAX_KEY_LEN, MAX_NAMESPACE_LEN};
pub use store::{Entry, Store};
pub use typed::{Typed, TypedExt};

/// Re-exported so that users name the same `Bytes` type the trait returns.
pub use bytes::Bytes;

use expiry::{Clock, SystemClock};
use std::sync::Arc;

/// Opens the store that `config` describes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// let store = kvs::open(&kvs::Config::from_json(r#"{"type": "memory"}"#)?).await?;
/// assert!(!store.exists("nothing").await?);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Unsupported`] if the backend is not compiled in (the message
/// names the cargo feature), [`Error::InvalidNamespace`] for a bad
/// namespace, and the backend's own errors if it cannot be opened.
pub async fn open(config: &Config) -> Result<Arc<dyn Store>> {
    open_with_clock(config, Arc::new(SystemClock)).await
}

/// Like [`open`], reading time from `clock` wherever the backend keeps
/// time itself (TTLs on memory, SQLite, LevelDB and DynamoDB; Redis
/// expires keys by the server's clock). For tests, with a
/// [`ManualClock`](expiry::ManualClock):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use std::{sync::Arc, time::Duration};
/// use kvs::expiry::ManualClock;
///
/// let clock = ManualClock::new(1_700_000_000_000);
/// let config = kvs::Config::from_yaml("type: memory")?;
/// let store = kvs::open_with_clock(&config, Arc::new(clock.clone())).await?;
/// store.set("k", b"v", Some(Duration::from_secs(60))).await?;
/// clock.advance(Duration::from_secs(61));
/// assert!(!store.exists("k").await?);
/// # Ok(())
/// # }
/// ```
pub async fn open_with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>> {
    layer::apply(config, open_backend(config, clock).await?)
}

/// The backend's store, without the configured layers.
async fn open_backend(config: &Config, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>> {
    let ns = config.namespace.as_str();
    Ok(match config.backend {
        BackendKind::Memory => {
            Arc::new(MemoryStore::open_with_clock(ns, config.memory.clone(), clock).await?)
        }
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => {
            Arc::new(SqliteStore::open_with_clock(ns, config.sqlite.clone(), clock).await?)
        }
        #[cfg(feature = "leveldb")]
        BackendKind::LevelDb => {
            Arc::new(LevelDbStore::open_with_clock(ns, config.leveldb.clone(), clock).await?)
        }
        #[cfg(feature = "redis")]
        BackendKind::Redis => {
            Arc::new(RedisStore::open_with_clock(ns, config.redis.clone(), clock).await?)
        }
        #[cfg(feature = "dynamodb")]
        BackendKind::DynamoDb => {
            Arc::new(DynamoDbStore::open_with_clock(ns, config.dynamodb.clone(), clock).await?)
        }
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => {
            Arc::new(PostgresStore::open_with_clock(ns, config.postgres.clone(), clock).await?)
        }
        // Reachable unless every backend feature is on.
        #[allow(unreachable_patterns)]
        other => return Err(not_built(other)),
    })
}

/// Opens the store that `config` describes, with its document layer.
///
/// The plain keys are those [`open`] gives, with every operation of
/// [`Store`]; documents live apart from them (see [`DocumentStore`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// let store = kvs::open_documents(&kvs::Config::new(kvs::BackendKind::Memory)).await?;
/// assert!(store.query("users", &serde_json::Map::new()).await?.is_empty());
/// # Ok(())
/// # }
/// ```
pub async fn open_documents(config: &Config) -> Result<Arc<dyn DocumentStore>> {
    open_documents_with_clock(config, Arc::new(SystemClock)).await
}

/// Like [`open_documents`], reading time from `clock` (see [`open_with_clock`]).
pub async fn open_documents_with_clock(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn DocumentStore>> {
    layer::apply_documents(config, open_backend_documents(config, clock).await?)
}

/// The backend's document store, without the configured layers.
async fn open_backend_documents(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn DocumentStore>> {
    let ns = config.namespace.as_str();
    match config.backend {
        BackendKind::Memory => {
            MemoryStore::open_documents_with_clock(ns, config.memory.clone(), clock).await
        }
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => {
            SqliteStore::open_documents_with_clock(ns, config.sqlite.clone(), clock).await
        }
        #[cfg(feature = "leveldb")]
        BackendKind::LevelDb => {
            LevelDbStore::open_documents_with_clock(ns, config.leveldb.clone(), clock).await
        }
        #[cfg(feature = "redis")]
        BackendKind::Redis => {
            RedisStore::open_documents_with_clock(ns, config.redis.clone(), clock).await
        }
        #[cfg(feature = "dynamodb")]
        BackendKind::DynamoDb => {
            DynamoDbStore::open_documents_with_clock(ns, config.dynamodb.clone(), clock).await
        }
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => {
            PostgresStore::open_documents_with_clock(ns, config.postgres.clone(), clock).await
        }
        // Reachable unless every backend feature is on.
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// The error for a backend whose cargo feature is off in this build.
#[cfg_attr(
    all(
        feature = "sqlite",
        feature = "leveldb",
        feature = "redis",
        feature = "dynamodb",
        feature = "postgres"
    ),
    allow(dead_code)
)]
fn not_built(backend: BackendKind) -> Error {
    let feature = backend.name();
    Error::unsupported(format!(
        "the {backend} backend is not compiled in; enable the cargo feature `{feature}` of kvs"
    ))
}
