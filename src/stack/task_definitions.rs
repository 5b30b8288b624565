//! The template's own `AWS::ECS::TaskDefinition` resources as ECS would
//! register them, for verification before deploy on the stack path: the
//! properties (PascalCase in CloudFormation) become the ECS JSON shape
//! (camelCase) the checks read, with `Ref` / `Fn::Sub` of known parameter
//! values filled in. Anything CloudFormation decides at deploy time (a
//! `Fn::GetAtt`, an import, a parameter nobody gave) stays a JSON object,
//! which the checks take as "set at deploy time" and skip.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value;

use super::images::{ImageExpression, expression, resolve_image};
use super::template::parse_json_or_yaml;
use crate::service::verify::SET_AT_DEPLOY_TIME;

/// Members whose keys are the user's, not CloudFormation's schema: kept as
/// they are (a Docker label `Team`, a log option `awslogs-group`).
const USER_KEYED: &[&str] = &["DockerLabels", "Options", "SystemControls"];

/// A task definition of the template: its logical id and ECS-shaped JSON
/// (`family` is the template's, or the logical id when CloudFormation
/// names it).
pub fn template_task_definitions(
    body: &str,
    known: &BTreeMap<String, String>,
) -> Vec<(String, Json)> {
    resources_of_type(body, "AWS::ECS::TaskDefinition")
        .into_iter()
        .map(|(id, properties)| {
            let mut shaped = properties
                .map(|p| to_ecs_json(&p, known, false))
                .unwrap_or_else(|| Json::Object(Map::new()));
            if let Json::Object(members) = &mut shaped
                && !members.get("family").is_some_and(Json::is_string)
            {
                members.insert("family".into(), Json::String(id.clone()));
            }
            (id, shaped)
        })
        .collect()
}

/// An `AWS::ECS::Service` of the template, as far as verify reads it: the
/// task definition (a logical id of the template's own), the network and
/// the load balancers, with known parameter values filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateService {
    pub logical_id: String,
    /// `TaskDefinition: !Ref X` where `X` is a resource of the template.
    pub task_definition: Option<String>,
    /// The subnets and security groups of its awsvpc configuration that
    /// are known before the deploy.
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    /// The load balancers whose target group, container and port are known.
    pub targets: Vec<(String, String, i32)>,
}

/// The template's ECS services (see [`TemplateService`]).
pub fn template_services(body: &str, known: &BTreeMap<String, String>) -> Vec<TemplateService> {
    resources_of_type(body, "AWS::ECS::Service")
        .into_iter()
        .map(|(logical_id, properties)| {
            let properties = properties.unwrap_or(Value::Null);
            let task_definition = properties
                .get("TaskDefinition")
                .and_then(expression)
                .and_then(|e| match e {
                    ImageExpression::Ref(name) => Some(name),
                    ImageExpression::Text(_) => None,
                });
            let shaped = to_ecs_json(&properties, known, false);
            let awsvpc = &shaped["networkConfiguration"]["awsvpcConfiguration"];
            let subnets = known_list(&awsvpc["subnets"]);
            let security_groups = known_list(&awsvpc["securityGroups"]);
            let targets = shaped["loadBalancers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|lb| {
                    let port = match &lb["containerPort"] {
                        Json::Number(n) => n.as_i64(),
                        Json::String(text) => text.parse().ok(),
                        _ => None,
                    }?;
                    Some((
                        lb["targetGroupArn"].as_str()?.to_string(),
                        lb["containerName"].as_str()?.to_string(),
                        i32::try_from(port).ok()?,
                    ))
                })
                .collect();
            TemplateService {
                logical_id,
                task_definition,
                subnets,
                security_groups,
                targets,
            }
        })
        .collect()
}

/// The known strings of a list (a `List<...>` parameter's value is one
/// comma-separated string); members set at deploy time are left out.
fn known_list(value: &Json) -> Vec<String> {
    let mut known = Vec::new();
    let items: Vec<&Json> = match value {
        Json::Array(items) => items.iter().collect(),
        Json::Null => Vec::new(),
        other => vec![other],
    };
    for text in items.into_iter().filter_map(Json::as_str) {
        known.extend(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        );
    }
    known
}

/// The resources of one type: logical id and properties.
fn resources_of_type(body: &str, resource_type: &str) -> Vec<(String, Option<Value>)> {
    let Ok(document) = parse_json_or_yaml(body) else {
        return Vec::new();
    };
    let Some(resources) = document.get("Resources").and_then(Value::as_mapping) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter_map(|(id, resource)| {
            let id = id.as_str()?;
            (resource.get("Type").and_then(Value::as_str) == Some(resource_type))
                .then(|| (id.to_string(), resource.get("Properties").cloned()))
        })
        .collect()
}

/// `Name` → `name`, recursively; intrinsics resolved where known.
fn to_ecs_json(value: &Value, known: &BTreeMap<String, String>, user_keys: bool) -> Json {
    if let Some(expression) = expression(value).filter(|_| is_intrinsic(value)) {
        return resolved(&expression, known).unwrap_or_else(|| unknown(value));
    }
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => serde_json::to_value(n).unwrap_or(Json::Null),
        Value::String(text) => Json::String(text.clone()),
        Value::Sequence(items) => Json::Array(
            items
                .iter()
                .map(|item| to_ecs_json(item, known, false))
                .collect(),
        ),
        Value::Mapping(_) if is_intrinsic(value) => unknown(value),
        Value::Mapping(mapping) => Json::Object(
            mapping
                .iter()
                .filter_map(|(key, inner)| {
                    let key = key.as_str()?;
                    let name = if user_keys {
                        key.to_string()
                    } else {
                        lower_first(key)
                    };
                    Some((name, to_ecs_json(inner, known, USER_KEYED.contains(&key))))
                })
                .collect(),
        ),
        Value::Tagged(_) => unknown(value),
    }
}

/// A `Ref` or a `Fn::*` (long or short form).
fn is_intrinsic(value: &Value) -> bool {
    match value {
        Value::Tagged(_) => true,
        Value::Mapping(mapping) if mapping.len() == 1 => mapping
            .keys()
            .filter_map(Value::as_str)
            .any(|k| k == "Ref" || k.starts_with("Fn::")),
        _ => false,
    }
}

fn resolved(expression: &ImageExpression, known: &BTreeMap<String, String>) -> Option<Json> {
    let text = match expression {
        ImageExpression::Ref(name) => known.get(name).cloned()?,
        // Every reference must be known (not only an image's tag).
        ImageExpression::Text(text) if text.contains("${") => {
            let filled = resolve_image(expression, known)?;
            (!filled.contains("${") && fully_known(text, known)).then_some(filled)?
        }
        ImageExpression::Text(text) => text.clone(),
    };
    Some(Json::String(text))
}

fn fully_known(template: &str, known: &BTreeMap<String, String>) -> bool {
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else {
            return false;
        };
        if !known.contains_key(&rest[start + 2..start + end]) {
            return false;
        }
        rest = &rest[start + end + 1..];
    }
    true
}

/// What CloudFormation fills in at deploy time, kept as an object.
fn unknown(value: &Value) -> Json {
    let mut members = Map::new();
    members.insert(
        SET_AT_DEPLOY_TIME.into(),
        serde_json::to_value(value).unwrap_or(Json::Null),
    );
    Json::Object(members)
}

fn lower_first(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Cpu:
    Type: String
    Default: "256"
  Memory:
    Type: String
Resources:
  Web:
    Type: AWS::ECS::TaskDefinition
    Properties:
      NetworkMode: awsvpc
      RequiresCompatibilities: [FARGATE]
      Cpu: !Ref Cpu
      Memory: !Ref Memory
      ExecutionRoleArn: !GetAtt ExecutionRole.Arn
      ContainerDefinitions:
        - Name: app
          Image: !Sub "repo/web:${Cpu}"
          Essential: true
          PortMappings:
            - ContainerPort: 8080
          DockerLabels:
            Team: shop
          LogConfiguration:
            LogDriver: awslogs
            Options:
              awslogs-group: !Sub "/ecs/${AWS::StackName}"
"#;

    #[test]
    fn properties_become_the_ecs_shape_with_known_values_filled_in() {
        let mut known = BTreeMap::new();
        known.insert("Cpu".to_string(), "256".to_string());
        let found = template_task_definitions(TEMPLATE, &known);
        assert_eq!(found.len(), 1);
        let (id, document) = &found[0];
        assert_eq!(id, "Web");
        assert_eq!(document["family"], "Web");
        assert_eq!(document["networkMode"], "awsvpc");
        assert_eq!(document["cpu"], "256");
        assert!(
            document["memory"]["setAtDeployTime"].is_object(),
            "a parameter nobody gave: {}",
            document["memory"]
        );
        assert!(document["executionRoleArn"]["setAtDeployTime"].is_object());
        let app = &document["containerDefinitions"][0];
        assert_eq!(app["name"], "app");
        assert_eq!(app["image"], "repo/web:256");
        assert_eq!(app["portMappings"][0]["containerPort"], 8080);
        assert_eq!(app["dockerLabels"]["Team"], "shop", "user keys kept");
        assert_eq!(app["logConfiguration"]["logDriver"], "awslogs");
        assert!(
            app["logConfiguration"]["options"]["awslogs-group"]["setAtDeployTime"].is_object(),
            "a pseudo parameter is CloudFormation's"
        );
    }
    #[test]
    fn services_give_their_task_definition_network_and_load_balancers() {
        let template = r#"
Parameters:
  Subnets:
    Type: List<AWS::EC2::Subnet::Id>
  TargetGroupArn:
    Type: String
Resources:
  Web:
    Type: AWS::ECS::TaskDefinition
  Service:
    Type: AWS::ECS::Service
    Properties:
      TaskDefinition: !Ref Web
      LoadBalancers:
        - ContainerName: app
          ContainerPort: 8080
          TargetGroupArn: !Ref TargetGroupArn
        - ContainerName: app
          ContainerPort: 9090
          TargetGroupArn: !Ref Made
      NetworkConfiguration:
        AwsvpcConfiguration:
          Subnets: !Ref Subnets
          SecurityGroups: [sg-1, !GetAtt Group.GroupId]
"#;
        let mut known = BTreeMap::new();
        known.insert("Subnets".to_string(), "subnet-1, subnet-2".to_string());
        known.insert("TargetGroupArn".to_string(), "arn:tg".to_string());
        let services = template_services(template, &known);
        assert_eq!(
            services,
            vec![TemplateService {
                logical_id: "Service".into(),
                task_definition: Some("Web".into()),
                subnets: vec!["subnet-1".into(), "subnet-2".into()],
                security_groups: vec!["sg-1".into()],
                targets: vec![("arn:tg".into(), "app".into(), 8080)],
            }]
        );
    }
}
