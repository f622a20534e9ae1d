//! `kvs bench --layers`: each layer against the bare store, in one run.
//!
//! Like for like: both sides are the same backend opened the same way,
//! the same keys and values, one task, through the suite's own harness
//! (each call timed, as for every line of BENCHMARKS.md); bare and
//! layered take turns for `rounds` rounds and the best of each counts.
//! The lines and their targets (issue 15):
//!
//! - observability (tracing with no subscriber; metrics with no recorder)
//!   on memory `get`: ≥ 0.95×;
//! - typed JSON `get` of a small struct on memory, against `get` of its
//!   bytes: ≥ 0.5×;
//! - zstd on a 4 KB JSON conversation: stored ≥ 3× smaller, and SQLite
//!   `set` ≥ 0.8× of SQLite `set` of the plain value;
//! - encryption of 4 KB values on one core: ≥ 1 GB/s each way (the
//!   layer's own encode and decode, header and nonce included).

use crate::measure::{self, Run};
use crate::subject::{OpError, OpResult, Subject};
use crate::subjects::kvs::Kvs;
use crate::workload::{self, Workload};
use kvs::layer::{Compression, Encryption, EncryptionKey, LayerExt, Observability, ValueTransform};
use kvs::{Store, TypedExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One measured line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerLine {
    /// What is measured.
    pub case: &'static str,
    /// The layered side, per second (calls, or bytes for `unit` "B/s").
    pub layered: f64,
    /// The bare side, per second; `None` for an absolute figure.
    pub bare: Option<f64>,
    /// `"calls/s"` or `"B/s"`.
    pub unit: &'static str,
    /// The target: a ratio to the bare side, or an absolute rate.
    pub target: f64,
    /// For compression: the plain size over the stored size.
    pub size_ratio: Option<f64>,
}

impl LayerLine {
    /// `layered / bare`, or `layered` alone when there is no bare side.
    pub fn figure(&self) -> f64 {
        self.bare.map_or(self.layered, |bare| self.layered / bare)
    }

    /// Whether the line meets its target (and its size target, if any).
    pub fn met(&self) -> bool {
        self.figure() >= self.target && self.size_ratio.is_none_or(|r| r >= 3.0)
    }
}

/// A small struct, as a session or a preference is.
#[derive(serde::Serialize, serde::Deserialize)]
struct Session {
    user: String,
    roles: Vec<String>,
    expires: u64,
    dark_mode: bool,
}

/// Typed values as a subject: `get` decodes a [`Session`], `set` encodes
/// one. Its JSON is 100 bytes, what the harness checks `get_100B` returns.
struct TypedSession(kvs::Typed<Session>, Session);

impl Subject for TypedSession {
    async fn set(&self, key: &str, _value: &[u8]) -> OpResult<()> {
        self.0
            .set(key, &self.1, None)
            .await
            .map_err(|e| OpError::failed("typed set", e))
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        match self.0.get(key).await {
            // Decoded: it held the 100 bytes of a session.
            Ok(_session) => Ok(Some(workload::SMALL)),
            Err(kvs::Error::NotFound) => Ok(None),
            Err(e) => Err(OpError::failed("typed get", e)),
        }
    }

    async fn list(&self, _prefix: &str) -> OpResult<usize> {
        Err(OpError::Unsupported("typed values do not list"))
    }

    async fn count(&self, _prefix: &str) -> OpResult<usize> {
        Err(OpError::Unsupported("typed values do not count"))
    }
}

/// A store whose every `set` writes the conversation, whatever the
/// workload's value: the compression line measures JSON, not the suite's
/// synthetic bytes.
struct Conversation(Kvs, Arc<Vec<u8>>);

impl Subject for Conversation {
    async fn set(&self, key: &str, _value: &[u8]) -> OpResult<()> {
        self.0.set(key, &self.1).await
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        self.0.get(key).await
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        self.0.list(prefix).await
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        self.0.count(prefix).await
    }
}

async fn memory() -> Result<Arc<dyn Store>, String> {
    let config = kvs::Config::from_yaml("type: memory").map_err(|e| e.to_string())?;
    kvs::open(&config).await.map_err(|e| e.to_string())
}

/// A 4 KB JSON conversation, as a chat history is stored.
fn conversation() -> Vec<u8> {
    let mut text = String::from("[");
    let mut i = 0;
    while text.len() < 4000 {
        text += &format!(
            r#"{{"role":"{}","turn":{i},"text":"Could you tell me more about item {} in my order?"}},"#,
            if i % 2 == 0 { "user" } else { "assistant" },
            i * 7 % 13
        );
        i += 1;
    }
    text.pop();
    text.push(']');
    text.into_bytes()
}

/// Bytes a second `work` gets through, `bytes` per call, best of `rounds`.
fn throughput(
    rounds: usize,
    duration: Duration,
    bytes: usize,
    mut work: impl FnMut() -> kvs::Result<()>,
) -> Result<f64, String> {
    let mut best = 0f64;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let mut calls = 0usize;
        while start.elapsed() < duration || calls == 0 {
            for _ in 0..16 {
                work().map_err(|e| e.to_string())?;
            }
            calls += 16;
        }
        best = best.max((calls * bytes) as f64 / start.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Every line, on memory and on SQLite files under `dir`.
pub async fn run(
    dir: &std::path::Path,
    duration: Duration,
    rounds: usize,
    keys: usize,
) -> Result<Vec<LayerLine>, String> {
    let mut lines = Vec::new();
    let get = Run {
        workload: Workload::Get(workload::SMALL),
        tasks: 1,
        keys,
        duration,
    };

    // Observability on memory get.
    let bare = memory().await?;
    let bare_subject = Arc::new(Kvs(bare.clone()));
    measure::load(&*bare_subject, keys)
        .await
        .map_err(|e| format!("{e:?}"))?;
    for (case, metrics) in [
        (
            "observability (tracing, no subscriber; metrics off): memory get_100B",
            false,
        ),
        (
            "observability (tracing, no subscriber; metrics on, no recorder): memory get_100B",
            true,
        ),
    ] {
        let observed = Arc::new(Kvs(bare
            .clone()
            .layer(Observability::new("memory", "default").metrics(metrics))));
        let (b, l) = measure::pair(rounds, get, &bare_subject, &observed).await?;
        lines.push(LayerLine {
            case,
            layered: l,
            bare: Some(b),
            unit: "calls/s",
            target: 0.95,
            size_ratio: None,
        });
    }

    // Typed JSON get against get of the same bytes.
    let session = Session {
        user: "ada.lovelace@example.com".into(),
        roles: vec!["admin".into(), "editor".into()],
        expires: 1_800_000_000,
        dark_mode: true,
    };
    let json = serde_json::to_vec(&session).map_err(|e| e.to_string())?;
    if json.len() != workload::SMALL {
        return Err(format!(
            "the session is {} bytes of JSON, not {}",
            json.len(),
            workload::SMALL
        ));
    }
    let typed = Arc::new(TypedSession(bare.clone().typed::<Session>(), session));
    measure::load(&*typed, keys)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (b, l) = measure::pair(rounds, get, &bare_subject, &typed).await?;
    lines.push(LayerLine {
        case: "typed JSON get of a session struct (100 B): memory get_100B",
        layered: l,
        bare: Some(b),
        unit: "calls/s",
        target: 0.5,
        size_ratio: None,
    });

    // zstd on a 4 KB conversation: size, and SQLite set.
    let chat = Arc::new(conversation());
    let open_sqlite = |name: &str| {
        let path = dir.join(name);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        kvs::Config::from_url(&format!("sqlite://{}", path.display()))
    };
    let plain_db = kvs::open(&open_sqlite("layers-plain.db").map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let zstd_bare = kvs::open(&open_sqlite("layers-zstd.db").map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let zstd_db = zstd_bare.clone().layer(Compression::zstd());
    zstd_db
        .set("size", &chat, None)
        .await
        .map_err(|e| e.to_string())?;
    let stored = zstd_bare
        .get("size")
        .await
        .map_err(|e| e.to_string())?
        .len();
    let plain = Arc::new(Conversation(Kvs(plain_db.clone()), chat.clone()));
    let zstd = Arc::new(Conversation(Kvs(zstd_db.clone()), chat.clone()));
    let set = Run {
        workload: Workload::Set(workload::LARGE),
        tasks: 1,
        keys,
        duration,
    };
    measure::load(&*plain, keys)
        .await
        .map_err(|e| format!("{e:?}"))?;
    measure::load(&*zstd, keys)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (b, l) = measure::pair(rounds, set, &plain, &zstd).await?;
    lines.push(LayerLine {
        case: "zstd level 3, 4 KB JSON conversation: SQLite set_4KB",
        layered: l,
        bare: Some(b),
        unit: "calls/s",
        target: 0.8,
        size_ratio: Some(chat.len() as f64 / stored as f64),
    });
    plain_db.close().await.map_err(|e| e.to_string())?;
    zstd_db.close().await.map_err(|e| e.to_string())?;

    // Encryption: the layer's own work on 4 KB values, one core.
    let key = EncryptionKey::generate("bench").map_err(|e| e.to_string())?;
    let encryption = Encryption::new("default", [key]).map_err(|e| e.to_string())?;
    let block = vec![0x5Au8; 4096];
    let sealed = kvs::Bytes::from(
        encryption
            .encode("k", &block)
            .map_err(|e| e.to_string())?
            .into_owned(),
    );
    let encrypt = throughput(rounds, duration, block.len(), || {
        encryption.encode("k", &block).map(drop)
    })?;
    let decrypt = throughput(rounds, duration, block.len(), || {
        encryption.decode("k", sealed.clone()).map(drop)
    })?;
    for (case, rate) in [
        (
            "encryption (XChaCha20-Poly1305), 4 KB values, one core: encrypt",
            encrypt,
        ),
        (
            "encryption (XChaCha20-Poly1305), 4 KB values, one core: decrypt",
            decrypt,
        ),
    ] {
        lines.push(LayerLine {
            case,
            layered: rate,
            bare: None,
            unit: "B/s",
            target: 1e9,
            size_ratio: None,
        });
    }
    bare.close().await.map_err(|e| e.to_string())?;
    Ok(lines)
}

/// The lines as a table, each with its figure and whether it meets its target.
pub fn table(lines: &[LayerLine]) -> String {
    let mut out = String::from("layers against the bare store (one task, best of the rounds)\n");
    for line in lines {
        let figure = match line.bare {
            Some(bare) => format!(
                "{:>10.0} vs {:>10.0} {}: {:.2}× (target ≥ {}×)",
                line.layered,
                bare,
                line.unit,
                line.figure(),
                line.target
            ),
            None => format!(
                "{:.2} GB/s (target ≥ {:.1} GB/s)",
                line.layered / 1e9,
                line.target / 1e9
            ),
        };
        let size = line
            .size_ratio
            .map(|r| format!(", stored {r:.1}× smaller (target ≥ 3×)"))
            .unwrap_or_default();
        out += &format!(
            "  {:<70} {figure}{size}: {}\n",
            line.case,
            if line.met() { "met" } else { "NOT met" }
        );
    }
    out
}
