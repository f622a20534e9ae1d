//! The crate's one error type.
//!
//! Backends keep their own error types private and map them into [`Error`]:
//! the cases a caller can act on become their own variant (`NotFound`,
//! `ValueTooLarge`, ...) and everything else is boxed into
//! [`Error::Backend`], which names the backend and keeps the source.

use std::fmt;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `kvs`.
///
/// Messages name what went wrong and where (backend, key or path) in plain
/// words. Keys and namespaces are shown shortened (see [`Error::InvalidKey`])
/// so that a 1 MiB key never ends up in a log line.
///
/// ```
/// use kvs::Error;
///
/// assert_eq!(Error::NotFound.to_string(), "kvs: key not found");
/// assert_eq!(Error::Closed.to_string(), "kvs: store is closed");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key is absent or has expired.
    #[error("kvs: key not found")]
    NotFound,

    /// The store was closed with [`Store::close`](crate::Store::close).
    #[error("kvs: store is closed")]
    Closed,

    /// The key is empty or longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes.
    #[error("kvs: invalid key {}: {reason}", Shortened(key))]
    InvalidKey {
        /// The offending key (the store keeps no copy of it).
        key: String,
        /// Why it was refused.
        reason: String,
    },

    /// The namespace is longer than [`MAX_NAMESPACE_LEN`](crate::MAX_NAMESPACE_LEN) bytes.
    #[error("kvs: invalid namespace {}: {reason}", Shortened(namespace))]
    InvalidNamespace {
        /// The offending namespace.
        namespace: String,
        /// Why it was refused.
        reason: String,
    },

    /// The configuration could not be parsed or is incomplete.
    #[error("kvs: invalid configuration: {message}")]
    InvalidConfig {
        /// What is wrong, naming the field or value.
        message: String,
    },

    /// Opened with `create_if_missing: false`, and there is no store at the
    /// path yet; nothing was created.
    #[error("kvs: no store at {} (nothing has been written there yet)", path.display())]
    NoStore {
        /// The file or directory that does not exist.
        path: std::path::PathBuf,
    },

    /// The value is larger than the backend can hold; the old value is untouched.
    #[error(
        "kvs: value of {size} bytes for key {} is too large for {backend} (limit {limit} bytes)",
        Shortened(key)
    )]
    ValueTooLarge {
        /// The backend that refused the value.
        backend: &'static str,
        /// The key the value was meant for.
        key: String,
        /// The size of the refused value, in bytes.
        size: usize,
        /// The largest value the backend accepts, in bytes.
        limit: usize,
    },

    /// The stored value does not suit the operation (e.g. `increment` of a
    /// value that is not a decimal integer, or an overflow); nothing changed.
    #[error("kvs: value of key {} {reason}", Shortened(key))]
    InvalidValue {
        /// The key whose value was refused.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The TTL is longer than [`MAX_TTL`](crate::expiry::MAX_TTL); nothing
    /// was written and the key keeps its value and TTL.
    #[error(
        "kvs: TTL of {} s for key {} is too long (the limit, on every backend, is {} s)",
        ttl.as_secs(),
        Shortened(key),
        crate::expiry::MAX_TTL.as_secs()
    )]
    InvalidTtl {
        /// The key the TTL was meant for.
        key: String,
        /// The refused TTL.
        ttl: std::time::Duration,
    },

    /// A document filter that cannot be evaluated (for example an unknown `$` operator).
    #[error("kvs: invalid query: {message}")]
    InvalidQuery {
        /// What is wrong with the filter.
        message: String,
    },

    /// A write on a store opened read-only (the
    /// [`read_only`](crate::layer::ReadOnly) layer); nothing changed.
    #[error("kvs: {operation} refused: the store is read-only")]
    ReadOnly {
        /// The refused operation (`"set"`, `"delete"`, ...).
        operation: &'static str,
    },

    /// The backend is not compiled in, or the operation is not possible on it.
    #[error("kvs: unsupported: {message}")]
    Unsupported {
        /// What is unsupported, and what to do about it (e.g. which cargo feature to enable).
        message: String,
    },

    /// A cache's loader failed (see [`Cache::get_or_set`](crate::cache::Cache::get_or_set)).
    /// Every caller that waited on the same load gets this error with the
    /// same `source`; it is not cached unless negative caching is on.
    #[error("kvs: loading {} failed: {source}", Shortened(key))]
    Load {
        /// The key whose value was being loaded.
        key: String,
        /// What the loader returned (or that it panicked).
        #[source]
        source: std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// The backend itself failed (I/O error, server error, corrupt file, ...).
    #[error("kvs: {backend} backend failed: {context}: {source}")]
    Backend {
        /// The backend's name (`"sqlite"`, `"redis"`, ...).
        backend: &'static str,
        /// What kvs was doing, with the key or path involved.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
        /// Whether trying again may succeed (see [`Error::is_temporary`]).
        temporary: bool,
    },
}

impl Error {
    /// Whether the same call may succeed if tried again later: a timeout,
    /// a refused, reset or dropped connection, throttling, or a busy or
    /// locked file. A bad request (an invalid key, a value too large, a
    /// closed store, a corrupt file, a wrong password) is not temporary.
    ///
    /// Each backend decides this in the one place where it maps its
    /// engine's errors, so a caller (or a retry layer) can tell a failure
    /// worth retrying from one that will only fail again.
    ///
    /// ```
    /// assert!(!kvs::Error::NotFound.is_temporary());
    /// assert!(!kvs::Error::Closed.is_temporary());
    /// ```
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                temporary: true,
                ..
            }
        )
    }

    /// The variant's name in snake case (`"not_found"`, `"backend"`, ...),
    /// with `"temporary"` for a temporary backend failure: a label for
    /// metrics and logs that never carries a key or a message.
    ///
    /// ```
    /// assert_eq!(kvs::Error::NotFound.kind(), "not_found");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound => "not_found",
            Error::Closed => "closed",
            Error::InvalidKey { .. } => "invalid_key",
            Error::InvalidNamespace { .. } => "invalid_namespace",
            Error::InvalidConfig { .. } => "invalid_config",
            Error::NoStore { .. } => "no_store",
            Error::ValueTooLarge { .. } => "value_too_large",
            Error::InvalidValue { .. } => "invalid_value",
            Error::InvalidTtl { .. } => "invalid_ttl",
            Error::InvalidQuery { .. } => "invalid_query",
            Error::ReadOnly { .. } => "read_only",
            Error::Unsupported { .. } => "unsupported",
            Error::Load { .. } => "load",
            Error::Backend {
                temporary: true, ..
            } => "temporary",
            Error::Backend { .. } => "backend",
        }
    }

    /// This error, marked temporary if `temporary` (only an
    /// [`Error::Backend`] can be).
    #[allow(dead_code)] // used by the persistent and networked backends
    pub(crate) fn temporary_if(mut self, temporary: bool) -> Error {
        if let Error::Backend { temporary: t, .. } = &mut self {
            *t = temporary;
        }
        self
    }

    /// The same error again, for a second caller of one shared outcome
    /// (the waiters of a cache load). Every field is copied, except that
    /// a backend error's source becomes its message: the source itself is
    /// not `Clone`.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::NotFound => Error::NotFound,
            Error::Closed => Error::Closed,
            Error::InvalidKey { key, reason } => Error::InvalidKey {
                key: key.clone(),
                reason: reason.clone(),
            },
            Error::InvalidNamespace { namespace, reason } => Error::InvalidNamespace {
                namespace: namespace.clone(),
                reason: reason.clone(),
            },
            Error::InvalidConfig { message } => Error::config(message.clone()),
            Error::NoStore { path } => Error::NoStore { path: path.clone() },
            Error::ValueTooLarge {
                backend,
                key,
                size,
                limit,
            } => Error::ValueTooLarge {
                backend,
                key: key.clone(),
                size: *size,
                limit: *limit,
            },
            Error::InvalidValue { key, reason } => Error::InvalidValue {
                key: key.clone(),
                reason: reason.clone(),
            },
            Error::InvalidTtl { key, ttl } => Error::InvalidTtl {
                key: key.clone(),
                ttl: *ttl,
            },
            Error::InvalidQuery { message } => Error::InvalidQuery {
                message: message.clone(),
            },
            Error::ReadOnly { operation } => Error::ReadOnly { operation },
            Error::Unsupported { message } => Error::unsupported(message.clone()),
            Error::Load { key, source } => Error::Load {
                key: key.clone(),
                source: std::sync::Arc::clone(source),
            },
            Error::Backend {
                backend,
                context,
                source,
                temporary,
            } => Error::Backend {
                backend,
                context: context.clone(),
                source: source.to_string().into(),
                temporary: *temporary,
            },
        }
    }

    /// An [`Error::InvalidConfig`] with the given message.
    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::InvalidConfig {
            message: message.into(),
        }
    }

    /// An [`Error::Unsupported`] with the given message.
    pub(crate) fn unsupported(message: impl Into<String>) -> Error {
        Error::Unsupported {
            message: message.into(),
        }
    }

    /// `Err(ValueTooLarge)` if a value of `size` bytes for `key` exceeds
    /// `limit`, the most `backend` can hold.
    #[allow(dead_code)] // used by the backends that are cargo features
    pub(crate) fn check_value_size(
        backend: &'static str,
        key: &str,
        size: usize,
        limit: usize,
    ) -> Result<()> {
        if size > limit {
            return Err(Error::ValueTooLarge {
                backend,
                key: key.to_owned(),
                size,
                limit,
            });
        }
        Ok(())
    }

    /// An [`Error::Backend`] for `backend`, saying what was being done; not
    /// temporary unless marked with [`Error::temporary_if`].
    #[allow(dead_code)] // used by the persistent and networked backends
    pub(crate) fn backend(
        backend: &'static str,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Error {
        Error::Backend {
            backend,
            context: context.into(),
            source: source.into(),
            temporary: false,
        }
    }
}

/// Displays a user-supplied string quoted, escaped and cut to a readable length.
pub(crate) struct Shortened<'a>(pub(crate) &'a str);

impl fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        let s = self.0;
        if s.len() <= SHOWN {
            return write!(f, "{s:?}");
        }
        let mut cut = SHOWN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        write!(f, "{:?}… ({} bytes)", &s[..cut], s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_shortened_in_messages() {
        let key = "é".repeat(600);
        let err = Error::InvalidKey {
            key,
            reason: "too long".into(),
        };
        let text = err.to_string();
        assert!(text.len() < 250, "{text}");
        assert!(text.contains("(1200 bytes)"), "{text}");
    }

    #[test]
    fn error_is_send_sync_and_static() {
        fn assert_traits<T: std::error::Error + Send + Sync + 'static>() {}
        assert_traits::<Error>();
    }
}
