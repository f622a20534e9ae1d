//! Document filters: parsing a filter map into conditions, and evaluating
//! them against a document's `data` in Rust.
//!
//! Backends that cannot push filters down evaluate every document with
//! [`Filter::matches`]; a backend that does push down (SQLite,
//! PostgreSQL) compiles the same [`Filter`] and re-checks its rows with
//! `matches`, so both paths agree by construction.
//!
//! # Semantics
//!
//! - `{}` matches every document.
//! - `{"field": v}` matches when `data.field` equals `v` (JSON equality;
//!   `1` equals `1.0`; objects compare by content, arrays element-wise).
//! - Several entries are ANDed.
//! - A dotted name (`"address.city"`) is a path into nested objects. Every
//!   dot separates; a key that itself contains a dot cannot be named.
//! - A missing field never matches, except `{"$exists": false}`.
//! - A value that is an object whose keys all start with `$` is an operator
//!   object: `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, `$in` (array),
//!   `$exists` (bool), `$prefix` (string), ANDed. Range operators compare
//!   numbers with numbers and strings with strings (byte order) only.
//! - An unknown `$` operator, an operand of the wrong type, or an object
//!   mixing `$` keys and plain keys is [`Error::InvalidQuery`].

use crate::{Error, Result};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// A parsed filter: conditions on paths, all of which must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// `(path, test)` pairs, ANDed.
    pub conditions: Vec<(Vec<String>, Test)>,
}

/// One test on the value at a path.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Test {
    /// Equal to the value (JSON equality).
    Eq(Value),
    /// Present and not equal to the value.
    Ne(Value),
    /// A range comparison with a number or a string.
    Cmp(Ordering, bool, Value),
    /// Equal to one of the values.
    In(Vec<Value>),
    /// Present (`true`) or absent (`false`).
    Exists(bool),
    /// A string starting with this prefix.
    Prefix(String),
}

impl Filter {
    /// Parses a filter map; see the module docs for the language.
    ///
    /// ```
    /// use serde_json::json;
    /// use kvs::raw::Filter;
    ///
    /// let filter = json!({"age": {"$gte": 18}, "address.city": "Paris"});
    /// let filter = Filter::parse(filter.as_object().unwrap()).unwrap();
    /// let data = json!({"age": 30, "address": {"city": "Paris"}});
    /// assert!(filter.matches(data.as_object().unwrap()));
    ///
    /// let bad = json!({"age": {"$between": [1, 2]}});
    /// assert!(Filter::parse(bad.as_object().unwrap()).is_err());
    /// ```
    pub fn parse(filter: &Map<String, Value>) -> Result<Filter> {
        let mut conditions = Vec::new();
        for (name, value) in filter {
            if name.is_empty() || name.split('.').any(str::is_empty) {
                return Err(invalid(format!("field name {name:?} has an empty part")));
            }
            let path: Vec<String> = name.split('.').map(str::to_owned).collect();
            match operators(value) {
                Some(ops) => {
                    if ops.is_empty() {
                        return Err(invalid(format!(
                            "{name:?}: an operator object needs at least one operator"
                        )));
                    }
                    for (op, operand) in ops {
                        conditions.push((path.clone(), test(name, op, operand)?));
                    }
                }
                None => {
                    if let Value::Object(map) = value {
                        if map.keys().any(|k| k.starts_with('$')) {
                            return Err(invalid(format!(
                                "{name:?}: an object mixes $operators and plain keys"
                            )));
                        }
                    }
                    conditions.push((path, Test::Eq(value.clone())));
                }
            }
        }
        Ok(Filter { conditions })
    }

    /// Whether a document with this `data` passes every condition.
    pub fn matches(&self, data: &Map<String, Value>) -> bool {
        self.conditions.iter().all(|(path, test)| {
            let found = lookup(data, path);
            match (test, found) {
                (Test::Exists(want), found) => found.is_some() == *want,
                (_, None) => false,
                (Test::Eq(v), Some(x)) => json_eq(x, v),
                (Test::Ne(v), Some(x)) => !json_eq(x, v),
                (Test::In(vs), Some(x)) => vs.iter().any(|v| json_eq(x, v)),
                (Test::Prefix(p), Some(x)) => x.as_str().is_some_and(|s| s.starts_with(p.as_str())),
                (Test::Cmp(order, or_equal, v), Some(x)) => compare(x, v)
                    .is_some_and(|o| o == *order || (*or_equal && o == Ordering::Equal)),
            }
        })
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidQuery { message }
}

/// The operators of an operator object, or `None` for a plain value.
fn operators(value: &Value) -> Option<Vec<(&str, &Value)>> {
    let Value::Object(map) = value else {
        return None;
    };
    if map.is_empty() || !map.keys().all(|k| k.starts_with('$')) {
        return None;
    }
    Some(map.iter().map(|(k, v)| (k.as_str(), v)).collect())
}

fn test(name: &str, op: &str, operand: &Value) -> Result<Test> {
    let range = |order, or_equal| match operand {
        Value::Number(_) | Value::String(_) => Ok(Test::Cmp(order, or_equal, operand.clone())),
        _ => Err(invalid(format!(
            "{name:?}: {op} needs a number or a string, not {operand}"
        ))),
    };
    match op {
        "$eq" => Ok(Test::Eq(operand.clone())),
        "$ne" => Ok(Test::Ne(operand.clone())),
        "$gt" => range(Ordering::Greater, false),
        "$gte" => range(Ordering::Greater, true),
        "$lt" => range(Ordering::Less, false),
        "$lte" => range(Ordering::Less, true),
        "$in" => match operand {
            Value::Array(values) => Ok(Test::In(values.clone())),
            _ => Err(invalid(format!("{name:?}: $in needs an array, not {operand}"))),
        },
        "$exists" => match operand {
            Value::Bool(b) => Ok(Test::Exists(*b)),
            _ => Err(invalid(format!("{name:?}: $exists needs true or false, not {operand}"))),
        },
        "$prefix" => match operand {
            Value::String(s) => Ok(Test::Prefix(s.clone())),
            _ => Err(invalid(format!("{name:?}: $prefix needs a string, not {operand}"))),
        },
        other => Err(invalid(format!(
            "{name:?}: unknown operator {other:?}; known: $eq $ne $gt $gte $lt $lte $in $exists $prefix"
        ))),
    }
}

/// The value at `path` inside `data`, following nested objects.
fn lookup<'a>(data: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = data.get(first)?;
    for part in rest {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// JSON equality in which numbers compare by value (`1 == 1.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn numbers_equal(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    // Integers compare exactly (no rounding through f64 above 2^53).
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    match (x.as_f64(), y.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `a` compared with `b`: numbers with numbers, strings with strings, else `None`.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
                return Some(a.cmp(&b));
            }
            x.as_f64()?.partial_cmp(&y.as_f64()?)
        }
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Filter> {
        Filter::parse(v.as_object().expect("object"))
    }

    fn matches(filter: Value, data: Value) -> bool {
        parse(filter)
            .expect("valid filter")
            .matches(data.as_object().expect("object"))
    }

    #[test]
    fn equality_is_json_equality() {
        assert!(matches(json!({"n": 1}), json!({"n": 1.0})));
        assert!(matches(
            json!({"o": {"a": 1, "b": [1, 2]}}),
            json!({"o": {"b": [1.0, 2], "a": 1}})
        ));
        assert!(!matches(json!({"n": "1"}), json!({"n": 1})));
        assert!(
            !matches(json!({"n": 1}), json!({})),
            "a missing field never matches"
        );
        assert!(matches(json!({"n": null}), json!({"n": null})));
        assert!(!matches(json!({"n": null}), json!({})));
        assert!(matches(
            json!({"big": 9007199254740993u64}),
            json!({"big": 9007199254740993u64})
        ));
        assert!(!matches(
            json!({"big": 9007199254740993u64}),
            json!({"big": 9007199254740992u64})
        ));
    }

    #[test]
    fn paths_and_and() {
        let data = json!({"address": {"city": "Paris", "zip": "75001"}, "age": 30});
        assert!(matches(
            json!({"address.city": "Paris", "age": 30}),
            data.clone()
        ));
        assert!(!matches(
            json!({"address.city": "Paris", "age": 31}),
            data.clone()
        ));
        assert!(!matches(
            json!({"address.city.name": "Paris"}),
            data.clone()
        ));
        assert!(matches(json!({}), data));
    }

    #[test]
    fn operator_objects() {
        let data = json!({"age": 30, "name": "ada", "tags": ["x"]});
        assert!(matches(
            json!({"age": {"$gt": 25, "$lte": 30}}),
            data.clone()
        ));
        assert!(
            !matches(json!({"age": {"$gt": "25"}}), data.clone()),
            "strings never compare with numbers"
        );
        assert!(!matches(json!({"name": {"$gt": 1}}), data.clone()));
        assert!(matches(
            json!({"name": {"$gte": "ad", "$lt": "b"}}),
            data.clone()
        ));
        assert!(matches(json!({"age": {"$in": [1, 30.0]}}), data.clone()));
        assert!(matches(json!({"age": {"$ne": 31}}), data.clone()));
        assert!(
            !matches(json!({"missing": {"$ne": 31}}), data.clone()),
            "$ne never matches a missing field"
        );
        assert!(matches(
            json!({"missing": {"$exists": false}, "age": {"$exists": true}}),
            data.clone()
        ));
        assert!(matches(json!({"name": {"$prefix": "ad"}}), data.clone()));
        assert!(!matches(json!({"age": {"$prefix": "3"}}), data.clone()));
        assert!(matches(json!({"tags": {"$eq": ["x"]}}), data));
    }

    #[test]
    fn bad_filters_are_invalid_queries_naming_the_problem() {
        for (filter, needle) in [
            (json!({"a": {"$between": 1}}), "$between"),
            (json!({"a": {"$in": 1}}), "$in needs an array"),
            (json!({"a": {"$exists": "yes"}}), "$exists"),
            (json!({"a": {"$prefix": 1}}), "$prefix"),
            (json!({"a": {"$gt": [1]}}), "$gt"),
            (json!({"a": {"$gt": 1, "b": 2}}), "mixes"),
            (json!({"a..b": 1}), "empty part"),
            (json!({"": 1}), "empty part"),
        ] {
            let err = parse(filter.clone()).expect_err(&filter.to_string());
            assert!(matches!(err, Error::InvalidQuery { .. }));
            assert!(err.to_string().contains(needle), "{filter}: {err}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            any::<f32>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "[a-z$.]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-z$.]{1,3}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any filter parses or is an InvalidQuery, and evaluating it on
        /// any data never panics.
        #[test]
        fn never_panics(filter in prop::collection::btree_map("[a-z$.]{0,4}", json_value(), 0..4),
                        data in prop::collection::btree_map("[a-z$.]{1,3}", json_value(), 0..4)) {
            let filter: Map<String, Value> = filter.into_iter().collect();
            let data: Map<String, Value> = data.into_iter().collect();
            match Filter::parse(&filter) {
                Ok(f) => { let _ = f.matches(&data); }
                Err(e) => prop_assert!(matches!(e, Error::InvalidQuery { .. }), "{:?}", e),
            }
        }

        /// Equality is reflexive: every top-level field matches itself.
        #[test]
        fn a_document_matches_its_own_fields(data in prop::collection::btree_map("[a-z]{1,3}", json_value(), 1..4)) {
            let data: Map<String, Value> = data.into_iter().collect();
            for (k, v) in &data {
                if operators(v).is_some() || v.as_object().is_some_and(|m| m.keys().any(|k| k.starts_with('$'))) {
                    continue;
                }
                let filter: Map<String, Value> = [(k.clone(), v.clone())].into_iter().collect();
                prop_assert!(Filter::parse(&filter).unwrap().matches(&data));
            }
        }
    }
}
