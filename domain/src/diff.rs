//! Differences between two versions, as a unified diff over a readable document of each
//! version (its template or messages, then its config one key per line).

use serde_json::{Map, Value};
use similar::TextDiff;

use crate::canonical::to_canonical_json;
use crate::content::{MessageRole, PromptBody};

/// A version as the text people compare: body first, then the config sorted by key.
pub fn document(body: &PromptBody, config: &Map<String, Value>) -> String {
    let mut out = String::new();
    match body {
        PromptBody::Text(t) => push_block(&mut out, t),
        PromptBody::Chat(messages) => {
            for m in messages {
                out.push_str(match m.role {
                    MessageRole::System => "[system]\n",
                    MessageRole::User => "[user]\n",
                    MessageRole::Assistant => "[assistant]\n",
                });
                push_block(&mut out, &m.content);
            }
        }
    }
    out.push_str("[config]\n");
    let mut keys: Vec<_> = config.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in keys {
        out.push_str(&format!("{key}: {}\n", to_canonical_json(value)));
    }
    out
}

fn push_block(out: &mut String, text: &str) {
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
}

/// Unified diff (3 lines of context) from `old` to `new`.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(old_name, new_name).to_string()
}

/// Whether two configs differ (key order ignored).
pub fn config_changed(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    to_canonical_json(&Value::Object(a.clone())) != to_canonical_json(&Value::Object(b.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Message;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn diff_shows_text_and_config_changes() {
        let a = document(&PromptBody::Text("Hello {{ x }}\nBye".into()), &map(json!({"model": "a", "t": 0.2})));
        let b = document(&PromptBody::Text("Hi {{ x }}\nBye".into()), &map(json!({"t": 0.2, "model": "b"})));
        let d = unified(&a, &b, "v1", "v2");
        assert!(d.starts_with("--- v1\n+++ v2\n"), "{d}");
        assert!(d.contains("-Hello {{ x }}\n+Hi {{ x }}\n"), "{d}");
        assert!(d.contains("-model: \"a\"\n+model: \"b\"\n"), "{d}");
        assert!(config_changed(&map(json!({"model": "a"})), &map(json!({"model": "b"}))));
        assert!(!config_changed(&map(json!({"a": 1, "b": 2})), &map(json!({"b": 2, "a": 1}))));
        assert_eq!(unified(&a, &a, "v1", "v1"), "");
    }

    #[test]
    fn chat_documents_name_roles() {
        let doc = document(
            &PromptBody::Chat(vec![Message { role: MessageRole::System, content: "Be kind".into() }]),
            &Map::new(),
        );
        assert_eq!(doc, "[system]\nBe kind\n[config]\n");
    }
}
