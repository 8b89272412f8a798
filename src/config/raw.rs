//! Serde types that mirror the pipeline file one-to-one; the JSON Schema is generated from them.
//!
//! Nothing here is validated beyond shape: `compile/` turns these into a [`Pipeline`]
//! and checks meaning. Doc comments become the schema's descriptions, so they are written for
//! users. Keys that jbcom/secretsync accepted but never used are accepted here too ([`Ignored`])
//! and produce a warning saying so.
//!
//! [`Pipeline`]: super::Pipeline

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Visitor};

use super::de::{LIST_SHORTHAND_STRUCT, Lenient, NamedMap, OneOrMany, Spanned};

/// A secretsync pipeline file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "secretsync pipeline")]
pub struct RawConfig {
    /// Logging defaults; `--log-level` and `--log-format` override them.
    pub log: Option<Lenient<RawLog>>,
    /// How to reach HashiCorp Vault (for Vault sources, targets and merge stores).
    pub vault: Option<Lenient<RawVault>>,
    /// AWS defaults: region, endpoint, how to assume roles in target accounts.
    pub aws: Option<Lenient<RawAws>>,
    /// Named places secrets are read from.
    pub sources: Option<Lenient<NamedMap<RawSource>>>,
    /// Where each target's merged result is kept between the merge and sync phases (at most one kind).
    pub merge_store: Option<Spanned<Lenient<RawMergeStore>>>,
    /// Named destinations. A list (`Review: [Staging]`) is shorthand for `imports`.
    pub targets: Option<Spanned<Lenient<NamedMap<RawTarget>>>>,
    /// Targets discovered at run time from AWS Organizations, Identity Center or an account list.
    pub dynamic_targets: Option<Lenient<NamedMap<RawDynamicTarget>>>,
    /// Run settings: parallelism, deletes, dry run.
    pub pipeline: Option<Lenient<RawPipelineSettings>>,
}

/// Log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including per-call detail.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Progress of phases and targets.
    Info,
    /// Problems that did not stop the run.
    Warn,
    /// Failures only.
    Error,
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `log:` settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `trace`, `debug`, `info` (default), `warn` or `error`.
    pub level: Option<LogLevel>,
    /// `text` (default) or `json`.
    pub format: Option<LogFormat>,
}

/// `vault:` connection settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    /// Vault address, e.g. `https://vault.example.com:8200`. Default: `VAULT_ADDR`.
    pub address: Option<Spanned<String>>,
    /// Vault Enterprise namespace. Default: `VAULT_NAMESPACE`.
    pub namespace: Option<Spanned<String>>,
    /// PEM file with the CA certificate(s) to trust. Default: `VAULT_CACERT`.
    pub ca_cert: Option<Spanned<String>>,
    /// Disable TLS certificate verification. Never do this in production.
    pub tls_skip_verify: Option<Spanned<bool>>,
    /// How to log in: exactly one of `token`, `approle`, `kubernetes`. Default: `VAULT_TOKEN`,
    /// `~/.vault-token`, or `VAULT_ROLE_ID` + `VAULT_SECRET_ID`.
    pub auth: Option<Spanned<RawVaultAuth>>,
    /// Deepest folder level a recursive listing descends to (default 100).
    pub max_traversal_depth: Option<Spanned<u64>>,
    /// Most secrets one mount may hold before listing stops with an error (default 100000).
    pub max_secrets_per_mount: Option<Spanned<u64>>,
    /// Accepted for compatibility with jbcom/secretsync; must be positive; has no effect.
    pub queue_compaction_threshold: Option<Spanned<u64>>,
    /// Seconds before a Vault request times out (default 30).
    pub timeout_seconds: Option<Spanned<u64>>,
    /// How many Vault requests run at once while listing (default 16).
    pub list_concurrency: Option<Spanned<u64>>,
}

/// A secret value (a token, a secret id); secretsync never prints it. Prefer `${VAR}`.
// Its `Debug` output is redacted, so a config dump cannot leak it.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ConfigSecret(pub String);

impl fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `vault.auth:` — exactly one method.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVaultAuth {
    /// Token auth: `token: { token: "${VAULT_TOKEN}" }`.
    pub token: Option<Spanned<RawTokenAuth>>,
    /// AppRole auth.
    pub approle: Option<Spanned<RawAppRoleAuth>>,
    /// Kubernetes service-account auth.
    pub kubernetes: Option<Spanned<RawKubernetesAuth>>,
    /// JWT/OIDC auth: a JWT from a file, a variable, or GitHub Actions' OIDC token.
    pub jwt: Option<Spanned<RawJwtAuth>>,
}

/// Token auth: `token: { token: "${VAULT_TOKEN}" }`, or the token itself (`token: ${VAULT_TOKEN}`,
/// as jbcom/secretsync's own pipelines write it).
#[derive(Debug, Default)]
pub struct RawTokenAuth {
    /// The token. Default: `VAULT_TOKEN`, then `~/.vault-token`.
    pub token: Option<ConfigSecret>,
}

impl<'de> Deserialize<'de> for RawTokenAuth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The long form.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            token: Option<ConfigSecret>,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawTokenAuth;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping `{ token: … }` or the token")
            }
            fn visit_str<E: serde::de::Error>(self, token: &str) -> Result<RawTokenAuth, E> {
                Ok(RawTokenAuth {
                    token: Some(ConfigSecret(token.to_owned())),
                })
            }
            fn visit_string<E: serde::de::Error>(self, token: String) -> Result<RawTokenAuth, E> {
                Ok(RawTokenAuth {
                    token: Some(ConfigSecret(token)),
                })
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<RawTokenAuth, E> {
                Ok(RawTokenAuth::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawTokenAuth, A::Error> {
                let full = Full::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawTokenAuth { token: full.token })
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for RawTokenAuth {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawTokenAuth".into()
    }
    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Token auth: `{ token: \"${VAULT_TOKEN}\" }`, or the token itself.",
            "oneOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": { "token": { "type": "string", "description": "The token. Default: `VAULT_TOKEN`, then `~/.vault-token`." } }
                }
            ]
        })
    }
}

/// AppRole auth.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAppRoleAuth {
    /// Auth mount path (default `approle`).
    pub mount: Option<Spanned<String>>,
    /// Role id. Default: `VAULT_ROLE_ID`.
    pub role_id: Option<ConfigSecret>,
    /// Secret id. Default: `VAULT_SECRET_ID`.
    pub secret_id: Option<ConfigSecret>,
}

/// Kubernetes auth.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesAuth {
    /// Vault role bound to the service account.
    pub role: Option<Spanned<String>>,
    /// Auth mount path (default `kubernetes`).
    pub mount_path: Option<Spanned<String>>,
    /// Service-account token file (default `/var/run/secrets/kubernetes.io/serviceaccount/token`).
    pub jwt_path: Option<Spanned<String>>,
}

/// JWT/OIDC auth (Vault's `jwt` auth method). The JWT comes from `jwt_path` or `jwt_env`;
/// with neither, from GitHub Actions' OIDC token service (`ACTIONS_ID_TOKEN_REQUEST_URL`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJwtAuth {
    /// Vault role to log in as (default: the auth mount's `default_role`).
    pub role: Option<Spanned<String>>,
    /// Auth mount path (default `jwt`).
    pub mount_path: Option<Spanned<String>>,
    /// File holding the JWT (read again at every login).
    pub jwt_path: Option<Spanned<String>>,
    /// Environment variable holding the JWT (`CI_JOB_JWT_V2`).
    pub jwt_env: Option<Spanned<String>>,
    /// Audience (`aud`) to request for GitHub Actions' OIDC token; must match the Vault role's
    /// `bound_audiences` (default: GitHub's, the repository owner's URL).
    pub audience: Option<Spanned<String>>,
}

/// `aws:` settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// Default region. Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, then `us-east-1`.
    pub region: Option<Spanned<String>>,
    /// Endpoint for every AWS service (moto, LocalStack). Default: `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<Spanned<String>>,
    /// jbcom/secretsync's name for `endpoint_url`: read as it, with a warning.
    pub endpoint: Option<Spanned<String>>,
    /// Session name used when assuming roles (default `secretsync`).
    pub role_session_name: Option<Spanned<String>>,
    /// External id passed when assuming roles.
    pub external_id: Option<Spanned<String>>,
    /// Where secretsync runs from and how it reaches other accounts.
    pub execution_context: Option<Spanned<RawExecutionContext>>,
    /// AWS Control Tower execution role, used to reach accounts without a `role_arn`.
    pub control_tower: Option<Spanned<RawControlTower>>,
    /// Accepted for compatibility with jbcom/secretsync (never used there); has no effect.
    /// Configure discovery under `dynamic_targets.<name>.discovery.organizations`.
    pub organizations: Option<Spanned<Ignored>>,
    /// Accepted for compatibility with jbcom/secretsync; has no effect.
    /// Configure discovery under `dynamic_targets.<name>.discovery.identity_center`.
    pub identity_center: Option<Spanned<Ignored>>,
}

/// Kind of account secretsync runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionContextType {
    /// The organization's management account.
    ManagementAccount,
    /// A delegated administrator account.
    DelegatedAdmin,
    /// A hub account with roles in every member account.
    HubAccount,
}

/// `aws.execution_context:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExecutionContext {
    /// `management_account`, `delegated_admin` or `hub_account`.
    #[serde(rename = "type")]
    pub kind: Option<Spanned<ExecutionContextType>>,
    /// The account secretsync runs in (12 digits); checked against the caller at run time.
    pub account_id: Option<Spanned<String>>,
    /// Role to assume in each account, with `{{.AccountID}}`, e.g.
    /// `arn:aws:iam::{{.AccountID}}:role/SecretsSync`.
    pub custom_role_pattern: Option<Spanned<String>>,
    /// Accepted for compatibility with jbcom/secretsync (informational there); has no effect.
    pub delegation: Option<Spanned<Ignored>>,
}

/// `aws.control_tower:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawControlTower {
    /// Use the Control Tower execution role for accounts without a `role_arn`.
    pub enabled: Option<bool>,
    /// The role's name and path (default `AWSControlTowerExecution` at `/`).
    pub execution_role: Option<Spanned<RawExecutionRole>>,
    /// Accepted for compatibility with jbcom/secretsync (never used there); has no effect.
    pub account_factory: Option<Spanned<Ignored>>,
}

/// `aws.control_tower.execution_role:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExecutionRole {
    /// Role name (default `AWSControlTowerExecution`).
    pub name: Option<Spanned<String>>,
    /// Role path (default `/`).
    pub path: Option<Spanned<String>>,
}

/// A source: exactly one of `vault`, `aws`, `file`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// A Vault KV mount (optionally limited to subtrees).
    pub vault: Option<Spanned<RawVaultSource>>,
    /// AWS Secrets Manager in one account and region.
    pub aws: Option<Spanned<RawAwsSource>>,
    /// A local directory (one file per secret).
    pub file: Option<Spanned<RawFileLocation>>,
    /// Which of the source's secrets it contributes.
    pub filter: Option<Spanned<RawFilter>>,
}

/// `filter:` on a source or target: secrets must match `include` (when given) and not match
/// `exclude`; `exclude` wins.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    /// Only secrets matching every condition here.
    pub include: Option<Spanned<RawConditions>>,
    /// Never secrets matching every condition here.
    pub exclude: Option<Spanned<RawConditions>>,
}

/// Conditions of a filter block: all must hold (AND); each lists patterns, any of which may
/// match (OR).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConditions {
    /// Path globs (`app/*` stays in `app/`, `app/**` goes below it).
    pub paths: Option<Vec<Spanned<String>>>,
    /// Regular expressions over the path (anywhere unless anchored with `^`/`$`).
    pub regex: Option<Vec<Spanned<String>>>,
    /// AWS tags (Secrets Manager sources): key → a value or a list of allowed values.
    pub tags: Option<Spanned<BTreeMap<String, OneOrMany>>>,
    /// KV v2 `custom_metadata` (Vault sources): key → a value or a list of allowed values.
    pub custom_metadata: Option<Spanned<BTreeMap<String, OneOrMany>>>,
}

/// `sources.<name>.vault:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVaultSource {
    /// KV mount path; may have several segments (`teams/analytics`).
    pub mount: Option<Spanned<String>>,
    /// Subtrees of the mount to read (`shared/`, `api-keys/`); default: the whole mount.
    pub paths: Option<Vec<Spanned<String>>>,
    /// KV version (1 or 2); default: detected from the mount.
    pub kv_version: Option<Spanned<u8>>,
    /// Vault address for this source only.
    pub address: Option<Spanned<String>>,
    /// Vault namespace for this source only.
    pub namespace: Option<Spanned<String>>,
    /// Overrides `vault.max_traversal_depth` for this source.
    pub max_traversal_depth: Option<Spanned<u64>>,
    /// Overrides `vault.max_secrets_per_mount` for this source.
    pub max_secrets_per_mount: Option<Spanned<u64>>,
    /// Accepted for compatibility with jbcom/secretsync; must be positive; has no effect.
    pub queue_compaction_threshold: Option<Spanned<u64>>,
}

/// `sources.<name>.aws:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAwsSource {
    /// Account to read (12 digits); default: the caller's account.
    pub account_id: Option<Spanned<String>>,
    /// Region; default: `aws.region`.
    pub region: Option<Spanned<String>>,
    /// Only secrets whose name starts with this; it is removed from the secret path.
    pub prefix: Option<Spanned<String>>,
    /// Only secrets carrying all of these tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// Role to assume; default: the account's role per the role rules.
    pub role_arn: Option<Spanned<String>>,
}

/// A local directory.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFileLocation {
    /// Directory, relative to the pipeline file.
    pub path: Option<Spanned<String>>,
}

/// `merge_store:` — at most one of `s3`, `vault`, `file`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMergeStore {
    /// One S3 object per secret: `{prefix}{target}/{path}.json`.
    pub s3: Option<Spanned<RawS3Store>>,
    /// A Vault KV mount: `{mount}/{prefix}{target}/{path}`.
    pub vault: Option<Spanned<RawVaultMergeStore>>,
    /// A local directory: `{path}/{target}/…`.
    pub file: Option<Spanned<RawFileLocation>>,
    /// Revisions of the merged results kept for `history`, `diff` and `rollback`.
    pub history: Option<Spanned<RawHistory>>,
}

/// `merge_store.history:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHistory {
    /// Revisions kept (default 50; 0 records none). Older ones are pruned, but never a
    /// target's current state.
    pub keep: Option<Spanned<u64>>,
}

/// `merge_store.s3:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawS3Store {
    /// Bucket name.
    pub bucket: Option<Spanned<String>>,
    /// Key prefix, e.g. `merged/`.
    pub prefix: Option<Spanned<String>>,
    /// KMS key for SSE-KMS (id, ARN or `alias/…`).
    pub kms_key_id: Option<Spanned<String>>,
    /// Bucket region; default: `aws.region`.
    pub region: Option<Spanned<String>>,
    /// Account that owns the bucket, when it is not the caller's (its role follows the same
    /// rules as targets').
    pub account_id: Option<Spanned<String>>,
    /// Role to assume for the bucket (overrides the role rules).
    pub role_arn: Option<Spanned<String>>,
}

/// `merge_store.vault:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVaultMergeStore {
    /// KV mount path.
    pub mount: Option<Spanned<String>>,
    /// Path prefix inside the mount.
    pub prefix: Option<Spanned<String>>,
    /// KV version (1 or 2); default: detected from the mount.
    pub kv_version: Option<Spanned<u8>>,
    /// Vault address for the merge store only; default: `vault.address`.
    pub address: Option<Spanned<String>>,
    /// Vault namespace for the merge store only; default: `vault.namespace`.
    pub namespace: Option<Spanned<String>>,
}

/// The keys a full target mapping accepts (kept equal to [`RawTargetFields`]'s fields by a test).
pub const TARGET_FIELDS: &[&str] = &[
    "account_id",
    "imports",
    "region",
    "regions",
    "replica_regions",
    "secret_prefix",
    "role_arn",
    "tags",
    "kms_key_id",
    "description",
    "vault",
    "file",
    "filter",
];

/// A target: a full mapping, or a list (shorthand for `imports`).
#[derive(Debug, Default)]
pub struct RawTarget {
    /// Written as a list.
    pub shorthand: bool,
    /// The keys (only `imports` for the shorthand).
    pub fields: RawTargetFields,
}

/// `targets.<name>:` — the destination kind is AWS Secrets Manager (with `account_id`, or the
/// caller's own account when no kind is given), `vault` or `file`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTargetFields {
    /// AWS account to sync into (12 digits, quoted).
    pub account_id: Option<Spanned<String>>,
    /// Sources and targets to merge, in order; later entries win.
    pub imports: Option<Vec<Spanned<String>>>,
    /// AWS region; default: `aws.region`.
    pub region: Option<Spanned<String>>,
    /// Several AWS regions, each synced on its own (one sync unit per region: its own breaker,
    /// rate limits, plan and report line); instead of `region`.
    pub regions: Option<Spanned<Vec<Spanned<String>>>>,
    /// Secrets Manager replica regions of every secret the target manages (kept by
    /// `ReplicateSecretToRegions` / `RemoveRegionsFromReplication`).
    pub replica_regions: Option<Spanned<Vec<Spanned<String>>>>,
    /// Prepended to every secret name in AWS (`app/` → `app/db/main`).
    pub secret_prefix: Option<Spanned<String>>,
    /// Role to assume in the account (overrides the role rules).
    pub role_arn: Option<Spanned<String>>,
    /// Tags on every secret secretsync manages here (added, kept in sync; `managed-by` and
    /// `secretsync:target` are added by secretsync).
    pub tags: Option<Spanned<BTreeMap<String, String>>>,
    /// KMS key for the secrets (id, ARN or `alias/…`); default: the account's
    /// `aws/secretsmanager` key.
    pub kms_key_id: Option<Spanned<String>>,
    /// Description of secrets secretsync creates (default names secretsync and the target).
    pub description: Option<Spanned<String>>,
    /// A Vault KV location instead of AWS.
    pub vault: Option<Spanned<RawVaultTarget>>,
    /// A local directory instead of AWS.
    pub file: Option<Spanned<RawFileLocation>>,
    /// Which secrets the target manages: outside the filter nothing is written or deleted.
    pub filter: Option<Spanned<RawFilter>>,
}

/// `targets.<name>.vault:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVaultTarget {
    /// KV mount path.
    pub mount: Option<Spanned<String>>,
    /// Folder inside the mount to sync into (default: the mount root).
    pub path: Option<Spanned<String>>,
    /// KV version (1 or 2); default: detected from the mount.
    pub kv_version: Option<Spanned<u8>>,
    /// Vault address for this target only; default: `vault.address`.
    pub address: Option<Spanned<String>>,
    /// Vault namespace for this target only (`teams/payments`); default: `vault.namespace`.
    pub namespace: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTarget;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a target mapping or a list of imports")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawTarget, A::Error> {
                let mut imports = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    imports.push(name);
                }
                Ok(RawTarget {
                    shorthand: true,
                    fields: RawTargetFields {
                        imports: Some(imports),
                        ..RawTargetFields::default()
                    },
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawTarget, A::Error> {
                let fields = RawTargetFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawTarget {
                    shorthand: false,
                    fields,
                })
            }
        }
        deserializer.deserialize_struct(LIST_SHORTHAND_STRUCT, TARGET_FIELDS, V)
    }
}

impl JsonSchema for RawTarget {
    fn schema_name() -> Cow<'static, str> {
        "Target".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let full = generator.subschema_for::<RawTargetFields>();
        schemars::json_schema!({
            "description": "A target: a mapping, or a list of imports (shorthand).",
            "oneOf": [
                { "type": "array", "items": { "type": "string" }, "description": "Shorthand for `imports`." },
                full,
                { "type": "null" }
            ]
        })
    }
}

/// `dynamic_targets.<name>:` — AWS targets discovered at run time.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDynamicTarget {
    /// How to find accounts (one or more methods; results are combined).
    pub discovery: Option<Spanned<RawDiscovery>>,
    /// Name of each discovered target: `{{account_id}}`, `{{account_name}}`, `{{tag:KEY}}`
    /// (default `{{account_name}}`).
    pub name_template: Option<Spanned<String>>,
    /// Sources and targets every discovered target imports.
    pub imports: Option<Vec<Spanned<String>>>,
    /// Account ids never to target.
    pub exclude: Option<Vec<Spanned<String>>>,
    /// Only accounts whose name matches one of these regexes; `target` (optional) names a
    /// static target whose imports such accounts use instead.
    pub account_name_patterns: Option<Vec<Spanned<RawNamePattern>>>,
    /// Region; default: `aws.region`.
    pub region: Option<Spanned<String>>,
    /// Several regions, each synced on its own in every discovered account (see
    /// `targets.<name>.regions`); instead of `region`.
    pub regions: Option<Spanned<Vec<Spanned<String>>>>,
    /// Secrets Manager replica regions of every secret in every discovered account (see
    /// `targets.<name>.replica_regions`).
    pub replica_regions: Option<Spanned<Vec<Spanned<String>>>>,
    /// Prepended to every secret name.
    pub secret_prefix: Option<Spanned<String>>,
    /// Role to assume, with `{{.AccountID}}`.
    pub role_arn: Option<Spanned<String>>,
    /// Tags added to every secret secretsync creates.
    pub tags: Option<Spanned<BTreeMap<String, String>>>,
    /// Which secrets every discovered target manages (see `targets.<name>.filter`); accounts
    /// matched by an `account_name_patterns` entry naming a static target use its filter.
    pub filter: Option<Spanned<RawFilter>>,
}

/// An account-name pattern.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNamePattern {
    /// Regular expression matched against the account name.
    pub pattern: Option<Spanned<String>>,
    /// Static target whose imports matching accounts use.
    pub target: Option<Spanned<String>>,
}

/// `discovery:` methods.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    /// Accounts in an organizational unit, or the whole organization.
    pub organizations: Option<Spanned<RawOrganizationsDiscovery>>,
    /// Accounts where an Identity Center permission set or group is assigned.
    pub identity_center: Option<Spanned<RawIdentityCenterDiscovery>>,
    /// Accounts listed in an SSM parameter or a local file.
    pub accounts_list: Option<Spanned<RawAccountsList>>,
}

/// `discovery.organizations:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOrganizationsDiscovery {
    /// OU id (`ou-abcd-12345678`) or path (`Workloads/Prod`); default: the whole organization.
    pub ou: Option<Spanned<String>>,
    /// Include accounts in child OUs.
    pub recursive: Option<bool>,
    /// Tag filters: key → allowed values (case-insensitive); all keys must match.
    pub tags: Option<BTreeMap<String, OneOrMany>>,
    /// How account names are normalised before matching `account_name_patterns`.
    pub name_matching: Option<Spanned<RawNameMatching>>,
}

/// How names are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchStrategy {
    /// The pattern must match the whole (normalised) name.
    Exact,
    /// The pattern may match anywhere in the name.
    Fuzzy,
    /// Like `fuzzy`, after normalising punctuation.
    Loose,
}

/// `name_matching:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNameMatching {
    /// `exact` (default), `fuzzy` or `loose`.
    pub strategy: Option<Spanned<MatchStrategy>>,
    /// Replace `_` with `-` and drop other punctuation before matching.
    pub normalize_keys: Option<bool>,
    /// Compare case-insensitively (default true).
    pub case_insensitive: Option<bool>,
    /// Prefixes removed from account names before matching.
    pub strip_prefixes: Option<Vec<String>>,
    /// Suffixes removed from account names before matching.
    pub strip_suffixes: Option<Vec<String>>,
}

/// `discovery.identity_center:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityCenterDiscovery {
    /// Permission set name.
    pub permission_set: Option<Spanned<String>>,
    /// Group display name.
    pub group: Option<Spanned<String>>,
    /// The Identity Center instance's home region; default: the pipeline's region.
    pub region: Option<Spanned<String>>,
}

/// `discovery.accounts_list:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAccountsList {
    /// `ssm:/parameter/name` or `file:accounts.json` (JSON or YAML).
    pub source: Option<Spanned<String>>,
}

/// `pipeline:` run settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPipelineSettings {
    /// Merge phase settings.
    pub merge: Option<Spanned<RawMergeSettings>>,
    /// Sync phase settings.
    pub sync: Option<Spanned<RawSyncSettings>>,
    /// Plan only; write nothing (same as `--dry-run`).
    pub dry_run: Option<bool>,
    /// Keep going when a target fails (default true); its dependents are skipped either way.
    pub continue_on_error: Option<bool>,
    /// Run discovery for `dynamic_targets` (same as `--discover`).
    pub discover: Option<bool>,
    /// Retries, timeouts, circuit breakers and rate limits for every call to AWS and Vault.
    pub resilience: Option<Spanned<RawResilience>>,
    /// Who is told how a run went when it ends (webhooks).
    pub notify: Option<Spanned<RawNotify>>,
}

/// `pipeline.notify:` who is told how a run went.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// Webhooks called when a run ends: Slack incoming webhooks, or any receiver of JSON.
    pub webhooks: Option<Vec<Spanned<RawWebhook>>>,
}

/// `pipeline.notify.webhooks[]`: one receiver.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// The environment variable holding the webhook's URL. The URL is a secret (whoever has a
    /// Slack webhook URL can post to the channel): it is never written in the file, logs or
    /// errors.
    pub url_env: Option<Spanned<String>>,
    /// `slack` (an incoming-webhook message) or `json` (the run summary); default `json`.
    pub format: Option<Spanned<WebhookFormat>>,
    /// When to call it: `failure`, `changes`, `always` (default `[failure]`).
    pub on: Option<Vec<Spanned<NotifyOn>>>,
    /// Time limit of each attempt (default `10s`).
    pub timeout: Option<Spanned<String>>,
    /// Attempts after a failed one (default 2; 0 turns retries off).
    pub retries: Option<Spanned<u64>>,
}

/// The body a webhook gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// A Slack incoming-webhook message (`text` and `blocks`; also read by Mattermost and
    /// Rocket.Chat).
    Slack,
    /// The run summary as JSON (docs/observability.md describes it).
    Json,
}

/// When a webhook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// The run failed or was interrupted (exit code 2 or 130).
    Failure,
    /// The run changed secrets (a dry run: planned changes).
    Changes,
    /// Every run.
    Always,
}

/// `pipeline.resilience:` how calls to AWS and Vault survive throttling and outages.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawResilience {
    /// Retries of throttled and transient failures (timeouts, 5xx, connection resets).
    pub retries: Option<Spanned<RawRetries>>,
    /// Time limits.
    pub timeouts: Option<Spanned<RawTimeouts>>,
    /// One breaker per service, account and region (or Vault address).
    pub circuit_breaker: Option<Spanned<RawCircuitBreaker>>,
    /// Client-side request rates, so a large run slows down instead of being throttled.
    pub rate_limits: Option<Spanned<RawRateLimits>>,
}

/// `pipeline.resilience.retries:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    /// Attempts per call, the first included (default 5; 1 turns retries off).
    pub max_attempts: Option<Spanned<u64>>,
    /// Backoff before the first retry, doubled each time, with full jitter (default `200ms`).
    pub base_delay: Option<Spanned<String>>,
    /// Longest backoff between two attempts (default `20s`). A `Retry-After` answer wins.
    pub max_delay: Option<Spanned<String>>,
}

/// `pipeline.resilience.timeouts:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// Longest one attempt of one call may take (default `30s`).
    pub call: Option<Spanned<String>>,
    /// Longest one call may take with all its retries (default `5m`).
    pub deadline: Option<Spanned<String>>,
}

/// `pipeline.resilience.circuit_breaker:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    /// Consecutive failed calls (timeouts, 5xx, resets) that open the breaker (default 5).
    /// Not-found, permission-denied and invalid-request answers never count.
    pub failures: Option<Spanned<u64>>,
    /// How long an open breaker fails calls at once before letting one through (default `30s`).
    pub cool_down: Option<Spanned<String>>,
}

/// `pipeline.resilience.rate_limits:` requests per second.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    /// Secrets Manager writes per account and region (default 50, the AWS quota).
    pub aws_writes_per_second: Option<Spanned<u64>>,
    /// Secrets Manager reads per second of each read API (`ListSecrets`, `BatchGetSecretValue`,
    /// `DescribeSecret`) per account and region (default 100, the AWS quota, which is per API).
    pub aws_reads_per_second: Option<Spanned<u64>>,
    /// Requests per second per Vault address (default 0: no limit, Vault's own rate-limit
    /// quotas apply; set it below them to slow a big run down instead of being refused).
    pub vault_requests_per_second: Option<Spanned<u64>>,
    /// STS requests per second of the calling account (`AssumeRole` into every target account,
    /// `GetCallerIdentity`; default 100). STS limits requests per calling account, and the
    /// limit cannot be raised.
    pub aws_sts_per_second: Option<Spanned<u64>>,
}

/// `pipeline.merge:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMergeSettings {
    /// Targets merged at once (default 4).
    pub parallel: Option<Spanned<u64>>,
}

/// `pipeline.sync:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSyncSettings {
    /// Targets synced at once (default 4).
    pub parallel: Option<Spanned<u64>>,
    /// Delete secrets secretsync created in a target that are no longer desired (default false).
    pub delete_orphans: Option<bool>,
    /// Most deletes in one run; more withholds every delete and fails the run (default 50).
    pub max_deletes: Option<Spanned<u64>>,
    /// Days AWS keeps a deleted secret recoverable, 7–30 (default 7).
    pub recovery_window_days: Option<Spanned<u64>>,
    /// Delete AWS secrets without a recovery window.
    pub force_delete: Option<Spanned<bool>>,
    /// Take over same-named secrets secretsync did not create (default false).
    pub adopt_existing: Option<bool>,
}

/// Any value, accepted and ignored (for keys other tools defined but never used).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(deserializer).map(|_| Ignored)
    }
}

impl JsonSchema for Ignored {
    fn schema_name() -> Cow<'static, str> {
        "Ignored".into()
    }
    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "description": "Accepted for compatibility; has no effect." })
    }
}

/// A hint for a value of the wrong shape at `path`, for shapes other tools accepted.
pub fn shape_hint(path: &str, expected: &str) -> Option<String> {
    let hint = match (path, expected) {
        (p, "a mapping") if p.ends_with(".tags") || p == "targets" || p == "sources" => {
            "write `key: value` pairs, one per line"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

/// A hint for keys of other tools' configs (jbcom/secretsync, its README and docs) that we
/// do not accept, saying what to write instead.
pub fn legacy_key_hint(path: &str, key: &str) -> Option<String> {
    let in_source_vault = path.starts_with("sources.") && path.ends_with(".vault");
    let hint = match key {
        "inherits" => {
            "secretsync inherits through `imports`: list the parent target under `imports` (later entries win)"
        }
        "path" if in_source_vault => {
            "a Vault source takes `mount` (the KV mount) and optional `paths` (subtrees), e.g. `vault: { mount: secret, paths: [app/] }`"
        }
        "execution_role_pattern" => {
            "use `aws.execution_context.custom_role_pattern` with `{{.AccountID}}`, e.g. `arn:aws:iam::{{.AccountID}}:role/SecretsSync`"
        }
        "enabled" if path == "pipeline.merge" || path == "pipeline.sync" => {
            "phases are chosen on the command line with `--merge-only` or `--sync-only`; remove `enabled`"
        }
        "source" if path.is_empty() => "sources go under `sources:`, one entry per name",
        "metrics" if path.is_empty() => {
            "metrics are configured on the command line (`--metrics-port`, `--metrics-textfile`)"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_field_list_matches_the_struct() {
        let schema = schemars::schema_for!(RawTargetFields);
        let mut props: Vec<&str> = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        props.sort_unstable();
        let mut fields = TARGET_FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(props, fields);
    }

    #[test]
    fn secrets_in_config_are_redacted() {
        assert_eq!(format!("{:?}", ConfigSecret("s.abcdef".into())), "<redacted>");
    }
}
