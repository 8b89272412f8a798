//! The pipeline file: parsing, environment interpolation, validation.
//!
//! `load` is the only entry point. It reports every problem of a file at once, each with
//! `file:line:col` and a hint, and never touches the network: building clients from the
//! validated [`Pipeline`] is the stores' job.

mod checks;
mod compile;
mod de;
mod diagnostics;
#[cfg(test)]
mod fuzz;
mod interpolate;
mod load;
mod pipeline;
pub mod raw;
mod yaml;

pub use de::{Lenient, NamedMap, OneOrMany, Spanned};
pub use diagnostics::{ConfigError, Diagnostic, Mark, Severity};
pub use load::{load, load_str};
pub use pipeline::*;
pub use raw::{LogFormat, LogLevel};

/// The JSON Schema of the pipeline file, generated from the config types.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<raw::RawConfig>();
    serde_json::to_value(schema).unwrap_or_default()
}

/// A data file (JSON is YAML too) as a JSON value, with the pipeline file's YAML rules
/// (duplicate keys and the like are errors). For side files such as account lists.
pub(crate) fn data_from_yaml(text: &str) -> Result<serde_json::Value, String> {
    let (root, mut problems) = yaml::parse(text).map_err(|d| d.message)?;
    let no_env = |_: &str| None;
    let no_hint = |_: &str, _: &str| None;
    let cx = de::Context::new(&no_env, &no_hint, &no_hint);
    let value = de::from_node::<serde_json::Value>(&root, &cx).map_err(|e| e.to_string());
    problems.extend(cx.into_diagnostics());
    if let Some(first) = problems.first() {
        return Err(format!("line {}: {}", first.mark.line, first.message));
    }
    value
}
