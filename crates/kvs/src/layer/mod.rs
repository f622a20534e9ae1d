//! Layers: wrappers that add one behaviour around any store, and are
//! stores themselves, so that they stack.
//!
//! A layer is built in code and put on with [`LayerExt::layer`], or
//! declared in the configuration under `layers:`, in which case
//! [`open`](crate::open) and [`open_documents`](crate::open_documents)
//! return the stack:
//!
//! ```yaml
//! type: sqlite
//! sqlite: { path: ./kvs.db }
//! layers:                     # the first wraps the store, the next wraps that
//!   - ttl_clamp: { max: 24h, default: 1h }
//!   - limit_size: { max_value_bytes: 1048576 }
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kvs::Result<()> {
//! use kvs::layer::{LayerExt, LimitSize, ReadOnly};
//!
//! let store = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?;
//! store.set("greeting", b"hello", None).await?;
//! let guarded = store.clone().layer(LimitSize::new(4)).layer(ReadOnly);
//! assert_eq!(guarded.get("greeting").await?, &b"hello"[..]);
//! assert!(matches!(guarded.set("k", b"v", None).await, Err(kvs::Error::ReadOnly { .. })));
//! # Ok(())
//! # }
//! ```
//!
//! # What every layer keeps
//!
//! Keys, TTLs and listing order pass through unchanged: a layered store
//! keeps the whole [`Store`] contract, except where a layer's own docs say
//! what it changes (a guard refuses some calls; a TTL clamp moves TTLs).
//! Every wrapper writes its methods with the crate's one forwarding macro,
//! so a method added to the trait cannot be missed by any layer. Documents
//! pass through every layer untouched unless its docs say otherwise.
//!
//! | layer | configuration | what it does |
//! |-------|---------------|--------------|
//! | [`ReadOnly`] | `read_only` | every write is [`Error::ReadOnly`](crate::Error::ReadOnly) |
//! | [`LimitSize`] | `limit_size: { max_value_bytes: N }` | values over N bytes are refused before any I/O |
//! | [`TtlClamp`] | `ttl_clamp: { min, max, default }` | TTLs raised to `min`, lowered to `max`; `default` for writes without one |
//! | `Compression` (feature `compression`) | `compression: { algorithm: zstd, threshold: 1024, level: 3 }` | values from `threshold` bytes up stored as zstd or LZ4 frames |
//! | [`Observability`] | `observability: { metrics: true, keys: false }` | a `tracing` span and `metrics` for every call |
//! | [`Timeout`] | `timeout: 2s` | a call not answered in time fails (temporary) |
//! | [`Retry`] | `retry: { attempts: 3, initial: 50ms, max: 2s }` | temporary failures of calls safe to repeat are tried again, with backoff and jitter |
//! | `Encryption` (feature `encryption`) | `encryption: { keys: [{ id: k1, env: KVS_KEY }] }` | values encrypted with XChaCha20-Poly1305, bound to their namespace and key |
//!
//! The value-transforming layers (compression, encryption) are each a
//! [`ValueTransform`] run by one [`TransformStore`]; write your own the
//! same way. To compress and encrypt, list `encryption` first: it then
//! wraps the store and encrypts what compression has already shrunk
//! (ciphertext does not compress).

use crate::{DocumentStore, Result, Store};
use std::sync::Arc;

/// A wrapper that can be put around any store, key-value or document.
///
/// Implementations return their wrapper store around `inner`; the wrapper
/// must implement every method (write it with the forwarding macros, or
/// list the methods it changes). See the [module docs](self).
pub trait Layer: Send + Sync {
    /// `inner` with this layer around it.
    fn wrap(&self, inner: Arc<dyn Store>) -> Arc<dyn Store>;

    /// `inner` with this layer around it, documents included.
    fn wrap_documents(&self, inner: Arc<dyn DocumentStore>) -> Arc<dyn DocumentStore>;
}

/// `impl Layer for $layer`: both methods build the wrapper with `$make`,
/// an expression of the layer (`$this`, a `&$layer`) and `$inner`, the
/// store to wrap, once as `Arc<dyn Store>` and once as
/// `Arc<dyn DocumentStore>`.
macro_rules! layer_wraps_with {
    ($layer:ty, |$this:ident, $inner:ident| $make:expr) => {
        impl $crate::layer::Layer for $layer {
            fn wrap(
                &self,
                $inner: std::sync::Arc<dyn $crate::Store>,
            ) -> std::sync::Arc<dyn $crate::Store> {
                #[allow(unused_variables)]
                let $this = self;
                std::sync::Arc::new($make)
            }

            fn wrap_documents(
                &self,
                $inner: std::sync::Arc<dyn $crate::DocumentStore>,
            ) -> std::sync::Arc<dyn $crate::DocumentStore> {
                #[allow(unused_variables)]
                let $this = self;
                std::sync::Arc::new($make)
            }
        }
    };
}
pub(crate) use layer_wraps_with;

mod around;
#[cfg(feature = "compression")]
#[cfg_attr(docsrs, doc(cfg(feature = "compression")))]
pub mod compression;
pub(crate) mod config;
#[cfg(feature = "encryption")]
#[cfg_attr(docsrs, doc(cfg(feature = "encryption")))]
pub mod encryption;
mod limit_size;
mod observability;
mod read_only;
mod retry;
mod timeout;
mod transform;
mod ttl_clamp;

pub use around::AroundStore;
#[cfg(feature = "compression")]
pub use compression::{Compression, CompressionStore};
pub use config::{CompressionAlgorithm, EncryptionKeyConfig, LayerConfig};
#[cfg(feature = "encryption")]
pub use encryption::{Encryption, EncryptionKey, EncryptionStore};
pub use limit_size::{LimitSize, LimitSizeStore};
pub use observability::{Observability, ObservabilityStore};
pub use read_only::{ReadOnly, ReadOnlyStore};
pub use retry::{Retry, RetryStore};
pub use timeout::{Timeout, TimeoutStore};
pub use transform::{TransformStore, ValueTransform};
pub use ttl_clamp::{TtlClamp, TtlClampStore};

/// `store.layer(a).layer(b)`: `a` wraps the store, `b` wraps `a`.
///
/// For `Arc<dyn Store>` and `Arc<dyn DocumentStore>`, what
/// [`open`](crate::open) and [`open_documents`](crate::open_documents)
/// return.
pub trait LayerExt: Sized {
    /// This store with `layer` around it.
    fn layer<L: Layer>(self, layer: L) -> Self;
}

impl LayerExt for Arc<dyn Store> {
    fn layer<L: Layer>(self, layer: L) -> Arc<dyn Store> {
        layer.wrap(self)
    }
}

impl LayerExt for Arc<dyn DocumentStore> {
    fn layer<L: Layer>(self, layer: L) -> Arc<dyn DocumentStore> {
        layer.wrap_documents(self)
    }
}

/// `store`, opened from `config`, inside every layer of its `layers`, the
/// first innermost.
pub(crate) fn apply(config: &crate::Config, store: Arc<dyn Store>) -> Result<Arc<dyn Store>> {
    config
        .layers
        .iter()
        .try_fold(store, |store, layer| Ok(layer.build(config)?.wrap(store)))
}

/// [`apply`] for a document store.
pub(crate) fn apply_documents(
    config: &crate::Config,
    store: Arc<dyn DocumentStore>,
) -> Result<Arc<dyn DocumentStore>> {
    config.layers.iter().try_fold(store, |store, layer| {
        Ok(layer.build(config)?.wrap_documents(store))
    })
}

/// A boxed layer (what [`LayerConfig::build`] returns) is a layer too.
impl<L: Layer + ?Sized> Layer for Box<L> {
    fn wrap(&self, inner: Arc<dyn Store>) -> Arc<dyn Store> {
        (**self).wrap(inner)
    }

    fn wrap_documents(&self, inner: Arc<dyn DocumentStore>) -> Arc<dyn DocumentStore> {
        (**self).wrap_documents(inner)
    }
}
