//! S3 as the merge store: one object per merged secret, `{prefix}{target}/{path}.json`.
//!
//! JSON secrets are stored as JSON; text and binary secrets keep their exact bytes, with their
//! kind in the object metadata (`secretsync-kind`). Objects are encrypted with SSE-KMS when
//! `kms_key_id` is set, else SSE-S3. Writes are conditional — `If-None-Match: *` to create,
//! `If-Match: <etag>` to replace — so two runs cannot silently interleave: the later write fails
//! as a conflict. Bookkeeping lives beside the targets' folders under `{prefix}.secretsync/`
//! (target names never start with a dot): a marker per target whose result is complete, and a
//! run lock that keeps two applies off the same merge store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::Instrument as _;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::{AwsFailure, Session};
use crate::model::{SecretPath, SecretValue, ValueKind};
use crate::resilience::ApiClass;
use crate::store::{
    Capabilities, EntryMeta, ErrorClass, Fetched, Listing, LockInfo, MergeStore, Receipt, Store, StoreError,
    WritableStore,
};

/// The service name in metrics and breaker endpoints.
const SERVICE: &str = "s3";
/// Metadata key holding a stored secret's kind.
const KIND_KEY: &str = "secretsync-kind";
/// Objects read at once.
const READ_CONCURRENCY: usize = 8;
/// A run lock not renewed for this long (by S3's own `LastModified`) belongs to a run that
/// died; another run may take it over. Live runs renew every [`LockSettings::RENEW_SECONDS`].
const LOCK_STALE_SECONDS: u64 = 10 * 60;

/// How this run takes its lock, from the environment (`store::build` makes it).
#[derive(Debug, Clone)]
pub struct LockSettings {
    /// `shard-2-of-4` for a sharded run: its lock covers its own shard only.
    pub scope: Option<String>,
    /// Who this run is, for the message another run sees (`secretsync on HOST, pid N`).
    pub holder: String,
    /// How often the lock is renewed (`SECRETSYNC_LOCK_RENEW_SECONDS`).
    pub renew_every: std::time::Duration,
}

impl LockSettings {
    /// Default renewal interval, in seconds.
    pub const RENEW_SECONDS: u64 = 60;
}

/// S3 settings shared by the merge store and its per-target scopes.
#[derive(Debug)]
struct Bucket {
    client: Client,
    session: Session,
    name: String,
    prefix: String,
    kms_key_id: Option<String>,
    /// Lock scope, holder and renewal.
    lock: LockSettings,
    /// Set when the run lock was taken from this run: every later write refuses.
    lock_lost: std::sync::atomic::AtomicBool,
}

impl Bucket {
    /// An error when this run lost its lock, so it stops writing at once.
    fn still_locked(&self) -> Result<(), StoreError> {
        if self.lock_lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::new(
                ErrorClass::Conflict,
                format!(
                    "s3://{}/{}: the run lock was taken from this run while it was writing; nothing more is written (run again)",
                    self.name, self.prefix
                ),
            ));
        }
        Ok(())
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.name)
    }

    fn error<E>(&self, doing: &str, failure: &AwsFailure<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.session
            .failed(&format!("s3://{}/{}", self.name, self.prefix), doing, failure)
    }

    /// The error code, or one derived from the status for answers without a body (HEAD).
    fn code<E: ProvideErrorMetadata>(failure: &AwsFailure<E>) -> Option<String> {
        failure.code().map(str::to_owned).or_else(|| match failure.status() {
            Some(404) => Some("NotFound".to_owned()),
            Some(412) => Some("PreconditionFailed".to_owned()),
            _ => None,
        })
    }

    /// `(body, etag, metadata)` of `key`, or `None` when it does not exist.
    async fn read(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>, HashMap<String, String>)>, StoreError> {
        let answer = self
            .session
            .call(SERVICE, "GetObject", ApiClass::Read, || {
                self.client.get_object().bucket(&self.name).key(key).send()
            })
            .await;
        match answer {
            Ok(out) => {
                let etag = out.e_tag().map(str::to_owned);
                let metadata = out.metadata().cloned().unwrap_or_default();
                let body = out.body.collect().await.map_err(|e| {
                    StoreError::new(ErrorClass::Transient, format!("cannot read {}: {e}", self.url(key)))
                })?;
                Ok(Some((body.into_bytes().to_vec(), etag, metadata)))
            }
            Err(e) if matches!(Self::code(&e).as_deref(), Some("NoSuchKey" | "NotFound")) => Ok(None),
            Err(e) => Err(self.error(&format!("read `{key}`"), &e)),
        }
    }

    /// Writes `key`: created only if absent (`etag` None) or replaced only if unchanged.
    async fn write(
        &self,
        key: &str,
        body: Vec<u8>,
        kind: &str,
        etag: Option<&str>,
    ) -> Result<Option<String>, AwsFailure<aws_sdk_s3::operation::put_object::PutObjectError>> {
        self.session
            .call(SERVICE, "PutObject", ApiClass::Write, || {
                self.put_request(key, body.clone(), kind, etag).send()
            })
            .await
            .map(|out| out.e_tag().map(str::to_owned))
    }

    fn put_request(
        &self,
        key: &str,
        body: Vec<u8>,
        kind: &str,
        etag: Option<&str>,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(body))
            .content_type(if kind == "json" {
                "application/json"
            } else {
                "application/octet-stream"
            })
            .metadata(KIND_KEY, kind);
        request = match &self.kms_key_id {
            Some(key_id) => request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key_id),
            None => request.server_side_encryption(ServerSideEncryption::Aes256),
        };
        match etag {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
        }
    }

    async fn remove(&self, key: &str) -> Result<(), StoreError> {
        let answer = self
            .session
            .call(SERVICE, "DeleteObject", ApiClass::Write, || {
                self.client.delete_object().bucket(&self.name).key(key).send()
            })
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(e) if matches!(Self::code(&e).as_deref(), Some("NoSuchKey" | "NotFound")) => Ok(()),
            Err(e) => Err(self.error(&format!("delete `{key}`"), &e)),
        }
    }

    /// `{prefix}.secretsync/history/{name}.json` (`name` empty: the folder).
    fn history_key(&self, name: &str) -> String {
        if name.is_empty() {
            format!("{}.secretsync/history/", self.prefix)
        } else {
            format!("{}.secretsync/history/{name}.json", self.prefix)
        }
    }

    fn marker(&self, target: &str) -> String {
        format!("{}.secretsync/committed/{target}", self.prefix)
    }

    /// The run lock: one per merge store, or one per shard for sharded runs (which write
    /// disjoint targets, so shards of one count may run side by side).
    fn lock_key(&self) -> String {
        lock_key_of(&self.prefix, self.lock.scope.as_deref())
    }

    /// Every run lock under the prefix, with its `LastModified` (S3's clock, in seconds).
    async fn lock_objects(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let request = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(format!("{}.secretsync/lock", self.prefix));
        let page = self
            .session
            .call(SERVICE, "ListObjectsV2", ApiClass::Read, || request.clone().send())
            .await
            .map_err(|e| self.error("list run locks", &e))?;
        Ok(page
            .contents()
            .iter()
            .filter_map(|o| {
                let modified = o.last_modified().map_or(0, |t| u64::try_from(t.secs()).unwrap_or(0));
                Some((o.key()?.to_owned(), modified))
            })
            .collect())
    }
}

fn lock_key_of(prefix: &str, scope: Option<&str>) -> String {
    match scope {
        Some(scope) => format!("{prefix}.secretsync/lock-{scope}.json"),
        None => format!("{prefix}.secretsync/lock.json"),
    }
}

/// The shard count a lock key names (`lock-shard-2-of-4.json` → 4), `None` for an unsharded
/// run's lock.
fn shard_count(key: &str) -> Option<&str> {
    key.rsplit_once("-of-").map(|(_, rest)| rest.trim_end_matches(".json"))
}

/// Whether two runs holding locks `a` and `b` may run at once: only shards of one count (each
/// shard writes its own targets); an unsharded run excludes every other run.
fn compatible(a: &str, b: &str) -> bool {
    matches!((shard_count(a), shard_count(b)), (Some(x), Some(y)) if x == y) && a != b
}

/// A lock this run holds: its key, the `ETag` of its last write, and the renewing task.
#[derive(Debug)]
struct HeldLock {
    key: String,
    run: String,
    etag: Arc<Mutex<Option<String>>>,
    renewer: tokio::task::JoinHandle<()>,
}

/// The S3 merge store.
#[derive(Debug)]
pub struct S3MergeStore {
    bucket: Arc<Bucket>,
    /// The lock this run holds, if any.
    held: Mutex<Option<HeldLock>>,
}

impl S3MergeStore {
    /// A merge store in `bucket` under `prefix` (empty or ending in `/`), locked as `lock` says.
    pub(crate) fn new(
        session: Session,
        bucket: &str,
        prefix: &str,
        kms_key_id: Option<String>,
        lock: LockSettings,
    ) -> Self {
        let config = aws_sdk_s3::config::Builder::from(&session.config)
            .force_path_style(session.custom_endpoint)
            .build();
        Self {
            bucket: Arc::new(Bucket {
                client: Client::from_conf(config),
                session,
                name: bucket.to_owned(),
                prefix: prefix.to_owned(),
                kms_key_id,
                lock,
                lock_lost: std::sync::atomic::AtomicBool::new(false),
            }),
            held: Mutex::new(None),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<HeldLock>> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every run lock of this merge store, with whether it is stale, for `lock status`.
    async fn all_locks(&self) -> Result<Vec<LockInfo>, StoreError> {
        let mut out = Vec::new();
        for (key, renewed_at) in self.bucket.lock_objects().await? {
            let Some((body, _, _)) = self.bucket.read(&key).await? else {
                continue;
            };
            let mut info: LockInfo = serde_json::from_slice(&body).unwrap_or_else(|_| LockInfo {
                holder: "unreadable lock".to_owned(),
                ..LockInfo::default()
            });
            info.key = self.bucket.url(&key);
            info.renewed_at = renewed_at;
            info.stale = now().saturating_sub(renewed_at) > LOCK_STALE_SECONDS;
            out.push(info);
        }
        Ok(out)
    }

    /// Removes the lock of run `run` (`lock release --id`); an error when no lock has that id.
    async fn release_run(&self, run: &str) -> Result<LockInfo, StoreError> {
        for (key, _) in self.bucket.lock_objects().await? {
            let Some((body, etag, _)) = self.bucket.read(&key).await? else {
                continue;
            };
            let Ok(mut info) = serde_json::from_slice::<LockInfo>(&body) else {
                continue;
            };
            if info.run != run {
                continue;
            }
            self.remove_if_unchanged(&key, etag.as_deref(), "release the lock")
                .await?;
            info.key = self.bucket.url(&key);
            return Ok(info);
        }
        Err(StoreError::new(
            ErrorClass::NotFound,
            format!(
                "the merge store {} has no run lock with the id `{run}`",
                self.describe()
            ),
        ))
    }

    async fn remove_if_unchanged(&self, key: &str, etag: Option<&str>, doing: &str) -> Result<(), StoreError> {
        let mut delete = self.bucket.client.delete_object().bucket(&self.bucket.name).key(key);
        if let Some(etag) = etag {
            delete = delete.if_match(etag);
        }
        match self
            .bucket
            .session
            .call(SERVICE, "DeleteObject", ApiClass::Write, || delete.clone().send())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(Bucket::code(&e).as_deref(), Some("NoSuchKey" | "NotFound")) => Ok(()),
            Err(e) => Err(self.bucket.error(doing, &e)),
        }
    }

    /// The conflict error naming who holds `key`.
    async fn held_by(&self, key: &str) -> StoreError {
        let info = match self.bucket.read(key).await {
            Ok(Some((body, _, _))) => serde_json::from_slice::<LockInfo>(&body).unwrap_or_default(),
            _ => LockInfo::default(),
        };
        StoreError::new(
            ErrorClass::Conflict,
            format!(
                "the merge store {} is locked by another run ({}, run id `{}`, since {}; {})",
                self.describe(),
                if info.holder.is_empty() {
                    "unknown holder"
                } else {
                    &info.holder
                },
                info.run,
                crate::duration::utc(info.acquired_at),
                self.bucket.url(key),
            ),
        )
        .with_hint(format!(
            "wait for it to finish — `secretsync lock status` shows it, and `secretsync lock release --id {}` breaks it if that run died",
            if info.run.is_empty() { "<id>" } else { &info.run },
        ))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[async_trait]
impl MergeStore for S3MergeStore {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket.name, self.bucket.prefix)
    }

    fn for_target(&self, target: &str) -> Arc<dyn WritableStore> {
        Arc::new(S3Scope {
            bucket: Arc::clone(&self.bucket),
            root: format!("{}{target}/", self.bucket.prefix),
            target: target.to_owned(),
            etags: Mutex::new(HashMap::new()),
        })
    }

    async fn has_result(&self, target: &str) -> Result<bool, StoreError> {
        let key = self.bucket.marker(target);
        let answer = self
            .bucket
            .session
            .call(SERVICE, "HeadObject", ApiClass::Read, || {
                self.bucket
                    .client
                    .head_object()
                    .bucket(&self.bucket.name)
                    .key(&key)
                    .send()
            })
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) if matches!(Bucket::code(&e).as_deref(), Some("NoSuchKey" | "NotFound")) => Ok(false),
            Err(e) => Err(self.bucket.error("read the merge marker", &e)),
        }
    }

    async fn begin(&self, target: &str) -> Result<(), StoreError> {
        self.bucket.still_locked()?;
        self.bucket.remove(&self.bucket.marker(target)).await
    }

    async fn commit(&self, target: &str) -> Result<(), StoreError> {
        self.bucket.still_locked()?;
        let key = self.bucket.marker(target);
        let body = format!("{{\"committed_at\":{}}}", now()).into_bytes();
        self.bucket.remove(&key).await?;
        match self.bucket.write(&key, body, "json", None).await {
            Ok(_) => Ok(()),
            // This run holds the lock, so a marker already there is its own earlier attempt
            // whose reply was lost.
            Err(e) if Bucket::code(&e).as_deref() == Some("PreconditionFailed") => Ok(()),
            Err(e) => Err(self.bucket.error("write the merge marker", &e)),
        }
    }

    fn has_run_lock(&self) -> bool {
        true
    }

    async fn history_names(&self) -> Result<Vec<String>, StoreError> {
        let prefix = self.bucket.history_key("");
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = self
                .bucket
                .client
                .list_objects_v2()
                .bucket(&self.bucket.name)
                .prefix(&prefix)
                .set_continuation_token(token.clone());
            let page = self
                .bucket
                .session
                .call(SERVICE, "ListObjectsV2", ApiClass::Read, || request.clone().send())
                .await
                .map_err(|e| self.bucket.error("list the history", &e))?;
            names.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key()?.strip_prefix(&prefix)?.strip_suffix(".json").map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(names),
            }
        }
    }

    async fn history_read(&self, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let key = self.bucket.history_key(name);
        let Some((body, _, _)) = self.bucket.read(&key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body).map(Some).map_err(|e| {
            StoreError::new(
                ErrorClass::Invalid,
                format!("{} is not a JSON history record: {e}", self.bucket.url(&key)),
            )
        })
    }

    async fn history_write(&self, name: &str, record: &serde_json::Value) -> Result<Option<String>, StoreError> {
        self.bucket.still_locked()?;
        let key = self.bucket.history_key(name);
        let body = serde_json::to_vec(record).unwrap_or_default();
        match self
            .bucket
            .session
            .call(SERVICE, "PutObject", ApiClass::Write, || {
                self.bucket.put_request(&key, body.clone(), "json", None).send()
            })
            .await
        {
            Ok(out) => Ok(out.version_id().map(str::to_owned)),
            // Records are never rewritten: one already there with these bytes is this run's own
            // earlier attempt whose reply was lost; other bytes are another run's record.
            Err(e) if Bucket::code(&e).as_deref() == Some("PreconditionFailed") => {
                match self.bucket.read(&key).await? {
                    Some((held, _, _)) if held == body => Ok(None),
                    _ => Err(StoreError::new(
                        ErrorClass::Conflict,
                        format!(
                            "{}: another run recorded `{name}` at the same time (shards of one run finishing together?)",
                            self.bucket.url(&key)
                        ),
                    )
                    .with_hint("the merged results are written; run again to record a revision for them")),
                }
            }
            Err(e) => Err(self.bucket.error(&format!("write the history record `{name}`"), &e)),
        }
    }

    async fn history_remove(&self, name: &str) -> Result<(), StoreError> {
        self.bucket.still_locked()?;
        self.bucket.remove(&self.bucket.history_key(name)).await
    }

    async fn lock(&self) -> Result<(), StoreError> {
        let key = self.bucket.lock_key();
        let run = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        );
        let body = serde_json::to_vec(&LockInfo {
            holder: self.bucket.lock.holder.clone(),
            run: run.clone(),
            acquired_at: now(),
            ..LockInfo::default()
        })
        .unwrap_or_default();
        let mut etag = None;
        for attempt in 0..2 {
            match self.bucket.write(&key, body.clone(), "json", None).await {
                Ok(written) => {
                    etag = Some(written);
                    break;
                }
                Err(e) if Bucket::code(&e).as_deref() == Some("PreconditionFailed") => {
                    let Some((current, current_etag, _)) = self.bucket.read(&key).await? else {
                        continue;
                    };
                    let lock: LockInfo = serde_json::from_slice(&current).unwrap_or_default();
                    if lock.run == run {
                        // Our own write, whose reply was lost before the retry.
                        etag = Some(current_etag);
                        break;
                    }
                    let renewed = self
                        .bucket
                        .lock_objects()
                        .await?
                        .into_iter()
                        .find(|(k, _)| *k == key)
                        .map_or(0, |(_, at)| at);
                    if attempt > 0 || now().saturating_sub(renewed) <= LOCK_STALE_SECONDS {
                        return Err(self.held_by(&key).await);
                    }
                    tracing::warn!(lock = %self.bucket.url(&key), holder = %lock.holder, "taking over a lock its run stopped renewing");
                    self.remove_if_unchanged(&key, current_etag.as_deref(), "remove a stale lock")
                        .await?;
                }
                Err(e) => return Err(self.bucket.error("take the run lock", &e)),
            }
        }
        let Some(etag) = etag else {
            return Err(StoreError::new(
                ErrorClass::Conflict,
                format!(
                    "the merge store {} lock changed hands while secretsync was taking it; run again",
                    self.describe()
                ),
            ));
        };
        // Runs that may not run beside this one hold other keys (an unsharded run, or shards of
        // another count): with the lock written first and the others read after, of two runs
        // starting together at least one sees the other.
        let objects = match self.bucket.lock_objects().await {
            Ok(objects) => objects,
            Err(err) => {
                // Never leave a lock behind that nobody holds.
                let _ = self
                    .remove_if_unchanged(&key, etag.as_deref(), "give the run lock back")
                    .await;
                return Err(err);
            }
        };
        let s3_now = objects.iter().find(|(k, _)| *k == key).map_or_else(now, |(_, at)| *at);
        if let Some((other, _)) = objects.iter().find(|(other, renewed)| {
            *other != key && !compatible(&key, other) && s3_now.saturating_sub(*renewed) <= LOCK_STALE_SECONDS
        }) {
            let conflict = self.held_by(other).await;
            self.remove_if_unchanged(&key, etag.as_deref(), "give the run lock back")
                .await?;
            return Err(conflict);
        }
        let etag = Arc::new(Mutex::new(etag));
        self.bucket.lock_lost.store(false, std::sync::atomic::Ordering::SeqCst);
        let renewer = {
            let (bucket, key, etag) = (Arc::clone(&self.bucket), key.clone(), Arc::clone(&etag));
            let info = LockInfo {
                holder: self.bucket.lock.holder.clone(),
                run: run.clone(),
                acquired_at: now(),
                ..LockInfo::default()
            };
            #[expect(
                clippy::disallowed_methods,
                reason = "the renewal lives as long as the lock; aborted by unlock"
            )]
            // In the run's span: its renewals and a lost lock belong to the run's trace.
            tokio::spawn(async move { renew(&bucket, &key, info, &etag).await }.instrument(tracing::Span::current()))
        };
        *self.held() = Some(HeldLock {
            key,
            run,
            etag,
            renewer,
        });
        Ok(())
    }

    async fn locks(&self) -> Result<Option<Vec<LockInfo>>, StoreError> {
        self.all_locks().await.map(Some)
    }

    async fn release_lock(&self, run: &str) -> Result<LockInfo, StoreError> {
        self.release_run(run).await
    }

    async fn unlock(&self) -> Result<(), StoreError> {
        let Some(held) = self.held().take() else { return Ok(()) };
        held.renewer.abort();
        // A renewal in flight when aborted may still have landed: wait for the task to end,
        // then release whatever of ours is there.
        let _ = held.renewer.await;
        let lost = self.bucket.lock_lost.load(std::sync::atomic::Ordering::SeqCst);
        if !lost {
            let etag = held
                .etag
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if self
                .remove_if_unchanged(&held.key, etag.as_deref(), "release the run lock")
                .await
                .is_err()
            {
                match self.bucket.read(&held.key).await? {
                    Some((body, current, _))
                        if serde_json::from_slice::<LockInfo>(&body).is_ok_and(|l| l.run == held.run) =>
                    {
                        self.remove_if_unchanged(&held.key, current.as_deref(), "release the run lock")
                            .await?;
                    }
                    _ => {}
                }
            }
        }
        if lost {
            return Err(StoreError::new(
                ErrorClass::Conflict,
                format!(
                    "the run lock {} (run id `{}`) was released or taken by someone else while this run held it; check the merge store and run again",
                    self.bucket.url(&held.key),
                    held.run
                ),
            ));
        }
        Ok(())
    }
}

/// Rewrites the lock every [`LockSettings::renew_every`] (conditional on its last `ETag`; each
/// renewal counts up in the body, so its `ETag` changes), so S3's `LastModified` shows the run is
/// alive. When the lock is gone or someone else's, marks it lost — every later write of the run
/// refuses — and stops.
async fn renew(bucket: &Bucket, key: &str, mut info: LockInfo, etag: &Mutex<Option<String>>) {
    let every = bucket.lock.renew_every;
    let lost = || {
        tracing::error!(lock = %bucket.url(key), "the run lock was taken from this run");
        bucket.lock_lost.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    loop {
        tokio::time::sleep(every).await;
        let current = etag.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let Some(current) = current else { return };
        info.renewals += 1;
        let body = serde_json::to_vec(&info).unwrap_or_default();
        match bucket.write(key, body, "json", Some(&current)).await {
            Ok(next) => {
                tracing::debug!(lock = %bucket.url(key), "run lock renewed");
                *etag.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = next;
            }
            Err(e) if Bucket::code(&e).as_deref() == Some("PreconditionFailed") => {
                // A renewal whose reply was lost leaves our own body with a new ETag.
                if let Ok(Some((held, next, _))) = bucket.read(key).await
                    && serde_json::from_slice::<LockInfo>(&held).is_ok_and(|l| l.run == info.run)
                {
                    *etag.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = next;
                    continue;
                }
                return lost();
            }
            Err(e) if matches!(Bucket::code(&e).as_deref(), Some("NoSuchKey" | "NotFound")) => return lost(),
            Err(e) => {
                tracing::warn!(lock = %bucket.url(key), "renewing the run lock failed: {}", bucket.error("renew the run lock", &e));
            }
        }
    }
}

/// One target's merged result in S3.
#[derive(Debug)]
struct S3Scope {
    bucket: Arc<Bucket>,
    /// `{prefix}{target}/`.
    root: String,
    target: String,
    /// `ETag`s seen, for conditional writes.
    etags: Mutex<HashMap<SecretPath, String>>,
}

impl S3Scope {
    fn key(&self, path: &SecretPath) -> String {
        format!("{}{path}.json", self.root)
    }

    /// A scope is written only on behalf of its own target.
    fn owned_by(&self, path: &SecretPath, owner: &str) -> Result<(), StoreError> {
        if owner == self.target {
            return Ok(());
        }
        Err(StoreError::new(
            ErrorClass::Conflict,
            format!(
                "{}: `{path}` belongs to target `{}`, not `{owner}`",
                self.describe(),
                self.target
            ),
        )
        .at(path))
    }

    fn etags(&self) -> std::sync::MutexGuard<'_, HashMap<SecretPath, String>> {
        self.etags.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn read(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        let key = self.key(path);
        let Some((body, etag, metadata)) = self.bucket.read(&key).await? else {
            return Ok(None);
        };
        if let Some(etag) = etag {
            self.etags().insert(path.clone(), etag);
        }
        let corrupt = |why: &str| {
            StoreError::new(
                ErrorClass::Invalid,
                format!(
                    "{} is not a merged secret secretsync can read ({why}); delete it and merge again",
                    self.bucket.url(&key)
                ),
            )
            .at(path)
        };
        let value = match metadata.get(KIND_KEY).map_or("json", String::as_str) {
            "text" => SecretValue::Text(String::from_utf8(body).map_err(|_| corrupt("text that is not UTF-8"))?),
            "binary" => SecretValue::Binary(body),
            _ => match crate::model::parse_json_object(&body) {
                Ok(Some(map)) => SecretValue::Json(map),
                Ok(None) => return Err(corrupt("not a JSON object")),
                Err(problem) => return Err(corrupt(&problem.to_string())),
            },
        };
        Ok(Some(value))
    }
}

#[async_trait]
impl Store for S3Scope {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket.name, self.root)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ownership: true,
            binary: true,
            hierarchical: false,
            soft_delete: false,
            json_only: false,
        }
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let request = self
            .bucket
            .client
            .list_objects_v2()
            .bucket(&self.bucket.name)
            .prefix(&self.root);
        let mut listing = Listing::default();
        let mut etags = HashMap::new();
        let mut continuation: Option<String> = None;
        loop {
            let page = self
                .bucket
                .session
                .call(SERVICE, "ListObjectsV2", ApiClass::Read, || {
                    request.clone().set_continuation_token(continuation.clone()).send()
                })
                .await
                .map_err(|e| self.bucket.error("list merged secrets", &e))?;
            continuation = page
                .next_continuation_token()
                .filter(|t| page.is_truncated() == Some(true) && !t.is_empty())
                .map(str::to_owned);
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let rel = key.strip_prefix(&self.root).unwrap_or(key);
                let path = rel
                    .strip_suffix(".json")
                    .and_then(|p| SecretPath::parse(p).ok())
                    .ok_or_else(|| {
                        StoreError::new(
                            ErrorClass::Invalid,
                            format!(
                                "{} is in the merge store but is not a merged secret (`<path>.json`); remove it, or give the merge store a prefix of its own",
                                self.bucket.url(key)
                            ),
                        )
                    })?;
                if let Some(etag) = object.e_tag() {
                    etags.insert(path.clone(), etag.to_owned());
                }
                // The scope belongs to its target: everything in it is the target's.
                listing.entries.insert(path, EntryMeta::owned_by(&self.target));
            }
            if continuation.is_none() {
                break;
            }
        }
        *self.etags() = etags;
        Ok(listing)
    }

    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        self.read(path).await
    }

    async fn get_many(&self, paths: &[SecretPath]) -> Result<Fetched, StoreError> {
        crate::store::get_concurrently(paths, READ_CONCURRENCY, |p| async move { self.read(&p).await }).await
    }
}

#[async_trait]
impl WritableStore for S3Scope {
    /// Relies on the preceding `list` (or `get`): the `ETag` it saw makes the write conditional
    /// (`If-Match`; `If-None-Match: *` for an object it did not see), so a concurrent change is
    /// refused instead of overwritten.
    async fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<Receipt, StoreError> {
        self.bucket.still_locked()?;
        self.owned_by(path, owner)?;
        let (body, kind) = match value {
            SecretValue::Json(map) => (serde_json::Value::Object(map.clone()).to_string().into_bytes(), "json"),
            SecretValue::Text(text) => (text.clone().into_bytes(), "text"),
            SecretValue::Binary(bytes) => (bytes.clone(), "binary"),
        };
        debug_assert_eq!(kind == "json", value.kind() == ValueKind::Json);
        let key = self.key(path);
        let etag = self.etags().get(path).cloned();
        match self.bucket.write(&key, body.clone(), kind, etag.as_deref()).await {
            Ok(new_etag) => {
                if let Some(new_etag) = new_etag {
                    self.etags().insert(path.clone(), new_etag);
                }
                Ok(Receipt::default())
            }
            Err(e) if Bucket::code(&e).as_deref() == Some("PreconditionFailed") => {
                // A retry after a lost reply finds its own write: the object already holds
                // exactly these bytes and kind, so the write happened.
                match self.bucket.read(&key).await? {
                    Some((held, new_etag, metadata))
                        if held == body && metadata.get(KIND_KEY).map_or("json", String::as_str) == kind =>
                    {
                        if let Some(new_etag) = new_etag {
                            self.etags().insert(path.clone(), new_etag);
                        }
                        tracing::debug!(key, "a conditional write found its own earlier attempt applied");
                        Ok(Receipt::default())
                    }
                    _ => Err(StoreError::new(
                        ErrorClass::Conflict,
                        format!(
                            "{} changed after secretsync read it (another run?); run again",
                            self.bucket.url(&key)
                        ),
                    )
                    .at(path)),
                }
            }
            Err(e) => Err(self.bucket.error(&format!("write `{key}`"), &e).at(path)),
        }
    }

    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<Receipt, StoreError> {
        self.bucket.still_locked()?;
        self.owned_by(path, owner)?;
        self.bucket.remove(&self.key(path)).await?;
        self.etags().remove(path);
        Ok(Receipt::default())
    }
}
