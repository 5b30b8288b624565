//! What a stack's status means for the next step (pure).
//!
//! CloudFormation refuses most operations on a stack in some states, and a
//! few states can only be left by a manual recovery step. Deciding this up
//! front lets the deploy wait, recreate or stop with the recovery named,
//! instead of colliding with a running operation.

/// What a deploy must do with a stack in a given state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackCondition {
    /// No such stack: create it.
    Missing,
    /// A stack that never got resources (`ROLLBACK_COMPLETE` after a failed
    /// create, or `REVIEW_IN_PROGRESS` left by an unexecuted change set). It
    /// cannot be updated; it is deleted and created anew.
    NeverCreated,
    /// An operation is running: wait for it to settle, never start another.
    Busy,
    /// Stuck in a state only a person can resolve; `recovery` says how.
    NeedsRecovery { recovery: String },
    /// Ready for an update change set.
    Updatable,
}

/// Whether `status` is a `*_IN_PROGRESS` state other than
/// `REVIEW_IN_PROGRESS` (which is a resting state: nothing is running).
pub fn is_busy(status: &str) -> bool {
    status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS"
}

/// Whether a stack operation that ended in `status` succeeded.
pub fn is_success(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" | "DELETE_COMPLETE"
    )
}

/// Classifies a stack for deployment. `has_resources` only matters for
/// `REVIEW_IN_PROGRESS`: such a stack with resources is an import in review,
/// which is not ours to delete.
pub fn classify(stack_name: &str, status: &str, has_resources: bool) -> StackCondition {
    match status {
        "ROLLBACK_COMPLETE" => StackCondition::NeverCreated,
        "REVIEW_IN_PROGRESS" if !has_resources => StackCondition::NeverCreated,
        "REVIEW_IN_PROGRESS" => StackCondition::NeedsRecovery {
            recovery: format!(
                "stack {stack_name} is in REVIEW_IN_PROGRESS with resources (an import under review); execute or delete its change set in the console or with `aws cloudformation delete-change-set --stack-name {stack_name} --change-set-name <name>`, then rerun"
            ),
        },
        "DELETE_COMPLETE" => StackCondition::Missing,
        "UPDATE_ROLLBACK_FAILED" => StackCondition::NeedsRecovery {
            recovery: format!(
                "stack {stack_name} is in UPDATE_ROLLBACK_FAILED; fix the resource that could not roll back, then run `aws cloudformation continue-update-rollback --stack-name {stack_name}` (add `--resources-to-skip <LogicalId>` for resources that cannot be restored) and rerun"
            ),
        },
        "DELETE_FAILED" => StackCondition::NeedsRecovery {
            recovery: format!(
                "stack {stack_name} is in DELETE_FAILED; remove what blocked the deletion (see the DELETE_FAILED events) and run `aws cloudformation delete-stack --stack-name {stack_name}` (add `--retain-resources <LogicalId>` to keep a resource), then rerun"
            ),
        },
        "ROLLBACK_FAILED" => StackCondition::NeedsRecovery {
            recovery: format!(
                "stack {stack_name} is in ROLLBACK_FAILED; delete it with `aws cloudformation delete-stack --stack-name {stack_name}` (add `--retain-resources <LogicalId>` for resources that cannot be deleted), then rerun"
            ),
        },
        "CREATE_FAILED" => StackCondition::NeedsRecovery {
            recovery: format!(
                "stack {stack_name} is in CREATE_FAILED (created with rollback disabled); fix the cause, then roll it back with `aws cloudformation rollback-stack --stack-name {stack_name}` or delete it with `aws cloudformation delete-stack --stack-name {stack_name}`, and rerun"
            ),
        },
        status if is_busy(status) => StackCondition::Busy,
        _ => StackCondition::Updatable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_to_the_right_next_step() {
        let cases = [
            ("ROLLBACK_COMPLETE", false, "never"),
            ("REVIEW_IN_PROGRESS", false, "never"),
            ("REVIEW_IN_PROGRESS", true, "recovery"),
            ("CREATE_IN_PROGRESS", false, "busy"),
            ("UPDATE_IN_PROGRESS", true, "busy"),
            ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", true, "busy"),
            ("UPDATE_ROLLBACK_IN_PROGRESS", true, "busy"),
            ("DELETE_IN_PROGRESS", true, "busy"),
            ("UPDATE_ROLLBACK_FAILED", true, "recovery"),
            ("DELETE_FAILED", true, "recovery"),
            ("ROLLBACK_FAILED", true, "recovery"),
            ("CREATE_FAILED", true, "recovery"),
            ("CREATE_COMPLETE", true, "update"),
            ("UPDATE_COMPLETE", true, "update"),
            ("UPDATE_ROLLBACK_COMPLETE", true, "update"),
            ("UPDATE_FAILED", true, "update"),
            ("IMPORT_COMPLETE", true, "update"),
            ("DELETE_COMPLETE", false, "missing"),
        ];
        for (status, has_resources, expected) in cases {
            let got = match classify("web", status, has_resources) {
                StackCondition::Missing => "missing",
                StackCondition::NeverCreated => "never",
                StackCondition::Busy => "busy",
                StackCondition::NeedsRecovery { .. } => "recovery",
                StackCondition::Updatable => "update",
            };
            assert_eq!(got, expected, "{status} (resources: {has_resources})");
        }
    }

    #[test]
    fn recovery_names_the_command_and_the_stack() {
        let StackCondition::NeedsRecovery { recovery } =
            classify("web", "UPDATE_ROLLBACK_FAILED", true)
        else {
            panic!("expected recovery");
        };
        assert!(
            recovery.contains("continue-update-rollback --stack-name web"),
            "{recovery}"
        );
        let StackCondition::NeedsRecovery { recovery } = classify("web", "DELETE_FAILED", true)
        else {
            panic!("expected recovery");
        };
        assert!(
            recovery.contains("delete-stack --stack-name web"),
            "{recovery}"
        );
    }

    #[test]
    fn success_and_busy_predicates() {
        assert!(is_success("UPDATE_COMPLETE"));
        assert!(!is_success("UPDATE_ROLLBACK_COMPLETE"));
        assert!(!is_success("ROLLBACK_COMPLETE"));
        assert!(is_busy("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"));
        assert!(!is_busy("REVIEW_IN_PROGRESS"));
    }
}
