//! Test services for secretsync, started by the project itself so that a fresh machine and CI
//! get them with one command (`scripts/testbed up`, which also runs moto and OpenBao):
//!
//! - [`proxy`]: a reverse proxy that injects faults (errors in each service's wire format,
//!   latency, connection resets, held requests) and counts API calls per operation;
//! - [`openbao`]: a private OpenBao server for a test that seals it or waits for its tokens to
//!   expire;
//! - [`identity`]: stand-ins for the identity providers Vault checks login tokens with (a JWT
//!   signing key, the Kubernetes TokenReview API, GitHub Actions' OIDC token service);
//! - [`support`]: what tests use: the running testbed's addresses, an isolated AWS account per
//!   test on moto, an isolated Vault mount per test.
//!
//! None of this is linked into the `secretsync` binary.

pub mod http;
pub mod identity;
pub mod openbao;
pub mod proxy;
pub mod support;
