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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use futures_util::stream::{self, StreamExt};

use super::names::{Payload, name_problem, request_token, value_problem};
use super::{AwsFailure, Session, TAGS_TAG, class_of_code};
use crate::config::Deletion;
use crate::model::{SecretPath, SecretValue};
use crate::resilience::ApiClass;
use crate::store::{
    Capabilities, EntryMeta, ErrorClass, Fetched, Listing, OWNER_TAG, OWNER_VALUE, Owner, Store, StoreError,
    TARGET_TAG, WantedValue, WritableStore,
};

/// Told each `ListSecrets` page's entries as it arrives.
type PageListed<'a> = dyn FnMut(&[(SecretPath, EntryMeta)]) + Send + 'a;

/// Values per `BatchGetSecretValue` call (the API's limit).
const BATCH: usize = 20;
/// The service name in metrics and breaker endpoints.
const SERVICE: &str = "secretsmanager";
/// Writes in flight per target: enough to reach the 50 writes/s the rate limiter allows per
/// account at ordinary latencies; each secret is still written by one call sequence.
const WRITE_CONCURRENCY: usize = 8;
/// `BatchGetSecretValue` calls in flight.
const READ_CONCURRENCY: usize = 4;

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
    },
}

/// What the last listing or read said about one secret.
#[derive(Debug, Clone, Default)]
struct Known {
    arn: Option<String>,
    version: Option<String>,
    tags: BTreeMap<String, String>,
    kms: Option<String>,
    deleted: bool,
    value: Option<Arc<SecretValue>>,
}

impl Known {
    fn owner(&self) -> Owner {
        match (self.tags.get(OWNER_TAG).map(String::as_str), self.tags.get(TARGET_TAG)) {
            (Some(OWNER_VALUE), Some(target)) => Owner::Target(target.as_str().into()),
            _ => Owner::Unmanaged,
        }
    }

    fn owned_by(&self, owner: &str) -> bool {
        matches!(self.owner(), Owner::Target(t) if &*t == owner)
    }

    /// Tags on the secret that secretsync set from an earlier configuration and that the
    /// current one no longer names.
    fn stale_tags(&self, desired: &BTreeMap<String, String>) -> Vec<String> {
        self.tags
            .get(TAGS_TAG)
            .map(|keys| {
                keys.split(' ')
                    .filter(|k| !k.is_empty() && !desired.contains_key(*k) && self.tags.contains_key(*k))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
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

/// Whether the configured KMS key `want` (id, ARN or alias) is the key `have` reports.
fn same_kms_key(want: &str, have: Option<&str>) -> bool {
    let Some(have) = have else {
        return want == "alias/aws/secretsmanager";
    };
    have == want
        || have.ends_with(&format!(":{want}"))
        || have.ends_with(&format!("/{want}"))
        || want.ends_with(&format!(":{have}"))
        || want.ends_with(&format!("/{have}"))
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

    /// The tags a secret owned by `owner` carries: the configured ones, ownership, and the
    /// list of configured keys (so a key dropped from the configuration can be removed later
    /// without touching tags someone else added).
    fn desired_tags(&self, owner: &str) -> BTreeMap<String, String> {
        let mut tags = match &self.mode {
            SmMode::Target { tags, .. } => tags.clone(),
            SmMode::Source { .. } => BTreeMap::new(),
        };
        let mut keys = String::new();
        for key in tags.keys() {
            if keys.len() + key.len() + 1 > 256 {
                break;
            }
            if !keys.is_empty() {
                keys.push(' ');
            }
            keys.push_str(key);
        }
        tags.insert(OWNER_TAG.to_owned(), OWNER_VALUE.to_owned());
        tags.insert(TARGET_TAG.to_owned(), owner.to_owned());
        tags.insert(TAGS_TAG.to_owned(), keys);
        tags
    }

    /// What differs besides the value on a secret `owner` owns: tags, KMS key.
    fn drift(&self, known: &Known, owner: &str) -> Option<String> {
        let SmMode::Target { kms_key_id, .. } = &self.mode else {
            return None;
        };
        let desired = self.desired_tags(owner);
        let mut tags: Vec<String> = Vec::new();
        for (key, value) in &desired {
            match known.tags.get(key) {
                None => tags.push(format!("+{key}")),
                Some(v) if v != value => tags.push(format!("~{key}")),
                Some(_) => {}
            }
        }
        for key in known.stale_tags(&desired) {
            tags.push(format!("-{key}"));
        }
        // The bookkeeping tag changes with every configured change; name it only alone.
        if tags.len() > 1 {
            tags.retain(|t| !t.ends_with(TAGS_TAG));
        }
        let mut parts = Vec::new();
        if !tags.is_empty() {
            parts.push(format!("tags differ: {}", tags.join(" ")));
        }
        if let Some(want) = kms_key_id
            && !same_kms_key(want, known.kms.as_deref())
        {
            parts.push(format!(
                "KMS key differs: {} → {want}",
                known.kms.as_deref().unwrap_or("the default key")
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Describes one secret (for a delete or write of a secret the listing did not show).
    async fn describe_secret(&self, name: &str) -> Result<Option<Known>, StoreError> {
        let described = self
            .session
            .call(SERVICE, "DescribeSecret", ApiClass::Read, || {
                self.client.describe_secret().secret_id(name).send()
            })
            .await;
        match described {
            Ok(out) => Ok(Some(Known {
                arn: out.arn().map(str::to_owned),
                version: None,
                tags: out
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
                    .collect(),
                kms: out.kms_key_id().map(str::to_owned),
                deleted: out.deleted_date().is_some(),
                value: None,
            })),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(self.failed(&format!("describe `{name}`"), &e)),
        }
    }

    /// The id of the version labelled `AWSCURRENT`.
    async fn current_version(&self, id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .session
            .call(SERVICE, "DescribeSecret", ApiClass::Read, || {
                self.client.describe_secret().secret_id(id).send()
            })
            .await
            .map_err(|e| self.failed(&format!("describe `{id}`"), &e))?;
        Ok(out.version_ids_to_stages().and_then(|versions| {
            versions
                .iter()
                .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
                .map(|(version, _)| version.clone())
        }))
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
    ) -> Result<(), StoreError> {
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
                    },
                );
                Ok(())
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
                self.restore(path).await?;
                self.put(path, value, owner).await
            }
        }
    }

    /// Brings tags and the KMS key in line for a secret `owner` now owns.
    async fn align_metadata(&self, path: &SecretPath, owner: &str) -> Result<(), StoreError> {
        let Some(known) = self.known().get(path).cloned() else {
            return Ok(());
        };
        let name = self.name(path);
        let id = known.arn.clone().unwrap_or_else(|| name.clone());
        let desired = self.desired_tags(owner);
        let missing: Vec<Tag> = desired
            .iter()
            .filter(|(k, v)| known.tags.get(*k) != Some(*v))
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        if !missing.is_empty() {
            self.session
                .call(SERVICE, "TagResource", ApiClass::Write, || {
                    self.client
                        .tag_resource()
                        .secret_id(&id)
                        .set_tags(Some(missing.clone()))
                        .send()
                })
                .await
                .map_err(|e| self.failed(&format!("tag `{name}`"), &e).at(path))?;
        }
        // Only tags secretsync itself set from an earlier configuration are removed; tags
        // others added (before an adoption, or since) stay.
        let stale = known.stale_tags(&desired);
        let mut tags = known.tags.clone();
        tags.extend(desired.clone());
        if !stale.is_empty() {
            for key in &stale {
                tags.remove(key);
            }
            self.session
                .call(SERVICE, "UntagResource", ApiClass::Write, || {
                    self.client
                        .untag_resource()
                        .secret_id(&id)
                        .set_tag_keys(Some(stale.clone()))
                        .send()
                })
                .await
                .map_err(|e| self.failed(&format!("untag `{name}`"), &e).at(path))?;
        }
        let mut kms = known.kms.clone();
        if let SmMode::Target {
            kms_key_id: Some(want), ..
        } = &self.mode
            && !same_kms_key(want, known.kms.as_deref())
        {
            self.session
                .call(SERVICE, "UpdateSecret", ApiClass::Write, || {
                    self.client.update_secret().secret_id(&id).kms_key_id(want).send()
                })
                .await
                .map_err(|e| self.failed(&format!("change the KMS key of `{name}`"), &e).at(path))?;
            kms = Some(want.clone());
        }
        if let Some(entry) = self.known().get_mut(path) {
            entry.tags = tags;
            entry.kms = kms;
        }
        Ok(())
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
                            .filter(|(_, meta)| !meta.pending_deletion && wanted(meta))
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

impl SecretsManagerStore {
    /// Lists every secret in scope, one `ListSecrets` page at a time, telling `page_listed`
    /// each page's entries as it arrives.
    async fn list_paged(&self, page_listed: &mut PageListed<'_>) -> Result<Listing, StoreError> {
        let mut filters = Vec::new();
        if !self.prefix.is_empty() {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(&self.prefix)
                    .build(),
            );
        }
        let tag_filter = match &self.mode {
            SmMode::Source { tags } => tags.clone(),
            SmMode::Target { .. } => BTreeMap::new(),
        };
        for key in tag_filter.keys() {
            filters.push(Filter::builder().key(FilterNameStringType::TagKey).values(key).build());
        }
        let request = self
            .client
            .list_secrets()
            .max_results(100)
            .include_planned_deletion(self.is_target())
            .set_filters((!filters.is_empty()).then_some(filters));
        let mut found: HashMap<SecretPath, Known> = HashMap::new();
        let mut listing = Listing::default();
        let mut next_token: Option<String> = None;
        loop {
            // Pages are fetched one at a time, each through the resilience layer, so a throttled
            // page is retried on its own instead of restarting the listing.
            let answer = self
                .session
                .call(SERVICE, "ListSecrets", ApiClass::Read, || {
                    request.clone().set_next_token(next_token.clone()).send()
                })
                .await
                .map_err(|e| self.failed("list secrets", &e))?;
            next_token = answer.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
            let mut page = Vec::with_capacity(answer.secret_list().len());
            for entry in answer.secret_list() {
                let Some(name) = entry.name() else { continue };
                // The name filter is a case-insensitive prefix match; keep exact matches only.
                let Some(rel) = name.strip_prefix(&self.prefix) else {
                    continue;
                };
                let tags: BTreeMap<String, String> = entry
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
                    .collect();
                if !tag_filter.iter().all(|(k, v)| tags.get(k) == Some(v)) {
                    continue;
                }
                // A name is used only when it *is* a secret path: `a//b` would be read back as
                // `a/b`, another secret (merging the two) or none (dropping it).
                let parsed = SecretPath::parse(rel).and_then(|path| {
                    if path.as_str() == rel {
                        Ok(path)
                    } else {
                        Err(crate::model::PathError::NotNormal(rel.to_owned(), path.to_string()))
                    }
                });
                let path = match parsed {
                    Ok(path) => path,
                    // A target never wrote such a name, so it cannot be one of its secrets.
                    Err(_) if self.is_target() => {
                        tracing::debug!(name, "not a secretsync path; ignored");
                        continue;
                    }
                    Err(e @ crate::model::PathError::NotNormal(..)) => {
                        return Err(StoreError::new(
                            ErrorClass::Invalid,
                            format!(
                                "{}: the secret `{name}` is not a valid secret path ({e}); rename it in Secrets Manager, or narrow `prefix`/`tags` so it is not read",
                                self.describe()
                            ),
                        ));
                    }
                    Err(e) => {
                        return Err(StoreError::new(
                            ErrorClass::Invalid,
                            format!(
                                "{}: the secret `{name}` does not give a usable path ({e}); set `prefix` to the part before the path (e.g. `/` for names starting with `/`)",
                                self.describe()
                            ),
                        ));
                    }
                };
                let known = Known {
                    arn: entry.arn().map(str::to_owned),
                    version: None,
                    tags,
                    kms: entry.kms_key_id().map(str::to_owned),
                    deleted: entry.deleted_date().is_some(),
                    value: None,
                };
                let meta = if self.is_target() {
                    let owner = known.owner();
                    let drift = match &owner {
                        Owner::Target(t) if !known.deleted => self.drift(&known, t),
                        _ => None,
                    };
                    EntryMeta {
                        owner,
                        pending_deletion: known.deleted,
                        drift,
                    }
                } else {
                    EntryMeta::unmanaged()
                };
                page.push((path.clone(), meta.clone()));
                listing.entries.insert(path.clone(), meta);
                found.insert(path, known);
            }
            page_listed(&page);
            if next_token.is_none() {
                break;
            }
        }
        *self.known() = found;
        self.listed.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(listing)
    }

    /// Values just read, recorded (version and ARN for the next write) and returned in the order
    /// of `paths`; a path not in `read` has no value.
    fn absorb(&self, paths: &[SecretPath], mut read: HashMap<SecretPath, Known>) -> Fetched {
        let mut known = self.known();
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            match read.remove(path) {
                Some(fresh) => {
                    let value = fresh.value.clone();
                    let entry = known.entry(path.clone()).or_default();
                    entry.arn = fresh.arn.or(entry.arn.take());
                    entry.version = fresh.version;
                    entry.value.clone_from(&value);
                    out.push((path.clone(), value));
                }
                None => out.push((path.clone(), None)),
            }
        }
        out
    }

    /// One `BatchGetSecretValue` call for up to 20 secrets.
    async fn read_batch(
        &self,
        chunk: Vec<(SecretPath, String)>,
    ) -> Result<Vec<(SecretPath, Option<Known>)>, StoreError> {
        let names: Vec<String> = chunk.iter().map(|(_, n)| n.clone()).collect();
        let out = self
            .session
            .call(SERVICE, "BatchGetSecretValue", ApiClass::Read, || {
                self.client
                    .batch_get_secret_value()
                    .set_secret_id_list(Some(names.clone()))
                    .send()
            })
            .await
            .map_err(|e| self.failed("read secret values", &e))?;
        let mut by_name: HashMap<&str, Known> = HashMap::new();
        for entry in out.secret_values() {
            let Some(name) = entry.name() else { continue };
            let value = if let Some(binary) = entry.secret_binary() {
                SecretValue::Binary(binary.as_ref().to_vec())
            } else if let Some(text) = entry.secret_string() {
                // An object a reader would change (a key twice, nested too deep) is refused,
                // never read as text or with one of its keys dropped.
                SecretValue::from_string_checked(text.to_owned()).map_err(|(_, problem)| {
                    StoreError::new(
                        ErrorClass::Invalid,
                        format!("{}: the secret `{name}`: {problem}", self.describe()),
                    )
                })?
            } else {
                continue;
            };
            by_name.insert(
                name,
                Known {
                    arn: entry.arn().map(str::to_owned),
                    version: entry.version_id().map(str::to_owned),
                    value: Some(Arc::new(value)),
                    ..Known::default()
                },
            );
        }
        for failure in out.errors() {
            let id = failure.secret_id().unwrap_or_default();
            let code = failure.error_code().unwrap_or_default();
            let message = failure.message().unwrap_or_default();
            if code == "ResourceNotFoundException" || is_pending_deletion_error(code, message) {
                continue;
            }
            let path = chunk
                .iter()
                .find(|(_, n)| n == id || id.ends_with(&format!(":secret:{n}")))
                .map(|(p, _)| p);
            let mut err = StoreError::new(
                class_of_code(code),
                format!("{}: cannot read `{id}`: {code}: {message}", self.describe()),
            );
            if let Some(path) = path {
                err = err.at(path);
            }
            return Err(err);
        }
        Ok(chunk
            .into_iter()
            .map(|(path, name)| {
                let known = by_name.remove(name.as_str());
                (path, known)
            })
            .collect())
    }
}

#[async_trait]
impl WritableStore for SecretsManagerStore {
    async fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<(), StoreError> {
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
        if known.deleted {
            self.restore(path).await?;
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
            if let Some(entry) = self.known().get_mut(path) {
                entry.version = out.version_id().map(str::to_owned);
                entry.value = Some(Arc::new(value.clone()));
            }
        }
        self.align_metadata(path, owner).await
    }

    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<(), StoreError> {
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
        let Some(known) = known else { return Ok(()) };
        if known.deleted {
            return Ok(());
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
        let mut request = self
            .client
            .delete_secret()
            .secret_id(known.arn.as_deref().unwrap_or(&name));
        request = match deletion {
            Deletion::Force => request.force_delete_without_recovery(true),
            Deletion::RecoveryWindow(days) => request.recovery_window_in_days(i64::try_from(*days).unwrap_or(30)),
        };
        let deleted = self
            .session
            .call(SERVICE, "DeleteSecret", ApiClass::Write, || request.clone().send())
            .await;
        match deleted {
            Ok(_) => {}
            // An earlier attempt of this very call went through before its answer was lost.
            Err(e) if is_pending_deletion_error(e.code().unwrap_or_default(), e.message().unwrap_or_default()) => {}
            Err(e) => return Err(self.failed(&format!("delete `{name}`"), &e).at(path)),
        }
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
        Ok(())
    }

    fn write_concurrency(&self) -> usize {
        WRITE_CONCURRENCY
    }

    async fn restore(&self, path: &SecretPath) -> Result<(), StoreError> {
        let name = self.name(path);
        let id = self
            .known()
            .get(path)
            .and_then(|k| k.arn.clone())
            .unwrap_or_else(|| name.clone());
        self.session
            .call(SERVICE, "RestoreSecret", ApiClass::Write, || {
                self.client.restore_secret().secret_id(&id).send()
            })
            .await
            .map_err(|e| self.failed(&format!("restore `{name}`"), &e).at(path))?;
        if let Some(entry) = self.known().get_mut(path) {
            entry.deleted = false;
        }
        Ok(())
    }
}
