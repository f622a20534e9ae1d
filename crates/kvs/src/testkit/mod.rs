//! The conformance suite: one set of cases that every backend runs.
//!
//! **Not covered by semver**: cases are added as the contract grows.
//!
//! A backend's test file provides a [`Harness`] (how to open a store for a
//! namespace, what the backend can hold, how to move time) and expands
//! [`conformance_tests!`](crate::conformance_tests) with a function that
//! makes one:
//!
//! ```no_run
//! async fn harness() -> Option<kvs::testkit::ConfigHarness> {
//!     Some(kvs::testkit::ConfigHarness::memory())
//! }
//! kvs::conformance_tests!(harness);
//! ```
//!
//! [`ConfigHarness`] opens stores as users do: from a [`Config`](crate::Config)
//! parsed from YAML or a store URL, through `kvs::open` and
//! `kvs::open_documents`. The macro expands to one `#[test]` per case in
//! [`cases`], each on a fresh harness, and to each key-value case a second
//! time in the module `through_documents`, on the store that
//! `open_documents` returns ([`ThroughDocuments`]). Most cases run on a current-thread runtime (the
//! `#[tokio::test]` default); the concurrency cases run on a multi-thread
//! one. The harness function returns `None` to skip a backend whose server
//! is not reachable (see [`env::server`]); it then prints a loud line, and
//! with `KVS_TEST_REQUIRE_ALL=1` (set in CI) panics instead.
//!
//! Third-party backends can run the same suite: enable the `testkit`
//! feature in their dev-dependencies and implement [`Harness`].

pub mod cases;
pub mod env;
mod front_door;
mod macros;
mod model;

pub use front_door::{ConfigHarness, ThroughDocuments};

use crate::{DocumentStore, Result, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a backend can do where backends legitimately differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The largest value the backend stores, if it has a limit below 1 MiB
    /// (DynamoDB's 400 KB item). Cases then expect `ValueTooLarge` above it.
    pub max_value_size: Option<usize>,
    /// Whether two stores opened for the same namespace see the same data
    /// (true for files and servers; false for memory, where each `open` is
    /// private).
    pub shared_namespaces: bool,
    /// Whether data outlives the stores: closing every store and opening the
    /// namespace again finds it (files and servers, not memory).
    pub persistent: bool,
    /// Whether [`Harness::advance`] moves an injected clock (instant) rather
    /// than sleeping. The model test only uses short TTLs when it does.
    pub manual_clock: bool,
    /// Operations per task in the concurrency case (64 tasks; default
    /// 500). An emulator that answers a few hundred calls a second (moto)
    /// runs fewer: the case checks isolation and consistency, which 64
    /// tasks show at any length, not throughput.
    pub concurrent_ops: usize,
}

impl Capabilities {
    /// Capabilities of a backend with no value limit, private stores and a
    /// manual clock (the memory backend).
    pub fn new() -> Capabilities {
        Capabilities {
            max_value_size: None,
            shared_namespaces: false,
            persistent: false,
            manual_clock: true,
            concurrent_ops: 500,
        }
    }
}

impl Default for Capabilities {
    fn default() -> Capabilities {
        Capabilities::new()
    }
}

/// How the suite reaches the backend under test.
#[async_trait::async_trait]
pub trait Harness: Send + Sync + 'static {
    /// Opens a store for `namespace` on the backend under test.
    ///
    /// A harness for a shared server should map `namespace` to one unique to
    /// this harness (for example with [`unique_namespace`]), so that runs and
    /// cases never meet, while keeping the characters the case chose.
    async fn open(&self, namespace: &str) -> Result<Arc<dyn Store>>;

    /// Opens the document store of `namespace` (the same namespace mapping
    /// as [`Harness::open`]).
    async fn open_documents(&self, namespace: &str) -> Result<Arc<dyn DocumentStore>>;

    /// What the backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Moves the time the stores see forward by `by`: advances an injected
    /// clock, or sleeps.
    async fn advance(&self, by: Duration);
}

/// A namespace prefix unique to this process and call: `t<pid>x<n>-`.
///
/// ```
/// let a = kvs::testkit::unique_namespace();
/// let b = kvs::testkit::unique_namespace();
/// assert_ne!(a, b);
/// ```
pub fn unique_namespace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t{}x{}x{nanos}-",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Which tokio runtime a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `#[tokio::test]`'s default.
    CurrentThread,
    /// Two worker threads, for cases about concurrency.
    MultiThread,
}

/// A tokio runtime of the given flavor, with I/O and timers enabled.
///
/// # Panics
///
/// If the runtime cannot be built (the test cannot run at all then).
pub fn runtime(flavor: Flavor) -> tokio::runtime::Runtime {
    let mut builder = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Flavor::MultiThread => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    };
    match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime for the conformance suite: {e}"),
    }
}
