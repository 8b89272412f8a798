//! The scenario the AWS end-to-end, fault and observability tests share: one account on moto
//! behind a private fault proxy (so the test's calls are counted and faulted apart from other
//! tests'), and a [`Test`] whose runs act as that account through the proxy. Secrets seeded as
//! canaries let a test assert that no value leaks into output, logs, reports or metrics.

use std::ops::Deref;

use serde_json::{Value, json};
use testbed::proxy::{Fault, Rule, RunningProxy};
use testbed::support::{AwsAccount, Services, random_account_id};

use super::{Output, Test, aws};

/// A value no output may contain.
pub(crate) fn canary(n: usize) -> String {
    format!("CANARY-{n:03}-d41d8cd98f00b204")
}

/// Fast retries, so the suite does not wait on production backoffs.
pub(crate) const FAST: &str = "resilience: { retries: { max_attempts: 6, base_delay: 10ms, max_delay: 100ms } }";

/// Observability flags every run of the fault suite uses.
pub(crate) const OBSERVED: &[&str] = &[
    "--log-level",
    "trace",
    "--log-format",
    "json",
    "--metrics-textfile",
    "metrics.prom",
    "--report",
    "report.json",
];

/// One account on moto behind a private proxy, and a [`Test`] (reached through `Deref`) acting
/// as it.
pub(crate) struct Scenario {
    pub(crate) s: Services,
    pub(crate) caller: AwsAccount,
    pub(crate) proxy: RunningProxy,
    test: Test,
}

impl Deref for Scenario {
    type Target = Test;

    fn deref(&self) -> &Test {
        &self.test
    }
}

impl Scenario {
    pub(crate) async fn new() -> Self {
        let s = Services::get();
        let caller = s.aws_account().await;
        let proxy = aws::proxy(&s).await;
        let test = Test::new().aws(&caller, &aws::endpoint(&proxy));
        Self { s, caller, proxy, test }
    }

    /// A pipeline syncing folder `src` into target `App` in the caller's own account (`target`
    /// fields added), with `pipeline` settings.
    pub(crate) fn config(&self, target: &str, pipeline: &str) {
        self.write(
            "config.yaml",
            format!(
                "sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
                 targets: {{ App: {{ account_id: \"{}\", imports: [files]{target} }} }}\n\
                 pipeline: {{ {pipeline} }}\n",
                self.caller.account_id
            ),
        );
    }

    /// A new bucket as the S3 merge store of a pipeline syncing folder `src` into target `App`
    /// in the caller's account (`pipeline` settings added); the bucket's name.
    pub(crate) async fn with_s3_merge_store(&self, pipeline: &str) -> String {
        let bucket = aws::bucket(&self.s, &self.caller).await;
        self.write(
            "config.yaml",
            format!(
                "sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
                 merge_store: {{ s3: {{ bucket: {bucket} }} }}\n\
                 targets: {{ App: {{ account_id: \"{}\", imports: [files] }} }}\n\
                 pipeline: {{ {pipeline} }}\n",
                self.caller.account_id
            ),
        );
        bucket
    }

    /// Secrets Manager in the caller's account, read directly from moto.
    pub(crate) async fn sm(&self) -> aws_sdk_secretsmanager::Client {
        aws::secrets_manager(&self.caller, &self.s.aws_endpoint).await
    }

    /// `count` file secrets (`src/s000.json`…), each holding a canary.
    pub(crate) fn write_canaries(&self, count: usize, version: u32) {
        for n in 0..count {
            self.write(
                &format!("src/s{n:03}.json"),
                json!({ "password": canary(n), "version": version }).to_string(),
            );
        }
    }

    /// One target `App` in a fresh account importing `count` canary secrets, with fast
    /// retries (or `resilience` settings when given); returns the account.
    pub(crate) fn one_target(&self, count: usize, resilience: Option<&str>) -> String {
        let target = random_account_id();
        self.write_canaries(count, 1);
        self.write(
            "config.yaml",
            format!(
                "sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
                 targets: {{ App: {{ account_id: \"{target}\", imports: [files] }} }}\n\
                 pipeline: {{ {} }}\n",
                resilience.unwrap_or(FAST)
            ),
        );
        target
    }

    /// `secretsync pipeline` with the [`OBSERVED`] flags and `extra`; asserts no canary leaked
    /// anywhere.
    pub(crate) fn observed_pipeline(&self, extra: &[&str]) -> Output {
        let mut args = vec!["pipeline"];
        args.extend_from_slice(OBSERVED);
        args.extend_from_slice(extra);
        let out = self.run(&args);
        self.assert_no_canary(&out);
        out
    }

    /// No canary in the run's output, nor in the metrics and report it wrote.
    pub(crate) fn assert_no_canary(&self, out: &Output) {
        let mut places = vec![("stdout", out.stdout.clone()), ("stderr", out.stderr.clone())];
        for file in ["metrics.prom", "report.json"] {
            if self.exists(file) {
                places.push((file, self.read(file)));
            }
        }
        for (place, text) in places {
            assert!(!text.contains("CANARY-"), "a secret value leaked into {place}:\n{text}");
        }
    }

    /// Delays every `CreateSecret` by `ms`, so a run is still applying when the test acts.
    pub(crate) fn slow_creates(&self, ms: u64) {
        self.proxy
            .add_rule(Rule {
                operation: Some("CreateSecret".into()),
                fault: Fault {
                    latency_ms: Some(ms),
                    ..Fault::default()
                },
                ..Rule::default()
            })
            .unwrap();
    }

    /// Waits until the started run `child` has made `creates` `CreateSecret` calls, sends it
    /// SIGTERM (what Kubernetes sends a pod it stops) and returns how it ended.
    pub(crate) async fn terminate_after_creates(&self, child: std::process::Child, creates: u64) -> Output {
        let made = || aws::calls(&self.proxy).get("CreateSecret").copied().unwrap_or(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
        while made() < creates {
            assert!(std::time::Instant::now() < deadline, "the run never started writing");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let out = tokio::task::block_in_place(|| child.wait_with_output()).expect("wait");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The metrics file an [`Scenario::observed_pipeline`] run wrote.
    pub(crate) fn metrics(&self) -> String {
        self.read("metrics.prom")
    }

    /// The report an [`Scenario::observed_pipeline`] run wrote.
    pub(crate) fn report(&self) -> Value {
        self.read_json("report.json")
    }
}
