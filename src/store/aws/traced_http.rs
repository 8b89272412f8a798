//! The run's one AWS HTTPS client, wrapped so that every answer's status and request id land on
//! the call's span when traces are exported: AWS support asks for the request id, and the SDK
//! hands it to callers only on some errors. Used only with traces on.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;

/// The headers AWS puts its request id in: `x-amzn-RequestId` (JSON and query protocols:
/// Secrets Manager, STS, Organizations, …) and `x-amz-request-id` (S3).
const REQUEST_ID_HEADERS: [&str; 2] = ["x-amzn-requestid", "x-amz-request-id"];

/// `inner`, recording each answer on the resilience layer's `call` span of the request (not the
/// current span: with the SDK's logs on, that is one of the SDK's, which traces leave out).
pub(super) fn traced(inner: SharedHttpClient) -> SharedHttpClient {
    SharedHttpClient::new(Traced(inner))
}

#[derive(Debug)]
struct Traced(SharedHttpClient);

impl HttpClient for Traced {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(TracedConnector(self.0.http_connector(settings, components)))
    }

    fn validate_base_client_config(
        &self,
        runtime_components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.validate_base_client_config(runtime_components, cfg)
    }

    fn validate_final_config(&self, runtime_components: &RuntimeComponents, cfg: &ConfigBag) -> Result<(), BoxError> {
        self.0.validate_final_config(runtime_components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

#[derive(Debug)]
struct TracedConnector(SharedHttpConnector);

impl HttpConnector for TracedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let span = crate::telemetry::current_call();
        let answer = self.0.call(request);
        HttpConnectorFuture::new(async move {
            let answer = answer.await;
            if let Ok(response) = &answer {
                let request_id = REQUEST_ID_HEADERS.iter().find_map(|name| response.headers().get(*name));
                crate::telemetry::record_response(&span, response.status().as_u16(), request_id);
            }
            answer
        })
    }
}
