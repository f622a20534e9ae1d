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
//! - [`store`](Store): the `Store` trait, the contract every backend keeps;
//! - [`error`](Error): the one error type;
//! - [`config`](Config): configuration files and Go-style durations;
//! - [`key`]: key and namespace rules and the encodings every backend shares;
//! - [`expiry`]: deadlines, the liveness rule, and the injectable clock;
//! - `backend/`: one module per engine;
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
//! | `full`     | all of the above                | no      |
//! | `testkit`  | `kvs::testkit`, not semver-stable | no    |
//!
//! A backend that is not compiled in (or not built yet) makes [`open`]
//! return [`Error::Unsupported`] naming the feature, never a panic.

#![warn(missing_docs)]

mod backend;
mod config;
mod document;
mod duration;
mod error;
pub mod expiry;
pub mod filter;
pub mod key;
#[cfg_attr(not(any(feature = "sqlite", feature = "leveldb")), allow(dead_code))]
mod registry;
mod store;
mod store_url;
#[cfg(feature = "leveldb")]
mod worker;

#[cfg(feature = "testkit")]
pub mod testkit;

#[cfg(feature = "dynamodb")]
pub use backend::dynamodb::DynamoDbStore;
#[cfg(feature = "leveldb")]
pub use backend::leveldb::LevelDbStore;
pub use backend::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use backend::redis::RedisStore;
#[cfg(feature = "sqlite")]
pub use backend::sqlite::SqliteStore;
pub use config::{
    BackendKind, Config, DynamoDbConfig, LevelDbConfig, MemoryConfig, RedisConfig, SqliteConfig,
    DEFAULT_CLEANUP_INTERVAL,
};
pub use document::{Document, DocumentStore, MAX_COLLECTION_LEN, MAX_ID_LEN};
pub use duration::{format_duration, parse_duration};
pub use error::{Error, Result};
pub use store::{KeyStream, Store, StoreFuture};

/// Re-exported so that users name the same `Bytes` type the trait returns.
pub use bytes::Bytes;

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
    match config.backend {
        BackendKind::Memory => Ok(Arc::new(MemoryStore::new(
            &config.namespace,
            config.memory.clone(),
        )?)),
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => Ok(Arc::new(
            SqliteStore::open(&config.namespace, config.sqlite.clone()).await?,
        )),
        #[cfg(feature = "leveldb")]
        BackendKind::LevelDb => Ok(Arc::new(
            LevelDbStore::open(&config.namespace, config.leveldb.clone()).await?,
        )),
        #[cfg(feature = "redis")]
        BackendKind::Redis => Ok(Arc::new(
            RedisStore::open(&config.namespace, config.redis.clone()).await?,
        )),
        #[cfg(feature = "dynamodb")]
        BackendKind::DynamoDb => Ok(Arc::new(
            DynamoDbStore::open(&config.namespace, config.dynamodb.clone()).await?,
        )),
        // Reachable unless every backend feature is on.
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// Opens the store that `config` describes, with its document layer.
///
/// The plain keys are those [`open`] gives; documents live apart from them
/// (see [`DocumentStore`]).
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
    let clock = Arc::new(crate::expiry::SystemClock);
    match config.backend {
        BackendKind::Memory => {
            MemoryStore::open_documents(&config.namespace, config.memory.clone(), clock)
        }
        #[cfg(feature = "leveldb")]
        BackendKind::LevelDb => {
            LevelDbStore::open_documents(&config.namespace, config.leveldb.clone(), clock).await
        }
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => Ok(Arc::new(
            SqliteStore::open(&config.namespace, config.sqlite.clone()).await?,
        )),
        #[cfg(feature = "redis")]
        BackendKind::Redis => {
            RedisStore::open_documents(&config.namespace, config.redis.clone()).await
        }
        // Reachable unless every backend feature is on.
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// The error for a backend that this build cannot open: either its cargo
/// feature is off, or this version does not implement it yet.
fn not_built(backend: BackendKind) -> Error {
    let feature = backend.name();
    let compiled_in = match backend {
        BackendKind::Memory => true,
        BackendKind::Sqlite => cfg!(feature = "sqlite"),
        BackendKind::LevelDb => cfg!(feature = "leveldb"),
        BackendKind::Redis => cfg!(feature = "redis"),
        BackendKind::DynamoDb => cfg!(feature = "dynamodb"),
    };
    if compiled_in {
        Error::unsupported(format!(
            "the {backend} backend (cargo feature `{feature}`) is not implemented in kvs {} yet",
            env!("CARGO_PKG_VERSION")
        ))
    } else {
        Error::unsupported(format!(
            "the {backend} backend is not compiled in; enable the cargo feature `{feature}` of kvs"
        ))
    }
}
