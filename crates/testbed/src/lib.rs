//! Test services for secretsync, started by the project itself so that a fresh machine and CI
//! get them with one command (`scripts/testbed up`):
//!
//! - [`vault`]: an emulator of the part of HashiCorp Vault's HTTP API secretsync uses (no Vault
//!   binary can be installed from the registries this project can reach);
//! - [`proxy`]: a reverse proxy that injects faults (errors in each service's wire format,
//!   latency, connection resets) and counts API calls per operation;
//! - [`support`]: what tests use: the running testbed's addresses, an isolated AWS account per
//!   test on moto, an isolated Vault mount per test.
//!
//! None of this is linked into the `secretsync` binary.

pub mod http;
pub mod proxy;
pub mod support;
pub mod time;
pub mod vault;
