//! Raw config → validated [`Pipeline`]. Pure: no network, no file reads, no environment.
//!
//! Collects every error instead of stopping at the first, so a user fixing a file sees all of
//! its problems in one run; each error carries the position of the value it is about.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::checks;
use super::de::{Lenient, NamedMap, Spanned};
use super::diagnostics::{Diagnostic, Mark};
use super::pipeline::{
    AccountsList, AwsSettings, AwsSource, AwsTarget, ControlTowerRole, Deletion, Discovery, DynamicTarget,
    ExecutionContext, FileLocation, IdentityCenterDiscovery, Import, ImportKind, JwtSource, LogSettings,
    MergeStoreSpec, NameMatching, NamePattern, OrganizationsDiscovery, Pipeline, ResilienceSettings, RunSettings,
    Source, Target, TargetKind, VaultAuth, VaultLocation, VaultSettings,
};
use super::raw::{
    MatchStrategy, RawAws, RawConfig, RawDynamicTarget, RawFileLocation, RawJwtAuth, RawMergeStore,
    RawPipelineSettings, RawResilience, RawSource, RawTarget, RawVault, RawVaultAuth,
};
use crate::graph::{GraphError, TargetGraph};
use crate::model::SecretPath;
use crate::suggest;

/// Compiles a parsed file. Returns the pipeline when there are no errors, plus all errors and
/// warnings found.
pub(crate) fn compile(
    raw: &RawConfig,
    path: &Path,
    base_dir: &Path,
) -> (Option<Pipeline>, Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut c = Compiler {
        base_dir,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let log = valid(raw.log.as_ref()).map_or_else(LogSettings::default, |l| LogSettings {
        level: l.level,
        format: l.format,
    });
    let vault = c.vault(valid(raw.vault.as_ref()));
    let aws = c.aws(valid(raw.aws.as_ref()));
    let empty_sources = NamedMap::default();
    let raw_sources = valid(raw.sources.as_ref()).unwrap_or(&empty_sources);
    let empty_targets = NamedMap::default();
    let raw_targets = raw
        .targets
        .as_ref()
        .and_then(|t| t.value.valid())
        .unwrap_or(&empty_targets);
    let empty_dynamic = NamedMap::default();
    let raw_dynamic = valid(raw.dynamic_targets.as_ref()).unwrap_or(&empty_dynamic);
    let names = c.names(raw_sources, raw_targets, raw_dynamic);

    let mut sources = BTreeMap::new();
    for (name, entry) in &raw_sources.0 {
        if let Some(source) = entry.valid().and_then(|s| c.source(name, s)) {
            sources.insert(name.value.clone(), source);
        }
    }
    let merge_store = raw
        .merge_store
        .as_ref()
        .and_then(|m| m.value.valid().and_then(|v| c.merge_store(v, m.mark)));

    let mut targets = BTreeMap::new();
    let mut target_imports: BTreeMap<String, Vec<Spanned<String>>> = BTreeMap::new();
    for (name, entry) in &raw_targets.0 {
        let imports = entry.valid().and_then(|t| t.fields.imports.clone()).unwrap_or_default();
        target_imports.insert(name.value.clone(), imports.clone());
        if let Some(target) = entry.valid().and_then(|t| c.target(name, t, &names)) {
            targets.insert(name.value.clone(), target);
        }
    }
    let mut dynamic_targets = BTreeMap::new();
    for (name, entry) in &raw_dynamic.0 {
        if let Some(dynamic) = entry.valid().and_then(|d| c.dynamic_target(name, d, &names)) {
            dynamic_targets.insert(name.value.clone(), dynamic);
        }
    }
    let settings = c.settings(valid(raw.pipeline.as_ref()));

    if raw_targets.0.is_empty()
        && raw_dynamic.0.is_empty()
        && raw.targets.as_ref().is_none_or(|t| t.value.valid().is_some())
    {
        let mark = raw.targets.as_ref().map_or(Mark::new(1, 1), |t| t.mark);
        c.error(mark, "the pipeline has no targets")
            .hint = Some("add a `targets:` section, e.g. `targets: { Staging: { file: { path: ./out/staging } , imports: [defaults] } }`".to_owned());
    }
    let graph = c.graph(&target_imports, &names);
    c.overlapping_directories(&vault, &sources, merge_store.as_ref(), &targets);

    c.errors.sort_by_key(|d| d.mark);
    c.warnings.sort_by_key(|d| d.mark);
    let Compiler { errors, warnings, .. } = c;
    let pipeline = match graph {
        Some(graph) if errors.is_empty() => Some(Pipeline {
            path: path.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            log,
            vault,
            aws,
            sources,
            merge_store,
            targets,
            dynamic_targets,
            settings,
            graph,
            warnings: warnings.clone(),
        }),
        _ => None,
    };
    (pipeline, errors, warnings)
}

fn valid<T>(section: Option<&Lenient<T>>) -> Option<&T> {
    section.and_then(Lenient::valid)
}

/// What every name in the file refers to.
struct Names {
    sources: BTreeSet<String>,
    targets: BTreeSet<String>,
    dynamic: BTreeSet<String>,
}

impl Names {
    fn all(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().chain(&self.targets).map(String::as_str)
    }
}

struct Compiler<'a> {
    base_dir: &'a Path,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn error(&mut self, mark: Mark, message: impl Into<String>) -> &mut Diagnostic {
        self.errors.push(Diagnostic::error(mark, message));
        self.errors.last_mut().expect("just pushed")
    }

    fn warn(&mut self, mark: Mark, message: impl Into<String>, hint: &str) {
        self.warnings.push(Diagnostic::warning(mark, message).with_hint(hint));
    }

    /// Runs `check` on a spanned value, recording `what: message` on failure.
    fn check(&mut self, value: &Spanned<String>, what: &str, check: fn(&str) -> Result<(), String>) -> bool {
        match check(&value.value) {
            Ok(()) => true,
            Err(message) => {
                self.error(value.mark, format!("{what}: {}", not_echoing(value, message)));
                false
            }
        }
    }

    fn checked(
        &mut self,
        value: Option<&Spanned<String>>,
        what: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let value = value?;
        self.check(value, what, check).then(|| value.value.clone())
    }

    fn positive(&mut self, value: Option<&Spanned<u64>>, what: &str, default: u64) -> u64 {
        match value {
            Some(v) if v.value == 0 => {
                self.error(v.mark, format!("`{what}` must be at least 1"));
                default
            }
            Some(v) => v.value,
            None => default,
        }
    }

    fn required<'v, T>(
        &mut self,
        value: Option<&'v Spanned<T>>,
        parent: Mark,
        key: &str,
        path: &str,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            self.error(parent, format!("missing required key `{key}` in `{path}`"));
        }
        value
    }

    fn location(&mut self, raw: &Spanned<RawFileLocation>, path: &str) -> Option<FileLocation> {
        let written = self.required(raw.path.as_ref(), raw.mark, "path", path)?;
        if written.value.trim().is_empty() {
            self.error(written.mark, format!("`{path}.path` is empty"));
            return None;
        }
        let resolved = Path::new(&written.value);
        let path = if resolved.is_absolute() || self.base_dir == Path::new(".") {
            resolved.to_path_buf()
        } else {
            self.base_dir.join(resolved)
        };
        Some(FileLocation {
            written: written.value.clone(),
            mark: written.mark,
            path,
        })
    }

    fn mount(&mut self, value: Option<&Spanned<String>>, parent: Mark, path: &str) -> Option<String> {
        let mount = self.required(value, parent, "mount", path)?;
        let trimmed = mount.value.trim_matches('/');
        match SecretPath::parse(trimmed) {
            Ok(p) => Some(p.as_str().to_owned()),
            Err(err) => {
                self.error(
                    mount.mark,
                    format!(
                        "`{path}.mount`: {}",
                        not_echoing(mount, err.to_string().replace("secret path", "mount"))
                    ),
                );
                None
            }
        }
    }

    fn kv_version(&mut self, value: Option<&Spanned<u8>>, path: &str) -> Option<u8> {
        let v = value?;
        if v.value == 1 || v.value == 2 {
            Some(v.value)
        } else {
            self.error(v.mark, format!("`{path}.kv_version` must be 1 or 2, not {}", v.value));
            None
        }
    }

    fn subtree(&mut self, value: &Spanned<String>, what: &str) -> Option<SecretPath> {
        // `test/*` (jbcom/secretsync's examples) means everything under `test/`, which is what a
        // subtree prefix reads; any other glob would silently read more or less than written.
        if let Some(prefix) = value
            .value
            .strip_suffix("/*")
            .or_else(|| value.value.strip_suffix("/**"))
            && !prefix.contains('*')
            && !prefix.is_empty()
        {
            match &value.written {
                // Taken from the environment: say so without echoing it.
                Some(written) => self.warn(
                    value.mark,
                    format!("{what}: `{written}` (from the environment) ends in `/*` and is read as a subtree"),
                    "paths are subtree prefixes: end the value with `/` instead",
                ),
                None => self.warn(
                    value.mark,
                    format!("{what}: `{}` is read as the subtree `{prefix}/`", value.value),
                    &format!("paths are subtree prefixes: write `{prefix}/`"),
                ),
            }
            return match SecretPath::parse(prefix) {
                Ok(p) => Some(p),
                Err(err) => {
                    self.error(value.mark, format!("{what}: {}", not_echoing(value, err.to_string())));
                    None
                }
            };
        }
        if value.value.contains('*') {
            let suggestion = value.value.split('*').next().unwrap_or_default().trim_end_matches('/');
            let message = not_echoing(
                value,
                format!("`{}` is a glob, but paths are subtree prefixes", value.value),
            );
            let hint = (value.written.is_none()).then(|| {
                if suggestion.is_empty() {
                    "list the subtrees to read, such as `app/`".to_owned()
                } else {
                    format!("write `{suggestion}/` to read everything under `{suggestion}`")
                }
            });
            self.error(value.mark, format!("{what}: {message}")).hint = hint;
            return None;
        }
        match SecretPath::parse(value.value.trim_end_matches('/')) {
            Ok(p) => Some(p),
            Err(err) => {
                self.error(value.mark, format!("{what}: {}", not_echoing(value, err.to_string())));
                None
            }
        }
    }

    /// A Vault namespace as written (`teams/payments`), without surrounding slashes.
    fn namespace(&mut self, value: Option<&Spanned<String>>, what: &str) -> Option<String> {
        self.checked(value, what, checks::namespace)
            .map(|n| n.trim_matches('/').to_owned())
    }

    /// A Vault location's own `address` and `namespace` (`at` is `targets.X.vault`), which
    /// override `vault.address` and `vault.namespace`.
    fn vault_connection_overrides(
        &mut self,
        address: Option<&Spanned<String>>,
        namespace: Option<&Spanned<String>>,
        at: &str,
    ) -> (Option<String>, Option<String>) {
        // `namespace: /` names the root namespace when `vault.namespace` names another.
        let namespace = match namespace {
            Some(root) if root.value.trim().trim_matches('/').is_empty() && root.value.contains('/') => {
                Some(String::new())
            }
            other => self.namespace(other, &format!("`{at}.namespace`")),
        };
        (
            self.checked(address, &format!("`{at}.address`"), checks::url),
            namespace,
        )
    }

    fn vault(&mut self, raw: Option<&RawVault>) -> VaultSettings {
        let mut settings = VaultSettings {
            address: None,
            namespace: None,
            ca_cert: None,
            tls_skip_verify: false,
            auth: None,
            max_traversal_depth: 100,
            max_secrets_per_mount: 100_000,
            timeout: Duration::from_secs(30),
            list_concurrency: 16,
        };
        let Some(raw) = raw else { return settings };
        settings.address = self.checked(raw.address.as_ref(), "`vault.address`", checks::url);
        settings.namespace = self.namespace(raw.namespace.as_ref(), "`vault.namespace`");
        settings.ca_cert = raw.ca_cert.as_ref().map(|p| self.base_dir.join(&p.value));
        if let Some(skip) = &raw.tls_skip_verify {
            settings.tls_skip_verify = skip.value;
            if skip.value {
                self.warn(
                    skip.mark,
                    "TLS certificate verification is disabled for Vault",
                    "use `ca_cert` to trust a private CA instead",
                );
            }
        }
        settings.auth = raw.auth.as_ref().and_then(|a| self.vault_auth(a));
        settings.max_traversal_depth =
            self.positive(raw.max_traversal_depth.as_ref(), "vault.max_traversal_depth", 100);
        settings.max_secrets_per_mount = self.positive(
            raw.max_secrets_per_mount.as_ref(),
            "vault.max_secrets_per_mount",
            100_000,
        );
        self.positive(
            raw.queue_compaction_threshold.as_ref(),
            "vault.queue_compaction_threshold",
            1000,
        );
        settings.timeout =
            Duration::from_secs(self.positive(raw.timeout_seconds.as_ref(), "vault.timeout_seconds", 30));
        settings.list_concurrency =
            usize::try_from(self.positive(raw.list_concurrency.as_ref(), "vault.list_concurrency", 16)).unwrap_or(16);
        settings
    }

    fn vault_auth(&mut self, raw: &Spanned<RawVaultAuth>) -> Option<VaultAuth> {
        let given: Vec<&str> = [
            raw.token.as_ref().map(|_| "token"),
            raw.approle.as_ref().map(|_| "approle"),
            raw.kubernetes.as_ref().map(|_| "kubernetes"),
            raw.jwt.as_ref().map(|_| "jwt"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() != 1 {
            let message = if given.is_empty() {
                "`vault.auth` names no method".to_owned()
            } else {
                format!(
                    "`vault.auth` names {} methods ({}); give exactly one",
                    given.len(),
                    given.join(", ")
                )
            };
            self.error(raw.mark, message).hint =
                Some("use one of `token: { token: \"${VAULT_TOKEN}\" }`, `approle: { role_id: …, secret_id: … }`, `kubernetes: { role: … }`, `jwt: { role: … }`".to_owned());
            return None;
        }
        if let Some(token) = &raw.token {
            return Some(VaultAuth::Token {
                token: token.value.token.clone(),
            });
        }
        if let Some(approle) = &raw.approle {
            return Some(VaultAuth::AppRole {
                mount: approle
                    .mount
                    .as_ref()
                    .map_or_else(|| "approle".to_owned(), |m| m.value.trim_matches('/').to_owned()),
                role_id: approle.role_id.clone(),
                secret_id: approle.secret_id.clone(),
            });
        }
        if let Some(jwt) = &raw.jwt {
            return self.jwt_auth(jwt);
        }
        let k8s = raw.kubernetes.as_ref()?;
        let role = self.required(k8s.role.as_ref(), k8s.mark, "role", "vault.auth.kubernetes")?;
        Some(VaultAuth::Kubernetes {
            role: role.value.clone(),
            mount: k8s
                .mount_path
                .as_ref()
                .map_or_else(|| "kubernetes".to_owned(), |m| m.value.trim_matches('/').to_owned()),
            jwt_path: k8s.jwt_path.as_ref().map_or_else(
                || PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token"),
                |p| self.base_dir.join(&p.value),
            ),
        })
    }

    fn jwt_auth(&mut self, raw: &Spanned<RawJwtAuth>) -> Option<VaultAuth> {
        for (value, key) in [
            (&raw.role, "role"),
            (&raw.mount_path, "mount_path"),
            (&raw.audience, "audience"),
        ] {
            if let Some(v) = value
                && v.value.trim().trim_matches('/').is_empty()
            {
                self.error(v.mark, format!("`vault.auth.jwt.{key}` is empty")).hint =
                    Some("leave the key out for its default".to_owned());
                return None;
            }
        }
        let jwt = match (&raw.jwt_path, &raw.jwt_env) {
            (Some(_), Some(env)) => {
                self.error(
                    env.mark,
                    "`vault.auth.jwt` gives both `jwt_path` and `jwt_env`; give one",
                )
                .hint = Some("or neither, to use GitHub Actions' OIDC token".to_owned());
                return None;
            }
            (Some(path), None) => JwtSource::File(self.base_dir.join(&path.value)),
            (None, Some(env)) => {
                if !self.check(env, "`vault.auth.jwt.jwt_env`", checks::env_name) {
                    return None;
                }
                JwtSource::Env(env.value.clone())
            }
            (None, None) => JwtSource::GitHubActions {
                audience: raw.audience.as_ref().map(|a| a.value.clone()),
            },
        };
        if let (Some(audience), JwtSource::File(_) | JwtSource::Env(_)) = (&raw.audience, &jwt) {
            self.error(
                audience.mark,
                "`vault.auth.jwt.audience` is asked of GitHub Actions' OIDC token service, which `jwt_path`/`jwt_env` bypass",
            )
            .hint = Some("remove `audience`, or remove `jwt_path`/`jwt_env` to log in with the workflow's OIDC token".to_owned());
            return None;
        }
        Some(VaultAuth::Jwt {
            role: raw.role.as_ref().map(|r| r.value.clone()),
            mount: raw
                .mount_path
                .as_ref()
                .map_or_else(|| "jwt".to_owned(), |m| m.value.trim_matches('/').to_owned()),
            jwt,
        })
    }

    fn aws(&mut self, raw: Option<&RawAws>) -> AwsSettings {
        let mut settings = AwsSettings {
            role_session_name: "secretsync".to_owned(),
            ..AwsSettings::default()
        };
        let Some(raw) = raw else { return settings };
        settings.region = self.checked(raw.region.as_ref(), "`aws.region`", checks::region);
        settings.endpoint_url = self.checked(raw.endpoint_url.as_ref(), "`aws.endpoint_url`", checks::url);
        if let Some(endpoint) = &raw.endpoint {
            if raw.endpoint_url.is_some() {
                self.error(endpoint.mark, "`aws.endpoint` and `aws.endpoint_url` are both given")
                    .hint = Some("keep `endpoint_url` (`endpoint` is jbcom/secretsync's name for it)".to_owned());
            } else {
                self.warn(
                    endpoint.mark,
                    "`aws.endpoint` is read as `aws.endpoint_url`",
                    "rename it to `endpoint_url` (jbcom/secretsync's name is accepted for now)",
                );
                settings.endpoint_url = self.checked(Some(endpoint), "`aws.endpoint`", checks::url);
            }
        }
        if let Some(name) = self.checked(
            raw.role_session_name.as_ref(),
            "`aws.role_session_name`",
            checks::session_name,
        ) {
            settings.role_session_name = name;
        }
        settings.external_id = self.checked(raw.external_id.as_ref(), "`aws.external_id`", checks::external_id);
        if let Some(ctx) = &raw.execution_context {
            let account_id = self.checked(
                ctx.account_id.as_ref(),
                "`aws.execution_context.account_id`",
                checks::account_id,
            );
            let custom_role_pattern = self.checked(
                ctx.custom_role_pattern.as_ref(),
                "`aws.execution_context.custom_role_pattern`",
                checks::role_template,
            );
            if let Some(d) = &ctx.delegation {
                self.warn(
                    d.mark,
                    "`aws.execution_context.delegation` has no effect",
                    "remove it; secretsync detects delegated administration itself",
                );
            }
            settings.execution_context = Some(ExecutionContext {
                kind: ctx.kind.as_ref().map(|k| k.value),
                account_id,
                custom_role_pattern,
            });
        }
        if let Some(ct) = &raw.control_tower {
            if let Some(f) = &ct.account_factory {
                self.warn(
                    f.mark,
                    "`aws.control_tower.account_factory` has no effect",
                    "remove it; new accounts are picked up by `dynamic_targets` discovery",
                );
            }
            if ct.enabled == Some(true) {
                let role = ct.execution_role.as_ref();
                let name = role
                    .and_then(|r| r.name.as_ref())
                    .map_or_else(|| "AWSControlTowerExecution".to_owned(), |n| n.value.clone());
                let raw_path = role.and_then(|r| r.path.as_ref()).map_or("/", |p| p.value.as_str());
                let path = format!("/{}/", raw_path.trim_matches('/')).replace("//", "/");
                settings.control_tower_role = Some(ControlTowerRole { name, path });
            }
        }
        if let Some(o) = &raw.organizations {
            self.warn(
                o.mark,
                "`aws.organizations` has no effect",
                "configure discovery under `dynamic_targets.<name>.discovery.organizations`",
            );
        }
        if let Some(i) = &raw.identity_center {
            self.warn(
                i.mark,
                "`aws.identity_center` has no effect",
                "configure discovery under `dynamic_targets.<name>.discovery.identity_center`",
            );
        }
        settings
    }

    fn names(
        &mut self,
        sources: &NamedMap<RawSource>,
        targets: &NamedMap<RawTarget>,
        dynamic: &NamedMap<RawDynamicTarget>,
    ) -> Names {
        let mut names = Names {
            sources: BTreeSet::new(),
            targets: BTreeSet::new(),
            dynamic: BTreeSet::new(),
        };
        let mut first: BTreeMap<String, (&str, Mark)> = BTreeMap::new();
        let groups: [(&str, Vec<&Spanned<String>>); 3] = [
            ("source", sources.0.iter().map(|(n, _)| n).collect()),
            ("target", targets.0.iter().map(|(n, _)| n).collect()),
            ("dynamic target", dynamic.0.iter().map(|(n, _)| n).collect()),
        ];
        for (kind, group) in groups {
            for name in group {
                if let Err(message) = checks::name(&name.value) {
                    self.error(name.mark, format!("{kind} name {message}"));
                }
                if let Some((other, mark)) = first.get(&name.value) {
                    self.error(
                        name.mark,
                        format!(
                            "`{}` is both a {other} (line {}) and a {kind}; names must be unique",
                            name.value, mark.line
                        ),
                    )
                    .hint = Some("rename one of them so that imports are unambiguous".to_owned());
                    continue;
                }
                first.insert(name.value.clone(), (kind, name.mark));
                match kind {
                    "source" => names.sources.insert(name.value.clone()),
                    "target" => names.targets.insert(name.value.clone()),
                    _ => names.dynamic.insert(name.value.clone()),
                };
            }
        }
        names
    }

    fn source(&mut self, name: &Spanned<String>, raw: &RawSource) -> Option<Source> {
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

    fn merge_store(&mut self, raw: &RawMergeStore, mark: Mark) -> Option<MergeStoreSpec> {
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

    fn imports(&mut self, owner: &str, path: &str, raw: Option<&Vec<Spanned<String>>>, names: &Names) -> Vec<Import> {
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

    fn aws_target(&mut self, path: &str, raw: &super::raw::RawTargetFields) -> AwsTarget {
        AwsTarget {
            account_id: self.checked(
                raw.account_id.as_ref(),
                &format!("`{path}.account_id`"),
                checks::account_id,
            ),
            region: self.checked(raw.region.as_ref(), &format!("`{path}.region`"), checks::region),
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

    fn tags(
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

    fn target(&mut self, name: &Spanned<String>, raw: &RawTarget, names: &Names) -> Option<Target> {
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
        Some(Target {
            name: name.value.clone(),
            imports,
            kind,
        })
    }

    fn aws_only_keys(&mut self, f: &super::raw::RawTargetFields, path: &str) {
        let marks = [
            ("region", f.region.as_ref().map(|v| v.mark)),
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

    fn dynamic_target(
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
        let target = AwsTarget {
            account_id: None,
            region: self.checked(raw.region.as_ref(), &format!("`{path}.region`"), checks::region),
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
        Some(DynamicTarget {
            name: name.value.clone(),
            discovery: discovery?,
            name_template,
            imports,
            exclude,
            account_name_patterns: patterns,
            target,
        })
    }

    fn discovery(&mut self, name: &Spanned<String>, raw: &RawDynamicTarget, path: &str) -> Option<Discovery> {
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

    fn settings(&mut self, raw: Option<&RawPipelineSettings>) -> RunSettings {
        let mut s = RunSettings::default();
        let Some(raw) = raw else { return s };
        if let Some(m) = &raw.merge {
            s.merge_parallel = self.parallel(m.parallel.as_ref(), "pipeline.merge.parallel");
        }
        if let Some(sync) = &raw.sync {
            s.sync_parallel = self.parallel(sync.parallel.as_ref(), "pipeline.sync.parallel");
            s.delete_orphans = sync.delete_orphans.unwrap_or(false);
            s.max_deletes = sync.max_deletes.as_ref().map_or(50, |m| m.value);
            s.adopt_existing = sync.adopt_existing.unwrap_or(false);
            match (&sync.force_delete, &sync.recovery_window_days) {
                (Some(force), Some(days)) if force.value => {
                    self.error(
                        days.mark,
                        "`recovery_window_days` and `force_delete: true` contradict each other",
                    )
                    .hint = Some("keep one: a recovery window lets you restore deleted secrets".to_owned());
                }
                (Some(force), _) if force.value => s.deletion = Deletion::Force,
                (_, Some(days)) if !(7..=30).contains(&days.value) => {
                    self.error(
                        days.mark,
                        format!(
                            "`pipeline.sync.recovery_window_days` must be between 7 and 30 (AWS limits), not {}",
                            days.value
                        ),
                    );
                }
                (_, Some(days)) => s.deletion = Deletion::RecoveryWindow(days.value),
                _ => {}
            }
        }
        s.dry_run = raw.dry_run.unwrap_or(false);
        s.continue_on_error = raw.continue_on_error.unwrap_or(true);
        s.discover = raw.discover.unwrap_or(false);
        if let Some(resilience) = &raw.resilience {
            s.resilience = self.resilience(resilience);
        }
        s
    }

    fn resilience(&mut self, raw: &Spanned<RawResilience>) -> ResilienceSettings {
        let mut r = ResilienceSettings::default();
        let at = "pipeline.resilience";
        if let Some(retries) = &raw.retries {
            r.max_attempts = self.bounded(
                retries.max_attempts.as_ref(),
                &format!("{at}.retries.max_attempts"),
                1..=20,
                5,
            );
            r.base_delay = self.duration(
                retries.base_delay.as_ref(),
                &format!("{at}.retries.base_delay"),
                r.base_delay,
            );
            r.max_delay = self.duration(
                retries.max_delay.as_ref(),
                &format!("{at}.retries.max_delay"),
                r.max_delay,
            );
            if r.max_delay < r.base_delay {
                self.error(
                    retries.max_delay.as_ref().map_or(retries.mark, |d| d.mark),
                    format!("`{at}.retries.max_delay` must not be shorter than `base_delay`"),
                );
            }
        }
        if let Some(timeouts) = &raw.timeouts {
            r.call_timeout = self.duration(timeouts.call.as_ref(), &format!("{at}.timeouts.call"), r.call_timeout);
            r.deadline = self.duration(
                timeouts.deadline.as_ref(),
                &format!("{at}.timeouts.deadline"),
                r.deadline,
            );
            if r.deadline < r.call_timeout {
                self.error(
                    timeouts.deadline.as_ref().map_or(timeouts.mark, |d| d.mark),
                    format!("`{at}.timeouts.deadline` must not be shorter than `timeouts.call`"),
                )
                .hint = Some("the deadline covers a call and all its retries".to_owned());
            }
        }
        if let Some(breaker) = &raw.circuit_breaker {
            r.breaker_failures = self.bounded(
                breaker.failures.as_ref(),
                &format!("{at}.circuit_breaker.failures"),
                1..=1000,
                5,
            );
            r.breaker_cool_down = self.duration(
                breaker.cool_down.as_ref(),
                &format!("{at}.circuit_breaker.cool_down"),
                r.breaker_cool_down,
            );
        }
        if let Some(rates) = &raw.rate_limits {
            let name = |key: &str| format!("{at}.rate_limits.{key}");
            r.aws_writes_per_second = self.bounded(
                rates.aws_writes_per_second.as_ref(),
                &name("aws_writes_per_second"),
                1..=10_000,
                50,
            );
            r.aws_reads_per_second = self.bounded(
                rates.aws_reads_per_second.as_ref(),
                &name("aws_reads_per_second"),
                1..=10_000,
                100,
            );
            r.vault_requests_per_second = self.bounded(
                rates.vault_requests_per_second.as_ref(),
                &name("vault_requests_per_second"),
                0..=100_000,
                0,
            );
        }
        r
    }

    fn bounded(
        &mut self,
        value: Option<&Spanned<u64>>,
        what: &str,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> u32 {
        let Some(v) = value else { return default };
        if let Some(n) = u32::try_from(v.value).ok().filter(|n| range.contains(n)) {
            n
        } else {
            self.error(
                v.mark,
                format!(
                    "`{what}` must be between {} and {}, not {}",
                    range.start(),
                    range.end(),
                    v.value
                ),
            );
            default
        }
    }

    fn duration(&mut self, value: Option<&Spanned<String>>, what: &str, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        match crate::duration::parse(&v.value) {
            Ok(d) if d.is_zero() => {
                self.error(v.mark, format!("`{what}` must be longer than zero"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(v.mark, format!("`{what}`: {}", not_echoing(v, e)));
                default
            }
        }
    }

    fn parallel(&mut self, value: Option<&Spanned<u64>>, what: &str) -> usize {
        self.bounded(value, what, 1..=256, 4) as usize
    }

    fn graph(&mut self, imports: &BTreeMap<String, Vec<Spanned<String>>>, names: &Names) -> Option<TargetGraph> {
        let target_imports: BTreeMap<String, Vec<String>> = imports
            .iter()
            .map(|(t, list)| {
                let parents = list
                    .iter()
                    .filter(|i| names.targets.contains(&i.value) && i.value != *t)
                    .map(|i| i.value.clone())
                    .collect();
                (t.clone(), parents)
            })
            .collect();
        match TargetGraph::new(&target_imports) {
            Ok(graph) => Some(graph),
            Err(GraphError::Cycles(cycles)) => {
                for cycle in cycles {
                    let (first, second) = (&cycle.0[0], &cycle.0[1]);
                    let mark = imports[first]
                        .iter()
                        .find(|i| i.value == *second)
                        .map_or(Mark::new(1, 1), |i| i.mark);
                    self.error(mark, format!("import cycle: {cycle}")).hint =
                        Some("each target imports the next; remove one of these imports".to_owned());
                }
                None
            }
            Err(err) => {
                self.error(Mark::new(1, 1), err.to_string());
                None
            }
        }
    }

    /// A place secretsync writes to (a target or the merge store) that overlaps a source or
    /// another such place would let a sync overwrite or delete secrets another part of the
    /// pipeline reads — or feed merged output back in as source secrets. Checked for folders
    /// and for Vault locations on the same Vault (as far as the file tells: address and
    /// namespace as written).
    fn overlapping_directories(
        &mut self,
        vault: &VaultSettings,
        sources: &BTreeMap<String, Source>,
        merge: Option<&MergeStoreSpec>,
        targets: &BTreeMap<String, Target>,
    ) {
        let mut places: Vec<Place> = Vec::new();
        for (name, source) in sources {
            match source {
                Source::File(f) => places.push(Place::folder(format!("source `{name}`"), f)),
                Source::Vault(v) if v.paths.is_empty() => {
                    places.push(Place::vault(vault, format!("source `{name}`"), v, None));
                }
                Source::Vault(v) => {
                    for filter in &v.paths {
                        places.push(Place::vault(
                            vault,
                            format!("source `{name}`"),
                            v,
                            Some(filter.as_str()),
                        ));
                    }
                }
                Source::Aws(_) => {}
            }
        }
        let merge_store = match merge {
            Some(MergeStoreSpec::File(f)) => Some(Place::folder("the merge store".to_owned(), f)),
            Some(MergeStoreSpec::Vault(v)) => Some(Place::vault(
                vault,
                "the merge store".to_owned(),
                v,
                v.paths.first().map(SecretPath::as_str),
            )),
            _ => None,
        };
        let writing_targets = targets.iter().filter_map(|(name, t)| match &t.kind {
            TargetKind::File(f) => Some(Place::folder(format!("target `{name}`"), f)),
            TargetKind::Vault(v) => Some(Place::vault(
                vault,
                format!("target `{name}`"),
                v,
                v.paths.first().map(SecretPath::as_str),
            )),
            TargetKind::Aws(_) => None,
        });
        for writer in merge_store.into_iter().chain(writing_targets) {
            for other in &places {
                if writer.overlaps(other) {
                    self.error(
                        writer.mark,
                        format!(
                            "{} writes to `{}`, which overlaps {} (`{}`)",
                            writer.label, writer.written, other.label, other.written
                        ),
                    )
                    .hint =
                        Some("give every target and the merge store its own folder, outside the sources".to_owned());
                }
            }
            places.push(writer);
        }
    }
}

/// Somewhere the pipeline reads or writes, for the overlap check.
struct Place {
    label: String,
    written: String,
    mark: Mark,
    at: PlaceAt,
}

enum PlaceAt {
    Folder(PathBuf),
    /// The address as written, and the path segments from the namespace down to the folder.
    Vault(Option<String>, Vec<String>),
}

impl Place {
    fn folder(label: String, location: &FileLocation) -> Self {
        Self {
            label,
            written: location.written.clone(),
            mark: location.mark,
            at: PlaceAt::Folder(normalise(&location.path)),
        }
    }

    fn vault(settings: &VaultSettings, label: String, location: &VaultLocation, folder: Option<&str>) -> Self {
        let full = match folder {
            Some(f) => format!("{}/{f}", location.mount),
            None => location.mount.clone(),
        };
        let namespace = location.namespace.clone().or_else(|| settings.namespace.clone());
        // Vault routes `kv/x` in namespace `a/b` and `b/kv/x` in namespace `a` to the same
        // place, so the namespace's names lead the path compared.
        let segments = namespace
            .iter()
            .flat_map(|ns| ns.split('/'))
            .chain(full.split('/'))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let written = match &namespace {
            Some(ns) => format!("vault: {full} in namespace {ns}"),
            None => format!("vault: {full}"),
        };
        Self {
            label,
            written,
            mark: location.mark,
            at: PlaceAt::Vault(location.address.clone().or_else(|| settings.address.clone()), segments),
        }
    }

    fn overlaps(&self, other: &Self) -> bool {
        match (&self.at, &other.at) {
            (PlaceAt::Folder(a), PlaceAt::Folder(b)) => a.starts_with(b) || b.starts_with(a),
            (PlaceAt::Vault(va, a), PlaceAt::Vault(vb, b)) => va == vb && (a.starts_with(b) || b.starts_with(a)),
            _ => false,
        }
    }
}

/// Lexically normalises a path (`a/./b/../c` → `a/c`) without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `message` about `value`, which must not show a value taken from the environment: the
/// quoted value becomes the text as written (`${ACCOUNT}`), and a message that would still
/// show any of it is replaced by one that does not.
fn not_echoing(value: &Spanned<String>, message: String) -> String {
    let Some(written) = &value.written else {
        return message;
    };
    let shown = message.replace(
        &format!("`{}`", value.value),
        &format!("`{written}` (from the environment)"),
    );
    if value.value.is_empty() || reveals(&shown, &value.value, written) {
        format!("`{written}` (from the environment) is not valid here")
    } else {
        shown
    }
}

/// Whether `message` shows any part of `value` (eight characters or more, or all of a shorter
/// value) that is not literal text of `written` — a part that came from the environment.
fn reveals(message: &str, value: &str, written: &str) -> bool {
    const PART: usize = 8;
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < PART {
        return message.contains(value);
    }
    chars.windows(PART).any(|window| {
        let part: String = window.iter().collect();
        !written.contains(&part) && message.contains(&part)
    })
}
