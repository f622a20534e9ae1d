//! `layers:` in a configuration file: one [`LayerConfig`] per entry.

#[cfg(feature = "compression")]
use super::Compression;
use super::Layer;
use super::{LimitSize, ReadOnly, TtlClamp};
use crate::Result;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// One entry of `layers:` in a configuration file.
///
/// ```
/// use std::time::Duration;
/// use kvs::layer::LayerConfig;
///
/// let config = kvs::Config::from_yaml(
///     "type: memory\nlayers:\n  - read_only\n  - limit_size: { max_value_bytes: 1024 }\n",
/// )
/// .unwrap();
/// assert_eq!(
///     config.layers,
///     [LayerConfig::ReadOnly, LayerConfig::LimitSize { max_value_bytes: 1024 }]
/// );
/// let err = kvs::Config::from_yaml("type: memory\nlayers: [compresion]").unwrap_err();
/// assert!(err.to_string().contains("compresion"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum LayerConfig {
    /// [`ReadOnly`]: every write refused.
    ReadOnly,
    /// [`LimitSize`]: values over `max_value_bytes` refused.
    LimitSize {
        /// The largest value accepted, in bytes.
        max_value_bytes: usize,
    },
    /// [`TtlClamp`]: TTLs kept between `min` and `max`, `default` for
    /// writes that give none.
    TtlClamp {
        /// The shortest TTL a write may set.
        #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
        min: Option<Duration>,
        /// The longest TTL a write may set.
        #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
        max: Option<Duration>,
        /// The TTL of a write that gives none.
        #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
        default: Option<Duration>,
    },
    /// `Compression` (feature `compression`): values from `threshold`
    /// bytes up stored compressed.
    Compression {
        /// `zstd` (the default) or `lz4`.
        #[serde(default)]
        algorithm: CompressionAlgorithm,
        /// The smallest value compressed, in bytes (default 1024).
        #[serde(default = "default_threshold")]
        threshold: usize,
        /// zstd's level, 1–22 (default 3).
        #[serde(default = "default_level")]
        level: i32,
    },
    /// [`Observability`](super::Observability): a `tracing` span and
    /// `metrics` for every call.
    Observability {
        /// Record metrics (default `true`).
        #[serde(default = "yes")]
        metrics: bool,
        /// Put the key of single-key calls in the span (default `false`).
        #[serde(default)]
        keys: bool,
    },
    /// [`Timeout`](super::Timeout): every call gets this long to answer
    /// (`timeout: 2s`).
    Timeout(#[serde(deserialize_with = "crate::config::de_duration")] Duration),
    /// [`Retry`](super::Retry): temporary failures of calls that are safe
    /// to repeat are tried again.
    Retry {
        /// Tries in all, the first included (default 3).
        #[serde(default = "default_attempts")]
        attempts: u32,
        /// The first pause (default 50ms); each next one doubles.
        #[serde(
            default = "default_initial",
            deserialize_with = "crate::config::de_duration"
        )]
        initial: Duration,
        /// The longest pause (default 2s).
        #[serde(
            default = "default_max_pause",
            deserialize_with = "crate::config::de_duration"
        )]
        max: Duration,
    },
    /// [`Tiered`](crate::cache::Tiered): a bounded memory tier in front of
    /// the store, kept coherent between instances by a Redis `bus`.
    Tiered {
        /// The most entries the local tier holds (default 10,000 when
        /// neither bound is given).
        #[serde(default)]
        max_entries: Option<usize>,
        /// The most bytes of keys and values it holds.
        #[serde(default)]
        max_bytes: Option<usize>,
        /// The longest an entry stays in it (default 60s).
        #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
        ttl: Option<Duration>,
        /// A Redis URL for invalidations between instances (feature
        /// `redis`); without one, `ttl` bounds how stale the tier can be.
        #[serde(default)]
        bus: Option<crate::cache::BusUrl>,
    },
    /// `Encryption` (feature `encryption`): values encrypted with
    /// XChaCha20-Poly1305, bound to their namespace and key.
    Encryption {
        /// The keys, newest first: writes use the first, reads any.
        keys: Vec<EncryptionKeyConfig>,
        /// Read values that are not encrypted as they are (while a store
        /// written without the layer is being migrated); default `false`,
        /// when such a value is an error.
        #[serde(default)]
        accept_plaintext: bool,
    },
}

/// One key of [`LayerConfig::Encryption`]: an id, and 32 bytes in
/// standard base64 given in the file (`key`) or, better, in an
/// environment variable (`env`). `Debug` never shows the key.
///
/// ```
/// let config = kvs::Config::from_yaml(
///     "type: memory\nlayers:\n  - encryption: { keys: [{ id: k1, key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= }] }\n",
/// );
/// # #[cfg(feature = "encryption")]
/// assert!(!format!("{:?}", config.unwrap()).contains("AAAAAAAA"));
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionKeyConfig {
    /// The key's name, stored with every value it encrypts (1 to 64
    /// bytes; not secret).
    pub id: String,
    /// The key itself, base64.
    #[serde(default)]
    pub key: Option<String>,
    /// The environment variable that holds the key, base64.
    #[serde(default)]
    pub env: Option<String>,
}

impl fmt::Debug for EncryptionKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeyConfig")
            .field("id", &self.id)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("env", &self.env)
            .finish()
    }
}

/// The compressor of [`LayerConfig::Compression`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CompressionAlgorithm {
    /// zstd.
    #[default]
    Zstd,
    /// LZ4.
    Lz4,
}

fn default_attempts() -> u32 {
    3
}

fn default_initial() -> Duration {
    Duration::from_millis(50)
}

fn default_max_pause() -> Duration {
    Duration::from_secs(2)
}

fn yes() -> bool {
    true
}

fn default_threshold() -> usize {
    1024
}

fn default_level() -> i32 {
    3
}

impl LayerConfig {
    /// The layer this entry describes, for the store `config` opens: the
    /// encryption layer binds its namespace into every value, the
    /// observability layer labels calls with its backend and namespace.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for settings
    /// that cannot work together (a `min` above the `max`, ...) or a key
    /// that cannot be read; [`Error::Unsupported`](crate::Error::Unsupported)
    /// for a layer whose cargo feature is off.
    pub fn build(&self, config: &crate::Config) -> Result<Box<dyn Layer>> {
        let namespace = config.namespace.as_str();
        Ok(match self {
            LayerConfig::ReadOnly => Box::new(ReadOnly),
            LayerConfig::LimitSize { max_value_bytes } => {
                Box::new(LimitSize::new(*max_value_bytes))
            }
            LayerConfig::TtlClamp { min, max, default } => {
                Box::new(TtlClamp::new(*min, *max, *default)?)
            }
            #[cfg(feature = "compression")]
            LayerConfig::Compression {
                algorithm,
                threshold,
                level,
            } => Box::new(Compression::new(*algorithm, *threshold, *level)?),
            #[cfg(not(feature = "compression"))]
            LayerConfig::Compression { .. } => return Err(not_compiled_in("compression")),
            #[cfg(feature = "encryption")]
            LayerConfig::Encryption {
                keys,
                accept_plaintext,
            } => Box::new(
                super::Encryption::from_config(namespace, keys)?
                    .accept_plaintext(*accept_plaintext),
            ),
            LayerConfig::Timeout(limit) => {
                Box::new(super::Timeout::new(*limit)?.for_backend(config.backend.name()))
            }
            LayerConfig::Retry {
                attempts,
                initial,
                max,
            } => Box::new(super::Retry::new(*attempts, *initial, *max)?),
            LayerConfig::Observability { metrics, keys } => Box::new(
                super::Observability::new(config.backend.name(), namespace)
                    .metrics(*metrics)
                    .keys(*keys),
            ),
            #[cfg(not(feature = "encryption"))]
            LayerConfig::Encryption { .. } => return Err(not_compiled_in("encryption")),
            LayerConfig::Tiered {
                max_entries,
                max_bytes,
                ttl,
                bus,
            } => {
                let entries = match (max_entries, max_bytes) {
                    (None, None) => Some(DEFAULT_TIER_ENTRIES),
                    (entries, _) => *entries,
                };
                let mut tiered = crate::cache::Tiered::bounded(entries, *max_bytes)?
                    .ttl(ttl.unwrap_or(Duration::ZERO));
                if let Some(url) = bus {
                    tiered = tiered.bus(&url.0, namespace)?;
                }
                Box::new(tiered)
            }
        })
    }
}

/// The local tier's bound when a configuration gives none.
const DEFAULT_TIER_ENTRIES: usize = 10_000;

/// The error for a layer whose cargo feature (named as the layer) is off.
#[cfg(not(all(feature = "compression", feature = "encryption")))]
fn not_compiled_in(layer: &str) -> crate::Error {
    crate::Error::unsupported(format!(
        "the {layer} layer is not compiled in; build kvs with the cargo feature `{layer}` \
         (kvs-cli: `--features {layer}`)"
    ))
}

/// `layers:` as a list whose entries are maps (`- limit_size: { ... }`) or
/// bare names (`- read_only`, `- compression` with every setting at its
/// default).
pub(crate) fn de_layers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<LayerConfig>, D::Error> {
    struct Entry(LayerConfig);

    impl<'de> Deserialize<'de> for Entry {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Entry, D::Error> {
            d.deserialize_any(EntryVisitor)
        }
    }

    struct EntryVisitor;

    impl<'de> Visitor<'de> for EntryVisitor {
        type Value = Entry;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a layer: its name, or its name and settings (`limit_size: { max_value_bytes: 1024 }`)")
        }

        fn visit_str<E: de::Error>(self, name: &str) -> std::result::Result<Entry, E> {
            // A name alone is the layer with no settings given.
            let value = if name == "read_only" {
                serde_json::Value::String(name.into())
            } else {
                serde_json::json!({ name: {} })
            };
            LayerConfig::deserialize(value)
                .map(Entry)
                .map_err(E::custom)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Entry, A::Error> {
            LayerConfig::deserialize(de::value::MapAccessDeserializer::new(map)).map(Entry)
        }
    }

    let entries = Vec::<Entry>::deserialize(deserializer)?;
    Ok(entries.into_iter().map(|e| e.0).collect())
}
