//! clap derive definitions: one struct per command, global flags flattened in.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::EnvVars;
use crate::config::{LogFormat, LogLevel};
use crate::output::ColorChoice;

/// Synchronise secrets across HashiCorp Vault, AWS Secrets Manager and local stores from one
/// YAML pipeline: merge sources into each target's desired secrets, then plan and apply the
/// difference.
#[derive(Debug, Parser)]
#[command(name = "secretsync", version = crate::version::SHORT, long_version = crate::version::LONG, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Pipeline file [default: `pipeline.yaml`, else `config.yaml` (jbcom/secretsync's name)].
    #[arg(short = 'c', long, global = true, help_heading = "Global options", env = EnvVars::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level [default: the file's `log.level`, else warn].
    #[arg(long, global = true, help_heading = "Global options", env = EnvVars::LOG_LEVEL, value_enum, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Log format [default: the file's `log.format`, else text].
    #[arg(long, global = true, help_heading = "Global options", env = EnvVars::LOG_FORMAT, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// When to use colours (`NO_COLOR` also turns them off).
    #[arg(long, global = true, help_heading = "Global options", env = EnvVars::COLOR, value_enum, default_value_t, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Never show progress bars (they only appear on a terminal anyway).
    #[arg(long, global = true, help_heading = "Global options", env = EnvVars::NO_PROGRESS, value_parser = clap::builder::BoolishValueParser::new())]
    pub no_progress: bool,
    /// Send traces to this OpenTelemetry collector (OTLP/HTTP; `/v1/traces` is added) [default:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_TRACES_EXPORTER=otlp`, else no traces].
    #[arg(long, global = true, help_heading = "Global options", env = EnvVars::OTLP_ENDPOINT, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// The file read when `--config` is not given, in order of preference.
pub const DEFAULT_CONFIGS: [&str; 2] = ["pipeline.yaml", "config.yaml"];

impl GlobalArgs {
    /// The pipeline file: `--config`, else `pipeline.yaml`, else `config.yaml` when only that
    /// exists (the name jbcom/secretsync used), else `pipeline.yaml` (whose absence the error
    /// then names).
    pub fn config(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(|| {
            DEFAULT_CONFIGS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIGS[0]))
        })
    }

    /// Whether the file came from the fallback name `config.yaml` (worth saying).
    pub fn config_is_fallback(&self) -> bool {
        self.config.is_none() && self.config() == std::path::Path::new(DEFAULT_CONFIGS[1])
    }
}

/// Where a run's Prometheus metrics go.
#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// Serve `/metrics`, `/health` and `/ready` on this address during the run [default with
    /// `--metrics-port`: 127.0.0.1].
    #[arg(long, help_heading = "Metrics", env = EnvVars::METRICS_ADDR, value_name = "IP")]
    pub metrics_addr: Option<std::net::IpAddr>,
    /// Serve metrics on this port during the run; 0 picks a free one, logged at info level
    /// [default with `--metrics-addr`: 9464].
    #[arg(long, help_heading = "Metrics", env = EnvVars::METRICS_PORT, value_name = "PORT")]
    pub metrics_port: Option<u16>,
    /// When the run ends, write metrics here for node-exporter's textfile collector (atomically).
    #[arg(long, help_heading = "Metrics", env = EnvVars::METRICS_TEXTFILE, value_name = "PATH")]
    pub metrics_textfile: Option<PathBuf>,
    /// When the run ends, push metrics to this Pushgateway URL (`/metrics/job/secretsync` is
    /// added unless the URL names a job).
    #[arg(long, help_heading = "Metrics", env = EnvVars::METRICS_PUSH, value_name = "URL")]
    pub metrics_push: Option<String>,
}

impl MetricsArgs {
    /// The address to serve on, if serving was asked for.
    pub fn listen(&self) -> Option<std::net::SocketAddr> {
        match (self.metrics_addr, self.metrics_port) {
            (None, None) => None,
            (addr, port) => Some(std::net::SocketAddr::new(
                addr.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
                port.unwrap_or(9464),
            )),
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Merge and sync: the main job
    Pipeline(PipelineArgs),
    /// Show what `pipeline` would change (same as `pipeline --dry-run --diff`)
    Plan(RunArgs),
    /// Check the pipeline file; no network unless asked
    Validate(ValidateArgs),
    /// Print targets by level, the execution order and inheritance
    Graph(GraphArgs),
    /// List the targets discovery would find (read-only)
    Discover(DiscoverArgs),
    /// Show the AWS execution context (caller, organization, roles)
    Context,
    /// Convert another tool's configuration into a pipeline file
    Migrate(MigrateArgs),
    /// Show or break the merge store's run lock
    #[command(subcommand)]
    Lock(LockCommand),
    /// Check an audit log written by `pipeline --audit-log`
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List the revisions of the merged results, newest first: who, when, what changed
    History(HistoryArgs),
    /// Show the key-level difference between two revisions of the merged results
    Diff(DiffArgs),
    /// Put the targets back to an earlier revision (a normal, reviewable run; no source read)
    Rollback(RollbackArgs),
    /// Print the JSON Schema of the pipeline file
    Schema,
    /// Print shell completions
    Completions {
        /// The shell to print completions for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print version, commit and build date
    Version,
}

/// Output formats of `pipeline` and `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Coloured per-target diff and summary.
    Human,
    /// The versioned JSON report.
    Json,
    /// GitHub Actions annotations, step outputs and summary.
    Github,
    /// One line.
    Compact,
}

/// `--shard I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N (for example `0/4`)"))?;
        let index: u32 = i.trim().parse().map_err(|_| format!("`{i}` is not a shard index"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("`{n}` is not a shard count"))?;
        if count == 0 {
            return Err("the shard count must be at least 1".to_owned());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards (indexes start at 0)"
            ));
        }
        Ok(Self { index, count })
    }
}

/// Flags of `pipeline`: those of a run, and the two that `plan` implies.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// Plan only: read everything, write nothing anywhere.
    #[arg(long, env = EnvVars::DRY_RUN, value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
    /// Show which keys change in each secret (human output).
    #[arg(long, env = EnvVars::DIFF, value_parser = clap::builder::BoolishValueParser::new())]
    pub diff: bool,
    /// Append a hash-chained, value-free record of every write this run makes to FILE (JSON Lines; check it with `secretsync audit verify FILE`).
    #[arg(long, env = EnvVars::AUDIT_LOG, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// The flags `plan` shares.
    #[command(flatten)]
    pub run: RunArgs,
}

impl std::ops::Deref for PipelineArgs {
    type Target = RunArgs;
    fn deref(&self) -> &RunArgs {
        &self.run
    }
}

impl From<&RunArgs> for PipelineArgs {
    /// `plan`'s flags as a `pipeline` run (plan implies `--dry-run --diff`).
    fn from(run: &RunArgs) -> Self {
        Self {
            dry_run: true,
            diff: true,
            audit_log: None,
            run: run.clone(),
        }
    }
}

/// Flags of a run (`pipeline` and `plan`).
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Only these targets (comma-separated); the targets they inherit from are merged too, but not synced.
    #[arg(long, env = EnvVars::TARGETS, value_delimiter = ',', value_name = "NAMES")]
    pub targets: Vec<String>,
    /// Run only the merge phase.
    #[arg(long, env = EnvVars::MERGE_ONLY, conflicts_with = "sync_only", value_parser = clap::builder::BoolishValueParser::new())]
    pub merge_only: bool,
    /// Run only the sync phase, reading merged results from the merge store.
    #[arg(long, env = EnvVars::SYNC_ONLY, value_parser = clap::builder::BoolishValueParser::new())]
    pub sync_only: bool,
    /// Discover dynamic targets.
    #[arg(long, env = EnvVars::DISCOVER, value_parser = clap::builder::BoolishValueParser::new())]
    pub discover: bool,
    /// Discovery cache.
    #[command(flatten)]
    pub cache: DiscoveryCacheArgs,
    /// Output format [default: github inside GitHub Actions, else human].
    #[arg(short = 'o', long, env = EnvVars::OUTPUT, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Exit 1 when there are changes (0 when in sync, 2 on errors).
    #[arg(long, env = EnvVars::EXIT_CODE, value_parser = clap::builder::BoolishValueParser::new())]
    pub exit_code: bool,
    /// Print secret values in full in the diff (human output only; inside GitHub Actions each printed line is masked first).
    #[arg(long, env = EnvVars::SHOW_VALUES, value_parser = clap::builder::BoolishValueParser::new())]
    pub show_values: bool,
    /// Take over same-named secrets that secretsync did not create.
    #[arg(long, env = EnvVars::ADOPT, value_parser = clap::builder::BoolishValueParser::new())]
    pub adopt: bool,
    /// Most deletes in this run; more withholds every delete [default: `pipeline.sync.max_deletes`]. Counted per process: with `--shard`, per shard.
    #[arg(long, env = EnvVars::MAX_DELETES, value_name = "N")]
    pub max_deletes: Option<u64>,
    /// Make the deletes of targets whose sources read no secrets (withheld by default: an empty source is more often a mistake than intended).
    #[arg(long, env = EnvVars::ALLOW_EMPTY_SOURCES, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_empty_sources: bool,
    /// Also write the JSON report to FILE.
    #[arg(long, env = EnvVars::REPORT, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// In GitHub Actions on a pull request: post the plan (key names only) as one comment that later runs update (needs `GITHUB_TOKEN` with `pull-requests: write`).
    #[arg(long, env = EnvVars::PR_COMMENT, value_parser = clap::builder::BoolishValueParser::new())]
    pub pr_comment: bool,
    /// Link to this run in notifications (default in GitHub Actions: the workflow run).
    #[arg(long, env = EnvVars::RUN_URL, value_name = "URL")]
    pub run_url: Option<String>,
    /// Run shard I of N (0-based): whole inheritance chains, stable across runs. Each shard applies `max_deletes` to its own deletes.
    #[arg(long, env = EnvVars::SHARD, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Targets merged and synced at once [default: `pipeline.merge.parallel` / `pipeline.sync.parallel`].
    #[arg(long, env = EnvVars::PARALLEL, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: Option<u16>,
    /// Metrics export.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Reusing discovery results (for scheduled jobs over many accounts).
#[derive(Debug, Clone, Args)]
pub struct DiscoveryCacheArgs {
    /// Reuse discovery results saved in FILE while they are fresh; save them there otherwise.
    #[arg(long, env = EnvVars::DISCOVERY_CACHE, value_name = "FILE")]
    pub discovery_cache: Option<PathBuf>,
    /// How long saved discovery results stay fresh (`30m`, `1h`, `1d`).
    #[arg(long, env = EnvVars::DISCOVERY_TTL, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub discovery_ttl: std::time::Duration,
}

/// `30s`, `30m`, `1h`, `1d` (a bare number is seconds).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(text)
}

/// Flags of `discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Output format.
    #[arg(short = 'o', long, env = EnvVars::DISCOVER_OUTPUT, value_enum, default_value_t = DiscoverFormat::Text, value_name = "FORMAT")]
    pub output: DiscoverFormat,
    /// Discovery cache.
    #[command(flatten)]
    pub cache: DiscoveryCacheArgs,
}

/// Output formats of `discover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiscoverFormat {
    /// One line per target and per skipped account, with the reason.
    Text,
    /// The versioned JSON document (docs/discovery-format.md).
    Json,
}

/// Flags of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Also check AWS credentials and access.
    #[arg(long, env = EnvVars::CHECK_AWS, value_parser = clap::builder::BoolishValueParser::new())]
    pub check_aws: bool,
    /// Also check Vault connectivity, auth and mounts.
    #[arg(long, env = EnvVars::CHECK_VAULT, value_parser = clap::builder::BoolishValueParser::new())]
    pub check_vault: bool,
}

/// Graph formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Levels, execution order and an inheritance tree.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart (renders in GitHub Markdown).
    Mermaid,
    /// Machine-readable.
    Json,
}

/// Flags of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only revisions that changed this target.
    #[arg(long, env = EnvVars::HISTORY_TARGET, value_name = "NAME")]
    pub target: Option<String>,
    /// Output format.
    #[arg(long, short, env = EnvVars::HISTORY_OUTPUT, value_enum, default_value = "text")]
    pub output: LockOutput,
}

/// Flags of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older revision (a number, `latest` or `previous`).
    #[arg(value_name = "REV_A")]
    pub from: String,
    /// The newer revision (a number, `latest` or `previous`).
    #[arg(value_name = "REV_B")]
    pub to: String,
    /// Only this target.
    #[arg(long, env = EnvVars::HISTORY_TARGET, value_name = "NAME")]
    pub target: Option<String>,
    /// Show changed values (human output only; never in JSON).
    #[arg(long, env = EnvVars::SHOW_VALUES, value_parser = clap::builder::BoolishValueParser::new())]
    pub show_values: bool,
    /// Output format.
    #[arg(long, short, env = EnvVars::HISTORY_OUTPUT, value_enum, default_value = "text")]
    pub output: LockOutput,
}

/// Flags of `rollback`: the revision, and the flags of a `pipeline` run (always with
/// `--sync-only` semantics: no source is read).
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The revision to go back to (a number from `secretsync history`, or `previous`).
    #[arg(long, env = EnvVars::ROLLBACK_TO, value_name = "REV")]
    pub to: String,
    /// The run's flags (`--targets`, `--dry-run`, `--max-deletes`, …).
    #[command(flatten)]
    pub run: PipelineArgs,
}

/// `secretsync audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no line of the log was removed, changed or moved; print its head hash
    Verify {
        /// The audit log.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// `secretsync lock …`.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Who holds the merge store's run lock, since when, and whether it is still renewed
    Status {
        /// Output format.
        #[arg(long, short, value_enum, default_value = "text")]
        output: LockOutput,
    },
    /// Break a lock whose run died, by its run id (from `lock status` or the error of a locked run)
    Release {
        /// The run id of the lock to break.
        #[arg(long, value_name = "RUN_ID", required = true)]
        id: String,
    },
}

/// Output formats of `lock status`, `history` and `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LockOutput {
    /// One line per lock.
    Text,
    /// A JSON array.
    Json,
}

/// Flags of `graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, env = EnvVars::GRAPH_FORMAT, value_enum, default_value = "text")]
    pub format: GraphFormat,
}

/// Flags of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// What to convert from.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub from: MigrateFrom,
    /// The Terraform pipeline's targets file (`{targets: [{name, imports, secrets}]}` or a list).
    #[arg(long, value_name = "FILE")]
    pub targets: PathBuf,
    /// Its secrets file (`{secrets: [{name, vault_path, vault_mount}]}` or a list).
    #[arg(long, value_name = "FILE")]
    pub secrets: PathBuf,
    /// Its accounts file (`{accounts: [{name, account_id, region, role_arn}]}`, a list, or a map).
    #[arg(long, value_name = "FILE")]
    pub accounts: PathBuf,
    /// Where to write the pipeline file (mode 0600).
    #[arg(long, short = 'o', value_name = "FILE", default_value = "pipeline-config.yaml")]
    pub output: PathBuf,
    /// Vault address to write into the file [default: none; `VAULT_ADDR` is used at run time].
    #[arg(long, value_name = "URL")]
    pub vault_addr: Option<String>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Formats `migrate` converts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateFrom {
    /// The Terraform Secrets Manager pipeline's targets, secrets and accounts YAML files.
    TerraformSecretsmanager,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_a_registered_env_fallback() {
        let registered: Vec<&str> = crate::env::ALL.iter().map(|(n, _)| *n).collect();
        let mut missing = Vec::new();
        let root = Cli::command();
        let mut commands = vec![root.clone()];
        commands.extend(root.get_subcommands().cloned());
        for cmd in commands {
            if ["completions", "migrate"].contains(&cmd.get_name()) {
                continue;
            }
            for arg in cmd.get_arguments() {
                if arg.is_positional() || ["help", "version"].contains(&arg.get_id().as_str()) {
                    continue;
                }
                match arg.get_env().and_then(|e| e.to_str()) {
                    Some(name) if registered.contains(&name) => {}
                    _ => missing.push(format!("{} --{}", cmd.get_name(), arg.get_id())),
                }
            }
        }
        assert!(
            missing.is_empty(),
            "flags without a registered SECRETSYNC_* variable: {missing:?}"
        );
    }

    #[test]
    fn parses_shards() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert!("4/4".parse::<Shard>().unwrap_err().contains("out of range"));
        assert!("1/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn environment_docs_are_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/environment.md");
        let current = std::fs::read_to_string(path).unwrap_or_default();
        if current != crate::env::markdown() {
            if std::env::var_os("SECRETSYNC_BLESS").is_some() {
                std::fs::write(path, crate::env::markdown()).unwrap();
            } else {
                panic!(
                    "docs/environment.md is stale; regenerate it with `SECRETSYNC_BLESS=1 cargo nextest run environment_docs`"
                );
            }
        }
    }
}
