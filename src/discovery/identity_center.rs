//! Accounts from IAM Identity Center: where a permission set (by name) is assigned, or where a
//! group (by display name) has any assignment.
//!
//! Both use the account-assignment APIs. `ListAccountsForProvisionedPermissionSet` alone is not
//! enough: it lists where a permission set is *provisioned*, which outlives assignments, and
//! moto answers it with a stub. So a permission set is looked up with `ListAccountAssignments`
//! in every account of the organization, and a group with `ListAccountAssignmentsForPrincipal`.

use std::collections::BTreeSet;

use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
use aws_sdk_ssoadmin::types::PrincipalType;

use super::{Account, Clients, call, invalid};
use crate::failure::Failure;

const SSO: &str = "sso";

/// Identity Center answers only in its home region.
const HOME_REGION: &str = "Identity Center answers only in its home region: set `discovery.identity_center.region` to it (default: the pipeline's region)";

/// The Identity Center instance: its ARN and identity store.
pub(crate) struct Instance {
    arn: String,
    identity_store: String,
}

/// The first (and in practice only) Identity Center instance.
pub(crate) async fn instance(aws: &Clients) -> Result<Instance, Failure> {
    let out = call(
        &aws.identity_center_session,
        (SSO, "ListInstances"),
        "sso:ListInstances",
        || aws.sso.list_instances().send(),
    )
    .await?;
    let first = out
        .instances()
        .first()
        .ok_or_else(|| invalid("no IAM Identity Center instance in this account and region").with_hint(HOME_REGION))?;
    Ok(Instance {
        arn: first.instance_arn().unwrap_or_default().to_owned(),
        identity_store: first.identity_store_id().unwrap_or_default().to_owned(),
    })
}

/// The ARN of the permission set named `name`.
async fn permission_set(aws: &Clients, instance: &Instance, name: &str) -> Result<String, Failure> {
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = super::Pages::default();
    loop {
        let page = call(
            &aws.identity_center_session,
            (SSO, "ListPermissionSets"),
            "sso:ListPermissionSets",
            || {
                aws.sso
                    .list_permission_sets()
                    .instance_arn(&instance.arn)
                    .set_next_token(token.clone())
                    .send()
            },
        )
        .await?;
        for arn in page.permission_sets() {
            let described = call(
                &aws.identity_center_session,
                (SSO, "DescribePermissionSet"),
                "sso:DescribePermissionSet",
                || {
                    aws.sso
                        .describe_permission_set()
                        .instance_arn(&instance.arn)
                        .permission_set_arn(arn)
                        .send()
                },
            )
            .await?;
            let found = described.permission_set().and_then(|p| p.name()).unwrap_or_default();
            if found == name {
                return Ok(arn.clone());
            }
            seen.push(found.to_owned());
        }
        token = pages.next("ListPermissionSets", page.next_token())?;
        if token.is_none() {
            break;
        }
    }
    seen.sort();
    Err(invalid(format!(
        "no permission set named `{name}` (there: {})",
        if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(", ")
        }
    ))
    .with_hint(HOME_REGION))
}

/// The accounts of `candidates` where the permission set `name` is assigned to anyone.
pub(crate) async fn with_permission_set(
    aws: &Clients,
    instance: &Instance,
    name: &str,
    candidates: &[Account],
) -> Result<Vec<Account>, Failure> {
    let arn = permission_set(aws, instance, name).await?;
    let mut out = Vec::new();
    for (done, account) in candidates.iter().enumerate() {
        (aws.progress)(&format!(
            "identity center: permission set {name} checked in {done} of {} accounts",
            candidates.len()
        ));
        // One assignment is enough to know; a page may still come back empty with a token
        // for the next one, so follow the tokens until an assignment or the end.
        let (mut token, mut pages): (Option<String>, super::Pages) = (None, super::Pages::default());
        let assigned = loop {
            let what = format!("sso:ListAccountAssignments({})", account.id);
            let page = call(
                &aws.identity_center_session,
                (SSO, "ListAccountAssignments"),
                what,
                || {
                    aws.sso
                        .list_account_assignments()
                        .instance_arn(&instance.arn)
                        .account_id(&account.id)
                        .permission_set_arn(&arn)
                        .max_results(1)
                        .set_next_token(token.clone())
                        .send()
                },
            )
            .await?;
            let assigned = !page.account_assignments().is_empty();
            token = pages.next("ListAccountAssignments", page.next_token())?;
            if assigned || token.is_none() {
                break assigned;
            }
        };
        if assigned {
            out.push(Account {
                found_by: format!("permission set {name} is assigned"),
                ..account.clone()
            });
        }
    }
    Ok(out)
}

/// The accounts where the group with display name `group` has any assignment.
pub(crate) async fn with_group(aws: &Clients, instance: &Instance, group: &str) -> Result<BTreeSet<String>, Failure> {
    let by_name = AlternateIdentifier::UniqueAttribute(
        UniqueAttribute::builder()
            .attribute_path("DisplayName")
            .attribute_value(aws_smithy_types_document(group))
            .build()
            .map_err(|e| invalid(e.to_string()))?,
    );
    let what = format!("no group named `{group}` in the identity store; identitystore:GetGroupId");
    let id = call(
        &aws.identity_center_session,
        ("identitystore", "GetGroupId"),
        what,
        || {
            aws.identity_store
                .get_group_id()
                .identity_store_id(&instance.identity_store)
                .alternate_identifier(by_name.clone())
                .send()
        },
    )
    .await?
    .group_id;
    let mut accounts = BTreeSet::new();
    let mut token: Option<String> = None;
    let mut pages = super::Pages::default();
    loop {
        let what = "sso:ListAccountAssignmentsForPrincipal";
        let page = call(
            &aws.identity_center_session,
            (SSO, "ListAccountAssignmentsForPrincipal"),
            what,
            || {
                aws.sso
                    .list_account_assignments_for_principal()
                    .instance_arn(&instance.arn)
                    .principal_id(&id)
                    .principal_type(PrincipalType::Group)
                    .set_next_token(token.clone())
                    .send()
            },
        )
        .await?;
        accounts.extend(
            page.account_assignments()
                .iter()
                .filter_map(|a| a.account_id().map(str::to_owned)),
        );
        token = pages.next("ListAccountAssignmentsForPrincipal", page.next_token())?;
        if token.is_none() {
            return Ok(accounts);
        }
    }
}

fn aws_smithy_types_document(text: &str) -> aws_smithy_types::Document {
    aws_smithy_types::Document::String(text.to_owned())
}
