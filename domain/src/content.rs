//! The content of a prompt version - its body (a text template or chat messages) and its
//! model config - with the derived variable list, the canonical content hash and strict
//! rendering.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::compose::{self, Composition, IncludeRef};
use crate::canonical::{sha256_tagged, to_canonical_json, write_json_string};
use crate::template::{self, RenderLimits, TemplateError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptType {
    Text,
    Chat,
}

impl PromptType {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptType::Text => "text",
            PromptType::Chat => "chat",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    System,
    User,
    Assistant,
    /// A place for a list of messages given when the prompt is rendered (a conversation's
    /// history): its `content` is the variable's name, and it is no template.
    Placeholder,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::System => "system",
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::Placeholder => "placeholder",
        }
    }
}

/// One chat message; `content` is a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: MessageRole,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptBody {
    Text(String),
    Chat(Vec<Message>),
}

impl PromptBody {
    pub fn prompt_type(&self) -> PromptType {
        match self {
            PromptBody::Text(_) => PromptType::Text,
            PromptBody::Chat(_) => PromptType::Chat,
        }
    }

    pub fn template(&self) -> Option<&str> {
        match self {
            PromptBody::Text(t) => Some(t),
            PromptBody::Chat(_) => None,
        }
    }

    pub fn messages(&self) -> Option<&[Message]> {
        match self {
            PromptBody::Text(_) => None,
            PromptBody::Chat(m) => Some(m),
        }
    }

    /// Each template with the name used for it in error messages (placeholders are none).
    fn templates(&self) -> Vec<(Option<String>, &str)> {
        match self {
            PromptBody::Text(t) => vec![(None, t.as_str())],
            PromptBody::Chat(messages) => messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.role != MessageRole::Placeholder)
                .map(|(i, m)| (Some(format!("messages[{i}]")), m.content.as_str()))
                .collect(),
        }
    }

    /// The names of its placeholder messages.
    fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.messages().unwrap_or_default().iter().filter(|m| m.role == MessageRole::Placeholder).map(|m| m.content.as_str())
    }
}

/// Checked content of one version: the templates parse, `variables` is derived from them.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub body: PromptBody,
    pub config: Map<String, Value>,
    /// Names the templates read, sorted.
    pub variables: Vec<String>,
}

/// The parts of a version in canonical JSON (`template` as plain text), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedParts {
    pub prompt_type: PromptType,
    pub template: Option<String>,
    pub messages: Option<String>,
    pub config: String,
    pub variables: String,
}

impl OwnedParts {
    pub fn borrowed(&self) -> Parts<'_> {
        Parts {
            prompt_type: self.prompt_type.as_str(),
            template: self.template.as_deref(),
            messages: self.messages.as_deref(),
            config: &self.config,
            variables: &self.variables,
        }
    }
}

/// Stored parts of a version, borrowed: enough to recompute its hash without parsing
/// anything, which is what makes verifying every stored version fast.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub prompt_type: &'a str,
    pub template: Option<&'a str>,
    /// Canonical JSON of the messages.
    pub messages: Option<&'a str>,
    /// Canonical JSON of the config object.
    pub config: &'a str,
    /// Canonical JSON of the variable list.
    pub variables: &'a str,
}

impl Parts<'_> {
    /// `{"config":…,"messages":…,"template":…,"type":…,"variables":…}`: the canonical
    /// JSON of the whole content, assembled from canonical parts (keys already sorted).
    pub fn document(&self) -> String {
        let mut out = String::with_capacity(
            64 + self.config.len()
                + self.variables.len()
                + self.messages.map_or(4, str::len)
                + self.template.map_or(4, |t| t.len() + 16),
        );
        out.push_str("{\"config\":");
        out.push_str(self.config);
        out.push_str(",\"messages\":");
        out.push_str(self.messages.unwrap_or("null"));
        out.push_str(",\"template\":");
        match self.template {
            Some(t) => write_json_string(&mut out, t),
            None => out.push_str("null"),
        }
        out.push_str(",\"type\":");
        write_json_string(&mut out, self.prompt_type);
        out.push_str(",\"variables\":");
        out.push_str(self.variables);
        out.push('}');
        out
    }

    pub fn hash(&self) -> String {
        sha256_tagged(self.document().as_bytes())
    }
}

/// The result of rendering a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Rendered {
    Text(String),
    Chat(Vec<Message>),
}

/// A chat prompt needs at least one message; more than this is surely a mistake.
pub const MAX_MESSAGES: usize = 200;

impl Content {
    /// Parses every template and derives the variables; a syntax error names where it is.
    pub fn new(body: PromptBody, config: Map<String, Value>) -> Result<Self, TemplateError> {
        if let PromptBody::Chat(messages) = &body
            && (messages.is_empty() || messages.len() > MAX_MESSAGES)
        {
            return Err(TemplateError::Render(format!("a chat prompt needs 1 to {MAX_MESSAGES} messages")));
        }
        let mut variables = BTreeSet::new();
        for (i, name) in body.placeholders().enumerate() {
            if !crate::names::is_identifier(name) {
                return Err(TemplateError::Syntax {
                    message: format!("a placeholder is named like a variable (letters, digits and _), not '{name}'"),
                    line: 1,
                    column: 1,
                    location: Some(format!("placeholder {}", i + 1)),
                });
            }
            variables.insert(name.to_owned());
        }
        for (location, source) in body.templates() {
            variables.extend(template::variables(source, location.as_deref())?);
            if let Err(e) = compose::includes_of(source) {
                let (line, column) = template::line_column(source, e.offset);
                return Err(TemplateError::Syntax { message: e.message, line, column, location });
            }
        }
        Ok(Self { body, config, variables: variables.into_iter().collect() })
    }

    /// Content read back from storage, already checked when it was saved. Nothing is
    /// parsed, so verifying a stored hash costs only the serialisation.
    pub fn stored(body: PromptBody, config: Map<String, Value>, variables: Vec<String>) -> Self {
        Self { body, config, variables }
    }

    /// The prompts its templates include, in order of first appearance, each once.
    pub fn includes(&self) -> Vec<IncludeRef> {
        let mut out: Vec<IncludeRef> = Vec::new();
        for (_, source) in self.body.templates() {
            if !source.contains("include") {
                continue;
            }
            // Checked when the version was saved.
            for target in compose::includes_of(source).unwrap_or_default() {
                if !out.contains(&target) {
                    out.push(target);
                }
            }
        }
        out
    }

    /// Each part in canonical JSON, as storage keeps it.
    pub fn parts(&self) -> OwnedParts {
        OwnedParts {
            prompt_type: self.body.prompt_type(),
            template: self.body.template().map(str::to_owned),
            messages: self
                .body
                .messages()
                .map(|m| to_canonical_json(&serde_json::to_value(m).expect("messages serialise"))),
            config: to_canonical_json(&Value::Object(self.config.clone())),
            variables: to_canonical_json(&json!(self.variables)),
        }
    }

    /// The canonical serialisation the hash is taken over: type, template, messages,
    /// config and variables, keys sorted, no whitespace.
    pub fn canonical(&self) -> String {
        self.parts().borrowed().document()
    }

    /// `sha256:<hex>` of the canonical serialisation.
    pub fn hash(&self) -> String {
        sha256_tagged(self.canonical().as_bytes())
    }

    /// Renders strictly: every variable the prompt uses must be given, and (unless
    /// `allow_unknown`) no other.
    pub fn render(
        &self,
        vars: &Map<String, Value>,
        allow_unknown: bool,
        limits: RenderLimits,
    ) -> Result<Rendered, TemplateError> {
        self.render_composed(None, vars, allow_unknown, limits)
    }

    /// Renders strictly with its includes resolved as `composition` says: the variables
    /// of everything included count, and each include is served by minijinja's loader.
    pub fn render_composed(
        &self,
        composition: Option<&Composition>,
        vars: &Map<String, Value>,
        allow_unknown: bool,
        limits: RenderLimits,
    ) -> Result<Rendered, TemplateError> {
        let (variables, sources) = match composition {
            Some(c) => (&c.variables, &c.sources),
            None => (&self.variables, &BTreeMap::new()),
        };
        let used: BTreeSet<String> = variables.iter().cloned().collect();
        template::check_variables(&used, vars.keys(), allow_unknown)?;
        match &self.body {
            PromptBody::Text(t) => Ok(Rendered::Text(template::render_with(t, vars, limits, None, sources)?)),
            PromptBody::Chat(messages) => {
                let mut budget = limits.max_output;
                let mut out = Vec::with_capacity(messages.len());
                for (i, m) in messages.iter().enumerate() {
                    if m.role == MessageRole::Placeholder {
                        out.extend(placeholder_messages(&m.content, vars)?);
                        continue;
                    }
                    let location = format!("messages[{i}]");
                    let limits = RenderLimits { max_output: budget };
                    let content = template::render_with(&m.content, vars, limits, Some(&location), sources)?;
                    budget -= content.len();
                    out.push(Message { role: m.role, content });
                }
                Ok(Rendered::Chat(out))
            }
        }
    }
}

/// The messages given for placeholder `name`: a list of `{"role", "content"}` (system,
/// user or assistant), put in as they are (they are not templates).
fn placeholder_messages(name: &str, vars: &Map<String, Value>) -> Result<Vec<Message>, TemplateError> {
    let wrong = || {
        TemplateError::Render(format!(
            "the placeholder '{name}' needs a list of messages, each {{\"role\": \"user\"|\"assistant\"|\"system\", \"content\": \"...\"}}"
        ))
    };
    let items = vars.get(name).and_then(Value::as_array).ok_or_else(wrong)?;
    items
        .iter()
        .map(|item| {
            let m: Message = serde_json::from_value(item.clone()).map_err(|_| wrong())?;
            if m.role == MessageRole::Placeholder { Err(wrong()) } else { Ok(m) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn text(t: &str) -> Content {
        Content::new(PromptBody::Text(t.into()), config(json!({"model": "m", "temperature": 0.2}))).unwrap()
    }

    #[test]
    fn same_content_same_hash_whatever_the_key_order() {
        let a = Content::new(
            PromptBody::Text("Hi {{ b }} {{ a }}".into()),
            config(json!({"model": "m", "params": {"x": 1, "y": [1, 2]}})),
        )
        .unwrap();
        let mut reordered = Map::new();
        reordered.insert("params".into(), json!({"y": [1, 2], "x": 1}));
        reordered.insert("model".into(), json!("m"));
        let b = Content::new(PromptBody::Text("Hi {{ b }} {{ a }}".into()), reordered).unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.variables, vec!["a", "b"]);
    }

    #[test]
    fn hash_is_stable_across_releases() {
        // A fixed vector: if this changes, every stored hash breaks. Never update it casually.
        let c = text("Hello {{ customer }}");
        assert_eq!(
            c.canonical(),
            r#"{"config":{"model":"m","temperature":0.2},"messages":null,"template":"Hello {{ customer }}","type":"text","variables":["customer"]}"#
        );
        assert_eq!(c.hash(), crate::canonical::sha256_tagged(c.canonical().as_bytes()));
        assert_eq!(
            c.hash(),
            "sha256:".to_owned()
                + &{
                    use sha2::{Digest, Sha256};
                    hex::encode(Sha256::digest(c.canonical().as_bytes()))
                }
        );
    }

    #[test]
    fn parts_assemble_the_same_document_as_the_whole_value() {
        let chat = Content::new(
            PromptBody::Chat(vec![Message { role: MessageRole::System, content: "Be \"kind\" to {{ who }}\n".into() }]),
            config(json!({"z": [1, {"b": 2, "a": null}], "a": "é"})),
        )
        .unwrap();
        for c in [chat, text("Hello {{ customer }}")] {
            let whole = to_canonical_json(&json!({
                "type": c.body.prompt_type().as_str(),
                "template": c.body.template(),
                "messages": c.body.messages(),
                "config": c.config,
                "variables": c.variables,
            }));
            assert_eq!(c.canonical(), whole);
        }
    }

    #[test]
    fn any_change_changes_the_hash() {
        let base = text("Hello {{ customer }}");
        let other_text = text("Hello {{ customer }}!");
        let other_config = Content::new(
            PromptBody::Text("Hello {{ customer }}".into()),
            config(json!({"model": "m", "temperature": 0.3})),
        )
        .unwrap();
        let chat = Content::new(
            PromptBody::Chat(vec![Message { role: MessageRole::User, content: "Hello {{ customer }}".into() }]),
            config(json!({"model": "m", "temperature": 0.2})),
        )
        .unwrap();
        let hashes: BTreeSet<String> = [&base, &other_text, &other_config, &chat].iter().map(|c| c.hash()).collect();
        assert_eq!(hashes.len(), 4);
    }

    #[test]
    fn chat_prompts_render_every_message_and_locate_errors() {
        let c = Content::new(
            PromptBody::Chat(vec![
                Message { role: MessageRole::System, content: "You help {{ company }}.".into() },
                Message { role: MessageRole::User, content: "I am {{ customer }}".into() },
            ]),
            Map::new(),
        )
        .unwrap();
        assert_eq!(c.variables, vec!["company", "customer"]);
        let vars = config(json!({"company": "Acme", "customer": "Ada"}));
        let Rendered::Chat(out) = c.render(&vars, false, RenderLimits::default()).unwrap() else { panic!() };
        assert_eq!(out[0].content, "You help Acme.");
        assert_eq!(out[1].role, MessageRole::User);

        let err = Content::new(
            PromptBody::Chat(vec![
                Message { role: MessageRole::System, content: "ok".into() },
                Message { role: MessageRole::User, content: "{% if %}".into() },
            ]),
            Map::new(),
        )
        .unwrap_err();
        assert!(matches!(err, TemplateError::Syntax { location: Some(ref l), .. } if l == "messages[1]"), "{err:?}");
        assert!(Content::new(PromptBody::Chat(vec![]), Map::new()).is_err());
    }

    #[test]
    fn placeholders_take_a_list_of_messages_when_rendered() {
        let c = Content::new(
            PromptBody::Chat(vec![
                Message { role: MessageRole::System, content: "You help {{ company }}.".into() },
                Message { role: MessageRole::Placeholder, content: "history".into() },
                Message { role: MessageRole::User, content: "{{ question }}".into() },
            ]),
            Map::new(),
        )
        .unwrap();
        assert_eq!(c.variables, vec!["company", "history", "question"]);
        let vars = config(json!({"company": "Acme", "question": "And now?",
            "history": [{"role": "user", "content": "Hi {{ not_a_template }}"}, {"role": "assistant", "content": "Hello"}]}));
        let Rendered::Chat(out) = c.render(&vars, false, RenderLimits::default()).unwrap() else { panic!() };
        let roles: Vec<&str> = out.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(out[1].content, "Hi {{ not_a_template }}");
        let bad = config(json!({"company": "Acme", "question": "?", "history": "not a list"}));
        assert!(matches!(c.render(&bad, false, RenderLimits::default()), Err(TemplateError::Render(_))));
        let badly_named = Content::new(PromptBody::Chat(vec![Message { role: MessageRole::Placeholder, content: "no spaces".into() }]), Map::new());
        assert!(badly_named.is_err());
    }

    #[test]
    fn render_is_strict_unless_unknown_allowed() {
        let c = text("Hello {{ customer }}");
        let err = c.render(&Map::new(), false, RenderLimits::default()).unwrap_err();
        assert_eq!(err, TemplateError::Variables { missing: vec!["customer".into()], unknown: vec![] });
        let extra = config(json!({"customer": "Ada", "mood": "calm"}));
        assert!(matches!(c.render(&extra, false, RenderLimits::default()),
            Err(TemplateError::Variables { ref unknown, .. }) if unknown == &["mood".to_string()]));
        assert_eq!(c.render(&extra, true, RenderLimits::default()).unwrap(), Rendered::Text("Hello Ada".into()));
    }
}
