//! Images written into a template's `AWS::ECS::TaskDefinition`: a
//! container `Image` that is a literal, or a `!Sub` / `!Ref` of values the
//! deploy knows (parameter overrides, parameter defaults), is held to the
//! same mutable-tag policy as the `image` input. This is the original
//! `:latest` failure: the template does not change when the tag moves, the
//! change set stays empty, and the new image never runs.
//!
//! [`template_images`] reads the expressions (pure); [`resolve_image`]
//! fills in what is known and gives up (`None`) when the tag itself is not
//! known, so only a definite mutable tag is refused.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::template::parse_json_or_yaml;

/// How a container's image is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageExpression {
    /// A literal, or a `Fn::Sub` template with `${Name}` references.
    Text(String),
    /// `Ref` to a parameter.
    Ref(String),
}

/// A container image of a task definition in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateImage {
    pub resource: String,
    pub container: String,
    pub image: ImageExpression,
}

/// The template's task definitions' container images and its parameters'
/// defaults. A template that does not parse has none (its errors are
/// reported by the template check itself).
pub fn template_images(body: &str) -> (Vec<TemplateImage>, BTreeMap<String, String>) {
    let Ok(document) = parse_json_or_yaml(body) else {
        return (Vec::new(), BTreeMap::new());
    };
    let mut images = Vec::new();
    if let Some(resources) = document.get("Resources").and_then(Value::as_mapping) {
        for (id, resource) in resources {
            let (Some(id), Some("AWS::ECS::TaskDefinition")) =
                (id.as_str(), resource.get("Type").and_then(Value::as_str))
            else {
                continue;
            };
            let containers = resource
                .get("Properties")
                .and_then(|p| p.get("ContainerDefinitions"))
                .and_then(Value::as_sequence);
            for container in containers.into_iter().flatten() {
                let name = container.get("Name").and_then(Value::as_str).unwrap_or("?");
                if let Some(image) = container.get("Image").and_then(expression) {
                    images.push(TemplateImage {
                        resource: id.to_string(),
                        container: name.to_string(),
                        image,
                    });
                }
            }
        }
    }
    let mut defaults = BTreeMap::new();
    if let Some(parameters) = document.get("Parameters").and_then(Value::as_mapping) {
        for (name, spec) in parameters {
            let default = spec.get("Default").and_then(|d| match d {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            });
            if let (Some(name), Some(default)) = (name.as_str(), default) {
                defaults.insert(name.to_string(), default);
            }
        }
    }
    (images, defaults)
}

/// A string, `!Ref`/`{Ref}` or `!Sub`/`{Fn::Sub}` (the string form).
pub(super) fn expression(value: &Value) -> Option<ImageExpression> {
    match value {
        Value::String(text) => Some(ImageExpression::Text(text.clone())),
        Value::Tagged(tagged) => match (tagged.tag.to_string().as_str(), &tagged.value) {
            ("!Ref", Value::String(name)) => Some(ImageExpression::Ref(name.clone())),
            ("!Sub", Value::String(text)) => Some(ImageExpression::Text(text.clone())),
            _ => None,
        },
        Value::Mapping(mapping) if mapping.len() == 1 => {
            match (mapping.get("Ref"), mapping.get("Fn::Sub")) {
                (Some(Value::String(name)), _) => Some(ImageExpression::Ref(name.clone())),
                (_, Some(Value::String(text))) => Some(ImageExpression::Text(text.clone())),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The image with what is known filled in. References in the registry or
/// repository part that stay unknown (`${AWS::AccountId}`) do not matter
/// for the tag and are filled with a placeholder; an unknown reference in
/// the tag means the tag is unknown: `None`.
pub fn resolve_image(
    expression: &ImageExpression,
    known: &BTreeMap<String, String>,
) -> Option<String> {
    let text = match expression {
        ImageExpression::Ref(name) => return known.get(name).cloned(),
        ImageExpression::Text(text) => text,
    };
    let mut resolved = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}')? + start;
        let name = &rest[start + 2..end];
        resolved.push_str(&rest[..start]);
        match known.get(name) {
            Some(value) => resolved.push_str(value),
            // A marker no image name contains, judged below.
            None => resolved.push('\u{1}'),
        }
        rest = &rest[end + 1..];
    }
    resolved.push_str(rest);
    let last_part = resolved.rsplit('/').next().unwrap_or(&resolved);
    let tag_unknown = last_part
        .split_once([':', '@'])
        .is_some_and(|(_, tag)| tag.contains('\u{1}'));
    if tag_unknown {
        return None;
    }
    Some(resolved.replace('\u{1}', "x"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Tag:
    Type: String
    Default: latest
  Given:
    Type: String
Resources:
  Web:
    Type: AWS::ECS::TaskDefinition
    Properties:
      ContainerDefinitions:
        - Name: app
          Image: !Sub "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/web:${Tag}"
        - Name: proxy
          Image: nginx
        - Name: pinned
          Image: {"Fn::Sub": "repo/web:${Given}"}
        - Name: param
          Image: !Ref Given
  Queue:
    Type: AWS::SQS::Queue
"#;

    #[test]
    fn images_are_read_with_their_expressions_and_defaults() {
        let (images, defaults) = template_images(TEMPLATE);
        let read: Vec<(&str, &ImageExpression)> = images
            .iter()
            .map(|i| (i.container.as_str(), &i.image))
            .collect();
        assert_eq!(
            read,
            [
                (
                    "app",
                    &ImageExpression::Text(
                        "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/web:${Tag}".into()
                    )
                ),
                ("proxy", &ImageExpression::Text("nginx".into())),
                ("pinned", &ImageExpression::Text("repo/web:${Given}".into())),
                ("param", &ImageExpression::Ref("Given".into())),
            ]
        );
        assert_eq!(defaults.get("Tag").map(String::as_str), Some("latest"));
        assert!(!defaults.contains_key("Given"));
    }

    #[test]
    fn only_a_known_tag_is_resolved() {
        let (images, defaults) = template_images(TEMPLATE);
        let resolved: Vec<Option<String>> = images
            .iter()
            .map(|i| resolve_image(&i.image, &defaults))
            .collect();
        assert_eq!(
            resolved,
            [
                Some("x.dkr.ecr.x.amazonaws.com/web:latest".into()),
                Some("nginx".into()),
                None,
                None,
            ]
        );
        let mut known = defaults.clone();
        known.insert("Given".into(), "1f2e3d4".into());
        assert_eq!(
            resolve_image(&images[2].image, &known).as_deref(),
            Some("repo/web:1f2e3d4")
        );
    }
}
