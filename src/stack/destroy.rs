//! Deleting a stack for good (`mode: destroy` of a system, e.g. a pull
//! request's preview environment): what is read before any deletion (the
//! stack, its termination protection) and the deletion itself, waited for
//! and followed by its events like a deploy.

use anyhow::{Context, anyhow};
use aws_sdk_cloudformation::Client;

use super::events::EventFeed;
use super::lookup::{describe_stack, status_of};
use super::request_token;
use super::wait::{PollSchedule, wait_for_stack};
use crate::aws::aws_error;
use crate::console::Console;

/// A stack as a destroy finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestroyTarget {
    /// Nothing to delete.
    Missing,
    Present {
        stack_id: String,
        status: String,
        protected: bool,
    },
}

/// Reads the stack (read-only).
pub async fn read_destroy_target(client: &Client, name: &str) -> anyhow::Result<DestroyTarget> {
    Ok(match describe_stack(client, name).await? {
        None => DestroyTarget::Missing,
        Some(stack) => DestroyTarget::Present {
            stack_id: stack.stack_id().unwrap_or(name).to_string(),
            status: status_of(&stack),
            protected: stack.enable_termination_protection().unwrap_or(false),
        },
    })
}

/// Sends DeleteStack (with a request token of its own) and waits until
/// CloudFormation is done with the stack, printing its events: the final
/// status (DELETE_COMPLETE, or DELETE_FAILED when a resource stayed).
/// Shared by a destroy and the recreation of a stack that never finished
/// being created.
pub async fn delete_and_wait(
    client: &Client,
    stack_id: &str,
    schedule: PollSchedule,
    timeout: std::time::Duration,
    console: &Console,
) -> anyhow::Result<String> {
    let mut feed = EventFeed::start_explained(client, stack_id, console).await;
    client
        .delete_stack()
        .stack_name(stack_id)
        .client_request_token(request_token())
        .send()
        .await
        .map_err(aws_error)?;
    wait_for_stack(
        client, stack_id, &mut feed, console, schedule, timeout, None,
    )
    .await
    .map_err(|e| anyhow!(e))
}

/// Deletes the stack for good; a stack that ends in another state than
/// DELETE_COMPLETE is an error naming it.
pub async fn delete_stack(
    client: &Client,
    name: &str,
    stack_id: &str,
    schedule: PollSchedule,
    timeout: std::time::Duration,
    console: &Console,
) -> anyhow::Result<()> {
    console.line(&format!("deleting stack {name}"));
    let status = delete_and_wait(client, stack_id, schedule, timeout, console)
        .await
        .with_context(|| format!("deleting stack {name}"))?;
    if status == "DELETE_COMPLETE" {
        console.line(&format!("stack {name} deleted"));
        Ok(())
    } else {
        Err(anyhow!(
            "stack {name} was not deleted: it ended in {status} (a resource could not be deleted; its events above say which)"
        ))
    }
}
