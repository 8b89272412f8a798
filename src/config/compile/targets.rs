//! `targets:` — AWS, Vault and file targets, their imports and tags.

use std::collections::BTreeMap;

use super::{Compiler, Names};
use crate::config::checks;
use crate::config::de::Spanned;
use crate::config::diagnostics::Mark;
use crate::config::pipeline::{AwsTarget, Import, ImportKind, Target, TargetKind, VaultLocation};
use crate::config::raw::RawTarget;
use crate::suggest;

/// The region settings of an AWS target or a dynamic target group, checked alike.
pub(super) struct RegionFields<'a> {
    pub(super) region: Option<&'a Spanned<String>>,
    pub(super) regions: Option<&'a Spanned<Vec<Spanned<String>>>>,
    pub(super) replica_regions: Option<&'a Spanned<Vec<Spanned<String>>>>,
    pub(super) kms_key_id: Option<&'a Spanned<String>>,
}

impl<'a> RegionFields<'a> {
    fn of_target(raw: &'a crate::config::raw::RawTargetFields) -> Self {
        Self {
            region: raw.region.as_ref(),
            regions: raw.regions.as_ref(),
            replica_regions: raw.replica_regions.as_ref(),
            kms_key_id: raw.kms_key_id.as_ref(),
        }
    }
}

impl Compiler<'_> {
    pub(super) fn imports(
        &mut self,
        owner: &str,
        path: &str,
        raw: Option<&Vec<Spanned<String>>>,
        names: &Names,
    ) -> Vec<Import> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<&str, Mark> = BTreeMap::new();
        for import in raw.into_iter().flatten() {
            let name = import.value.as_str();
            if let Some(first) = seen.get(name) {
                self.error(
                    import.mark,
                    format!("`{name}` is imported twice in `{path}` (first at line {})", first.line),
                )
                .hint = Some("importing it again would merge it twice (lists would repeat); remove one".to_owned());
                continue;
            }
            seen.insert(name, import.mark);
            let kind = if names.sources.contains(name) {
                ImportKind::Source
            } else if names.targets.contains(name) {
                if name == owner {
                    self.error(import.mark, format!("target `{owner}` imports itself")).hint =
                        Some("a target cannot inherit from itself; remove it from `imports`".to_owned());
                    continue;
                }
                ImportKind::Target
            } else if names.dynamic.contains(name) {
                self.error(
                    import.mark,
                    format!("`{name}` is a dynamic target group and cannot be imported"),
                )
                .hint =
                    Some("its targets are discovered at run time; import the sources it imports instead".to_owned());
                continue;
            } else {
                let suggestion = suggest::closest(name, names.all());
                self.error(
                    import.mark,
                    format!("`{path}` imports `{name}`, which is neither a source nor a target"),
                )
                .hint = Some(match suggestion {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("define it under `sources:`, e.g. `{name}: {{ vault: {{ mount: {name} }} }}`"),
                });
                continue;
            };
            out.push(Import {
                name: name.to_owned(),
                kind,
            });
        }
        out
    }

    pub(super) fn aws_target(&mut self, path: &str, raw: &crate::config::raw::RawTargetFields) -> AwsTarget {
        AwsTarget {
            account_id: self.checked(
                raw.account_id.as_ref(),
                &format!("`{path}.account_id`"),
                checks::account_id,
            ),
            region: self.checked(raw.region.as_ref(), &format!("`{path}.region`"), checks::region),
            regions: self.regions(&RegionFields::of_target(raw), path),
            replica_regions: self.replica_regions(&RegionFields::of_target(raw), path),
            secret_prefix: self
                .checked(
                    raw.secret_prefix.as_ref(),
                    &format!("`{path}.secret_prefix`"),
                    checks::secret_prefix,
                )
                .unwrap_or_default(),
            role_arn: self.checked(raw.role_arn.as_ref(), &format!("`{path}.role_arn`"), checks::role_arn),
            tags: self.tags(raw.tags.as_ref(), path),
            kms_key_id: raw.kms_key_id.as_ref().map(|k| k.value.clone()),
            description: self.checked(
                raw.description.as_ref(),
                &format!("`{path}.description`"),
                checks::description,
            ),
        }
    }

    /// A list of distinct, well-formed regions at `path.key` (`None`: not given); `may_be_empty`
    /// for lists where none is a setting of its own.
    fn region_list(
        &mut self,
        list: Option<&Spanned<Vec<Spanned<String>>>>,
        path: &str,
        key: &str,
        may_be_empty: bool,
    ) -> Option<Vec<String>> {
        let list = list?;
        if list.value.is_empty() && !may_be_empty {
            self.error(list.mark, format!("`{path}.{key}` is empty")).hint =
                Some(format!("list at least one region, or remove `{key}`"));
        }
        let mut out: Vec<String> = Vec::new();
        for region in &list.value {
            if !self.check(region, &format!("`{path}.{key}`"), checks::region) {
                continue;
            }
            if out.contains(&region.value) {
                self.error(region.mark, format!("`{path}.{key}` names `{}` twice", region.value))
                    .hint = Some("list each region once".to_owned());
                continue;
            }
            out.push(region.value.clone());
        }
        Some(out)
    }

    pub(super) fn regions(&mut self, raw: &RegionFields<'_>, path: &str) -> Vec<String> {
        let regions = self
            .region_list(raw.regions, path, "regions", false)
            .unwrap_or_default();
        if let (Some(key), Some(_)) = (raw.kms_key_id, raw.regions) {
            // A key ARN names one region; every other region's writes would fail.
            let key_region = key.value.strip_prefix("arn:").and_then(|arn| arn.split(':').nth(2));
            if let Some(key_region) = key_region.filter(|r| regions.iter().any(|region| region != r)) {
                self.error(
                    key.mark,
                    format!("`{path}.kms_key_id` is a key in {key_region}, but the target syncs to other regions too"),
                )
                .hint = Some(
                    "use an alias that exists in every region (`alias/secrets`), or split the target by region"
                        .to_owned(),
                );
            }
        }
        if let (Some(region), Some(_)) = (raw.region, raw.regions) {
            self.error(region.mark, format!("`{path}` has both `region` and `regions`"))
                .hint = Some("list every region under `regions`, or keep one `region`".to_owned());
        }
        regions
    }

    pub(super) fn replica_regions(&mut self, raw: &RegionFields<'_>, path: &str) -> Option<Vec<String>> {
        let replicas = self.region_list(raw.replica_regions, path, "replica_regions", true);
        let listed = raw.replica_regions?;
        let homes: Vec<&str> = raw
            .region
            .iter()
            .map(|r| r.value.as_str())
            .chain(
                raw.regions
                    .iter()
                    .flat_map(|r| r.value.iter())
                    .map(|r| r.value.as_str()),
            )
            .collect();
        for replica in &listed.value {
            if homes.contains(&replica.value.as_str()) {
                self.error(
                    replica.mark,
                    format!(
                        "`{path}.replica_regions` names `{}`, where the target itself syncs",
                        replica.value
                    ),
                )
                .hint = Some("a secret cannot be replicated to its own region; remove it from one list".to_owned());
            }
        }
        if raw.regions.is_some() {
            self.error(listed.mark, format!("`{path}` has both `regions` and `replica_regions`"))
                .hint = Some(
                "a secret has one primary region: replicate from one `region`, or sync each region on its own with `regions`"
                    .to_owned(),
            );
        }
        replicas
    }

    pub(super) fn tags(
        &mut self,
        raw: Option<&Spanned<std::collections::BTreeMap<String, String>>>,
        path: &str,
    ) -> BTreeMap<String, String> {
        let Some(tags) = raw else { return BTreeMap::new() };
        for (k, v) in tags.iter() {
            if let Err(message) = checks::tag(k, v) {
                self.error(tags.mark, format!("`{path}.tags`: {message}"));
            }
        }
        tags.value.clone()
    }

    pub(super) fn target(&mut self, name: &Spanned<String>, raw: &RawTarget, names: &Names) -> Option<Target> {
        let path = format!("targets.{}", name.value);
        let f = &raw.fields;
        let imports = self.imports(&name.value, &format!("{path}.imports"), f.imports.as_ref(), names);
        let kinds: Vec<&str> = [
            f.account_id.as_ref().map(|_| "account_id"),
            f.vault.as_ref().map(|_| "vault"),
            f.file.as_ref().map(|_| "file"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if kinds.len() > 1 {
            self.error(
                name.mark,
                format!(
                    "target `{}` has {} kinds ({}); a target syncs to exactly one place",
                    name.value,
                    kinds.len(),
                    kinds.join(", ")
                ),
            )
            .hint = Some("split it into one target per destination; both can import the same sources".to_owned());
            return None;
        }
        let kind = if let Some(v) = &f.vault {
            self.aws_only_keys(f, &path);
            let mount = self.mount(v.mount.as_ref(), v.mark, &format!("{path}.vault"));
            let folder = v
                .path
                .as_ref()
                .and_then(|p| self.subtree(p, &format!("`{path}.vault.path`")));
            let (address, namespace) =
                self.vault_connection_overrides(v.address.as_ref(), v.namespace.as_ref(), &format!("{path}.vault"));
            TargetKind::Vault(VaultLocation {
                mark: v.mark,
                mount: mount?,
                paths: folder.into_iter().collect(),
                kv_version: self.kv_version(v.kv_version.as_ref(), &format!("{path}.vault")),
                address,
                namespace,
                max_traversal_depth: None,
                max_secrets_per_mount: None,
            })
        } else if let Some(file) = &f.file {
            self.aws_only_keys(f, &path);
            TargetKind::File(self.location(file, &format!("{path}.file"))?)
        } else {
            TargetKind::Aws(self.aws_target(&path, f))
        };
        let filter = self.filter(f.filter.as_ref(), &path, None);
        Some(Target {
            name: name.value.clone(),
            imports,
            kind,
            filter,
        })
    }

    pub(super) fn aws_only_keys(&mut self, f: &crate::config::raw::RawTargetFields, path: &str) {
        let marks = [
            ("region", f.region.as_ref().map(|v| v.mark)),
            ("regions", f.regions.as_ref().map(|v| v.mark)),
            ("replica_regions", f.replica_regions.as_ref().map(|v| v.mark)),
            ("secret_prefix", f.secret_prefix.as_ref().map(|v| v.mark)),
            ("role_arn", f.role_arn.as_ref().map(|v| v.mark)),
            ("tags", f.tags.as_ref().map(|v| v.mark)),
            ("kms_key_id", f.kms_key_id.as_ref().map(|v| v.mark)),
            ("description", f.description.as_ref().map(|v| v.mark)),
        ];
        for (key, mark) in marks {
            if let Some(mark) = mark {
                self.error(mark, format!("`{path}.{key}` applies to AWS targets only"))
                    .hint = Some("remove it, or make this an AWS target with `account_id`".to_owned());
            }
        }
    }
}
