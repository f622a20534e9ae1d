//! The encryption layer: every value is encrypted with XChaCha20-Poly1305
//! under a fresh random nonce, and bound to its namespace and key.
//!
//! # The stored form
//!
//! ```text
//! HEADER  VERSION  n  key id (n bytes)  nonce (24 bytes)  ciphertext  tag (16 bytes)
//! ```
//!
//! [`HEADER`] is `0xE5`, [`VERSION`] `1`. The associated data is the
//! header up to the nonce, then the namespace (its length as four
//! big-endian bytes, then its bytes), then the key. So a value copied to
//! another key or namespace, a changed key id, or any flipped bit fails
//! authentication and is an error; nothing is ever returned unverified.
//!
//! # Keys
//!
//! Each key has an id, stored in the clear with every value it encrypts:
//! writes use the first key of the list, reads whichever key the value
//! names. To rotate, put a new key first and keep the old ones until every
//! value has been rewritten (`kvs copy` through the layer rewrites them).
//! Key bytes are wiped from memory when dropped and never appear in
//! `Debug` output, logs or errors.
//!
//! The layer hides values, not their length (to within 16 bytes), their
//! keys, TTLs or how often they change.

use super::config::EncryptionKeyConfig;
use super::{TransformStore, ValueTransform};
use crate::{Bytes, Error, Result};
use base64::Engine;
use chacha20poly1305::aead::{AeadInOut, Generate, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The first byte of every value this layer writes.
pub const HEADER: u8 = 0xE5;

/// The version of the stored form, its second byte.
pub const VERSION: u8 = 1;

/// The longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 64;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// One 256-bit key and its id. `Debug` shows only the id.
///
/// ```
/// use kvs::layer::EncryptionKey;
///
/// let key = EncryptionKey::from_base64("2026-12", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
/// assert_eq!(format!("{key:?}"), r#"EncryptionKey { id: "2026-12", key: "<redacted>" }"#);
/// let err = EncryptionKey::from_base64("old", "c2hvcnQ=").unwrap_err().to_string();
/// assert!(err.contains("\"old\"") && !err.contains("c2hvcnQ"), "{err}");
/// ```
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
}

impl EncryptionKey {
    /// The key `bytes`, named `id` (1 to [`MAX_KEY_ID_LEN`] bytes).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty or too long id.
    pub fn new(id: &str, bytes: [u8; 32]) -> Result<EncryptionKey> {
        if id.is_empty() || id.len() > MAX_KEY_ID_LEN {
            return Err(Error::config(format!(
                "encryption: key id {id:?} must be 1 to {MAX_KEY_ID_LEN} bytes"
            )));
        }
        Ok(EncryptionKey {
            id: id.to_owned(),
            bytes: Zeroizing::new(bytes),
        })
    }

    /// The key written as 32 bytes of standard base64 (what
    /// `head -c 32 /dev/urandom | base64` prints).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the id, never the text.
    pub fn from_base64(id: &str, text: &str) -> Result<EncryptionKey> {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .unwrap_or_default(),
        );
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            Error::config(format!(
                "encryption: key {id:?} is not 32 bytes of base64 \
                 (`head -c 32 /dev/urandom | base64` makes one)"
            ))
        })?;
        EncryptionKey::new(id, bytes)
    }

    /// A new random key named `id`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad id; [`Error::Backend`] if the
    /// system's random number generator fails.
    pub fn generate(id: &str) -> Result<EncryptionKey> {
        EncryptionKey::new(id, random()?)
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as standard base64, for storing it somewhere safe.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(*self.bytes))
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    <[u8; N]>::try_generate().map_err(|e| {
        Error::backend(
            "encryption",
            "reading the system's random number generator",
            e.to_string(),
        )
    })
}

/// Encrypts every value, bound to the namespace and the key it is stored
/// under; see the [module docs](self) for the stored form and rotation.
///
/// Keys, TTLs and listing pass through; documents are not encrypted.
/// `compare_and_swap` compares decrypted values, and `increment` reads,
/// adds and swaps (see [`ValueTransform::keeps_counters`]), so counters
/// are encrypted too. A value that is not encrypted is an error unless
/// [`accept_plaintext`](Encryption::accept_plaintext) is on. In a
/// configuration file, with the key in an environment variable:
///
/// ```yaml
/// layers:
///   - encryption:
///       keys:
///         - { id: "2026-12", env: KVS_KEY_2026_12 }   # writes use the first
///         - { id: "2026-06", env: KVS_KEY_2026_06 }   # still read
/// ```
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use kvs::layer::{Encryption, EncryptionKey, LayerExt};
///
/// let bare = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?;
/// let key = EncryptionKey::generate("k1")?;
/// let store = bare.clone().layer(Encryption::new("default", [key])?);
/// store.set("card", b"4111 1111 1111 1111", None).await?;
/// assert_eq!(store.get("card").await?, &b"4111 1111 1111 1111"[..]);
/// assert!(!bare.get("card").await?.windows(4).any(|w| w == b"4111"));
///
/// // Moved to another key, the value no longer decrypts.
/// bare.set("other", &bare.get("card").await?, None).await?;
/// assert!(store.get("other").await.is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Encryption {
    namespace: String,
    /// Newest first: the first encrypts.
    keys: Arc<[(String, XChaCha20Poly1305)]>,
    accept_plaintext: bool,
}

impl Encryption {
    /// Encrypts with the first of `keys` and decrypts with any, for a
    /// store opened for `namespace` (`""` is `"default"`, as in
    /// [`Config`](crate::Config)). [`kvs::open`](crate::open) passes the
    /// configured namespace; in code, give the one the store was opened for.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for no keys or two with one id;
    /// [`Error::InvalidNamespace`] for a bad namespace.
    pub fn new(
        namespace: &str,
        keys: impl IntoIterator<Item = EncryptionKey>,
    ) -> Result<Encryption> {
        let namespace = crate::raw::normalize_namespace(namespace)?;
        let mut ciphers: Vec<(String, XChaCha20Poly1305)> = Vec::new();
        for key in keys {
            if ciphers.iter().any(|(id, _)| *id == key.id) {
                return Err(Error::config(format!(
                    "encryption: key id {:?} is listed twice",
                    key.id
                )));
            }
            let cipher = XChaCha20Poly1305::new(&(*key.bytes).into());
            ciphers.push((key.id, cipher));
        }
        if ciphers.is_empty() {
            return Err(Error::config("encryption: `keys` lists no key"));
        }
        Ok(Encryption {
            namespace,
            keys: ciphers.into(),
            accept_plaintext: false,
        })
    }

    /// The layer a configuration's `encryption:` entry describes: each key
    /// from its `key` or from the environment variable `env` names.
    pub(crate) fn from_config(namespace: &str, keys: &[EncryptionKeyConfig]) -> Result<Encryption> {
        let keys = keys
            .iter()
            .map(|k| match (&k.key, &k.env) {
                (Some(text), None) => EncryptionKey::from_base64(&k.id, text),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(text) => EncryptionKey::from_base64(&k.id, &text),
                    Err(_) => Err(Error::config(format!(
                        "encryption: key {:?}: the environment variable {var} is not set",
                        k.id
                    ))),
                },
                _ => Err(Error::config(format!(
                    "encryption: key {:?} needs exactly one of `key` and `env`",
                    k.id
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Encryption::new(namespace, keys)
    }

    /// Whether a value that is not encrypted reads back as it is (`true`,
    /// while migrating a store written without the layer) or is an error
    /// (`false`, the default: otherwise anyone who can write to the
    /// backend could plant values the application trusts).
    pub fn accept_plaintext(mut self, accept: bool) -> Encryption {
        self.accept_plaintext = accept;
        self
    }

    /// The associated data of a value stored under `key` with `header`.
    fn associated_data(&self, header: &[u8], key: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(header.len() + 4 + self.namespace.len() + key.len());
        aad.extend_from_slice(header);
        aad.extend_from_slice(&(self.namespace.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.namespace.as_bytes());
        aad.extend_from_slice(key.as_bytes());
        aad
    }

    fn encrypt(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let (id, cipher) = &self.keys[0];
        let nonce = XNonce::from(random::<NONCE_LEN>()?);
        let mut out = Vec::with_capacity(3 + id.len() + NONCE_LEN + value.len() + TAG_LEN);
        out.extend_from_slice(&[HEADER, VERSION, id.len() as u8]);
        out.extend_from_slice(id.as_bytes());
        let aad = self.associated_data(&out, key);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(value);
        let tag = cipher
            .encrypt_inout_detached(&nonce, &aad, (&mut out[start..]).into())
            .map_err(|_| {
                Error::backend(
                    "encryption",
                    format!("encrypting the value of {key:?}"),
                    "the value is too long for XChaCha20-Poly1305",
                )
            })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn decrypt(&self, key: &str, stored: Bytes) -> Result<Bytes> {
        let invalid = |reason: String| Error::InvalidValue {
            key: key.to_owned(),
            reason,
        };
        if stored.len() < 2 || stored[0] != HEADER || stored[1] != VERSION {
            if self.accept_plaintext {
                return Ok(stored);
            }
            return Err(invalid(
                "is not encrypted (written without the encryption layer?)".into(),
            ));
        }
        let id_len = usize::from(*stored.get(2).unwrap_or(&0));
        let header_len = 3 + id_len;
        if id_len == 0 || stored.len() < header_len + NONCE_LEN + TAG_LEN {
            return Err(invalid("is encrypted but damaged (too short)".into()));
        }
        let id = &stored[3..header_len];
        let Some((_, cipher)) = self.keys.iter().find(|(k, _)| k.as_bytes() == id) else {
            let known: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
            return Err(invalid(format!(
                "is encrypted under the key id {:?}, which is not configured (keys: {})",
                String::from_utf8_lossy(id),
                known.join(", ")
            )));
        };
        let aad = self.associated_data(&stored[..header_len], key);
        let (nonce, rest) = stored[header_len..].split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| invalid("has a damaged nonce".into()))?;
        let tag = Tag::try_from(tag).map_err(|_| invalid("has a damaged tag".into()))?;
        let mut plain = ciphertext.to_vec();
        cipher
            .decrypt_inout_detached(&nonce, &aad, (&mut plain[..]).into(), &tag)
            .map_err(|_| {
                invalid(
                    "fails authentication: it was changed, or written under another key \
                     or namespace"
                        .into(),
                )
            })?;
        Ok(plain.into())
    }
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Encryption")
            .field("namespace", &self.namespace)
            .field("key_ids", &ids)
            .field("accept_plaintext", &self.accept_plaintext)
            .finish()
    }
}

impl ValueTransform for Encryption {
    fn encode<'v>(&self, key: &str, value: &'v [u8]) -> Result<Cow<'v, [u8]>> {
        self.encrypt(key, value).map(Cow::Owned)
    }

    fn decode(&self, key: &str, stored: Bytes) -> Result<Bytes> {
        self.decrypt(key, stored)
    }

    /// Counters are encrypted like every value, so the backend cannot add
    /// to them.
    fn keeps_counters(&self) -> bool {
        false
    }
}

super::layer_wraps_with!(Encryption, |layer, inner| EncryptionStore::new(
    inner,
    layer.clone()
));

/// A store behind the [`Encryption`] layer.
pub type EncryptionStore<S> = TransformStore<S, Encryption>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layer(namespace: &str, ids: &[&str]) -> Encryption {
        let keys = ids.iter().map(|id| {
            let mut bytes = [0u8; 32];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            EncryptionKey::new(id, bytes).unwrap()
        });
        Encryption::new(namespace, keys).unwrap()
    }

    proptest! {
        /// Every value round-trips; flipping any one bit of what is stored,
        /// or reading it under another key, is an error, never a value.
        #[test]
        fn values_round_trip_and_every_change_is_caught(
            value in proptest::collection::vec(any::<u8>(), 0..600),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let enc = layer("ns", &["k1"]);
            let stored = enc.encrypt("key", &value).unwrap();
            prop_assert_eq!(&enc.decrypt("key", stored.clone().into()).unwrap()[..], &value[..]);
            prop_assert!(enc.decrypt("key2", stored.clone().into()).is_err());
            let mut damaged = stored;
            let i = flip.index(damaged.len());
            damaged[i] ^= 1 << bit;
            prop_assert!(enc.decrypt("key", damaged.into()).is_err());
        }

        /// No stored bytes make decryption panic.
        #[test]
        fn no_bytes_panic(stored in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut stored = stored;
            if stored.len() > 3 {
                stored[0] = HEADER;
                stored[1] = VERSION;
                stored[3] = b'k';
            }
            let _ = layer("ns", &["k"]).decrypt("key", stored.into());
        }
    }

    #[test]
    fn the_namespace_is_bound_in() {
        let a = layer("tenant-a", &["k1"]);
        let b = layer("tenant-b", &["k1"]);
        let stored = a.encrypt("profile", b"secret").unwrap();
        let err = b.decrypt("profile", stored.into()).unwrap_err().to_string();
        assert!(err.contains("fails authentication"), "{err}");
        // "" and "default" are one namespace, as everywhere else.
        let stored = layer("", &["k1"]).encrypt("k", b"v").unwrap();
        assert!(layer("default", &["k1"])
            .decrypt("k", stored.into())
            .is_ok());
    }

    #[test]
    fn every_write_has_a_fresh_nonce() {
        let enc = layer("ns", &["k1"]);
        let one = enc.encrypt("k", b"same").unwrap();
        let two = enc.encrypt("k", b"same").unwrap();
        assert_ne!(one, two);
    }

    #[test]
    fn rotation_reads_old_keys_and_writes_the_first() {
        let old = layer("ns", &["2026-06"]);
        let rotated = layer("ns", &["2026-12", "2026-06"]);
        let written_before = old.encrypt("k", b"v1").unwrap();
        assert_eq!(
            &rotated.decrypt("k", written_before.into()).unwrap()[..],
            b"v1"
        );
        let written_after = rotated.encrypt("k", b"v2").unwrap();
        assert_eq!(&written_after[3..10], b"2026-12");
        let err = old
            .decrypt("k", written_after.into())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"2026-12\", which is not configured (keys: 2026-06)"),
            "{err}"
        );
    }

    #[test]
    fn plaintext_is_refused_unless_accepted() {
        let enc = layer("ns", &["k1"]);
        let err = enc.decrypt("k", Bytes::from_static(b"plain")).unwrap_err();
        assert!(err.to_string().contains("is not encrypted"), "{err}");
        let lenient = enc.accept_plaintext(true);
        assert_eq!(
            lenient.decrypt("k", Bytes::from_static(b"plain")).unwrap(),
            &b"plain"[..]
        );
    }

    #[test]
    fn key_material_never_shows() {
        let key = EncryptionKey::new("k1", [0xAB; 32]).unwrap();
        let text = format!("{key:?} {:?}", layer("ns", &["k1"]));
        assert!(
            !text.contains("171") && !text.to_lowercase().contains("abab"),
            "{text}"
        );
        assert!(!text.contains(key.to_base64().as_str()), "{text}");
        let config = EncryptionKeyConfig {
            id: "k1".into(),
            key: Some(key.to_base64().to_string()),
            env: None,
        };
        assert!(!format!("{config:?}").contains(key.to_base64().as_str()));
    }

    #[test]
    fn config_errors_name_the_key_and_never_its_text() {
        let bad = |key: Option<&str>, env: Option<&str>| {
            Encryption::from_config(
                "ns",
                &[EncryptionKeyConfig {
                    id: "k1".into(),
                    key: key.map(Into::into),
                    env: env.map(Into::into),
                }],
            )
            .unwrap_err()
            .to_string()
        };
        let err = bad(Some("bm90LWEta2V5"), None);
        assert!(
            err.contains("\"k1\" is not 32 bytes") && !err.contains("bm90"),
            "{err}"
        );
        let err = bad(None, Some("KVS_TEST_NO_SUCH_VARIABLE"));
        assert!(
            err.contains("KVS_TEST_NO_SUCH_VARIABLE is not set"),
            "{err}"
        );
        assert!(bad(None, None).contains("exactly one of `key` and `env`"));
        assert!(Encryption::new("ns", []).is_err());
        let twice = [
            EncryptionKey::generate("a").unwrap(),
            EncryptionKey::generate("a").unwrap(),
        ];
        assert!(Encryption::new("ns", twice)
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
    }
}
