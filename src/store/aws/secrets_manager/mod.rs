//! AWS Secrets Manager in one account and region, as a source or a target.
//!
//! A listing is one paginated `ListSecrets` (100 per page, name-prefix filter, planned
//! deletions included for targets) giving names, tags, KMS key and deletion state; values come
//! from `BatchGetSecretValue`, 20 per call — never one `GetSecretValue` per secret — and
//! `list_and_read` reads a page's values while the next page is listed. A secret
//! name is the prefix plus the path. `SecretString` holding a JSON object is a JSON secret,
//! any other string is text, `SecretBinary` is binary.
//!
//! As a target, only differences are written: `CreateSecret` (value, ownership and user tags,
//! KMS key, description), `PutSecretValue` when the value differs — with a `ClientRequestToken`
//! derived from the name, the current version and the new value, so a retry never makes a
//! second version and A→B→A is never swallowed — `TagResource`/`UntagResource` for tag drift
//! and `UpdateSecret` for a changed KMS key. Only secrets tagged as owned by the target are
//! deleted, with the configured recovery window (or at once with `force_delete`).
//!
//! `listing.rs` lists and reads; `metadata.rs` holds what a listing knows of each secret and
//! keeps tags and KMS key in line; `replicas.rs` keeps replica regions in line.

mod listing;
mod metadata;
mod replicas;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::operation::RequestId as _;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::Tag;
use futures_util::stream::{self, StreamExt};

use super::names::{Payload, name_problem, request_token, value_problem};
use super::{AwsFailure, Session};
use crate::config::Deletion;
use crate::model::{SecretPath, SecretValue};
use crate::resilience::ApiClass;
use crate::store::{
    Capabilities, ErrorClass, Fetched, Listing, Receipt, Store, StoreError, WantedValue, WritableStore,
};
use metadata::Known;

/// Values per `BatchGetSecretValue` call (the API's limit).
const BATCH: usize = 20;
/// `BatchGetSecretValue` calls in flight.
const READ_CONCURRENCY: usize = 4;
/// The service name in metrics and breaker endpoints.
const SERVICE: &str = "secretsmanager";
/// Writes in flight per target: enough to reach the 50 writes/s the rate limiter allows per
/// account at ordinary latencies; each secret is still written by one call sequence.
const WRITE_CONCURRENCY: usize = 8;

/// What the store is used as.
#[derive(Debug, Clone)]
pub enum SmMode {
    /// Read only; only secrets carrying every one of `tags` are read.
    Source {
        /// Tag filters (key → exact value).
        tags: BTreeMap<String, String>,
    },
    /// Synced into.
    Target {
        /// Tags every managed secret carries (besides the ownership tags).
        tags: BTreeMap<String, String>,
        /// KMS key for the secrets.
        kms_key_id: Option<String>,
        /// Description of created secrets.
        description: Option<String>,
        /// How deletes are made.
        deletion: Deletion,
        /// The replica regions every managed secret has, exactly; `None`: not managed.
        replica_regions: Option<Vec<String>>,
        /// Whether replicas no longer listed may be removed (`delete_orphans`: removing a
        /// replica deletes that region's copy at once, with no recovery window).
        remove_replicas: bool,
        /// The target the store is for (whose secrets' replicas it reads).
        target: String,
    },
}

/// Secrets Manager in one account and region, under a name prefix.
pub struct SecretsManagerStore {
    client: Client,
    session: Session,
    prefix: String,
    mode: SmMode,
    known: Mutex<HashMap<SecretPath, Known>>,
    /// A complete listing was read: `known` holds every secret in scope.
    listed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for SecretsManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn is_pending_deletion_error(code: &str, message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    (code == "InvalidRequestException" || code == "ResourceExistsException")
        && (message.contains("deletion") || message.contains("deleted"))
}

impl SecretsManagerStore {
    /// A store using `client` (in `session`'s account and region) for secrets named
    /// `prefix` + path.
    pub(crate) fn new(client: Client, session: Session, prefix: &str, mode: SmMode) -> Self {
        Self {
            client,
            session,
            prefix: prefix.to_owned(),
            mode,
            known: Mutex::new(HashMap::new()),
            listed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<SecretPath, Known>> {
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn name(&self, path: &SecretPath) -> String {
        format!("{}{path}", self.prefix)
    }

    fn is_target(&self) -> bool {
        matches!(self.mode, SmMode::Target { .. })
    }

    fn failed<E>(&self, doing: &str, failure: &AwsFailure<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.session.failed(&self.describe(), doing, failure)
    }

    fn remember(&self, path: &SecretPath, known: Known) {
        self.known().insert(path.clone(), known);
    }

    /// Creates `path`; a name scheduled for deletion is restored and written instead.
    async fn create(
        &self,
        path: &SecretPath,
        payload: &Payload,
        value: &SecretValue,
        owner: &str,
    ) -> Result<Receipt, StoreError> {
        let name = self.name(path);
        let SmMode::Target {
            kms_key_id,
            description,
            ..
        } = &self.mode
        else {
            return Err(StoreError::new(
                ErrorClass::Unsupported,
                format!("{}: a source is read only", self.describe()),
            ));
        };
        let tags = self.desired_tags(owner);
        let description = description
            .clone()
            .unwrap_or_else(|| format!("Managed by secretsync (target {owner}); changes made here are overwritten."));
        let mut request = self
            .client
            .create_secret()
            .name(&name)
            .description(description)
            .client_request_token(request_token(&name, None, payload))
            .set_kms_key_id(kms_key_id.clone())
            .set_add_replica_regions(self.replica_regions_to_add())
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ));
        request = match payload {
            Payload::String(s) => request.secret_string(s),
            Payload::Binary(b) => request.secret_binary(Blob::new(b.clone())),
        };
        let created = self
            .session
            .call(SERVICE, "CreateSecret", ApiClass::Write, || request.clone().send())
            .await;
        match created {
            Ok(out) => {
                self.remember(
                    path,
                    Known {
                        arn: out.arn().map(str::to_owned),
                        version: out.version_id().map(str::to_owned),
                        tags,
                        kms: kms_key_id.clone(),
                        deleted: false,
                        value: Some(Arc::new(value.clone())),
                        primary_region: None,
                        replicas: self.wanted_replicas().map(|wanted| {
                            let status = |_: &String| replicas::Replica {
                                status: "InProgress".to_owned(),
                                message: None,
                            };
                            wanted.iter().map(|r| (r.clone(), status(r))).collect()
                        }),
                    },
                );
                Ok(Receipt::of("CreateSecret", out.request_id()).with_version(out.version_id().map(str::to_owned)))
            }
            Err(e) => {
                let (code, message) = (e.code().unwrap_or_default(), e.message().unwrap_or_default());
                if code != "ResourceExistsException" && !is_pending_deletion_error(code, message) {
                    return Err(self.failed(&format!("create `{name}`"), &e).at(path));
                }
                // Created since the listing, or scheduled for deletion (AWS says
                // InvalidRequestException, moto ResourceExistsException): look before acting.
                let Some(found) = self.describe_secret(&name).await? else {
                    return Err(self.failed(&format!("create `{name}`"), &e).at(path));
                };
                if !found.deleted || !found.owned_by(owner) {
                    return Err(StoreError::new(
                        ErrorClass::Conflict,
                        format!(
                            "{}: `{name}` appeared after secretsync listed the account{}; run again to plan against it",
                            self.describe(),
                            if found.owned_by(owner) {
                                ""
                            } else {
                                " and is not managed by this target"
                            }
                        ),
                    )
                    .at(path));
                }
                self.remember(path, found);
                let restored = self.restore(path).await?;
                Ok(restored.then(self.put(path, value, owner).await?))
            }
        }
    }
}

#[async_trait]
impl Store for SecretsManagerStore {
    fn describe(&self) -> String {
        let mut at = format!("aws:{}", self.session.describe());
        if !self.prefix.is_empty() {
            at.push_str(" prefix ");
            at.push_str(&self.prefix);
        }
        at
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ownership: self.is_target(),
            binary: true,
            hierarchical: false,
            soft_delete: self.is_target(),
            json_only: false,
        }
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        self.list_paged(&mut |_| {}).await
    }

    async fn list_and_read(
        &self,
        wanted: &WantedValue<'_>,
    ) -> Result<(Listing, Result<Fetched, StoreError>), StoreError> {
        let (batches, mut to_read) = tokio::sync::mpsc::unbounded_channel::<Vec<(SecretPath, String)>>();
        let listing = async move {
            let mut pending: Vec<(SecretPath, String)> = Vec::new();
            let listed = self
                .list_paged(&mut |page| {
                    pending.extend(
                        page.iter()
                            .filter(|(path, meta)| !meta.pending_deletion && wanted(path, meta))
                            .map(|(path, _)| (path.clone(), self.name(path))),
                    );
                    while pending.len() >= BATCH {
                        let rest = pending.split_off(BATCH);
                        // The receiver lives until this listing ends, so the send cannot fail.
                        let _ = batches.send(std::mem::replace(&mut pending, rest));
                    }
                })
                .await;
            if listed.is_ok() && !pending.is_empty() {
                let _ = batches.send(pending);
            }
            listed
        };
        let reads = stream::poll_fn(move |cx| to_read.poll_recv(cx))
            .map(|batch| self.read_batch(batch))
            .buffered(READ_CONCURRENCY)
            .collect::<Vec<_>>();
        let (listing, results) = tokio::join!(listing, reads);
        let listing = listing?;
        let mut paths = Vec::new();
        let mut read = HashMap::new();
        for result in results {
            match result {
                Ok(batch) => {
                    for (path, known) in batch {
                        if let Some(known) = known {
                            read.insert(path.clone(), known);
                        }
                        paths.push(path);
                    }
                }
                Err(e) => return Ok((listing, Err(e))),
            }
        }
        paths.sort();
        Ok((listing, Ok(self.absorb(&paths, read))))
    }

    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        let fetched = self.get_many(std::slice::from_ref(path)).await?;
        Ok(fetched.into_iter().next().and_then(|(_, v)| v).map(|v| (*v).clone()))
    }

    async fn get_many(&self, paths: &[SecretPath]) -> Result<Fetched, StoreError> {
        let wanted: Vec<(SecretPath, String)> = {
            let known = self.known();
            paths
                .iter()
                .filter(|p| !known.get(*p).is_some_and(|k| k.deleted))
                .map(|p| (p.clone(), self.name(p)))
                .collect()
        };
        let chunks: Vec<Vec<(SecretPath, String)>> = wanted.chunks(BATCH).map(<[_]>::to_vec).collect();
        let results: Vec<Result<Vec<(SecretPath, Option<Known>)>, StoreError>> = stream::iter(chunks)
            .map(|chunk| self.read_batch(chunk))
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        let mut read: HashMap<SecretPath, Known> = HashMap::new();
        for result in results {
            for (path, known) in result? {
                if let Some(known) = known {
                    read.insert(path, known);
                }
            }
        }
        Ok(self.absorb(paths, read))
    }

    fn check_value(&self, path: &SecretPath, value: &SecretValue) -> Result<(), String> {
        if let Some(problem) = name_problem(&self.name(path)) {
            return Err(problem);
        }
        value_problem(value).map_or(Ok(()), Err)
    }
}

impl SecretsManagerStore {}

#[async_trait]
impl WritableStore for SecretsManagerStore {
    /// Keeps what the listing and reads recorded (ARN, version, tags, value) only for the
    /// secrets the plan writes: at 1,000 accounts × 100 secrets the rest was most of the run's
    /// memory between planning and applying.
    fn planned(&self, writing: &std::collections::BTreeSet<SecretPath>) {
        let mut known = self.known();
        known.retain(|path, _| writing.contains(path));
        known.shrink_to_fit();
    }

    /// The batch is written: what the listing recorded is stale now and no longer needed (the
    /// next plan lists again), so it is dropped — at 1,000 accounts × 100 secrets a first sync
    /// otherwise kept a copy of every value written, with its tags and ARN, until the run
    /// ended. A later `put` without a listing describes the secret first, as before one.
    async fn finish(&self, _owner: &str) -> Result<(), StoreError> {
        let mut known = self.known();
        self.listed.store(false, std::sync::atomic::Ordering::SeqCst);
        *known = HashMap::new();
        Ok(())
    }

    /// Relies on the preceding `list` (or `get_many`): what it recorded of the secret — ARN,
    /// current version (for the request token), tags, KMS key, deletion state and value —
    /// decides between create, restore, value write and metadata alignment, and a completed
    /// listing lets a secret it did not see be created without a `DescribeSecret`. Without a
    /// listing, `put` describes the secret first.
    async fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<Receipt, StoreError> {
        self.check_value(path, value)
            .map_err(|m| StoreError::new(ErrorClass::Invalid, format!("{}: {m}", self.describe())).at(path))?;
        let payload = Payload::of(value);
        let known = self.known().get(path).cloned();
        let known = match known {
            Some(known) => known,
            // Listed, and not there: create it (if it appeared since, CreateSecret says so and
            // `create` looks before acting) — no DescribeSecret per new secret.
            None if self.listed.load(std::sync::atomic::Ordering::SeqCst) => {
                return self.create(path, &payload, value, owner).await;
            }
            None => match self.describe_secret(&self.name(path)).await? {
                // Not listed (a store used without a listing, as in the conformance suite).
                Some(found) => {
                    self.remember(path, found.clone());
                    found
                }
                None => return self.create(path, &payload, value, owner).await,
            },
        };
        let mut receipt = Receipt::default();
        if known.deleted {
            receipt = self.restore(path).await?;
        }
        let name = self.name(path);
        let unchanged = known
            .value
            .as_ref()
            .is_some_and(|v| v.kind() == value.kind() && v.semantic_eq(value));
        if !unchanged {
            let id = known.arn.clone().unwrap_or_else(|| name.clone());
            // The token must name the version being replaced: without it, writing a value the
            // secret held once before would reuse that write's token and change nothing.
            let current = match known.version.clone() {
                Some(version) => Some(version),
                None => self.current_version(&id).await?,
            };
            let mut request = self
                .client
                .put_secret_value()
                .secret_id(&id)
                .client_request_token(request_token(&name, current.as_deref(), &payload));
            request = match &payload {
                Payload::String(s) => request.secret_string(s),
                Payload::Binary(b) => request.secret_binary(Blob::new(b.clone())),
            };
            let out = self
                .session
                .call(SERVICE, "PutSecretValue", ApiClass::Write, || request.clone().send())
                .await
                .map_err(|e| self.failed(&format!("write `{name}`"), &e).at(path))?;
            receipt.push("PutSecretValue", out.request_id());
            receipt.version = out.version_id().map(str::to_owned);
            if let Some(entry) = self.known().get_mut(path) {
                entry.version.clone_from(&receipt.version);
                entry.value = Some(Arc::new(value.clone()));
            }
        }
        Ok(receipt.then(self.align_metadata(path, owner).await?))
    }

    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<Receipt, StoreError> {
        let SmMode::Target { deletion, .. } = &self.mode else {
            return Err(StoreError::new(
                ErrorClass::Unsupported,
                format!("{}: a source is read only", self.describe()),
            ));
        };
        let name = self.name(path);
        let cached = self.known().get(path).cloned();
        let known = match cached {
            Some(known) => Some(known),
            None => self.describe_secret(&name).await?,
        };
        let Some(known) = known else {
            return Ok(Receipt::default());
        };
        if known.deleted {
            return Ok(Receipt::default());
        }
        if !known.owned_by(owner) {
            return Err(StoreError::new(
                ErrorClass::Conflict,
                format!(
                    "{}: refusing to delete `{name}`: it is not managed by target `{owner}`",
                    self.describe()
                ),
            )
            .at(path));
        }
        let id = known.arn.clone().unwrap_or_else(|| name.clone());
        let mut removed = Receipt::default();
        let replicated: Vec<String> = known.replicas.iter().flat_map(|r| r.keys().cloned()).collect();
        if !replicated.is_empty() {
            self.remove_replicas(path, &id, &replicated, &mut removed).await?;
        }
        let mut request = self.client.delete_secret().secret_id(&id);
        request = match deletion {
            Deletion::Force => request.force_delete_without_recovery(true),
            Deletion::RecoveryWindow(days) => request.recovery_window_in_days(i64::try_from(*days).unwrap_or(30)),
        };
        let mut deleted = self
            .session
            .call(SERVICE, "DeleteSecret", ApiClass::Write, || request.clone().send())
            .await;
        // Replicated, though this target does not manage replicas (so its listing did not
        // say): the secret goes with its replicas, as it would in the console.
        if let Err(e) = &deleted
            && known.replicas.is_none()
            && e.code() == Some("InvalidParameterException")
            && e.message().is_some_and(|m| m.contains("replica"))
            && let Some(found) = self.describe_secret(&name).await?
        {
            let replicated: Vec<String> = found.replicas.iter().flat_map(|r| r.keys().cloned()).collect();
            if !replicated.is_empty() {
                self.remove_replicas(path, &id, &replicated, &mut removed).await?;
                deleted = self
                    .session
                    .call(SERVICE, "DeleteSecret", ApiClass::Write, || request.clone().send())
                    .await;
            }
        }
        let receipt = match deleted {
            Ok(out) => removed.then(Receipt::of("DeleteSecret", out.request_id())),
            // An earlier attempt of this very call went through before its answer was lost.
            Err(e) if is_pending_deletion_error(e.code().unwrap_or_default(), e.message().unwrap_or_default()) => {
                removed.then(Receipt::of("DeleteSecret", e.request_id()))
            }
            Err(e) => return Err(self.failed(&format!("delete `{name}`"), &e).at(path)),
        };
        let mut entries = self.known();
        match deletion {
            Deletion::Force => {
                entries.remove(path);
            }
            Deletion::RecoveryWindow(_) => {
                if let Some(entry) = entries.get_mut(path) {
                    entry.deleted = true;
                    entry.value = None;
                }
            }
        }
        Ok(receipt)
    }

    fn write_concurrency(&self) -> usize {
        WRITE_CONCURRENCY
    }

    async fn restore(&self, path: &SecretPath) -> Result<Receipt, StoreError> {
        let name = self.name(path);
        let id = self
            .known()
            .get(path)
            .and_then(|k| k.arn.clone())
            .unwrap_or_else(|| name.clone());
        let out = self
            .session
            .call(SERVICE, "RestoreSecret", ApiClass::Write, || {
                self.client.restore_secret().secret_id(&id).send()
            })
            .await
            .map_err(|e| self.failed(&format!("restore `{name}`"), &e).at(path))?;
        if let Some(entry) = self.known().get_mut(path) {
            entry.deleted = false;
        }
        Ok(Receipt::of("RestoreSecret", out.request_id()))
    }
}
