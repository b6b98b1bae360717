//! The strict JSON-object reader every part of a token goes through: a member named twice is
//! refused.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON object with no member named twice, for JWS headers and JWT claim sets. RFC 7515 §5.2
/// allows either refusing duplicates or taking the last; refusing means no other parser on the
/// token's way can read a different `alg`, `exp` or `sub` than this one did.
pub fn json_object(json: &[u8]) -> Result<Map<String, Value>, serde_json::Error> {
    struct Unique(Map<String, Value>);
    struct UniqueVisitor;

    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Unique, A::Error> {
            let mut map = Map::new();
            while let Some(name) = members.next_key::<String>()? {
                if map.contains_key(&name) {
                    return Err(de::Error::custom("duplicate member"));
                }
                map.insert(name, members.next_value()?);
            }
            Ok(Unique(map))
        }
    }

    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(UniqueVisitor)
        }
    }

    serde_json::from_slice::<Unique>(json).map(|u| u.0)
}
