//! `${NAME}` substitution in the parsed YAML tree.
//!
//! Owns the rules: `${NAME}` in a string value is replaced by the variable `NAME`, `$${`
//! stands for a literal `${`, and substituted values are not expanded again. Keys,
//! numbers and booleans are left alone. The environment is read only through the lookup
//! it is given, and a message names a variable, never a value.

use yaml_serde::Value;

use super::place::{Place, Problems};

/// Expands `${NAME}` in every string value of the tree, reporting unset variables.
pub(super) fn expand_env(
    value: &mut Value,
    place: &Place,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) {
    match value {
        Value::String(text) => match expand(text, env) {
            Ok(expanded) => *text = expanded,
            Err(messages) => {
                for message in messages {
                    problems.add(place, message);
                }
                problems.unexpanded.push(place.clone());
            }
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &place.index(i), env, problems);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                expand_env(item, &place.key(&key_text(key)), env, problems);
            }
        }
        Value::Tagged(tagged) => expand_env(&mut tagged.value, place, env, problems),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `text` with `${NAME}` replaced and `$${` turned into `${`; substituted values are not
/// expanded again.
pub(super) fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some((before, after)) = rest.split_once('$') {
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some((name, tail)) = tail.split_once('}') else {
                errors.push("`${` without a closing `}` (write `$${` for a literal `${`)".into());
                rest = "";
                break;
            };
            if !is_env_name(name) {
                errors.push(format!(
                    "`${{{name}}}`: not an environment variable name (letters, digits and `_`, \
                     not starting with a digit; write `$${{` for a literal `${{`)"
                ));
            } else if let Some(value) = env(name) {
                out.push_str(&value);
            } else {
                errors.push(format!("environment variable {name} is not set"));
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The text of a mapping key, for paths.
fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => "?".to_string(),
    }
}
