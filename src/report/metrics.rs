//! What a finished run puts into the metrics: per target, per planned/applied change, and the
//! run's outcome. It lives here, beside the report it reads, so `metrics` knows nothing of plans
//! or reports (layers only look down).

use crate::metrics::Metrics;
use crate::plan::ApplyResult;

use super::{RunReport, TargetStatus};

/// Records what the finished run planned, applied and how each target ended.
pub fn record(report: &RunReport, metrics: &Metrics) {
    for target in &report.targets {
        let outcome = match target.status {
            TargetStatus::Ok => "ok",
            TargetStatus::Failed { .. } => "failed",
            TargetStatus::Skipped { .. } => "skipped",
        };
        metrics.target_finished(&target.name, outcome, target.duration);
        for change in target.plan.iter().flat_map(|p| &p.changes) {
            let action = change.action.name();
            metrics.secret(action, "planned");
            let result = match &change.result {
                Some(ApplyResult::Applied) => "applied",
                Some(ApplyResult::Failed(_)) => "failed",
                Some(ApplyResult::NotAttempted(_)) => "not_attempted",
                None => continue,
            };
            metrics.secret(action, result);
        }
    }
    metrics.run_finished(report.outcome().label(), report.duration);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::BreakerState;

    /// Every metric the example alert rules use exists (a renamed metric breaks this test, not
    /// someone's paging).
    #[test]
    fn the_example_alert_rules_use_real_metrics() {
        let rules = crate::config::data_from_yaml(include_str!("../../examples/observability/alerts.yml"))
            .expect("alerts.yml is YAML");
        let m = Metrics::new();
        m.api_call("s3", "GetObject", "ok", Duration::from_millis(1));
        m.retry("s3", "GetObject");
        m.throttle("s3", "GetObject");
        m.breaker("s3", "x", BreakerState::Open);
        m.breaker_rejected("s3", "x");
        record(
            &RunReport {
                run_id: String::new(),
                dry_run: false,
                merge_phase: true,
                sync_phase: true,
                targets: vec![crate::report::TargetReport {
                    name: "App".to_owned(),
                    level: 1,
                    kind: "file",
                    destination: "file:./out".to_owned(),
                    imports: Vec::new(),
                    sync_selected: true,
                    merge: None,
                    plan: None,
                    status: TargetStatus::Ok,
                    duration: Duration::from_millis(5),
                }],
                withheld_deletes: None,
                guarded_deletes: Vec::new(),
                interrupted: false,
                errors: Vec::new(),
                warnings: Vec::new(),
                duration: Duration::from_millis(9),
                run_lock: None,
                api_calls: std::collections::BTreeMap::new(),
            },
            &m,
        );
        let rendered = m.render();
        let mut known: Vec<String> = rendered
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect();
        // Recorded per planned change; this report has none.
        known.push("secretsync_secrets".to_owned());
        let groups = rules["groups"].as_array().expect("groups");
        let mut checked = 0;
        for rule in groups.iter().flat_map(|g| g["rules"].as_array().expect("rules")) {
            assert!(
                rule["alert"].is_string() && rule["annotations"]["summary"].is_string(),
                "{rule}"
            );
            let expr = rule["expr"].as_str().expect("expr");
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("secretsync_"))
            {
                let family = name.strip_suffix("_total").unwrap_or(name);
                assert!(
                    known.iter().any(|k| k == family),
                    "`{name}` in `{expr}` is not a metric: {known:?}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 7, "the rules were read");
    }
}
