//! CloudFormation stacks: change sets, waiting, events, outputs and failure
//! causes.

pub mod changeset;
pub mod deploy;
pub mod destroy;
pub mod events;
pub mod execute;
pub mod images;
pub mod lookup;
pub mod options;
pub mod package;
pub mod parameters;
pub mod plan;
pub mod status;
pub mod task_definitions;
pub mod template;
pub mod upload;
pub mod wait;

/// A fresh idempotency token for one mutating CloudFormation call. The SDK
/// resends the same request when it retries, token included, so when a call
/// took effect but its answer was lost (a reset connection), CloudFormation
/// recognises the retry instead of refusing it: without the token a retried
/// CreateChangeSet fails with `AlreadyExistsException` (and leaves the change
/// set behind) and a retried ExecuteChangeSet with `InvalidChangeSetStatus`,
/// although both worked.
pub fn request_token() -> String {
    format!("ecs-stack-deploy-{:032x}", rand::random::<u128>())
}
