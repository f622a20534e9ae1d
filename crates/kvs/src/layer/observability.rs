//! The observability layer: a `tracing` span and `metrics` for every call.

use super::around::{Around, AroundStore, Call, Measure, Operation};
use crate::{Result, StoreFuture};
use metrics::{Label, SharedString};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tracing::Instrument;

/// A `tracing` span around every call, and `metrics` counters and
/// histograms of them, so that any subscriber (`tracing-subscriber`,
/// OpenTelemetry) or recorder (Prometheus, StatsD) shows what the store
/// does.
///
/// # Spans
///
/// Each call runs in a DEBUG span named `kvs` (target `kvs`) with the
/// fields `backend`, `namespace` and `operation`, and ends with a DEBUG
/// event carrying `outcome` (`ok`, `not_found`, or the error's
/// [`kind`](crate::Error::kind)) and `micros`. Values are never logged;
/// keys only with [`keys(true)`](Observability::keys), as the `key` field.
///
/// # Metrics
///
/// Labelled `backend`, `namespace` and `operation`:
///
/// | name | kind | what |
/// |------|------|------|
/// | `kvs_calls_total` | counter | calls, also labelled `outcome` |
/// | `kvs_errors_total` | counter | failed calls, also labelled `kind` |
/// | `kvs_call_seconds` | histogram | time from the call to its result |
/// | `kvs_written_bytes_total` | counter | bytes of value sent |
/// | `kvs_read_bytes_total` | counter | bytes of value read back |
///
/// Install the recorder before the store's first call: each operation's
/// handles are registered with the recorder of that moment. With no
/// subscriber listening and metrics off, a call costs one check and goes
/// straight through; with metrics on, it costs two clock reads and the
/// recorder's own work, recorder or not (the `metrics` facade cannot say
/// whether one is installed).
///
/// Keys, values, TTLs and documents pass through unchanged (document
/// calls are not observed). In a configuration file:
/// `layers: [{ observability: { metrics: true, keys: false } }]`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use kvs::layer::{LayerExt, Observability};
///
/// let store = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?
///     .layer(Observability::new("memory", "default"));
/// store.set("k", b"v", None).await?; // a span, and kvs_calls_total{operation="set"} + 1
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Observability {
    backend: Arc<str>,
    namespace: Arc<str>,
    metrics: bool,
    keys: bool,
    /// Per operation, shared by the stores this layer wraps.
    handles: Arc<[OnceLock<Handles>; Operation::COUNT]>,
}

impl std::fmt::Debug for Observability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observability")
            .field("backend", &self.backend)
            .field("namespace", &self.namespace)
            .field("metrics", &self.metrics)
            .field("keys", &self.keys)
            .finish()
    }
}

impl Observability {
    /// Spans and metrics labelled with `backend` and `namespace`; metrics
    /// on, keys not logged.
    pub fn new(backend: &str, namespace: &str) -> Observability {
        let namespace = if namespace.is_empty() {
            crate::key::DEFAULT_NAMESPACE
        } else {
            namespace
        };
        Observability {
            backend: backend.into(),
            namespace: namespace.into(),
            metrics: true,
            keys: false,
            handles: Arc::new(std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// Whether to record metrics (default `true`).
    pub fn metrics(mut self, on: bool) -> Observability {
        self.metrics = on;
        self
    }

    /// Whether spans carry the key of single-key calls (default `false`:
    /// keys can hold user ids or emails).
    pub fn keys(mut self, on: bool) -> Observability {
        self.keys = on;
        self
    }

    /// The labels of `operation`'s metrics, and `extra` (`("outcome", "ok")`).
    fn labels(
        &self,
        operation: Operation,
        extra: Option<(&'static str, &'static str)>,
    ) -> Vec<Label> {
        let mut labels = vec![
            Label::new("backend", SharedString::from(self.backend.clone())),
            Label::new("namespace", SharedString::from(self.namespace.clone())),
            Label::new("operation", SharedString::const_str(operation.name())),
        ];
        if let Some((name, value)) = extra {
            labels.push(Label::new(name, SharedString::const_str(value)));
        }
        labels
    }

    /// `operation`'s metric handles, registered with the recorder on its
    /// first call: what every later call records into, without building
    /// a label set.
    fn handles(&self, operation: Operation) -> &Handles {
        self.handles[operation as usize].get_or_init(|| {
            let labels = |extra| self.labels(operation, extra);
            Handles {
                ok: metrics::counter!("kvs_calls_total", labels(Some(("outcome", "ok")))),
                not_found: metrics::counter!(
                    "kvs_calls_total",
                    labels(Some(("outcome", "not_found")))
                ),
                seconds: metrics::histogram!("kvs_call_seconds", labels(None)),
                read: metrics::counter!("kvs_read_bytes_total", labels(None)),
                written: metrics::counter!("kvs_written_bytes_total", labels(None)),
            }
        })
    }

    /// Records the end of one call.
    fn finish<T: Measure>(
        &self,
        call: &Call<'_>,
        result: &Result<T>,
        start: Option<Instant>,
        span: &tracing::Span,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        let elapsed = start.map(|s| s.elapsed());
        span.in_scope(|| {
            tracing::debug!(
                target: "kvs",
                outcome,
                micros = elapsed.map(|e| e.as_micros() as u64),
                "done"
            )
        });
        if !self.metrics {
            return;
        }
        let handles = self.handles(call.operation);
        if let Some(elapsed) = elapsed {
            handles.seconds.record(elapsed.as_secs_f64());
        }
        match result {
            Ok(value) => {
                handles.ok.increment(1);
                let read = value.bytes_read();
                if read > 0 {
                    handles.read.increment(read as u64);
                }
            }
            // A missing key is an answer, not a failure.
            Err(crate::Error::NotFound) => handles.not_found.increment(1),
            // Failures are rare: their labels are built when they happen.
            Err(e) => {
                let outcome = self.labels(call.operation, Some(("outcome", e.kind())));
                metrics::counter!("kvs_calls_total", outcome).increment(1);
                let kind = self.labels(call.operation, Some(("kind", e.kind())));
                metrics::counter!("kvs_errors_total", kind).increment(1);
            }
        }
        if call.bytes_written > 0 {
            handles.written.increment(call.bytes_written as u64);
        }
    }
}

/// One operation's metrics.
struct Handles {
    ok: metrics::Counter,
    not_found: metrics::Counter,
    seconds: metrics::Histogram,
    read: metrics::Counter,
    written: metrics::Counter,
}

super::layer_wraps_with!(Observability, |layer, inner| ObservabilityStore::new(
    inner,
    layer.clone()
));

/// A store behind the [`Observability`] layer.
pub type ObservabilityStore<S> = AroundStore<S, Observability>;

impl Around for Observability {
    fn around<'a, T: Measure + Send + 'a>(
        &'a self,
        call: Call<'a>,
        make: impl Fn() -> StoreFuture<'a, T> + Send + Sync + 'a,
    ) -> StoreFuture<'a, T> {
        let layer = self;
        // Nothing listens: the call goes straight through.
        if !layer.metrics && !tracing::enabled!(target: "kvs", tracing::Level::DEBUG) {
            return make();
        }
        let span = tracing::debug_span!(
            target: "kvs",
            "kvs",
            backend = &*layer.backend,
            namespace = &*layer.namespace,
            operation = call.operation.name(),
            key = tracing::field::Empty,
        );
        if layer.keys && !span.is_disabled() {
            if let Some(key) = call.key {
                span.record("key", key);
            }
        }
        // No clock read when nothing would see the time.
        let start = (layer.metrics || !span.is_disabled()).then(Instant::now);
        let future = span.in_scope(make);
        match future.into_ready() {
            // Answered at once (the memory store): answer at once too.
            Ok(result) => {
                layer.finish(&call, &result, start, &span);
                StoreFuture::ready(result)
            }
            Err(future) => StoreFuture::boxed(async move {
                let result = future.instrument(span.clone()).await;
                layer.finish(&call, &result, start, &span);
                result
            }),
        }
    }
}
