//! Task definitions between their JSON form (what users keep in their
//! repositories and what amazon-ecs-render-task-definition writes) and ECS.
//!
//! The SDK's own schema-driven JSON codec does the conversion, with the ECS
//! API's wire names (`containerDefinitions`, `portMappings`, ...), so every
//! field ECS knows is carried over without a hand-written mapping, and fields
//! ECS does not know are ignored as the API would.

use anyhow::Context as _;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput;
use aws_sdk_ecs::types::{Tag, TaskDefinition};
use aws_smithy_schema::codec::Codec;
use aws_smithy_schema::serde::ShapeSerializer;
use serde_json::Value;

use super::ecs_json::ecs_json_codec;
use crate::aws::aws_error;

/// Converts a rendered task definition into a RegisterTaskDefinition request.
/// `source` names the document in errors (a path or an ARN).
pub fn registration_request(
    task_definition: &Value,
    tags: Option<&Value>,
    source: &str,
) -> anyhow::Result<RegisterTaskDefinitionInput> {
    let mut document = task_definition.clone();
    if let (Some(tags), Some(object)) = (tags, document.as_object_mut()) {
        object.insert("tags".into(), tags.clone());
    }
    let bytes = serde_json::to_vec(&document).context("encoding the task definition")?;
    let codec = ecs_json_codec();
    let mut deserializer = codec.create_deserializer(&bytes);
    let request = RegisterTaskDefinitionInput::deserialize(&mut deserializer).map_err(|error| {
        anyhow::anyhow!(
            "task definition {source} does not match what ECS accepts: {error}; compare it with the RegisterTaskDefinition reference (numbers such as cpu and memory at task level are strings)"
        )
    })?;
    if request.family().is_none_or(str::is_empty) {
        anyhow::bail!("task definition {source} has no `family`; add one");
    }
    if request.container_definitions().is_empty() {
        anyhow::bail!("task definition {source} has no `containerDefinitions`");
    }
    Ok(request)
}

/// The task definition as ECS will take it: only the fields
/// RegisterTaskDefinition knows, in wire JSON. Comparing this (not the file)
/// with the registered revision keeps fields ECS ignores from looking like
/// a change.
pub fn as_registered(task_definition: &Value, source: &str) -> anyhow::Result<Value> {
    let request = registration_request(task_definition, None, source)?;
    let codec = ecs_json_codec();
    let mut serializer = codec.create_serializer();
    serializer
        .write_struct(RegisterTaskDefinitionInput::SCHEMA, &request)
        .map_err(|error| anyhow::anyhow!("encoding the task definition: {error}"))?;
    serde_json::from_slice(&serializer.finish()).context("decoding the task definition")
}

/// A registered task definition revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredTaskDefinition {
    pub arn: String,
    pub family: String,
    pub revision: i32,
}

/// Registers a new revision (RegisterTaskDefinition).
pub async fn register_task_definition(
    client: &Client,
    request: RegisterTaskDefinitionInput,
) -> anyhow::Result<RegisteredTaskDefinition> {
    let family = request.family().unwrap_or_default().to_string();
    let output = client
        .register_task_definition()
        .set_family(request.family)
        .set_task_role_arn(request.task_role_arn)
        .set_execution_role_arn(request.execution_role_arn)
        .set_network_mode(request.network_mode)
        .set_container_definitions(request.container_definitions)
        .set_volumes(request.volumes)
        .set_placement_constraints(request.placement_constraints)
        .set_requires_compatibilities(request.requires_compatibilities)
        .set_cpu(request.cpu)
        .set_memory(request.memory)
        .set_tags(request.tags)
        .set_pid_mode(request.pid_mode)
        .set_ipc_mode(request.ipc_mode)
        .set_proxy_configuration(request.proxy_configuration)
        .set_ephemeral_storage(request.ephemeral_storage)
        .set_runtime_platform(request.runtime_platform)
        .set_enable_fault_injection(request.enable_fault_injection)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("registering a revision of task definition family {family}"))?;
    let registered = output
        .task_definition()
        .context("RegisterTaskDefinition returned no task definition")?;
    Ok(RegisteredTaskDefinition {
        arn: registered
            .task_definition_arn()
            .unwrap_or_default()
            .to_string(),
        family: registered.family().unwrap_or_default().to_string(),
        revision: registered.revision(),
    })
}

/// Reads a registered task definition (by ARN, or `family[:revision]`) as
/// the JSON a user would keep in a file, with its tags.
pub async fn describe_task_definition(
    client: &Client,
    reference: &str,
) -> anyhow::Result<(Value, Option<Value>)> {
    let output = client
        .describe_task_definition()
        .task_definition(reference)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("reading task definition {reference}"))?;
    let task_definition = output
        .task_definition()
        .with_context(|| format!("task definition {reference} was not returned"))?;
    let json = task_definition_json(task_definition)?;
    let tags = if output.tags().is_empty() {
        None
    } else {
        Some(tags_json(output.tags()))
    };
    Ok((json, tags))
}

/// The wire JSON of an SDK task definition.
fn task_definition_json(task_definition: &TaskDefinition) -> anyhow::Result<Value> {
    let codec = ecs_json_codec();
    let mut serializer = codec.create_serializer();
    serializer
        .write_struct(TaskDefinition::SCHEMA, task_definition)
        .map_err(|error| anyhow::anyhow!("encoding the task definition: {error}"))?;
    serde_json::from_slice(&serializer.finish()).context("decoding the task definition")
}

fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| {
                serde_json::json!({"key": t.key().unwrap_or_default(), "value": t.value().unwrap_or_default()})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_map_onto_the_request_and_unknown_fields_are_ignored() {
        let document = serde_json::json!({
            "family": "web",
            "cpu": "256",
            "memory": "512",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "somethingNew": {"x": 1},
            "containerDefinitions": [{
                "name": "app",
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:abc123",
                "essential": true,
                "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                "environment": [{"name": "MODE", "value": ""}]
            }]
        });
        let tags = serde_json::json!([{"key": "team", "value": "web"}]);
        let request = registration_request(&document, Some(&tags), "taskdef.json").unwrap();
        assert_eq!(request.family(), Some("web"));
        assert_eq!(request.cpu(), Some("256"));
        assert_eq!(request.network_mode().map(|m| m.as_str()), Some("awsvpc"));
        let container = &request.container_definitions()[0];
        assert_eq!(container.name(), Some("app"));
        assert_eq!(container.port_mappings()[0].container_port(), Some(8080));
        assert_eq!(container.environment()[0].value(), Some(""));
        assert_eq!(request.tags()[0].key(), Some("team"));
    }

    #[test]
    fn the_registered_view_drops_what_ecs_does_not_know() {
        let document = serde_json::json!({
            "family": "web",
            "somethingNew": true,
            "containerDefinitions": [{"name": "app", "image": "web:1"}]
        });
        let view = as_registered(&document, "td.json").unwrap();
        assert_eq!(view["family"], "web");
        assert_eq!(view["containerDefinitions"][0]["image"], "web:1");
        assert!(view.get("somethingNew").is_none(), "{view}");
    }

    #[test]
    fn shape_errors_name_the_source() {
        let document = serde_json::json!({"family": "web", "containerDefinitions": "app"});
        let error = registration_request(&document, None, "taskdef.json").unwrap_err();
        assert!(error.to_string().contains("taskdef.json"), "{error}");
        let no_family = serde_json::json!({"containerDefinitions": [{"name": "a", "image": "b"}]});
        let error = registration_request(&no_family, None, "td.json").unwrap_err();
        assert!(error.to_string().contains("no `family`"), "{error}");
    }

    #[test]
    fn a_described_task_definition_round_trips_to_wire_json() {
        let task_definition = TaskDefinition::builder()
            .family("web")
            .revision(7)
            .cpu("256")
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("app")
                    .image("web:1")
                    .build(),
            )
            .build();
        let json = task_definition_json(&task_definition).unwrap();
        assert_eq!(json["family"], "web");
        assert_eq!(json["revision"], 7);
        assert_eq!(json["containerDefinitions"][0]["image"], "web:1");
    }
}
