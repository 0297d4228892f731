//! Server metrics, encoded by `prometheus-client` in the text exposition format: counters of
//! decisions by policy, decision and kind, latency histograms of screening, checking (solver) and
//! integration (submit → signed checkpoint), pushback counts, and gauges of the log (tree size,
//! pending entries, checkpoint age) set from the log at render time.
//!
//! `verdict_decisions_total` survives a restart: at start the server counts the decisions already
//! in the log ([`crate::service::decision::count_logged`]) and adds them with
//! [`Metrics::add_decisions`].

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Histogram bucket upper bounds in seconds.
const BUCKETS: [f64; 15] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Labels of `verdict_decisions_total`, in this order on the wire.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    policy: String,
    decision: &'static str,
    kind: &'static str,
}

/// A latency histogram with fixed buckets, in seconds.
#[derive(Clone, Debug)]
pub struct Histogram(prometheus_client::metrics::histogram::Histogram);

impl Histogram {
    fn new() -> Self {
        Self(prometheus_client::metrics::histogram::Histogram::new(
            BUCKETS,
        ))
    }

    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

/// All server metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    /// Screening latency.
    pub screen: Histogram,
    /// Checking latency (checker pool round trip, solver included).
    pub check: Histogram,
    /// Integration latency: from submit to a signed checkpoint including the entry.
    pub integration: Histogram,
    /// Whole check request latency up to the proof bundle.
    pub check_to_proof: Histogram,
    pushback: Counter,
    tree_size: Gauge,
    pending: Gauge,
    checkpoint_age: Gauge<f64, AtomicU64>,
}

/// Values read from the log at render time.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogGauges {
    /// Size of the latest signed checkpoint.
    pub tree_size: u64,
    /// Entries sequenced but not yet integrated.
    pub pending: u64,
    /// Seconds since the latest checkpoint was signed (NaN-free: 0 when none).
    pub checkpoint_age_secs: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "verdict_decisions",
            "Logged decisions by policy, decision and kind",
            decisions.clone(),
        );
        let histogram = |registry: &mut Registry, name: &str, help: &str| {
            let h = Histogram::new();
            registry.register(name, help, h.0.clone());
            h
        };
        let screen = histogram(&mut registry, "verdict_screen_seconds", "Screening latency");
        let check = histogram(
            &mut registry,
            "verdict_check_seconds",
            "Decision latency in the checker pool",
        );
        let integration = histogram(
            &mut registry,
            "verdict_integration_seconds",
            "Latency from submit to a signed checkpoint including the entry",
        );
        let check_to_proof = histogram(
            &mut registry,
            "verdict_check_to_proof_seconds",
            "Latency of a check request up to its proof bundle",
        );
        let pushback = Counter::default();
        registry.register(
            "verdict_pushback",
            "Requests answered 503 with Retry-After because of backpressure",
            pushback.clone(),
        );
        let tree_size = Gauge::default();
        registry.register(
            "verdict_tree_size",
            "Size of the latest signed checkpoint",
            tree_size.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "verdict_pending_entries",
            "Entries sequenced but not yet integrated",
            pending.clone(),
        );
        let checkpoint_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "verdict_checkpoint_age_seconds",
            "Seconds since the latest checkpoint was signed",
            checkpoint_age.clone(),
        );
        Self {
            registry,
            decisions,
            screen,
            check,
            integration,
            check_to_proof,
            pushback,
            tree_size,
            pending,
            checkpoint_age,
        }
    }
}

impl Metrics {
    /// Count one logged decision.
    pub fn decision(&self, policy: &str, decision: &'static str, kind: &'static str) {
        self.add_decisions(policy, decision, kind, 1);
    }

    /// Count `n` logged decisions (used at start, for the decisions already in the log).
    pub fn add_decisions(&self, policy: &str, decision: &'static str, kind: &'static str, n: u64) {
        self.decisions
            .get_or_create(&DecisionLabels {
                policy: policy.to_owned(),
                decision,
                kind,
            })
            .inc_by(n);
    }

    /// Count one request pushed back (503 with Retry-After).
    pub fn pushback(&self) {
        self.pushback.inc();
    }

    /// Render the exposition text, with the log gauges set to `gauges`.
    pub fn render(&self, gauges: LogGauges) -> String {
        self.tree_size
            .set(i64::try_from(gauges.tree_size).unwrap_or(i64::MAX));
        self.pending
            .set(i64::try_from(gauges.pending).unwrap_or(i64::MAX));
        self.checkpoint_age.set(gauges.checkpoint_age_secs);
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.decision("p\"1", "allow", "check");
        m.decision("p\"1", "allow", "check");
        m.check.observe(Duration::from_micros(300));
        m.pushback();
        let text = m.render(LogGauges {
            tree_size: 7,
            pending: 1,
            checkpoint_age_secs: 0.5,
        });
        assert!(text.contains(
            "verdict_decisions_total{policy=\"p\\\"1\",decision=\"allow\",kind=\"check\"} 2"
        ));
        assert!(text.contains("verdict_check_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("verdict_check_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("verdict_check_seconds_count 1"));
        assert!(text.contains("verdict_pushback_total 1"));
        assert!(text.contains("verdict_tree_size 7"));
    }

    #[test]
    fn restored_decisions_add_to_live_ones() {
        let m = Metrics::default();
        m.add_decisions("p", "deny", "check", 41);
        m.decision("p", "deny", "check");
        let text = m.render(LogGauges::default());
        assert!(
            text.contains(
                "verdict_decisions_total{policy=\"p\",decision=\"deny\",kind=\"check\"} 42"
            ),
            "{text}"
        );
    }
}
