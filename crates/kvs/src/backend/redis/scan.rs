//! Listing without the index: `SCAN MATCH` over the server, or over every master of a
//! cluster, with the glob characters of the pattern escaped.

use super::{Conn, RedisStore};
use crate::Result;

/// The `COUNT` hint of each `SCAN` step.
pub(super) const SCAN_COUNT: usize = 1000;

impl RedisStore {
    /// Every live key starting with `prefix` (without the namespace),
    /// sorted: from the index when the store has one, else by `SCAN`.
    pub(super) async fn keys_of(&self, prefix: &str) -> Result<Vec<String>> {
        if self.index.is_some() {
            self.indexed_keys(prefix, None, None).await
        } else {
            self.scan_keys(prefix).await
        }
    }

    /// Every live key starting with `prefix` (without the namespace), sorted.
    pub(super) async fn scan_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let mut keys = Vec::new();
        for mut node in self.scan_nodes()? {
            let mut cursor = 0;
            loop {
                let (next, batch) = self
                    .scan_step(&mut node, cursor, &pattern, SCAN_COUNT, "scanning keys")
                    .await?;
                keys.extend(
                    batch
                        .into_iter()
                        .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned)),
                );
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// What a `SCAN` of the store's keys must visit: the server, or each
    /// master of a cluster (`SCAN` walks one node's keys).
    pub(super) fn scan_nodes(&self) -> Result<Vec<Conn>> {
        let (conn, masters) = self.conn_and_masters()?;
        Ok(if masters.is_empty() {
            vec![conn]
        } else {
            masters.iter().map(|m| Conn::Single(m.clone())).collect()
        })
    }

    /// One `SCAN … MATCH pattern COUNT count` step from `cursor` on `node`:
    /// the next cursor (`0` after the last step) and the full names of the
    /// keys it found. `what` names the step in an error.
    pub(super) async fn scan_step(
        &self,
        node: &mut Conn,
        cursor: u64,
        pattern: &str,
        count: usize,
        what: &str,
    ) -> Result<(u64, Vec<String>)> {
        redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count)
            .query_async(node)
            .await
            .map_err(|e| self.error(what, e))
    }
}

/// `text` with every glob character escaped, for `SCAN MATCH`.
pub(super) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
        assert_eq!(glob_escape("plain:key"), "plain:key");
    }
}
