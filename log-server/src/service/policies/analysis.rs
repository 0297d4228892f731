//! The checker's analysis at registration: the findings ([`analysis_findings`]) and their
//! summary in the policy statement ([`summarize`], spec `spec/policy-statement.md` §4).

use std::sync::Arc;

use verdict_checker::CompiledPolicy;
use verdict_core::statement::AnalysisSummary;

/// One line per error or warning finding, at most 256 bytes each and 64 in all (spec §4).
pub(super) fn summarize(findings: &[serde_json::Value], forced: bool) -> AnalysisSummary {
    let mut summary = AnalysisSummary::default();
    for f in findings {
        let severity = f.get("severity").and_then(|v| v.as_str()).unwrap_or("");
        match severity {
            "error" => summary.errors = summary.errors.saturating_add(1),
            "warning" => summary.warnings = summary.warnings.saturating_add(1),
            _ => continue,
        }
        if summary.findings.len() < verdict_core::statement::MAX_FINDINGS {
            let kind = f.get("kind").and_then(|v| v.as_str()).unwrap_or("finding");
            let message = f.get("message").and_then(|v| v.as_str()).unwrap_or("");
            let mut line = format!("{severity} {kind}: {message}");
            let max = verdict_core::statement::MAX_TEXT;
            if line.len() > max {
                let mut cut = max;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
            }
            summary.findings.push(line);
        }
    }
    summary.forced = forced && summary.errors > 0;
    summary
}

/// Findings of the checker's analysis (`verdict_checker::analyze`), run on a blocking thread
/// (Z3 contexts are thread-bound), bounded by `timeout` for all its queries together (the
/// analysis stops at the deadline: `AnalyzeError::Deadline`). An analysis that cannot finish
/// (deadline, solver `unknown`) is a single **error-level** finding of kind
/// `analysis-incomplete`: a policy nobody could analyse is not registered unless forced
/// (issue 13; 422 `policy_has_errors`).
pub async fn analysis_findings(
    policy: &Arc<CompiledPolicy>,
    timeout: std::time::Duration,
) -> Vec<serde_json::Value> {
    let policy = Arc::clone(policy);
    let result =
        tokio::task::spawn_blocking(move || verdict_checker::analyze::analyze(&policy, timeout))
            .await;
    match result {
        Ok(Ok(report)) => report
            .findings
            .iter()
            .filter_map(|f| serde_json::to_value(f).ok())
            .collect(),
        Ok(Err(e)) => vec![serde_json::json!({
            "kind": "analysis-incomplete",
            "severity": "error",
            "message": e.to_string(),
        })],
        Err(e) => {
            tracing::error!(error = %e, "policy analysis task failed: {e}");
            vec![serde_json::json!({
                "kind": "analysis-incomplete",
                "severity": "error",
                "message": "analysis failed",
            })]
        }
    }
}
