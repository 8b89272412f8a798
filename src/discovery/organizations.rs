//! Accounts from AWS Organizations: under an OU (by id, root id or path such as
//! `Workloads/Prod`), directly or — with `recursive` — anywhere below it, or the whole
//! organization. Every list call is paginated (20 per page). Tags are read per account only
//! when something needs them (tag filters, `{{tag:KEY}}` in the name template).

use std::collections::{BTreeMap, VecDeque};

use aws_sdk_organizations::Client;
use aws_sdk_organizations::types::Account as OrgAccount;

use super::Account;
use super::{call_failed, invalid};
use crate::failure::Failure;

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
pub(crate) async fn all_accounts(client: &Client) -> Result<Vec<Account>, Failure> {
    let mut pages = client.list_accounts().max_results(PAGE).into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_failed("organizations:ListAccounts", &e))?;
        out.extend(
            page.accounts()
                .iter()
                .filter_map(|a| to_account(a, "in the organization")),
        );
    }
    Ok(out)
}

async fn children(client: &Client, parent: &str) -> Result<Vec<(String, String)>, Failure> {
    let mut pages = client
        .list_organizational_units_for_parent()
        .parent_id(parent)
        .max_results(PAGE)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| call_failed(format!("organizations:ListOrganizationalUnitsForParent({parent})"), &e))?;
        out.extend(
            page.organizational_units()
                .iter()
                .filter_map(|ou| Some((ou.id()?.to_owned(), ou.name().unwrap_or_default().to_owned()))),
        );
    }
    Ok(out)
}

/// The id of `ou`: an OU or root id as given, or a path of OU names from the root.
async fn resolve(client: &Client, ou: &str) -> Result<String, Failure> {
    if ou.starts_with("ou-") || ou.starts_with("r-") {
        return Ok(ou.to_owned());
    }
    let roots = client
        .list_roots()
        .send()
        .await
        .map_err(|e| call_failed("organizations:ListRoots", &e))?;
    let mut current = roots
        .roots()
        .first()
        .and_then(|r| r.id())
        .ok_or_else(|| invalid("the organization has no root"))?
        .to_owned();
    let mut walked = Vec::new();
    for segment in ou.split('/').filter(|s| !s.is_empty()) {
        let below = children(client, &current).await?;
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
pub(crate) async fn accounts_under(client: &Client, ou: &str, recursive: bool) -> Result<Vec<Account>, Failure> {
    let start = resolve(client, ou).await?;
    let mut queue = VecDeque::from([start]);
    let mut out = Vec::new();
    while let Some(parent) = queue.pop_front() {
        let mut pages = client
            .list_accounts_for_parent()
            .parent_id(&parent)
            .max_results(PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_failed(format!("organizations:ListAccountsForParent({parent})"), &e))?;
            let how = if recursive {
                format!("below OU {ou}")
            } else {
                format!("in OU {ou}")
            };
            out.extend(page.accounts().iter().filter_map(|a| to_account(a, &how)));
        }
        if recursive {
            queue.extend(children(client, &parent).await?.into_iter().map(|(id, _)| id));
        }
    }
    Ok(out)
}

/// Fills in each account's tags (one `ListTagsForResource` per account, paginated).
pub(crate) async fn add_tags(client: &Client, accounts: &mut [Account]) -> Result<(), Failure> {
    for account in accounts {
        let mut pages = client
            .list_tags_for_resource()
            .resource_id(&account.id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| call_failed(format!("organizations:ListTagsForResource({})", account.id), &e))?;
            for tag in page.tags() {
                account.tags.insert(tag.key().to_owned(), tag.value().to_owned());
            }
        }
    }
    Ok(())
}
