//! Accounts from AWS Organizations: under an OU (by id, root id or path such as
//! `Workloads/Prod`), directly or — with `recursive` — anywhere below it, or the whole
//! organization. Every list call is paginated (20 per page). Tags are read per account only
//! when something needs them (tag filters, `{{tag:KEY}}` in the name template).

use std::collections::{BTreeMap, VecDeque};

use aws_sdk_organizations::types::Account as OrgAccount;

use super::{Account, Clients, call, invalid};
use crate::failure::Failure;

const SERVICE: &str = "organizations";

/// Page size of every Organizations list call.
const PAGE: i32 = 20;

fn to_account(a: &OrgAccount, found_by: &str) -> Option<Account> {
    Some(Account {
        id: a.id()?.to_owned(),
        name: a.name().unwrap_or_default().to_owned(),
        status: a
            .status()
            .map_or_else(|| "ACTIVE".to_owned(), |s| s.as_str().to_owned()),
        tags: BTreeMap::new(),
        found_by: found_by.to_owned(),
    })
}

/// Every account of the organization.
pub(crate) async fn all_accounts(aws: &Clients) -> Result<Vec<Account>, Failure> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = super::Pages::default();
    loop {
        let page = call(
            &aws.session,
            (SERVICE, "ListAccounts"),
            "organizations:ListAccounts",
            || {
                aws.organizations
                    .list_accounts()
                    .max_results(PAGE)
                    .set_next_token(token.clone())
                    .send()
            },
        )
        .await?;
        out.extend(
            page.accounts()
                .iter()
                .filter_map(|a| to_account(a, "in the organization")),
        );
        (aws.progress)(&format!("organization: {} accounts listed", out.len()));
        token = pages.next("ListAccounts", page.next_token())?;
        if token.is_none() {
            return Ok(out);
        }
    }
}

async fn children(aws: &Clients, parent: &str) -> Result<Vec<(String, String)>, Failure> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = super::Pages::default();
    loop {
        let what = format!("organizations:ListOrganizationalUnitsForParent({parent})");
        let page = call(
            &aws.session,
            (SERVICE, "ListOrganizationalUnitsForParent"),
            what,
            || {
                aws.organizations
                    .list_organizational_units_for_parent()
                    .parent_id(parent)
                    .max_results(PAGE)
                    .set_next_token(token.clone())
                    .send()
            },
        )
        .await?;
        out.extend(
            page.organizational_units()
                .iter()
                .filter_map(|ou| Some((ou.id()?.to_owned(), ou.name().unwrap_or_default().to_owned()))),
        );
        token = pages.next("ListOrganizationalUnitsForParent", page.next_token())?;
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The id of `ou`: an OU or root id as given, or a path of OU names from the root.
async fn resolve(aws: &Clients, ou: &str) -> Result<String, Failure> {
    if ou.starts_with("ou-") || ou.starts_with("r-") {
        return Ok(ou.to_owned());
    }
    let roots = call(&aws.session, (SERVICE, "ListRoots"), "organizations:ListRoots", || {
        aws.organizations.list_roots().send()
    })
    .await?;
    let mut current = roots
        .roots()
        .first()
        .and_then(|r| r.id())
        .ok_or_else(|| invalid("the organization has no root"))?
        .to_owned();
    let mut walked = Vec::new();
    for segment in ou.split('/').filter(|s| !s.is_empty()) {
        let below = children(aws, &current).await?;
        let Some((id, _)) = below.iter().find(|(_, name)| name == segment) else {
            let mut names: Vec<&str> = below.iter().map(|(_, n)| n.as_str()).collect();
            names.sort_unstable();
            let at = if walked.is_empty() {
                "the root".to_owned()
            } else {
                format!("`{}`", walked.join("/"))
            };
            return Err(invalid(format!(
                "no OU named `{segment}` under {at} (there: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        walked.push(segment);
        current.clone_from(id);
    }
    Ok(current)
}

/// Accounts directly under `ou`, or anywhere below it when `recursive`.
pub(crate) async fn accounts_under(aws: &Clients, ou: &str, recursive: bool) -> Result<Vec<Account>, Failure> {
    let start = resolve(aws, ou).await?;
    let mut queue = VecDeque::from([start]);
    let mut out = Vec::new();
    let how = if recursive {
        format!("below OU {ou}")
    } else {
        format!("in OU {ou}")
    };
    while let Some(parent) = queue.pop_front() {
        let mut token: Option<String> = None;
        let mut pages = super::Pages::default();
        loop {
            let what = format!("organizations:ListAccountsForParent({parent})");
            let page = call(&aws.session, (SERVICE, "ListAccountsForParent"), what, || {
                aws.organizations
                    .list_accounts_for_parent()
                    .parent_id(&parent)
                    .max_results(PAGE)
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
            out.extend(page.accounts().iter().filter_map(|a| to_account(a, &how)));
            token = pages.next("ListAccountsForParent", page.next_token())?;
            if token.is_none() {
                break;
            }
        }
        if recursive {
            queue.extend(children(aws, &parent).await?.into_iter().map(|(id, _)| id));
        }
    }
    Ok(out)
}

/// Fills in each account's tags (one `ListTagsForResource` per account, paginated).
pub(crate) async fn add_tags(aws: &Clients, accounts: &mut [Account]) -> Result<(), Failure> {
    let total = accounts.len();
    for (done, account) in accounts.iter_mut().enumerate() {
        (aws.progress)(&format!("organization: tags read for {done} of {total} accounts"));
        let mut token: Option<String> = None;
        let mut pages = super::Pages::default();
        loop {
            let what = format!("organizations:ListTagsForResource({})", account.id);
            let page = call(&aws.session, (SERVICE, "ListTagsForResource"), what, || {
                aws.organizations
                    .list_tags_for_resource()
                    .resource_id(&account.id)
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
            for tag in page.tags() {
                account.tags.insert(tag.key().to_owned(), tag.value().to_owned());
            }
            token = pages.next("ListTagsForResource", page.next_token())?;
            if token.is_none() {
                break;
            }
        }
    }
    Ok(())
}
