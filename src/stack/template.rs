//! Reads what the deploy needs from a CloudFormation template — declared
//! parameters, resources and output names — without interpreting it.
//!
//! JSON and YAML are both parsed into `serde_yaml_ng::Value`, whose `Mapping`
//! keeps insertion order (declaration order matters for how we list
//! parameters) and which represents YAML short-form intrinsics such as
//! `!Ref X` as `Value::Tagged`, so they parse without a custom schema. JSON
//! goes through `serde_json` (strict JSON, precise errors) straight into that
//! same type, which keeps key order without turning on `serde_json`'s
//! `preserve_order` feature for the whole dependency graph.

use serde_yaml_ng::{Mapping, Value};

use super::parameters::DeclaredParameter;

/// CloudFormation's limit on an inline `TemplateBody`; larger templates must
/// be uploaded to S3 and passed as a `TemplateURL`.
pub const MAX_TEMPLATE_BODY_BYTES: usize = 51_200;

/// A resource declared under `Resources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredResource {
    pub logical_id: String,
    pub resource_type: String,
    /// An `AWS::ECS::Service` whose `DeploymentController.Type` is
    /// `CODE_DEPLOY`: CloudFormation cannot change its task definition in
    /// a plain update.
    pub code_deploy_service: bool,
}

/// Whether a resource's properties declare a CODE_DEPLOY-controlled service.
fn is_code_deploy_service(resource_type: &str, properties: &serde_yaml_ng::Mapping) -> bool {
    resource_type == "AWS::ECS::Service"
        && properties
            .get("Properties")
            .and_then(|p| p.get("DeploymentController"))
            .and_then(|c| c.get("Type"))
            .and_then(Value::as_str)
            == Some("CODE_DEPLOY")
}

/// The parts of a template the deploy looks at, each in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSummary {
    pub parameters: Vec<DeclaredParameter>,
    pub resources: Vec<DeclaredResource>,
    pub output_keys: Vec<String>,
    /// The macros the template asks CloudFormation to run: the top-level
    /// `Transform` (`AWS::Serverless-2016-10-31`, `AWS::LanguageExtensions`,
    /// ...) and `AWS::Include` or other macros named by `Fn::Transform`.
    pub transforms: Vec<String>,
    /// False when a transform may add parameters the local reading cannot
    /// see (`Fn::Transform` inside `Parameters`): CloudFormation is asked
    /// (GetTemplateSummary) instead of trusting the list above.
    pub parameters_complete: bool,
}

impl TemplateSummary {
    /// Whether CloudFormation rewrites the template before using it, so the
    /// resources listed here are only what the template says literally.
    pub fn is_transformed(&self) -> bool {
        !self.transforms.is_empty()
    }
}

/// A JSON or YAML document that could not be parsed. `message` comes from the
/// parser and carries the line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not valid {format}: {message}")]
pub struct DocumentSyntaxError {
    pub format: &'static str,
    pub message: String,
}

/// Why a template was rejected before being sent to CloudFormation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template: {0}; fix the syntax so the file is a JSON or YAML CloudFormation template")]
    Syntax(DocumentSyntaxError),

    #[error(
        "template: the top level is {found}, not a mapping; a CloudFormation template is a mapping with at least a `Resources` section"
    )]
    NotAMapping { found: &'static str },

    #[error(
        "template: there is no `Resources` section; a CloudFormation template must declare at least one resource under `Resources`"
    )]
    NoResources,

    #[error("template: the `Resources` section is empty; declare at least one resource under it")]
    EmptyResources,

    #[error(
        "template: the `{section}` section is {found}, not a mapping; write it as `Name:` entries"
    )]
    SectionNotAMapping {
        section: &'static str,
        found: &'static str,
    },

    #[error(
        "template: `{section}` has an entry named by {found} instead of text; use an alphanumeric name"
    )]
    NameNotText {
        section: &'static str,
        found: &'static str,
    },

    #[error(
        "template: `{section}` entry `{name}` is {found}, not a mapping; give it its properties, e.g. `Type:`"
    )]
    EntryNotAMapping {
        section: &'static str,
        name: String,
        found: &'static str,
    },

    #[error(
        "template: resource `{logical_id}` has no `Type`; add one, e.g. `Type: AWS::S3::Bucket`"
    )]
    ResourceWithoutType { logical_id: String },

    #[error(
        "template: resource `{logical_id}` has a `Type` that is {found}; write the type as plain text, e.g. `Type: AWS::S3::Bucket`"
    )]
    ResourceTypeNotText {
        logical_id: String,
        found: &'static str,
    },

    #[error(
        "the template body is {len} bytes, over CloudFormation's {MAX_TEMPLATE_BODY_BYTES}-byte limit for inline templates"
    )]
    BodyTooLarge { len: usize },
}

/// Describes a value's kind for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value (`!Tag`)",
    }
}

/// Parses a document that may be JSON or YAML, keeping mapping order.
///
/// JSON is tried first for its strictness and exact errors; YAML second (it
/// also accepts relaxed JSON such as `{Key: Value}`). When both fail, the JSON
/// error is reported for text that starts like JSON, the YAML one otherwise.
pub fn parse_json_or_yaml(text: &str) -> Result<Value, DocumentSyntaxError> {
    // A document that opens like JSON is held to JSON: YAML's flow syntax
    // would otherwise quietly read a JSON typo such as `{"a": ,}` as a null.
    if text.trim_start().starts_with(['{', '[']) {
        return serde_json::from_str::<Value>(text).map_err(|error| DocumentSyntaxError {
            format: "JSON",
            message: error.to_string(),
        });
    }
    serde_yaml_ng::from_str::<Value>(text).map_err(|error| DocumentSyntaxError {
        format: "YAML",
        message: error.to_string(),
    })
}

/// Rejects template bodies CloudFormation would refuse inline.
pub fn check_body_size(len: usize) -> Result<(), TemplateError> {
    if len > MAX_TEMPLATE_BODY_BYTES {
        return Err(TemplateError::BodyTooLarge { len });
    }
    Ok(())
}

/// Returns an optional top-level section as a mapping; absent or null
/// sections count as empty.
fn optional_section<'a>(
    template: &'a Mapping,
    section: &'static str,
) -> Result<Option<&'a Mapping>, TemplateError> {
    match template.get(section) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Mapping(mapping)) => Ok(Some(mapping)),
        Some(other) => Err(TemplateError::SectionNotAMapping {
            section,
            found: kind_of(other),
        }),
    }
}

/// Entries of a section as (name, value) pairs, in declaration order.
fn named_entries<'a>(
    section: &'static str,
    mapping: &'a Mapping,
) -> Result<Vec<(&'a str, &'a Value)>, TemplateError> {
    mapping
        .iter()
        .map(|(name, value)| match name {
            Value::String(name) => Ok((name.as_str(), value)),
            other => Err(TemplateError::NameNotText {
                section,
                found: kind_of(other),
            }),
        })
        .collect()
}

/// The entry's properties, or an error naming it when it is not a mapping.
fn entry_properties<'a>(
    section: &'static str,
    name: &str,
    value: &'a Value,
) -> Result<&'a Mapping, TemplateError> {
    value
        .as_mapping()
        .ok_or_else(|| TemplateError::EntryNotAMapping {
            section,
            name: name.to_owned(),
            found: kind_of(value),
        })
}

fn declared_parameter(name: &str, value: &Value) -> Result<DeclaredParameter, TemplateError> {
    let properties = entry_properties("Parameters", name, value)?;
    // CloudFormation accepts NoEcho as a boolean or as the string "true".
    let no_echo = match properties.get("NoEcho") {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    };
    // `Default: ""` is a real default (an empty string); only a missing or
    // null `Default` means the parameter needs a value.
    let has_default = !matches!(properties.get("Default"), None | Some(Value::Null));
    Ok(DeclaredParameter {
        name: name.to_owned(),
        no_echo,
        has_default,
    })
}

fn declared_resource(logical_id: &str, value: &Value) -> Result<DeclaredResource, TemplateError> {
    let properties = entry_properties("Resources", logical_id, value)?;
    match properties.get("Type") {
        Some(Value::String(resource_type)) if !resource_type.trim().is_empty() => {
            Ok(DeclaredResource {
                logical_id: logical_id.to_owned(),
                resource_type: resource_type.clone(),
                code_deploy_service: is_code_deploy_service(resource_type, properties),
            })
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {
            Err(TemplateError::ResourceWithoutType {
                logical_id: logical_id.to_owned(),
            })
        }
        Some(other) => Err(TemplateError::ResourceTypeNotText {
            logical_id: logical_id.to_owned(),
            found: kind_of(other),
        }),
    }
}

/// The transforms a template uses: the top-level `Transform` (text or a
/// list) and every macro named by an `Fn::Transform` anywhere in it.
fn transforms_of(template: &Mapping) -> Vec<String> {
    fn names(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::String(name) => found.push(name.clone()),
            Value::Sequence(items) => items.iter().for_each(|item| names(item, found)),
            Value::Mapping(mapping) => {
                // `Fn::Transform: {Name: AWS::Include, Parameters: ...}`
                if let Some(Value::String(name)) = mapping.get("Name") {
                    found.push(name.clone());
                }
            }
            _ => {}
        }
    }
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Mapping(mapping) => {
                for (key, inner) in mapping {
                    if key.as_str() == Some("Fn::Transform") {
                        names(inner, found);
                    }
                    walk(inner, found);
                }
            }
            Value::Sequence(items) => items.iter().for_each(|item| walk(item, found)),
            Value::Tagged(tagged) => {
                if tagged.tag == "!Transform" {
                    names(&tagged.value, found);
                }
                walk(&tagged.value, found);
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    if let Some(top) = template.get("Transform") {
        names(top, &mut found);
    }
    walk(&Value::Mapping(template.clone()), &mut found);
    let mut seen = std::collections::HashSet::new();
    found.retain(|name| seen.insert(name.clone()));
    found
}

/// Whether a section holds an `Fn::Transform` of its own (an `AWS::Include`
/// of the whole section): its entries are then only known to CloudFormation.
fn section_is_included(section: Option<&Value>) -> bool {
    section
        .and_then(Value::as_mapping)
        .is_some_and(|mapping| mapping.contains_key("Fn::Transform"))
}

/// Parses a JSON or YAML template and summarises it.
///
/// Refuses only what CloudFormation certainly refuses. A template with a
/// transform is rewritten by CloudFormation before it is checked
/// (`Fn::ForEach::Name` keys under `Resources`, SAM resources, an
/// `AWS::Include` of a whole section), so for it only the document's syntax
/// and top-level shape are judged here; the rest goes to CloudFormation,
/// whose answer is shown.
pub fn parse_template(body: &str) -> Result<TemplateSummary, TemplateError> {
    let document = parse_json_or_yaml(body).map_err(TemplateError::Syntax)?;
    let template = document.as_mapping().ok_or(TemplateError::NotAMapping {
        found: kind_of(&document),
    })?;
    let transforms = transforms_of(template);
    if transforms.is_empty() {
        parse_plain_template(template)
    } else {
        Ok(parse_transformed_template(template, transforms))
    }
}

/// A template CloudFormation takes as written: every rule is checked.
fn parse_plain_template(template: &Mapping) -> Result<TemplateSummary, TemplateError> {
    let resources_section = match template.get("Resources") {
        None => return Err(TemplateError::NoResources),
        Some(_) => optional_section(template, "Resources")?,
    };
    let resources = match resources_section {
        Some(mapping) if !mapping.is_empty() => named_entries("Resources", mapping)?
            .into_iter()
            .map(|(logical_id, value)| declared_resource(logical_id, value))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(TemplateError::EmptyResources),
    };

    let parameters = match optional_section(template, "Parameters")? {
        Some(mapping) => named_entries("Parameters", mapping)?
            .into_iter()
            .map(|(name, value)| declared_parameter(name, value))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };

    let output_keys = match optional_section(template, "Outputs")? {
        Some(mapping) => named_entries("Outputs", mapping)?
            .into_iter()
            .map(|(name, _)| name.to_owned())
            .collect(),
        None => Vec::new(),
    };

    Ok(TemplateSummary {
        parameters,
        resources,
        output_keys,
        transforms: Vec::new(),
        parameters_complete: true,
    })
}

/// A template a macro rewrites: what can be read literally is read, nothing
/// is refused (CloudFormation judges the processed template).
fn parse_transformed_template(template: &Mapping, transforms: Vec<String>) -> TemplateSummary {
    let entries = |section: &str| -> Vec<(String, Mapping)> {
        template
            .get(section)
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| {
                let name = name.as_str()?;
                // `Fn::ForEach::Loop` and `Fn::Transform` entries are
                // expanded by CloudFormation, not declarations.
                (!name.starts_with("Fn::"))
                    .then(|| Some((name.to_owned(), value.as_mapping()?.clone())))
                    .flatten()
            })
            .collect()
    };
    let parameters = entries("Parameters")
        .into_iter()
        .filter_map(|(name, properties)| {
            declared_parameter(&name, &Value::Mapping(properties)).ok()
        })
        .collect();
    let resources = entries("Resources")
        .into_iter()
        .filter_map(|(logical_id, properties)| match properties.get("Type") {
            Some(Value::String(resource_type)) => Some(DeclaredResource {
                logical_id,
                code_deploy_service: is_code_deploy_service(resource_type, &properties),
                resource_type: resource_type.clone(),
            }),
            _ => None,
        })
        .collect();
    let output_keys = entries("Outputs")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    TemplateSummary {
        parameters,
        resources,
        output_keys,
        parameters_complete: !section_is_included(template.get("Parameters")),
        transforms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uses every short-form intrinsic function tag CloudFormation defines.
    const YAML_TEMPLATE: &str = r#"AWSTemplateFormatVersion: "2010-09-09"
Description: ECS service with all short-form intrinsics
Parameters:
  Environment:
    Type: String
    AllowedValues: [dev, prod]
  DbPassword:
    Type: String
    NoEcho: true
  ApiKey:
    Type: String
    NoEcho: "true"
    Default: ""
  Subnets:
    Type: List<AWS::EC2::Subnet::Id>
  DesiredCount:
    Type: Number
    Default: 2
Mappings:
  Sizes:
    dev: {Cpu: 256}
    prod: {Cpu: 1024}
Conditions:
  IsProd: !Equals [!Ref Environment, prod]
  IsNotProd: !Not [!Condition IsProd]
  Both: !And [!Condition IsProd, !Not [!Equals [!Ref DesiredCount, 0]]]
  Either: !Or [!Condition IsProd, !Condition IsNotProd]
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.0.0.0/16
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      AvailabilityZone: !Select [0, !GetAZs ""]
      CidrBlock: !Select [0, !Cidr [!GetAtt Vpc.CidrBlock, 4, 8]]
  TaskDefinition:
    Type: AWS::ECS::TaskDefinition
    Properties:
      Cpu: !FindInMap [Sizes, !Ref Environment, Cpu]
      Family: !Sub "${AWS::StackName}-app"
      ContainerDefinitions:
        - Name: app
          Image: !Join [":", [!ImportValue shared-repo-uri, latest]]
          Command: !Split [",", "serve,--port,80"]
          Environment:
            - Name: BOOT
              Value: !Base64 |
                #!/bin/sh
                echo hello
            - Name: MODE
              Value: !If [IsProd, production, !Ref AWS::NoValue]
  Service:
    Type: AWS::ECS::Service
    Condition: Both
    Properties:
      TaskDefinition: !Ref TaskDefinition
      DesiredCount: !Ref DesiredCount
Outputs:
  ServiceName:
    Value: !GetAtt Service.Name
  SubnetId:
    Value: !Ref Subnet
    Export:
      Name: !Sub "${AWS::StackName}-subnet"
"#;

    const JSON_TEMPLATE: &str = r#"{
  "Resources": {
    "Queue": { "Type": "AWS::SQS::Queue" },
    "Bucket": {
      "Type": "AWS::S3::Bucket",
      "Properties": { "BucketName": { "Fn::Sub": "${AWS::StackName}-b" } }
    }
  },
  "Parameters": {
    "Zeta": { "Type": "String", "Default": "z" },
    "Alpha": { "Type": "String", "NoEcho": "TRUE" }
  },
  "Outputs": { "QueueUrl": { "Value": { "Ref": "Queue" } }, "Arn": { "Value": "x" } }
}"#;

    fn parameter(name: &str, no_echo: bool, has_default: bool) -> DeclaredParameter {
        DeclaredParameter {
            name: name.to_owned(),
            no_echo,
            has_default,
        }
    }

    fn resource(logical_id: &str, resource_type: &str) -> DeclaredResource {
        DeclaredResource {
            logical_id: logical_id.to_owned(),
            resource_type: resource_type.to_owned(),
            code_deploy_service: false,
        }
    }

    #[test]
    fn a_service_deployed_through_codedeploy_is_recognised() {
        let summary = parse_template(
            "Resources:\n  Blue:\n    Type: AWS::ECS::Service\n    Properties:\n      DeploymentController:\n        Type: CODE_DEPLOY\n  Rolling:\n    Type: AWS::ECS::Service\n    Properties:\n      DeploymentController: {Type: ECS}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let flagged: Vec<(&str, bool)> = summary
            .resources
            .iter()
            .map(|r| (r.logical_id.as_str(), r.code_deploy_service))
            .collect();
        assert_eq!(flagged, [("Blue", true), ("Rolling", false)]);
    }

    #[test]
    fn parses_yaml_with_every_short_form_intrinsic() {
        let summary = parse_template(YAML_TEMPLATE);
        assert_eq!(
            summary,
            Ok(TemplateSummary {
                parameters: vec![
                    parameter("Environment", false, false),
                    parameter("DbPassword", true, false),
                    parameter("ApiKey", true, true),
                    parameter("Subnets", false, false),
                    parameter("DesiredCount", false, true),
                ],
                resources: vec![
                    resource("Vpc", "AWS::EC2::VPC"),
                    resource("Subnet", "AWS::EC2::Subnet"),
                    resource("TaskDefinition", "AWS::ECS::TaskDefinition"),
                    resource("Service", "AWS::ECS::Service"),
                ],
                output_keys: vec!["ServiceName".to_owned(), "SubnetId".to_owned()],

                transforms: Vec::new(),
                parameters_complete: true,
            })
        );
    }

    #[test]
    fn parses_json_in_declaration_order() {
        let summary = parse_template(JSON_TEMPLATE);
        assert_eq!(
            summary,
            Ok(TemplateSummary {
                parameters: vec![
                    parameter("Zeta", false, true),
                    parameter("Alpha", true, false)
                ],
                resources: vec![
                    resource("Queue", "AWS::SQS::Queue"),
                    resource("Bucket", "AWS::S3::Bucket"),
                ],
                output_keys: vec!["QueueUrl".to_owned(), "Arn".to_owned()],

                transforms: Vec::new(),
                parameters_complete: true,
            })
        );
    }

    #[test]
    fn sections_other_than_resources_are_optional() {
        let summary = parse_template(
            "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\nParameters:\nOutputs: {}\n",
        );
        assert_eq!(
            summary,
            Ok(TemplateSummary {
                parameters: Vec::new(),
                resources: vec![resource("Topic", "AWS::SNS::Topic")],
                output_keys: Vec::new(),
                transforms: Vec::new(),
                parameters_complete: true,
            })
        );
    }

    #[test]
    fn rejects_malformed_templates_with_actionable_messages() {
        let cases: [(&str, &str); 14] = [
            (
                "Resources:\n  Bucket:\n    Type: [unclosed\n",
                "not valid YAML",
            ),
            (
                "{\"Resources\": {\"A\": {\"Type\": \"X\"}}",
                "not valid JSON",
            ),
            (
                "{\"Resources\": {\"A\": {\"Type\": \"X\"}}",
                "line 1 column",
            ),
            (
                "Resources:\n  A:\n    Type: X\n  A:\n    Type: Y\n",
                "duplicate",
            ),
            ("- Resources\n", "top level is a list"),
            ("just text", "top level is text"),
            ("", "top level is empty (null)"),
            ("Parameters: {}\n", "no `Resources` section"),
            ("Resources: {}\n", "`Resources` section is empty"),
            ("Resources:\n", "`Resources` section is empty"),
            (
                "Resources:\n  Bucket:\n    Properties: {}\n",
                "resource `Bucket` has no `Type`",
            ),
            (
                "Resources:\n  Bucket:\n    Type: !Ref T\n",
                "resource `Bucket` has a `Type` that is a tagged value",
            ),
            (
                "Resources:\n  Bucket: AWS::S3::Bucket\n",
                "`Resources` entry `Bucket` is text, not a mapping",
            ),
            (
                "Resources:\n  A: {Type: X}\nParameters: [a]\n",
                "`Parameters` section is a list",
            ),
        ];
        for (body, expected_fragment) in cases {
            let message = parse_template(body)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(message.starts_with("template: "), "{body:?}: {message}");
            assert!(message.contains(expected_fragment), "{body:?}: {message}");
        }
    }

    /// Regression: a valid `AWS::LanguageExtensions` template with an
    /// `Fn::ForEach::Buckets` key under `Resources` was refused as "a list,
    /// not a mapping"; CloudFormation accepts it.
    #[test]
    fn templates_with_transforms_are_left_to_cloudformation() {
        let for_each = r#"Transform: AWS::LanguageExtensions
Parameters:
  Names:
    Type: CommaDelimitedList
    Default: a,b
Resources:
  Fn::ForEach::Buckets:
    - Name
    - !Ref Names
    - Bucket${Name}:
        Type: AWS::S3::Bucket
  Queue:
    Type: AWS::SQS::Queue
Outputs:
  Fn::ForEach::BucketArns:
    - Name
    - !Ref Names
    - Arn${Name}:
        Value: !GetAtt [!Sub "Bucket${Name}", Arn]
  Count:
    Value: !Length [!Ref Names]
"#;
        let summary = parse_template(for_each).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.transforms, ["AWS::LanguageExtensions"]);
        assert_eq!(summary.resources, [resource("Queue", "AWS::SQS::Queue")]);
        assert_eq!(summary.parameters, [parameter("Names", false, true)]);
        assert_eq!(summary.output_keys, ["Count"]);
        assert!(summary.parameters_complete);
        assert!(summary.is_transformed());

        let cases: [(&str, &[&str], bool); 4] = [
            (
                "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n",
                &["AWS::Serverless-2016-10-31"],
                true,
            ),
            (
                "Transform: [AWS::Serverless-2016-10-31, AWS::LanguageExtensions]\nResources: {}\n",
                &["AWS::Serverless-2016-10-31", "AWS::LanguageExtensions"],
                true,
            ),
            (
                "Resources:\n  Fn::Transform:\n    Name: AWS::Include\n    Parameters: {Location: s3://b/r.yml}\n",
                &["AWS::Include"],
                true,
            ),
            (
                "Parameters:\n  Fn::Transform: {Name: AWS::Include, Parameters: {Location: s3://b/p.yml}}\nResources:\n  Q: {Type: AWS::SQS::Queue}\n",
                &["AWS::Include"],
                false,
            ),
        ];
        for (body, transforms, parameters_complete) in cases {
            let summary = parse_template(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
            assert_eq!(summary.transforms, transforms, "{body:?}");
            assert_eq!(summary.parameters_complete, parameters_complete, "{body:?}");
        }
        // Without a transform the same `Fn::ForEach` key is refused, as
        // CloudFormation refuses it.
        let plain = for_each.replacen("Transform: AWS::LanguageExtensions\n", "", 1);
        assert!(parse_template(&plain).is_err());
    }

    /// Real public templates (tests/fixtures/templates/SOURCES.md names each
    /// one's source and license), unchanged: CloudFormation accepts every
    /// one, so the local reading must refuse none.
    #[test]
    fn no_real_public_template_is_refused() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
        let mut checked = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let is_template = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yml" | "yaml" | "json" | "template"));
            if !is_template {
                continue;
            }
            let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            if let Err(error) = parse_template(&body) {
                panic!("{} is refused: {error}", path.display());
            }
            checked.push(path);
        }
        assert!(
            checked.len() >= 20,
            "only {} templates in {}",
            checked.len(),
            dir.display()
        );
    }

    #[test]
    fn yaml_syntax_errors_carry_line_and_column() {
        let body = "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n   Bad: indentation\n";
        let message = parse_template(body)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.contains("not valid YAML"), "{message}");
        assert!(message.contains("line 4"), "{message}");
        assert!(message.contains("column"), "{message}");
    }

    #[test]
    fn check_body_size_enforces_the_inline_limit() {
        let cases = [
            (0, true),
            (MAX_TEMPLATE_BODY_BYTES, true),
            (MAX_TEMPLATE_BODY_BYTES + 1, false),
        ];
        for (len, allowed) in cases {
            assert_eq!(check_body_size(len).is_ok(), allowed, "len {len}");
        }
        let message = check_body_size(60_000)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.contains("60000 bytes"), "{message}");
        assert!(message.contains("51200-byte limit"), "{message}");
    }

    #[test]
    fn documents_opening_like_json_are_held_to_json() {
        let cases: [(&str, Option<Value>); 5] = [
            (
                "{\"a\": 1}",
                Some(serde_yaml_ng::from_str("a: 1").unwrap_or_default()),
            ),
            ("{a: b}", None),
            ("{\"cpu\": ,}", None),
            ("a: !Ref b", serde_yaml_ng::from_str("a: !Ref b").ok()),
            ("{\"a\": ", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_json_or_yaml(text).ok(), expected, "{text:?}");
        }
        assert!(matches!(
            serde_yaml_ng::from_str::<Value>("a: !Ref b")
                .ok()
                .and_then(|value| value.get("a").cloned()),
            Some(Value::Tagged(_))
        ));
    }
}
