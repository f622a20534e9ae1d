//! Everything measured: kvs and, per backend, its peers.

#[cfg(feature = "suite")]
pub mod dynamodb;
#[cfg(feature = "suite")]
pub mod kvs;
#[cfg(feature = "suite")]
pub mod leveldb;
pub mod libraries;
#[cfg(feature = "suite")]
pub mod memory;
#[cfg(feature = "suite")]
pub mod postgres;
#[cfg(feature = "suite")]
pub mod redis;
#[cfg(feature = "suite")]
pub mod sqlite;
