//! `${VAR}` interpolation, so secrets can live in the environment instead of the config file.

/// A `${NAME}` whose variable is not set, reported with the option that referred to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    pub var: String,
}

/// A lookup of environment variables, injectable so tests never depend on the real environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as an [`EnvLookup`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Replaces every `${NAME}` in `value` with the variable's value. `$${` writes a literal `${`.
/// A `$` not followed by `{` is kept as is, so ordinary dollar signs need no escaping.
pub fn interpolate(value: &str, env: EnvLookup<'_>) -> Result<String, MissingVar> {
    if !value.contains('$') {
        return Ok(value.to_owned());
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix("${") {
            match open.find('}') {
                Some(end) => {
                    let name = &open[..end];
                    match env(name) {
                        Some(found) => out.push_str(&found),
                        None => {
                            return Err(MissingVar {
                                var: name.to_owned(),
                            })
                        }
                    }
                    rest = &open[end + 1..];
                }
                // An unclosed `${` is kept literally: it cannot name a variable.
                None => {
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `value` takes anything from the environment (used to tell literal secrets apart).
pub fn refers_to_env(value: &str) -> bool {
    value.replace("$${", "").contains("${")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER_NAME" => Some("alice".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_every_reference() {
        assert_eq!(
            interpolate("a ${USER_NAME} b ${USER_NAME}", &env).unwrap(),
            "a alice b alice"
        );
        assert_eq!(interpolate("x${EMPTY}y", &env).unwrap(), "xy");
    }

    #[test]
    fn keeps_plain_dollars_and_escapes() {
        assert_eq!(interpolate("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(interpolate("$${USER_NAME}", &env).unwrap(), "${USER_NAME}");
        assert_eq!(
            interpolate("open ${USER_NAME", &env).unwrap(),
            "open ${USER_NAME"
        );
    }

    #[test]
    fn names_the_missing_variable() {
        assert_eq!(
            interpolate("${USER_NAME}:${NOPE}", &env),
            Err(MissingVar { var: "NOPE".into() })
        );
    }

    #[test]
    fn tells_references_from_literals() {
        assert!(refers_to_env("${SECRET}"));
        assert!(!refers_to_env("literal-secret"));
        assert!(!refers_to_env("$${escaped}"));
    }
}
