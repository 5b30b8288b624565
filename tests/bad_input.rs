//! Bad input, table-driven, through the real binary: every case exits 2 with
//! an `::error::` naming the input, writes no outputs, and makes no AWS call
//! that changes anything (checked on a private emulator's request log).

use crate::deploy::QUEUE_TEMPLATE;
use crate::util::{ActionRun, Emulator, Workspace};

/// Whether an AWS action only reads.
fn is_read_only(action: &str) -> bool {
    [
        "Describe", "List", "Get", "BatchGet", "Validate", "Head", "Simulate",
    ]
    .iter()
    .any(|prefix| action.starts_with(prefix))
}

/// A workspace holding every file the cases refer to.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    ws.write(
        "broken.yml",
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n   Properties: [\n",
    );
    ws.write(
        "big.yml",
        &format!("{QUEUE_TEMPLATE}\n{}\n", "#".repeat(60_000)),
    );
    ws.write("noresources.yml", "Parameters:\n  A:\n    Type: String\n");
    let nested = |url: &str| {
        format!(
            "Resources:\n  Child:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: {url}\n"
        )
    };
    ws.write("nested-local.yml", &nested("stack.yml"));
    ws.write("nested-missing.yml", &nested("nested/gone.yml"));
    ws.write("nested-outside.yml", &nested("../../etc/hostname"));
    ws.write("list.json", "[1, 2]");
    ws.write("bad-params.json", "{\"Env\": ");
    ws.write("null-params.json", "{\"Env\": null}");
    ws.write(
        "dup-params.json",
        r#"[{"ParameterKey": "Env", "ParameterValue": "a"}, {"ParameterKey": "Env", "ParameterValue": "b"}]"#,
    );
    ws.write(
        "td.json",
        r#"{"family": "web", "containerDefinitions": [{"name": "app", "image": "web:v1"}]}"#,
    );
    ws.write(
        "td-broken.json",
        r#"{"family": "web", "containerDefinitions": [{"name": "app",}]}"#,
    );
    ws.write(
        "td-shape.json",
        r#"{"family": "web", "containerDefinitions": "app"}"#,
    );
    ws.write("event.json", "this is not JSON");
    ws
}

#[test]
fn bad_inputs_exit_2_name_the_input_and_change_nothing() {
    let emulator = Emulator::private();
    let ws = workspace();
    let stack: &[(&str, &str)] = &[
        ("name", "bad-input-stack"),
        ("template", "stack.yml"),
        ("parameter-overrides", "Env=a"),
    ];
    let service: &[(&str, &str)] = &[("task-definition", "td.json"), ("container-name", "app")];
    // (inputs on top of a base, environment overrides, the input the error names)
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            stack,
            &[("disable-rollback", "yes")],
            &[],
            "disable-rollback",
        ),
        (
            stack,
            &[("no-execute-changeset", "on")],
            &[],
            "no-execute-changeset",
        ),
        (
            stack,
            &[("fail-on-empty-changeset", "on")],
            &[],
            "fail-on-empty-changeset",
        ),
        (
            stack,
            &[("termination-protection", "Y")],
            &[],
            "termination-protection",
        ),
        (
            stack,
            &[("no-delete-failed-changeset", "tru")],
            &[],
            "no-delete-failed-changeset",
        ),
        (
            stack,
            &[("cancel-on-abort", "maybe")],
            &[],
            "cancel-on-abort",
        ),
        (
            stack,
            &[("capabilities", "CAPABILITY_ROOT")],
            &[],
            "capabilities",
        ),
        (stack, &[("template", "missing.yml")], &[], "template"),
        (stack, &[("template", "ftp://host/t.yml")], &[], "template"),
        (stack, &[("template", "broken.yml")], &[], "template"),
        (stack, &[("template", "big.yml")], &[], "template"),
        (stack, &[("template", "noresources.yml")], &[], "template"),
        (stack, &[("template", "list.json")], &[], "template"),
        (
            stack,
            &[("parameter-overrides", "Env")],
            &[],
            "parameter-overrides",
        ),
        (
            stack,
            &[("parameter-overrides", "Env=\"a")],
            &[],
            "parameter-overrides",
        ),
        (
            stack,
            &[("parameter-overrides", "file://nope.json")],
            &[],
            "parameter-overrides",
        ),
        (
            stack,
            &[("parameter-overrides", "file://bad-params.json")],
            &[],
            "parameter-overrides",
        ),
        (
            stack,
            &[("parameter-overrides", "file://null-params.json")],
            &[],
            "parameter-overrides",
        ),
        (
            stack,
            // Inline, a repeated key is a list (`Env=a,b`); a file has no
            // list form, so a key given twice there is refused.
            &[("parameter-overrides", "dup-params.json")],
            &[],
            "parameter-overrides",
        ),
        (
            stack,
            &[("parameter-overrides", "Env=a,Colour=blue")],
            &[],
            "parameter-overrides",
        ),
        (
            stack,
            &[("parameter-overrides", "Retention=1")],
            &[],
            "parameter-overrides",
        ),
        (stack, &[("tags", "{not json")], &[], "tags"),
        (stack, &[("tags", r#"[{"Key":"a"}]"#)], &[], "tags"),
        (stack, &[("tags", r#"{"aws:owner":"x"}"#)], &[], "tags"),
        (stack, &[("name", "1-bad")], &[], "name"),
        (stack, &[("stack-name", "other")], &[], "stack-name"),
        (
            stack,
            &[("change-set-name", "has_underscore")],
            &[],
            "change-set-name",
        ),
        (stack, &[("wait-timeout", "30")], &[], "wait-timeout"),
        (stack, &[("wait-timeout", "soon")], &[], "wait-timeout"),
        (
            stack,
            &[("timeout-in-minutes", "0")],
            &[],
            "timeout-in-minutes",
        ),
        (
            stack,
            &[("notification-arns", "not-an-arn")],
            &[],
            "notification-arns",
        ),
        (stack, &[("role-arn", "admin")], &[], "role-arn"),
        (stack, &[("aws-region", "US_EAST_1")], &[], "aws-region"),
        (stack, &[("max-retries", "lots")], &[], "max-retries"),
        (stack, &[("max-retries", "-1")], &[], "max-retries"),
        (stack, &[("max-retries", "50")], &[], "max-retries"),
        (stack, &[("retry-mode", "legacy")], &[], "retry-mode"),
        (stack, &[("image", "nginx")], &[], "image"),
        (
            stack,
            &[("image", "registry.example.com/web:latest")],
            &[],
            "image",
        ),
        (
            stack,
            &[("image", "registry.example.com/Web:v1")],
            &[],
            "image",
        ),
        (
            stack,
            &[("image-repository", "registry.example.com/web:v1")],
            &[],
            "image-repository",
        ),
        (
            stack,
            &[("image", "web:v1"), ("image-repository", "web")],
            &[],
            "image",
        ),
        (
            stack,
            &[("image", "web:v1"), ("image-parameter", "NoSuchParameter")],
            &[],
            "image-parameter",
        ),
        (stack, &[("mutable-tags", "[bad")], &[], "mutable-tags"),
        (
            stack,
            &[("parameters-from-stacks", "Vpc=net")],
            &[],
            "parameters-from-stacks",
        ),
        (
            stack,
            &[("parameters-from-stacks", "never-deployed")],
            &[],
            "parameters-from-stacks",
        ),
        (
            stack,
            &[("on-upstream-failure", "ignore")],
            &[],
            "on-upstream-failure",
        ),
        (
            stack,
            &[("allow-fork-runs", "maybe")],
            &[],
            "allow-fork-runs",
        ),
        (
            stack,
            &[("dispatch-workflows", "deploy-alb.yml")],
            &[],
            "github-token",
        ),
        (stack, &[("environment", "prod")], &[], "github-token"),
        (
            stack,
            &[
                ("github-token", "ghs_testtoken123"),
                ("dispatch-workflows", "next.yml"),
                ("dispatch-inputs", "[1, 2]"),
            ],
            &[],
            "dispatch-inputs",
        ),
        (stack, &[("dispatch-ref", "main")], &[], "dispatch-ref"),
        (
            stack,
            &[("environment-url-output", "QueueUrl")],
            &[],
            "environment-url-output",
        ),
        (
            stack,
            &[
                ("github-token", "ghs_testtoken123"),
                ("environment", "prod"),
                ("environment-url-output", "QueueUri"),
            ],
            &[],
            "environment-url-output",
        ),
        // Filled after the deploy, so checked before it: an output the
        // template does not declare, a reference of another kind, a stack
        // output on a deploy without a stack.
        (
            stack,
            &[
                ("github-token", "ghs_testtoken123"),
                ("dispatch-workflows", "next.yml"),
                ("dispatch-inputs", "queue: '{{ outputs.QueueUri }}'"),
            ],
            &[],
            "dispatch-inputs",
        ),
        (
            stack,
            &[
                ("github-token", "ghs_testtoken123"),
                ("dispatch-workflows", "next.yml"),
                ("dispatch-inputs", "token: '{{ secrets.TOKEN }}'"),
            ],
            &[],
            "dispatch-inputs",
        ),
        (
            service,
            &[
                ("image", "web:v2"),
                ("github-token", "ghs_testtoken123"),
                ("dispatch-workflows", "next.yml"),
                ("dispatch-inputs", "queue: '{{ outputs.QueueUrl }}'"),
            ],
            &[],
            "dispatch-inputs",
        ),
        (
            stack,
            &[("image-repository", "registry.example.com/web")],
            &[
                ("GITHUB_EVENT_NAME", "workflow_run"),
                ("GITHUB_EVENT_PATH", "event.json"),
            ],
            "image-tag",
        ),
        (stack, &[], &[("GITHUB_OUTPUT", "")], "GITHUB_OUTPUT"),
        (
            stack,
            &[],
            &[("GITHUB_OUTPUT", "/proc/no-such-dir/output")],
            "GITHUB_OUTPUT",
        ),
        (stack, &[], &[("AWS_REGION", "")], "aws-region"),
        (
            service,
            &[("task-definition", "td-broken.json")],
            &[],
            "task-definition",
        ),
        (
            service,
            &[("task-definition", "td-shape.json"), ("image", "web:v2")],
            &[],
            "task-definition",
        ),
        (
            service,
            &[("container-name", "nope"), ("image", "web:v2")],
            &[],
            "container-name",
        ),
        (
            service,
            &[("task-definition-arn", "web:1")],
            &[],
            "task-definition",
        ),
        (service, &[("images", "app")], &[], "images"),
        (service, &[("images", "app=web:latest")], &[], "images"),
        (
            &[("task-definition", "td.json")],
            &[("environment-variables", "A=1")],
            &[],
            "environment-variables",
        ),
        (
            service,
            &[("environment-variables", "1BAD=x")],
            &[],
            "environment-variables",
        ),
        (service, &[("desired-count", "-1")], &[], "desired-count"),
        (
            service,
            &[("wait-for-minutes", "0")],
            &[],
            "wait-for-minutes",
        ),
        (
            service,
            &[("force-new-deployment", "sure")],
            &[],
            "force-new-deployment",
        ),
        (
            &[("task-definition-family", "web")],
            &[("task-definition-revision", "x")],
            &[],
            "task-definition-revision",
        ),
        (
            service,
            &[("image", "web:v2"), ("service", "no-such-service")],
            &[],
            "cluster",
        ),
        (
            &[("name", "bad-input-stack")],
            &[
                ("mode", "execute-only"),
                ("execute-change-set-id", "never-created-CS"),
            ],
            &[],
            "execute-change-set-id",
        ),
        (
            stack,
            &[("mode", "execute-only"), ("execute-change-set-id", "x-CS")],
            &[],
            "template",
        ),
        (stack, &[("mode", "apply")], &[], "mode"),
        (
            stack,
            &[("deployment-mode", "IGNORE_DRIFT")],
            &[],
            "deployment-mode",
        ),
        // The bucket is looked at (HeadBucket) before anything changes.
        (
            stack,
            &[
                ("template", "big.yml"),
                ("s3-bucket", "no-such-bucket-here"),
            ],
            &[],
            "s3-bucket",
        ),
        (stack, &[("s3-bucket", "s3://deploys")], &[], "s3-bucket"),
        // Packaging: local files need a bucket; each must exist inside the
        // workspace (checked before the bucket is looked at).
        (stack, &[("template", "nested-local.yml")], &[], "template"),
        (
            stack,
            &[("template", "nested-missing.yml"), ("s3-bucket", "deploys")],
            &[],
            "template",
        ),
        (
            stack,
            &[("template", "nested-outside.yml"), ("s3-bucket", "deploys")],
            &[],
            "template",
        ),
        (stack, &[("s3-prefix", "cfn")], &[], "s3-prefix"),
        // A proxy that cannot be used is refused before any AWS call, from
        // the input or from the variable it stands in for.
        (stack, &[("http-proxy", "ftp://x")], &[], "http-proxy"),
        (stack, &[], &[("HTTPS_PROXY", "ftp://x")], "http-proxy"),
        (
            service,
            &[("log-configuration-log-driver", "stdout")],
            &[],
            "log-configuration-log-driver",
        ),
        (
            service,
            &[("env-files", "s3://config/prod.env")],
            &[],
            "env-files",
        ),
        (
            &[("task-definition", "td.json")],
            &[("secrets", "DB=arn:aws:ssm:us-east-1:1:parameter/db")],
            &[],
            "secrets",
        ),
        // Inputs action.yml does not declare are refused, not ignored: the
        // runner only warns about them and passes them on.
        (
            stack,
            &[("no_execute_changeset", "true")],
            &[],
            "no_execute_changeset",
        ),
        (
            service,
            &[("containr-name", "app"), ("image", "web:v2")],
            &[],
            "containr-name",
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for (base, inputs, env, named) in &cases {
        let mut run = ActionRun::new(&ws).binary();
        for (name, value) in base.iter().chain(inputs.iter()) {
            // Later inputs replace earlier ones of the same name.
            run = run.input(name, value);
        }
        for (name, value) in *env {
            run = run.env(name, value);
        }
        let run = run.run_against(&emulator);
        let label = format!("{inputs:?} {env:?}");
        assert_eq!(run.code, 2, "{label}: exit code\n{}", run.stdout);
        let errors = run.error_annotations();
        assert!(
            errors.iter().any(|l| l.contains(&format!("`{named}`"))),
            "{label}: no error names `{named}`:\n{}",
            run.stdout
        );
        assert!(run.outputs.is_empty(), "{label}: outputs were written");
        let mutating: Vec<_> = emulator
            .requests()
            .into_iter()
            .filter(|(_, action)| !is_read_only(action))
            .collect();
        assert!(mutating.is_empty(), "{label}: changed AWS: {mutating:?}");
    }
}
