//! The system manifest (`stacks` input): the stacks of one system, each a
//! template with its parameters and the action inputs it differs by, read
//! and checked before any AWS call. Values may refer to another stack's
//! output (`{{ stacks.network.outputs.VpcId }}`, filled when that stack is
//! deployed) or to an environment variable (`{{ env.NAME }}`, filled here);
//! nothing else is evaluated. Every error names the file, the line and the
//! key, and the fix (pure: the caller reads the files).

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use super::key_lines::KeyLines;
use crate::inputs::{DEPLOY_INPUTS, closest_declared_input};
use crate::references::references;

/// Inputs a stack takes from its own keys, never from `with:`.
const STACK_KEYED_INPUTS: &[(&str, &str)] = &[
    ("name", "the stack's key or its `name:`"),
    ("stack-name", "the stack's key or its `name:`"),
    ("template", "`template:`"),
    ("parameter-overrides", "`parameters:` or `parameters-file:`"),
    ("stacks", "one manifest per run"),
    ("max-parallel", "the step's own input"),
    (
        "environment",
        "the step's own input, which selects the manifest's `environments:` overlays",
    ),
];

/// Inputs a system run does not act on yet, refused rather than ignored: a
/// deployment's URL names one stack's output, and the change-set modes
/// name one stack.
pub const NOT_WITH_STACKS: &[&str] = &[
    "environment-url-output",
    "execute-change-set-id",
    "continue-deployment",
];

/// Inputs of the whole system, given to the step: the workflows are
/// dispatched once, after every stack deployed.
pub const SYSTEM_DISPATCH_INPUTS: &[&str] =
    &["dispatch-workflows", "dispatch-inputs", "dispatch-ref"];

/// Why an input of [`NOT_WITH_STACKS`] is refused, and the fix.
pub const NOT_WITH_STACKS_PROBLEM: &str = "does not apply to a system of stacks yet";
pub const NOT_WITH_STACKS_FIX: &str =
    "run it in a step of its own after the system's (its outputs are there)";

/// A manifest that cannot be used: where, what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: String,
    pub line: Option<usize>,
    /// The key path (`stacks.alb.parameters.VpcId`).
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}; {}", self.problem, self.fix)
    }
}

/// A scalar as YAML writes it (`true`, `8080`, `text`), kept as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Bool(bool),
    Integer(i64),
    Float(f64),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Text(text) => text.clone(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Integer(n) => n.to_string(),
            Scalar::Float(x) => x.to_string(),
        }
    }
}

/// A parameter value: a scalar, or a list (a `List<...>` parameter).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ParameterDocument {
    One(Scalar),
    List(Vec<Scalar>),
}

/// `capabilities: CAPABILITY_IAM` or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn joined(&self) -> String {
        match self {
            OneOrMany::One(one) => one.clone(),
            OneOrMany::Many(many) => many.join(","),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestDocument {
    /// Inputs every stack gets.
    #[serde(default)]
    with: IndexMap<String, Scalar>,
    #[serde(default)]
    stacks: IndexMap<String, StackDocument>,
    services: Option<ServicesDocument>,
}

/// The service catalog: one stack per entry, from one template.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServicesDocument {
    template: String,
    /// The stack name, `{service}` being the entry's key (default: the key).
    name: Option<String>,
    /// Parameters of every entry (an entry's own win).
    #[serde(default)]
    parameters: IndexMap<String, ParameterDocument>,
    #[serde(default)]
    depends_on: Vec<String>,
    capabilities: Option<OneOrMany>,
    tags: Option<IndexMap<String, Scalar>>,
    #[serde(default)]
    with: IndexMap<String, Scalar>,
    /// Delete the stacks of entries removed from the catalog.
    #[serde(default)]
    prune: bool,
    entries: IndexMap<String, IndexMap<String, serde_yaml_ng::Value>>,
}

/// An entry's keys that are not parameters.
const ENTRY_KEYS: &[&str] = &["image", "allow-mutable-tag", "depends-on", "with"];

/// The tag naming the catalog a service stack belongs to (the manifest
/// file), and the one naming its entry: how a removed entry's stack is
/// found again.
pub const CATALOG_TAG: &str = "ecs-stack-deploy:catalog";
pub const SERVICE_TAG: &str = "ecs-stack-deploy:service";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StackDocument {
    name: Option<String>,
    template: String,
    #[serde(default)]
    parameters: IndexMap<String, ParameterDocument>,
    parameters_file: Option<String>,
    capabilities: Option<OneOrMany>,
    tags: Option<IndexMap<String, Scalar>>,
    termination_protection: Option<bool>,
    #[serde(default)]
    depends_on: Vec<String>,
    /// The image repository (the tag comes from the event, as the
    /// `image-repository` input's does) or a whole image reference.
    image: Option<String>,
    #[serde(default)]
    with: IndexMap<String, Scalar>,
    #[serde(default)]
    environments: IndexMap<String, OverlayDocument>,
}

/// What an environment changes of a stack.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct OverlayDocument {
    #[serde(default)]
    parameters: IndexMap<String, ParameterDocument>,
    tags: Option<IndexMap<String, Scalar>>,
    termination_protection: Option<bool>,
    image: Option<String>,
    #[serde(default)]
    with: IndexMap<String, Scalar>,
}

/// A value that may refer to other stacks' outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterValue {
    One(String),
    List(Vec<String>),
}

impl ParameterValue {
    /// Each text of the value.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            ParameterValue::One(text) => vec![text.as_str()],
            ParameterValue::List(items) => items.iter().map(String::as_str).collect(),
        }
    }
}

/// `{{ stacks.STACK.outputs.KEY }}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutputReference {
    pub stack: String,
    pub output: String,
}

/// One stack of the manifest, its overlay applied and `{{ env.* }}` filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestStack {
    /// The key under `stacks:`, how the manifest refers to it.
    pub key: String,
    /// The CloudFormation stack name.
    pub name: String,
    /// The template, resolved against the manifest's folder.
    pub template: PathBuf,
    pub parameters: Vec<(String, ParameterValue)>,
    /// Other stacks named by `depends-on`.
    pub depends_on: Vec<String>,
    /// Action inputs of this stack (the manifest's `with:`, then the
    /// stack's keys and `with:`), by input name.
    pub inputs: Vec<(String, String)>,
    /// The line of the stack's key, for messages.
    pub line: Option<usize>,
    /// Where the manifest declares it: `stacks`, or `services.entries`.
    pub section: &'static str,
}

impl ManifestStack {
    /// The key path of one of its settings, for messages
    /// (`stacks.alb.parameters.VpcId`).
    pub fn path(&self, inner: &str) -> String {
        format!("{}.{}.{inner}", self.section, self.key)
    }

    /// Every output reference of the stack's values, with the key path
    /// that holds it.
    pub fn output_references(&self) -> Vec<(String, OutputReference)> {
        let mut found = Vec::new();
        for (key, value) in &self.parameters {
            for text in value.texts() {
                for reference in output_references(text) {
                    found.push((format!("parameters.{key}"), reference));
                }
            }
        }
        for (input, value) in &self.inputs {
            for reference in output_references(value) {
                found.push((format!("with.{input}"), reference));
            }
        }
        found
    }
}

/// The manifest, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The file as given (for messages).
    pub file: String,
    pub stacks: Vec<ManifestStack>,
    pub catalog: Option<Catalog>,
    /// Where each key is written, for messages.
    pub lines: KeyLines,
    /// The environment whose overlays were applied.
    pub environment: Option<String>,
}

/// The service catalog's own settings (its entries are in `stacks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// The keys of the entries.
    pub entries: Vec<String>,
    pub prune: bool,
}

impl Manifest {
    pub fn stack(&self, key: &str) -> Option<&ManifestStack> {
        self.stacks.iter().find(|s| s.key == key)
    }

    /// The line of one of a stack's settings (`parameters.VpcId`,
    /// `with.cluster`), where the manifest writes the value that applies;
    /// the stack's own line when it is not written in block style.
    pub fn line_of(&self, stack: &ManifestStack, inner: &str) -> Option<usize> {
        setting_line(
            &self.lines,
            self.environment.as_deref(),
            stack.section,
            &stack.key,
            stack.line,
            inner,
        )
    }
}

/// The line of a stack's setting `inner` (a dotted path under the stack),
/// most specific place first: the environment's overlay, the stack's own
/// keys, a catalog entry's own keys (its parameters are written without
/// `parameters:`) and then the catalog section's; for a parameter, the
/// `parameters-file` that may hold it last; the stack's own line when none
/// of them is written in block style.
fn setting_line(
    lines: &KeyLines,
    environment: Option<&str>,
    section: &str,
    key: &str,
    stack_line: Option<usize>,
    inner: &str,
) -> Option<usize> {
    let section: Vec<&str> = section.split('.').collect();
    let inner: Vec<&str> = inner.split('.').collect();
    let under_stack = |more: &[&str]| -> Vec<String> {
        section
            .iter()
            .chain([&key])
            .chain(more)
            .map(|part| (*part).to_string())
            .collect()
    };
    let mut candidates: Vec<Vec<String>> = Vec::new();
    if let Some(environment) = environment {
        candidates.push(under_stack(
            &[&["environments", environment][..], &inner].concat(),
        ));
    }
    candidates.push(under_stack(&inner));
    let is_parameter = inner.first() == Some(&"parameters");
    if section == ["services", "entries"] {
        if is_parameter {
            candidates.push(under_stack(&inner[1..]));
        }
        candidates.push(
            ["services"]
                .iter()
                .chain(&inner)
                .map(|p| (*p).to_string())
                .collect(),
        );
    }
    if is_parameter {
        candidates.push(under_stack(&["parameters-file"]));
    }
    candidates
        .iter()
        .find_map(|path| lines.get(path))
        .or(stack_line)
}

/// Reads the manifest `text` of `file` (a path relative to `base`, the
/// workspace), for `environment` (its overlays), with `env_var` for
/// `{{ env.NAME }}`.
pub fn read_manifest(
    text: &str,
    file: &str,
    base: &Path,
    environment: Option<&str>,
    env_var: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, Vec<ManifestError>> {
    let error = |line: Option<usize>, key: &str, problem: String, fix: &str| ManifestError {
        file: file.to_string(),
        line,
        key: key.to_string(),
        problem,
        fix: fix.to_string(),
    };
    let document: ManifestDocument = serde_yaml_ng::from_str(text).map_err(|e| {
        vec![error(
            e.location().map(|l| l.line()),
            "",
            syntax_problem(&e.to_string()),
            "write the manifest as `stacks:` with one entry per stack (template, parameters, depends-on, ...); see the README's system section",
        )]
    })?;
    let folder = base
        .join(file)
        .parent()
        .map_or_else(|| base.to_path_buf(), Path::to_path_buf);
    let lines = KeyLines::new(text);
    let mut errors = Vec::new();
    let mut entries: Vec<(&str, String, StackDocument)> = document
        .stacks
        .into_iter()
        .map(|(key, entry)| ("stacks", key, entry))
        .collect();
    let mut catalog = None;
    if let Some(services) = document.services {
        catalog = Some(Catalog {
            entries: services.entries.keys().cloned().collect(),
            prune: services.prune,
        });
        for (key, entry) in service_stacks(services, file, &lines, &mut errors) {
            if entries.iter().any(|(_, other, _)| other == &key) {
                errors.push(error(
                    lines.get(&["services", "entries", &key]),
                    &format!("services.entries.{key}"),
                    format!("has the key of a stack of `stacks` (`{key}`)"),
                    "give the service another key",
                ));
                continue;
            }
            entries.push(("services.entries", key, entry));
        }
    }
    if entries.is_empty() {
        errors.push(error(
            lines.get(&["stacks"]).or(lines.get(&["services"])),
            "stacks",
            "names no stack".into(),
            "list the stacks of the system under `stacks:` (or services under `services.entries`)",
        ));
    }
    let shared = checked_inputs(
        &document.with,
        "with",
        &|name| lines.get(&["with", name]),
        file,
        &mut errors,
    );
    let mut stacks = Vec::new();
    for (section, key, entry) in entries {
        let section_path: Vec<&str> = section.split('.').collect();
        let line = lines.get(&[&section_path[..], &[key.as_str()]].concat());
        let path = |inner: &str| format!("{section}.{key}.{inner}");
        let line_of = |inner: &str| setting_line(&lines, environment, section, &key, line, inner);
        let overlay = environment.and_then(|name| entry.environments.get(name));
        if let Some(name) = environment
            && overlay.is_none()
            && !entry.environments.is_empty()
        {
            errors.push(error(
                line_of("environments"),
                &path("environments"),
                format!(
                    "has no `{name}` (it has {})",
                    entry
                        .environments
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "add the environment to the stack's `environments:`, or deploy another one",
            ));
        }
        let mut parameters: IndexMap<String, ParameterDocument> = entry.parameters.clone();
        let mut with = entry.with.clone();
        let mut tags = entry.tags.clone();
        let mut image = entry.image.clone();
        let mut protection = entry.termination_protection;
        if let Some(overlay) = overlay {
            parameters.extend(overlay.parameters.clone());
            with.extend(overlay.with.clone());
            if overlay.tags.is_some() {
                tags = overlay.tags.clone();
            }
            if overlay.image.is_some() {
                image = overlay.image.clone();
            }
            if overlay.termination_protection.is_some() {
                protection = overlay.termination_protection;
            }
        }
        let mut inputs: Vec<(String, String)> = shared.clone();
        let mut set = |name: &str, value: String| {
            inputs.retain(|(existing, _)| existing != name);
            inputs.push((name.to_string(), value));
        };
        if let Some(capabilities) = &entry.capabilities {
            set("capabilities", capabilities.joined());
        }
        if let Some(tags) = &tags {
            let map: serde_json::Map<String, serde_json::Value> = tags
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.text())))
                .collect();
            set("tags", serde_json::Value::Object(map).to_string());
        }
        if let Some(protection) = protection {
            set("termination-protection", protection.to_string());
        }
        if let Some(image) = &image {
            let input = if image
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':') || last.contains('@'))
            {
                "image"
            } else {
                "image-repository"
            };
            set(input, image.clone());
        }
        let with_line = |name: &str| line_of(&format!("with.{name}"));
        for (name, value) in checked_inputs(&with, &path("with"), &with_line, file, &mut errors) {
            set(&name, value);
        }
        let mut values = Vec::new();
        for (name, value) in &parameters {
            let key_path = path(&format!("parameters.{name}"));
            let texts: Vec<String> = match value {
                ParameterDocument::One(one) => vec![one.text()],
                ParameterDocument::List(items) => items.iter().map(Scalar::text).collect(),
            };
            let mut filled = Vec::new();
            for text_value in texts {
                match fill_environment(&text_value, env_var) {
                    Ok(value) => filled.push(value),
                    Err(problem) => errors.push(error(
                        line_of(&format!("parameters.{name}")),
                        &key_path,
                        problem,
                        "refer to `{{ stacks.STACK.outputs.KEY }}` or `{{ env.NAME }}` only",
                    )),
                }
            }
            values.push((
                name.clone(),
                match value {
                    ParameterDocument::One(_) => {
                        ParameterValue::One(filled.into_iter().next().unwrap_or_default())
                    }
                    ParameterDocument::List(_) => ParameterValue::List(filled),
                },
            ));
        }
        for (name, value) in &mut inputs {
            match fill_environment(value, env_var) {
                Ok(filled) => *value = filled,
                Err(problem) => errors.push(error(
                    line_of(&format!("with.{name}")),
                    &path(&format!("with.{name}")),
                    problem,
                    "refer to `{{ stacks.STACK.outputs.KEY }}` or `{{ env.NAME }}` only",
                )),
            }
        }
        if let Some(parameters_file) = &entry.parameters_file {
            set_parameters_file(&mut values, &folder, parameters_file).unwrap_or_else(|problem| {
                errors.push(error(
                    line_of("parameters-file"),
                    &path("parameters-file"),
                    problem,
                    "give a JSON or YAML parameter file, relative to the manifest's folder",
                ))
            });
        }
        stacks.push(ManifestStack {
            name: entry.name.clone().unwrap_or_else(|| key.clone()),
            template: folder.join(&entry.template),
            parameters: values,
            depends_on: entry.depends_on.clone(),
            inputs,
            line,
            section,
            key,
        });
    }
    for stack in &stacks {
        let line_of = |inner: &str| {
            setting_line(
                &lines,
                environment,
                stack.section,
                &stack.key,
                stack.line,
                inner,
            )
        };
        for upstream in &stack.depends_on {
            if upstream == &stack.key || !stacks.iter().any(|s| &s.key == upstream) {
                // The list's items are values, not keys: the first line
                // from `depends-on:` on that names it.
                let list = line_of("depends-on");
                errors.push(error(
                    text_line(text, upstream, list.unwrap_or(0)).or(list),
                    &stack.path("depends-on"),
                    format!("names `{upstream}`, which is not another stack of the manifest"),
                    &format!("name one of: {}", other_keys(&stacks, &stack.key)),
                ));
            }
        }
        for (key_path, reference) in stack.output_references() {
            if reference.stack == stack.key || !stacks.iter().any(|s| s.key == reference.stack) {
                errors.push(error(
                    line_of(&key_path),
                    &stack.path(&key_path),
                    format!(
                        "refers to stack `{}`, which is not another stack of the manifest",
                        reference.stack
                    ),
                    &format!("refer to one of: {}", other_keys(&stacks, &stack.key)),
                ));
            }
        }
    }
    let mut names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    for pair in names.windows(2) {
        if pair[0] == pair[1] {
            errors.push(error(
                None,
                "stacks",
                format!("two entries deploy the stack named `{}`", pair[0]),
                "give each entry its own stack `name:`",
            ));
        }
    }
    if errors.is_empty() {
        Ok(Manifest {
            file: file.to_string(),
            stacks,
            catalog,
            lines,
            environment: environment.map(str::to_string),
        })
    } else {
        Err(errors)
    }
}

fn other_keys(stacks: &[ManifestStack], except: &str) -> String {
    let keys: Vec<&str> = stacks
        .iter()
        .map(|s| s.key.as_str())
        .filter(|k| *k != except)
        .collect();
    if keys.is_empty() {
        "(no other stack)".into()
    } else {
        keys.join(", ")
    }
}

/// serde's message without its position (the error gives the line).
fn syntax_problem(message: &str) -> String {
    let text = message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_string();
    match text.strip_prefix("stacks: ") {
        Some(rest) => format!("in `stacks`: {rest}"),
        None => text,
    }
}

/// The catalog's entries as stacks: the section's template, name pattern,
/// parameters, depends-on, capabilities, tags and inputs, then the entry's
/// own; an entry's keys are its parameters but for `image`,
/// `allow-mutable-tag`, `depends-on` and `with`. Each stack is tagged with
/// the catalog (the manifest file) and its entry.
fn service_stacks(
    services: ServicesDocument,
    file: &str,
    lines: &KeyLines,
    errors: &mut Vec<ManifestError>,
) -> Vec<(String, StackDocument)> {
    let mut stacks = Vec::new();
    for (key, entry) in &services.entries {
        let line = lines.get(&["services", "entries", key]);
        let mut parameters = services.parameters.clone();
        let mut with = services.with.clone();
        let mut depends_on = services.depends_on.clone();
        let mut image = None;
        for (name, value) in entry {
            let refuse = |problem: String, fix: &str| ManifestError {
                file: file.to_string(),
                line: lines.get(&["services", "entries", key, name]).or(line),
                key: format!("services.entries.{key}.{name}"),
                problem,
                fix: fix.to_string(),
            };
            let read = match name.as_str() {
                "image" => serde_yaml_ng::from_value::<String>(value.clone())
                    .map(|text| image = Some(text))
                    .map_err(|e| refuse(e.to_string(), "give the image as a string")),
                "allow-mutable-tag" => serde_yaml_ng::from_value::<Scalar>(value.clone())
                    .map(|v| {
                        with.insert(name.clone(), v);
                    })
                    .map_err(|e| refuse(e.to_string(), "give true or false")),
                "depends-on" => serde_yaml_ng::from_value::<Vec<String>>(value.clone())
                    .map(|more| depends_on.extend(more))
                    .map_err(|e| refuse(e.to_string(), "list stack keys")),
                "with" => serde_yaml_ng::from_value::<IndexMap<String, Scalar>>(value.clone())
                    .map(|more| with.extend(more))
                    .map_err(|e| refuse(e.to_string(), "give inputs as a mapping")),
                _ => serde_yaml_ng::from_value::<ParameterDocument>(value.clone())
                    .map(|v| {
                        parameters.insert(name.clone(), v);
                    })
                    .map_err(|e| {
                        refuse(
                            format!("is not a parameter value: {e}"),
                            &format!(
                                "give a string, number, boolean or list (the entry's keys are the template's parameters, but {})",
                                ENTRY_KEYS.join(", ")
                            ),
                        )
                    }),
            };
            if let Err(found) = read {
                errors.push(found);
            }
        }
        let mut tags = services.tags.clone().unwrap_or_default();
        tags.insert(CATALOG_TAG.into(), Scalar::Text(file.to_string()));
        tags.insert(SERVICE_TAG.into(), Scalar::Text(key.clone()));
        stacks.push((
            key.clone(),
            StackDocument {
                name: Some(
                    services
                        .name
                        .as_deref()
                        .map_or_else(|| key.clone(), |pattern| pattern.replace("{service}", key)),
                ),
                template: services.template.clone(),
                parameters,
                parameters_file: None,
                capabilities: services.capabilities.clone(),
                tags: Some(tags),
                termination_protection: None,
                depends_on,
                image,
                with,
                environments: IndexMap::new(),
            },
        ));
    }
    stacks
}

/// The `with:` inputs, checked: declared, and not one a stack takes from
/// its own keys.
fn checked_inputs(
    with: &IndexMap<String, Scalar>,
    key_path: &str,
    line_of: &dyn Fn(&str) -> Option<usize>,
    file: &str,
    errors: &mut Vec<ManifestError>,
) -> Vec<(String, String)> {
    let mut inputs = Vec::new();
    for (name, value) in with {
        let line = line_of(name);
        let refuse = |problem: String, fix: String| ManifestError {
            file: file.to_string(),
            line,
            key: format!("{key_path}.{name}"),
            problem,
            fix,
        };
        if NOT_WITH_STACKS.contains(&name.as_str()) {
            errors.push(refuse(
                NOT_WITH_STACKS_PROBLEM.into(),
                NOT_WITH_STACKS_FIX.into(),
            ));
        } else if SYSTEM_DISPATCH_INPUTS.contains(&name.as_str()) {
            errors.push(refuse(
                "belongs to the whole system: its workflows are dispatched once every stack deployed".into(),
                "give it to the step, with `{{ stacks.<stack>.outputs.NAME }}` in dispatch-inputs".into(),
            ));
        } else if let Some((_, instead)) = STACK_KEYED_INPUTS.iter().find(|(n, _)| n == name) {
            errors.push(refuse(
                "is set by the manifest itself".into(),
                format!("use {instead}"),
            ));
        } else if !DEPLOY_INPUTS.iter().any(|spec| spec.name == name) {
            let fix = match closest_declared_input(name) {
                Some(closest) => format!("did you mean `{closest}`?"),
                None => "use an input action.yml declares".into(),
            };
            errors.push(refuse("is not an input of this action".into(), fix));
        } else {
            inputs.push((name.clone(), value.text()));
        }
    }
    inputs
}

/// The parameters of a JSON or YAML file (a `{K: V}` mapping or
/// CloudFormation's list form) under those the manifest gives itself.
fn set_parameters_file(
    values: &mut Vec<(String, ParameterValue)>,
    folder: &Path,
    file: &str,
) -> Result<(), String> {
    let path = folder.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let overrides = crate::stack::parameters::parse_override_document(&text, file)
        .map_err(|e| e.to_string())?;
    for item in overrides {
        if values.iter().any(|(key, _)| key == &item.key) {
            continue;
        }
        if let crate::stack::parameters::OverrideValue::Value(value) = item.value {
            values.push((item.key, ParameterValue::One(value)));
        }
    }
    Ok(())
}

/// The output references of `text`.
pub fn output_references(text: &str) -> Vec<OutputReference> {
    references(text)
        .into_iter()
        .filter_map(|(_, _, reference)| parse_output_reference(reference))
        .collect()
}

/// `stacks.<stack>.outputs.<NAME>` (a reference's text, braces off), or
/// `None` for any other reference.
pub fn parse_output_reference(reference: &str) -> Option<OutputReference> {
    let rest = reference.strip_prefix("stacks.")?;
    let (stack, output) = rest.split_once(".outputs.")?;
    (!stack.is_empty() && !output.is_empty() && !output.contains('.')).then(|| OutputReference {
        stack: stack.to_string(),
        output: output.to_string(),
    })
}

/// `{{ env.NAME }}` filled; output references kept for later; anything
/// else refused. A missing variable is refused too: an empty value would
/// deploy something else than the manifest says.
fn fill_environment(
    text: &str,
    env_var: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut filled = String::new();
    let mut last = 0;
    for (start, end, reference) in references(text) {
        filled.push_str(&text[last..start]);
        if let Some(name) = reference.strip_prefix("env.") {
            let value = env_var(name).ok_or_else(|| {
                format!("refers to the environment variable `{name}`, which is not set")
            })?;
            filled.push_str(&value);
        } else if parse_output_reference(reference).is_some() {
            filled.push_str(&text[start..end]);
        } else {
            return Err(format!(
                "`{{{{ {reference} }}}}` is not a reference this manifest can fill"
            ));
        }
        last = end;
    }
    filled.push_str(&text[last..]);
    Ok(filled)
}

/// Fills the output references of `text` from `outputs` (stack key →
/// output key → value); `None` names the first one not known.
pub fn fill_outputs(
    text: &str,
    outputs: &dyn Fn(&OutputReference) -> Option<String>,
) -> Result<String, OutputReference> {
    let mut filled = String::new();
    let mut last = 0;
    for (start, end, reference) in references(text) {
        filled.push_str(&text[last..start]);
        match parse_output_reference(reference) {
            Some(reference) => filled.push_str(&outputs(&reference).ok_or(reference)?),
            None => filled.push_str(&text[start..end]),
        }
        last = end;
    }
    filled.push_str(&text[last..]);
    Ok(filled)
}

/// The first line (1-based) at or after line `from` that contains `needle`.
fn text_line(text: &str, needle: &str, from: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| line.contains(needle))
        .map(|(index, _)| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Manifest, Vec<ManifestError>> {
        read_with(text, None)
    }

    fn read_with(text: &str, environment: Option<&str>) -> Result<Manifest, Vec<ManifestError>> {
        read_manifest(
            text,
            "deploy/system.yml",
            Path::new("/ws"),
            environment,
            &|name| (name == "TEAM").then(|| "shop".to_string()),
        )
    }

    const SYSTEM: &str = r#"
with:
  aws-region: eu-west-1
stacks:
  network:
    template: infra/network.yml
    parameters:
      VpcCidr: 10.20.0.0/16
      Team: "{{ env.TEAM }}"
  alb:
    template: infra/alb.yml
    parameters:
      VpcId: "{{ stacks.network.outputs.VpcId }}"
      Subnets: ["{{ stacks.network.outputs.SubnetA }}", "{{ stacks.network.outputs.SubnetB }}"]
    termination-protection: true
    tags:
      team: web
  web:
    name: shop-web
    template: services/service.yml
    image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/web
    depends-on: [alb]
    capabilities: [CAPABILITY_IAM, CAPABILITY_NAMED_IAM]
    with:
      wait-timeout: 30m
    environments:
      prod:
        parameters:
          DesiredCount: 4
"#;

    #[test]
    fn stacks_become_inputs_with_references_kept_for_later() {
        let manifest = read(SYSTEM).expect("valid");
        assert_eq!(manifest.stacks.len(), 3);
        let network = manifest.stack("network").unwrap();
        assert_eq!(network.name, "network");
        assert_eq!(network.template, Path::new("/ws/deploy/infra/network.yml"));
        assert_eq!(
            network.parameters,
            vec![
                (
                    "VpcCidr".to_string(),
                    ParameterValue::One("10.20.0.0/16".into())
                ),
                ("Team".to_string(), ParameterValue::One("shop".into())),
            ]
        );
        assert_eq!(
            network.inputs,
            vec![("aws-region".into(), "eu-west-1".into())]
        );
        assert_eq!(network.line, Some(5));
        let alb = manifest.stack("alb").unwrap();
        assert_eq!(
            alb.output_references()
                .into_iter()
                .map(|(_, r)| r.output)
                .collect::<Vec<_>>(),
            vec!["VpcId", "SubnetA", "SubnetB"]
        );
        assert!(
            alb.inputs
                .contains(&("termination-protection".into(), "true".into()))
        );
        assert!(
            alb.inputs
                .contains(&("tags".into(), r#"{"team":"web"}"#.into()))
        );
        let web = manifest.stack("web").unwrap();
        assert_eq!(web.name, "shop-web");
        assert_eq!(web.depends_on, vec!["alb"]);
        assert!(web.inputs.contains(&(
            "image-repository".into(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/web".into()
        )));
        assert!(web.inputs.contains(&(
            "capabilities".into(),
            "CAPABILITY_IAM,CAPABILITY_NAMED_IAM".into()
        )));
        assert!(web.inputs.contains(&("wait-timeout".into(), "30m".into())));
        assert!(web.parameters.is_empty());
        let prod = read_with(SYSTEM, Some("prod")).expect("valid");
        assert_eq!(
            prod.stack("web").unwrap().parameters,
            vec![("DesiredCount".to_string(), ParameterValue::One("4".into()))]
        );
    }

    #[test]
    fn errors_name_file_line_key_and_fix() {
        let misspelt = read("stacks:\n  network:\n    tempalte: a.yml\n").unwrap_err();
        assert_eq!(misspelt[0].line, Some(3), "{}", misspelt[0]);
        assert!(
            misspelt[0].to_string().starts_with("deploy/system.yml:3: ")
                && misspelt[0].problem.contains("unknown field `tempalte`"),
            "{}",
            misspelt[0]
        );

        let errors = read(
            "stacks:\n  a:\n    template: a.yml\n    depends-on: [c]\n    with:\n      wait-timout: 5m\n      template: x\n      dispatch-workflows: next.yml\n      environment: prod\n  b:\n    template: b.yml\n    parameters:\n      X: \"{{ stacks.z.outputs.Y }}\"\n      Z: \"{{ secrets.TOKEN }}\"\n      E: \"{{ env.NOPE }}\"\n",
        )
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let find = |needle: &str| {
            text.iter()
                .find(|t| t.contains(needle))
                .unwrap_or_else(|| panic!("no `{needle}` in {text:#?}"))
        };
        assert!(find("`stacks.a.with.wait-timout`").contains("did you mean `wait-timeout`?"));
        assert!(find("`stacks.a.with.template`").contains("use `template:`"));
        assert!(find("`stacks.a.depends-on`").starts_with("deploy/system.yml:4: "));
        assert!(find("`stacks.b.parameters.X`").contains("stack `z`, which is not another stack"));
        assert!(
            find("`stacks.b.parameters.Z`").contains("`{{ secrets.TOKEN }}` is not a reference")
        );
        assert!(find("`stacks.b.parameters.E`").contains("`NOPE`, which is not set"));
        assert!(find("`stacks.a.with.dispatch-workflows`").contains("belongs to the whole system"));
        assert!(find("`stacks.a.with.environment`").contains("selects the manifest's"));
        assert_eq!(errors.len(), 8, "{text:#?}");
    }

    #[test]
    fn errors_point_at_the_key_that_holds_the_value_not_at_the_same_text_elsewhere() {
        let text = "stacks:\n  a:\n    template: a.yml\n    tags: { Note: \"X: nope\" }\n    parameters:\n      X: fine\n    environments:\n      prod:\n        parameters:\n          X: \"{{ env.NOPE }}\"\n  b:\n    template: b.yml\n    depends-on:\n      - a\n      - nope\n    with:\n      cluster: \"{{ env.NOPE }}\"\nservices:\n  template: s.yml\n  entries:\n    web:\n      Port: 80\n      with: [not, a, mapping]\n";
        let errors = read_with(text, Some("prod")).unwrap_err();
        let line_of = |key: &str| {
            errors
                .iter()
                .find(|e| e.key == key)
                .unwrap_or_else(|| panic!("no `{key}` in {errors:#?}"))
                .line
        };
        // the overlay's value, not the base's `X:` (line 6) nor the text in
        // the tag (line 4)
        assert_eq!(line_of("stacks.a.parameters.X"), Some(10));
        assert_eq!(line_of("stacks.b.depends-on"), Some(15));
        assert_eq!(line_of("stacks.b.with.cluster"), Some(17));
        assert_eq!(line_of("services.entries.web.with"), Some(23));
    }

    #[test]
    fn an_unknown_environment_is_refused_where_a_stack_has_overlays() {
        let errors = read_with(SYSTEM, Some("staging")).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .contains("has no `staging` (it has prod)"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn service_entries_expand_to_tagged_stacks_of_the_shared_template() {
        let manifest = read(
            "stacks:\n  shared:\n    template: shared.yml\nservices:\n  template: service.yml\n  name: \"shop-{service}\"\n  depends-on: [shared]\n  parameters:\n    Cluster: \"{{ stacks.shared.outputs.Cluster }}\"\n    Port: 80\n  entries:\n    web:\n      image: nginx:1.27\n      allow-mutable-tag: true\n      Port: 8080\n      Emails: [a@x.org, b@x.org]\n    api:\n      image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/api\n",
        )
        .expect("valid");
        assert_eq!(
            manifest.catalog,
            Some(Catalog {
                entries: vec!["web".into(), "api".into()],
                prune: false
            })
        );
        let web = manifest.stack("web").expect("web");
        assert_eq!(web.name, "shop-web");
        assert_eq!(web.template, Path::new("/ws/deploy/service.yml"));
        assert_eq!(web.depends_on, vec!["shared"]);
        assert_eq!(web.line, Some(12));
        assert_eq!(
            web.parameters,
            vec![
                (
                    "Cluster".to_string(),
                    ParameterValue::One("{{ stacks.shared.outputs.Cluster }}".into())
                ),
                ("Port".to_string(), ParameterValue::One("8080".into())),
                (
                    "Emails".to_string(),
                    ParameterValue::List(vec!["a@x.org".into(), "b@x.org".into()])
                ),
            ]
        );
        assert!(web.inputs.contains(&("image".into(), "nginx:1.27".into())));
        assert!(
            web.inputs
                .contains(&("allow-mutable-tag".into(), "true".into()))
        );
        assert!(web.inputs.contains(&(
            "tags".into(),
            r#"{"ecs-stack-deploy:catalog":"deploy/system.yml","ecs-stack-deploy:service":"web"}"#
                .into()
        )));
        let api = manifest.stack("api").expect("api");
        assert!(api.inputs.contains(&(
            "image-repository".into(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/api".into()
        )));

        let errors = read(
            "stacks:\n  web:\n    template: a.yml\nservices:\n  template: s.yml\n  entries:\n    web:\n      Port: 1\n    api:\n      Nested: {a: 1}\n",
        )
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("`services.entries.web`: has the key of a stack")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("`services.entries.api.Nested`: is not a parameter value")),
            "{text:#?}"
        );
    }

    #[test]
    fn two_entries_of_one_stack_name_are_refused() {
        let errors =
            read("stacks:\n  a:\n    template: a.yml\n  b:\n    name: a\n    template: b.yml\n")
                .unwrap_err();
        assert!(
            errors[0].problem.contains("stack named `a`"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn outputs_fill_references_and_name_the_first_unknown() {
        let known = |r: &OutputReference| (r.output == "VpcId").then(|| "vpc-1".to_string());
        assert_eq!(
            fill_outputs("id={{ stacks.network.outputs.VpcId }}!", &known).unwrap(),
            "id=vpc-1!"
        );
        assert_eq!(
            fill_outputs("{{stacks.network.outputs.Other}}", &known).unwrap_err(),
            OutputReference {
                stack: "network".into(),
                output: "Other".into()
            }
        );
    }
}
