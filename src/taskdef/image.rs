//! Container image references (`registry/repository:tag@digest`), composing
//! one from the `image` or `image-repository` + `image-tag` inputs, and the
//! policy that refuses mutable tags.
//!
//! The parser follows the grammar of distribution/reference
//! (<https://github.com/distribution/reference/blob/main/reference.go>):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ registry "/" ] path
//! registry   := host [ ":" port ]          host: DNS name, IPv4 or [IPv6]
//! path       := component ( "/" component )*
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest     := algorithm ":" hex
//! ```
//!
//! The reference is never split on `:` as a whole, because a `:` can start a
//! port (`host:5000/repo`), a tag, or the digest's hex (`@sha256:...`). The
//! `@` is split first (it appears only before the digest), then the registry
//! (the first `/` component when it looks like a host, the rule Docker uses),
//! and only then can a `:` mean a tag: path components cannot contain one.
//!
//! Why not the `oci-spec` crate's `distribution::Reference` (the one
//! `oci-client` re-exports): it fills in `latest` when no tag is given, so an
//! implicit `latest` cannot be told from an explicit one; it rewrites `nginx`
//! to `docker.io/library/nginx`, so the user's spelling is lost; its tag
//! pattern uses Unicode `\w`, so it accepts tags such as `tág` that no
//! registry does; and it brings the `regex` engine plus several proc-macro
//! crates into the build for one function.
//!
//! Display rule: a parsed reference displays exactly as written. The registry
//! stays as the user gave it (or absent), and Docker Hub short names stay
//! short (`nginx:1.27`, not `docker.io/library/nginx:1.27`), because ECS
//! pulls the string as given and users search their task definitions for
//! what they wrote. [`ImageReference::fully_qualified`] gives the normalised
//! form for comparisons.

use std::fmt;

use crate::refusal::Setting;

/// Action input names the fixes point to: a refusal's subject is its
/// [`Setting`], named by the caller; these only say which sibling input
/// holds the cure.
const IMAGE_INPUT: &str = "image";
const REPOSITORY_INPUT: &str = "image-repository";
const TAG_INPUT: &str = "image-tag";
const ALLOW_MUTABLE_TAG_INPUT: &str = "allow-mutable-tag";

/// distribution/reference caps the whole name (registry and path) at this.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The OCI distribution spec caps tags at this many characters.
const TAG_LENGTH_MAX: usize = 128;

const DOCKER_HUB_REGISTRY: &str = "docker.io";
/// Hosts that all mean Docker Hub; `index.docker.io` is the legacy name.
const DOCKER_HUB_REGISTRY_ALIASES: [&str; 3] =
    ["docker.io", "index.docker.io", "registry-1.docker.io"];
/// Docker Hub's namespace for single-component names (`nginx`).
const DOCKER_HUB_OFFICIAL_NAMESPACE: &str = "library";

const ECR_PUBLIC_REGISTRY: &str = "public.ecr.aws";
/// The ECR Public API exists only in us-east-1, whatever region deploys.
const ECR_PUBLIC_API_REGION: &str = "us-east-1";
/// ECR private registries are named by a 12-digit AWS account id.
const AWS_ACCOUNT_ID_LEN: usize = 12;

/// Tags that conventionally move to each new build, refused by default.
pub const DEFAULT_MUTABLE_TAG_PATTERNS: [&str; 5] =
    ["latest", "main", "master", "develop", "stable"];

/// Why a moving tag breaks a deploy and what to do instead; shared by the
/// mutable-tag errors so they stay consistent.
const MUTABLE_TAG_EXPLANATION: &str = "when a tag is reused for a new build, the task definition keeps the same image string, so CloudFormation and ECS see no change and the service keeps running the old image. Tag each build immutably and deploy that tag: the commit SHA (image-tag: ${{ github.sha }}) or the release tag (e.g. v1.2.3), or pin a digest (repo@sha256:...)";

/// A parsed image reference, kept as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// The registry host (and port) as written; `None` means Docker Hub.
    registry: Option<String>,
    /// The repository path without the registry (`nginx`, `team/app`).
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Where an image lives in Amazon ECR, for looking up its tags and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrLocation {
    pub registry: EcrRegistry,
    /// The repository name the ECR API expects (for ECR Public, without the
    /// registry alias).
    pub repository_name: String,
}

/// The two kinds of ECR registry. They differ in what the host tells us:
/// a private host names the account and region, a public one only an alias
/// (which is not the account id), so an enum keeps impossible fields out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcrRegistry {
    /// `<account>.dkr.ecr.<region>.amazonaws.com[.cn]` and its FIPS and
    /// dual-stack variants.
    Private { account_id: String, region: String },
    /// `public.ecr.aws/<alias>/...`.
    Public { registry_alias: String },
}

/// Which tags count as mutable, and whether they are allowed anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableTagPolicy {
    /// Tag patterns; `*` matches any run of characters and `?` one
    /// character, compared without regard to ASCII case.
    pub patterns: Vec<String>,
    /// `allow-mutable-tag: true`: deploy whatever tag was given.
    pub allow: bool,
}

/// Why an image reference or tag was refused. Each message names the value
/// and the fix; [`ImageError::setting`] says which setting is at fault, and
/// the caller attaches the name the user knows it by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error(
        "the image reference is empty; give one such as `nginx:1.27` or `123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1.2.3`"
    )]
    Empty { setting: Setting },

    #[error(
        "`{value}` contains whitespace or control characters; remove them (a reference is written without spaces, e.g. `repo:tag`)"
    )]
    Whitespace { setting: Setting, value: String },

    #[error("`{value}` has an invalid registry `{registry}`: {reason}")]
    InvalidRegistry {
        setting: Setting,
        value: String,
        registry: String,
        reason: &'static str,
    },

    #[error(
        "`{value}` has the repository `{repository}` with upper-case letters; repository names are lower case, write `{lowercase}`"
    )]
    UppercaseRepository {
        setting: Setting,
        value: String,
        repository: String,
        lowercase: String,
    },

    #[error(
        "`{value}` has an invalid repository `{repository}`; repository path components are lower-case letters and digits, separated by `.`, `_`, `__` or dashes, joined with `/` (e.g. `team/app`)"
    )]
    InvalidRepository {
        setting: Setting,
        value: String,
        repository: String,
    },

    #[error(
        "`{value}` has a name of {len} characters; registry and repository together may have at most {NAME_TOTAL_LENGTH_MAX}, so shorten the repository name"
    )]
    NameTooLong {
        setting: Setting,
        value: String,
        len: usize,
    },

    #[error(
        "`{value}` has an invalid tag `{tag}`; tags are 1 to {TAG_LENGTH_MAX} ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-` (no `/`, `:` or `+`), e.g. the commit SHA or `v1.2.3`"
    )]
    InvalidTag {
        setting: Setting,
        value: String,
        tag: String,
    },

    #[error(
        "`{value}` has an invalid digest `{digest}`: {reason}; copy the digest from the registry, e.g. `sha256:` followed by 64 lower-case hex digits"
    )]
    InvalidDigest {
        setting: Setting,
        value: String,
        digest: String,
        reason: &'static str,
    },

    #[error(
        "{IMAGE_INPUT} (`{image}`) and {REPOSITORY_INPUT} (`{repository}`) are both set; set only one: the full reference in {IMAGE_INPUT}, or {REPOSITORY_INPUT} with {TAG_INPUT}"
    )]
    ImageAndRepository { image: String, repository: String },

    #[error(
        "{TAG_INPUT} (`{tag}`) is set together with {IMAGE_INPUT} (`{image}`); {TAG_INPUT} only goes with {REPOSITORY_INPUT}: put the tag inside {IMAGE_INPUT}, or move the repository to {REPOSITORY_INPUT}"
    )]
    TagWithImage { image: String, tag: String },

    #[error(
        "no image given; set {IMAGE_INPUT} to a full reference (e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1.2.3`), or {REPOSITORY_INPUT} and {TAG_INPUT}"
    )]
    NoImage,

    #[error(
        "`{repository}` already has a tag or digest; give the bare repository there (`{bare}`) and the tag in {TAG_INPUT}, or pass the whole reference as {IMAGE_INPUT}"
    )]
    RepositoryHasTag { repository: String, bare: String },

    #[error("`{repository}` has no tag to deploy; set {TAG_INPUT} (e.g. ${{{{ github.sha }}}})")]
    RepositoryWithoutTag { repository: String },

    #[error(
        "`{image}` has no tag, which means the mutable tag `latest`: {MUTABLE_TAG_EXPLANATION}. To deploy it anyway, set {ALLOW_MUTABLE_TAG_INPUT}: true"
    )]
    ImplicitLatest { image: String },

    #[error(
        "`{image}` has an empty tag; set {TAG_INPUT} to an immutable tag such as the commit SHA (${{{{ github.sha }}}})"
    )]
    EmptyTag { image: String },

    #[error(
        "`{image}` uses the mutable tag `{tag}` (it matches `{pattern}`): {MUTABLE_TAG_EXPLANATION}. To deploy it anyway, set {ALLOW_MUTABLE_TAG_INPUT}: true"
    )]
    MutableTag {
        image: String,
        tag: String,
        pattern: String,
    },

    #[error(
        "`{pattern}` is not a tag pattern; use tag characters (letters, digits, `_`, `.`, `-`) and the wildcards `*` and `?`, e.g. `release-*`"
    )]
    InvalidTagPattern { pattern: String },
}

impl ImageError {
    /// The setting at fault.
    pub fn setting(&self) -> Setting {
        match self {
            Self::Empty { setting }
            | Self::Whitespace { setting, .. }
            | Self::InvalidRegistry { setting, .. }
            | Self::UppercaseRepository { setting, .. }
            | Self::InvalidRepository { setting, .. }
            | Self::NameTooLong { setting, .. }
            | Self::InvalidTag { setting, .. }
            | Self::InvalidDigest { setting, .. } => *setting,
            Self::TagWithImage { .. } => Setting::ImageTag,
            Self::RepositoryHasTag { .. } | Self::RepositoryWithoutTag { .. } => {
                Setting::ImageRepository
            }
            Self::ImageAndRepository { .. }
            | Self::NoImage
            | Self::ImplicitLatest { .. }
            | Self::EmptyTag { .. }
            | Self::MutableTag { .. } => Setting::Image,
            Self::InvalidTagPattern { .. } => Setting::MutableTags,
        }
    }
}

impl ImageReference {
    /// Parses a full reference given in the `image` input.
    pub fn parse(text: &str) -> Result<ImageReference, ImageError> {
        Self::parse_for(text, Setting::Image)
    }

    /// Parses a reference, blaming `setting` in errors (for references that
    /// come from another setting or from a task definition file).
    pub fn parse_for(text: &str, setting: Setting) -> Result<ImageReference, ImageError> {
        if text.is_empty() {
            return Err(ImageError::Empty { setting });
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ImageError::Whitespace {
                setting,
                value: text.to_owned(),
            });
        }
        // `@` appears only before the digest, so the first one splits it off.
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
            None => (text, None),
        };
        let (registry, path_and_tag) = split_registry(name_and_tag);
        // With the registry (and its port) removed, a `:` can only start
        // the tag: path components never contain one.
        let (repository, tag) = match path_and_tag.split_once(':') {
            Some((repository, tag)) => (repository, Some(tag)),
            None => (path_and_tag, None),
        };

        if let Some(registry) = registry {
            check_registry(registry).map_err(|reason| ImageError::InvalidRegistry {
                setting,
                value: text.to_owned(),
                registry: registry.to_owned(),
                reason,
            })?;
        }
        check_repository(repository, text, setting)?;
        let name_len = registry.map_or(0, |registry| registry.len() + 1) + repository.len();
        if name_len > NAME_TOTAL_LENGTH_MAX {
            return Err(ImageError::NameTooLong {
                setting,
                value: text.to_owned(),
                len: name_len,
            });
        }
        if let Some(tag) = tag
            && !is_valid_tag(tag)
        {
            return Err(ImageError::InvalidTag {
                setting,
                value: text.to_owned(),
                tag: tag.to_owned(),
            });
        }
        if let Some(digest) = digest {
            check_digest(digest).map_err(|reason| ImageError::InvalidDigest {
                setting,
                value: text.to_owned(),
                digest: digest.to_owned(),
                reason,
            })?;
        }
        Ok(ImageReference {
            registry: registry.map(str::to_owned),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    #[cfg(test)]
    /// The registry as written; `None` when the reference names none
    /// (Docker Hub).
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The registry to contact: as written, or `docker.io` when absent.
    pub fn registry_host(&self) -> &str {
        self.registry.as_deref().unwrap_or(DOCKER_HUB_REGISTRY)
    }

    #[cfg(test)]
    /// The repository path as written, without the registry.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    pub fn is_docker_hub(&self) -> bool {
        self.registry.as_deref().is_none_or(|registry| {
            DOCKER_HUB_REGISTRY_ALIASES
                .iter()
                .any(|alias| registry.eq_ignore_ascii_case(alias))
        })
    }

    /// The normalised form (`docker.io/library/nginx:1.27`), for comparing
    /// references written differently; tag and digest are kept as given.
    pub fn fully_qualified(&self) -> String {
        let (registry, repository) = if self.is_docker_hub() {
            let repository = if self.repository.contains('/') {
                self.repository.clone()
            } else {
                format!("{DOCKER_HUB_OFFICIAL_NAMESPACE}/{}", self.repository)
            };
            (DOCKER_HUB_REGISTRY.to_owned(), repository)
        } else {
            (self.registry_host().to_owned(), self.repository.clone())
        };
        ImageReference {
            registry: Some(registry),
            repository,
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
        .to_string()
    }

    /// The same repository with another tag. Any digest is dropped: it
    /// pinned the image the old tag named, not the new one.
    pub fn with_tag(&self, tag: &str) -> Result<ImageReference, ImageError> {
        let retagged = ImageReference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        };
        if !is_valid_tag(tag) {
            return Err(ImageError::InvalidTag {
                setting: Setting::ImageTag,
                value: retagged.to_string(),
                tag: tag.to_owned(),
            });
        }
        Ok(retagged)
    }

    /// The same reference pinned to `digest`, keeping the tag for readers:
    /// `repo:tag@sha256:...` (the registry pulls by digest, ignoring the tag).
    pub fn with_digest(&self, digest: &str) -> Result<ImageReference, ImageError> {
        let pinned = ImageReference {
            digest: Some(digest.to_owned()),
            ..self.clone()
        };
        check_digest(digest).map_err(|reason| ImageError::InvalidDigest {
            setting: Setting::Image,
            value: pinned.to_string(),
            digest: digest.to_owned(),
            reason,
        })?;
        Ok(pinned)
    }

    /// Where the image lives in ECR, when its registry is an ECR one.
    pub fn ecr(&self) -> Option<EcrLocation> {
        let host = self.registry.as_deref()?.to_ascii_lowercase();
        if host == ECR_PUBLIC_REGISTRY {
            // ECR Public paths are `<alias>/<repository name>`.
            let (alias, repository_name) = self.repository.split_once('/')?;
            return Some(EcrLocation {
                registry: EcrRegistry::Public {
                    registry_alias: alias.to_owned(),
                },
                repository_name: repository_name.to_owned(),
            });
        }
        let (account_id, region) = parse_ecr_private_host(&host)?;
        Some(EcrLocation {
            registry: EcrRegistry::Private {
                account_id: account_id.to_owned(),
                region: region.to_owned(),
            },
            repository_name: self.repository.clone(),
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(registry) = &self.registry {
            write!(f, "{registry}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl EcrLocation {
    pub fn is_public(&self) -> bool {
        matches!(self.registry, EcrRegistry::Public { .. })
    }

    /// The account that owns a private registry; ECR Public hosts name an
    /// alias instead, so the account is unknown from the reference.
    pub fn account_id(&self) -> Option<&str> {
        match &self.registry {
            EcrRegistry::Private { account_id, .. } => Some(account_id),
            EcrRegistry::Public { .. } => None,
        }
    }

    /// The region whose ECR API to call.
    pub fn region(&self) -> &str {
        match &self.registry {
            EcrRegistry::Private { region, .. } => region,
            EcrRegistry::Public { .. } => ECR_PUBLIC_API_REGION,
        }
    }
}

/// Builds the image to deploy from either `image` or `image-repository` +
/// `image-tag`. Blank inputs count as absent, because the runner passes
/// unset inputs as empty strings. The caller fills `tag` with the default
/// from the event (see `github::event::default_image_tag`) when the user
/// gave a repository without a tag.
pub fn compose_image(
    image: Option<&str>,
    repository: Option<&str>,
    tag: Option<&str>,
) -> Result<ImageReference, ImageError> {
    match (present(image), present(repository), present(tag)) {
        (Some(image), Some(repository), _) => Err(ImageError::ImageAndRepository {
            image: image.to_owned(),
            repository: repository.to_owned(),
        }),
        (Some(image), None, Some(tag)) => Err(ImageError::TagWithImage {
            image: image.to_owned(),
            tag: tag.to_owned(),
        }),
        (Some(image), None, None) => ImageReference::parse(image),
        (None, Some(repository), tag) => {
            let bare = ImageReference::parse_for(repository, Setting::ImageRepository)?;
            if bare.tag.is_some() || bare.digest.is_some() {
                return Err(ImageError::RepositoryHasTag {
                    repository: repository.to_owned(),
                    bare: ImageReference {
                        tag: None,
                        digest: None,
                        ..bare
                    }
                    .to_string(),
                });
            }
            match tag {
                Some(tag) => bare.with_tag(tag),
                None => Err(ImageError::RepositoryWithoutTag {
                    repository: repository.to_owned(),
                }),
            }
        }
        (None, None, _) => Err(ImageError::NoImage),
    }
}

/// A trimmed input value, or `None` when blank.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !value.is_empty())
}

/// Whether `tag` follows the OCI tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
/// (ASCII only: registries reject other letters).
pub fn is_valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    tag.len() <= TAG_LENGTH_MAX
        && (first.is_ascii_alphanumeric() || first == b'_')
        && bytes.all(is_tag_byte)
}

fn is_tag_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
}

impl Default for MutableTagPolicy {
    fn default() -> Self {
        MutableTagPolicy {
            patterns: DEFAULT_MUTABLE_TAG_PATTERNS
                .iter()
                .map(|pattern| (*pattern).to_owned())
                .collect(),
            allow: false,
        }
    }
}

impl MutableTagPolicy {
    /// Builds the policy from the inputs. Given patterns replace the
    /// defaults (so a team can drop `stable` or add `release-*`), and are
    /// checked here so a typo is reported before anything is deployed.
    pub fn new(patterns: Option<Vec<String>>, allow: bool) -> Result<Self, ImageError> {
        let Some(patterns) = patterns else {
            return Ok(MutableTagPolicy {
                allow,
                ..MutableTagPolicy::default()
            });
        };
        if let Some(invalid) = patterns
            .iter()
            .find(|pattern| !is_valid_tag_pattern(pattern))
        {
            return Err(ImageError::InvalidTagPattern {
                pattern: invalid.clone(),
            });
        }
        Ok(MutableTagPolicy { patterns, allow })
    }

    /// Refuses a reference whose tag may move to another build: no tag
    /// (implicit `latest`), an empty tag, or a tag matching a pattern. A
    /// digest pins the image whatever the tag says, so it always passes.
    pub fn check(&self, reference: &ImageReference) -> Result<(), ImageError> {
        if self.allow || reference.digest.is_some() {
            return Ok(());
        }
        let image = reference.to_string();
        let tag = match reference.tag.as_deref() {
            None => return Err(ImageError::ImplicitLatest { image }),
            Some("") => return Err(ImageError::EmptyTag { image }),
            Some(tag) => tag,
        };
        match self
            .patterns
            .iter()
            .find(|pattern| matches_tag_pattern(pattern, tag))
        {
            Some(pattern) => Err(ImageError::MutableTag {
                image,
                tag: tag.to_owned(),
                pattern: pattern.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Splits off the registry the way Docker does: the first `/` component is
/// a registry when it has a `.` or `:`, is `localhost`, or has upper-case
/// letters (repository paths are lower case, host names need not be).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|byte| byte.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// Checks `host[:port]`, where host is a DNS name, an IPv4 address (a DNS
/// name by this grammar) or a bracketed IPv6 address.
fn check_registry(registry: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(bracketed) = registry.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`, e.g. `[::1]:5000`")?;
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err("the IPv6 address between `[` and `]` is not hex digits and colons");
        }
        match after {
            "" => (None, None),
            _ => (
                None,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or("only `:port` may follow an IPv6 address, e.g. `[::1]:5000`")?,
                ),
            ),
        }
    } else {
        // Host names never contain `:`, so within the registry it can only
        // start the port.
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host
        && !host.split('.').all(is_valid_host_label)
    {
        return Err(
            "host names are letters, digits and inner dashes separated by dots, e.g. `registry.example.com`",
        );
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(
            "the port must be a number from 0 to 65535; if the part after `:` was meant as a tag, note that tags cannot contain `/`",
        );
    }
    Ok(())
}

fn is_valid_host_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

fn check_repository(repository: &str, value: &str, setting: Setting) -> Result<(), ImageError> {
    if repository.split('/').all(is_valid_path_component) {
        return Ok(());
    }
    let lowercase = repository.to_ascii_lowercase();
    if lowercase != repository && lowercase.split('/').all(is_valid_path_component) {
        return Err(ImageError::UppercaseRepository {
            setting,
            value: value.to_owned(),
            repository: repository.to_owned(),
            lowercase,
        });
    }
    Err(ImageError::InvalidRepository {
        setting,
        value: value.to_owned(),
        repository: repository.to_owned(),
    })
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn is_valid_path_component(component: &str) -> bool {
    let is_alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut index = 0;
    loop {
        let run_start = index;
        while index < bytes.len() && is_alphanumeric(bytes[index]) {
            index += 1;
        }
        if index == run_start {
            // Empty component, or a separator at the start or doubled.
            return false;
        }
        if index == bytes.len() {
            return true;
        }
        let separator_start = index;
        while index < bytes.len() && !is_alphanumeric(bytes[index]) {
            index += 1;
        }
        let separator = &component[separator_start..index];
        let is_valid_separator =
            matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !is_valid_separator {
            return false;
        }
    }
}

/// Checks `algorithm:hex` for the algorithms registries use, with the exact
/// hex length each one produces.
fn check_digest(digest: &str) -> Result<(), &'static str> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or("a digest is `algorithm:hex`")?;
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err("the algorithm must be sha256 (or sha512)"),
    };
    if hex.len() != expected_len {
        return Err("the hex part has the wrong length for its algorithm");
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("the hex part must be lower-case hex digits");
    }
    Ok(())
}

/// Recognises ECR private hosts and returns (account id, region):
/// `<account>.dkr.ecr.<region>.amazonaws.com`, `.amazonaws.com.cn` (China),
/// `dkr.ecr-fips` (FIPS) and `<account>.dkr-ecr.<region>.on.aws` (dual-stack).
fn parse_ecr_private_host(host: &str) -> Option<(&str, &str)> {
    let labels: Vec<&str> = host.split('.').collect();
    let (account_id, region) = match labels.as_slice() {
        [
            account,
            "dkr",
            "ecr" | "ecr-fips",
            region,
            "amazonaws",
            "com",
        ]
        | [
            account,
            "dkr",
            "ecr" | "ecr-fips",
            region,
            "amazonaws",
            "com",
            "cn",
        ]
        | [account, "dkr-ecr", region, "on", "aws"] => (*account, *region),
        _ => return None,
    };
    let is_account_id =
        account_id.len() == AWS_ACCOUNT_ID_LEN && account_id.bytes().all(|b| b.is_ascii_digit());
    (is_account_id && is_region_name(region)).then_some((account_id, region))
}

/// AWS region names look like `us-east-1` or `us-gov-west-1`.
fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts
            .last()
            .is_some_and(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
        && parts[..parts.len() - 1]
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase()))
}

/// A pattern is tag characters plus the wildcards `*` and `?`; anything
/// else (`[`, `{`, `/`) would look like glob syntax we do not implement.
fn is_valid_tag_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern
            .bytes()
            .all(|byte| is_tag_byte(byte) || matches!(byte, b'*' | b'?'))
}

/// Wildcard match over ASCII, ignoring case because `Latest` or `MAIN`
/// move just like their lower-case forms. Tags cannot contain `/`, so `*`
/// and `?` are all the glob a tag pattern needs; this avoids pulling a
/// regex engine in through `globset`.
fn matches_tag_pattern(pattern: &str, tag: &str) -> bool {
    let pattern = pattern.as_bytes();
    let tag = tag.as_bytes();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the tag position it currently absorbs up
    // to, so a failed match can retry with the star taking one more byte.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < tag.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                t += 1;
            }
            Some(byte) if byte.eq_ignore_ascii_case(&tag[t]) => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, absorbed)) => {
                    p = star + 1;
                    t = absorbed + 1;
                    backtrack = Some((star, absorbed + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|byte| *byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    /// (input, registry, repository, tag, digest)
    type ParseCase<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );
    /// (image, image-repository, image-tag, reference or error fragment)
    type ComposeCase<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Result<&'a str, &'a str>,
    );

    fn parsed(text: &str) -> ImageReference {
        ImageReference::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn parse_splits_registry_repository_tag_and_digest() {
        let digested = format!("repo@{SHA256}");
        let tagged_and_digested = format!("repo:v1@{SHA256}");
        let ecr = format!("{ECR_HOST}/team/app:3f786850e387550fdab836ed7e6dc881de23001b");
        let cases: [ParseCase; 12] = [
            ("nginx", None, "nginx", None, None),
            ("nginx:1.27", None, "nginx", Some("1.27"), None),
            ("team/app:v1", None, "team/app", Some("v1"), None),
            (
                "host:5000/ns/repo:tag",
                Some("host:5000"),
                "ns/repo",
                Some("tag"),
                None,
            ),
            (
                "host:5000/ns/repo",
                Some("host:5000"),
                "ns/repo",
                None,
                None,
            ),
            (
                "localhost/repo:dev",
                Some("localhost"),
                "repo",
                Some("dev"),
                None,
            ),
            (
                "[::1]:5000/repo:t",
                Some("[::1]:5000"),
                "repo",
                Some("t"),
                None,
            ),
            (&digested, None, "repo", None, Some(SHA256)),
            (&tagged_and_digested, None, "repo", Some("v1"), Some(SHA256)),
            (
                &ecr,
                Some(ECR_HOST),
                "team/app",
                Some("3f786850e387550fdab836ed7e6dc881de23001b"),
                None,
            ),
            (
                "public.ecr.aws/ns/repo:tag",
                Some("public.ecr.aws"),
                "ns/repo",
                Some("tag"),
                None,
            ),
            (
                "My.Registry/a__b.c-d--e:X_1",
                Some("My.Registry"),
                "a__b.c-d--e",
                Some("X_1"),
                None,
            ),
        ];
        for (text, registry, repository, tag, digest) in cases {
            let reference = parsed(text);
            assert_eq!(reference.registry(), registry, "{text}");
            assert_eq!(reference.repository(), repository, "{text}");
            assert_eq!(reference.tag(), tag, "{text}");
            assert_eq!(reference.digest(), digest, "{text}");
            // Display reproduces exactly what the user wrote.
            assert_eq!(reference.to_string(), text);
        }
    }

    #[test]
    fn parse_rejects_invalid_references_with_a_specific_reason() {
        let long_name = format!("{}:v1", "a".repeat(NAME_TOTAL_LENGTH_MAX + 1));
        let long_tag = format!("repo:{}", "t".repeat(TAG_LENGTH_MAX + 1));
        let cases: [(&str, &str); 18] = [
            ("", "is empty"),
            ("répo:v1", "invalid repository `répo`"),
            ("repo: v1", "whitespace"),
            ("Repo:v1", "write `repo`"),
            ("team/App", "write `team/app`"),
            ("repo//x", "invalid repository"),
            ("-repo", "invalid repository"),
            ("re...po", "invalid repository"),
            ("repo:tág", "invalid tag `tág`"),
            ("repo:.hidden", "invalid tag"),
            ("repo:a:b", "invalid tag `a:b`"),
            (&long_tag, "invalid tag"),
            (&long_name, "at most 255"),
            ("repo:release/1.0", "tags cannot contain `/`"),
            ("host:abc/repo", "invalid registry `host:abc`"),
            ("repo@sha256:abc", "wrong length"),
            (
                "repo@md5:0123456789abcdef0123456789abcdef",
                "must be sha256",
            ),
            (
                "repo@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
                "lower-case hex",
            ),
        ];
        for (text, expected) in cases {
            let message = match ImageReference::parse(text) {
                Ok(reference) => panic!("{text:?} parsed as {reference:?}"),
                Err(error) => {
                    assert_eq!(error.setting(), Setting::Image, "{error}");
                    error.to_string()
                }
            };
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn fully_qualified_normalises_docker_hub_only() {
        let cases = [
            ("nginx", "docker.io/library/nginx"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
            ("index.docker.io/nginx:1", "docker.io/library/nginx:1"),
            ("docker.io/library/nginx", "docker.io/library/nginx"),
            ("host:5000/repo:t", "host:5000/repo:t"),
            (
                "public.ecr.aws/nginx/nginx:1",
                "public.ecr.aws/nginx/nginx:1",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parsed(text).fully_qualified(), expected, "{text}");
        }
        assert!(parsed("nginx").is_docker_hub());
        assert_eq!(parsed("nginx").registry_host(), "docker.io");
        assert!(!parsed("public.ecr.aws/nginx/nginx").is_docker_hub());
    }

    #[test]
    fn with_tag_replaces_the_tag_and_drops_the_digest() {
        let digested = format!("repo:old@{SHA256}");
        let cases = [
            ("repo", "v2", "repo:v2"),
            ("host:5000/ns/repo:v1", "v2", "host:5000/ns/repo:v2"),
            (&digested, "v2", "repo:v2"),
        ];
        for (text, tag, expected) in cases {
            let retagged = parsed(text).with_tag(tag).map(|r| r.to_string());
            assert_eq!(retagged.as_deref(), Ok(expected), "{text}");
        }
        let error = parsed("repo")
            .with_tag("feature/x")
            .map_err(|e| format!("{:?}: {e}", e.setting()));
        assert!(
            matches!(&error, Err(message) if message.starts_with("ImageTag: `repo:feature/x` has an invalid tag `feature/x`")),
            "{error:?}"
        );
    }

    #[test]
    fn with_digest_keeps_the_tag_for_readers() {
        let cases = [
            ("repo:v1", format!("repo:v1@{SHA256}")),
            ("repo", format!("repo@{SHA256}")),
            (
                "host:5000/ns/repo:v1",
                format!("host:5000/ns/repo:v1@{SHA256}"),
            ),
        ];
        for (text, expected) in cases {
            let pinned = parsed(text).with_digest(SHA256).map(|r| r.to_string());
            assert_eq!(pinned, Ok(expected), "{text}");
        }
        let error = parsed("repo:v1").with_digest("sha256:xyz");
        assert!(
            matches!(&error, Err(ImageError::InvalidDigest { digest, .. }) if digest == "sha256:xyz"),
            "{error:?}"
        );
    }

    #[test]
    fn ecr_recognises_private_and_public_registries() {
        let private = |account: &str, region: &str, name: &str| {
            Some(EcrLocation {
                registry: EcrRegistry::Private {
                    account_id: account.to_owned(),
                    region: region.to_owned(),
                },
                repository_name: name.to_owned(),
            })
        };
        let cases = [
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag",
                private("123456789012", "us-east-1", "repo"),
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/app:v1",
                private("123456789012", "cn-north-1", "team/app"),
            ),
            (
                "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/app:v1",
                private("123456789012", "us-gov-west-1", "app"),
            ),
            (
                "123456789012.dkr-ecr.eu-west-2.on.aws/app:v1",
                private("123456789012", "eu-west-2", "app"),
            ),
            (
                "public.ecr.aws/nginx/nginx:1.27",
                Some(EcrLocation {
                    registry: EcrRegistry::Public {
                        registry_alias: "nginx".to_owned(),
                    },
                    repository_name: "nginx".to_owned(),
                }),
            ),
            ("12345678901.dkr.ecr.us-east-1.amazonaws.com/repo:t", None),
            ("123456789012.dkr.ecr.useast1.amazonaws.com/repo:t", None),
            ("123456789012.dkr.ecr.us-east-1.example.com/repo:t", None),
            ("public.ecr.aws/repo:t", None),
            ("nginx:1.27", None),
            ("ghcr.io/acme/app:v1", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parsed(text).ecr(), expected, "{text}");
        }
    }

    #[test]
    fn ecr_location_reports_account_and_api_region() {
        let private = parsed("123456789012.dkr.ecr.eu-central-1.amazonaws.com/app:v1").ecr();
        let public = parsed("public.ecr.aws/acme/app:v1").ecr();
        let cases = [
            (private, false, Some("123456789012"), "eu-central-1"),
            (public, true, None, "us-east-1"),
        ];
        for (location, is_public, account_id, region) in cases {
            let Some(location) = location else {
                panic!("not recognised as ECR");
            };
            assert_eq!(location.is_public(), is_public);
            assert_eq!(location.account_id(), account_id);
            assert_eq!(location.region(), region);
        }
    }

    #[test]
    fn compose_image_accepts_exactly_one_way_of_naming_the_image() {
        let cases: [ComposeCase; 10] = [
            (Some("nginx:1.27"), None, None, Ok("nginx:1.27")),
            (Some(" nginx:1.27 "), Some(""), Some(" "), Ok("nginx:1.27")),
            (
                None,
                Some("host:5000/ns/repo"),
                Some("v1.2.3"),
                Ok("host:5000/ns/repo:v1.2.3"),
            ),
            (
                Some("nginx:1"),
                Some("nginx"),
                None,
                Err("image (`nginx:1`) and image-repository (`nginx`) are both set"),
            ),
            (
                Some("nginx"),
                None,
                Some("v1"),
                Err("ImageTag: image-tag (`v1`) is set together with image (`nginx`)"),
            ),
            (
                None,
                Some("repo:v1"),
                Some("v2"),
                Err(
                    "ImageRepository: `repo:v1` already has a tag or digest; give the bare repository there (`repo`)",
                ),
            ),
            (
                None,
                Some(
                    "host:5000/repo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                ),
                Some("v2"),
                Err("ImageRepository: `host:5000/repo@sha256"),
            ),
            (
                None,
                Some("repo"),
                None,
                Err(
                    "ImageRepository: `repo` has no tag to deploy; set image-tag (e.g. ${{ github.sha }})",
                ),
            ),
            (
                None,
                Some("repo"),
                Some("-bad"),
                Err("ImageTag: `repo:-bad` has an invalid tag `-bad`"),
            ),
            (None, None, None, Err("Image: no image given")),
        ];
        for (image, repository, tag, expected) in cases {
            let result = compose_image(image, repository, tag)
                .map(|reference| reference.to_string())
                .map_err(|error| format!("{:?}: {error}", error.setting()));
            match (result, expected) {
                (Ok(actual), Ok(expected)) => assert_eq!(actual, expected),
                (Err(actual), Err(expected)) => {
                    assert!(actual.contains(expected), "{actual}")
                }
                (actual, expected) => {
                    panic!("{image:?} {repository:?} {tag:?}: {actual:?} vs {expected:?}")
                }
            }
        }
    }

    #[test]
    fn is_valid_tag_follows_the_oci_grammar() {
        let max = "a".repeat(TAG_LENGTH_MAX);
        let too_long = "a".repeat(TAG_LENGTH_MAX + 1);
        let cases = [
            ("v1.2.3", true),
            ("_private", true),
            ("3f786850e387550fdab836ed7e6dc881de23001b", true),
            ("Release-2024.05_01", true),
            (max.as_str(), true),
            ("", false),
            (".v1", false),
            ("-v1", false),
            ("release/1.0", false),
            ("1.0+build", false),
            ("tág", false),
            (too_long.as_str(), false),
        ];
        for (tag, expected) in cases {
            assert_eq!(is_valid_tag(tag), expected, "{tag:?}");
        }
    }

    #[test]
    fn tag_patterns_match_wildcards_ignoring_case() {
        let cases = [
            ("latest", "latest", true),
            ("latest", "LATEST", true),
            ("latest", "latest2", false),
            ("release-*", "release-2024", true),
            ("release-*", "release-", true),
            ("release-*", "pre-release-1", false),
            ("*-snapshot", "1.0-snapshot", true),
            ("v?", "v1", true),
            ("v?", "v10", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxc", false),
            ("**", "", true),
        ];
        for (pattern, tag, expected) in cases {
            assert_eq!(
                matches_tag_pattern(pattern, tag),
                expected,
                "{pattern} {tag}"
            );
        }
    }

    #[test]
    fn policy_refuses_mutable_tags_and_passes_pinned_ones() {
        let strict = MutableTagPolicy::default();
        let with_release = MutableTagPolicy::new(Some(vec!["release-*".to_owned()]), false)
            .unwrap_or_else(|error| panic!("{error}"));
        let allowing = MutableTagPolicy::new(None, true).unwrap_or_else(|error| panic!("{error}"));
        let digested = format!("repo:latest@{SHA256}");
        let cases: [(&MutableTagPolicy, &str, Option<&str>); 10] = [
            (
                &strict,
                "repo:3f786850e387550fdab836ed7e6dc881de23001b",
                None,
            ),
            (&strict, "repo:v1.2.3", None),
            (&strict, &digested, None),
            (
                &strict,
                "repo",
                Some("has no tag, which means the mutable tag `latest`"),
            ),
            (
                &strict,
                "repo:latest",
                Some("uses the mutable tag `latest` (it matches `latest`)"),
            ),
            (
                &strict,
                "repo:Main",
                Some("uses the mutable tag `Main` (it matches `main`)"),
            ),
            (
                &with_release,
                "repo:release-7",
                Some("it matches `release-*`"),
            ),
            // Replacing the defaults drops them.
            (&with_release, "repo:latest", None),
            (&allowing, "repo", None),
            (&allowing, "repo:latest", None),
        ];
        for (policy, text, expected) in cases {
            let result = policy
                .check(&parsed(text))
                .map_err(|error| format!("{:?}: {error}", error.setting()));
            match (result, expected) {
                (Ok(()), None) => {}
                (Err(message), Some(expected)) => {
                    assert!(message.contains(expected), "{message}");
                    assert!(
                        message.contains("CloudFormation and ECS see no change"),
                        "{message}"
                    );
                    assert!(message.contains("${{ github.sha }}"), "{message}");
                    assert!(message.contains("allow-mutable-tag: true"), "{message}");
                }
                (actual, expected) => panic!("{text}: {actual:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn policy_refuses_an_empty_tag() {
        // Parsing never yields an empty tag; the check still guards
        // references built by other code.
        let reference = ImageReference {
            registry: None,
            repository: "repo".to_owned(),
            tag: Some(String::new()),
            digest: None,
        };
        let result = MutableTagPolicy::default().check(&reference);
        assert_eq!(
            result,
            Err(ImageError::EmptyTag {
                image: "repo:".to_owned()
            })
        );
    }

    #[test]
    fn policy_rejects_patterns_it_cannot_match() {
        let cases = [
            ("release-*", true),
            ("v?.*", true),
            ("", false),
            ("release/*", false),
            ("[a-z]*", false),
            ("{main,dev}", false),
        ];
        for (pattern, is_valid) in cases {
            let result = MutableTagPolicy::new(Some(vec![pattern.to_owned()]), false);
            assert_eq!(result.is_ok(), is_valid, "{pattern:?}");
            if let Err(error) = result {
                let message = error.to_string();
                assert_eq!(error.setting(), Setting::MutableTags, "{message}");
                assert!(message.contains("e.g. `release-*`"), "{message}");
            }
        }
    }
}
