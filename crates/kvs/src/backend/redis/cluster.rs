//! Redis Cluster: connecting, and finding the masters, so that a listing
//! visits each.

use super::connections::{connecting, node_url, redis_error, single, Conn};
use crate::config::RedisConfig;
use crate::Result;
use redis::aio::ConnectionManager;

/// `pool_size` connections to the cluster (each routes a command to the
/// node that owns its key), and one connection to each master.
pub(super) async fn connect(
    config: &RedisConfig,
    pool_size: usize,
) -> Result<(Vec<Conn>, Vec<ConnectionManager>)> {
    let mut conns = Vec::with_capacity(pool_size);
    let nodes: Vec<String> = config
        .cluster_nodes
        .iter()
        .map(|node| node_url(node, config, false))
        .collect();
    let client = redis::cluster::ClusterClient::builder(nodes)
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.command_timeout)
        .build()
        .map_err(|e| {
            redis_error(
                format!("configuring a cluster client for {}", config.addr),
                e,
            )
        })?;
    let context = || format!("connecting to the cluster at {}", config.addr);
    let mut conn = connecting(config, context(), client.get_async_connection()).await?;
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .map_err(|e| {
            redis_error(
                format!("listing the nodes of the cluster at {}", config.addr),
                e,
            )
        })?;
    let mut masters = Vec::new();
    for addr in cluster_masters(&nodes) {
        masters.push(single(&addr, config).await?);
    }
    conns.push(Conn::Cluster(conn));
    for _ in 1..pool_size {
        let conn = connecting(config, context(), client.get_async_connection()).await?;
        conns.push(Conn::Cluster(conn));
    }
    Ok((conns, masters))
}

/// The `host:port` of every master in `CLUSTER NODES` output.
pub(super) fn cluster_masters(nodes: &str) -> Vec<String> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = fields.nth(1)?;
            let flags = fields.next()?;
            let is_master = flags.split(',').any(|f| f == "master") && !flags.contains("fail");
            is_master.then(|| addr.split(['@', ',']).next().unwrap_or(addr).to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let nodes = "a1 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5460\n\
                     b2 127.0.0.1:7102@17102,host2 master - 0 0 2 connected 5461-10922\n\
                     c3 127.0.0.1:7104@17104 slave a1 0 0 1 connected\n\
                     d4 127.0.0.1:7105@17105 master,fail - 0 0 3 disconnected\n";
        assert_eq!(
            cluster_masters(nodes),
            vec!["127.0.0.1:7101", "127.0.0.1:7102"]
        );
    }
}
