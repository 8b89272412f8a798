//! Every environment variable secretsync reads, and the one seam they are read through.
//!
//! `docs/environment.md` is generated from [`ALL`] (a test fails when it is stale), every flag's
//! `env = …` names a constant here, and the stores read `VAULT_*`, `AWS_*`, `HOME` and
//! `HOSTNAME` through a [`Lookup`] handed to them (tests give their own). No other module calls
//! `std::env::var` (`src/architecture.rs` checks), so the names in the code, the help and the
//! docs cannot drift apart.

use std::fmt::Write as _;
use std::sync::Arc;

/// How the stores read the environment: the process's ([`process`]) or a test's.
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment as a [`Lookup`].
pub fn process() -> Lookup {
    Arc::new(var)
}

/// One variable of the process environment (`None` when unset or not UTF-8).
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A variable of the process environment that names a file (any bytes the OS allows).
pub fn path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os(name).map(std::path::PathBuf::from)
}

/// Whether a variable of the process environment is set at all (to anything, even empty).
pub fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some()
}

/// Whether the process runs in GitHub Actions (`GITHUB_ACTIONS=true`).
pub fn in_github_actions() -> bool {
    var(EnvVars::GITHUB_ACTIONS).as_deref() == Some("true")
}

/// Names of the `SECRETSYNC_*` variables (one per flag) and of the other variables read.
pub struct EnvVars;

macro_rules! env_vars {
    ($($(#[doc = $doc:literal])+ $name:ident = $value:literal;)*) => {
        impl EnvVars {
            $($(#[doc = $doc])+ pub const $name: &'static str = $value;)*
        }

        /// Every variable with its description.
        pub const ALL: &[(&str, &str)] = &[$(($value, concat!($($doc),+)),)*];
    };
}

env_vars! {
    /// Path of the pipeline file (`--config`; default `pipeline.yaml`, else `config.yaml`).
    CONFIG = "SECRETSYNC_CONFIG";
    /// Log level: `trace`, `debug`, `info`, `warn`, `error` (`--log-level`).
    LOG_LEVEL = "SECRETSYNC_LOG_LEVEL";
    /// Logs of the libraries secretsync uses (AWS SDK, HTTP, Vault client), which are off by default because they can print raw HTTP answers: `tracing` filter directives such as `aws_config=warn,aws_smithy_runtime=debug`.
    LOG_DEPENDENCIES = "SECRETSYNC_LOG_DEPENDENCIES";
    /// Log format: `text` or `json` (`--log-format`).
    LOG_FORMAT = "SECRETSYNC_LOG_FORMAT";
    /// Colour: `auto`, `always`, `never` (`--color`).
    COLOR = "SECRETSYNC_COLOR";
    /// Disable progress bars (`--no-progress`).
    NO_PROGRESS = "SECRETSYNC_NO_PROGRESS";
    /// Address to serve `/metrics`, `/health` and `/ready` on during a run (`--metrics-addr`).
    METRICS_ADDR = "SECRETSYNC_METRICS_ADDR";
    /// Port to serve metrics on (`--metrics-port`).
    METRICS_PORT = "SECRETSYNC_METRICS_PORT";
    /// Write metrics for node-exporter's textfile collector here when the run ends (`--metrics-textfile`).
    METRICS_TEXTFILE = "SECRETSYNC_METRICS_TEXTFILE";
    /// Push metrics to this Pushgateway when the run ends (`--metrics-push`).
    METRICS_PUSH = "SECRETSYNC_METRICS_PUSH";
    /// Comma-separated targets to sync (`--targets`).
    TARGETS = "SECRETSYNC_TARGETS";
    /// Run only the merge phase (`--merge-only`).
    MERGE_ONLY = "SECRETSYNC_MERGE_ONLY";
    /// Run only the sync phase, from the merge store (`--sync-only`).
    SYNC_ONLY = "SECRETSYNC_SYNC_ONLY";
    /// Plan only; write nothing (`--dry-run`).
    DRY_RUN = "SECRETSYNC_DRY_RUN";
    /// Discover dynamic targets (`--discover`).
    DISCOVER = "SECRETSYNC_DISCOVER";
    /// Output format: `human`, `json`, `github`, `compact` (`--output`).
    OUTPUT = "SECRETSYNC_OUTPUT";
    /// Reuse discovery results saved in this file while fresh (`--discovery-cache`).
    DISCOVERY_CACHE = "SECRETSYNC_DISCOVERY_CACHE";
    /// How long saved discovery results stay fresh, e.g. `30m`, `1h` (`--discovery-ttl`).
    DISCOVERY_TTL = "SECRETSYNC_DISCOVERY_TTL";
    /// Output format of `discover`: `text` or `json` (`discover --output`).
    DISCOVER_OUTPUT = "SECRETSYNC_DISCOVER_OUTPUT";
    /// Show which keys change (`--diff`).
    DIFF = "SECRETSYNC_DIFF";
    /// Exit 1 when there are changes (`--exit-code`).
    EXIT_CODE = "SECRETSYNC_EXIT_CODE";
    /// Show secret values in human diffs (`--show-values`).
    SHOW_VALUES = "SECRETSYNC_SHOW_VALUES";
    /// Take over same-named secrets secretsync did not create (`--adopt`).
    ADOPT = "SECRETSYNC_ADOPT";
    /// Most deletes in one run (`--max-deletes`).
    MAX_DELETES = "SECRETSYNC_MAX_DELETES";
    /// How often a run renews its S3 merge-store lock, in seconds (default 60; a lock not renewed for 10 minutes is taken to belong to a run that died).
    LOCK_RENEW_SECONDS = "SECRETSYNC_LOCK_RENEW_SECONDS";
    /// Make the deletes of targets whose sources read no secrets (`--allow-empty-sources`).
    ALLOW_EMPTY_SOURCES = "SECRETSYNC_ALLOW_EMPTY_SOURCES";
    /// Append a hash-chained, value-free record of every write to this file (`pipeline --audit-log`).
    AUDIT_LOG = "SECRETSYNC_AUDIT_LOG";
    /// Only this target's revisions (`history --target`, `diff --target`).
    HISTORY_TARGET = "SECRETSYNC_HISTORY_TARGET";
    /// Output format of `history` and `diff`: `text` or `json`.
    HISTORY_OUTPUT = "SECRETSYNC_HISTORY_OUTPUT";
    /// The revision `rollback` goes back to (`rollback --to`).
    ROLLBACK_TO = "SECRETSYNC_ROLLBACK_TO";
    /// Also write the JSON report to this file (`--report`).
    REPORT = "SECRETSYNC_REPORT";
    /// Link to the run in notifications (`--run-url`).
    RUN_URL = "SECRETSYNC_RUN_URL";
    /// Post the plan as a pull-request comment (`--pr-comment`).
    PR_COMMENT = "SECRETSYNC_PR_COMMENT";
    /// Send the run's traces to this OpenTelemetry collector over OTLP/HTTP, e.g. `http://localhost:4318` (`--otlp-endpoint`; `/v1/traces` is added).
    OTLP_ENDPOINT = "SECRETSYNC_OTLP_ENDPOINT";
    /// Run shard `I` of `N` (`--shard I/N`).
    SHARD = "SECRETSYNC_SHARD";
    /// Targets merged and synced at once (`--parallel`).
    PARALLEL = "SECRETSYNC_PARALLEL";
    /// Graph format: `text`, `dot`, `mermaid`, `json` (`graph --format`).
    GRAPH_FORMAT = "SECRETSYNC_GRAPH_FORMAT";
    /// Check AWS access in `validate` (`--check-aws`).
    CHECK_AWS = "SECRETSYNC_CHECK_AWS";
    /// Check Vault access in `validate` (`--check-vault`).
    CHECK_VAULT = "SECRETSYNC_CHECK_VAULT";
    /// Disables colour when set to anything (<https://no-color.org>).
    NO_COLOR = "NO_COLOR";
    /// Set to `true` by GitHub Actions: makes `github` the default output format.
    GITHUB_ACTIONS = "GITHUB_ACTIONS";
    /// File GitHub Actions reads step outputs from (`github` output appends to it).
    GITHUB_OUTPUT = "GITHUB_OUTPUT";
    /// File GitHub Actions renders as the step summary (`github` output appends to it).
    GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY";
    /// Set by GitHub Actions in jobs with `permissions: { id-token: write }`: where `vault.auth.jwt` asks for the workflow's OIDC token.
    ACTIONS_ID_TOKEN_REQUEST_URL = "ACTIONS_ID_TOKEN_REQUEST_URL";
    /// Set by GitHub Actions with the URL above: the bearer token for that request.
    ACTIONS_ID_TOKEN_REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
    /// Operating-system user, recorded as who ran a run in the audit log.
    USER = "USER";
    /// Set by GitHub Actions: who started the workflow (recorded in the audit log).
    GITHUB_ACTOR = "GITHUB_ACTOR";
    /// Set by GitHub Actions: `owner/repo` (recorded in the audit log).
    GITHUB_REPOSITORY = "GITHUB_REPOSITORY";
    /// Set by GitHub Actions: the workflow's name (recorded in the audit log).
    GITHUB_WORKFLOW = "GITHUB_WORKFLOW";
    /// Set by GitHub Actions: the commit the workflow runs on (recorded in the audit log).
    GITHUB_SHA = "GITHUB_SHA";
    /// Set by GitHub Actions: `https://github.com` or the GitHub Enterprise server (the run's link in notifications).
    GITHUB_SERVER_URL = "GITHUB_SERVER_URL";
    /// Set by GitHub Actions: the workflow run's id (the run's link in notifications).
    GITHUB_RUN_ID = "GITHUB_RUN_ID";
    /// Set by GitHub Actions: the event that started the workflow (`--pr-comment` comments on `pull_request` events only).
    GITHUB_EVENT_NAME = "GITHUB_EVENT_NAME";
    /// Set by GitHub Actions: the file holding the event's payload (the pull request's number).
    GITHUB_EVENT_PATH = "GITHUB_EVENT_PATH";
    /// Set by GitHub Actions: the repository's checkout; a pull-request comment is keyed by the pipeline file's path inside it.
    GITHUB_WORKSPACE = "GITHUB_WORKSPACE";
    /// Set by GitHub Actions: the REST API's address (`https://api.github.com`, or a GitHub Enterprise server's).
    GITHUB_API_URL = "GITHUB_API_URL";
    /// The job's token, for `--pr-comment` (the Action passes its `github-token` input).
    GITHUB_TOKEN = "GITHUB_TOKEN";
    /// OpenTelemetry: the collector's base URL; traces go to its `/v1/traces` (OTLP/HTTP, protobuf). Setting it turns traces on.
    OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// OpenTelemetry: the full URL traces go to (wins over `OTEL_EXPORTER_OTLP_ENDPOINT`). Setting it turns traces on.
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    /// OpenTelemetry: the OTLP protocol; only `http/protobuf` (the default) is built in — another value is a warning and no traces (`--otlp-endpoint` ignores it).
    OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// OpenTelemetry: the protocol for traces (wins over `OTEL_EXPORTER_OTLP_PROTOCOL`).
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
    /// OpenTelemetry: `otlp` turns traces on (to `http://localhost:4318` when no endpoint is set); `none` turns them off.
    OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER";
    /// OpenTelemetry: `true` turns traces off (`--otlp-endpoint` / `SECRETSYNC_OTLP_ENDPOINT` still turn them on).
    OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED";
    /// W3C trace context (`00-<trace id>-<span id>-<flags>`) set by whatever started the run: with traces on, the run's root span becomes its child.
    TRACEPARENT = "TRACEPARENT";
    /// W3C trace state that goes with `TRACEPARENT`.
    TRACESTATE = "TRACESTATE";
    /// Vault's address, when the `vault:` block has no `address` (as the Vault CLI reads it).
    VAULT_ADDR = "VAULT_ADDR";
    /// Vault namespace of the `vault:` block, when it has no `namespace`.
    VAULT_NAMESPACE = "VAULT_NAMESPACE";
    /// Vault token, when `vault.auth` names no method (else `~/.vault-token` is read).
    VAULT_TOKEN = "VAULT_TOKEN";
    /// AppRole role id, when `vault.auth` names no method and there is no token.
    VAULT_ROLE_ID = "VAULT_ROLE_ID";
    /// AppRole secret id, with `VAULT_ROLE_ID`.
    VAULT_SECRET_ID = "VAULT_SECRET_ID";
    /// Mount path of AppRole for `VAULT_ROLE_ID`/`VAULT_SECRET_ID` (default `approle`).
    VAULT_APPROLE_MOUNT = "VAULT_APPROLE_MOUNT";
    /// CA certificate (PEM file) to trust for Vault, when `vault.tls` names none.
    VAULT_CACERT = "VAULT_CACERT";
    /// AWS region, when the pipeline names none (before `AWS_DEFAULT_REGION`).
    AWS_REGION = "AWS_REGION";
    /// AWS region, when neither the pipeline nor `AWS_REGION` names one.
    AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION";
    /// AWS endpoint for every service (moto, LocalStack), when `aws.endpoint_url` is not set.
    AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL";
    /// AWS access key id; with `AWS_SECRET_ACCESS_KEY` these credentials are used as given (else the AWS SDK's credential chain: profile, web identity, ECS, EC2).
    AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID";
    /// AWS secret access key, with `AWS_ACCESS_KEY_ID`.
    AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY";
    /// AWS session token for temporary credentials, with the two above.
    AWS_SESSION_TOKEN = "AWS_SESSION_TOKEN";
    /// Home folder: `~/.vault-token` is read from it.
    HOME = "HOME";
    /// Host name shown in the S3 merge store's run lock, so another run can say who holds it (else `/etc/hostname`).
    HOSTNAME = "HOSTNAME";
}

/// `docs/environment.md`, generated from [`ALL`].
pub fn markdown() -> String {
    let mut out = String::from(
        "# Environment variables\n\n<!-- Generated from src/env.rs; `cargo nextest run` fails when this file is stale. -->\n\n\
         Every command-line flag can also be set through its `SECRETSYNC_*` variable; a flag on the command\n\
         line wins over the variable. Boolean variables accept `true`/`false` (also `1`/`0`, `yes`/`no`).\n\
         Variables used in the pipeline file itself (`${NAME}`) are whatever you choose.\n\n\
         | Variable | Meaning |\n|---|---|\n",
    );
    for (name, doc) in ALL {
        let _ = writeln!(out, "| `{name}` | {} |", doc.trim());
    }
    out.push_str(
        "\nThe AWS SDK's credential chain, used when `AWS_ACCESS_KEY_ID` is not set, reads its own variables\n\
         (`AWS_PROFILE`, `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_WEB_IDENTITY_TOKEN_FILE`,\n\
         `AWS_ROLE_ARN`, `AWS_CONTAINER_CREDENTIALS_*`, `AWS_EC2_METADATA_DISABLED`, …) as the AWS CLI does.\n\n\
         With traces on, the OpenTelemetry SDK reads its own variables as every OpenTelemetry SDK does:\n\
         `OTEL_SERVICE_NAME` (default here: `secretsync`), `OTEL_RESOURCE_ATTRIBUTES`,\n\
         `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (e.g. an API key; never logged),\n\
         `OTEL_EXPORTER_OTLP_TIMEOUT` / `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_TRACES_SAMPLER`,\n\
         `OTEL_TRACES_SAMPLER_ARG` and `OTEL_BSP_*`.\n",
    );
    out
}
