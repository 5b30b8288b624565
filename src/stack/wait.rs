//! Waiting for a stack operation to finish, printing events as they arrive.
//!
//! The poll interval starts short and backs off, staying at or under a
//! second for the first minute so a finished stack is noticed quickly, then
//! easing off to spare the API. The schedule is a value passed in, so tests
//! can use a faster one.

use std::time::Duration;

use aws_sdk_cloudformation::Client;

use super::events::{EventFeed, StackEventRecord};
use super::lookup::{describe_stack, status_of};
use super::status::is_busy;
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
}

impl Default for PollSchedule {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            fast_max: Duration::from_secs(1),
            fast_period: Duration::from_secs(60),
            slow_max: Duration::from_secs(5),
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
        self.delay = self.schedule.next_delay(self.delay, waited);
        tokio::time::sleep(self.delay.min(self.timeout.saturating_sub(waited))).await;
        Ok(())
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

/// Polls `stack` (preferably its id) until its status is no longer
/// `*_IN_PROGRESS`, printing each new event as one line, and watching the
/// ECS services the stack is working on when `services` is given. Returns the final
/// status; success or failure is for the caller to judge.
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
    loop {
        for event in feed.poll_explained(client, console).await {
            print_event(console, &event);
            if let Some(services) = services.as_deref_mut() {
                services.track(&event);
            }
        }
        if let Some(services) = services.as_deref_mut() {
            services.observe(console).await;
        }
        let snapshot = describe_stack(client, stack).await?;
        let Some(snapshot) = snapshot else {
            return Err(WaitError::Vanished {
                stack: stack.to_string(),
            });
        };
        let last_status = status_of(&snapshot);
        // Only while the stack works towards its target: during a rollback
        // the new deployment's failures are expected.
        let advancing = matches!(
            last_status.as_str(),
            "CREATE_IN_PROGRESS" | "UPDATE_IN_PROGRESS"
        );
        if let (Some(services), true) = (services.as_deref(), advancing)
            && let Some((service, doomed)) = services.doomed()
        {
            return Err(WaitError::Doomed {
                stack: stack.to_string(),
                status: last_status,
                service,
                evidence: doomed.describe("its new revision"),
            });
        }
        if !is_busy(&last_status) {
            // Events written just before the status flipped.
            for event in feed.poll_explained(client, console).await {
                print_event(console, &event);
            }
            return Ok(last_status);
        }
        if let Err(TimedOut { waited }) = poller.tick().await {
            return Err(WaitError::Timeout {
                stack: stack.to_string(),
                last_status,
                waited,
            });
        }
    }
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
