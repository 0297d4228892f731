//! Prometheus text exposition (format 0.0.4), hand-written: counters of decisions by outcome,
//! kind and policy, latency histograms of screening, checking (solver) and integration
//! (submit → signed checkpoint), pushback and error counts. Gauges (tree size, pending) are
//! passed in at render time from the log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds in seconds.
const BUCKETS: [f64; 15] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        #[expect(clippy::cast_precision_loss, reason = "metrics are approximate")]
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// All server metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    decisions: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    /// Screening latency.
    pub screen: Histogram,
    /// Checking latency (checker pool round trip, solver included).
    pub check: Histogram,
    /// Integration latency: from submit to a signed checkpoint including the entry.
    pub integration: Histogram,
    /// Whole check request latency up to the proof bundle.
    pub check_to_proof: Histogram,
    pushback: AtomicU64,
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

impl Metrics {
    /// Count one logged decision.
    pub fn decision(&self, policy: &str, decision: &'static str, kind: &'static str) {
        if let Ok(mut m) = self.decisions.lock() {
            *m.entry((policy.to_owned(), decision, kind)).or_default() += 1;
        }
    }

    /// Count one request pushed back (503 with Retry-After).
    pub fn pushback(&self) {
        self.pushback.fetch_add(1, Ordering::Relaxed);
    }

    /// Render the exposition text.
    pub fn render(&self, gauges: LogGauges) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP verdict_decisions_total Logged decisions by policy, decision and kind.\n",
        );
        out.push_str("# TYPE verdict_decisions_total counter\n");
        if let Ok(m) = self.decisions.lock() {
            for ((policy, decision, kind), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "verdict_decisions_total{{policy=\"{}\",decision=\"{decision}\",kind=\"{kind}\"}} {n}",
                    escape_label(policy)
                );
            }
        }
        self.screen
            .render(&mut out, "verdict_screen_seconds", "Screening latency.");
        self.check.render(
            &mut out,
            "verdict_check_seconds",
            "Decision latency in the checker pool.",
        );
        self.integration.render(
            &mut out,
            "verdict_integration_seconds",
            "Latency from submit to a signed checkpoint including the entry.",
        );
        self.check_to_proof.render(
            &mut out,
            "verdict_check_to_proof_seconds",
            "Latency of a check request up to its proof bundle.",
        );
        let _ = writeln!(out, "# HELP verdict_pushback_total Requests answered 503 with Retry-After because of backpressure.");
        let _ = writeln!(out, "# TYPE verdict_pushback_total counter");
        let _ = writeln!(
            out,
            "verdict_pushback_total {}",
            self.pushback.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP verdict_tree_size Size of the latest signed checkpoint."
        );
        let _ = writeln!(out, "# TYPE verdict_tree_size gauge");
        let _ = writeln!(out, "verdict_tree_size {}", gauges.tree_size);
        let _ = writeln!(
            out,
            "# HELP verdict_pending_entries Entries sequenced but not yet integrated."
        );
        let _ = writeln!(out, "# TYPE verdict_pending_entries gauge");
        let _ = writeln!(out, "verdict_pending_entries {}", gauges.pending);
        let _ = writeln!(
            out,
            "# HELP verdict_checkpoint_age_seconds Seconds since the latest checkpoint was signed."
        );
        let _ = writeln!(out, "# TYPE verdict_checkpoint_age_seconds gauge");
        let _ = writeln!(
            out,
            "verdict_checkpoint_age_seconds {}",
            gauges.checkpoint_age_secs
        );
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
}
