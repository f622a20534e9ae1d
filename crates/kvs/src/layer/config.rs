//! `layers:` in a configuration file: one [`LayerConfig`] per entry.

#[cfg(feature = "compression")]
use super::Compression;
use super::Layer;
use super::{LimitSize, ReadOnly, TtlClamp};
use crate::Result;
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

fn default_threshold() -> usize {
    1024
}

fn default_level() -> i32 {
    3
}

impl LayerConfig {
    /// The layer this entry describes, for a store opened for `namespace`
    /// (which the encryption layer binds into every value; `""` is
    /// `"default"`, as in [`Config`](crate::Config)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for settings
    /// that cannot work together (a `min` above the `max`, ...) or a key
    /// that cannot be read; [`Error::Unsupported`](crate::Error::Unsupported)
    /// for a layer whose cargo feature is off.
    pub fn build(&self, namespace: &str) -> Result<Box<dyn Layer>> {
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
            LayerConfig::Compression { .. } => {
                return Err(crate::Error::unsupported(
                    "the compression layer is not compiled in; build kvs with the cargo \
                     feature `compression` (kvs-cli: `--features compression`)",
                ))
            }
            #[cfg(feature = "encryption")]
            LayerConfig::Encryption {
                keys,
                accept_plaintext,
            } => Box::new(
                super::Encryption::from_config(namespace, keys)?
                    .accept_plaintext(*accept_plaintext),
            ),
            #[cfg(not(feature = "encryption"))]
            LayerConfig::Encryption { .. } => {
                let _ = namespace;
                return Err(crate::Error::unsupported(
                    "the encryption layer is not compiled in; build kvs with the cargo \
                     feature `encryption` (kvs-cli: `--features encryption`)",
                ));
            }
        })
    }
}
