//! Telling people how a run went: the webhooks of `pipeline.notify`, called when a run ends
//! with a Slack incoming-webhook message or the run summary as JSON.
//!
//! A scheduled job is watched through alerts and chat, not by reading its log. A notification
//! never changes the run's outcome: a receiver that keeps failing is retried, then reported as a
//! warning. Bodies carry names, counts, outcomes and error texts — never a secret value — and a
//! webhook's URL is itself a secret (whoever has a Slack webhook URL can post to the channel), so
//! it is read from the environment and never shown: a webhook is named by its variable.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Webhook;
use crate::config::raw::{NotifyOn, WebhookFormat};
use crate::env::EnvVars;
use crate::report::{Outcome, RunReport, TargetStatus};

/// Targets listed by name in a Slack message; the rest are counted (Slack limits a message's
/// size, and a 500-account run is read by its failures).
const SLACK_TARGET_LINES: usize = 20;

/// Characters of one target's line in a Slack message (an error text can be long).
const SLACK_LINE_CHARS: usize = 300;

/// Characters of a Slack `section` block's text: Slack refuses a message with a longer one
/// (`invalid_blocks`, 3,000), so the list stops short of it.
const SLACK_SECTION_CHARS: usize = 2_900;

/// The longest wait a receiver's `Retry-After` can ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// What a notification says besides the report.
#[derive(Debug, Clone, Copy)]
pub struct RunContext<'a> {
    /// The run's report.
    pub report: &'a RunReport,
    /// The process exit code.
    pub exit_code: u8,
    /// Where to see the run (`--run-url`, or the Actions run).
    pub run_url: Option<&'a str>,
}

/// Whether `hook` is called for this run.
pub fn due(hook: &Webhook, report: &RunReport) -> bool {
    hook.on.iter().any(|on| match on {
        NotifyOn::Always => true,
        NotifyOn::Failure => matches!(report.outcome(), Outcome::Failed | Outcome::Interrupted),
        NotifyOn::Changes => {
            let s = report.summary();
            if report.dry_run { s.changes > 0 } else { s.applied > 0 }
        }
    })
}

/// The body `hook` gets.
pub fn body(format: WebhookFormat, run: &RunContext<'_>) -> Value {
    match format {
        WebhookFormat::Json => summary_json(run),
        WebhookFormat::Slack => slack_message(run),
    }
}

fn status_label(status: &TargetStatus) -> &'static str {
    match status {
        TargetStatus::Ok => "ok",
        TargetStatus::Failed { .. } => "failed",
        TargetStatus::Skipped { .. } => "skipped",
    }
}

fn status_text(status: &TargetStatus) -> Option<String> {
    match status {
        TargetStatus::Ok => None,
        TargetStatus::Failed { failure, .. } => Some(crate::output::one_line(&failure.text()).into_owned()),
        TargetStatus::Skipped { because } => Some(because.clone()),
    }
}

/// The run summary: outcome, exit code, counts, each synced target's outcome and counts, and
/// every problem (docs/observability.md, "Notifications").
fn summary_json(run: &RunContext<'_>) -> Value {
    let report = run.report;
    let targets: Vec<Value> = report
        .targets
        .iter()
        .filter(|t| t.sync_selected || t.status != TargetStatus::Ok)
        .map(|t| {
            json!({
                "name": t.name,
                "status": status_label(&t.status),
                "counts": t.counts(),
                "applied": t.applied_writes(),
                "failed_writes": t.failed_writes(),
                "error": status_text(&t.status),
            })
        })
        .collect();
    let problems: Vec<Value> = report
        .problems()
        .iter()
        .map(|p| json!({ "target": p.target, "message": crate::output::one_line(&p.message) }))
        .collect();
    json!({
        "tool": "secretsync",
        "version": crate::version::SHORT,
        "run_id": report.run_id,
        "outcome": report.outcome().label(),
        "exit_code": run.exit_code,
        "dry_run": report.dry_run,
        "url": run.run_url,
        "duration_seconds": report.duration.as_secs_f64(),
        "summary": report.summary(),
        "targets": targets,
        "problems": problems,
    })
}

/// Slack's `mrkdwn` treats `&`, `<` and `>` as markup.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One line for people: what the run did.
fn headline(run: &RunContext<'_>) -> String {
    let report = run.report;
    let s = report.summary();
    let what = match report.outcome() {
        Outcome::Failed => "failed",
        Outcome::Interrupted => "was interrupted",
        Outcome::Changes if report.dry_run => "planned changes",
        Outcome::Changes => "changed secrets",
        Outcome::NoChanges => "found nothing to change",
    };
    let changes = if report.dry_run {
        format!("{} planned", s.changes)
    } else {
        format!("{} applied", s.applied)
    };
    format!(
        "secretsync run {} {what}: {} targets ({} failed, {} skipped), changes {changes}",
        report.run_id, s.targets, s.targets_failed, s.targets_skipped
    )
}

/// A Slack incoming-webhook message: `text` (what notifications show) and `blocks`: the
/// headline, the targets that failed or changed (at most [`SLACK_TARGET_LINES`]), the link.
fn slack_message(run: &RunContext<'_>) -> Value {
    let report = run.report;
    let mut noteworthy: Vec<(u8, String)> = report
        .targets
        .iter()
        .filter_map(|t| {
            let c = t.counts();
            match &t.status {
                TargetStatus::Ok if c.changes() == 0 && t.failed_writes() == 0 => None,
                TargetStatus::Ok => Some((
                    1,
                    format!(
                        "• `{}`: {} create, {} update, {} delete{}",
                        slack_escape(&t.name),
                        c.create,
                        c.update + c.restore + c.adopt,
                        c.delete,
                        if t.failed_writes() > 0 {
                            format!(", {} failed", t.failed_writes())
                        } else {
                            String::new()
                        }
                    ),
                )),
                status => Some((
                    0,
                    format!(
                        "• `{}` {}: {}",
                        slack_escape(&t.name),
                        status_label(status),
                        slack_escape(&status_text(status).unwrap_or_default())
                    ),
                )),
            }
        })
        .collect();
    // Failures first, then changes, each in report order.
    noteworthy.sort_by_key(|(rank, _)| *rank);
    let mut lines: Vec<String> = Vec::new();
    let mut length = 0;
    for (_, line) in &noteworthy {
        let line = shortened(line, SLACK_LINE_CHARS);
        if lines.len() == SLACK_TARGET_LINES || length + line.len() + 1 > SLACK_SECTION_CHARS {
            break;
        }
        length += line.len() + 1;
        lines.push(line);
    }
    let more = noteworthy.len() - lines.len();
    if more > 0 {
        lines.push(format!("… and {more} more targets"));
    }
    let headline = headline(run);
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": format!("*{}*", slack_escape(&headline)) },
    })];
    if !lines.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": lines.join("\n") },
        }));
    }
    if let Some(url) = run.run_url {
        blocks.push(json!({
            "type": "context",
            // `|` ends a Slack link's address.
            "elements": [{ "type": "mrkdwn", "text": format!("<{}|See the run>", slack_escape(url).replace('|', "%7C")) }],
        }));
    }
    json!({ "text": headline, "blocks": blocks })
}

/// `text` cut to at most `chars` characters (with `…`).
fn shortened(text: &str, chars: usize) -> String {
    if text.chars().nth(chars).is_none() {
        return text.to_owned();
    }
    let cut = text.char_indices().nth(chars.saturating_sub(1)).map_or(0, |(at, _)| at);
    format!("{}…", &text[..cut])
}

/// Calls every webhook that is due; returns a warning for each that could not be told.
pub async fn send_all(hooks: &[Webhook], run: &RunContext<'_>, var: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let due: Vec<&Webhook> = hooks.iter().filter(|h| due(h, run.report)).collect();
    if due.is_empty() {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    // No redirects: one could send the body on from https to plain http, or elsewhere.
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => return vec![format!("webhooks: cannot start an HTTP client: {e}")],
    };
    for hook in due {
        let name = &hook.url_env;
        let Some(url) = var(name).filter(|u| !u.trim().is_empty()) else {
            warnings.push(format!(
                "webhook `{name}` not called: the variable `{name}` is not set (set it to the webhook's URL)"
            ));
            continue;
        };
        if !matches!(
            reqwest::Url::parse(url.trim())
                .map(|u| u.scheme().to_owned())
                .as_deref(),
            Ok("http" | "https")
        ) {
            warnings.push(format!(
                "webhook `{name}` not called: `{name}` does not hold an http(s) URL (its value is not shown: it is a secret)"
            ));
            continue;
        }
        let body = body(hook.format, run).to_string();
        match deliver(&client, url.trim(), body, hook).await {
            Ok(()) => tracing::info!(webhook = %name, "webhook called"),
            Err(why) => warnings.push(format!("webhook `{name}` not told how the run went: {why}")),
        }
    }
    warnings
}

/// Backoff before retry `n` (1-based): 0.5 s, 1 s, 2 s, … at most 5 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << n.saturating_sub(1).min(4))).min(Duration::from_secs(5))
}

/// POSTs `body`, retrying connection failures, timeouts, 429 and 5xx answers (waiting as long
/// as a `Retry-After` in seconds asks, up to [`MAX_RETRY_AFTER`]).
async fn deliver(client: &reqwest::Client, url: &str, body: String, hook: &Webhook) -> Result<(), String> {
    let mut last = String::new();
    let mut asked = None;
    for attempt in 0..=hook.retries {
        if attempt > 0 {
            let wait = asked
                .take()
                .map_or(backoff(attempt), |asked: Duration| asked.max(backoff(attempt)));
            tokio::time::sleep(wait).await;
        }
        let sent = client
            .post(url)
            .timeout(hook.timeout)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => return Ok(()),
            Ok(answer) if answer.status().as_u16() == 429 || answer.status().is_server_error() => {
                asked = answer
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
                last = format!("the receiver answered {}", answer.status());
            }
            Ok(answer) if answer.status().is_redirection() => {
                return Err(format!(
                    "the receiver answered {} (a redirect, not followed: give the URL it redirects to)",
                    answer.status()
                ));
            }
            Ok(answer) => {
                return Err(format!(
                    "the receiver answered {} (not retried: check the URL and the receiver's settings)",
                    answer.status()
                ));
            }
            // Without the URL: it is a secret.
            Err(e) => last = crate::error_chain::chain(&e.without_url()),
        }
    }
    Err(format!("{last} (after {} attempts)", hook.retries + 1))
}

/// The link to the run: `--run-url`, else the GitHub Actions run from the runner's variables.
pub fn run_url(flag: Option<&str>, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(url) = flag.filter(|u| !u.is_empty()) {
        return Some(url.to_owned());
    }
    let server = var(EnvVars::GITHUB_SERVER_URL)?;
    let repository = var(EnvVars::GITHUB_REPOSITORY)?;
    let run = var(EnvVars::GITHUB_RUN_ID)?;
    Some(format!(
        "{}/{repository}/actions/runs/{run}",
        server.trim_end_matches('/')
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let waits: Vec<u128> = (1..=6).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn the_run_url_is_the_flag_or_the_actions_run() {
        let actions = |name: &str| match name {
            "GITHUB_SERVER_URL" => Some("https://github.example/".to_owned()),
            "GITHUB_REPOSITORY" => Some("acme/infra".to_owned()),
            "GITHUB_RUN_ID" => Some("42".to_owned()),
            _ => None,
        };
        assert_eq!(
            run_url(None, actions).as_deref(),
            Some("https://github.example/acme/infra/actions/runs/42")
        );
        assert_eq!(
            run_url(Some("https://ci/run/7"), actions).as_deref(),
            Some("https://ci/run/7")
        );
        assert_eq!(run_url(None, |_| None), None);
    }

    #[test]
    fn long_lines_are_cut_at_a_character() {
        assert_eq!(shortened("abcdef", 4), "abc…");
        assert_eq!(shortened("abcd", 4), "abcd");
        assert_eq!(shortened("ééééé", 3), "éé…");
        assert_eq!(shortened("abcdé", 5), "abcdé", "exactly as long");
    }

    #[test]
    fn slack_text_escapes_markup() {
        assert_eq!(slack_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
