//! `ecs-stack-deploy init-stacks DIR`: a starting manifest for a folder of
//! templates, from the same analysis a system deploy makes. Each template
//! becomes a stack (keyed by its file name); the order is the one its
//! exports and imports give (written as comments: the deploy finds it
//! again from the templates); each parameter without a default is listed
//! for the user to fill, and one whose name is an upstream output key is
//! filled with the reference to it (pure: the caller reads the files).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::graph::{build_graph, template_facts};
use super::key_lines::KeyLines;
use super::manifest::{Manifest, ManifestStack, ParameterValue};
use crate::stack::plan::DEFAULT_IMAGE_PARAMETER;
use crate::stack::template::parse_json_or_yaml;

/// A template of the folder: its path (relative to the folder, `/`
/// separated) and text.
pub struct FoundTemplate {
    pub path: String,
    pub body: String,
}

/// The key of a template: its file name, or its folder's name when the
/// file is named generically (`network/template.yml` is `network`), or its
/// path when that is taken.
fn stack_key(folder: &str, path: &str, taken: &[ManifestStack]) -> String {
    // The folder named on the command line counts as the file's folder.
    let full = format!("{}/{path}", folder.trim_end_matches('/'));
    let mut parts: Vec<&str> = full
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let file = parts.pop().unwrap_or(path);
    let file = file.to_string();
    let file = file.as_str();
    let stem = file.split('.').next().unwrap_or(file);
    let key = match parts.last() {
        Some(folder)
            if matches!(
                stem,
                "template" | "stack" | "main" | "cfn" | "cloudformation"
            ) =>
        {
            (*folder).to_string()
        }
        _ => stem.to_string(),
    };
    if taken.iter().any(|s| s.key == key) {
        path.replace(['/', '.'], "-")
    } else {
        key
    }
}

/// The manifest text for `templates` (in `folder`, as the user named it),
/// or why it cannot be written.
pub fn starting_manifest(folder: &str, templates: &[FoundTemplate]) -> Result<String, String> {
    let mut stacks: Vec<ManifestStack> = Vec::new();
    let mut documents = BTreeMap::new();
    for template in templates {
        let document =
            parse_json_or_yaml(&template.body).map_err(|e| format!("{}: {e}", template.path))?;
        if document.get("Resources").is_none() {
            continue;
        }
        let key = stack_key(folder, &template.path, &stacks);
        stacks.push(ManifestStack {
            key: key.clone(),
            name: key.clone(),
            template: template.path.clone().into(),
            parameters: Vec::new(),
            depends_on: Vec::new(),
            inputs: Vec::new(),
            line: None,
            section: "stacks",
        });
        documents.insert(key, (template, document));
    }
    if stacks.is_empty() {
        return Err(format!(
            "no CloudFormation template (a file with Resources) in {folder}"
        ));
    }
    let mut facts = BTreeMap::new();
    for stack in &stacks {
        let (template, _) = &documents[&stack.key];
        facts.insert(
            stack.key.clone(),
            template_facts(&template.body, stack, None)
                .map_err(|e| format!("{}: {e}", template.path))?,
        );
    }
    // Each parameter without a default: the one other template with an
    // output of its name is the likely source (the convention of
    // parameters-from-stacks).
    let mut wanted: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
    for stack in &stacks {
        let (_, document) = &documents[&stack.key];
        let Some(parameters) = document.get("Parameters").and_then(|p| p.as_mapping()) else {
            continue;
        };
        for (name, declared) in parameters {
            let (Some(name), None) = (name.as_str(), declared.get("Default")) else {
                continue;
            };
            let sources: Vec<String> = facts
                .iter()
                .filter(|(other, f)| *other != &stack.key && f.outputs.contains(name))
                .map(|(other, _)| other.clone())
                .collect();
            wanted
                .entry(stack.key.clone())
                .or_default()
                .push((name.to_string(), sources));
        }
    }
    let wired = |stack: &ManifestStack| -> ManifestStack {
        let mut stack = stack.clone();
        for (name, sources) in wanted.get(&stack.key).into_iter().flatten() {
            if let [source] = sources.as_slice() {
                stack.parameters.push((
                    name.clone(),
                    ParameterValue::One(format!("{{{{ stacks.{source}.outputs.{name} }}}}")),
                ));
            }
        }
        stack
    };
    let manifest = |stacks: Vec<ManifestStack>| Manifest {
        file: "(init-stacks)".into(),
        stacks,
        catalog: None,
        lines: KeyLines::default(),
        environment: None,
    };
    // Suggestions that would make a cycle are left to the user.
    let suggested = manifest(stacks.iter().map(wired).collect());
    let (graph, wire) = match build_graph(&suggested, &facts) {
        Ok(graph) => (graph, true),
        Err(_) => (
            build_graph(&manifest(stacks.clone()), &facts).map_err(|errors| {
                errors
                    .iter()
                    .map(|e| e.problem.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            })?,
            false,
        ),
    };
    let mut text = format!(
        "# A starting manifest for the templates in {folder}, written by\n# `ecs-stack-deploy init-stacks {folder}`. Deploy it with the input\n# `stacks` (CLI: `ecs-stack-deploy deploy --stacks FILE`); template paths\n# are relative to the manifest's folder: move it next to {folder}, or edit them.\n# The order comes from the templates' exports and imports (found again on\n# every deploy) and from the references below; fill in what is marked TODO.\nstacks:\n"
    );
    for key in &graph.order {
        let Some((template, _)) = documents.get(key) else {
            continue;
        };
        let _ = writeln!(text, "  {key}:");
        let _ = writeln!(text, "    template: {folder}/{}", template.path);
        let upstreams = &graph.upstreams[key];
        if !upstreams.is_empty() {
            let after: Vec<String> = upstreams
                .iter()
                .map(|(upstream, whys)| {
                    let whys: Vec<String> = whys.iter().map(ToString::to_string).collect();
                    format!("{upstream} ({})", whys.join(", "))
                })
                .collect();
            let _ = writeln!(text, "    # after {}", after.join("; "));
        }
        let lines: Vec<String> = wanted
            .get(key)
            .into_iter()
            .flatten()
            .map(|(name, sources)| match sources.as_slice() {
                [source] if wire => {
                    format!("      {name}: \"{{{{ stacks.{source}.outputs.{name} }}}}\"")
                }
                [] if name == DEFAULT_IMAGE_PARAMETER => format!(
                    "      # {name}: the action fills it: give the stack `image:` (a repository: the commit's tag)"
                ),
                [] => format!("      {name}: \"\"  # TODO: no default"),
                many => format!(
                    "      {name}: \"\"  # TODO: no default; an output of {}",
                    many.join(", ")
                ),
            })
            .collect();
        if !lines.is_empty() {
            let _ = writeln!(text, "    parameters:");
            for line in lines {
                let _ = writeln!(text, "{line}");
            }
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(path: &str, body: &str) -> FoundTemplate {
        FoundTemplate {
            path: path.into(),
            body: body.into(),
        }
    }

    #[test]
    fn templates_become_stacks_in_the_order_of_their_exports() {
        let text = starting_manifest(
            "infra",
            &[
                template(
                    "service.yml",
                    "Parameters:\n  ClusterName:\n    Type: String\n  Image:\n    Type: String\nResources:\n  S:\n    Type: AWS::ECS::Service\n    Properties:\n      Subnets: [!ImportValue prod-subnet]\n",
                ),
                template(
                    "network.yaml",
                    "Parameters:\n  Env:\n    Type: String\n    Default: prod\nResources:\n  V:\n    Type: AWS::EC2::VPC\nOutputs:\n  ClusterName:\n    Value: c\n  Subnet:\n    Value: s\n    Export:\n      Name: !Sub \"${Env}-subnet\"\n",
                ),
                template("README.yml", "title: not a template\n"),
            ],
        )
        .expect("manifest");
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            body,
            "stacks:\n  network:\n    template: infra/network.yaml\n  service:\n    template: infra/service.yml\n    # after network (output ClusterName, import prod-subnet)\n    parameters:\n      ClusterName: \"{{ stacks.network.outputs.ClusterName }}\"\n      Image: \"\"  # TODO: no default"
        );
        let manifest = crate::system::manifest::read_manifest(
            &text.replace("infra/", ""),
            "system.yml",
            std::path::Path::new("/ws"),
            None,
            &|_| None,
        )
        .expect("the written manifest reads back");
        assert_eq!(manifest.stacks.len(), 2);
    }

    #[test]
    fn a_folder_without_templates_is_refused() {
        assert!(
            starting_manifest("docs", &[template("a.yml", "a: 1\n")])
                .unwrap_err()
                .contains("no CloudFormation template")
        );
    }
}
