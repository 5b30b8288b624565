//! Packaging, as `aws cloudformation package` does it, but deterministic:
//! the local paths a template names in the properties CloudFormation reads
//! from S3 (a nested stack's `TemplateURL`, a Lambda function's `Code`, an
//! `AWS::Include` `Location`, ...) are uploaded to the user's bucket and
//! rewritten to point there.
//!
//! Two steps, so every problem with the user's files is found before the
//! first AWS call and every upload happens after the plan:
//!
//! * [`scan`] (inputs phase, no AWS) reads the template and, recursively,
//!   the nested templates it names; every local path must exist inside the
//!   workspace. The result is a tree of [`LocalTemplate`]s.
//! * [`build`] (plan phase, once the bucket's region is known) turns the
//!   tree into the packaged template text and the objects to upload,
//!   children first: a nested template's key depends on its packaged text.
//!
//! Keys are content-addressed (`<prefix>/<sha256>.<ext>`) and directories
//! are zipped deterministically (entries sorted, fixed timestamps and
//! permissions), so unchanged sources give the same keys, the same parent
//! template, and a no-op change set.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest, Sha256};

use super::template::parse_json_or_yaml;
use super::upload::template_url;
use crate::refusal::{Refusal, Refusals, Setting};

/// How the rewritten property points at the uploaded object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An `https://` URL (what `TemplateURL` takes).
    HttpsUrl,
    /// `s3://bucket/key`.
    S3Uri,
    /// A mapping of bucket and key, with these member names.
    BucketKey(&'static str, &'static str),
}

/// What is at the local path, as the property wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// A template, packaged in turn before it is uploaded.
    Template,
    /// Code: a directory is zipped, and so is a single file that is not a
    /// zip already (Lambda wants a zip).
    Zipped,
    /// A file as it is; a directory is zipped.
    AsIs,
}

/// A property `aws cloudformation package` uploads.
struct Packageable {
    resource_type: &'static str,
    /// The property, and the member inside it for nested ones.
    property: &'static [&'static str],
    form: Form,
    content: Content,
}

const PACKAGEABLE: &[Packageable] = &[
    Packageable {
        resource_type: "AWS::CloudFormation::Stack",
        property: &["TemplateURL"],
        form: Form::HttpsUrl,
        content: Content::Template,
    },
    Packageable {
        resource_type: "AWS::Serverless::Application",
        property: &["Location"],
        form: Form::HttpsUrl,
        content: Content::Template,
    },
    Packageable {
        resource_type: "AWS::Lambda::Function",
        property: &["Code"],
        form: Form::BucketKey("S3Bucket", "S3Key"),
        content: Content::Zipped,
    },
    Packageable {
        resource_type: "AWS::Lambda::LayerVersion",
        property: &["Content"],
        form: Form::BucketKey("S3Bucket", "S3Key"),
        content: Content::Zipped,
    },
    Packageable {
        resource_type: "AWS::Serverless::Function",
        property: &["CodeUri"],
        form: Form::S3Uri,
        content: Content::Zipped,
    },
    Packageable {
        resource_type: "AWS::Serverless::LayerVersion",
        property: &["ContentUri"],
        form: Form::S3Uri,
        content: Content::Zipped,
    },
    Packageable {
        resource_type: "AWS::Serverless::Api",
        property: &["DefinitionUri"],
        form: Form::S3Uri,
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::Serverless::HttpApi",
        property: &["DefinitionUri"],
        form: Form::S3Uri,
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::Serverless::StateMachine",
        property: &["DefinitionUri"],
        form: Form::S3Uri,
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::ApiGateway::RestApi",
        property: &["BodyS3Location"],
        form: Form::BucketKey("Bucket", "Key"),
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::ApiGatewayV2::Api",
        property: &["BodyS3Location"],
        form: Form::BucketKey("Bucket", "Key"),
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::StepFunctions::StateMachine",
        property: &["DefinitionS3Location"],
        form: Form::BucketKey("Bucket", "Key"),
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::AppSync::GraphQLSchema",
        property: &["DefinitionS3Location"],
        form: Form::S3Uri,
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::AppSync::Resolver",
        property: &["RequestMappingTemplateS3Location"],
        form: Form::S3Uri,
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::AppSync::Resolver",
        property: &["ResponseMappingTemplateS3Location"],
        form: Form::S3Uri,
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::AppSync::FunctionConfiguration",
        property: &["RequestMappingTemplateS3Location"],
        form: Form::S3Uri,
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::AppSync::FunctionConfiguration",
        property: &["ResponseMappingTemplateS3Location"],
        form: Form::S3Uri,
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::ElasticBeanstalk::ApplicationVersion",
        property: &["SourceBundle"],
        form: Form::BucketKey("S3Bucket", "S3Key"),
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::Glue::Job",
        property: &["Command", "ScriptLocation"],
        form: Form::S3Uri,
        content: Content::AsIs,
    },
    Packageable {
        resource_type: "AWS::CodeCommit::Repository",
        property: &["Code", "S3"],
        form: Form::BucketKey("Bucket", "Key"),
        content: Content::AsIs,
    },
];

/// One step from a template's root to a value in it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    /// Into a short-form tag's value (`!Transform {...}`).
    Tagged,
}

/// A local path found in a template, checked to exist.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReference {
    /// `resource Network, property TemplateURL`, for messages.
    pub site: String,
    where_: Vec<Step>,
    form: Form,
    pub target: Target,
}

/// What a local reference names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    File { path: PathBuf, zip: bool },
    Directory(PathBuf),
    Template(Box<LocalTemplate>),
}

/// A template file and the local paths it names, nested templates read.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalTemplate {
    pub path: PathBuf,
    pub body: String,
    document: Value,
    pub references: Vec<LocalReference>,
}

impl LocalTemplate {
    /// Whether anything in the tree needs uploading.
    pub fn has_local_references(&self) -> bool {
        !self.references.is_empty()
    }

    /// Every reference in the tree, parents before children.
    pub fn all_references(&self) -> Vec<&LocalReference> {
        let mut all = Vec::new();
        for reference in &self.references {
            all.push(reference);
            if let Target::Template(child) = &reference.target {
                all.extend(child.all_references());
            }
        }
        all
    }
}

/// Whether resources of this type are nested stacks (whatever their URLs).
pub fn is_nested_stack_type(resource_type: &str) -> bool {
    matches!(
        resource_type,
        "AWS::CloudFormation::Stack" | "AWS::Serverless::Application"
    )
}

fn resources(document: &Value) -> impl Iterator<Item = (&str, &str, &Value)> {
    document
        .get("Resources")
        .and_then(Value::as_mapping)
        .into_iter()
        .flat_map(Mapping::iter)
        .filter_map(|(id, resource)| {
            Some((
                id.as_str()?,
                resource.get("Type").and_then(Value::as_str)?,
                resource,
            ))
        })
}

/// Whether a property value is a path on this machine (not a URL, not an
/// intrinsic function, not already an S3 location).
fn local_path(value: &Value) -> Option<&str> {
    let text = value.as_str()?.trim();
    let remote = ["s3://", "https://", "http://"]
        .iter()
        .any(|scheme| text.to_ascii_lowercase().starts_with(scheme));
    (!text.is_empty() && !remote).then_some(text)
}

/// `a/./b/../c` → `a/c` without touching the file system, so a path that
/// leaves the workspace through `..` is seen before anything is read.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Reads a template and every local path it names, recursively.
///
/// `workspace` bounds the paths: one that resolves outside it is refused
/// (packaging uploads what it reads). Every problem in the tree is reported
/// at once.
pub fn scan(path: &Path, body: &str, workspace: &Path) -> Result<LocalTemplate, Refusals> {
    let mut refusals = Vec::new();
    let mut visiting = vec![normalise(path)];
    let template = scan_template(path, body, workspace, &mut visiting, &mut refusals);
    match template {
        Some(template) if refusals.is_empty() => Ok(template),
        _ => Err(Refusals(refusals)),
    }
}

fn scan_template(
    path: &Path,
    body: &str,
    workspace: &Path,
    visiting: &mut Vec<PathBuf>,
    refusals: &mut Vec<Refusal>,
) -> Option<LocalTemplate> {
    let shown = path.display().to_string();
    let document = match parse_json_or_yaml(body) {
        Ok(document) => document,
        Err(error) => {
            refusals.push(Refusal::new(
                Setting::Template,
                &shown,
                format!("is not a valid template: {error}"),
                "fix the nested template's syntax",
            ));
            return None;
        }
    };
    let directory = path.parent().unwrap_or(Path::new(""));
    let mut references = Vec::new();
    for found in local_references(&document) {
        let resolved = normalise(&directory.join(&found.path));
        let at = |problem: String, fix: &str| {
            Refusal::new(
                Setting::Template,
                &shown,
                format!("{}: {} {problem}", found.site, found.path),
                fix,
            )
        };
        if !resolved.starts_with(normalise(workspace)) {
            refusals.push(at(
                format!("resolves to {}, outside the workspace", resolved.display()),
                "keep the files a template names inside the repository: paths are relative to the template that names them",
            ));
            continue;
        }
        let metadata = match std::fs::metadata(&resolved) {
            Ok(metadata) => metadata,
            Err(error) => {
                refusals.push(at(
                    format!("cannot be read ({}: {error})", resolved.display()),
                    "check the path: it is relative to the template that names it",
                ));
                continue;
            }
        };
        let target = match found.content {
            Content::Template if metadata.is_dir() => {
                refusals.push(at(
                    "is a directory, not a template".into(),
                    "name the nested template's file",
                ));
                continue;
            }
            Content::Template => {
                if visiting.contains(&resolved) {
                    refusals.push(at(
                        "nests a template that is already on the way down (a cycle)".into(),
                        "a nested template cannot contain itself",
                    ));
                    continue;
                }
                let child_body = match std::fs::read_to_string(&resolved) {
                    Ok(child_body) => child_body,
                    Err(error) => {
                        refusals.push(at(
                            format!("cannot be read ({error})"),
                            "save the nested template as UTF-8 text",
                        ));
                        continue;
                    }
                };
                visiting.push(resolved.clone());
                let child = scan_template(&resolved, &child_body, workspace, visiting, refusals);
                visiting.pop();
                match child {
                    Some(child) => Target::Template(Box::new(child)),
                    None => continue,
                }
            }
            _ if metadata.is_dir() => Target::Directory(resolved),
            Content::Zipped => Target::File {
                zip: !is_zip(&resolved),
                path: resolved,
            },
            Content::AsIs => Target::File {
                path: resolved,
                zip: false,
            },
        };
        references.push(LocalReference {
            site: found.site,
            where_: found.where_,
            form: found.form,
            target,
        });
    }
    Some(LocalTemplate {
        path: path.to_path_buf(),
        body: body.to_string(),
        document,
        references,
    })
}

/// A zip already (Lambda takes it as is): by its signature, as
/// `aws cloudformation package` decides.
fn is_zip(path: &Path) -> bool {
    let mut signature = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut signature))
        .is_ok()
        && signature == *b"PK\x03\x04"
}

struct FoundReference {
    site: String,
    path: String,
    where_: Vec<Step>,
    form: Form,
    content: Content,
}

/// The local paths a template names, in document order.
fn local_references(document: &Value) -> Vec<FoundReference> {
    let mut found = Vec::new();
    for (logical_id, resource_type, resource) in resources(document) {
        for packageable in PACKAGEABLE
            .iter()
            .filter(|p| p.resource_type == resource_type)
        {
            let mut value = resource.get("Properties");
            for member in packageable.property {
                value = value.and_then(|v| v.get(*member));
            }
            let Some(path) = value.and_then(local_path) else {
                continue;
            };
            let mut where_ = vec![
                Step::Key("Resources".into()),
                Step::Key(logical_id.into()),
                Step::Key("Properties".into()),
            ];
            where_.extend(packageable.property.iter().map(|m| Step::Key((*m).into())));
            found.push(FoundReference {
                site: format!(
                    "resource {logical_id} ({resource_type}), property {}",
                    packageable.property.join(".")
                ),
                path: path.to_string(),
                where_,
                form: packageable.form,
                content: packageable.content,
            });
        }
    }
    let mut trail = Vec::new();
    includes(document, &mut trail, &mut found);
    found
}

/// `Fn::Transform: {Name: AWS::Include, Parameters: {Location: path}}`
/// anywhere in the template (the top-level `Transform` included).
fn includes(value: &Value, trail: &mut Vec<Step>, found: &mut Vec<FoundReference>) {
    match value {
        Value::Mapping(mapping) => {
            for (key, inner) in mapping {
                let Some(key) = key.as_str() else { continue };
                trail.push(Step::Key(key.into()));
                if matches!(key, "Fn::Transform" | "Transform") {
                    include_location(inner, trail, found);
                }
                includes(inner, trail, found);
                trail.pop();
            }
        }
        Value::Sequence(items) => {
            for (index, inner) in items.iter().enumerate() {
                trail.push(Step::Index(index));
                includes(inner, trail, found);
                trail.pop();
            }
        }
        Value::Tagged(tagged) => {
            trail.push(Step::Tagged);
            if tagged.tag == "Transform" {
                include_location(&tagged.value, trail, found);
            }
            includes(&tagged.value, trail, found);
            trail.pop();
        }
        _ => {}
    }
}

/// The Location of one transform (or of each, for a list of them).
fn include_location(transform: &Value, trail: &mut Vec<Step>, found: &mut Vec<FoundReference>) {
    if let Value::Sequence(items) = transform {
        for (index, item) in items.iter().enumerate() {
            trail.push(Step::Index(index));
            include_location(item, trail, found);
            trail.pop();
        }
        return;
    }
    if transform.get("Name").and_then(Value::as_str) != Some("AWS::Include") {
        return;
    }
    let Some(path) = transform
        .get("Parameters")
        .and_then(|p| p.get("Location"))
        .and_then(local_path)
    else {
        return;
    };
    let mut where_ = trail.clone();
    where_.extend([Step::Key("Parameters".into()), Step::Key("Location".into())]);
    found.push(FoundReference {
        site: "AWS::Include, parameter Location".into(),
        path: path.to_string(),
        where_,
        form: Form::S3Uri,
        content: Content::AsIs,
    });
}

/// Where packaged objects go, and how CloudFormation reaches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactStore {
    pub bucket: String,
    pub prefix: String,
    /// The bucket's region (its URL is virtual-hosted there).
    pub region: String,
    /// An endpoint override (a local emulator) serves the objects by path.
    pub endpoint: Option<String>,
}

/// An object packaging uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub key: String,
    pub bytes: Vec<u8>,
    /// The local file, directory or template it was made from.
    pub source: PathBuf,
}

/// The packaged template and what it needs in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packaged {
    pub body: String,
    /// Each object once, children before their parents.
    pub artifacts: Vec<Artifact>,
}

/// `<prefix>/<sha256>.<extension>`.
pub fn content_key(prefix: &str, bytes: &[u8], extension: &str) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let name = if extension.is_empty() {
        hex
    } else {
        format!("{hex}.{extension}")
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Packages the tree: uploads are listed, not made. A template without
/// local references keeps its text byte for byte.
pub fn build(template: &LocalTemplate, store: &ArtifactStore) -> anyhow::Result<Packaged> {
    let mut artifacts: Vec<Artifact> = Vec::new();
    let add = |artifact: Artifact, artifacts: &mut Vec<Artifact>| {
        if !artifacts.iter().any(|a| a.key == artifact.key) {
            artifacts.push(artifact);
        }
    };
    if template.references.is_empty() {
        return Ok(Packaged {
            body: template.body.clone(),
            artifacts,
        });
    }
    let mut document = template.document.clone();
    for reference in &template.references {
        let (bytes, extension, source) = match &reference.target {
            Target::Template(child) => {
                let packaged = build(child, store)?;
                for artifact in packaged.artifacts {
                    add(artifact, &mut artifacts);
                }
                (
                    packaged.body.into_bytes(),
                    "template".to_string(),
                    child.path.clone(),
                )
            }
            Target::Directory(path) => (zip_directory(path)?, "zip".into(), path.clone()),
            Target::File { path, zip: true } => (zip_file(path)?, "zip".into(), path.clone()),
            Target::File { path, zip: false } => {
                let bytes = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                let extension = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or_default()
                    .to_string();
                (bytes, extension, path.clone())
            }
        };
        let key = content_key(&store.prefix, &bytes, &extension);
        let pointer = match reference.form {
            Form::HttpsUrl => Value::String(template_url(
                &store.bucket,
                &store.region,
                &key,
                store.endpoint.as_deref(),
            )),
            Form::S3Uri => Value::String(format!("s3://{}/{key}", store.bucket)),
            Form::BucketKey(bucket_member, key_member) => {
                let mut mapping = Mapping::new();
                mapping.insert(bucket_member.into(), store.bucket.clone().into());
                mapping.insert(key_member.into(), key.clone().into());
                Value::Mapping(mapping)
            }
        };
        if let Some(slot) = locate(&mut document, &reference.where_) {
            *slot = pointer;
        }
        add(Artifact { key, bytes, source }, &mut artifacts);
    }
    Ok(Packaged {
        body: serialise(&document, &template.body)?,
        artifacts,
    })
}

fn locate<'a>(value: &'a mut Value, where_: &[Step]) -> Option<&'a mut Value> {
    let Some((step, rest)) = where_.split_first() else {
        return Some(value);
    };
    let next = match (step, value) {
        (Step::Key(key), Value::Mapping(mapping)) => mapping.get_mut(key.as_str())?,
        (Step::Index(index), Value::Sequence(items)) => items.get_mut(*index)?,
        (Step::Tagged, Value::Tagged(tagged)) => &mut tagged.value,
        _ => return None,
    };
    locate(next, rest)
}

/// The packaged document in the original's format: JSON stays JSON, YAML
/// stays YAML with its short-form tags.
fn serialise(document: &Value, original: &str) -> anyhow::Result<String> {
    if original.trim_start().starts_with('{') {
        let mut text = serde_json::to_string_pretty(document)?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(serde_yaml_ng::to_string(document)?)
    }
}

/// Every file under `root`, relative, sorted by its `/`-separated name.
/// Symbolic links to files are followed; to directories, not (a loop
/// would never end), as `aws cloudformation package` does.
fn files_under(root: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let entries = std::fs::read_dir(&directory)
            .map_err(|e| anyhow::anyhow!("listing {}: {e}", directory.display()))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| anyhow::anyhow!("listing {}: {e}", directory.display()))?;
            let path = entry.path();
            let link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
            let metadata = std::fs::metadata(&path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            if metadata.is_dir() {
                if !link {
                    pending.push(path);
                }
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((relative, path));
        }
    }
    files.sort();
    Ok(files)
}

/// Same files, same bytes: entries in name order, the zip format's
/// earliest timestamp, and permissions reduced to executable or not.
fn deterministic_zip(files: &[(String, PathBuf)]) -> anyhow::Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, path) in files {
        let bytes =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(if is_executable(path) { 0o755 } else { 0o644 });
        writer.start_file(name.as_str(), options)?;
        writer.write_all(&bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> bool {
    false
}

fn zip_directory(path: &Path) -> anyhow::Result<Vec<u8>> {
    deterministic_zip(&files_under(path)?)
}

fn zip_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    deterministic_zip(&[(name, path.to_path_buf())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, content: &str) -> PathBuf {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    fn store() -> ArtifactStore {
        ArtifactStore {
            bucket: "deploys".into(),
            prefix: "cfn".into(),
            region: "eu-west-1".into(),
            endpoint: None,
        }
    }

    const ROOT: &str = "\
Resources:
  Network:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: nested/network.yml
      Parameters:
        Cidr: !Ref Cidr
  Handler:
    Type: AWS::Lambda::Function
    Properties:
      Code: ../src/handler
      Role: !GetAtt Role.Arn
  Shared:
    Fn::Transform:
      Name: AWS::Include
      Parameters:
        Location: snippets/shared.yml
Outputs:
  Vpc:
    Value: !GetAtt Network.Outputs.VpcId
";

    const NETWORK: &str = "\
Resources:
  Subnets:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: ./subnets.json
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: !Sub '${Cidr}'
";

    const SUBNETS: &str = r#"{"Resources": {"A": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}}}}}"#;

    /// A workspace with the root template, two levels of nesting, a code
    /// directory and an include.
    fn workspace() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let template = write(root, "infra/root.yml", ROOT);
        write(root, "infra/nested/network.yml", NETWORK);
        write(root, "infra/nested/subnets.json", SUBNETS);
        write(root, "infra/snippets/shared.yml", "Type: AWS::SNS::Topic\n");
        write(
            root,
            "src/handler/index.py",
            "def handler(e, c): return 1\n",
        );
        write(root, "src/handler/lib/util.py", "X = 1\n");
        (dir, template)
    }

    #[test]
    fn every_local_path_is_uploaded_children_first_and_rewritten_in_the_form_its_property_takes() {
        let (dir, template) = workspace();
        let tree = scan(&template, ROOT, dir.path()).unwrap();
        let sites: Vec<&str> = tree
            .all_references()
            .iter()
            .map(|r| r.site.as_str())
            .collect();
        assert_eq!(
            sites,
            [
                "resource Network (AWS::CloudFormation::Stack), property TemplateURL",
                "resource Subnets (AWS::CloudFormation::Stack), property TemplateURL",
                "resource Handler (AWS::Lambda::Function), property Code",
                "AWS::Include, parameter Location",
            ]
        );
        let packaged = build(&tree, &store()).unwrap();
        // subnets before network (its key is in network's text), then the
        // code and the snippet.
        let sources: Vec<String> = packaged
            .artifacts
            .iter()
            .map(|a| {
                a.source
                    .strip_prefix(dir.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            sources,
            [
                "infra/nested/subnets.json",
                "infra/nested/network.yml",
                "src/handler",
                "infra/snippets/shared.yml"
            ]
        );
        let network = &packaged.artifacts[1];
        let network_text = String::from_utf8(network.bytes.clone()).unwrap();
        let subnets_key = &packaged.artifacts[0].key;
        assert!(
            network_text.contains(&format!(
                "TemplateURL: https://deploys.s3.eu-west-1.amazonaws.com/{subnets_key}"
            )),
            "{network_text}"
        );
        assert!(subnets_key.starts_with("cfn/") && subnets_key.ends_with(".template"));
        let code_key = &packaged.artifacts[2].key;
        assert!(code_key.ends_with(".zip"), "{code_key}");
        let body = &packaged.body;
        assert!(
            body.contains(&format!(
                "TemplateURL: https://deploys.s3.eu-west-1.amazonaws.com/{}",
                network.key
            )),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                "Code:\n        S3Bucket: deploys\n        S3Key: {code_key}"
            )),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                "Location: s3://deploys/{}",
                packaged.artifacts[3].key
            )),
            "{body}"
        );
        // short-form tags survive the rewrite
        for tag in [
            "Cidr: !Ref Cidr",
            "Role: !GetAtt Role.Arn",
            "!GetAtt Network.Outputs.VpcId",
        ] {
            assert!(body.contains(tag), "{tag} in {body}");
        }
        let network_document: Value = serde_yaml_ng::from_str(&network_text).unwrap();
        let cidr = &network_document["Resources"]["Vpc"]["Properties"]["CidrBlock"];
        let Value::Tagged(cidr) = cidr else {
            panic!("{cidr:?}")
        };
        assert_eq!(
            (cidr.tag.to_string(), &cidr.value),
            ("!Sub".into(), &Value::from("${Cidr}"))
        );
    }

    #[test]
    fn unchanged_sources_package_to_the_same_keys_whatever_their_timestamps() {
        let (dir, template) = workspace();
        let first = build(&scan(&template, ROOT, dir.path()).unwrap(), &store()).unwrap();
        // Rewrite the same content: a fresh checkout has fresh mtimes.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write(
            dir.path(),
            "src/handler/index.py",
            "def handler(e, c): return 1\n",
        );
        let second = build(&scan(&template, ROOT, dir.path()).unwrap(), &store()).unwrap();
        assert_eq!(first, second);
        write(dir.path(), "src/handler/lib/util.py", "X = 2\n");
        let third = build(&scan(&template, ROOT, dir.path()).unwrap(), &store()).unwrap();
        assert_ne!(first.artifacts[2].key, third.artifacts[2].key);
        assert_ne!(first.body, third.body);
        assert_eq!(
            first.artifacts[1].key, third.artifacts[1].key,
            "the nested templates did not change"
        );
    }

    #[test]
    fn the_zip_lists_files_in_name_order_with_fixed_times() {
        let (dir, _) = workspace();
        let bytes = zip_directory(&dir.path().join("src/handler")).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        assert_eq!(names, ["index.py", "lib/util.py"]);
        let entry = archive.by_index(0).unwrap();
        assert_eq!(entry.last_modified(), Some(zip::DateTime::default()));
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o644));
    }

    #[test]
    fn a_template_without_local_paths_keeps_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let body = "# comment kept\nResources:\n  S:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: https://b.s3.amazonaws.com/k\n  F:\n    Type: AWS::Lambda::Function\n    Properties:\n      Code: {S3Bucket: b, S3Key: k}\n";
        let template = write(dir.path(), "t.yml", body);
        let tree = scan(&template, body, dir.path()).unwrap();
        assert!(!tree.has_local_references());
        assert!(resources(&tree.document).any(|(_, kind, _)| is_nested_stack_type(kind)));
        let packaged = build(&tree, &store()).unwrap();
        assert_eq!(packaged.body, body);
        assert!(packaged.artifacts.is_empty());
    }

    #[test]
    fn json_stays_json_and_an_emulator_endpoint_serves_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let body = r#"{"Resources": {"N": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": "n.json"}}}}"#;
        let template = write(dir.path(), "t.json", body);
        write(dir.path(), "n.json", SUBNETS);
        let store = ArtifactStore {
            endpoint: Some("http://127.0.0.1:4566".into()),
            prefix: String::new(),
            ..store()
        };
        let packaged = build(&scan(&template, body, dir.path()).unwrap(), &store).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&packaged.body).unwrap();
        assert_eq!(
            parsed["Resources"]["N"]["Properties"]["TemplateURL"],
            format!(
                "http://127.0.0.1:4566/deploys/{}",
                packaged.artifacts[0].key
            )
        );
    }

    #[test]
    fn a_single_code_file_is_zipped_and_a_zip_is_uploaded_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "index.js", "exports.handler = 1;\n");
        let ready = zip_file(&dir.path().join("index.js")).unwrap();
        std::fs::write(dir.path().join("ready.zip"), &ready).unwrap();
        let body = "Resources:\n  A:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: index.js\n  B:\n    Type: AWS::Lambda::Function\n    Properties:\n      Code: ready.zip\n  C:\n    Type: AWS::StepFunctions::StateMachine\n    Properties:\n      DefinitionS3Location: index.js\n";
        let template = write(dir.path(), "t.yml", body);
        let packaged = build(&scan(&template, body, dir.path()).unwrap(), &store()).unwrap();
        assert_eq!(packaged.artifacts[0].bytes, ready, "one file zipped alone");
        assert_eq!(
            packaged.artifacts.len(),
            2,
            "the same zip twice is one object"
        );
        assert!(packaged.body.contains("CodeUri: s3://deploys/cfn/"));
        assert!(
            packaged
                .body
                .contains("DefinitionS3Location:\n        Bucket: deploys\n        Key: cfn/")
        );
        assert!(
            packaged.artifacts[1].key.ends_with(".js"),
            "as is, extension kept"
        );
    }

    #[test]
    fn missing_paths_paths_outside_the_workspace_and_cycles_are_refused_together() {
        let dir = tempfile::tempdir().unwrap();
        let body = "Resources:\n  Gone:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: gone.yml\n  Out:\n    Type: AWS::Lambda::Function\n    Properties:\n      Code: ../../etc\n  Loop:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: t.yml\n";
        let template = write(dir.path(), "infra/t.yml", body);
        let refusals = scan(&template, body, dir.path()).unwrap_err().0;
        let problems: Vec<&str> = refusals.iter().map(|r| r.problem.as_str()).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("resource Gone (AWS::CloudFormation::Stack), property TemplateURL: gone.yml cannot be read"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("../../etc resolves to")
                && problems[1].contains("outside the workspace"),
            "{problems:?}"
        );
        assert!(problems[2].contains("(a cycle)"), "{problems:?}");
        assert!(refusals.iter().all(|r| r.setting == Setting::Template));
    }
}
