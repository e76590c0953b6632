//! Prompt and label name rules (API.md, "Names").

/// A name that breaks a rule; the message says which rule in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

pub const PROMPT_NAME_MAX: usize = 128;
pub const LABEL_MAX: usize = 36;
/// Always the newest version; moved by the registry itself, never by a person.
pub const LATEST: &str = "latest";
/// The production channel; protected from the start.
pub const STABLE: &str = "stable";

fn segment_ok(segment: &str) -> bool {
    let mut chars = segment.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// `^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$`, 1 to 128 characters.
pub fn validate_prompt_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > PROMPT_NAME_MAX {
        return Err(NameError(format!(
            "a prompt name must be 1 to {PROMPT_NAME_MAX} characters long (this one has {})",
            name.chars().count()
        )));
    }
    if !name.split('/').all(segment_ok) {
        return Err(NameError(format!(
            "'{name}' is not a valid prompt name: use lowercase letters, digits, '_', '.' and '-', \
             start each part with a letter or digit, and separate folders with single '/'"
        )));
    }
    Ok(())
}

/// `^[a-z0-9][a-z0-9_.-]*$`, 1 to 36 characters.
pub fn validate_label(label: &str) -> Result<(), NameError> {
    if label.is_empty() || label.len() > LABEL_MAX {
        return Err(NameError(format!("a label must be 1 to {LABEL_MAX} characters long")));
    }
    if !segment_ok(label) {
        return Err(NameError(format!(
            "'{label}' is not a valid label: use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Whether `name` can name a template variable: a letter or `_`, then letters, digits
/// and `_`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// The folder part of a prompt name (`support/greeting` → `support`), if any.
pub fn folder_of(name: &str) -> Option<&str> {
    name.rsplit_once('/').map(|(folder, _)| folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_names() {
        for ok in ["a", "support/greeting", "x1.v2_b-c", "a/b/c", "0"] {
            assert!(validate_prompt_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", "Support", "/a", "a/", "a//b", "-a", "a/_b", "a b", "é", long.as_str(), "a/.b"] {
            assert!(validate_prompt_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_prompt_name(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn labels() {
        for ok in ["stable", "latest", "canary-2", "v1.0", "a_b"] {
            assert!(validate_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Stable", "a/b", ".x", "x y", &"a".repeat(37)] {
            assert!(validate_label(bad).is_err(), "{bad:?}");
        }
        assert!(validate_label(&"a".repeat(36)).is_ok());
    }

    #[test]
    fn folders() {
        assert_eq!(folder_of("support/en/greeting"), Some("support/en"));
        assert_eq!(folder_of("greeting"), None);
    }
}
