//! The connections of a [`RedisStore`]: a pool of reconnecting
//! multiplexed connections to one server or to a cluster, and the one
//! mapping of the client's errors.

use super::{cluster, RedisStore, BACKEND};
use crate::config::RedisConfig;
use crate::{format_duration, Error, Result};
use parking_lot::Mutex;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The connections of one store.
pub(super) struct Connections {
    /// `pool_size` connections, used in turn. Never empty.
    pub(super) pool: Arc<[Conn]>,
    /// On a cluster, one connection per master: `SCAN` walks one node's
    /// keys, so listing visits every master. Empty for a single server.
    pub(super) masters: Arc<[ConnectionManager]>,
}

/// A connection to a single server or to a cluster (which routes each
/// command to the node that owns its key).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisStore {
    pub(super) async fn connect(prefix: String, config: &RedisConfig) -> Result<RedisStore> {
        let pool_size = config.pool_size.max(1);
        let mut conns = Vec::with_capacity(pool_size);
        let masters = if config.cluster_nodes.is_empty() {
            for _ in 0..pool_size {
                conns.push(Conn::Single(single(&config.addr, config).await?));
            }
            Vec::new()
        } else {
            let (cluster_conns, masters) = cluster::connect(config, pool_size).await?;
            conns.extend(cluster_conns);
            masters
        };
        Ok(RedisStore {
            prefix,
            addr: config.addr.clone(),
            conns: Mutex::new(Some(Connections {
                pool: conns.into(),
                masters: masters.into(),
            })),
            next: AtomicUsize::new(0),
            index: None,
        })
    }

    /// The next connection of the pool in turn.
    pub(super) fn conn(&self) -> Result<Conn> {
        let conns = self.conns.lock();
        Ok(self.next_of(conns.as_ref().ok_or(Error::Closed)?))
    }

    /// A connection of the pool and, on a cluster, one to each master,
    /// taken under one hold of the lock.
    pub(super) fn conn_and_masters(&self) -> Result<(Conn, Arc<[ConnectionManager]>)> {
        let conns = self.conns.lock();
        let conns = conns.as_ref().ok_or(Error::Closed)?;
        Ok((self.next_of(conns), Arc::clone(&conns.masters)))
    }

    /// The pool's connection whose turn it is.
    fn next_of(&self, conns: &Connections) -> Conn {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        // The pool is never empty (at least one connection is made in
        // `connect`), so the remainder is in range.
        conns.pool[turn % conns.pool.len()].clone()
    }
}

/// A reconnecting connection to the server at `addr`.
pub(super) async fn single(addr: &str, config: &RedisConfig) -> Result<ConnectionManager> {
    let client = redis::Client::open(node_url(addr, config, true))
        .map_err(|e| redis_error(format!("configuring a client for {addr}"), e))?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
        .set_number_of_retries(2);
    connecting(
        config,
        format!("connecting to {addr}"),
        ConnectionManager::new_with_config(client, manager_config),
    )
    .await
}

/// Runs `connect` within `config.connect_timeout` in all, however many
/// attempts the client makes inside it (the connection manager retries,
/// and each attempt has the whole timeout to itself).
pub(super) async fn connecting<T>(
    config: &RedisConfig,
    context: String,
    connect: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    // A TLS client talking to a plain server sends its hello and waits;
    // the server waits for the end of a command line that never comes.
    let hint = if config.tls {
        " (with rediss://: is the server serving TLS? a plain server takes redis://)"
    } else {
        ""
    };
    match tokio::time::timeout(config.connect_timeout, connect).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(redis_error(format!("{context}{hint}"), e)),
        Err(_) => Err(Error::backend(
            BACKEND,
            format!("{context}{hint}"),
            format!(
                "no connection within connect_timeout ({})",
                format_duration(config.connect_timeout)
            ),
        )
        .temporary_if(true)),
    }
}

/// The one mapping of the `redis` crate's errors. Worth retrying: a
/// timeout, a refused or dropped connection, other I/O failures, and what
/// the server itself says to retry (`LOADING`, `BUSY`, `TRYAGAIN`,
/// `CLUSTERDOWN`, `MASTERDOWN`, moved slots); not a wrong password, a bad
/// command or a wrong type.
pub(super) fn redis_error(context: String, e: RedisError) -> Error {
    use redis::RetryMethod;
    let temporary = !matches!(e.kind(), ErrorKind::AuthenticationFailed)
        && (e.is_timeout()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || !matches!(e.retry_method(), RetryMethod::NoRetry));
    Error::backend(BACKEND, context, e).temporary_if(temporary)
}

/// The URL the `redis` crate connects to `addr` with (a cluster has no
/// database number). It holds the password, so it is never shown.
pub(super) fn node_url(addr: &str, config: &RedisConfig, with_db: bool) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let scheme = if config.tls { "rediss" } else { "redis" };
    let auth = match (config.username.is_empty(), config.password.is_empty()) {
        (true, true) => String::new(),
        (true, false) => format!(
            ":{}@",
            utf8_percent_encode(&config.password, NON_ALPHANUMERIC)
        ),
        (false, _) => format!(
            "{}:{}@",
            utf8_percent_encode(&config.username, NON_ALPHANUMERIC),
            utf8_percent_encode(&config.password, NON_ALPHANUMERIC)
        ),
    };
    if with_db {
        format!("{scheme}://{auth}{addr}/{}", config.db)
    } else {
        format!("{scheme}://{auth}{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_url_encodes_credentials() {
        let config = RedisConfig {
            username: "app".into(),
            password: "p@ss:w/rd".into(),
            db: 3,
            ..RedisConfig::default()
        };
        assert_eq!(
            node_url(&config.addr, &config, true),
            "redis://app:p%40ss%3Aw%2Frd@127.0.0.1:6379/3"
        );
    }
}
