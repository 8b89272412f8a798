//! Integration tests: the real binary on temporary copies of the examples and fixtures.
//!
//! One test binary (not one per file) so the crate is linked once.

mod audit;
mod aws;
mod aws_pipeline;
mod bad_configs;
mod cli;
mod deepmerge_python;
mod discovery;
mod discovery_aws;
mod distribution;
mod docs;
mod filters;
mod github_action;
mod graph_render;
mod history;
mod migrate;
mod notify;
mod observability;
mod quickstart;
mod regions;
mod resilience;
mod services;
mod support;
mod traces;
mod vault;
mod vault_pipeline;
