//! The fail-fast rule: a rollout is judged on the evidence its own tasks
//! give, not on a timeout. When `threshold` tasks of our deployment stop
//! for the same persistent reason (the image cannot be pulled, the task
//! cannot be initialised, an essential container exits with the same
//! non-zero code, health checks keep failing), the rollout is doomed: ECS
//! would restart such tasks forever without the circuit breaker, and only
//! decide after up to 200 failures with it. Transient reasons (capacity,
//! throttling, spot interruption, maintenance) and tasks stopped by the
//! scheduler's own scaling never count. Pure and table-tested.

use std::collections::BTreeMap;

use super::watch::StoppedTask;

/// What `on-rollout-failure` asks for when the evidence says the rollout is
/// doomed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRolloutFailure {
    /// Put the previous revision back (direct rollouts), cancel the stack
    /// update (stacks), then report.
    #[default]
    Rollback,
    /// Report and exit; AWS carries on on its own.
    Stop,
    /// Keep waiting as before (the circuit breaker or the timeout decides).
    Wait,
}

/// The fail-fast settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailFast {
    /// How many tasks must stop for the same reason.
    pub threshold: usize,
    pub on_failure: OnRolloutFailure,
}

impl Default for FailFast {
    fn default() -> Self {
        Self {
            threshold: 3,
            on_failure: OnRolloutFailure::Rollback,
        }
    }
}

/// Why one stopped task stopped, for the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopClass {
    /// Would happen again to every task of this revision: the key groups
    /// identical failures.
    Persistent(String),
    /// Capacity, throttling, spot interruption, maintenance: retried by ECS
    /// and not this revision's fault.
    Transient,
    /// Stopped by the scheduler or a person on purpose (draining, scaling
    /// in, StopTask).
    Normal,
}

/// Reasons ECS gives for failures that are not the revision's fault.
const TRANSIENT_MARKERS: &[&str] = &[
    "capacity is unavailable",
    "insufficient capacity",
    "no container instances",
    "resource:cpu",
    "resource:memory",
    "resource:eni",
    "throttl",
    "rate exceeded",
    "requestlimitexceeded",
    "spot interruption",
    "host ec2",
    "is being retired",
    "ecs is performing maintenance",
    "timeout waiting for network interface",
    "internal error",
];

/// Classifies a stopped task. `essential` names the containers whose exit
/// stops the task (a non-essential one exiting is not the task's failure).
pub fn classify(task: &StoppedTask, essential: &dyn Fn(&str) -> bool) -> StopClass {
    let reason = task.stopped_reason.as_deref().unwrap_or_default();
    let lower = reason.to_lowercase();
    let code = task.stop_code.as_deref().unwrap_or_default();
    if code == "SpotInterruption" || TRANSIENT_MARKERS.iter().any(|m| lower.contains(m)) {
        return StopClass::Transient;
    }
    if code == "UserInitiated"
        || lower.starts_with("scaling activity initiated by")
        || lower.contains("deployment") && lower.contains("scaling")
    {
        return StopClass::Normal;
    }
    for marker in [
        "CannotPullContainerError",
        "ResourceInitializationError",
        "CannotStartContainerError",
        "CannotCreateContainerError",
        "CannotInspectContainerError",
    ] {
        if reason.contains(marker) {
            return StopClass::Persistent(first_clause(reason));
        }
    }
    if let Some(container) = task
        .containers
        .iter()
        .filter(|c| essential(&c.name))
        .find_map(|c| {
            c.reason
                .as_deref()
                .filter(|r| r.contains("Error"))
                .map(|r| (c, r))
        })
    {
        return StopClass::Persistent(format!(
            "container {}: {}",
            container.0.name,
            first_clause(container.1)
        ));
    }
    if lower.contains("health check") || lower.contains("health checks") {
        return StopClass::Persistent(first_clause(reason));
    }
    if let Some(container) = task
        .containers
        .iter()
        .find(|c| essential(&c.name) && c.exit_code.is_some_and(|code| code != 0))
    {
        return StopClass::Persistent(format!(
            "container {} exited with code {}",
            container.name,
            container.exit_code.unwrap_or_default()
        ));
    }
    if code == "TaskFailedToStart" {
        return StopClass::Persistent(first_clause(reason));
    }
    StopClass::Normal
}

/// The reason's first line, with what differs from task to task taken
/// out: the same for every task of a revision that fails the same way.
/// Fargate's texts carry a request id and the task's id (as the assumed
/// role's session name) besides the image, secret or target group.
fn first_clause(reason: &str) -> String {
    without_ids(reason.lines().next().unwrap_or_default().trim())
}

/// Replaces UUIDs (request ids) and 32-hex-digit ids (task ids) by `…`.
pub fn without_ids(text: &str) -> String {
    let is_id = |run: &str| {
        let hex = |part: &str| part.chars().all(|c| c.is_ascii_hexdigit());
        let uuid = run.len() == 36
            && run.split('-').map(str::len).eq([8usize, 4, 4, 4, 12])
            && run.split('-').all(hex);
        uuid || (run.len() == 32 && hex(run))
    };
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() || c == '-' {
            run.push(c);
            continue;
        }
        if is_id(&run) {
            out.push('…');
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// The evidence that dooms a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub reason: String,
    /// The tasks that stopped for it, oldest first; none when ECS could
    /// not even launch them (then `launches_failed` counts the attempts).
    pub task_ids: Vec<String>,
    pub launches_failed: usize,
    /// When ECS stopped the first and the last of them (milliseconds since
    /// the Unix epoch), when it said.
    pub between: Option<(i64, i64)>,
}

impl Doomed {
    /// One sentence with the evidence: how many tasks, the reason, which
    /// tasks, and when.
    pub fn describe(&self, task_definition: &str) -> String {
        let when = match self.between {
            Some((first, last)) if last - first < 1000 => {
                format!(", at {}", utc_time(first))
            }
            Some((first, last)) => format!(", {} to {}", utc_time(first), utc_time(last)),
            None => String::new(),
        };
        if self.task_ids.is_empty() {
            return format!(
                "{} task launches of {task_definition} failed for the same reason: {}{}",
                self.launches_failed,
                self.reason,
                when.replacen(", ", " (", 1) + if when.is_empty() { "" } else { ")" }
            );
        }
        format!(
            "{} tasks of {task_definition} stopped for the same reason: {} (tasks {}{when})",
            self.task_ids.len(),
            self.reason,
            self.task_ids.join(", ")
        )
    }
}

/// What a service event says when ECS could not launch a task at all
/// (`(service s) failed to launch a task with (error ECS was unable to
/// assume the role ...)`): the error, when it is this revision's fault.
/// Placement and capacity messages are transient.
pub fn launch_failure(message: &str) -> Option<String> {
    const MARKER: &str = "failed to launch a task with (error ";
    let start = message.find(MARKER)? + MARKER.len();
    // `... (error <text>).`: the closing parenthesis and full stop are the
    // event's, the text's own full stop is dropped too.
    let error = message[start..].trim_end();
    let error = error.strip_suffix('.').unwrap_or(error);
    let error = error
        .strip_suffix(')')
        .unwrap_or(error)
        .trim_end_matches('.');
    let lower = error.to_lowercase();
    if TRANSIENT_MARKERS.iter().any(|m| lower.contains(m)) {
        return None;
    }
    Some(without_ids(error.trim()))
}

/// Judges a deployment whose tasks never launch: doomed once ECS counted
/// `threshold` failed tasks and the last launch failure is persistent.
/// `failures` are (time in ms, error) of the launch failures seen.
pub fn judge_launches(
    failed_tasks: usize,
    failures: &[(i64, String)],
    threshold: usize,
) -> Option<Doomed> {
    let (_, last) = failures.last()?;
    if failed_tasks < threshold.max(1) {
        return None;
    }
    let times = failures
        .iter()
        .filter(|(_, error)| error == last)
        .map(|(at, _)| *at);
    Some(Doomed {
        reason: format!("the task could not be launched: {last}"),
        task_ids: Vec::new(),
        launches_failed: failed_tasks,
        between: times.clone().min().zip(times.max()),
    })
}

/// `2026-12-02T06:12:03Z`.
fn utc_time(millis: i64) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(millis).unwrap_or_default());
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Judges the stopped tasks of one deployment: doomed once `threshold` of
/// them stopped for the same persistent reason.
pub fn judge_evidence(
    stopped: &[&StoppedTask],
    threshold: usize,
    essential: &dyn Fn(&str) -> bool,
) -> Option<Doomed> {
    let mut by_reason: BTreeMap<String, Vec<&StoppedTask>> = BTreeMap::new();
    for task in stopped {
        if let StopClass::Persistent(reason) = classify(task, essential) {
            let tasks = by_reason.entry(reason.clone()).or_default();
            tasks.push(task);
            if tasks.len() >= threshold.max(1) {
                let times = tasks.iter().filter_map(|t| t.stopping_at_ms);
                let between = times.clone().min().zip(times.max());
                return Some(Doomed {
                    reason,
                    task_ids: tasks.iter().map(|t| t.task_id.clone()).collect(),
                    launches_failed: 0,
                    between,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::watch::StoppedContainer;

    fn task(id: &str, code: &str, reason: &str, exit: Option<i32>) -> StoppedTask {
        StoppedTask {
            task_id: id.into(),
            task_definition: "arn:aws:ecs:us-east-1:1:task-definition/web:8".into(),
            started_by: Some("ecs-svc/1".into()),
            stop_code: Some(code.into()),
            stopped_reason: Some(reason.into()),
            containers: vec![StoppedContainer {
                name: "app".into(),
                exit_code: exit,
                reason: None,
            }],
            stopping_at_ms: None,
        }
    }

    fn all_essential(_: &str) -> bool {
        true
    }

    #[test]
    fn tasks_ecs_cannot_launch_doom_a_rollout_on_its_failed_count() {
        let event = "(service web) failed to launch a task with (error ECS was unable to assume the role 'arn:aws:iam::1:role/exec' that was provided for this task. Please verify that the role being passed has the proper trust relationship and permissions and that your IAM user has permissions to pass this role.).";
        let error = launch_failure(event).expect("a launch failure");
        assert!(
            error.starts_with("ECS was unable to assume the role 'arn:aws:iam::1:role/exec'"),
            "{error}"
        );
        assert!(error.ends_with("to pass this role"), "{error}");
        assert_eq!(
            launch_failure(
                "(service web) was unable to place a task because no container instance met all of its requirements."
            ),
            None,
            "not a launch failure event"
        );
        assert_eq!(
            launch_failure(
                "(service web) failed to launch a task with (error Capacity is unavailable at this time.)."
            ),
            None,
            "transient"
        );
        let failures = vec![(1_000, error.clone()), (2_000, error.clone())];
        assert_eq!(judge_launches(2, &failures, 3), None, "not yet");
        let doomed = judge_launches(5, &failures, 3).expect("doomed");
        assert_eq!(doomed.launches_failed, 5);
        assert_eq!(
            doomed.describe("web:3"),
            format!(
                "5 task launches of web:3 failed for the same reason: the task could not be launched: {error} (1970-01-01T00:00:01Z to 1970-01-01T00:00:02Z)"
            )
        );
        assert_eq!(judge_launches(5, &[], 3), None, "no launch failure seen");
    }

    #[test]
    fn request_and_task_ids_do_not_make_reasons_differ() {
        let reason = |request: &str, task: &str| {
            format!(
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secrets from ssm: service call has been retried 1 time(s): operation error SSM: GetParameters, https response error StatusCode: 400, RequestID: {request}, api error AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/exec/{task} is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:123456789012:parameter/db"
            )
        };
        let a = task(
            "a",
            "TaskFailedToStart",
            &reason(
                "d4072815-3cdd-4237-be11-2a5039551000",
                "02681675a793415bb441b75c402b1400",
            ),
            None,
        );
        let b = task(
            "b",
            "TaskFailedToStart",
            &reason(
                "967f60d4-3957-4d13-a261-c8e0662e08ce",
                "19728cf4c9b24b708ed13a53a79326b2",
            ),
            None,
        );
        let doomed = judge_evidence(&[&a, &b], 2, &all_essential).expect("doomed");
        assert!(
            doomed.reason.contains("RequestID: …, ")
                && doomed.reason.contains("assumed-role/exec/… is"),
            "{}",
            doomed.reason
        );
        assert!(
            doomed.reason.contains("parameter/db"),
            "the secret stays named"
        );
        assert_eq!(without_ids("web:12 deadbeef"), "web:12 deadbeef");
    }

    #[test]
    fn each_reason_is_classified() {
        let cases = [
            (
                task("a", "TaskFailedToStart", "CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref repo:v9: not found", None),
                StopClass::Persistent("CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref repo:v9: not found".into()),
            ),
            (
                task("b", "TaskFailedToStart", "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm", None),
                StopClass::Persistent("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm".into()),
            ),
            (
                task("c", "EssentialContainerExited", "Essential container in task exited", Some(1)),
                StopClass::Persistent("container app exited with code 1".into()),
            ),
            (
                task("d", "ServiceSchedulerInitiated", "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/abc)", Some(137)),
                StopClass::Persistent("Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/abc)".into()),
            ),
            (
                task("e", "TaskFailedToStart", "Capacity is unavailable at this time. Please try again later or in a different availability zone", None),
                StopClass::Transient,
            ),
            (
                task("f", "SpotInterruption", "Your Spot Task was interrupted.", Some(143)),
                StopClass::Transient,
            ),
            (
                task("g", "ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/123)", Some(0)),
                StopClass::Normal,
            ),
            (
                task("h", "UserInitiated", "stopped by the operator", Some(143)),
                StopClass::Normal,
            ),
            (
                task("i", "EssentialContainerExited", "Essential container in task exited", Some(0)),
                StopClass::Normal,
            ),
        ];
        for (task, expected) in cases {
            assert_eq!(classify(&task, &all_essential), expected, "{task:?}");
        }
    }

    #[test]
    fn the_threshold_of_the_same_persistent_reason_dooms_the_rollout() {
        let crash = |id| {
            task(
                id,
                "EssentialContainerExited",
                "Essential container in task exited",
                Some(1),
            )
        };
        let other = task(
            "x",
            "EssentialContainerExited",
            "Essential container in task exited",
            Some(2),
        );
        let transient = task(
            "t",
            "TaskFailedToStart",
            "Capacity is unavailable at this time.",
            None,
        );
        let (mut a, mut b, mut c) = (crash("a"), crash("b"), crash("c"));
        // 2026-12-02T06:12:03Z, then 4 s and 9 s later.
        for (task, at) in [(&mut a, 0), (&mut b, 4_000), (&mut c, 9_000)] {
            task.stopping_at_ms = Some(1_796_191_923_000 + at);
        }
        assert_eq!(
            judge_evidence(&[&a, &other, &b, &transient], 3, &all_essential),
            None
        );
        let doomed = judge_evidence(&[&a, &other, &b, &transient, &c], 3, &all_essential);
        assert_eq!(
            doomed,
            Some(Doomed {
                reason: "container app exited with code 1".into(),
                task_ids: vec!["a".into(), "b".into(), "c".into()],
                launches_failed: 0,
                between: Some((1_796_191_923_000, 1_796_191_932_000)),
            })
        );
        assert_eq!(
            doomed.map(|d| d.describe("web:8")).unwrap_or_default(),
            "3 tasks of web:8 stopped for the same reason: container app exited with code 1 (tasks a, b, c, 2026-12-02T06:12:03Z to 2026-12-02T06:12:12Z)"
        );
        // Transient failures never doom a rollout, however many.
        let many: Vec<StoppedTask> = (0..10)
            .map(|i| {
                task(
                    &format!("t{i}"),
                    "TaskFailedToStart",
                    "Capacity is unavailable at this time.",
                    None,
                )
            })
            .collect();
        let refs: Vec<&StoppedTask> = many.iter().collect();
        assert_eq!(judge_evidence(&refs, 3, &all_essential), None);
    }

    #[test]
    fn a_non_essential_container_exiting_is_not_the_tasks_failure() {
        let sidecar_only = |name: &str| name != "log-router";
        let mut exited = task(
            "a",
            "EssentialContainerExited",
            "Essential container in task exited",
            Some(0),
        );
        exited.containers.push(StoppedContainer {
            name: "log-router".into(),
            exit_code: Some(1),
            reason: None,
        });
        assert_eq!(classify(&exited, &sidecar_only), StopClass::Normal);
    }
}
