//! The GitHub event that started the run: where the default image tag comes
//! from, and the few payload fields later features read.
//!
//! The payload is the JSON file at `GITHUB_EVENT_PATH`; the caller reads it
//! and passes its text, so everything here is pure. Text from the payload
//! (branch names, workflow names, inputs) is controlled by whoever pushed or
//! dispatched: never print it where the runner could read it as a workflow
//! command without escaping it first.
//!
//! Webhook payload reference:
//! <https://docs.github.com/en/webhooks/webhook-events-and-payloads>.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::taskdef::image::is_valid_tag;

const EVENT_PATH_VARIABLE: &str = "GITHUB_EVENT_PATH";
const REF_VARIABLE: &str = "GITHUB_REF";
const SHA_VARIABLE: &str = "GITHUB_SHA";
const TAG_REF_PREFIX: &str = "refs/tags/";
const WORKFLOW_RUN_EVENT: &str = "workflow_run";
const WORKFLOW_DISPATCH_EVENT: &str = "workflow_dispatch";
const PULL_REQUEST_EVENTS: [&str; 2] = ["pull_request", "pull_request_target"];

/// Suggestion shared by the errors: an explicit tag always works.
const SET_IMAGE_TAG: &str = "or set image-tag explicitly (e.g. image-tag: ${{ github.sha }})";

/// The image tag to deploy when the user gave none, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSource {
    pub tag: String,
    pub source: TagOrigin,
}

/// Where a default image tag was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagOrigin {
    /// `workflow_run.head_sha` of a `workflow_run` event: the commit the
    /// triggering (build) workflow ran on. `GITHUB_SHA` is the default
    /// branch's latest commit there, which is not what was built.
    WorkflowRunHeadSha,
    /// The git tag of `GITHUB_REF` `refs/tags/<tag>` (tag push, release).
    TagPush,
    /// `GITHUB_SHA`, the commit the workflow runs on.
    CommitSha,
}

/// The parts of the event payload later features need. Unknown fields are
/// ignored; only the section belonging to the event is read, so a payload
/// of another shape cannot make it fail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventSummary {
    pub event_name: Option<String>,
    pub workflow_run: Option<WorkflowRunSummary>,
    /// `workflow_dispatch` inputs, each as text (booleans and numbers as
    /// their JSON text, null as empty).
    pub dispatch_inputs: Option<BTreeMap<String, String>>,
    pub pull_request: Option<PullRequestSummary>,
}

/// `workflow_run` of a `workflow_run` event: the run that triggered us.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct WorkflowRunSummary {
    /// The triggering workflow's name.
    pub name: Option<String>,
    /// The event that started the triggering run (`push`, `pull_request`).
    pub event: Option<String>,
    /// `success`, `failure`, ...; null while the run is still going.
    pub conclusion: Option<String>,
    pub head_sha: Option<String>,
    /// Untrusted: for runs from forks it is the contributor's branch name.
    pub head_branch: Option<String>,
    pub head_repository: Option<RepositorySummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct RepositorySummary {
    /// `owner/name`; differs from the base repository for forks.
    pub full_name: Option<String>,
}

/// `pull_request` of a pull request event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PullRequestSummary {
    pub number: Option<u64>,
    pub head: Option<CommitRefSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct CommitRefSummary {
    pub sha: Option<String>,
}

/// Why the default tag or the payload summary could not be had. Messages
/// name the variable, the value and the fix: they reach users as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(
        "{EVENT_PATH_VARIABLE}: the `{event_name}` event needs its payload to find the commit to deploy, but none was read; run inside GitHub Actions, where the runner sets {EVENT_PATH_VARIABLE}, {SET_IMAGE_TAG}"
    )]
    PayloadMissing { event_name: String },

    #[error(
        "{EVENT_PATH_VARIABLE}: the event payload is not valid JSON (line {line}, column {column}: {message}); point {EVENT_PATH_VARIABLE} at the runner's event file, {SET_IMAGE_TAG}"
    )]
    PayloadNotJson {
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "{EVENT_PATH_VARIABLE}: the `{section}` section of the event payload has an unexpected shape ({message}); point {EVENT_PATH_VARIABLE} at the runner's event file, {SET_IMAGE_TAG}"
    )]
    PayloadShape {
        section: &'static str,
        message: String,
    },

    #[error(
        "{EVENT_PATH_VARIABLE}: the workflow_run event payload has no workflow_run.head_sha, so the commit the triggering workflow built is unknown; point {EVENT_PATH_VARIABLE} at the runner's event file, {SET_IMAGE_TAG}"
    )]
    HeadShaMissing,

    #[error(
        "{EVENT_PATH_VARIABLE}: workflow_run.head_sha `{head_sha}` is not usable as an image tag; point {EVENT_PATH_VARIABLE} at the runner's event file, {SET_IMAGE_TAG}"
    )]
    InvalidHeadSha { head_sha: String },

    #[error(
        "{REF_VARIABLE}: the git tag `{tag}` (from `{github_ref}`) is not a valid image tag: image tags are 1 to 128 ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-` (no `/`); name git tags like `v1.2.3`, {SET_IMAGE_TAG}"
    )]
    InvalidTagFromRef { github_ref: String, tag: String },

    #[error(
        "{SHA_VARIABLE} is not set, so there is no commit to tag the image with; run inside GitHub Actions, {SET_IMAGE_TAG}"
    )]
    CommitShaMissing,

    #[error("{SHA_VARIABLE}: `{sha}` is not usable as an image tag; {SET_IMAGE_TAG}")]
    InvalidCommitSha { sha: String },
}

impl TagSource {
    /// One line for the log saying which tag was picked and why.
    pub fn describe(&self) -> String {
        let origin = match self.source {
            TagOrigin::WorkflowRunHeadSha => {
                "the head commit of the workflow run that triggered this one (workflow_run.head_sha)"
            }
            TagOrigin::TagPush => "the pushed git tag (GITHUB_REF refs/tags/...)",
            TagOrigin::CommitSha => "the commit this workflow runs on (GITHUB_SHA)",
        };
        format!(
            "image tag `{}` from {origin}; set image-tag to choose another",
            self.tag
        )
    }
}

/// Picks the image tag to deploy when `image-tag` is not given:
/// 1. a `workflow_run` event deploys what the triggering workflow built,
///    `workflow_run.head_sha` (`GITHUB_SHA` is the default branch there);
/// 2. a tag ref (`refs/tags/v1.2.3`, on tag pushes and releases) deploys
///    the tag, which release pipelines use as the image tag;
/// 3. otherwise `GITHUB_SHA`, which build jobs tag with `${{ github.sha }}`.
pub fn default_image_tag(
    event_name: Option<&str>,
    event_payload: Option<&str>,
    github_ref: Option<&str>,
    github_sha: Option<&str>,
) -> Result<TagSource, EventError> {
    if event_name == Some(WORKFLOW_RUN_EVENT) {
        let Some(payload) = event_payload else {
            return Err(EventError::PayloadMissing {
                event_name: WORKFLOW_RUN_EVENT.to_owned(),
            });
        };
        let summary = summarize(event_name, Some(payload))?;
        let head_sha = summary
            .workflow_run
            .and_then(|run| run.head_sha)
            .filter(|sha| !sha.is_empty())
            .ok_or(EventError::HeadShaMissing)?;
        if !is_valid_tag(&head_sha) {
            return Err(EventError::InvalidHeadSha { head_sha });
        }
        return Ok(TagSource {
            tag: head_sha,
            source: TagOrigin::WorkflowRunHeadSha,
        });
    }
    if let Some(github_ref) = github_ref
        && let Some(tag) = github_ref.strip_prefix(TAG_REF_PREFIX)
    {
        if !is_valid_tag(tag) {
            return Err(EventError::InvalidTagFromRef {
                github_ref: github_ref.to_owned(),
                tag: tag.to_owned(),
            });
        }
        return Ok(TagSource {
            tag: tag.to_owned(),
            source: TagOrigin::TagPush,
        });
    }
    let sha = github_sha
        .map(str::trim)
        .filter(|sha| !sha.is_empty())
        .ok_or(EventError::CommitShaMissing)?;
    if !is_valid_tag(sha) {
        return Err(EventError::InvalidCommitSha {
            sha: sha.to_owned(),
        });
    }
    Ok(TagSource {
        tag: sha.to_owned(),
        source: TagOrigin::CommitSha,
    })
}

/// Reads the parts of the payload that belong to `event_name`. No payload
/// gives a summary with only the event name, because outside Actions (the
/// CLI) there is none and nothing is missing.
pub fn summarize(
    event_name: Option<&str>,
    payload: Option<&str>,
) -> Result<EventSummary, EventError> {
    let mut summary = EventSummary {
        event_name: event_name.map(str::to_owned),
        ..EventSummary::default()
    };
    let (Some(event_name), Some(payload)) = (event_name, payload) else {
        return Ok(summary);
    };
    let mut document: Value =
        serde_json::from_str(payload).map_err(|error| EventError::PayloadNotJson {
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        })?;
    if event_name == WORKFLOW_RUN_EVENT {
        summary.workflow_run = take_section(&mut document, "workflow_run")?;
    } else if event_name == WORKFLOW_DISPATCH_EVENT {
        let inputs: Option<serde_json::Map<String, Value>> = take_section(&mut document, "inputs")?;
        summary.dispatch_inputs = inputs.map(|inputs| {
            inputs
                .into_iter()
                .map(|(name, value)| (name, input_text(value)))
                .collect()
        });
    } else if PULL_REQUEST_EVENTS.contains(&event_name) {
        summary.pull_request = take_section(&mut document, "pull_request")?;
    }
    Ok(summary)
}

/// Deserializes one top-level section; absent or null gives `None`.
fn take_section<T: serde::de::DeserializeOwned>(
    document: &mut Value,
    section: &'static str,
) -> Result<Option<T>, EventError> {
    match document.get_mut(section).map(Value::take) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            serde_json::from_value(value)
                .map(Some)
                .map_err(|error| EventError::PayloadShape {
                    section,
                    message: error.to_string(),
                })
        }
    }
}

/// Dispatch inputs are strings through the API, but a boolean input may
/// arrive as a JSON boolean; keep every value as the text a user would type.
fn input_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD_SHA: &str = "3f786850e387550fdab836ed7e6dc881de23001b";
    const DEFAULT_BRANCH_SHA: &str = "89e6c98d92887913cadf06b2adb97f26cde4849b";

    /// workflow_run `completed` after a successful build on `main`
    /// (trimmed from a real delivery; unrelated fields kept for realism).
    const WORKFLOW_RUN_SUCCESS: &str = r#"{
  "action": "completed",
  "workflow_run": {
    "id": 9876543210,
    "name": "Build image",
    "node_id": "WFR_kwLOJx2b8M8AAAACTL9x2g",
    "head_branch": "main",
    "head_sha": "3f786850e387550fdab836ed7e6dc881de23001b",
    "path": ".github/workflows/build.yml",
    "display_title": "Add health check endpoint",
    "run_number": 142,
    "event": "push",
    "status": "completed",
    "conclusion": "success",
    "workflow_id": 61234567,
    "check_suite_id": 23456789012,
    "url": "https://api.github.com/repos/acme/shop/actions/runs/9876543210",
    "html_url": "https://github.com/acme/shop/actions/runs/9876543210",
    "pull_requests": [],
    "created_at": "2024-05-14T09:12:03Z",
    "updated_at": "2024-05-14T09:15:41Z",
    "run_attempt": 1,
    "run_started_at": "2024-05-14T09:12:03Z",
    "head_commit": {
      "id": "3f786850e387550fdab836ed7e6dc881de23001b",
      "tree_id": "d8329fc1cc938780ffdd9f94e0d364e0ea74f579",
      "message": "Add health check endpoint",
      "timestamp": "2024-05-14T09:11:58Z",
      "author": { "name": "Mona Lisa", "email": "mona@example.com" },
      "committer": { "name": "GitHub", "email": "noreply@github.com" }
    },
    "repository": { "id": 123456789, "name": "shop", "full_name": "acme/shop", "private": true },
    "head_repository": { "id": 123456789, "name": "shop", "full_name": "acme/shop", "private": true }
  },
  "workflow": { "id": 61234567, "name": "Build image", "path": ".github/workflows/build.yml", "state": "active" },
  "repository": { "id": 123456789, "name": "shop", "full_name": "acme/shop", "private": true, "default_branch": "main" },
  "organization": { "login": "acme", "id": 1234567 },
  "sender": { "login": "mona", "id": 583231, "type": "User" }
}"#;

    /// workflow_run `completed` after a failed pull-request build from a fork.
    const WORKFLOW_RUN_FAILURE_FROM_FORK: &str = r#"{
  "action": "completed",
  "workflow_run": {
    "id": 9876543999,
    "name": "Build image",
    "head_branch": "fix/typo",
    "head_sha": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
    "event": "pull_request",
    "status": "completed",
    "conclusion": "failure",
    "pull_requests": [],
    "run_attempt": 2,
    "repository": { "id": 123456789, "full_name": "acme/shop" },
    "head_repository": { "id": 987654321, "full_name": "contributor/shop" }
  },
  "workflow": { "id": 61234567, "name": "Build image" },
  "repository": { "id": 123456789, "full_name": "acme/shop" },
  "sender": { "login": "contributor", "id": 7654321, "type": "User" }
}"#;

    /// push of the tag `v1.2.3`.
    const PUSH_TAG: &str = r#"{
  "ref": "refs/tags/v1.2.3",
  "before": "0000000000000000000000000000000000000000",
  "after": "3f786850e387550fdab836ed7e6dc881de23001b",
  "created": true,
  "deleted": false,
  "forced": false,
  "base_ref": "refs/heads/main",
  "compare": "https://github.com/acme/shop/compare/v1.2.3",
  "commits": [],
  "head_commit": {
    "id": "3f786850e387550fdab836ed7e6dc881de23001b",
    "message": "Add health check endpoint",
    "timestamp": "2024-05-14T09:11:58Z"
  },
  "repository": { "id": 123456789, "full_name": "acme/shop", "default_branch": "main" },
  "pusher": { "name": "mona", "email": "mona@example.com" },
  "sender": { "login": "mona", "id": 583231, "type": "User" }
}"#;

    /// push of two commits to `main`.
    const PUSH_BRANCH: &str = r#"{
  "ref": "refs/heads/main",
  "before": "89e6c98d92887913cadf06b2adb97f26cde4849b",
  "after": "3f786850e387550fdab836ed7e6dc881de23001b",
  "created": false,
  "deleted": false,
  "forced": false,
  "base_ref": null,
  "commits": [
    { "id": "5ba93c9db0cff93f52b521d7420e43f6eda2784f", "message": "Refactor handler", "distinct": true },
    { "id": "3f786850e387550fdab836ed7e6dc881de23001b", "message": "Add health check endpoint", "distinct": true }
  ],
  "head_commit": { "id": "3f786850e387550fdab836ed7e6dc881de23001b", "message": "Add health check endpoint" },
  "repository": { "id": 123456789, "full_name": "acme/shop", "default_branch": "main" },
  "pusher": { "name": "mona", "email": "mona@example.com" },
  "sender": { "login": "mona", "id": 583231, "type": "User" }
}"#;

    /// workflow_dispatch with a string, a choice and a boolean input.
    const WORKFLOW_DISPATCH: &str = r#"{
  "inputs": {
    "environment": "staging",
    "image-tag": "v1.2.3",
    "dry-run": false,
    "note": null
  },
  "ref": "refs/heads/main",
  "repository": { "id": 123456789, "full_name": "acme/shop", "default_branch": "main" },
  "organization": { "login": "acme", "id": 1234567 },
  "sender": { "login": "mona", "id": 583231, "type": "User" },
  "workflow": ".github/workflows/deploy.yml"
}"#;

    /// pull_request `synchronize` (new commits pushed to the PR branch).
    const PULL_REQUEST: &str = r#"{
  "action": "synchronize",
  "number": 42,
  "before": "89e6c98d92887913cadf06b2adb97f26cde4849b",
  "after": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
  "pull_request": {
    "url": "https://api.github.com/repos/acme/shop/pulls/42",
    "id": 1824356789,
    "number": 42,
    "state": "open",
    "locked": false,
    "title": "Add health check endpoint",
    "user": { "login": "mona", "id": 583231 },
    "draft": false,
    "head": {
      "label": "acme:feature/health",
      "ref": "feature/health",
      "sha": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
      "repo": { "id": 123456789, "full_name": "acme/shop" }
    },
    "base": {
      "label": "acme:main",
      "ref": "main",
      "sha": "89e6c98d92887913cadf06b2adb97f26cde4849b",
      "repo": { "id": 123456789, "full_name": "acme/shop" }
    },
    "merged": false,
    "commits": 3
  },
  "repository": { "id": 123456789, "full_name": "acme/shop" },
  "sender": { "login": "mona", "id": 583231, "type": "User" }
}"#;

    #[test]
    fn default_image_tag_picks_the_commit_that_was_built() {
        let cases: [(&str, &str, &str, &str, TagOrigin); 6] = [
            (
                "workflow_run",
                WORKFLOW_RUN_SUCCESS,
                "refs/heads/main",
                HEAD_SHA,
                TagOrigin::WorkflowRunHeadSha,
            ),
            (
                "workflow_run",
                WORKFLOW_RUN_FAILURE_FROM_FORK,
                "refs/heads/main",
                "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
                TagOrigin::WorkflowRunHeadSha,
            ),
            (
                "push",
                PUSH_TAG,
                "refs/tags/v1.2.3",
                "v1.2.3",
                TagOrigin::TagPush,
            ),
            (
                "release",
                "{}",
                "refs/tags/v2.0.0-rc.1",
                "v2.0.0-rc.1",
                TagOrigin::TagPush,
            ),
            (
                "push",
                PUSH_BRANCH,
                "refs/heads/main",
                DEFAULT_BRANCH_SHA,
                TagOrigin::CommitSha,
            ),
            (
                "workflow_dispatch",
                WORKFLOW_DISPATCH,
                "refs/heads/main",
                DEFAULT_BRANCH_SHA,
                TagOrigin::CommitSha,
            ),
        ];
        for (event_name, payload, github_ref, tag, source) in cases {
            // GITHUB_SHA is deliberately another commit: on workflow_run it is
            // the default branch's, which must not win.
            let result = default_image_tag(
                Some(event_name),
                Some(payload),
                Some(github_ref),
                Some(DEFAULT_BRANCH_SHA),
            );
            let expected = TagSource {
                tag: tag.to_owned(),
                source,
            };
            assert_eq!(result, Ok(expected), "{event_name} {github_ref}");
        }
    }

    /// (event name, payload, GITHUB_REF, GITHUB_SHA, start of the message)
    type FailureCase<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );

    #[test]
    fn default_image_tag_explains_what_to_fix() {
        let no_head_sha =
            r#"{"action": "completed", "workflow_run": {"id": 1, "conclusion": "success"}}"#;
        let cases: [FailureCase; 7] = [
            (
                "workflow_run",
                None,
                Some("refs/heads/main"),
                Some(DEFAULT_BRANCH_SHA),
                "GITHUB_EVENT_PATH: the `workflow_run` event needs its payload",
            ),
            (
                "workflow_run",
                Some("not json"),
                Some("refs/heads/main"),
                Some(DEFAULT_BRANCH_SHA),
                "GITHUB_EVENT_PATH: the event payload is not valid JSON (line 1, column 2",
            ),
            (
                "workflow_run",
                Some(no_head_sha),
                None,
                Some(DEFAULT_BRANCH_SHA),
                "GITHUB_EVENT_PATH: the workflow_run event payload has no workflow_run.head_sha",
            ),
            (
                "workflow_run",
                Some(r#"{"workflow_run": {"head_sha": 7}}"#),
                None,
                None,
                "GITHUB_EVENT_PATH: the `workflow_run` section of the event payload has an unexpected shape",
            ),
            (
                "push",
                Some(PUSH_TAG),
                Some("refs/tags/release/1.0"),
                Some(DEFAULT_BRANCH_SHA),
                "GITHUB_REF: the git tag `release/1.0` (from `refs/tags/release/1.0`) is not a valid image tag",
            ),
            (
                "push",
                Some(PUSH_BRANCH),
                Some("refs/heads/main"),
                Some(" "),
                "GITHUB_SHA is not set",
            ),
            (
                "push",
                None,
                None,
                Some("not a/sha"),
                "GITHUB_SHA: `not a/sha` is not usable as an image tag",
            ),
        ];
        for (event_name, payload, github_ref, github_sha, expected) in cases {
            let message = match default_image_tag(Some(event_name), payload, github_ref, github_sha)
            {
                Ok(source) => panic!("{expected}: got {source:?}"),
                Err(error) => error.to_string(),
            };
            assert!(message.starts_with(expected), "{message}");
            assert!(
                message.contains("set image-tag explicitly (e.g. image-tag: ${{ github.sha }})"),
                "{message}"
            );
        }
    }

    #[test]
    fn describe_names_the_source_for_the_log() {
        let cases = [
            (TagOrigin::WorkflowRunHeadSha, "workflow_run.head_sha"),
            (TagOrigin::TagPush, "the pushed git tag"),
            (TagOrigin::CommitSha, "(GITHUB_SHA)"),
        ];
        for (source, expected) in cases {
            let line = TagSource {
                tag: "v1".to_owned(),
                source,
            }
            .describe();
            assert!(line.starts_with("image tag `v1` from "), "{line}");
            assert!(line.contains(expected), "{line}");
        }
    }

    #[test]
    fn summarize_reads_the_section_of_each_event() {
        let run = |conclusion: &str, sha: &str, branch: &str, repository: &str, event: &str| {
            Some(WorkflowRunSummary {
                name: Some("Build image".to_owned()),
                event: Some(event.to_owned()),
                conclusion: Some(conclusion.to_owned()),
                head_sha: Some(sha.to_owned()),
                head_branch: Some(branch.to_owned()),
                head_repository: Some(RepositorySummary {
                    full_name: Some(repository.to_owned()),
                }),
            })
        };
        let inputs: BTreeMap<String, String> = [
            ("environment", "staging"),
            ("image-tag", "v1.2.3"),
            ("dry-run", "false"),
            ("note", ""),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        let summary = |event: &str| EventSummary {
            event_name: Some(event.to_owned()),
            ..EventSummary::default()
        };
        let cases = [
            (
                "workflow_run",
                Some(WORKFLOW_RUN_SUCCESS),
                EventSummary {
                    workflow_run: run("success", HEAD_SHA, "main", "acme/shop", "push"),
                    ..summary("workflow_run")
                },
            ),
            (
                "workflow_run",
                Some(WORKFLOW_RUN_FAILURE_FROM_FORK),
                EventSummary {
                    workflow_run: run(
                        "failure",
                        "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
                        "fix/typo",
                        "contributor/shop",
                        "pull_request",
                    ),
                    ..summary("workflow_run")
                },
            ),
            (
                "workflow_dispatch",
                Some(WORKFLOW_DISPATCH),
                EventSummary {
                    dispatch_inputs: Some(inputs),
                    ..summary("workflow_dispatch")
                },
            ),
            (
                "pull_request",
                Some(PULL_REQUEST),
                EventSummary {
                    pull_request: Some(PullRequestSummary {
                        number: Some(42),
                        head: Some(CommitRefSummary {
                            sha: Some("a94a8fe5ccb19ba61c4c0873d391e987982fbbd3".to_owned()),
                        }),
                    }),
                    ..summary("pull_request")
                },
            ),
            ("push", Some(PUSH_TAG), summary("push")),
            ("push", Some(PUSH_BRANCH), summary("push")),
            ("push", None, summary("push")),
        ];
        for (event_name, payload, expected) in cases {
            assert_eq!(
                summarize(Some(event_name), payload),
                Ok(expected),
                "{event_name}"
            );
        }
    }

    #[test]
    fn summarize_tolerates_nulls_and_rejects_wrong_shapes() {
        let cases: [(&str, &str, Result<bool, &str>); 4] = [
            // A run still in progress has a null conclusion.
            (
                "workflow_run",
                r#"{"workflow_run": {"head_sha": "abc", "conclusion": null, "extra": [1]}}"#,
                Ok(true),
            ),
            ("workflow_dispatch", r#"{"inputs": null}"#, Ok(false)),
            (
                "pull_request",
                r#"{"pull_request": {"number": "42"}}"#,
                Err(
                    "GITHUB_EVENT_PATH: the `pull_request` section of the event payload has an unexpected shape",
                ),
            ),
            (
                "workflow_dispatch",
                "{\"inputs\": ",
                Err("GITHUB_EVENT_PATH: the event payload is not valid JSON"),
            ),
        ];
        for (event_name, payload, expected) in cases {
            let result = summarize(Some(event_name), Some(payload));
            match (result, expected) {
                (Ok(summary), Ok(has_section)) => assert_eq!(
                    summary.workflow_run.is_some() || summary.dispatch_inputs.is_some(),
                    has_section,
                    "{payload}"
                ),
                (Err(error), Err(expected)) => {
                    let message = error.to_string();
                    assert!(message.starts_with(expected), "{message}");
                }
                (actual, expected) => panic!("{payload}: {actual:?} vs {expected:?}"),
            }
        }
    }
}
