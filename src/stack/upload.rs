//! The user's bucket (`s3-bucket`): templates sent by TemplateURL (one over
//! CloudFormation's 51,200-byte inline limit, or any with `s3-upload:
//! always`) and the objects packaging makes (`stack/package.rs`).
//!
//! The key is the template's SHA-256 under `s3-prefix`, so the same template
//! is the same object: the plan asks S3 whether it is there already
//! (HeadObject) and the apply uploads it only when it is not. The bucket is
//! looked at in the plan (HeadBucket), so a missing bucket or a missing
//! permission is refused before anything changes.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use super::options::TemplateUpload;
use super::package::{Artifact, ArtifactStore, LocalTemplate, build};
use super::template::MAX_TEMPLATE_BODY_BYTES;
use crate::aws::aws_error;
use crate::refusal::{CheckError, Refusal, Setting};

/// The upload the plan decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    pub bucket: String,
    pub key: String,
    /// What CloudFormation is given as TemplateURL.
    pub url: String,
    /// False when the object is there already (the same template was
    /// uploaded before): nothing is written.
    pub put: bool,
}

/// The S3 client for the template bucket. Against an endpoint override (a
/// local emulator) buckets are addressed by path: a loopback host has no
/// bucket subdomains.
pub fn template_bucket_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// Whether the template goes by URL: always with `s3-upload: always`,
/// else only when it is too large to go inline.
pub fn is_uploaded(upload: &TemplateUpload, body_len: usize) -> bool {
    upload.always || body_len > MAX_TEMPLATE_BODY_BYTES
}

/// `<prefix>/<sha256 of the body>.template` (no prefix: the name alone).
pub fn template_key(prefix: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    if prefix.is_empty() {
        format!("{hex}.template")
    } else {
        format!("{prefix}/{hex}.template")
    }
}

/// The URL CloudFormation reads the template from: the bucket's
/// virtual-hosted URL in its region (`.amazonaws.com.cn` in China), or,
/// with an endpoint override (a local emulator), the object's path-style
/// URL on that endpoint.
pub fn template_url(bucket: &str, region: &str, key: &str, endpoint: Option<&str>) -> String {
    match endpoint {
        Some(endpoint) => format!("{}/{bucket}/{key}", endpoint.trim_end_matches('/')),
        None => {
            let suffix = if region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            format!("https://{bucket}.s3.{region}.{suffix}/{key}")
        }
    }
}

/// The bucket's region, read with HeadBucket (`s3:ListBucket`): a missing
/// bucket or a missing permission is refused here, before anything changes.
pub async fn bucket_region(
    client: &Client,
    upload: &TemplateUpload,
    stack_region: &str,
) -> Result<String, CheckError> {
    let bucket = &upload.bucket;
    match client.head_bucket().bucket(bucket).send().await {
        Ok(head) => Ok(head
            .bucket_region()
            .map(str::to_string)
            .unwrap_or_else(|| stack_region.to_string())),
        Err(error) => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            let problem = match status {
                Some(404) => "does not exist (HeadBucket answered 404)".to_string(),
                Some(403) => {
                    "cannot be read with these credentials (HeadBucket answered 403)".to_string()
                }
                _ => {
                    return Err(CheckError::Failed(
                        aws_error(error)
                            .context(format!("looking at bucket {bucket} (HeadBucket)")),
                    ));
                }
            };
            Err(CheckError::from(Refusal::new(
                Setting::TemplateBucket,
                bucket,
                problem,
                "create the bucket in the stack's region, and allow s3:ListBucket on it and s3:GetObject and s3:PutObject on its objects",
            )))
        }
    }
}

/// Whether the object still has to be written: HeadObject (`s3:GetObject`)
/// answers 404.
pub async fn is_missing(client: &Client, bucket: &str, key: &str) -> Result<bool, CheckError> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(false),
        Err(error)
            if error
                .raw_response()
                .is_some_and(|r| r.status().as_u16() == 404) =>
        {
            Ok(true)
        }
        Err(error) => Err(CheckError::Failed(
            aws_error(error).context(format!("looking for s3://{bucket}/{key} (HeadObject)")),
        )),
    }
}

/// Plans the template's own upload with read-only calls, in the bucket's
/// region (from [`bucket_region`]).
pub async fn plan_upload(
    client: &Client,
    upload: &TemplateUpload,
    body: &str,
    region: &str,
    endpoint: Option<&str>,
) -> Result<UploadPlan, CheckError> {
    let key = template_key(&upload.prefix, body);
    let put = is_missing(client, &upload.bucket, &key).await?;
    Ok(UploadPlan {
        url: template_url(&upload.bucket, region, &key, endpoint),
        bucket: upload.bucket.clone(),
        key,
        put,
    })
}

/// The packaged objects the plan looked for: each with whether it must be
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagePlan {
    pub bucket: String,
    pub artifacts: Vec<(Artifact, bool)>,
}

impl PackagePlan {
    /// One line per object: where it comes from, where it goes, and
    /// whether it is there already.
    pub fn lines(&self) -> Vec<String> {
        self.artifacts
            .iter()
            .map(|(artifact, put)| {
                format!(
                    "{} → s3://{}/{}{}",
                    artifact.source.display(),
                    self.bucket,
                    artifact.key,
                    if *put { "" } else { " (there already)" }
                )
            })
            .collect()
    }
}

/// Packages the template tree for the bucket (in its region) and looks for
/// each object (HeadObject): read-only.
pub async fn plan_package(
    client: &Client,
    tree: &LocalTemplate,
    upload: &TemplateUpload,
    region: &str,
    endpoint: Option<&str>,
) -> Result<(PackagePlan, String), CheckError> {
    let store = ArtifactStore {
        bucket: upload.bucket.clone(),
        prefix: upload.prefix.clone(),
        region: region.to_string(),
        endpoint: endpoint.map(str::to_string),
    };
    let packaged = build(tree, &store).map_err(|error| {
        CheckError::Failed(error.context("packaging the template's local files"))
    })?;
    let mut artifacts = Vec::with_capacity(packaged.artifacts.len());
    for artifact in packaged.artifacts {
        let put = is_missing(client, &upload.bucket, &artifact.key).await?;
        artifacts.push((artifact, put));
    }
    Ok((
        PackagePlan {
            bucket: upload.bucket.clone(),
            artifacts,
        },
        packaged.body,
    ))
}

/// Writes the packaged objects the plan did not find; each one's `s3://`
/// URI joins `written` as soon as S3 confirms it (also when a later one
/// fails).
pub async fn upload_package(
    client: &Client,
    plan: &PackagePlan,
    written: &mut Vec<String>,
) -> anyhow::Result<()> {
    for (artifact, _) in plan.artifacts.iter().filter(|(_, put)| *put) {
        put_object(client, &plan.bucket, &artifact.key, artifact.bytes.clone())
            .await
            .map_err(|error| error.context(format!("uploading {}", artifact.source.display())))?;
        written.push(format!("s3://{}/{}", plan.bucket, artifact.key));
    }
    Ok(())
}

async fn put_object(
    client: &Client,
    bucket: &str,
    key: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<()> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .map_err(aws_error)
        .map_err(|error| error.context(format!("writing s3://{bucket}/{key} (PutObject)")))?;
    Ok(())
}

/// Writes the template (PutObject), unless the plan found it there.
pub async fn upload_template(client: &Client, plan: &UploadPlan, body: &str) -> anyhow::Result<()> {
    if !plan.put {
        return Ok(());
    }
    put_object(client, &plan.bucket, &plan.key, body.as_bytes().to_vec())
        .await
        .map_err(|error| error.context("uploading the template"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_templates_digest_under_the_prefix() {
        // sha256("Resources: {}\n")
        let body = "Resources: {}\n";
        let key = template_key("cfn/web", body);
        assert!(key.starts_with("cfn/web/"), "{key}");
        assert!(key.ends_with(".template"));
        assert_eq!(key.len(), "cfn/web/".len() + 64 + ".template".len());
        assert_eq!(
            template_key("cfn/web", body),
            key,
            "the same body, the same key"
        );
        assert_ne!(template_key("cfn/web", "Resources: {A: 1}\n"), key);
        assert_eq!(
            template_key("", ""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.template"
        );
    }

    #[test]
    fn the_url_is_virtual_hosted_in_the_buckets_region_or_on_the_endpoint() {
        assert_eq!(
            template_url("deploys", "eu-west-1", "a/b.template", None),
            "https://deploys.s3.eu-west-1.amazonaws.com/a/b.template"
        );
        assert_eq!(
            template_url("deploys", "cn-north-1", "b.template", None),
            "https://deploys.s3.cn-north-1.amazonaws.com.cn/b.template"
        );
        assert_eq!(
            template_url(
                "deploys",
                "us-east-1",
                "b.template",
                Some("http://127.0.0.1:4566/")
            ),
            "http://127.0.0.1:4566/deploys/b.template"
        );
    }

    #[test]
    fn only_large_templates_go_by_url_unless_always() {
        let auto = TemplateUpload {
            bucket: "b".into(),
            prefix: String::new(),
            always: false,
        };
        assert!(!is_uploaded(&auto, MAX_TEMPLATE_BODY_BYTES));
        assert!(is_uploaded(&auto, MAX_TEMPLATE_BODY_BYTES + 1));
        let always = TemplateUpload {
            always: true,
            ..auto
        };
        assert!(is_uploaded(&always, 10));
    }
}
