//! The GitHub REST API calls the action makes: dispatching the next
//! workflow of a chain, recording deployments in the repository's
//! Environments, and keeping one pull-request comment per stack up to date.
//!
//! Everything goes through one [`GithubApi`], built from the token, the API
//! base URL (`GITHUB_API_URL`, so GitHub Enterprise Server and the tests'
//! local server work the same way) and `owner/name`. Every failure becomes a
//! [`GithubError`] that says which input or job permission to fix and quotes
//! GitHub's own message, because "HTTP 403" alone sends users searching.
//!
//! # Retries
//!
//! octocrab's own retry is off (no `retry` feature): it re-sends any request
//! after a 5xx or a lost answer, and a workflow dispatch that GitHub carried
//! out but whose answer was lost would start a second downstream run.
//! Instead:
//!
//! - Reads (GET) are repeated up to [`READ_ATTEMPTS`] times, with a short
//!   backoff, after a 5xx or a connection failure: they change nothing.
//! - Creates (dispatch, deployment, deployment status, comment) are sent once.
//!   A 4xx is a definite refusal and is reported as it is. After an ambiguous
//!   failure (a 5xx, a dropped connection, a timeout: GitHub may or may not
//!   have done it) the client looks on GitHub for what the call would have
//!   made, created since just before it was sent. Found: the call counts as
//!   done. Not found: it is sent once more, and a second ambiguous failure is
//!   a [`GithubError::Uncertain`] that says what may or may not have happened.
//!   Each such recovery is kept for [`GithubApi::take_recoveries`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hyper::Uri;
use octocrab::{FromResponse, Octocrab, Page};
use serde::{Deserialize, Serialize};

use super::transport::{Timeouts, TransportError, github_client, proxy_route};
use crate::proxy::ProxySettings;

/// How long to wait for a TCP/TLS connection to the API. A hung connection
/// must fail the step with a message instead of running into the job timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for a response once connected.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// GitHub rejects a deployment status description longer than this.
/// <https://docs.github.com/en/rest/deployments/statuses#create-a-deployment-status>
pub const MAX_DEPLOYMENT_STATUS_DESCRIPTION_CHARS: usize = 140;

/// GitHub rejects a comment body longer than this ("body is too long
/// (maximum is 65536 characters)").
pub const MAX_COMMENT_CHARS: usize = 65_536;

/// Appended to a comment cut to fit [`MAX_COMMENT_CHARS`]. The blank line
/// first ends any Markdown table the cut happened inside.
const COMMENT_TRUNCATED_NOTICE: &str = "\n\n> **Note:** this comment was truncated to fit GitHub's 65536-character comment limit; see the workflow run's job summary for the full details.\n";

/// Closes a code fence the truncation cut open, so the notice is not
/// swallowed into the code block.
const CLOSING_CODE_FENCE: &str = "\n```";

/// A pull request with more comment pages than this is not searched further
/// and gets a fresh comment; it also stops a misbehaving server that keeps
/// answering with a `next` link from looping forever.
const MAX_COMMENT_PAGES: usize = 100;

/// How many times a read (GET) is sent when it fails with a 5xx or a
/// connection error. Reads change nothing, so repeating them is safe.
const READ_ATTEMPTS: u32 = 3;

/// The wait before the second read attempt, doubled before each later one:
/// long enough for a load balancer's hiccup to pass, short enough not to
/// matter next to a deploy.
const READ_RETRY_DELAY: Duration = Duration::from_millis(500);

/// The wait before looking whether a create whose answer was lost took
/// effect: the 502 may come from a proxy while GitHub is still finishing
/// the request behind it.
const CONFIRM_DELAY: Duration = Duration::from_secs(5);

/// A dispatched run shows in the runs list a few seconds after GitHub
/// accepts the dispatch, so after a lost answer the list is read this many
/// times, [`CONFIRM_DELAY`] apart, before the dispatch is sent again.
const DISPATCH_LOOKS: u32 = 3;

/// How much earlier than our clock, taken just before sending, GitHub's
/// `created_at` may be and still count as made by this call: the runner's
/// clock and GitHub's differ by a little, and `created_at` has whole seconds.
const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// Runs, deployments or statuses read per look; what a call made in the
/// last few seconds is on the first page, newest first.
const LOOK_PAGE_SIZE: u32 = 100;

/// A client for the GitHub REST API, scoped to one repository.
///
/// `Debug` shows the API URL and repository only: the token must never reach
/// a log line or an error message.
pub struct GithubApi {
    client: Octocrab,
    /// How the API is reached when through a proxy ("through the proxy
    /// ..."), said when it cannot be reached.
    route: Option<String>,
    api_url: String,
    owner: String,
    repo: String,
    delays: Delays,
    recoveries: Mutex<Vec<Recovery>>,
}

/// The waits between attempts; the tests shorten them.
#[derive(Debug, Clone, Copy)]
struct Delays {
    read_retry: Duration,
    confirm: Duration,
}

/// A create-type call whose first answer was ambiguous and which then
/// succeeded, found by [`GithubApi::take_recoveries`]. The call itself
/// returned `Ok`: this is for the log, so a reader knows why there was a
/// second request or why a 502 did not fail the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The call, as in error messages: "dispatching workflow `x` on ref ...".
    pub action: String,
    /// The ambiguous failure, e.g. "GitHub answered HTTP 502: Bad Gateway".
    pub failure: String,
    pub outcome: RecoveryOutcome,
}

/// How a [`Recovery`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// GitHub had done it; `evidence` names what was found (a run, a
    /// deployment, a status or a comment). Nothing was sent again.
    ConfirmedDone { evidence: String },
    /// Nothing of it showed on GitHub, so it was sent once more, and that
    /// succeeded.
    SentAgain,
}

impl fmt::Display for Recovery {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            RecoveryOutcome::ConfirmedDone { evidence } => write!(
                formatter,
                "{}: {}, but {evidence} shows it was done, so it was not sent again",
                self.action, self.failure
            ),
            RecoveryOutcome::SentAgain => write!(
                formatter,
                "{}: {}, and nothing of it showed on GitHub, so it was sent once more",
                self.action, self.failure
            ),
        }
    }
}

impl fmt::Debug for GithubApi {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("GithubApi")
            .field("api_url", &self.api_url)
            .field("repository", &format_args!("{}/{}", self.owner, self.repo))
            .field("token", &"[redacted]")
            .finish()
    }
}

/// The state a deployment status reports; serialised as GitHub spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    InProgress,
    Success,
    Failure,
    Error,
}

impl DeploymentState {
    /// The name GitHub uses, as in a listed status's `state`.
    fn github_name(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Error => "error",
        }
    }
}

/// What [`GithubApi::upsert_pull_request_comment`] did, with the comment id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentAction {
    Created(u64),
    Updated(u64),
}

/// Why a GitHub API call failed, phrased as what the user should change.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("github-token is missing or invalid; pass `github-token: ${{{{ github.token }}}}`")]
    MissingToken,

    #[error(
        "github-token is missing or invalid; pass `github-token: ${{{{ github.token }}}}` (GitHub said: {github_message})"
    )]
    InvalidToken { github_message: String },

    #[error("GITHUB_REPOSITORY `{repository}` is not of the form owner/name")]
    InvalidRepository { repository: String },

    #[error(
        "GITHUB_API_URL `{api_url}` is not a usable http(s) URL ({reason}); leave it unset on github.com, or set it to your GitHub Enterprise Server API, e.g. https://github.example.com/api/v3"
    )]
    InvalidApiUrl { api_url: String, reason: String },

    /// The client itself could not be built (its TLS configuration, or a
    /// proxy its rules would not take).
    #[error("the GitHub API client cannot be set up: {reason}")]
    Unusable { reason: String },

    #[error("{action} failed with HTTP {status}: {github_message}; {fix}")]
    Rejected {
        action: String,
        status: u16,
        github_message: String,
        fix: String,
    },

    #[error(
        "{action} hit the GitHub API rate limit (GitHub said: {github_message}); wait for the limit to reset and re-run the job"
    )]
    RateLimited {
        action: String,
        github_message: String,
    },

    #[error("could not reach the GitHub API at {api_url} for {action}: {reason}")]
    Unreachable {
        api_url: String,
        action: String,
        reason: String,
    },

    #[error(
        "{action} got a response from {api_url} that is not what GitHub documents ({reason}); check that GITHUB_API_URL points at a GitHub REST API"
    )]
    UnexpectedResponse {
        api_url: String,
        action: String,
        reason: String,
    },

    /// A create-type call got no clear answer and whether it took effect
    /// is not known: re-running blindly could do it twice.
    #[error("{action} got no clear answer from GitHub: {reason}; {outcome}")]
    Uncertain {
        action: String,
        reason: String,
        outcome: String,
    },
}

/// The call in progress when something failed: it decides which permission
/// or input an error message points at.
#[derive(Debug, Clone, Copy)]
enum GithubCall<'a> {
    DispatchWorkflow {
        workflow_id: &'a str,
        git_ref: &'a str,
    },
    CreateDeployment {
        git_ref: &'a str,
        environment: &'a str,
    },
    SetDeploymentStatus {
        deployment_id: u64,
    },
    ListComments {
        pull_number: u64,
    },
    WriteComment {
        pull_number: u64,
    },
    ListWorkflowRuns {
        workflow_id: &'a str,
    },
    ListDeployments {
        environment: &'a str,
    },
    ListDeploymentStatuses {
        deployment_id: u64,
    },
}

/// Body of `POST /repos/{owner}/{repo}/deployments`.
#[derive(Debug, Serialize)]
struct NewDeployment<'a> {
    #[serde(rename = "ref")]
    git_ref: &'a str,
    environment: &'a str,
    description: &'a str,
    // The action deploys an exact sha that CI already built: GitHub must not
    // merge the default branch into it, nor wait for commit statuses.
    auto_merge: bool,
    required_contexts: [&'a str; 0],
    transient_environment: bool,
}

/// The part of GitHub's answer to creating a deployment that we use. On a
/// 202 ("auto-merge performed") GitHub answers with a `message` and no `id`;
/// we never ask for auto-merge, but say so plainly if it happens.
#[derive(Debug, Deserialize)]
struct CreatedDeployment {
    id: Option<u64>,
    message: Option<String>,
}

/// Body of `POST /repos/{owner}/{repo}/deployments/{id}/statuses`.
#[derive(Debug, Serialize)]
struct NewDeploymentStatus<'a> {
    state: DeploymentState,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_url: Option<&'a str>,
    description: String,
    // Marks earlier deployments to the same environment inactive, so the
    // Environments page shows only the live one.
    auto_inactive: bool,
}

/// The fields of an issue comment the upsert needs.
#[derive(Debug, Deserialize)]
struct IssueComment {
    id: u64,
    body: Option<String>,
}

/// `GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs`.
#[derive(Debug, Deserialize)]
struct WorkflowRuns {
    workflow_runs: Vec<WorkflowRun>,
}

/// The fields of a listed workflow run that tell whether a dispatch made it.
#[derive(Debug, Deserialize)]
struct WorkflowRun {
    id: u64,
    event: Option<String>,
    head_branch: Option<String>,
    created_at: String,
    html_url: Option<String>,
}

/// The fields of a listed deployment that tell whether our create made it.
#[derive(Debug, Deserialize)]
struct ListedDeployment {
    id: u64,
    sha: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    environment: Option<String>,
    description: Option<String>,
    created_at: String,
}

/// The fields of a listed deployment status that tell whether ours made it.
#[derive(Debug, Deserialize)]
struct ListedDeploymentStatus {
    id: u64,
    state: String,
    description: Option<String>,
    created_at: String,
}

/// Body of creating or editing an issue comment.
#[derive(Debug, Serialize)]
struct CommentBody<'a> {
    body: &'a str,
}

impl GithubApi {
    /// Builds the client (see [`github_client`]). Must run inside a Tokio
    /// runtime: octocrab spawns its request buffer task while building.
    /// The connections go as `proxy` says (none by default).
    pub fn new(
        token: &str,
        api_url: &str,
        repository: &str,
        proxy: &ProxySettings,
    ) -> Result<Self, GithubError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(GithubError::MissingToken);
        }
        let (owner, repo) = split_repository(repository)?;
        let api_url = api_url.trim().trim_end_matches('/');
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(GithubError::InvalidApiUrl {
                api_url: api_url.to_owned(),
                reason: "it must start with https:// or http://".to_owned(),
            });
        }
        let base_uri = api_url
            .parse::<Uri>()
            .map_err(|error| GithubError::InvalidApiUrl {
                api_url: api_url.to_owned(),
                reason: error.to_string(),
            })?;
        let timeouts = Timeouts {
            connect: CONNECT_TIMEOUT,
            read: READ_TIMEOUT,
        };
        let client =
            github_client(base_uri.clone(), token, timeouts, proxy).map_err(
                |error| match error {
                    TransportError::Token => GithubError::MissingToken,
                    other => GithubError::Unusable {
                        reason: other.to_string(),
                    },
                },
            )?;
        Ok(Self {
            client,
            route: proxy_route(&base_uri, proxy).map(|proxy| format!("through the proxy {proxy}")),
            api_url: api_url.to_owned(),
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            delays: Delays {
                read_retry: READ_RETRY_DELAY,
                confirm: CONFIRM_DELAY,
            },
            recoveries: Mutex::new(Vec::new()),
        })
    }

    /// Hands over, and forgets, the create-type calls that succeeded only
    /// after an ambiguous first answer, oldest first, for the caller's log.
    pub fn take_recoveries(&self) -> Vec<Recovery> {
        // Every change to the list is one push, so a panic elsewhere while
        // the lock was held cannot have left it half-written.
        std::mem::take(
            &mut *self
                .recoveries
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Starts a `workflow_dispatch` run of `workflow` (a file name such as
    /// `deploy-alb.yml`, a path under `.github/workflows/`, or a numeric id)
    /// on `git_ref` with `inputs`. After an ambiguous failure the workflow's
    /// recent runs are read, and the dispatch is sent again only if none of
    /// them is ours (see the module docs).
    pub async fn dispatch_workflow(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<(), GithubError> {
        let workflow_id = workflow_id_from(workflow);
        let call = GithubCall::DispatchWorkflow {
            workflow_id,
            git_ref,
        };
        let inputs = serde_json::Value::Object(serde_json::Map::from_iter(
            inputs
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::from(value.as_str()))),
        ));
        self.create_checked(
            call,
            async || {
                self.client
                    .actions()
                    .create_workflow_dispatch(&self.owner, &self.repo, workflow_id, git_ref)
                    .inputs(inputs.clone())
                    .send()
                    .await
            },
            async |sent_at| {
                self.find_dispatched_run(workflow_id, git_ref, sent_at)
                    .await
            },
        )
        .await
    }

    /// Records a deployment of commit `git_ref` to `environment` and returns
    /// its id, for [`GithubApi::set_deployment_status`]. After an ambiguous
    /// failure, a deployment of the same ref, environment and description
    /// created since just before the request counts as this one.
    pub async fn create_deployment(
        &self,
        git_ref: &str,
        environment: &str,
        description: &str,
    ) -> Result<u64, GithubError> {
        let call = GithubCall::CreateDeployment {
            git_ref,
            environment,
        };
        let request = NewDeployment {
            git_ref,
            environment,
            description,
            auto_merge: false,
            required_contexts: [],
            transient_environment: false,
        };
        let route = format!("/repos/{}/{}/deployments", self.owner, self.repo);
        let created: CreatedDeployment = self
            .create_checked(
                call,
                async || self.client.post(&route, Some(&request)).await,
                async |sent_at| {
                    self.find_deployment(git_ref, environment, description, sent_at)
                        .await
                },
            )
            .await?;
        created.id.ok_or_else(|| GithubError::UnexpectedResponse {
            api_url: self.api_url.clone(),
            action: self.describe(call),
            reason: format!(
                "no deployment id in the answer; GitHub said: {}",
                created.message.as_deref().unwrap_or("nothing")
            ),
        })
    }

    /// Reports the state of deployment `deployment_id`. `description` is cut
    /// to GitHub's 140-character limit rather than failing the deploy over a
    /// long message. After an ambiguous failure, a status of the same state
    /// and description created since just before the request counts as ours.
    pub async fn set_deployment_status(
        &self,
        deployment_id: u64,
        state: DeploymentState,
        environment_url: Option<&str>,
        log_url: Option<&str>,
        description: &str,
    ) -> Result<(), GithubError> {
        let call = GithubCall::SetDeploymentStatus { deployment_id };
        let description = truncate_chars(description, MAX_DEPLOYMENT_STATUS_DESCRIPTION_CHARS);
        let request = NewDeploymentStatus {
            state,
            environment_url,
            log_url,
            description: description.clone(),
            auto_inactive: true,
        };
        let route = format!(
            "/repos/{}/{}/deployments/{deployment_id}/statuses",
            self.owner, self.repo
        );
        self.create_checked(
            call,
            async || {
                let _created_status: serde_json::Value =
                    self.client.post(&route, Some(&request)).await?;
                Ok(())
            },
            async |sent_at| {
                self.find_deployment_status(deployment_id, state, &description, sent_at)
                    .await
            },
        )
        .await
    }

    /// Creates the pull request comment that carries `marker`, or edits it if
    /// one exists, so each stack keeps a single comment however often the
    /// workflow runs. `marker` should be an HTML comment, which GitHub does
    /// not render; an empty marker matches nothing and always creates. After
    /// an ambiguous failure the comments are searched for the marker again:
    /// a marked comment with our body means the write was done.
    pub async fn upsert_pull_request_comment(
        &self,
        pull_number: u64,
        marker: &str,
        body: &str,
    ) -> Result<CommentAction, GithubError> {
        let comment_body = render_comment_body(marker, body);
        let request = CommentBody {
            body: &comment_body,
        };
        let call = GithubCall::WriteComment { pull_number };
        match self.find_comment_with_marker(pull_number, marker).await? {
            Some(existing) => {
                let route = format!(
                    "/repos/{}/{}/issues/comments/{}",
                    self.owner, self.repo, existing.id
                );
                self.create_checked(
                    call,
                    async || {
                        let updated: IssueComment =
                            self.client.patch(&route, Some(&request)).await?;
                        Ok(CommentAction::Updated(updated.id))
                    },
                    async |_sent_at| {
                        let found = self
                            .find_marked_comment_after_a_write(pull_number, marker)
                            .await?;
                        Ok(found
                            .filter(|comment| comment.body.as_deref() == Some(&*comment_body))
                            .map(|comment| {
                                (
                                    CommentAction::Updated(comment.id),
                                    format!("comment {}", comment.id),
                                )
                            }))
                    },
                )
                .await
            }
            None => {
                let route = format!(
                    "/repos/{}/{}/issues/{pull_number}/comments",
                    self.owner, self.repo
                );
                self.create_checked(
                    call,
                    async || {
                        let created: IssueComment =
                            self.client.post(&route, Some(&request)).await?;
                        Ok(CommentAction::Created(created.id))
                    },
                    async |_sent_at| {
                        let Some(found) = self
                            .find_marked_comment_after_a_write(pull_number, marker)
                            .await?
                        else {
                            return Ok(None);
                        };
                        if found.body.as_deref() == Some(&*comment_body) {
                            return Ok(Some((
                                CommentAction::Created(found.id),
                                format!("comment {}", found.id),
                            )));
                        }
                        // A marked comment with another body: ours as GitHub
                        // stored it, or a concurrent run's. Either way a
                        // second marked comment is worse than editing it.
                        let route = format!(
                            "/repos/{}/{}/issues/comments/{}",
                            self.owner, self.repo, found.id
                        );
                        let updated: IssueComment = self
                            .client
                            .patch(&route, Some(&request))
                            .await
                            .map_err(|error| self.explain(call, error))?;
                        Ok(Some((
                            CommentAction::Updated(updated.id),
                            format!(
                                "comment {} (found with the marker but another body, and edited)",
                                updated.id
                            ),
                        )))
                    },
                )
                .await
            }
        }
    }

    /// Returns the first (oldest) comment on the pull request whose body
    /// contains `marker`, reading every page.
    async fn find_comment_with_marker(
        &self,
        pull_number: u64,
        marker: &str,
    ) -> Result<Option<IssueComment>, GithubError> {
        if marker.is_empty() {
            return Ok(None);
        }
        let call = GithubCall::ListComments { pull_number };
        let mut route = format!(
            "/repos/{}/{}/issues/{pull_number}/comments?per_page=100",
            self.owner, self.repo
        );
        for _ in 0..MAX_COMMENT_PAGES {
            let page: Page<IssueComment> = self.read(call, &route).await?;
            let next = page.next;
            let found = page.items.into_iter().find(|comment| {
                comment
                    .body
                    .as_deref()
                    .is_some_and(|text| text.contains(marker))
            });
            if found.is_some() {
                return Ok(found);
            }
            // GitHub's `next` link is absolute; octocrab sends the token with
            // it only because its host is the configured API host.
            match next {
                Some(next) => route = next.to_string(),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// After an ambiguous comment write: the marked comment as it is now.
    /// Comments are not compared with the time of our send, since an edit
    /// keeps the comment's `created_at`: the marker and the body tell.
    async fn find_marked_comment_after_a_write(
        &self,
        pull_number: u64,
        marker: &str,
    ) -> Result<Option<IssueComment>, GithubError> {
        tokio::time::sleep(self.delays.confirm).await;
        self.find_comment_with_marker(pull_number, marker).await
    }

    /// After an ambiguous dispatch: a `workflow_dispatch` run of
    /// `workflow_id` on `git_ref` created since `sent_at`, with a few words
    /// naming it. The list is read [`DISPATCH_LOOKS`] times, because a
    /// dispatched run takes a few seconds to show.
    async fn find_dispatched_run(
        &self,
        workflow_id: &str,
        git_ref: &str,
        sent_at: SystemTime,
    ) -> Result<Option<((), String)>, GithubError> {
        let call = GithubCall::ListWorkflowRuns { workflow_id };
        let earliest = earliest_ours(sent_at);
        let (ref_name, branch) = dispatch_ref_name(git_ref);
        let mut route = format!(
            "/repos/{}/{}/actions/workflows/{workflow_id}/runs?event=workflow_dispatch",
            self.owner, self.repo
        );
        if let Some(branch) = branch {
            route.push_str(&format!("&branch={}", encode_query_value(branch)));
        }
        // The `created` filter keeps a busy workflow's older runs off the
        // page; the same test is made below for servers that ignore it.
        route.push_str(&format!(
            "&created={}&per_page={LOOK_PAGE_SIZE}",
            encode_query_value(&format!(
                ">={}",
                humantime::format_rfc3339_seconds(earliest)
            ))
        ));
        for _ in 0..DISPATCH_LOOKS {
            tokio::time::sleep(self.delays.confirm).await;
            let runs: WorkflowRuns = self.read(call, &route).await?;
            let ours = runs.workflow_runs.iter().find(|run| {
                run.event
                    .as_deref()
                    .is_none_or(|event| event == "workflow_dispatch")
                    && run
                        .head_branch
                        .as_deref()
                        .is_none_or(|head| head == ref_name)
                    && created_since(&run.created_at, earliest)
            });
            if let Some(run) = ours {
                let evidence = match &run.html_url {
                    Some(url) => format!("run {} ({url})", run.id),
                    None => format!("run {}", run.id),
                };
                return Ok(Some(((), evidence)));
            }
        }
        Ok(None)
    }

    /// After an ambiguous create: a deployment of `git_ref` to `environment`
    /// with `description`, created since `sent_at`, as the create answers it.
    async fn find_deployment(
        &self,
        git_ref: &str,
        environment: &str,
        description: &str,
        sent_at: SystemTime,
    ) -> Result<Option<(CreatedDeployment, String)>, GithubError> {
        let call = GithubCall::ListDeployments { environment };
        let earliest = earliest_ours(sent_at);
        // `sha` matches the resolved commit, `ref` the name as sent; the job
        // sends a commit sha, but a branch or tag works too.
        let filter = if is_commit_sha(git_ref) { "sha" } else { "ref" };
        let route = format!(
            "/repos/{}/{}/deployments?{filter}={}&environment={}&per_page={LOOK_PAGE_SIZE}",
            self.owner,
            self.repo,
            encode_query_value(git_ref),
            encode_query_value(environment)
        );
        tokio::time::sleep(self.delays.confirm).await;
        let deployments: Vec<ListedDeployment> = self.read(call, &route).await?;
        Ok(deployments
            .into_iter()
            .find(|deployment| {
                deployment.environment.as_deref() == Some(environment)
                    && deployment.description.as_deref().unwrap_or_default() == description
                    && (deployment.sha.as_deref() == Some(git_ref)
                        || deployment.git_ref.as_deref() == Some(git_ref))
                    && created_since(&deployment.created_at, earliest)
            })
            .map(|deployment| {
                (
                    CreatedDeployment {
                        id: Some(deployment.id),
                        message: None,
                    },
                    format!("deployment {}", deployment.id),
                )
            }))
    }

    /// After an ambiguous status update: a status of deployment
    /// `deployment_id` with `state` and `description`, created since
    /// `sent_at`.
    async fn find_deployment_status(
        &self,
        deployment_id: u64,
        state: DeploymentState,
        description: &str,
        sent_at: SystemTime,
    ) -> Result<Option<((), String)>, GithubError> {
        let call = GithubCall::ListDeploymentStatuses { deployment_id };
        let earliest = earliest_ours(sent_at);
        let route = format!(
            "/repos/{}/{}/deployments/{deployment_id}/statuses?per_page={LOOK_PAGE_SIZE}",
            self.owner, self.repo
        );
        tokio::time::sleep(self.delays.confirm).await;
        let statuses: Vec<ListedDeploymentStatus> = self.read(call, &route).await?;
        Ok(statuses
            .iter()
            .find(|status| {
                status.state == state.github_name()
                    && status.description.as_deref().unwrap_or_default() == description
                    && created_since(&status.created_at, earliest)
            })
            .map(|status| {
                (
                    (),
                    format!("status {} of deployment {deployment_id}", status.id),
                )
            }))
    }

    /// Sends a create-type call once. After an ambiguous failure, `look`
    /// (given the time just before the send) tells whether GitHub did it
    /// anyway, with a few words naming what it found; if not, the call is
    /// sent once more. Never more: each send may be one more downstream run.
    async fn create_checked<T>(
        &self,
        call: GithubCall<'_>,
        send: impl AsyncFn() -> Result<T, octocrab::Error>,
        look: impl AsyncFn(SystemTime) -> Result<Option<(T, String)>, GithubError>,
    ) -> Result<T, GithubError> {
        let sent_at = SystemTime::now();
        let first_failure = match send().await {
            Ok(done) => return Ok(done),
            Err(error) if may_have_taken_effect(&error) => describe_ambiguous(&error),
            Err(error) => return Err(self.explain(call, error)),
        };
        match look(sent_at).await {
            Ok(Some((done, evidence))) => {
                self.record(
                    call,
                    first_failure,
                    RecoveryOutcome::ConfirmedDone { evidence },
                );
                return Ok(done);
            }
            Ok(None) => {}
            Err(look_error) => {
                return Err(GithubError::Uncertain {
                    action: self.describe(call),
                    reason: format!(
                        "{first_failure}, and looking whether it was done failed too: {look_error}"
                    ),
                    outcome: self.uncertain_outcome(call),
                });
            }
        }
        match send().await {
            Ok(done) => {
                self.record(call, first_failure, RecoveryOutcome::SentAgain);
                Ok(done)
            }
            Err(error) if may_have_taken_effect(&error) => Err(GithubError::Uncertain {
                action: self.describe(call),
                reason: format!(
                    "{first_failure}; nothing of it showed on GitHub, so it was sent once more, and {}",
                    describe_ambiguous(&error)
                ),
                outcome: self.uncertain_outcome(call),
            }),
            Err(error) => Err(self.explain(call, error)),
        }
    }

    /// Sends a GET, repeating it after a 5xx or a connection failure up to
    /// [`READ_ATTEMPTS`] times in all, with a doubling wait in between.
    async fn read<R: FromResponse>(
        &self,
        call: GithubCall<'_>,
        route: &str,
    ) -> Result<R, GithubError> {
        let mut delay = self.delays.read_retry;
        for _ in 1..READ_ATTEMPTS {
            match self.client.get(route, None::<&()>).await {
                Err(error) if is_transient(&error) => {
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                result => return result.map_err(|error| self.explain(call, error)),
            }
        }
        self.client
            .get(route, None::<&()>)
            .await
            .map_err(|error| self.explain(call, error))
    }

    /// Keeps a recovery for [`GithubApi::take_recoveries`].
    fn record(&self, call: GithubCall<'_>, failure: String, outcome: RecoveryOutcome) {
        self.recoveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Recovery {
                action: self.describe(call),
                failure,
                outcome,
            });
    }

    /// What may or may not have happened when a create's outcome is unknown,
    /// and where the user can see which.
    fn uncertain_outcome(&self, call: GithubCall<'_>) -> String {
        let repository = format!("{}/{}", self.owner, self.repo);
        match call {
            GithubCall::DispatchWorkflow {
                workflow_id,
                git_ref,
            } => format!(
                "workflow `{workflow_id}` may or may not have started on ref `{git_ref}`: look at its runs in the Actions tab of {repository} before re-running this job, which would dispatch it again"
            ),
            GithubCall::CreateDeployment { environment, .. } => format!(
                "a deployment to environment `{environment}` may or may not have been recorded: see the Environments page of {repository}"
            ),
            GithubCall::SetDeploymentStatus { deployment_id } => {
                format!("deployment {deployment_id} may or may not show the new status")
            }
            GithubCall::WriteComment { pull_number } => format!(
                "the comment on pull request #{pull_number} may or may not have been written"
            ),
            GithubCall::ListComments { .. }
            | GithubCall::ListWorkflowRuns { .. }
            | GithubCall::ListDeployments { .. }
            | GithubCall::ListDeploymentStatuses { .. } => {
                "it may or may not have taken effect".to_owned()
            }
        }
    }

    /// Turns an octocrab error into one that names what to fix.
    fn explain(&self, call: GithubCall<'_>, error: octocrab::Error) -> GithubError {
        let action = self.describe(call);
        match error {
            octocrab::Error::GitHub { source, .. } => {
                let status = source.status_code.as_u16();
                let github_message = describe_github_message(&source);
                if status == 401 {
                    GithubError::InvalidToken { github_message }
                } else if is_rate_limited(&source) {
                    GithubError::RateLimited {
                        action,
                        github_message,
                    }
                } else {
                    GithubError::Rejected {
                        action,
                        status,
                        github_message,
                        fix: self.fix_for(call, status),
                    }
                }
            }
            octocrab::Error::Service { .. } | octocrab::Error::Hyper { .. } => {
                let mut reason = describe_error_chain(&error);
                if let Some(route) = &self.route {
                    reason.push_str(&format!(" ({route})"));
                }
                GithubError::Unreachable {
                    api_url: self.api_url.clone(),
                    action,
                    reason,
                }
            }
            other => GithubError::UnexpectedResponse {
                api_url: self.api_url.clone(),
                action,
                reason: describe_error_chain(&other),
            },
        }
    }

    /// Names the call in words a user recognises from their workflow file.
    fn describe(&self, call: GithubCall<'_>) -> String {
        let repository = format!("{}/{}", self.owner, self.repo);
        match call {
            GithubCall::DispatchWorkflow {
                workflow_id,
                git_ref,
            } => format!("dispatching workflow `{workflow_id}` on ref `{git_ref}` in {repository}"),
            GithubCall::CreateDeployment {
                git_ref,
                environment,
            } => format!(
                "creating a deployment of `{git_ref}` to environment `{environment}` in {repository}"
            ),
            GithubCall::SetDeploymentStatus { deployment_id } => {
                format!("setting the status of deployment {deployment_id} in {repository}")
            }
            GithubCall::ListComments { pull_number } => {
                format!("listing the comments of pull request #{pull_number} in {repository}")
            }
            GithubCall::WriteComment { pull_number } => {
                format!("commenting on pull request #{pull_number} in {repository}")
            }
            GithubCall::ListWorkflowRuns { workflow_id } => {
                format!("listing the runs of workflow `{workflow_id}` in {repository}")
            }
            GithubCall::ListDeployments { environment } => {
                format!("listing the deployments to environment `{environment}` in {repository}")
            }
            GithubCall::ListDeploymentStatuses { deployment_id } => {
                format!("listing the statuses of deployment {deployment_id} in {repository}")
            }
        }
    }

    /// The fix for a refused call. Permission names are the `permissions:`
    /// keys of a workflow job, which is where users grant them to
    /// `GITHUB_TOKEN`.
    fn fix_for(&self, call: GithubCall<'_>, status: u16) -> String {
        let repository = format!("{}/{}", self.owner, self.repo);
        if status >= 500 {
            return "GitHub had a server error; re-run the job".to_owned();
        }
        match (call, status) {
            (
                GithubCall::DispatchWorkflow {
                    workflow_id,
                    git_ref,
                },
                403 | 404,
            ) => format!(
                "the token lacks `actions: write` (add `permissions: actions: write` to the job), or workflow `{workflow_id}` does not exist in {repository} on ref `{git_ref}`"
            ),
            (
                GithubCall::DispatchWorkflow {
                    workflow_id,
                    git_ref,
                },
                422,
            ) => format!(
                "workflow `{workflow_id}` on ref `{git_ref}` must have an `on: workflow_dispatch` trigger that declares every input passed to it, and the ref must be a branch or tag"
            ),
            (GithubCall::CreateDeployment { .. }, 403 | 404) => format!(
                "the token lacks `deployments: write` (add `permissions: deployments: write` to the job), or repository {repository} does not exist"
            ),
            (GithubCall::CreateDeployment { git_ref, .. }, 409 | 422) => format!(
                "ref `{git_ref}` must be a commit, branch or tag that exists in {repository}"
            ),
            (GithubCall::SetDeploymentStatus { deployment_id }, 403 | 404) => format!(
                "the token lacks `deployments: write` (add `permissions: deployments: write` to the job), or deployment {deployment_id} does not exist in {repository}"
            ),
            (GithubCall::SetDeploymentStatus { .. }, 422) => {
                "environment-url and the log URL must be absolute http(s) URLs".to_owned()
            }
            (
                GithubCall::ListComments { pull_number } | GithubCall::WriteComment { pull_number },
                403 | 404,
            ) => format!(
                "the token lacks `pull-requests: write` (add `permissions: pull-requests: write` to the job; `issues: write` also grants issue comments), or pull request #{pull_number} does not exist in {repository}; on `pull_request` events from forks the token is read-only, so comment from a `workflow_run` workflow instead"
            ),
            (GithubCall::ListWorkflowRuns { .. }, 403 | 404) => {
                "the token lacks `actions: read` (`permissions: actions: write` includes it)".to_owned()
            }
            (
                GithubCall::ListDeployments { .. } | GithubCall::ListDeploymentStatuses { .. },
                403 | 404,
            ) => "the token lacks `deployments: read` (`permissions: deployments: write` includes it)"
                .to_owned(),
            _ => "see GitHub's message for the cause".to_owned(),
        }
    }
}

/// Splits `owner/name`, refusing anything else before it becomes a wrong URL.
fn split_repository(repository: &str) -> Result<(&str, &str), GithubError> {
    let invalid = || GithubError::InvalidRepository {
        repository: repository.to_owned(),
    };
    let (owner, repo) = repository.trim().split_once('/').ok_or_else(invalid)?;
    if owner.is_empty() || repo.is_empty() || repo.contains('/') {
        return Err(invalid());
    }
    Ok((owner, repo))
}

/// The dispatch endpoint takes a file name or numeric id, but users often
/// write the path they see in the repository (`.github/workflows/x.yml`);
/// keep only the file name so both work.
fn workflow_id_from(workflow: &str) -> &str {
    let workflow = workflow.trim();
    workflow.rsplit('/').next().unwrap_or(workflow)
}

/// Cuts `text` to at most `max_chars` characters, ending in `…` when cut.
/// Counts characters, not bytes, as GitHub's limits do, and never splits one.
fn truncate_chars(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut truncated: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    truncated.push('…');
    truncated
}

/// The comment as posted: the marker on its own line, then `body`, cut with
/// a notice if the whole would exceed [`MAX_COMMENT_CHARS`].
fn render_comment_body(marker: &str, body: &str) -> String {
    let full = format!("{marker}\n{body}");
    if full.chars().count() <= MAX_COMMENT_CHARS {
        return full;
    }
    let reserved = marker.chars().count()
        + 1
        + CLOSING_CODE_FENCE.chars().count()
        + COMMENT_TRUNCATED_NOTICE.chars().count();
    let mut kept: String = body
        .chars()
        .take(MAX_COMMENT_CHARS.saturating_sub(reserved))
        .collect();
    if kept.matches("```").count() % 2 == 1 {
        kept.push_str(CLOSING_CODE_FENCE);
    }
    format!("{marker}\n{kept}{COMMENT_TRUNCATED_NOTICE}")
}

/// GitHub's `message`, plus the per-field `errors` a 422 carries (they hold
/// the useful part, e.g. which input was unexpected).
fn describe_github_message(error: &octocrab::GitHubError) -> String {
    let details: Vec<String> = error
        .errors
        .iter()
        .flatten()
        .map(
            |detail| match detail.get("message").and_then(|text| text.as_str()) {
                Some(text) => text.to_owned(),
                None => detail.to_string(),
            },
        )
        .collect();
    if details.is_empty() {
        error.message.clone()
    } else {
        format!("{} ({})", error.message, details.join("; "))
    }
}

/// GitHub signals an exhausted rate limit with 429, or with 403 and
/// `x-ratelimit-remaining: 0`; the header keeps this from reading 403 bodies.
/// <https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>
fn is_rate_limited(error: &octocrab::GitHubError) -> bool {
    let remaining_is_zero = error
        .headers
        .as_ref()
        .and_then(|headers| headers.get("x-ratelimit-remaining"))
        .is_some_and(|remaining| remaining.as_bytes() == b"0");
    error.status_code.as_u16() == 429 || (error.status_code.as_u16() == 403 && remaining_is_zero)
}

/// Whether a failed request may simply be repeated if it only reads: GitHub
/// (or a proxy in front of it) had a server error, or the connection failed
/// or timed out. A 4xx is GitHub's considered answer and would not change.
fn is_transient(error: &octocrab::Error) -> bool {
    match error {
        octocrab::Error::GitHub { source, .. } => source.status_code.is_server_error(),
        octocrab::Error::Service { .. } | octocrab::Error::Hyper { .. } => true,
        _ => false,
    }
}

/// Whether a failed create may have been carried out all the same: a 5xx,
/// or a connection that broke or timed out once the request may have left.
/// A connection that never opened sent nothing, so it is a plain failure.
fn may_have_taken_effect(error: &octocrab::Error) -> bool {
    is_transient(error) && !never_connected(error)
}

/// Whether the error chain holds a failure to open the connection (refused,
/// DNS, connect timeout), before any byte of the request was sent.
fn never_connected(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(layer) = current {
        let connect_failed = layer
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
            || layer
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        if connect_failed {
            return true;
        }
        current = layer.source();
    }
    false
}

/// An ambiguous failure in a few words, for [`GithubError::Uncertain`] and
/// [`Recovery`]. A 502's body may be a whole HTML page: it is squeezed onto
/// one line and cut.
fn describe_ambiguous(error: &octocrab::Error) -> String {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            let message = describe_github_message(source)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "GitHub answered HTTP {} ({})",
                source.status_code.as_u16(),
                truncate_chars(&message, 200)
            )
        }
        other => format!("the request failed ({})", describe_error_chain(other)),
    }
}

/// The earliest `created_at` that can belong to what a call sent at
/// `sent_at` made, allowing for [`CLOCK_SKEW`].
fn earliest_ours(sent_at: SystemTime) -> SystemTime {
    sent_at.checked_sub(CLOCK_SKEW).unwrap_or(sent_at)
}

/// Whether GitHub's `created_at` (RFC 3339, UTC) is at or after `earliest`.
/// A timestamp that does not parse does not count: the call is then sent
/// again, as if nothing had been found.
fn created_since(created_at: &str, earliest: SystemTime) -> bool {
    humantime::parse_rfc3339_weak(created_at).is_ok_and(|created| created >= earliest)
}

/// The name a dispatched run shows as `head_branch`, and the branch to
/// filter its runs by. Only `refs/heads/…` is surely a branch: a plain name
/// may be a tag, which the `branch` filter may not match, so plain names and
/// tags are compared with `head_branch` here instead of filtered by GitHub.
fn dispatch_ref_name(git_ref: &str) -> (&str, Option<&str>) {
    if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
        (branch, Some(branch))
    } else if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        (tag, None)
    } else {
        (git_ref, None)
    }
}

/// A full commit sha (SHA-1 or SHA-256), which the deployments list filters
/// with `sha`; anything else is a branch or tag name for `ref`.
fn is_commit_sha(git_ref: &str) -> bool {
    matches!(git_ref.len(), 40 | 64) && git_ref.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Percent-encodes a query value: branch and environment names may hold
/// `&`, `#`, `+` or spaces, and the `created` filter holds `>=` and `:`.
fn encode_query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Joins an error and its sources on one line, skipping a source whose text
/// its parent already repeats (octocrab's wrappers print their source).
fn describe_error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(layer) = current {
        let text = layer.to_string();
        if !parts.last().is_some_and(|parent| parent.contains(&text)) {
            parts.push(text);
        }
        current = layer.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const TOKEN: &str = "ghs_test_token_0123456789";
    const REPOSITORY: &str = "octo-org/infra";

    /// One request as the fake API received it.
    #[derive(Debug, Clone)]
    struct RecordedRequest {
        method: String,
        path: String,
        authorization: Option<String>,
        body: Option<Value>,
    }

    /// One scripted answer. `{base_url}` in a header value is replaced by the
    /// server's own URL, for `Link` headers.
    struct Reply {
        status: u16,
        body: Option<Value>,
        headers: Vec<(&'static str, String)>,
    }

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }

    /// Reads the request, then closes the connection without answering: the
    /// answer GitHub sent was lost on the way.
    fn dropped() -> Reply {
        Reply {
            status: 0,
            body: None,
            headers: Vec::new(),
        }
    }

    fn bad_gateway() -> Reply {
        reply(502, json!({"message": "Server Error"}))
    }

    /// A stand-in for the GitHub API on a loopback port: answers requests in
    /// order from a script and records them.
    struct FakeGithub {
        base_url: String,
        requests: Arc<Mutex<Vec<RecordedRequest>>>,
    }

    impl FakeGithub {
        async fn start(replies: Vec<Reply>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base_url = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let recorded = Arc::clone(&requests);
            let server_url = base_url.clone();
            tokio::spawn(async move {
                let mut replies = replies.into_iter();
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let Some(request) = read_request(&mut stream).await else {
                        continue;
                    };
                    recorded.lock().unwrap().push(request);
                    let answer = replies.next().unwrap_or_else(|| {
                        reply(
                            400,
                            json!({"message": "the test did not script this request"}),
                        )
                    });
                    if answer.status == 0 {
                        drop(stream);
                        continue;
                    }
                    write_reply(&mut stream, &answer, &server_url).await;
                }
            });
            Self { base_url, requests }
        }

        /// A client whose waits between attempts are a millisecond, so the
        /// retry tests stay fast.
        fn api(&self) -> GithubApi {
            let mut api =
                GithubApi::new(TOKEN, &self.base_url, REPOSITORY, &ProxySettings::default())
                    .unwrap();
            api.delays = Delays {
                read_retry: Duration::from_millis(1),
                confirm: Duration::from_millis(1),
            };
            api
        }

        fn requests(&self) -> Vec<RecordedRequest> {
            self.requests.lock().unwrap().clone()
        }
    }

    async fn read_request(stream: &mut TcpStream) -> Option<RecordedRequest> {
        let mut buffer = Vec::new();
        let mut chunk = [0_u8; 8192];
        let header_end = loop {
            if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break position + 4;
            }
            let read = stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..read]);
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next()?.split(' ');
        let method = request_line.next()?.to_owned();
        let path = request_line.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let header = |wanted: &str| {
            headers
                .iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, value)| value.clone())
        };
        let content_length: usize =
            header("content-length").map_or(0, |length| length.parse().unwrap());
        while buffer.len() < header_end + content_length {
            let read = stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let body_bytes = &buffer[header_end..header_end + content_length];
        let body = (!body_bytes.is_empty()).then(|| serde_json::from_slice(body_bytes).unwrap());
        Some(RecordedRequest {
            method,
            path,
            authorization: header("authorization"),
            body,
        })
    }

    async fn write_reply(stream: &mut TcpStream, answer: &Reply, base_url: &str) {
        let body = answer
            .body
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        let mut response = format!(
            "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            answer.status,
            body.len()
        );
        for (name, value) in &answer.headers {
            response.push_str(&format!(
                "{name}: {}\r\n",
                value.replace("{base_url}", base_url)
            ));
        }
        response.push_str("\r\n");
        response.push_str(&body);
        stream.write_all(response.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    }

    fn assert_authorized(request: &RecordedRequest) {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "request {} {} must carry the token",
            request.method,
            request.path
        );
    }

    fn deploy_inputs() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("stack-name".to_owned(), "alb".to_owned()),
            ("image".to_owned(), "123.dkr.ecr/app@sha256:abc".to_owned()),
        ])
    }

    #[tokio::test]
    async fn dispatch_workflow_posts_ref_and_inputs_to_the_dispatches_endpoint() {
        let github = FakeGithub::start(vec![no_content()]).await;

        github
            .api()
            .dispatch_workflow("deploy-alb.yml", "main", &deploy_inputs())
            .await
            .unwrap();

        let requests = github.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(
            requests[0].path,
            "/repos/octo-org/infra/actions/workflows/deploy-alb.yml/dispatches"
        );
        assert_eq!(
            requests[0].body,
            Some(json!({
                "ref": "main",
                "inputs": {"stack-name": "alb", "image": "123.dkr.ecr/app@sha256:abc"}
            }))
        );
        assert_authorized(&requests[0]);
    }

    #[tokio::test]
    async fn dispatch_workflow_sends_empty_inputs_as_an_object() {
        let github = FakeGithub::start(vec![no_content()]).await;

        github
            .api()
            .dispatch_workflow(
                ".github/workflows/deploy-ecs.yml",
                "v1.2.3",
                &BTreeMap::new(),
            )
            .await
            .unwrap();

        let requests = github.requests();
        assert_eq!(
            requests[0].path,
            "/repos/octo-org/infra/actions/workflows/deploy-ecs.yml/dispatches"
        );
        assert_eq!(
            requests[0].body,
            Some(json!({"ref": "v1.2.3", "inputs": {}}))
        );
    }

    #[tokio::test]
    async fn unauthorized_asks_for_github_token_and_never_shows_it() {
        let github =
            FakeGithub::start(vec![reply(401, json!({"message": "Bad credentials"}))]).await;

        let error = github
            .api()
            .dispatch_workflow("deploy-alb.yml", "main", &deploy_inputs())
            .await
            .unwrap_err();

        let message = error.to_string();
        assert!(
            matches!(error, GithubError::InvalidToken { .. }),
            "{error:?}"
        );
        assert!(
            message.contains("github-token is missing or invalid"),
            "{message}"
        );
        assert!(
            message.contains("`github-token: ${{ github.token }}`"),
            "{message}"
        );
        assert!(message.contains("Bad credentials"), "{message}");
        assert!(!message.contains(TOKEN) && !format!("{error:?}").contains(TOKEN));
    }

    #[tokio::test]
    async fn dispatch_workflow_not_found_names_actions_write_and_the_workflow() {
        for status in [403, 404] {
            let github = FakeGithub::start(vec![reply(
                status,
                json!({"message": "Resource not accessible by integration"}),
            )])
            .await;

            let message = github
                .api()
                .dispatch_workflow("deploy-alb.yml", "main", &deploy_inputs())
                .await
                .unwrap_err()
                .to_string();

            assert!(message.contains(&format!("HTTP {status}")), "{message}");
            assert!(
                message.contains("`permissions: actions: write`"),
                "{message}"
            );
            assert!(
                message.contains(
                    "workflow `deploy-alb.yml` does not exist in octo-org/infra on ref `main`"
                ),
                "{message}"
            );
            assert!(
                message.contains("Resource not accessible by integration"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn dispatch_workflow_unprocessable_quotes_github_and_names_workflow_dispatch() {
        let github = FakeGithub::start(vec![reply(
            422,
            json!({
                "message": "Unexpected inputs provided: [\"colour\"]",
                "documentation_url": "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event"
            }),
        )])
        .await;

        let message = github
            .api()
            .dispatch_workflow("deploy-alb.yml", "main", &deploy_inputs())
            .await
            .unwrap_err()
            .to_string();

        assert!(
            message.contains("Unexpected inputs provided: [\"colour\"]"),
            "{message}"
        );
        assert!(message.contains("`on: workflow_dispatch`"), "{message}");
        assert!(message.contains("declares every input"), "{message}");
    }

    #[tokio::test]
    async fn rate_limited_403_is_not_reported_as_a_missing_permission() {
        let github = FakeGithub::start(vec![Reply {
            status: 403,
            body: Some(json!({"message": "API rate limit exceeded for installation ID 1."})),
            headers: vec![("x-ratelimit-remaining", "0".to_owned())],
        }])
        .await;

        let error = github
            .api()
            .dispatch_workflow("deploy-alb.yml", "main", &deploy_inputs())
            .await
            .unwrap_err();

        let message = error.to_string();
        assert!(
            matches!(error, GithubError::RateLimited { .. }),
            "{error:?}"
        );
        assert!(message.contains("API rate limit exceeded"), "{message}");
        assert!(!message.contains("actions: write"), "{message}");
    }

    #[tokio::test]
    async fn create_deployment_posts_the_exact_sha_without_auto_merge_or_status_checks() {
        let github = FakeGithub::start(vec![reply(
            201,
            json!({"id": 4242, "sha": "0123abc", "environment": "production"}),
        )])
        .await;

        let deployment_id = github
            .api()
            .create_deployment("0123abc", "production", "Deploy stack alb")
            .await
            .unwrap();

        assert_eq!(deployment_id, 4242);
        let requests = github.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/repos/octo-org/infra/deployments");
        assert_eq!(
            requests[0].body,
            Some(json!({
                "ref": "0123abc",
                "environment": "production",
                "description": "Deploy stack alb",
                "auto_merge": false,
                "required_contexts": [],
                "transient_environment": false
            }))
        );
        assert_authorized(&requests[0]);
    }

    #[tokio::test]
    async fn create_deployment_forbidden_names_deployments_write() {
        let github = FakeGithub::start(vec![reply(
            403,
            json!({"message": "Resource not accessible by integration"}),
        )])
        .await;

        let message = github
            .api()
            .create_deployment("0123abc", "production", "Deploy stack alb")
            .await
            .unwrap_err()
            .to_string();

        assert!(
            message.contains("`permissions: deployments: write`"),
            "{message}"
        );
        assert!(message.contains("environment `production`"), "{message}");
        assert!(
            message.contains("Resource not accessible by integration"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn create_deployment_without_an_id_in_the_answer_is_an_error() {
        let github = FakeGithub::start(vec![reply(
            202,
            json!({"message": "Auto-merged main into topic-branch on deployment."}),
        )])
        .await;

        let message = github
            .api()
            .create_deployment("topic-branch", "staging", "Deploy")
            .await
            .unwrap_err()
            .to_string();

        assert!(message.contains("no deployment id"), "{message}");
        assert!(message.contains("Auto-merged main"), "{message}");
    }

    #[tokio::test]
    async fn set_deployment_status_posts_state_urls_and_auto_inactive() {
        let github =
            FakeGithub::start(vec![reply(201, json!({"id": 1, "state": "success"}))]).await;

        github
            .api()
            .set_deployment_status(
                4242,
                DeploymentState::Success,
                Some("https://alb.example.com"),
                Some("https://github.com/octo-org/infra/actions/runs/9"),
                "Stack alb is up to date",
            )
            .await
            .unwrap();

        let requests = github.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(
            requests[0].path,
            "/repos/octo-org/infra/deployments/4242/statuses"
        );
        assert_eq!(
            requests[0].body,
            Some(json!({
                "state": "success",
                "environment_url": "https://alb.example.com",
                "log_url": "https://github.com/octo-org/infra/actions/runs/9",
                "description": "Stack alb is up to date",
                "auto_inactive": true
            }))
        );
        assert_authorized(&requests[0]);
    }

    #[tokio::test]
    async fn set_deployment_status_omits_absent_urls_and_cuts_the_description_to_140_chars() {
        let github = FakeGithub::start(vec![reply(201, json!({"id": 2}))]).await;
        let long_description = "x".repeat(200);

        github
            .api()
            .set_deployment_status(
                7,
                DeploymentState::InProgress,
                None,
                None,
                &long_description,
            )
            .await
            .unwrap();

        let body = github.requests()[0].body.clone().unwrap();
        let sent_description = body["description"].as_str().unwrap();
        assert_eq!(sent_description.chars().count(), 140);
        assert!(sent_description.ends_with('…'));
        assert_eq!(body["state"], "in_progress");
        assert!(body.get("environment_url").is_none() && body.get("log_url").is_none());
    }

    #[tokio::test]
    async fn set_deployment_status_not_found_names_deployments_write_and_the_id() {
        let github = FakeGithub::start(vec![reply(404, json!({"message": "Not Found"}))]).await;

        let message = github
            .api()
            .set_deployment_status(7, DeploymentState::Failure, None, None, "failed")
            .await
            .unwrap_err()
            .to_string();

        assert!(
            message.contains("`permissions: deployments: write`"),
            "{message}"
        );
        assert!(message.contains("deployment 7 does not exist"), "{message}");
        assert!(message.contains("Not Found"), "{message}");
    }

    #[tokio::test]
    async fn upsert_creates_a_comment_when_none_carries_the_marker() {
        let github = FakeGithub::start(vec![
            reply(
                200,
                json!([{"id": 1, "body": "LGTM"}, {"id": 2, "body": null}]),
            ),
            reply(201, json!({"id": 99, "body": "..."})),
        ])
        .await;

        let action = github
            .api()
            .upsert_pull_request_comment(12, "<!-- ecs-stack-deploy:alb -->", "## Plan\nno changes")
            .await
            .unwrap();

        assert_eq!(action, CommentAction::Created(99));
        let requests = github.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].method, "GET");
        assert_eq!(
            requests[0].path,
            "/repos/octo-org/infra/issues/12/comments?per_page=100"
        );
        assert_eq!(requests[0].body, None);
        assert_eq!(requests[1].method, "POST");
        assert_eq!(requests[1].path, "/repos/octo-org/infra/issues/12/comments");
        assert_eq!(
            requests[1].body,
            Some(json!({"body": "<!-- ecs-stack-deploy:alb -->\n## Plan\nno changes"}))
        );
        requests.iter().for_each(assert_authorized);
    }

    #[tokio::test]
    async fn upsert_updates_the_marked_comment_found_on_the_second_page() {
        let marker = "<!-- ecs-stack-deploy:alb -->";
        let github = FakeGithub::start(vec![
            Reply {
                status: 200,
                body: Some(json!([{"id": 1, "body": "first"}, {"id": 2, "body": "<!-- ecs-stack-deploy:network -->\nother stack"}])),
                headers: vec![(
                    "link",
                    "<{base_url}/repos/octo-org/infra/issues/12/comments?per_page=100&page=2>; rel=\"next\", <{base_url}/repos/octo-org/infra/issues/12/comments?per_page=100&page=2>; rel=\"last\"".to_owned(),
                )],
            },
            reply(200, json!([{"id": 555, "body": format!("{marker}\nold plan")}])),
            reply(200, json!({"id": 555, "body": "..."})),
        ])
        .await;

        let action = github
            .api()
            .upsert_pull_request_comment(12, marker, "new plan")
            .await
            .unwrap();

        assert_eq!(action, CommentAction::Updated(555));
        let requests = github.requests();
        let calls: Vec<(&str, &str)> = requests
            .iter()
            .map(|request| (request.method.as_str(), request.path.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                (
                    "GET",
                    "/repos/octo-org/infra/issues/12/comments?per_page=100"
                ),
                (
                    "GET",
                    "/repos/octo-org/infra/issues/12/comments?per_page=100&page=2"
                ),
                ("PATCH", "/repos/octo-org/infra/issues/comments/555"),
            ]
        );
        assert_eq!(
            requests[2].body,
            Some(json!({"body": "<!-- ecs-stack-deploy:alb -->\nnew plan"}))
        );
        // Page 2 is fetched from the absolute `next` URL: the token must go
        // with it, since private repositories answer 404 without it.
        requests.iter().for_each(assert_authorized);
    }

    #[tokio::test]
    async fn upsert_forbidden_names_pull_requests_write() {
        let github = FakeGithub::start(vec![
            reply(200, json!([])),
            reply(
                403,
                json!({"message": "Resource not accessible by integration"}),
            ),
        ])
        .await;

        let message = github
            .api()
            .upsert_pull_request_comment(12, "<!-- ecs-stack-deploy:alb -->", "plan")
            .await
            .unwrap_err()
            .to_string();

        assert!(
            message.contains("commenting on pull request #12 in octo-org/infra"),
            "{message}"
        );
        assert!(
            message.contains("`permissions: pull-requests: write`"),
            "{message}"
        );
        assert!(message.contains("`issues: write`"), "{message}");
        assert!(
            message.contains("Resource not accessible by integration"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn unreachable_api_names_the_url() {
        // Bind then drop, so nothing listens on the port.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let api = GithubApi::new(TOKEN, &api_url, REPOSITORY, &ProxySettings::default()).unwrap();

        let error = api
            .create_deployment("0123abc", "production", "Deploy")
            .await
            .unwrap_err();

        let message = error.to_string();
        assert!(
            matches!(error, GithubError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(
            message.starts_with(&format!("could not reach the GitHub API at {api_url}")),
            "{message}"
        );
    }

    #[tokio::test]
    async fn debug_output_never_contains_the_token() {
        let api = GithubApi::new(
            TOKEN,
            "https://api.github.com/",
            REPOSITORY,
            &ProxySettings::default(),
        )
        .unwrap();

        let debug = format!("{api:?}");

        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(debug.contains("https://api.github.com\""), "{debug}");
        assert!(debug.contains("octo-org/infra"), "{debug}");
    }

    #[test]
    fn new_rejects_bad_settings_before_any_request() {
        let cases = [
            (
                "",
                "https://api.github.com",
                REPOSITORY,
                "github-token is missing or invalid",
            ),
            (
                "  ",
                "https://api.github.com",
                REPOSITORY,
                "github-token is missing or invalid",
            ),
            (
                TOKEN,
                "https://api.github.com",
                "infra",
                "GITHUB_REPOSITORY `infra`",
            ),
            (
                TOKEN,
                "https://api.github.com",
                "octo-org/",
                "GITHUB_REPOSITORY `octo-org/`",
            ),
            (
                TOKEN,
                "https://api.github.com",
                "a/b/c",
                "GITHUB_REPOSITORY `a/b/c`",
            ),
            (
                TOKEN,
                "api.github.com",
                REPOSITORY,
                "GITHUB_API_URL `api.github.com`",
            ),
        ];
        for (token, api_url, repository, expected) in cases {
            let message = GithubApi::new(token, api_url, repository, &ProxySettings::default())
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains(TOKEN), "{message}");
        }
    }

    #[test]
    fn workflow_id_keeps_only_the_file_name() {
        let cases = [
            ("deploy-alb.yml", "deploy-alb.yml"),
            (".github/workflows/deploy-alb.yml", "deploy-alb.yml"),
            ("161335", "161335"),
            (" deploy.yaml ", "deploy.yaml"),
        ];
        for (workflow, expected) in cases {
            assert_eq!(workflow_id_from(workflow), expected, "{workflow}");
        }
    }

    #[test]
    fn truncate_chars_counts_characters_not_bytes() {
        let cases = [
            ("short", 140, "short".to_owned()),
            (&*"a".repeat(140), 140, "a".repeat(140)),
            (&*"a".repeat(141), 140, format!("{}…", "a".repeat(139))),
            ("ééééé", 3, "éé…".to_owned()),
        ];
        for (text, max_chars, expected) in cases {
            assert_eq!(truncate_chars(text, max_chars), expected, "{text}");
        }
    }

    #[test]
    fn render_comment_body_keeps_a_body_that_fits() {
        // Marker (6) + newline (1) + body: exactly at the limit.
        let body = "b".repeat(MAX_COMMENT_CHARS - 7);

        let rendered = render_comment_body("<!--->", &body);

        assert_eq!(rendered, format!("<!--->\n{body}"));
        assert_eq!(rendered.chars().count(), MAX_COMMENT_CHARS);
    }

    #[test]
    fn render_comment_body_cuts_below_the_limit_with_a_notice_and_closes_the_fence() {
        let marker = "<!-- ecs-stack-deploy:alb -->";
        let body = format!("## Diff\n```diff\n{}", "+ line\n".repeat(20_000));

        let rendered = render_comment_body(marker, &body);

        assert!(
            rendered.chars().count() <= MAX_COMMENT_CHARS,
            "{}",
            rendered.chars().count()
        );
        assert!(rendered.starts_with(&format!("{marker}\n## Diff\n```diff\n")));
        assert!(rendered.ends_with(COMMENT_TRUNCATED_NOTICE));
        assert_eq!(
            rendered.matches("```").count(),
            2,
            "the cut code block is closed"
        );
    }

    /// `created_at` as GitHub writes it, `seconds_ago` before now.
    fn created_at(seconds_ago: u64) -> String {
        let at = SystemTime::now() - Duration::from_secs(seconds_ago);
        humantime::format_rfc3339_seconds(at).to_string()
    }

    fn calls(requests: &[RecordedRequest]) -> Vec<(&str, &str)> {
        requests
            .iter()
            .map(|request| (request.method.as_str(), request.path.as_str()))
            .collect()
    }

    fn methods(requests: &[RecordedRequest]) -> Vec<&str> {
        requests
            .iter()
            .map(|request| request.method.as_str())
            .collect()
    }

    /// Asserts a runs look's path: the workflow, `event`, the optional
    /// `branch`, and a `created` filter a few seconds before now.
    fn assert_runs_look(request: &RecordedRequest, branch: Option<&str>) {
        assert_eq!(request.method, "GET");
        let (path, query) = request.path.split_once('?').unwrap();
        assert_eq!(
            path,
            "/repos/octo-org/infra/actions/workflows/deploy-alb.yml/runs"
        );
        let params: Vec<(&str, &str)> = query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap())
            .collect();
        let mut expected_names = vec!["event"];
        expected_names.extend(branch.map(|_| "branch"));
        expected_names.extend(["created", "per_page"]);
        let names: Vec<&str> = params.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, expected_names, "{}", request.path);
        assert!(params.contains(&("event", "workflow_dispatch")));
        assert!(params.contains(&("per_page", "100")));
        if let Some(branch) = branch {
            assert!(params.contains(&("branch", branch)), "{}", request.path);
        }
        let created = params
            .iter()
            .find(|(name, _)| *name == "created")
            .unwrap()
            .1;
        let since = created.strip_prefix("%3E%3D").unwrap().replace("%3A", ":");
        let since = humantime::parse_rfc3339(&since).unwrap();
        let age = SystemTime::now().duration_since(since).unwrap();
        assert!(
            age >= CLOCK_SKEW && age < CLOCK_SKEW + Duration::from_secs(30),
            "created filter {created} should be a few seconds before the dispatch"
        );
    }

    fn dispatch_run(id: u64, head_branch: &str, created_at: String) -> Value {
        json!({
            "id": id,
            "event": "workflow_dispatch",
            "head_branch": head_branch,
            "created_at": created_at,
            "html_url": format!("https://github.com/octo-org/infra/actions/runs/{id}")
        })
    }

    #[tokio::test]
    async fn dispatch_answered_502_after_it_ran_is_confirmed_from_the_runs_list_and_not_sent_again()
    {
        let github = FakeGithub::start(vec![
            bad_gateway(),
            reply(
                200,
                json!({"total_count": 1, "workflow_runs": [dispatch_run(77, "main", created_at(0))]}),
            ),
        ])
        .await;
        let api = github.api();

        api.dispatch_workflow("deploy-alb.yml", "refs/heads/main", &deploy_inputs())
            .await
            .unwrap();

        let requests = github.requests();
        assert_eq!(methods(&requests), ["POST", "GET"]);
        assert_eq!(
            requests[0].path,
            "/repos/octo-org/infra/actions/workflows/deploy-alb.yml/dispatches"
        );
        assert_runs_look(&requests[1], Some("main"));
        requests.iter().for_each(assert_authorized);
        let recoveries = api.take_recoveries();
        assert_eq!(recoveries.len(), 1, "{recoveries:?}");
        assert_eq!(
            recoveries[0].outcome,
            RecoveryOutcome::ConfirmedDone {
                evidence: "run 77 (https://github.com/octo-org/infra/actions/runs/77)".to_owned()
            }
        );
        let note = recoveries[0].to_string();
        assert!(
            note.starts_with("dispatching workflow `deploy-alb.yml` on ref `refs/heads/main`"),
            "{note}"
        );
        assert!(note.contains("HTTP 502"), "{note}");
        assert!(note.contains("not sent again"), "{note}");
        assert!(api.take_recoveries().is_empty(), "taken once");
    }

    #[tokio::test]
    async fn dispatch_answered_502_with_no_new_run_is_sent_once_more_and_a_second_502_is_uncertain()
    {
        let github = FakeGithub::start(vec![
            bad_gateway(),
            // A server that ignores the `created` filter: an old run of the
            // same branch, and a new one of another branch, are not ours.
            reply(
                200,
                json!({"total_count": 2, "workflow_runs": [
                    dispatch_run(70, "release", created_at(0)),
                    dispatch_run(60, "main", created_at(3600)),
                ]}),
            ),
            reply(200, json!({"total_count": 0, "workflow_runs": []})),
            reply(200, json!({"total_count": 0, "workflow_runs": []})),
            bad_gateway(),
        ])
        .await;
        let api = github.api();

        let error = api
            .dispatch_workflow("deploy-alb.yml", "main", &deploy_inputs())
            .await
            .unwrap_err();

        let requests = github.requests();
        assert_eq!(methods(&requests), ["POST", "GET", "GET", "GET", "POST"]);
        requests[1..4]
            .iter()
            .for_each(|look| assert_runs_look(look, None));
        assert_eq!(requests[4].path, requests[0].path);
        assert_eq!(requests[4].body, requests[0].body);
        let message = error.to_string();
        assert!(matches!(error, GithubError::Uncertain { .. }), "{error:?}");
        assert!(
            message.contains("workflow `deploy-alb.yml` may or may not have started on ref `main`"),
            "{message}"
        );
        assert!(message.contains("sent once more"), "{message}");
        assert_eq!(message.matches("HTTP 502").count(), 2, "{message}");
        assert!(api.take_recoveries().is_empty());
    }

    #[tokio::test]
    async fn dispatch_answered_502_with_no_new_run_is_sent_once_more_and_that_can_succeed() {
        let github = FakeGithub::start(vec![
            bad_gateway(),
            reply(200, json!({"total_count": 0, "workflow_runs": []})),
            reply(200, json!({"total_count": 0, "workflow_runs": []})),
            reply(200, json!({"total_count": 0, "workflow_runs": []})),
            no_content(),
        ])
        .await;
        let api = github.api();

        api.dispatch_workflow("deploy-alb.yml", "v1.2.3", &deploy_inputs())
            .await
            .unwrap();

        let requests = github.requests();
        assert_eq!(methods(&requests), ["POST", "GET", "GET", "GET", "POST"]);
        let recoveries = api.take_recoveries();
        assert_eq!(recoveries.len(), 1, "{recoveries:?}");
        assert_eq!(recoveries[0].outcome, RecoveryOutcome::SentAgain);
    }

    #[tokio::test]
    async fn dispatch_refused_with_422_is_neither_looked_up_nor_sent_again() {
        let github = FakeGithub::start(vec![reply(
            422,
            json!({"message": "Unexpected inputs provided: [\"colour\"]"}),
        )])
        .await;
        let api = github.api();

        let error = api
            .dispatch_workflow("deploy-alb.yml", "main", &deploy_inputs())
            .await
            .unwrap_err();

        assert_eq!(methods(&github.requests()), ["POST"]);
        assert!(
            matches!(error, GithubError::Rejected { status: 422, .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("`on: workflow_dispatch`"),
            "{error}"
        );
        assert!(api.take_recoveries().is_empty());
    }

    #[tokio::test]
    async fn dispatch_whose_runs_cannot_be_listed_after_a_502_is_uncertain_and_not_sent_again() {
        let github = FakeGithub::start(vec![
            bad_gateway(),
            reply(
                403,
                json!({"message": "Resource not accessible by integration"}),
            ),
        ])
        .await;

        let error = github
            .api()
            .dispatch_workflow("deploy-alb.yml", "main", &deploy_inputs())
            .await
            .unwrap_err();

        assert_eq!(methods(&github.requests()), ["POST", "GET"]);
        let message = error.to_string();
        assert!(matches!(error, GithubError::Uncertain { .. }), "{error:?}");
        assert!(message.contains("may or may not have started"), "{message}");
        assert!(message.contains("`actions: read`"), "{message}");
    }

    #[tokio::test]
    async fn dispatch_whose_connection_drops_after_sending_is_looked_up_before_sending_again() {
        let github = FakeGithub::start(vec![
            dropped(),
            reply(
                200,
                json!({"total_count": 1, "workflow_runs": [dispatch_run(78, "main", created_at(0))]}),
            ),
        ])
        .await;

        github
            .api()
            .dispatch_workflow("deploy-alb.yml", "main", &deploy_inputs())
            .await
            .unwrap();

        assert_eq!(methods(&github.requests()), ["POST", "GET"]);
    }

    const DEPLOYED_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn listed_deployment(id: u64, sha: &str, description: &str, created_at: String) -> Value {
        json!({
            "id": id,
            "sha": sha,
            "ref": sha,
            "environment": "production",
            "description": description,
            "created_at": created_at
        })
    }

    #[tokio::test]
    async fn create_deployment_answered_502_after_creating_returns_the_found_id_without_a_second_post()
     {
        let github = FakeGithub::start(vec![
            bad_gateway(),
            reply(
                200,
                json!([
                    listed_deployment(4300, DEPLOYED_SHA, "someone else", created_at(0)),
                    listed_deployment(4242, DEPLOYED_SHA, "Deploy stack alb", created_at(1)),
                    listed_deployment(4000, DEPLOYED_SHA, "Deploy stack alb", created_at(3600)),
                ]),
            ),
        ])
        .await;
        let api = github.api();

        let deployment_id = api
            .create_deployment(DEPLOYED_SHA, "production", "Deploy stack alb")
            .await
            .unwrap();

        assert_eq!(deployment_id, 4242);
        let requests = github.requests();
        assert_eq!(
            calls(&requests),
            [
                ("POST", "/repos/octo-org/infra/deployments"),
                (
                    "GET",
                    "/repos/octo-org/infra/deployments?sha=0123456789abcdef0123456789abcdef01234567&environment=production&per_page=100"
                ),
            ]
        );
        requests.iter().for_each(assert_authorized);
        let recoveries = api.take_recoveries();
        assert_eq!(
            recoveries[0].outcome,
            RecoveryOutcome::ConfirmedDone {
                evidence: "deployment 4242".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn create_deployment_of_a_branch_is_looked_up_by_ref_and_sent_again_when_missing() {
        let github = FakeGithub::start(vec![
            bad_gateway(),
            reply(200, json!([])),
            reply(201, json!({"id": 4243})),
        ])
        .await;

        let deployment_id = github
            .api()
            .create_deployment("release/2.0", "pre prod", "Deploy")
            .await
            .unwrap();

        assert_eq!(deployment_id, 4243);
        assert_eq!(
            calls(&github.requests()),
            [
                ("POST", "/repos/octo-org/infra/deployments"),
                (
                    "GET",
                    "/repos/octo-org/infra/deployments?ref=release/2.0&environment=pre%20prod&per_page=100"
                ),
                ("POST", "/repos/octo-org/infra/deployments"),
            ]
        );
    }

    #[tokio::test]
    async fn deployment_status_answered_502_after_recording_is_found_and_not_posted_again() {
        let github = FakeGithub::start(vec![
            bad_gateway(),
            reply(
                200,
                json!([
                    {"id": 12, "state": "success", "description": "Stack alb is up to date", "created_at": created_at(0)},
                    {"id": 11, "state": "in_progress", "description": "deploying", "created_at": created_at(60)},
                ]),
            ),
        ])
        .await;
        let api = github.api();

        api.set_deployment_status(
            4242,
            DeploymentState::Success,
            Some("https://alb.example.com"),
            None,
            "Stack alb is up to date",
        )
        .await
        .unwrap();

        assert_eq!(
            calls(&github.requests()),
            [
                ("POST", "/repos/octo-org/infra/deployments/4242/statuses"),
                (
                    "GET",
                    "/repos/octo-org/infra/deployments/4242/statuses?per_page=100"
                ),
            ]
        );
        assert_eq!(
            api.take_recoveries()[0].outcome,
            RecoveryOutcome::ConfirmedDone {
                evidence: "status 12 of deployment 4242".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn deployment_status_not_found_after_a_502_is_posted_once_more_with_the_same_body() {
        let github = FakeGithub::start(vec![
            bad_gateway(),
            // An earlier status of the same state is not ours.
            reply(
                200,
                json!([{"id": 11, "state": "in_progress", "description": "deploying", "created_at": created_at(3600)}]),
            ),
            reply(201, json!({"id": 13})),
        ])
        .await;

        github
            .api()
            .set_deployment_status(4242, DeploymentState::InProgress, None, None, "deploying")
            .await
            .unwrap();

        let requests = github.requests();
        assert_eq!(methods(&requests), ["POST", "GET", "POST"]);
        assert_eq!(requests[2].body, requests[0].body);
    }

    #[tokio::test]
    async fn comment_post_dropped_after_creating_is_found_by_its_marker_and_not_posted_again() {
        let marker = "<!-- ecs-stack-deploy:alb -->";
        let github = FakeGithub::start(vec![
            reply(200, json!([{"id": 1, "body": "LGTM"}])),
            dropped(),
            reply(
                200,
                json!([{"id": 1, "body": "LGTM"}, {"id": 99, "body": format!("{marker}\nplan")}]),
            ),
        ])
        .await;
        let api = github.api();

        let action = api
            .upsert_pull_request_comment(12, marker, "plan")
            .await
            .unwrap();

        assert_eq!(action, CommentAction::Created(99));
        assert_eq!(
            calls(&github.requests()),
            [
                (
                    "GET",
                    "/repos/octo-org/infra/issues/12/comments?per_page=100"
                ),
                ("POST", "/repos/octo-org/infra/issues/12/comments"),
                (
                    "GET",
                    "/repos/octo-org/infra/issues/12/comments?per_page=100"
                ),
            ]
        );
        let recoveries = api.take_recoveries();
        assert_eq!(
            recoveries[0].outcome,
            RecoveryOutcome::ConfirmedDone {
                evidence: "comment 99".to_owned()
            }
        );
        assert!(
            recoveries[0]
                .to_string()
                .starts_with("commenting on pull request #12"),
            "{}",
            recoveries[0]
        );
    }

    #[tokio::test]
    async fn comment_post_answered_502_with_a_marked_comment_of_another_body_edits_it_instead_of_posting_again()
     {
        let marker = "<!-- ecs-stack-deploy:alb -->";
        let github = FakeGithub::start(vec![
            reply(200, json!([])),
            bad_gateway(),
            reply(
                200,
                json!([{"id": 99, "body": format!("{marker}\nanother run's plan")}]),
            ),
            reply(200, json!({"id": 99, "body": "..."})),
        ])
        .await;

        let action = github
            .api()
            .upsert_pull_request_comment(12, marker, "plan")
            .await
            .unwrap();

        assert_eq!(action, CommentAction::Updated(99));
        let requests = github.requests();
        assert_eq!(methods(&requests), ["GET", "POST", "GET", "PATCH"]);
        assert_eq!(requests[3].path, "/repos/octo-org/infra/issues/comments/99");
        assert_eq!(
            requests[3].body,
            Some(json!({"body": "<!-- ecs-stack-deploy:alb -->\nplan"}))
        );
    }

    #[tokio::test]
    async fn comment_edit_answered_502_and_still_showing_the_old_body_is_sent_once_more() {
        let marker = "<!-- ecs-stack-deploy:alb -->";
        let old = json!([{"id": 555, "body": format!("{marker}\nold plan")}]);
        let github = FakeGithub::start(vec![
            reply(200, old.clone()),
            bad_gateway(),
            reply(200, old),
            reply(200, json!({"id": 555, "body": "..."})),
        ])
        .await;

        let action = github
            .api()
            .upsert_pull_request_comment(12, marker, "new plan")
            .await
            .unwrap();

        assert_eq!(action, CommentAction::Updated(555));
        let requests = github.requests();
        assert_eq!(methods(&requests), ["GET", "PATCH", "GET", "PATCH"]);
        assert_eq!(
            requests[3].body,
            Some(json!({"body": "<!-- ecs-stack-deploy:alb -->\nnew plan"}))
        );
    }

    #[tokio::test]
    async fn a_read_that_fails_with_500_once_is_retried_and_succeeds() {
        let github = FakeGithub::start(vec![
            reply(500, json!({"message": "Server Error"})),
            reply(200, json!([])),
            reply(201, json!({"id": 99, "body": "..."})),
        ])
        .await;

        let action = github
            .api()
            .upsert_pull_request_comment(12, "<!-- ecs-stack-deploy:alb -->", "plan")
            .await
            .unwrap();

        assert_eq!(action, CommentAction::Created(99));
        assert_eq!(
            calls(&github.requests()),
            [
                (
                    "GET",
                    "/repos/octo-org/infra/issues/12/comments?per_page=100"
                ),
                (
                    "GET",
                    "/repos/octo-org/infra/issues/12/comments?per_page=100"
                ),
                ("POST", "/repos/octo-org/infra/issues/12/comments"),
            ]
        );
    }

    #[tokio::test]
    async fn a_read_is_sent_three_times_at_most() {
        let github = FakeGithub::start(vec![
            reply(500, json!({"message": "Server Error"})),
            reply(503, json!({"message": "Service Unavailable"})),
            reply(502, json!({"message": "Bad Gateway"})),
            reply(200, json!([])),
        ])
        .await;

        let error = github
            .api()
            .upsert_pull_request_comment(12, "<!-- ecs-stack-deploy:alb -->", "plan")
            .await
            .unwrap_err();

        assert_eq!(methods(&github.requests()), ["GET", "GET", "GET"]);
        assert!(
            matches!(error, GithubError::Rejected { status: 502, .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("listing the comments of pull request #12"),
            "{error}"
        );
    }

    #[test]
    fn dispatch_ref_name_filters_by_branch_only_for_refs_heads() {
        let cases = [
            ("refs/heads/main", ("main", Some("main"))),
            ("refs/heads/feature/x", ("feature/x", Some("feature/x"))),
            ("refs/tags/v1.2.3", ("v1.2.3", None)),
            ("main", ("main", None)),
        ];
        for (git_ref, expected) in cases {
            assert_eq!(dispatch_ref_name(git_ref), expected, "{git_ref}");
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("release/2.0"), "release/2.0");
        assert_eq!(
            encode_query_value("pre prod&x#y+z"),
            "pre%20prod%26x%23y%2Bz"
        );
        assert_eq!(
            encode_query_value(">=2024-05-01T12:00:00Z"),
            "%3E%3D2024-05-01T12%3A00%3A00Z"
        );
    }

    #[test]
    fn only_a_full_hex_sha_is_a_commit_sha() {
        assert!(is_commit_sha(DEPLOYED_SHA));
        assert!(!is_commit_sha("0123abc"));
        assert!(!is_commit_sha("main"));
        assert!(!is_commit_sha(&"g".repeat(40)));
    }

    #[test]
    fn created_since_allows_nothing_before_the_earliest_and_skips_bad_timestamps() {
        let earliest = humantime::parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
        assert!(created_since("2024-05-01T12:00:00Z", earliest));
        assert!(created_since("2024-05-01T12:00:01Z", earliest));
        assert!(!created_since("2024-05-01T11:59:59Z", earliest));
        assert!(!created_since("yesterday", earliest));
    }
}
