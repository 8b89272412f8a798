//! `sources:` — Vault, AWS Secrets Manager and file sources.

use super::Compiler;
use crate::config::checks;
use crate::config::de::Spanned;
use crate::config::pipeline::{AwsSource, Source, VaultLocation};
use crate::config::raw::RawSource;
use crate::model::SecretPath;

impl Compiler<'_> {
    pub(super) fn source(&mut self, name: &Spanned<String>, raw: &RawSource) -> Option<Source> {
        let path = format!("sources.{}", name.value);
        let kinds: Vec<&str> = [
            raw.vault.as_ref().map(|_| "vault"),
            raw.aws.as_ref().map(|_| "aws"),
            raw.file.as_ref().map(|_| "file"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if kinds.len() != 1 {
            let message = if kinds.is_empty() {
                format!("source `{}` has no kind", name.value)
            } else {
                format!(
                    "source `{}` has {} kinds ({}); a source is exactly one of them",
                    name.value,
                    kinds.len(),
                    kinds.join(", ")
                )
            };
            self.error(name.mark, message).hint =
                Some("give it one of `vault: { mount: … }`, `aws: { account_id: … }`, `file: { path: … }`".to_owned());
            return None;
        }
        if let Some(v) = &raw.vault {
            let mount = self.mount(v.mount.as_ref(), v.mark, &format!("{path}.vault"));
            let paths: Vec<SecretPath> = v
                .paths
                .iter()
                .flatten()
                .filter_map(|p| self.subtree(p, &format!("`{path}.vault.paths`")))
                .collect();
            let kv_version = self.kv_version(v.kv_version.as_ref(), &format!("{path}.vault"));
            let (address, namespace) =
                self.vault_connection_overrides(v.address.as_ref(), v.namespace.as_ref(), &format!("{path}.vault"));
            let max_depth = v
                .max_traversal_depth
                .as_ref()
                .map(|d| self.positive(Some(d), "max_traversal_depth", 100));
            let max_secrets = v
                .max_secrets_per_mount
                .as_ref()
                .map(|d| self.positive(Some(d), "max_secrets_per_mount", 100_000));
            self.positive(
                v.queue_compaction_threshold.as_ref(),
                "queue_compaction_threshold",
                1000,
            );
            return Some(Source::Vault(VaultLocation {
                mark: v.mark,
                mount: mount?,
                paths,
                kv_version,
                address,
                namespace,
                max_traversal_depth: max_depth,
                max_secrets_per_mount: max_secrets,
            }));
        }
        if let Some(a) = &raw.aws {
            let account_id = self.checked(
                a.account_id.as_ref(),
                &format!("`{path}.aws.account_id`"),
                checks::account_id,
            );
            let region = self.checked(a.region.as_ref(), &format!("`{path}.aws.region`"), checks::region);
            let prefix = self.checked(
                a.prefix.as_ref(),
                &format!("`{path}.aws.prefix`"),
                checks::secret_prefix,
            );
            let role_arn = self.checked(a.role_arn.as_ref(), &format!("`{path}.aws.role_arn`"), checks::role_arn);
            return Some(Source::Aws(AwsSource {
                account_id,
                region,
                prefix,
                tags: a.tags.clone().unwrap_or_default(),
                role_arn,
            }));
        }
        let file = raw.file.as_ref()?;
        self.location(file, &format!("{path}.file")).map(Source::File)
    }
}
