//! Fault proxy.
