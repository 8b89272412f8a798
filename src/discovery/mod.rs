//! Discovery: the accounts each `dynamic_targets` group finds at run time, turned into
//! ordinary AWS targets that join the graph before it is levelled.
//!
//! A group's methods (Organizations, Identity Center, an accounts list) are combined and
//! de-duplicated by account id; then, in this order, an account is skipped when it is not
//! ACTIVE, when it is in `exclude`, when its tags do not match, or when its name matches no
//! `account_name_patterns`. Every skipped account is reported with the reason. Each remaining
//! account becomes a target named by `name_template`; two accounts with one name, or a name a
//! static target already has, fail the group. One group failing never stops the others, nor
//! the static targets.

mod accounts_list;
mod cache;
mod identity_center;
mod names;
mod organizations;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::config::{
    AccountsList, AwsTarget, DynamicTarget, Import, ImportKind, NameMatching, Pipeline, Target, TargetKind,
};
use crate::failure::{ErrorClass, Failure};
use crate::resilience::ApiClass;
use crate::store::aws::{AwsClients, AwsFailure, Session};
use aws_sdk_secretsmanager::config::http::HttpResponse;

/// An account as a discovery method found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The 12-digit id.
    pub id: String,
    /// Its name (empty when the method does not know it).
    pub name: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`.
    pub status: String,
    /// Tags (Organizations, or the list's entry).
    pub tags: BTreeMap<String, String>,
    /// How it was found (`below OU Workloads`, `listed in ssm:/accounts`).
    pub found_by: String,
}

/// A target a group produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredTarget {
    /// The target's name.
    pub name: String,
    /// The AWS account id (12 digits) the target syncs to.
    pub account_id: String,
    /// The account's name.
    pub account_name: String,
    /// Why it is included.
    pub reason: String,
    /// What it imports.
    pub imports: Vec<String>,
    /// The static target whose imports (and filter) it uses, when an `account_name_patterns`
    /// entry named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imports_of: Option<String>,
}

/// An account a group found but does not sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedAccount {
    /// The AWS account id (12 digits).
    pub account_id: String,
    /// The account's name.
    pub account_name: String,
    /// Why not.
    pub reason: String,
}

/// What one group found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupResult {
    /// The `dynamic_targets` key.
    pub group: String,
    /// Targets, by name.
    pub targets: Vec<DiscoveredTarget>,
    /// Accounts found but skipped, by id.
    pub skipped: Vec<SkippedAccount>,
    /// Why the group failed (its targets are then not synced).
    pub error: Option<Failure>,
}

/// What discovery found, by group name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovered {
    /// One entry per group.
    pub groups: Vec<GroupResult>,
}

impl Discovered {
    /// The failures of failed groups, for the run report.
    pub fn errors(&self) -> Vec<Failure> {
        self.groups
            .iter()
            .filter_map(|g| {
                g.error
                    .as_ref()
                    .map(|e| e.clone().context(format!("discovery for `{}` failed", g.group)))
            })
            .collect()
    }
}

/// A discovery API call that failed, classified as the stores classify their calls;
/// `request_id` is empty or ` (request id …)`.
fn call_failed<E, R>(
    call: impl std::fmt::Display,
    request_id: &str,
    err: &aws_sdk_sts::error::SdkError<E, R>,
) -> Failure
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    Failure::new(crate::store::aws::classify(err), format!("{call} failed{request_id}")).caused_by(err)
}

/// Next-token bookkeeping of one paginated listing: an absent or empty token ends it, and a
/// token the listing returned before stops it with an error — a service (or proxy) that
/// loops would otherwise be listed forever.
#[derive(Debug, Default)]
pub(crate) struct Pages {
    seen: BTreeSet<String>,
}

impl Pages {
    /// The token to ask for the next page with, if any.
    pub(crate) fn next(&mut self, operation: &str, token: Option<&str>) -> Result<Option<String>, Failure> {
        match token.filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(token) if !self.seen.insert(token.to_owned()) => Err(Failure::new(
                ErrorClass::Fatal,
                format!("{operation} returned a page token it had returned before; stopped listing instead of looping"),
            )
            .with_hint("this is the service's fault (or a proxy's); retry, and report it if it persists")),
            Some(token) => Ok(Some(token.to_owned())),
        }
    }
}

/// Told what discovery is doing, e.g. `accounts: permission set Admin checked in 120 of 1000
/// accounts` (a spinner shows it on a terminal).
pub type Progress = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// One discovery API call through the resilience layer (retried, paced, metered and guarded
/// by a breaker like every store call); `what` names it in the error.
pub(crate) async fn call<T, E, F, Fut>(
    session: &Session,
    operation: (&'static str, &'static str),
    what: impl std::fmt::Display,
    send: F,
) -> Result<T, Failure>
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, aws_sdk_sts::error::SdkError<E, HttpResponse>>>,
{
    let (service, name) = operation;
    session
        .call(service, name, ApiClass::Read, send)
        .await
        .map_err(|failure| {
            let request_id = failure.request_id_note();
            match failure {
                AwsFailure::Sdk(e, _) => call_failed(&what, &request_id, &e),
                AwsFailure::Policy(p) => p.failure().context(format!("{what} failed")),
            }
        })
}

/// What discovery found that cannot be used (an empty list, an unknown OU, clashing names).
pub(crate) fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(ErrorClass::Invalid, message)
}

/// The clients discovery uses, made once per run, and the session their calls go through.
#[derive(Clone)]
pub(crate) struct Clients {
    session: Session,
    /// The session of Identity Center's calls: in its home region, which may differ from the
    /// pipeline's (Organizations and SSM calls stay in `session`).
    identity_center_session: Session,
    /// Told what discovery is doing (a spinner on a terminal).
    progress: Progress,
    organizations: aws_sdk_organizations::Client,
    sso: aws_sdk_ssoadmin::Client,
    identity_store: aws_sdk_identitystore::Client,
    ssm: aws_sdk_ssm::Client,
}

/// Where discovery results may be saved and reused.
#[derive(Debug, Clone)]
pub struct CacheSettings<'a> {
    /// The cache file.
    pub path: &'a std::path::Path,
    /// How long a result stays fresh.
    pub ttl: std::time::Duration,
    /// The pipeline file's bytes (results are never reused for another file).
    pub config: &'a [u8],
}

/// Runs every group's discovery, or reuses the accounts a fresh cache holds. Cached accounts
/// go through exactly the selection fresh ones do (ids checked, names rendered by the
/// template, imports taken from the pipeline), so an edited cache cannot add a target the
/// pipeline would not make.
pub async fn discover_cached(
    pipeline: &Pipeline,
    aws: &AwsClients,
    cache: Option<CacheSettings<'_>>,
    progress: Progress,
) -> Discovered {
    let Some(cache) = cache else {
        return select_all(pipeline, &collect_all(pipeline, aws, progress).await);
    };
    let hash = cache::config_hash(cache.config);
    if let Some(found) = cache::load(cache.path, &hash, cache.ttl, pipeline.dynamic_targets.keys()) {
        return select_all(pipeline, &found);
    }
    let found = collect_all(pipeline, aws, progress).await;
    if let Err(e) = cache::save(cache.path, &hash, &found) {
        tracing::warn!("{e}");
    }
    select_all(pipeline, &found)
}

/// Whether any group needs AWS (an accounts list in a file does not).
fn needs_aws(pipeline: &Pipeline) -> bool {
    pipeline.dynamic_targets.values().any(|g| {
        g.discovery.organizations.is_some()
            || g.discovery.identity_center.is_some()
            || matches!(g.discovery.accounts_list, Some(AccountsList::Ssm(_)))
    })
}

/// Runs every group's discovery (no progress shown).
pub async fn discover(pipeline: &Pipeline, aws: &AwsClients) -> Discovered {
    select_all(
        pipeline,
        &collect_all(pipeline, aws, std::sync::Arc::new(|_: &str| {})).await,
    )
}

/// What each group's methods found: its accounts, or why they could not be listed.
pub(crate) type Collected = BTreeMap<String, Result<Vec<Account>, Failure>>;

/// Lists every group's accounts.
async fn collect_all(pipeline: &Pipeline, aws: &AwsClients, progress: Progress) -> Collected {
    let clients = if needs_aws(pipeline) {
        let account = pipeline
            .aws
            .execution_context
            .as_ref()
            .and_then(|c| c.account_id.as_deref());
        match aws.session(account, None, None).await {
            Ok(session) => Some(Clients {
                organizations: aws_sdk_organizations::Client::new(&session.config),
                sso: aws_sdk_ssoadmin::Client::new(&session.config),
                identity_store: aws_sdk_identitystore::Client::new(&session.config),
                ssm: aws_sdk_ssm::Client::new(&session.config),
                identity_center_session: session.clone(),
                session,
                progress,
            }),
            Err(e) => {
                return pipeline
                    .dynamic_targets
                    .keys()
                    .map(|group| (group.clone(), Err(e.failure())))
                    .collect();
            }
        }
    } else {
        None
    };
    let mut collected = Collected::new();
    for (name, group) in &pipeline.dynamic_targets {
        // Identity Center answers in its home region only.
        let home = group
            .discovery
            .identity_center
            .as_ref()
            .and_then(|ic| ic.region.as_deref());
        let group_clients = match (&clients, home) {
            (Some(base), Some(region)) => {
                let account = pipeline
                    .aws
                    .execution_context
                    .as_ref()
                    .and_then(|c| c.account_id.as_deref());
                match aws.session(account, None, Some(region)).await {
                    Ok(session) => Some(Clients {
                        sso: aws_sdk_ssoadmin::Client::new(&session.config),
                        identity_store: aws_sdk_identitystore::Client::new(&session.config),
                        identity_center_session: session,
                        ..base.clone()
                    }),
                    Err(e) => {
                        collected.insert(
                            name.clone(),
                            Err(e.failure().context(format!("cannot reach Identity Center in {region}"))),
                        );
                        continue;
                    }
                }
            }
            _ => clients.clone(),
        };
        if let Some(clients) = &group_clients {
            (clients.progress)(&format!("{name}: listing accounts"));
        }
        collected.insert(name.clone(), collect(group, group_clients.as_ref()).await);
    }
    collected
}

/// Every group's targets from its accounts (groups of the pipeline only, in its order).
fn select_all(pipeline: &Pipeline, collected: &Collected) -> Discovered {
    let groups = pipeline
        .dynamic_targets
        .iter()
        .map(|(name, group)| {
            let selected = match collected.get(name) {
                Some(Ok(accounts)) => select(pipeline, group, accounts),
                Some(Err(error)) => Err(error.clone()),
                None => Err(Failure::new(
                    ErrorClass::Fatal,
                    "no discovery result for this group (this is a bug)",
                )),
            };
            selected.unwrap_or_else(|error| GroupResult {
                group: name.clone(),
                targets: Vec::new(),
                skipped: Vec::new(),
                error: Some(error),
            })
        })
        .collect();
    Discovered { groups }
}

/// The accounts a group's methods find, de-duplicated (first finder wins).
async fn collect(group: &DynamicTarget, clients: Option<&Clients>) -> Result<Vec<Account>, Failure> {
    let aws = || clients.ok_or_else(|| Failure::new(ErrorClass::Fatal, "AWS clients were not set up (this is a bug)"));
    let mut found: Vec<Account> = Vec::new();
    let mut org_accounts: Option<Vec<Account>> = None;
    let discovery = &group.discovery;
    if let Some(org) = &discovery.organizations {
        let mut accounts = match &org.ou {
            Some(ou) => organizations::accounts_under(aws()?, ou, org.recursive).await?,
            None => organizations::all_accounts(aws()?).await?,
        };
        let wants_tags = !org.tags.is_empty() || group.name_template.contains("{{tag:");
        if wants_tags {
            organizations::add_tags(aws()?, &mut accounts).await?;
        }
        found.extend(accounts);
    }
    if let Some(ic) = &discovery.identity_center {
        let instance = identity_center::instance(aws()?).await?;
        if org_accounts.is_none() {
            org_accounts = Some(organizations::all_accounts(aws()?).await?);
        }
        let candidates = org_accounts.as_deref().unwrap_or_default();
        if let Some(set) = &ic.permission_set {
            found.extend(identity_center::with_permission_set(aws()?, &instance, set, candidates).await?);
        }
        if let Some(group_name) = &ic.group {
            let ids = identity_center::with_group(aws()?, &instance, group_name).await?;
            for id in ids {
                let known = candidates.iter().find(|a| a.id == id);
                found.push(Account {
                    id: id.clone(),
                    name: known.map(|a| a.name.clone()).unwrap_or_default(),
                    status: known.map_or_else(|| "ACTIVE".to_owned(), |a| a.status.clone()),
                    tags: BTreeMap::new(),
                    found_by: format!("group {group_name} has an assignment"),
                });
            }
        }
    }
    if let Some(list) = &discovery.accounts_list {
        found.extend(match list {
            AccountsList::Ssm(name) => accounts_list::from_ssm(aws()?, name).await?,
            AccountsList::File(file) => {
                let text = std::fs::read_to_string(&file.path).map_err(|e| {
                    crate::store::StoreError::from_io(format!("cannot read the accounts list `{}`", file.written), e)
                        .failure()
                })?;
                accounts_list::parse(&text, &format!("file:{}", file.written))?
            }
        });
    }
    let mut seen = BTreeSet::new();
    found.retain(|a| seen.insert(a.id.clone()));
    Ok(found)
}

fn matching_of(group: &DynamicTarget) -> NameMatching {
    group
        .discovery
        .organizations
        .as_ref()
        .map_or_else(NameMatching::default_for_patterns, |o| o.name_matching.clone())
}

/// A group's targets from the accounts its methods found.
fn select(pipeline: &Pipeline, group: &DynamicTarget, accounts: &[Account]) -> Result<GroupResult, Failure> {
    if let Some(bad) = accounts
        .iter()
        .find(|a| a.id.len() != 12 || !a.id.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid(format!(
            "`{}` ({}) is not a 12-digit AWS account id",
            bad.id.escape_debug(),
            bad.found_by.escape_debug()
        )));
    }
    let matching = matching_of(group);
    let patterns: Vec<names::Pattern> = group
        .account_name_patterns
        .iter()
        .filter_map(|p| names::Pattern::new(&p.pattern, p.target.clone(), &matching))
        .collect();
    let tag_filters = group
        .discovery
        .organizations
        .as_ref()
        .map(|o| o.tags.clone())
        .unwrap_or_default();
    let mut targets: Vec<DiscoveredTarget> = Vec::new();
    let mut skipped = Vec::new();
    for account in accounts {
        let skip = |reason: String| SkippedAccount {
            account_id: account.id.clone(),
            account_name: account.name.clone(),
            reason,
        };
        if account.status != "ACTIVE" {
            skipped.push(skip(format!("{} (only ACTIVE accounts are synced)", account.status)));
            continue;
        }
        if group.exclude.contains(&account.id) {
            skipped.push(skip("listed in `exclude`".to_owned()));
            continue;
        }
        if let Some((key, wanted)) = tag_filters.iter().find(|(key, wanted)| {
            !account
                .tags
                .get(*key)
                .is_some_and(|v| wanted.iter().any(|w| w.eq_ignore_ascii_case(v)))
        }) {
            let has = account
                .tags
                .get(key)
                .map_or_else(|| "no such tag".to_owned(), |v| format!("{key}={v}"));
            skipped.push(skip(format!("tag {key} is not {} ({has})", wanted.join(" or "))));
            continue;
        }
        let mut imports: Vec<String> = group.imports.iter().map(|i| i.name.clone()).collect();
        let mut imports_of = None;
        let mut reason = account.found_by.clone();
        if !patterns.is_empty() {
            let normalised = names::normalise(&account.name, &matching);
            let Some(pattern) = patterns.iter().find(|p| p.matches(&normalised)) else {
                skipped.push(skip(format!(
                    "name `{}` matches no `account_name_patterns`",
                    account.name
                )));
                continue;
            };
            let _ = write!(reason, "; name matches `{}`", pattern.written);
            if let Some(static_target) = pattern.target.as_ref().and_then(|t| pipeline.targets.get(t)) {
                imports = static_target.imports.iter().map(|i| i.name.clone()).collect();
                imports_of = Some(static_target.name.clone());
                let _ = write!(reason, " (imports of {})", static_target.name);
            }
        }
        let Some(name) = names::target_name(&group.name_template, &account.id, &account.name, &account.tags) else {
            return Err(invalid(format!(
                "`{}` gives account {} ({}) an empty target name; use a template with {{{{account_id}}}}",
                group.name_template, account.id, account.name
            )));
        };
        targets.push(DiscoveredTarget {
            name,
            account_id: account.id.clone(),
            account_name: account.name.clone(),
            reason,
            imports,
            imports_of,
        });
    }
    targets.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.account_id.cmp(&b.account_id)));
    for pair in targets.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(invalid(format!(
                "accounts {} and {} both get the target name `{}`; add {{{{account_id}}}} to `name_template`",
                pair[0].account_id, pair[1].account_id, pair[0].name
            )));
        }
    }
    if let Some(clash) = targets.iter().find(|t| pipeline.targets.contains_key(&t.name)) {
        return Err(invalid(format!(
            "account {} gets the target name `{}`, which a static target already has; change `name_template`",
            clash.account_id, clash.name
        )));
    }
    skipped.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    Ok(GroupResult {
        group: group.name.clone(),
        targets,
        skipped,
        error: None,
    })
}

/// Adds the targets of every successful group to `pipeline` (and its graph). Targets of
/// different groups with the same name fail both groups' targets.
pub fn expand(pipeline: &mut Pipeline, discovered: &Discovered) -> Result<(), Failure> {
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for group in &discovered.groups {
        for target in &group.targets {
            if let Some(other) = owner.insert(target.name.clone(), group.group.clone()) {
                return Err(invalid(format!(
                    "the target name `{}` is discovered by both `{other}` and `{}`; give the groups different name templates",
                    target.name, group.group
                )));
            }
        }
    }
    for group in discovered.groups.iter().filter(|g| g.error.is_none()) {
        let Some((settings, group_filter)) = pipeline
            .dynamic_targets
            .get(&group.group)
            .map(|g| (&g.target, &g.filter))
        else {
            return Err(invalid(format!(
                "discovery returned the group `{}`, which the pipeline does not have",
                group.group
            )));
        };
        for found in &group.targets {
            let imports = found
                .imports
                .iter()
                .map(|name| Import {
                    kind: if pipeline.sources.contains_key(name) {
                        ImportKind::Source
                    } else {
                        ImportKind::Target
                    },
                    name: name.clone(),
                })
                .collect();
            let target = Target {
                name: found.name.clone(),
                imports,
                kind: TargetKind::Aws(AwsTarget {
                    account_id: Some(found.account_id.clone()),
                    role_arn: settings
                        .role_arn
                        .as_ref()
                        .map(|r| r.replace(crate::config::ACCOUNT_ID_PLACEHOLDER, &found.account_id)),
                    ..settings.clone()
                }),
                // An account that uses a static target's imports manages what that target does.
                filter: found
                    .imports_of
                    .as_ref()
                    .and_then(|t| pipeline.targets.get(t))
                    .map_or_else(|| group_filter.clone(), |t| t.filter.clone()),
            };
            pipeline.targets.insert(found.name.clone(), target);
        }
    }
    pipeline.rebuild_graph().map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::Pages;

    #[test]
    fn pages_end_on_no_or_an_empty_token_and_stop_on_a_repeated_one() {
        let mut pages = Pages::default();
        assert_eq!(pages.next("ListAccounts", Some("a")).unwrap().as_deref(), Some("a"));
        assert_eq!(pages.next("ListAccounts", Some("b")).unwrap().as_deref(), Some("b"));
        assert_eq!(pages.next("ListAccounts", Some("")).unwrap(), None);
        assert_eq!(pages.next("ListAccounts", None).unwrap(), None);
        let looped = pages.next("ListAccounts", Some("a")).unwrap_err();
        assert!(
            looped
                .message
                .contains("ListAccounts returned a page token it had returned before"),
            "{looped:?}"
        );
    }
}
