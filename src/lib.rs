//! secretsync: synchronise secrets across HashiCorp Vault, AWS Secrets Manager and local
//! stores from one YAML pipeline.
//!
//! A run has two phases. **Merge**: for every target, in inheritance order, deep-merge its
//! imports into the desired secret set (and keep it in the merge store). **Sync**: read each
//! target's actual state, plan the difference, print it, and apply it unless it is a dry run.
//! See `ARCHITECTURE.md` for the code map and the invariants.

pub mod config;
pub mod graph;
pub mod merge;
pub mod model;
pub mod store;
pub mod suggest;
