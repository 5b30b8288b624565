//! The order a system deploys in: a stack comes after the stacks whose
//! outputs its values refer to, the stacks it `depends-on`, and the stacks
//! whose templates export a name its template imports (`Fn::ImportValue`,
//! with `!Sub`/`!Join`/`Ref` resolved from the manifest's parameters, the
//! templates' defaults and the pseudo parameters that are known). Real
//! systems of chained stacks are mostly wired by exports, so a repository
//! deploys as a manifest without rewriting its templates. A cycle, or a
//! reference to an output the upstream template does not declare, is a
//! bad input found here, before any AWS call (pure).

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use super::manifest::{Manifest, ManifestError, ManifestStack, ParameterValue, output_references};
use crate::stack::template::parse_json_or_yaml;

/// Why one stack comes after another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    /// Its values refer to the upstream's output.
    Output(String),
    /// `depends-on`.
    DependsOn,
    /// Its template imports the upstream's export.
    Import(String),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Output(key) => write!(f, "output {key}"),
            Why::DependsOn => write!(f, "depends-on"),
            Why::Import(name) => write!(f, "import {name}"),
        }
    }
}

/// What the graph needs of a stack's template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateFacts {
    /// The parameters it declares.
    pub parameters: BTreeSet<String>,
    pub outputs: BTreeSet<String>,
    /// Export names, resolved where they can be.
    pub exports: BTreeSet<String>,
    pub imports: BTreeSet<String>,
}

/// The stacks in an order they can deploy in, and each one's upstreams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemGraph {
    /// Keys, every stack after its upstreams (manifest order otherwise).
    pub order: Vec<String>,
    pub upstreams: BTreeMap<String, BTreeMap<String, BTreeSet<Why>>>,
}

/// Reads the facts of a template: outputs, exports, imports. `known` gives
/// parameter values (the manifest's, then the template's defaults) and the
/// pseudo parameters that are known.
pub fn template_facts(
    body: &str,
    stack: &ManifestStack,
    region: Option<&str>,
) -> Result<TemplateFacts, String> {
    let document = parse_json_or_yaml(body).map_err(|e| e.to_string())?;
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    let mut facts = TemplateFacts::default();
    if let Some(parameters) = document.get("Parameters").and_then(Value::as_mapping) {
        for (name, declared) in parameters {
            if let Some(name) = name.as_str() {
                facts.parameters.insert(name.to_string());
            }
            if let (Some(name), Some(default)) = (name.as_str(), declared.get("Default"))
                && let Some(text) = scalar_text(default)
            {
                known.insert(name.to_string(), text);
            }
        }
    }
    for (name, value) in &stack.parameters {
        let text = match value {
            ParameterValue::One(text) => text.clone(),
            ParameterValue::List(items) => items.join(","),
        };
        if output_references(&text).is_empty() {
            known.insert(name.clone(), text);
        } else {
            known.remove(name);
        }
    }
    known.insert("AWS::StackName".into(), stack.name.clone());
    if let Some(region) = region {
        known.insert("AWS::Region".into(), region.to_string());
    }
    if let Some(outputs) = document.get("Outputs").and_then(Value::as_mapping) {
        for (key, output) in outputs {
            if let Some(key) = key.as_str() {
                facts.outputs.insert(key.to_string());
            }
            if let Some(name) = output
                .get("Export")
                .and_then(|e| e.get("Name"))
                .and_then(|n| resolve(n, &known))
            {
                facts.exports.insert(name);
            }
        }
    }
    collect_imports(&document, &known, &mut facts.imports);
    Ok(facts)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn collect_imports(value: &Value, known: &BTreeMap<String, String>, found: &mut BTreeSet<String>) {
    match value {
        Value::Tagged(tagged) if tagged.tag == "!ImportValue" => {
            if let Some(name) = resolve(&tagged.value, known) {
                found.insert(name);
            }
        }
        Value::Tagged(tagged) => collect_imports(&tagged.value, known, found),
        Value::Mapping(mapping) => {
            for (key, inner) in mapping {
                if key.as_str() == Some("Fn::ImportValue") {
                    if let Some(name) = resolve(inner, known) {
                        found.insert(name);
                    }
                } else {
                    collect_imports(inner, known, found);
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                collect_imports(item, known, found);
            }
        }
        _ => {}
    }
}

/// A string expression's value when every part is known: a literal,
/// `Ref`, `Fn::Sub` (string or list form), `Fn::Join`.
fn resolve(value: &Value, known: &BTreeMap<String, String>) -> Option<String> {
    let (function, argument) = match value {
        Value::String(text) => return Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => return scalar_text(value),
        Value::Tagged(tagged) => (
            format!("Fn::{}", tagged.tag.to_string().trim_start_matches('!')),
            &tagged.value,
        ),
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let (key, argument) = mapping.iter().next()?;
            (key.as_str()?.to_string(), argument)
        }
        _ => return None,
    };
    match (function.as_str(), argument) {
        ("Ref" | "Fn::Ref", Value::String(name)) => known.get(name).cloned(),
        ("Fn::Sub", Value::String(template)) => substitute(template, known, &BTreeMap::new()),
        ("Fn::Sub", Value::Sequence(parts)) if parts.len() == 2 => {
            let template = parts[0].as_str()?;
            let mut variables = BTreeMap::new();
            for (name, inner) in parts[1].as_mapping()? {
                variables.insert(name.as_str()?.to_string(), resolve(inner, known)?);
            }
            substitute(template, known, &variables)
        }
        ("Fn::Join", Value::Sequence(parts)) if parts.len() == 2 => {
            let separator = parts[0].as_str()?;
            let items = parts[1].as_sequence()?;
            let resolved: Option<Vec<String>> = items.iter().map(|i| resolve(i, known)).collect();
            Some(resolved?.join(separator))
        }
        _ => None,
    }
}

fn substitute(
    template: &str,
    known: &BTreeMap<String, String>,
    variables: &BTreeMap<String, String>,
) -> Option<String> {
    let mut filled = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}')? + start;
        let name = &rest[start + 2..end];
        filled.push_str(&rest[..start]);
        if let Some(literal) = name.strip_prefix('!') {
            filled.push_str("${");
            filled.push_str(literal);
            filled.push('}');
        } else {
            filled.push_str(variables.get(name).or_else(|| known.get(name))?);
        }
        rest = &rest[end + 1..];
    }
    filled.push_str(rest);
    Some(filled)
}

/// The graph of the manifest's stacks from their templates' facts (by
/// stack key), or every error found.
pub fn build_graph(
    manifest: &Manifest,
    facts: &BTreeMap<String, TemplateFacts>,
) -> Result<SystemGraph, Vec<ManifestError>> {
    let mut errors = Vec::new();
    let mut upstreams: BTreeMap<String, BTreeMap<String, BTreeSet<Why>>> = manifest
        .stacks
        .iter()
        .map(|s| (s.key.clone(), BTreeMap::new()))
        .collect();
    let mut add = |stack: &str, upstream: &str, why: Why| {
        if let Some(edges) = upstreams.get_mut(stack) {
            edges.entry(upstream.to_string()).or_default().insert(why);
        }
    };
    for stack in &manifest.stacks {
        if let Some(own) = facts.get(&stack.key) {
            for (name, _) in &stack.parameters {
                if !own.parameters.contains(name) {
                    errors.push(ManifestError {
                        file: manifest.file.clone(),
                        line: manifest.line_of(stack, &format!("parameters.{name}")),
                        key: stack.path(&format!("parameters.{name}")),
                        problem: format!(
                            "is not a parameter of {} (it declares: {})",
                            stack.template.display(),
                            listed(&own.parameters)
                        ),
                        fix: "give only the template's parameters".into(),
                    });
                }
            }
        }
        for (key_path, reference) in stack.output_references() {
            if let Some(upstream) = facts.get(&reference.stack)
                && !upstream.outputs.contains(&reference.output)
            {
                let template = manifest
                    .stack(&reference.stack)
                    .map(|s| s.template.display().to_string())
                    .unwrap_or_default();
                errors.push(ManifestError {
                    file: manifest.file.clone(),
                    line: manifest.line_of(stack, &key_path),
                    key: stack.path(&key_path),
                    problem: format!(
                        "refers to output `{}` of stack `{}`, which its template {template} does not declare (it declares: {})",
                        reference.output,
                        reference.stack,
                        listed(&upstream.outputs)
                    ),
                    fix: "refer to a declared output, or add it to the upstream template's Outputs".into(),
                });
            }
            add(&stack.key, &reference.stack, Why::Output(reference.output));
        }
        for upstream in &stack.depends_on {
            add(&stack.key, upstream, Why::DependsOn);
        }
        if let Some(own) = facts.get(&stack.key) {
            for import in &own.imports {
                for (other, theirs) in facts {
                    if other != &stack.key && theirs.exports.contains(import) {
                        add(&stack.key, other, Why::Import(import.clone()));
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Kahn's algorithm, taking stacks in manifest order among the ready.
    let mut order: Vec<String> = Vec::new();
    let mut remaining: Vec<&str> = manifest.stacks.iter().map(|s| s.key.as_str()).collect();
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|key| {
            upstreams[*key]
                .keys()
                .all(|upstream| order.contains(upstream))
        });
        match ready {
            Some(index) => order.push(remaining.remove(index).to_string()),
            None => {
                let cycle = find_cycle(&remaining, &upstreams);
                let first = manifest.stack(&cycle[0]);
                return Err(vec![ManifestError {
                    file: manifest.file.clone(),
                    line: first.and_then(|s| s.line),
                    key: "stacks".into(),
                    problem: format!("the stacks depend on each other in a cycle: {}", describe_cycle(&cycle, &upstreams)),
                    fix: "break the cycle: a stack cannot come after itself (move the shared resource or output into a stack both depend on)".into(),
                }]);
            }
        }
    }
    Ok(SystemGraph { order, upstreams })
}

fn listed(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// A cycle among `remaining` (each waits for another): the stacks in
/// order, the first repeated at the end.
fn find_cycle(
    remaining: &[&str],
    upstreams: &BTreeMap<String, BTreeMap<String, BTreeSet<Why>>>,
) -> Vec<String> {
    let mut path: Vec<String> = vec![remaining[0].to_string()];
    loop {
        let current = path.last().cloned().unwrap_or_default();
        let next = upstreams[&current]
            .keys()
            .find(|upstream| remaining.contains(&upstream.as_str()))
            .cloned()
            .unwrap_or_default();
        if let Some(start) = path.iter().position(|s| s == &next) {
            let mut cycle: Vec<String> = path[start..].to_vec();
            // Shown in deploy order (upstream first), from the stack the
            // manifest lists first.
            cycle.reverse();
            let first = (0..cycle.len())
                .min_by_key(|i| remaining.iter().position(|r| *r == cycle[*i]))
                .unwrap_or(0);
            cycle.rotate_left(first);
            cycle.push(cycle[0].clone());
            return cycle;
        }
        path.push(next);
    }
}

fn describe_cycle(
    cycle: &[String],
    upstreams: &BTreeMap<String, BTreeMap<String, BTreeSet<Why>>>,
) -> String {
    let mut text = cycle[0].clone();
    for pair in cycle.windows(2) {
        let why = upstreams[&pair[1]]
            .get(&pair[0])
            .and_then(|whys| whys.iter().next())
            .map(ToString::to_string)
            .unwrap_or_default();
        text.push_str(&format!(" → {} ({why})", pair[1]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::manifest::read_manifest;
    use std::path::Path;

    fn manifest(text: &str) -> Manifest {
        read_manifest(text, "system.yml", Path::new("/ws"), None, &|_| None).expect("valid")
    }

    fn facts(manifest: &Manifest, templates: &[(&str, &str)]) -> BTreeMap<String, TemplateFacts> {
        templates
            .iter()
            .map(|(key, body)| {
                let stack = manifest.stack(key).expect("stack");
                (
                    key.to_string(),
                    template_facts(body, stack, Some("eu-west-1")).expect("template"),
                )
            })
            .collect()
    }

    #[test]
    fn exports_imports_references_and_depends_on_order_the_stacks() {
        let m = manifest(
            "stacks:\n  api:\n    template: api.yml\n    depends-on: [web]\n  web:\n    template: web.yml\n    parameters:\n      LbArn: \"{{ stacks.alb.outputs.Arn }}\"\n  alb:\n    template: alb.yml\n    parameters:\n      Env: prod\n  network:\n    template: network.yml\n",
        );
        let f = facts(
            &m,
            &[
                ("api", "Resources: {}\n"),
                (
                    "web",
                    "Parameters:\n  LbArn:\n    Type: String\nResources: {}\nOutputs:\n  Url:\n    Value: x\n",
                ),
                (
                    "alb",
                    "Parameters:\n  Env:\n    Type: String\nResources:\n  Lb:\n    Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n    Properties:\n      Subnets:\n        - !ImportValue\n          Fn::Sub: \"${Env}-network-subnet-a\"\n        - Fn::ImportValue: !Join [\"-\", [!Ref Env, network, subnet-b]]\nOutputs:\n  Arn:\n    Value: !Ref Lb\n",
                ),
                (
                    "network",
                    "Parameters:\n  Env:\n    Type: String\n    Default: prod\nResources: {}\nOutputs:\n  A:\n    Value: a\n    Export:\n      Name: !Sub \"${Env}-network-subnet-a\"\n  B:\n    Value: b\n    Export: {Name: prod-network-subnet-b}\n",
                ),
            ],
        );
        assert_eq!(
            f["alb"].imports,
            BTreeSet::from([
                "prod-network-subnet-a".to_string(),
                "prod-network-subnet-b".to_string()
            ])
        );
        let graph = build_graph(&m, &f).expect("no cycle");
        assert_eq!(graph.order, vec!["network", "alb", "web", "api"]);
        assert_eq!(
            graph.upstreams["alb"]["network"],
            BTreeSet::from([
                Why::Import("prod-network-subnet-a".into()),
                Why::Import("prod-network-subnet-b".into())
            ])
        );
        assert_eq!(
            graph.upstreams["web"]["alb"],
            BTreeSet::from([Why::Output("Arn".into())])
        );
    }

    #[test]
    fn a_cycle_is_refused_with_its_path() {
        let m = manifest(
            "stacks:\n  a:\n    template: a.yml\n    depends-on: [c]\n  b:\n    template: b.yml\n    parameters:\n      X: \"{{ stacks.a.outputs.Out }}\"\n  c:\n    template: c.yml\n    depends-on: [b]\n",
        );
        let f = facts(
            &m,
            &[
                ("a", "Outputs:\n  Out:\n    Value: 1\n"),
                ("b", "Parameters:\n  X:\n    Type: String\n"),
                ("c", "Resources: {}\n"),
            ],
        );
        let errors = build_graph(&m, &f).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .problem
                .ends_with("cycle: a → b (output Out) → c (depends-on) → a (depends-on)"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn a_parameter_the_template_does_not_declare_is_refused() {
        let m = manifest("stacks:\n  a:\n    template: a.yml\n    parameters:\n      Evn: prod\n");
        let f = facts(
            &m,
            &[(
                "a",
                "Parameters:\n  Env:\n    Type: String\nResources: {}\n",
            )],
        );
        let errors = build_graph(&m, &f).unwrap_err();
        assert!(
            errors[0].to_string().contains(
                "`stacks.a.parameters.Evn`: is not a parameter of /ws/a.yml (it declares: Env)"
            ),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn an_output_the_upstream_does_not_declare_is_refused() {
        let m = manifest(
            "stacks:\n  a:\n    template: a.yml\n  b:\n    template: b.yml\n    parameters:\n      X: \"{{ stacks.a.outputs.Missing }}\"\n",
        );
        let f = facts(
            &m,
            &[
                ("a", "Outputs:\n  Out:\n    Value: 1\n"),
                ("b", "Parameters:\n  X:\n    Type: String\n"),
            ],
        );
        let errors = build_graph(&m, &f).unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .contains("output `Missing` of stack `a`")
                && errors[0].problem.contains("(it declares: Out)"),
            "{}",
            errors[0]
        );
        // the line of the parameter that refers to it, not its stack's (4)
        assert_eq!(errors[0].line, Some(7));
    }
}
