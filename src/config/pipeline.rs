//! The validated pipeline: what `compile` produces and everything downstream consumes.
//!
//! Every value here has been checked; names are resolved (an import knows whether it is a
//! source or a target), paths are absolute-or-relative-to-the-config, defaults are applied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use super::diagnostics::Diagnostic;
use super::raw::{ConfigSecret, ExecutionContextType, LogFormat, LogLevel, MatchStrategy};
use crate::graph::TargetGraph;
use crate::model::SecretPath;
pub use crate::resilience::ResilienceSettings;

/// A validated pipeline file.
#[derive(Debug)]
pub struct Pipeline {
    /// The file, as given on the command line.
    pub path: PathBuf,
    /// Directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// `log:` defaults.
    pub log: LogSettings,
    /// `vault:` connection settings.
    pub vault: VaultSettings,
    /// `aws:` settings.
    pub aws: AwsSettings,
    /// Sources by name.
    pub sources: BTreeMap<String, Source>,
    /// Each source's `filter:` (sources without one are absent).
    pub source_filters: BTreeMap<String, crate::filter::Filter>,
    /// The merge store, if any.
    pub merge_store: Option<MergeStoreSpec>,
    /// Revisions of the merged results to keep (`merge_store.history.keep`; 0: none).
    pub history_keep: u32,
    /// Static targets by name.
    pub targets: BTreeMap<String, Target>,
    /// Dynamic target groups by name.
    pub dynamic_targets: BTreeMap<String, DynamicTarget>,
    /// `pipeline:` settings.
    pub settings: RunSettings,
    /// The inheritance graph of the static targets.
    pub graph: TargetGraph,
    /// Warnings found while compiling (the file is still valid).
    pub warnings: Vec<Diagnostic>,
}

/// `log:`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSettings {
    /// Level, if set in the file.
    pub level: Option<LogLevel>,
    /// Format, if set in the file.
    pub format: Option<LogFormat>,
}

/// `vault:`.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// Address, if set in the file (else `VAULT_ADDR` at run time).
    pub address: Option<String>,
    /// Namespace, if set in the file (else `VAULT_NAMESPACE`).
    pub namespace: Option<String>,
    /// CA bundle, if set in the file (else `VAULT_CACERT`).
    pub ca_cert: Option<PathBuf>,
    /// Skip TLS verification (explicit only).
    pub tls_skip_verify: bool,
    /// Auth method, if set in the file.
    pub auth: Option<VaultAuth>,
    /// Listing depth limit.
    pub max_traversal_depth: u64,
    /// Listing size limit per mount.
    pub max_secrets_per_mount: u64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Concurrent requests while listing.
    pub list_concurrency: usize,
}

/// Vault auth method.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token (else `VAULT_TOKEN`, `~/.vault-token`).
    Token {
        /// The token, if given in the file.
        token: Option<ConfigSecret>,
    },
    /// AppRole.
    AppRole {
        /// Auth mount.
        mount: String,
        /// Role id (else `VAULT_ROLE_ID`).
        role_id: Option<ConfigSecret>,
        /// Secret id (else `VAULT_SECRET_ID`).
        secret_id: Option<ConfigSecret>,
    },
    /// Kubernetes.
    Kubernetes {
        /// Vault role.
        role: String,
        /// Auth mount.
        mount: String,
        /// Service-account token file.
        jwt_path: PathBuf,
    },
    /// JWT/OIDC.
    Jwt {
        /// Vault role (else the mount's `default_role`).
        role: Option<String>,
        /// Auth mount.
        mount: String,
        /// Where the JWT comes from.
        jwt: JwtSource,
    },
}

/// Where a JWT for Vault's `jwt` auth method comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtSource {
    /// A file, read at every login (a projected token is rotated on disk).
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// GitHub Actions' OIDC token service (`ACTIONS_ID_TOKEN_REQUEST_URL` and `_TOKEN`), asked
    /// for a token with this audience (else GitHub's default).
    GitHubActions {
        /// The `aud` claim to ask for.
        audience: Option<String>,
    },
}

/// `aws:`.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Default region from the file (else `AWS_REGION`, `AWS_DEFAULT_REGION`, `us-east-1`).
    pub region: Option<String>,
    /// Endpoint override.
    pub endpoint_url: Option<String>,
    /// Session name for assumed roles.
    pub role_session_name: String,
    /// External id for assumed roles.
    pub external_id: Option<String>,
    /// Execution context.
    pub execution_context: Option<ExecutionContext>,
    /// Control Tower role, when enabled.
    pub control_tower_role: Option<ControlTowerRole>,
}

/// `aws.execution_context`.
#[derive(Debug, Clone)]
pub struct ExecutionContext {
    /// Kind of account.
    pub kind: Option<ExecutionContextType>,
    /// Expected caller account.
    pub account_id: Option<String>,
    /// Role pattern with `{{.AccountID}}`.
    pub custom_role_pattern: Option<String>,
}

/// The Control Tower execution role.
#[derive(Debug, Clone)]
pub struct ControlTowerRole {
    /// Role name.
    pub name: String,
    /// Role path, starting and ending with `/`.
    pub path: String,
}

/// Where a role ARN comes from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSource {
    /// `role_arn` on the target or source.
    Explicit,
    /// `aws.execution_context.custom_role_pattern`.
    CustomPattern,
    /// `aws.control_tower`.
    ControlTower,
    /// The default `OrganizationAccountAccessRole`.
    OrganizationDefault,
}

/// The placeholder account id in role patterns.
pub const ACCOUNT_ID_PLACEHOLDER: &str = "{{.AccountID}}";

impl Pipeline {
    /// Rebuilds the inheritance graph from the targets (after discovery added some).
    pub fn rebuild_graph(&mut self) -> Result<(), crate::graph::GraphError> {
        let imports: BTreeMap<String, Vec<String>> = self
            .targets
            .iter()
            .map(|(name, t)| {
                let parents = t
                    .imports
                    .iter()
                    .filter(|i| i.kind == super::pipeline::ImportKind::Target)
                    .map(|i| i.name.clone())
                    .collect();
                (name.clone(), parents)
            })
            .collect();
        self.graph = TargetGraph::new(&imports)?;
        Ok(())
    }
}

impl AwsSettings {
    /// The role to assume in `account_id`, by the one precedence rule (SPEC §2):
    /// explicit `role_arn` → `custom_role_pattern` → Control Tower role →
    /// `OrganizationAccountAccessRole`; no role for the caller's own account.
    pub fn role_for(
        &self,
        account_id: &str,
        explicit: Option<&str>,
        caller_account: Option<&str>,
    ) -> Option<(String, RoleSource)> {
        if let Some(arn) = explicit {
            return Some((arn.replace(ACCOUNT_ID_PLACEHOLDER, account_id), RoleSource::Explicit));
        }
        if caller_account == Some(account_id) {
            return None;
        }
        if let Some(pattern) = self
            .execution_context
            .as_ref()
            .and_then(|c| c.custom_role_pattern.as_deref())
        {
            return Some((
                pattern.replace(ACCOUNT_ID_PLACEHOLDER, account_id),
                RoleSource::CustomPattern,
            ));
        }
        if let Some(role) = &self.control_tower_role {
            return Some((
                format!("arn:aws:iam::{account_id}:role{}{}", role.path, role.name),
                RoleSource::ControlTower,
            ));
        }
        Some((
            format!("arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole"),
            RoleSource::OrganizationDefault,
        ))
    }
}

/// A local directory named in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLocation {
    /// As written in the file (for messages).
    pub written: String,
    /// Where it is written in the file.
    pub mark: super::diagnostics::Mark,
    /// Resolved against the config's directory.
    pub path: PathBuf,
}

/// A source.
#[derive(Debug, Clone)]
pub enum Source {
    /// Vault KV.
    Vault(VaultLocation),
    /// AWS Secrets Manager.
    Aws(AwsSource),
    /// A directory.
    File(FileLocation),
}

impl Source {
    /// `vault`, `aws` or `file`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Vault(_) => "vault",
            Self::Aws(_) => "aws",
            Self::File(_) => "file",
        }
    }

    /// A short description (`vault: analytics [shared/]`).
    pub fn describe(&self) -> String {
        match self {
            Self::Vault(v) => v.describe(),
            Self::Aws(a) => format!(
                "aws: {}{}{}",
                a.account_id.as_deref().unwrap_or("caller's account"),
                a.region.as_deref().map(|r| format!(" {r}")).unwrap_or_default(),
                a.prefix.as_deref().map(|p| format!(" prefix {p}")).unwrap_or_default()
            ),
            Self::File(f) => format!("file: {}", f.written),
        }
    }
}

/// A Vault KV location (source, target, or merge store).
#[derive(Debug, Clone)]
pub struct VaultLocation {
    /// Where the `vault:` block is written in the file.
    pub mark: super::diagnostics::Mark,
    /// Mount path without surrounding slashes.
    pub mount: String,
    /// Subtrees to read (sources) or the one folder to write into (targets, merge store).
    pub paths: Vec<SecretPath>,
    /// KV version, if configured.
    pub kv_version: Option<u8>,
    /// Address override.
    pub address: Option<String>,
    /// Namespace override.
    pub namespace: Option<String>,
    /// Depth limit override.
    pub max_traversal_depth: Option<u64>,
    /// Size limit override.
    pub max_secrets_per_mount: Option<u64>,
}

impl VaultLocation {
    fn describe(&self) -> String {
        let paths: Vec<String> = self.paths.iter().map(|p| format!("{p}/")).collect();
        if paths.is_empty() {
            format!("vault: {}", self.mount)
        } else {
            format!("vault: {} [{}]", self.mount, paths.join(", "))
        }
    }
}

/// An AWS Secrets Manager source.
#[derive(Debug, Clone)]
pub struct AwsSource {
    /// Account, or the caller's.
    pub account_id: Option<String>,
    /// Region override.
    pub region: Option<String>,
    /// Name prefix filter (removed from paths).
    pub prefix: Option<String>,
    /// Tag filters.
    pub tags: BTreeMap<String, String>,
    /// Role override.
    pub role_arn: Option<String>,
}

/// Revisions kept when `merge_store.history.keep` is not given.
pub const DEFAULT_HISTORY_KEEP: u32 = 50;

/// Most revisions `merge_store.history.keep` may ask for (each run lists every record).
pub const MAX_HISTORY_KEEP: u32 = 10_000;

/// The merge store.
#[derive(Debug, Clone)]
pub enum MergeStoreSpec {
    /// S3.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix (empty or ending in `/`).
        prefix: String,
        /// SSE-KMS key.
        kms_key_id: Option<String>,
        /// Region override.
        region: Option<String>,
        /// Account owning the bucket (else the caller's).
        account_id: Option<String>,
        /// Role override.
        role_arn: Option<String>,
    },
    /// Vault KV.
    Vault(VaultLocation),
    /// A directory.
    File(FileLocation),
}

impl MergeStoreSpec {
    /// A short description.
    pub fn describe(&self) -> String {
        match self {
            Self::S3 { bucket, prefix, .. } => format!("s3: {bucket}/{prefix}"),
            Self::Vault(v) => v.describe(),
            Self::File(f) => format!("file: {}", f.written),
        }
    }
}

/// How an import is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// A source: read it.
    Source,
    /// A target: use its merged result of this run.
    Target,
}

/// One entry of `imports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The imported source or target, by its name in the pipeline.
    pub name: String,
    /// What it names.
    pub kind: ImportKind,
}

/// A static target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name.
    pub name: String,
    /// Imports in merge order.
    pub imports: Vec<Import>,
    /// Where it syncs to.
    pub kind: TargetKind,
    /// Which secrets it manages (`filter:`); outside it nothing is written or deleted.
    pub filter: crate::filter::Filter,
}

/// Joins a target's name and a region in the name of one of its sync units
/// (`Payments@eu-west-1`). Names cannot contain it, so a unit name is never a target's.
pub const UNIT_SEPARATOR: char = '@';

impl Target {
    /// The names of its sync units — what is planned, applied and reported on its own: one per
    /// region of a multi-region AWS target (`T@us-east-1`, `T@eu-west-1`), else the target
    /// itself. Every unit syncs the target's merged result and writes as the target (ownership
    /// does not depend on the regions).
    pub fn units(&self) -> Vec<String> {
        match &self.kind {
            TargetKind::Aws(aws) if !aws.regions.is_empty() => aws
                .regions
                .iter()
                .map(|region| format!("{}{UNIT_SEPARATOR}{region}", self.name))
                .collect(),
            _ => vec![self.name.clone()],
        }
    }
}

/// The target a sync unit belongs to (the unit itself when it is a whole target).
pub fn target_of_unit(unit: &str) -> &str {
    unit.split_once(UNIT_SEPARATOR).map_or(unit, |(target, _)| target)
}

/// The region of a region unit.
pub fn region_of_unit(unit: &str) -> Option<&str> {
    unit.split_once(UNIT_SEPARATOR).map(|(_, region)| region)
}

/// A target's destination.
#[derive(Debug, Clone)]
pub enum TargetKind {
    /// AWS Secrets Manager.
    Aws(AwsTarget),
    /// Vault KV.
    Vault(VaultLocation),
    /// A directory.
    File(FileLocation),
}

impl TargetKind {
    /// `aws`, `vault` or `file`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Aws(_) => "aws",
            Self::Vault(_) => "vault",
            Self::File(_) => "file",
        }
    }

    /// A short description of the destination.
    pub fn describe(&self) -> String {
        self.describe_unit(None)
    }

    /// [`Self::describe`] for one region of a multi-region target.
    pub fn describe_unit(&self, region: Option<&str>) -> String {
        match self {
            Self::Aws(a) => format!(
                "aws: {}{}{}{}",
                a.account_id.as_deref().unwrap_or("caller's account"),
                match region {
                    Some(region) => format!(" {region}"),
                    None if !a.regions.is_empty() => format!(" {}", a.regions.join(", ")),
                    None => a.region.as_deref().map(|r| format!(" {r}")).unwrap_or_default(),
                },
                match a.replica_regions.as_deref() {
                    Some([]) => " (no replicas)".to_owned(),
                    Some(regions) => format!(" (replicas in {})", regions.join(", ")),
                    None => String::new(),
                },
                if a.secret_prefix.is_empty() {
                    String::new()
                } else {
                    format!(" prefix {}", a.secret_prefix)
                }
            ),
            Self::Vault(v) => v.describe(),
            Self::File(f) => format!("file: {}", f.written),
        }
    }
}

/// An AWS Secrets Manager target.
#[derive(Debug, Clone, Default)]
pub struct AwsTarget {
    /// Account, or the caller's own.
    pub account_id: Option<String>,
    /// Region override.
    pub region: Option<String>,
    /// Regions synced one by one (at least two; empty: `region` alone).
    pub regions: Vec<String>,
    /// Secrets Manager replica regions every managed secret must have, exactly (`Some(vec![])`:
    /// none); `None`: replicas are not managed.
    pub replica_regions: Option<Vec<String>>,
    /// Prepended to secret names.
    pub secret_prefix: String,
    /// Role override.
    pub role_arn: Option<String>,
    /// Tags for managed secrets.
    pub tags: BTreeMap<String, String>,
    /// KMS key for the secrets.
    pub kms_key_id: Option<String>,
    /// Description of created secrets.
    pub description: Option<String>,
}

/// A dynamic target group.
#[derive(Debug, Clone)]
pub struct DynamicTarget {
    /// The group's name.
    pub name: String,
    /// Discovery methods.
    pub discovery: Discovery,
    /// Target name template.
    pub name_template: String,
    /// Imports of every discovered target.
    pub imports: Vec<Import>,
    /// Account ids to skip.
    pub exclude: BTreeSet<String>,
    /// Account-name filters.
    pub account_name_patterns: Vec<NamePattern>,
    /// Settings every discovered target gets.
    pub target: AwsTarget,
    /// The filter of every discovered target (unless it borrows a static target's imports).
    pub filter: crate::filter::Filter,
}

/// An account-name pattern.
#[derive(Debug, Clone)]
pub struct NamePattern {
    /// The regular expression account names are matched against (as written).
    pub pattern: String,
    /// Static target whose imports to use.
    pub target: Option<String>,
}

/// Discovery methods of a dynamic target group.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Organizations.
    pub organizations: Option<OrganizationsDiscovery>,
    /// Identity Center.
    pub identity_center: Option<IdentityCenterDiscovery>,
    /// Account list.
    pub accounts_list: Option<AccountsList>,
}

/// Organizations discovery.
#[derive(Debug, Clone)]
pub struct OrganizationsDiscovery {
    /// OU id or path; `None` for the whole organization.
    pub ou: Option<String>,
    /// Include child OUs.
    pub recursive: bool,
    /// Tag filters.
    pub tags: BTreeMap<String, Vec<String>>,
    /// Name normalisation.
    pub name_matching: NameMatching,
}

/// Name normalisation settings.
#[derive(Debug, Clone)]
pub struct NameMatching {
    /// Strategy.
    pub strategy: MatchStrategy,
    /// Normalise punctuation.
    pub normalize_keys: bool,
    /// Case-insensitive.
    pub case_insensitive: bool,
    /// Prefixes to strip.
    pub strip_prefixes: Vec<String>,
    /// Suffixes to strip.
    pub strip_suffixes: Vec<String>,
}

impl NameMatching {
    /// What applies when no `name_matching` block is given: whole-name, case-insensitive.
    pub fn default_for_patterns() -> Self {
        Self {
            strategy: MatchStrategy::Exact,
            normalize_keys: false,
            case_insensitive: true,
            strip_prefixes: Vec::new(),
            strip_suffixes: Vec::new(),
        }
    }
}

/// Identity Center discovery.
#[derive(Debug, Clone)]
pub struct IdentityCenterDiscovery {
    /// Permission set name.
    pub permission_set: Option<String>,
    /// Group display name.
    pub group: Option<String>,
    /// The instance's home region (else the pipeline's region).
    pub region: Option<String>,
}

/// Where an account list lives.
#[derive(Debug, Clone)]
pub enum AccountsList {
    /// An SSM parameter.
    Ssm(String),
    /// A local JSON/YAML file.
    File(FileLocation),
}

/// What happens to a deleted AWS secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Recoverable for this many days.
    RecoveryWindow(u64),
    /// Deleted at once.
    Force,
}

/// `pipeline:` settings with defaults applied.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Targets merged at once.
    pub merge_parallel: usize,
    /// Targets synced at once.
    pub sync_parallel: usize,
    /// Delete owned secrets that are no longer desired.
    pub delete_orphans: bool,
    /// Most deletes per run.
    pub max_deletes: u64,
    /// How AWS deletes.
    pub deletion: Deletion,
    /// Take over unowned same-named secrets.
    pub adopt_existing: bool,
    /// Plan only.
    pub dry_run: bool,
    /// Keep going after a target fails.
    pub continue_on_error: bool,
    /// Run discovery.
    pub discover: bool,
    /// Retries, timeouts, breakers and rate limits.
    pub resilience: ResilienceSettings,
    /// Webhooks called when the run ends.
    pub webhooks: Vec<Webhook>,
}

/// A webhook called when a run ends (`pipeline.notify.webhooks[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The environment variable holding its URL.
    pub url_env: String,
    /// The body it gets.
    pub format: crate::config::raw::WebhookFormat,
    /// When it is called.
    pub on: BTreeSet<crate::config::raw::NotifyOn>,
    /// Time limit of each attempt.
    pub timeout: Duration,
    /// Attempts after a failed one.
    pub retries: u32,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            merge_parallel: 4,
            sync_parallel: 4,
            delete_orphans: false,
            max_deletes: 50,
            deletion: Deletion::RecoveryWindow(7),
            adopt_existing: false,
            dry_run: false,
            continue_on_error: true,
            discover: false,
            resilience: ResilienceSettings::default(),
            webhooks: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pattern: Option<&str>, control_tower: Option<(&str, &str)>) -> AwsSettings {
        AwsSettings {
            execution_context: pattern.map(|p| ExecutionContext {
                kind: None,
                account_id: None,
                custom_role_pattern: Some(p.to_owned()),
            }),
            control_tower_role: control_tower.map(|(name, path)| ControlTowerRole {
                name: name.into(),
                path: path.into(),
            }),
            ..AwsSettings::default()
        }
    }

    #[test]
    fn role_precedence_is_one_rule() {
        let acct = "111111111111";
        let all = settings(Some("arn:aws:iam::{{.AccountID}}:role/Pattern"), Some(("CT", "/ct/")));
        assert_eq!(
            all.role_for(acct, Some("arn:aws:iam::111111111111:role/Explicit"), None),
            Some(("arn:aws:iam::111111111111:role/Explicit".into(), RoleSource::Explicit))
        );
        assert_eq!(
            all.role_for(acct, None, None),
            Some((
                "arn:aws:iam::111111111111:role/Pattern".into(),
                RoleSource::CustomPattern
            ))
        );
        let ct = settings(None, Some(("AWSControlTowerExecution", "/secrets/")));
        assert_eq!(
            ct.role_for(acct, None, None),
            Some((
                "arn:aws:iam::111111111111:role/secrets/AWSControlTowerExecution".into(),
                RoleSource::ControlTower
            ))
        );
        assert_eq!(
            settings(None, None).role_for(acct, None, Some("222222222222")),
            Some((
                "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole".into(),
                RoleSource::OrganizationDefault
            ))
        );
        assert_eq!(
            all.role_for(acct, None, Some(acct)),
            None,
            "no role in the caller's own account"
        );
        assert!(
            all.role_for(acct, Some("arn:aws:iam::111111111111:role/X"), Some(acct))
                .is_some(),
            "an explicit role is always used"
        );
    }
}
