//! ECS API shapes from the JSON users write in inputs (container overrides,
//! tags, capacity provider strategies, managed EBS volumes), read with the
//! SDK's own schema-driven codec and the API's wire names.
//!
//! The codec ignores a member it does not know, as the API does; in an
//! input that is a typo that would silently do nothing (`"comand"` in a
//! container override), so [`decode_strict`] refuses any member that does
//! not survive a round trip through the shape.

use aws_smithy_json::codec::{JsonCodec, JsonCodecSettings};
use aws_smithy_schema::Schema;
use aws_smithy_schema::codec::Codec;
use aws_smithy_schema::serde::{
    SerdeError, SerializableStruct, ShapeDeserializer, ShapeSerializer,
};
use serde_json::Value;

/// The codec for ECS's awsJson1.1 protocol: member names as on the wire.
pub fn ecs_json_codec() -> JsonCodec {
    JsonCodec::new(JsonCodecSettings::builder().use_json_name(false).build())
}

/// Reads one ECS shape from `value`, refusing members the shape does not
/// have. The error says what is wrong in words for the user (the member,
/// or the codec's complaint about a value's type).
pub fn decode_strict<T, F>(
    value: &Value,
    schema: &Schema<'static>,
    deserialize: F,
) -> Result<T, String>
where
    T: SerializableStruct,
    F: FnOnce(&mut dyn ShapeDeserializer) -> Result<T, SerdeError>,
{
    if !value.is_object() {
        return Err("is not a JSON object".to_string());
    }
    let bytes = serde_json::to_vec(value).map_err(|error| error.to_string())?;
    let codec = ecs_json_codec();
    let mut deserializer = codec.create_deserializer(&bytes);
    let decoded = deserialize(&mut deserializer).map_err(|error| error.to_string())?;
    let mut serializer = codec.create_serializer();
    serializer
        .write_struct(schema, &decoded)
        .map_err(|error| error.to_string())?;
    let round_trip: Value =
        serde_json::from_slice(&serializer.finish()).map_err(|error| error.to_string())?;
    if let Some(path) = first_unknown_member(value, &round_trip, "") {
        return Err(format!(
            "has `{path}`, which is not a member of this ECS shape (check its spelling and case against the ECS API reference)"
        ));
    }
    Ok(decoded)
}

/// The first member of `given` (a path like `environment[0].nmae`) that is
/// missing from `kept`, ignoring members whose value is `null`.
fn first_unknown_member(given: &Value, kept: &Value, at: &str) -> Option<String> {
    match (given, kept) {
        (Value::Object(given), Value::Object(kept)) => given.iter().find_map(|(key, value)| {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            match kept.get(key) {
                None if value.is_null() => None,
                None => Some(path),
                Some(inner) => first_unknown_member(value, inner, &path),
            }
        }),
        (Value::Array(given), Value::Array(kept)) => {
            given
                .iter()
                .zip(kept)
                .enumerate()
                .find_map(|(index, (value, inner))| {
                    first_unknown_member(value, inner, &format!("{at}[{index}]"))
                })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{ContainerOverride, ServiceManagedEbsVolumeConfiguration};
    use serde_json::json;

    fn container_override(value: Value) -> Result<ContainerOverride, String> {
        decode_strict(&value, ContainerOverride::SCHEMA, |d| {
            ContainerOverride::deserialize(d)
        })
    }

    #[test]
    fn known_members_are_read_with_their_types() {
        let read = container_override(json!({
            "name": "app",
            "command": ["bin/migrate", "--to", "latest"],
            "environment": [{"name": "STAGE", "value": "prod"}],
            "memory": 512
        }));
        let read = match read {
            Ok(read) => read,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(read.name(), Some("app"));
        assert_eq!(read.command(), ["bin/migrate", "--to", "latest"]);
        assert_eq!(read.environment()[0].value(), Some("prod"));
        assert_eq!(read.memory(), Some(512));
    }

    #[test]
    fn a_misspelt_member_is_refused_with_its_path() {
        for (value, path) in [
            (json!({"name": "app", "comand": ["x"]}), "`comand`"),
            (
                json!({"name": "app", "environment": [{"name": "A", "vale": "1"}]}),
                "`environment[0].vale`",
            ),
        ] {
            match container_override(value) {
                Err(error) => assert!(error.contains(path), "{error}"),
                Ok(read) => panic!("accepted {read:?}"),
            }
        }
        let volume = decode_strict(
            &json!({"roleArn": "arn:aws:iam::1:role/ebs", "sizeInGib": 20}),
            ServiceManagedEbsVolumeConfiguration::SCHEMA,
            |d| ServiceManagedEbsVolumeConfiguration::deserialize(d),
        );
        assert!(
            matches!(&volume, Err(e) if e.contains("`sizeInGib`")),
            "{volume:?}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_or_shape_is_refused() {
        assert!(container_override(json!(["app"])).is_err());
        assert!(container_override(json!({"name": "app", "command": "bin/migrate"})).is_err());
        assert!(container_override(json!({"name": "app", "memory": "lots"})).is_err());
    }
}
