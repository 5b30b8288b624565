//! GitHub Actions workflow commands (`::error::`, `::group::`, ...), built so
//! that text we did not write — stack events from AWS, values from an event
//! payload — can never be mistaken by the runner for a command of its own.
//!
//! The runner scans every line a step prints. A line is a command when, after
//! trimming leading whitespace, it starts with `::`; the runner's legacy
//! parser also acts on `##[` anywhere in a line. An attacker who controls a
//! resource name or a status reason could otherwise print `::add-mask::`,
//! `::stop-commands::` or (on old runners) `::set-env::` through our log.

use std::fmt;

/// Zero-width space: invisible in the log viewer, yet it splits `::` and `##[`
/// so the runner's parsers no longer recognise them.
const ZERO_WIDTH_SPACE: char = '\u{200B}';

/// Closes the group opened by [`group_start`].
pub const GROUP_END: &str = "::endgroup::";

/// Escapes a command's message (the part after the final `::`) exactly like
/// `@actions/core`'s `escapeData`, so the runner's unescaping restores it.
pub fn escape_data(data: &str) -> String {
    // `%` first: escaping it after the others would double-escape them.
    data.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a command property value (`file=`, `title=`, ...) exactly like
/// `@actions/core`'s `escapeProperty`: on top of [`escape_data`], `:` and `,`
/// are escaped because they delimit the property list.
pub fn escape_property(property: &str) -> String {
    escape_data(property)
        .replace(':', "%3A")
        .replace(',', "%2C")
}

/// Makes untrusted text safe to print as (part of) a single log line.
///
/// Line breaks become the two visible characters `\n` so the text cannot
/// start a new line (and therefore a new command); tabs are kept because they
/// are harmless and keep tables readable. A `::` at the start of the line
/// (after leading whitespace, which the runner trims) and every `##[` get a
/// zero-width space inserted. `%` is left alone: plain log lines are never
/// percent-decoded, only command data is (use [`escape_data`] there).
pub fn inert_line(untrusted: &str) -> String {
    // `\r\n` first so a Windows line break becomes one visible `\n`, not two.
    let single_line = untrusted
        .replace("\r\n", "\\n")
        .replace(['\n', '\r'], "\\n");
    let legacy_safe = single_line.replace("##[", "#\u{200B}#[");

    // `trim_start` uses Unicode White_Space, matching the runner's .NET
    // `TrimStart()`; U+200B is not whitespace in either, so the break holds.
    let body = legacy_safe.trim_start();
    let indent = &legacy_safe[..legacy_safe.len() - body.len()];
    match body.strip_prefix("::") {
        Some(rest) => format!("{indent}:{ZERO_WIDTH_SPACE}:{rest}"),
        None => legacy_safe,
    }
}

/// Opens a collapsible log group whose title is untrusted text.
pub fn group_start(title: &str) -> String {
    // The title is command data: `escape_data` keeps a literal `%0A` in it
    // from being decoded into a line break by the runner.
    format!("::group::{}", escape_data(&inert_line(title)))
}

/// Severity of an [`Annotation`]; picks the workflow command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationLevel {
    Error,
    Warning,
    Notice,
}

impl AnnotationLevel {
    fn command_name(self) -> &'static str {
        match self {
            AnnotationLevel::Error => "error",
            AnnotationLevel::Warning => "warning",
            AnnotationLevel::Notice => "notice",
        }
    }
}

/// An annotation shown on the workflow run (and on the file, when given).
/// `Display` renders the workflow command, escaped and ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub level: AnnotationLevel,
    pub title: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub message: String,
}

impl fmt::Display for Annotation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut properties = Vec::new();
        if let Some(file) = &self.file {
            properties.push(format!("file={}", escape_property(file)));
        }
        if let Some(line) = self.line {
            properties.push(format!("line={line}"));
        }
        if let Some(title) = &self.title {
            properties.push(format!("title={}", escape_property(title)));
        }
        write!(formatter, "::{}", self.level.command_name())?;
        if !properties.is_empty() {
            write!(formatter, " {}", properties.join(","))?;
        }
        write!(formatter, "::{}", escape_data(&self.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True when the GitHub runner would treat `line` as a workflow command,
    /// under either its current (`::` after leading whitespace) or its legacy
    /// (`##[` anywhere) parser.
    fn runner_sees_command(line: &str) -> bool {
        line.trim_start().starts_with("::") || line.contains("##[")
    }

    #[test]
    fn escape_data_matches_actions_core() {
        let cases = [
            ("plain", "plain"),
            ("100%", "100%25"),
            ("a\nb", "a%0Ab"),
            ("a\r\nb", "a%0D%0Ab"),
            ("%0A", "%250A"),
            ("a:b,c", "a:b,c"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_data(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn escape_property_matches_actions_core() {
        let cases = [
            ("plain", "plain"),
            ("a:b", "a%3Ab"),
            ("a,b", "a%2Cb"),
            ("50%\n:,", "50%25%0A%3A%2C"),
            ("templates/app.yaml", "templates/app.yaml"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_property(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn annotation_renders_workflow_command() {
        let cases = [
            (
                Annotation {
                    level: AnnotationLevel::Error,
                    title: Some("Stack failed".to_owned()),
                    file: Some("infra/stack.yaml".to_owned()),
                    line: Some(12),
                    message: "Resource Bucket failed".to_owned(),
                },
                "::error file=infra/stack.yaml,line=12,title=Stack failed::Resource Bucket failed",
            ),
            (
                Annotation {
                    level: AnnotationLevel::Warning,
                    title: None,
                    file: None,
                    line: None,
                    message: "drift".to_owned(),
                },
                "::warning::drift",
            ),
            (
                Annotation {
                    level: AnnotationLevel::Notice,
                    title: Some("a,b: c".to_owned()),
                    file: None,
                    line: None,
                    message: "line1\n::add-mask::x 100%".to_owned(),
                },
                "::notice title=a%2Cb%3A c::line1%0A::add-mask::x 100%25",
            ),
            (
                Annotation {
                    level: AnnotationLevel::Error,
                    title: None,
                    file: None,
                    line: Some(3),
                    message: String::new(),
                },
                "::error line=3::",
            ),
        ];
        for (annotation, expected) in cases {
            let rendered = annotation.to_string();
            assert_eq!(rendered, expected);
            assert!(
                !rendered.contains('\n'),
                "annotation spans lines: {rendered:?}"
            );
        }
    }

    #[test]
    fn inert_line_defuses_hostile_input() {
        let cases = [
            ("::set-env name=X::1", ":\u{200B}:set-env name=X::1"),
            ("x\n::add-mask::secret", "x\\n::add-mask::secret"),
            ("%0A::error::x", "%0A::error::x"),
            ("  ::warning::y", "  :\u{200B}:warning::y"),
            ("\t::debug::z", "\t:\u{200B}:debug::z"),
            ("##[set-output name=a;]b", "#\u{200B}#[set-output name=a;]b"),
            (
                "ok ##[error]x ##[warning]y",
                "ok #\u{200B}#[error]x #\u{200B}#[warning]y",
            ),
            ("####[[", "###\u{200B}#[["),
            ("a\r\nb\rc\nd", "a\\nb\\nc\\nd"),
            (":::", ":\u{200B}::"),
            ("col1\tcol2", "col1\tcol2"),
            ("Resource creation cancelled", "Resource creation cancelled"),
            ("", ""),
        ];
        for (input, expected) in cases {
            let inert = inert_line(input);
            assert_eq!(inert, expected, "input {input:?}");
            assert!(
                !inert.contains(['\n', '\r']),
                "line break survived: {inert:?}"
            );
            assert!(!runner_sees_command(&inert), "still a command: {inert:?}");
        }
    }

    #[test]
    fn group_start_is_one_inert_command() {
        let cases = [
            ("Deploy my-stack", "::group::Deploy my-stack"),
            ("a\n::add-mask::b", "::group::a\\n::add-mask::b"),
            ("50% %0A", "::group::50%25 %250A"),
            ("##[x]", "::group::#\u{200B}#[x]"),
        ];
        for (title, expected) in cases {
            let line = group_start(title);
            assert_eq!(line, expected, "title {title:?}");
            assert!(!line.contains('\n'));
        }
        assert_eq!(GROUP_END, "::endgroup::");
    }
}
