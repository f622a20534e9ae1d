//! The one mapping of the SDK's errors.

use super::{DynamoDbStore, BACKEND, MAX_ATTEMPTS};
use crate::{Error, Result};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::result::CreateUnhandledError;

impl DynamoDbStore {
    /// The one mapping of the SDK's errors: `Ok(())` if DynamoDB refused
    /// the request's condition (`ConditionalCheckFailedException`, which
    /// conditional writes read as "not written"), else the error.
    ///
    /// Worth retrying: timeouts, connections that failed or broke, replies
    /// that could not be read, throttling and DynamoDB's own internal
    /// errors. Not: a bad request, missing credentials, a missing table.
    pub(super) fn refused<E, R>(&self, operation: &str, e: SdkError<E, R>) -> Result<()>
    where
        E: std::error::Error + Send + Sync + 'static + ProvideErrorMetadata + CreateUnhandledError,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let temporary = match &e {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
            SdkError::DispatchFailure(failure) => failure.is_io() || failure.is_timeout(),
            SdkError::ServiceError(service) => matches!(
                service.err().code(),
                Some(
                    "ProvisionedThroughputExceededException"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                        | "TransactionConflictException"
                )
            ),
            _ => false,
        };
        let e = e.into_service_error();
        if e.code() == Some("ConditionalCheckFailedException") {
            return Ok(());
        }
        let detail = match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!(" ({code}: {message})"),
            (Some(code), None) => format!(" ({code})"),
            // No answer from DynamoDB (no credentials, no connection): the
            // cause is down the error's source chain.
            _ => format!(" ({})", causes(&e)),
        };
        let context = format!("{operation} on table {}{detail}", self.table);
        Err(Error::backend(BACKEND, context, e).temporary_if(temporary))
    }

    /// The error of a request that has no condition.
    pub(super) fn error<E, R>(&self, operation: &str, e: SdkError<E, R>) -> Error
    where
        E: std::error::Error + Send + Sync + 'static + ProvideErrorMetadata + CreateUnhandledError,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match self.refused(operation, e) {
            Err(e) => e,
            // Only a conditional request can fail its condition.
            Ok(()) => Error::backend(
                BACKEND,
                format!("{operation} on table {}", self.table),
                "DynamoDB refused a condition this request does not have",
            ),
        }
    }

    pub(super) fn build_error(
        &self,
        operation: &str,
        e: aws_sdk_dynamodb::error::BuildError,
    ) -> Error {
        Error::backend(
            BACKEND,
            format!("building a {operation} request for table {}", self.table),
            e,
        )
    }

    pub(super) fn gave_up(&self, operation: &str) -> Error {
        Error::backend(
            BACKEND,
            format!("{operation} on table {}", self.table),
            format!("items still unprocessed after {MAX_ATTEMPTS} attempts (throttled)"),
        )
    }
}

/// `e` and its sources, each as it displays itself, joined by `: ` — the
/// SDK's own errors say only "dispatch failure" at the top. (Not the SDK's
/// `DisplayErrorContext`, which appends a `Debug` dump of the response.)
pub(super) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn an_sdk_error_names_its_causes() {
        let e = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "other",
                Some(Box::new(Layer("no credentials in the environment", None))),
            ))),
        );
        assert_eq!(
            causes(&e),
            "dispatch failure: other: no credentials in the environment"
        );
        // A cause its parent already spells out is not repeated.
        let e = Layer("timed out: io", Some(Box::new(Layer("io", None))));
        assert_eq!(causes(&e), "timed out: io");
    }
}
