//! The document layer: [`Document`], the [`DocumentStore`] trait, and the
//! generic implementation every backend without a native one shares.
//!
//! # The generic path
//!
//! Documents live in a key space of their own, apart from plain keys (a
//! second memory map, a `documents` LevelDB directory beside the namespace
//! directories), so no plain key can ever name or overwrite a document. In
//! that space a document is stored under
//! [`encode_key(collection, id)`](crate::raw::encode_key) — injective, so
//! collections never meet, and ordered by id within a collection — as
//! versioned JSON:
//!
//! ```json
//! {"v":1,"id":"u1","data":{...},"metadata":{...},"created_at":1700000000000,"updated_at":1700000000000}
//! ```
//!
//! `query` reads the collection's range in id order and keeps the documents
//! that pass the [`Filter`], evaluated in Rust. SQLite and PostgreSQL have
//! native implementations that push the filter down into SQL (see their
//! modules).

use crate::expiry::Clock;
use crate::filter::Filter;
use crate::key::{decode_key, encode_key, namespace_prefix, MAX_NAMESPACE_LEN};
use crate::{Error, Result, Store, StoreFuture};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The longest document id, in bytes. With a collection name of at most
/// 255 bytes (510 escaped), the stored key stays within the 1024-byte key
/// limit of every backend.
pub const MAX_ID_LEN: usize = 512;
/// The longest collection name, in bytes.
pub const MAX_COLLECTION_LEN: usize = MAX_NAMESPACE_LEN;
/// The stored-form version this build writes and reads.
const FORMAT_VERSION: u64 = 1;

/// A JSON document with an id, its data, string metadata, and timestamps
/// that the store sets.
///
/// ```
/// use serde_json::json;
/// use kvs::Document;
///
/// let data = json!({"name": "ada", "age": 36});
/// let doc = Document::new("u1", data.as_object().unwrap().clone());
/// assert_eq!(doc.id, "u1");
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Document {
    /// Unique within its collection: non-empty, at most [`MAX_ID_LEN`] bytes.
    pub id: String,
    /// The document's fields; filters match against these.
    pub data: Map<String, Value>,
    /// Free-form string metadata, stored as given.
    pub metadata: HashMap<String, String>,
    /// When the document was first put; set by the store.
    pub created_at: DateTime<Utc>,
    /// When the document was last put; set by the store, always moving forward.
    pub updated_at: DateTime<Utc>,
}

impl Document {
    /// A document with no metadata. Its timestamps are placeholders until
    /// a store sets them on `put`.
    pub fn new(id: impl Into<String>, data: Map<String, Value>) -> Document {
        Document {
            id: id.into(),
            data,
            metadata: HashMap::new(),
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }
}

/// A [`Store`] that also holds JSON documents in named collections.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use serde_json::json;
/// use kvs::{BackendKind, Config, Document};
///
/// let store = kvs::open_documents(&Config::new(BackendKind::Memory)).await?;
/// for (id, age) in [("ada", 36), ("bob", 17)] {
///     let data = json!({"name": id, "age": age});
///     store.put("users", Document::new(id, data.as_object().unwrap().clone())).await?;
/// }
/// let filter = json!({"age": {"$gte": 18}});
/// let adults = store.query("users", filter.as_object().unwrap()).await?;
/// assert_eq!(adults.len(), 1);
/// assert_eq!(adults[0].id, "ada");
/// # Ok(())
/// # }
/// ```
pub trait DocumentStore: Store {
    /// Stores `doc` in `collection`, replacing any document with its id.
    /// An existing document keeps its `created_at`; `updated_at` moves
    /// forward.
    fn put<'a>(&'a self, collection: &'a str, doc: Document) -> StoreFuture<'a, ()>;

    /// The document `id` of `collection`, or
    /// [`Error::NotFound`](crate::Error::NotFound).
    fn get_doc<'a>(&'a self, collection: &'a str, id: &'a str) -> StoreFuture<'a, Document>;

    /// The documents of `collection` that pass `filter`, sorted by id (see
    /// [`Filter`](crate::raw::Filter) for the language).
    fn query<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Map<String, Value>,
    ) -> StoreFuture<'a, Vec<Document>>;

    /// Removes the document `id` of `collection`; `Ok(())` if it was absent.
    fn delete_doc<'a>(&'a self, collection: &'a str, id: &'a str) -> StoreFuture<'a, ()>;

    /// The names of the collections that hold at least one document, sorted.
    /// For copying and backing up a store; every store kvs opens has it.
    /// Provided as [`Error::Unsupported`](crate::Error::Unsupported) for
    /// document stores written outside kvs.
    fn collections(&self) -> StoreFuture<'_, Vec<String>> {
        StoreFuture::ready(Err(crate::Error::Unsupported {
            message: "this document store cannot list its collections".into(),
        }))
    }

    /// Stores `doc` exactly as given, timestamps included (unlike
    /// [`put`](DocumentStore::put), which sets them): what copying a store
    /// to another needs. Provided as `Unsupported` for document stores
    /// written outside kvs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kvs::Result<()> {
    /// use kvs::{BackendKind, Config, Document, DocumentStore};
    /// let store = kvs::open_documents(&Config::new(BackendKind::Memory)).await?;
    /// let mut doc = Document::new("ada", serde_json::Map::new());
    /// doc.created_at = "2020-01-01T00:00:00Z".parse().unwrap();
    /// doc.updated_at = doc.created_at;
    /// store.restore("users", doc.clone()).await?;
    /// assert_eq!(store.get_doc("users", "ada").await?, doc);
    /// assert_eq!(store.collections().await?, ["users"]);
    /// # Ok(())
    /// # }
    /// ```
    fn restore<'a>(&'a self, collection: &'a str, doc: Document) -> StoreFuture<'a, ()> {
        let _ = (collection, doc);
        StoreFuture::ready(Err(crate::Error::Unsupported {
            message: "this document store cannot restore documents with their timestamps".into(),
        }))
    }
}

/// Checks a collection name and a document id.
pub(crate) fn validate(collection: &str, id: Option<&str>) -> Result<()> {
    let bad = |key: &str, reason: String| Error::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if collection.is_empty() {
        return Err(bad(collection, "collection names must not be empty".into()));
    }
    if collection.len() > MAX_COLLECTION_LEN {
        return Err(bad(
            collection,
            format!(
                "collection name is {} bytes; the limit is {MAX_COLLECTION_LEN}",
                collection.len()
            ),
        ));
    }
    if let Some(id) = id {
        if id.is_empty() {
            return Err(bad(id, "document ids must not be empty".into()));
        }
        if id.len() > MAX_ID_LEN {
            return Err(bad(
                id,
                format!(
                    "document id is {} bytes; the limit is {MAX_ID_LEN}",
                    id.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The next `updated_at`: now, but always after `previous`.
pub(crate) fn next_update(now: DateTime<Utc>, previous: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match previous {
        Some(previous) if now <= previous => previous + TimeDelta::milliseconds(1),
        _ => now,
    }
}

/// The clock's time as a timestamp (millisecond precision).
pub(crate) fn now(clock: &dyn Clock) -> DateTime<Utc> {
    from_millis(i64::try_from(clock.now_ms()).unwrap_or(i64::MAX))
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The stored form of a document in a row of the native paths (SQLite,
/// PostgreSQL): the document without its id and timestamps, which are
/// columns of their own.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(serde::Serialize, serde::Deserialize)]
struct Body {
    v: u64,
    data: Map<String, Value>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

/// The body column of a document holding `data` and `metadata`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn encode_body(
    backend: &'static str,
    data: Map<String, Value>,
    metadata: HashMap<String, String>,
) -> Result<String> {
    let body = Body {
        v: FORMAT_VERSION,
        data,
        metadata,
    };
    serde_json::to_string(&body).map_err(|e| Error::backend(backend, "encoding a document", e))
}

/// The document a row holds: the inverse of [`encode_body`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_body(
    backend: &'static str,
    id: String,
    body: &str,
    created_at: i64,
    updated_at: i64,
) -> Result<Document> {
    let body: Body = serde_json::from_str(body)
        .map_err(|e| Error::backend(backend, format!("decoding document {id:?}"), e))?;
    if body.v > FORMAT_VERSION {
        return Err(Error::backend(
            backend,
            format!("decoding document {id:?}"),
            format!(
                "its format version {} is newer than this kvs understands",
                body.v
            ),
        ));
    }
    Ok(Document {
        id,
        data: body.data,
        metadata: body.metadata,
        created_at: from_millis(created_at),
        updated_at: from_millis(updated_at),
    })
}

/// The stored form of the generic path.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    v: u64,
    id: String,
    data: Map<String, Value>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    created_at: i64,
    updated_at: i64,
}

fn encode(doc: &Document) -> Result<Vec<u8>> {
    let stored = Stored {
        v: FORMAT_VERSION,
        id: doc.id.clone(),
        data: doc.data.clone(),
        metadata: doc.metadata.clone(),
        created_at: doc.created_at.timestamp_millis(),
        updated_at: doc.updated_at.timestamp_millis(),
    };
    serde_json::to_vec(&stored).map_err(|e| Error::backend("documents", "encoding a document", e))
}

fn decode(bytes: &[u8]) -> Result<Document> {
    let stored: Stored = serde_json::from_slice(bytes)
        .map_err(|e| Error::backend("documents", "decoding a stored document", e))?;
    if stored.v > FORMAT_VERSION {
        return Err(Error::backend(
            "documents",
            format!("decoding document {:?}", stored.id),
            format!(
                "its format version {} is newer than this kvs understands ({FORMAT_VERSION})",
                stored.v
            ),
        ));
    }
    Ok(Document {
        id: stored.id,
        data: stored.data,
        metadata: stored.metadata,
        created_at: from_millis(stored.created_at),
        updated_at: from_millis(stored.updated_at),
    })
}

/// The key space the generic path keeps documents in: a store of the
/// backend opened on a space no plain key can reach, plus a way to read a
/// whole range with its values.
pub(crate) trait DocSpace: Store {
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        StoreFuture::boxed(async move { crate::generic::optional(self.get(key).await) })
    }
    fn write<'a>(&'a self, key: &'a str, value: &'a [u8]) -> StoreFuture<'a, ()> {
        self.set(key, value, None)
    }
    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.delete(key)
    }
    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan_values<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Bytes)>>;
}

/// A plain-key store and a document space, as one [`DocumentStore`].
pub(crate) struct Documents<S, D> {
    keys: S,
    docs: D,
    clock: Arc<dyn Clock>,
}

impl<S: Store, D: DocSpace> Documents<S, D> {
    pub(crate) fn new(keys: S, docs: D, clock: Arc<dyn Clock>) -> Documents<S, D> {
        Documents { keys, docs, clock }
    }
}

/// Plain keys are the key store's: every method goes to it, except that
/// `close` closes both spaces.
#[deny(clippy::missing_trait_methods)]
impl<S: Store, D: DocSpace> Store for Documents<S, D> {
    crate::forward::forward_store!(|this| this.keys;
        get, set, delete, exists, list, count, ttl,
        get_many, set_many, delete_many,
        set_if_absent, compare_and_swap, increment,
        expire, get_and_touch, persist, list_page, scan, entries_page, delete_prefix, clear);

    fn close(&self) -> StoreFuture<'_, ()> {
        StoreFuture::boxed(async move {
            let keys = self.keys.close().await;
            let docs = self.docs.close().await;
            keys.and(docs)
        })
    }
}

impl<S: Store, D: DocSpace> DocumentStore for Documents<S, D> {
    fn put<'a>(&'a self, collection: &'a str, doc: Document) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move {
            validate(collection, Some(&doc.id))?;
            let key = encode_key(collection, &doc.id);
            let previous = self
                .docs
                .read(&key)
                .await?
                .map(|b| decode(&b))
                .transpose()?;
            let now = now(self.clock.as_ref());
            let mut doc = doc;
            doc.created_at = previous.as_ref().map_or(now, |p| p.created_at);
            doc.updated_at = next_update(now, previous.map(|p| p.updated_at));
            let bytes = encode(&doc)?;
            self.docs.write(&key, &bytes).await
        })
    }

    fn get_doc<'a>(&'a self, collection: &'a str, id: &'a str) -> StoreFuture<'a, Document> {
        StoreFuture::boxed(async move {
            validate(collection, Some(id))?;
            match self.docs.read(&encode_key(collection, id)).await? {
                Some(bytes) => decode(&bytes),
                None => Err(Error::NotFound),
            }
        })
    }

    fn query<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Map<String, Value>,
    ) -> StoreFuture<'a, Vec<Document>> {
        StoreFuture::boxed(async move {
            validate(collection, None)?;
            let filter = Filter::parse(filter)?;
            let mut found = Vec::new();
            for (_, bytes) in self.docs.scan_values(&namespace_prefix(collection)).await? {
                let doc = decode(&bytes)?;
                if filter.matches(&doc.data) {
                    found.push(doc);
                }
            }
            Ok(found)
        })
    }

    fn delete_doc<'a>(&'a self, collection: &'a str, id: &'a str) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move {
            validate(collection, Some(id))?;
            self.docs.remove(&encode_key(collection, id)).await
        })
    }

    fn collections(&self) -> StoreFuture<'_, Vec<String>> {
        StoreFuture::boxed(async move {
            use futures_util::StreamExt;
            let mut names = std::collections::BTreeSet::new();
            let mut keys = self.docs.scan("");
            while let Some(key) = keys.next().await {
                if let Some((collection, _)) = decode_key(&key?) {
                    names.insert(collection);
                }
            }
            Ok(names.into_iter().collect())
        })
    }

    fn restore<'a>(&'a self, collection: &'a str, doc: Document) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move {
            validate(collection, Some(&doc.id))?;
            let bytes = encode(&doc)?;
            self.docs
                .write(&encode_key(collection, &doc.id), &bytes)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_and_refuses_newer_versions() {
        let mut doc = Document::new(
            "u1",
            serde_json::json!({"a": [1, {"b": null}]})
                .as_object()
                .unwrap()
                .clone(),
        );
        doc.metadata.insert("source".into(), "import".into());
        doc.created_at = from_millis(1_700_000_000_123);
        doc.updated_at = from_millis(1_700_000_000_456);
        assert_eq!(decode(&encode(&doc).unwrap()).unwrap(), doc);
        let newer = br#"{"v":2,"id":"x","data":{},"created_at":0,"updated_at":0}"#;
        let err = decode(newer).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
        assert!(decode(b"not json").is_err());
    }

    #[test]
    fn updated_at_always_moves_forward() {
        let t = from_millis(1_000);
        assert_eq!(next_update(t, None), t);
        assert_eq!(next_update(t, Some(t)), from_millis(1_001));
        assert_eq!(next_update(from_millis(5_000), Some(t)), from_millis(5_000));
    }

    #[test]
    fn ids_and_collections_are_bounded() {
        assert!(validate("c", Some(&"i".repeat(MAX_ID_LEN))).is_ok());
        assert!(validate("c", Some(&"i".repeat(MAX_ID_LEN + 1))).is_err());
        assert!(validate("", Some("i")).is_err());
        assert!(validate("c", Some("")).is_err());
        assert!(validate(&"c".repeat(MAX_COLLECTION_LEN + 1), None).is_err());
        // The longest of both, escaped, still fits a key.
        let key = encode_key(&":".repeat(MAX_COLLECTION_LEN), &"i".repeat(MAX_ID_LEN));
        assert!(
            crate::key::validate_key(&key).is_ok(),
            "{} bytes",
            key.len()
        );
    }
}
