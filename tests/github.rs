//! The GitHub side, against a local HTTP server standing in for the GitHub
//! REST API: deployments with their statuses, workflow_dispatch of the next
//! workflows with inputs taken from this run's outputs, and the pull request
//! comment of a planned change set. Each test asserts the exact calls,
//! including after a dispatch whose answer is lost.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::deploy::{QUEUE_TEMPLATE, failing_template};
use crate::util::{ActionRun, Emulator, Workspace, unique_name};

/// One request the fake API received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) authorization: String,
    pub(crate) body: serde_json::Value,
}

/// A fake GitHub API: answers by route, records every request (the proxy
/// tests reuse it).
pub(crate) struct FakeGithub {
    pub(crate) url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeGithub {
    /// `dispatch_status` is what workflow_dispatch answers (204 accepts).
    pub(crate) fn start(dispatch_status: u16) -> Self {
        Self::start_with(dispatch_status, false)
    }

    /// Carries out every workflow_dispatch (its run shows in the runs list)
    /// but answers 502, as when GitHub's answer is lost on the way.
    fn start_losing_dispatch_answers() -> Self {
        Self::start_with(204, true)
    }

    fn start_with(dispatch_status: u16, lose_dispatch_answers: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake GitHub API");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let mut length = 0;
                let mut authorization = String::new();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap_or_default();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "authorization" => authorization = value.trim().to_string(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let body: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let dispatched = recorded
                    .lock()
                    .expect("lock")
                    .iter()
                    .any(|r| r.method == "POST" && r.path.ends_with("/dispatches"));
                let (status, answer) = match route(&method, &path, dispatch_status, dispatched) {
                    (204, _) if lose_dispatch_answers && path.ends_with("/dispatches") => {
                        (502, serde_json::json!({"message": "Server Error"}))
                    }
                    answer => answer,
                };
                recorded.lock().expect("lock").push(Recorded {
                    method,
                    path,
                    authorization,
                    body,
                });
                let text = answer.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    if status == 204 { 0 } else { text.len() },
                    if status == 204 { "" } else { &text }
                );
            }
        });
        Self { url, requests }
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

/// The answers GitHub's REST API gives, by route. `dispatched`: a
/// workflow_dispatch was carried out, so its run is listed.
fn route(
    method: &str,
    path: &str,
    dispatch_status: u16,
    dispatched: bool,
) -> (u16, serde_json::Value) {
    match (method, path) {
        ("GET", p) if p.starts_with("/repos/acme/shop/actions/workflows/deploy-alb.yml/runs?") => {
            let runs: Vec<serde_json::Value> = if dispatched {
                vec![serde_json::json!({
                    "id": 501,
                    "event": "workflow_dispatch",
                    "head_branch": "main",
                    "created_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                    "html_url": "https://github.com/acme/shop/actions/runs/501"
                })]
            } else {
                Vec::new()
            };
            (
                200,
                serde_json::json!({"total_count": runs.len(), "workflow_runs": runs}),
            )
        }
        ("POST", p) if p.ends_with("/dispatches") => match dispatch_status {
            204 => (204, serde_json::Value::Null),
            status => (
                status,
                serde_json::json!({"message": "Resource not accessible by integration"}),
            ),
        },
        ("POST", "/repos/acme/shop/deployments") => {
            (201, serde_json::json!({"id": 42, "environment": "prod"}))
        }
        ("POST", p) if p.starts_with("/repos/acme/shop/deployments/42/statuses") => {
            (201, serde_json::json!({"id": 1, "state": "success"}))
        }
        ("GET", p) if p.starts_with("/repos/acme/shop/issues/7/comments") => {
            (200, serde_json::json!([]))
        }
        ("POST", "/repos/acme/shop/issues/7/comments") => {
            (201, serde_json::json!({"id": 99, "body": ""}))
        }
        _ => (404, serde_json::json!({"message": "Not Found"})),
    }
}

pub(crate) fn with_github<'a>(run: ActionRun<'a>, github: &FakeGithub) -> ActionRun<'a> {
    run.env("GITHUB_API_URL", &github.url)
        .env("GITHUB_SERVER_URL", "https://github.com")
        .input("github-token", "ghs_testtoken123")
}

#[test]
fn deployment_is_recorded_and_downstream_workflows_are_dispatched() {
    let github = FakeGithub::start(204);
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    let run = with_github(
        ActionRun::new(&ws)
            .input("name", &unique_name("gh"))
            .input("template", "stack.yml")
            .input("parameter-overrides", "Env=prod")
            .input("environment", "prod")
            .input("environment-url-output", "QueueUrl")
            .input("dispatch-workflows", "deploy-alb.yml")
            .input(
                "dispatch-inputs",
                "queue: '{{ outputs.QueueUrl }}'\nstage: prod",
            ),
        &github,
    )
    .run();
    run.assert_code(0);
    let queue_url = run.output("QueueUrl").to_string();
    let calls: Vec<(String, String)> = github
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                "POST".to_string(),
                "/repos/acme/shop/deployments".to_string()
            ),
            (
                "POST".to_string(),
                "/repos/acme/shop/deployments/42/statuses".to_string()
            ),
            (
                "POST".to_string(),
                "/repos/acme/shop/actions/workflows/deploy-alb.yml/dispatches".to_string()
            ),
            (
                "POST".to_string(),
                "/repos/acme/shop/deployments/42/statuses".to_string()
            ),
        ]
    );
    let requests = github.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.ends_with("ghs_testtoken123")),
        "{requests:?}"
    );
    assert_eq!(
        requests[0].body["ref"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(requests[0].body["environment"], "prod");
    assert_eq!(requests[0].body["auto_merge"], false);
    assert_eq!(requests[1].body["state"], "in_progress");
    assert_eq!(
        requests[2].body,
        serde_json::json!({"ref": "refs/heads/main", "inputs": {"queue": queue_url, "stage": "prod"}})
    );
    assert_eq!(requests[3].body["state"], "success");
    assert_eq!(requests[3].body["environment_url"], queue_url);
    assert_eq!(
        run.output("dispatched-workflows"),
        r#"[{"workflow":"deploy-alb.yml","ref":"refs/heads/main"}]"#
    );
    assert_eq!(run.output("deployment-url"), queue_url);
    for line in run
        .stdout
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
    {
        assert!(
            !line.contains("ghs_testtoken123"),
            "the token leaked: {line}"
        );
    }
}

#[test]
fn failed_deploy_marks_the_deployment_failed_with_the_root_cause() {
    let github = FakeGithub::start(204);
    let ws = Workspace::new();
    ws.write("fail.yml", &failing_template("Queue quota exceeded"));
    let stack = unique_name("ghfail");
    let run = with_github(
        ActionRun::new(&ws)
            .input("name", &stack)
            .input("template", "fail.yml")
            .input("environment", "prod")
            .input("dispatch-workflows", "deploy-alb.yml"),
        &github,
    )
    .run();
    run.assert_code(1);
    Emulator::shared().assert_no_change_set_left(&stack);
    let requests = github.requests();
    assert!(
        !requests.iter().any(|r| r.path.ends_with("/dispatches")),
        "nothing downstream is triggered after a failure"
    );
    let last = requests.last().expect("a final status");
    assert_eq!(last.body["state"], "failure");
    assert!(
        last.body["description"]
            .as_str()
            .unwrap_or_default()
            .contains("Queue quota exceeded"),
        "{:?}",
        last.body
    );
}

#[test]
fn a_rejected_dispatch_names_the_permission() {
    let github = FakeGithub::start(403);
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    let stack = unique_name("gh403");
    let run = with_github(
        ActionRun::new(&ws)
            .input("name", &stack)
            .input("template", "stack.yml")
            .input("parameter-overrides", "Env=a")
            .input("dispatch-workflows", "deploy-alb.yml"),
        &github,
    )
    .run();
    run.assert_code(1);
    Emulator::shared().assert_no_change_set_left(&stack);
    assert!(
        run.error_annotations()
            .iter()
            .any(|l| l.contains("actions: write")),
        "{}",
        run.stdout
    );
}

#[test]
fn a_planned_change_set_is_commented_on_the_pull_request() {
    let github = FakeGithub::start(204);
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    let stack = unique_name("ghpr");
    let run = with_github(
        ActionRun::new(&ws)
            .event(
                "pull_request",
                serde_json::json!({"action": "opened", "number": 7, "pull_request": {"number": 7, "head": {"sha": "abc"}}}),
            )
            .input("name", &stack)
            .input("template", "stack.yml")
            .input("parameter-overrides", "Env=a")
            .input("no-execute-changeset", "true"),
        &github,
    )
    .run();
    run.assert_code(0);
    let requests = github.requests();
    let posted = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/repos/acme/shop/issues/7/comments")
        .unwrap_or_else(|| panic!("no comment posted: {requests:?}"));
    let body = posted.body["body"].as_str().unwrap_or_default();
    assert!(
        body.starts_with(&format!("<!-- ecs-stack-deploy:{stack} -->")),
        "{body}"
    );
    assert!(body.contains("| Add | `Queue` |"), "{body}");
}

#[test]
fn a_dispatch_whose_answer_is_lost_is_confirmed_from_the_runs_list_and_sent_once() {
    let github = FakeGithub::start_losing_dispatch_answers();
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    let run = with_github(
        ActionRun::new(&ws)
            .input("name", &unique_name("gh502"))
            .input("template", "stack.yml")
            .input("parameter-overrides", "Env=a")
            .input("dispatch-workflows", "deploy-alb.yml"),
        &github,
    )
    .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("so it was not sent again"),
        "the log says why the 502 did not fail the step:\n{}",
        run.stdout
    );
    let requests = github.requests();
    let dispatches = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/dispatches"))
        .count();
    assert_eq!(dispatches, 1, "{requests:?}");
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "GET"], "{requests:?}");
    assert!(
        requests[1].path.starts_with(
            "/repos/acme/shop/actions/workflows/deploy-alb.yml/runs?event=workflow_dispatch&branch=main&created=%3E%3D"
        ),
        "{}",
        requests[1].path
    );
    assert_eq!(
        run.output("dispatched-workflows"),
        r#"[{"workflow":"deploy-alb.yml","ref":"refs/heads/main"}]"#
    );
}
