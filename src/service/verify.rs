//! Verify before deploy: checks of the task definition about to be
//! registered and the service it goes to, made in the plan phase so a
//! revision that cannot start is refused before anything changes. Each
//! check is OK, NG (a definite problem: a bad input) or SKIP with its
//! reason (it could not be judged: never a failure), printed as a tree.
//!
//! The shape checks are pure ([`shape_checks`]); the load-balancer checks
//! read the service's target groups (DescribeTargetGroups), the network
//! check its subnets' and security groups' VPCs (EC2).

use std::fmt;

use serde_json::Value;

use std::collections::BTreeMap;

use aws_sdk_ecs::types::AwsVpcConfiguration;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::ec2::{Ec2Reader, Lookup};
use super::watch::EcsClients;
use crate::aws::aws_error;

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The problem and the fix.
    Ng {
        problem: String,
        fix: String,
    },
    /// Why it was not judged.
    Skip(String),
}

/// A named check of a subject (the task definition, the service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub subject: String,
    pub name: String,
    pub verdict: Verdict,
}

impl Check {
    pub fn new(subject: &str, name: impl Into<String>, verdict: Verdict) -> Self {
        Self {
            subject: subject.to_string(),
            name: name.into(),
            verdict,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Ok => write!(f, "OK   {}", self.name),
            Verdict::Ng { problem, .. } => write!(f, "NG   {}: {problem}", self.name),
            Verdict::Skip(reason) => write!(f, "SKIP {} ({reason})", self.name),
        }
    }
}

/// The checks as a tree: one branch per subject, in order.
pub fn tree(checks: &[Check]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut subject = "";
    for check in checks {
        if check.subject != subject {
            subject = &check.subject;
            lines.push(subject.to_string());
        }
        lines.push(format!("  {check}"));
    }
    lines
}

/// Task CPU units from `256` or `"0.25 vCPU"`.
fn cpu_units(value: &Value) -> Option<u32> {
    let text = match value {
        Value::Number(n) => return n.as_u64().map(|n| n as u32),
        Value::String(text) => text.trim().to_lowercase(),
        _ => return None,
    };
    match text.strip_suffix("vcpu") {
        Some(vcpu) => vcpu.trim().parse::<f64>().ok().map(|v| (v * 1024.0) as u32),
        None => text.parse().ok(),
    }
}

/// Task memory MiB from `512` or `"0.5GB"`.
fn memory_mib(value: &Value) -> Option<u32> {
    let text = match value {
        Value::Number(n) => return n.as_u64().map(|n| n as u32),
        Value::String(text) => text.trim().to_lowercase(),
        _ => return None,
    };
    match text.strip_suffix("gb") {
        Some(gb) => gb.trim().parse::<f64>().ok().map(|g| (g * 1024.0) as u32),
        None => text.parse().ok(),
    }
}

/// The memory sizes Fargate takes with `cpu` units (MiB).
fn fargate_memory(cpu: u32) -> Option<Vec<u32>> {
    let range = |from: u32, to: u32, step: u32| (from..=to).step_by(step as usize).collect();
    match cpu {
        256 => Some(vec![512, 1024, 2048]),
        512 => Some(range(1024, 4096, 1024)),
        1024 => Some(range(2048, 8192, 1024)),
        2048 => Some(range(4096, 16384, 1024)),
        4096 => Some(range(8192, 30720, 1024)),
        8192 => Some(range(16384, 61440, 4096)),
        16384 => Some(range(32768, 122880, 8192)),
        _ => None,
    }
}

/// Whether the task runs on Fargate (its compatibilities, or the launch).
fn runs_on_fargate(task_definition: &Value, launch_type: Option<&str>) -> bool {
    launch_type == Some("FARGATE")
        || task_definition
            .get("requiresCompatibilities")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|v| v.as_str() == Some("FARGATE")))
}

/// Why a value of a template's task definition is not judged.
const AT_DEPLOY_TIME: &str = "CloudFormation sets it at deploy time";

/// The member that marks a value a template leaves to CloudFormation (a
/// `Fn::GetAtt`, a parameter nobody gave): `stack/task_definitions.rs`
/// writes `{SET_AT_DEPLOY_TIME: <the expression>}` where ECS takes a string
/// or number.
pub const SET_AT_DEPLOY_TIME: &str = "setAtDeployTime";

fn set_at_deploy_time(value: &Value) -> bool {
    value.get(SET_AT_DEPLOY_TIME).is_some()
}

/// The checks that need nothing but the task definition and how the
/// service runs it (pure).
pub fn shape_checks(task_definition: &Value, launch_type: Option<&str>) -> Vec<Check> {
    let family = task_definition
        .get("family")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let subject = format!("task definition {family}");
    let mut checks = Vec::new();
    let containers: Vec<&Value> = task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let essential: Vec<&str> = containers
        .iter()
        .filter(|c| c.get("essential").and_then(Value::as_bool) != Some(false))
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    checks.push(Check::new(
        &subject,
        "an essential container",
        if essential.is_empty() {
            Verdict::Ng {
                problem: "every container has `essential: false`, which ECS refuses".into(),
                fix: "mark the main container `essential: true`".into(),
            }
        } else {
            Verdict::Ok
        },
    ));
    if runs_on_fargate(task_definition, launch_type) {
        let mode = task_definition.get("networkMode").and_then(Value::as_str);
        checks.push(Check::new(
            &subject,
            "awsvpc network mode for Fargate",
            if task_definition
                .get("networkMode")
                .is_some_and(set_at_deploy_time)
            {
                Verdict::Skip(AT_DEPLOY_TIME.into())
            } else if mode == Some("awsvpc") {
                Verdict::Ok
            } else {
                Verdict::Ng {
                    problem: format!(
                        "network mode is {}, and Fargate runs only awsvpc tasks",
                        mode.unwrap_or("not set")
                    ),
                    fix: "set `networkMode: awsvpc`".into(),
                }
            },
        ));
        let cpu = task_definition.get("cpu").and_then(cpu_units);
        let memory = task_definition.get("memory").and_then(memory_mib);
        let name = "Fargate task size (cpu, memory)";
        checks.push(Check::new(
            &subject,
            name,
            match (cpu, memory) {
                _ if ["cpu", "memory"]
                    .iter()
                    .any(|k| task_definition.get(*k).is_some_and(set_at_deploy_time)) =>
                {
                    Verdict::Skip(AT_DEPLOY_TIME.into())
                }
                (Some(cpu), Some(memory)) => match fargate_memory(cpu) {
                    Some(sizes) if sizes.contains(&memory) => Verdict::Ok,
                    Some(sizes) => Verdict::Ng {
                        problem: format!(
                            "cpu {cpu} with memory {memory} MiB is not a Fargate size"
                        ),
                        fix: format!(
                            "with cpu {cpu} use memory {} to {} MiB in steps of {}",
                            sizes.first().copied().unwrap_or_default(),
                            sizes.last().copied().unwrap_or_default(),
                            sizes.get(1).zip(sizes.first()).map_or(0, |(b, a)| b - a)
                        ),
                    },
                    None => Verdict::Ng {
                        problem: format!("cpu {cpu} is not a Fargate size"),
                        fix: "use 256, 512, 1024, 2048, 4096, 8192 or 16384 cpu units".into(),
                    },
                },
                _ => Verdict::Ng {
                    problem: "task-level cpu and memory are required on Fargate".into(),
                    fix: "set `cpu` and `memory` on the task definition, e.g. \"256\" and \"512\""
                        .into(),
                },
            },
        ));
    } else {
        checks.push(Check::new(
            &subject,
            "Fargate task size",
            Verdict::Skip("not a Fargate task".into()),
        ));
    }
    for container in &containers {
        let name = container.get("name").and_then(Value::as_str).unwrap_or("?");
        let Some(command) = container
            .get("healthCheck")
            .and_then(|h| h.get("command"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        let first = command.first().and_then(Value::as_str).unwrap_or_default();
        checks.push(Check::new(
            &subject,
            format!("health check command of {name}"),
            if matches!(first, "CMD" | "CMD-SHELL" | "NONE") && (first == "NONE" || command.len() > 1) {
                Verdict::Ok
            } else {
                Verdict::Ng {
                    problem: format!("starts with `{first}` and is then {} word(s)", command.len().saturating_sub(1)),
                    fix: "write [\"CMD-SHELL\", \"curl -f http://localhost/ || exit 1\"] or [\"CMD\", \"executable\", \"arg\"]".into(),
                }
            },
        ));
    }
    checks
}

/// A load balancer of the service: the target group, container and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTarget {
    pub target_group_arn: String,
    pub container: String,
    pub port: i32,
}

/// The container's mapped ports.
fn mapped_ports(task_definition: &Value, container: &str) -> Option<Vec<i64>> {
    task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
        .map(|c| {
            c.get("portMappings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("containerPort").and_then(Value::as_i64))
                .collect()
        })
}

/// The checks of the service's load balancers: the container and port each
/// points at exist in the new revision, and the target group takes the
/// tasks (target type `ip` for awsvpc). Reading a target group that fails
/// is a SKIP. Also gives each target group read and its VPC, for
/// [`network_check`].
pub async fn load_balancer_checks(
    clients: &EcsClients,
    service: &str,
    targets: &[ServiceTarget],
    task_definition: &Value,
) -> (Vec<Check>, Vec<NetworkMember>) {
    let subject = format!("service {service}");
    let mut target_group_vpcs = Vec::new();
    let awsvpc = task_definition.get("networkMode").and_then(Value::as_str) == Some("awsvpc");
    let mut checks = Vec::new();
    for target in targets {
        let name = format!(
            "container {}:{} behind the load balancer",
            target.container, target.port
        );
        checks.push(Check::new(
            &subject,
            name,
            match mapped_ports(task_definition, &target.container) {
                None => Verdict::Ng {
                    problem: format!("the new revision has no container `{}`", target.container),
                    fix: "keep the container the service's load balancer sends traffic to, or change the service".into(),
                },
                Some(ports) if !ports.contains(&i64::from(target.port)) => Verdict::Ng {
                    problem: format!(
                        "container `{}` maps no containerPort {} (it maps {:?})",
                        target.container, target.port, ports
                    ),
                    fix: "map the port the target group sends traffic to".into(),
                },
                Some(_) => Verdict::Ok,
            },
        ));
        let found = clients
            .elb
            .describe_target_groups()
            .target_group_arns(&target.target_group_arn)
            .send()
            .await
            .map_err(aws_error);
        let short = target
            .target_group_arn
            .split(":targetgroup/")
            .nth(1)
            .unwrap_or(&target.target_group_arn);
        let name = format!("target group {short} takes the tasks");
        checks.push(Check::new(
            &subject,
            name,
            match found {
                Err(error) => Verdict::Skip(format!("DescribeTargetGroups: {error:#}")),
                Ok(output) => match output.target_groups().first() {
                    None => Verdict::Ng {
                        problem: "the target group does not exist".into(),
                        fix: "point the service at an existing target group".into(),
                    },
                    Some(group) => {
                        if let Some(vpc) = group.vpc_id() {
                            target_group_vpcs.push(NetworkMember {
                                kind: "target group",
                                id: short.to_string(),
                                vpc: Some(vpc.to_string()),
                            });
                        }
                        let kind = group.target_type().map_or("instance", |t| t.as_str());
                        if awsvpc && kind != "ip" {
                            Verdict::Ng {
                                problem: format!(
                                    "its target type is {kind}; awsvpc tasks register by IP"
                                ),
                                fix: "use a target group with TargetType ip".into(),
                            }
                        } else {
                            Verdict::Ok
                        }
                    }
                },
            },
        ));
    }
    (checks, target_group_vpcs)
}

/// A subnet, security group or target group, and its VPC (`None` until
/// EC2 is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkMember {
    pub kind: &'static str,
    pub id: String,
    pub vpc: Option<String>,
}

/// The check that the subnets and security groups a task is placed in, and
/// the target groups it registers with, exist and are in one VPC: ECS
/// refuses a security group of another VPC than the subnets only when a
/// task starts, and a target group of another VPC only when it registers
/// the task, so the rollout fails minutes in. EC2 refusing the call
/// because an id does not exist is an NG (its message names the id); not
/// being allowed to ask is a SKIP.
pub async fn network_check(
    ec2: &Ec2Reader,
    subject: &str,
    network: &AwsVpcConfiguration,
    target_groups: &[NetworkMember],
) -> Check {
    let name = "subnets, security groups and target groups in one VPC";
    let mut members = Vec::new();
    for (lookup, ids, kind) in [
        (Lookup::Subnets, network.subnets(), "subnet"),
        (
            Lookup::SecurityGroups,
            network.security_groups(),
            "security group",
        ),
    ] {
        let ids: Vec<String> = ids.to_vec();
        match ec2.vpcs(lookup, &ids).await {
            Ok(found) => members.extend(ids.iter().map(|id| NetworkMember {
                kind,
                id: id.clone(),
                vpc: found.get(id).cloned(),
            })),
            Err(error) => {
                let code = error.code().unwrap_or_default().to_string();
                let error = aws_error(error);
                let verdict = if code.ends_with(".NotFound") || code.ends_with(".Malformed") {
                    Verdict::Ng {
                        problem: format!("{error:#}"),
                        fix: format!("give {kind}s that exist in this account and region"),
                    }
                } else {
                    Verdict::Skip(format!("{}: {error:#}", lookup.action()))
                };
                return Check::new(subject, name, verdict);
            }
        }
    }
    members.extend(target_groups.iter().cloned());
    Check::new(subject, name, one_vpc(&members))
}

/// OK when every member with a known VPC is in the same one (pure).
fn one_vpc(members: &[NetworkMember]) -> Verdict {
    let mut by_vpc: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for member in members {
        if let Some(vpc) = &member.vpc {
            by_vpc
                .entry(vpc)
                .or_default()
                .push(format!("{} {}", member.kind, member.id));
        }
    }
    if by_vpc.len() <= 1 {
        return Verdict::Ok;
    }
    let problem = by_vpc
        .iter()
        .map(|(vpc, members)| format!("{} in {vpc}", members.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    let fix = if members.iter().any(|m| m.kind == "target group") {
        "place the tasks in subnets and security groups of the target groups' VPC"
    } else {
        "give subnets and security groups of one VPC"
    };
    Verdict::Ng {
        problem,
        fix: fix.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(kind: &'static str, id: &str, vpc: Option<&str>) -> NetworkMember {
        NetworkMember {
            kind,
            id: id.into(),
            vpc: vpc.map(str::to_string),
        }
    }

    #[test]
    fn one_vpc_names_each_vpc_and_its_members() {
        assert_eq!(
            one_vpc(&[
                member("subnet", "subnet-1", Some("vpc-a")),
                member("security group", "sg-1", Some("vpc-a")),
                member("target group", "web/1", None),
            ]),
            Verdict::Ok
        );
        let Verdict::Ng { problem, fix } = one_vpc(&[
            member("subnet", "subnet-1", Some("vpc-a")),
            member("security group", "sg-1", Some("vpc-a")),
            member("target group", "web/1", Some("vpc-b")),
        ]) else {
            panic!("two VPCs are an NG");
        };
        assert_eq!(
            problem,
            "subnet subnet-1, security group sg-1 in vpc-a; target group web/1 in vpc-b"
        );
        assert!(fix.contains("target groups' VPC"), "{fix}");
        let Verdict::Ng { fix, .. } = one_vpc(&[
            member("subnet", "subnet-1", Some("vpc-a")),
            member("security group", "sg-2", Some("vpc-b")),
        ]) else {
            panic!("two VPCs are an NG");
        };
        assert_eq!(fix, "give subnets and security groups of one VPC");
    }
    use serde_json::json;

    fn fargate(cpu: Value, memory: Value) -> Value {
        json!({
            "family": "web",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": cpu,
            "memory": memory,
            "containerDefinitions": [{"name": "app", "image": "repo:v1"}]
        })
    }

    fn verdicts(checks: &[Check]) -> Vec<(&str, bool)> {
        checks
            .iter()
            .map(|c| (c.name.as_str(), matches!(c.verdict, Verdict::Ng { .. })))
            .collect()
    }

    #[test]
    fn fargate_sizes_follow_the_published_table() {
        for (cpu, memory, valid) in [
            (json!("256"), json!("512"), true),
            (json!("0.25 vCPU"), json!("0.5GB"), true),
            (json!(1024), json!(8192), true),
            (json!("256"), json!("4096"), false),
            (json!("512"), json!("512"), false),
            (json!("8192"), json!("20480"), true),
            (json!("8192"), json!("18432"), false),
            (json!("300"), json!("1024"), false),
        ] {
            let checks = shape_checks(&fargate(cpu.clone(), memory.clone()), None);
            let size = checks
                .iter()
                .find(|c| c.name.starts_with("Fargate task size"))
                .unwrap_or_else(|| panic!("no size check"));
            assert_eq!(size.verdict == Verdict::Ok, valid, "{cpu} {memory}: {size}");
        }
    }

    #[test]
    fn each_shape_mistake_is_named() {
        let mut document = fargate(json!("256"), json!("512"));
        document["networkMode"] = json!("bridge");
        document["containerDefinitions"][0]["essential"] = json!(false);
        document["containerDefinitions"][0]["healthCheck"] =
            json!({"command": ["curl -f http://localhost/"]});
        assert_eq!(
            verdicts(&shape_checks(&document, None)),
            [
                ("an essential container", true),
                ("awsvpc network mode for Fargate", true),
                ("Fargate task size (cpu, memory)", false),
                ("health check command of app", true),
            ]
        );
        let ec2 = json!({"family": "web", "containerDefinitions": [{"name": "app"}]});
        let checks = shape_checks(&ec2, Some("EC2"));
        assert!(matches!(checks[1].verdict, Verdict::Skip(_)), "{checks:?}");
        let lines = tree(&checks);
        assert_eq!(lines[0], "task definition web");
        assert_eq!(lines[1], "  OK   an essential container");
        assert_eq!(lines[2], "  SKIP Fargate task size (not a Fargate task)");
    }
}
