//! What Secrets Manager knows about a secret besides its value — ARN, ownership and user tags,
//! KMS key, deletion state — as listings record it ([`Known`]), and the calls that read it
//! (`DescribeSecret`) and bring it in line with the target's settings (tags, KMS key).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_secretsmanager::operation::RequestId as _;
use aws_sdk_secretsmanager::types::Tag;

use super::{SERVICE, SecretsManagerStore, SmMode};
use crate::model::{SecretPath, SecretValue};
use crate::resilience::ApiClass;
use crate::store::aws::TAGS_TAG;
use crate::store::{OWNER_TAG, OWNER_VALUE, Owner, Receipt, StoreError, TARGET_TAG};

/// What the last listing or read said about one secret.
#[derive(Debug, Clone, Default)]
pub(super) struct Known {
    pub(super) arn: Option<String>,
    pub(super) version: Option<String>,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) kms: Option<String>,
    pub(super) deleted: bool,
    pub(super) value: Option<Arc<SecretValue>>,
    /// Its replicas, when read (only for targets that manage replicas).
    pub(super) replicas: Option<super::replicas::Replicas>,
    /// Set when this is a replica: the region of the secret it copies.
    pub(super) primary_region: Option<String>,
}

impl Known {
    pub(super) fn owner(&self) -> Owner {
        match (self.tags.get(OWNER_TAG).map(String::as_str), self.tags.get(TARGET_TAG)) {
            (Some(OWNER_VALUE), Some(target)) => Owner::Target(target.as_str().into()),
            _ => Owner::Unmanaged,
        }
    }

    pub(super) fn owned_by(&self, owner: &str) -> bool {
        matches!(self.owner(), Owner::Target(t) if &*t == owner)
    }

    /// Tags on the secret that secretsync set from an earlier configuration and that the
    /// current one no longer names.
    pub(super) fn stale_tags(&self, desired: &BTreeMap<String, String>) -> Vec<String> {
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

/// Whether the configured KMS key `want` (id, ARN or alias) is the key `have` reports.
pub(super) fn same_kms_key(want: &str, have: Option<&str>) -> bool {
    let Some(have) = have else {
        return want == "alias/aws/secretsmanager";
    };
    have == want
        || have.ends_with(&format!(":{want}"))
        || have.ends_with(&format!("/{want}"))
        || want.ends_with(&format!(":{have}"))
        || want.ends_with(&format!("/{have}"))
}

impl SecretsManagerStore {
    /// The tags a secret owned by `owner` carries: the configured ones, ownership, and the
    /// list of configured keys (so a key dropped from the configuration can be removed later
    /// without touching tags someone else added).
    pub(super) fn desired_tags(&self, owner: &str) -> BTreeMap<String, String> {
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
    pub(super) fn drift(&self, known: &Known, owner: &str) -> Option<String> {
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
        parts.extend(self.replica_drift(known));
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
    pub(super) async fn describe_secret(&self, name: &str) -> Result<Option<Known>, StoreError> {
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
                primary_region: out.primary_region().map(str::to_owned),
                replicas: Some(
                    out.replication_status()
                        .iter()
                        .filter_map(|r| {
                            Some((
                                r.region()?.to_owned(),
                                super::replicas::Replica {
                                    status: r
                                        .status()
                                        .map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned()),
                                    message: r.status_message().map(str::to_owned),
                                },
                            ))
                        })
                        .collect(),
                ),
            })),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(self.failed(&format!("describe `{name}`"), &e)),
        }
    }

    /// The id of the version labelled `AWSCURRENT`.
    pub(super) async fn current_version(&self, id: &str) -> Result<Option<String>, StoreError> {
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

    /// Brings tags and the KMS key in line for a secret `owner` now owns.
    pub(super) async fn align_metadata(&self, path: &SecretPath, owner: &str) -> Result<Receipt, StoreError> {
        let mut receipt = Receipt::default();
        let Some(known) = self.known().get(path).cloned() else {
            return Ok(receipt);
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
            let out = self
                .session
                .call(SERVICE, "TagResource", ApiClass::Write, || {
                    self.client
                        .tag_resource()
                        .secret_id(&id)
                        .set_tags(Some(missing.clone()))
                        .send()
                })
                .await
                .map_err(|e| self.failed(&format!("tag `{name}`"), &e).at(path))?;
            receipt.push("TagResource", out.request_id());
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
            let out = self
                .session
                .call(SERVICE, "UntagResource", ApiClass::Write, || {
                    self.client
                        .untag_resource()
                        .secret_id(&id)
                        .set_tag_keys(Some(stale.clone()))
                        .send()
                })
                .await
                .map_err(|e| self.failed(&format!("untag `{name}`"), &e).at(path))?;
            receipt.push("UntagResource", out.request_id());
        }
        let mut kms = known.kms.clone();
        if let SmMode::Target {
            kms_key_id: Some(want), ..
        } = &self.mode
            && !same_kms_key(want, known.kms.as_deref())
        {
            let out = self
                .session
                .call(SERVICE, "UpdateSecret", ApiClass::Write, || {
                    self.client.update_secret().secret_id(&id).kms_key_id(want).send()
                })
                .await
                .map_err(|e| self.failed(&format!("change the KMS key of `{name}`"), &e).at(path))?;
            receipt.push("UpdateSecret (KMS key)", out.request_id());
            kms = Some(want.clone());
        }
        let replicas = self.align_replicas(path, &id, &known, &mut receipt).await?;
        if let Some(entry) = self.known().get_mut(path) {
            entry.tags = tags;
            entry.kms = kms;
            if replicas.is_some() {
                entry.replicas = replicas;
            }
        }
        Ok(receipt)
    }
}
