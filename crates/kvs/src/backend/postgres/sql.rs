//! The statements of the PostgreSQL backend, for one table.
//!
//! Keys are `bytea`, compared byte by byte (any UTF-8 key, NUL included,
//! which `text` cannot hold), so a prefix is the range `[prefix,
//! successor)` of the primary key's index: listing, counting, paging and
//! `delete_prefix` are index range scans, never `LIKE`. The primary key
//! index includes `expires_at`, so that listing and counting, which check
//! every row's deadline, are index-only scans: they read no table page
//! that the visibility map says is all-visible. Deadlines are
//! milliseconds since the epoch from the store's clock (`$now`), never the
//! server's, so every backend expires by the same clock.

/// `expires_at` is live at `$n`.
macro_rules! live {
    ($n:literal) => {
        concat!("(expires_at IS NULL OR expires_at >= $", $n, ")")
    };
}

/// Every statement, with the table name in place.
pub(super) struct Sql {
    pub create: Vec<String>,
    pub get: String,
    pub set: String,
    pub delete: String,
    pub exists: String,
    pub ttl: String,
    /// Listing keys.
    pub keys: Ranged,
    /// Reading entries: key, value, deadline.
    pub entries: Ranged,
    pub count_from: String,
    pub count_range: String,
    pub get_many: String,
    pub set_many: String,
    pub delete_many: String,
    pub set_if_absent: String,
    pub swap: String,
    pub increment: String,
    pub current: String,
    pub touch: String,
    pub delete_from: String,
    pub delete_range: String,
    pub sweep: String,
}

/// The four statements that read `columns` of a prefix's live rows in key
/// order: the first page or a later one (after a cursor), each with the
/// prefix's range end or open-ended (see `Inner::query_prefix`).
pub(super) struct Ranged {
    pub from: String,
    pub range: String,
    pub page_from: String,
    pub page_range: String,
}

impl Ranged {
    fn new(t: &str, columns: &str) -> Ranged {
        // $4: a limit, NULL for none (LIMIT NULL is LIMIT ALL); $5: the
        // cursor of a later page; the range's end comes last.
        let head = format!("SELECT {columns} FROM {t} WHERE namespace = $1 AND key >= $2");
        let tail = format!("AND {} ORDER BY key LIMIT $4", live!(3));
        Ranged {
            from: format!("{head} {tail}"),
            range: format!("{head} AND key < $5 {tail}"),
            page_from: format!("{head} AND key > $5 {tail}"),
            page_range: format!("{head} AND key > $5 AND key < $6 {tail}"),
        }
    }
}

impl Sql {
    /// The statements for `table`, already a quoted identifier.
    pub(super) fn new(table: &str, index: &str) -> Sql {
        let t = table;
        Sql {
            create: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {t} (\
                     namespace text COLLATE \"C\" NOT NULL, \
                     key bytea NOT NULL, \
                     value bytea NOT NULL, \
                     expires_at bigint, \
                     PRIMARY KEY (namespace, key) INCLUDE (expires_at))"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {index} ON {t} (expires_at) WHERE expires_at IS NOT NULL"
                ),
            ],
            get: format!(
                "SELECT value FROM {t} WHERE namespace = $1 AND key = $2 AND {}",
                live!(3)
            ),
            set: format!(
                "INSERT INTO {t} (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (namespace, key) DO UPDATE \
                 SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
            ),
            delete: format!("DELETE FROM {t} WHERE namespace = $1 AND key = $2"),
            exists: format!(
                "SELECT 1 FROM {t} WHERE namespace = $1 AND key = $2 AND {}",
                live!(3)
            ),
            ttl: format!(
                "SELECT expires_at FROM {t} WHERE namespace = $1 AND key = $2 AND {}",
                live!(3)
            ),
            keys: Ranged::new(t, "key"),
            entries: Ranged::new(t, "key, value, expires_at"),
            count_from: format!(
                "SELECT count(*) FROM {t} WHERE namespace = $1 AND key >= $2 AND {}",
                live!(3)
            ),
            count_range: format!(
                "SELECT count(*) FROM {t} WHERE namespace = $1 AND key >= $2 AND key < $4 AND {}",
                live!(3)
            ),
            get_many: format!(
                "SELECT key, value FROM {t} WHERE namespace = $1 AND key = ANY($2) AND {}",
                live!(3)
            ),
            set_many: format!(
                "INSERT INTO {t} (namespace, key, value, expires_at) \
                 SELECT $1, k, v, $4 FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v) \
                 ON CONFLICT (namespace, key) DO UPDATE \
                 SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
            ),
            delete_many: format!(
                "WITH gone AS (DELETE FROM {t} WHERE namespace = $1 AND key = ANY($2) RETURNING expires_at) \
                 SELECT count(*) FROM gone WHERE {}",
                live!(3)
            ),
            // Inserts, or replaces only an expired row: one winner.
            set_if_absent: format!(
                "INSERT INTO {t} AS old (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (namespace, key) DO UPDATE \
                 SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at \
                 WHERE old.expires_at IS NOT NULL AND old.expires_at < $5 RETURNING 1"
            ),
            swap: format!(
                "UPDATE {t} SET value = $4, expires_at = $5 \
                 WHERE namespace = $1 AND key = $2 AND value = $3 AND {}",
                live!(6)
            ),
            // One statement: a missing or expired key becomes `$3`; a live
            // counter (Redis's grammar, checked before any arithmetic) gains
            // `$3` unless that overflows; anything else changes nothing and
            // answers no row (the caller then reads why).
            increment: format!(
                "INSERT INTO {t} AS old (namespace, key, value, expires_at) \
                 VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8'), NULL) \
                 ON CONFLICT (namespace, key) DO UPDATE SET \
                 value = CASE WHEN old.expires_at IS NOT NULL AND old.expires_at < $4 THEN EXCLUDED.value \
                   ELSE convert_to((encode(old.value, 'escape')::numeric + $3::bigint)::text, 'UTF8') END, \
                 expires_at = CASE WHEN old.expires_at IS NOT NULL AND old.expires_at < $4 THEN NULL \
                   ELSE old.expires_at END \
                 WHERE (old.expires_at IS NOT NULL AND old.expires_at < $4) \
                   OR CASE WHEN encode(old.value, 'escape') ~ '^(0|-?[1-9][0-9]{{0,18}})$' \
                     THEN (encode(old.value, 'escape')::numeric + $3::bigint) \
                       BETWEEN -9223372036854775808 AND 9223372036854775807 \
                     ELSE false END \
                 RETURNING value"
            ),
            current: format!(
                "SELECT value FROM {t} WHERE namespace = $1 AND key = $2 AND {}",
                live!(3)
            ),
            touch: format!(
                "UPDATE {t} SET expires_at = $3 WHERE namespace = $1 AND key = $2 AND {} RETURNING value",
                live!(4)
            ),
            delete_from: format!(
                "WITH gone AS (DELETE FROM {t} WHERE namespace = $1 AND key >= $2 RETURNING expires_at) \
                 SELECT count(*) FROM gone WHERE {}",
                live!(3)
            ),
            delete_range: format!(
                "WITH gone AS (DELETE FROM {t} WHERE namespace = $1 AND key >= $2 AND key < $4 \
                 RETURNING expires_at) SELECT count(*) FROM gone WHERE {}",
                live!(3)
            ),
            // A bounded batch, oldest deadline first, by the partial index.
            sweep: format!(
                "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} \
                 WHERE expires_at IS NOT NULL AND expires_at < $1 ORDER BY expires_at LIMIT $2))"
            ),
        }
    }
}
