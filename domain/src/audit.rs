//! The audit chain's hash. Each event's hash covers its own fields and the previous
//! event's hash, so changing, removing or reordering any event breaks every hash after it.
//!
//! The hashed bytes are the canonical JSON array
//! `[seq, at, actor, action, prompt, version, label, detail, prev_hash]`
//! (`detail` as its stored canonical JSON text), so anyone can recompute a chain from
//! `GET /api/v1/audit` with a few lines of code.

use serde_json::json;

use crate::canonical::{sha256_tagged, to_canonical_json};

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
    pub fn hash(&self) -> String {
        let fields = json!([
            self.seq, self.at, self.actor, self.action, self.prompt, self.version, self.label,
            self.detail, self.prev_hash
        ]);
        sha256_tagged(to_canonical_json(&fields).as_bytes())
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
