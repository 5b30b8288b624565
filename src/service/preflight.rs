//! Verify before deploy, the references a task definition makes: its roles
//! exist and trust `ecs-tasks.amazonaws.com`, its execution role may pull
//! the image, write the log stream and read every secret (IAM's policy
//! simulator, against the exact resource ARNs), and the SSM parameters,
//! Secrets Manager secrets and awslogs log group it names exist (described,
//! never read).
//!
//! Every call is read-only. A definite answer (no such role, denied, not
//! found) is NG; anything that cannot be judged — the caller may not call
//! the simulator, a resource in another region or account, a value
//! CloudFormation sets at deploy time — is a SKIP with its reason, never a
//! failure; one the job was not allowed to make ([`is_denied_to_caller`])
//! is also worth a warning.

use std::collections::BTreeSet;

use aws_sdk_iam::error::ProvideErrorMetadata;
use serde_json::Value;

use super::verify::{Check, Verdict};
use crate::aws::aws_error;

/// The clients the reference checks use, from the job's configuration.
#[derive(Debug, Clone)]
pub struct PreflightClients {
    pub iam: aws_sdk_iam::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl PreflightClients {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            iam: aws_sdk_iam::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
        }
    }
}

/// Where the task runs: the region of its log group and secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightScope {
    pub region: String,
}

/// A string value of the task definition, unless CloudFormation sets it.
fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The account of an ARN (`arn:aws:iam::123456789012:role/x`).
fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3)
}

fn arn_partition(arn: &str) -> &str {
    arn.split(':').nth(1).unwrap_or("aws")
}

/// A role's name from its ARN (the path dropped).
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Whether the service error says the caller may not make the call.
fn is_access_denied<E: ProvideErrorMetadata>(error: &E) -> bool {
    matches!(
        error.code(),
        Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation")
    )
}

/// How a SKIP for a call the job may not make begins.
const DENIED_TO_CALLER: &str = "this job may not call";

/// A SKIP for a call the caller may not make: worth a warning, never a
/// failure.
fn denied_to_caller(call: &str) -> Verdict {
    Verdict::Skip(format!(
        "{DENIED_TO_CALLER} {call}; grant it to have this checked"
    ))
}

/// Whether a check was skipped because the job lacks a permission.
pub fn is_denied_to_caller(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Skip(reason) if reason.starts_with(DENIED_TO_CALLER))
}

/// The checks of the references `task_definition` makes.
pub async fn reference_checks(
    clients: &PreflightClients,
    task_definition: &Value,
    scope: &PreflightScope,
) -> Vec<Check> {
    let family = text(task_definition.get("family")).unwrap_or("?");
    let subject = format!("task definition {family}");
    let mut checks = Vec::new();
    let execution_role = text(task_definition.get("executionRoleArn"));
    for (kind, value) in [
        ("execution role", task_definition.get("executionRoleArn")),
        ("task role", task_definition.get("taskRoleArn")),
    ] {
        match value {
            None => {}
            Some(arn) if arn.is_string() => {
                let arn = arn.as_str().unwrap_or_default();
                checks.push(Check::new(
                    &subject,
                    format!(
                        "{kind} {} exists and trusts ecs-tasks.amazonaws.com",
                        role_name(arn)
                    ),
                    role_trust(&clients.iam, arn).await,
                ));
            }
            Some(_) => checks.push(Check::new(
                &subject,
                kind.to_string(),
                Verdict::Skip("CloudFormation sets it at deploy time".into()),
            )),
        }
    }
    let needs = execution_role_needs(task_definition, scope, execution_role);
    // Without an execution role, EC2 instances pull and log with their
    // own role; secrets need one on any launch type (ECS refuses them at
    // registration otherwise), everything on Fargate.
    let on_fargate = task_definition
        .get("requiresCompatibilities")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|v| v.as_str() == Some("FARGATE")));
    let role_required: Vec<&RoleNeed> = needs
        .iter()
        .filter(|n| {
            on_fargate
                || n.actions
                    .iter()
                    .any(|a| a.starts_with("ssm:") || a.starts_with("secretsmanager:"))
        })
        .collect();
    match execution_role {
        Some(role) => {
            for need in &needs {
                checks.push(Check::new(
                    &subject,
                    format!("execution role may {}", need.purpose),
                    simulate(&clients.iam, role, need).await,
                ));
            }
        }
        // One CloudFormation sets at deploy time was skipped above.
        None if !role_required.is_empty() && task_definition.get("executionRoleArn").is_none() => {
            let purposes: Vec<&str> = role_required.iter().map(|n| n.purpose.as_str()).collect();
            checks.push(Check::new(
                &subject,
                "an execution role",
                Verdict::Ng {
                    problem: format!(
                        "there is none, and the task needs one to {}",
                        purposes.join(", ")
                    ),
                    fix: "set `executionRoleArn` to a role trusted by ecs-tasks.amazonaws.com with the AmazonECSTaskExecutionRolePolicy (and access to the secrets)".into(),
                },
            ));
        }
        None => {}
    }
    for secret in secrets(task_definition) {
        checks.push(Check::new(
            &subject,
            format!("{} {} exists", secret.kind(), secret.name()),
            secret_exists(clients, &secret, scope).await,
        ));
    }
    if let Some(group) = log_group(task_definition) {
        checks.push(Check::new(
            &subject,
            format!("log group {} exists", group.name),
            log_group_exists(&clients.logs, &group, scope).await,
        ));
    }
    checks
}

/// GetRole: the role exists and its trust policy lets ECS tasks assume it.
async fn role_trust(iam: &aws_sdk_iam::Client, arn: &str) -> Verdict {
    let name = role_name(arn);
    let role = match iam.get_role().role_name(name).send().await {
        Ok(answer) => answer.role().cloned(),
        Err(error) => {
            let service = error.as_service_error();
            if service.is_some_and(|e| e.is_no_such_entity_exception()) {
                return Verdict::Ng {
                    problem: format!("role {arn} does not exist"),
                    fix: "create the role, or name an existing one".into(),
                };
            }
            if service.is_some_and(is_access_denied) {
                return denied_to_caller("iam:GetRole");
            }
            return Verdict::Skip(format!("GetRole: {:#}", aws_error(error)));
        }
    };
    let Some(document) = role.as_ref().and_then(|r| r.assume_role_policy_document()) else {
        return Verdict::Skip("the role's trust policy was not given".into());
    };
    if trusts_ecs_tasks(document) {
        Verdict::Ok
    } else {
        Verdict::Ng {
            problem: format!("role {name} does not trust ecs-tasks.amazonaws.com, so tasks cannot assume it"),
            fix: "add to its trust policy: {\"Effect\": \"Allow\", \"Principal\": {\"Service\": \"ecs-tasks.amazonaws.com\"}, \"Action\": \"sts:AssumeRole\"}".into(),
        }
    }
}

/// Whether a trust policy (JSON, URL-encoded as IAM returns it) allows
/// `ecs-tasks.amazonaws.com` to assume the role.
pub fn trusts_ecs_tasks(document: &str) -> bool {
    let decoded = percent_decode(document);
    let Ok(policy) = serde_json::from_str::<Value>(&decoded) else {
        return false;
    };
    let statements = match policy.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    let listed = |value: Option<&Value>, wanted: &dyn Fn(&str) -> bool| match value {
        Some(Value::String(one)) => wanted(one),
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).any(wanted),
        _ => false,
    };
    statements.iter().any(|statement| {
        statement.get("Effect").and_then(Value::as_str) == Some("Allow")
            && listed(statement.get("Action"), &|a| {
                matches!(a, "sts:AssumeRole" | "sts:*" | "*")
            })
            && listed(
                statement.get("Principal").and_then(|p| p.get("Service")),
                &|s| s == "ecs-tasks.amazonaws.com",
            )
    })
}

/// `%7B%22a%22` → `{"a"` (IAM's Query answers URL-encode policies; a
/// policy that is plain JSON is left as it is).
fn percent_decode(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Actions the execution role needs on resources, for one purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleNeed {
    pub purpose: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// What the execution role must be allowed, from the task definition:
/// pulling private ECR images, writing awslogs streams, reading secrets.
pub fn execution_role_needs(
    task_definition: &Value,
    scope: &PreflightScope,
    execution_role: Option<&str>,
) -> Vec<RoleNeed> {
    let account = execution_role.and_then(arn_account);
    let partition = execution_role.map_or("aws", arn_partition);
    let mut needs = Vec::new();
    let containers = task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut repositories = BTreeSet::new();
    for container in &containers {
        let Some(image) = text(container.get("image")) else {
            continue;
        };
        if let Some(repository) = ecr_repository_arn(image, partition) {
            repositories.insert(repository);
        }
    }
    if !repositories.is_empty() {
        needs.push(RoleNeed {
            purpose: "get an ECR token".into(),
            actions: vec!["ecr:GetAuthorizationToken".into()],
            resources: vec!["*".into()],
        });
        for repository in repositories {
            needs.push(RoleNeed {
                purpose: format!(
                    "pull from {}",
                    repository
                        .rsplit(":repository/")
                        .next()
                        .unwrap_or(&repository)
                ),
                actions: vec![
                    "ecr:BatchGetImage".into(),
                    "ecr:GetDownloadUrlForLayer".into(),
                ],
                resources: vec![repository],
            });
        }
    }
    if let (Some(group), Some(account)) = (log_group(task_definition), account) {
        let region = group.region.as_deref().unwrap_or(&scope.region);
        let mut actions = vec![
            "logs:CreateLogStream".to_string(),
            "logs:PutLogEvents".to_string(),
        ];
        if group.create {
            actions.push("logs:CreateLogGroup".into());
        }
        needs.push(RoleNeed {
            purpose: format!("write to log group {}", group.name),
            actions,
            resources: vec![format!(
                "arn:{partition}:logs:{region}:{account}:log-group:{}:log-stream:*",
                group.name
            )],
        });
    }
    for secret in secrets(task_definition) {
        let arn = secret.arn(partition, &scope.region, account);
        let Some(arn) = arn else { continue };
        needs.push(RoleNeed {
            purpose: format!("read {} {}", secret.kind(), secret.name()),
            actions: vec![secret.read_action().into()],
            resources: vec![arn],
        });
    }
    needs
}

/// The repository ARN of a private ECR image
/// (`123456789012.dkr.ecr.us-east-1.amazonaws.com/web:tag`).
fn ecr_repository_arn(image: &str, partition: &str) -> Option<String> {
    let (registry, rest) = image.split_once('/')?;
    let mut parts = registry.split('.');
    let account = parts.next()?;
    if parts.next()? != "dkr" || parts.next()? != "ecr" {
        return None;
    }
    let region = parts.next()?;
    let repository = rest.split(['@', ':']).next()?;
    Some(format!(
        "arn:{partition}:ecr:{region}:{account}:repository/{repository}"
    ))
}

/// Asks IAM's policy simulator whether `role` may do `need`.
async fn simulate(iam: &aws_sdk_iam::Client, role: &str, need: &RoleNeed) -> Verdict {
    let answer = iam
        .simulate_principal_policy()
        .policy_source_arn(role)
        .set_action_names(Some(need.actions.clone()))
        .set_resource_arns(Some(need.resources.clone()))
        .send()
        .await;
    let results = match answer {
        Ok(answer) => answer.evaluation_results().to_vec(),
        Err(error) => {
            let service = error.as_service_error();
            if service.is_some_and(|e| e.is_no_such_entity_exception()) {
                return Verdict::Skip("the role does not exist (see its own check)".into());
            }
            if service.is_some_and(is_access_denied) {
                return denied_to_caller("iam:SimulatePrincipalPolicy");
            }
            return Verdict::Skip(format!("SimulatePrincipalPolicy: {:#}", aws_error(error)));
        }
    };
    let denied: Vec<String> = results
        .iter()
        .filter(|r| r.eval_decision().as_str() != "allowed")
        .map(|r| {
            format!(
                "{} on {} ({})",
                r.eval_action_name(),
                r.eval_resource_name().unwrap_or("*"),
                r.eval_decision().as_str()
            )
        })
        .collect();
    let missing_context = results
        .iter()
        .any(|r| !r.missing_context_values().is_empty());
    if denied.is_empty() {
        Verdict::Ok
    } else if missing_context {
        Verdict::Skip(format!(
            "the simulator needs condition values it was not given: {}",
            denied.join(", ")
        ))
    } else {
        Verdict::Ng {
            problem: format!("IAM's policy simulator denies {}", denied.join(", ")),
            fix: format!(
                "allow {} on {} in role {}'s policies",
                need.actions.join(", "),
                need.resources.join(", "),
                role_name(role)
            ),
        }
    }
}

/// A secret a container names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretReference {
    /// An SSM parameter: its name (`/prod/db`) and ARN if given as one.
    Parameter { name: String, arn: Option<String> },
    /// A Secrets Manager secret's ARN (without a JSON key or version).
    Secret { arn: String },
}

impl SecretReference {
    fn kind(&self) -> &'static str {
        match self {
            Self::Parameter { .. } => "SSM parameter",
            Self::Secret { .. } => "secret",
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Parameter { name, .. } => name,
            Self::Secret { arn } => arn.rsplit(":secret:").next().unwrap_or(arn),
        }
    }

    fn read_action(&self) -> &'static str {
        match self {
            Self::Parameter { .. } => "ssm:GetParameters",
            Self::Secret { .. } => "secretsmanager:GetSecretValue",
        }
    }

    fn region(&self) -> Option<&str> {
        match self {
            Self::Parameter { arn, .. } => arn.as_deref().and_then(arn_region),
            Self::Secret { arn } => arn_region(arn),
        }
    }

    /// The ARN the simulator is asked about; a parameter given by name is
    /// in the task's region and the role's account.
    fn arn(&self, partition: &str, region: &str, account: Option<&str>) -> Option<String> {
        match self {
            Self::Parameter { arn: Some(arn), .. } | Self::Secret { arn } => Some(arn.clone()),
            Self::Parameter { name, arn: None } => Some(format!(
                "arn:{partition}:ssm:{region}:{}:parameter/{}",
                account?,
                name.trim_start_matches('/')
            )),
        }
    }

    /// From a `valueFrom` (an SSM parameter name or ARN, a Secrets Manager
    /// ARN with an optional `:json-key:version-stage:version-id`).
    pub fn parse(value_from: &str) -> Option<Self> {
        let parts: Vec<&str> = value_from.split(':').collect();
        if value_from.starts_with("arn:") {
            return match parts.get(2) {
                Some(&"ssm") => {
                    let rest = value_from.split_once(":parameter/")?.1;
                    let name = if rest.contains('/') {
                        format!("/{rest}")
                    } else {
                        rest.to_string()
                    };
                    Some(Self::Parameter {
                        name,
                        arn: Some(value_from.to_string()),
                    })
                }
                Some(&"secretsmanager") if parts.len() >= 7 => Some(Self::Secret {
                    arn: parts[..7].join(":"),
                }),
                _ => None,
            };
        }
        Some(Self::Parameter {
            name: value_from.to_string(),
            arn: None,
        })
    }
}

/// Every secret the containers name (`secrets[].valueFrom`,
/// `repositoryCredentials.credentialsParameter`), once each.
pub fn secrets(task_definition: &Value) -> Vec<SecretReference> {
    let mut found = Vec::new();
    for container in task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let named = container
            .get("secrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| text(s.get("valueFrom")))
            .chain(text(
                container
                    .get("repositoryCredentials")
                    .and_then(|c| c.get("credentialsParameter")),
            ));
        for value_from in named {
            if let Some(secret) = SecretReference::parse(value_from)
                && !found.contains(&secret)
            {
                found.push(secret);
            }
        }
    }
    found
}

/// DescribeParameters / DescribeSecret: the secret exists (its value is
/// never read).
async fn secret_exists(
    clients: &PreflightClients,
    secret: &SecretReference,
    scope: &PreflightScope,
) -> Verdict {
    if secret.region().is_some_and(|r| r != scope.region) {
        return Verdict::Skip("in another region".into());
    }
    match secret {
        SecretReference::Parameter { name, .. } => {
            let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .option("Equals")
                .values(name)
                .build();
            let filter = match filter {
                Ok(filter) => filter,
                Err(error) => return Verdict::Skip(format!("DescribeParameters: {error}")),
            };
            match clients
                .ssm
                .describe_parameters()
                .parameter_filters(filter)
                .send()
                .await
            {
                Ok(answer) if answer.parameters().is_empty() => Verdict::Ng {
                    problem: format!("SSM parameter {name} does not exist in {}", scope.region),
                    fix: "create the parameter, or correct `valueFrom`".into(),
                },
                Ok(_) => Verdict::Ok,
                Err(error) if error.as_service_error().is_some_and(is_access_denied) => {
                    denied_to_caller("ssm:DescribeParameters")
                }
                Err(error) => Verdict::Skip(format!("DescribeParameters: {:#}", aws_error(error))),
            }
        }
        SecretReference::Secret { arn } => {
            match clients
                .secrets
                .describe_secret()
                .secret_id(arn)
                .send()
                .await
            {
                Ok(_) => Verdict::Ok,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    Verdict::Ng {
                        problem: format!("secret {arn} does not exist"),
                        fix: "create the secret, or correct `valueFrom`".into(),
                    }
                }
                Err(error) if error.as_service_error().is_some_and(is_access_denied) => {
                    denied_to_caller("secretsmanager:DescribeSecret")
                }
                Err(error) => Verdict::Skip(format!("DescribeSecret: {:#}", aws_error(error))),
            }
        }
    }
}

/// The awslogs log group of the task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroup {
    pub name: String,
    /// `awslogs-region`, when it names one.
    pub region: Option<String>,
    /// `awslogs-create-group: true`: ECS creates it.
    pub create: bool,
}

/// The first container's awslogs group (containers usually share one).
pub fn log_group(task_definition: &Value) -> Option<LogGroup> {
    task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|c| c.get("logConfiguration"))
        .filter(|l| text(l.get("logDriver")) == Some("awslogs"))
        .find_map(|l| {
            let options = l.get("options")?;
            Some(LogGroup {
                name: text(options.get("awslogs-group"))?.to_string(),
                region: text(options.get("awslogs-region")).map(str::to_string),
                create: text(options.get("awslogs-create-group")) == Some("true"),
            })
        })
}

/// DescribeLogGroups: the group exists, unless ECS creates it.
async fn log_group_exists(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &LogGroup,
    scope: &PreflightScope,
) -> Verdict {
    if group.create {
        return Verdict::Skip("ECS creates it (awslogs-create-group)".into());
    }
    if group.region.as_deref().is_some_and(|r| r != scope.region) {
        return Verdict::Skip("in another region".into());
    }
    match logs
        .describe_log_groups()
        .log_group_name_prefix(&group.name)
        .send()
        .await
    {
        Ok(answer)
            if answer
                .log_groups()
                .iter()
                .any(|g| g.log_group_name() == Some(group.name.as_str())) =>
        {
            Verdict::Ok
        }
        Ok(_) => Verdict::Ng {
            problem: format!(
                "log group {} does not exist in {}, and tasks fail to start without it",
                group.name, scope.region
            ),
            fix: "create the log group (or set the awslogs option awslogs-create-group: \"true\" and allow logs:CreateLogGroup)".into(),
        },
        Err(error) if error.as_service_error().is_some_and(is_access_denied) => {
            denied_to_caller("logs:DescribeLogGroups")
        }
        Err(error) => Verdict::Skip(format!("DescribeLogGroups: {:#}", aws_error(error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Clients that are never called: the cases below need no AWS answer.
    fn idle_clients() -> PreflightClients {
        PreflightClients::new(
            &aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .build(),
        )
    }

    #[tokio::test]
    async fn an_execution_role_is_required_on_fargate_not_on_ec2() {
        let scope = PreflightScope {
            region: "us-east-1".into(),
        };
        let task = |compatibility: &str| {
            json!({
                "family": "web",
                "requiresCompatibilities": [compatibility],
                "containerDefinitions": [{"name": "app", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1"}]
            })
        };
        let fargate = reference_checks(&idle_clients(), &task("FARGATE"), &scope).await;
        assert_eq!(fargate.len(), 1, "{fargate:?}");
        assert_eq!(fargate[0].name, "an execution role");
        assert!(matches!(fargate[0].verdict, Verdict::Ng { .. }));
        let ec2 = reference_checks(&idle_clients(), &task("EC2"), &scope).await;
        assert!(ec2.is_empty(), "the instance role pulls: {ec2:?}");
    }

    #[test]
    fn trust_policies_are_read_encoded_or_plain() {
        let plain = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com","ecs-tasks.amazonaws.com"]},"Action":"sts:AssumeRole"}]}"#;
        assert!(trusts_ecs_tasks(plain));
        let encoded = "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22ecs-tasks.amazonaws.com%22%7D%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%5D%7D%7D";
        assert!(trusts_ecs_tasks(encoded));
        let lambda = plain.replace("ecs-tasks", "lambda");
        assert!(!trusts_ecs_tasks(&lambda));
        let denied = plain.replace("Allow", "Deny");
        assert!(!trusts_ecs_tasks(&denied));
    }

    #[test]
    fn secrets_are_parsed_from_every_value_from_form() {
        assert_eq!(
            SecretReference::parse("arn:aws:ssm:us-east-1:1:parameter/prod/db"),
            Some(SecretReference::Parameter {
                name: "/prod/db".into(),
                arn: Some("arn:aws:ssm:us-east-1:1:parameter/prod/db".into())
            })
        );
        assert_eq!(
            SecretReference::parse("arn:aws:ssm:us-east-1:1:parameter/db")
                .map(|s| s.name().to_string()),
            Some("db".into())
        );
        assert_eq!(
            SecretReference::parse(
                "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf:password:AWSCURRENT:"
            ),
            Some(SecretReference::Secret {
                arn: "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf".into()
            })
        );
        assert_eq!(
            SecretReference::parse("/prod/db"),
            Some(SecretReference::Parameter {
                name: "/prod/db".into(),
                arn: None
            })
        );
    }

    #[test]
    fn the_execution_role_needs_follow_the_images_logs_and_secrets() {
        let document = json!({
            "family": "web",
            "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
            "containerDefinitions": [{
                "name": "app",
                "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web:1f2e3d4",
                "secrets": [{"name": "DB", "valueFrom": "db"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web", "awslogs-create-group": "true"}}
            }, {
                "name": "proxy",
                "image": "public.ecr.aws/nginx/nginx:1.27"
            }]
        });
        let scope = PreflightScope {
            region: "eu-west-1".into(),
        };
        let needs = execution_role_needs(
            &document,
            &scope,
            Some("arn:aws:iam::123456789012:role/exec"),
        );
        let summary: Vec<(&str, Vec<&str>, Vec<&str>)> = needs
            .iter()
            .map(|n| {
                (
                    n.purpose.as_str(),
                    n.actions.iter().map(String::as_str).collect(),
                    n.resources.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "get an ECR token",
                    vec!["ecr:GetAuthorizationToken"],
                    vec!["*"]
                ),
                (
                    "pull from shop/web",
                    vec!["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    vec!["arn:aws:ecr:eu-west-1:123456789012:repository/shop/web"]
                ),
                (
                    "write to log group /ecs/web",
                    vec![
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:CreateLogGroup"
                    ],
                    vec!["arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/web:log-stream:*"]
                ),
                (
                    "read SSM parameter db",
                    vec!["ssm:GetParameters"],
                    vec!["arn:aws:ssm:eu-west-1:123456789012:parameter/db"]
                ),
            ]
        );
    }
}
