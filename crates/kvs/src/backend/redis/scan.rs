//! Listing without the index: `SCAN MATCH` over the server, or over every master of a
//! cluster, with the glob characters of the pattern escaped.

use super::RedisStore;
use crate::Result;
use redis::aio::ConnectionLike;

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
        let (mut conn, masters) = self.conn_and_masters()?;
        if masters.is_empty() {
            self.scan_node(&mut conn, &pattern, &mut keys).await?;
        } else {
            for master in masters.iter() {
                self.scan_node(&mut master.clone(), &pattern, &mut keys)
                    .await?;
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// Adds the keys of one node that match `pattern`, without the namespace.
    async fn scan_node(
        &self,
        conn: &mut impl ConnectionLike,
        pattern: &str,
        keys: &mut Vec<String>,
    ) -> Result<()> {
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(conn)
                .await
                .map_err(|e| self.error("scanning keys", e))?;
            keys.extend(
                batch
                    .into_iter()
                    .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned)),
            );
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
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
