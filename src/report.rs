//! The results of a deploy, as step outputs and as a Markdown job summary
//! (pure: the caller writes them).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::stack::deploy::StackDeployment;

/// The outputs `action.yml` declares. A stack output with one of these names
/// is not published under its own key (it would overwrite ours).
pub const DECLARED_OUTPUTS: &[&str] = &[
    "stack-id",
    "stack-status",
    "change-set-id",
    "has-changes",
    "changes-count",
    "outputs",
];

/// The step outputs of a deploy, and warnings about outputs left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOutputs {
    pub values: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Builds the step outputs: the declared ones, then each stack output under
/// its own key unless that key collides with a declared output.
pub fn action_outputs(deployment: &StackDeployment) -> ActionOutputs {
    let all: BTreeMap<&str, &str> = deployment
        .outputs
        .iter()
        .map(|o| (o.key.as_str(), o.value.as_str()))
        .collect();
    let outputs_json = serde_json::to_string(&all).unwrap_or_else(|_| "{}".to_string());
    let mut values = vec![
        (
            "stack-id".to_string(),
            deployment.stack_id.clone().unwrap_or_default(),
        ),
        (
            "stack-status".to_string(),
            deployment.stack_status.clone().unwrap_or_default(),
        ),
        (
            "change-set-id".to_string(),
            deployment.change_set_id.clone().unwrap_or_default(),
        ),
        (
            "has-changes".to_string(),
            deployment.has_changes.to_string(),
        ),
        (
            "changes-count".to_string(),
            deployment.changes.len().to_string(),
        ),
        ("outputs".to_string(), outputs_json),
    ];
    let mut warnings = Vec::new();
    for output in &deployment.outputs {
        if DECLARED_OUTPUTS.contains(&output.key.as_str()) {
            warnings.push(format!(
                "stack output `{}` has the name of one of this action's outputs, so it is only available inside the `outputs` JSON (fromJSON(steps.<id>.outputs.outputs).{})",
                output.key, output.key
            ));
        } else {
            values.push((output.key.clone(), output.value.clone()));
        }
    }
    ActionOutputs { values, warnings }
}

/// Escapes text for a Markdown table cell: pipes would split the cell,
/// angle brackets would be read as HTML, newlines would end the row.
pub fn markdown_cell(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// The job summary of a deploy. `error` is the failure, if any.
pub fn markdown_summary(
    deployment: &StackDeployment,
    elapsed: Duration,
    error: Option<&str>,
) -> String {
    let mut md = String::new();
    let verdict = match (error, deployment.executed, deployment.has_changes) {
        (Some(_), _, _) => "❌ failed",
        (None, true, _) => "✅ deployed",
        (None, false, false) => "✅ no changes",
        (None, false, true) => "📝 change set ready for review (not executed)",
    };
    let _ = writeln!(
        md,
        "### Stack `{}`: {verdict}\n",
        markdown_cell(&deployment.stack_name)
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| Status | `{}` |",
        markdown_cell(deployment.stack_status.as_deref().unwrap_or("unknown"))
    );
    if let Some(id) = &deployment.change_set_id {
        let _ = writeln!(md, "| Change set | `{}` |", markdown_cell(id));
    }
    let _ = writeln!(md, "| Elapsed | {:.1} s |", elapsed.as_secs_f64());
    let _ = writeln!(md);
    for note in &deployment.notes {
        let _ = writeln!(md, "> {}\n", markdown_cell(note));
    }
    if let Some(error) = error {
        let _ = writeln!(md, "**Error:** {}\n", markdown_cell(error));
        if !deployment.root_causes.is_empty() {
            let _ = writeln!(md, "**Root causes:**\n");
            for cause in &deployment.root_causes {
                let _ = writeln!(md, "- {}", markdown_cell(cause));
            }
            let _ = writeln!(md);
        }
    }
    if deployment.changes.is_empty() {
        let _ = writeln!(md, "No resource changes.\n");
    } else {
        let _ = writeln!(
            md,
            "#### Changes ({})\n\n| Action | Logical ID | Type | Replacement |\n|---|---|---|---|",
            deployment.changes.len()
        );
        for change in &deployment.changes {
            let _ = writeln!(
                md,
                "| {} | `{}` | `{}` | {} |",
                markdown_cell(&change.action),
                markdown_cell(&change.logical_id),
                markdown_cell(&change.resource_type),
                markdown_cell(change.replacement.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(md);
    }
    if !deployment.outputs.is_empty() {
        let _ = writeln!(
            md,
            "#### Outputs\n\n| Key | Value | Description |\n|---|---|---|"
        );
        for output in &deployment.outputs {
            let _ = writeln!(
                md,
                "| `{}` | `{}` | {} |",
                markdown_cell(&output.key),
                markdown_cell(&output.value),
                markdown_cell(output.description.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(md);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::changeset::PlannedChange;
    use crate::stack::deploy::StackOutput;

    fn deployment() -> StackDeployment {
        StackDeployment {
            stack_name: "network".into(),
            stack_id: Some("arn:aws:cloudformation:us-east-1:123:stack/network/1".into()),
            stack_status: Some("UPDATE_COMPLETE".into()),
            change_set_id: Some("arn:cs".into()),
            has_changes: true,
            executed: true,
            changes: vec![PlannedChange {
                action: "Modify".into(),
                logical_id: "Vpc".into(),
                resource_type: "AWS::EC2::VPC".into(),
                replacement: Some("True".into()),
            }],
            outputs: vec![
                StackOutput {
                    key: "VpcId".into(),
                    value: "vpc-1".into(),
                    description: Some("the VPC".into()),
                },
                StackOutput {
                    key: "outputs".into(),
                    value: "clash".into(),
                    description: None,
                },
            ],
            notes: vec![],
            root_causes: vec![],
        }
    }

    #[test]
    fn declared_outputs_then_stack_outputs_except_collisions() {
        let outputs = action_outputs(&deployment());
        let names: Vec<&str> = outputs.values.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "stack-id",
                "stack-status",
                "change-set-id",
                "has-changes",
                "changes-count",
                "outputs",
                "VpcId"
            ]
        );
        let json = &outputs.values[5].1;
        assert_eq!(json, r#"{"VpcId":"vpc-1","outputs":"clash"}"#);
        assert_eq!(outputs.values[3].1, "true");
        assert_eq!(outputs.values[4].1, "1");
        assert_eq!(outputs.warnings.len(), 1);
        assert!(outputs.warnings[0].contains("`outputs`"));
    }

    #[test]
    fn summary_has_changes_outputs_and_status() {
        let md = markdown_summary(&deployment(), Duration::from_millis(12_340), None);
        assert!(md.contains("### Stack `network`: ✅ deployed"), "{md}");
        assert!(md.contains("| Status | `UPDATE_COMPLETE` |"), "{md}");
        assert!(
            md.contains("| Modify | `Vpc` | `AWS::EC2::VPC` | True |"),
            "{md}"
        );
        assert!(md.contains("| `VpcId` | `vpc-1` | the VPC |"), "{md}");
        assert!(md.contains("| Elapsed | 12.3 s |"), "{md}");
    }

    #[test]
    fn summary_of_a_failure_lists_root_causes() {
        let mut failed = deployment();
        failed.root_causes = vec!["Queue (AWS::SQS::Queue): bad | value".into()];
        let md = markdown_summary(&failed, Duration::ZERO, Some("stack network failed"));
        assert!(md.contains("❌ failed"));
        assert!(
            md.contains("- Queue (AWS::SQS::Queue): bad \\| value"),
            "{md}"
        );
    }

    #[test]
    fn cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(markdown_cell("a|b\n<script>"), "a\\|b<br>&lt;script&gt;");
    }
}
