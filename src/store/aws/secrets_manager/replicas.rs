//! Replica regions (`replica_regions:`): every secret a target manages is replicated to exactly
//! the configured regions. `ListSecrets` does not say where a secret is replicated, so when a
//! target manages replicas its listing describes each managed secret (`DescribeSecret`, one
//! call per secret, only then); a difference is drift the plan shows and the apply fixes with
//! `ReplicateSecretToRegions` / `RemoveRegionsFromReplication`. A replica that is not in sync
//! (failed, in progress) is reported with AWS's status message.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_secretsmanager::operation::RequestId as _;
use aws_sdk_secretsmanager::types::ReplicaRegionType;
use futures_util::stream::{self, StreamExt};

use super::{Known, SERVICE, SecretsManagerStore, SmMode};
use crate::model::SecretPath;
use crate::resilience::ApiClass;
use crate::store::{Listing, Owner, Receipt, StoreError};

/// `DescribeSecret` calls in flight while a listing reads replica states.
const DESCRIBE_CONCURRENCY: usize = 8;

/// One replica of a secret, as `DescribeSecret` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Replica {
    /// `InSync`, `InProgress` or `Failed`.
    pub(super) status: String,
    /// Why, when it is not in sync.
    pub(super) message: Option<String>,
}

/// Replicas by region.
pub(super) type Replicas = BTreeMap<String, Replica>;

impl SecretsManagerStore {
    /// The replica regions the target manages, if it manages them.
    pub(super) fn wanted_replicas(&self) -> Option<&[String]> {
        match &self.mode {
            SmMode::Target { replica_regions, .. } => replica_regions.as_deref(),
            SmMode::Source { .. } => None,
        }
    }

    /// Replicas not listed any more, of a secret whose replicas are `known`.
    fn unlisted_replicas(&self, known: &Known) -> Vec<String> {
        match (self.wanted_replicas(), known.replicas.as_ref()) {
            (Some(wanted), Some(have)) => have.keys().filter(|r| !wanted.contains(r)).cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Whether replicas no longer listed are removed (only with `delete_orphans`).
    fn removes_replicas(&self) -> bool {
        matches!(
            self.mode,
            SmMode::Target {
                remove_replicas: true,
                ..
            }
        )
    }

    /// Regions to add and to remove for a secret whose replicas are `known`.
    pub(super) fn replica_changes(&self, known: &Known) -> Option<(Vec<String>, Vec<String>)> {
        let (wanted, have) = (self.wanted_replicas()?, known.replicas.as_ref()?);
        let add: Vec<String> = wanted.iter().filter(|r| !have.contains_key(*r)).cloned().collect();
        let remove = if self.removes_replicas() {
            self.unlisted_replicas(known)
        } else {
            Vec::new()
        };
        (!add.is_empty() || !remove.is_empty()).then_some((add, remove))
    }

    /// `replicas differ: +eu-west-1 -ap-south-1`, when they do.
    pub(super) fn replica_drift(&self, known: &Known) -> Option<String> {
        let (add, remove) = self.replica_changes(known)?;
        let regions: Vec<String> = add
            .iter()
            .map(|r| format!("+{r}"))
            .chain(remove.iter().map(|r| format!("-{r}")))
            .collect();
        Some(format!("replicas differ: {}", regions.join(" ")))
    }

    /// Reads the replicas of every secret secretsync manages in `found` (when the target
    /// manages replicas), recomputes their drift in `listing` and notes replicas not in sync.
    pub(super) async fn read_replicas(
        &self,
        found: &mut HashMap<SecretPath, Known>,
        listing: &mut Listing,
    ) -> Result<(), StoreError> {
        if self.wanted_replicas().is_none() {
            return Ok(());
        }
        let SmMode::Target { target, .. } = &self.mode else {
            return Ok(());
        };
        let managed: Vec<(SecretPath, String)> = found
            .iter()
            .filter(|(_, k)| !k.deleted && k.primary_region.is_none() && k.owned_by(target))
            .map(|(path, k)| (path.clone(), k.arn.clone().unwrap_or_else(|| self.name(path))))
            .collect();
        let described: Vec<Result<(SecretPath, Option<Replicas>), StoreError>> = stream::iter(managed)
            .map(|(path, id)| async move { self.describe_replicas(&id).await.map(|r| (path, r)) })
            .buffer_unordered(DESCRIBE_CONCURRENCY)
            .collect()
            .await;
        let mut described = described.into_iter().collect::<Result<Vec<_>, _>>()?;
        described.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, replicas) in described {
            // Deleted since it was listed: the plan creates it again, with its replicas.
            let Some(replicas) = replicas else {
                found.remove(&path);
                listing.entries.remove(&path);
                continue;
            };
            for (region, replica) in replicas.iter().filter(|(_, r)| r.status != "InSync") {
                listing.notes.push(format!(
                    "the replica of `{path}` in {region} is {}{}",
                    replica.status,
                    replica.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
                ));
            }
            let Some(known) = found.get_mut(&path) else { continue };
            known.replicas = Some(replicas);
            let kept = if self.removes_replicas() {
                Vec::new()
            } else {
                self.unlisted_replicas(known)
            };
            for region in kept {
                listing.notes.push(format!(
                    "the replica of `{path}` in {region} is no longer in `replica_regions` but is kept: removing it deletes that copy at once; set `pipeline.sync.delete_orphans: true` to remove it"
                ));
            }
            if let (Owner::Target(owner), Some(meta)) = (known.owner(), listing.entries.get_mut(&path)) {
                meta.drift = self.drift(known, &owner);
            }
        }
        Ok(())
    }

    /// The replicas of `id` (`None`: the secret is gone).
    async fn describe_replicas(&self, id: &str) -> Result<Option<Replicas>, StoreError> {
        let described = self
            .session
            .call(SERVICE, "DescribeSecret", ApiClass::Read, || {
                self.client.describe_secret().secret_id(id).send()
            })
            .await;
        let out = match described {
            Ok(out) => out,
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(self.failed(&format!("read the replicas of `{id}`"), &e)),
        };
        Ok(Some(
            out.replication_status()
                .iter()
                .filter_map(|r| {
                    Some((
                        r.region()?.to_owned(),
                        Replica {
                            status: r
                                .status()
                                .map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned()),
                            message: r.status_message().map(str::to_owned),
                        },
                    ))
                })
                .collect(),
        ))
    }

    /// The configured replica regions, for `CreateSecret`'s `AddReplicaRegions`.
    pub(super) fn replica_regions_to_add(&self) -> Option<Vec<ReplicaRegionType>> {
        let wanted = self.wanted_replicas().filter(|w| !w.is_empty())?;
        Some(
            wanted
                .iter()
                .map(|r| ReplicaRegionType::builder().region(r).build())
                .collect(),
        )
    }

    /// Adds and removes replicas of `name` (ARN or name `id`) so it has the configured ones.
    pub(super) async fn align_replicas(
        &self,
        path: &SecretPath,
        id: &str,
        known: &Known,
        receipt: &mut Receipt,
    ) -> Result<Option<Replicas>, StoreError> {
        let Some((add, remove)) = self.replica_changes(known) else {
            return Ok(None);
        };
        let name = self.name(path);
        let mut replicas = known.replicas.clone().unwrap_or_default();
        if !remove.is_empty() {
            self.remove_replicas(path, id, &remove, receipt).await?;
            replicas.retain(|region, _| !remove.contains(region));
        }
        if !add.is_empty() {
            let regions: Vec<ReplicaRegionType> = add
                .iter()
                .map(|r| ReplicaRegionType::builder().region(r).build())
                .collect();
            let out = self
                .session
                .call(SERVICE, "ReplicateSecretToRegions", ApiClass::Write, || {
                    self.client
                        .replicate_secret_to_regions()
                        .secret_id(id)
                        .set_add_replica_regions(Some(regions.clone()))
                        .send()
                })
                .await
                .map_err(|e| self.failed(&format!("replicate `{name}`"), &e).at(path))?;
            receipt.push("ReplicateSecretToRegions", out.request_id());
            for status in out.replication_status() {
                if let Some(region) = status.region() {
                    replicas.insert(
                        region.to_owned(),
                        Replica {
                            status: status
                                .status()
                                .map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned()),
                            message: status.status_message().map(str::to_owned),
                        },
                    );
                }
            }
        }
        Ok(Some(replicas))
    }

    /// Removes the replicas of `id` in `regions` (also before a delete: AWS refuses to delete a
    /// secret that still has replicas).
    pub(super) async fn remove_replicas(
        &self,
        path: &SecretPath,
        id: &str,
        regions: &[String],
        receipt: &mut Receipt,
    ) -> Result<(), StoreError> {
        let out = self
            .session
            .call(SERVICE, "RemoveRegionsFromReplication", ApiClass::Write, || {
                self.client
                    .remove_regions_from_replication()
                    .secret_id(id)
                    .set_remove_replica_regions(Some(regions.to_vec()))
                    .send()
            })
            .await
            .map_err(|e| {
                self.failed(&format!("remove the replicas of `{}`", self.name(path)), &e)
                    .at(path)
            })?;
        receipt.push("RemoveRegionsFromReplication", out.request_id());
        Ok(())
    }
}
