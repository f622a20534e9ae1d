//! One module per backend. Each is compiled only with its cargo feature
//! (memory is always compiled) and implements [`Store`](crate::Store) on its
//! own type.

pub mod memory;

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "leveldb")]
pub mod leveldb;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;

#[cfg(feature = "postgres")]
pub mod postgres;
