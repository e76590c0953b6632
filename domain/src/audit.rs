//! The audit chain's hash. Each event's hash covers its own fields and the previous
//! event's hash, so changing, removing or reordering any event breaks every hash after it.
//!
//! The hashed bytes are the canonical JSON array
//! `[seq, at, actor, action, prompt, version, label, detail, prev_hash]`
//! (`detail` as its stored canonical JSON text), so anyone can recompute a chain from
//! `GET /api/v1/audit` with a few lines of code.

use crate::canonical::{sha256_tagged, write_json_string};

/// `prev_hash` of the first event.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of one event that its hash covers.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    pub seq: i64,
    /// RFC 3339 UTC time, exactly as stored and served.
    pub at: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub prompt: Option<&'a str>,
    pub version: Option<i64>,
    pub label: Option<&'a str>,
    /// Canonical JSON text of the event's detail object.
    pub detail: &'a str,
    pub prev_hash: &'a str,
}

impl EventFields<'_> {
    /// `sha256:` + hex SHA-256 of the canonical JSON array of the fields, written
    /// directly (this runs once per event when the whole chain is verified).
    pub fn hash(&self) -> String {
        let mut out = String::with_capacity(160 + self.detail.len() + self.actor.len());
        out.push('[');
        out.push_str(&self.seq.to_string());
        for text in [Some(self.at), Some(self.actor), Some(self.action), self.prompt] {
            out.push(',');
            push_optional(&mut out, text);
        }
        out.push(',');
        match self.version {
            Some(v) => out.push_str(&v.to_string()),
            None => out.push_str("null"),
        }
        for text in [self.label, Some(self.detail), Some(self.prev_hash)] {
            out.push(',');
            push_optional(&mut out, text);
        }
        out.push(']');
        sha256_tagged(out.as_bytes())
    }
}

fn push_optional(out: &mut String, text: Option<&str>) {
    match text {
        Some(t) => write_json_string(out, t),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, prev: &str) -> EventFields<'_> {
        EventFields {
            seq,
            at: "2026-03-15T14:47:00.000000Z",
            actor: "alice",
            action: "label.moved",
            prompt: Some("support/greeting"),
            version: Some(3),
            label: Some("stable"),
            detail: r#"{"reason":"ship"}"#,
            prev_hash: prev,
        }
    }

    #[test]
    fn the_hash_is_over_the_canonical_array() {
        let e = event(7, GENESIS);
        let expected = crate::canonical::to_canonical_json(&serde_json::json!([
            e.seq,
            e.at,
            e.actor,
            e.action,
            e.prompt,
            e.version,
            e.label,
            e.detail,
            e.prev_hash
        ]));
        assert_eq!(e.hash(), sha256_tagged(expected.as_bytes()));
        let bare = EventFields { prompt: None, version: None, label: None, ..e };
        let expected = crate::canonical::to_canonical_json(&serde_json::json!([
            bare.seq,
            bare.at,
            bare.actor,
            bare.action,
            null,
            null,
            null,
            bare.detail,
            bare.prev_hash
        ]));
        assert_eq!(bare.hash(), sha256_tagged(expected.as_bytes()));
    }

    #[test]
    fn every_field_is_covered() {
        let base = event(1, GENESIS);
        let h = base.hash();
        assert!(h.starts_with("sha256:") && h.len() == 71);
        let variants = [
            EventFields { seq: 2, ..base },
            EventFields { at: "2026-03-15T14:47:00.000001Z", ..base },
            EventFields { actor: "bob", ..base },
            EventFields { action: "version.created", ..base },
            EventFields { prompt: None, ..base },
            EventFields { version: Some(4), ..base },
            EventFields { label: Some("canary"), ..base },
            EventFields { detail: "{}", ..base },
            EventFields { prev_hash: &h, ..base },
        ];
        for v in variants {
            assert_ne!(v.hash(), h, "{v:?}");
        }
        assert_eq!(event(1, GENESIS).hash(), h);
    }
}
