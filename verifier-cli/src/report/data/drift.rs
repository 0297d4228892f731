//! Drift of one period's figures against the previous period's (issue 16 item 5).

use super::*;

/// Percentage-point changes of the current period against a previous one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drift {
    /// Per decision name: (previous share %, current share %) of all receipts.
    pub decisions: Vec<(String, f64, f64)>,
    /// In-scope share of screened actions (screens plus checks): previous, current.
    pub in_scope: (f64, f64),
    /// Per `policy name #rule` (versions merged): previous and current violation rate in
    /// percent of the checks under that policy name.
    pub rules: Vec<(String, f64, f64)>,
    /// Policy versions (`name version`) present now and not in the previous period.
    pub new_versions: Vec<String>,
    /// Policy versions present in the previous period and not now.
    pub gone_versions: Vec<String>,
}

/// Compare two periods.
pub fn drift(previous: &ReportData, current: &ReportData) -> Drift {
    let share = |d: &ReportData, name: &str| percent(d.totals.count(name), d.receipts);
    let decisions = DECISIONS
        .iter()
        .chain(["in-scope"].iter())
        .map(|n| ((*n).to_owned(), share(previous, n), share(current, n)))
        .collect();
    let in_scope = |d: &ReportData| {
        let s = &d.screening;
        percent(
            s.in_scope.saturating_add(s.checks),
            s.in_scope
                .saturating_add(s.checks)
                .saturating_add(s.not_applicable),
        )
    };
    let by_name = |d: &ReportData| -> BTreeMap<String, f64> {
        let mut checks: BTreeMap<String, u64> = BTreeMap::new();
        for p in d.policies.values() {
            let c = checks.entry(p.name.clone()).or_default();
            *c = c.saturating_add(p.checks);
        }
        let mut counts: BTreeMap<String, (String, u64)> = BTreeMap::new();
        for (key, c) in &d.rules {
            let name = d
                .policies
                .get(&key.policy)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            let e = counts
                .entry(format!("{name} #{}", key.rule))
                .or_insert((name, 0));
            e.1 = e.1.saturating_add(c.total());
        }
        counts
            .into_iter()
            .map(|(label, (name, n))| {
                let rate = percent(n, checks.get(&name).copied().unwrap_or(0));
                (label, rate)
            })
            .collect()
    };
    let (before, now) = (by_name(previous), by_name(current));
    let mut labels: Vec<&String> = before.keys().chain(now.keys()).collect();
    labels.sort();
    labels.dedup();
    let rules = labels
        .into_iter()
        .map(|l| {
            (
                l.clone(),
                before.get(l).copied().unwrap_or(0.0),
                now.get(l).copied().unwrap_or(0.0),
            )
        })
        .collect();
    let versions = |d: &ReportData| -> Vec<String> {
        let mut v: Vec<String> = d
            .policies
            .values()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let (pv, cv) = (versions(previous), versions(current));
    Drift {
        decisions,
        in_scope: (in_scope(previous), in_scope(current)),
        rules,
        new_versions: cv.iter().filter(|v| !pv.contains(v)).cloned().collect(),
        gone_versions: pv.iter().filter(|v| !cv.contains(v)).cloned().collect(),
    }
}
