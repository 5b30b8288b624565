//! The one place AWS configuration is built: region, endpoint override,
//! retry policy, timeouts and the HTTP proxy. Everything else receives
//! clients made from this config (the S3 and cross-region ECR clients are
//! built from it too, so they inherit its HTTP client).

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::Connector;
use aws_smithy_http_client::proxy::{ProxyConfig, ProxyError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::env::Environment;
use crate::proxy::{ProxySettings, ProxyUrl};
use crate::refusal::{Refusal, Setting};

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

/// Bounds on every AWS call, so a connection that is accepted but never
/// answered cannot hold the job past its own limits: the SDK abandons an
/// attempt after `attempt`, retries within its budget, and gives the whole
/// call up after `operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
}

impl CallTimeouts {
    /// The longest any one call may take: a describe or create answers in
    /// well under a second, so 90 s is slack for a slow day, not a wait.
    const MAX_OPERATION: Duration = Duration::from_secs(90);
    /// One attempt; three fit in an operation so a stalled connection is
    /// retried on a fresh one.
    const MAX_ATTEMPT: Duration = Duration::from_secs(20);

    /// Derived from the job's own bound (`wait-timeout`): no call may take
    /// longer than the job would wait for the whole deploy.
    pub fn within(wait_timeout: Duration) -> Self {
        let operation = wait_timeout.clamp(Duration::from_secs(1), Self::MAX_OPERATION);
        let attempt = (operation / 3).clamp(Duration::from_millis(500), Self::MAX_ATTEMPT);
        Self {
            connect: attempt.min(Duration::from_secs(5)),
            attempt,
            operation,
        }
    }

    fn to_sdk(self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// The region to use: the `aws-region` input, else `AWS_REGION`, else
/// `AWS_DEFAULT_REGION` (what aws-actions/configure-aws-credentials exports).
/// Missing is a bad input, found before any AWS call.
pub fn resolve_region(input: Option<&str>, env: &Environment) -> Result<String, Refusal> {
    input
        .or_else(|| env.get("AWS_REGION"))
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .map(str::to_string)
        .ok_or_else(|| {
            Refusal::new(
                Setting::Region,
                "",
                "no AWS region is configured",
                "set the `aws-region` input, or AWS_REGION (aws-actions/configure-aws-credentials does this)",
            )
        })
}

/// Loads the SDK configuration. `AWS_ENDPOINT_URL` (the local emulator in
/// tests and the demo) is taken from the captured environment explicitly so
/// it is visible here rather than implied. Every call (the credential
/// providers' included) goes through [`http_client`]: the SDK's own client
/// on ring, with the proxy when there is one.
pub async fn load_config(
    region: String,
    retry: RetryPolicy,
    timeouts: CallTimeouts,
    proxy: &ProxySettings,
    env: &Environment,
) -> anyhow::Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .retry_config(retry.to_sdk())
        .timeout_config(timeouts.to_sdk());
    if let Some(endpoint) = env.get("AWS_ENDPOINT_URL") {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(credentials) = environment_credentials(env) {
        loader = loader.credentials_provider(credentials);
    }
    Ok(loader.http_client(http_client(proxy)?).load().await)
}

/// The one TLS crypto provider of the binary: ring, which the GitHub
/// client (hyper-rustls) needs too. The SDK's `default-https-client` would
/// link aws-lc beside it (a second provider, and a large C build).
const CRYPTO: CryptoMode = CryptoMode::Ring;

/// The SDK's HTTPS client (hyper, rustls on [`CRYPTO`], the platform's CA
/// roots), with the proxy of each scheme when one is configured.
/// `ProxySettings` was validated with the same rules the SDK applies, so an
/// error here means the two disagree, and says so rather than going around
/// the proxy.
fn http_client(proxy: &ProxySettings) -> anyhow::Result<SharedHttpClient> {
    if !proxy.is_configured() {
        return Ok(direct_http_client());
    }
    let rules = proxy.bypass_rules();
    let config = |url: &Option<ProxyUrl>, scheme: fn(&str) -> Result<ProxyConfig, ProxyError>| {
        url.as_ref()
            .map(|url| {
                scheme(url.as_str())
                    .map(|config| config.no_proxy(&rules))
                    .map_err(|error| anyhow::anyhow!("the proxy {url} cannot be used: {error}"))
            })
            .transpose()
    };
    Ok(SharedHttpClient::new(ProxiedHttpClient {
        https: config(&proxy.https, |url| ProxyConfig::https(url))?,
        http: config(&proxy.http, |url| ProxyConfig::http(url))?,
        connectors: Mutex::new(Vec::new()),
    }))
}

/// The SDK's HTTPS client on [`CRYPTO`], without a proxy: a job's when no
/// proxy is configured, and the one the tests' own SDK clients need (the
/// SDK crates are built without a default client).
pub fn direct_http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CRYPTO))
        .build_https()
}

/// An [`HttpClient`] whose connector sends each request through the proxy
/// of its scheme. The SDK's own `ProxyConfig` holds one proxy URL, while
/// HTTPS_PROXY and HTTP_PROXY may differ: so one SDK connector per scheme,
/// each with its proxy, and a request goes to the one of its URL's scheme.
#[derive(Debug)]
struct ProxiedHttpClient {
    https: Option<ProxyConfig>,
    http: Option<ProxyConfig>,
    /// Connectors already made, by the settings they were made for: the SDK
    /// asks for a connector on every attempt, and a new one each time would
    /// open a new connection (and TLS session) for every call.
    connectors: Mutex<Vec<(ConnectorKey, SharedHttpConnector)>>,
}

/// What a connector depends on in [`HttpConnectorSettings`].
type ConnectorKey = (Option<Duration>, Option<Duration>);

impl HttpClient for ProxiedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        // A panic elsewhere while the lock was held cannot leave the list
        // half-written: it only ever gets whole entries pushed.
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(made_for, _)| *made_for == key) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(SchemeRouted {
            https: sdk_connector(self.https.as_ref(), settings, components),
            http: sdk_connector(self.http.as_ref(), settings, components),
        });
        connectors.push((key, connector.clone()));
        connector
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        // What the default client reports (in the user agent): it is the
        // same hyper client underneath.
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}

/// The SDK's connector on [`CRYPTO`], with `proxy` when there is one.
fn sdk_connector(
    proxy: Option<&ProxyConfig>,
    settings: &HttpConnectorSettings,
    components: &RuntimeComponents,
) -> SharedHttpConnector {
    let mut builder = Connector::builder().connector_settings(settings.clone());
    builder.set_sleep_impl(components.sleep_impl());
    if let Some(proxy) = proxy {
        builder = builder.proxy_config(proxy.clone());
    }
    SharedHttpConnector::new(builder.tls_provider(tls::Provider::Rustls(CRYPTO)).build())
}

/// Sends `http://` requests to one connector and every other to the other.
#[derive(Debug)]
struct SchemeRouted {
    https: SharedHttpConnector,
    http: SharedHttpConnector,
}

impl HttpConnector for SchemeRouted {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if is_plain_http(request.uri()) {
            self.http.call(request)
        } else {
            self.https.call(request)
        }
    }
}

/// Whether a request URL is `http://` (an endpoint override, the instance
/// metadata service) rather than `https://`.
fn is_plain_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

/// Static keys from the captured environment, read as the SDK's own first
/// provider reads them from the process (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` or `SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_ACCOUNT_ID`): what aws-actions/configure-aws-credentials exports.
/// Taken from the snapshot so a job run in-process sees the keys it was
/// given; without them the SDK's default chain (web identity, container and
/// instance metadata, profiles) is used.
fn environment_credentials(env: &Environment) -> Option<Credentials> {
    let access_key = env.get("AWS_ACCESS_KEY_ID")?;
    let secret_key = env
        .get("AWS_SECRET_ACCESS_KEY")
        .or_else(|| env.get("SECRET_ACCESS_KEY"))?;
    let mut builder = Credentials::builder()
        .access_key_id(access_key)
        .secret_access_key(secret_key)
        .provider_name("Environment");
    if let Some(token) = env.get("AWS_SESSION_TOKEN") {
        builder = builder.session_token(token);
    }
    if let Some(account) = env.get("AWS_ACCOUNT_ID") {
        builder = builder.account_id(account);
    }
    Some(builder.build())
}

/// Turns an SDK error into one readable line: `Code: message` for an error
/// AWS returned, the whole cause chain for a transport failure (timeout,
/// connection refused) where the SDK's own Display says only "dispatch
/// failure". An answer without a readable error (an empty or HTML body from
/// a proxy or load balancer) is described by what is known of it: the
/// operation, the HTTP status, the request id and the body's first bytes.
pub fn aws_error<E>(error: SdkError<E, HttpResponse>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let operation = operation_name::<E>();
    match &error {
        SdkError::ServiceError(context) => {
            let service = context.err();
            let raw = context.raw();
            let status = raw.status().as_u16();
            match (service.code(), service.message()) {
                (Some(code), message) => {
                    let message = message.map_or_else(
                        || format!("(no message; {operation} answered HTTP {status})"),
                        str::to_string,
                    );
                    if is_throttling(code) {
                        anyhow::Error::new(Throttled(format!("{code}: {message}{RETRY_HINT}")))
                    } else {
                        anyhow::anyhow!("{code}: {message}")
                    }
                }
                (None, _) => anyhow::anyhow!(
                    "{}",
                    unreadable_answer(
                        operation,
                        status,
                        service
                            .meta()
                            .extra("aws_request_id")
                            .or_else(|| request_id_of(raw)),
                        raw.body().bytes().unwrap_or_default()
                    )
                ),
            }
        }
        SdkError::ResponseError(context) => {
            let raw = context.raw();
            anyhow::anyhow!(
                "{}",
                unreadable_answer(
                    operation,
                    raw.status().as_u16(),
                    request_id_of(raw),
                    raw.body().bytes().unwrap_or_default()
                )
            )
        }
        _ => anyhow::anyhow!("{operation}: {}", DisplayErrorContext(&error)),
    }
}

/// The request id AWS puts in the answer's headers, when there is one.
fn request_id_of(raw: &HttpResponse) -> Option<&str> {
    ["x-amzn-requestid", "x-amz-request-id", "x-amzn-request-id"]
        .iter()
        .find_map(|name| raw.headers().get(*name))
}

/// The API operation of an SDK error type: `ListTasksError` in
/// `aws_sdk_ecs::operation::list_tasks` is `ListTasks`. The generated error
/// types carry no operation name of their own; the type name is the SDK's
/// stable naming scheme (one error type per operation).
fn operation_name<E>() -> &'static str {
    let name = std::any::type_name::<E>();
    let short = name.rsplit("::").next().unwrap_or(name);
    short.strip_suffix("Error").unwrap_or(short)
}

/// Describes an answer whose error could not be read (pure).
fn unreadable_answer(
    operation: &str,
    status: u16,
    request_id: Option<&str>,
    body: &[u8],
) -> String {
    let mut text = format!("{operation} answered HTTP {status} with no readable AWS error");
    if let Some(id) = request_id {
        text.push_str(&format!(" (request id {id})"));
    }
    let shown: String = String::from_utf8_lossy(body)
        .chars()
        .take(BODY_PREFIX_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let shown = shown.trim();
    if shown.is_empty() {
        text.push_str("; the body was empty");
    } else {
        text.push_str(&format!("; the body began: {shown:?}"));
    }
    if status >= 500 {
        text.push_str(&format!(
            "; the AWS SDK retried it as often as `max-retries` allows (a {status} is retried), so the service or a proxy in between is failing: retry the job later, or raise `max-retries`"
        ));
    } else {
        text.push_str(
            "; a proxy or firewall between the runner and AWS may have answered instead of AWS (check HTTPS_PROXY and AWS_ENDPOINT_URL)",
        );
    }
    text
}

/// How much of an unreadable body is quoted.
const BODY_PREFIX_CHARS: usize = 120;

/// Said after an error the SDK retried as far as it was allowed.
const RETRY_HINT: &str = " (the AWS SDK retried this throttling error as often as `max-retries` allows: raise `max-retries`, or set `retry-mode: adaptive` to slow the calls down)";

/// An error AWS answered with a throttling code, after the SDK's retries:
/// a caller that polls can slow down ([`is_throttled`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Throttled(String);

/// Whether AWS throttled the call `error` (from [`aws_error`], with any
/// context added since) comes from.
pub fn is_throttled(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Throttled>())
}

/// Whether the SDK's retry classifier treats `code` as throttling: its own
/// list, so the hint is given exactly for the errors it retried as such.
fn is_throttling(code: &str) -> bool {
    aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_keys_come_from_the_captured_environment() {
        let env = Environment::from_pairs([
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_ACCOUNT_ID", "123456789012"),
        ]);
        let credentials = environment_credentials(&env).expect("keys");
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret");
        assert_eq!(credentials.session_token(), Some("token"));
        assert_eq!(
            credentials.account_id().map(|a| a.as_str()),
            Some("123456789012")
        );
        // The SDK's fallback name for the secret.
        let fallback = Environment::from_pairs([
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("SECRET_ACCESS_KEY", "other"),
        ]);
        let credentials = environment_credentials(&fallback).expect("keys");
        assert_eq!(credentials.secret_access_key(), "other");
        assert_eq!(credentials.session_token(), None);
        // Half a key pair (or none) leaves it to the default chain.
        for partial in [
            Environment::from_pairs([("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")]),
            Environment::from_pairs([("AWS_SECRET_ACCESS_KEY", "secret")]),
            Environment::default(),
        ] {
            assert!(environment_credentials(&partial).is_none());
        }
    }

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
        assert_eq!(error.setting, Setting::Region);
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
    fn an_answer_without_a_readable_error_says_what_is_known() {
        let empty = unreadable_answer("ListStackResources", 500, Some("req-1"), b"");
        for fragment in [
            "ListStackResources answered HTTP 500",
            "request id req-1",
            "the body was empty",
            "retried",
        ] {
            assert!(empty.contains(fragment), "{fragment}: {empty}");
        }
        let html = unreadable_answer("DescribeTasks", 403, None, b"<html>\n<h1>Forbidden</h1>");
        assert!(html.contains("HTTP 403"), "{html}");
        assert!(
            html.contains(r#"the body began: "<html> <h1>Forbidden</h1>""#),
            "{html}"
        );
        assert!(html.contains("proxy"), "{html}");
        assert!(!html.contains("(no message)"), "{html}");
        let long = unreadable_answer("X", 502, None, &[b'a'; 500]);
        assert!(long.contains(&"a".repeat(BODY_PREFIX_CHARS)), "{long}");
        assert!(!long.contains(&"a".repeat(BODY_PREFIX_CHARS + 1)), "{long}");
    }

    #[test]
    fn operation_names_come_from_the_sdk_error_types() {
        assert_eq!(
            operation_name::<aws_sdk_ecs::operation::list_tasks::ListTasksError>(),
            "ListTasks"
        );
        assert_eq!(
            operation_name::<
                aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsError,
            >(),
            "DescribeStackEvents"
        );
    }

    #[test]
    fn call_timeouts_stay_within_the_jobs_bound() {
        let short = CallTimeouts::within(Duration::from_secs(6));
        assert_eq!(short.operation, Duration::from_secs(6));
        assert_eq!(short.attempt, Duration::from_secs(2));
        assert_eq!(short.connect, Duration::from_secs(2));
        let long = CallTimeouts::within(Duration::from_secs(3600));
        assert_eq!(long.operation, Duration::from_secs(90));
        assert_eq!(long.attempt, Duration::from_secs(20));
        assert_eq!(long.connect, Duration::from_secs(5));
        let tiny = CallTimeouts::within(Duration::ZERO);
        assert_eq!(tiny.operation, Duration::from_secs(1));
        assert_eq!(tiny.attempt, Duration::from_millis(500));
    }

    #[test]
    fn a_proxy_routes_the_http_client_by_scheme_and_none_keeps_the_sdks_own() {
        let direct = http_client(&ProxySettings::default()).unwrap();
        assert!(format!("{direct:?}").contains("SharedHttpClient"));
        assert!(!format!("{direct:?}").contains("ProxiedHttpClient"));
        let env = Environment::from_pairs([
            ("HTTPS_PROXY", "http://secure:3128"),
            ("HTTP_PROXY", "http://plain:3128"),
            ("NO_PROXY", "127.0.0.1"),
        ]);
        let proxy = crate::proxy::resolve_proxy(None, &env).unwrap();
        let proxied = http_client(&proxy).unwrap();
        assert!(format!("{proxied:?}").contains("ProxiedHttpClient"));
        let only_https = crate::proxy::resolve_proxy(
            None,
            &Environment::from_pairs([("https_proxy", "https://user:pw@secure:8443")]),
        )
        .unwrap();
        let only_https = http_client(&only_https).unwrap();
        assert!(format!("{only_https:?}").contains("ProxiedHttpClient"));
    }

    #[test]
    fn requests_are_routed_by_the_scheme_of_their_url() {
        for (url, plain) in [
            ("http://127.0.0.1:5000/", true),
            ("HTTP://169.254.169.254/latest", true),
            ("https://cloudformation.us-east-1.amazonaws.com/", false),
            ("https://s3.amazonaws.com/http://", false),
            ("http:/", false),
        ] {
            assert_eq!(is_plain_http(url), plain, "{url}");
        }
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
