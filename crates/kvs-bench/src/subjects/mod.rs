//! Everything measured: kvs and, per backend, its peers.

pub mod kvs;
pub mod leveldb;
pub mod memory;
pub mod redis;
pub mod sqlite;
