//! PostgreSQL's native document layer: the `<table>_documents` table, with
//! filters pushed down into SQL over `jsonb`.
//!
//! A document is one row: its body (`{"v":1,"data":…,"metadata":…}`) in a
//! `jsonb` column, with a GIN index (`jsonb_path_ops`) for containment.
//! `jsonb` cannot hold a string with U+0000; such a document is kept as
//! exact JSON text in `raw` instead (`body` NULL), and every query reads
//! those rows too.
//!
//! A [`Filter`] becomes `WHERE` conditions on `body`, every path and
//! operand a bound parameter — no SQL is ever built from user input:
//!
//! - equality with a scalar is containment (`body @> {"data":{…}}`), which
//!   the GIN index answers; with an array or object, `jsonb` equality at
//!   the path (`#>`);
//! - `$in` is `= ANY` of a `jsonb[]`;
//! - ranges compare `::numeric` for numbers and `COLLATE "C"` text (byte
//!   order) for strings, each behind a `jsonb_typeof` check in a `CASE`, so
//!   a number is never compared with a string and no cast can fail;
//! - `$prefix` is `starts_with` on a string; `$exists` is `#> IS [NOT]
//!   NULL`.
//!
//! The conditions select a superset of the matches: where SQL's meaning
//! could differ from the filter language's, the condition is relaxed to a
//! type check or left out (numbers of 2^53 or more, where the language
//! compares as `f64` and `numeric` compares exactly; a path part that `#>`
//! would read as an array index under `$exists: false`; U+0000 in a path
//! or an operand). Every row is then checked with [`Filter::matches`], so
//! the result is exactly the generic path's.

use super::{Inner, PostgresStore};
use crate::document::{decode_body, encode_body, now, validate, Document, DocumentStore};
use crate::filter::{Filter, Test};
use crate::future::check;
use crate::{Error, Result, StoreFuture};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use tokio_postgres::types::ToSql;

const BACKEND: &str = "postgres";

/// The statements of the documents table.
pub(super) struct DocSql {
    pub create: Vec<String>,
    put: String,
    restore: String,
    get: String,
    delete: String,
    collections: String,
    /// `SELECT … WHERE namespace, collection AND (raw rows OR ` + the
    /// filter's conditions + `)`.
    query_head: String,
    /// The table, for the existence check.
    exists: String,
}

impl DocSql {
    /// The statements for the documents table of the key table `table`
    /// (a name already checked to be letters, digits and `_`).
    pub(super) fn new(table: &str) -> DocSql {
        let d = format!("\"{table}_documents\"");
        let index = format!("\"{table}_docs_gin\"");
        DocSql {
            create: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {d} (\
                     namespace text COLLATE \"C\" NOT NULL, \
                     collection bytea NOT NULL, \
                     id bytea NOT NULL, \
                     body jsonb, \
                     raw text, \
                     created_at bigint NOT NULL, \
                     updated_at bigint NOT NULL, \
                     PRIMARY KEY (namespace, collection, id), \
                     CHECK ((body IS NULL) <> (raw IS NULL)))"
                ),
                format!("CREATE INDEX IF NOT EXISTS {index} ON {d} USING gin (body jsonb_path_ops)"),
            ],
            // One statement keeps `created_at` and moves `updated_at`
            // forward atomically, whoever else writes the document.
            put: format!(
                "INSERT INTO {d} AS old (namespace, collection, id, body, raw, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $6) \
                 ON CONFLICT (namespace, collection, id) DO UPDATE SET \
                 body = EXCLUDED.body, raw = EXCLUDED.raw, \
                 updated_at = GREATEST(EXCLUDED.updated_at, old.updated_at + 1)"
            ),
            restore: format!(
                "INSERT INTO {d} (namespace, collection, id, body, raw, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7) \
                 ON CONFLICT (namespace, collection, id) DO UPDATE SET \
                 body = EXCLUDED.body, raw = EXCLUDED.raw, \
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at"
            ),
            get: format!(
                "SELECT id, COALESCE(raw, body::text), created_at, updated_at FROM {d} \
                 WHERE namespace = $1 AND collection = $2 AND id = $3"
            ),
            delete: format!("DELETE FROM {d} WHERE namespace = $1 AND collection = $2 AND id = $3"),
            // A loose index scan: one index probe per collection, however
            // many documents each holds.
            collections: format!(
                "WITH RECURSIVE c(name) AS (\
                 (SELECT collection FROM {d} WHERE namespace = $1 ORDER BY collection LIMIT 1) \
                 UNION ALL \
                 SELECT (SELECT collection FROM {d} WHERE namespace = $1 AND collection > c.name \
                 ORDER BY collection LIMIT 1) FROM c WHERE c.name IS NOT NULL) \
                 SELECT name FROM c WHERE name IS NOT NULL"
            ),
            query_head: format!(
                "SELECT id, COALESCE(raw, body::text), created_at, updated_at FROM {d} \
                 WHERE namespace = $1 AND collection = $2 AND (body IS NULL OR "
            ),
            exists: format!("SELECT 1 FROM {d} LIMIT 0"),
        }
    }
}

/// A bound parameter of a compiled filter.
type Param = Box<dyn ToSql + Sync + Send>;

/// SQL conditions (joined with AND) and their parameters for `filter`,
/// numbered from `$first`. Selects a superset of the matches (see the
/// module docs).
pub(super) fn compile(filter: &Filter, first: usize) -> (String, Vec<Param>) {
    let mut sql = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    // Adds a parameter, answering its placeholder.
    let arg = |value: Param, params: &mut Vec<Param>| {
        params.push(value);
        format!("${}", first + params.len() - 1)
    };
    for (path, test) in &filter.conditions {
        if path.iter().any(|part| part.contains('\0')) {
            continue;
        }
        // The value at the path; its parameter is added only if used.
        let at = |params: &mut Vec<Param>| {
            let p = arg(Box::new(path.clone()), params);
            format!("((body->'data') #> {p}::text[])")
        };
        let condition = match test {
            Test::Exists(true) | Test::Ne(_) => format!("{} IS NOT NULL", at(&mut params)),
            Test::Exists(false) => {
                if path.iter().any(|part| reads_as_index(part)) {
                    continue;
                }
                format!("{} IS NULL", at(&mut params))
            }
            Test::Eq(v) if !exact(v) => format!("{} IS NOT NULL", at(&mut params)),
            Test::Eq(v @ (Value::Array(_) | Value::Object(_))) => {
                let x = at(&mut params);
                let o = arg(Box::new(v.to_string()), &mut params);
                format!("{x} = {o}::text::jsonb")
            }
            Test::Eq(v) => {
                let o = arg(Box::new(containing(path, v).to_string()), &mut params);
                format!("body @> {o}::text::jsonb")
            }
            Test::In(values) if values.is_empty() => "FALSE".to_owned(),
            Test::In(values) if !values.iter().all(exact) => {
                format!("{} IS NOT NULL", at(&mut params))
            }
            Test::In(values) => {
                let x = at(&mut params);
                let texts: Vec<String> = values.iter().map(Value::to_string).collect();
                let o = arg(Box::new(texts), &mut params);
                format!("{x} = ANY({o}::text[]::jsonb[])")
            }
            Test::Prefix(prefix) if prefix.contains('\0') => continue,
            Test::Prefix(prefix) => {
                let x = at(&mut params);
                let o = arg(Box::new(prefix.clone()), &mut params);
                format!(
                    "CASE WHEN jsonb_typeof({x}) = 'string' THEN starts_with({x} #>> '{{}}', {o}) \
                     ELSE FALSE END"
                )
            }
            Test::Cmp(order, or_equal, v) => {
                let op = match (order, or_equal) {
                    (Ordering::Greater, false) => ">",
                    (Ordering::Greater, true) => ">=",
                    (Ordering::Less, false) => "<",
                    _ => "<=",
                };
                match v {
                    Value::Number(_) if exact(v) => {
                        let x = at(&mut params);
                        let o = arg(Box::new(v.to_string()), &mut params);
                        format!(
                            "CASE WHEN jsonb_typeof({x}) = 'number' \
                             THEN ({x})::numeric {op} {o}::text::numeric ELSE FALSE END"
                        )
                    }
                    Value::Number(_) => {
                        format!("jsonb_typeof({}) = 'number'", at(&mut params))
                    }
                    Value::String(s) if !s.contains('\0') => {
                        let x = at(&mut params);
                        let o = arg(Box::new(s.clone()), &mut params);
                        format!(
                            "CASE WHEN jsonb_typeof({x}) = 'string' \
                             THEN ({x} #>> '{{}}') COLLATE \"C\" {op} {o}::text ELSE FALSE END"
                        )
                    }
                    _ => continue,
                }
            }
        };
        sql.push(condition);
    }
    let sql = if sql.is_empty() {
        "TRUE".to_owned()
    } else {
        sql.join(" AND ")
    };
    (sql, params)
}

/// Whether SQL's `jsonb` comparisons agree with the filter language's on
/// `v`: no number of magnitude 2^53 or more (the language compares those
/// as `f64`, `numeric` exactly) and no U+0000 (which `jsonb` cannot hold).
fn exact(v: &Value) -> bool {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f.abs() < LIMIT),
        Value::String(s) => !s.contains('\0'),
        Value::Array(values) => values.iter().all(exact),
        Value::Object(map) => map.iter().all(|(k, v)| !k.contains('\0') && exact(v)),
        Value::Null | Value::Bool(_) => true,
    }
}

/// Whether `#>` could read `part` as an array index (it takes an integer,
/// signs and spaces included), where the filter language only follows
/// objects.
fn reads_as_index(part: &str) -> bool {
    part.trim()
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit())
}

/// `{"data": {path…: v}}`: what a body contains when `v` is at `path`.
fn containing(path: &[String], v: &Value) -> Value {
    let inner = path.iter().rev().fold(v.clone(), |value, part| {
        Value::Object(Map::from_iter([(part.clone(), value)]))
    });
    Value::Object(Map::from_iter([("data".to_owned(), inner)]))
}

/// A body for its two columns: `jsonb` text, or exact JSON text when
/// `jsonb` cannot hold it (a U+0000 anywhere in it, which serde_json
/// writes as `\u0000`; a literal `\\u0000` in a string takes the same,
/// correct, path).
fn columns(body: String) -> (Option<String>, Option<String>) {
    if body.contains("\\u0000") {
        (None, Some(body))
    } else {
        (Some(body), None)
    }
}

/// A document row: id, body text, created, updated.
fn row_document(row: &tokio_postgres::Row) -> Result<Document> {
    let id = super::key_of(row.get(0))?;
    let body: String = row.get(1);
    decode_body(BACKEND, id, &body, row.get(2), row.get(3))
}

impl Inner {
    /// Fails unless the documents table exists (with `create_table` off).
    pub(super) async fn check_documents_table(&self) -> Result<()> {
        self.query("finding the documents table", &self.docs.exists, &[])
            .await
            .map(drop)
    }
}

impl PostgresStore {
    /// `put` and `restore`: one upsert.
    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        doc: Document,
        restore: bool,
    ) -> StoreFuture<'a, ()> {
        check!(validate(collection, Some(&doc.id)));
        let body = match encode_body(BACKEND, doc.data, doc.metadata) {
            Ok(body) => body,
            Err(e) => return StoreFuture::ready(Err(e)),
        };
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let (json, raw) = columns(body);
            let (c, id) = (collection.as_bytes(), doc.id.as_bytes());
            if restore {
                let (created, updated) = (
                    doc.created_at.timestamp_millis(),
                    doc.updated_at.timestamp_millis(),
                );
                let params: [&(dyn ToSql + Sync); 7] =
                    [&i.namespace, &c, &id, &json, &raw, &created, &updated];
                i.execute("restoring a document", &i.docs.restore, &params)
                    .await?;
            } else {
                let now = now(i.clock.as_ref()).timestamp_millis();
                let params: [&(dyn ToSql + Sync); 6] = [&i.namespace, &c, &id, &json, &raw, &now];
                i.execute("writing a document", &i.docs.put, &params)
                    .await?;
            }
            Ok(())
        })
    }
}

impl DocumentStore for PostgresStore {
    fn put<'a>(&'a self, collection: &'a str, doc: Document) -> StoreFuture<'a, ()> {
        self.upsert(collection, doc, false)
    }

    fn restore<'a>(&'a self, collection: &'a str, doc: Document) -> StoreFuture<'a, ()> {
        self.upsert(collection, doc, true)
    }

    fn get_doc<'a>(&'a self, collection: &'a str, id: &'a str) -> StoreFuture<'a, Document> {
        check!(validate(collection, Some(id)));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let (c, id) = (collection.as_bytes(), id.as_bytes());
            let rows = i
                .query("reading a document", &i.docs.get, &[&i.namespace, &c, &id])
                .await?;
            match rows.first() {
                Some(row) => row_document(row),
                None => Err(Error::NotFound),
            }
        })
    }

    fn query<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Map<String, Value>,
    ) -> StoreFuture<'a, Vec<Document>> {
        check!(validate(collection, None));
        let filter = match Filter::parse(filter) {
            Ok(filter) => filter,
            Err(e) => return StoreFuture::ready(Err(e)),
        };
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let (conditions, params) = compile(&filter, 3);
            let sql = format!("{}{conditions}) ORDER BY id", i.docs.query_head);
            let c = collection.as_bytes();
            let mut all: Vec<&(dyn ToSql + Sync)> = vec![&i.namespace, &c];
            all.extend(params.iter().map(|p| &**p as &(dyn ToSql + Sync)));
            let rows = i.query("querying documents", &sql, &all).await?;
            let mut found = Vec::new();
            for row in &rows {
                let doc = row_document(row)?;
                // SQL selected a superset; this makes the result exact.
                if filter.matches(&doc.data) {
                    found.push(doc);
                }
            }
            Ok(found)
        })
    }

    fn delete_doc<'a>(&'a self, collection: &'a str, id: &'a str) -> StoreFuture<'a, ()> {
        check!(validate(collection, Some(id)));
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let (c, id) = (collection.as_bytes(), id.as_bytes());
            i.execute(
                "deleting a document",
                &i.docs.delete,
                &[&i.namespace, &c, &id],
            )
            .await
            .map(drop)
        })
    }

    fn collections(&self) -> StoreFuture<'_, Vec<String>> {
        StoreFuture::boxed(async move {
            let i = &*self.inner;
            let rows = i
                .query("listing collections", &i.docs.collections, &[&i.namespace])
                .await?;
            rows.iter().map(|row| super::key_of(row.get(0))).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conditions(filter: Value) -> String {
        let filter = Filter::parse(filter.as_object().expect("object")).expect("valid");
        compile(&filter, 3).0
    }

    #[test]
    fn the_common_filters_are_pushed_down() {
        assert_eq!(conditions(json!({})), "TRUE");
        assert_eq!(conditions(json!({"a.b": 1})), "body @> $3::text::jsonb");
        assert!(conditions(json!({"a": [1]})).contains("= $4::text::jsonb"));
        assert!(conditions(json!({"n": {"$gte": 18}})).contains("::numeric >= $4::text::numeric"));
        assert!(conditions(json!({"s": {"$lt": "m"}})).contains("COLLATE \"C\" < $4::text"));
        assert!(conditions(json!({"s": {"$in": ["a", 1]}})).contains("= ANY($4::text[]::jsonb[])"));
        assert!(conditions(json!({"s": {"$prefix": "ab"}})).contains("starts_with"));
        assert_eq!(conditions(json!({"s": {"$in": []}})), "FALSE");
        assert!(conditions(json!({"s": {"$exists": false}})).ends_with("IS NULL"));
    }

    #[test]
    fn inexact_conditions_are_relaxed_not_dropped_to_a_wrong_answer() {
        // 2^53 + 1: the language compares it as f64.
        assert!(conditions(json!({"n": 9007199254740993u64})).ends_with("IS NOT NULL"));
        assert!(conditions(json!({"n": {"$lte": 9007199254740993u64}})).contains("jsonb_typeof"));
        // `#>` would read "0" as an array index.
        assert_eq!(conditions(json!({"a.0": {"$exists": false}})), "TRUE");
        assert_eq!(conditions(json!({"a": {"$prefix": "x\u{0}"}})), "TRUE");
        assert_eq!(conditions(json!({"a\u{0}": 1})), "TRUE");
    }

    #[test]
    fn the_body_goes_to_raw_only_when_jsonb_cannot_hold_it() {
        assert_eq!(columns("{\"a\":1}".into()).1, None);
        assert_eq!(columns("{\"a\":\"\\u0000\"}".into()).0, None);
    }

    #[test]
    fn containment_nests_the_path() {
        assert_eq!(
            containing(&["a".into(), "b".into()], &json!(1)),
            json!({"data": {"a": {"b": 1}}})
        );
    }
}
