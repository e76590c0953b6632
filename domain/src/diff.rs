//! Differences between two versions, as a unified diff over a readable document of each
//! version (its template or messages, then its config one key per line).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use similar::{ChangeTag, DiffOp, TextDiff};

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
                    MessageRole::Placeholder => "[placeholder: messages given at render]\n",
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

/// A run of text on one side of a comparison; `changed` marks words that differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub text: String,
    pub changed: bool,
}

/// One line on one side: its number (from 1) and its text in segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideLine {
    pub number: i64,
    pub segments: Vec<Segment>,
}

/// One row of a side-by-side comparison: a line on the left, the right, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideRow {
    pub old: Option<SideLine>,
    pub new: Option<SideLine>,
}

impl SideRow {
    /// Whether the row shows a difference (a line only on one side, or changed words).
    pub fn is_change(&self) -> bool {
        match (&self.old, &self.new) {
            (Some(a), Some(b)) => a.segments.iter().chain(&b.segments).any(|s| s.changed),
            _ => true,
        }
    }
}

fn whole(number: usize, text: &str, changed: bool) -> SideLine {
    SideLine { number: number as i64 + 1, segments: vec![Segment { text: text.to_owned(), changed }] }
}

fn push_segment(segments: &mut Vec<Segment>, text: &str, changed: bool) {
    match segments.last_mut() {
        Some(last) if last.changed == changed => last.text.push_str(text),
        _ => segments.push(Segment { text: text.to_owned(), changed }),
    }
}

/// Lines of `old` and `new` side by side: equal lines paired, replaced lines paired with
/// the changed words marked on each side, removed and added lines alone.
pub fn side_by_side(old: &str, new: &str) -> Vec<SideRow> {
    let lines = TextDiff::from_lines(old, new);
    let (old_lines, new_lines) = (lines.old_slices(), lines.new_slices());
    let text = |s: &str| s.trim_end_matches(['\n', '\r']).to_owned();
    let mut rows = Vec::new();
    for op in lines.ops() {
        let (old_range, new_range) = (op.old_range(), op.new_range());
        match op {
            DiffOp::Equal { .. } => {
                for (o, n) in old_range.zip(new_range) {
                    let t = text(old_lines[o]);
                    rows.push(SideRow { old: Some(whole(o, &t, false)), new: Some(whole(n, &t, false)) });
                }
            }
            DiffOp::Delete { .. } | DiffOp::Insert { .. } | DiffOp::Replace { .. } => {
                let pairs = old_range.len().max(new_range.len());
                for i in 0..pairs {
                    let o = (i < old_range.len()).then(|| old_range.start + i);
                    let n = (i < new_range.len()).then(|| new_range.start + i);
                    rows.push(match (o, n) {
                        (Some(o), Some(n)) => paired(o, &text(old_lines[o]), n, &text(new_lines[n])),
                        (Some(o), None) => SideRow { old: Some(whole(o, &text(old_lines[o]), true)), new: None },
                        (None, Some(n)) => SideRow { old: None, new: Some(whole(n, &text(new_lines[n]), true)) },
                        (None, None) => unreachable!("i < max of the two lengths"),
                    });
                }
            }
        }
    }
    rows
}

/// A replaced line pair with the changed words marked.
fn paired(o: usize, old: &str, n: usize, new: &str) -> SideRow {
    let words = TextDiff::from_words(old, new);
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for change in words.iter_all_changes() {
        let value = change.value();
        match change.tag() {
            ChangeTag::Equal => {
                push_segment(&mut left, value, false);
                push_segment(&mut right, value, false);
            }
            ChangeTag::Delete => push_segment(&mut left, value, true),
            ChangeTag::Insert => push_segment(&mut right, value, true),
        }
    }
    SideRow {
        old: Some(SideLine { number: o as i64 + 1, segments: coalesce(left) }),
        new: Some(SideLine { number: n as i64 + 1, segments: coalesce(right) }),
    }
}

/// Joins changed words separated only by whitespace, so "Kind regards" reads as one
/// change rather than two.
fn coalesce(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    let mut iter = segments.into_iter().peekable();
    while let Some(seg) = iter.next() {
        let bridge = !seg.changed
            && seg.text.trim().is_empty()
            && out.last().is_some_and(|l| l.changed)
            && iter.peek().is_some_and(|n| n.changed);
        if bridge || seg.changed && out.last().is_some_and(|l| l.changed) {
            out.last_mut().expect("checked above").text.push_str(&seg.text);
        } else {
            out.push(seg);
        }
    }
    out
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

    fn changed_words(line: &SideLine) -> Vec<&str> {
        line.segments.iter().filter(|s| s.changed).map(|s| s.text.trim()).collect()
    }

    #[test]
    fn side_by_side_pairs_lines_and_marks_changed_words() {
        let rows = side_by_side("Hello there\nBe brief.\nBye\n", "Hello there\nBe warm and brief.\nBye\nThanks\n");
        assert_eq!(rows.len(), 4, "{rows:#?}");
        assert!(!rows[0].is_change() && !rows[2].is_change());
        let (old, new) = (rows[1].old.as_ref().unwrap(), rows[1].new.as_ref().unwrap());
        assert!(changed_words(old).is_empty(), "{old:?}");
        assert_eq!(changed_words(new), ["warm and"], "{new:?}");
        assert_eq!(new.segments.iter().map(|s| s.text.as_str()).collect::<String>(), "Be warm and brief.");
        assert!(rows[3].old.is_none() && rows[3].new.as_ref().unwrap().number == 4);

        let removed = side_by_side("a\nb\n", "a\n");
        assert_eq!(removed.len(), 2);
        assert!(removed[1].new.is_none() && removed[1].is_change());
        assert!(side_by_side("same\n", "same\n").iter().all(|r| !r.is_change()));

        let rows = side_by_side("Best wishes, team\n", "Kind regards, team\n");
        assert_eq!(changed_words(rows[0].old.as_ref().unwrap()), ["Best wishes,"]);
        assert_eq!(changed_words(rows[0].new.as_ref().unwrap()), ["Kind regards,"]);
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
