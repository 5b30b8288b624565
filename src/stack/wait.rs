//! Waiting for a stack operation to finish, printing events as they arrive.
//!
//! The poll interval starts short and backs off, staying at or under a
//! second for the first minute so a finished stack is noticed quickly, then
//! easing off to spare the API. The schedule is a value passed in, so tests
//! can use a faster one.
//!
//! A tick costs one call: DescribeStackEvents both shows what happened and
//! says when the operation ended (the stack's own event carries each status
//! it goes through), so DescribeStacks is read only when the events cannot
//! be. The API calls count against the account's shared rate limits, which
//! every pipeline of the account draws on at once.

use std::time::Duration;

use aws_sdk_cloudformation::Client;

use super::events::{EventFeed, StackEventRecord};
use super::lookup::{describe_stack, status_of};
use super::status::is_busy;
use crate::aws::is_throttled;
use crate::console::Console;
use crate::service::watch::StackServiceWatch;

/// How often to poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay during `fast_period`.
    pub fast_max: Duration,
    /// How long to poll fast after the wait starts.
    pub fast_period: Duration,
    /// The longest delay afterwards.
    pub slow_max: Duration,
    /// The longest delay after a tick AWS throttled: the SDK's retries
    /// spread one call out, this spreads out the ticks that follow.
    pub throttled_max: Duration,
}

impl Default for PollSchedule {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            fast_max: Duration::from_secs(1),
            fast_period: Duration::from_secs(60),
            slow_max: Duration::from_secs(5),
            throttled_max: Duration::from_secs(20),
        }
    }
}

impl PollSchedule {
    /// The schedule with no pause longer than `max`, when one is given
    /// (`wait-max-delay-seconds`).
    pub fn capped_by(self, max: Option<Duration>) -> Self {
        match max {
            Some(max) => self.capped(max),
            None => self,
        }
    }

    /// The same schedule with no pause longer than `max`.
    pub fn capped(self, max: Duration) -> Self {
        Self {
            initial: self.initial.min(max),
            fast_max: self.fast_max.min(max),
            fast_period: self.fast_period,
            slow_max: self.slow_max.min(max),
            throttled_max: self.throttled_max.min(max),
        }
    }

    /// The delay after `previous`, `elapsed` into the wait: grows by half
    /// each time, capped by the phase's maximum.
    pub fn next_delay(&self, previous: Duration, elapsed: Duration) -> Duration {
        let grown = (previous * 3 / 2).max(self.initial);
        let cap = if elapsed < self.fast_period {
            self.fast_max
        } else {
            self.slow_max
        };
        grown.min(cap)
    }
}

/// One wait, paced by a [`PollSchedule`] and bounded by a timeout: every
/// wait of the job (stack, change set, rollout) looks, then asks the poller
/// for the next tick, so the pacing and the bound live here only.
#[derive(Debug)]
pub struct Poller {
    schedule: PollSchedule,
    timeout: Duration,
    /// Tokio's clock, which tests can pause and advance.
    started: tokio::time::Instant,
    delay: Duration,
    /// Once a tick was throttled, the pause of every later tick.
    throttled_delay: Option<Duration>,
}

/// The wait ran out: how long it waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    pub waited: Duration,
}

impl Poller {
    pub fn new(schedule: PollSchedule, timeout: Duration) -> Self {
        Self {
            schedule,
            timeout,
            started: tokio::time::Instant::now(),
            delay: Duration::ZERO,
            throttled_delay: None,
        }
    }

    /// Time since the wait started.
    #[cfg(test)]
    pub fn waited(&self) -> Duration {
        self.started.elapsed()
    }

    /// Sleeps until the next look, or says the wait ran out. Never sleeps
    /// past the bound.
    pub async fn tick(&mut self) -> Result<(), TimedOut> {
        let waited = self.started.elapsed();
        if waited >= self.timeout {
            return Err(TimedOut { waited });
        }
        self.delay = self
            .throttled_delay
            .unwrap_or_else(|| self.schedule.next_delay(self.delay, waited));
        tokio::time::sleep(self.delay.min(self.timeout.saturating_sub(waited))).await;
        Ok(())
    }

    /// AWS throttled this tick's call even after the SDK's retries: the
    /// ticks from now on wait twice as long as before, up to the
    /// schedule's `throttled_max`, and never less than its slow pace.
    /// Returns the new delay.
    pub fn back_off(&mut self) -> Duration {
        let current = self.throttled_delay.unwrap_or(self.delay);
        let delay = (current * 2)
            .max(self.schedule.slow_max)
            .min(self.schedule.throttled_max);
        self.throttled_delay = Some(delay);
        delay
    }
}

/// Why waiting ended without a settled stack.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(
        "stack {stack} was still {last_status} after {waited:?} (wait-timeout); CloudFormation carries on with the operation on its own — check the stack in the console or raise `wait-timeout`"
    )]
    Timeout {
        stack: String,
        last_status: String,
        waited: Duration,
    },
    #[error("stack {stack} disappeared while waiting for it")]
    Vanished { stack: String },
    /// A service the stack is rolling out is doomed by its tasks' evidence
    /// while the stack is `status`.
    #[error("stack {stack} is {status}, and service {service} cannot stabilise: {evidence}")]
    Doomed {
        stack: String,
        status: String,
        service: String,
        evidence: String,
    },
    #[error(transparent)]
    Aws(#[from] anyhow::Error),
}

/// Polls `stack` (preferably its id) until its operation ends, printing
/// each new event as one line, and watching the ECS services the stack is
/// working on when `services` is given. Returns the final status; success
/// or failure is for the caller to judge.
///
/// Each tick reads the events only (see the module docs); the stack's own
/// events give its status. When the events cannot be read, DescribeStacks
/// gives the status for that tick, so a problem with a call made to explain
/// never ends the wait.
pub async fn wait_for_stack(
    client: &Client,
    stack: &str,
    feed: &mut EventFeed,
    console: &Console,
    schedule: PollSchedule,
    timeout: Duration,
    mut services: Option<&mut StackServiceWatch>,
) -> Result<String, WaitError> {
    let mut poller = Poller::new(schedule, timeout);
    // The latest status the stack was seen in; none until its first event
    // of this operation (or a DescribeStacks) says.
    let mut last_status: Option<String> = None;
    loop {
        // Every look comes after a pause, the first too: an operation just
        // started (or found running) is still running a moment later, on
        // AWS always, and a look at once would spare no wait.
        if let Err(TimedOut { waited }) = poller.tick().await {
            return Err(WaitError::Timeout {
                stack: stack.to_string(),
                last_status: last_status.unwrap_or_else(|| "in progress".to_string()),
                waited,
            });
        }
        let (fresh, read_from_events, throttled) = match feed.poll(client).await {
            Ok(fresh) => (fresh, true, false),
            Err(error) => {
                let throttled = is_throttled(&error);
                if throttled {
                    let delay = poller.back_off();
                    console.warning_once(
                        "throttled stack reads",
                        &format!(
                            "AWS throttled the reads of stack {stack}: looking every {delay:?} from now on, to spare the account's API rate"
                        ),
                    );
                }
                console.explain_failed("DescribeStackEvents", &error);
                (Vec::new(), false, throttled)
            }
        };
        feed.explain_unread(console);
        for event in &fresh {
            print_event(console, event);
            if let Some(services) = services.as_deref_mut() {
                services.track(event);
            }
        }
        let from_events = own_status(&fresh, stack);
        // The stack is read when the events cannot be, or have not said yet
        // where it is: an operation that started before the feed's baseline
        // (another run's, waited out) may even have ended there, and no
        // event of it is to come.
        let read_stack = !read_from_events || (from_events.is_none() && last_status.is_none());
        if from_events.is_some() {
            last_status = from_events;
        }
        if read_stack {
            let Some(snapshot) = describe_stack(client, stack).await? else {
                return Err(WaitError::Vanished {
                    stack: stack.to_string(),
                });
            };
            last_status = Some(status_of(&snapshot));
        }
        if let Some(services) = services.as_deref_mut() {
            services.observe(console).await;
        }
        // Only while the stack works towards its target: during a rollback
        // the new deployment's failures are expected.
        let advancing = matches!(
            last_status.as_deref(),
            Some("CREATE_IN_PROGRESS" | "UPDATE_IN_PROGRESS")
        );
        if let (Some(services), true) = (services.as_deref(), advancing)
            && let Some((service, doomed)) = services.doomed()
        {
            return Err(WaitError::Doomed {
                stack: stack.to_string(),
                status: last_status.unwrap_or_default(),
                service,
                evidence: doomed.describe("its new revision"),
            });
        }
        if let Some(status) = last_status.as_deref().filter(|s| is_settled(s)) {
            if read_stack && !throttled {
                // Events written just before the status flipped (not asked
                // for again from an API that is throttling us).
                for event in feed.poll_explained(client, console).await {
                    print_event(console, &event);
                }
            }
            return Ok(status.to_string());
        }
    }
}

/// Whether a stack in `status` has no operation running: the end of a wait.
/// `REVIEW_IN_PROGRESS` is where a stack made by a CREATE change set sits
/// before the operation starts, so it is no end.
fn is_settled(status: &str) -> bool {
    !is_busy(status) && status != "REVIEW_IN_PROGRESS"
}

/// The newest status the stack's own events in `fresh` (oldest first) give.
fn own_status(fresh: &[StackEventRecord], stack: &str) -> Option<String> {
    fresh
        .iter()
        .rev()
        .find(|event| event.is_about_stack(stack))
        .map(|event| event.status.clone())
}

/// Prints one stack event line.
pub fn print_event(console: &Console, event: &StackEventRecord) {
    console.line(&event.to_line());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_schedule_never_pauses_longer_than_the_cap() {
        let capped = PollSchedule::default().capped(Duration::from_millis(500));
        assert_eq!(capped.initial, Duration::from_millis(250));
        assert_eq!(capped.fast_max, Duration::from_millis(500));
        assert_eq!(capped.slow_max, Duration::from_millis(500));
        let delay = capped.next_delay(Duration::from_secs(4), Duration::from_secs(600));
        assert_eq!(delay, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn the_poller_paces_and_never_sleeps_past_its_bound() {
        let schedule = PollSchedule::default();
        let mut poller = Poller::new(schedule, Duration::from_millis(700));
        assert_eq!(poller.tick().await, Ok(()));
        assert_eq!(poller.waited(), Duration::from_millis(250));
        assert_eq!(poller.tick().await, Ok(()));
        assert_eq!(poller.waited(), Duration::from_millis(625));
        // The next delay (562 ms) is cut to what is left of the bound.
        assert_eq!(poller.tick().await, Ok(()));
        assert_eq!(poller.waited(), Duration::from_millis(700));
        assert_eq!(
            poller.tick().await,
            Err(TimedOut {
                waited: Duration::from_millis(700)
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_tick_doubles_the_pause_up_to_the_throttled_maximum() {
        let mut poller = Poller::new(PollSchedule::default(), Duration::from_secs(600));
        assert_eq!(poller.tick().await, Ok(()));
        // From 250 ms to the slow pace at least, then doubling to the cap.
        assert_eq!(poller.back_off(), Duration::from_secs(5));
        assert_eq!(poller.tick().await, Ok(()));
        assert_eq!(poller.waited(), Duration::from_millis(5250));
        assert_eq!(poller.back_off(), Duration::from_secs(10));
        assert_eq!(poller.back_off(), Duration::from_secs(20));
        assert_eq!(poller.back_off(), Duration::from_secs(20));
        // Later ticks keep the throttled pace, also in the first minute.
        assert_eq!(poller.tick().await, Ok(()));
        assert_eq!(poller.waited(), Duration::from_millis(25250));
        let capped = PollSchedule::default().capped(Duration::from_secs(2));
        let mut poller = Poller::new(capped, Duration::from_secs(600));
        assert_eq!(poller.back_off(), Duration::from_secs(2));
    }

    fn event(logical: &str, physical: &str, status: &str) -> StackEventRecord {
        StackEventRecord {
            event_id: format!("{logical}-{status}"),
            logical_id: logical.into(),
            resource_type: "AWS::CloudFormation::Stack".into(),
            status: status.into(),
            reason: String::new(),
            physical_id: physical.into(),
            timestamp: 0.0,
            nested_in: String::new(),
        }
    }

    #[test]
    fn the_stacks_own_newest_event_gives_its_status() {
        let id = "arn:aws:cloudformation:us-east-1:1:stack/web/abc";
        let child = "arn:aws:cloudformation:us-east-1:1:stack/web-Network-X/def";
        let mut nested_own = event("web-Network-X", child, "CREATE_COMPLETE");
        nested_own.nested_in = "Network".into();
        let fresh = vec![
            event("web", id, "CREATE_IN_PROGRESS"),
            // A nested stack's resource in the parent, and that stack's own
            // event: neither is the parent's status.
            event("Network", child, "CREATE_COMPLETE"),
            nested_own,
        ];
        assert_eq!(
            own_status(&fresh, id).as_deref(),
            Some("CREATE_IN_PROGRESS")
        );
        // By name too, when the wait was given one.
        assert_eq!(
            own_status(&fresh, "web").as_deref(),
            Some("CREATE_IN_PROGRESS")
        );
        assert_eq!(own_status(&fresh[1..], id), None);
        let mut done = fresh.clone();
        done.push(event("web", id, "UPDATE_ROLLBACK_COMPLETE"));
        assert_eq!(
            own_status(&done, id).as_deref(),
            Some("UPDATE_ROLLBACK_COMPLETE")
        );
        // A resource whose logical id is the stack's name is not the stack.
        assert_eq!(
            own_status(&[event("web", "web-queue", "CREATE_FAILED")], "web"),
            None
        );
    }

    #[test]
    fn a_wait_ends_on_a_settled_status_only() {
        for settled in [
            "CREATE_COMPLETE",
            "ROLLBACK_COMPLETE",
            "UPDATE_ROLLBACK_FAILED",
            "DELETE_COMPLETE",
        ] {
            assert!(is_settled(settled), "{settled}");
        }
        for busy in [
            "REVIEW_IN_PROGRESS",
            "CREATE_IN_PROGRESS",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "UPDATE_ROLLBACK_IN_PROGRESS",
        ] {
            assert!(!is_settled(busy), "{busy}");
        }
    }

    #[test]
    fn delays_back_off_and_stay_under_a_second_in_the_first_minute() {
        let schedule = PollSchedule::default();
        let mut delay = Duration::ZERO;
        let mut elapsed = Duration::ZERO;
        let mut delays = Vec::new();
        while elapsed < Duration::from_secs(60) {
            delay = schedule.next_delay(delay, elapsed);
            delays.push(delay);
            elapsed += delay;
        }
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(375));
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        let later = schedule.next_delay(Duration::from_secs(1), Duration::from_secs(61));
        assert_eq!(later, Duration::from_millis(1500));
        let capped = schedule.next_delay(Duration::from_secs(5), Duration::from_secs(600));
        assert_eq!(capped, Duration::from_secs(5));
    }
}
