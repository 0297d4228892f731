//! The numbers of an audit report, computed from an evidence package in one streaming pass
//! (issue 16 item 5; package layout `spec/evidence-package.md`).
//!
//! [`Aggregator`] is fed every log entry of the period in index order (the entry bytes from the
//! package's entry bundles and, when there is one, the private record from `records.jsonl`), and
//! the package's policy files; [`Aggregator::finish`] gives the [`ReportData`] the renderer draws.
//! Decisions, kinds, violated rules, times and approvers come from the receipt, never from the
//! record (the record only says how an escalation was resolved). Memory is bounded by the number
//! of days, rules and policy versions, and of escalations still open, never by the number of
//! entries.
//!
//! This module decodes entries without verifying them: verification is `verify-package`'s job,
//! and the report shows its result in its own section.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use verdict_core::receipt::{Kind, Receipt};
use verdict_core::statement::{entry_type, EntryType, PolicyStatement};

mod drift;
pub use drift::{drift, Drift};

/// Most rules listed as "most violated".
pub const TOP_RULES: usize = 10;

/// Upper bounds (exclusive, in milliseconds) of the escalation resolution-time buckets, with
/// their labels; the last bucket is open.
pub const RESOLUTION_BUCKETS: [(u64, &str); 5] = [
    (60_000, "< 1 min"),
    (600_000, "1-10 min"),
    (3_600_000, "10-60 min"),
    (86_400_000, "1-24 h"),
    (u64::MAX, ">= 24 h"),
];

/// Counts of receipts by decision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// `allow`.
    pub allow: u64,
    /// `deny`.
    pub deny: u64,
    /// `escalate`.
    pub escalate: u64,
    /// `not-applicable` (screens that found the action out of scope).
    pub not_applicable: u64,
    /// `in-scope` (screens that found the action in scope; a check follows).
    pub in_scope: u64,
    /// Any other decision name (none in receipt format v1).
    pub other: u64,
    /// Of the denies: fail-closed ones (solver timeout, expired or unresolvable escalation).
    pub fail_closed: u64,
}

/// The decision names charted per day, in chart order.
pub const DECISIONS: [&str; 4] = ["allow", "deny", "escalate", "not-applicable"];

impl Outcomes {
    fn add(&mut self, decision: &str, fail_closed: bool) {
        let slot = match decision {
            "allow" => &mut self.allow,
            "deny" => &mut self.deny,
            "escalate" => &mut self.escalate,
            "not-applicable" => &mut self.not_applicable,
            "in-scope" => &mut self.in_scope,
            _ => &mut self.other,
        };
        *slot = slot.saturating_add(1);
        if fail_closed {
            self.fail_closed = self.fail_closed.saturating_add(1);
        }
    }

    /// The count of a decision name of [`DECISIONS`] (or `in-scope`); 0 for another name.
    pub fn count(&self, decision: &str) -> u64 {
        match decision {
            "allow" => self.allow,
            "deny" => self.deny,
            "escalate" => self.escalate,
            "not-applicable" => self.not_applicable,
            "in-scope" => self.in_scope,
            _ => 0,
        }
    }

    /// Decisions of checks (allow, deny, escalate).
    pub fn checks(&self) -> u64 {
        self.allow
            .saturating_add(self.deny)
            .saturating_add(self.escalate)
    }
}

/// A rule of a policy version: commitment (hex) and index in policy order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RuleKey {
    /// Policy commitment, 64 hex digits.
    pub policy: String,
    /// Rule index in policy order (as receipts list violated rules).
    pub rule: u32,
}

/// How often a rule was reported violated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuleCounts {
    /// Deny decisions that list the rule.
    pub deny: u64,
    /// Escalate decisions that list the rule.
    pub escalate: u64,
}

impl RuleCounts {
    /// Denies and escalations together.
    pub fn total(&self) -> u64 {
        self.deny.saturating_add(self.escalate)
    }
}

/// A policy version seen in the package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicyVersion {
    /// Policy name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Log index of its policy statement, when known.
    pub statement_index: Option<u64>,
    /// Registration time (ms since the epoch), when its statement is in the period.
    pub registered_ms: Option<u64>,
    /// Commitment of the previous version of the name, hex, when its statement is in the period.
    pub predecessor: Option<String>,
    /// Check receipts decided under it in the period.
    pub checks: u64,
    /// Screen receipts under it in the period.
    pub screens: u64,
    /// Time of its first receipt in the period.
    pub first_ms: Option<u64>,
    /// Time of its last receipt in the period.
    pub last_ms: Option<u64>,
}

/// Screening proportionality: how many screened actions were in scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Screening {
    /// Screen receipts deciding `in-scope`.
    pub in_scope: u64,
    /// Screen receipts deciding `not-applicable`.
    pub not_applicable: u64,
    /// Check receipts (every one an in-scope action that was decided).
    pub checks: u64,
}

/// Resolution times of escalations of one resolution kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// Escalations resolved this way whose escalate receipt is in the period.
    pub count: u64,
    /// Shortest resolution time, ms.
    pub min_ms: u64,
    /// Longest resolution time, ms.
    pub max_ms: u64,
    /// Sum of the resolution times, ms (for the mean).
    pub total_ms: u64,
}

/// Escalations: opened, resolved (by resolution) and still open at the end of the period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Escalations {
    /// Escalate receipts in the period.
    pub opened: u64,
    /// Resolved escalations by resolution (`approved`, `rejected`, `expired`, or `resubmitted`
    /// for an escalated request decided again with approvals through `/v1/check`).
    pub resolved: BTreeMap<String, Resolution>,
    /// Resolution-time histogram, one count per [`RESOLUTION_BUCKETS`] entry.
    pub buckets: [u64; RESOLUTION_BUCKETS.len()],
    /// Final decisions of escalations opened before the period (no time can be computed).
    pub opened_before: u64,
    /// Escalations opened in the period with no final decision in it.
    pub unresolved: u64,
}

/// The header of the package (from `manifest.json` and `checkpoint`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Header {
    /// Log origin line.
    pub origin: String,
    /// Export time (RFC 3339).
    pub exported_at: String,
    /// Period start time as requested, if by time.
    pub from: Option<String>,
    /// Period end time as requested, if by time.
    pub to: Option<String>,
    /// First log index of the period.
    pub start: u64,
    /// End log index of the period (exclusive).
    pub end: u64,
    /// Tree size of the end checkpoint.
    pub tree_size: u64,
    /// The end checkpoint's body (origin, size, root hash lines).
    pub checkpoint: String,
    /// Number of signature lines of the end checkpoint (log key and witness cosignatures).
    pub checkpoint_signatures: usize,
    /// Whether the package proves consistency from a start checkpoint.
    pub has_start_checkpoint: bool,
}

/// Everything the report draws, computed from a package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReportData {
    /// Period and checkpoint.
    pub header: Header,
    /// Entries read.
    pub entries: u64,
    /// Receipts among them.
    pub receipts: u64,
    /// Policy statements among them.
    pub statements: u64,
    /// Entries that did not decode as a receipt or a policy statement.
    pub undecodable: u64,
    /// All receipts by decision.
    pub totals: Outcomes,
    /// Receipts by decision per UTC day (`YYYY-MM-DD`).
    pub per_day: BTreeMap<String, Outcomes>,
    /// Violations per rule.
    pub rules: BTreeMap<RuleKey, RuleCounts>,
    /// Policy versions by commitment (hex).
    pub policies: BTreeMap<String, PolicyVersion>,
    /// Screening proportionality.
    pub screening: Screening,
    /// Escalations and their resolution times.
    pub escalations: Escalations,
    /// Time of the first receipt or statement, ms.
    pub first_ms: Option<u64>,
    /// Time of the last receipt or statement, ms.
    pub last_ms: Option<u64>,
}

/// A rule with its counts and its rates (violations per check under its policy version).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleRow {
    /// The rule.
    pub key: RuleKey,
    /// `name version` of its policy, or the commitment's first 16 hex digits when unknown.
    pub policy: String,
    /// Its counts.
    pub counts: RuleCounts,
    /// Checks under its policy version.
    pub checks: u64,
}

impl RuleRow {
    /// Short label for charts: `name version #rule`.
    pub fn label(&self) -> String {
        format!("{} #{}", self.policy, self.key.rule)
    }

    /// Deny rate in percent of the checks under the rule's policy version.
    pub fn deny_rate(&self) -> f64 {
        percent(self.counts.deny, self.checks)
    }

    /// Escalate rate in percent of the checks under the rule's policy version.
    pub fn escalate_rate(&self) -> f64 {
        percent(self.counts.escalate, self.checks)
    }
}

/// `part` in percent of `whole` (0 when `whole` is 0).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl ReportData {
    /// `name version` of a policy commitment, or its first 16 hex digits when no policy file or
    /// statement names it.
    pub fn policy_label(&self, commitment: &str) -> String {
        match self.policies.get(commitment) {
            Some(p) if !p.name.is_empty() => format!("{} {}", p.name, p.version),
            _ => commitment.chars().take(16).collect(),
        }
    }

    /// Every rule with a violation, most violated first (ties: policy, then rule index).
    pub fn rule_rows(&self) -> Vec<RuleRow> {
        let mut rows: Vec<RuleRow> = self
            .rules
            .iter()
            .map(|(key, counts)| RuleRow {
                key: key.clone(),
                policy: self.policy_label(&key.policy),
                counts: counts.clone(),
                checks: self.policies.get(&key.policy).map_or(0, |p| p.checks),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.counts
                .total()
                .cmp(&a.counts.total())
                .then_with(|| a.key.cmp(&b.key))
        });
        rows
    }

    /// Policy versions in timeline order: by registration time (or first use), then name.
    pub fn timeline(&self) -> Vec<(&String, &PolicyVersion)> {
        let mut rows: Vec<(&String, &PolicyVersion)> = self.policies.iter().collect();
        rows.sort_by_key(|(c, p)| {
            (
                p.registered_ms.or(p.first_ms).unwrap_or(u64::MAX),
                p.statement_index.unwrap_or(u64::MAX),
                p.name.clone(),
                (*c).clone(),
            )
        });
        rows
    }
}

/// A policy file of the package (`policies/<hex>.json`), the fields the report uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFile {
    /// Commitment, 64 hex digits.
    pub commitment: String,
    /// Policy name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Log index of its statement.
    pub statement_index: u64,
}

/// An escalation waiting for its final decision: opened at `time_ms`.
#[derive(Clone, Copy, Debug)]
struct Pending {
    time_ms: u64,
}

/// Computes a [`ReportData`] from the entries of a package, fed in index order.
#[derive(Debug, Default)]
pub struct Aggregator {
    data: ReportData,
    /// Open escalations by request id (the final decision has the same request id).
    pending: HashMap<String, Pending>,
}

impl Aggregator {
    /// An aggregator for a package with this header.
    pub fn new(header: Header) -> Self {
        Aggregator {
            data: ReportData {
                header,
                ..ReportData::default()
            },
            pending: HashMap::new(),
        }
    }

    /// Record a policy file of the package.
    pub fn policy_file(&mut self, file: &PolicyFile) {
        let p = self
            .data
            .policies
            .entry(file.commitment.clone())
            .or_default();
        p.name.clone_from(&file.name);
        p.version.clone_from(&file.version);
        p.statement_index = Some(file.statement_index);
    }

    /// Record the entry at log index `index`: its bytes (a receipt or a policy statement) and its
    /// private record (`null` in `records.jsonl` is `None`).
    pub fn entry(&mut self, index: u64, entry: &[u8], record: Option<&serde_json::Value>) {
        self.data.entries = self.data.entries.saturating_add(1);
        match entry_type(entry) {
            EntryType::Receipt => match Receipt::decode(entry) {
                Ok(receipt) => self.receipt(&receipt, record),
                Err(_) => self.data.undecodable = self.data.undecodable.saturating_add(1),
            },
            EntryType::PolicyStatement => match PolicyStatement::decode(entry) {
                Ok(statement) => self.statement(index, &statement),
                Err(_) => self.data.undecodable = self.data.undecodable.saturating_add(1),
            },
            EntryType::Unknown => self.data.undecodable = self.data.undecodable.saturating_add(1),
        }
    }

    /// The numbers, once every entry was fed.
    pub fn finish(mut self) -> ReportData {
        self.data.escalations.unresolved = u64::try_from(self.pending.len()).unwrap_or(u64::MAX);
        self.data
    }

    fn saw_time(&mut self, time_ms: u64) {
        let d = &mut self.data;
        d.first_ms = Some(d.first_ms.map_or(time_ms, |t| t.min(time_ms)));
        d.last_ms = Some(d.last_ms.map_or(time_ms, |t| t.max(time_ms)));
    }

    fn statement(&mut self, index: u64, statement: &PolicyStatement) {
        let r = &statement.record;
        self.data.statements = self.data.statements.saturating_add(1);
        self.saw_time(r.time_ms);
        let p = self
            .data
            .policies
            .entry(r.policy_commitment.to_hex())
            .or_default();
        p.name.clone_from(&r.name);
        p.version.clone_from(&r.policy_version);
        p.statement_index = Some(index);
        p.registered_ms = Some(r.time_ms);
        p.predecessor = r.predecessor.map(|h| h.to_hex());
    }

    fn receipt(&mut self, receipt: &Receipt, record: Option<&serde_json::Value>) {
        let s = &receipt.statement;
        let decision = s.decision.as_str();
        self.data.receipts = self.data.receipts.saturating_add(1);
        self.saw_time(s.time_ms);
        self.data.totals.add(decision, s.fail_closed);
        self.data
            .per_day
            .entry(day(s.time_ms))
            .or_default()
            .add(decision, s.fail_closed);
        let commitment = s.policy_commitment.to_hex();
        let p = self.data.policies.entry(commitment.clone()).or_default();
        if p.version.is_empty() {
            p.version.clone_from(&s.policy_version);
        }
        p.first_ms = Some(p.first_ms.map_or(s.time_ms, |t| t.min(s.time_ms)));
        p.last_ms = Some(p.last_ms.map_or(s.time_ms, |t| t.max(s.time_ms)));
        match s.kind {
            Kind::Screen => {
                p.screens = p.screens.saturating_add(1);
                let sc = &mut self.data.screening;
                match decision {
                    "in-scope" => sc.in_scope = sc.in_scope.saturating_add(1),
                    _ => sc.not_applicable = sc.not_applicable.saturating_add(1),
                }
                return;
            }
            Kind::Check => {
                p.checks = p.checks.saturating_add(1);
                self.data.screening.checks = self.data.screening.checks.saturating_add(1);
            }
        }
        for &rule in &s.violated_rules {
            let counts = self.data.rules.entry(RuleKey {
                policy: commitment.clone(),
                rule,
            });
            let counts = counts.or_default();
            match decision {
                "deny" => counts.deny = counts.deny.saturating_add(1),
                "escalate" => counts.escalate = counts.escalate.saturating_add(1),
                _ => {}
            }
        }
        self.escalation(
            &s.request_id,
            decision,
            s.time_ms,
            !s.approvers.is_empty(),
            record,
        );
    }

    /// Open an escalation on an escalate receipt; resolve it on the next check receipt of the
    /// same request id (the final decision of `/v1/escalations`, or a resubmission with
    /// approvals).
    fn escalation(
        &mut self,
        request_id: &str,
        decision: &str,
        time_ms: u64,
        approved: bool,
        record: Option<&serde_json::Value>,
    ) {
        let evidence = record.and_then(|r| r.get("escalation"));
        let esc = &mut self.data.escalations;
        let resolved = self.pending.remove(request_id);
        if resolved.is_some() || evidence.is_some() {
            let resolution = evidence
                .and_then(|e| e.get("resolution"))
                .and_then(serde_json::Value::as_str)
                .map_or_else(
                    || {
                        if approved {
                            "resubmitted".to_owned()
                        } else {
                            "decided again".to_owned()
                        }
                    },
                    str::to_owned,
                );
            match resolved {
                Some(open) => {
                    let took = time_ms.saturating_sub(open.time_ms);
                    let r = esc.resolved.entry(resolution).or_default();
                    r.min_ms = if r.count == 0 {
                        took
                    } else {
                        r.min_ms.min(took)
                    };
                    r.max_ms = r.max_ms.max(took);
                    r.total_ms = r.total_ms.saturating_add(took);
                    r.count = r.count.saturating_add(1);
                    let bucket = RESOLUTION_BUCKETS
                        .iter()
                        .position(|(bound, _)| took < *bound)
                        .unwrap_or(RESOLUTION_BUCKETS.len().saturating_sub(1));
                    if let Some(b) = esc.buckets.get_mut(bucket) {
                        *b = b.saturating_add(1);
                    }
                }
                None => esc.opened_before = esc.opened_before.saturating_add(1),
            }
        }
        if decision == "escalate" {
            esc.opened = esc.opened.saturating_add(1);
            self.pending
                .insert(request_id.to_owned(), Pending { time_ms });
        }
    }
}

/// The UTC day (`YYYY-MM-DD`) of a time in ms since the epoch.
pub fn day(time_ms: u64) -> String {
    let mut text = rfc3339(time_ms);
    text.truncate(10);
    text
}

/// RFC 3339 (UTC, seconds) of a time in ms since the epoch; the raw number when out of range.
pub fn rfc3339(time_ms: u64) -> String {
    i64::try_from(time_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| time_ms.to_string(), |t| format!("{t:.0}"))
}

/// The header fields of a checkpoint note: its body (the text before the blank line) and the
/// number of signature lines.
pub fn checkpoint_parts(note: &str) -> (String, usize) {
    match note.split_once("\n\n") {
        Some((body, sigs)) => (
            body.to_owned(),
            sigs.lines().filter(|l| l.starts_with('\u{2014}')).count(),
        ),
        None => (note.to_owned(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_core::merkle::Hash;
    use verdict_core::note::Signer;
    use verdict_core::receipt::{Decision, Statement, STATEMENT_VERSION};
    use verdict_core::statement::{AnalysisSummary, PolicyRecord, RECORD_VERSION};

    const DAY: u64 = 86_400_000;
    const T0: u64 = 1_795_000_000_000; // 2026-11-18T...

    struct Log {
        signer: Signer,
        agg: Aggregator,
        next: u64,
    }

    impl Log {
        fn new() -> Self {
            Log {
                signer: Signer::generate("checker.example").unwrap(),
                agg: Aggregator::new(Header::default()),
                next: 0,
            }
        }

        #[allow(clippy::too_many_arguments)]
        fn receipt(
            &mut self,
            policy: u8,
            kind: Kind,
            decision: Decision,
            rules: &[u32],
            time_ms: u64,
            request_id: &str,
            approvers: usize,
            record: Option<serde_json::Value>,
        ) {
            let st = Statement {
                version: STATEMENT_VERSION,
                checker_key_id: self.signer.key_id(),
                policy_commitment: Hash([policy; 32]),
                policy_version: "1.0.0".into(),
                action_commitment: Hash([9; 32]),
                decision,
                kind,
                fail_closed: false,
                violated_rules: rules.to_vec(),
                matched_variables: vec!["amount".into()],
                undetermined_variables: Vec::new(),
                approvers: (0..approvers)
                    .map(|i| verdict_core::note::KeyId([u8::try_from(i).unwrap(); 4]))
                    .collect(),
                time_ms,
                request_id: request_id.into(),
                checker_version: "t".into(),
                solver_version: "z3".into(),
            };
            let bytes = Receipt::sign(&st, &self.signer).unwrap();
            let record = record.or_else(|| Some(serde_json::json!({"request_id": request_id})));
            self.agg.entry(self.next, &bytes, record.as_ref());
            self.next += 1;
        }

        fn check(&mut self, decision: Decision, rules: &[u32], time_ms: u64, id: &str) {
            self.receipt(1, Kind::Check, decision, rules, time_ms, id, 0, None);
        }

        fn statement(&mut self, policy: u8, name: &str, version: &str, time_ms: u64) {
            let record = PolicyRecord {
                version: RECORD_VERSION,
                checker_key_id: self.signer.key_id(),
                name: name.into(),
                policy_version: version.into(),
                policy_commitment: Hash([policy; 32]),
                rule_tree_root: Hash([2; 32]),
                predecessor: (policy > 1).then(|| Hash([policy - 1; 32])),
                time_ms,
                registered_by: "admin".into(),
                analysis: AnalysisSummary::default(),
            };
            let bytes = PolicyStatement::sign(&record, &self.signer).unwrap();
            self.agg.entry(self.next, &bytes, None);
            self.next += 1;
        }
    }

    #[test]
    fn counts_decisions_per_day_rules_and_screens() {
        let mut log = Log::new();
        log.statement(1, "payments", "1.0.0", T0);
        log.check(Decision::Allow, &[], T0 + 1, "a");
        log.check(Decision::Deny, &[0, 2], T0 + 2, "b");
        log.check(Decision::Deny, &[2], T0 + DAY, "c");
        log.check(Decision::Escalate, &[1], T0 + DAY + 1, "d");
        log.receipt(
            1,
            Kind::Screen,
            Decision::NotApplicable,
            &[],
            T0 + DAY + 2,
            "e",
            0,
            None,
        );
        log.agg.entry(log.next, b"not cose", None);
        let data = log.agg.finish();

        assert_eq!(data.entries, 7);
        assert_eq!(
            (data.receipts, data.statements, data.undecodable),
            (5, 1, 1)
        );
        assert_eq!(
            (data.totals.allow, data.totals.deny, data.totals.escalate),
            (1, 2, 1)
        );
        assert_eq!(data.totals.not_applicable, 1);
        let days: Vec<&String> = data.per_day.keys().collect();
        assert_eq!(days, [&day(T0), &day(T0 + DAY)]);
        let first = &data.per_day[&day(T0)];
        assert_eq!((first.allow, first.deny, first.escalate), (1, 1, 0));
        let second = &data.per_day[&day(T0 + DAY)];
        assert_eq!(
            (second.deny, second.escalate, second.not_applicable),
            (1, 1, 1)
        );

        let rows = data.rule_rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].key.rule, 2, "most violated first");
        assert_eq!(
            rows[0].counts,
            RuleCounts {
                deny: 2,
                escalate: 0
            }
        );
        assert_eq!(rows[0].checks, 4);
        assert!((rows[0].deny_rate() - 50.0).abs() < 1e-9);
        assert_eq!(rows[0].label(), "payments 1.0.0 #2");
        let escalated = rows.iter().find(|r| r.key.rule == 1).unwrap();
        assert!((escalated.escalate_rate() - 25.0).abs() < 1e-9);

        assert_eq!(
            data.screening,
            Screening {
                in_scope: 0,
                not_applicable: 1,
                checks: 4
            }
        );
        let p = &data.policies[&Hash([1; 32]).to_hex()];
        assert_eq!((p.checks, p.screens, p.statement_index), (4, 1, Some(0)));
        assert_eq!(p.registered_ms, Some(T0));
        assert_eq!(data.escalations.opened, 1);
        assert_eq!(data.escalations.unresolved, 1);
        assert_eq!(data.first_ms, Some(T0));
        assert_eq!(data.last_ms, Some(T0 + DAY + 2));
    }

    #[test]
    fn escalation_resolution_times_by_resolution() {
        let mut log = Log::new();
        // approved through /v1/escalations after 30 s
        log.check(Decision::Escalate, &[1], T0, "x");
        log.receipt(
            1,
            Kind::Check,
            Decision::Allow,
            &[],
            T0 + 30_000,
            "x",
            1,
            Some(
                serde_json::json!({"escalation": {"resolution": "approved", "escalate_index": 0}}),
            ),
        );
        // rejected after 2 h
        log.check(Decision::Escalate, &[1], T0 + 1, "y");
        log.receipt(
            1,
            Kind::Check,
            Decision::Deny,
            &[1],
            T0 + 1 + 7_200_000,
            "y",
            0,
            Some(
                serde_json::json!({"escalation": {"resolution": "rejected", "escalate_index": 2}}),
            ),
        );
        // resubmitted with approvals through /v1/check after 5 min
        log.check(Decision::Escalate, &[1], T0 + 2, "z");
        log.receipt(
            1,
            Kind::Check,
            Decision::Allow,
            &[],
            T0 + 2 + 300_000,
            "z",
            2,
            None,
        );
        // final decision of an escalation opened before the period
        log.receipt(
            1,
            Kind::Check,
            Decision::Deny,
            &[1],
            T0 + 9,
            "old",
            0,
            Some(serde_json::json!({"escalation": {"resolution": "expired", "escalate_index": 0}})),
        );
        // still open at the end
        log.check(Decision::Escalate, &[1], T0 + 10, "open");
        let e = log.agg.finish().escalations;
        assert_eq!(e.opened, 4);
        assert_eq!(e.unresolved, 1);
        assert_eq!(e.opened_before, 1);
        assert_eq!(e.resolved["approved"].count, 1);
        assert_eq!(e.resolved["approved"].max_ms, 30_000);
        assert_eq!(e.resolved["rejected"].min_ms, 7_200_000);
        assert_eq!(e.resolved["resubmitted"].total_ms, 300_000);
        assert_eq!(e.buckets, [1, 1, 0, 1, 0]);
    }

    #[test]
    fn timeline_and_drift() {
        let mut old = Log::new();
        old.statement(1, "payments", "1.0.0", T0);
        old.check(Decision::Deny, &[0], T0 + 1, "a");
        old.check(Decision::Allow, &[], T0 + 2, "b");
        let previous = old.agg.finish();

        let mut now = Log::new();
        now.agg.policy_file(&PolicyFile {
            commitment: Hash([1; 32]).to_hex(),
            name: "payments".into(),
            version: "1.0.0".into(),
            statement_index: 0,
        });
        now.statement(2, "payments", "1.1.0", T0 + DAY);
        now.receipt(
            2,
            Kind::Check,
            Decision::Allow,
            &[],
            T0 + DAY + 1,
            "c",
            0,
            None,
        );
        now.receipt(
            2,
            Kind::Check,
            Decision::Allow,
            &[],
            T0 + DAY + 2,
            "d",
            0,
            None,
        );
        now.receipt(
            2,
            Kind::Screen,
            Decision::NotApplicable,
            &[],
            T0 + DAY + 3,
            "e",
            0,
            None,
        );
        let current = now.agg.finish();

        let timeline: Vec<&str> = current
            .timeline()
            .iter()
            .map(|(_, p)| p.version.as_str())
            .collect();
        assert_eq!(
            timeline,
            ["1.1.0", "1.0.0"],
            "registered first, unknown time last"
        );
        assert_eq!(
            current.policies[&Hash([2; 32]).to_hex()].predecessor,
            Some(Hash([1; 32]).to_hex())
        );

        let d = drift(&previous, &current);
        let deny = d.decisions.iter().find(|(n, _, _)| n == "deny").unwrap();
        assert!((deny.1 - 50.0).abs() < 1e-9 && deny.2.abs() < 1e-9);
        assert_eq!(d.new_versions, ["payments 1.1.0"]);
        assert!(d.gone_versions.is_empty(), "1.0.0 has a policy file now");
        assert!((d.in_scope.0 - 100.0).abs() < 1e-9);
        assert!((d.in_scope.1 - 200.0 / 3.0).abs() < 1e-9);
        let rule = d.rules.iter().find(|(l, _, _)| l == "payments #0").unwrap();
        assert!((rule.1 - 50.0).abs() < 1e-9 && rule.2.abs() < 1e-9);
    }

    #[test]
    fn days_and_checkpoint_parts() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(rfc3339(1_000), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339(u64::MAX), u64::MAX.to_string());
        let (body, sigs) = checkpoint_parts("o\n3\nroot\n\n\u{2014} o abc\n\u{2014} w def\n");
        assert_eq!((body.as_str(), sigs), ("o\n3\nroot", 2));
    }
}
