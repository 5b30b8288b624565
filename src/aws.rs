//! The one place AWS configuration is built: region, endpoint override and
//! retry policy. Everything else receives clients made from this config.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::env::Environment;
use crate::inputs::InputError;

/// How many attempts the SDK makes per call (the first plus retries) under
/// its standard retry mode, which backs off on throttling and 5xx errors.
const MAX_ATTEMPTS: u32 = 5;

/// The region to use: the `aws-region` input, else `AWS_REGION`, else
/// `AWS_DEFAULT_REGION` (what aws-actions/configure-aws-credentials exports).
/// Missing is a bad input, found before any AWS call.
pub fn resolve_region(input: Option<&str>, env: &Environment) -> Result<String, InputError> {
    input
        .or_else(|| env.get("AWS_REGION"))
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .map(str::to_string)
        .ok_or_else(|| {
            InputError::new(
                "aws-region",
                "",
                "no AWS region is configured",
                "set the `aws-region` input, or AWS_REGION (aws-actions/configure-aws-credentials does this)",
            )
        })
}

/// Loads the SDK configuration. `AWS_ENDPOINT_URL` (the local emulator in
/// tests and the demo) is taken from the captured environment explicitly so
/// it is visible here rather than implied.
pub async fn load_config(region: String, env: &Environment) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    if let Some(endpoint) = env.get("AWS_ENDPOINT_URL") {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// Turns an SDK error into one readable line: `Code: message` for an error
/// AWS returned, the whole cause chain for a transport failure (timeout,
/// connection refused) where the SDK's own Display says only "dispatch
/// failure".
pub fn aws_error<E, R>(error: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error.as_service_error() {
        Some(service) => anyhow::anyhow!(
            "{}: {}",
            service.code().unwrap_or("AWS error"),
            service.message().unwrap_or("(no message)")
        ),
        None => anyhow::anyhow!("{}", DisplayErrorContext(&error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_wins_then_aws_region_then_default_region() {
        let env = Environment::from_pairs([
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
        ]);
        assert_eq!(
            resolve_region(Some("ap-south-1"), &env).unwrap(),
            "ap-south-1"
        );
        assert_eq!(resolve_region(None, &env).unwrap(), "eu-west-1");
        let env = Environment::from_pairs([("AWS_DEFAULT_REGION", "us-west-2")]);
        assert_eq!(resolve_region(None, &env).unwrap(), "us-west-2");
        let error = resolve_region(None, &Environment::default()).unwrap_err();
        assert_eq!(error.input, "aws-region");
    }
}
