//! The line of a [`Place`] in the text of a settings file.
//!
//! serde gives positions only in errors, so [`locate`] walks the YAML text with visitors
//! that fail on reaching the place (or on finding that its next step does not exist), and
//! reads the line of that error. Owns that walk only: it keeps no value and reports no
//! problem.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};

use super::place::{Place, Segment};

/// The line of `place` in `text`, or of the nearest enclosing node that exists.
///
/// serde gives positions only in errors, so this walks the document with a visitor that
/// fails on reaching the place (or on finding that the next step does not exist), and
/// reads the line of that error.
pub(super) fn locate(text: &str, place: &Place) -> Option<usize> {
    LocateSeed(&place.0)
        .deserialize(yaml_serde::Deserializer::from_str(text))
        .err()
        .and_then(|e| e.location())
        .map(|l| l.line())
}

struct LocateSeed<'a>(&'a [Segment]);

impl<'de> DeserializeSeed<'de> for LocateSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for LocateSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node on the path")
    }

    // Scalars: the defaults fail, which locates the scalar.

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.0.split_first() else {
            return Err(de::Error::custom("here"));
        };
        let last = rest.is_empty();
        while let Some(found) = map.next_key_seed(KeySeed { wanted, last })? {
            if found {
                return map.next_value_seed(LocateSeed(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom("not here"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.0.split_first() else {
            return Err(de::Error::custom("here"));
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom("not here"));
            }
        }
        match seq.next_element_seed(LocateSeed(rest))? {
            Some(()) => Ok(()),
            None => Err(de::Error::custom("not here")),
        }
    }
}

/// A mapping key: fails when it is the last step of the path (locating the key itself),
/// returns whether it is the next step otherwise.
struct KeySeed<'a> {
    wanted: &'a str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match (key == self.wanted, self.last) {
            (true, true) => Err(E::custom("here")),
            (found, _) => Ok(found),
        }
    }

    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_f64<E: de::Error>(self, key: f64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}
