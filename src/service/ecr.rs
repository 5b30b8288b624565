//! Checking an ECR image before anything is deployed: a missing tag would
//! otherwise show up ten minutes later as a service stuck on
//! CannotPullContainerError. Read-only calls only.

use anyhow::Context as _;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::ImageIdentifier;

use crate::aws::aws_error;
use crate::refusal::{CheckError, Refusal, Setting};
use crate::taskdef::image::ImageReference;

/// What ECR knows about an image.
#[derive(Debug)]
pub struct EcrImage {
    pub digest: String,
    /// Whether the repository lets a tag be pushed again (so the tag alone
    /// does not pin the image); `None` when the repository could not be
    /// read (that lookup only feeds a warning, so it never fails the deploy).
    pub tag_is_mutable: Option<bool>,
    /// Why the mutability is unknown.
    pub mutability_error: Option<anyhow::Error>,
}

/// Whether an ECR error means the image or repository is not there.
fn is_not_found<E: aws_sdk_ecr::error::ProvideErrorMetadata>(
    error: &aws_sdk_ecr::error::SdkError<E>,
) -> bool {
    error.as_service_error().is_some_and(|e| {
        matches!(
            e.code(),
            Some("ImageNotFoundException" | "RepositoryNotFoundException")
        )
    })
}

/// Looks the image up in its ECR repository. `setting` is where the image
/// came from, for the refusal a missing image gives (the deploy has not
/// started).
pub async fn inspect_ecr_image(
    client: &Client,
    reference: &ImageReference,
    registry_id: Option<&str>,
    repository_name: &str,
    setting: Setting,
) -> Result<EcrImage, CheckError> {
    let identifier = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => ImageIdentifier::builder().image_digest(digest).build(),
        (None, Some(tag)) => ImageIdentifier::builder().image_tag(tag).build(),
        (None, None) => ImageIdentifier::builder().image_tag("latest").build(),
    };
    let described = client
        .describe_images()
        .set_registry_id(registry_id.map(str::to_string))
        .repository_name(repository_name)
        .image_ids(identifier)
        .send()
        .await;
    let described = match described {
        Ok(described) => described,
        Err(error) if is_not_found(&error) => {
            let which = reference.digest().or(reference.tag()).unwrap_or("latest");
            return Err(CheckError::from(Refusal::new(
                setting,
                &reference.to_string(),
                format!("`{which}` is not in ECR repository {repository_name}"),
                "push the image first (the build job must finish before this deploy), or fix the tag; deploying it would leave the service failing with CannotPullContainerError",
            )));
        }
        Err(error) => {
            return Err(CheckError::Failed(
                aws_error(error).context(format!("looking up {reference} in ECR")),
            ));
        }
    };
    let digest = described
        .image_details()
        .first()
        .and_then(|d| d.image_digest())
        .unwrap_or_default()
        .to_string();
    let repositories = client
        .describe_repositories()
        .set_registry_id(registry_id.map(str::to_string))
        .repository_names(repository_name)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("reading ECR repository {repository_name}"));
    let (tag_is_mutable, mutability_error) = match repositories {
        Ok(repositories) => (
            Some(
                repositories
                    .repositories()
                    .first()
                    .and_then(|r| r.image_tag_mutability())
                    .is_none_or(|m| m.as_str() != "IMMUTABLE"),
            ),
            None,
        ),
        Err(error) => (None, Some(error)),
    };
    Ok(EcrImage {
        digest,
        tag_is_mutable,
        mutability_error,
    })
}
