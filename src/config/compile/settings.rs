//! `pipeline:` — run settings (parallelism, deletes, logs), `resilience:` (retries, timeouts,
//! circuit breakers, rate limits) and `notify:` (webhooks).

use super::Compiler;
use crate::config::de::Spanned;
use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::pipeline::{Deletion, ResilienceSettings, RunSettings, Webhook};
use crate::config::raw::{NotifyOn, RawPipelineSettings, RawResilience, RawWebhook, WebhookFormat};

/// The longest a webhook attempt may take (`pipeline.notify.webhooks[].timeout`).
const MAX_WEBHOOK_TIMEOUT: Duration = Duration::from_mins(1);

impl Compiler<'_> {
    pub(super) fn settings(&mut self, raw: Option<&RawPipelineSettings>) -> RunSettings {
        let mut s = RunSettings::default();
        let Some(raw) = raw else { return s };
        if let Some(m) = &raw.merge {
            s.merge_parallel = self.parallel(m.parallel.as_ref(), "pipeline.merge.parallel");
        }
        if let Some(sync) = &raw.sync {
            s.sync_parallel = self.parallel(sync.parallel.as_ref(), "pipeline.sync.parallel");
            s.delete_orphans = sync.delete_orphans.unwrap_or(false);
            s.max_deletes = sync.max_deletes.as_ref().map_or(50, |m| m.value);
            s.adopt_existing = sync.adopt_existing.unwrap_or(false);
            match (&sync.force_delete, &sync.recovery_window_days) {
                (Some(force), Some(days)) if force.value => {
                    self.error(
                        days.mark,
                        "`recovery_window_days` and `force_delete: true` contradict each other",
                    )
                    .hint = Some("keep one: a recovery window lets you restore deleted secrets".to_owned());
                }
                (Some(force), _) if force.value => s.deletion = Deletion::Force,
                (_, Some(days)) if !(7..=30).contains(&days.value) => {
                    self.error(
                        days.mark,
                        format!(
                            "`pipeline.sync.recovery_window_days` must be between 7 and 30 (AWS limits), not {}",
                            days.value
                        ),
                    );
                }
                (_, Some(days)) => s.deletion = Deletion::RecoveryWindow(days.value),
                _ => {}
            }
        }
        s.dry_run = raw.dry_run.unwrap_or(false);
        s.continue_on_error = raw.continue_on_error.unwrap_or(true);
        s.discover = raw.discover.unwrap_or(false);
        if let Some(resilience) = &raw.resilience {
            s.resilience = self.resilience(resilience);
        }
        if let Some(notify) = &raw.notify {
            s.webhooks = notify
                .webhooks
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, w)| self.webhook(w, &format!("pipeline.notify.webhooks[{i}]")))
                .collect();
        }
        s
    }

    fn webhook(&mut self, raw: &Spanned<RawWebhook>, at: &str) -> Option<Webhook> {
        let url_env = self.required(raw.url_env.as_ref(), raw.mark, "url_env", at)?;
        let valid_name = !url_env.value.is_empty()
            && !url_env.value.starts_with(|c: char| c.is_ascii_digit())
            && url_env.value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            // Not echoed: a URL written here by mistake is a secret.
            self.error(
                url_env.mark,
                format!("`{at}.url_env` must name an environment variable (letters, digits and `_`)"),
            )
            .hint = Some(
                "put the URL in a variable (`export SLACK_WEBHOOK_URL=https://hooks.slack.com/…`) and write its name: `url_env: SLACK_WEBHOOK_URL`"
                    .to_owned(),
            );
        }
        let on: BTreeSet<NotifyOn> = match &raw.on {
            Some(list) if list.is_empty() => {
                self.error(raw.mark, format!("`{at}.on` is empty")).hint =
                    Some("list `failure`, `changes` or `always`, or remove the webhook".to_owned());
                BTreeSet::new()
            }
            Some(list) => list.iter().map(|t| t.value).collect(),
            None => BTreeSet::from([NotifyOn::Failure]),
        };
        let mut timeout = self.duration(raw.timeout.as_ref(), &format!("{at}.timeout"), Duration::from_secs(10));
        if let Some(mark) = raw
            .timeout
            .as_ref()
            .map(|t| t.mark)
            .filter(|_| timeout > MAX_WEBHOOK_TIMEOUT)
        {
            // Every attempt may take this long, and the run's end waits for them.
            self.error(mark, format!("`{at}.timeout` must be at most 60s")).hint =
                Some("a webhook receiver answers within seconds; use e.g. `timeout: 10s`".to_owned());
            timeout = MAX_WEBHOOK_TIMEOUT;
        }
        let retries = self.bounded(raw.retries.as_ref(), &format!("{at}.retries"), 0..=5, 2);
        Some(Webhook {
            url_env: url_env.value.clone(),
            format: raw.format.as_ref().map_or(WebhookFormat::Json, |f| f.value),
            on,
            timeout,
            retries,
        })
    }

    pub(super) fn resilience(&mut self, raw: &Spanned<RawResilience>) -> ResilienceSettings {
        let mut r = ResilienceSettings::default();
        let at = "pipeline.resilience";
        if let Some(retries) = &raw.retries {
            r.max_attempts = self.bounded(
                retries.max_attempts.as_ref(),
                &format!("{at}.retries.max_attempts"),
                1..=20,
                5,
            );
            r.base_delay = self.duration(
                retries.base_delay.as_ref(),
                &format!("{at}.retries.base_delay"),
                r.base_delay,
            );
            r.max_delay = self.duration(
                retries.max_delay.as_ref(),
                &format!("{at}.retries.max_delay"),
                r.max_delay,
            );
            if r.max_delay < r.base_delay {
                self.error(
                    retries.max_delay.as_ref().map_or(retries.mark, |d| d.mark),
                    format!("`{at}.retries.max_delay` must not be shorter than `base_delay`"),
                );
            }
        }
        if let Some(timeouts) = &raw.timeouts {
            r.call_timeout = self.duration(timeouts.call.as_ref(), &format!("{at}.timeouts.call"), r.call_timeout);
            r.deadline = self.duration(
                timeouts.deadline.as_ref(),
                &format!("{at}.timeouts.deadline"),
                r.deadline,
            );
            if r.deadline < r.call_timeout {
                self.error(
                    timeouts.deadline.as_ref().map_or(timeouts.mark, |d| d.mark),
                    format!("`{at}.timeouts.deadline` must not be shorter than `timeouts.call`"),
                )
                .hint = Some("the deadline covers a call and all its retries".to_owned());
            }
        }
        if let Some(breaker) = &raw.circuit_breaker {
            r.breaker_failures = self.bounded(
                breaker.failures.as_ref(),
                &format!("{at}.circuit_breaker.failures"),
                1..=1000,
                5,
            );
            r.breaker_cool_down = self.duration(
                breaker.cool_down.as_ref(),
                &format!("{at}.circuit_breaker.cool_down"),
                r.breaker_cool_down,
            );
        }
        if let Some(rates) = &raw.rate_limits {
            let name = |key: &str| format!("{at}.rate_limits.{key}");
            r.aws_writes_per_second = self.bounded(
                rates.aws_writes_per_second.as_ref(),
                &name("aws_writes_per_second"),
                1..=10_000,
                50,
            );
            r.aws_reads_per_second = self.bounded(
                rates.aws_reads_per_second.as_ref(),
                &name("aws_reads_per_second"),
                1..=10_000,
                100,
            );
            r.vault_requests_per_second = self.bounded(
                rates.vault_requests_per_second.as_ref(),
                &name("vault_requests_per_second"),
                0..=100_000,
                0,
            );
            r.aws_sts_per_second = self.bounded(
                rates.aws_sts_per_second.as_ref(),
                &name("aws_sts_per_second"),
                1..=10_000,
                100,
            );
        }
        r
    }
}
