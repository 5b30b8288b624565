//! Immutable images and ECS rollouts through the real binary against the
//! emulator: the task-definition path (render, register, update, wait) and
//! the CloudFormation path (image parameter, diagnosis while the stack
//! waits on its service), with every failure saying why.

use std::time::Duration;

use aws_sdk_ecs::types::{
    AwsVpcConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration, LaunchType,
    NetworkConfiguration,
};

use crate::util::proxy::{FaultProxy, calls_after, count_of};
use crate::util::{ActionRun, Emulator, RunResult, Workspace, block_on, unique_name};

const ACCOUNT: &str = "123456789012";

fn ecr_host() -> String {
    format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com")
}

fn config() -> aws_config::SdkConfig {
    config_for(Emulator::shared())
}

pub fn config_for(emulator: &Emulator) -> aws_config::SdkConfig {
    block_on(async {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(emulator.endpoint())
            .http_client(ecs_stack_deploy::direct_http_client())
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .load()
            .await
    })
}

/// Creates an ECR repository and pushes a manifest under each tag; returns
/// the repository URI.
pub fn push_image(repository: &str, tags: &[&str]) -> String {
    push_image_on(Emulator::shared(), repository, tags)
}

/// Creates an S3 bucket named after `prefix` (unique, lower case) on
/// `emulator`, addressed by path as the action addresses it there; returns
/// its name.
pub fn create_bucket_on(emulator: &Emulator, prefix: &str) -> String {
    let bucket = unique_name(prefix).to_lowercase();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config_for(emulator))
            .force_path_style(true)
            .build(),
    );
    block_on(async { s3.create_bucket().bucket(&bucket).send().await })
        .unwrap_or_else(|error| panic!("create bucket {bucket}: {error:?}"));
    bucket
}

/// The execution role the test task definitions name: trusted by ECS
/// tasks, with AWS's managed execution policy (pull from ECR, write logs),
/// as an account that runs Fargate tasks from a private ECR has.
pub const EXECUTION_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole";

/// Creates [`EXECUTION_ROLE_ARN`] on `emulator` unless it is there.
pub fn ensure_execution_role(emulator: &Emulator) {
    let iam = aws_sdk_iam::Client::new(&config_for(emulator));
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    });
    block_on(async {
        let created = iam
            .create_role()
            .role_name("ecsTaskExecutionRole")
            .assume_role_policy_document(trust.to_string())
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_entity_already_exists_exception()) =>
            {
                return;
            }
            Err(error) => panic!("create the execution role: {error:?}"),
        }
        iam.attach_role_policy()
            .role_name("ecsTaskExecutionRole")
            .policy_arn("arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
            .send()
            .await
            .expect("attach the execution policy");
    });
}

/// [`push_image`] on a given emulator, with the execution role that pulls
/// it ([`ensure_execution_role`]).
pub fn push_image_on(emulator: &Emulator, repository: &str, tags: &[&str]) -> String {
    ensure_execution_role(emulator);
    let ecr = aws_sdk_ecr::Client::new(&config_for(emulator));
    block_on(async {
        ecr.create_repository()
            .repository_name(repository)
            .send()
            .await
            .expect("create repository");
        for tag in tags {
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": format!("sha256:{:0>64}", tag.len())},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": format!("sha256:{:0>64}", tag)}]
            });
            ecr.put_image()
                .repository_name(repository)
                .image_tag(*tag)
                .image_manifest(manifest.to_string())
                .send()
                .await
                .expect("put image");
        }
    });
    format!("{}/{repository}", ecr_host())
}

/// A task definition file for one container `app`.
fn task_definition(family: &str, image: &str, labels: serde_json::Value) -> String {
    serde_json::json!({
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": EXECUTION_ROLE_ARN,
        "containerDefinitions": [{
            "name": "app",
            "image": image,
            "essential": true,
            "portMappings": [{"containerPort": 8080}],
            "environment": [{"name": "MODE", "value": "old"}, {"name": "DROP_ME", "value": "x"}],
            "dockerLabels": labels
        }],
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/old:1",
        "revision": 1,
        "status": "ACTIVE",
        "somethingNewerThanTheSdk": {"kept": true}
    })
    .to_string()
}

/// A cluster and a Fargate service with the circuit breaker on, running a
/// first, good revision (its deployment completed).
fn service_running(emulator: &Emulator, cluster: &str, service: &str, family: &str, image: &str) {
    let ecs = aws_sdk_ecs::Client::new(&config_for(emulator));
    let (subnet, security_group) = emulator.default_network();
    block_on(async {
        ecs.create_cluster()
            .cluster_name(cluster)
            .send()
            .await
            .expect("cluster");
        let document: serde_json::Value =
            serde_json::from_str(&task_definition(family, image, serde_json::json!({}))).unwrap();
        let container = &document["containerDefinitions"][0];
        let registered = ecs
            .register_task_definition()
            .family(family)
            .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .execution_role_arn(EXECUTION_ROLE_ARN)
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("app")
                    .image(container["image"].as_str().unwrap())
                    .essential(true)
                    .build(),
            )
            .send()
            .await
            .expect("register first revision");
        let arn = registered
            .task_definition()
            .unwrap()
            .task_definition_arn()
            .unwrap()
            .to_string();
        ecs.create_service()
            .cluster(cluster)
            .service_name(service)
            .task_definition(&arn)
            .desired_count(1)
            .launch_type(LaunchType::Fargate)
            // AWS requires a network for an awsvpc service; one-off tasks
            // (`run-task`) run in it.
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        AwsVpcConfiguration::builder()
                            .subnets(&subnet)
                            .security_groups(&security_group)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .deployment_circuit_breaker(
                        DeploymentCircuitBreaker::builder()
                            .enable(true)
                            .rollback(true)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("create service");
        // Set-up only: the first deployment settles in about a second.
        for _ in 0..200 {
            let described = ecs
                .describe_services()
                .cluster(cluster)
                .services(service)
                .send()
                .await
                .unwrap();
            let settled = described.services()[0]
                .deployments()
                .iter()
                .any(|d| d.rollout_state().map(|s| s.as_str()) == Some("COMPLETED"));
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the first deployment of {service} never completed");
    });
}

pub fn revision_count(family: &str) -> usize {
    let ecs = aws_sdk_ecs::Client::new(&config());
    block_on(async {
        ecs.list_task_definitions()
            .family_prefix(family)
            .send()
            .await
            .expect("list task definitions")
            .task_definition_arns()
            .len()
    })
}

pub struct Setup {
    pub ws: Workspace,
    pub cluster: String,
    pub service: String,
    pub family: String,
    pub repository: String,
}

pub fn setup(labels: serde_json::Value) -> Setup {
    setup_on(Emulator::shared(), labels)
}

/// [`setup`] on a given emulator.
pub fn setup_on(emulator: &Emulator, labels: serde_json::Value) -> Setup {
    let name = unique_name("svc");
    let repository = push_image_on(emulator, &name, &["v1", "abc1234"]);
    let cluster = format!("{name}-cluster");
    let family = format!("{name}-web");
    service_running(
        emulator,
        &cluster,
        &name,
        &family,
        &format!("{repository}:v1"),
    );
    let ws = Workspace::new();
    ws.write(
        "ecs/task-definition.json",
        &task_definition(&family, "placeholder", labels),
    );
    Setup {
        ws,
        cluster,
        service: name,
        family,
        repository,
    }
}

pub fn roll_out<'a>(s: &'a Setup, tag: &str) -> ActionRun<'a> {
    ActionRun::new(&s.ws)
        .input("task-definition", "ecs/task-definition.json")
        .input("container-name", "app")
        .input("image-repository", &s.repository)
        .input("image-tag", tag)
        .input("service", &s.service)
        .input("cluster", &s.cluster)
}

fn annotated(run: &RunResult, text: &str) -> bool {
    run.error_annotations().iter().any(|l| l.contains(text))
}

#[test]
fn rollout_of_an_immutable_image_completes_and_reports_everything() {
    let s = setup(serde_json::json!({}));
    let run = roll_out(&s, "abc1234")
        .input("environment-variables", "MODE=new\nDROP_ME=\nADDED=1")
        .input("pin-digest", "true")
        .run();
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "COMPLETED");
    assert!(
        run.output("deployment-id").starts_with("ecs-svc/"),
        "{:?}",
        run.outputs
    );
    assert!(
        run.output("task-definition-arn")
            .contains(&format!("task-definition/{}:2", s.family))
    );
    assert!(run.output("image-digest").starts_with("sha256:"));
    assert_eq!(
        run.output("image"),
        format!("{}:abc1234@{}", s.repository, run.output("image-digest")),
        "pin-digest deploys repo:tag@digest"
    );
    assert!(
        run.output("service-arn")
            .ends_with(&format!("/{}", s.service))
    );
    // The rendered file, under the workspace, as the render action's output.
    let rendered: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.ws.root().join(run.output("task-definition"))).unwrap(),
    )
    .unwrap();
    let container = &rendered["containerDefinitions"][0];
    assert_eq!(container["image"], run.output("image"));
    assert_eq!(
        container["environment"],
        serde_json::json!([{"name": "MODE", "value": "new"}, {"name": "ADDED", "value": "1"}])
    );
    assert_eq!(
        rendered["somethingNewerThanTheSdk"],
        serde_json::json!({"kept": true})
    );
    assert!(rendered.get("taskDefinitionArn").is_none() && rendered.get("revision").is_none());
    // Progress as it happens.
    assert!(run.stdout.contains("has started 1 tasks"), "{}", run.stdout);
    assert!(
        run.stdout.contains("deployment completed"),
        "{}",
        run.stdout
    );
    assert!(
        run.summary.contains("| Rollout | `COMPLETED` |"),
        "{}",
        run.summary
    );

    // The same render again registers nothing and deploys nothing.
    let again = roll_out(&s, "abc1234")
        .input("environment-variables", "MODE=new\nDROP_ME=\nADDED=1")
        .input("pin-digest", "true")
        .run();
    again.assert_code(0);
    assert_eq!(
        again.output("rollout-state"),
        "UNCHANGED",
        "{}\n{}",
        again.stdout,
        again.stderr
    );
    assert_eq!(revision_count(&s.family), 2);
}

/// A step migrated from amazon-ecs-render-task-definition with every input
/// it has: what ECS registers carries each of them.
#[test]
fn the_render_actions_inputs_reach_the_registered_task_definition() {
    let s = setup(serde_json::json!({"team": "web"}));
    // The roles, parameter and log group it names, as the account has them.
    crate::migration::account_the_fixture_names();
    let run = roll_out(&s, "abc1234")
        .input(
            "secrets",
            "DB_PASSWORD=arn:aws:ssm:us-east-1:123456789012:parameter/db",
        )
        .input("env-files", "arn:aws:s3:::config-bucket/web/prod.env")
        .input("command", r#"./server --banner "hello world""#)
        .input("docker-labels", "team=shop\nowner=ops")
        .input("log-configuration-log-driver", "awslogs")
        .input(
            "log-configuration-options",
            "awslogs-group=/ecs/web\nawslogs-region=us-east-1\nawslogs-stream-prefix=web",
        )
        .input("task-role-arn", "arn:aws:iam::123456789012:role/web-task")
        .input(
            "execution-role-arn",
            "arn:aws:iam::123456789012:role/web-exec",
        )
        .run();
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "COMPLETED", "{}", run.stdout);
    let ecs = aws_sdk_ecs::Client::new(&config());
    let described = block_on(async {
        ecs.describe_task_definition()
            .task_definition(run.output("task-definition-arn"))
            .send()
            .await
            .expect("describe task definition")
    });
    let registered = described.task_definition().expect("task definition");
    assert_eq!(
        registered.task_role_arn(),
        Some("arn:aws:iam::123456789012:role/web-task")
    );
    assert_eq!(
        registered.execution_role_arn(),
        Some("arn:aws:iam::123456789012:role/web-exec")
    );
    let container = &registered.container_definitions()[0];
    assert_eq!(container.command(), ["./server", "--banner", "hello world"]);
    let secrets: Vec<(&str, &str)> = container
        .secrets()
        .iter()
        .map(|secret| (secret.name(), secret.value_from()))
        .collect();
    assert_eq!(
        secrets,
        [(
            "DB_PASSWORD",
            "arn:aws:ssm:us-east-1:123456789012:parameter/db"
        )]
    );
    assert_eq!(
        container.environment_files()[0].value(),
        "arn:aws:s3:::config-bucket/web/prod.env"
    );
    let labels = container.docker_labels().expect("labels");
    assert_eq!(labels.get("team").map(String::as_str), Some("shop"));
    assert_eq!(labels.get("owner").map(String::as_str), Some("ops"));
    let log = container.log_configuration().expect("log configuration");
    assert_eq!(log.log_driver().as_str(), "awslogs");
    assert_eq!(
        log.options()
            .and_then(|o| o.get("awslogs-group"))
            .map(String::as_str),
        Some("/ecs/web")
    );
}

/// amazon-ecs-deploy-task-definition's service settings reach UpdateService:
/// given with the running revision unchanged, they still update the service.
#[test]
fn service_settings_are_sent_with_the_update() {
    let s = setup(serde_json::json!({}));
    roll_out(&s, "abc1234").run().assert_code(0);
    let run = roll_out(&s, "abc1234")
        .input("enable-ecs-managed-tags", "true")
        .input("propagate-tags", "SERVICE")
        .input("wait-max-delay-seconds", "2")
        .run();
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(&format!("update service {}", s.service)),
        "{}",
        run.stdout
    );
    let ecs = aws_sdk_ecs::Client::new(&config());
    let described = block_on(async {
        ecs.describe_services()
            .cluster(&s.cluster)
            .services(&s.service)
            .send()
            .await
            .expect("describe services")
    });
    let service = &described.services()[0];
    assert!(service.enable_ecs_managed_tags());
    assert_eq!(
        service.propagate_tags().map(|p| p.as_str()),
        Some("SERVICE")
    );
}

#[test]
fn missing_image_is_refused_before_anything_is_registered() {
    let s = setup(serde_json::json!({}));
    let run = roll_out(&s, "0000000").run();
    run.assert_code(2);
    assert!(
        annotated(&run, "`0000000` is not in ECR repository"),
        "{}",
        run.stdout
    );
    assert!(annotated(&run, "push the image first"), "{}", run.stdout);
    assert_eq!(revision_count(&s.family), 1, "no revision was registered");
}

#[test]
fn mutable_tags_are_refused_with_the_fix() {
    let s = setup(serde_json::json!({}));
    for tag in ["latest", "main"] {
        let run = roll_out(&s, tag).run();
        run.assert_code(2);
        assert!(
            annotated(&run, "allow-mutable-tag"),
            "{tag}: {}",
            run.stdout
        );
        assert!(annotated(&run, "github.sha"), "{tag}: {}", run.stdout);
    }
    let run = ActionRun::new(&s.ws)
        .input("task-definition", "ecs/task-definition.json")
        .input("container-name", "app")
        .input("image", "nginx")
        .input("service", &s.service)
        .input("cluster", &s.cluster)
        .run();
    run.assert_code(2);
    assert!(
        annotated(&run, "`image`"),
        "an implicit latest is refused too: {}",
        run.stdout
    );
    assert_eq!(revision_count(&s.family), 1);
}

#[test]
fn crash_loop_is_rolled_back_and_reported_as_a_failure() {
    let s = setup(serde_json::json!({"emulator.exit-code": "3"}));
    let run = roll_out(&s, "abc1234").run();
    run.assert_code(1);
    assert_eq!(run.output("rollout-state"), "ROLLED_BACK");
    assert!(
        run.stdout.contains("Essential container in task exited"),
        "{}",
        run.stdout
    );
    assert!(annotated(&run, "was rolled back"), "{}", run.stdout);
    assert!(
        annotated(&run, "container app exited with code 3"),
        "{}",
        run.stdout
    );
    assert!(
        run.summary.contains("Why the service did not come up"),
        "{}",
        run.summary
    );
}

#[test]
fn a_rollout_that_does_not_finish_in_time_fails() {
    let s = setup(serde_json::json!({"emulator.start-seconds": "30"}));
    let run = roll_out(&s, "abc1234")
        .input("wait-for-minutes", "0.05")
        .run();
    run.assert_code(1);
    assert!(
        annotated(&run, "was still IN_PROGRESS after"),
        "{}",
        run.stdout
    );
    assert_eq!(run.output("rollout-state"), "IN_PROGRESS");
}

/// A stack with a cluster, a task definition taking its image from
/// `ImageUri`, and a Fargate service with the circuit breaker on, in a
/// subnet of its own VPC (verify refuses a subnet that does not exist).
pub const SERVICE_TEMPLATE: &str = r#"
Parameters:
  ImageUri:
    Type: String
Resources:
  Cluster:
    Type: AWS::ECS::Cluster
  TaskDefinition:
    Type: AWS::ECS::TaskDefinition
    Properties:
      Family: !Sub "${AWS::StackName}-web"
      NetworkMode: awsvpc
      RequiresCompatibilities: [FARGATE]
      Cpu: "256"
      Memory: "512"
      ExecutionRoleArn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole
      ContainerDefinitions:
        - Name: app
          Image: !Ref ImageUri
          Essential: true
  Service:
    Type: AWS::ECS::Service
    Properties:
      Cluster: !Ref Cluster
      TaskDefinition: !Ref TaskDefinition
      DesiredCount: 1
      LaunchType: FARGATE
      NetworkConfiguration:
        AwsvpcConfiguration:
          Subnets: [!Ref Subnet]
      DeploymentConfiguration:
        DeploymentCircuitBreaker:
          Enable: true
          Rollback: true
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.42.0.0/16
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.42.0.0/24
Outputs:
  ClusterName:
    Value: !Ref Cluster
"#;

#[test]
fn stack_receives_the_immutable_image_and_reports_its_ecs_resources() {
    let name = unique_name("ecsstack");
    let repository = push_image(&name, &["1f2e3d4"]);
    let ws = Workspace::new();
    ws.write("ecs.yml", SERVICE_TEMPLATE);
    let run = ActionRun::new(&ws)
        .input("name", &name)
        .input("template", "ecs.yml")
        .input("image-repository", &repository)
        .input("image-tag", "1f2e3d4")
        .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains(&format!(
            "template parameter ImageUri = {repository}:1f2e3d4"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.output("task-definition-arn")
            .contains(":task-definition/"),
        "{:?}",
        run.outputs
    );
    assert!(
        run.output("service-arn").contains(":service/"),
        "{:?}",
        run.outputs
    );
    assert_eq!(run.output("image"), format!("{repository}:1f2e3d4"));
    assert_eq!(
        run.output("rollout-state"),
        "COMPLETED",
        "the stack's service settled"
    );
    assert!(run.output("deployment-id").starts_with("ecs-svc/"));
}

#[test]
fn stack_waiting_on_a_service_shows_why_its_tasks_fail() {
    let name = unique_name("ecsfail");
    let repository = push_image(&name, &["good"]);
    let ws = Workspace::new();
    ws.write("ecs.yml", SERVICE_TEMPLATE);
    // The image is passed as a plain parameter, so nothing checks it first:
    // this is the stack that hangs on its service in real life.
    let run = ActionRun::new(&ws)
        .input("name", &name)
        .input("template", "ecs.yml")
        .input(
            "parameter-overrides",
            &format!("ImageUri={repository}:missing"),
        )
        .run();
    run.assert_code(1);
    Emulator::shared().assert_no_change_set_left(&name);
    assert_eq!(run.output("stack-status"), "ROLLBACK_COMPLETE");
    assert!(
        run.stdout.contains("CannotPullContainerError"),
        "shown while waiting:\n{}",
        run.stdout
    );
    assert!(
        annotated(&run, "root cause: tasks of") && annotated(&run, "CannotPullContainerError"),
        "and repeated as a root cause:\n{}",
        run.stdout
    );
}

#[test]
fn task_definition_inputs_are_validated_before_any_call() {
    let ws = Workspace::new();
    ws.write(
        "bad.json",
        r#"{"family": "web", "containerDefinitions": [{"name": "app", "image": "x"}],}"#,
    );
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("task-definition", "bad.json"), ("service", "web")],
            "`task-definition`",
        ),
        (
            &[("task-definition", "nope.json"), ("service", "web")],
            "cannot be read",
        ),
        (
            &[
                ("task-definition", "bad.json"),
                ("task-definition-arn", "arn:x"),
                ("service", "web"),
            ],
            "more than once",
        ),
        (
            &[
                ("task-definition-family", "web"),
                ("task-definition-revision", "x"),
            ],
            "`task-definition-revision`",
        ),
        (
            &[
                ("task-definition-arn", "web:1"),
                ("environment-variables", "A=1"),
            ],
            "needs `container-name`",
        ),
        (
            &[("task-definition-arn", "web:1"), ("images", "app")],
            "`container=image`",
        ),
        (
            &[
                ("task-definition-arn", "web:1"),
                ("images", "app=repo:latest"),
            ],
            "allow-mutable-tag",
        ),
        (
            &[("task-definition-arn", "web:1"), ("wait-for-minutes", "0")],
            "`wait-for-minutes`",
        ),
        (
            &[("task-definition-arn", "web:1"), ("desired-count", "-1")],
            "`desired-count`",
        ),
    ];
    for (inputs, expected) in cases {
        let mut run = ActionRun::new(&ws);
        for (name, value) in *inputs {
            run = run.input(name, value);
        }
        let run = run.run();
        run.assert_code(2);
        assert!(
            run.error_annotations().iter().any(|l| l.contains(expected)),
            "{inputs:?}: expected `{expected}`:\n{}",
            run.stdout
        );
    }
}

/// The tag comes from the event when only a repository is given: the
/// upstream run's head_sha on workflow_run (GITHUB_SHA is the default
/// branch's there), the tag on a tag push.
#[test]
fn image_tag_is_derived_from_the_event() {
    let head_sha = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432";
    let name = unique_name("evtag");
    let repository = push_image(&name, &[head_sha, "v1.2.3"]);
    let ws = Workspace::new();
    ws.write("ecs.yml", SERVICE_TEMPLATE);
    let workflow_run = serde_json::json!({
        "action": "completed",
        "workflow_run": {
            "name": "Build",
            "event": "push",
            "conclusion": "success",
            "head_sha": head_sha,
            "head_branch": "main",
            "head_repository": {"full_name": "acme/shop"}
        },
        "repository": {"full_name": "acme/shop"}
    });
    let run = ActionRun::new(&ws)
        .event("workflow_run", workflow_run)
        .input("name", &name)
        .input("template", "ecs.yml")
        .input("image-repository", &repository)
        .input("no-execute-changeset", "true")
        .run();
    run.assert_code(0);
    assert_eq!(run.output("image"), format!("{repository}:{head_sha}"));
    assert!(
        run.stdout.contains("workflow_run.head_sha"),
        "the source is logged:\n{}",
        run.stdout
    );

    let tagged = ActionRun::new(&ws)
        .env("GITHUB_REF", "refs/tags/v1.2.3")
        .input("name", &unique_name("evtag"))
        .input("template", "ecs.yml")
        .input("image-repository", &repository)
        .input("no-execute-changeset", "true")
        .run();
    tagged.assert_code(0);
    assert_eq!(tagged.output("image"), format!("{repository}:v1.2.3"));
}

/// Starting from the registered revision (as the deploy action users do with
/// `aws ecs describe-task-definition`), not from a file.
#[test]
fn rollout_from_the_registered_family_keeps_the_rest_of_the_definition() {
    let s = setup(serde_json::json!({}));
    let run = ActionRun::new(&s.ws)
        .input("task-definition-family", &s.family)
        .input("container-name", "app")
        .input("image-repository", &s.repository)
        .input("image-tag", "abc1234")
        .input("service", &s.service)
        .input("cluster", &s.cluster)
        .run();
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "COMPLETED");
    assert!(
        run.output("task-definition-arn")
            .ends_with(&format!("{}:2", s.family))
    );
    let rendered: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.ws.root().join(run.output("task-definition"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        rendered["containerDefinitions"][0]["image"],
        format!("{}:abc1234", s.repository)
    );
    assert_eq!(
        rendered["cpu"], "256",
        "fields of the registered revision are kept"
    );
    assert!(rendered.get("revision").is_none() && rendered.get("status").is_none());
}

/// The task (by ARN) as DescribeTasks gives it.
fn describe_task(emulator: &Emulator, cluster: &str, arn: &str) -> aws_sdk_ecs::types::Task {
    let ecs = aws_sdk_ecs::Client::new(&config_for(emulator));
    block_on(async {
        ecs.describe_tasks()
            .cluster(cluster)
            .tasks(arn)
            .include(aws_sdk_ecs::types::TaskField::Tags)
            .send()
            .await
            .expect("describe tasks")
    })
    .tasks()[0]
        .clone()
}

/// The one ARN of the `run-task-arn` output (a JSON array, as
/// amazon-ecs-deploy-task-definition gives it).
fn run_task_arn(run: &RunResult) -> String {
    let arns: Vec<String> =
        serde_json::from_str(run.output("run-task-arn")).expect("run-task-arn is a JSON array");
    assert_eq!(arns.len(), 1, "{arns:?}");
    arns[0].clone()
}

/// `run-task` (a migration before the update): the task runs from the new
/// revision in the service's network with the overrides given, is waited
/// for, and only then is the service updated.
#[test]
fn a_one_off_task_runs_first_and_its_success_lets_the_update_go() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    let set_up = emulator.requests().len();
    let run = roll_out(&s, "abc1234")
        .input("run-task", "true")
        .input("wait-for-task-stopped", "true")
        .input(
            "run-task-container-overrides",
            r#"[{"name": "app", "command": ["bin/migrate", "--to", "latest"]}]"#,
        )
        .input(
            "run-task-tags",
            r#"[{"key": "purpose", "value": "migration"}]"#,
        )
        .run_against(&emulator);
    run.assert_code(0);
    assert!(
        run.stdout.contains("run a one-off task from this revision"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("container app exited with code 0"),
        "{}",
        run.stdout
    );
    assert_eq!(run.output("rollout-state"), "COMPLETED", "{}", run.stdout);
    let arn = run_task_arn(&run);
    let task = describe_task(&emulator, &s.cluster, &arn);
    assert_eq!(task.last_status(), Some("STOPPED"));
    assert_eq!(
        task.task_definition_arn(),
        Some(run.output("task-definition-arn"))
    );
    assert_eq!(task.started_by(), Some("GitHub-Actions"));
    assert_eq!(
        task.overrides().unwrap().container_overrides()[0].command(),
        ["bin/migrate", "--to", "latest"]
    );
    assert_eq!(task.tags()[0].key(), Some("purpose"));
    let subnet = task.attachments()[0]
        .details()
        .iter()
        .find(|d| d.name() == Some("subnetId"))
        .and_then(|d| d.value());
    assert_eq!(
        subnet,
        Some(emulator.default_network().0.as_str()),
        "the service's network"
    );
    let calls: Vec<String> = emulator
        .requests()
        .split_off(set_up)
        .into_iter()
        .filter(|(service, _)| service == "ecs")
        .map(|(_, action)| action)
        .filter(|action| {
            ["RegisterTaskDefinition", "RunTask", "UpdateService"].contains(&action.as_str())
        })
        .collect();
    assert_eq!(
        calls,
        ["RegisterTaskDefinition", "RunTask", "UpdateService"]
    );
}

/// A one-off task whose essential container exits non-zero fails the step
/// with its exit code and the service is not updated; the summary says
/// what was applied (the revision, the task) and nothing more.
#[test]
fn a_failing_one_off_task_fails_the_step_and_leaves_the_service_alone() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    let run = roll_out(&s, "abc1234")
        .input("run-task", "true")
        .input("wait-for-task-stopped", "true")
        .input(
            "run-task-container-overrides",
            r#"[{"name": "app", "environment": [{"name": "EMULATOR_EXIT_CODE", "value": "3"}]}]"#,
        )
        .run_against(&emulator);
    run.assert_code(1);
    assert!(
        run.stdout.contains("container app exited with code 3"),
        "{}",
        run.stdout
    );
    assert!(
        annotated(&run, "essential container(s) app did not exit 0"),
        "{:?}",
        run.error_annotations()
    );
    assert!(
        annotated(&run, "the service was not updated"),
        "{:?}",
        run.error_annotations()
    );
    let arn = run_task_arn(&run);
    assert!(
        run.stdout
            .contains(&format!("one-off task {arn} ran: failed")),
        "{}",
        run.stdout
    );
    assert!(
        !emulator
            .requests()
            .iter()
            .any(|(_, action)| action == "UpdateService"),
        "the service must not be updated"
    );
    assert_eq!(run.output("rollout-state"), "");
}

/// What ECS would refuse only after the revision is registered is refused
/// first: an override for a container the definition lacks, a managed EBS
/// volume it does not declare.
#[test]
fn one_off_task_and_volume_mistakes_are_refused_before_any_change() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    let set_up = emulator.requests().len();
    let run = roll_out(&s, "abc1234")
        .input("run-task", "true")
        .input(
            "run-task-container-overrides",
            r#"[{"name": "ap", "command": ["x"]}]"#,
        )
        .input("service-managed-ebs-volume-name", "data")
        .input(
            "service-managed-ebs-volume",
            r#"{"roleArn": "arn:aws:iam::123456789012:role/ecs-ebs", "sizeInGiB": 20}"#,
        )
        .run_against(&emulator);
    run.assert_code(2);
    let errors = run.error_annotations().join("\n");
    assert!(errors.contains("run-task-container-overrides"), "{errors}");
    assert!(
        errors.contains("`ap`") || errors.contains("ap "),
        "{errors}"
    );
    assert!(
        errors.contains("service-managed-ebs-volume-name"),
        "{errors}"
    );
    assert!(errors.contains("configuredAtLaunch"), "{errors}");
    let changed: Vec<_> = emulator
        .requests()
        .split_off(set_up)
        .into_iter()
        .filter(|(_, action)| {
            ["RegisterTaskDefinition", "RunTask", "UpdateService"].contains(&action.as_str())
        })
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}

/// `service-managed-ebs-volume*` reach UpdateService for a volume the task
/// definition configures at launch; `keep-null-value-keys` keeps the empty
/// values named, every other empty value leaves the rendered definition.
#[test]
fn managed_ebs_volume_and_kept_empty_values_reach_ecs() {
    let s = setup(serde_json::json!({}));
    let mut document: serde_json::Value =
        serde_json::from_str(&s.ws.read("ecs/task-definition.json")).unwrap();
    document["volumes"] = serde_json::json!([{"name": "data", "configuredAtLaunch": true}]);
    document["containerDefinitions"][0]["hostname"] = serde_json::json!("");
    document["containerDefinitions"][0]["entryPoint"] = serde_json::json!([]);
    s.ws.write("ecs/task-definition.json", &document.to_string());
    let run = roll_out(&s, "abc1234")
        .input("service-managed-ebs-volume-name", "data")
        .input(
            "service-managed-ebs-volume",
            r#"{"roleArn": "arn:aws:iam::123456789012:role/ecs-ebs", "sizeInGiB": 30, "volumeType": "gp3"}"#,
        )
        .input("keep-null-value-keys", "entryPoint")
        .run();
    run.assert_code(0);
    let rendered: serde_json::Value =
        serde_json::from_str(&s.ws.read(run.output("task-definition"))).unwrap();
    let container = &rendered["containerDefinitions"][0];
    assert_eq!(container["entryPoint"], serde_json::json!([]));
    assert!(container.get("hostname").is_none(), "{container}");
    let ecs = aws_sdk_ecs::Client::new(&config());
    let described = block_on(async {
        ecs.describe_services()
            .cluster(&s.cluster)
            .services(&s.service)
            .send()
            .await
            .expect("describe services")
    });
    let primary = described.services()[0]
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .cloned()
        .expect("primary deployment");
    let volume = &primary.volume_configurations()[0];
    assert_eq!(volume.name(), "data");
    assert_eq!(
        volume.managed_ebs_volume().and_then(|v| v.size_in_gib()),
        Some(30)
    );
}

#[test]
fn a_healthy_rollout_costs_at_most_two_calls_a_look() {
    let s = setup(serde_json::json!({}));
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    let run = roll_out(&s, "abc1234").run_at(proxy.endpoint());
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "COMPLETED");
    let calls = proxy.requests();
    let wait = calls_after(&calls, "UpdateService");
    let looks = count_of(wait, "DescribeServices");
    assert!(looks >= 2, "{calls:?}");
    // Nothing went wrong, so each look read one more thing at most: the
    // stopped tasks' list, or those listed (the previous revision's,
    // drained).
    let mut per_look: Vec<usize> = Vec::new();
    for call in wait {
        match (call.action.as_str(), per_look.last_mut()) {
            ("DescribeServices", _) | (_, None) => per_look.push(1),
            (_, Some(count)) => *count += 1,
        }
    }
    assert!(
        per_look.iter().all(|&calls| calls <= 2),
        "{per_look:?}: {calls:?}"
    );
    assert!(
        count_of(wait, "ListTasks") <= looks.div_ceil(2),
        "{calls:?}"
    );
}
