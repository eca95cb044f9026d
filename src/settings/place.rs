//! Places in the settings document, and the problems found there.
//!
//! Owns [`Place`] (a path such as `servers[2].auth.token_url`, and how it is printed) and
//! [`Problems`], the list every check adds to: it turns a field's node into its value
//! (reporting a wrong type or unknown keys on the way) and, at the end, into
//! [`Problem`]s in file order. It reads no YAML itself; lines come from
//! [`locate`](super::locate).
//!
//! Invariant: a string whose `${NAME}` could not be expanded is reported once, by the
//! substitution; what later checks would say about its unexpanded text is dropped.

use std::fmt;

use super::locate::locate;
use super::raw::Node;
use super::Problem;

/// Lines are looked up for at most this many problems (each look-up reads the file again).
const MAX_LOCATED_PROBLEMS: usize = 200;

/// A path into the document: `servers[2].auth.token_url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Place(pub(super) Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

impl Place {
    pub(super) fn key(&self, key: &str) -> Place {
        self.join(&Place(vec![Segment::Key(key.to_string())]))
    }

    pub(super) fn index(&self, index: usize) -> Place {
        self.join(&Place(vec![Segment::Index(index)]))
    }

    fn join(&self, relative: &Place) -> Place {
        Place(self.0.iter().chain(&relative.0).cloned().collect())
    }

    /// The place `serde_ignored` reports, relative to the node it deserialized.
    pub(super) fn of_ignored(path: &serde_ignored::Path<'_>) -> Place {
        use serde_ignored::Path as P;
        match path {
            P::Root => Place::default(),
            P::Seq { parent, index } => Place::of_ignored(parent).index(*index),
            P::Map { parent, key } => Place::of_ignored(parent).key(key),
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                Place::of_ignored(parent)
            }
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let plain = !key.is_empty()
                        && !key.chars().any(|c| {
                            matches!(c, '.' | '[' | ']' | '"')
                                || c.is_whitespace()
                                || c.is_control()
                        });
                    if plain {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The problems found so far, with their places.
#[derive(Default)]
pub(super) struct Problems {
    found: Vec<(Place, String)>,
    /// Strings whose `${NAME}` could not be expanded: already reported, so what the
    /// unexpanded text would cause there is not.
    pub(super) unexpanded: Vec<Place>,
}

impl Problems {
    pub(super) fn add(&mut self, place: &Place, message: impl Into<String>) {
        if !self.unexpanded.contains(place) {
            self.found.push((place.clone(), message.into()));
        }
    }

    pub(super) fn count(&self) -> usize {
        self.found.len()
    }

    /// The value of a field that may be absent; reports its type error or unknown keys.
    pub(super) fn optional<T>(&mut self, place: &Place, field: Option<Node<T>>) -> Option<T> {
        match field? {
            Node::Parsed { value, unknown } => {
                for relative in unknown {
                    self.add(&place.join(&relative), "unknown key");
                }
                Some(value)
            }
            Node::Invalid(message) => {
                self.add(place, message);
                None
            }
        }
    }

    /// The value of a field that must be present.
    pub(super) fn required<T>(&mut self, place: &Place, field: Option<Node<T>>) -> Option<T> {
        if field.is_none() {
            self.add(place, "required, but missing");
        }
        self.optional(place, field)
    }

    /// The problems with their lines, in file order.
    pub(super) fn located(self, text: &str) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .found
            .into_iter()
            .enumerate()
            .map(|(i, (place, message))| Problem {
                line: (i < MAX_LOCATED_PROBLEMS)
                    .then(|| locate(text, &place))
                    .flatten(),
                path: place.to_string(),
                message,
            })
            .collect();
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        problems
    }
}
