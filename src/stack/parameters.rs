//! The `parameter-overrides` input (inline `Key=Value` items or a JSON/YAML
//! file) and the plan of parameters sent to CloudFormation for a change set.
//!
//! Inline syntax, chosen to accept what users of
//! aws-actions/aws-cloudformation-github-deploy already write:
//! - items are separated by commas and/or line breaks; empty items are
//!   dropped, so trailing commas and blank lines are fine;
//! - the value is everything after the first `=` (values may contain `=`);
//! - a value may be double-quoted to hold commas or line breaks
//!   (`Subnets="subnet-a,subnet-b"`), or the whole item may be quoted
//!   (`"Subnets=subnet-a,subnet-b"`);
//! - inside quotes a literal `"` is written `""` (as in CSV). Backslash
//!   escapes were rejected because values such as regexes and Windows paths
//!   contain backslashes that would then need doubling;
//! - a quote only opens a quoted section at the start of an item or of a
//!   value; elsewhere it is an ordinary character, so JSON-looking values like
//!   `Tags=[{"Key":"a"}]` pass through untouched;
//! - whitespace around keys and unquoted values is trimmed; quoted text is
//!   kept as written;
//! - a key given again adds to its value, joined with a comma
//!   (`Subnets=a,Subnets=b` is `Subnets=a,b`), as the anchor action
//!   documents for `CommaDelimitedList` parameters. A parameter file keeps
//!   refusing a key given twice: there is no list form to mean.

use serde_yaml_ng::{Mapping, Value};

use super::template::{kind_of, parse_json_or_yaml};

/// Where inline overrides come from, in messages: nowhere to name (the
/// caller attaches the input's name); a file is named (`file `p.json`: `).
const INLINE: &str = "";

/// CloudFormation limits parameter names to this many characters.
const MAX_PARAMETER_NAME_LEN: usize = 255;

/// One override from `parameter-overrides`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterOverride {
    pub key: String,
    pub value: OverrideValue,
}

/// What an override asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideValue {
    Value(String),
    /// Keep the value the stack already has (`UsePreviousValue: true`).
    UsePrevious,
}

/// Where `parameter-overrides` takes its overrides from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideSource<'a> {
    /// A path to a JSON or YAML file, not yet resolved against the workspace.
    File(&'a str),
    /// Inline `Key=Value` items.
    Inline(&'a str),
}

/// A parameter declared in the template's `Parameters` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredParameter {
    pub name: String,
    pub no_echo: bool,
    pub has_default: bool,
}

/// A parameter as it will be sent to CloudFormation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedParameter {
    Value { key: String, value: String },
    UsePrevious { key: String },
}

#[cfg(test)]
impl PlannedParameter {
    fn key(&self) -> &str {
        match self {
            PlannedParameter::Value { key, .. } | PlannedParameter::UsePrevious { key } => key,
        }
    }
}

/// Why overrides could not be read or planned. `place` is empty for inline
/// overrides and ``file `PATH`: `` for a parameter file; the input's name
/// is attached by whoever reads the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    #[error("{place}`{item}` has no `=`; write each override as Key=Value{hint}")]
    MissingEquals {
        place: String,
        item: String,
        hint: String,
    },

    #[error("{place}`{item}` has an empty parameter name; write it as Key=Value")]
    EmptyKey { place: String, item: String },

    #[error("{place}`{item}` has an unterminated quote; close it: {item}\"")]
    UnterminatedQuote { place: String, item: String },

    #[error(
        "{place}`{item}` has text after its closing quote; put the whole value inside the quotes and write a literal quote as \"\""
    )]
    TextAfterQuote { place: String, item: String },

    #[error("{place}`{key}` is given twice (`{first}` and `{second}`); keep only one")]
    DuplicateKey {
        place: String,
        key: String,
        first: String,
        second: String,
    },

    #[error(
        "{place}`{key}` is not a valid parameter name; CloudFormation parameter names are 1 to {MAX_PARAMETER_NAME_LEN} ASCII letters and digits"
    )]
    InvalidKey { place: String, key: String },

    #[error("{place}{detail}; fix the syntax, or pass the overrides inline as Key=Value")]
    DocumentSyntax { place: String, detail: String },

    #[error(
        "{place}the document is {found}; write either a list of {{\"ParameterKey\": ..., \"ParameterValue\": ...}} entries or a mapping of Key: Value"
    )]
    DocumentShape { place: String, found: &'static str },

    #[error("{place}entry {position}: {problem}")]
    EntryShape {
        place: String,
        position: usize,
        problem: String,
    },

    #[error(
        "{place}`{key}` has a value that is {found}; give text, a number, a boolean, or a list of those (joined with commas for List<> parameters)"
    )]
    UnsupportedValue {
        place: String,
        key: String,
        found: &'static str,
    },

    #[error("{}", unknown_parameters_message(.unknown, .declared))]
    UnknownParameters {
        unknown: Vec<String>,
        declared: Vec<String>,
    },

    #[error(
        "`{key}` asks for the previous value, but the stack does not exist yet; give `{key}` a value"
    )]
    UsePreviousOnCreate { key: String },

    #[error(
        "`{key}` asks for the previous value, but the current stack has no parameter `{key}`; give `{key}` a value"
    )]
    UsePreviousNotOnStack { key: String },

    #[error("{}", missing_values_message(.keys))]
    MissingValues { keys: Vec<String> },
}

fn backticked(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_parameters_message(unknown: &[String], declared: &[String]) -> String {
    let subject = if unknown.len() == 1 {
        format!("{} is not a parameter", backticked(unknown))
    } else {
        format!("{} are not parameters", backticked(unknown))
    };
    // Parameter names are case-sensitive; a case slip is the likeliest typo.
    let case_hints: Vec<String> = unknown
        .iter()
        .filter_map(|wrong| {
            declared
                .iter()
                .find(|right| right.eq_ignore_ascii_case(wrong))
                .map(|right| format!("`{wrong}` → `{right}`"))
        })
        .collect();
    let fix = if case_hints.is_empty() {
        "remove or rename them".to_owned()
    } else {
        format!("names are case-sensitive: {}", case_hints.join(", "))
    };
    if declared.is_empty() {
        format!(
            "{subject} of the template, which declares no parameters; remove parameter-overrides"
        )
    } else {
        format!(
            "{subject} of the template, which declares {}; {fix}",
            backticked(declared)
        )
    }
}

fn missing_values_message(keys: &[String]) -> String {
    let examples = keys
        .iter()
        .map(|key| format!("{key}=..."))
        .collect::<Vec<_>>()
        .join(",");
    let (subject, verb) = if keys.len() == 1 {
        ("parameter", "must have a value")
    } else {
        ("parameters", "must have values")
    };
    format!(
        "{subject} {} {verb}: the template gives no Default and the stack has no previous value; add them to parameter-overrides, e.g. {examples}",
        backticked(keys)
    )
}

/// Decides where `parameter-overrides` reads from: `file://PATH`, or a bare
/// path ending in `.json`, `.yaml` or `.yml` with no `=` (nor a comma or
/// line break, which only inline text has), is a file; anything else is
/// inline text. Relative paths are left for the caller to resolve.
pub fn override_source(raw: &str) -> OverrideSource<'_> {
    let trimmed = raw.trim();
    if let Some(path) = trimmed.strip_prefix("file://") {
        return OverrideSource::File(path);
    }
    let lowercase = trimmed.to_ascii_lowercase();
    let looks_like_path = [".json", ".yaml", ".yml"]
        .iter()
        .any(|extension| lowercase.ends_with(extension));
    if looks_like_path && !trimmed.contains(['=', '\n', ',']) {
        OverrideSource::File(trimmed)
    } else {
        OverrideSource::Inline(raw)
    }
}

fn is_valid_parameter_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_PARAMETER_NAME_LEN
        && key.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_separator(c: char) -> bool {
    matches!(c, ',' | '\n' | '\r')
}

/// Whitespace that is trimmed but does not end an item.
fn is_blank(c: char) -> bool {
    c.is_whitespace() && !is_separator(c)
}

/// An inline item split into key and value, with its source text for errors.
struct InlineItem {
    key: String,
    value: String,
    text: String,
    quoted: bool,
}

/// The error for an item without `=`; `previous` is the item before it.
fn missing_equals(item: String, previous: Option<&InlineItem>) -> ParameterError {
    // The usual cause is an unquoted list value split at its commas.
    let hint = match previous {
        Some(previous) if !previous.quoted => format!(
            "; if `{item}` belongs to the value of `{key}`, quote that value: {key}=\"{value},{item}\"",
            key = previous.key,
            value = previous.value,
        ),
        _ => String::new(),
    };
    ParameterError::MissingEquals {
        place: INLINE.to_owned(),
        item,
        hint,
    }
}

/// A cursor over inline override text.
struct InlineScanner<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> InlineScanner<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.position..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let next = self.peek()?;
        self.position += next.len_utf8();
        Some(next)
    }

    fn skip_while(&mut self, predicate: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&predicate) {
            self.bump();
        }
    }

    fn item_text(&self, start: usize) -> String {
        self.text[start..self.position].trim_end().to_owned()
    }

    /// Reads a quoted section whose opening quote was just consumed, turning
    /// `""` into `"`.
    fn quoted(&mut self, item_start: usize) -> Result<String, ParameterError> {
        let mut content = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(ParameterError::UnterminatedQuote {
                        place: INLINE.to_owned(),
                        item: self.item_text(item_start),
                    });
                }
                Some('"') if self.peek() == Some('"') => {
                    self.bump();
                    content.push('"');
                }
                Some('"') => return Ok(content),
                Some(other) => content.push(other),
            }
        }
    }

    /// After a closing quote only blanks may follow before the next item.
    fn expect_item_end(&mut self, item_start: usize) -> Result<(), ParameterError> {
        self.skip_while(is_blank);
        if self.peek().is_none_or(is_separator) {
            return Ok(());
        }
        self.skip_while(|c| !is_separator(c));
        Err(ParameterError::TextAfterQuote {
            place: INLINE.to_owned(),
            item: self.item_text(item_start),
        })
    }

    /// Reads the next item, or `None` at the end of the text.
    fn next_item(
        &mut self,
        previous: Option<&InlineItem>,
    ) -> Result<Option<InlineItem>, ParameterError> {
        self.skip_while(|c| is_blank(c) || is_separator(c));
        let start = self.position;
        let (key, value, quoted) = match self.peek() {
            None => return Ok(None),
            Some('"') => {
                self.bump();
                let content = self.quoted(start)?;
                self.expect_item_end(start)?;
                let Some((key, value)) = content.split_once('=') else {
                    return Err(missing_equals(self.item_text(start), None));
                };
                (key.trim().to_owned(), value.to_owned(), true)
            }
            Some(_) => {
                self.skip_while(|c| c != '=' && !is_separator(c));
                if self.peek() != Some('=') {
                    return Err(missing_equals(self.item_text(start), previous));
                }
                let key = self.text[start..self.position].trim().to_owned();
                self.bump();
                self.skip_while(is_blank);
                if self.peek() == Some('"') {
                    self.bump();
                    let value = self.quoted(start)?;
                    self.expect_item_end(start)?;
                    (key, value, true)
                } else {
                    let value_start = self.position;
                    self.skip_while(|c| !is_separator(c));
                    (
                        key,
                        self.text[value_start..self.position].trim().to_owned(),
                        false,
                    )
                }
            }
        };
        Ok(Some(InlineItem {
            key,
            value,
            text: self.item_text(start),
            quoted,
        }))
    }
}

/// Checks a key's name and that it was not given before. `seen` pairs each
/// earlier key with how it was written, and `occurrence` is how this one was
/// written, so a duplicate error can quote both.
fn check_new_key(
    place: &str,
    key: &str,
    seen: &[(String, String)],
    occurrence: &str,
) -> Result<(), ParameterError> {
    if !is_valid_parameter_name(key) {
        return Err(ParameterError::InvalidKey {
            place: place.to_owned(),
            key: key.to_owned(),
        });
    }
    if let Some((_, first)) = seen.iter().find(|(seen_key, _)| seen_key == key) {
        return Err(ParameterError::DuplicateKey {
            place: place.to_owned(),
            key: key.to_owned(),
            first: first.clone(),
            second: occurrence.to_owned(),
        });
    }
    Ok(())
}

/// Parses inline `parameter-overrides` text (see the module docs for syntax).
pub fn parse_inline_overrides(text: &str) -> Result<Vec<ParameterOverride>, ParameterError> {
    let mut scanner = InlineScanner { text, position: 0 };
    let mut items: Vec<InlineItem> = Vec::new();
    while let Some(item) = scanner.next_item(items.last())? {
        if item.key.is_empty() {
            return Err(ParameterError::EmptyKey {
                place: INLINE.to_owned(),
                item: item.text,
            });
        }
        items.push(item);
    }

    let mut overrides: Vec<ParameterOverride> = Vec::with_capacity(items.len());
    for item in items {
        check_new_key(INLINE, &item.key, &[], &item.text)?;
        // A repeated key adds to a list: `Subnets=a,Subnets=b` sends
        // `a,b`, as aws-cloudformation-github-deploy documents for
        // CommaDelimitedList parameters.
        match overrides.iter_mut().find(|o| o.key == item.key) {
            Some(ParameterOverride {
                value: OverrideValue::Value(joined),
                ..
            }) => {
                joined.push(',');
                joined.push_str(&item.value);
            }
            _ => overrides.push(ParameterOverride {
                key: item.key,
                value: OverrideValue::Value(item.value),
            }),
        }
    }
    Ok(overrides)
}

/// Renders a scalar the way CloudFormation stringifies parameter values
/// (`true`, `42`, `1.5`).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A document value as parameter text: a scalar, or a list of scalars joined
/// with commas (how CloudFormation takes `List<>` and `CommaDelimitedList`).
fn value_text(place: &str, key: &str, value: &Value) -> Result<String, ParameterError> {
    let unsupported = |found| ParameterError::UnsupportedValue {
        place: place.to_owned(),
        key: key.to_owned(),
        found,
    };
    if let Some(text) = scalar_text(value) {
        return Ok(text);
    }
    let Value::Sequence(items) = value else {
        return Err(unsupported(kind_of(value)));
    };
    items
        .iter()
        .map(|item| {
            scalar_text(item).ok_or_else(|| {
                unsupported("a list containing something other than text, numbers or booleans")
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|texts| texts.join(","))
}

/// Reads one `{"ParameterKey": ..., "ParameterValue" | "UsePreviousValue": ...}`
/// entry; `position` is 1-based for messages.
fn cloudformation_entry(
    place: &str,
    position: usize,
    entry: &Value,
) -> Result<ParameterOverride, ParameterError> {
    let problem = |problem: String| ParameterError::EntryShape {
        place: place.to_owned(),
        position,
        problem,
    };
    let Some(fields) = entry.as_mapping() else {
        return Err(problem(format!(
            "is {}; write {{\"ParameterKey\": \"Name\", \"ParameterValue\": \"value\"}}",
            kind_of(entry)
        )));
    };
    for field in fields.keys() {
        // `ResolvedValue` appears in `describe-stacks` output that users
        // paste in; it is informational, so it is accepted and ignored.
        let known = matches!(
            field.as_str(),
            Some("ParameterKey" | "ParameterValue" | "UsePreviousValue" | "ResolvedValue")
        );
        if !known {
            let name = scalar_text(field).unwrap_or_else(|| kind_of(field).to_owned());
            return Err(problem(format!(
                "has unknown field `{name}`; use ParameterKey with ParameterValue or UsePreviousValue"
            )));
        }
    }
    let key = match fields.get("ParameterKey") {
        Some(Value::String(key)) => key.clone(),
        Some(other) => {
            return Err(problem(format!(
                "`ParameterKey` is {}; write the parameter name as text",
                kind_of(other)
            )));
        }
        None => {
            return Err(problem(
                "has no `ParameterKey`; add the parameter name".to_owned(),
            ));
        }
    };
    let use_previous = match fields.get("UsePreviousValue") {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            return Err(problem(format!(
                "`UsePreviousValue` of `{key}` is {}; write true or false",
                kind_of(other)
            )));
        }
    };
    let value = match (fields.get("ParameterValue"), use_previous) {
        (Some(_), true) => {
            return Err(problem(format!(
                "`{key}` has both `ParameterValue` and `UsePreviousValue: true`; keep one"
            )));
        }
        (Some(value), false) => OverrideValue::Value(value_text(place, &key, value)?),
        (None, true) => OverrideValue::UsePrevious,
        (None, false) => {
            return Err(problem(format!(
                "`{key}` has no `ParameterValue`; add one, or `UsePreviousValue: true`"
            )));
        }
    };
    Ok(ParameterOverride { key, value })
}

fn mapping_overrides(
    place: &str,
    mapping: &Mapping,
) -> Result<Vec<(ParameterOverride, String)>, ParameterError> {
    mapping
        .iter()
        .map(|(key, value)| {
            // YAML reads `123:` as a number; the name is still its text.
            let key = scalar_text(key).ok_or(ParameterError::DocumentShape {
                place: place.to_owned(),
                found: "a mapping with a key that is not text",
            })?;
            let text = value_text(place, &key, value)?;
            let occurrence = format!("{key}: {text}");
            Ok((
                ParameterOverride {
                    key,
                    value: OverrideValue::Value(text),
                },
                occurrence,
            ))
        })
        .collect()
}

/// Parses a JSON or YAML overrides file: CloudFormation's list form
/// (`[{"ParameterKey": "K", "ParameterValue": "V"}]`) or a `{K: V}` mapping.
/// `source` is the file path, used in messages.
pub fn parse_override_document(
    content: &str,
    source: &str,
) -> Result<Vec<ParameterOverride>, ParameterError> {
    let place = format!("file `{source}`: ");
    let document = parse_json_or_yaml(content).map_err(|error| ParameterError::DocumentSyntax {
        place: place.clone(),
        detail: error.to_string(),
    })?;
    let overrides = match &document {
        Value::Sequence(entries) => entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                cloudformation_entry(&place, index + 1, entry)
                    .map(|parsed| (parsed, format!("entry {}", index + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Mapping(mapping) => mapping_overrides(&place, mapping)?,
        other => {
            return Err(ParameterError::DocumentShape {
                place,
                found: kind_of(other),
            });
        }
    };

    let mut seen: Vec<(String, String)> = Vec::new();
    let mut result = Vec::with_capacity(overrides.len());
    for (parsed, occurrence) in overrides {
        check_new_key(&place, &parsed.key, &seen, &occurrence)?;
        seen.push((parsed.key.clone(), occurrence));
        result.push(parsed);
    }
    Ok(result)
}

/// Plans the parameters for a change set, in template declaration order.
///
/// `existing_stack_parameter_keys` is `None` when the stack is being created.
/// On an update, declared parameters that are not overridden but exist on
/// the stack keep their previous value, as `aws cloudformation deploy` does;
/// parameters new to the stack fall back to their template default (they
/// are omitted so CloudFormation applies it).
pub fn plan_parameters(
    declared: &[DeclaredParameter],
    overrides: &[ParameterOverride],
    existing_stack_parameter_keys: Option<&[String]>,
) -> Result<Vec<PlannedParameter>, ParameterError> {
    let mut unknown: Vec<String> = Vec::new();
    for item in overrides {
        let is_declared = declared.iter().any(|parameter| parameter.name == item.key);
        if !is_declared && !unknown.contains(&item.key) {
            unknown.push(item.key.clone());
        }
    }
    if !unknown.is_empty() {
        return Err(ParameterError::UnknownParameters {
            unknown,
            declared: declared
                .iter()
                .map(|parameter| parameter.name.clone())
                .collect(),
        });
    }

    let on_stack = |key: &str| {
        existing_stack_parameter_keys
            .is_some_and(|keys| keys.iter().any(|existing| existing == key))
    };
    let mut planned = Vec::new();
    let mut missing = Vec::new();
    for parameter in declared {
        let key = parameter.name.clone();
        // The parsers reject duplicates; should a caller merge two sources,
        // the later override wins, as later settings usually do.
        let requested = overrides
            .iter()
            .rev()
            .find(|item| item.key == parameter.name);
        match requested.map(|item| &item.value) {
            Some(OverrideValue::Value(value)) => planned.push(PlannedParameter::Value {
                key,
                value: value.clone(),
            }),
            Some(OverrideValue::UsePrevious) => match existing_stack_parameter_keys {
                None => return Err(ParameterError::UsePreviousOnCreate { key }),
                Some(_) if !on_stack(&key) => {
                    return Err(ParameterError::UsePreviousNotOnStack { key });
                }
                Some(_) => planned.push(PlannedParameter::UsePrevious { key }),
            },
            None if on_stack(&key) => planned.push(PlannedParameter::UsePrevious { key }),
            None if parameter.has_default => {}
            None => missing.push(key),
        }
    }
    if !missing.is_empty() {
        return Err(ParameterError::MissingValues { keys: missing });
    }
    Ok(planned)
}

/// Whether `key` is a `NoEcho` parameter of the template.
pub fn is_no_echo(declared: &[DeclaredParameter], key: &str) -> bool {
    declared
        .iter()
        .any(|parameter| parameter.no_echo && parameter.name == key)
}

/// The override values that must be masked in logs (`::add-mask::`) because
/// their parameter is `NoEcho`. A multi-line value is also returned line by
/// line: the runner masks within single log lines, so only the lines
/// themselves would ever match.
pub fn no_echo_values(
    declared: &[DeclaredParameter],
    overrides: &[ParameterOverride],
) -> Vec<String> {
    let mut secrets: Vec<String> = Vec::new();
    for item in overrides {
        let OverrideValue::Value(value) = &item.value else {
            continue;
        };
        if !is_no_echo(declared, &item.key) {
            continue;
        }
        let lines = value
            .lines()
            .filter(|line| value.contains('\n') && !line.trim().is_empty());
        for secret in std::iter::once(value.as_str()).chain(lines) {
            if !secret.is_empty() && !secrets.iter().any(|known| known == secret) {
                secrets.push(secret.to_owned());
            }
        }
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(key: &str, value: &str) -> ParameterOverride {
        ParameterOverride {
            key: key.to_owned(),
            value: OverrideValue::Value(value.to_owned()),
        }
    }

    fn previous(key: &str) -> ParameterOverride {
        ParameterOverride {
            key: key.to_owned(),
            value: OverrideValue::UsePrevious,
        }
    }

    fn declared(name: &str, no_echo: bool, has_default: bool) -> DeclaredParameter {
        DeclaredParameter {
            name: name.to_owned(),
            no_echo,
            has_default,
        }
    }

    /// Overrides, the current stack's parameter keys (`None` on a create) and
    /// what planning should produce.
    type PlanCase<'a, Expected> = (Vec<ParameterOverride>, Option<&'a [String]>, Expected);

    fn error_text<T>(result: Result<T, ParameterError>) -> String {
        result
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn parses_inline_overrides() {
        let cases: Vec<(&str, Vec<ParameterOverride>)> = vec![
            ("", vec![]),
            (" , \n ,", vec![]),
            ("Env=prod", vec![value("Env", "prod")]),
            (
                "Env=prod,Count=2",
                vec![value("Env", "prod"), value("Count", "2")],
            ),
            (
                "Env=prod\nCount=2\n",
                vec![value("Env", "prod"), value("Count", "2")],
            ),
            (
                "Env=prod,\r\n\r\nCount=2,",
                vec![value("Env", "prod"), value("Count", "2")],
            ),
            ("  Env =  prod  ", vec![value("Env", "prod")]),
            ("Token=a=b==", vec![value("Token", "a=b==")]),
            ("Empty=", vec![value("Empty", "")]),
            (
                "Subnets=\"subnet-a,subnet-b\"",
                vec![value("Subnets", "subnet-a,subnet-b")],
            ),
            (
                "Subnets= \"a,b\" ,Env=x",
                vec![value("Subnets", "a,b"), value("Env", "x")],
            ),
            (
                "\"Subnets=a,b\",Env=x",
                vec![value("Subnets", "a,b"), value("Env", "x")],
            ),
            ("\" Subnets =a,b\"", vec![value("Subnets", "a,b")]),
            (
                "Quote=\"say \"\"hi\"\"\"",
                vec![value("Quote", "say \"hi\"")],
            ),
            ("Pem=\"line1\nline2\"", vec![value("Pem", "line1\nline2")]),
            ("Padded=\"  kept  \"", vec![value("Padded", "  kept  ")]),
            (
                "Tags=[{\"Key\":\"a\"}]",
                vec![value("Tags", "[{\"Key\":\"a\"}]")],
            ),
            ("Inch=6\" screen", vec![value("Inch", "6\" screen")]),
            ("Regex=\"^\\d+$\"", vec![value("Regex", "^\\d+$")]),
            ("Name=déploiement ✅", vec![value("Name", "déploiement ✅")]),
            ("Env=a\tb", vec![value("Env", "a\tb")]),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_inline_overrides(text), Ok(expected), "{text:?}");
        }
    }

    /// What users of aws-cloudformation-github-deploy write: its documented
    /// list form, and its README's folded block (`>-` gives `, ` between
    /// items).
    #[test]
    fn a_repeated_key_joins_its_values_as_the_anchor_action_does() {
        let cases: [(&str, &[(&str, &str)]); 3] = [
            (
                "Subnets=subnet-a,Subnets=subnet-b,Env=prod",
                &[("Subnets", "subnet-a,subnet-b"), ("Env", "prod")],
            ),
            (
                "AvailabilityZones=eu-west-1a, AvailabilityZones=eu-west-1c, NumberOfAZs=2",
                &[
                    ("AvailabilityZones", "eu-west-1a,eu-west-1c"),
                    ("NumberOfAZs", "2"),
                ],
            ),
            (
                "Env=a\nCount=1\nEnv=\"b,c\"",
                &[("Env", "a,b,c"), ("Count", "1")],
            ),
        ];
        for (text, expected) in cases {
            let parsed = parse_inline_overrides(text).unwrap();
            let actual: Vec<(&str, &str)> = parsed
                .iter()
                .map(|o| match &o.value {
                    OverrideValue::Value(value) => (o.key.as_str(), value.as_str()),
                    OverrideValue::UsePrevious => (o.key.as_str(), "<previous>"),
                })
                .collect();
            assert_eq!(actual, expected, "{text}");
        }
    }

    #[test]
    fn inline_errors_name_input_value_and_fix() {
        let cases = [
            (
                "Subnets=\"a,b",
                "`Subnets=\"a,b` has an unterminated quote; close it: Subnets=\"a,b\"",
            ),
            (
                "Subnets=a,b",
                "`b` has no `=`; write each override as Key=Value; if `b` belongs to the value of `Subnets`, quote that value: Subnets=\"a,b\"",
            ),
            (
                "justtext",
                "`justtext` has no `=`; write each override as Key=Value",
            ),
            (
                "\"Subnets\"",
                "`\"Subnets\"` has no `=`; write each override as Key=Value",
            ),
            (
                "=value",
                "`=value` has an empty parameter name; write it as Key=Value",
            ),
            (
                "\"=value\"",
                "`\"=value\"` has an empty parameter name; write it as Key=Value",
            ),
            (
                "Env=\"a\"b,X=1",
                "`Env=\"a\"b` has text after its closing quote; put the whole value inside the quotes and write a literal quote as \"\"",
            ),
            (
                "my-param=1",
                "`my-param` is not a valid parameter name; CloudFormation parameter names are 1 to 255 ASCII letters and digits",
            ),
            (
                "Ünicode=1",
                "`Ünicode` is not a valid parameter name; CloudFormation parameter names are 1 to 255 ASCII letters and digits",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                error_text(parse_inline_overrides(text)),
                expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn parameter_name_length_is_limited() {
        let longest = "A".repeat(MAX_PARAMETER_NAME_LEN);
        let too_long = "A".repeat(MAX_PARAMETER_NAME_LEN + 1);
        let cases = [(longest.as_str(), true), (too_long.as_str(), false)];
        for (key, accepted) in cases {
            let parsed = parse_inline_overrides(&format!("{key}=1"));
            assert_eq!(parsed.is_ok(), accepted, "key of {} chars", key.len());
        }
    }

    #[test]
    fn chooses_between_file_and_inline() {
        let cases = [
            ("file://params.json", OverrideSource::File("params.json")),
            (
                " file:///abs/params.yml \n",
                OverrideSource::File("/abs/params.yml"),
            ),
            (
                "config/params.yaml",
                OverrideSource::File("config/params.yaml"),
            ),
            ("Params.JSON", OverrideSource::File("Params.JSON")),
            (
                "Config=settings.json",
                OverrideSource::Inline("Config=settings.json"),
            ),
            ("a.json,b.json", OverrideSource::Inline("a.json,b.json")),
            ("Env=prod", OverrideSource::Inline("Env=prod")),
            ("", OverrideSource::Inline("")),
            ("params.txt", OverrideSource::Inline("params.txt")),
        ];
        for (raw, expected) in cases {
            assert_eq!(override_source(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn parses_override_documents() {
        let cases: Vec<(&str, Vec<ParameterOverride>)> = vec![
            (
                r#"[{"ParameterKey": "Env", "ParameterValue": "prod"},
                    {"ParameterKey": "Db", "UsePreviousValue": true},
                    {"ParameterKey": "Count", "ParameterValue": 3, "UsePreviousValue": false, "ResolvedValue": "x"}]"#,
                vec![value("Env", "prod"), previous("Db"), value("Count", "3")],
            ),
            (
                r#"{"Zeta": "z", "Alpha": true, "Count": 42, "Ratio": 1.5, "Subnets": ["a", "b"]}"#,
                vec![
                    value("Zeta", "z"),
                    value("Alpha", "true"),
                    value("Count", "42"),
                    value("Ratio", "1.5"),
                    value("Subnets", "a,b"),
                ],
            ),
            (
                "Env: prod\nEnabled: false\nPorts: [80, 443]\nPem: |\n  line1\n  line2\n",
                vec![
                    value("Env", "prod"),
                    value("Enabled", "false"),
                    value("Ports", "80,443"),
                    value("Pem", "line1\nline2\n"),
                ],
            ),
            (
                "- ParameterKey: Env\n  ParameterValue: dev\n- ParameterKey: Db\n  UsePreviousValue: true\n",
                vec![value("Env", "dev"), previous("Db")],
            ),
            // Not JSON, but a valid YAML flow mapping: accepted, as the
            // YAML fallback is meant to be lenient.
            ("[]", vec![]),
            ("{}", vec![]),
            (
                "Empty: \"\"\nList: []\n",
                vec![value("Empty", ""), value("List", "")],
            ),
        ];
        for (content, expected) in cases {
            assert_eq!(
                parse_override_document(content, "params.json"),
                Ok(expected),
                "{content:?}"
            );
        }
    }

    #[test]
    fn document_errors_name_the_file_and_the_problem() {
        let cases = [
            ("{\"Env\": \"a\"", "file `p.json`: not valid JSON"),
            ("{\"Env\": \"a\"", "line 1 column"),
            ("Env: [a\nOther: b\n", "line 2"),
            ("Env: a\n  bad: indent\n", "not valid YAML"),
            ("{\"Env\": \"a\", \"Env\": \"b\"}", "duplicate"),
            ("", "the document is empty (null)"),
            ("just text", "the document is text"),
            ("Env:\n", "`Env` has a value that is empty (null)"),
            ("Env: {a: 1}\n", "`Env` has a value that is a mapping"),
            (
                "Env: [[a]]\n",
                "`Env` has a value that is a list containing",
            ),
            ("Env: !Ref X\n", "`Env` has a value that is a tagged value"),
            ("bad-key: 1\n", "`bad-key` is not a valid parameter name"),
            ("[\"Env=a\"]", "entry 1: is text; write {\"ParameterKey\""),
            (
                "[{\"ParameterValue\": \"a\"}]",
                "entry 1: has no `ParameterKey`",
            ),
            (
                "[{\"ParameterKey\": 1, \"ParameterValue\": \"a\"}]",
                "entry 1: `ParameterKey` is a number",
            ),
            (
                "[{\"ParameterKey\": \"Env\"}]",
                "entry 1: `Env` has no `ParameterValue`",
            ),
            (
                "[{\"ParameterKey\": \"Env\", \"ParameterValue\": \"a\", \"UsePreviousValue\": true}]",
                "entry 1: `Env` has both `ParameterValue` and `UsePreviousValue: true`",
            ),
            (
                "[{\"ParameterKey\": \"Env\", \"UsePreviousValue\": \"yes\"}]",
                "write true or false",
            ),
            (
                "[{\"ParameterKey\": \"Env\", \"ParameterVaule\": \"a\"}]",
                "unknown field `ParameterVaule`",
            ),
            (
                "[{\"ParameterKey\": \"Env\", \"ParameterValue\": \"a\"}, {\"ParameterKey\": \"Env\", \"ParameterValue\": \"b\"}]",
                "`Env` is given twice (`entry 1` and `entry 2`)",
            ),
        ];
        for (content, expected_fragment) in cases {
            let message = error_text(parse_override_document(content, "p.json"));
            assert!(
                message.starts_with("file `p.json`: "),
                "{content:?}: {message}"
            );
            assert!(
                message.contains(expected_fragment),
                "{content:?}: {message}"
            );
        }
    }

    #[test]
    fn plans_parameters_for_creates_and_updates() {
        let template = [
            declared("Env", false, false),
            declared("Image", false, false),
            declared("Count", false, true),
            declared("Added", false, true),
        ];
        let stack_keys = ["Env".to_owned(), "Image".to_owned(), "Count".to_owned()];
        let plan_value = |key: &str, text: &str| PlannedParameter::Value {
            key: key.to_owned(),
            value: text.to_owned(),
        };
        let plan_previous = |key: &str| PlannedParameter::UsePrevious {
            key: key.to_owned(),
        };

        let cases: Vec<PlanCase<'_, Vec<PlannedParameter>>> = vec![
            // Create: overrides in template order, defaults omitted.
            (
                vec![value("Image", "app:2"), value("Env", "prod")],
                None,
                vec![plan_value("Env", "prod"), plan_value("Image", "app:2")],
            ),
            // Update: untouched existing parameters keep previous values; the
            // new `Added` falls to its default.
            (
                vec![value("Image", "app:3")],
                Some(&stack_keys),
                vec![
                    plan_previous("Env"),
                    plan_value("Image", "app:3"),
                    plan_previous("Count"),
                ],
            ),
            // Explicit UsePrevious on an update.
            (
                vec![previous("Image"), value("Added", "x")],
                Some(&stack_keys),
                vec![
                    plan_previous("Env"),
                    plan_previous("Image"),
                    plan_previous("Count"),
                    plan_value("Added", "x"),
                ],
            ),
        ];
        for (overrides, existing, expected) in cases {
            let planned = plan_parameters(&template, &overrides, existing);
            assert_eq!(planned, Ok(expected.clone()), "{overrides:?}");
            let keys: Vec<&str> = expected.iter().map(PlannedParameter::key).collect();
            assert!(keys.windows(2).all(|pair| pair[0] != pair[1]));
        }
    }

    #[test]
    fn planning_errors_explain_the_fix() {
        let template = [
            declared("Env", false, false),
            declared("Image", false, false),
            declared("Count", false, true),
        ];
        let stack_keys = ["Env".to_owned(), "Count".to_owned()];
        let cases: Vec<PlanCase<'_, &str>> = vec![
            (
                vec![
                    value("Env", "a"),
                    value("Image", "b"),
                    value("Bogus", "c"),
                    value("Other", "d"),
                ],
                None,
                "`Bogus`, `Other` are not parameters of the template, which declares `Env`, `Image`, `Count`; remove or rename them",
            ),
            (
                vec![value("env", "a"), value("Image", "b")],
                None,
                "`env` is not a parameter of the template, which declares `Env`, `Image`, `Count`; names are case-sensitive: `env` → `Env`",
            ),
            (
                vec![value("Env", "a")],
                None,
                "parameter `Image` must have a value: the template gives no Default and the stack has no previous value; add them to parameter-overrides, e.g. Image=...",
            ),
            (
                vec![],
                None,
                "parameters `Env`, `Image` must have values: the template gives no Default and the stack has no previous value; add them to parameter-overrides, e.g. Env=...,Image=...",
            ),
            (
                vec![value("Image", "b")],
                Some(&[]),
                "parameter `Env` must have a value",
            ),
            (
                vec![previous("Env"), value("Image", "b")],
                None,
                "`Env` asks for the previous value, but the stack does not exist yet; give `Env` a value",
            ),
            (
                vec![previous("Image")],
                Some(&stack_keys),
                "`Image` asks for the previous value, but the current stack has no parameter `Image`; give `Image` a value",
            ),
        ];
        for (overrides, existing, expected_prefix) in cases {
            let message = error_text(plan_parameters(&template, &overrides, existing));
            assert!(
                message.starts_with(expected_prefix),
                "{overrides:?}: {message}"
            );
        }

        let message = error_text(plan_parameters(&[], &[value("Env", "a")], None));
        assert_eq!(
            message,
            "`Env` is not a parameter of the template, which declares no parameters; remove parameter-overrides"
        );
    }

    #[test]
    fn finds_no_echo_values_to_mask() {
        let template = [
            declared("DbPassword", true, false),
            declared("Env", false, false),
            declared("Pem", true, true),
        ];
        let overrides = [
            value("DbPassword", "hunter2"),
            value("Env", "prod"),
            value("Pem", "-----BEGIN-----\nabc\n\n-----END-----"),
        ];
        let cases = [
            ("DbPassword", true),
            ("Pem", true),
            ("Env", false),
            ("Unknown", false),
        ];
        for (key, expected) in cases {
            assert_eq!(is_no_echo(&template, key), expected, "{key}");
        }
        assert_eq!(
            no_echo_values(&template, &overrides),
            vec![
                "hunter2".to_owned(),
                "-----BEGIN-----\nabc\n\n-----END-----".to_owned(),
                "-----BEGIN-----".to_owned(),
                "abc".to_owned(),
                "-----END-----".to_owned(),
            ]
        );
        let nothing_to_mask = [value("DbPassword", ""), previous("Pem")];
        assert!(no_echo_values(&template, &nothing_to_mask).is_empty());
    }
}
