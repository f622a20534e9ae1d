//! Typed values: a store seen as a map from keys to values of one Rust
//! type, encoded by a [`Codec`] (JSON by default, MessagePack with the
//! `msgpack` feature).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kvs::Result<()> {
//! use kvs::TypedExt;
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Session {
//!     user: String,
//!     visits: u32,
//! }
//!
//! let store = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?;
//! let sessions = store.typed::<Session>();
//! sessions.set("s:1", &Session { user: "ada".into(), visits: 1 }, None).await?;
//! assert_eq!(sessions.get("s:1").await?.visits, 1);
//! // What the store holds is plain JSON, readable by any client.
//! assert_eq!(store.get("s:1").await?, &br#"{"user":"ada","visits":1}"#[..]);
//! # Ok(())
//! # }
//! ```
//!
//! Keys, TTLs, listing and deleting are the store's own: use the store (or
//! [`Typed::store`]) for them. A value that does not decode as the type is
//! [`Error::InvalidValue`] naming the key, the type and the codec.

use crate::{Error, Result, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::time::Duration;

/// How values are turned into bytes and back.
///
/// An encoding must be deterministic for [`Typed::compare_and_swap`] to
/// work: the expected value is compared by its encoding. Both codecs here
/// are, for types whose serialization is (structs, enums, `BTreeMap`; not
/// `HashMap`, whose order varies from run to run).
pub trait Codec: Send + Sync + 'static {
    /// The codec's name in error messages (`"JSON"`).
    const NAME: &'static str;

    /// `value` as bytes, or why it has no encoding.
    fn encode<T: Serialize + ?Sized>(value: &T) -> std::result::Result<Vec<u8>, String>;

    /// The value `bytes` encode, or why they do not.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String>;
}

/// JSON, with `serde_json`: what other languages' clients read most easily.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const NAME: &'static str = "JSON";

    fn encode<T: Serialize + ?Sized>(value: &T) -> std::result::Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// MessagePack, with `rmp-serde` (feature `msgpack`): smaller and faster
/// than JSON. Structs are written as maps with field names, so that a
/// field added later still reads old values.
#[cfg(feature = "msgpack")]
#[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePack;

#[cfg(feature = "msgpack")]
impl Codec for MessagePack {
    const NAME: &'static str = "MessagePack";

    fn encode<T: Serialize + ?Sized>(value: &T) -> std::result::Result<Vec<u8>, String> {
        rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// A store whose values are `T`s, encoded with `C`. Made by
/// [`TypedExt::typed`] or [`Typed::new`]; cheap to clone when `S` is.
pub struct Typed<T, C = Json, S = std::sync::Arc<dyn Store>> {
    store: S,
    // `fn() -> T`: a `Typed` holds no `T`, so it is `Send`/`Sync` whatever `T` is.
    _values: PhantomData<fn() -> (T, C)>,
}

impl<T, C, S: Clone> Clone for Typed<T, C, S> {
    fn clone(&self) -> Self {
        Typed::new(self.store.clone())
    }
}

impl<T, C, S: std::fmt::Debug> std::fmt::Debug for Typed<T, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Typed")
            .field("type", &std::any::type_name::<T>())
            .field("store", &self.store)
            .finish()
    }
}

impl<T, C, S> Typed<T, C, S> {
    /// `store`, seen as holding `T`s encoded with `C`.
    pub fn new(store: S) -> Self {
        Typed {
            store,
            _values: PhantomData,
        }
    }

    /// The store underneath, for keys, TTLs, listing and deleting.
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<T, C, S> Typed<T, C, S>
where
    T: Serialize + DeserializeOwned + Send + Sync,
    C: Codec,
    S: Store,
{
    /// The value of `key`: [`Error::NotFound`] if absent or expired,
    /// [`Error::InvalidValue`] if it is not a `T` in `C`.
    pub async fn get(&self, key: &str) -> Result<T> {
        let bytes = self.store.get(key).await?;
        decode::<T, C>(key, &bytes)
    }

    /// Stores `value` under `key` (see [`Store::set`]).
    pub async fn set(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<()> {
        let bytes = encode::<T, C>(key, value)?;
        self.store.set(key, &bytes, ttl).await
    }

    /// The values of `keys`, in request order, `None` for absent ones
    /// (see [`Store::get_many`]); one value that does not decode fails the call.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<T>>> {
        let values = self.store.get_many(keys).await?;
        keys.iter()
            .zip(values)
            .map(|(key, bytes)| bytes.map(|b| decode::<T, C>(key, &b)).transpose())
            .collect()
    }

    /// Stores every `(key, value)` with the same `ttl` (see
    /// [`Store::set_many`]); every value is encoded before anything is written.
    pub async fn set_many(&self, entries: &[(&str, T)], ttl: Option<Duration>) -> Result<()> {
        let encoded = entries
            .iter()
            .map(|(key, value)| Ok((*key, encode::<T, C>(key, value)?)))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<(&str, &[u8])> = encoded.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        self.store.set_many(&refs, ttl).await
    }

    /// Stores `value` only if `key` is absent (see [`Store::set_if_absent`]).
    pub async fn set_if_absent(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<bool> {
        let bytes = encode::<T, C>(key, value)?;
        self.store.set_if_absent(key, &bytes, ttl).await
    }

    /// Replaces the value of `key` with `new` if it is `expected` (`None`:
    /// if it is absent), atomically (see [`Store::compare_and_swap`]).
    ///
    /// `expected` is compared by its encoding, byte for byte: a value
    /// written by another program with other spacing or field order does
    /// not match. See [`Codec`].
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&T>,
        new: &T,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let expected = expected.map(|e| encode::<T, C>(key, e)).transpose()?;
        let new = encode::<T, C>(key, new)?;
        self.store
            .compare_and_swap(key, expected.as_deref(), &new, ttl)
            .await
    }
}

pub(crate) fn encode<T: Serialize, C: Codec>(key: &str, value: &T) -> Result<Vec<u8>> {
    C::encode(value).map_err(|e| Error::InvalidValue {
        key: key.to_owned(),
        reason: format!(
            "cannot be written: this {} has no {} encoding: {e}",
            std::any::type_name::<T>(),
            C::NAME
        ),
    })
}

pub(crate) fn decode<T: DeserializeOwned, C: Codec>(key: &str, bytes: &[u8]) -> Result<T> {
    C::decode(bytes).map_err(|e| Error::InvalidValue {
        key: key.to_owned(),
        reason: format!(
            "is not a {} in {} ({} bytes): {e}",
            std::any::type_name::<T>(),
            C::NAME,
            bytes.len()
        ),
    })
}

/// `store.typed::<T>()`: any store that can be cloned (an `Arc<dyn Store>`,
/// an `Arc<MemoryStore>`, ...) seen as holding `T`s.
pub trait TypedExt: Store + Clone + Sized {
    /// This store's values as `T`s, in JSON.
    fn typed<T>(&self) -> Typed<T, Json, Self> {
        Typed::new(self.clone())
    }

    /// This store's values as `T`s, in the codec `C`.
    fn typed_with<T, C: Codec>(&self) -> Typed<T, C, Self> {
        Typed::new(self.clone())
    }
}

impl<S: Store + Clone> TypedExt for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Message {
        role: String,
        text: String,
        tokens: Option<u32>,
    }

    fn round_trips<C: Codec>(message: &Message) -> bool {
        let bytes = C::encode(message).unwrap();
        C::decode::<Message>(&bytes).unwrap() == *message
    }

    proptest! {
        /// Whatever the text, a value reads back as it was written, in
        /// both codecs; and no bytes make a decoder panic.
        #[test]
        fn any_value_round_trips_and_any_bytes_decode_or_fail(
            role in "\\PC{0,10}",
            text in "\\PC{0,200}",
            tokens in proptest::option::of(any::<u32>()),
            junk in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let message = Message { role, text, tokens };
            prop_assert!(round_trips::<Json>(&message));
            #[cfg(feature = "msgpack")]
            prop_assert!(round_trips::<MessagePack>(&message));
            let _ = Json::decode::<Message>(&junk);
            #[cfg(feature = "msgpack")]
            let _ = MessagePack::decode::<Message>(&junk);
        }
    }

    #[test]
    fn a_value_of_another_type_names_the_key_the_type_and_the_codec() {
        let err = decode::<Message, Json>("chat:1", b"[1, 2]").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidValue { .. }));
        for part in ["\"chat:1\"", "typed::tests::Message", "JSON", "6 bytes"] {
            assert!(text.contains(part), "{text}");
        }
    }
}
