//! Where each key of a YAML document is written: the line of every
//! block-mapping key by its path (`stacks` → `web` → `parameters` →
//! `VpcId`), so a manifest error points at the key at fault rather than at
//! the first line that happens to contain its text (serde gives positions
//! only for the errors it finds itself). Keys written in flow style
//! (`{ a: 1 }`) are not indexed; callers fall back to their stack's line.

use std::collections::HashMap;

/// The line (1-based) of each block-mapping key, by its path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLines {
    lines: HashMap<Vec<String>, usize>,
}

impl KeyLines {
    /// Indexes `text` by indentation, as YAML nests block mappings; a key
    /// written twice keeps its first line (serde refuses the duplicate).
    pub fn new(text: &str) -> Self {
        let mut lines = HashMap::new();
        // The keys enclosing the current line: (column, key).
        let mut open: Vec<(usize, String)> = Vec::new();
        // A block scalar's lines (`|`, `>`) are text, not keys: skipped
        // while indented deeper than the key that opened it.
        let mut block_scalar_of: Option<usize> = None;
        for (index, line) in text.lines().enumerate() {
            // `lines` leaves the `\r` of a file saved with CRLF endings.
            let line = line.trim_end();
            let content = line.trim_start();
            let column = line.len() - content.len();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            if let Some(key_column) = block_scalar_of {
                if column > key_column {
                    continue;
                }
                block_scalar_of = None;
            }
            if content.starts_with("---") || content.starts_with("...") {
                open.clear();
                continue;
            }
            // A sequence item's mapping starts after its dash(es):
            // `- name: x` puts `name` two columns in.
            let (mut column, mut content) = (column, content);
            while let Some(rest) = content
                .strip_prefix('-')
                .filter(|r| r.is_empty() || r.starts_with(' ') || r.starts_with('\t'))
            {
                let item = rest.trim_start();
                column += content.len() - item.len();
                content = item;
            }
            while open
                .last()
                .is_some_and(|(open_column, _)| *open_column >= column)
            {
                open.pop();
            }
            let Some((key, value)) = mapping_key(content) else {
                continue;
            };
            let value = value.split(" #").next().unwrap_or_default().trim();
            if value.starts_with('|') || value.starts_with('>') {
                block_scalar_of = Some(column);
            }
            open.push((column, key));
            let path: Vec<String> = open.iter().map(|(_, key)| key.clone()).collect();
            lines.entry(path).or_insert(index + 1);
        }
        Self { lines }
    }

    /// The line of the key at `path`, if it is written in block style.
    pub fn get<S: AsRef<str>>(&self, path: &[S]) -> Option<usize> {
        let path: Vec<String> = path.iter().map(|part| part.as_ref().to_string()).collect();
        self.lines.get(&path).copied()
    }
}

/// The key of a `key: value` (or `key:`) line and the text after its colon;
/// quoted keys unquoted. `None` for anything else (a scalar item, flow
/// collections, a URL-like `a:b`).
fn mapping_key(content: &str) -> Option<(String, &str)> {
    let quote = content.chars().next().filter(|c| *c == '"' || *c == '\'');
    let (key, rest) = match quote {
        Some(quote) => {
            let end = content[1..].find(quote)? + 1;
            (content[1..end].to_string(), content[end + 1..].trim_start())
        }
        None => {
            if content.starts_with(['{', '[', '&', '*', '!', '?']) {
                return None;
            }
            let colon = content
                .find(": ")
                .or_else(|| content.find(":\t"))
                .or_else(|| content.ends_with(':').then(|| content.len() - 1))?;
            (content[..colon].trim_end().to_string(), &content[colon..])
        }
    };
    let value = rest.strip_prefix(':')?;
    (value.is_empty() || value.starts_with([' ', '\t'])).then_some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"# the shop
with:
  aws-region: eu-west-1
stacks:
  network:
    template: infra/network.yml
    parameters:
      VpcId: "x"   # the same key text as alb's below
  "alb":
    description: |
      VpcId: text, not a key
      parameters: neither
    parameters:
      VpcId: "{{ stacks.network.outputs.VpcId }}"
      'Subnets':
        - a
        - b
    environments:
      prod:
        parameters: { VpcId: flow }
services:
  entries:
    - web: 1
      port: 80
"#;

    #[test]
    fn each_key_is_found_at_its_own_line_by_its_path() {
        let lines = KeyLines::new(MANIFEST);
        assert_eq!(lines.get(&["with", "aws-region"]), Some(3));
        assert_eq!(lines.get(&["stacks"]), Some(4));
        assert_eq!(
            lines.get(&["stacks", "network", "parameters", "VpcId"]),
            Some(8)
        );
        assert_eq!(lines.get(&["stacks", "alb"]), Some(9));
        assert_eq!(
            lines.get(&["stacks", "alb", "parameters", "VpcId"]),
            Some(14)
        );
        assert_eq!(
            lines.get(&["stacks", "alb", "parameters", "Subnets"]),
            Some(15)
        );
        assert_eq!(
            lines.get(&["stacks", "alb", "environments", "prod"]),
            Some(19)
        );
        assert_eq!(lines.get(&["services", "entries", "web"]), Some(23));
        assert_eq!(lines.get(&["services", "entries", "port"]), Some(24));
        let crlf = KeyLines::new(&MANIFEST.replace('\n', "\r\n"));
        assert_eq!(
            crlf.get(&["stacks", "alb", "parameters", "Subnets"]),
            Some(15)
        );
    }

    #[test]
    fn block_scalars_flow_style_and_absent_keys_are_not_found() {
        let lines = KeyLines::new(MANIFEST);
        assert_eq!(lines.get(&["stacks", "alb", "description", "VpcId"]), None);
        assert_eq!(
            lines.get(&["stacks", "alb", "parameters", "VpcId", "a"]),
            None
        );
        assert_eq!(
            lines.get(&[
                "stacks",
                "alb",
                "environments",
                "prod",
                "parameters",
                "VpcId"
            ]),
            None
        );
        assert_eq!(lines.get(&["stacks", "api"]), None);
        assert_eq!(lines.get::<&str>(&[]), None);
    }

    #[test]
    fn only_key_value_lines_are_keys() {
        assert_eq!(mapping_key("a: b").map(|(k, _)| k), Some("a".into()));
        assert_eq!(mapping_key("a:").map(|(k, _)| k), Some("a".into()));
        assert_eq!(
            mapping_key("\"a b\": c").map(|(k, _)| k),
            Some("a b".into())
        );
        assert_eq!(
            mapping_key("image: repo:tag").map(|(k, _)| k),
            Some("image".into())
        );
        assert_eq!(mapping_key("http://example.com"), None);
        assert_eq!(mapping_key("{ a: 1 }"), None);
        assert_eq!(mapping_key("plain text"), None);
    }
}
