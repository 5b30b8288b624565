//! The one place AWS configuration is built: region, endpoint override and
//! retry policy. Everything else receives clients made from this config.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::env::Environment;
use crate::inputs::InputError;

/// How the SDK retries a call that was throttled, got a 5xx, timed out or
/// lost its connection. The retrying itself is the SDK's (exponential backoff
/// with jitter and a retry quota); this only chooses its mode and budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub mode: RetryMode,
    /// Retries after the first attempt (`max-retries`).
    pub max_retries: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// Back off and retry transient errors.
    Standard,
    /// Standard, plus a client-side rate limiter that slows every call down
    /// after throttling: for accounts where many pipelines share API limits.
    Adaptive,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl RetryPolicy {
    /// Four retries (five attempts) in standard mode: one more than the SDK's
    /// default, because a deploy makes hundreds of calls over many minutes
    /// and one throttled describe call must not fail it.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        mode: RetryMode::Standard,
        max_retries: 4,
    };

    fn to_sdk(self) -> RetryConfig {
        let config = match self.mode {
            RetryMode::Standard => RetryConfig::standard(),
            RetryMode::Adaptive => RetryConfig::adaptive(),
        };
        config.with_max_attempts(self.max_retries + 1)
    }
}

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
pub async fn load_config(region: String, retry: RetryPolicy, env: &Environment) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .retry_config(retry.to_sdk());
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
        Some(service) => {
            let code = service.code().unwrap_or("AWS error");
            let hint = if is_throttling(code) { RETRY_HINT } else { "" };
            anyhow::anyhow!(
                "{code}: {}{hint}",
                service.message().unwrap_or("(no message)")
            )
        }
        None => anyhow::anyhow!("{}", DisplayErrorContext(&error)),
    }
}

/// Said after an error the SDK retried as far as it was allowed.
const RETRY_HINT: &str = " (the AWS SDK retried this throttling error as often as `max-retries` allows: raise `max-retries`, or set `retry-mode: adaptive` to slow the calls down)";

/// Whether the SDK's retry classifier treats `code` as throttling: its own
/// list, so the hint is given exactly for the errors it retried as such.
fn is_throttling(code: &str) -> bool {
    aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code)
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

    #[test]
    fn throttling_codes_of_every_protocol_are_recognised() {
        for code in [
            "Throttling",
            "ThrottlingException",
            "TooManyRequestsException",
        ] {
            assert!(is_throttling(code), "{code}");
        }
        assert!(!is_throttling("ValidationError"));
        assert!(!is_throttling("AccessDenied"));
    }

    #[test]
    fn retry_policy_counts_retries_after_the_first_attempt() {
        let standard = RetryPolicy::DEFAULT.to_sdk();
        assert_eq!(standard.max_attempts(), 5);
        assert_eq!(standard.mode(), aws_config::retry::RetryMode::Standard);
        let adaptive = RetryPolicy {
            mode: RetryMode::Adaptive,
            max_retries: 0,
        }
        .to_sdk();
        assert_eq!(adaptive.max_attempts(), 1);
        assert_eq!(adaptive.mode(), aws_config::retry::RetryMode::Adaptive);
    }
}
