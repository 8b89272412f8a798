//! Listing: one paginated `ListSecrets` giving names, tags, KMS key and deletion state, and
//! values read 20 at a time with `BatchGetSecretValue` — for `list_and_read`, a page's values
//! while the next page is listed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use super::{Known, SERVICE, SecretsManagerStore, SmMode, is_pending_deletion_error};
use crate::model::{SecretPath, SecretValue};
use crate::resilience::ApiClass;
use crate::store::aws::class_of_code;
use crate::store::{EntryMeta, ErrorClass, Fetched, Listing, Owner, Store, StoreError};

/// Told each `ListSecrets` page's entries as it arrives.
pub(super) type PageListed<'a> = dyn FnMut(&[(SecretPath, EntryMeta)]) + Send + 'a;

impl SecretsManagerStore {
    /// Lists every secret in scope, one `ListSecrets` page at a time, telling `page_listed`
    /// each page's entries as it arrives.
    pub(super) async fn list_paged(&self, page_listed: &mut PageListed<'_>) -> Result<Listing, StoreError> {
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
                    replicas: None,
                    primary_region: entry.primary_region().map(str::to_owned),
                };
                let meta = if self.is_target() && known.primary_region.is_some() {
                    // A replica of a secret in another region: Secrets Manager writes it, never
                    // secretsync (its tags are the primary's, so it would look like ours).
                    listing.notes.push(format!(
                        "`{path}` is a replica of a secret in {}; it is left alone (a desired secret of that name is a conflict)",
                        known.primary_region.as_deref().unwrap_or_default()
                    ));
                    EntryMeta {
                        drift: None,
                        ..EntryMeta::unmanaged()
                    }
                } else if self.is_target() {
                    let owner = known.owner();
                    let drift = match &owner {
                        Owner::Target(t) if !known.deleted => self.drift(&known, t),
                        _ => None,
                    };
                    EntryMeta {
                        owner,
                        pending_deletion: known.deleted,
                        drift,
                        labels: None,
                    }
                } else {
                    // A source's tags are its labels, for `filter: { include: { tags: … } }`.
                    EntryMeta {
                        labels: Some(Arc::new(known.tags.clone())),
                        ..EntryMeta::unmanaged()
                    }
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
        self.read_replicas(&mut found, &mut listing).await?;
        *self.known() = found;
        self.listed.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(listing)
    }

    /// Values just read, recorded (version and ARN for the next write) and returned in the order
    /// of `paths`; a path not in `read` has no value.
    pub(super) fn absorb(&self, paths: &[SecretPath], mut read: HashMap<SecretPath, Known>) -> Fetched {
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
    pub(super) async fn read_batch(
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
