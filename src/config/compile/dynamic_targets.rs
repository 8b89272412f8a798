//! `dynamic_targets:` — discovery (Organizations, Identity Center, account lists), name
//! templates and patterns.

use std::collections::BTreeSet;
use std::path::Path;

use super::targets::RegionFields;
use super::{Compiler, Names, not_echoing};
use crate::config::checks;
use crate::config::de::Spanned;
use crate::config::pipeline::{
    AccountsList, AwsTarget, Discovery, DynamicTarget, FileLocation, IdentityCenterDiscovery, NameMatching,
    NamePattern, OrganizationsDiscovery,
};
use crate::config::raw::{MatchStrategy, RawDynamicTarget};
use crate::suggest;

impl Compiler<'_> {
    pub(super) fn dynamic_target(
        &mut self,
        name: &Spanned<String>,
        raw: &RawDynamicTarget,
        names: &Names,
    ) -> Option<DynamicTarget> {
        let path = format!("dynamic_targets.{}", name.value);
        let imports = self.imports(&name.value, &format!("{path}.imports"), raw.imports.as_ref(), names);
        let discovery = self.discovery(name, raw, &path);
        let name_template = match &raw.name_template {
            Some(t) if self.check(t, &format!("`{path}.name_template`"), checks::name_template) => t.value.clone(),
            Some(_) => String::new(),
            None => "{{account_name}}".to_owned(),
        };
        let exclude: BTreeSet<String> = raw
            .exclude
            .iter()
            .flatten()
            .filter(|id| self.check(id, &format!("`{path}.exclude`"), checks::account_id))
            .map(|id| id.value.clone())
            .collect();
        let mut patterns = Vec::new();
        for p in raw.account_name_patterns.iter().flatten() {
            let Some(pattern) = self.required(
                p.pattern.as_ref(),
                p.mark,
                "pattern",
                &format!("{path}.account_name_patterns"),
            ) else {
                continue;
            };
            if !self.check(pattern, &format!("`{path}.account_name_patterns`"), checks::regex) {
                continue;
            }
            let target = p.target.as_ref().and_then(|t| {
                if names.targets.contains(&t.value) {
                    Some(t.value.clone())
                } else {
                    self.error(
                        t.mark,
                        format!(
                            "`{path}.account_name_patterns` refers to target `{}`, which is not a static target{}",
                            t.value,
                            suggest::did_you_mean(&t.value, names.targets.iter().map(String::as_str))
                        ),
                    );
                    None
                }
            });
            patterns.push(NamePattern {
                pattern: pattern.value.clone(),
                target,
            });
        }
        let role_arn = self.checked(
            raw.role_arn.as_ref(),
            &format!("`{path}.role_arn`"),
            checks::role_template,
        );
        let regions = RegionFields {
            region: raw.region.as_ref(),
            regions: raw.regions.as_ref(),
            replica_regions: raw.replica_regions.as_ref(),
            kms_key_id: None,
        };
        let target = AwsTarget {
            account_id: None,
            region: self.checked(raw.region.as_ref(), &format!("`{path}.region`"), checks::region),
            regions: self.regions(&regions, &path),
            replica_regions: self.replica_regions(&regions, &path),
            secret_prefix: self
                .checked(
                    raw.secret_prefix.as_ref(),
                    &format!("`{path}.secret_prefix`"),
                    checks::secret_prefix,
                )
                .unwrap_or_default(),
            role_arn,
            tags: self.tags(raw.tags.as_ref(), &path),
            kms_key_id: None,
            description: None,
        };
        let filter = self.filter(raw.filter.as_ref(), &path, None);
        Some(DynamicTarget {
            name: name.value.clone(),
            filter,
            discovery: discovery?,
            name_template,
            imports,
            exclude,
            account_name_patterns: patterns,
            target,
        })
    }

    pub(super) fn discovery(
        &mut self,
        name: &Spanned<String>,
        raw: &RawDynamicTarget,
        path: &str,
    ) -> Option<Discovery> {
        let Some(d) = &raw.discovery else {
            self.error(name.mark, format!("missing required key `discovery` in `{path}`"))
                .hint = Some("add `discovery: { organizations: { ou: … } }`, `identity_center: { permission_set: … }` or `accounts_list: { source: … }`".to_owned());
            return None;
        };
        if d.organizations.is_none() && d.identity_center.is_none() && d.accounts_list.is_none() {
            self.error(d.mark, format!("`{path}.discovery` names no method")).hint =
                Some("use `organizations`, `identity_center` or `accounts_list`".to_owned());
            return None;
        }
        let organizations = d.organizations.as_ref().map(|o| {
            let ou = self.checked(
                o.ou.as_ref(),
                &format!("`{path}.discovery.organizations.ou`"),
                checks::ou,
            );
            let nm = o.name_matching.as_ref();
            OrganizationsDiscovery {
                ou,
                recursive: o.recursive.unwrap_or(false),
                tags: o.tags.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
                name_matching: NameMatching {
                    strategy: nm
                        .and_then(|n| n.strategy.as_ref())
                        .map_or(MatchStrategy::Exact, |s| s.value),
                    normalize_keys: nm.and_then(|n| n.normalize_keys).unwrap_or(false),
                    case_insensitive: nm.and_then(|n| n.case_insensitive).unwrap_or(true),
                    strip_prefixes: nm.and_then(|n| n.strip_prefixes.clone()).unwrap_or_default(),
                    strip_suffixes: nm.and_then(|n| n.strip_suffixes.clone()).unwrap_or_default(),
                },
            }
        });
        let identity_center = match &d.identity_center {
            Some(ic) if ic.permission_set.is_none() && ic.group.is_none() => {
                self.error(
                    ic.mark,
                    format!("`{path}.discovery.identity_center` needs `permission_set` or `group`"),
                );
                None
            }
            Some(ic) => Some(IdentityCenterDiscovery {
                permission_set: ic.permission_set.as_ref().map(|p| p.value.clone()),
                group: ic.group.as_ref().map(|g| g.value.clone()),
                region: self.checked(
                    ic.region.as_ref(),
                    &format!("`{path}.discovery.identity_center.region`"),
                    checks::region,
                ),
            }),
            None => None,
        };
        let accounts_list = d.accounts_list.as_ref().and_then(|a| {
            let source = self.required(
                a.source.as_ref(),
                a.mark,
                "source",
                &format!("{path}.discovery.accounts_list"),
            )?;
            if let Some(param) = source.value.strip_prefix("ssm:") {
                if param.starts_with('/') || !param.is_empty() && !param.contains(' ') {
                    return Some(AccountsList::Ssm(param.to_owned()));
                }
            } else if let Some(file) = source.value.strip_prefix("file:")
                && !file.is_empty()
            {
                let p = Path::new(file);
                let path = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    self.base_dir.join(p)
                };
                return Some(AccountsList::File(FileLocation {
                    written: file.to_owned(),
                    mark: source.mark,
                    path,
                }));
            }
            self.error(
                source.mark,
                not_echoing(source, format!("`{}` is not an account list source", source.value)),
            )
            .hint = Some("write `ssm:/parameter/name` or `file:accounts.json`".to_owned());
            None
        });
        Some(Discovery {
            organizations,
            identity_center,
            accounts_list,
        })
    }
}
