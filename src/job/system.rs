//! A whole system in one step (`stacks`: a manifest): every stack's inputs
//! are checked before any AWS call (the manifest, the graph, each stack's
//! inputs phase), every stack whose inputs are all known is planned before
//! the first change, then the stacks deploy in dependency order, up to
//! `max-parallel` at once, each through the same plan and apply as a
//! single deploy, with its log lines prefixed by its key. A stack whose
//! values come from another's outputs is planned when those are known
//! ("known after apply"); a refusal then is a failure after a change, and
//! says so. Fail-fast: after a failure no new stack starts; those running
//! finish. One report for the system: the workflows of `dispatch-workflows`
//! once every stack deployed (inputs from `{{ stacks.X.outputs.Y }}`,
//! checked before any AWS call), `outputs` by stack, `stacks-status`,
//! `<stack>-<Key>` per output, `dispatched-workflows`.
//!
//! Also here: `mode: destroy` (each stack deleted after those that depend
//! on it, termination protection refused first), the service catalog's
//! removed entries (reported; deleted with `prune`), and a signal (every
//! stack in flight cleaned up as a single deploy's cancel does).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value as Json, json};

use super::cancel::{CancelOptions, cancel};
use super::github::GithubRun;
use super::prepare::{ResultFiles, RunContext, prepare_with_parameters, result_files};
use super::{
    Clients, JobError, JobSettings, Outcome, Prepared, cancel_options, deploy_settings,
    inputs_gate, mask_no_echo, report_bad_inputs,
};
use crate::apply::apply_plan;
use crate::aws::aws_error;
use crate::console::Console;
use crate::env::Environment;
use crate::github::output::{append_outputs, append_summary};
use crate::inputs::{GithubInputs, InputError, InputErrors, RawInputs, github_inputs};
use crate::plan::{Plan, build_plan};
use crate::references::references;
use crate::report::{JobReport, dispatched_json, markdown_cell, markdown_summary};
use crate::stack::destroy::{DestroyTarget, delete_stack, read_destroy_target};
use crate::stack::parameters::{OverrideValue, ParameterOverride};
use crate::stack::wait::PollSchedule;
use crate::system::graph::{SystemGraph, TemplateFacts, Why, build_graph, template_facts};
use crate::system::manifest::{
    CATALOG_TAG, Manifest, ManifestError, ManifestStack, NOT_WITH_STACKS, NOT_WITH_STACKS_FIX,
    NOT_WITH_STACKS_PROBLEM, OutputReference, ParameterValue, SERVICE_TAG, SYSTEM_DISPATCH_INPUTS,
    fill_outputs, parse_output_reference, read_manifest,
};

/// Inputs that belong to one stack: given beside `stacks`, they would
/// apply to every stack, which is never meant.
const PER_STACK_ONLY: &[&str] = &["name", "stack-name", "template", "parameter-overrides"];

/// The step's inputs that are the system's, never one stack's: the
/// manifest, the parallelism and the overlay (`environment`); with
/// [`SYSTEM_DISPATCH_INPUTS`], the dispatches made once every stack deployed.
const SYSTEM_INPUTS: &[&str] = &["stacks", "max-parallel", "environment"];

/// What every stack's run shares.
struct SystemRun<'a> {
    raw: &'a RawInputs,
    env: &'a Environment,
    run: &'a RunContext,
    console: &'a Console,
    settings: &'a JobSettings,
    manifest: &'a Manifest,
}

/// A stack in flight, as a cancel needs it: what it applied so far, the
/// AWS configuration it applies with, and whether its change set was to
/// be executed. Locked by the stack's run while it runs; a signal drops
/// the run (releasing it) and reads it to clean up.
#[derive(Default)]
struct InFlight {
    report: JobReport,
    config: Option<aws_config::SdkConfig>,
    options: CancelOptions,
}

type Slot = Arc<tokio::sync::Mutex<InFlight>>;

/// How one stack of the system ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StackState {
    Done,
    /// Destroy: deleted, or not there to delete.
    Deleted,
    Absent,
    /// Its entry left the service catalog; its stack stays (no `prune`).
    Removed(String),
    Failed(String),
    /// Not started: why (an upstream failed, fail-fast).
    NotStarted(String),
    /// Not planned: its inputs come from an upstream whose changes were
    /// planned, not applied (`no-execute-changeset`).
    KnownAfterApply(String),
}

impl StackState {
    /// Why it did not deploy, if it did not.
    fn reason(&self) -> Option<&str> {
        match self {
            StackState::Done | StackState::Deleted | StackState::Absent => None,
            StackState::Failed(why)
            | StackState::NotStarted(why)
            | StackState::KnownAfterApply(why)
            | StackState::Removed(why) => Some(why),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            StackState::Done => "done",
            StackState::Deleted => "deleted",
            StackState::Absent => "absent",
            StackState::Removed(_) => "removed",
            StackState::Failed(_) => "failed",
            StackState::NotStarted(_) => "not started",
            StackState::KnownAfterApply(_) => "known after apply",
        }
    }
}

/// One stack's end: its state and what it applied.
struct StackEnd {
    key: String,
    state: StackState,
    report: JobReport,
}

impl StackEnd {
    /// `planned` for a stack whose change set was made and not executed.
    fn label(&self) -> &'static str {
        let planned_only = self
            .report
            .stack
            .as_ref()
            .is_some_and(|s| s.has_changes && !s.executed);
        if self.state == StackState::Done && planned_only {
            "planned"
        } else {
            self.state.label()
        }
    }
}

/// Runs the system of the manifest `raw`'s `stacks` names.
pub async fn deploy_system(raw: &RawInputs, env: &Environment, settings: JobSettings) -> Outcome {
    let console = Console::to(env.is_github_actions(), settings.log.clone());
    let run = RunContext::read(env);
    let Some(file) = raw.value("stacks").map(str::to_string) else {
        return Outcome::BadInput;
    };

    // inputs: the runner's files, the manifest, the graph, every stack's
    // inputs phase
    let files = match result_files(env) {
        Ok(files) => files,
        Err(error) => return report_bad_inputs(&console, &InputErrors::from(error)),
    };
    // `mode: destroy` is the system's; each stack is read with the
    // default mode.
    let destroy = raw.value("mode") == Some("destroy");
    let stack_raw = if destroy {
        raw.without(&["mode"])
    } else {
        raw.clone()
    };
    let raw = &stack_raw;
    let checked = {
        let _section = console.phase("Validate the system");
        check_system(raw, env, &run, &file, &console)
    };
    let CheckedSystem {
        manifest,
        graph,
        mut stacks,
        max_parallel,
        github,
    } = match checked {
        Ok(checked) => checked,
        Err(errors) => return report_bad_inputs(&console, &errors),
    };
    if destroy && !github.dispatch_workflows.is_empty() {
        return report_bad_inputs(
            &console,
            &InputErrors::from(InputError::new(
                "dispatch-workflows",
                &github.dispatch_workflows.join(","),
                "does not apply to `mode: destroy`: a destroyed system has no outputs to hand on",
                "leave it out, or dispatch from a step of its own after the destroy",
            )),
        );
    }
    // The single deploy's run gate (the event, lint-workflows, the region),
    // once; every stack's NoEcho values masked.
    if let Some(first) = stacks.values().next() {
        for other in stacks.values().skip(1) {
            mask_no_echo(other, &console);
        }
        if let Some(gate) = inputs_gate(first, env, &run, &console) {
            return gate;
        }
    }
    {
        let _section = console.phase("System");
        for key in &graph.order {
            let upstreams = &graph.upstreams[key];
            let name = manifest
                .stack(key)
                .map_or(key.as_str(), |s| s.name.as_str());
            if upstreams.is_empty() {
                console.plain(&format!("{key} (stack {name})"));
            } else {
                let after: Vec<String> = upstreams
                    .iter()
                    .map(|(upstream, why)| {
                        let why: Vec<String> = why.iter().map(ToString::to_string).collect();
                        format!("{upstream}: {}", why.join(", "))
                    })
                    .collect();
                console.plain(&format!("{key} (stack {name}) after {}", after.join("; ")));
            }
        }
        console.plain(&format!(
            "at most {max_parallel} stack(s) at once; a failure starts no new stack"
        ));
        if !github.dispatch_workflows.is_empty() {
            console.plain(&format!(
                "once every stack deployed: dispatch {}",
                github.dispatch_workflows.join(", ")
            ));
        }
    }

    if destroy {
        return destroy_system(
            &console,
            &files,
            &manifest,
            &graph,
            &stacks,
            max_parallel,
            env,
            &settings,
        )
        .await;
    }

    // the service catalog: stacks of entries no longer in it
    let removed = match removed_services(&manifest, &stacks, env).await {
        Ok(removed) => removed,
        Err(error) => {
            return finish_early(&console, &files, &manifest, &graph, Some(error));
        }
    };
    let prune = manifest.catalog.as_ref().is_some_and(|c| c.prune);
    if !removed.is_empty() {
        let _section = console.phase("Removed from the service catalog");
        for gone in &removed {
            console.plain(&format!(
                "{}: stack {} ({}){}",
                gone.entry,
                gone.stack_name,
                gone.status,
                if prune {
                    ": deleted after the deploy (prune)"
                } else {
                    ": kept (prune: true deletes it)"
                }
            ));
        }
        let protected: Vec<&str> = removed
            .iter()
            .filter(|gone| gone.protected)
            .map(|gone| gone.stack_name.as_str())
            .collect();
        if prune && !protected.is_empty() {
            return report_bad_inputs(
                &console,
                &InputErrors::from(InputError::new(
                    "stacks",
                    &manifest.file,
                    format!(
                        "prune would delete stacks with termination protection: {}",
                        protected.join(", ")
                    ),
                    "turn it off first, or set prune: false",
                )),
            );
        }
    }

    // plan: every stack whose inputs are all known, before any change
    let mut planned: BTreeMap<String, (Plan, Clients)> = BTreeMap::new();
    let mut refused = Vec::new();
    for key in &graph.order {
        let Some(stack) = manifest.stack(key) else {
            continue;
        };
        if !stack.output_references().is_empty() {
            continue;
        }
        let prefixed = console.for_stack(key);
        let prepared = &stacks[key];
        let clients = match Clients::for_job(prepared, env).await {
            Ok(clients) => clients,
            Err(error) => {
                return finish_early(&console, &files, &manifest, &graph, Some(error));
            }
        };
        let plan = {
            let _section = prefixed.phase("Plan");
            build_plan(
                prepared,
                &clients,
                &deploy_settings(&clients, prepared, &settings, &run),
                &prefixed,
            )
            .await
        };
        match plan {
            Ok(plan) => {
                for line in plan.to_string().lines() {
                    prefixed.plain(line);
                }
                planned.insert(key.clone(), (plan, clients));
            }
            Err(JobError::BadInput(errors)) => refused.extend(errors.0),
            Err(error) => {
                return finish_early(&console, &files, &manifest, &graph, Some(error));
            }
        }
    }
    if !refused.is_empty() {
        return report_bad_inputs(&console, &InputErrors(refused));
    }
    for key in &graph.order {
        if !planned.contains_key(key) {
            console.plain(&format!(
                "{key}: planned once {} deployed (its values are known after apply)",
                upstream_list(&graph, key)
            ));
        }
    }
    if stacks.values().any(|p| p.inputs.verify_only) {
        console.line("verify-only: the plans and their checks passed; stopping before any change");
        return finish_early(&console, &files, &manifest, &graph, None);
    }

    if let Some(signal) = settings.termination.signal() {
        let error = JobError::Cancelled(format!(
            "the job was cancelled ({signal}) before any change; nothing was changed in AWS"
        ));
        return finish_early(&console, &files, &manifest, &graph, Some(error));
    }

    // What the report needs of the stacks' inputs, read before their runs
    // take them: whether this is a pull request's plan, and the proxy the
    // GitHub calls go through.
    let review = run.is_review_of_pull_request()
        && stacks.values().all(|p| {
            p.inputs
                .stack
                .as_ref()
                .is_none_or(|s| !s.execute_change_set)
        });
    let proxy = stacks
        .values()
        .next()
        .map(|p| p.proxy.clone())
        .unwrap_or_default();

    // apply: in dependency order, up to max-parallel at once
    let system = SystemRun {
        raw,
        env,
        run: &run,
        console: &console,
        settings: &settings,
        manifest: &manifest,
    };
    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    let mut cancelled: Option<JobError> = None;
    let mut ends: Vec<StackEnd> = Vec::new();
    let mut outputs: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut running = FuturesUnordered::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut failed = false;
    loop {
        if !failed {
            for key in &graph.order {
                if running.len() >= max_parallel {
                    break;
                }
                if started.contains(key) {
                    continue;
                }
                let upstream_ends: Vec<&StackEnd> = graph.upstreams[key]
                    .keys()
                    .filter_map(|upstream| ends.iter().find(|end| &end.key == upstream))
                    .collect();
                if upstream_ends.len() < graph.upstreams[key].len()
                    || upstream_ends.iter().any(|end| {
                        !matches!(end.state, StackState::Done | StackState::KnownAfterApply(_))
                    })
                {
                    continue;
                }
                // Plan mode: what an upstream's unapplied changes feed is
                // known only after they are applied (an order alone is not).
                if let Some(upstream) = upstream_ends.iter().find(|end| {
                    let feeds = graph.upstreams[key][&end.key]
                        .iter()
                        .any(|why| !matches!(why, Why::DependsOn));
                    feeds
                        && (matches!(end.state, StackState::KnownAfterApply(_))
                            || end
                                .report
                                .stack
                                .as_ref()
                                .is_some_and(|s| s.has_changes && !s.executed))
                }) {
                    started.insert(key.clone());
                    ends.push(StackEnd {
                        key: key.clone(),
                        state: StackState::KnownAfterApply(format!(
                            "its inputs come from {}, whose changes are planned but not applied",
                            upstream.key
                        )),
                        report: JobReport::default(),
                    });
                    continue;
                }
                started.insert(key.clone());
                let Some(stack) = manifest.stack(key) else {
                    continue;
                };
                let early = planned.remove(key);
                let prepared = stacks.remove(key);
                let slot = Slot::default();
                slots.insert(key.clone(), slot.clone());
                running.push(run_stack(
                    stack,
                    prepared,
                    early,
                    // Every upstream is done: the outputs it needs are known.
                    outputs.clone(),
                    &system,
                    slot,
                ));
            }
        }
        let next = tokio::select! {
            end = running.next() => Ok(end),
            signal = settings.termination.received() => Err(signal),
        };
        let end = match next {
            Ok(Some(end)) => end,
            Ok(None) => break,
            Err(signal) => {
                // Dropping the runs stops their waits and releases their
                // slots; each stack in flight is then cleaned up as a
                // single deploy's cancel would.
                drop(running);
                let mut messages = Vec::new();
                for (key, slot) in &slots {
                    if ends.iter().any(|end| &end.key == key) {
                        continue;
                    }
                    let mut in_flight = slot.lock().await;
                    let InFlight {
                        report,
                        config,
                        options,
                    } = &mut *in_flight;
                    let message = cancel(
                        signal,
                        *options,
                        config.as_ref(),
                        &console.for_stack(key),
                        report,
                    )
                    .await;
                    messages.push(format!("{key}: {message}"));
                    ends.push(StackEnd {
                        key: key.clone(),
                        state: StackState::Failed(message),
                        report: std::mem::take(report),
                    });
                }
                cancelled = Some(JobError::Cancelled(format!(
                    "the job was cancelled ({signal}); {}",
                    if messages.is_empty() {
                        "no stack was in flight".to_string()
                    } else {
                        messages.join("; ")
                    }
                )));
                break;
            }
        };
        if let StackState::Failed(_) = &end.state {
            failed = true;
        }
        if end.state == StackState::Done {
            let values = end
                .report
                .stack
                .as_ref()
                .map(|s| {
                    s.outputs
                        .iter()
                        .map(|o| (o.key.clone(), o.value.clone()))
                        .collect()
                })
                .unwrap_or_default();
            outputs.insert(end.key.clone(), values);
        }
        ends.push(end);
    }
    for key in &graph.order {
        if !ends.iter().any(|end| &end.key == key) {
            let blocked: Vec<&String> = graph.upstreams[key]
                .keys()
                .filter(|u| {
                    !ends
                        .iter()
                        .any(|e| &e.key == *u && e.state == StackState::Done)
                })
                .collect();
            let why = if cancelled.is_some() {
                "the job was cancelled first".to_string()
            } else if blocked.is_empty() {
                "a stack failed, so no new stack was started".to_string()
            } else {
                format!(
                    "waits for {}, which did not deploy",
                    blocked
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            ends.push(StackEnd {
                key: key.clone(),
                state: StackState::NotStarted(why),
                report: JobReport::default(),
            });
        }
    }
    let succeeded = cancelled.is_none() && !failed;
    // Removed entries depend on nothing the run deployed: they are pruned up
    // to max-parallel at once, and reported in the catalog's order.
    let pruned: Vec<StackEnd> = futures_util::stream::iter(
        removed
            .into_iter()
            .map(|gone| prune_entry(gone, prune, succeeded, &console, &settings)),
    )
    .buffered(max_parallel)
    .collect()
    .await;
    ends.extend(pruned);

    // report: the dispatches once everything deployed, the pull request's
    // comment, the outputs
    let github_run = GithubRun::connect_for(&github, &proxy, &run, &console, env);
    let mut dispatched = Vec::new();
    let mut error = cancelled;
    if error.is_none() && !github.dispatch_workflows.is_empty() {
        let dispatch = dispatch_system(
            &github,
            github_run.as_ref(),
            &outputs,
            &ends,
            &system,
            &mut dispatched,
        );
        error = tokio::select! {
            result = dispatch => result.err(),
            signal = settings.termination.received() => Some(JobError::Cancelled(format!(
                "the job was cancelled ({signal}) while dispatching workflows"
            ))),
        };
    }
    if review {
        match &github_run {
            Ok(Some(github_run)) => {
                let (marker, body) = review_comment(&manifest, &graph, &ends, console.elapsed());
                github_run
                    .comment_on_pull_request(&run, &console, &marker, &body)
                    .await;
            }
            Ok(None) => {}
            // Only a comment: the plan itself stands.
            Err(error) => console.warning(&format!("commenting on the pull request: {error:#}")),
        }
    }
    finish(
        &console,
        &files,
        &manifest,
        &graph,
        ends,
        &dispatched,
        error,
    )
}

/// After the system deployed: its workflows dispatched with the stacks'
/// outputs filled in, each recorded in `dispatched` as it is sent. Not
/// when a stack failed, was only planned or waits on one that was (the
/// log says why).
async fn dispatch_system(
    github: &GithubInputs,
    github_run: Result<&Option<GithubRun>, &anyhow::Error>,
    outputs: &BTreeMap<String, Vec<(String, String)>>,
    ends: &[StackEnd],
    system: &SystemRun<'_>,
    dispatched: &mut Vec<(String, String)>,
) -> Result<(), JobError> {
    let console = system.console;
    let deployed = ends.iter().all(|end| {
        end.label() != "planned"
            && matches!(
                end.state,
                StackState::Done
                    | StackState::Deleted
                    | StackState::Absent
                    | StackState::Removed(_)
            )
    });
    if !deployed {
        console.line(&format!(
            "not dispatching {}: the system was not deployed in full",
            github.dispatch_workflows.join(", ")
        ));
        return Ok(());
    }
    let github_run = match github_run {
        Ok(Some(github_run)) => github_run,
        // A dispatch needs a token, checked with the inputs.
        Ok(None) => return Ok(()),
        Err(error) => {
            return Err(JobError::Failed(anyhow::anyhow!(
                "connecting to GitHub to dispatch {}: {error:#}",
                github.dispatch_workflows.join(", ")
            )));
        }
    };
    let lookup = |wanted: &OutputReference| {
        outputs.get(&wanted.stack).and_then(|values| {
            values
                .iter()
                .find(|(key, _)| key == &wanted.output)
                .map(|(_, value)| value.clone())
        })
    };
    let mut filled = BTreeMap::new();
    for (name, value) in &github.dispatch_inputs {
        let text = fill_outputs(value, &lookup).map_err(|missing| {
            JobError::Failed(anyhow::anyhow!(
                "dispatch-inputs `{name}`: stack `{}` has no output `{}` after its deploy (an output whose Condition is false is left out), so no workflow was dispatched",
                missing.stack,
                missing.output
            ))
        })?;
        filled.insert(name.clone(), text);
    }
    github_run
        .dispatch_filled(github, &filled, system.run, console, dispatched)
        .await
        .map_err(JobError::Failed)
}

/// What becomes of a stack whose catalog entry is gone: kept and reported,
/// or deleted with `prune` once the rest of the system deployed.
async fn prune_entry(
    gone: RemovedService,
    prune: bool,
    succeeded: bool,
    console: &Console,
    settings: &JobSettings,
) -> StackEnd {
    let state = if !prune {
        StackState::Removed(format!(
            "removed from the service catalog; its stack {} is still deployed (prune: true deletes it)",
            gone.stack_name
        ))
    } else if !succeeded {
        StackState::NotStarted("not pruned: the deploy did not succeed".into())
    } else if gone.executes {
        let prefixed = console.for_stack(&gone.entry);
        let client = aws_sdk_cloudformation::Client::new(&gone.config);
        let _section = prefixed.phase(&format!("Prune stack {}", gone.stack_name));
        deleted_state(
            &client,
            &gone.stack_name,
            &gone.stack_id,
            settings.poll,
            gone.wait_timeout,
            &prefixed,
        )
        .await
    } else {
        StackState::NotStarted("not pruned: changes are planned, not executed".into())
    };
    StackEnd {
        key: gone.entry,
        state,
        report: JobReport::default(),
    }
}

/// Deletes a stack and waits: `Deleted`, or `Failed` with the reason
/// (also logged).
async fn deleted_state(
    client: &aws_sdk_cloudformation::Client,
    name: &str,
    stack_id: &str,
    poll: PollSchedule,
    timeout: std::time::Duration,
    console: &Console,
) -> StackState {
    match delete_stack(client, name, stack_id, poll, timeout, console).await {
        Ok(()) => StackState::Deleted,
        Err(error) => {
            console.error(&format!("{error:#}"));
            StackState::Failed(format!("{error:#}"))
        }
    }
}

/// A stack whose entry left the service catalog.
struct RemovedService {
    entry: String,
    stack_name: String,
    stack_id: String,
    status: String,
    protected: bool,
    config: aws_config::SdkConfig,
    wait_timeout: std::time::Duration,
    /// Whether the run executes changes (not plan mode).
    executes: bool,
}

/// The stacks tagged with this manifest's catalog whose entry is gone
/// (read-only: DescribeStacks, every page), in the catalog's region.
async fn removed_services(
    manifest: &Manifest,
    stacks: &BTreeMap<String, Prepared>,
    env: &Environment,
) -> Result<Vec<RemovedService>, JobError> {
    let Some(catalog) = &manifest.catalog else {
        return Ok(Vec::new());
    };
    let Some(prepared) = catalog.entries.iter().find_map(|entry| stacks.get(entry)) else {
        return Ok(Vec::new());
    };
    let clients = Clients::for_job(prepared, env).await?;
    let client = aws_sdk_cloudformation::Client::new(&clients.config);
    let mut pages = client.describe_stacks().into_paginator().send();
    let mut removed = Vec::new();
    let stack_options = prepared.inputs.stack.as_ref();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            JobError::Failed(
                aws_error(e).context("listing the stacks, for services removed from the catalog"),
            )
        })?;
        for stack in page.stacks() {
            let tag = |key: &str| {
                stack
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
            };
            let (Some(file), Some(entry)) = (tag(CATALOG_TAG), tag(SERVICE_TAG)) else {
                continue;
            };
            if file != manifest.file || catalog.entries.iter().any(|e| e == entry) {
                continue;
            }
            removed.push(RemovedService {
                entry: entry.to_string(),
                stack_name: stack.stack_name().unwrap_or_default().to_string(),
                stack_id: stack.stack_id().unwrap_or_default().to_string(),
                status: stack
                    .stack_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                protected: stack.enable_termination_protection().unwrap_or(false),
                config: clients.config.clone(),
                wait_timeout: stack_wait_timeout(prepared),
                executes: stack_options.is_some_and(|s| s.execute_change_set),
            });
        }
    }
    Ok(removed)
}

/// Deletes the system's stacks, each after every stack that depends on
/// it: termination protection is read first, and a protected stack is a
/// bad input before any deletion; a stack that is not there is skipped;
/// after a failed deletion no new one starts (what it depends on stays).
#[allow(clippy::too_many_arguments)]
async fn destroy_system(
    console: &Console,
    files: &ResultFiles,
    manifest: &Manifest,
    graph: &SystemGraph,
    stacks: &BTreeMap<String, Prepared>,
    max_parallel: usize,
    env: &Environment,
    settings: &JobSettings,
) -> Outcome {
    let mut targets: BTreeMap<String, (DestroyTarget, Clients)> = BTreeMap::new();
    {
        let _section = console.phase("Plan the destroy");
        for key in graph.order.iter().rev() {
            let Some(prepared) = stacks.get(key) else {
                continue;
            };
            let name = stack_name(manifest, key);
            let read = async {
                let clients = Clients::for_job(prepared, env).await?;
                let client = aws_sdk_cloudformation::Client::new(&clients.config);
                let target = read_destroy_target(&client, name)
                    .await
                    .map_err(JobError::Failed)?;
                Ok::<_, JobError>((target, clients))
            };
            match read.await {
                Ok((target, clients)) => {
                    console.plain(&match &target {
                        DestroyTarget::Missing => {
                            format!("{key}: stack {name} does not exist: nothing to delete")
                        }
                        DestroyTarget::Present { status, .. } => {
                            format!("{key}: delete stack {name} ({status})")
                        }
                    });
                    targets.insert(key.clone(), (target, clients));
                }
                Err(error) => {
                    return finish_early(console, files, manifest, graph, Some(error));
                }
            }
        }
    }
    let protected: Vec<&str> = targets
        .iter()
        .filter(|(_, (target, _))| {
            matches!(
                target,
                DestroyTarget::Present {
                    protected: true,
                    ..
                }
            )
        })
        .map(|(key, _)| stack_name(manifest, key))
        .collect();
    if !protected.is_empty() {
        return report_bad_inputs(
            console,
            &InputErrors::from(InputError::new(
                "mode",
                "destroy",
                format!(
                    "would delete stacks with termination protection: {}",
                    protected.join(", ")
                ),
                "turn it off first (aws cloudformation update-termination-protection --no-enable-termination-protection --stack-name NAME), or leave those stacks out of the manifest",
            )),
        );
    }
    if let Some(signal) = settings.termination.signal() {
        let error = JobError::Cancelled(format!(
            "the job was cancelled ({signal}) before any deletion; nothing was changed in AWS"
        ));
        return finish_early(console, files, manifest, graph, Some(error));
    }
    let mut ends: Vec<StackEnd> = Vec::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut running = FuturesUnordered::new();
    let mut failed = false;
    let mut cancelled = None;
    loop {
        if !failed {
            for key in graph.order.iter().rev() {
                if running.len() >= max_parallel || started.contains(key) {
                    continue;
                }
                // Every stack that depends on this one is gone first.
                let blocked = graph.upstreams.iter().any(|(downstream, upstreams)| {
                    upstreams.contains_key(key)
                        && !ends.iter().any(|end| {
                            &end.key == downstream
                                && matches!(end.state, StackState::Deleted | StackState::Absent)
                        })
                });
                if blocked {
                    continue;
                }
                started.insert(key.clone());
                let Some((target, clients)) = targets.get(key) else {
                    continue;
                };
                let name = stack_name(manifest, key);
                let prefixed = console.for_stack(key);
                let timeout = stacks
                    .get(key)
                    .map_or(DEFAULT_STACK_WAIT, stack_wait_timeout);
                let key = key.clone();
                running.push(async move {
                    let state = match target {
                        DestroyTarget::Missing => StackState::Absent,
                        DestroyTarget::Present { stack_id, .. } => {
                            let client = aws_sdk_cloudformation::Client::new(&clients.config);
                            let _section = prefixed.phase(&format!("Delete stack {name}"));
                            deleted_state(
                                &client,
                                name,
                                stack_id,
                                settings.poll,
                                timeout,
                                &prefixed,
                            )
                            .await
                        }
                    };
                    StackEnd {
                        key,
                        state,
                        report: JobReport::default(),
                    }
                });
            }
        }
        let next = tokio::select! {
            end = running.next() => Ok(end),
            signal = settings.termination.received() => Err(signal),
        };
        match next {
            Ok(Some(end)) => {
                failed |= matches!(end.state, StackState::Failed(_));
                ends.push(end);
            }
            Ok(None) => break,
            Err(signal) => {
                let in_flight: Vec<String> = started
                    .iter()
                    .filter(|key| !ends.iter().any(|end| &end.key == *key))
                    .cloned()
                    .collect();
                cancelled = Some(JobError::Cancelled(format!(
                    "the job was cancelled ({signal}); CloudFormation carries on deleting {}",
                    if in_flight.is_empty() {
                        "nothing".to_string()
                    } else {
                        in_flight.join(", ")
                    }
                )));
                break;
            }
        }
    }
    for key in &graph.order {
        if !ends.iter().any(|end| &end.key == key) {
            let why = if cancelled.is_some() {
                "the job was cancelled first"
            } else {
                "a stack that depends on it was not deleted"
            };
            ends.push(StackEnd {
                key: key.clone(),
                state: StackState::NotStarted(why.into()),
                report: JobReport::default(),
            });
        }
    }
    finish(console, files, manifest, graph, ends, &[], cancelled)
}

/// How long a stack's deletion is waited for: its `wait-timeout` (every
/// stack of a manifest has stack inputs; the default is `wait-timeout`'s).
fn stack_wait_timeout(prepared: &Prepared) -> std::time::Duration {
    prepared
        .inputs
        .stack
        .as_ref()
        .map_or(DEFAULT_STACK_WAIT, |s| s.wait_timeout)
}

const DEFAULT_STACK_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

fn stack_name<'a>(manifest: &'a Manifest, key: &'a str) -> &'a str {
    manifest.stack(key).map_or(key, |s| s.name.as_str())
}

fn upstream_list(graph: &SystemGraph, key: &str) -> String {
    graph.upstreams[key]
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The manifest, its graph and every stack's inputs phase; every error
/// found, all before any AWS call.
fn check_system(
    raw: &RawInputs,
    env: &Environment,
    run: &RunContext,
    file: &str,
    console: &Console,
) -> Result<CheckedSystem, InputErrors> {
    let bad = |errors: Vec<ManifestError>| {
        InputErrors(
            errors
                .into_iter()
                .map(|e| InputError::new("stacks", &e.file, e.to_string(), ""))
                .collect(),
        )
    };
    let max_parallel = match raw.value("max-parallel") {
        None => 4,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                InputErrors::from(InputError::new(
                    "max-parallel",
                    text,
                    "is not a whole number of at least 1",
                    "give how many stacks may deploy at once, such as 4",
                ))
            })?,
    };
    let mut misplaced = Vec::new();
    for name in PER_STACK_ONLY {
        if let Some(value) = raw.value(name) {
            misplaced.push(InputError::new(
                name,
                value,
                "is given with `stacks`, where every stack takes its own",
                "set it per stack in the manifest",
            ));
        }
    }
    for name in NOT_WITH_STACKS {
        if let Some(value) = raw.value(name) {
            misplaced.push(InputError::new(
                name,
                value,
                NOT_WITH_STACKS_PROBLEM,
                NOT_WITH_STACKS_FIX,
            ));
        }
    }
    // `environment` selects the manifest's overlays here, not a GitHub
    // environment (so environment-url-output, refused above, is not read).
    let github = github_inputs(&raw.without(&["environment", "environment-url-output"]));
    misplaced.extend(github.as_ref().err().cloned());
    let github = match github {
        Ok(github) if misplaced.is_empty() => github,
        _ => return Err(InputErrors(misplaced)),
    };
    let workspace = env.workspace();
    let text = std::fs::read_to_string(workspace.join(file)).map_err(|error| {
        InputErrors::from(InputError::new(
            "stacks",
            file,
            format!("cannot be read: {error}"),
            "give the path of the system manifest, relative to the workspace",
        ))
    })?;
    let manifest = read_manifest(&text, file, &workspace, raw.value("environment"), &|name| {
        env.get(name).map(str::to_string)
    })
    .map_err(bad)?;
    let mut facts: BTreeMap<String, TemplateFacts> = BTreeMap::new();
    let mut errors = Vec::new();
    for stack in &manifest.stacks {
        let region = stack_input(stack, raw, "aws-region");
        match std::fs::read_to_string(&stack.template) {
            Ok(body) => match template_facts(&body, stack, region.as_deref()) {
                Ok(found) => {
                    facts.insert(stack.key.clone(), found);
                }
                Err(problem) => errors.push(template_error(&manifest, stack, &problem)),
            },
            Err(error) => errors.push(template_error(
                &manifest,
                stack,
                &format!("cannot be read: {error}"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors));
    }
    let graph = build_graph(&manifest, &facts).map_err(bad)?;
    let mut prepared = BTreeMap::new();
    let mut refused = dispatch_input_errors(&github, &manifest, &facts);
    for key in &graph.order {
        let Some(stack) = manifest.stack(key) else {
            continue;
        };
        let prefixed = console.for_stack(key);
        let (inputs, parameters) = stack_inputs(raw, stack, &workspace, None);
        match prepare_with_parameters(&inputs, Some(parameters), env, run, &prefixed) {
            Ok(ready) => {
                prepared.insert(key.clone(), ready);
            }
            Err(errors) => refused.extend(errors.0.into_iter().map(|e| e.for_stack(key))),
        }
    }
    if refused.is_empty() {
        Ok(CheckedSystem {
            manifest,
            graph,
            stacks: prepared,
            max_parallel,
            github,
        })
    } else {
        Err(InputErrors(refused))
    }
}

/// What the inputs phase of a system yields.
struct CheckedSystem {
    manifest: Manifest,
    graph: SystemGraph,
    /// Every stack's inputs phase, by key.
    stacks: BTreeMap<String, Prepared>,
    max_parallel: usize,
    /// The system's own GitHub inputs: the workflows dispatched once every
    /// stack deployed.
    github: GithubInputs,
}

/// A system's `dispatch-inputs` are filled from
/// `{{ stacks.<stack>.outputs.NAME }}` once every stack deployed: each
/// reference must name a stack of the manifest and an output its template
/// declares, checked here, before any AWS call.
fn dispatch_input_errors(
    github: &GithubInputs,
    manifest: &Manifest,
    facts: &BTreeMap<String, TemplateFacts>,
) -> Vec<InputError> {
    let mut errors = Vec::new();
    for (name, value) in &github.dispatch_inputs {
        for (_, _, reference) in references(value) {
            let refuse = |problem: String, fix: String| {
                InputError::new(
                    "dispatch-inputs",
                    value,
                    format!("`{name}`: {problem}"),
                    fix,
                )
            };
            let Some(wanted) = parse_output_reference(reference) else {
                let declaring: Vec<String> = reference
                    .strip_prefix("outputs.")
                    .map(|output| {
                        facts
                            .iter()
                            .filter(|(_, f)| f.outputs.contains(output))
                            .map(|(key, _)| format!("{{{{ stacks.{key}.{reference} }}}}"))
                            .collect()
                    })
                    .unwrap_or_default();
                let fix = if declaring.is_empty() {
                    "refer to a stack's output as {{ stacks.<stack>.outputs.NAME }}".to_string()
                } else {
                    format!("name the stack: {}", declaring.join(" or "))
                };
                errors.push(refuse(
                    format!("`{{{{ {reference} }}}}` is not {{{{ stacks.<stack>.outputs.NAME }}}}, and a system has outputs per stack"),
                    fix,
                ));
                continue;
            };
            if manifest.stack(&wanted.stack).is_none() {
                let keys: Vec<&str> = manifest.stacks.iter().map(|s| s.key.as_str()).collect();
                errors.push(refuse(
                    format!(
                        "refers to stack `{}`, which the manifest does not have",
                        wanted.stack
                    ),
                    format!("name one of its stacks: {}", keys.join(", ")),
                ));
            } else if let Some(declared) = facts.get(&wanted.stack)
                && !declared.outputs.contains(&wanted.output)
            {
                let listed: Vec<&str> = declared.outputs.iter().map(String::as_str).collect();
                errors.push(refuse(
                    format!(
                        "refers to output `{}` of stack `{}`, which its template does not declare (it declares: {})",
                        wanted.output,
                        wanted.stack,
                        if listed.is_empty() { "none".to_string() } else { listed.join(", ") }
                    ),
                    "refer to a declared output, or add it to the template's Outputs".into(),
                ));
            }
        }
    }
    errors
}

fn template_error(manifest: &Manifest, stack: &ManifestStack, problem: &str) -> ManifestError {
    ManifestError {
        file: manifest.file.clone(),
        line: manifest.line_of(stack, "template"),
        key: if stack.section == "stacks" {
            stack.path("template")
        } else {
            "services.template".into()
        },
        problem: format!("{}: {problem}", stack.template.display()),
        fix: "give a CloudFormation template, relative to the manifest's folder".into(),
    }
}

/// A stack's input: its own, else the step's.
fn stack_input(stack: &ManifestStack, raw: &RawInputs, name: &str) -> Option<String> {
    stack
        .inputs
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .or_else(|| raw.value(name).map(str::to_string))
}

/// An upstream output's value, when that stack produced it.
type OutputLookup<'a> = dyn Fn(&OutputReference) -> Option<String> + 'a;

/// The inputs one stack deploys with: the step's (but `stacks`), then the
/// stack's own; output references filled from `outputs` when given (else
/// kept as written, for the inputs phase).
fn stack_inputs(
    raw: &RawInputs,
    stack: &ManifestStack,
    workspace: &Path,
    outputs: Option<&OutputLookup>,
) -> (RawInputs, Vec<ParameterOverride>) {
    let mut inputs = raw.without(SYSTEM_INPUTS).without(SYSTEM_DISPATCH_INPUTS);
    let fill = |text: &str| match outputs {
        Some(outputs) => fill_outputs(text, outputs).unwrap_or_else(|_| text.to_string()),
        None => text.to_string(),
    };
    inputs.set("name", &stack.name);
    let template = stack
        .template
        .strip_prefix(workspace)
        .unwrap_or(&stack.template);
    inputs.set("template", &template.display().to_string());
    for (name, value) in &stack.inputs {
        inputs.set(name, &fill(value));
    }
    // A list is one comma-separated value, as CloudFormation takes a
    // `List<...>` parameter.
    let parameters = stack
        .parameters
        .iter()
        .map(|(key, value)| ParameterOverride {
            key: key.clone(),
            value: OverrideValue::Value(match value {
                ParameterValue::One(text) => fill(text),
                ParameterValue::List(items) => {
                    items.iter().map(|i| fill(i)).collect::<Vec<_>>().join(",")
                }
            }),
        })
        .collect();
    (inputs, parameters)
}

/// Deploys one stack: its early plan, or (values known after apply) its
/// inputs phase and plan now, then the apply.
async fn run_stack(
    stack: &ManifestStack,
    prepared: Option<Prepared>,
    early: Option<(Plan, Clients)>,
    outputs: BTreeMap<String, Vec<(String, String)>>,
    system: &SystemRun<'_>,
    slot: Slot,
) -> StackEnd {
    let SystemRun {
        raw,
        env,
        run,
        console,
        settings,
        manifest,
    } = *system;
    let key = stack.key.clone();
    let prefixed = console.for_stack(&key);
    let mut in_flight = slot.lock().await;
    let lookup = |reference: &OutputReference| {
        outputs
            .get(&reference.stack)
            .and_then(|values| values.iter().find(|(k, _)| k == &reference.output))
            .map(|(_, v)| v.clone())
    };
    let result: Result<(), JobError> = async {
        let (plan, clients, prepared) = match (early, prepared) {
            (Some((plan, clients)), Some(prepared)) => (plan, clients, prepared),
            _ => {
                // Every reference was checked against the upstream
                // template; an output missing now is the stack's own
                // (a condition left it out).
                for (key_path, reference) in stack.output_references() {
                    if lookup(&reference).is_none() {
                        return Err(JobError::Failed(anyhow::anyhow!(
                            "{}: `{}` refers to output `{}` of stack `{}`, which that stack did not produce (an output with a Condition?)",
                            manifest.file,
                            stack.path(&key_path),
                            reference.output,
                            reference.stack
                        )));
                    }
                }
                let (inputs, parameters) =
                    stack_inputs(raw, stack, &env.workspace(), Some(&lookup));
                let prepared = prepare_with_parameters(&inputs, Some(parameters), env, run, &prefixed)
                    .map_err(|errors| {
                    JobError::Failed(anyhow::anyhow!(
                        "the inputs filled from upstream outputs were refused, after upstream stacks changed: {errors}"
                    ))
                })?;
                let clients = Clients::for_job(&prepared, env).await?;
                let plan = {
                    let _section = prefixed.phase("Plan");
                    let deploy_settings = deploy_settings(&clients, &prepared, settings, run);
                    build_plan(&prepared, &clients, &deploy_settings, &prefixed).await
                }
                .map_err(|error| match error {
                    JobError::BadInput(errors) => JobError::Failed(anyhow::anyhow!(
                        "refused once its upstream outputs were known (upstream stacks have changed): {errors}"
                    )),
                    other => other,
                })?;
                for line in plan.to_string().lines() {
                    prefixed.plain(line);
                }
                (plan, clients, prepared)
            }
        };
        in_flight.config = Some(clients.config.clone());
        in_flight.options = cancel_options(&prepared);
        let deploy_settings = deploy_settings(&clients, &prepared, settings, run);
        apply_plan(
            &plan,
            &prepared,
            &clients,
            &deploy_settings,
            env,
            &prefixed,
            &mut in_flight.report,
        )
        .await
    }
    .await;
    let state = match result {
        Ok(()) => StackState::Done,
        Err(error) => {
            prefixed.error(&error.to_string());
            for cause in in_flight.report.root_causes() {
                prefixed.error(&format!("root cause: {cause}"));
            }
            StackState::Failed(error.to_string())
        }
    };
    StackEnd {
        key,
        state,
        report: std::mem::take(&mut in_flight.report),
    }
}

/// The system's report: the state of each stack, the outputs by stack,
/// the summary; exit 1 when a stack failed.
fn finish(
    console: &Console,
    files: &ResultFiles,
    manifest: &Manifest,
    graph: &SystemGraph,
    ends: Vec<StackEnd>,
    dispatched: &[(String, String)],
    error: Option<JobError>,
) -> Outcome {
    let mut outputs_json = Map::new();
    let mut status_json = Map::new();
    let mut step_outputs: Vec<(String, String)> = Vec::new();
    // The graph's stacks in order, then the catalog's removed entries.
    let keys: Vec<&String> = graph
        .order
        .iter()
        .chain(
            ends.iter()
                .map(|e| &e.key)
                .filter(|k| !graph.order.contains(k)),
        )
        .collect();
    for key in keys.iter().copied() {
        let Some(end) = ends.iter().find(|e| &e.key == key) else {
            continue;
        };
        let stack = end.report.stack.as_ref();
        let name = manifest
            .stack(key)
            .map_or(key.as_str(), |s| s.name.as_str());
        let mut values = Map::new();
        for output in stack.map(|s| s.outputs.as_slice()).unwrap_or_default() {
            values.insert(output.key.clone(), Json::String(output.value.clone()));
            let step_name = format!("{key}-{}", output.key);
            if is_output_name(&step_name) {
                step_outputs.push((step_name, output.value.clone()));
            }
        }
        if end.state == StackState::Done {
            outputs_json.insert(key.clone(), Json::Object(values));
        }
        let reason = Json::from(end.state.reason());
        status_json.insert(
            key.clone(),
            json!({
                "stack": name,
                "state": end.label(),
                "stack-status": stack.and_then(|s| s.stack_status.clone()),
                "has-changes": stack.map(|s| s.has_changes),
                "reason": reason,
            }),
        );
    }
    let mut values = vec![
        (
            "outputs".to_string(),
            Json::Object(outputs_json).to_string(),
        ),
        (
            "stacks-status".to_string(),
            Json::Object(status_json).to_string(),
        ),
        (
            "dispatched-workflows".to_string(),
            dispatched_json(dispatched),
        ),
    ];
    values.extend(step_outputs);
    {
        let _section = console.phase("Outputs");
        for (name, value) in &values {
            console.plain(&format!("{name} = {value}"));
        }
    }
    let done = ends
        .iter()
        .filter(|e| {
            matches!(
                e.state,
                StackState::Done | StackState::Deleted | StackState::Absent
            )
        })
        .count();
    let failed = ends
        .iter()
        .filter(|e| matches!(e.state, StackState::Failed(_)))
        .count();
    let later = ends
        .iter()
        .filter(|e| matches!(e.state, StackState::KnownAfterApply(_)))
        .count();
    let waiting = ends.len() - done - failed - later;
    let mut summary = system_table(manifest, &keys, &ends);
    let mut written = true;
    if let Some(path) = &files.outputs
        && let Err(e) = append_outputs(path, &values)
    {
        console.error(&format!("writing the step outputs: {e}"));
        written = false;
    }
    console.plain(&format!(
        "{done} stack(s) done, {failed} failed, {waiting} not started, {later} known after apply"
    ));
    for end in &ends {
        match &end.state {
            StackState::Failed(why) => console.plain(&format!("  {}: failed: {why}", end.key)),
            StackState::KnownAfterApply(why) => {
                console.plain(&format!("  {}: known after apply: {why}", end.key));
            }
            StackState::NotStarted(why) => {
                console.plain(&format!("  {}: not started: {why}", end.key))
            }
            StackState::Removed(why) => console.plain(&format!("  {}: removed: {why}", end.key)),
            StackState::Done | StackState::Deleted | StackState::Absent => {}
        }
    }
    if let Some(error) = &error {
        summary.push_str(&format!("\n{}\n", markdown_cell(&error.to_string())));
    }
    if let Some(path) = &files.summary
        && let Err(e) = append_summary(path, &summary)
    {
        console.error(&format!("writing the job summary: {e}"));
        written = false;
    }
    match error {
        Some(error) => {
            console.error(&error.to_string());
            Outcome::Failed
        }
        None if failed > 0 || !written => Outcome::Failed,
        None => Outcome::Success,
    }
}

/// [`finish`] for a run that stopped before any stack ended.
fn finish_early(
    console: &Console,
    files: &ResultFiles,
    manifest: &Manifest,
    graph: &SystemGraph,
    error: Option<JobError>,
) -> Outcome {
    finish(console, files, manifest, graph, Vec::new(), &[], error)
}

/// The system's heading and one table row per stack: its state, how many
/// changes its change set has, and why it ended as it did.
fn system_table(manifest: &Manifest, keys: &[&String], ends: &[StackEnd]) -> String {
    let mut table = format!(
        "## System {}\n\n| stack | state | changes | reason |\n|---|---|---|---|\n",
        markdown_cell(&manifest.file)
    );
    for key in keys.iter().copied() {
        if let Some(end) = ends.iter().find(|e| &e.key == key) {
            let changes = end
                .report
                .stack
                .as_ref()
                .map_or(String::new(), |s| s.changes.len().to_string());
            let reason = end.state.reason().unwrap_or_default();
            table.push_str(&format!(
                "| {} | {} | {changes} | {} |\n",
                markdown_cell(key),
                end.label(),
                markdown_cell(reason)
            ));
        }
    }
    table
}

/// The one pull request comment of a planned system: the system's table,
/// then each planned stack's change set as its own comment would show it,
/// folded. The marker names the manifest, so each system keeps one comment.
fn review_comment(
    manifest: &Manifest,
    graph: &SystemGraph,
    ends: &[StackEnd],
    elapsed: std::time::Duration,
) -> (String, String) {
    let marker = format!(
        "<!-- ecs-stack-deploy:system:{} -->",
        manifest.file.replace("--", "- -")
    );
    let keys: Vec<&String> = graph.order.iter().collect();
    let mut body = system_table(manifest, &keys, ends);
    for key in &graph.order {
        let Some(end) = ends.iter().find(|e| &e.key == key) else {
            continue;
        };
        if end.report.stack.is_none() {
            continue;
        }
        let error = match &end.state {
            StackState::Failed(why) => Some(why.as_str()),
            _ => None,
        };
        body.push_str(&format!(
            "\n<details><summary>{}: {}</summary>\n\n{}\n</details>\n",
            markdown_cell(key),
            end.label(),
            markdown_summary(&end.report, elapsed, error)
        ));
    }
    (marker, body)
}

/// Whether `name` can be a step output (`steps.x.outputs.<name>`).
fn is_output_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
}
