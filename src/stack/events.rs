//! Stack events: following them as they happen, printing them as plain
//! lines, and finding the root cause of a failure.
//!
//! CloudFormation returns events newest first and keeps every event of the
//! stack's life, so [`EventFeed`] remembers a baseline (the newest event
//! before our operation) and pages back only until it meets an event it has
//! already seen.

use std::collections::HashSet;

use anyhow::Context as _;

use crate::aws::aws_error;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::StackEvent;

use crate::console::Console;

/// One stack event, without AWS types, for formatting and analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct StackEventRecord {
    pub event_id: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
    /// The resource's physical id (an ARN for ECS services), when known.
    pub physical_id: String,
    /// Seconds since the Unix epoch, with fractions.
    pub timestamp: f64,
    /// The nested stack the event comes from, as a path of logical ids
    /// (`Network/Queues`); empty for the deployed stack itself.
    pub nested_in: String,
}

impl StackEventRecord {
    fn from_sdk(event: &StackEvent) -> Self {
        Self {
            event_id: event.event_id().unwrap_or_default().to_string(),
            logical_id: event.logical_resource_id().unwrap_or_default().to_string(),
            resource_type: event.resource_type().unwrap_or_default().to_string(),
            status: event
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: event
                .resource_status_reason()
                .unwrap_or_default()
                .to_string(),
            physical_id: event.physical_resource_id().unwrap_or_default().to_string(),
            timestamp: event
                .timestamp()
                .map(|t| t.as_secs_f64())
                .unwrap_or_default(),
            nested_in: String::new(),
        }
    }

    /// The logical id, under its nested stack's path when it is in one.
    pub fn display_id(&self) -> String {
        if self.nested_in.is_empty() {
            self.logical_id.clone()
        } else {
            format!("{}/{}", self.nested_in, self.logical_id)
        }
    }

    /// Whether this is a nested stack's resource event that names the
    /// nested stack (its physical id), so the stack can be followed.
    fn nested_stack(&self) -> Option<&str> {
        (self.resource_type == "AWS::CloudFormation::Stack"
            && self.physical_id.starts_with("arn:")
            && self.physical_id.contains(":stack/"))
        .then_some(self.physical_id.as_str())
    }

    /// Whether this is one of the followed stack's own events (each status
    /// it goes through), `stack` being its id or name; not a nested stack's,
    /// nor its resource in the parent.
    pub fn is_about_stack(&self, stack: &str) -> bool {
        self.nested_in.is_empty()
            && self.resource_type == "AWS::CloudFormation::Stack"
            && (self.physical_id == stack
                || (self.logical_id == stack
                    && self.physical_id.contains(&format!(":stack/{stack}/"))))
    }

    /// Whether this event is about the stack itself rather than a resource.
    pub fn is_stack_event(&self) -> bool {
        self.resource_type == "AWS::CloudFormation::Stack" && !self.logical_id.is_empty()
    }

    /// The event as one log line (without the elapsed-time prefix, which the
    /// console adds): logical id, type, status, and the reason if any.
    pub fn to_line(&self) -> String {
        let mut line = format!(
            "{}  {}  {}",
            self.display_id(),
            self.resource_type,
            self.status
        );
        if !self.reason.is_empty() {
            line.push_str("  ");
            line.push_str(&self.reason);
        }
        line
    }
}

/// Whether a failure reason only says that CloudFormation gave up on a
/// resource because another one failed. Such events are consequences, not
/// causes. This is the one place that matches these messages: CloudFormation
/// has no error code for them.
pub fn is_consequence(reason: &str) -> bool {
    let reason = reason.trim();
    reason.starts_with("Resource creation cancelled")
        || reason.starts_with("Resource update cancelled")
        || reason.starts_with("Resource deletion cancelled")
        || reason.starts_with("The following resource(s) failed to")
}

/// A nested stack resource's failure, which only points at the nested
/// stack's own events ("Embedded stack arn:... was not successfully
/// created: ...").
fn is_embedded_stack_failure(event: &StackEventRecord) -> bool {
    event.reason.trim_start().starts_with("Embedded stack ")
}

/// The root causes of a failed operation: the reasons of the earliest failed
/// resource events, skipping cancellations and the stack-level summary,
/// oldest first and de-duplicated. Falls back to stack-level reasons when no
/// resource failed (for example a timeout or a permissions error).
pub fn root_causes(events: &[StackEventRecord]) -> Vec<String> {
    let mut ordered: Vec<&StackEventRecord> = events.iter().collect();
    ordered.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    let failed: Vec<&&StackEventRecord> = ordered
        .iter()
        .filter(|e| e.status.ends_with("_FAILED") && !e.reason.is_empty())
        .filter(|e| !is_consequence(&e.reason))
        .collect();
    // With the nested stacks' own failures in hand, their embedding's
    // message adds nothing; without them (events unread), it is the best
    // cause there is.
    let nested_failed = failed.iter().any(|e| !e.nested_in.is_empty());
    let mut causes: Vec<String> = failed
        .iter()
        .filter(|e| {
            if is_embedded_stack_failure(e) {
                !nested_failed
            } else {
                !e.is_stack_event()
            }
        })
        .map(|e| format!("{} ({}): {}", e.display_id(), e.resource_type, e.reason))
        .collect();
    if causes.is_empty() {
        causes = ordered
            .iter()
            .filter(|e| e.is_stack_event() && !e.reason.is_empty())
            .filter(|e| e.status.ends_with("_FAILED") || e.status.contains("ROLLBACK"))
            .map(|e| format!("{}: {}", e.logical_id, e.reason))
            .collect();
    }
    let mut seen = HashSet::new();
    causes.retain(|c| seen.insert(c.clone()));
    causes
}

/// Follows a stack's events from a baseline onwards, and the events of the
/// nested stacks it works on while it does.
pub struct EventFeed {
    stack: String,
    seen: HashSet<String>,
    /// When the baseline could not be read: events older than this (seconds
    /// since the epoch) belong to earlier operations and are skipped.
    not_before: Option<f64>,
    /// Every event since the baseline, oldest first (nested stacks' too).
    collected: Vec<StackEventRecord>,
    /// Where this stack sits: empty for the deployed stack, the path of
    /// logical ids for a nested one.
    path: String,
    nested: Vec<NestedFeed>,
    /// Nested stacks' events that could not be read, to be explained.
    unread: Vec<anyhow::Error>,
}

/// A nested stack followed while its parent's resource is in progress.
struct NestedFeed {
    stack_id: String,
    feed: EventFeed,
    /// Its resource reached a final state: read once more, then no longer.
    finishing: bool,
    done: bool,
}

impl EventFeed {
    /// Starts following `stack` (a name or, better, an id) from now: events
    /// that already exist are marked seen and never reported.
    pub async fn start(client: &Client, stack: &str) -> anyhow::Result<Self> {
        let mut feed = Self::empty(stack);
        // Only the newest page is needed: paging stops at the first seen id.
        let page = client
            .describe_stack_events()
            .stack_name(stack)
            .send()
            .await
            .map_err(aws_error)
            .with_context(|| format!("reading the events of stack {stack}"))?;
        for event in page.stack_events() {
            feed.seen
                .insert(event.event_id().unwrap_or_default().to_string());
        }
        Ok(feed)
    }

    /// Starts following `stack` from now; events are read only to be
    /// printed, so when the baseline cannot be read the feed falls back to
    /// the clock (with slack for skew) and the deploy goes on.
    pub async fn start_explained(client: &Client, stack: &str, console: &Console) -> Self {
        match Self::start(client, stack).await {
            Ok(feed) => feed,
            Err(error) => {
                console.explain_failed("DescribeStackEvents", &error);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or_default();
                Self {
                    not_before: Some(now - 5.0),
                    ..Self::empty(stack)
                }
            }
        }
    }

    /// A feed for a stack that has no events yet, or none but the
    /// `REVIEW_IN_PROGRESS` of the CREATE change set that made it (never
    /// reported): no baseline to read.
    pub fn empty(stack: &str) -> Self {
        Self {
            stack: stack.to_string(),
            seen: HashSet::new(),
            not_before: None,
            collected: Vec::new(),
            path: String::new(),
            nested: Vec::new(),
            unread: Vec::new(),
        }
    }

    /// Like [`EventFeed::poll`], for a caller that only prints the events:
    /// a failed read is one warning and no events this time.
    pub async fn poll_explained(
        &mut self,
        client: &Client,
        console: &Console,
    ) -> Vec<StackEventRecord> {
        let fresh = self.poll(client).await.unwrap_or_else(|error| {
            console.explain_failed("DescribeStackEvents", &error);
            Vec::new()
        });
        self.explain_unread(console);
        fresh
    }

    /// Warns (once) of the nested stacks whose events could not be read.
    pub fn explain_unread(&mut self, console: &Console) {
        for error in std::mem::take(&mut self.unread) {
            console.explain_failed("DescribeStackEvents", &error);
        }
    }

    /// Fetches events that appeared since the last call, oldest first.
    pub async fn poll(&mut self, client: &Client) -> anyhow::Result<Vec<StackEventRecord>> {
        let mut fresh = Vec::new();
        let mut token: Option<String> = None;
        'pages: loop {
            let page = client
                .describe_stack_events()
                .stack_name(&self.stack)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(aws_error)
                .with_context(|| format!("reading the events of stack {}", self.stack))?;
            for event in page.stack_events() {
                let record = StackEventRecord::from_sdk(event);
                if self.seen.contains(&record.event_id) {
                    break 'pages;
                }
                if self.not_before.is_some_and(|t| record.timestamp < t) {
                    break 'pages;
                }
                fresh.push(record);
            }
            match page.next_token() {
                Some(next) if !self.seen.is_empty() => token = Some(next.to_string()),
                // Without a baseline every page is new; the first page is
                // enough for a stack we just created.
                _ => break,
            }
        }
        fresh.reverse();
        for record in &mut fresh {
            self.seen.insert(record.event_id.clone());
            record.nested_in = self.path.clone();
        }
        // A CREATE change set makes the stack in REVIEW_IN_PROGRESS before
        // any operation: a follower of a stack just made that way needs no
        // baseline read to leave that event out.
        fresh.retain(|record| record.status != "REVIEW_IN_PROGRESS");
        // A nested stack's own stack-level events repeat what its parent
        // says of its resource.
        if !self.path.is_empty() {
            fresh.retain(|record| record.physical_id != self.stack);
        }
        self.follow_nested(&fresh);
        self.collected.extend(fresh.iter().cloned());
        let nested = self.poll_nested(client).await;
        if !nested.is_empty() {
            self.collected.extend(nested.iter().cloned());
            fresh.extend(nested);
            fresh.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
        }
        Ok(fresh)
    }

    /// Starts following the nested stacks this stack's fresh events show
    /// in progress, and marks those whose resource finished.
    fn follow_nested(&mut self, fresh: &[StackEventRecord]) {
        for record in fresh {
            let Some(stack_id) = record.nested_stack() else {
                continue;
            };
            if stack_id == self.stack {
                continue;
            }
            let known = self.nested.iter_mut().find(|n| n.stack_id == stack_id);
            let in_progress = record.status.ends_with("_IN_PROGRESS");
            match known {
                Some(nested) if !in_progress => nested.finishing = true,
                Some(nested) => {
                    nested.finishing = false;
                    nested.done = false;
                }
                None if in_progress => {
                    let mut feed = EventFeed::empty(stack_id);
                    // Its earlier operations are not ours. Both stacks'
                    // events carry CloudFormation's clock: no slack needed.
                    feed.not_before = Some(record.timestamp);
                    feed.path = record.display_id();
                    self.nested.push(NestedFeed {
                        stack_id: stack_id.to_string(),
                        feed,
                        finishing: false,
                        done: false,
                    });
                }
                None => {}
            }
        }
    }

    /// Reads the followed nested stacks' new events (theirs and their own
    /// nested stacks'). Read only to be shown: a failed read is kept for
    /// [`EventFeed::poll_explained`] and the rest goes on.
    async fn poll_nested(&mut self, client: &Client) -> Vec<StackEventRecord> {
        let mut fresh = Vec::new();
        for nested in self.nested.iter_mut().filter(|n| !n.done) {
            match Box::pin(nested.feed.poll(client)).await {
                Ok(events) => fresh.extend(events),
                Err(error) => self.unread.push(error),
            }
            self.unread.append(&mut nested.feed.unread);
            if nested.finishing {
                nested.done = true;
            }
        }
        fresh
    }

    /// Every event seen since the baseline, oldest first.
    pub fn collected(&self) -> &[StackEventRecord] {
        &self.collected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: f64, logical: &str, kind: &str, status: &str, reason: &str) -> StackEventRecord {
        StackEventRecord {
            event_id: format!("{logical}-{at}"),
            logical_id: logical.into(),
            resource_type: kind.into(),
            status: status.into(),
            reason: reason.into(),
            physical_id: String::new(),
            timestamp: at,
            nested_in: String::new(),
        }
    }

    #[test]
    fn a_nested_stacks_failure_is_the_cause_under_its_path_not_its_embedding() {
        let mut queue = event(
            2.0,
            "Queue",
            "AWS::SQS::Queue",
            "CREATE_FAILED",
            "Queue name taken",
        );
        queue.nested_in = "Network/Queues".into();
        let events = vec![
            queue,
            event(
                3.0,
                "Network",
                "AWS::CloudFormation::Stack",
                "CREATE_FAILED",
                "Embedded stack arn:aws:cloudformation:us-east-1:1:stack/s-Network-X/1 was not successfully created: The following resource(s) failed to create: [Queues]. ",
            ),
        ];
        assert_eq!(
            root_causes(&events),
            vec!["Network/Queues/Queue (AWS::SQS::Queue): Queue name taken"]
        );
        assert!(
            events[0]
                .to_line()
                .starts_with("Network/Queues/Queue  AWS::SQS::Queue")
        );
    }

    #[test]
    fn root_cause_is_the_earliest_real_failure_not_the_cancellations() {
        let events = vec![
            event(
                5.0,
                "web",
                "AWS::CloudFormation::Stack",
                "ROLLBACK_IN_PROGRESS",
                "The following resource(s) failed to create: [Queue, Topic]. Rollback requested by user.",
            ),
            event(
                4.0,
                "Topic",
                "AWS::SNS::Topic",
                "CREATE_FAILED",
                "Resource creation cancelled",
            ),
            event(
                3.0,
                "Queue",
                "AWS::SQS::Queue",
                "CREATE_FAILED",
                "Invalid value for VisibilityTimeout",
            ),
            event(2.0, "Queue", "AWS::SQS::Queue", "CREATE_IN_PROGRESS", ""),
            event(
                1.0,
                "web",
                "AWS::CloudFormation::Stack",
                "CREATE_IN_PROGRESS",
                "User Initiated",
            ),
        ];
        assert_eq!(
            root_causes(&events),
            vec!["Queue (AWS::SQS::Queue): Invalid value for VisibilityTimeout"]
        );
    }

    #[test]
    fn several_independent_failures_are_all_reported_oldest_first() {
        let events = vec![
            event(
                2.0,
                "B",
                "AWS::S3::Bucket",
                "CREATE_FAILED",
                "bucket exists",
            ),
            event(
                1.0,
                "A",
                "AWS::IAM::Role",
                "CREATE_FAILED",
                "not authorized",
            ),
            event(
                3.0,
                "B",
                "AWS::S3::Bucket",
                "DELETE_FAILED",
                "bucket exists",
            ),
        ];
        assert_eq!(
            root_causes(&events),
            vec![
                "A (AWS::IAM::Role): not authorized",
                "B (AWS::S3::Bucket): bucket exists",
            ]
        );
    }

    #[test]
    fn stack_level_reason_when_no_resource_failed() {
        let events = vec![event(
            1.0,
            "web",
            "AWS::CloudFormation::Stack",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "Stack creation time exceeded the specified timeout",
        )];
        assert_eq!(
            root_causes(&events),
            vec!["web: Stack creation time exceeded the specified timeout"]
        );
    }

    #[test]
    fn consequences_are_recognised() {
        for reason in [
            "Resource creation cancelled",
            "Resource update cancelled",
            "The following resource(s) failed to update: [Service].",
        ] {
            assert!(is_consequence(reason), "{reason}");
        }
        assert!(!is_consequence(
            "Embedded stack arn:... was not successfully created"
        ));
    }

    #[test]
    fn event_line_has_id_type_status_and_reason() {
        let line = event(1.0, "Queue", "AWS::SQS::Queue", "CREATE_FAILED", "boom").to_line();
        assert_eq!(line, "Queue  AWS::SQS::Queue  CREATE_FAILED  boom");
        let line = event(1.0, "Queue", "AWS::SQS::Queue", "CREATE_COMPLETE", "").to_line();
        assert_eq!(line, "Queue  AWS::SQS::Queue  CREATE_COMPLETE");
    }
}
