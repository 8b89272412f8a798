//! Building stores from the validated config. The only place that maps config kinds to store
//! implementations; stores whose issue has not landed yet fail here with a clear message.

use std::sync::Arc;

use super::{FileMergeStore, FileStore, MergeStore, Store, WritableStore};
use crate::config::{MergeStoreSpec, Source, Target, TargetKind};

/// Why a store could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The store kind is specified and validated, but not implemented yet.
    #[error("{what} are not supported yet: they land with issue #{issue}")]
    NotSupportedYet {
        /// What cannot be built ("Vault sources").
        what: &'static str,
        /// The tracking issue.
        issue: u32,
    },
}

impl BuildError {
    /// A hint for the user.
    pub fn hint(&self) -> String {
        match self {
            Self::NotSupportedYet { .. } => {
                "the config is valid; until then, use `file:` stores, or run only the other targets with `--targets`"
                    .to_owned()
            }
        }
    }
}

/// The store for a source.
pub fn build_source(source: &Source) -> Result<Arc<dyn Store>, BuildError> {
    match source {
        Source::File(f) => Ok(Arc::new(FileStore::source(&f.path, &f.written))),
        Source::Vault(_) => Err(BuildError::NotSupportedYet {
            what: "Vault sources",
            issue: 4,
        }),
        Source::Aws(_) => Err(BuildError::NotSupportedYet {
            what: "AWS Secrets Manager sources",
            issue: 5,
        }),
    }
}

/// The store for a target.
pub fn build_target(target: &Target) -> Result<Arc<dyn WritableStore>, BuildError> {
    match &target.kind {
        TargetKind::File(f) => Ok(Arc::new(FileStore::new(&f.path, &f.written))),
        TargetKind::Vault(_) => Err(BuildError::NotSupportedYet {
            what: "Vault targets",
            issue: 4,
        }),
        TargetKind::Aws(_) => Err(BuildError::NotSupportedYet {
            what: "AWS Secrets Manager targets",
            issue: 5,
        }),
    }
}

/// The merge store.
pub fn build_merge_store(spec: &MergeStoreSpec) -> Result<Arc<dyn MergeStore>, BuildError> {
    match spec {
        MergeStoreSpec::File(f) => Ok(Arc::new(FileMergeStore::new(&f.path, &f.written))),
        MergeStoreSpec::Vault(_) => Err(BuildError::NotSupportedYet {
            what: "Vault merge stores",
            issue: 4,
        }),
        MergeStoreSpec::S3 { .. } => Err(BuildError::NotSupportedYet {
            what: "S3 merge stores",
            issue: 5,
        }),
    }
}
