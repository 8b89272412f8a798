//! `validate --check-aws` and `context`: who the run is (caller identity), where it stands in
//! the organization (management account, delegated administrator, member), and for every AWS
//! source, target and merge store which role it would assume — by SPEC §2's one rule — whether
//! that role can be assumed, and whether the store can then be read. Read-only.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

use super::AwsClients;
use crate::config::raw::ExecutionContextType;
use crate::config::{MergeStoreSpec, Pipeline, RoleSource, Source, TargetKind};
use crate::error_chain::chain as error_chain;
use crate::store::check::CheckLine;

/// An AWS location in the pipeline.
struct Location<'p> {
    subject: String,
    account: Option<&'p str>,
    role: Option<&'p str>,
    region: Option<&'p str>,
    /// The S3 bucket, for the merge store.
    bucket: Option<&'p str>,
}

fn locations(pipeline: &Pipeline) -> Vec<Location<'_>> {
    let mut out = Vec::new();
    for (name, source) in &pipeline.sources {
        if let Source::Aws(a) = source {
            out.push(Location {
                subject: format!("source `{name}`"),
                account: a.account_id.as_deref(),
                role: a.role_arn.as_deref(),
                region: a.region.as_deref(),
                bucket: None,
            });
        }
    }
    if let Some(MergeStoreSpec::S3 {
        bucket,
        region,
        account_id,
        role_arn,
        ..
    }) = &pipeline.merge_store
    {
        out.push(Location {
            subject: "the merge store".to_owned(),
            account: account_id.as_deref(),
            role: role_arn.as_deref(),
            region: region.as_deref(),
            bucket: Some(bucket),
        });
    }
    for (name, target) in &pipeline.targets {
        if let TargetKind::Aws(t) = &target.kind {
            // A target with `regions` is checked in each of them, as each is synced.
            let regions: Vec<(String, Option<&str>)> = if t.regions.is_empty() {
                vec![(format!("target `{name}`"), t.region.as_deref())]
            } else {
                t.regions
                    .iter()
                    .map(|r| {
                        (
                            format!("target `{name}{}{r}`", crate::config::UNIT_SEPARATOR),
                            Some(r.as_str()),
                        )
                    })
                    .collect()
            };
            for (subject, region) in regions {
                out.push(Location {
                    subject,
                    account: t.account_id.as_deref(),
                    role: t.role_arn.as_deref(),
                    region,
                    bucket: None,
                });
            }
        }
    }
    out
}

fn role_source(source: RoleSource) -> &'static str {
    match source {
        RoleSource::Explicit => "role_arn",
        RoleSource::CustomPattern => "execution_context.custom_role_pattern",
        RoleSource::ControlTower => "control_tower",
        RoleSource::OrganizationDefault => "the default role",
    }
}

/// The caller's place in its organization, as one line.
async fn organization(clients: &AwsClients, account: &str) -> (String, Option<ExecutionContextType>) {
    let orgs = aws_sdk_organizations::Client::new(clients.base().await);
    let org = match orgs.describe_organization().send().await {
        Ok(out) => out.organization,
        Err(e) => {
            let code = e
                .as_service_error()
                .and_then(ProvideErrorMetadata::code)
                .unwrap_or_default();
            return match code {
                "AWSOrganizationsNotInUseException" => ("not in an organization".to_owned(), None),
                "AccessDeniedException" => (
                    "unknown: organizations:DescribeOrganization is not allowed for this principal".to_owned(),
                    None,
                ),
                _ => (format!("unknown: {}", error_chain(&e)), None),
            };
        }
    };
    let Some(org) = org else {
        return ("not in an organization".to_owned(), None);
    };
    let id = org.id().unwrap_or("?").to_owned();
    if org.master_account_id() == Some(account) {
        return (
            format!("management account of {id}"),
            Some(ExecutionContextType::ManagementAccount),
        );
    }
    match orgs
        .list_delegated_services_for_account()
        .account_id(account)
        .send()
        .await
    {
        Ok(out) if !out.delegated_services().is_empty() => {
            let services: Vec<&str> = out
                .delegated_services()
                .iter()
                .filter_map(|s| s.service_principal())
                .collect();
            (
                format!("delegated administrator in {id} for {}", services.join(", ")),
                Some(ExecutionContextType::DelegatedAdmin),
            )
        }
        _ => (format!("member account of {id}"), None),
    }
}

/// Every AWS check, in a stable order: the caller, the organization, then each location.
pub async fn check_pipeline(pipeline: &Pipeline, clients: &AwsClients) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let caller = match clients.caller().await {
        Ok(caller) => caller,
        Err(e) => {
            lines.push(CheckLine::fail(
                "credentials".to_owned(),
                e.message,
                Some("give AWS credentials: AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a role from the environment".to_owned()),
            ));
            return lines;
        }
    };
    lines.push(CheckLine::pass(
        "caller".to_owned(),
        format!("{} (account {})", caller.arn, caller.account),
    ));
    let context = pipeline.aws.execution_context.as_ref();
    if let Some(expected) = context.and_then(|c| c.account_id.as_deref())
        && expected != caller.account
    {
        lines.push(CheckLine::fail(
            "execution context".to_owned(),
            format!(
                "`aws.execution_context.account_id` is {expected}, but the credentials are for account {}",
                caller.account
            ),
            Some("run with credentials for that account, or fix `account_id`".to_owned()),
        ));
    }
    let (org, kind) = organization(clients, &caller.account).await;
    match context.and_then(|c| c.kind) {
        Some(want @ (ExecutionContextType::ManagementAccount | ExecutionContextType::DelegatedAdmin))
            if kind != Some(want) =>
        {
            lines.push(CheckLine::fail(
                "organization".to_owned(),
                format!("{org}, but `aws.execution_context.type` says {want:?}"),
                Some("run from the account the execution context names, or change `type`".to_owned()),
            ));
        }
        _ => lines.push(CheckLine::pass("organization".to_owned(), org)),
    }
    for location in locations(pipeline) {
        lines.push(check_location(clients, &caller.account, &location).await);
    }
    lines
}

async fn check_location(clients: &AwsClients, caller: &str, location: &Location<'_>) -> CheckLine {
    let account = location.account.unwrap_or(caller);
    let region = clients.region(location.region);
    let role = match clients.role_for(location.account, location.role).await {
        Ok(role) => role,
        Err(e) => return CheckLine::fail(location.subject.clone(), e.message, None),
    };
    let via = match &role {
        Some((arn, source)) => format!("via {arn} ({})", role_source(*source)),
        None => "with the caller's own credentials".to_owned(),
    };
    let at = format!("account {account} {region} {via}");
    if let Some((arn, _)) = &role
        && let Err(problem) = clients.assumed(arn).await.credentials().await
    {
        return CheckLine::fail(
            location.subject.clone(),
            format!("{at}: the role cannot be assumed: {}", error_chain(&problem)),
            Some(format!(
                "let {caller} assume {arn} (its trust policy and the caller's sts:AssumeRole permission), or set `role_arn`"
            )),
        );
    }
    let session = match clients.session(location.account, location.role, location.region).await {
        Ok(session) => session,
        Err(e) => return CheckLine::fail(location.subject.clone(), format!("{at}: {}", e.message), None),
    };
    let access = match location.bucket {
        Some(bucket) => {
            let config = aws_sdk_s3::config::Builder::from(&session.config)
                .force_path_style(session.custom_endpoint)
                .build();
            aws_sdk_s3::Client::from_conf(config)
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map(|_| format!("bucket {bucket} reachable"))
                .map_err(|e| format!("cannot reach bucket {bucket}: {}", error_chain(&e)))
        }
        None => aws_sdk_secretsmanager::Client::new(&session.config)
            .list_secrets()
            .max_results(1)
            .send()
            .await
            .map(|_| "secrets can be listed".to_owned())
            .map_err(|e| format!("cannot list secrets: {}", error_chain(&e))),
    };
    match access {
        Ok(what) => CheckLine::pass(location.subject.clone(), format!("{at}: {what}")),
        Err(problem) => CheckLine::fail(location.subject.clone(), format!("{at}: {problem}"), None),
    }
}
