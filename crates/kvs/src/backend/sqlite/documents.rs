//! SQLite's native document layer: the `kvs_docs` table, with filters
//! pushed down into SQL.
//!
//! A [`Filter`] is compiled into `WHERE` conditions on
//! `json_extract(body, ?)` and `json_type(body, ?)`, every path and operand
//! a bound parameter — no SQL is ever built from user input. The compiled
//! conditions select a superset of the matches (a condition that SQL cannot
//! state exactly, such as equality with an object, is relaxed or left out),
//! and every returned row is checked again with [`Filter::matches`], so the
//! result is exactly the generic path's.
//!
//! Type rules follow the filter language: a number compares only with a
//! number and a string only with a string, enforced with `json_type`
//! (SQLite alone would order any text after any number, making `"25"`
//! greater than `30`).

use super::writes::Write;
use super::SqliteStore;
use crate::document::{now, validate, Document, DocumentStore};
use crate::filter::{Filter, Test};
use crate::future::check;
use crate::{Error, Result, StoreFuture};
use rusqlite::types::Value as Sql;
use rusqlite::{params, params_from_iter, OptionalExtension};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::HashMap;

fn body(data: Map<String, Value>, metadata: HashMap<String, String>) -> Result<String> {
    crate::document::encode_body("sqlite", data, metadata)
}

fn document(id: String, body: &str, created_at: i64, updated_at: i64) -> Result<Document> {
    crate::document::decode_body("sqlite", id, body, created_at, updated_at)
}

/// SQL conditions (joined with AND) and their parameters for `filter`,
/// numbered from `?first`. Selects a superset of the matches.
pub(super) fn compile(filter: &Filter, first: usize) -> (String, Vec<Sql>) {
    let mut sql = Vec::new();
    let mut args: Vec<Sql> = Vec::new();
    for (path, test) in &filter.conditions {
        // A key with a quote cannot be written in a JSON path: leave that
        // condition to the check in Rust.
        if path
            .iter()
            .any(|part| part.contains('"') || part.chars().any(char::is_control))
        {
            continue;
        }
        let json_path: String = std::iter::once("$.data".to_owned())
            .chain(path.iter().map(|part| format!(".\"{part}\"")))
            .collect();
        let mut arg = |value: Sql, args: &mut Vec<Sql>| {
            args.push(value);
            format!("?{}", first + args.len() - 1)
        };
        let p = arg(Sql::Text(json_path), &mut args);
        let kind = format!("json_type(body, {p})");
        let value = format!("json_extract(body, {p})");
        let condition = match test {
            Test::Exists(true) | Test::Ne(_) => Some(format!("{kind} IS NOT NULL")),
            Test::Exists(false) => Some(format!("{kind} IS NULL")),
            Test::Eq(v) => Some(equals(v, &kind, &value, &mut args, &mut arg)),
            Test::In(values) => {
                let any: Vec<String> = values
                    .iter()
                    .map(|v| equals(v, &kind, &value, &mut args, &mut arg))
                    .collect();
                Some(if any.is_empty() {
                    // Matches nothing, but still uses the path parameter.
                    format!("({kind} IS NULL AND {kind} IS NOT NULL)")
                } else {
                    format!("({})", any.join(" OR "))
                })
            }
            Test::Prefix(prefix) => {
                let n = arg(Sql::Integer(prefix.chars().count() as i64), &mut args);
                let s = arg(Sql::Text(prefix.clone()), &mut args);
                Some(format!(
                    "({kind} = 'text' AND substr({value}, 1, {n}) = {s})"
                ))
            }
            Test::Cmp(order, or_equal, v) => {
                let op = match (order, or_equal) {
                    (Ordering::Greater, false) => ">",
                    (Ordering::Greater, true) => ">=",
                    (Ordering::Less, false) => "<",
                    _ => "<=",
                };
                scalar(v).map(|(types, operand)| {
                    let o = arg(operand, &mut args);
                    // The cheap comparison first: most rows fail it.
                    format!("({value} {op} {o} AND {kind} IN ({types}))")
                })
            }
        };
        match condition {
            Some(condition) => sql.push(condition),
            // Drop the unused path parameter.
            None => {
                args.pop();
            }
        }
    }
    let sql = if sql.is_empty() {
        "1".to_owned()
    } else {
        sql.join(" AND ")
    };
    (sql, args)
}

/// The `json_type` names and the SQL operand of a number or string that
/// SQLite compares exactly; `None` otherwise.
fn scalar(v: &Value) -> Option<(&'static str, Sql)> {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(("'integer', 'real'", Sql::Integer(i))),
            // Beyond i64, SQLite's JSON numbers lose precision: check in Rust.
            (None, Some(f)) if n.as_u64().is_none() && f.is_finite() => {
                Some(("'integer', 'real'", Sql::Real(f)))
            }
            _ => None,
        },
        Value::String(s) => Some(("'text'", Sql::Text(s.clone()))),
        _ => None,
    }
}

/// The condition "the value at the path equals `v`", as far as SQL can say it.
fn equals(
    v: &Value,
    kind: &str,
    value: &str,
    args: &mut Vec<Sql>,
    arg: &mut impl FnMut(Sql, &mut Vec<Sql>) -> String,
) -> String {
    match v {
        Value::Null => format!("{kind} = 'null'"),
        Value::Bool(true) => format!("{kind} = 'true'"),
        Value::Bool(false) => format!("{kind} = 'false'"),
        Value::Object(_) => format!("{kind} = 'object'"),
        Value::Array(_) => format!("{kind} = 'array'"),
        scalar_value => match scalar(scalar_value) {
            Some((_, operand)) => {
                // Without a type check this may also pass `true` for 1 or
                // an object's text for a string: a superset, which the
                // check in Rust narrows. SQLite never equates text with a
                // number, so "1" and 1 stay apart here already.
                let o = arg(operand, args);
                format!("{value} = {o}")
            }
            None => format!("{kind} IS NOT NULL"),
        },
    }
}

/// `put`: upserts a document; `now` becomes `updated_at` (and
/// `created_at` of a new one).
struct PutDoc {
    collection: String,
    id: String,
    body: String,
    now: i64,
}

impl Write for PutDoc {
    type Output = ();
    const SINGLE_STATEMENT: bool = true;

    fn apply(&self, conn: &rusqlite::Connection, namespace: &str) -> rusqlite::Result<Result<()>> {
        // One statement keeps `created_at` and moves `updated_at` forward
        // atomically, whoever else writes the document.
        conn.prepare_cached(
            "INSERT INTO kvs_docs (namespace, collection, id, body, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
             ON CONFLICT (namespace, collection, id) DO UPDATE SET body = excluded.body, \
             updated_at = max(excluded.updated_at, kvs_docs.updated_at + 1)",
        )?
        .execute(params![
            namespace,
            self.collection,
            self.id,
            self.body,
            self.now
        ])?;
        Ok(Ok(()))
    }
}

/// `restore`: a document with the timestamps it brings.
struct RestoreDoc {
    collection: String,
    id: String,
    body: String,
    created_at: i64,
    updated_at: i64,
}

impl Write for RestoreDoc {
    type Output = ();
    const SINGLE_STATEMENT: bool = true;

    fn apply(&self, conn: &rusqlite::Connection, namespace: &str) -> rusqlite::Result<Result<()>> {
        conn.prepare_cached(
            "INSERT INTO kvs_docs (namespace, collection, id, body, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (namespace, collection, id) DO UPDATE SET body = excluded.body, \
             created_at = excluded.created_at, updated_at = excluded.updated_at",
        )?
        .execute(params![
            namespace,
            self.collection,
            self.id,
            self.body,
            self.created_at,
            self.updated_at
        ])?;
        Ok(Ok(()))
    }
}

/// `delete_doc`.
struct DeleteDoc {
    collection: String,
    id: String,
}

impl Write for DeleteDoc {
    type Output = ();
    const SINGLE_STATEMENT: bool = true;

    fn apply(&self, conn: &rusqlite::Connection, namespace: &str) -> rusqlite::Result<Result<()>> {
        conn.prepare_cached(
            "DELETE FROM kvs_docs WHERE namespace = ?1 AND collection = ?2 AND id = ?3",
        )?
        .execute(params![namespace, self.collection, self.id])?;
        Ok(Ok(()))
    }
}

impl DocumentStore for SqliteStore {
    fn collections(&self) -> StoreFuture<'_, Vec<String>> {
        self.read("listing collections", |conn, namespace, _| {
            let mut statement = conn.prepare_cached(
                "SELECT DISTINCT collection FROM kvs_docs WHERE namespace = ?1 ORDER BY collection",
            )?;
            let names = statement
                .query_map(params![namespace], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>();
            names
        })
    }

    fn restore<'a>(&'a self, collection: &'a str, doc: Document) -> StoreFuture<'a, ()> {
        check!(validate(collection, Some(&doc.id)));
        let body = match body(doc.data, doc.metadata) {
            Ok(body) => body,
            Err(e) => return StoreFuture::ready(Err(e)),
        };
        self.write(RestoreDoc {
            collection: collection.to_owned(),
            id: doc.id,
            body,
            created_at: doc.created_at.timestamp_millis(),
            updated_at: doc.updated_at.timestamp_millis(),
        })
    }

    fn put<'a>(&'a self, collection: &'a str, doc: Document) -> StoreFuture<'a, ()> {
        check!(validate(collection, Some(&doc.id)));
        let body = match body(doc.data, doc.metadata) {
            Ok(body) => body,
            Err(e) => return StoreFuture::ready(Err(e)),
        };
        let now = now(self.clock.as_ref()).timestamp_millis();
        self.write(PutDoc {
            collection: collection.to_owned(),
            id: doc.id,
            body,
            now,
        })
    }

    fn get_doc<'a>(&'a self, collection: &'a str, id: &'a str) -> StoreFuture<'a, Document> {
        check!(validate(collection, Some(id)));
        let (collection, id) = (collection.to_owned(), id.to_owned());
        let row = self.read("reading a document", move |conn, namespace, _| {
            conn.prepare_cached(
                "SELECT id, body, created_at, updated_at FROM kvs_docs \
                 WHERE namespace = ?1 AND collection = ?2 AND id = ?3",
            )?
            .query_row(params![namespace, collection, id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get(2)?,
                    row.get(3)?,
                ))
            })
            .optional()
        });
        StoreFuture::boxed(async move {
            match row.await? {
                Some((id, body, created, updated)) => document(id, &body, created, updated),
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
        let (conditions, args) = compile(&filter, 3);
        let sql = format!(
            "SELECT id, body, created_at, updated_at FROM kvs_docs \
             WHERE namespace = ?1 AND collection = ?2 AND {conditions} ORDER BY id"
        );
        let collection = collection.to_owned();
        let rows = self.read("querying documents", move |conn, namespace, _| {
            let mut statement = conn.prepare_cached(&sql)?;
            let all = [Sql::Text(namespace.to_owned()), Sql::Text(collection)]
                .into_iter()
                .chain(args);
            let rows = statement
                .query_map(params_from_iter(all), |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get(2)?,
                        row.get(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<(String, String, i64, i64)>>>();
            rows
        });
        StoreFuture::boxed(async move {
            let mut found = Vec::new();
            for (id, body, created, updated) in rows.await? {
                let doc = document(id, &body, created, updated)?;
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
        self.write(DeleteDoc {
            collection: collection.to_owned(),
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use serde_json::json;

    /// Pushed-down conditions select exactly what `Filter::matches` selects
    /// on a table of tricky documents, for many filters.
    #[test]
    fn pushed_down_conditions_never_lose_a_match() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE kvs_docs (id TEXT, body TEXT)")
            .unwrap();
        let docs = [
            json!({"n": 1}),
            json!({"n": 1.0}),
            json!({"n": "1"}),
            json!({"n": 30}),
            json!({"n": "25"}),
            json!({"n": null}),
            json!({"n": true}),
            json!({"n": [1, 2]}),
            json!({"n": {"a": 1}}),
            json!({}),
            json!({"s": "apple"}),
            json!({"s": "app"}),
            json!({"s": "Äpfel"}),
            json!({"a": {"b": {"c": 2}}}),
            json!({"q\"uote": 1}),
            json!({"n": 9007199254740993u64}),
        ];
        for (i, data) in docs.iter().enumerate() {
            let body = json!({"v": 1, "data": data}).to_string();
            conn.execute(
                "INSERT INTO kvs_docs VALUES (?1, ?2)",
                params![i.to_string(), body],
            )
            .unwrap();
        }
        let filters = [
            json!({"n": 1}),
            json!({"n": "1"}),
            json!({"n": null}),
            json!({"n": true}),
            json!({"n": [1, 2.0]}),
            json!({"n": {"a": 1.0}}),
            json!({"n": {"$gt": 1}}),
            json!({"n": {"$gte": "1"}}),
            json!({"n": {"$lt": 30}}),
            json!({"n": {"$ne": 1}}),
            json!({"n": {"$in": [1, "25", null]}}),
            json!({"n": {"$in": []}}),
            json!({"n": {"$exists": false}}),
            json!({"s": {"$prefix": "app"}}),
            json!({"s": {"$prefix": "Äp"}}),
            json!({"a.b.c": 2}),
            json!({"a.b": {"c": 2}}),
            json!({"q\"uote": 1}),
            json!({"n": 9007199254740993u64}),
            json!({"n": {"$gt": 9007199254740992u64}}),
            json!({}),
            json!({"n": 1, "s": "apple"}),
        ];
        for f in filters {
            let filter = Filter::parse(f.as_object().unwrap()).unwrap();
            let (conditions, args) = compile(&filter, 1);
            let mut statement = conn
                .prepare(&format!(
                    "SELECT id, body FROM kvs_docs WHERE {conditions} ORDER BY id"
                ))
                .unwrap();
            let selected: Vec<(String, String)> = statement
                .query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let selected_ids: Vec<&String> = selected.iter().map(|(id, _)| id).collect();
            for (i, data) in docs.iter().enumerate() {
                if filter.matches(data.as_object().unwrap()) {
                    assert!(
                        selected_ids.contains(&&i.to_string()),
                        "{f}: SQL lost document {data}"
                    );
                }
            }
        }
    }
}
