//! Reading a pipeline file: YAML → located tree → raw types → validated pipeline.

use std::path::{Path, PathBuf};

use super::compile::compile;
use super::de::{Context, from_node};
use super::diagnostics::{ConfigError, Diagnostic, Mark};
use super::pipeline::Pipeline;
use super::raw::{RawConfig, legacy_key_hint, shape_hint};
use super::yaml;

/// Loads and validates the pipeline file at `path`, reading `${VAR}`s through `env`.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Pipeline, ConfigError> {
    let text = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(text).map_err(|err| ConfigError::Invalid {
        path: path.to_path_buf(),
        errors: vec![Diagnostic::error(
            Mark::new(1, 1),
            format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                err.utf8_error().valid_up_to()
            ),
        )],
        warnings: Vec::new(),
    })?;
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    load_str(&text, path, &base_dir, env)
}

/// Like [`load`], for text already in memory; relative paths resolve against `base_dir`.
pub fn load_str(
    text: &str,
    path: &Path,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, ConfigError> {
    let invalid = |errors: Vec<Diagnostic>, warnings: Vec<Diagnostic>| ConfigError::Invalid {
        path: path.to_path_buf(),
        errors,
        warnings,
    };
    let (root, mut errors) = yaml::parse(text).map_err(|d| invalid(vec![d], Vec::new()))?;
    if let Some(not_a_pipeline) = other_kind_of_file(&root) {
        return Err(invalid(vec![not_a_pipeline], Vec::new()));
    }
    let hint = |p: &str, k: &str| legacy_key_hint(p, k);
    let shape = |p: &str, e: &str| shape_hint(p, e);
    let cx = Context::new(env, &hint, &shape);
    let raw: RawConfig = from_node(&root, &cx).unwrap_or_default();
    errors.extend(cx.into_diagnostics());
    let (pipeline, mut compile_errors, warnings) = compile(&raw, path, base_dir);
    // A value that did not parse was replaced by a stand-in so that parsing could go on (see
    // `de.rs`); what compiling then says about that same value is a consequence, not news.
    let unparsed: std::collections::BTreeSet<_> = errors.iter().map(|d| d.mark).collect();
    compile_errors.retain(|d| !unparsed.contains(&d.mark));
    errors.extend(compile_errors);
    errors.sort_by_key(|d| d.mark);
    match pipeline {
        Some(pipeline) if errors.is_empty() => Ok(pipeline),
        _ => Err(invalid(errors, warnings)),
    }
}

/// One sentence for a YAML file that is not a pipeline file at all — a Kubernetes manifest
/// (jbcom/secretsync's operator), that tool's server configuration, or one of the Terraform
/// pipeline's input files — instead of an error per top-level key.
fn other_kind_of_file(root: &yaml::Node) -> Option<Diagnostic> {
    let yaml::NodeKind::Map(entries) = &root.kind else {
        return None;
    };
    let value_of = |key: &str| {
        entries.iter().find_map(|(k, v)| match (&k.kind, &v.kind) {
            (yaml::NodeKind::Scalar(name, ..), yaml::NodeKind::Scalar(value, ..)) if name == key => {
                Some(value.as_str())
            }
            _ => None,
        })
    };
    let has = |key: &str| {
        entries
            .iter()
            .any(|(k, _)| matches!(&k.kind, yaml::NodeKind::Scalar(name, ..) if name == key))
    };
    if ["sources", "targets", "dynamic_targets"].iter().any(|k| has(k)) {
        return None;
    }
    let at = Mark::new(1, 1);
    if let (Some(api), Some(kind)) = (value_of("apiVersion"), value_of("kind")) {
        return Some(
            Diagnostic::error(
                at,
                format!("this is a Kubernetes manifest (`kind: {kind}`, `apiVersion: {api}`), not a pipeline file"),
            )
            .with_hint(
                "secretsync reads a pipeline file with `sources` and `targets` (see examples/quickstart/pipeline.yaml); jbcom/secretsync's operator resources have no equivalent — see docs/migration.md",
            ),
        );
    }
    if ["stores", "operator", "queue", "events"].iter().any(|k| has(k)) {
        return Some(
            Diagnostic::error(
                at,
                "this is jbcom/secretsync's server configuration (`stores`, `operator`, `queue`), not a pipeline file",
            )
            .with_hint("secretsync reads a pipeline file with `sources` and `targets`; see docs/migration.md"),
        );
    }
    // A pipeline file being written (settings, no sources yet) gets the usual errors.
    if ["merge_store", "vault", "aws", "pipeline", "log"]
        .iter()
        .any(|k| has(k))
    {
        return None;
    }
    Some(
        Diagnostic::error(at, "this is not a pipeline file: it has neither `sources` nor `targets`").with_hint(
            "if it is one of the Terraform pipeline's inputs (targets, secrets, accounts), convert them with `secretsync migrate --from terraform-secretsmanager`; a pipeline file looks like examples/quickstart/pipeline.yaml",
        ),
    )
}
