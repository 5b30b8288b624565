//! Writes step outputs to `$GITHUB_OUTPUT` and the job summary to
//! `$GITHUB_STEP_SUMMARY`, the runner's file commands.
//!
//! Outputs use the same heredoc format as `@actions/core`
//! (`name<<DELIM\nvalue\nDELIM\n`) with a random delimiter, so values from
//! AWS cannot end a heredoc early and smuggle in outputs of their own.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The runner refuses a step summary larger than this (1 MiB per step).
pub const MAX_STEP_SUMMARY_BYTES: usize = 1024 * 1024;

/// Appended after a summary cut to fit [`MAX_STEP_SUMMARY_BYTES`]. The blank
/// line first ends any Markdown table the cut happened inside, so the notice
/// is not rendered as one more table row.
const SUMMARY_TRUNCATED_NOTICE: &str = "\n\n> **Note:** this summary was truncated to fit GitHub's 1 MiB step summary limit; see the step log for the full details.\n";

/// Why outputs or the summary could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("GITHUB_OUTPUT: an output has an empty name; give every output a name")]
    EmptyName,

    #[error(
        "GITHUB_OUTPUT: output name {name:?} contains a line break, `<<` or `=`, which the runner would read as part of the file format; use letters, digits, `-` and `_` only"
    )]
    InvalidName { name: String },

    #[error(
        "GITHUB_OUTPUT: output `{name}` contains the heredoc delimiter `{delimiter}`; this cannot happen with a random delimiter unless the value was crafted, so the outputs were not written"
    )]
    ContainsDelimiter { name: String, delimiter: String },

    #[error(
        "{variable}: cannot append to `{path}`: {source}; run on a GitHub Actions runner, or point {variable} at an existing writable file"
    )]
    Write {
        variable: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "GITHUB_STEP_SUMMARY: `{path}` already holds {existing_bytes} bytes, leaving no room under GitHub's 1 MiB step summary limit; the summary was not written, see the step log instead"
    )]
    SummaryFull { path: PathBuf, existing_bytes: u64 },
}

/// Encodes outputs in the runner's heredoc format with the given delimiter.
///
/// Every name and value is checked before anything is returned, so a bad
/// output never yields a partially usable file. A value that ends in `\r`
/// loses that `\r`, because the runner reads the following `\n` as a CRLF line
/// break (the same happens with `@actions/core`).
pub fn encode_outputs(
    outputs: &[(String, String)],
    delimiter: &str,
) -> Result<String, OutputError> {
    let mut encoded = String::new();
    for (name, value) in outputs {
        if name.is_empty() {
            return Err(OutputError::EmptyName);
        }
        // The runner picks the heredoc form only when `<<` comes before any
        // `=`, so a name with `=` would be read as `name=value` and the value
        // lines as outputs of their own.
        if name.contains(['\n', '\r', '=']) || name.contains("<<") {
            return Err(OutputError::InvalidName { name: name.clone() });
        }
        if name.contains(delimiter) || value.contains(delimiter) {
            return Err(OutputError::ContainsDelimiter {
                name: name.clone(),
                delimiter: delimiter.to_owned(),
            });
        }
        encoded.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    Ok(encoded)
}

/// A fresh delimiter like `@actions/core`'s `ghadelimiter_<uuid v4>`.
fn random_delimiter() -> String {
    // Set the UUID version (4) and variant (10xx) bits so the text looks
    // exactly like what `@actions/core` produces; 122 bits stay random.
    let bits = (rand::random::<u128>() & !(0xF << 76) & !(0b11 << 62)) | (0x4 << 76) | (0b10 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "ghadelimiter_{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Appends `bytes` to an existing file in a single write. The file is not
/// created: the runner creates it, and a missing file means we are not where
/// we think we are.
fn append_once(variable: &'static str, path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let to_error = |source| OutputError::Write {
        variable,
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(to_error)?;
    file.write_all(bytes).map_err(to_error)
}

/// Appends all outputs to the `$GITHUB_OUTPUT` file at `path`.
///
/// Everything is encoded first and written with one `write_all`, so a bad
/// name or value leaves the file untouched rather than half written.
pub fn append_outputs(path: &Path, outputs: &[(String, String)]) -> Result<(), OutputError> {
    let encoded = encode_outputs(outputs, &random_delimiter())?;
    if encoded.is_empty() {
        return Ok(());
    }
    append_once("GITHUB_OUTPUT", path, encoded.as_bytes())
}

/// Fits `markdown` into `budget` bytes. When it is too long, it is cut at the
/// last line break that leaves room for the truncation notice (or at a char
/// boundary when a single line is that long) and the notice is appended.
/// Returns `None` when not even the notice fits.
fn fit_summary(markdown: &str, budget: usize) -> Option<String> {
    if markdown.len() <= budget {
        return Some(markdown.to_owned());
    }
    let room = budget.checked_sub(SUMMARY_TRUNCATED_NOTICE.len())?;
    let mut cut = room;
    while !markdown.is_char_boundary(cut) {
        cut -= 1;
    }
    // Prefer whole lines so a table row or link is not left half written.
    if let Some(line_end) = markdown[..cut].rfind('\n') {
        cut = line_end + 1;
    }
    Some(format!("{}{}", &markdown[..cut], SUMMARY_TRUNCATED_NOTICE))
}

/// Appends Markdown to the `$GITHUB_STEP_SUMMARY` file at `path`, truncating
/// it so the file stays within the runner's per-step limit.
pub fn append_summary(path: &Path, markdown: &str) -> Result<(), OutputError> {
    let existing_bytes = std::fs::metadata(path)
        .map_err(|source| OutputError::Write {
            variable: "GITHUB_STEP_SUMMARY",
            path: path.to_owned(),
            source,
        })?
        .len();
    // The limit applies to the whole file, including what earlier writes in
    // this step put there.
    let budget = usize::try_from(existing_bytes)
        .ok()
        .and_then(|existing| MAX_STEP_SUMMARY_BYTES.checked_sub(existing))
        .unwrap_or(0);
    let fitted = fit_summary(markdown, budget).ok_or_else(|| OutputError::SummaryFull {
        path: path.to_owned(),
        existing_bytes,
    })?;
    append_once("GITHUB_STEP_SUMMARY", path, fitted.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a `$GITHUB_OUTPUT` file the way the runner's
    /// `EnvFileKeyValuePairs` does: lines end at `\n` (a `\r` right before it
    /// is part of the line break); `NAME=VALUE` when `=` comes before any
    /// `<<`, otherwise `NAME<<DELIM` followed by the value up to a line that
    /// is exactly `DELIM`.
    fn parse_like_runner(text: &str) -> Result<Vec<(String, String)>, String> {
        /// Returns (line, byte length of its line break or 0 at end of text,
        /// index after the line break).
        fn read_line(text: &str, start: usize) -> Option<(&str, usize, usize)> {
            if start >= text.len() {
                return None;
            }
            match text[start..].find('\n') {
                None => Some((&text[start..], 0, text.len())),
                Some(offset) => {
                    let lf = start + offset;
                    let crlf = lf > start && text.as_bytes()[lf - 1] == b'\r';
                    let line_end = if crlf { lf - 1 } else { lf };
                    Some((&text[start..line_end], lf + 1 - line_end, lf + 1))
                }
            }
        }

        let mut outputs = Vec::new();
        let mut index = 0;
        while let Some((line, _, next)) = read_line(text, index) {
            index = next;
            if line.is_empty() {
                continue;
            }
            let equals = line.find('=');
            let heredoc = line.find("<<");
            match (equals, heredoc) {
                (Some(eq), h) if h.is_none_or(|h| eq < h) => {
                    if eq == 0 {
                        return Err(format!("empty name in {line:?}"));
                    }
                    outputs.push((line[..eq].to_owned(), line[eq + 1..].to_owned()));
                }
                (_, Some(h)) => {
                    let (name, delimiter) = (&line[..h], &line[h + 2..]);
                    if name.is_empty() || delimiter.is_empty() {
                        return Err(format!("invalid heredoc line {line:?}"));
                    }
                    let value_start = index;
                    let mut value_end = index;
                    loop {
                        let Some((candidate, newline_len, after)) = read_line(text, index) else {
                            return Err(format!("delimiter {delimiter:?} not found"));
                        };
                        index = after;
                        if candidate == delimiter {
                            break;
                        }
                        if newline_len == 0 {
                            return Err("EOF marker missing new line".to_owned());
                        }
                        value_end = index - newline_len;
                    }
                    let value = if value_end > value_start {
                        &text[value_start..value_end]
                    } else {
                        ""
                    };
                    outputs.push((name.to_owned(), value.to_owned()));
                }
                _ => return Err(format!("invalid format {line:?}")),
            }
        }
        Ok(outputs)
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn runner_parser_reads_both_forms() {
        let text = "a=1\nb<<EOF\nx\ny\nEOF\n\nc=\n";
        assert_eq!(
            parse_like_runner(text),
            Ok(pairs(&[("a", "1"), ("b", "x\ny"), ("c", "")]))
        );
        assert!(parse_like_runner("b<<EOF\nx\n").is_err());
    }

    #[test]
    fn encode_outputs_uses_heredoc_format() {
        let encoded = encode_outputs(&pairs(&[("stack-id", "arn:1"), ("empty", "")]), "D");
        assert_eq!(
            encoded.ok().as_deref(),
            Some("stack-id<<D\narn:1\nD\nempty<<D\n\nD\n")
        );
    }

    #[test]
    fn hostile_values_round_trip_through_the_runner_parser() {
        let hostile = pairs(&[
            ("multi-line", "line 1\nline 2\n\nline 4\n"),
            ("heredoc-looking", "x<<EOF\ny"),
            ("eof", "EOF"),
            ("eof-lines", "EOF\nEOF\n"),
            ("fake-delimiter", "ghadelimiter_x\nghadelimiter_"),
            ("injection", "v\nghadelimiter_0000\nevil=1"),
            ("empty", ""),
            ("unicode", "déploiement ✅ 部署 \u{200B}"),
            ("crlf-inside", "a\r\nb"),
            ("equals", "a=b=c"),
        ]);
        let delimiter = random_delimiter();
        let encoded = encode_outputs(&hostile, &delimiter);
        let parsed = encoded
            .map_err(|error| error.to_string())
            .and_then(|text| parse_like_runner(&text));
        assert_eq!(parsed, Ok(hostile));
    }

    #[test]
    fn trailing_carriage_return_is_dropped_like_the_runner_does() {
        let encoded = encode_outputs(&pairs(&[("cr", "a\r")]), "D");
        let parsed = encoded
            .map_err(|error| error.to_string())
            .and_then(|text| parse_like_runner(&text));
        assert_eq!(parsed, Ok(pairs(&[("cr", "a")])));
    }

    #[test]
    fn encode_outputs_rejects_bad_names_and_delimiter_collisions() {
        let cases: [(&str, &str, &str); 7] = [
            ("", "v", "empty name"),
            ("a\nb", "v", "line break"),
            ("a\rb", "v", "line break"),
            ("a<<b", "v", "`<<`"),
            ("a=b", "v", "`=`"),
            ("ok", "x\nD\ny", "heredoc delimiter `D`"),
            ("D", "v", "heredoc delimiter `D`"),
        ];
        for (name, value, expected_fragment) in cases {
            let result = encode_outputs(&pairs(&[("first", "fine"), (name, value)]), "D");
            let message = result
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(
                message.contains(expected_fragment),
                "{name:?}={value:?}: {message}"
            );
            assert!(message.starts_with("GITHUB_OUTPUT:"), "{message}");
        }
    }

    #[test]
    fn random_delimiter_looks_like_actions_core() {
        let first = random_delimiter();
        let second = random_delimiter();
        assert_ne!(first, second);
        for delimiter in [first, second] {
            let uuid = delimiter.strip_prefix("ghadelimiter_").unwrap_or_default();
            let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{delimiter}");
            assert_eq!(uuid.as_bytes()[14], b'4', "version nibble in {delimiter}");
            assert!(
                matches!(uuid.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
                "{delimiter}"
            );
        }
    }

    #[test]
    fn append_outputs_appends_everything_or_nothing() -> anyhow::Result<()> {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), "earlier=1\n")?;

        append_outputs(file.path(), &pairs(&[("a", "x\ny"), ("b", "")]))?;
        append_outputs(file.path(), &pairs(&[("c", "3")]))?;
        let before_failure = std::fs::read_to_string(file.path())?;

        // Second output is invalid: the first must not be written either.
        let failed = append_outputs(file.path(), &pairs(&[("d", "4"), ("", "5")]));
        assert!(matches!(failed, Err(OutputError::EmptyName)));

        let written = std::fs::read_to_string(file.path())?;
        assert_eq!(written, before_failure);
        assert_eq!(
            parse_like_runner(&written),
            Ok(pairs(&[
                ("earlier", "1"),
                ("a", "x\ny"),
                ("b", ""),
                ("c", "3")
            ]))
        );
        Ok(())
    }

    #[test]
    fn missing_files_are_reported_with_variable_and_path() -> anyhow::Result<()> {
        let directory = tempfile::tempdir()?;
        let missing = directory.path().join("missing");
        let cases = [
            (
                append_outputs(&missing, &pairs(&[("a", "1")])),
                "GITHUB_OUTPUT: cannot append to",
            ),
            (
                append_summary(&missing, "# hi"),
                "GITHUB_STEP_SUMMARY: cannot append to",
            ),
        ];
        for (result, prefix) in cases {
            let message = result
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(message.starts_with(prefix), "{message}");
            assert!(
                message.contains(&missing.display().to_string()),
                "{message}"
            );
        }
        assert!(!missing.exists(), "the file must not be created");
        Ok(())
    }

    #[test]
    fn fit_summary_truncates_on_line_or_char_boundaries() {
        let notice_len = SUMMARY_TRUNCATED_NOTICE.len();
        let short = "# Deployed\n";
        let lines = "row 1\nrow 2\nrow 3\n".repeat(20);
        // 2 bytes per char and no line breaks: cuts must land between chars.
        let wide = "é".repeat(200);
        let cases: [(&str, usize, Option<String>); 5] = [
            (short, 100, Some(short.to_owned())),
            (short, short.len(), Some(short.to_owned())),
            (
                &lines,
                notice_len + 13,
                Some(format!("row 1\nrow 2\n{SUMMARY_TRUNCATED_NOTICE}")),
            ),
            (
                &wide,
                notice_len + 5,
                Some(format!("éé{SUMMARY_TRUNCATED_NOTICE}")),
            ),
            (&lines, notice_len - 1, None),
        ];
        for (markdown, budget, expected) in cases {
            let fitted = fit_summary(markdown, budget);
            assert_eq!(fitted, expected, "budget {budget}");
            if let Some(text) = fitted {
                assert!(text.len() <= budget);
            }
        }
    }

    #[test]
    fn append_summary_keeps_the_file_under_the_limit() -> anyhow::Result<()> {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), "# Earlier step output\n")?;
        let huge = "| a | b |\n".repeat(MAX_STEP_SUMMARY_BYTES / 10 + 10);

        append_summary(file.path(), &huge)?;
        let written = std::fs::read_to_string(file.path())?;
        assert!(
            written.len() <= MAX_STEP_SUMMARY_BYTES,
            "{} bytes",
            written.len()
        );
        assert!(written.starts_with("# Earlier step output\n| a | b |\n"));
        assert!(written.ends_with(SUMMARY_TRUNCATED_NOTICE));

        // The file is now full: a further summary is refused, not appended.
        let full = append_summary(file.path(), &huge);
        assert!(matches!(full, Err(OutputError::SummaryFull { .. })));
        assert_eq!(std::fs::read_to_string(file.path())?, written);
        Ok(())
    }
}
