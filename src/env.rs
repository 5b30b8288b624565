//! The one place that reads the process environment.
//!
//! Everything else receives an [`Environment`] value, so tests can build one
//! by hand and the binary's behaviour depends only on what was captured at
//! start-up (the runner's `INPUT_*`, `GITHUB_*` variables and friends).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A snapshot of the environment variables the program cares about.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// Snapshots the process environment. Variables that are not valid
    /// Unicode are skipped: none of the ones we read can legitimately be.
    pub fn capture() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// Builds an environment from explicit pairs (tests, and the CLI front end
    /// which forwards only the variables it needs).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, or `None` when it is unset or empty: the runner
    /// sets unused optional variables to the empty string.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Whether we run inside GitHub Actions (`GITHUB_ACTIONS=true`), which
    /// decides between workflow commands and plain terminal output.
    pub fn is_github_actions(&self) -> bool {
        self.get("GITHUB_ACTIONS") == Some("true")
    }

    /// The directory relative paths are resolved against: the workspace on a
    /// runner (mounted at `/github/workspace` in a container action), else the
    /// current directory.
    pub fn workspace(&self) -> PathBuf {
        match self.get("GITHUB_WORKSPACE") {
            Some(dir) => PathBuf::from(dir),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    /// The file the runner reads step outputs from.
    pub fn github_output(&self) -> Option<PathBuf> {
        self.get("GITHUB_OUTPUT").map(PathBuf::from)
    }

    /// The file the runner renders as the job summary.
    pub fn step_summary(&self) -> Option<PathBuf> {
        self.get("GITHUB_STEP_SUMMARY").map(PathBuf::from)
    }

    /// The names of all variables starting with `prefix`, set or empty, with
    /// the prefix removed.
    pub fn names_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.vars.keys().filter_map(move |k| k.strip_prefix(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_read_as_unset() {
        let env = Environment::from_pairs([("GITHUB_OUTPUT", ""), ("GITHUB_SHA", "abc")]);
        assert_eq!(env.get("GITHUB_OUTPUT"), None);
        assert_eq!(env.get("GITHUB_SHA"), Some("abc"));
    }

    #[test]
    fn github_actions_only_when_exactly_true() {
        for (value, expected) in [("true", true), ("1", false), ("TRUE", false), ("", false)] {
            let env = Environment::from_pairs([("GITHUB_ACTIONS", value)]);
            assert_eq!(env.is_github_actions(), expected, "GITHUB_ACTIONS={value}");
        }
    }

    #[test]
    fn prefix_strips_and_filters_and_keeps_empty_ones() {
        let env = Environment::from_pairs([
            ("INPUT_NAME", "a"),
            ("INPUT_PARAMETER-OVERRIDES", ""),
            ("HOME", "/"),
        ]);
        let found: Vec<_> = env.names_with_prefix("INPUT_").collect();
        assert_eq!(found, vec!["NAME", "PARAMETER-OVERRIDES"]);
    }
}
