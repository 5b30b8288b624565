//! Chain lint for `.github/workflows/*.yml`.
//!
//! Deployments with `ecs-stack-deploy` are usually a chain of workflows
//! (network → alb → ecs → apigw), each started by the previous one through
//! `on: workflow_run`. That trigger fails quietly in ways no run log shows: a
//! misspelt upstream name never fires, a missing conclusion check deploys on
//! top of a failed upstream, and `github.sha` means something else there than
//! in a `push` run. This module reads the workflow files of one repository
//! and reports those mistakes, each with what is wrong, why it hurts and the
//! fix.
//!
//! Everything here is pure except [`read_workflow_dir`]. YAML has no spans in
//! `serde_yaml_ng`, so lines are found by searching the text for the key or
//! value that was judged.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};

mod chain;

/// One workflow file as read from disk (or written by a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowFile {
    pub path: String,
    pub text: String,
}

/// What a [`Finding`] is about; one variant per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    UnknownUpstreamWorkflow,
    NoConclusionCheck,
    CheckoutOfHeadWithSecrets,
    ImageTagFromGithubSha,
    ImportNotUpstream,
    RunsAfterEachUpstream,
    CheckoutNotBuiltCommit,
    PathsMatchNothing,
    UntriggeredUpstream,
    ParseError,
}

impl FindingKind {
    /// The stable, machine-friendly name (same as the serialized form).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUpstreamWorkflow => "unknown-upstream-workflow",
            Self::NoConclusionCheck => "no-conclusion-check",
            Self::CheckoutOfHeadWithSecrets => "checkout-of-head-with-secrets",
            Self::ImageTagFromGithubSha => "image-tag-from-github-sha",
            Self::ImportNotUpstream => "import-not-upstream",
            Self::RunsAfterEachUpstream => "runs-after-each-upstream",
            Self::CheckoutNotBuiltCommit => "checkout-not-built-commit",
            Self::PathsMatchNothing => "paths-match-nothing",
            Self::UntriggeredUpstream => "untriggered-upstream",
            Self::ParseError => "parse-error",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in one file. `line` is 1-based and points at the offending
/// key or value when it could be found in the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub path: String,
    pub line: Option<u32>,
    pub message: String,
}

impl fmt::Display for Finding {
    /// `path:line: kind: message`, the shape editors and problem matchers
    /// already understand.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}: {}", self.path, line, self.kind, self.message),
            None => write!(f, "{}: {}: {}", self.path, self.kind, self.message),
        }
    }
}

/// Reads every `*.yml` and `*.yaml` file directly inside `dir`, sorted by
/// path so findings come out in a stable order.
pub fn read_workflow_dir(dir: &Path) -> std::io::Result<Vec<WorkflowFile>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_yaml = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| ext == "yml" || ext == "yaml");
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)?;
            Ok(WorkflowFile {
                path: path.to_string_lossy().into_owned(),
                text,
            })
        })
        .collect()
}

/// Lints a set of workflow files that live in the same repository (the
/// upstream names of rule 1 are resolved within this set); `repo` is the
/// repository's root, where the templates the workflows deploy and the
/// files their `paths` filters name are read (the chain rules, `chain.rs`;
/// without it those that need files are skipped). Findings are sorted by
/// path, then line.
pub fn lint_workflows(files: &[WorkflowFile], repo: Option<&Path>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut parsed = Vec::new();
    let mut names = Vec::new();
    for file in files {
        match ParsedWorkflow::parse(file) {
            Ok(workflow) => {
                names.push(KnownWorkflow::new(file, workflow.name.as_deref()));
                parsed.push(workflow);
            }
            Err(problem) => {
                // Still learn its name from the text, so one broken upstream
                // does not also flag every workflow_run that points at it.
                names.push(KnownWorkflow::new(
                    file,
                    top_level_name(&file.text).as_deref(),
                ));
                findings.push(parse_finding(file, &problem));
            }
        }
    }
    for workflow in parsed.iter().filter(|w| w.triggers.workflow_run) {
        check_upstream_names(workflow, &names, &mut findings);
        check_conclusion(workflow, &mut findings);
        check_head_checkout(workflow, &mut findings);
        check_image_tags(workflow, &mut findings);
    }
    chain::check_chain(&parsed, &names, repo, &mut findings);
    findings.sort_by(|a, b| (&a.path, a.line, a.kind).cmp(&(&b.path, b.line, b.kind)));
    findings
}

/// Why a file could not be linted at all.
#[derive(Debug, thiserror::Error)]
enum ParseProblem {
    #[error("not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("the document is not a mapping of keys to values")]
    NotAMapping,
    #[error("there is no `on:` with at least one event")]
    NoTrigger,
}

fn parse_finding(file: &WorkflowFile, problem: &ParseProblem) -> Finding {
    let line = match problem {
        ParseProblem::Yaml(err) => err.location().and_then(|l| u32::try_from(l.line()).ok()),
        ParseProblem::NotAMapping | ParseProblem::NoTrigger => None,
    };
    Finding {
        kind: FindingKind::ParseError,
        path: file.path.clone(),
        line,
        message: format!(
            "{problem}, so GitHub rejects or never runs this workflow and the chain \
             stops here; fix: make it a YAML mapping with `name:`, `on:` and `jobs:`"
        ),
    }
}

/// The events a workflow listens to, and its `workflow_run` upstreams.
#[derive(Debug, Default)]
struct Triggers {
    workflow_run: bool,
    upstreams: Vec<String>,
    /// Every event it listens to.
    events: Vec<String>,
}

/// A workflow that parsed, with the parts the rules look at.
struct ParsedWorkflow<'a> {
    file: &'a WorkflowFile,
    lines: TextLines<'a>,
    root: Mapping,
    name: Option<String>,
    triggers: Triggers,
}

impl<'a> ParsedWorkflow<'a> {
    fn parse(file: &'a WorkflowFile) -> Result<Self, ParseProblem> {
        let value: Value = serde_yaml_ng::from_str(&file.text)?;
        let Value::Mapping(root) = value else {
            return Err(ParseProblem::NotAMapping);
        };
        // serde_yaml_ng follows YAML 1.2 and keeps `on` a string key, but a
        // file written by a YAML 1.1 tool may literally say `true:`, which is
        // what `on:` means to such tools; GitHub accepts both.
        let on = root
            .get("on")
            .or_else(|| root.get(Value::Bool(true)))
            .ok_or(ParseProblem::NoTrigger)?;
        let triggers = parse_triggers(on).ok_or(ParseProblem::NoTrigger)?;
        let name = root.get("name").and_then(scalar_text);
        Ok(Self {
            file,
            lines: TextLines::new(&file.text),
            root,
            name,
            triggers,
        })
    }

    /// Jobs in file order, each with its id and the line of its key.
    fn jobs(&self) -> Vec<Job<'_>> {
        let Some(Value::Mapping(jobs)) = self.root.get("jobs") else {
            return Vec::new();
        };
        let jobs_line = self.lines.top_level_key("jobs");
        let job_indent = jobs_line.and_then(|line| self.lines.next_indent(line + 1));
        jobs.iter()
            .filter_map(|(id, body)| {
                let id = scalar_text(id)?;
                let Value::Mapping(body) = body else {
                    return None;
                };
                let line = jobs_line
                    .zip(job_indent)
                    .and_then(|(from, indent)| self.lines.key_at_indent(from + 1, &id, indent));
                Some(Job { id, body, line })
            })
            .collect()
    }

    fn finding(&self, kind: FindingKind, line: Option<u32>, message: String) -> Finding {
        Finding {
            kind,
            path: self.file.path.clone(),
            line,
            message,
        }
    }
}

struct Job<'w> {
    id: String,
    body: &'w Mapping,
    line: Option<u32>,
}

impl<'w> Job<'w> {
    fn condition(&self) -> Option<String> {
        self.body.get("if").and_then(scalar_text)
    }

    fn steps(&self) -> impl Iterator<Item = &'w Mapping> {
        let steps = match self.body.get("steps") {
            Some(Value::Sequence(steps)) => steps.as_slice(),
            _ => &[],
        };
        steps.iter().filter_map(Value::as_mapping)
    }

    fn needs(&self) -> Vec<String> {
        match self.body.get("needs") {
            Some(Value::Sequence(needs)) => needs.iter().filter_map(scalar_text).collect(),
            Some(other) => scalar_text(other).into_iter().collect(),
            None => Vec::new(),
        }
    }
}

/// `on` comes in three shapes: `on: push`, `on: [push, workflow_run]`, or a
/// mapping from event to its filters. `None` when it names no event.
fn parse_triggers(on: &Value) -> Option<Triggers> {
    let mut triggers = Triggers::default();
    let events: Vec<String> = match on {
        Value::Mapping(events) => {
            if let Some(Value::Mapping(run)) = events.get("workflow_run") {
                triggers.upstreams = match run.get("workflows") {
                    Some(Value::Sequence(names)) => names.iter().filter_map(scalar_text).collect(),
                    Some(other) => scalar_text(other).into_iter().collect(),
                    None => Vec::new(),
                };
            }
            events.keys().filter_map(scalar_text).collect()
        }
        Value::Sequence(events) => events.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other).into_iter().collect(),
    };
    if events.is_empty() {
        return None;
    }
    triggers.workflow_run = events.iter().any(|e| e == "workflow_run");
    triggers.events = events;
    Some(triggers)
}

/// The text of a scalar (`if: false` and `name: 2024` are not strings in
/// YAML but are text to GitHub).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The top-level `name:` read from raw text, for files that did not parse.
fn top_level_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("name:")?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

// ---------------------------------------------------------------------------
// Rule 1: upstream names

/// How one workflow of the set can be referred to from `workflows:`.
struct KnownWorkflow {
    /// What GitHub matches: `name:`, or the file path when there is none.
    name: String,
    path: String,
    file_name: String,
    stem: String,
}

impl KnownWorkflow {
    fn new(file: &WorkflowFile, name: Option<&str>) -> Self {
        let normalized = file.path.replace('\\', "/");
        let file_name = normalized
            .rsplit('/')
            .next()
            .unwrap_or(&normalized)
            .to_owned();
        let stem = file_name
            .rsplit_once('.')
            .map_or(file_name.as_str(), |(stem, _)| stem)
            .to_owned();
        // A workflow without `name:` is called by its path from the
        // repository root, whatever directory this lint was pointed at.
        let name = match name {
            Some(name) => name.to_owned(),
            None => format!(".github/workflows/{file_name}"),
        };
        Self {
            name,
            path: file.path.clone(),
            file_name,
            stem,
        }
    }

    fn is_close_to(&self, wanted: &str) -> bool {
        self.name.eq_ignore_ascii_case(wanted)
            || self.file_name.eq_ignore_ascii_case(wanted)
            || self.stem.eq_ignore_ascii_case(wanted)
    }
}

fn check_upstream_names(
    workflow: &ParsedWorkflow<'_>,
    known: &[KnownWorkflow],
    findings: &mut Vec<Finding>,
) {
    let trigger_line = workflow.lines.key(1, "workflow_run");
    for wanted in &workflow.triggers.upstreams {
        if known.iter().any(|k| k.name == *wanted) {
            continue;
        }
        let fix = match known.iter().find(|k| k.is_close_to(wanted)) {
            Some(close) => format!(
                "did you mean \"{}\" (the name of {})? Use that exact text",
                close.name, close.path
            ),
            None => {
                let names: Vec<String> = known.iter().map(|k| format!("\"{}\"", k.name)).collect();
                format!(
                    "use the exact `name:` of the upstream workflow (known names: {})",
                    names.join(", ")
                )
            }
        };
        let line = trigger_line
            .and_then(|from| workflow.lines.containing(from, wanted))
            .or(trigger_line);
        findings.push(workflow.finding(
            FindingKind::UnknownUpstreamWorkflow,
            line,
            format!(
                "`on.workflow_run.workflows` lists \"{wanted}\", but no workflow in this \
                 repository is named that; GitHub matches the upstream's `name:` (not its \
                 file name), so this trigger silently never fires and the chain stops here; \
                 fix: {fix}"
            ),
        ));
    }
}

// ---------------------------------------------------------------------------
// Rule 2: conclusion check

fn mentions_conclusion(condition: Option<String>) -> bool {
    condition.is_some_and(|c| c.contains("workflow_run.conclusion"))
}

/// A status function in `if:` makes a job run even when the jobs it needs
/// were skipped, so `needs:` no longer carries their conclusion check.
fn overrides_needs(job: &Job<'_>) -> bool {
    job.condition().is_some_and(|c| {
        let c = c.to_ascii_lowercase();
        c.contains("always()") || c.contains("cancelled()") || c.contains("failure()")
    })
}

fn check_conclusion(workflow: &ParsedWorkflow<'_>, findings: &mut Vec<Finding>) {
    let jobs = workflow.jobs();
    let mut guarded: BTreeSet<&str> = jobs
        .iter()
        .filter(|job| {
            mentions_conclusion(job.condition())
                || mentions_conclusion(
                    job.steps()
                        .next()
                        .and_then(|s| s.get("if"))
                        .and_then(scalar_text),
                )
        })
        .map(|job| job.id.as_str())
        .collect();
    // A job that needs a guarded job is skipped when that one is, so spread
    // the guard along `needs:` until nothing changes (chains are short).
    loop {
        let before = guarded.len();
        for job in &jobs {
            if !guarded.contains(job.id.as_str())
                && !overrides_needs(job)
                && job.needs().iter().any(|n| guarded.contains(n.as_str()))
            {
                guarded.insert(job.id.as_str());
            }
        }
        if guarded.len() == before {
            break;
        }
    }
    for job in jobs.iter().filter(|j| !guarded.contains(j.id.as_str())) {
        findings.push(workflow.finding(
            FindingKind::NoConclusionCheck,
            job.line,
            format!(
                "job `{}` never checks `github.event.workflow_run.conclusion`; workflow_run \
                 fires when the upstream completes whatever its outcome, so this job also \
                 runs after a FAILED or cancelled upstream and deploys on top of it; fix: add \
                 `if: github.event.workflow_run.conclusion == 'success'` to the job (with \
                 `github.event_name != 'workflow_run' || ...` if it also runs on \
                 workflow_dispatch), or make it `needs:` a job that has that check",
                job.id
            ),
        ));
    }
}

// ---------------------------------------------------------------------------
// Rule 3: checkout of the upstream head with credentials

/// The first credential this workflow hands to its jobs, described for the
/// message: a secret other than the per-run `GITHUB_TOKEN`, `secrets:
/// inherit`, or OIDC (`id-token: write`, how AWS roles are usually assumed).
fn first_credential(root: &Mapping) -> Option<String> {
    if let Some(found) = secret_in_mapping(root) {
        return Some(found);
    }
    let mut permission_blocks = vec![root.get("permissions")];
    if let Some(Value::Mapping(jobs)) = root.get("jobs") {
        permission_blocks.extend(jobs.values().map(|job| job.get("permissions")));
    }
    permission_blocks
        .into_iter()
        .flatten()
        .find_map(|perms| match perms {
            Value::String(s) if s == "write-all" => Some("`permissions: write-all`".to_owned()),
            Value::Mapping(m) => (m.get("id-token").and_then(Value::as_str) == Some("write"))
                .then(|| "`id-token: write` (OIDC credentials such as an AWS role)".to_owned()),
            _ => None,
        })
}

fn secret_in(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => secret_in_text(s),
        Value::Sequence(items) => items.iter().find_map(secret_in),
        Value::Mapping(map) => secret_in_mapping(map),
        _ => None,
    }
}

fn secret_in_mapping(map: &Mapping) -> Option<String> {
    map.iter().find_map(|(key, value)| {
        // A reusable-workflow job can pass every secret without naming one.
        if key.as_str() == Some("secrets") && value.as_str() == Some("inherit") {
            return Some("`secrets: inherit`".to_owned());
        }
        secret_in(value)
    })
}

fn secret_in_text(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("secrets") {
        let after = &rest[at + "secrets".len()..];
        let boundary_before = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        if boundary_before && (after.starts_with('.') || after.starts_with('[')) {
            let name: String = after[1..]
                .trim_start_matches(['\'', '"'])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if name != "github_token" {
                return Some(format!("`secrets.{}`", name.to_ascii_uppercase()));
            }
        }
        rest = after;
    }
    None
}

/// A repository check in an `if:` is what makes running head code safe:
/// a fork's commit then never reaches the step.
fn guards_against_forks(condition: Option<String>) -> bool {
    condition.is_some_and(|c| {
        (c.contains("head_repository.full_name") && c.contains("github.repository"))
            || c.contains("head_repository.fork")
    })
}

/// Whether a step is `actions/checkout`.
fn is_checkout(step: &Mapping) -> bool {
    step.get("uses")
        .and_then(Value::as_str)
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("actions/checkout"))
}

fn check_head_checkout(workflow: &ParsedWorkflow<'_>, findings: &mut Vec<Finding>) {
    let Some(credential) = first_credential(&workflow.root) else {
        return;
    };
    for job in workflow.jobs() {
        if guards_against_forks(job.condition()) {
            continue;
        }
        for step in job.steps() {
            let is_checkout = is_checkout(step);
            let head_ref = step
                .get("with")
                .and_then(|w| w.get("ref"))
                .and_then(scalar_text)
                .filter(|r| r.contains("head_sha") || r.contains("head_branch"));
            let Some(head_ref) = head_ref.filter(|_| is_checkout) else {
                continue;
            };
            if guards_against_forks(step.get("if").and_then(scalar_text)) {
                continue;
            }
            let from = job.line.unwrap_or(1);
            let line = workflow
                .lines
                .find(from, |l| {
                    starts_with_key(l, "ref") && l.contains(head_ref.trim())
                })
                .or(job.line);
            findings.push(workflow.finding(
                FindingKind::CheckoutOfHeadWithSecrets,
                line,
                format!(
                    "job `{}` checks out the upstream run's head (`ref: {}`) while the \
                     workflow has {credential}; an upstream run started by a pull request \
                     from a fork makes that the fork's code, which then runs with this \
                     repository's credentials; fix: do not run that code with secrets, or \
                     add `if: github.event.workflow_run.head_repository.full_name == \
                     github.repository` to the job",
                    job.id,
                    head_ref.trim()
                ),
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Rule 4: image tags from github.sha

/// Whether `token` occurs in `text` as a whole name (so `github.sha` does
/// not match inside `my_github.sha_x`). `text` must be lower case.
fn contains_token(text: &str, token: &str) -> bool {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(token).any(|(at, _)| {
        let before_ok = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !is_name_char(c));
        let after_ok = text[at + token.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_name_char(c));
        before_ok && after_ok
    })
}

/// `github.sha` in an expression, or the `GITHUB_SHA` variable.
fn uses_github_sha(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    contains_token(&lower, "github.sha") || contains_token(&lower, "github_sha")
}

/// `repo:${{ github.sha }}` and friends: the sha used as an image tag.
fn is_image_reference_with_sha(value: &str) -> bool {
    let compact: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    [
        ":${{github.sha}}",
        ":${{env.github_sha}}",
        ":$github_sha",
        ":${github_sha}",
    ]
    .iter()
    .any(|pattern| compact.contains(pattern))
}

fn is_image_like_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("image")
        || key == "tag"
        || key == "tags"
        || key.ends_with("-tag")
        || key.ends_with("_tag")
}

/// Where the value sits, for the message: `with.image-tag`, `env.IMAGE`.
struct TaggedInput {
    place: &'static str,
    key: String,
}

/// Inputs and variables in one mapping (`with:` or `env:`) that put
/// `github.sha` into an image reference.
fn sha_image_inputs(block: Option<&Value>, place: &'static str) -> Vec<TaggedInput> {
    let Some(Value::Mapping(block)) = block else {
        return Vec::new();
    };
    block
        .iter()
        .filter_map(|(key, value)| {
            let key = scalar_text(key)?;
            let value = scalar_text(value)?;
            let suspicious = uses_github_sha(&value)
                && (is_image_like_key(&key) || is_image_reference_with_sha(&value));
            suspicious.then_some(TaggedInput { place, key })
        })
        .collect()
}

fn check_image_tags(workflow: &ParsedWorkflow<'_>, findings: &mut Vec<Finding>) {
    let mut report = |input: TaggedInput, from: u32| {
        let line = workflow.lines.key_with_sha(from, &input.key);
        findings.push(workflow.finding(
            FindingKind::ImageTagFromGithubSha,
            line,
            format!(
                "`{}.{}` builds an image reference from `github.sha`; in a workflow_run \
                 run that is the latest commit of the default branch, not the commit the \
                 upstream workflow built, so this deploys a tag that may not exist or is \
                 another build; fix: use `${{{{ github.event.workflow_run.head_sha }}}}`, or \
                 leave `image-tag` empty and let ecs-stack-deploy derive it",
                input.place, input.key
            ),
        ));
    };
    for input in sha_image_inputs(workflow.root.get("env"), "env") {
        report(input, 1);
    }
    for job in workflow.jobs() {
        let from = job.line.unwrap_or(1);
        for input in sha_image_inputs(job.body.get("env"), "env") {
            report(input, from);
        }
        // A reusable-workflow job passes inputs under its own `with:`.
        for input in sha_image_inputs(job.body.get("with"), "with") {
            report(input, from);
        }
        for step in job.steps() {
            for input in sha_image_inputs(step.get("with"), "with") {
                report(input, from);
            }
            for input in sha_image_inputs(step.get("env"), "env") {
                report(input, from);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Finding lines in the text

/// The file's lines, searched to point findings at a line number.
struct TextLines<'a> {
    lines: Vec<&'a str>,
}

impl<'a> TextLines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().collect(),
        }
    }

    /// The first non-comment line at or after `from` (1-based) matching
    /// `matches`, given the line with its indentation and `- ` removed.
    fn find(&self, from: u32, matches: impl Fn(&str) -> bool) -> Option<u32> {
        let start = usize::try_from(from.max(1) - 1).ok()?;
        self.lines
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, line)| {
                let trimmed = line.trim_start();
                let trimmed = trimmed.strip_prefix("- ").unwrap_or(trimmed).trim_start();
                !trimmed.starts_with('#') && matches(trimmed)
            })
            .and_then(|(index, _)| u32::try_from(index + 1).ok())
    }

    /// The line of `key:` (bare or quoted) at or after `from`.
    fn key(&self, from: u32, key: &str) -> Option<u32> {
        self.find(from, |line| starts_with_key(line, key))
    }

    /// The line of a top-level `key:`; nested keys of the same name (a step
    /// input called `jobs`) must not win.
    fn top_level_key(&self, key: &str) -> Option<u32> {
        self.lines
            .iter()
            .position(|line| starts_with_key(line, key))
            .and_then(|index| u32::try_from(index + 1).ok())
    }

    /// The indentation of the first content line at or after `from`: the
    /// indentation of every job key when `from` follows `jobs:`.
    fn next_indent(&self, from: u32) -> Option<usize> {
        let line = self.find(from, |line| !line.is_empty())?;
        let text = self.lines.get(usize::try_from(line).ok()? - 1)?;
        Some(text.len() - text.trim_start().len())
    }

    /// The line of `key:` at exactly `indent`, so a job id is not confused
    /// with a same-named key nested inside an earlier job.
    fn key_at_indent(&self, from: u32, key: &str, indent: usize) -> Option<u32> {
        let start = usize::try_from(from.max(1) - 1).ok()?;
        self.lines
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, line)| {
                let trimmed = line.trim_start();
                line.len() - trimmed.len() == indent && starts_with_key(trimmed, key)
            })
            .and_then(|(index, _)| u32::try_from(index + 1).ok())
    }

    fn containing(&self, from: u32, needle: &str) -> Option<u32> {
        self.find(from, |line| line.contains(needle))
    }

    /// The `key:` line that also mentions the sha, else any line there with
    /// the sha (a block scalar puts the value on the next lines).
    fn key_with_sha(&self, from: u32, key: &str) -> Option<u32> {
        self.find(from, |line| {
            starts_with_key(line, key) && uses_github_sha(line)
        })
        .or_else(|| self.key(from, key))
    }
}

fn starts_with_key(line: &str, key: &str) -> bool {
    [key.to_owned(), format!("\"{key}\""), format!("'{key}'")]
        .iter()
        .any(|form| {
            line.strip_prefix(form.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETWORK: &str = r#"name: network
on:
  push:
    branches: [main]
    paths: ['infra/network/**']
  workflow_dispatch:
permissions:
  id-token: write
  contents: read
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{ secrets.AWS_DEPLOY_ROLE }}
          aws-region: eu-west-1
      - uses: acme/ecs-stack-deploy@v1
        with:
          stack-name: network
          template: infra/network/template.yml
"#;

    const ALB: &str = r#"name: alb
on:
  workflow_run:
    workflows: [network]
    types: [completed]
  workflow_dispatch:
permissions:
  id-token: write
  contents: read
jobs:
  deploy:
    if: github.event_name == 'workflow_dispatch' || (github.event.workflow_run.conclusion == 'success' && github.event.workflow_run.head_repository.full_name == github.repository)
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with: { ref: "${{ github.event.workflow_run.head_sha }}" }
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{ secrets.AWS_DEPLOY_ROLE }}
          aws-region: eu-west-1
      - uses: acme/ecs-stack-deploy@v1
        with:
          stack-name: alb
          template: infra/alb/template.yml
"#;

    const ECS: &str = r#"name: ECS service
on:
  workflow_run:
    workflows: ["alb"]
    types: [completed]
permissions:
  id-token: write
  contents: read
jobs:
  gate:
    if: >-
      github.event.workflow_run.conclusion == 'success' &&
      github.event.workflow_run.head_repository.full_name == github.repository
    runs-on: ubuntu-latest
    steps:
      - run: echo "upstream ${{ github.event.workflow_run.head_sha }} succeeded"
  deploy:
    needs: gate
    if: github.event.workflow_run.head_repository.full_name == github.repository
    runs-on: ubuntu-latest
    env:
      IMAGE: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:${{ github.event.workflow_run.head_sha }}
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.workflow_run.head_sha }}
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{ secrets.AWS_DEPLOY_ROLE }}
          aws-region: eu-west-1
      - uses: acme/ecs-stack-deploy@v1
        with:
          stack-name: shop-ecs
          image: ${{ env.IMAGE }}
"#;

    const APIGW: &str = r#"name: apigw
on:
  workflow_run:
    workflows:
      - ECS service
    types:
      - completed
jobs:
  deploy:
    runs-on: ubuntu-latest
    permissions:
      id-token: write
    steps:
      - name: Stop unless the ECS deploy succeeded
        if: github.event.workflow_run.conclusion != 'success'
        run: exit 1
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: arn:aws:iam::123456789012:role/deploy
          aws-region: eu-west-1
      - uses: acme/ecs-stack-deploy@v1
        with:
          stack-name: apigw
          image-tag: ""
"#;

    const DIR: &str = ".github/workflows";

    fn path(file: &str) -> String {
        format!("{DIR}/{file}")
    }

    /// The clean chain with `file` replaced by (or added as) `text`.
    fn chain_with(file: &str, text: &str) -> Vec<WorkflowFile> {
        let mut files: Vec<WorkflowFile> = [
            ("network.yml", NETWORK),
            ("alb.yml", ALB),
            ("ecs.yml", ECS),
            ("apigw.yml", APIGW),
        ]
        .into_iter()
        .filter(|(name, _)| *name != file)
        .map(|(name, text)| WorkflowFile {
            path: path(name),
            text: text.to_owned(),
        })
        .collect();
        files.push(WorkflowFile {
            path: path(file),
            text: text.to_owned(),
        });
        files
    }

    /// Replaces exactly one occurrence, so a fixture edit that silently
    /// matches nothing fails the test instead of testing the clean chain.
    fn edit(text: &str, from: &str, to: &str) -> String {
        assert_eq!(text.matches(from).count(), 1, "fixture edit {from:?}");
        text.replacen(from, to, 1)
    }

    struct Expected {
        kind: FindingKind,
        file: &'static str,
        line: Option<u32>,
        words: &'static [&'static str],
    }

    struct Case {
        name: &'static str,
        files: Vec<WorkflowFile>,
        expected: Vec<Expected>,
    }

    fn check(cases: Vec<Case>) {
        for case in cases {
            let findings = lint_workflows(&case.files, None);
            assert_eq!(
                findings.len(),
                case.expected.len(),
                "{}: got {findings:#?}",
                case.name
            );
            for (finding, want) in findings.iter().zip(&case.expected) {
                assert_eq!(finding.kind, want.kind, "{}: {finding:#?}", case.name);
                assert_eq!(finding.path, path(want.file), "{}", case.name);
                assert_eq!(finding.line, want.line, "{}: {finding:#?}", case.name);
                for word in want.words {
                    assert!(
                        finding.message.contains(word),
                        "{}: {word:?} not in {:?}",
                        case.name,
                        finding.message
                    );
                }
            }
        }
    }

    fn one(
        kind: FindingKind,
        file: &'static str,
        line: Option<u32>,
        words: &'static [&'static str],
    ) -> Vec<Expected> {
        vec![Expected {
            kind,
            file,
            line,
            words,
        }]
    }

    #[test]
    fn clean_chain_has_no_findings() {
        let findings = lint_workflows(&chain_with("apigw.yml", APIGW), None);
        assert_eq!(findings, Vec::new());
    }

    #[test]
    fn unknown_upstream_workflow() {
        use FindingKind::UnknownUpstreamWorkflow as Kind;
        let unnamed_network = edit(NETWORK, "name: network\non:", "on:");
        let mut unnamed_chain = chain_with("alb.yml", ALB);
        unnamed_chain[0].text = unnamed_network.clone();
        let mut unnamed_by_path = chain_with(
            "alb.yml",
            &edit(ALB, "[network]", "[.github/workflows/network.yml]"),
        );
        unnamed_by_path[0].text = unnamed_network;
        check(vec![
            Case {
                name: "case differs from the name",
                files: chain_with("alb.yml", &edit(ALB, "[network]", "[Network]")),
                expected: one(
                    Kind,
                    "alb.yml",
                    Some(4),
                    &["\"Network\"", "never fires", "did you mean \"network\""],
                ),
            },
            Case {
                name: "file name instead of name",
                files: chain_with("apigw.yml", &edit(APIGW, "- ECS service", "- ecs.yml")),
                expected: one(
                    Kind,
                    "apigw.yml",
                    Some(5),
                    &[
                        "\"ecs.yml\"",
                        "not its file name",
                        "did you mean \"ECS service\" (the name of .github/workflows/ecs.yml)",
                    ],
                ),
            },
            Case {
                name: "file stem instead of name",
                files: chain_with("apigw.yml", &edit(APIGW, "- ECS service", "- ecs")),
                expected: one(
                    Kind,
                    "apigw.yml",
                    Some(5),
                    &["did you mean \"ECS service\""],
                ),
            },
            Case {
                name: "nothing close lists the known names",
                files: chain_with("alb.yml", &edit(ALB, "[network]", "[vpc]")),
                expected: one(
                    Kind,
                    "alb.yml",
                    Some(4),
                    &[
                        "\"vpc\"",
                        "known names: \"network\", \"ECS service\", \"apigw\", \"alb\"",
                    ],
                ),
            },
            Case {
                name: "upstream without name: is called by its path",
                files: unnamed_chain,
                expected: one(
                    Kind,
                    "alb.yml",
                    Some(4),
                    &["did you mean \".github/workflows/network.yml\""],
                ),
            },
            Case {
                name: "upstream without name: referred to by its path is fine",
                files: unnamed_by_path,
                expected: Vec::new(),
            },
        ]);
    }

    #[test]
    fn no_conclusion_check() {
        use FindingKind::NoConclusionCheck as Kind;
        let alb_unchecked = edit(
            ALB,
            "    if: github.event_name == 'workflow_dispatch' || (github.event.workflow_run.conclusion == 'success' && github.event.workflow_run.head_repository.full_name == github.repository)\n",
            "    if: github.event.workflow_run.head_repository.full_name == github.repository\n",
        );
        let ecs_always = edit(
            ECS,
            "    if: github.event",
            "    if: always() && github.event",
        );
        let apigw_check_second = edit(
            APIGW,
            "      - name: Stop unless the ECS deploy succeeded\n",
            "      - run: echo starting\n      - name: Stop unless the ECS deploy succeeded\n",
        );
        check(vec![
            Case {
                name: "job without any if",
                files: chain_with("alb.yml", &alb_unchecked),
                expected: one(
                    Kind,
                    "alb.yml",
                    Some(11),
                    &[
                        "job `deploy`",
                        "FAILED",
                        "if: github.event.workflow_run.conclusion == 'success'",
                    ],
                ),
            },
            Case {
                name: "always() defeats needs of a checked job",
                files: chain_with("ecs.yml", &ecs_always),
                expected: one(Kind, "ecs.yml", Some(17), &["job `deploy`"]),
            },
            Case {
                name: "check on the second step is too late",
                files: chain_with("apigw.yml", &apigw_check_second),
                expected: one(Kind, "apigw.yml", Some(9), &["job `deploy`"]),
            },
        ]);
    }

    #[test]
    fn needs_chain_carries_the_check_transitively() {
        let text = r#"name: release
on:
  workflow_run:
    workflows: [network]
    types: [completed]
jobs:
  gate:
    if: github.event.workflow_run.conclusion == 'success'
    runs-on: ubuntu-latest
    steps:
      - run: echo ok
  build:
    needs: [gate]
    runs-on: ubuntu-latest
    steps:
      - run: make
  publish:
    needs: build
    runs-on: ubuntu-latest
    steps:
      - run: make publish
  notify:
    runs-on: ubuntu-latest
    steps:
      - run: echo done
"#;
        let findings = lint_workflows(&chain_with("release.yml", text), None);
        let flagged: Vec<(FindingKind, Option<u32>)> =
            findings.iter().map(|f| (f.kind, f.line)).collect();
        assert_eq!(flagged, vec![(FindingKind::NoConclusionCheck, Some(22))]);
        assert!(findings[0].message.contains("job `notify`"));
    }

    #[test]
    fn checkout_of_head_with_secrets() {
        use FindingKind::CheckoutOfHeadWithSecrets as Kind;
        let ecs_unguarded = edit(
            ECS,
            "    if: github.event.workflow_run.head_repository.full_name == github.repository\n",
            "    timeout-minutes: 30\n",
        );
        let apigw_head_branch = edit(
            APIGW,
            "      - uses: aws-actions/configure-aws-credentials@v4\n",
            "      - uses: actions/checkout@v4\n        with:\n          ref: ${{ github.event.workflow_run.head_branch }}\n      - uses: aws-actions/configure-aws-credentials@v4\n",
        );
        let token_only = r#"name: label
on:
  workflow_run:
    workflows: [alb]
    types: [completed]
jobs:
  label:
    if: github.event.workflow_run.conclusion == 'success'
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.workflow_run.head_sha }}
      - run: gh pr edit --add-label deployed
        env:
          GH_TOKEN: ${{ secrets.GITHUB_TOKEN }}
"#;
        let inherit = r#"name: reuse
on:
  workflow_run:
    workflows: [alb]
    types: [completed]
jobs:
  test:
    if: github.event.workflow_run.conclusion == 'success'
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.workflow_run.head_sha }}
      - run: make test
  deploy:
    needs: test
    uses: ./.github/workflows/deploy-reusable.yml
    secrets: inherit
"#;
        check(vec![
            Case {
                name: "secret used in a job that checks out the head",
                files: chain_with("ecs.yml", &ecs_unguarded),
                expected: one(
                    Kind,
                    "ecs.yml",
                    Some(26),
                    &[
                        "job `deploy`",
                        "head_sha",
                        "`secrets.AWS_DEPLOY_ROLE`",
                        "fork",
                        "head_repository.full_name == github.repository",
                    ],
                ),
            },
            Case {
                name: "OIDC permission counts as a credential",
                files: chain_with("apigw.yml", &apigw_head_branch),
                expected: one(
                    Kind,
                    "apigw.yml",
                    Some(19),
                    &["head_branch", "id-token: write"],
                ),
            },
            Case {
                name: "GITHUB_TOKEN alone is not a secret",
                files: chain_with("label.yml", token_only),
                expected: Vec::new(),
            },
            Case {
                name: "secrets: inherit",
                files: chain_with("reuse.yml", inherit),
                expected: one(Kind, "reuse.yml", Some(13), &["`secrets: inherit`"]),
            },
        ]);
    }

    #[test]
    fn image_tag_from_github_sha() {
        use FindingKind::ImageTagFromGithubSha as Kind;
        let network_push = edit(
            NETWORK,
            "          stack-name: network\n",
            "          stack-name: network\n          image-tag: ${{ github.sha }}\n",
        );
        let ecs_container = edit(
            ECS,
            "          image: ${{ env.IMAGE }}\n",
            "          image: ${{ env.IMAGE }}\n          container: sidecar=123456789012.dkr.ecr.eu-west-1.amazonaws.com/proxy:${{github.sha}}\n",
        );
        check(vec![
            Case {
                name: "with.image-tag",
                files: chain_with(
                    "apigw.yml",
                    &edit(APIGW, "image-tag: \"\"", "image-tag: ${{ github.sha }}"),
                ),
                expected: one(
                    Kind,
                    "apigw.yml",
                    Some(24),
                    &[
                        "`with.image-tag`",
                        "default branch",
                        "github.event.workflow_run.head_sha",
                        "leave `image-tag` empty",
                    ],
                ),
            },
            Case {
                name: "env image reference",
                files: chain_with(
                    "ecs.yml",
                    &edit(
                        ECS,
                        "shop:${{ github.event.workflow_run.head_sha }}",
                        "shop:${{ github.sha }}",
                    ),
                ),
                expected: one(Kind, "ecs.yml", Some(22), &["`env.IMAGE`"]),
            },
            Case {
                name: "GITHUB_SHA variable in a tag input",
                files: chain_with(
                    "apigw.yml",
                    &edit(APIGW, "image-tag: \"\"", "tag: $GITHUB_SHA"),
                ),
                expected: one(Kind, "apigw.yml", Some(24), &["`with.tag`"]),
            },
            Case {
                name: "any input holding repo:sha",
                files: chain_with("ecs.yml", &ecs_container),
                expected: one(Kind, "ecs.yml", Some(35), &["`with.container`"]),
            },
            Case {
                name: "push workflows may use github.sha",
                files: chain_with("network.yml", &network_push),
                expected: Vec::new(),
            },
        ]);
    }

    #[test]
    fn parse_errors_are_findings() {
        use FindingKind::ParseError as Kind;
        let broken_alb = edit(
            ALB,
            "    workflows: [network]\n",
            "    workflows: [network\n",
        );
        check(vec![
            Case {
                name: "invalid YAML, its name still known to downstream",
                files: chain_with("alb.yml", &broken_alb),
                expected: one(Kind, "alb.yml", Some(5), &["not valid YAML", "chain"]),
            },
            Case {
                name: "no on",
                files: chain_with(
                    "lint.yml",
                    "name: lint\njobs:\n  lint:\n    runs-on: ubuntu-latest\n",
                ),
                expected: one(Kind, "lint.yml", None, &["no `on:`"]),
            },
            Case {
                name: "empty on",
                files: chain_with("lint.yml", "name: lint\non:\njobs: {}\n"),
                expected: one(Kind, "lint.yml", None, &["no `on:`"]),
            },
            Case {
                name: "a list is not a workflow",
                files: chain_with("list.yml", "- name: lint\n- on: push\n"),
                expected: one(Kind, "list.yml", None, &["not a mapping"]),
            },
            Case {
                name: "empty file",
                files: chain_with("empty.yml", ""),
                expected: one(Kind, "empty.yml", None, &[]),
            },
        ]);
    }

    #[test]
    fn on_key_forms() {
        use FindingKind::{NoConclusionCheck, UnknownUpstreamWorkflow};
        let jobs =
            "jobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make deploy\n";
        let with_on = |on: &str| format!("name: x\n{on}{jobs}");
        check(vec![
            Case {
                name: "string",
                files: chain_with("x.yml", &with_on("on: workflow_run\n")),
                expected: one(NoConclusionCheck, "x.yml", Some(4), &["job `deploy`"]),
            },
            Case {
                name: "list",
                files: chain_with("x.yml", &with_on("on: [push, workflow_run]\n")),
                expected: one(NoConclusionCheck, "x.yml", Some(4), &[]),
            },
            Case {
                name: "string without workflow_run",
                files: chain_with("x.yml", &with_on("on: push\n")),
                expected: Vec::new(),
            },
            Case {
                name: "quoted key",
                files: chain_with(
                    "x.yml",
                    &with_on("\"on\":\n  workflow_run:\n    workflows: [albb]\n"),
                ),
                expected: vec![
                    Expected {
                        kind: UnknownUpstreamWorkflow,
                        file: "x.yml",
                        line: Some(4),
                        words: &["\"albb\"", "known names"],
                    },
                    Expected {
                        kind: NoConclusionCheck,
                        file: "x.yml",
                        line: Some(6),
                        words: &[],
                    },
                ],
            },
            Case {
                name: "YAML 1.1 true key",
                files: chain_with(
                    "x.yml",
                    &with_on("true:\n  workflow_run:\n    workflows: [ALB]\n"),
                ),
                expected: vec![
                    Expected {
                        kind: UnknownUpstreamWorkflow,
                        file: "x.yml",
                        line: Some(4),
                        words: &["did you mean \"alb\""],
                    },
                    Expected {
                        kind: NoConclusionCheck,
                        file: "x.yml",
                        line: Some(6),
                        words: &[],
                    },
                ],
            },
        ]);
    }

    #[test]
    fn serde_yaml_ng_keeps_on_a_string_key() {
        // Pins the parser behaviour the `true` fallback exists for: a YAML
        // 1.1 parser would turn `on` into the boolean true.
        let value: Value = serde_yaml_ng::from_str("on: push\n").unwrap();
        let root = value.as_mapping().unwrap();
        assert_eq!(root.get("on"), Some(&Value::String("push".to_owned())));
        assert_eq!(root.get(Value::Bool(true)), None);
    }

    #[test]
    fn findings_sorted_by_path_then_line() {
        let mut files = chain_with("alb.yml", &edit(ALB, "[network]", "[vpc]"));
        files.push(WorkflowFile {
            path: path("a-first.yml"),
            text: "name: a\non:\n  workflow_run:\n    workflows: [nope]\njobs:\n  j:\n    runs-on: x\n".to_owned(),
        });
        let order: Vec<(String, Option<u32>)> = lint_workflows(&files, None)
            .into_iter()
            .map(|f| (f.path, f.line))
            .collect();
        assert_eq!(
            order,
            vec![
                (path("a-first.yml"), Some(4)),
                (path("a-first.yml"), Some(6)),
                (path("alb.yml"), Some(4)),
            ]
        );
    }

    #[test]
    fn finding_display_is_path_line_kind_message() {
        let finding = Finding {
            kind: FindingKind::NoConclusionCheck,
            path: path("alb.yml"),
            line: Some(11),
            message: "m".to_owned(),
        };
        assert_eq!(
            finding.to_string(),
            ".github/workflows/alb.yml:11: no-conclusion-check: m"
        );
        let no_line = Finding {
            line: None,
            ..finding
        };
        assert_eq!(
            no_line.to_string(),
            ".github/workflows/alb.yml: no-conclusion-check: m"
        );
    }

    #[test]
    fn read_workflow_dir_reads_yaml_files_sorted() {
        let dir = std::env::temp_dir().join(format!("lint-read-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.yaml"), APIGW).unwrap();
        std::fs::write(dir.join("a.yml"), ALB).unwrap();
        std::fs::write(dir.join("README.md"), "not a workflow").unwrap();
        let files = read_workflow_dir(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<String> = files
            .unwrap()
            .into_iter()
            .map(|f| {
                let name = Path::new(&f.path)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                format!("{name}:{}", f.text.len())
            })
            .collect();
        assert_eq!(
            names,
            vec![
                format!("a.yml:{}", ALB.len()),
                format!("b.yaml:{}", APIGW.len())
            ]
        );
    }
}
