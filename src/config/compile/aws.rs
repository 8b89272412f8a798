//! `aws:` — region, endpoint, execution context, Control Tower and role settings.

use super::Compiler;
use crate::config::checks;
use crate::config::pipeline::{AwsSettings, ControlTowerRole, ExecutionContext};
use crate::config::raw::RawAws;

impl Compiler<'_> {
    pub(super) fn aws(&mut self, raw: Option<&RawAws>) -> AwsSettings {
        let mut settings = AwsSettings {
            role_session_name: "secretsync".to_owned(),
            ..AwsSettings::default()
        };
        let Some(raw) = raw else { return settings };
        settings.region = self.checked(raw.region.as_ref(), "`aws.region`", checks::region);
        settings.endpoint_url = self.checked(raw.endpoint_url.as_ref(), "`aws.endpoint_url`", checks::url);
        if let Some(endpoint) = &raw.endpoint {
            if raw.endpoint_url.is_some() {
                self.error(endpoint.mark, "`aws.endpoint` and `aws.endpoint_url` are both given")
                    .hint = Some("keep `endpoint_url` (`endpoint` is jbcom/secretsync's name for it)".to_owned());
            } else {
                self.warn(
                    endpoint.mark,
                    "`aws.endpoint` is read as `aws.endpoint_url`",
                    "rename it to `endpoint_url` (jbcom/secretsync's name is accepted for now)",
                );
                settings.endpoint_url = self.checked(Some(endpoint), "`aws.endpoint`", checks::url);
            }
        }
        if let Some(name) = self.checked(
            raw.role_session_name.as_ref(),
            "`aws.role_session_name`",
            checks::session_name,
        ) {
            settings.role_session_name = name;
        }
        settings.external_id = self.checked(raw.external_id.as_ref(), "`aws.external_id`", checks::external_id);
        if let Some(ctx) = &raw.execution_context {
            let account_id = self.checked(
                ctx.account_id.as_ref(),
                "`aws.execution_context.account_id`",
                checks::account_id,
            );
            let custom_role_pattern = self.checked(
                ctx.custom_role_pattern.as_ref(),
                "`aws.execution_context.custom_role_pattern`",
                checks::role_template,
            );
            if let Some(d) = &ctx.delegation {
                self.warn(
                    d.mark,
                    "`aws.execution_context.delegation` has no effect",
                    "remove it; secretsync detects delegated administration itself",
                );
            }
            settings.execution_context = Some(ExecutionContext {
                kind: ctx.kind.as_ref().map(|k| k.value),
                account_id,
                custom_role_pattern,
            });
        }
        if let Some(ct) = &raw.control_tower {
            if let Some(f) = &ct.account_factory {
                self.warn(
                    f.mark,
                    "`aws.control_tower.account_factory` has no effect",
                    "remove it; new accounts are picked up by `dynamic_targets` discovery",
                );
            }
            if ct.enabled == Some(true) {
                let role = ct.execution_role.as_ref();
                let name = role
                    .and_then(|r| r.name.as_ref())
                    .map_or_else(|| "AWSControlTowerExecution".to_owned(), |n| n.value.clone());
                let raw_path = role.and_then(|r| r.path.as_ref()).map_or("/", |p| p.value.as_str());
                let path = format!("/{}/", raw_path.trim_matches('/')).replace("//", "/");
                settings.control_tower_role = Some(ControlTowerRole { name, path });
            }
        }
        if let Some(o) = &raw.organizations {
            self.warn(
                o.mark,
                "`aws.organizations` has no effect",
                "configure discovery under `dynamic_targets.<name>.discovery.organizations`",
            );
        }
        if let Some(i) = &raw.identity_center {
            self.warn(
                i.mark,
                "`aws.identity_center` has no effect",
                "configure discovery under `dynamic_targets.<name>.discovery.identity_center`",
            );
        }
        settings
    }
}
