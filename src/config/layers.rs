//! The layers of a configuration: built-in defaults, then the TOML file, then
//! `GLASSCAST_<SECTION>_<KEY>` environment variables, then command-line flags. Every value is
//! checked against the type of its default here, so one bad value never hides another: each
//! problem is reported and the default stands in while the rest is validated.

use std::collections::BTreeMap;

use toml::{Table, Value};

use super::sections::Sections;

/// Where each non-default value came from, for error messages.
pub type Origins = BTreeMap<(String, String), &'static str>;

/// Sections with their values' origins.
pub struct Layered {
    pub sections: Sections,
    pub origins: Origins,
}

impl Layered {
    /// `section.key = "value" (from SOURCE)` for messages about a value.
    pub fn describe(&self, section: &str, key: &str, value: &str) -> String {
        let source = self
            .origins
            .get(&(section.to_string(), key.to_string()))
            .copied()
            .unwrap_or("default");
        format!("{section}.{key} = {value:?} (from {source})")
    }
}

/// The defaults as a TOML table: `section -> key -> typed value`.
pub fn defaults() -> Table {
    Table::try_from(Sections::default()).unwrap_or_else(|_| unreachable!("plain structs"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) => "a whole number",
        Value::Boolean(_) => "true or false",
        _ => "text",
    }
}

/// `v` as the type of `default`: numbers and booleans may arrive as text (the environment
/// only has text), text may arrive as a number or boolean (a numeric token).
fn coerce(default: &Value, v: Value) -> Result<Value, String> {
    let want = type_name(default);
    match (default, v) {
        (Value::Integer(_), Value::Integer(i)) if i >= 0 => Ok(Value::Integer(i)),
        (Value::Integer(_), Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(i) if i >= 0 => Ok(Value::Integer(i)),
            _ => Err(format!("{s:?} is not {want} (0 or more)")),
        },
        (Value::Boolean(_), Value::Boolean(b)) => Ok(Value::Boolean(b)),
        (Value::Boolean(_), Value::String(s)) => match s.trim() {
            "true" => Ok(Value::Boolean(true)),
            "false" => Ok(Value::Boolean(false)),
            _ => Err(format!("{s:?} is not {want}")),
        },
        (Value::String(_), Value::String(s)) => Ok(Value::String(s)),
        (Value::String(_), Value::Integer(i)) => Ok(Value::String(i.to_string())),
        (Value::String(_), Value::Boolean(b)) => Ok(Value::String(b.to_string())),
        (_, other) => Err(format!("must be {want}, got {}", other.type_str())),
    }
}

/// The table at a dotted section path (`managed.cloudflare`).
fn section<'a>(t: &'a Table, path: &str) -> Option<&'a Table> {
    path.split('.')
        .try_fold(t, |t, name| t.get(name).and_then(Value::as_table))
}

fn section_mut<'a>(t: &'a mut Table, path: &str) -> Option<&'a mut Table> {
    path.split('.')
        .try_fold(t, |t, name| match t.get_mut(name) {
            Some(Value::Table(t)) => Some(t),
            _ => None,
        })
}

/// Every section's dotted path (a section holds at least one setting, and may hold further
/// sections: `managed` holds `managed.cloudflare`).
pub fn section_paths(t: &Table) -> Vec<String> {
    fn walk(prefix: &str, t: &Table, out: &mut Vec<String>) {
        for (k, v) in t {
            if let Value::Table(sub) = v {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(path.clone());
                walk(&path, sub, out);
            }
        }
    }
    let mut out = Vec::new();
    walk("", t, &mut out);
    out
}

/// The default of `section.key` when that is a setting (not a section).
pub fn default_of(t: &Table, section_path: &str, key: &str) -> Option<Value> {
    section(t, section_path)?
        .get(key)
        .filter(|v| !v.is_table())
        .cloned()
}

/// Builds the sections from the layers; returns them with every problem found.
pub fn layer(
    file: Option<(&str, &str)>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &[(&str, &str, Option<&String>)],
) -> (Layered, Vec<String>) {
    let mut errors = Vec::new();
    let mut merged = defaults();
    let sections = section_paths(&merged);
    let mut origins = Origins::new();
    let mut set = |section: &str,
                   key: &str,
                   v: Value,
                   source: &'static str,
                   errors: &mut Vec<String>,
                   merged: &mut Table| {
        let Some(default) = default_of(merged, section, key) else {
            return false;
        };
        match coerce(&default, v) {
            Ok(v) => {
                if let Some(t) = section_mut(merged, section) {
                    t.insert(key.to_string(), v);
                }
                origins.insert((section.to_string(), key.to_string()), source);
            }
            // Secrets may be misplaced in the wrong key: name the key, not the value.
            Err(e) => errors.push(format!("{section}.{key} (from {source}): {e}")),
        }
        true
    };

    if let Some((name, text)) = file {
        match text.parse::<Table>() {
            Ok(table) => {
                // (section path, its table in the file), walked depth first.
                let mut todo: Vec<(String, Table)> = Vec::new();
                for (top, v) in table {
                    match v {
                        Value::Table(keys) => todo.push((top, keys)),
                        _ => errors.push(format!("{name}: `{top}` must be a [section]")),
                    }
                }
                while let Some((path, keys)) = todo.pop() {
                    for (key, value) in keys {
                        let nested = format!("{path}.{key}");
                        match value {
                            Value::Table(t) if sections.contains(&nested) => todo.push((nested, t)),
                            value => {
                                if !set(&path, &key, value, "config file", &mut errors, &mut merged)
                                {
                                    errors.push(format!("{name}: unknown key `{path}.{key}`"));
                                }
                            }
                        }
                    }
                }
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("GLASSCAST_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        // `managed_cloudflare_api_token`: the section is the longest known one whose name
        // (dots as underscores) is a prefix, with a setting named by the rest.
        let found = sections
            .iter()
            .filter_map(|section| {
                let key = rest
                    .strip_prefix(&section.replace('.', "_"))?
                    .strip_prefix('_')?;
                default_of(&merged, section, key).map(|_| (section.clone(), key.to_string()))
            })
            .max_by_key(|(section, _)| section.len());
        match found {
            Some((section, key)) => {
                set(
                    &section,
                    &key,
                    Value::String(v),
                    "environment",
                    &mut errors,
                    &mut merged,
                );
            }
            None => errors.push(format!("environment: {k} is not a known setting")),
        }
    }
    for (section, key, value) in flags {
        if let Some(v) = value {
            set(
                section,
                key,
                Value::String((*v).clone()),
                "command line",
                &mut errors,
                &mut merged,
            );
        }
    }
    let sections = Value::Table(merged)
        .try_into::<Sections>()
        .unwrap_or_else(|e| {
            // Every value was checked against its default's type above; this cannot happen
            // short of a bug, and then the defaults are the safe answer.
            errors.push(format!("configuration: {e}"));
            Sections::default()
        });
    (Layered { sections, origins }, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_documented_and_every_doc_is_a_key() {
        let d = defaults();
        let mut keys: Vec<(String, String)> = section_paths(&d)
            .into_iter()
            .flat_map(|s| {
                section(&d, &s)
                    .into_iter()
                    .flat_map(|t| t.iter())
                    .filter(|(_, v)| !v.is_table())
                    .map(|(k, _)| (s.clone(), k.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        let mut docs: Vec<(String, String)> = super::super::docs::DOCS
            .iter()
            .map(|(s, k, _)| (s.to_string(), k.to_string()))
            .collect();
        docs.sort();
        assert_eq!(keys, docs);
    }

    #[test]
    fn coercion() {
        let i = Value::Integer(1);
        assert_eq!(
            coerce(&i, Value::String(" 42 ".into())),
            Ok(Value::Integer(42))
        );
        assert!(coerce(&i, Value::String("-1".into())).is_err());
        assert!(coerce(&i, Value::Integer(-1)).is_err());
        assert!(coerce(&i, Value::Float(1.5)).is_err());
        let b = Value::Boolean(false);
        assert_eq!(
            coerce(&b, Value::String("true".into())),
            Ok(Value::Boolean(true))
        );
        assert!(coerce(&b, Value::String("yes".into())).is_err());
        let s = Value::String(String::new());
        assert_eq!(
            coerce(&s, Value::Integer(123)),
            Ok(Value::String("123".into()))
        );
        assert!(coerce(&s, Value::Array(vec![])).is_err());
    }
}
