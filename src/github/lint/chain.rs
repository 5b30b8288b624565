//! The chain rules: the same dependency model as a system deploy
//! (`system::graph`: which template exports what, which imports it),
//! applied to a repository of workflows that each deploy a stack and are
//! chained by `workflow_run`. Each finding is a deploy that fails or does
//! the wrong thing only when it runs:
//!
//! * `import-not-upstream`: a workflow's template imports an export of a
//!   stack whose workflow is not upstream of it (a sibling triggered by the
//!   same upstream races it; outside the chain nothing orders them);
//! * `runs-after-each-upstream`: `workflow_run.workflows` lists several
//!   workflows: it runs after each of them, not after all;
//! * `checkout-not-built-commit`: a `workflow_run` deploy that checks out
//!   the branch (`github.ref`, the default branch, no `ref`) deploys what is
//!   newest, not the commit the upstream built;
//! * `paths-match-nothing`: a `push.paths` filter no file of the repository
//!   matches: the trigger never fires;
//! * `untriggered-upstream`: a workflow others depend on (by name or by its
//!   exports) that only a manual dispatch starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml_ng::Value;

use super::{
    Finding, FindingKind, KnownWorkflow, ParsedWorkflow, is_checkout, scalar_text, starts_with_key,
};
use crate::stack::parameters::{OverrideValue, parse_inline_overrides};
use crate::system::graph::template_facts;
use crate::system::manifest::{ManifestStack, ParameterValue};

/// A step that deploys a stack from a template in the repository.
struct Deploy {
    /// The template, relative to the repository root.
    template: String,
    stack: Option<String>,
    parameters: Vec<(String, ParameterValue)>,
    line: Option<u32>,
}

/// Events that start a workflow without a person: anything but a manual
/// dispatch (a `workflow_call` is started by its caller).
fn starts_by_itself(events: &[String]) -> bool {
    events.iter().any(|e| e != "workflow_dispatch")
}

/// The deploy steps of a workflow: `with: template` of an action (ours,
/// aws-cloudformation-github-deploy, or the repository's own `./`).
fn deploys(workflow: &ParsedWorkflow<'_>) -> Vec<Deploy> {
    let mut found = Vec::new();
    for job in workflow.jobs() {
        for step in job.steps() {
            if step.get("uses").is_none() {
                continue;
            }
            let Some(Value::Mapping(with)) = step.get("with") else {
                continue;
            };
            let Some(template) = with.get("template").and_then(scalar_text) else {
                continue;
            };
            // A template chosen by an expression is not known here.
            if template.contains("${{") {
                continue;
            }
            let stack = with
                .get("name")
                .or_else(|| with.get("stack-name"))
                .and_then(scalar_text)
                .filter(|s| !s.contains("${{"));
            let parameters = with
                .get("parameter-overrides")
                .and_then(scalar_text)
                .and_then(|text| parse_inline_overrides(&text).ok())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|item| match item.value {
                    OverrideValue::Value(value) if !value.contains("${{") => {
                        Some((item.key, ParameterValue::One(value)))
                    }
                    _ => None,
                })
                .collect();
            let line = workflow.lines.find(job.line.unwrap_or(1), |l| {
                starts_with_key(l, "template") && l.contains(template.trim())
            });
            found.push(Deploy {
                template: template.trim().trim_start_matches("./").to_string(),
                stack,
                parameters,
                line,
            });
        }
    }
    found
}

/// Checks the chain rules over the parsed workflows (`names` in the same
/// order, for `workflow_run` upstream names).
pub(super) fn check_chain(
    parsed: &[ParsedWorkflow<'_>],
    names: &[KnownWorkflow],
    repo: Option<&Path>,
    findings: &mut Vec<Finding>,
) {
    // Upstreams of each workflow, as indices into `parsed`.
    let index_of = |wanted: &str| {
        parsed.iter().position(|w| {
            names
                .iter()
                .find(|n| n.path == w.file.path)
                .is_some_and(|n| n.name == wanted)
        })
    };
    let upstreams: Vec<Vec<usize>> = parsed
        .iter()
        .map(|w| {
            w.triggers
                .upstreams
                .iter()
                .filter_map(|u| index_of(u))
                .collect()
        })
        .collect();
    let ancestors = |start: usize| {
        let mut seen = BTreeSet::new();
        let mut frontier = upstreams[start].clone();
        while let Some(next) = frontier.pop() {
            if seen.insert(next) {
                frontier.extend(upstreams[next].iter().copied());
            }
        }
        seen
    };

    for workflow in parsed {
        check_runs_after_each(workflow, findings);
        if workflow.triggers.workflow_run {
            check_checkout(workflow, findings);
        }
        if let Some(repo) = repo {
            check_paths(workflow, repo, findings);
        }
    }

    // What each workflow's deploys export and import.
    let mut exports: BTreeMap<String, usize> = BTreeMap::new();
    let mut imports: Vec<Vec<(String, Option<u32>)>> = vec![Vec::new(); parsed.len()];
    if let Some(repo) = repo {
        for (index, workflow) in parsed.iter().enumerate() {
            for deploy in deploys(workflow) {
                let Ok(body) = std::fs::read_to_string(repo.join(&deploy.template)) else {
                    continue;
                };
                let stack = ManifestStack {
                    key: deploy.template.clone(),
                    name: deploy.stack.clone().unwrap_or_default(),
                    template: deploy.template.clone().into(),
                    parameters: deploy.parameters,
                    depends_on: Vec::new(),
                    inputs: Vec::new(),
                    line: None,
                    section: "stacks",
                };
                let Ok(facts) = template_facts(&body, &stack, None) else {
                    continue;
                };
                for export in facts.exports {
                    exports.insert(export, index);
                }
                imports[index].extend(facts.imports.into_iter().map(|i| (i, deploy.line)));
            }
        }
    }
    let mut depended_on: BTreeSet<usize> = upstreams.iter().flatten().copied().collect();
    for (index, workflow) in parsed.iter().enumerate() {
        for (import, line) in &imports[index] {
            let Some(&exporter) = exports.get(import) else {
                continue;
            };
            if exporter == index {
                continue;
            }
            depended_on.insert(exporter);
            if ancestors(index).contains(&exporter) {
                continue;
            }
            let their_name = &names_of(names, parsed, exporter);
            let shared: Vec<usize> = upstreams[index]
                .iter()
                .filter(|u| ancestors(exporter).contains(u) || upstreams[exporter].contains(u))
                .copied()
                .collect();
            let relation = if shared.is_empty() {
                "which is not upstream of this workflow in the workflow_run chain, so nothing runs it first".to_string()
            } else {
                format!(
                    "which is not upstream of this workflow: both run after `{}`, at the same time, so this deploy races the export",
                    names_of(names, parsed, shared[0])
                )
            };
            findings.push(workflow.finding(
                FindingKind::ImportNotUpstream,
                *line,
                format!(
                    "the template imports `{import}`, exported by the stack `{their_name}` deploys, {relation}; fix: make `{their_name}` this workflow's workflow_run upstream (or an upstream of it)"
                ),
            ));
        }
    }
    for (index, workflow) in parsed.iter().enumerate() {
        if depended_on.contains(&index) && !starts_by_itself(&workflow.triggers.events) {
            let dependents: Vec<String> = (0..parsed.len())
                .filter(|other| {
                    upstreams[*other].contains(&index)
                        || imports[*other]
                            .iter()
                            .any(|(i, _)| exports.get(i) == Some(&index))
                })
                .map(|other| names_of(names, parsed, other))
                .collect();
            findings.push(workflow.finding(
                FindingKind::UntriggeredUpstream,
                workflow.lines.top_level_key("on"),
                format!(
                    "only a manual dispatch starts this workflow, yet {} depend(s) on it: a change to its stack is never deployed before theirs; fix: trigger it on push (with paths) or by workflow_run",
                    dependents.join(", ")
                ),
            ));
        }
    }
}

fn names_of(names: &[KnownWorkflow], parsed: &[ParsedWorkflow<'_>], index: usize) -> String {
    names
        .iter()
        .find(|n| n.path == parsed[index].file.path)
        .map_or_else(|| parsed[index].file.path.clone(), |n| n.name.clone())
}

fn check_runs_after_each(workflow: &ParsedWorkflow<'_>, findings: &mut Vec<Finding>) {
    let upstreams = &workflow.triggers.upstreams;
    if upstreams.len() < 2 {
        return;
    }
    findings.push(workflow.finding(
        FindingKind::RunsAfterEachUpstream,
        workflow.lines.key(1, "workflows"),
        format!(
            "workflow_run lists {}: it runs once after each of them completes, not once after all of them; fix: give it one upstream (chain them one after another), or fan in with one workflow whose jobs `needs:` each deploy",
            upstreams
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
}

/// A `workflow_run` deploy must check out the commit its upstream built.
fn check_checkout(workflow: &ParsedWorkflow<'_>, findings: &mut Vec<Finding>) {
    for job in workflow.jobs() {
        let deploys = job.steps().any(|step| {
            step.get("with")
                .and_then(Value::as_mapping)
                .is_some_and(|with| {
                    ["template", "stacks", "task-definition"]
                        .iter()
                        .any(|k| with.contains_key(*k))
                })
        });
        if !deploys {
            continue;
        }
        for step in job.steps() {
            if !is_checkout(step) {
                continue;
            }
            let reference = step
                .get("with")
                .and_then(|w| w.get("ref"))
                .and_then(scalar_text);
            let what = match &reference {
                Some(r) if r.contains("workflow_run.head_sha") => continue,
                Some(r) if r.contains("github.ref") || r.contains("default_branch") => {
                    format!("`ref: {}` (the branch as it is now)", r.trim())
                }
                Some(r) if matches!(r.trim(), "main" | "master") => {
                    format!("`ref: {}` (the branch as it is now)", r.trim())
                }
                Some(_) => continue,
                None => "the default branch (no `ref`)".to_string(),
            };
            let line = workflow
                .lines
                .find(job.line.unwrap_or(1), |l| {
                    l.to_ascii_lowercase().contains("actions/checkout")
                })
                .or(job.line);
            findings.push(workflow.finding(
                FindingKind::CheckoutNotBuiltCommit,
                line,
                format!(
                    "job `{}` runs on workflow_run and checks out {what}: it deploys whatever is newest when it runs, not the commit the upstream run built and tested; fix: `ref: ${{{{ github.event.workflow_run.head_sha }}}}` (with `if: github.event.workflow_run.head_repository.full_name == github.repository` on the job)",
                    job.id
                ),
            ));
        }
    }
}

/// `push.paths`: at least one file of the repository must match.
fn check_paths(workflow: &ParsedWorkflow<'_>, repo: &Path, findings: &mut Vec<Finding>) {
    let on = workflow
        .root
        .get("on")
        .or_else(|| workflow.root.get(Value::Bool(true)));
    let Some(Value::Sequence(paths)) = on
        .and_then(|on| on.get("push"))
        .and_then(|p| p.get("paths"))
    else {
        return;
    };
    let patterns: Vec<glob::Pattern> = paths
        .iter()
        .filter_map(scalar_text)
        .filter(|p| !p.starts_with('!'))
        .filter_map(|p| glob::Pattern::new(&p).ok())
        .collect();
    if patterns.is_empty() {
        return;
    }
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    if repository_files(repo)
        .iter()
        .any(|file| patterns.iter().any(|p| p.matches_with(file, options)))
    {
        return;
    }
    let line = workflow
        .lines
        .top_level_key("on")
        .and_then(|from| workflow.lines.key(from, "paths"));
    findings.push(workflow.finding(
        FindingKind::PathsMatchNothing,
        line,
        format!(
            "no file of the repository matches push.paths ({}), so a push never starts this workflow; fix: name the files it deploys (paths are relative to the repository root)",
            patterns
                .iter()
                .map(|p| format!("`{}`", p.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
}

/// The repository's files, relative to its root, `/`-separated (without
/// `.git` and build output).
fn repository_files(repo: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut folders = vec![repo.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name();
            if matches!(
                name.to_str(),
                Some(".git" | "target" | "node_modules" | ".venv")
            ) {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else if let Ok(relative) = path.strip_prefix(repo) {
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files
}
