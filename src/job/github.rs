//! The job's GitHub side: a deployment record, workflow dispatches and the
//! pull request comment. It exists only when a feature asks for it, and it
//! starts after the plan, so a bad input never leaves a deployment
//! `in_progress`.

use std::collections::BTreeMap;

use super::prepare::{Prepared, RunContext};
use crate::console::Console;
use crate::env::Environment;
use crate::github::api::{DeploymentState, GithubApi};
use crate::inputs::GithubInputs;
use crate::proxy::ProxySettings;
use crate::report::{JobReport, action_outputs, fill_output_references, markdown_summary};

pub struct GithubRun {
    api: GithubApi,
    deployment_id: Option<u64>,
}

impl GithubRun {
    /// Says, in the log, which GitHub calls succeeded only after an
    /// ambiguous answer (confirmed done, or sent once more).
    fn log_recoveries(&self, console: &Console) {
        for recovery in self.api.take_recoveries() {
            console.line(&recovery.to_string());
        }
    }

    /// Connects when a feature of the prepared job needs GitHub, to
    /// `GITHUB_API_URL` (github.com's API when unset) through the job's
    /// proxy.
    pub fn connect(
        prepared: &Prepared,
        run: &RunContext,
        console: &Console,
        env: &Environment,
    ) -> anyhow::Result<Option<Self>> {
        Self::connect_for(&prepared.inputs.github, &prepared.proxy, run, console, env)
    }

    /// [`GithubRun::connect`] for inputs of the job's own (a system's
    /// dispatches).
    pub fn connect_for(
        inputs: &GithubInputs,
        proxy: &ProxySettings,
        run: &RunContext,
        console: &Console,
        env: &Environment,
    ) -> anyhow::Result<Option<Self>> {
        let wanted = !inputs.dispatch_workflows.is_empty()
            || inputs.environment.is_some()
            || run.is_review_of_pull_request();
        let Some(token) = inputs.token.as_deref().filter(|_| wanted) else {
            return Ok(None);
        };
        let api_url = env
            .get("GITHUB_API_URL")
            .unwrap_or("https://api.github.com");
        console.mask(token);
        let repository = run.repository.as_deref().unwrap_or_default();
        let api = GithubApi::new(token, api_url, repository, proxy)?;
        Ok(Some(Self {
            api,
            deployment_id: None,
        }))
    }

    /// With `environment`, records the deployment as in_progress before
    /// anything is applied.
    pub async fn start_deployment(
        &mut self,
        inputs: &GithubInputs,
        run: &RunContext,
        console: &Console,
    ) -> anyhow::Result<()> {
        let Some(environment) = &inputs.environment else {
            return Ok(());
        };
        let sha = run.deployed_commit();
        let id = self
            .api
            .create_deployment(&sha, environment, "ecs-stack-deploy")
            .await?;
        self.deployment_id = Some(id);
        self.api
            .set_deployment_status(
                id,
                DeploymentState::InProgress,
                None,
                run.run_url.as_deref(),
                "deploying",
            )
            .await?;
        self.log_recoveries(console);
        console.line(&format!(
            "GitHub deployment {id} to environment {environment} is in progress"
        ));
        Ok(())
    }

    /// After a successful deploy: triggers the downstream workflows with
    /// inputs filled from this run's outputs, recording each as it is sent.
    pub async fn dispatch(
        &self,
        inputs: &GithubInputs,
        run: &RunContext,
        console: &Console,
        report: &mut JobReport,
    ) -> anyhow::Result<()> {
        if inputs.dispatch_workflows.is_empty() {
            return Ok(());
        }
        let outputs = action_outputs(report).values;
        let mut filled = BTreeMap::new();
        for (name, value) in &inputs.dispatch_inputs {
            let value = fill_output_references(value, &outputs)
                .map_err(|e| anyhow::anyhow!("dispatch-inputs `{name}`: {e}"))?;
            filled.insert(name.clone(), value);
        }
        self.dispatch_filled(inputs, &filled, run, console, &mut report.dispatched)
            .await
    }

    /// Triggers `inputs`' workflows with the inputs `filled`, adding each
    /// (workflow, ref) to `dispatched` as it is sent, so a failure half way
    /// is reported with what was sent before it.
    pub async fn dispatch_filled(
        &self,
        inputs: &GithubInputs,
        filled: &BTreeMap<String, String>,
        run: &RunContext,
        console: &Console,
        dispatched: &mut Vec<(String, String)>,
    ) -> anyhow::Result<()> {
        let git_ref = inputs
            .dispatch_ref
            .clone()
            .or_else(|| run.git_ref.clone())
            .unwrap_or_else(|| "main".to_string());
        let _section = console.phase("Dispatch workflows");
        for workflow in &inputs.dispatch_workflows {
            let sent = self.api.dispatch_workflow(workflow, &git_ref, filled).await;
            self.log_recoveries(console);
            sent?;
            console.line(&format!("triggered {workflow} on {git_ref}"));
            dispatched.push((workflow.clone(), git_ref.clone()));
        }
        Ok(())
    }

    /// Closes the deployment record and comments on the pull request.
    /// Problems here are reported but do not change the outcome: the
    /// deploy itself is done.
    pub async fn finish(
        &self,
        inputs: &GithubInputs,
        review_only: bool,
        run: &RunContext,
        console: &Console,
        report: &mut JobReport,
        error: Option<&str>,
    ) {
        if let Some(id) = self.deployment_id {
            let url = inputs.environment_url_output.as_deref().and_then(|key| {
                report
                    .stack
                    .as_ref()
                    .and_then(|s| s.outputs.iter().find(|o| o.key == key))
                    .map(|o| o.value.clone())
            });
            let (state, description) = match error {
                None => (DeploymentState::Success, "deployed".to_string()),
                // `failure` when something was applied and failed, `error`
                // when the deploy could not run at all.
                Some(error) => match (report.root_causes().first(), report.apply_started) {
                    (Some(cause), _) => (DeploymentState::Failure, cause.clone()),
                    (None, true) => (DeploymentState::Failure, error.to_string()),
                    (None, false) => (DeploymentState::Error, error.to_string()),
                },
            };
            match self
                .api
                .set_deployment_status(
                    id,
                    state,
                    url.as_deref(),
                    run.run_url.as_deref(),
                    &description,
                )
                .await
            {
                Ok(()) => {
                    self.log_recoveries(console);
                    report.deployment_url = url;
                }
                Err(e) => console.error(&format!("updating GitHub deployment {id}: {e}")),
            }
        }
        if review_only && let Some(deployment) = &report.stack {
            let marker = format!("<!-- ecs-stack-deploy:{} -->", deployment.stack_name);
            let body = markdown_summary(report, console.elapsed(), error);
            self.comment_on_pull_request(run, console, &marker, &body)
                .await;
        }
    }

    /// On a pull request run, keeps one comment carrying `marker` on the
    /// pull request: created, or edited to `body`. A problem is a warning:
    /// the deploy itself is done.
    pub async fn comment_on_pull_request(
        &self,
        run: &RunContext,
        console: &Console,
        marker: &str,
        body: &str,
    ) {
        let Some(number) = run
            .pull_request_number()
            .filter(|_| run.is_review_of_pull_request())
        else {
            return;
        };
        match self
            .api
            .upsert_pull_request_comment(number, marker, body)
            .await
        {
            Ok(action) => {
                self.log_recoveries(console);
                console.line(&format!(
                    "pull request #{number}: change set summary {action:?}"
                ));
            }
            Err(e) => console.warning(&format!("commenting on pull request #{number}: {e}")),
        }
    }
}
