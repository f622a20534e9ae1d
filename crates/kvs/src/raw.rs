//! Building blocks for backend and layer authors: key and namespace
//! encodings, deadline arithmetic, the document filter's syntax tree, and
//! the generic loops a backend calls on purpose where its engine has
//! nothing better.
//!
//! Applications need none of this: they use [`Store`](crate::Store),
//! [`DocumentStore`](crate::DocumentStore) and [`open`](crate::open).
//! Unlike the rest of the crate, items here may change in a minor release,
//! when a backend needs them to (the same promise as OpenDAL's `raw`).
//!
//! ```
//! use kvs::raw::{encode_key, is_live, NEVER};
//!
//! // The form every backend that shares one key space uses.
//! assert_eq!(encode_key("sessions", "user:1"), "sessions:user:1");
//! assert!(is_live(NEVER, u64::MAX));
//! ```

pub use crate::config::RedactedUrl;
pub use crate::deadline::{check_batch_ttl, check_ttl, deadline_ms, is_live, remaining, NEVER};
pub use crate::filter::{json_eq, Filter, Test};
pub use crate::generic::{
    delete_many_each, delete_prefix_by_pages, entries_page_by_keys, get_many_each, parse_counter,
    scan_by_pages, set_entries, set_many_each,
};
pub use crate::key::{
    decode_key, encode_key, escape_namespace, namespace_dir_name, namespace_prefix,
    normalize_namespace, prefix_successor, prefix_successor_str, validate_key, validate_prefix,
};

#[cfg(feature = "leveldb")]
pub use crate::backend::leveldb::env as leveldb_env;
