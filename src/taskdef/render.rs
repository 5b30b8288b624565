//! Rendering a task definition the way amazon-ecs-render-task-definition
//! does (new image per container, `environment-variables` for one
//! container), with the silent failures turned into errors, and the
//! normalised form used to tell whether a registration would change
//! anything.
//!
//! The document is kept as a `serde_json::Value` rather than typed, so every
//! field ECS adds later passes through untouched, and key order survives:
//! the crate enables serde_json's `preserve_order` feature for that, which
//! also makes YAML input keep its order. Empty strings and lists are kept as
//! given when rendering; only [`normalise`] drops them, for comparing.

use serde_json::{Map, Value};

use crate::refusal::Setting;

const CONTAINER_DEFINITIONS: &str = "containerDefinitions";
const ENVIRONMENT: &str = "environment";
const SECRETS: &str = "secrets";
/// DescribeTaskDefinition wraps the definition as
/// `{ "taskDefinition": {...}, "tags": [...] }`.
const DESCRIBE_WRAPPER: &str = "taskDefinition";
const DESCRIBE_TAGS: &str = "tags";

/// Fields DescribeTaskDefinition returns that RegisterTaskDefinition
/// rejects as unknown parameters.
const READ_ONLY_FIELDS: [&str; 8] = [
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
];

/// Container fields that DescribeTaskDefinition fills in when the
/// registered definition left them out (`cpu: 0`, `essential: true`);
/// dropped when normalising so a file without them equals what ECS returns.
fn is_container_default(field: &str, value: &Value) -> bool {
    match (field, value) {
        ("cpu", Value::Number(number)) => number.as_f64() == Some(0.0),
        ("essential", Value::Bool(essential)) => *essential,
        _ => false,
    }
}

/// Task-level fields ECS returns as strings (`"256"`) that users often
/// write as numbers, especially in YAML.
const STRING_VALUED_TASK_FIELDS: [&str; 2] = ["cpu", "memory"];

/// The image one container should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    pub container_name: String,
    pub image: String,
}

/// One line of `environment-variables`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvChange {
    pub name: String,
    /// `None` (written `NAME=`) removes the variable.
    pub value: Option<String>,
}

/// Environment changes for one container: as in the render action,
/// `environment-variables` apply to the container named by `container-name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEnvironment {
    pub container_name: String,
    pub changes: Vec<EnvChange>,
}

/// The rest of what amazon-ecs-render-task-definition sets on the named
/// container (its `secrets`, `env-files`, `command`, `docker-labels` and
/// `log-configuration-*` inputs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSettings {
    /// `(name, valueFrom)`, upserted by name into `secrets`.
    pub secrets: Vec<(String, String)>,
    /// S3 object ARNs, added to `environmentFiles` (type `s3`) unless there.
    pub environment_files: Vec<String>,
    /// Replaces `command`.
    pub command: Option<Vec<String>>,
    /// Upserted into `dockerLabels`.
    pub docker_labels: Vec<(String, String)>,
    /// Replaces `logConfiguration.logDriver`.
    pub log_driver: Option<String>,
    /// Upserted into `logConfiguration.options`.
    pub log_options: Vec<(String, String)>,
}

impl ContainerSettings {
    /// Whether nothing is to be set.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// [`ContainerSettings`] for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChanges {
    pub container_name: String,
    pub settings: ContainerSettings,
}

/// What to change in the task definition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenderRequest {
    /// Containers not named here keep their image.
    pub images: Vec<ContainerImage>,
    pub environment: Vec<ContainerEnvironment>,
    pub containers: Vec<ContainerChanges>,
    /// Replaces the task's `taskRoleArn`.
    pub task_role_arn: Option<String>,
    /// Replaces the task's `executionRoleArn`.
    pub execution_role_arn: Option<String>,
    /// Keys whose empty values (`""`, `[]`, `{}`, `null`) are kept
    /// (`keep-null-value-keys`); every other empty value is removed before
    /// registering, as amazon-ecs-deploy-task-definition does.
    pub keep_empty_keys: Vec<String>,
}

/// A task definition ready for RegisterTaskDefinition.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedTaskDefinition {
    pub task_definition: Value,
    /// The `tags` of a DescribeTaskDefinition output, which sit beside the
    /// definition there but are a separate RegisterTaskDefinition parameter.
    pub tags: Option<Value>,
}

/// Why a task definition could not be read or rendered. Messages name the
/// input, the value and the fix: they reach users as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(
        "`{document}`: not valid {format}: {message}; fix the syntax (the file may be JSON or YAML)"
    )]
    Syntax {
        document: String,
        format: &'static str,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    #[error(
        "`{document}`: the document is {found}; give a mapping with `family` and `containerDefinitions`, as RegisterTaskDefinition takes it (or DescribeTaskDefinition returns it)"
    )]
    NotAMapping {
        document: String,
        found: &'static str,
    },

    #[error(
        "`{document}`: there is no `containerDefinitions` list; give a task definition as RegisterTaskDefinition takes it (or DescribeTaskDefinition returns it), with at least one container"
    )]
    NoContainerDefinitions { document: String },

    #[error(
        "`{document}`: container {position} of `containerDefinitions` has no `name`; give every container a name"
    )]
    ContainerWithoutName { document: String, position: usize },

    #[error(
        "there is no container named `{container}` in task definition `{document}`; its containers are {existing}; name one of them"
    )]
    UnknownContainer {
        document: String,
        container: String,
        existing: String,
    },

    #[error(
        "container `{container}` is given two images (`{first}` and `{second}`); give each container one image"
    )]
    DuplicateImage {
        container: String,
        first: String,
        second: String,
    },

    #[error(
        "`{document}`: the `environment` of container `{container}` is {found}, not a list; write it as a list of {{\"name\": ..., \"value\": ...}} entries"
    )]
    EnvironmentNotAList {
        document: String,
        container: String,
        found: &'static str,
    },

    #[error(
        "`{document}`: the `{field}` of container `{container}` is {found}, which cannot take the values given; fix the task definition (a list or a mapping, as RegisterTaskDefinition takes it)"
    )]
    FieldShape {
        document: String,
        container: String,
        field: &'static str,
        found: &'static str,
    },

    #[error(
        "line {line_number} {shown}has no `=`; write NAME=value to set a variable, or NAME= to remove it"
    )]
    EnvLineWithoutEquals { line_number: usize, shown: String },

    #[error(
        "line {line_number}: `{name}` is not a valid variable name; names start with a letter or `_` and go on with letters, digits, `_`, `.` or `-`, with no spaces around `=` (e.g. LOG_LEVEL=debug)"
    )]
    EnvInvalidName { line_number: usize, name: String },
}

impl RenderError {
    /// The setting at fault: the document, the container named, the images
    /// given, or the environment lines.
    pub fn setting(&self) -> Setting {
        match self {
            Self::UnknownContainer { .. } => Setting::ContainerName,
            Self::DuplicateImage { .. } => Setting::ContainerImages,
            Self::EnvLineWithoutEquals { .. } | Self::EnvInvalidName { .. } => {
                Setting::EnvironmentVariables
            }
            Self::Syntax { .. }
            | Self::NotAMapping { .. }
            | Self::NoContainerDefinitions { .. }
            | Self::ContainerWithoutName { .. }
            | Self::EnvironmentNotAList { .. }
            | Self::FieldShape { .. } => Setting::TaskDefinition,
        }
    }
}

/// Parses a task definition file that may be JSON or YAML, reporting the
/// line and column of a syntax error.
///
/// Text that starts like JSON (`{` or `[`) is parsed as JSON only: YAML's
/// flow syntax would otherwise accept a typo such as `"cpu": ,` and read it
/// as `cpu: null`, registering a broken definition instead of failing.
pub fn parse_task_definition(text: &str, source: &str) -> Result<Value, RenderError> {
    let value = if text.trim_start().starts_with(['{', '[']) {
        serde_json::from_str::<Value>(text).map_err(|error| RenderError::Syntax {
            document: source.to_owned(),
            format: "JSON",
            line: Some(error.line()),
            column: Some(error.column()),
            message: error.to_string(),
        })?
    } else {
        serde_yaml_ng::from_str::<Value>(text).map_err(|error| {
            let location = error.location();
            RenderError::Syntax {
                document: source.to_owned(),
                format: "YAML",
                line: location.as_ref().map(|location| location.line()),
                column: location.as_ref().map(|location| location.column()),
                message: error.to_string(),
            }
        })?
    };
    check_is_mapping(value, source)
}

fn check_is_mapping(value: Value, source: &str) -> Result<Value, RenderError> {
    match value {
        Value::Object(_) => Ok(value),
        other => Err(RenderError::NotAMapping {
            document: source.to_owned(),
            found: kind_of(&other),
        }),
    }
}

/// Parses the multi-line `environment-variables` input: `NAME=value` sets,
/// `NAME=` removes; blank lines are dropped. The value is everything after
/// the first `=` (values may contain `=`), and nothing around `=` is
/// trimmed, so what is written is what the container gets.
pub fn parse_environment_lines(text: &str) -> Result<Vec<EnvChange>, RenderError> {
    let mut changes = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() {
            continue;
        }
        let line_number = index + 1;
        let Some((name, value)) = line.split_once('=') else {
            // Only echo the line when it looks like a bare name: a line
            // without `=` may be a pasted secret value.
            let shown = if is_valid_env_name(line) {
                format!("`{line}` ")
            } else {
                String::new()
            };
            return Err(RenderError::EnvLineWithoutEquals { line_number, shown });
        };
        if !is_valid_env_name(name) {
            return Err(RenderError::EnvInvalidName {
                line_number,
                name: name.to_owned(),
            });
        }
        changes.push(EnvChange {
            name: name.to_owned(),
            value: (!value.is_empty()).then(|| value.to_owned()),
        });
    }
    Ok(changes)
}

/// `[A-Za-z_][A-Za-z0-9_.-]*`: POSIX names plus the dots and dashes that
/// Java and Spring applications read from the environment.
fn is_valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

/// Applies `request` to a task definition document (as read by
/// [`parse_task_definition`], or DescribeTaskDefinition output), removing
/// the fields RegisterTaskDefinition rejects. `source` names the document in
/// errors (a path, ARN or family).
pub fn render_task_definition(
    document: Value,
    source: &str,
    request: &RenderRequest,
) -> Result<RenderedTaskDefinition, RenderError> {
    let document = check_is_mapping(document, source)?;
    let (mut task_definition, tags) = split_describe_output(document);
    let Value::Object(fields) = &mut task_definition else {
        return Err(RenderError::NotAMapping {
            document: source.to_owned(),
            found: kind_of(&task_definition),
        });
    };
    strip_read_only_fields(fields);
    let containers = container_definitions(fields, source)?;
    check_distinct_images(&request.images)?;

    for ContainerImage {
        container_name,
        image,
    } in &request.images
    {
        let container = find_container(containers, container_name, source)?;
        // `insert` on an existing key keeps its position (preserve_order).
        container.insert("image".to_owned(), Value::String(image.clone()));
    }
    for ContainerEnvironment {
        container_name,
        changes,
    } in &request.environment
    {
        let container = find_container(containers, container_name, source)?;
        apply_environment(container, changes, source, container_name)?;
    }
    for ContainerChanges {
        container_name,
        settings,
    } in &request.containers
    {
        let container = find_container(containers, container_name, source)?;
        apply_container_settings(container, settings, source, container_name)?;
    }
    for (field, value) in [
        ("taskRoleArn", &request.task_role_arn),
        ("executionRoleArn", &request.execution_role_arn),
    ] {
        if let Some(value) = value {
            fields.insert(field.to_owned(), Value::String(value.clone()));
        }
    }
    Ok(RenderedTaskDefinition {
        task_definition: drop_empty_values(task_definition, &request.keep_empty_keys),
        tags,
    })
}

/// Removes empty values (`null`, `""`, `[]`, `{}`, and what is left empty
/// once its own empty values are gone) at any depth, except under a key
/// in `keep`: a file copied from DescribeTaskDefinition or the console is
/// full of them, and RegisterTaskDefinition refuses some (an empty
/// `hostname`, a `null` limit). An environment variable's or a proxy
/// property's `value` is kept even when empty: an empty string is a value
/// a program can read.
fn drop_empty_values(value: Value, keep: &[String]) -> Value {
    fn clean(value: Value, keep: &[String], keeps_empty_value: bool) -> Option<Value> {
        let cleaned = match value {
            Value::Object(fields) => {
                // `{name, value}` pairs: environment entries, proxy properties.
                let named_pair = fields.contains_key("name") && fields.contains_key("value");
                Value::Object(
                    fields
                        .into_iter()
                        .filter_map(|(key, value)| {
                            if keep.contains(&key) {
                                return Some((key, value));
                            }
                            let kept_empty = named_pair && key == "value";
                            clean(value, keep, kept_empty).map(|value| (key, value))
                        })
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .filter_map(|item| clean(item, keep, false))
                    .collect(),
            ),
            other => other,
        };
        let empty = match &cleaned {
            Value::Null => true,
            Value::String(text) => text.is_empty(),
            Value::Array(items) => items.is_empty(),
            Value::Object(fields) => fields.is_empty(),
            _ => false,
        };
        (!empty || keeps_empty_value).then_some(cleaned)
    }
    clean(value, keep, false).unwrap_or_else(|| Value::Object(serde_json::Map::new()))
}

/// Unwraps DescribeTaskDefinition output (`{ "taskDefinition": {...},
/// "tags": [...] }`) into the definition and its tags; any other document
/// is returned as it is.
pub fn split_describe_output(document: Value) -> (Value, Option<Value>) {
    match document {
        Value::Object(mut wrapper)
            if !wrapper.contains_key(CONTAINER_DEFINITIONS)
                && wrapper.get(DESCRIBE_WRAPPER).is_some_and(Value::is_object) =>
        {
            let tags = wrapper.remove(DESCRIBE_TAGS);
            let task_definition = wrapper.remove(DESCRIBE_WRAPPER).unwrap_or_default();
            (task_definition, tags)
        }
        other => (other, None),
    }
}

fn strip_read_only_fields(fields: &mut Map<String, Value>) {
    for field in READ_ONLY_FIELDS {
        // `shift_remove` keeps the order of the remaining keys.
        fields.shift_remove(field);
    }
}

/// The containers, checked to be named objects so later lookups can rely
/// on it.
fn container_definitions<'a>(
    fields: &'a mut Map<String, Value>,
    source: &str,
) -> Result<&'a mut Vec<Value>, RenderError> {
    let Some(Value::Array(containers)) = fields.get_mut(CONTAINER_DEFINITIONS) else {
        return Err(RenderError::NoContainerDefinitions {
            document: source.to_owned(),
        });
    };
    if let Some(index) = containers
        .iter()
        .position(|container| container_name(container).is_none())
    {
        return Err(RenderError::ContainerWithoutName {
            document: source.to_owned(),
            position: index + 1,
        });
    }
    Ok(containers)
}

fn container_name(container: &Value) -> Option<&str> {
    container.get("name").and_then(Value::as_str)
}

fn check_distinct_images(images: &[ContainerImage]) -> Result<(), RenderError> {
    for (index, first) in images.iter().enumerate() {
        if let Some(second) = images[index + 1..]
            .iter()
            .find(|other| other.container_name == first.container_name)
        {
            return Err(RenderError::DuplicateImage {
                container: first.container_name.clone(),
                first: first.image.clone(),
                second: second.image.clone(),
            });
        }
    }
    Ok(())
}

/// The container named `name`. A missing one is an error listing the
/// containers that exist, because the render action's silent no-op on a
/// misspelt `container-name` deploys the old image.
fn find_container<'a>(
    containers: &'a mut [Value],
    name: &str,
    source: &str,
) -> Result<&'a mut Map<String, Value>, RenderError> {
    let existing: Vec<String> = containers
        .iter()
        .filter_map(container_name)
        .map(|name| format!("`{name}`"))
        .collect();
    containers
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|container| container.get("name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| RenderError::UnknownContainer {
            document: source.to_owned(),
            container: name.to_owned(),
            existing: existing.join(", "),
        })
}

/// Sets what [`ContainerSettings`] holds on one container. Lists and maps
/// are upserted (an entry of the same name is replaced in place, others
/// kept), as amazon-ecs-render-task-definition does.
fn apply_container_settings(
    container: &mut Map<String, Value>,
    settings: &ContainerSettings,
    source: &str,
    container_name: &str,
) -> Result<(), RenderError> {
    let shape_error = |field: &'static str, found: &Value| RenderError::FieldShape {
        document: source.to_owned(),
        container: container_name.to_owned(),
        field,
        found: kind_of(found),
    };
    if !settings.secrets.is_empty() {
        let secrets =
            list_field(container, "secrets").map_err(|found| shape_error("secrets", &found))?;
        for (name, value_from) in &settings.secrets {
            let entry = Value::Object(Map::from_iter([
                ("name".to_owned(), Value::String(name.clone())),
                ("valueFrom".to_owned(), Value::String(value_from.clone())),
            ]));
            let named = |e: &Value| e.get("name").and_then(Value::as_str) == Some(name.as_str());
            match secrets.iter().position(named) {
                Some(index) => secrets[index] = entry,
                None => secrets.push(entry),
            }
        }
    }
    if !settings.environment_files.is_empty() {
        let files = list_field(container, "environmentFiles")
            .map_err(|found| shape_error("environmentFiles", &found))?;
        for arn in &settings.environment_files {
            let listed = files
                .iter()
                .any(|e| e.get("value").and_then(Value::as_str) == Some(arn.as_str()));
            if !listed {
                files.push(Value::Object(Map::from_iter([
                    ("value".to_owned(), Value::String(arn.clone())),
                    ("type".to_owned(), Value::String("s3".to_owned())),
                ])));
            }
        }
    }
    if let Some(command) = &settings.command {
        container.insert(
            "command".to_owned(),
            Value::Array(command.iter().cloned().map(Value::String).collect()),
        );
    }
    if !settings.docker_labels.is_empty() {
        let labels = map_field(container, "dockerLabels")
            .map_err(|found| shape_error("dockerLabels", &found))?;
        for (key, value) in &settings.docker_labels {
            labels.insert(key.clone(), Value::String(value.clone()));
        }
    }
    if settings.log_driver.is_some() || !settings.log_options.is_empty() {
        let log = map_field(container, "logConfiguration")
            .map_err(|found| shape_error("logConfiguration", &found))?;
        if let Some(driver) = &settings.log_driver {
            log.insert("logDriver".to_owned(), Value::String(driver.clone()));
        }
        if !settings.log_options.is_empty() {
            let options = map_field(log, "options")
                .map_err(|found| shape_error("logConfiguration.options", &found))?;
            for (key, value) in &settings.log_options {
                options.insert(key.clone(), Value::String(value.clone()));
            }
        }
    }
    Ok(())
}

/// The list under `field`, created empty when absent; the value found when
/// it is something else.
fn list_field<'a>(
    map: &'a mut Map<String, Value>,
    field: &str,
) -> Result<&'a mut Vec<Value>, Value> {
    if matches!(map.get(field), None | Some(Value::Null)) {
        map.insert(field.to_owned(), Value::Array(Vec::new()));
    }
    match map.get_mut(field) {
        Some(Value::Array(list)) => Ok(list),
        other => Err(other.cloned().unwrap_or(Value::Null)),
    }
}

/// The mapping under `field`, created empty when absent; the value found
/// when it is something else.
fn map_field<'a>(
    map: &'a mut Map<String, Value>,
    field: &str,
) -> Result<&'a mut Map<String, Value>, Value> {
    if matches!(map.get(field), None | Some(Value::Null)) {
        map.insert(field.to_owned(), Value::Object(Map::new()));
    }
    match map.get_mut(field) {
        Some(Value::Object(inner)) => Ok(inner),
        other => Err(other.cloned().unwrap_or(Value::Null)),
    }
}

fn apply_environment(
    container: &mut Map<String, Value>,
    changes: &[EnvChange],
    source: &str,
    container_name: &str,
) -> Result<(), RenderError> {
    for change in changes {
        let environment = match container.get_mut(ENVIRONMENT) {
            Some(Value::Array(environment)) => environment,
            None | Some(Value::Null) if change.value.is_none() => continue,
            None | Some(Value::Null) => {
                container.insert(ENVIRONMENT.to_owned(), Value::Array(Vec::new()));
                match container.get_mut(ENVIRONMENT) {
                    Some(Value::Array(environment)) => environment,
                    _ => continue,
                }
            }
            Some(other) => {
                return Err(RenderError::EnvironmentNotAList {
                    document: source.to_owned(),
                    container: container_name.to_owned(),
                    found: kind_of(other),
                });
            }
        };
        let is_named =
            |entry: &Value| entry.get("name").and_then(Value::as_str) == Some(&change.name);
        match &change.value {
            None => environment.retain(|entry| !is_named(entry)),
            Some(value) => match environment.iter().position(is_named) {
                Some(first) => {
                    if let Some(entry) = environment[first].as_object_mut() {
                        entry.insert("value".to_owned(), Value::String(value.clone()));
                    }
                    // Drop later entries of the same name so the new value
                    // is the only one ECS sees.
                    let mut position = 0;
                    environment.retain(|entry| {
                        let keep = position == first || !is_named(entry);
                        position += 1;
                        keep
                    });
                }
                None => environment.push(Value::Object(Map::from_iter([
                    ("name".to_owned(), Value::String(change.name.clone())),
                    ("value".to_owned(), Value::String(value.clone())),
                ]))),
            },
        }
    }
    Ok(())
}

/// Pretty JSON with a final newline, for files handed to later steps.
/// `Value`'s alternate Display is serde_json's pretty printer and cannot
/// fail, unlike `to_string_pretty`'s `Result`.
pub fn to_pretty_json(value: &Value) -> String {
    format!("{value:#}\n")
}

/// The form two task definitions are compared in (as ecspresso does before
/// diffing or skipping a no-op registration): unwrapped from
/// DescribeTaskDefinition output, read-only fields and tags removed,
/// containers sorted by name, `environment` and `secrets` sorted by name,
/// defaults ECS fills in removed, nulls and empty lists and mappings dropped
/// (ECS returns `mountPoints: []` for a definition that had none), task
/// `cpu`/`memory` as strings, and keys sorted so a diff is stable. Order
/// that matters (`command`, `entryPoint`) is kept.
pub fn normalise(task_definition: &Value) -> Value {
    let (mut task_definition, _tags) = split_describe_output(task_definition.clone());
    if let Value::Object(fields) = &mut task_definition {
        strip_read_only_fields(fields);
        for field in STRING_VALUED_TASK_FIELDS {
            if let Some(value) = fields.get_mut(field)
                && let Value::Number(number) = value
            {
                *value = Value::String(number.to_string());
            }
        }
        if let Some(Value::Array(containers)) = fields.get_mut(CONTAINER_DEFINITIONS) {
            containers.sort_by(|a, b| container_name(a).cmp(&container_name(b)));
            for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                container.retain(|field, value| !is_container_default(field, value));
                for list in [ENVIRONMENT, SECRETS] {
                    if let Some(Value::Array(entries)) = container.get_mut(list) {
                        entries.sort_by(|a, b| {
                            let name = |entry: &Value| {
                                entry.get("name").and_then(Value::as_str).map(str::to_owned)
                            };
                            name(a).cmp(&name(b))
                        });
                    }
                }
            }
        }
    }
    drop_empty_and_sort_keys(task_definition)
}

fn drop_empty_and_sort_keys(value: Value) -> Value {
    match value {
        Value::Object(fields) => {
            let mut kept: Vec<(String, Value)> = fields
                .into_iter()
                .map(|(key, value)| (key, drop_empty_and_sort_keys(value)))
                .filter(|(_, value)| !is_empty_value(value))
                .collect();
            kept.sort_by(|(a, _), (b, _)| a.cmp(b));
            Value::Object(kept.into_iter().collect())
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(drop_empty_and_sort_keys).collect())
        }
        other => other,
    }
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// Whether registering `a` would give the same task definition as `b`
/// (e.g. the rendered file and the service's current revision).
pub fn is_same_task_definition(a: &Value, b: &Value) -> bool {
    normalise(a) == normalise(b)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SOURCE: &str = "task-definition.json";

    fn parsed(text: &str) -> Value {
        parse_task_definition(text, SOURCE).unwrap_or_else(|error| panic!("{error}"))
    }

    fn rendered(document: Value, request: &RenderRequest) -> RenderedTaskDefinition {
        render_task_definition(document, SOURCE, request).unwrap_or_else(|error| panic!("{error}"))
    }

    fn image(container_name: &str, image: &str) -> ContainerImage {
        ContainerImage {
            container_name: container_name.to_owned(),
            image: image.to_owned(),
        }
    }

    fn environment(container_name: &str, lines: &str) -> ContainerEnvironment {
        ContainerEnvironment {
            container_name: container_name.to_owned(),
            changes: parse_environment_lines(lines).unwrap_or_else(|error| panic!("{error}")),
        }
    }

    fn two_containers() -> Value {
        json!({
            "family": "shop",
            "networkMode": "awsvpc",
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:old",
                    "essential": true,
                    "environment": [
                        { "name": "LOG_LEVEL", "value": "info" },
                        { "name": "REGION", "value": "us-east-1" },
                        { "name": "LOG_LEVEL", "value": "warn" }
                    ]
                },
                {
                    "name": "proxy",
                    "image": "public.ecr.aws/nginx/nginx:1.25",
                    "essential": false
                }
            ],
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512"
        })
    }

    #[test]
    fn images_go_to_the_named_containers_only() {
        let cases = [
            (
                vec![image("app", "repo:v2")],
                ["repo:v2", "public.ecr.aws/nginx/nginx:1.25"],
            ),
            (
                vec![image("proxy", "nginx:1.27"), image("app", "repo:v3")],
                ["repo:v3", "nginx:1.27"],
            ),
            (
                Vec::new(),
                [
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:old",
                    "public.ecr.aws/nginx/nginx:1.25",
                ],
            ),
        ];
        for (images, expected) in cases {
            let request = RenderRequest {
                images,
                ..RenderRequest::default()
            };
            let output = rendered(two_containers(), &request).task_definition;
            let actual: Vec<&str> = output[CONTAINER_DEFINITIONS]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|container| container["image"].as_str())
                .collect();
            assert_eq!(actual, expected);
            // `image` stays in its place among the container's keys.
            let keys: Vec<&str> = output[CONTAINER_DEFINITIONS][0]
                .as_object()
                .into_iter()
                .flat_map(|fields| fields.keys().map(String::as_str))
                .collect();
            assert_eq!(keys, ["name", "image", "essential", "environment"]);
        }
    }

    #[test]
    fn environment_lines_set_replace_and_remove() {
        let cases = [
            (
                "FEATURE_X=on",
                json!([
                    { "name": "LOG_LEVEL", "value": "info" },
                    { "name": "REGION", "value": "us-east-1" },
                    { "name": "LOG_LEVEL", "value": "warn" },
                    { "name": "FEATURE_X", "value": "on" }
                ]),
            ),
            (
                "LOG_LEVEL=debug",
                json!([
                    { "name": "LOG_LEVEL", "value": "debug" },
                    { "name": "REGION", "value": "us-east-1" }
                ]),
            ),
            // Every variable removed: the emptied list goes too.
            ("REGION=\n\nLOG_LEVEL=", Value::Null),
            (
                "DSN=postgres://db/shop?sslmode=require\nREGION=eu-west-1\nGONE=",
                json!([
                    { "name": "LOG_LEVEL", "value": "info" },
                    { "name": "REGION", "value": "eu-west-1" },
                    { "name": "LOG_LEVEL", "value": "warn" },
                    { "name": "DSN", "value": "postgres://db/shop?sslmode=require" }
                ]),
            ),
        ];
        for (lines, expected) in cases {
            let request = RenderRequest {
                environment: vec![environment("app", lines)],
                ..RenderRequest::default()
            };
            let output = rendered(two_containers(), &request).task_definition;
            assert_eq!(
                output[CONTAINER_DEFINITIONS][0][ENVIRONMENT], expected,
                "{lines}"
            );
            // Other containers are untouched.
            assert_eq!(
                output[CONTAINER_DEFINITIONS][1],
                two_containers()[CONTAINER_DEFINITIONS][1]
            );
        }
    }

    #[test]
    fn environment_is_created_only_when_something_is_set() {
        let cases = [
            ("ADDED=1", Some(json!([{ "name": "ADDED", "value": "1" }]))),
            ("ABSENT=", None),
        ];
        for (lines, expected) in cases {
            let request = RenderRequest {
                environment: vec![environment("proxy", lines)],
                ..RenderRequest::default()
            };
            let output = rendered(two_containers(), &request).task_definition;
            assert_eq!(
                output[CONTAINER_DEFINITIONS][1].get(ENVIRONMENT).cloned(),
                expected,
                "{lines}"
            );
        }
    }

    #[test]
    fn parse_environment_lines_reports_bad_lines() {
        let cases = [
            (
                "A=1\r\n  B=two words  \n\nC=",
                Ok(vec![
                    ("A", Some("1")),
                    ("B", Some("two words")),
                    ("C", None),
                ]),
            ),
            (
                "spring.profiles.active=prod",
                Ok(vec![("spring.profiles.active", Some("prod"))]),
            ),
            (
                "A=1\nDEBUG",
                Err("EnvironmentVariables: line 2 `DEBUG` has no `=`; write NAME=value"),
            ),
            (
                "s3cr3t value",
                Err("EnvironmentVariables: line 1 has no `=`"),
            ),
            (
                "NAME = x",
                Err("line 1: `NAME ` is not a valid variable name"),
            ),
            ("1ST=x", Err("line 1: `1ST` is not a valid variable name")),
            ("=x", Err("line 1: `` is not a valid variable name")),
        ];
        for (text, expected) in cases {
            let result = parse_environment_lines(text)
                .map_err(|error| format!("{:?}: {error}", error.setting()));
            match (result, expected) {
                (Ok(changes), Ok(expected)) => {
                    let actual: Vec<(&str, Option<&str>)> = changes
                        .iter()
                        .map(|change| (change.name.as_str(), change.value.as_deref()))
                        .collect();
                    assert_eq!(actual, expected, "{text:?}");
                }
                (Err(message), Err(expected)) => assert!(message.contains(expected), "{message}"),
                (actual, expected) => panic!("{text:?}: {actual:?} vs {expected:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_pass_through_in_order() {
        let document = json!({
            "family": "shop",
            "futureTopLevelField": { "mode": "x" },
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": "repo:v1",
                    "futureContainerField": [1, 2]
                }
            ]
        });
        let request = RenderRequest {
            images: vec![image("app", "repo:v2")],
            ..RenderRequest::default()
        };
        let output = rendered(document.clone(), &request).task_definition;
        let mut expected = document;
        expected[CONTAINER_DEFINITIONS][0]["image"] = json!("repo:v2");
        assert_eq!(to_pretty_json(&output), to_pretty_json(&expected));
        assert!(
            to_pretty_json(&output)
                .starts_with("{\n  \"family\": \"shop\",\n  \"futureTopLevelField\"")
        );
    }

    #[test]
    fn empty_values_are_dropped_unless_kept_by_key_and_empty_variables_stay() {
        let document = json!({
            "family": "shop",
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": "repo:v1",
                    "command": [],
                    "hostname": "",
                    "memoryReservation": null,
                    "linuxParameters": { "capabilities": { "add": [] } },
                    "environment": [{ "name": "EMPTY", "value": "" }],
                    "dockerLabels": {}
                }
            ],
            "volumes": [],
            "placementConstraints": []
        });
        let dropped = rendered(document.clone(), &RenderRequest::default()).task_definition;
        assert_eq!(
            dropped,
            json!({
                "family": "shop",
                "containerDefinitions": [{
                    "name": "app",
                    "image": "repo:v1",
                    "environment": [{ "name": "EMPTY", "value": "" }]
                }]
            })
        );
        let request = RenderRequest {
            keep_empty_keys: vec!["command".into(), "volumes".into()],
            ..RenderRequest::default()
        };
        let kept = rendered(document, &request).task_definition;
        assert_eq!(kept[CONTAINER_DEFINITIONS][0]["command"], json!([]));
        assert_eq!(kept["volumes"], json!([]));
        assert!(kept[CONTAINER_DEFINITIONS][0].get("hostname").is_none());
        assert!(kept.get("placementConstraints").is_none());
    }

    #[test]
    fn read_only_fields_are_stripped_and_describe_output_unwrapped() {
        let described = json!({
            "taskDefinition": {
                "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/shop:7",
                "containerDefinitions": [{ "name": "app", "image": "repo:v1" }],
                "family": "shop",
                "revision": 7,
                "status": "ACTIVE",
                "requiresAttributes": [{ "name": "com.amazonaws.ecs.capability.docker-remote-api.1.18" }],
                "compatibilities": ["EC2", "FARGATE"],
                "requiresCompatibilities": ["FARGATE"],
                "registeredAt": "2024-05-14T09:20:00Z",
                "registeredBy": "arn:aws:iam::123456789012:role/deploy",
                "deregisteredAt": null
            },
            "tags": [{ "key": "team", "value": "shop" }]
        });
        let unwrapped = match described.get(DESCRIBE_WRAPPER) {
            Some(inner) => inner.clone(),
            None => panic!("fixture lacks taskDefinition"),
        };
        let expected = json!({
            "containerDefinitions": [{ "name": "app", "image": "repo:v2" }],
            "family": "shop",
            "requiresCompatibilities": ["FARGATE"]
        });
        let request = RenderRequest {
            images: vec![image("app", "repo:v2")],
            ..RenderRequest::default()
        };
        let cases = [
            (described, Some(json!([{ "key": "team", "value": "shop" }]))),
            (unwrapped, None),
        ];
        for (document, tags) in cases {
            let output = rendered(document, &request);
            assert_eq!(
                to_pretty_json(&output.task_definition),
                to_pretty_json(&expected)
            );
            assert_eq!(output.tags, tags);
        }
    }

    #[test]
    fn a_missing_container_lists_the_existing_ones() {
        let cases = [
            RenderRequest {
                images: vec![image("web", "repo:v2")],
                ..RenderRequest::default()
            },
            RenderRequest {
                environment: vec![environment("web", "A=1")],
                ..RenderRequest::default()
            },
        ];
        for request in cases {
            let error = render_task_definition(two_containers(), SOURCE, &request).map(|_| ());
            assert_eq!(
                error.map_err(|error| format!("{:?}: {error}", error.setting())),
                Err("ContainerName: there is no container named `web` in task definition `task-definition.json`; its containers are `app`, `proxy`; name one of them".to_owned())
            );
        }
    }

    #[test]
    fn malformed_documents_are_refused_with_the_fix() {
        let request = RenderRequest {
            images: vec![image("app", "repo:v2")],
            ..RenderRequest::default()
        };
        let cases = [
            (json!(["app"]), "the document is a list"),
            (
                json!({ "family": "shop" }),
                "there is no `containerDefinitions` list",
            ),
            (
                json!({ "containerDefinitions": [{ "name": "app" }, { "image": "x" }] }),
                "container 2 of `containerDefinitions` has no `name`",
            ),
            (
                json!({ "containerDefinitions": [{ "name": "app", "environment": "A=1" }] }),
                "the `environment` of container `app` is a string, not a list",
            ),
        ];
        for (document, expected) in cases {
            let with_environment = RenderRequest {
                environment: vec![environment("app", "A=1")],
                ..request.clone()
            };
            let message = match render_task_definition(document, SOURCE, &with_environment) {
                Ok(output) => panic!("{expected}: rendered {output:?}"),
                Err(error) => error.to_string(),
            };
            assert!(message.starts_with("`task-definition.json`: "), "{message}");
            assert!(message.contains(expected), "{message}");
        }
        let twice = RenderRequest {
            images: vec![image("app", "repo:v2"), image("app", "repo:v3")],
            ..RenderRequest::default()
        };
        let error = render_task_definition(two_containers(), SOURCE, &twice).map(|_| ());
        assert_eq!(
            error,
            Err(RenderError::DuplicateImage {
                container: "app".to_owned(),
                first: "repo:v2".to_owned(),
                second: "repo:v3".to_owned(),
            })
        );
    }

    #[test]
    fn parse_task_definition_reads_json_and_yaml() {
        let yaml = "\
family: shop
containerDefinitions:
  - name: app
    image: repo:v1
    portMappings:
      - containerPort: 8080
cpu: 256
memory: '512'
";
        let json_text = r#"{"family": "shop", "containerDefinitions": [{"name": "app", "image": "repo:v1", "portMappings": [{"containerPort": 8080}]}], "cpu": 256, "memory": "512"}"#;
        let expected = json!({
            "family": "shop",
            "containerDefinitions": [
                { "name": "app", "image": "repo:v1", "portMappings": [{ "containerPort": 8080 }] }
            ],
            "cpu": 256,
            "memory": "512"
        });
        for text in [yaml, json_text] {
            let document = parsed(text);
            assert_eq!(document, expected);
            // Key order as written survives YAML too.
            let keys: Vec<&str> = document
                .as_object()
                .into_iter()
                .flat_map(|fields| fields.keys().map(String::as_str))
                .collect();
            assert_eq!(keys, ["family", "containerDefinitions", "cpu", "memory"]);
        }
    }

    #[test]
    fn parse_task_definition_points_at_the_syntax_error() {
        let cases = [
            (
                "{\n  \"family\": \"shop\",\n  \"cpu\": ,\n}",
                "JSON",
                Some(3),
                Some(10),
            ),
            (
                "family: shop\ncontainerDefinitions:\n  - name: app\n   bad: [",
                "YAML",
                Some(4),
                Some(4),
            ),
            ("", "", None, None),
            ("- a\n- b", "", None, None),
        ];
        for (text, format, line, column) in cases {
            let error = match parse_task_definition(text, SOURCE) {
                Ok(value) => panic!("{text:?} parsed as {value}"),
                Err(error) => error,
            };
            let message = error.to_string();
            assert!(message.starts_with("`task-definition.json`: "), "{message}");
            match error {
                RenderError::Syntax {
                    format: actual_format,
                    line: actual_line,
                    column: actual_column,
                    ..
                } => {
                    assert_eq!(
                        (actual_format, actual_line, actual_column),
                        (format, line, column),
                        "{message}"
                    );
                    assert!(message.contains("fix the syntax"), "{message}");
                }
                RenderError::NotAMapping { .. } => {
                    assert_eq!(format, "", "{message}");
                    assert!(
                        message.contains("give a mapping with `family`"),
                        "{message}"
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn normalise_ignores_order_read_only_fields_and_filled_in_defaults() {
        let file = json!({
            "family": "shop",
            "cpu": 256,
            "memory": "512",
            "containerDefinitions": [
                {
                    "name": "proxy",
                    "image": "nginx:1.27",
                    "essential": false
                },
                {
                    "name": "app",
                    "image": "repo:v2",
                    "command": ["serve", "--port", "8080"],
                    "environment": [
                        { "name": "REGION", "value": "us-east-1" },
                        { "name": "LOG_LEVEL", "value": "info" }
                    ],
                    "secrets": [
                        { "name": "TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/token" },
                        { "name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/db" }
                    ]
                }
            ]
        });
        let described = json!({
            "taskDefinition": {
                "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/shop:7",
                "containerDefinitions": [
                    {
                        "name": "app",
                        "image": "repo:v2",
                        "cpu": 0,
                        "essential": true,
                        "command": ["serve", "--port", "8080"],
                        "environment": [
                            { "value": "info", "name": "LOG_LEVEL" },
                            { "name": "REGION", "value": "us-east-1" }
                        ],
                        "mountPoints": [],
                        "volumesFrom": [],
                        "secrets": [
                            { "name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/db" },
                            { "name": "TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/token" }
                        ]
                    },
                    { "name": "proxy", "image": "nginx:1.27", "cpu": 0, "essential": false, "mountPoints": [] }
                ],
                "family": "shop",
                "revision": 7,
                "volumes": [],
                "status": "ACTIVE",
                "compatibilities": ["EC2", "FARGATE"],
                "cpu": "256",
                "memory": "512",
                "registeredAt": "2024-05-14T09:20:00Z",
                "deregisteredAt": null
            },
            "tags": []
        });
        let mut new_image = file.clone();
        new_image[CONTAINER_DEFINITIONS][1]["image"] = json!("repo:v3");
        let mut reordered_command = file.clone();
        reordered_command[CONTAINER_DEFINITIONS][1]["command"] = json!(["--port", "8080", "serve"]);
        let mut not_essential = file.clone();
        not_essential[CONTAINER_DEFINITIONS][1]["essential"] = json!(false);
        let cases = [
            (&file, &described, true),
            (&described, &file, true),
            (&file, &new_image, false),
            (&file, &reordered_command, false),
            (&file, &not_essential, false),
        ];
        for (a, b, same) in cases {
            assert_eq!(is_same_task_definition(a, b), same, "{a}\n{b}");
        }
        let normalised = normalise(&described);
        let names: Vec<&str> = normalised[CONTAINER_DEFINITIONS]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(container_name)
            .collect();
        assert_eq!(names, ["app", "proxy"]);
        assert_eq!(
            normalised[CONTAINER_DEFINITIONS][0][ENVIRONMENT][0]["name"],
            "LOG_LEVEL"
        );
        assert_eq!(normalised["cpu"], "256");
        assert!(normalised.get("taskDefinitionArn").is_none());
        assert!(normalised.get("volumes").is_none());
    }

    #[test]
    fn container_settings_upsert_into_the_named_containers_and_the_task() {
        let document = json!({
            "family": "shop",
            "taskRoleArn": "arn:aws:iam::1:role/old",
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": "shop:old",
                    "secrets": [
                        {"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/old"},
                        {"name": "KEEP", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/keep"}
                    ],
                    "dockerLabels": {"team": "web", "tier": "front"},
                    "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/old", "awslogs-region": "us-east-1"}}
                },
                {"name": "worker", "image": "shop:old"},
                {"name": "proxy", "image": "envoy:1"}
            ]
        });
        let settings = ContainerSettings {
            secrets: vec![
                (
                    "DB_PASSWORD".into(),
                    "arn:aws:ssm:us-east-1:1:parameter/new".into(),
                ),
                (
                    "API_KEY".into(),
                    "arn:aws:secretsmanager:us-east-1:1:secret:api".into(),
                ),
            ],
            environment_files: vec!["arn:aws:s3:::cfg/prod.env".into()],
            command: Some(vec!["npm".into(), "run".into(), "start here".into()]),
            docker_labels: vec![
                ("tier".into(), "back".into()),
                ("owner".into(), "ops".into()),
            ],
            log_driver: Some("awsfirelens".into()),
            log_options: vec![("awslogs-group".into(), "/new".into())],
        };
        let request = RenderRequest {
            containers: ["app", "worker"]
                .iter()
                .map(|name| ContainerChanges {
                    container_name: (*name).into(),
                    settings: settings.clone(),
                })
                .collect(),
            task_role_arn: Some("arn:aws:iam::1:role/new".into()),
            execution_role_arn: Some("arn:aws:iam::1:role/exec".into()),
            ..RenderRequest::default()
        };
        let rendered = rendered(document, &request).task_definition;
        assert_eq!(rendered["taskRoleArn"], "arn:aws:iam::1:role/new");
        assert_eq!(rendered["executionRoleArn"], "arn:aws:iam::1:role/exec");
        let app = &rendered["containerDefinitions"][0];
        assert_eq!(
            app["secrets"],
            json!([
                {"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/new"},
                {"name": "KEEP", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/keep"},
                {"name": "API_KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:api"}
            ])
        );
        assert_eq!(
            app["environmentFiles"],
            json!([{"value": "arn:aws:s3:::cfg/prod.env", "type": "s3"}])
        );
        assert_eq!(app["command"], json!(["npm", "run", "start here"]));
        assert_eq!(
            app["dockerLabels"],
            json!({"team": "web", "tier": "back", "owner": "ops"})
        );
        assert_eq!(
            app["logConfiguration"],
            json!({"logDriver": "awsfirelens", "options": {"awslogs-group": "/new", "awslogs-region": "us-east-1"}})
        );
        // Created where absent, on every container named; others untouched.
        let worker = &rendered["containerDefinitions"][1];
        assert_eq!(
            worker["dockerLabels"],
            json!({"tier": "back", "owner": "ops"})
        );
        assert_eq!(worker["secrets"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            rendered["containerDefinitions"][2],
            json!({"name": "proxy", "image": "envoy:1"})
        );
        // Rendering twice changes nothing more (environment files once).
        let again = render_task_definition(rendered.clone(), SOURCE, &request)
            .unwrap()
            .task_definition;
        assert_eq!(again, rendered);
    }

    #[test]
    fn a_field_of_the_wrong_shape_is_refused_naming_it() {
        let document = json!({
            "family": "shop",
            "containerDefinitions": [{"name": "app", "image": "shop:1", "dockerLabels": ["a"]}]
        });
        let request = RenderRequest {
            containers: vec![ContainerChanges {
                container_name: "app".into(),
                settings: ContainerSettings {
                    docker_labels: vec![("a".into(), "b".into())],
                    ..ContainerSettings::default()
                },
            }],
            ..RenderRequest::default()
        };
        let error = render_task_definition(document, SOURCE, &request).unwrap_err();
        assert_eq!(error.setting(), Setting::TaskDefinition);
        assert!(
            error
                .to_string()
                .contains("the `dockerLabels` of container `app` is a list"),
            "{error}"
        );
    }
}
