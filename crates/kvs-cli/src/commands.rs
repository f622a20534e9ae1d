//! The commands that work on one store: one arm per library operation.
//!
//! Output is for people by default and for scripts with `--json` (every
//! reading command prints one JSON value then). Values are printed raw by
//! `get`; where several values share one output (`mget --json`, `doc`),
//! a value that is not UTF-8 is base64 with `"encoding": "base64"`, as in
//! `kvs export`.

use crate::{transfer, Failure};
use base64::Engine as _;
use clap::Subcommand;
use kvs::{Document, DocumentStore, Store};
use serde_json::{json, Map, Value};
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[derive(Subcommand, Debug)]
pub(crate) enum StoreCommand {
    /// Print the value of KEY to stdout, as raw bytes (a newline follows
    /// when stdout is a terminal).
    Get { key: String },
    /// Store VALUE (or, without it, everything on stdin) under KEY.
    Set {
        key: String,
        value: Option<String>,
        /// Expire the key after this long: 30s, 10m, 1h30m.
        #[arg(long, value_parser = crate::parse_ttl)]
        ttl: Option<Duration>,
    },
    /// Remove KEY (succeeds if it is absent).
    Delete { key: String },
    /// Print true or false; exit 0 either way.
    Exists { key: String },
    /// Print the keys starting with PREFIX (all keys without it), one a line, sorted.
    List {
        prefix: Option<String>,
        /// End each key with a NUL byte instead of a newline (for xargs -0).
        #[arg(short = '0', long = "null")]
        null: bool,
    },
    /// Print how many keys start with PREFIX (all keys without it).
    Count { prefix: Option<String> },
    /// Print the time KEY has left (`1h29m58.5s`), or `none` if it never expires.
    Ttl { key: String },
    /// Give KEY a new TTL (0 removes it) without rewriting its value.
    Expire {
        key: String,
        #[arg(value_parser = crate::parse_ttl)]
        ttl: Duration,
    },
    /// Remove the TTL of KEY.
    Persist { key: String },
    /// Add DELTA (default 1, may be negative) to the integer at KEY; print
    /// the result. A missing key counts as 0.
    #[command(visible_alias = "increment")]
    Incr {
        key: String,
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        delta: i64,
    },
    /// Store VALUE under KEY only if KEY is absent; print whether it did.
    #[command(visible_alias = "setnx")]
    SetIfAbsent {
        key: String,
        value: String,
        #[arg(long, value_parser = crate::parse_ttl)]
        ttl: Option<Duration>,
    },
    /// Replace the value of KEY with NEW only if it is --expected OLD (or
    /// --absent); print whether it did.
    #[command(group = clap::ArgGroup::new("old").required(true).args(["expected", "absent"]))]
    Cas {
        key: String,
        new: String,
        /// The value KEY must hold now.
        #[arg(long)]
        expected: Option<String>,
        /// KEY must be absent now.
        #[arg(long)]
        absent: bool,
        #[arg(long, value_parser = crate::parse_ttl)]
        ttl: Option<Duration>,
    },
    /// Print the values of KEYS, one a line (an empty line for a missing
    /// key, and exit 3 if any is missing).
    Mget {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Store KEY VALUE pairs in one batch.
    Mset {
        #[arg(required = true, num_args = 2.., value_names = ["KEY", "VALUE"])]
        pairs: Vec<String>,
        #[arg(long, value_parser = crate::parse_ttl)]
        ttl: Option<Duration>,
    },
    /// Remove every key starting with PREFIX; print how many there were.
    DeletePrefix { prefix: String },
    /// Remove every key of the namespace; print how many there were.
    Clear {
        /// Required: clearing cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// JSON documents in collections (they live apart from keys).
    #[command(subcommand)]
    Doc(DocCommand),
    /// Write every key (or those under --prefix) as JSON Lines:
    /// {"key", "value", "encoding" (base64 for non-UTF-8 values), "ttl_ms"}.
    Export(transfer::ExportArgs),
    /// Read keys from JSON Lines (what `export` writes), from FILE or stdin.
    Import(transfer::ImportArgs),
}

#[derive(Subcommand, Debug)]
pub(crate) enum DocCommand {
    /// Store a document: its data is a JSON object (or stdin without it).
    Put {
        collection: String,
        id: String,
        data: Option<String>,
    },
    /// Print a document as JSON.
    Get { collection: String, id: String },
    /// Print the documents that pass FILTER (a JSON object such as
    /// '{"age": {"$gte": 18}}'; all without it), one JSON object a line.
    Query {
        collection: String,
        filter: Option<String>,
    },
    /// Remove a document (succeeds if it is absent).
    Delete { collection: String, id: String },
}

impl StoreCommand {
    /// Whether the command only reads the store.
    pub(crate) fn only_reads(&self) -> bool {
        matches!(
            self,
            StoreCommand::Get { .. }
                | StoreCommand::Exists { .. }
                | StoreCommand::List { .. }
                | StoreCommand::Count { .. }
                | StoreCommand::Ttl { .. }
                | StoreCommand::Mget { .. }
                | StoreCommand::Export(_)
                | StoreCommand::Doc(DocCommand::Get { .. } | DocCommand::Query { .. })
        )
    }

    /// Whether the command needs the store's documents.
    pub(crate) fn uses_documents(&self) -> bool {
        matches!(self, StoreCommand::Doc(_))
    }
}

/// The store a command runs on: plain keys, or keys and documents.
pub(crate) enum Opened {
    Keys(std::sync::Arc<dyn Store>),
    Documents(std::sync::Arc<dyn DocumentStore>),
}

impl Opened {
    fn keys(&self) -> &dyn Store {
        match self {
            Opened::Keys(store) => &**store,
            Opened::Documents(store) => &**store,
        }
    }

    pub(crate) async fn close(&self) -> kvs::Result<()> {
        self.keys().close().await
    }
}

/// A value in JSON output: a string, or base64 with its encoding named.
fn value_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "value": text }),
        Err(_) => json!({
            "value": base64::engine::general_purpose::STANDARD.encode(bytes),
            "encoding": "base64",
        }),
    }
}

fn ttl_json(ttl: Option<Duration>) -> Value {
    ttl.map_or(Value::Null, |t| {
        json!(u64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
    })
}

fn parse_object(what: &str, text: &str) -> Result<Map<String, Value>, Failure> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Failure::Usage(format!(
            "{what} must be a JSON object, not {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(Failure::Usage(format!("{what} is not JSON: {e}"))),
    }
}

async fn stdin_bytes() -> Result<Vec<u8>, Failure> {
    let mut buffer = Vec::new();
    tokio::io::stdin()
        .read_to_end(&mut buffer)
        .await
        .map_err(|e| Failure::Message(format!("reading stdin: {e}")))?;
    Ok(buffer)
}

/// Runs `command` on `opened`, printing its result (`json`: as JSON).
pub(crate) async fn execute(
    opened: &Opened,
    command: StoreCommand,
    json: bool,
) -> Result<(), Failure> {
    let store = opened.keys();
    let mut out = std::io::stdout().lock();
    // What to print: a JSON value, a line of text, or raw bytes.
    let print = |out: &mut std::io::StdoutLock<'_>, value: Value, text: String| {
        if json {
            writeln!(out, "{value}")
        } else {
            writeln!(out, "{text}")
        }
    };
    let written = match command {
        StoreCommand::Get { key } => {
            let value = store.get(&key).await?;
            if json {
                let mut object = value_json(&value);
                object["key"] = json!(key);
                writeln!(out, "{object}")
            } else {
                out.write_all(&value).and_then(|()| {
                    // A shell prompt after the value, not glued to it; a
                    // pipe gets the bytes exactly.
                    if std::io::stdout().is_terminal() && !value.ends_with(b"\n") {
                        writeln!(out)
                    } else {
                        Ok(())
                    }
                })
            }
        }
        StoreCommand::Set { key, value, ttl } => {
            let value = match value {
                Some(value) => value.into_bytes(),
                None => stdin_bytes().await?,
            };
            store.set(&key, &value, ttl).await?;
            Ok(())
        }
        StoreCommand::Delete { key } => {
            store.delete(&key).await?;
            Ok(())
        }
        StoreCommand::Exists { key } => {
            let exists = store.exists(&key).await?;
            print(&mut out, json!(exists), exists.to_string())
        }
        StoreCommand::List { prefix, null } => {
            let keys = store.list(prefix.as_deref().unwrap_or("")).await?;
            if json {
                writeln!(out, "{}", json!(keys))
            } else {
                let end = if null { b'\0' } else { b'\n' };
                keys.iter().try_for_each(|key| {
                    out.write_all(key.as_bytes())
                        .and_then(|()| out.write_all(&[end]))
                })
            }
        }
        StoreCommand::Count { prefix } => {
            let count = store.count(prefix.as_deref().unwrap_or("")).await?;
            print(&mut out, json!(count), count.to_string())
        }
        StoreCommand::Ttl { key } => {
            let ttl = store.ttl(&key).await?;
            let text = ttl.map_or("none".to_owned(), kvs::format_duration);
            print(&mut out, json!({ "ttl_ms": ttl_json(ttl) }), text)
        }
        StoreCommand::Expire { key, ttl } => {
            store.expire(&key, ttl).await?;
            Ok(())
        }
        StoreCommand::Persist { key } => {
            store.persist(&key).await?;
            Ok(())
        }
        StoreCommand::Incr { key, delta } => {
            let now = store.increment(&key, delta).await?;
            print(&mut out, json!(now), now.to_string())
        }
        StoreCommand::SetIfAbsent { key, value, ttl } => {
            let done = store.set_if_absent(&key, value.as_bytes(), ttl).await?;
            print(&mut out, json!(done), done.to_string())
        }
        StoreCommand::Cas {
            key,
            new,
            expected,
            absent: _,
            ttl,
        } => {
            let expected = expected.as_ref().map(String::as_bytes);
            let done = store
                .compare_and_swap(&key, expected, new.as_bytes(), ttl)
                .await?;
            print(&mut out, json!(done), done.to_string())
        }
        StoreCommand::Mget { keys } => {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let values = store.get_many(&refs).await?;
            let missing = values.iter().any(Option::is_none);
            let written = if json {
                let items: Vec<Value> = keys
                    .iter()
                    .zip(&values)
                    .map(|(key, value)| match value {
                        Some(v) => {
                            let mut object = value_json(v);
                            object["key"] = json!(key);
                            object
                        }
                        None => json!({ "key": key, "value": null }),
                    })
                    .collect();
                writeln!(out, "{}", Value::Array(items))
            } else {
                values.iter().try_for_each(|value| {
                    out.write_all(value.as_deref().unwrap_or_default())
                        .and_then(|()| out.write_all(b"\n"))
                })
            };
            written
                .and_then(|()| out.flush())
                .map_err(|e| Failure::Message(format!("writing to stdout: {e}")))?;
            return if missing {
                Err(Failure::NotFound)
            } else {
                Ok(())
            };
        }
        StoreCommand::Mset { pairs, ttl } => {
            if pairs.len() % 2 != 0 {
                return Err(Failure::Usage(format!(
                    "mset takes KEY VALUE pairs; {:?} has no value",
                    pairs[pairs.len() - 1]
                )));
            }
            let entries: Vec<(&str, &[u8])> = pairs
                .chunks(2)
                .map(|pair| (pair[0].as_str(), pair[1].as_bytes()))
                .collect();
            store.set_many(&entries, ttl).await?;
            Ok(())
        }
        StoreCommand::DeletePrefix { prefix } => {
            if prefix.is_empty() {
                return Err(Failure::Usage(
                    "delete-prefix: an empty prefix is every key; use `kvs clear --yes`".into(),
                ));
            }
            let deleted = store.delete_prefix(&prefix).await?;
            print(&mut out, json!(deleted), deleted.to_string())
        }
        StoreCommand::Clear { yes } => {
            if !yes {
                return Err(Failure::Usage(
                    "clear removes every key of the namespace; add --yes to do it".into(),
                ));
            }
            let deleted = store.clear().await?;
            print(&mut out, json!(deleted), deleted.to_string())
        }
        StoreCommand::Doc(command) => {
            let Opened::Documents(docs) = opened else {
                return Err(Failure::Message(
                    "internal: a doc command on a store opened without documents".into(),
                ));
            };
            doc(&**docs, command, &mut out).await?
        }
        StoreCommand::Export(args) => return transfer::export(store, args).await,
        StoreCommand::Import(args) => return transfer::import(store, args).await,
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Message(format!("writing to stdout: {e}")))
}

/// `kvs doc ...`: documents print as JSON always.
async fn doc(
    docs: &dyn DocumentStore,
    command: DocCommand,
    out: &mut std::io::StdoutLock<'_>,
) -> Result<std::io::Result<()>, Failure> {
    let to_json = |doc: &Document| {
        serde_json::to_string(doc)
            .map_err(|e| Failure::Message(format!("printing a document: {e}")))
    };
    Ok(match command {
        DocCommand::Put {
            collection,
            id,
            data,
        } => {
            let text = match data {
                Some(text) => text,
                None => String::from_utf8(stdin_bytes().await?)
                    .map_err(|_| Failure::Usage("the document on stdin is not UTF-8".into()))?,
            };
            let data = parse_object("the document's data", &text)?;
            docs.put(&collection, Document::new(id, data)).await?;
            Ok(())
        }
        DocCommand::Get { collection, id } => {
            let doc = docs.get_doc(&collection, &id).await?;
            writeln!(out, "{}", to_json(&doc)?)
        }
        DocCommand::Query { collection, filter } => {
            let filter = match filter {
                Some(text) => parse_object("the filter", &text)?,
                None => Map::new(),
            };
            let mut written = Ok(());
            for doc in docs.query(&collection, &filter).await? {
                written = writeln!(out, "{}", to_json(&doc)?);
                if written.is_err() {
                    break;
                }
            }
            written
        }
        DocCommand::Delete { collection, id } => {
            docs.delete_doc(&collection, &id).await?;
            Ok(())
        }
    })
}
