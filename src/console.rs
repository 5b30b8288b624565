//! Progress and diagnostics as plain, append-only lines.
//!
//! On a runner, phases become `::group::` blocks and problems become
//! `::error::`/`::warning::` annotations; in a terminal the same lines are
//! printed without workflow commands. Every line carries the time since the
//! job started, so a slow phase is visible in the log itself. Text that came
//! from AWS or the event payload is passed through [`inert_line`] so the
//! runner can never read it as a workflow command.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::github::commands::{
    Annotation, AnnotationLevel, GROUP_END, escape_data, group_start, inert_line,
};

/// Where the log's lines go: the process's standard output (the runner
/// reads it), or a buffer (a job run in-process by the tests, which assert on
/// the log exactly as the runner would show it).
#[derive(Debug, Clone, Default)]
pub enum LogTarget {
    #[default]
    Stdout,
    /// The log beside a result written to stdout (`package` without an
    /// output file).
    Stderr,
    Buffer(LogBuffer),
}

/// A shared, growing copy of a log.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer(Arc<Mutex<String>>);

impl LogBuffer {
    /// Everything written so far.
    pub fn contents(&self) -> String {
        self.0.lock().map(|log| log.clone()).unwrap_or_default()
    }

    fn push_line(&self, line: &str) {
        if let Ok(mut log) = self.0.lock() {
            log.push_str(line);
            log.push('\n');
        }
    }
}

/// Where progress goes, and what problems have been reported so far.
pub struct Console {
    started: Instant,
    github_actions: bool,
    target: LogTarget,
    /// `[stack] ` before each line: one stack of a system, whose lines
    /// interleave with the others' (so no runner groups either).
    prefix: Option<String>,
    /// What has been warned about once already (the calls made only to
    /// explain that have failed, throttling), so a failing call repeated
    /// every poll warns once.
    warned_once: Mutex<HashSet<String>>,
}

/// An open phase: a `::group::` on a runner, closed when this is dropped, so
/// every path out of a phase (an error, `?`, a cancellation dropping the
/// future) closes it exactly once.
#[must_use = "the phase ends when this is dropped"]
pub struct Phase<'a> {
    console: &'a Console,
}

impl Drop for Phase<'_> {
    fn drop(&mut self) {
        if self.console.groups() {
            self.console.emit(GROUP_END);
        }
    }
}

impl Console {
    pub fn new(github_actions: bool) -> Self {
        Self::to(github_actions, LogTarget::Stdout)
    }

    /// A console writing to `target`.
    pub fn to(github_actions: bool, target: LogTarget) -> Self {
        Self {
            started: Instant::now(),
            github_actions,
            target,
            prefix: None,
            warned_once: Mutex::new(HashSet::new()),
        }
    }

    /// A console for one stack of a system: the same target and clock,
    /// each line prefixed with `[key]`, phases as plain lines (runner
    /// groups cannot interleave).
    pub fn for_stack(&self, key: &str) -> Self {
        Self {
            started: self.started,
            github_actions: self.github_actions,
            target: self.target.clone(),
            prefix: Some(format!("[{key}] ")),
            warned_once: Mutex::new(HashSet::new()),
        }
    }

    /// Whether phases are runner groups.
    fn groups(&self) -> bool {
        self.github_actions && self.prefix.is_none()
    }

    /// Time since the job started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn emit(&self, line: &str) {
        let prefixed;
        let line = match &self.prefix {
            // Workflow commands must start the line: the prefix goes into
            // their message instead.
            Some(prefix) if line.starts_with("::") => {
                prefixed = match line[2..].find("::") {
                    Some(end) => format!("{}{prefix}{}", &line[..end + 4], &line[end + 4..]),
                    None => line.to_string(),
                };
                prefixed.as_str()
            }
            Some(prefix) => {
                prefixed = format!("{prefix}{line}");
                prefixed.as_str()
            }
            None => line,
        };
        self.write(line);
    }

    /// Writes one line to the target as it is.
    fn write(&self, line: &str) {
        match &self.target {
            LogTarget::Stdout => {
                // One locked write per line so concurrent printers never
                // interleave within a line; errors writing to stdout have
                // nowhere to go.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            LogTarget::Stderr => {
                let mut out = std::io::stderr().lock();
                let _ = writeln!(out, "{line}");
            }
            LogTarget::Buffer(buffer) => buffer.push_line(line),
        }
    }

    /// Starts a phase, which lasts until the returned guard is dropped. On a
    /// runner this opens a collapsible group. Groups do not nest on the
    /// runner, so a phase is never opened inside another.
    pub fn phase(&self, title: &str) -> Phase<'_> {
        if self.groups() {
            self.emit(&group_start(title));
        } else {
            self.emit(&format!("==> {}", inert_line(title)));
        }
        Phase { console: self }
    }

    /// A call made only to explain (events to print, stopped tasks, target
    /// health, ...) failed: one warning naming the call, the first time it
    /// fails, and never a change of verdict.
    pub fn explain_failed(&self, call: &str, error: &anyhow::Error) {
        self.warning_once(call, &format!(
            "{call} failed: {error:#}; it is called only to explain what happens, so the deploy carries on and its verdict is unchanged (later failures of {call} are not repeated)"
        ));
    }

    /// A warning given only the first time something identified by `key`
    /// happens in this job.
    pub fn warning_once(&self, key: &str, message: &str) {
        let first = self
            .warned_once
            .lock()
            .map(|mut seen| seen.insert(key.to_string()))
            .unwrap_or(true);
        if first {
            self.warning(message);
        }
    }

    /// A progress line. `text` may contain untrusted text: it is made inert.
    pub fn line(&self, text: &str) {
        self.emit(&format!(
            "[{:>7.1}s] {}",
            self.elapsed().as_secs_f64(),
            inert_line(text)
        ));
    }

    /// A warning: an annotation on a runner, a prefixed line elsewhere.
    pub fn warning(&self, message: &str) {
        self.annotate(AnnotationLevel::Warning, message);
    }

    /// An error: an annotation on a runner, a prefixed line elsewhere.
    pub fn error(&self, message: &str) {
        self.annotate(AnnotationLevel::Error, message);
    }

    /// An annotation on a file and line (workflow lint findings). Paths are
    /// shown relative to the workspace when they lie inside it.
    pub fn annotate_file(
        &self,
        level: AnnotationLevel,
        file: &str,
        line: Option<u32>,
        message: &str,
    ) {
        if self.github_actions {
            let annotation = Annotation {
                level,
                title: None,
                file: Some(file.to_string()),
                line,
                message: message.replace("##[", "#\u{200B}#["),
            };
            self.emit(&annotation.to_string());
        } else {
            let place = match line {
                Some(line) => format!("{file}:{line}"),
                None => file.to_string(),
            };
            self.emit(&format!("{place}: {}", inert_line(message)));
        }
    }

    fn annotate(&self, level: AnnotationLevel, message: &str) {
        if self.github_actions {
            // The message is escaped into one command by `Annotation`; the
            // legacy `##[` syntax is broken up too, in case a runner ever
            // scans command data for it.
            let annotation = Annotation {
                level,
                title: None,
                file: None,
                line: None,
                message: message.replace("##[", "#\u{200B}#["),
            };
            self.emit(&annotation.to_string());
        } else {
            let label = match level {
                AnnotationLevel::Error => "error",
                AnnotationLevel::Warning => "warning",
                AnnotationLevel::Notice => "notice",
            };
            self.emit(&format!("{label}: {}", inert_line(message)));
        }
    }

    /// A notice: something worth knowing that is not a problem.
    pub fn notice(&self, message: &str) {
        self.annotate(AnnotationLevel::Notice, message);
    }

    /// Asks the runner to mask `secret` in all later log lines. Outside a
    /// runner there is nothing to ask; the value is still never printed.
    pub fn mask(&self, secret: &str) {
        if self.github_actions {
            // Unprefixed: the prefix would become part of the masked value.
            self.write(&format!("::add-mask::{}", escape_data(secret)));
        }
    }

    /// Plain text with no prefix (final recaps, the outputs listing).
    pub fn plain(&self, text: &str) {
        self.emit(&inert_line(text));
    }
}
