//! `merge_store:` — S3, Vault or a folder.

use super::Compiler;
use crate::config::checks;
use crate::config::diagnostics::Mark;
use crate::config::pipeline::{DEFAULT_HISTORY_KEEP, MAX_HISTORY_KEEP, MergeStoreSpec, VaultLocation};
use crate::config::raw::RawMergeStore;

impl Compiler<'_> {
    pub(super) fn merge_store(&mut self, raw: &RawMergeStore, mark: Mark) -> Option<MergeStoreSpec> {
        let given: Vec<(&str, Mark)> = [
            raw.s3.as_ref().map(|s| ("s3", s.mark)),
            raw.vault.as_ref().map(|s| ("vault", s.mark)),
            raw.file.as_ref().map(|s| ("file", s.mark)),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.as_slice() {
            [] => {
                self.error(mark, "`merge_store` names no store").hint =
                    Some("give one of `s3: { bucket: … }`, `vault: { mount: … }`, `file: { path: … }`, or remove `merge_store` to merge in memory".to_owned());
                return None;
            }
            [_] => {}
            [_, (_, second), ..] => {
                let kinds: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
                self.error(
                    *second,
                    format!(
                        "`merge_store` names {} stores ({}); a pipeline has at most one",
                        kinds.len(),
                        kinds.join(", ")
                    ),
                )
                .hint = Some("keep one of them".to_owned());
                return None;
            }
        }
        if let Some(s3) = &raw.s3 {
            let bucket = self.required(s3.bucket.as_ref(), s3.mark, "bucket", "merge_store.s3")?;
            let ok = self.check(bucket, "`merge_store.s3.bucket`", checks::bucket);
            let prefix = s3.prefix.as_ref().map_or_else(String::new, |p| {
                let trimmed = p.value.trim_matches('/');
                if trimmed.is_empty() {
                    String::new()
                } else {
                    format!("{trimmed}/")
                }
            });
            let region = self.checked(s3.region.as_ref(), "`merge_store.s3.region`", checks::region);
            let account_id = self.checked(
                s3.account_id.as_ref(),
                "`merge_store.s3.account_id`",
                checks::account_id,
            );
            let role_arn = self.checked(s3.role_arn.as_ref(), "`merge_store.s3.role_arn`", checks::role_arn);
            return ok.then(|| MergeStoreSpec::S3 {
                bucket: bucket.value.clone(),
                prefix,
                kms_key_id: s3.kms_key_id.as_ref().map(|k| k.value.clone()),
                region,
                account_id,
                role_arn,
            });
        }
        if let Some(v) = &raw.vault {
            let mount = self.mount(v.mount.as_ref(), v.mark, "merge_store.vault")?;
            let prefix = v
                .prefix
                .as_ref()
                .and_then(|p| self.subtree(p, "`merge_store.vault.prefix`"));
            let (address, namespace) =
                self.vault_connection_overrides(v.address.as_ref(), v.namespace.as_ref(), "merge_store.vault");
            return Some(MergeStoreSpec::Vault(VaultLocation {
                mark: v.mark,
                mount,
                paths: prefix.into_iter().collect(),
                kv_version: self.kv_version(v.kv_version.as_ref(), "merge_store.vault"),
                address,
                namespace,
                max_traversal_depth: None,
                max_secrets_per_mount: None,
            }));
        }
        let file = raw.file.as_ref()?;
        self.location(file, "merge_store.file").map(MergeStoreSpec::File)
    }

    /// `merge_store.history.keep`: revisions kept, 0 for none.
    pub(super) fn history_keep(&mut self, raw: Option<&RawMergeStore>) -> u32 {
        let Some(keep) = raw.and_then(|m| m.history.as_ref()).and_then(|h| h.keep.as_ref()) else {
            return DEFAULT_HISTORY_KEEP;
        };
        match u32::try_from(keep.value) {
            Ok(n) if n <= MAX_HISTORY_KEEP => n,
            _ => {
                self.error(
                    keep.mark,
                    format!(
                        "`merge_store.history.keep` is {}; at most {MAX_HISTORY_KEEP}",
                        keep.value
                    ),
                )
                .hint = Some("keep fewer revisions (0 records none)".to_owned());
                DEFAULT_HISTORY_KEEP
            }
        }
    }
}
