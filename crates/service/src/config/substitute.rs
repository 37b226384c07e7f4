//! `${VAR}` and `${VAR:default}` substitution (the rules are in the
//! module documentation of [`config`](super)).

use serde_yaml_ng::Value;

use super::ConfigError;

/// Replaces `${VAR}` / `${VAR:default}` in every string value; errors
/// name the key path (`path`, the keys above `value`).
pub(super) fn substitute(
    value: Value,
    env: &dyn Fn(&str) -> Option<String>,
    path: &mut Vec<String>,
) -> Result<Value, ConfigError> {
    Ok(match value {
        Value::String(text) if text.contains("${") => {
            let replaced = replace_vars(&text, env)
                .map_err(|message| ConfigError::invalid(key_path(path), message))?;
            reread(replaced)
        }
        Value::Mapping(map) => {
            let mut out = serde_yaml_ng::Mapping::new();
            for (key, value) in map {
                path.push(key_name(&key));
                let value = substitute(value, env, path)?;
                path.pop();
                out.insert(key, value);
            }
            Value::Mapping(out)
        }
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(i.to_string());
                out.push(substitute(item, env, path)?);
                path.pop();
            }
            Value::Sequence(out)
        }
        Value::Tagged(mut tagged) => {
            tagged.value = substitute(tagged.value, env, path)?;
            Value::Tagged(tagged)
        }
        other => other,
    })
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

fn key_path(path: &[String]) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.join(".")
    }
}

/// The text with every `${VAR}` / `${VAR:default}` replaced.
fn replace_vars(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            // Not quoting the value: it may hold a password (the error names the key).
            .ok_or_else(|| "unterminated ${...}".to_owned())?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "`${{{inner}}}` does not name an environment variable (letters, digits, _)"
            ));
        }
        match env(name) {
            Some(value) => out.push_str(&value),
            None => out.push_str(default.unwrap_or("")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads substituted text as YAML when it is a boolean, number or null
/// (or a quoted string); otherwise keeps the text as is.
fn reread(text: String) -> Value {
    if text.is_empty() {
        return Value::String(text);
    }
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(value @ (Value::Bool(_) | Value::Number(_) | Value::Null)) => value,
        Ok(value @ Value::String(_)) if text.trim_start().starts_with(['\'', '"']) => value,
        _ => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, env_from};

    fn subst(text: &str) -> Value {
        let env = env_from([
            ("SET", "value"),
            ("EMPTY", ""),
            ("NUM", "42"),
            ("T", "true"),
        ]);
        substitute(Value::String(text.into()), &env, &mut Vec::new()).expect("substitutes")
    }

    #[test]
    fn substitution_rules() {
        assert_eq!(subst("${SET}"), Value::String("value".into()));
        assert_eq!(subst("${MISSING}"), Value::String(String::new()));
        assert_eq!(subst("${MISSING:false}"), Value::Bool(false));
        assert_eq!(subst("${MISSING:False}"), Value::Bool(false));
        assert_eq!(subst("${NUM}"), Value::Number(42.into()));
        assert_eq!(subst("${T:false}"), Value::Bool(true));
        assert_eq!(subst("${EMPTY:default}"), Value::String(String::new()));
        assert_eq!(
            subst("redis://${MISSING:localhost}:6379/11"),
            Value::String("redis://localhost:6379/11".into())
        );
        assert_eq!(
            subst("${MISSING:redis://h:1/2}"),
            Value::String("redis://h:1/2".into())
        );
        assert_eq!(subst("${MISSING:a #b: c}"), Value::String("a #b: c".into()));
        assert_eq!(subst("${MISSING:'123'}"), Value::String("123".into()));
        assert_eq!(subst("${MISSING:~}"), Value::Null);
    }

    #[test]
    fn bad_substitutions_name_the_key() {
        let err = Config::from_yaml_with_env("SALESFORCE:\n  USERNAME: ${oops", |_| None)
            .expect_err("unterminated");
        assert_eq!(err.key(), Some("SALESFORCE.USERNAME"));
        let err = Config::from_yaml_with_env("A: ${1X}", |_| None).expect_err("bad name");
        assert_eq!(err.key(), Some("A"));
    }

    #[test]
    fn substitution_errors_never_quote_the_value() {
        let err = Config::from_yaml_with_env("AMQP_URI: 'pyamqp://guest:s3cret@${HOST'", |_| None)
            .expect_err("unterminated");
        assert_eq!(err.key(), Some("AMQP_URI"));
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
