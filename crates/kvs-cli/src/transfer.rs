//! `kvs export` and `kvs import`: a store as JSON Lines, one key a line.
//!
//! ```text
//! {"key":"user:1","value":"ada"}
//! {"key":"session:9","value":"…","ttl_ms":1799350}
//! {"key":"photo","value":"iVBORw0KGgo…","encoding":"base64"}
//! ```
//!
//! A value that is valid UTF-8 is written as a JSON string, any other as
//! base64 with `"encoding": "base64"`; `ttl_ms` is the time the key had
//! left when it was exported (absent: it never expires), and import gives
//! the key that long from the moment it is written. Both directions stream
//! in pages, so neither holds the store in memory; the export is in byte
//! order of the keys, so two exports diff cleanly.

use crate::Failure;
use base64::Engine as _;
use kvs::{Entry, Store};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

/// `kvs export`.
#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    /// Only the keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Write to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `kvs import`.
#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// The JSON Lines file to read (default: stdin). A file is checked
    /// whole before anything is written.
    file: Option<PathBuf>,
    /// Keys written per batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
}

/// One line of an export.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Line {
    key: String,
    value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl_ms: Option<u64>,
}

impl Line {
    fn of(entry: &kvs::Entry) -> Line {
        let (value, encoding) = match std::str::from_utf8(&entry.value) {
            Ok(text) => (text.to_owned(), None),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(&entry.value),
                Some("base64".to_owned()),
            ),
        };
        Line {
            key: entry.key.clone(),
            value,
            encoding,
            // Rounded up: a key with a millisecond left still expires.
            ttl_ms: entry.ttl.map(|t| {
                let ms = t.as_nanos().div_ceil(1_000_000);
                u64::try_from(ms).unwrap_or(u64::MAX).max(1)
            }),
        }
    }

    /// The entry the line holds, or what is wrong with it.
    fn decode(self) -> Result<Entry, String> {
        let value = match self.encoding.as_deref() {
            None | Some("utf-8") | Some("utf8") => self.value.into_bytes(),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(self.value.as_bytes())
                .map_err(|e| format!("the base64 value of {:?} is not base64: {e}", self.key))?,
            Some(other) => {
                return Err(format!(
                    "unknown encoding {other:?} (expected \"base64\", or none for UTF-8)"
                ))
            }
        };
        kvs::raw::validate_key(&self.key).map_err(|e| e.to_string())?;
        let ttl = match self.ttl_ms {
            Some(0) => return Err("ttl_ms is 0; leave it out for a key that never expires".into()),
            Some(ms) => Some(Duration::from_millis(ms)),
            None => None,
        };
        Ok(Entry {
            key: self.key,
            value: value.into(),
            ttl,
        })
    }
}

/// Writes every key under the prefix as a line, a page at a time.
pub(crate) async fn export(store: &dyn Store, args: ExportArgs) -> Result<(), Failure> {
    let (mut out, target): (Box<dyn Write>, String) = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| Failure::Message(format!("cannot create {}: {e}", path.display())))?;
            (Box::new(file), path.display().to_string())
        }
        None => (Box::new(std::io::stdout().lock()), "stdout".to_owned()),
    };
    let mut out = std::io::BufWriter::new(&mut out);
    let failed = |e: std::io::Error| Failure::Message(format!("writing to {target}: {e}"));
    let mut cursor: Option<String> = None;
    loop {
        let (entries, next) = store
            .entries_page(&args.prefix, cursor.as_deref(), 1000)
            .await?;
        for entry in &entries {
            serde_json::to_writer(&mut out, &Line::of(entry))
                .map_err(|e| Failure::Message(format!("writing to {target}: {e}")))?;
            out.write_all(b"\n").map_err(failed)?;
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.flush().map_err(failed)?;
    drop(out);
    if args.output.is_some() {
        // A backup is only one once it is on the disk.
        if let Some(path) = &args.output {
            std::fs::File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(failed)?;
        }
    }
    Ok(())
}

/// Reads lines and writes them in batches; a file is checked whole first,
/// so that a bad line in it writes nothing.
pub(crate) async fn import(store: &dyn Store, args: ImportArgs) -> Result<(), Failure> {
    let open = |path: &PathBuf| {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| Failure::Message(format!("cannot read {}: {e}", path.display())))
    };
    let (source, checked) = match &args.file {
        Some(path) => {
            let mut lines = 0;
            for line in numbered(open(path)?, &path.display().to_string()) {
                line?;
                lines += 1;
            }
            (path.display().to_string(), Some(lines))
        }
        None => ("stdin".to_owned(), None),
    };
    let reader: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(open(path)?),
        None => Box::new(std::io::stdin().lock()),
    };
    let batch = args.batch as usize;
    let mut pending = Vec::with_capacity(batch);
    let mut written = 0u64;
    for line in numbered(reader, &source) {
        let line = line.map_err(|failure| match (failure, checked) {
            // From stdin, earlier batches are in; say how many.
            (Failure::Usage(m), None) if written > 0 => {
                Failure::Usage(format!("{m} ({written} keys before it were imported)"))
            }
            (failure, _) => failure,
        })?;
        pending.push(line);
        if pending.len() >= batch {
            written += write_batch(store, &mut pending).await?;
        }
    }
    written += write_batch(store, &mut pending).await?;
    eprintln!("kvs: imported {written} keys from {source}");
    Ok(())
}

/// The decoded lines of `reader`, blank lines skipped; a bad line is a
/// usage error naming `source` and the line number.
fn numbered<'r>(
    reader: impl BufRead + 'r,
    source: &'r str,
) -> impl Iterator<Item = Result<Entry, Failure>> + 'r {
    reader.lines().enumerate().filter_map(move |(i, line)| {
        let n = i + 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                return Some(Err(Failure::Message(format!(
                    "reading {source}, line {n}: {e}"
                ))))
            }
        };
        if line.trim().is_empty() {
            return None;
        }
        let decoded = serde_json::from_str::<Line>(&line)
            .map_err(|e| e.to_string())
            .and_then(Line::decode);
        Some(decoded.map_err(|e| Failure::Usage(format!("{source}, line {n}: {e}"))))
    })
}

/// Writes a batch (a key given twice ends with its last line) and empties
/// it; returns how many distinct keys it held.
async fn write_batch(store: &dyn Store, pending: &mut Vec<Entry>) -> Result<u64, Failure> {
    let written = kvs::raw::set_entries(store, pending).await?;
    pending.clear();
    Ok(written as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any key and any value survive a line: export writes it, import
        /// reads back the same bytes and (to the millisecond) the same TTL.
        #[test]
        fn a_line_round_trips(
            key in "\\PC{1,40}",
            value in proptest::collection::vec(any::<u8>(), 0..200),
            ttl_ms in proptest::option::of(1u64..10_000_000_000),
        ) {
            let entry = kvs::Entry {
                key: key.clone(),
                value: value.clone().into(),
                ttl: ttl_ms.map(Duration::from_millis),
            };
            let text = serde_json::to_string(&Line::of(&entry)).unwrap();
            prop_assert!(!text.contains('\n'), "one line: {}", text);
            let line: Line = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(line.decode().unwrap(), entry);
        }

        /// No line, however broken, panics the reader.
        #[test]
        fn any_text_is_a_line_or_an_error(text in "\\PC{0,200}") {
            let _ = serde_json::from_str::<Line>(&text).map_err(|e| e.to_string()).and_then(Line::decode);
        }
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let cases = [
            (r#"{"key":"","value":"x"}"#, "invalid key"),
            (
                r#"{"key":"k","value":"!!","encoding":"base64"}"#,
                "not base64",
            ),
            (
                r#"{"key":"k","value":"x","encoding":"rot13"}"#,
                "unknown encoding \"rot13\"",
            ),
            (r#"{"key":"k","value":"x","ttl_ms":0}"#, "ttl_ms is 0"),
            (r#"{"key":"k","value":"x","ttl":5}"#, "unknown field `ttl`"),
            (r#"{"key":"k"}"#, "missing field `value`"),
            ("not json", "expected"),
        ];
        for (text, want) in cases {
            let got = serde_json::from_str::<Line>(text)
                .map_err(|e| e.to_string())
                .and_then(Line::decode)
                .map(drop)
                .unwrap_err();
            assert!(got.contains(want), "{text}: {got}");
        }
    }
}
