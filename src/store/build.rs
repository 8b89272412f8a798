//! Building stores from the validated config. The only place that maps config kinds to store
//! implementations; stores whose issue has not landed yet fail here with a clear message.
//!
//! Building is async because a Vault store needs a logged-in connection and its mount's KV
//! version before it can be used. [`BuildContext`] keeps one connection per (address,
//! namespace) and one preflight per mount, so ten sources on one Vault log in once — and a
//! Vault that cannot be reached fails once, with the same message for every store on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::aws::{AwsClients, LockSettings, S3MergeStore, SecretsManagerStore, Session, SmMode};
use super::vault::{Limits, Role, VaultConnection, VaultEndpoint, VaultLogin, VaultMergeStore, VaultStore};
use super::{ErrorClass, FileMergeStore, FileStore, MergeStore, Store, WritableStore};
use crate::config::{Deletion, MergeStoreSpec, Pipeline, Source, Target, TargetKind, VaultLocation, VaultSettings};
use crate::env::EnvVars;
use crate::failure::Failure;
use crate::model::SecretPath;
use crate::resilience::Resilience;

/// A Vault mount as found by the preflight: the real mount, its KV version, and the folder inside
/// it when the configured "mount" went deeper than the mount itself (`secret/team-a`).
#[derive(Debug, Clone)]
pub(crate) struct ResolvedMount {
    pub(crate) mount: String,
    pub(crate) version: u8,
    pub(crate) base: Option<String>,
}

type MountKey = (VaultEndpoint, String);

/// Builds stores, sharing Vault connections and mount lookups between them.
pub struct BuildContext {
    pub(crate) vault: VaultSettings,
    aws: AwsClients,
    resilience: Arc<Resilience>,
    lock_scope: Option<String>,
    deletion: Deletion,
    /// `pipeline.sync.delete_orphans` (replicas no longer listed are removed only then).
    delete_orphans: bool,
    pub(crate) env: crate::env::Lookup,
    home: Option<PathBuf>,
    /// One login per Vault address, shared by its connections (one per namespace).
    logins: Mutex<BTreeMap<String, Result<Arc<VaultLogin>, Failure>>>,
    connections: Mutex<BTreeMap<VaultEndpoint, Result<Arc<VaultConnection>, Failure>>>,
    mounts: Mutex<BTreeMap<MountKey, Result<ResolvedMount, Failure>>>,
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext").finish_non_exhaustive()
    }
}

impl BuildContext {
    /// A context for `pipeline` reading the process environment (`VAULT_*`, `AWS_*`, `HOME`).
    pub fn new(pipeline: &Pipeline) -> Self {
        let env = crate::env::process();
        let home = env(EnvVars::HOME).filter(|h| !h.is_empty()).map(PathBuf::from);
        Self::with_env(pipeline, env, home)
    }

    /// A context with a given environment and home directory.
    pub fn with_env(pipeline: &Pipeline, env: crate::env::Lookup, home: Option<PathBuf>) -> Self {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let resilience = Arc::new(Resilience::new(&pipeline.settings.resilience, metrics));
        Self {
            vault: pipeline.vault.clone(),
            aws: AwsClients::new(&pipeline.aws, Arc::clone(&env), Arc::clone(&resilience)),
            resilience,
            lock_scope: None,
            deletion: pipeline.settings.deletion,
            delete_orphans: pipeline.settings.delete_orphans,
            env,
            home,
            logins: Mutex::new(BTreeMap::new()),
            connections: Mutex::new(BTreeMap::new()),
            mounts: Mutex::new(BTreeMap::new()),
        }
    }

    /// For a sharded run (`shard-2-of-4`): merge stores lock that shard only, so the shards of
    /// one run can run side by side.
    #[must_use]
    pub fn with_lock_scope(mut self, scope: Option<String>) -> Self {
        self.lock_scope = scope;
        self
    }

    /// The policy every store call goes through (and the run's metrics, in it).
    pub fn resilience(&self) -> &Arc<Resilience> {
        &self.resilience
    }

    /// The run's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        self.resilience.metrics()
    }

    /// The identities the run's credentials belong to, for revision records: the AWS caller's
    /// ARN when the run used AWS, and each Vault login's token identity. Asked only when a
    /// revision is recorded; a lookup that fails is left out, never an error.
    pub async fn used_identities(&self) -> (Option<String>, Option<String>) {
        let aws = if self.aws.was_used() {
            self.aws.caller().await.ok().map(|c| c.arn)
        } else {
            None
        };
        let logins: Vec<Arc<VaultLogin>> = self
            .logins
            .lock()
            .await
            .values()
            .filter_map(|l| l.as_ref().ok().cloned())
            .collect();
        let mut vault = Vec::new();
        for login in logins {
            if let Some(who) = login.who().await {
                vault.push(who);
            }
        }
        (aws, (!vault.is_empty()).then(|| vault.join("; ")))
    }

    /// The AWS side (credentials, roles, sessions).
    pub fn aws(&self) -> &AwsClients {
        &self.aws
    }

    async fn aws_session(
        &self,
        account: Option<&str>,
        role: Option<&str>,
        region: Option<&str>,
    ) -> Result<Session, Failure> {
        self.aws.session(account, role, region).await.map_err(|e| {
            let hint = (e.class == ErrorClass::Auth).then(|| {
                "give AWS credentials: AWS_PROFILE (after `aws sso login` if it uses SSO), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a role from the environment (GitHub OIDC, ECS, EC2)".to_owned()
            });
            e.failure().with_optional_hint(hint)
        })
    }

    /// The store for a source; `read_labels`: its `filter` names labels (tags, custom
    /// metadata), so a Vault source reads each secret's metadata too.
    pub async fn source(&self, source: &Source, read_labels: bool) -> Result<Arc<dyn Store>, Failure> {
        match source {
            Source::File(f) => Ok(Arc::new(FileStore::source(&f.path, &f.written))),
            Source::Vault(location) => {
                let (conn, mount) = self.vault_parts(location).await?;
                if read_labels && mount.version != 2 {
                    // Without labels an `exclude` on custom metadata would keep everything.
                    return Err(Failure::new(
                        ErrorClass::Invalid,
                        format!(
                            "vault:{}/{}: the source's filter names `custom_metadata`, but the mount is KV version {}, which has none",
                            conn.describe(),
                            mount.mount,
                            mount.version
                        ),
                    )
                    .with_hint("filter this source by `paths` or `regex`, or move it to a KV v2 mount"));
                }
                let limits = self.limits(location);
                Ok(Arc::new(
                    VaultStore::new(
                        conn,
                        &mount.mount,
                        mount.version,
                        mount.base,
                        location.paths.clone(),
                        Role::Source,
                        limits,
                    )
                    .reading_labels(read_labels),
                ))
            }
            Source::Aws(a) => {
                let session = self
                    .aws_session(a.account_id.as_deref(), a.role_arn.as_deref(), a.region.as_deref())
                    .await?;
                Ok(Arc::new(SecretsManagerStore::new(
                    self.aws.secrets_manager(&session),
                    session,
                    a.prefix.as_deref().unwrap_or_default(),
                    SmMode::Source { tags: a.tags.clone() },
                )))
            }
        }
    }

    /// The store for a target.
    pub async fn target(&self, target: &Target, region: Option<&str>) -> Result<Arc<dyn WritableStore>, Failure> {
        match &target.kind {
            TargetKind::File(f) => Ok(Arc::new(FileStore::new(&f.path, &f.written))),
            TargetKind::Vault(location) => {
                let (conn, mount) = self.vault_parts(location).await?;
                let base = join(mount.base.as_deref(), location.paths.first().map(SecretPath::as_str));
                Ok(Arc::new(VaultStore::new(
                    conn,
                    &mount.mount,
                    mount.version,
                    base,
                    Vec::new(),
                    Role::Target,
                    self.limits(location),
                )))
            }
            TargetKind::Aws(t) => {
                let session = self
                    .aws_session(
                        t.account_id.as_deref(),
                        t.role_arn.as_deref(),
                        region.or(t.region.as_deref()),
                    )
                    .await?;
                Ok(Arc::new(SecretsManagerStore::new(
                    self.aws.secrets_manager(&session),
                    session,
                    &t.secret_prefix,
                    SmMode::Target {
                        tags: t.tags.clone(),
                        kms_key_id: t.kms_key_id.clone(),
                        description: t.description.clone(),
                        deletion: self.deletion,
                        replica_regions: t.replica_regions.clone(),
                        remove_replicas: self.delete_orphans,
                        target: target.name.clone(),
                    },
                )))
            }
        }
    }

    /// The merge store.
    pub async fn merge_store(&self, spec: &MergeStoreSpec) -> Result<Arc<dyn MergeStore>, Failure> {
        match spec {
            MergeStoreSpec::File(f) => Ok(Arc::new(FileMergeStore::new(&f.path, &f.written))),
            MergeStoreSpec::Vault(location) => {
                let (conn, mount) = self.vault_parts(location).await?;
                let prefix = join(mount.base.as_deref(), location.paths.first().map(SecretPath::as_str));
                Ok(Arc::new(VaultMergeStore::new(
                    conn,
                    mount.mount,
                    mount.version,
                    prefix,
                    self.limits(location),
                )))
            }
            MergeStoreSpec::S3 {
                bucket,
                prefix,
                kms_key_id,
                region,
                account_id,
                role_arn,
            } => {
                let session = self
                    .aws_session(account_id.as_deref(), role_arn.as_deref(), region.as_deref())
                    .await?;
                Ok(Arc::new(S3MergeStore::new(
                    session,
                    bucket,
                    prefix,
                    kms_key_id.clone(),
                    self.lock_settings(),
                )))
            }
        }
    }

    /// How this run takes and renews an S3 merge store's lock: its shard, who it is (for the
    /// message another run sees) and `SECRETSYNC_LOCK_RENEW_SECONDS`.
    fn lock_settings(&self) -> LockSettings {
        let host = (self.env)(EnvVars::HOSTNAME)
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown host".to_owned());
        let renew_seconds = (self.env)(EnvVars::LOCK_RENEW_SECONDS)
            .and_then(|s| s.parse().ok())
            .unwrap_or(LockSettings::RENEW_SECONDS)
            .max(1);
        LockSettings {
            scope: self.lock_scope.clone(),
            holder: format!("secretsync on {host}, pid {}", std::process::id()),
            renew_every: std::time::Duration::from_secs(renew_seconds),
        }
    }

    fn limits(&self, location: &VaultLocation) -> Limits {
        Limits {
            max_depth: location.max_traversal_depth.unwrap_or(self.vault.max_traversal_depth),
            max_secrets: location
                .max_secrets_per_mount
                .unwrap_or(self.vault.max_secrets_per_mount),
            concurrency: self.vault.list_concurrency,
        }
    }

    /// Where a location connects to.
    pub(crate) fn vault_endpoint(&self, location: &VaultLocation) -> Result<VaultEndpoint, Failure> {
        super::vault::endpoint(
            &self.vault,
            location.address.as_deref(),
            location.namespace.as_deref(),
            &*self.env,
        )
    }

    /// The (shared) connection to `endpoint`, connecting on first use.
    pub(crate) async fn vault_connection(&self, endpoint: &VaultEndpoint) -> Result<Arc<VaultConnection>, Failure> {
        let mut connections = self.connections.lock().await;
        if let Some(known) = connections.get(endpoint) {
            return known.clone();
        }
        let made = match self.vault_login(&endpoint.address).await {
            Ok(login) => VaultConnection::new(endpoint, login, Arc::clone(&self.resilience)).map(Arc::new),
            Err(e) => Err(e),
        };
        connections.insert(endpoint.clone(), made.clone());
        made
    }

    /// The (shared) login to the Vault at `address`, logging in on first use.
    async fn vault_login(&self, address: &str) -> Result<Arc<VaultLogin>, Failure> {
        let mut logins = self.logins.lock().await;
        if let Some(known) = logins.get(address) {
            return known.clone();
        }
        let made = VaultLogin::connect(&self.vault, address, &*self.env, self.home.as_ref()).await;
        logins.insert(address.to_owned(), made.clone());
        made
    }

    /// The connection and resolved mount of a location.
    pub(crate) async fn vault_parts(
        &self,
        location: &VaultLocation,
    ) -> Result<(Arc<VaultConnection>, ResolvedMount), Failure> {
        let endpoint = self.vault_endpoint(location)?;
        let conn = self.vault_connection(&endpoint).await?;
        let mount = self.resolve_mount(&conn, &endpoint, location).await?;
        Ok((conn, mount))
    }

    /// Finds the real mount and KV version of a configured mount path (once per mount).
    async fn resolve_mount(
        &self,
        conn: &VaultConnection,
        endpoint: &VaultEndpoint,
        location: &VaultLocation,
    ) -> Result<ResolvedMount, Failure> {
        if let Some(version) = location.kv_version {
            return Ok(ResolvedMount {
                mount: location.mount.clone(),
                version,
                base: None,
            });
        }
        let key = (endpoint.clone(), location.mount.clone());
        let mut mounts = self.mounts.lock().await;
        if let Some(known) = mounts.get(&key) {
            return known.clone();
        }
        let resolved = preflight(conn, &location.mount).await;
        mounts.insert(key, resolved.clone());
        resolved
    }
}

/// Asks Vault which mount `configured` is in and which KV version it runs.
pub(crate) async fn preflight(conn: &VaultConnection, configured: &str) -> Result<ResolvedMount, Failure> {
    let at = conn.describe();
    let info = conn.mount_of(configured).await.map_err(|e| match e.class {
        ErrorClass::Auth if conn.token_refused() => Failure::new(e.class, format!("cannot use {at}: {}", e.detail))
            .with_hint(crate::store::vault::TOKEN_HINT),
        ErrorClass::Auth => Failure::new(
            e.class,
            format!(
                "{at}: no access to the mount `{configured}`: Vault's mount lookup answered {} — the mount does not exist, or the token's policies ({}) grant nothing under it",
                e.summary(),
                conn.policies()
            ),
        )
        .with_hint(format!(
            "check the name with `vault secrets list`, grant the token a policy on `{configured}/*`, or set `kv_version` to skip the lookup"
        )),
        _ => Failure::new(e.class, format!("{at}: cannot look up the mount `{configured}`: {}", e.summary())),
    })?;
    if info.kind != "kv" && info.kind != "generic" {
        return Err(Failure::new(
            ErrorClass::Invalid,
            format!(
                "{at}: `{configured}` is in a `{}` mount (`{}`), not a KV mount",
                info.kind, info.path
            ),
        )
        .with_hint("point `mount` at a KV secrets engine (`vault secrets list`)"));
    }
    let mount = info.path.trim_matches('/').to_owned();
    let version = match info.options.as_ref().and_then(|o| o.get("version")).map(String::as_str) {
        Some("2") => 2,
        Some("1") | None => 1,
        Some(other) => {
            return Err(Failure::new(
                ErrorClass::Invalid,
                format!("{at}: the mount `{mount}` reports KV version `{other}`, which secretsync does not know"),
            )
            .with_hint("set `kv_version: 1` or `kv_version: 2` on the store"));
        }
    };
    let base = configured
        .trim_matches('/')
        .strip_prefix(&mount)
        .map(|rest| rest.trim_matches('/').to_owned())
        .filter(|rest| !rest.is_empty());
    Ok(ResolvedMount { mount, version, base })
}

/// `a` + `b` as a folder path; `None` when both are empty.
pub(crate) fn join(a: Option<&str>, b: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [a, b]
        .into_iter()
        .flatten()
        .map(|s| s.trim_matches('/'))
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}
