//! `secretsync context`: the AWS execution context — who the credentials belong to, the
//! account's place in its organization, and for every AWS source, target and merge store the
//! role the run would assume and whether it can. The same checks as `validate --check-aws`,
//! without the summary of the pipeline.

use super::validate::render_checks;
use super::{init_logging, load};
use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::output::Printer;

pub(super) async fn run(global: &GlobalArgs, printer: Printer) -> Result<u8, CliError> {
    let pipeline = load(global, printer)?;
    init_logging(global, Some(&pipeline))?;
    let context = crate::store::BuildContext::new(&pipeline);
    let lines = Box::pin(super::traced(
        "context",
        crate::store::aws::check_pipeline(&pipeline, context.aws()),
    ))
    .await;
    Ok(render_checks("AWS execution context", "no AWS", &lines, printer))
}
