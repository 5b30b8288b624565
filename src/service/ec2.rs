//! The two EC2 reads verification needs (DescribeSubnets,
//! DescribeSecurityGroups: which VPC each subnet and security group is in),
//! sent through the AWS SDK's own orchestrator — the SDK configuration's
//! credentials, SigV4 signing, retries, timeouts, HTTP client and proxy —
//! rather than through `aws-sdk-ec2`. That crate is generated for EC2's
//! whole API: 1.08 million lines of Rust (4.3 times `aws-sdk-ecs`), which
//! on CI's two cores would add minutes to both the lint and the test build
//! for two read-only calls. What is hand-written here is only the request
//! (EC2's query form) and the reading of the answer (its XML).

use std::collections::BTreeMap;
use std::fmt;

use aws_runtime::auth::SigV4OperationSigningConfig;
use aws_runtime::auth::sigv4::{SCHEME_ID as SIGV4_SCHEME_ID, SigV4AuthScheme};
use aws_runtime::retries::classifiers::AwsErrorCodeClassifier;
use aws_smithy_runtime::client::orchestrator::operation::Operation;
use aws_smithy_runtime::client::retries::classifiers::{
    HttpStatusCodeClassifier, TransientErrorClassifier,
};
use aws_smithy_runtime_api::client::auth::static_resolver::StaticAuthSchemeOptionResolver;
use aws_smithy_runtime_api::client::auth::{AuthSchemeOptionResolverParams, SharedAuthScheme};
use aws_smithy_runtime_api::client::identity::SharedIdentityResolver;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
use aws_smithy_runtime_api::client::runtime_plugin::StaticRuntimePlugin;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::Layer;
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::SigningName;
use aws_types::region::SigningRegion;

/// The EC2 API version the requests are written for.
const API_VERSION: &str = "2016-11-15";

/// An error EC2 answered (`<Errors><Error><Code>`), or an answer that could
/// not be read.
#[derive(Debug)]
pub struct Ec2Error {
    meta: ErrorMetadata,
}

impl fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.meta.code(), self.meta.message()) {
            (Some(code), Some(message)) => write!(f, "{code}: {message}"),
            (Some(code), None) => write!(f, "{code}"),
            _ => write!(f, "an unreadable EC2 answer"),
        }
    }
}

impl std::error::Error for Ec2Error {}

impl ProvideErrorMetadata for Ec2Error {
    fn meta(&self) -> &ErrorMetadata {
        &self.meta
    }
}

/// A resource's id and the VPC it is in.
pub type VpcOf = BTreeMap<String, String>;

/// What EC2 is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Subnets,
    SecurityGroups,
}

impl Lookup {
    pub fn action(self) -> &'static str {
        match self {
            Lookup::Subnets => "DescribeSubnets",
            Lookup::SecurityGroups => "DescribeSecurityGroups",
        }
    }

    /// The request's list parameter (`SubnetId.1=...`).
    fn id_parameter(self) -> &'static str {
        match self {
            Lookup::Subnets => "SubnetId",
            Lookup::SecurityGroups => "GroupId",
        }
    }

    /// The answer's set element and each item's id element.
    fn answer_elements(self) -> (&'static str, &'static str) {
        match self {
            Lookup::Subnets => ("subnetSet", "subnetId"),
            Lookup::SecurityGroups => ("securityGroupInfo", "groupId"),
        }
    }
}

/// EC2 through the SDK configuration's credentials, region, endpoint,
/// HTTP client, retries and timeouts.
#[derive(Clone)]
pub struct Ec2Reader {
    config: aws_config::SdkConfig,
}

impl Ec2Reader {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    /// The endpoint: the configuration's override (the emulator), else the
    /// region's regional endpoint (`.amazonaws.com.cn` in China).
    fn endpoint(&self) -> String {
        if let Some(url) = self.config.endpoint_url() {
            return url.trim_end_matches('/').to_string();
        }
        let region = self.config.region().map_or("us-east-1", |r| r.as_ref());
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://ec2.{region}.{suffix}")
    }

    /// The VPC of each of `ids`. EC2 refuses the whole call when one id does
    /// not exist (`InvalidSubnetID.NotFound`, `InvalidGroup.NotFound`), and
    /// that error names it.
    pub async fn vpcs(
        &self,
        lookup: Lookup,
        ids: &[String],
    ) -> Result<VpcOf, SdkError<Ec2Error, HttpResponse>> {
        if ids.is_empty() {
            return Ok(VpcOf::new());
        }
        let mut form = format!("Action={}&Version={API_VERSION}", lookup.action());
        for (index, id) in ids.iter().enumerate() {
            form.push_str(&format!(
                "&{}.{}={}",
                lookup.id_parameter(),
                index + 1,
                form_encoded(id)
            ));
        }
        self.operation(lookup).invoke(form).await
    }

    fn operation(&self, lookup: Lookup) -> Operation<String, VpcOf, Ec2Error> {
        let mut layer = Layer::new("ec2");
        layer.store_put(AuthSchemeOptionResolverParams::new(()));
        layer.store_put(SigV4OperationSigningConfig {
            region: self.config.region().map(|r| SigningRegion::from(r.clone())),
            name: Some(SigningName::from_static("ec2")),
            ..Default::default()
        });
        let mut components = RuntimeComponentsBuilder::new("ec2")
            .with_auth_scheme(SharedAuthScheme::new(SigV4AuthScheme::new()))
            .with_auth_scheme_option_resolver(Some(StaticAuthSchemeOptionResolver::new(vec![
                SIGV4_SCHEME_ID,
            ])));
        if let Some(credentials) = self.config.credentials_provider() {
            components = components
                .with_identity_resolver(SIGV4_SCHEME_ID, SharedIdentityResolver::new(credentials));
        }
        if let Some(client) = self.config.http_client() {
            components = components.with_http_client(Some(client));
        }
        let mut builder = Operation::builder()
            .service_name("ec2")
            .operation_name(lookup.action())
            .endpoint_url(&self.endpoint())
            .runtime_plugin(
                StaticRuntimePlugin::new()
                    .with_config(layer.freeze())
                    .with_runtime_components(components),
            )
            // What the SDK's generated clients classify: a connection that
            // broke or timed out, a 5xx, a throttling or transient code.
            .retry_classifier(TransientErrorClassifier::<Ec2Error>::new())
            .retry_classifier(HttpStatusCodeClassifier::default())
            .retry_classifier(AwsErrorCodeClassifier::<Ec2Error>::new())
            .with_connection_poisoning();
        if let Some(retry) = self.config.retry_config() {
            builder = builder.standard_retry(retry);
        }
        if let Some(timeouts) = self.config.timeout_config() {
            builder = builder.timeout_config(timeouts.clone());
        }
        if let Some(sleep) = self.config.sleep_impl() {
            builder = builder.sleep_impl(sleep);
        }
        if let Some(behavior) = self.config.behavior_version() {
            builder = builder.behavior_version(behavior);
        }
        let endpoint = self.endpoint();
        builder
            .serializer(move |form: String| {
                let mut request = HttpRequest::new(SdkBody::from(form));
                request.set_method("POST")?;
                request.set_uri(format!("{endpoint}/"))?;
                request
                    .headers_mut()
                    .insert("content-type", "application/x-www-form-urlencoded");
                Ok(request)
            })
            .deserializer(move |response: &HttpResponse| {
                let body = std::str::from_utf8(response.body().bytes().unwrap_or_default())
                    .unwrap_or_default();
                if response.status().is_success() {
                    read_vpcs(body, lookup)
                        .map_err(|meta| OrchestratorError::operation(Ec2Error { meta }))
                } else {
                    Err(OrchestratorError::operation(Ec2Error {
                        meta: read_error(body),
                    }))
                }
            })
            .build()
    }
}

/// `application/x-www-form-urlencoded` for an id (letters, digits and `-`
/// in practice; anything else escaped).
fn form_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The items of the answer's set: each one's id and `vpcId`.
fn read_vpcs(body: &str, lookup: Lookup) -> Result<VpcOf, ErrorMetadata> {
    let (set, id_element) = lookup.answer_elements();
    let unreadable = |why: String| {
        ErrorMetadata::builder()
            .message(format!("{} answer unreadable: {why}", lookup.action()))
            .build()
    };
    let mut document = aws_smithy_xml::decode::Document::new(body);
    let mut root = document
        .root_element()
        .map_err(|e| unreadable(e.to_string()))?;
    let mut found = VpcOf::new();
    while let Some(mut child) = root.next_tag() {
        if !child.start_el().matches(set) {
            continue;
        }
        while let Some(mut item) = child.next_tag() {
            let mut id = None;
            let mut vpc = None;
            while let Some(mut field) = item.next_tag() {
                let name = field.start_el().local().to_string();
                if name == id_element || name == "vpcId" {
                    let text = aws_smithy_xml::decode::try_data(&mut field)
                        .map_err(|e| unreadable(e.to_string()))?
                        .to_string();
                    if name == id_element {
                        id = Some(text);
                    } else {
                        vpc = Some(text);
                    }
                }
            }
            if let (Some(id), Some(vpc)) = (id, vpc) {
                found.insert(id, vpc);
            }
        }
    }
    Ok(found)
}

/// EC2's error answer: `<Response><Errors><Error><Code>…<Message>…`; the
/// other query services' `<ErrorResponse><Error>` (a proxy or gateway in
/// between may answer so) is read too.
fn read_error(body: &str) -> ErrorMetadata {
    let mut builder = ErrorMetadata::builder();
    let mut document = aws_smithy_xml::decode::Document::new(body);
    let Ok(mut root) = document.root_element() else {
        return builder.build();
    };
    let read_fields =
        |error: &mut aws_smithy_xml::decode::ScopedDecoder<'_, '_>,
         builder: &mut aws_smithy_types::error::metadata::Builder| {
            while let Some(mut field) = error.next_tag() {
                let name = field.start_el().local().to_string();
                let Ok(text) = aws_smithy_xml::decode::try_data(&mut field) else {
                    continue;
                };
                let taken = std::mem::take(builder);
                *builder = match name.as_str() {
                    "Code" => taken.code(text.to_string()),
                    "Message" => taken.message(text.to_string()),
                    _ => taken,
                };
            }
        };
    while let Some(mut child) = root.next_tag() {
        if child.start_el().matches("Errors") {
            while let Some(mut error) = child.next_tag() {
                read_fields(&mut error, &mut builder);
            }
        } else if child.start_el().matches("Error") {
            read_fields(&mut child, &mut builder);
        } else if matches!(child.start_el().local(), "RequestID" | "RequestId")
            && let Ok(text) = aws_smithy_xml::decode::try_data(&mut child)
        {
            builder = builder.custom("aws_request_id", text.to_string());
        }
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_read_with_their_vpc() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeSubnetsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>7a62c49f</requestId>
  <subnetSet>
    <item>
      <subnetId>subnet-1</subnetId>
      <state>available</state>
      <vpcId>vpc-a</vpcId>
      <tagSet><item><key>Name</key><value>x</value></item></tagSet>
    </item>
    <item><vpcId>vpc-b</vpcId><subnetId>subnet-2</subnetId></item>
  </subnetSet>
</DescribeSubnetsResponse>"#;
        let found = read_vpcs(body, Lookup::Subnets).unwrap();
        assert_eq!(
            found,
            VpcOf::from([
                ("subnet-1".to_string(), "vpc-a".to_string()),
                ("subnet-2".to_string(), "vpc-b".to_string()),
            ])
        );
    }

    #[test]
    fn security_groups_are_read_with_their_vpc() {
        let body = r#"<DescribeSecurityGroupsResponse>
  <securityGroupInfo>
    <item><ownerId>1</ownerId><groupId>sg-1</groupId><groupName>web</groupName>
      <ipPermissions><item><groupId>sg-9</groupId></item></ipPermissions>
      <vpcId>vpc-a</vpcId></item>
  </securityGroupInfo>
</DescribeSecurityGroupsResponse>"#;
        let found = read_vpcs(body, Lookup::SecurityGroups).unwrap();
        assert_eq!(
            found,
            VpcOf::from([("sg-1".to_string(), "vpc-a".to_string())])
        );
    }

    #[test]
    fn errors_give_code_message_and_request_id() {
        let body = "<Response><Errors><Error><Code>InvalidSubnetID.NotFound</Code>\
            <Message>The subnet ID 'subnet-9' does not exist</Message></Error></Errors>\
            <RequestID>r-1</RequestID></Response>";
        let meta = read_error(body);
        assert_eq!(meta.code(), Some("InvalidSubnetID.NotFound"));
        assert_eq!(
            meta.message(),
            Some("The subnet ID 'subnet-9' does not exist")
        );
        assert_eq!(meta.extra("aws_request_id"), Some("r-1"));
        assert_eq!(read_error("<html>bad gateway").code(), None);
        let query = read_error(
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r-2</RequestId></ErrorResponse>",
        );
        assert_eq!(query.code(), Some("Throttling"));
        assert_eq!(query.extra("aws_request_id"), Some("r-2"));
    }

    #[test]
    fn ids_are_form_encoded() {
        assert_eq!(form_encoded("subnet-0a1"), "subnet-0a1");
        assert_eq!(form_encoded("a b&c"), "a%20b%26c");
    }

    #[test]
    fn the_endpoint_is_the_override_or_the_regional_one() {
        let config = |region: &str, url: Option<&str>| {
            let mut builder = aws_config::SdkConfig::builder()
                .region(aws_types::region::Region::new(region.to_string()));
            if let Some(url) = url {
                builder = builder.endpoint_url(url);
            }
            Ec2Reader::new(&builder.build())
        };
        assert_eq!(
            config("eu-west-1", None).endpoint(),
            "https://ec2.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            config("cn-north-1", None).endpoint(),
            "https://ec2.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            config("us-east-1", Some("http://127.0.0.1:5000/")).endpoint(),
            "http://127.0.0.1:5000"
        );
    }
}
