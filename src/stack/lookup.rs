//! Reading a stack's current state (read-only calls).

use anyhow::Context as _;

use crate::aws::aws_error;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::Stack;

/// Whether an error says the stack does not exist. CloudFormation reports
/// this as a generic `ValidationError` whose only distinguishing feature is
/// the message ("Stack with id X does not exist"), so this is the one place
/// that matches it.
pub fn is_missing_stack_error<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    error.as_service_error().is_some_and(|e| {
        e.code() == Some("ValidationError")
            && e.message().is_some_and(|m| m.contains("does not exist"))
    })
}

/// The stack called (or with the id) `stack`, or `None` when there is none.
pub async fn describe_stack(client: &Client, stack: &str) -> anyhow::Result<Option<Stack>> {
    match client.describe_stacks().stack_name(stack).send().await {
        Ok(output) => Ok(output.stacks().first().cloned()),
        Err(error) if is_missing_stack_error(&error) => Ok(None),
        Err(error) => Err(aws_error(error)).with_context(|| format!("describing stack {stack}")),
    }
}

/// Whether the stack has any resources (to tell an import under review from
/// a stack that was never created).
pub async fn has_resources(client: &Client, stack: &str) -> anyhow::Result<bool> {
    let output = client
        .list_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("listing the resources of stack {stack}"))?;
    Ok(!output.stack_resource_summaries().is_empty())
}

/// The status of a stack as text (`CREATE_COMPLETE`, ...).
pub fn status_of(stack: &Stack) -> String {
    stack
        .stack_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

/// The newest change set of a stack: its description and how long ago it
/// was created.
pub async fn newest_change_set(
    client: &Client,
    stack: &str,
) -> anyhow::Result<Option<(String, std::time::Duration)>> {
    let output = client
        .list_change_sets()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("listing the change sets of stack {stack}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    Ok(output
        .summaries()
        .iter()
        .filter_map(|summary| {
            let created = summary.creation_time()?.as_secs_f64();
            let age = std::time::Duration::from_secs_f64((now - created).max(0.0));
            Some((summary.description().unwrap_or_default().to_string(), age))
        })
        .min_by_key(|(_, age)| *age))
}
