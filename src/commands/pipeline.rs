//! `secretsync pipeline` and `secretsync plan`: select targets, build stores, run the engine,
//! render the report, write the report file and GitHub outputs, return the exit code.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{init_logging, load, shown};
use crate::cli::{EnvVars, GlobalArgs, OutputFormat, PipelineArgs, RollbackArgs};
use crate::config::{ImportKind, Pipeline};
use crate::engine::{Engine, RunOptions, Stores};
use crate::error::CliError;
use crate::failure::Failure;
use crate::graph::GraphError;
use crate::history::{History, Identify, Identity, Recording};
use crate::metrics::export::{self, Readiness};
use crate::model::SecretSet;
use crate::output::Printer;
use crate::report::{self, EventSink, NoEvents, RunReport};
use crate::store;

pub(super) async fn run(
    global: &GlobalArgs,
    args: &PipelineArgs,
    plan_command: bool,
    printer: Printer,
) -> Result<u8, CliError> {
    let pipeline = load(global, printer)?;
    init_logging(global, Some(&pipeline))?;
    // Every log line of the run carries this id (JSON logs: in its `spans`), so the lines of
    // one scheduled run can be told from the next one's.
    let run_id = format!("{:016x}", fastrand::u64(..));
    let span = run_span(&run_id, if plan_command { "plan" } else { "pipeline" }, printer);
    // `plan` is a review (its place is the pull request), not a run anyone is notified of.
    let webhooks = if plan_command {
        Vec::new()
    } else {
        pipeline.settings.webhooks.clone()
    };
    let result = Box::pin(execute(global, args, plan_command, printer, pipeline, &run_id, None))
        .instrument(span)
        .await;
    notify_if_it_ended_early(&result, &webhooks, &run_id, args, printer).await;
    result
}

/// A run that ended in an error before it had a report (a store it could not build, a report
/// or audit log it could not write, a Pushgateway that refused the metrics) is a failure the
/// webhooks are told of — the nightly job that cannot even start is the one to hear about.
async fn notify_if_it_ended_early(
    result: &Result<u8, CliError>,
    webhooks: &[crate::config::Webhook],
    run_id: &str,
    args: &PipelineArgs,
    printer: Printer,
) {
    let Err(error) = result else { return };
    if webhooks.is_empty() {
        return;
    }
    let report = RunReport {
        run_id: run_id.to_owned(),
        dry_run: args.dry_run,
        errors: vec![Failure::new(
            crate::store::ErrorClass::Fatal,
            crate::output::one_line(&error.to_string()).into_owned(),
        )],
        ..RunReport::default()
    };
    let var = |name: &str| crate::env::var(name);
    let run_url = crate::notify::run_url(args.run_url.as_deref(), var);
    let run = crate::notify::RunContext {
        report: &report,
        exit_code: error.exit_code(),
        run_url: run_url.as_deref(),
    };
    for warning in crate::notify::send_all(webhooks, &run, var).await {
        printer.stderr(&format!("warning: {warning}"));
    }
}

/// `secretsync rollback --to REV`: a `--sync-only` run whose merged results are REV's.
pub(super) async fn rollback(global: &GlobalArgs, args: &RollbackArgs, printer: Printer) -> Result<u8, CliError> {
    let pipeline = load(global, printer)?;
    init_logging(global, Some(&pipeline))?;
    if pipeline.merge_store.is_none() {
        return Err(CliError::usage(
            "`rollback` goes back to a revision kept in the merge store, but the pipeline has no `merge_store`",
            Some("configure `merge_store` (its `history` keeps revisions)"),
        ));
    }
    if args.run.merge_only {
        return Err(CliError::usage(
            "`rollback` cannot take `--merge-only`: it syncs the targets to an earlier merged result",
            Some("leave out `--merge-only` (add `--dry-run` to review the plan first)"),
        ));
    }
    let mut run = args.run.clone();
    run.run.sync_only = true;
    let run_id = format!("{:016x}", fastrand::u64(..));
    let span = run_span(&run_id, "rollback", printer);
    let webhooks = pipeline.settings.webhooks.clone();
    let result = Box::pin(execute(global, &run, false, printer, pipeline, &run_id, Some(&args.to)))
        .instrument(span)
        .await;
    notify_if_it_ended_early(&result, &webhooks, &run_id, &run, printer).await;
    result
}

/// The run's root span, named after the `command` in traces and, when `TRACEPARENT` is set, a
/// child of the trace that started the run.
fn run_span(run_id: &str, command: &str, printer: Printer) -> tracing::Span {
    let span = tracing::info_span!("run", run_id = %run_id, otel.name = tracing::field::Empty);
    crate::telemetry::name(&span, command);
    if let Some(warning) = crate::telemetry::continue_trace(&span) {
        printer.stderr(&format!("warning: {warning}"));
    }
    span
}

/// Who ran a run, asked when its revision is recorded.
struct RunIdentity<'a>(&'a store::BuildContext);

#[async_trait::async_trait]
impl Identify for RunIdentity<'_> {
    async fn identify(&self) -> Identity {
        let (aws, vault) = self.0.used_identities().await;
        Identity {
            aws_caller_arn: aws,
            vault_identity: vault,
            ..Identity::from_env()
        }
    }
}

/// Each selected target's merged result at revision `to` (`rollback`).
async fn rollback_states(
    merge: &dyn store::MergeStore,
    to: &str,
    selected: &BTreeSet<String>,
) -> Result<(u64, BTreeMap<String, Result<Arc<SecretSet>, Failure>>), CliError> {
    let history = History::load(merge).await.map_err(CliError::Failed)?;
    let revision = history.resolve(to).map_err(CliError::Failed)?;
    let mut states = BTreeMap::new();
    for name in selected {
        let state = match history.checked_state(merge, name, revision).await {
            Ok(None) => continue,
            Ok(Some(set)) => Ok(Arc::new(set)),
            Err(failure) => Err(failure),
        };
        states.insert(name.clone(), state);
    }
    Ok((revision, states))
}

async fn execute(
    global: &GlobalArgs,
    args: &PipelineArgs,
    plan_command: bool,
    printer: Printer,
    mut pipeline: Pipeline,
    run_id: &str,
    rollback_to: Option<&str>,
) -> Result<u8, CliError> {
    let dry_run = plan_command || args.dry_run || pipeline.settings.dry_run;
    let context = store::BuildContext::new(&pipeline)
        .with_lock_scope(args.shard.map(|s| format!("shard-{}-of-{}", s.index, s.count)));
    let metrics = Arc::clone(context.metrics());
    let readiness = Readiness::default();
    let _metrics_server = match args.metrics.listen() {
        Some(addr) => {
            let server = export::serve(Arc::clone(&metrics), readiness.clone(), addr)
                .await
                .map_err(|e| {
                    CliError::usage(
                        format!("cannot serve metrics on {addr}: {e}"),
                        Some("choose a free port with --metrics-port (0 picks one)"),
                    )
                })?;
            tracing::info!("serving metrics on http://{}/metrics", server.addr);
            Some(server)
        }
        None => None,
    };
    let mut discovery_errors = Vec::new();
    if args.discover || pipeline.settings.discover {
        if pipeline.dynamic_targets.is_empty() {
            tracing::warn!("--discover: the pipeline has no `dynamic_targets`, so there is nothing to discover");
        } else {
            let discovered = super::discover::run_discovery(global, &pipeline, &context, &args.cache).await;
            discovery_errors = discovered.errors();
            if let Err(e) = crate::discovery::expand(&mut pipeline, &discovered) {
                discovery_errors.push(e.context("discovered targets were not added"));
            }
        }
    } else if !pipeline.dynamic_targets.is_empty() {
        let names: Vec<&str> = pipeline.dynamic_targets.keys().map(String::as_str).collect();
        tracing::warn!(
            "dynamic targets ({}) are only synced with --discover (or `pipeline.discover: true`)",
            names.join(", ")
        );
    }
    let selected = select(&pipeline, args)?;
    if args.sync_only && pipeline.merge_store.is_none() {
        return Err(CliError::usage(
            "`--sync-only` reads merged results from the merge store, but the pipeline has no `merge_store`",
            Some("configure `merge_store`, or run without `--sync-only`"),
        ));
    }
    let output = args.output.unwrap_or(if crate::env::in_github_actions() {
        OutputFormat::Github
    } else {
        OutputFormat::Human
    });
    if args.show_values && output != OutputFormat::Human {
        tracing::warn!(
            "--show-values only applies to human output; values are never written to {} output",
            format!("{output:?}").to_lowercase()
        );
    }

    let merge_phase = !args.sync_only;
    let sync_phase = !args.merge_only;
    let stores = build_stores(&pipeline, &context, &selected, merge_phase, sync_phase, dry_run).await?;
    let (rolled_back_to, rollback) = match (rollback_to, &stores.merge) {
        (Some(to), Some(merge)) => {
            let (revision, states) = rollback_states(merge.as_ref(), to, &selected).await?;
            (Some(revision), Some(states))
        }
        _ => (None, None),
    };
    let settings = &pipeline.settings;
    let parallel = args.parallel.map(usize::from);
    let options = RunOptions {
        dry_run,
        merge_phase,
        sync_phase,
        selected,
        merge_parallel: parallel.unwrap_or(settings.merge_parallel),
        sync_parallel: parallel.unwrap_or(settings.sync_parallel),
        continue_on_error: settings.continue_on_error,
        delete_orphans: settings.delete_orphans,
        max_deletes: args.max_deletes.unwrap_or(settings.max_deletes),
        allow_empty_sources: args.allow_empty_sources,
        adopt: args.adopt || settings.adopt_existing,
        keep_values: args.show_values,
        rollback,
    };

    let interrupt = CancellationToken::new();
    let on_signal = interrupt.clone();
    #[expect(
        clippy::disallowed_methods,
        reason = "the one detached task: it only cancels a token on Ctrl-C or SIGTERM"
    )]
    tokio::spawn(async move {
        if let Some(signal) = stop_signal().await {
            tracing::warn!("{signal}: finishing the writes in flight, starting no new ones, then stopping");
            on_signal.cancel();
        }
    });
    readiness.set();
    let bars = report::progress::ProgressBars::default();
    let show_progress =
        !global.no_progress && output == OutputFormat::Human && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let events: &dyn EventSink = if show_progress { &bars } else { &NoEvents };
    // A broken audit log stops the run before it writes, not after.
    if let (Some(path), false) = (&args.audit_log, args.dry_run) {
        crate::audit::check_appendable(path)?;
    }
    let config_sha256 = crate::history::sha256_hex(&std::fs::read(global.config()).unwrap_or_default());
    let identify = RunIdentity(&context);
    let config = shown(&global.config());
    // The merge store keeps each run's audit lines beside its revision (the second sink).
    let audit_lines = |report: &RunReport| {
        let events = crate::audit::events_of(report, Identity::from_env(), &config);
        // Only `run_started` and `run_finished`: the run wrote nothing.
        (events.len() > 2).then(|| crate::audit::standalone(run_id, events))
    };
    let mut engine = Engine::new(&pipeline, &stores, &options, events, interrupt);
    if pipeline.history_keep > 0 {
        engine = engine.audit_to_merge_store(&audit_lines);
        engine = engine.recording(Recording {
            keep: pipeline.history_keep,
            run_id,
            config_sha256: &config_sha256,
            rollback_to: rolled_back_to,
            identify: &identify,
        });
    }
    let mut report = engine.run().await;
    report.errors.extend(discovery_errors);
    run_id.clone_into(&mut report.run_id);
    report.api_calls = metrics.call_counts();
    report::metrics::record(&report, &metrics);

    render(&report, output, args, plan_command, &config, printer);
    if let Some(path) = &args.report {
        let mut bytes = Vec::new();
        report::json::write(&report, &config, args.exit_code, &mut bytes)
            .and_then(|()| crate::files::write_atomic(path, &bytes))
            .map_err(|source| CliError::Output {
                what: "the report",
                path: path.display().to_string(),
                source,
            })?;
    }
    // A dry run writes nothing, so it adds nothing to the audit log.
    if let (Some(path), false) = (&args.audit_log, report.dry_run) {
        let events = crate::audit::events_of(&report, identify.identify().await, &config);
        crate::audit::append(path, &report.run_id, events)?;
    }
    if output == OutputFormat::Github {
        let report_path = args.report.as_ref().map(|p| p.display().to_string());
        append_env_file(
            EnvVars::GITHUB_OUTPUT,
            &report::github::outputs(&report, report_path.as_deref()),
        )?;
        append_env_file(EnvVars::GITHUB_STEP_SUMMARY, &report::github::step_summary(&report))?;
    }
    if let Some(path) = &args.metrics.metrics_textfile {
        export::write_textfile(&metrics, path).map_err(|source| CliError::Output {
            what: "the metrics",
            path: path.display().to_string(),
            source,
        })?;
    }
    // Before the notifications: an error here is told to the webhooks as the run's failure.
    if let Some(url) = &args.metrics.metrics_push {
        export::push(&metrics, url).await?;
    }
    let exit_code = report.exit_code(args.exit_code);
    let var = |name: &str| crate::env::var(name);
    let run_url = crate::notify::run_url(args.run_url.as_deref(), var);
    if args.pr_comment {
        comment_on_pull_request(&report, &global.config(), run_url.as_deref(), printer).await;
    }
    // `plan` is a review (its place is the pull request), not a run anyone is notified of.
    // Every error of this function comes before this point (see `notify_if_it_ended_early`).
    if !plan_command && !pipeline.settings.webhooks.is_empty() {
        let run = crate::notify::RunContext {
            report: &report,
            exit_code,
            run_url: run_url.as_deref(),
        };
        for warning in crate::notify::send_all(&pipeline.settings.webhooks, &run, var).await {
            printer.stderr(&format!("warning: {warning}"));
        }
    }
    Ok(exit_code)
}

/// Posts or updates the plan's pull-request comment; a failure is a warning, and a run that is
/// not for a pull request (a push, a schedule) has nothing to comment on.
async fn comment_on_pull_request(report: &RunReport, config: &Path, run_url: Option<&str>, printer: Printer) {
    use crate::pr_comment::{NotAPullRequest, PullRequest, body, marker, pipeline_key, post};
    let pr = match PullRequest::from_env(crate::env::var) {
        Ok(pr) => pr,
        Err(why @ NotAPullRequest::Event(_)) => {
            tracing::info!("no pull-request comment: {why}");
            return;
        }
        Err(why) => {
            printer.stderr(&format!("warning: no pull-request comment: {why}"));
            return;
        }
    };
    if pr.target_event {
        printer.stderr(
            "warning: this is a `pull_request_target` run: it has a write token, and what it plans is the checked-out pipeline — the base branch's unless the workflow checks out the pull request, which would run a fork's pipeline with your credentials; use `pull_request` for plan comments\n",
        );
    }
    let workspace = crate::env::path(EnvVars::GITHUB_WORKSPACE);
    let key = pipeline_key(config, workspace.as_deref());
    match post(&pr, &marker(&key), &body(report, &key, run_url)).await {
        Ok(posted) => tracing::info!(pull_request = pr.number, ?posted, "plan comment posted"),
        Err(e) => printer.stderr(&format!("warning: {e}")),
    }
}

/// Waits for Ctrl-C or (on Unix) SIGTERM — what Kubernetes sends a pod it stops — and names it.
async fn stop_signal() -> Option<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.ok().map(|()| "interrupted (Ctrl-C)");
        };
        tokio::select! {
            pressed = tokio::signal::ctrl_c() => pressed.ok().map(|()| "interrupted (Ctrl-C)"),
            received = terminate.recv() => received.map(|()| "terminated (SIGTERM)"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.ok().map(|()| "interrupted (Ctrl-C)")
    }
}

fn render(
    report: &RunReport,
    output: OutputFormat,
    args: &PipelineArgs,
    plan_command: bool,
    config: &str,
    printer: Printer,
) {
    let text = match output {
        OutputFormat::Human => {
            let in_actions = crate::env::in_github_actions();
            if args.show_values && in_actions {
                printer.stdout(&report::github::masks_for_shown_values(report));
            }
            let options = report::human::HumanOptions {
                key_detail: args.diff || plan_command,
                show_values: args.show_values,
                only_maskable: in_actions,
            };
            report::human::render(report, printer.out, options)
        }
        OutputFormat::Json => {
            printer.stdout_streamed(|out| report::json::write(report, config, args.exit_code, out));
            return;
        }
        OutputFormat::Github => report::github::render(report),
        OutputFormat::Compact => report::compact::render(report),
    };
    printer.stdout(&text);
}

fn append_env_file(var: &str, text: &str) -> Result<(), CliError> {
    let Some(path) = crate::env::path(var) else {
        return Ok(());
    };
    let error = |source| CliError::Output {
        what: "GitHub step data",
        path: format!("{} (${var})", path.to_string_lossy()),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)
}

/// The targets to sync: `--targets` (validated), then `--shard`.
fn select(pipeline: &Pipeline, args: &PipelineArgs) -> Result<BTreeSet<String>, CliError> {
    let graph = &pipeline.graph;
    let mut selected: BTreeSet<String> = if args.targets.is_empty() {
        graph.names().map(str::to_owned).collect()
    } else {
        let names: Vec<&str> = args
            .targets
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(source) = names.iter().find(|n| pipeline.sources.contains_key(**n)) {
            return Err(CliError::usage(
                format!("`{source}` is a source, not a target"),
                Some("`--targets` takes target names; run `secretsync graph` to list them"),
            ));
        }
        if let Err(err @ GraphError::UnknownTargets { .. }) = graph.with_ancestors(names.iter().copied()) {
            return Err(CliError::usage(format!("--targets: {err}"), None));
        }
        names.into_iter().map(str::to_owned).collect()
    };
    if let Some(shard) = args.shard {
        let mine = graph.shard(shard.index, shard.count);
        selected.retain(|t| mine.contains(t));
        tracing::info!(shard = %format!("{}/{}", shard.index, shard.count), targets = selected.len(), "shard selected");
    }
    Ok(selected)
}

async fn build_stores(
    pipeline: &Pipeline,
    context: &store::BuildContext,
    selected: &BTreeSet<String>,
    merge_phase: bool,
    sync_phase: bool,
    dry_run: bool,
) -> Result<Stores, CliError> {
    let mut stores = Stores::default();
    let involved = if merge_phase {
        pipeline
            .graph
            .with_ancestors(selected.iter().map(String::as_str))
            .unwrap_or_default()
    } else {
        selected.clone()
    };
    if merge_phase {
        for name in &involved {
            for import in pipeline.targets[name]
                .imports
                .iter()
                .filter(|i| i.kind == ImportKind::Source)
            {
                if stores.sources.contains_key(&import.name) {
                    continue;
                }
                let read_labels = pipeline
                    .source_filters
                    .get(&import.name)
                    .is_some_and(crate::filter::Filter::needs_labels);
                let built = context
                    .source(&pipeline.sources[&import.name], read_labels)
                    .await
                    .map_err(|e| e.context(format!("source `{}` cannot be used", import.name)));
                stores.sources.insert(import.name.clone(), built);
            }
        }
    }
    if sync_phase {
        for name in selected {
            let target = &pipeline.targets[name];
            for unit in target.units() {
                let built = context.target(target, crate::config::region_of_unit(&unit)).await;
                stores.targets.insert(unit, built);
            }
        }
    }
    let needs_merge_store = !merge_phase || !dry_run;
    if let (Some(spec), true) = (&pipeline.merge_store, needs_merge_store) {
        let merge = context
            .merge_store(spec)
            .await
            .map_err(|e| CliError::Failed(e.context("cannot use the merge store")))?;
        stores.merge = Some(Arc::clone(&merge));
    }
    Ok(stores)
}
