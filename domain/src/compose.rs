//! Composition: a text prompt included in others with `{% include "name@label" %}` or
//! `{% include "name@4" %}`.
//!
//! A reference is found in a template by minijinja's own lexer (so comments and `raw`
//! blocks are skipped exactly as the engine skips them), resolved through a lookup the
//! caller provides (the server's index, the database as of an instant, or the texts the
//! server handed the browser), and rendered through minijinja's include mechanism
//! ([`crate::template::render_with`]). The composed text an application receives has every
//! include inlined, and renders to the same output.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use minijinja::machinery::{Token, WhitespaceConfig, tokenize};
use minijinja::syntax::SyntaxConfig;
use serde::{Deserialize, Serialize};

use crate::canonical::sha256_tagged;
use crate::content::{Content, Message, PromptBody};
use crate::names::{self, LATEST};

/// How deep includes may nest: a prompt including one that includes one... ten levels.
pub const MAX_DEPTH: usize = 10;

/// What an include names: a label, which it follows, or a version, which it pins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    Label(String),
    Version(i64),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Label(l) => f.write_str(l),
            Reference::Version(v) => write!(f, "{v}"),
        }
    }
}

/// `name@label` or `name@N`, as written in a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncludeRef {
    pub name: String,
    pub reference: Reference,
}

impl fmt::Display for IncludeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.reference)
    }
}

impl IncludeRef {
    /// Reads `name@label` or `name@N`; a reference of digits only is a version.
    pub fn parse(text: &str) -> Result<IncludeRef, String> {
        let (name, reference) = text
            .rsplit_once('@')
            .ok_or_else(|| format!("'{text}' names no label or version: write \"{text}@stable\" or \"{text}@3\""))?;
        names::validate_prompt_name(name).map_err(|e| e.0)?;
        let reference = match reference.parse::<i64>() {
            Ok(v) if v >= 1 => Reference::Version(v),
            Ok(_) => return Err(format!("'{text}': versions count from 1")),
            Err(_) => {
                names::validate_label(reference).map_err(|e| e.0)?;
                Reference::Label(reference.to_owned())
            }
        };
        Ok(IncludeRef { name: name.to_owned(), reference })
    }

    pub fn label(&self) -> Option<&str> {
        match &self.reference {
            Reference::Label(l) => Some(l),
            Reference::Version(_) => None,
        }
    }
}

/// One `{% include %}` tag in a template: what it names and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tag {
    target: IncludeRef,
    /// Byte range of the whole tag, `{%` to `%}`.
    start: usize,
    end: usize,
}

/// An include tag written in a way that cannot be resolved, and where (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeSyntax {
    pub message: String,
    pub offset: usize,
}

/// Every include tag of one template, in order. An include must name a prompt in a
/// quoted string and nothing else; anything else is an error in words. (A template that
/// does not lex yields what was found before the error: the parser reports that error.)
fn tags(source: &str) -> Result<Vec<Tag>, IncludeSyntax> {
    let mut out = Vec::new();
    let mut tokens = tokenize(source, false, SyntaxConfig, WhitespaceConfig::default());
    while let Some(token) = tokens.next() {
        let Ok((Token::BlockStart, start)) = token else { continue };
        if !matches!(tokens.next(), Some(Ok((Token::Ident("include"), _)))) {
            continue;
        }
        let offset = start.start_offset as usize;
        let fail = |message: String| IncludeSyntax { message, offset };
        let text = match tokens.next() {
            Some(Ok((Token::Str(s), _))) => s.to_owned(),
            Some(Ok((Token::String(s), _))) => s.to_string(),
            _ => {
                return Err(fail("an include names one prompt in quotes: {% include \"shared/safety@stable\" %}".into()));
            }
        };
        let Some(Ok((Token::BlockEnd, end))) = tokens.next() else {
            return Err(fail(format!(
                "write the include of '{text}' as {{% include \"{text}\" %}}, with nothing else in the tag"
            )));
        };
        let target = IncludeRef::parse(&text).map_err(fail)?;
        out.push(Tag { target, start: offset, end: end.end_offset as usize });
    }
    Ok(out)
}

/// The prompts a template includes, in order of first appearance, each once.
pub fn includes_of(source: &str) -> Result<Vec<IncludeRef>, IncludeSyntax> {
    let mut seen = BTreeSet::new();
    Ok(tags(source)?.into_iter().map(|t| t.target).filter(|r| seen.insert(r.clone())).collect())
}

/// A reference resolved: the version it names now (or then) and that version's content.
#[derive(Debug, Clone)]
pub struct Source {
    pub version: i64,
    pub hash: String,
    pub content: Content,
}

/// A direct include of a version as the version object shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Include {
    pub name: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub version: i64,
    pub hash: String,
}

/// A version with its includes resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    /// Its direct includes, in order.
    pub includes: Vec<Include>,
    /// `sha256:` over the version's own hash and each include's `resolved_hash`, in
    /// order; the version's own hash when it includes nothing.
    pub resolved_hash: String,
    /// Its variables and those of everything it includes, sorted.
    pub variables: Vec<String>,
    /// The body with every include inlined.
    pub body: PromptBody,
    /// The stored text of every prompt it includes, at any depth, by `name@ref`: what
    /// minijinja's loader serves while rendering.
    pub sources: BTreeMap<String, String>,
}

/// Why a version's includes cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ComposeError {
    /// An include names no prompt, no label or no version that exists, or a chat prompt.
    #[error("cannot include '{reference}': {reason}")]
    Unknown { reference: String, reason: String },
    /// Including would come back to a prompt already being included.
    #[error("these includes go round in a circle: {}", path.join(" → "))]
    Cycle { path: Vec<String> },
    /// Includes nested deeper than [`MAX_DEPTH`].
    #[error("includes nest more than {MAX_DEPTH} levels deep: {}", path.join(" → "))]
    Depth { path: Vec<String> },
}

/// Resolves what `content` (whose own hash is `hash`; `root` names it in a cycle's path,
/// such as `support/greeting@3`) includes, at every depth, through `lookup`.
pub fn compose(
    root: &str,
    content: &Content,
    hash: &str,
    lookup: &mut dyn FnMut(&IncludeRef) -> Result<Source, String>,
) -> Result<Composition, ComposeError> {
    let mut walk = Walk { lookup, path: vec![root.to_owned()], sources: BTreeMap::new() };
    let done = walk.version(content, hash)?;
    Ok(Composition {
        includes: done.includes,
        resolved_hash: done.resolved_hash,
        variables: done.variables.into_iter().collect(),
        body: done.body,
        sources: walk.sources,
    })
}

struct Walk<'a> {
    lookup: &'a mut dyn FnMut(&IncludeRef) -> Result<Source, String>,
    /// `name@ref` of each version being composed, outermost first.
    path: Vec<String>,
    sources: BTreeMap<String, String>,
}

struct Done {
    includes: Vec<Include>,
    resolved_hash: String,
    variables: BTreeSet<String>,
    body: PromptBody,
}

impl Walk<'_> {
    fn version(&mut self, content: &Content, hash: &str) -> Result<Done, ComposeError> {
        let mut variables: BTreeSet<String> = content.variables.iter().cloned().collect();
        let mut includes = Vec::new();
        // Each distinct reference once, composed; then every template has its tags inlined.
        let mut inlined: BTreeMap<IncludeRef, String> = BTreeMap::new();
        let mut hashes = String::from(hash);
        for target in content.includes() {
            let key = target.to_string();
            if self.path.contains(&key) {
                let mut path = self.path.clone();
                path.push(key);
                return Err(ComposeError::Cycle { path });
            }
            if self.path.len() > MAX_DEPTH {
                let mut path = self.path.clone();
                path.push(key);
                return Err(ComposeError::Depth { path });
            }
            let source = (self.lookup)(&target).map_err(|reason| ComposeError::Unknown { reference: key.clone(), reason })?;
            let PromptBody::Text(text) = &source.content.body else {
                return Err(ComposeError::Unknown {
                    reference: key,
                    reason: "it is a chat prompt; only text prompts can be included".into(),
                });
            };
            self.sources.insert(key.clone(), text.clone());
            self.path.push(key);
            let child = self.version(&source.content, &source.hash)?;
            self.path.pop();
            hashes.push_str(&child.resolved_hash);
            variables.extend(child.variables);
            let PromptBody::Text(child_text) = child.body else { unreachable!("checked to be text above") };
            inlined.insert(target.clone(), child_text);
            includes.push(Include {
                name: target.name.clone(),
                reference: target.reference.to_string(),
                version: source.version,
                hash: source.hash.clone(),
            });
        }
        let resolved_hash = if includes.is_empty() { hash.to_owned() } else { sha256_tagged(hashes.as_bytes()) };
        let body = match &content.body {
            PromptBody::Text(t) => PromptBody::Text(inline(t, &inlined)),
            PromptBody::Chat(messages) => PromptBody::Chat(
                messages.iter().map(|m| Message { role: m.role, content: inline(&m.content, &inlined) }).collect(),
            ),
        };
        Ok(Done { includes, resolved_hash, variables, body })
    }
}

/// An empty comment: it renders nothing and ends the text a `{%-` or `-%}` trims.
const BARRIER: &str = "{##}";

/// `source` with each include tag replaced by the (composed) text it names. A tag that
/// trims whitespace (`{%- include … -%}`) trims the text around it here as minijinja
/// trims it, so the composed text renders to the same output.
fn inline(source: &str, texts: &BTreeMap<IncludeRef, String>) -> String {
    let Ok(tags) = tags(source) else { return source.to_owned() };
    if tags.is_empty() {
        return source.to_owned();
    }
    let mut out = String::with_capacity(source.len() + texts.values().map(String::len).sum::<usize>());
    let mut at = 0;
    for tag in tags {
        let whole = &source[tag.start..tag.end];
        // Only the text between tags is trimmed, never what an earlier include put out.
        let before = &source[at..tag.start];
        out.push_str(if whole.starts_with("{%-") { before.trim_end() } else { before });
        let text = texts.get(&tag.target).map_or("", String::as_str);
        // A tag at the edge of the included text that trims whitespace must trim only its
        // own side, as it does in the included template: an empty comment stops it.
        let (start, end) = (text.trim_start(), text.trim_end());
        if ["{%-", "{{-", "{#-"].iter().any(|m| start.starts_with(m)) {
            out.push_str(BARRIER);
        }
        out.push_str(text);
        if ["-%}", "-}}", "-#}"].iter().any(|m| end.ends_with(m)) {
            out.push_str(BARRIER);
        }
        at = tag.end;
        if whole.ends_with("-%}") {
            at += source[at..].len() - source[at..].trim_start().len();
        }
    }
    out.push_str(&source[at..]);
    out
}

/// Whether a reference follows `label` of `name` (`latest` included).
pub fn follows(target: &IncludeRef, name: &str, label: &str) -> bool {
    target.name == name && target.label() == Some(label)
}

/// Whether a reference follows the newest version of `name`.
pub fn follows_latest(target: &IncludeRef, name: &str) -> bool {
    follows(target, name, LATEST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::RenderLimits;
    use serde_json::{Map, Value, json};

    fn text(t: &str) -> Content {
        Content::new(PromptBody::Text(t.into()), Map::new()).unwrap()
    }

    fn library(entries: &[(&str, i64, &str)]) -> impl FnMut(&IncludeRef) -> Result<Source, String> + use<> {
        let map: BTreeMap<String, (i64, Content)> =
            entries.iter().map(|(k, v, t)| (k.to_string(), (*v, text(t)))).collect();
        move |r: &IncludeRef| {
            let (version, content) = map.get(&r.to_string()).cloned().ok_or_else(|| "no such prompt".to_string())?;
            Ok(Source { version, hash: content.hash(), content })
        }
    }

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn finds_includes_but_not_in_comments_or_raw_blocks() {
        let src = "{# {% include \"a@stable\" %} #}{% raw %}{% include \"b@1\" %}{% endraw %}\
                   {% include \"shared/safety@stable\" %}{%- include 'tone@3' -%}{% include \"shared/safety@stable\" %}";
        let found = includes_of(src).unwrap();
        assert_eq!(
            found,
            vec![
                IncludeRef { name: "shared/safety".into(), reference: Reference::Label("stable".into()) },
                IncludeRef { name: "tone".into(), reference: Reference::Version(3) },
            ]
        );
        assert!(includes_of("{% include name %}").is_err());
        assert!(includes_of("{% include \"a@stable\" ignore missing %}").is_err());
        assert!(includes_of("{% include \"a\" %}").unwrap_err().message.contains("a@stable"));
        assert!(includes_of("{% include \"A@stable\" %}").is_err());
        assert!(includes_of("{% include \"a@0\" %}").is_err());
    }

    #[test]
    fn composes_hashes_and_variables_at_every_depth() {
        let mut lookup = library(&[("safety@stable", 2, "Be safe, {{ customer }}.{% include \"legal@1\" %}"), (
            "legal@1",
            1,
            " Terms: {{ terms }}",
        )]);
        let root = text("Hi {{ customer }}. {% include \"safety@stable\" %} Bye");
        let c = compose("greeting@1", &root, &root.hash(), &mut lookup).unwrap();
        assert_eq!(c.body, PromptBody::Text("Hi {{ customer }}. Be safe, {{ customer }}. Terms: {{ terms }} Bye".into()));
        assert_eq!(c.variables, vec!["customer", "terms"]);
        assert_eq!(c.includes.len(), 1);
        assert_eq!((c.includes[0].name.as_str(), c.includes[0].reference.as_str(), c.includes[0].version), (
            "safety",
            "stable",
            2
        ));
        let legal = text(" Terms: {{ terms }}").hash();
        let safety_resolved =
            sha256_tagged(format!("{}{}", text("Be safe, {{ customer }}.{% include \"legal@1\" %}").hash(), legal).as_bytes());
        assert_eq!(c.resolved_hash, sha256_tagged(format!("{}{}", root.hash(), safety_resolved).as_bytes()));
        assert_eq!(c.sources.keys().collect::<Vec<_>>(), vec!["legal@1", "safety@stable"]);

        let plain = text("no includes");
        assert_eq!(compose("p@1", &plain, &plain.hash(), &mut lookup).unwrap().resolved_hash, plain.hash());
    }

    #[test]
    fn unknown_cycles_depth_and_chat_are_refused() {
        let root = text("{% include \"missing@stable\" %}");
        let err = compose("p@1", &root, "h", &mut library(&[])).unwrap_err();
        assert!(matches!(err, ComposeError::Unknown { ref reference, .. } if reference == "missing@stable"));

        let mut cyclic = library(&[("a@stable", 1, "{% include \"b@stable\" %}"), ("b@stable", 1, "{% include \"a@stable\" %}")]);
        let root = text("{% include \"a@stable\" %}");
        let err = compose("p@1", &root, "h", &mut cyclic).unwrap_err();
        assert_eq!(err, ComposeError::Cycle { path: vec!["p@1".into(), "a@stable".into(), "b@stable".into(), "a@stable".into()] });

        let chain: Vec<(String, i64, String)> =
            (0..12).map(|i| (format!("s{i}@stable"), 1, format!("{i}{{% include \"s{}@stable\" %}}", i + 1))).collect();
        let mut entries: Vec<(&str, i64, &str)> = chain.iter().map(|(k, v, t)| (k.as_str(), *v, t.as_str())).collect();
        entries.push(("s12@stable", 1, "end"));
        let root = text("{% include \"s0@stable\" %}");
        assert!(matches!(compose("p@1", &root, "h", &mut library(&entries)), Err(ComposeError::Depth { .. })));
        // Ten levels are allowed.
        let root = text("{% include \"s3@stable\" %}");
        assert!(compose("p@1", &root, "h", &mut library(&entries)).is_ok());

        let mut chat = |_: &IncludeRef| {
            let content = Content::new(
                PromptBody::Chat(vec![Message { role: crate::MessageRole::User, content: "x".into() }]),
                Map::new(),
            )
            .unwrap();
            Ok(Source { version: 1, hash: content.hash(), content })
        };
        let root = text("{% include \"chat@stable\" %}");
        assert!(matches!(compose("p@1", &root, "h", &mut chat), Err(ComposeError::Unknown { .. })));
    }

    /// The composed text applications receive renders exactly as minijinja's include
    /// renders the stored text, whitespace control included.
    #[test]
    fn inlined_text_renders_as_the_include_does() {
        let snippets = [
            ("s@stable", 1, "Be kind to {{ who }}.\n"),
            ("t@2", 2, "  {%- if vip %} VIP{% endif -%}  "),
            ("n@stable", 1, "[{% include \"t@2\" %}]{% for i in items %}{{ i }}{% endfor %}"),
            ("u@1", 1, "  {{- who -}}  "),
        ];
        let corpus = [
            "A {% include \"s@stable\" %} B",
            "A\n  {%- include \"s@stable\" -%}\n  B",
            "{% include \"s@stable\" %}{%- include \"s@stable\" -%}  {% include \"t@2\" %}",
            "{% for x in items %}{% include \"n@stable\" %}{% endfor %}",
            "{% if vip %}{%- include \"t@2\" %}{% else %}{% include 's@stable' -%}   {% endif %}",
            "{% set who = 'Bob' %}{% include \"s@stable\" %}",
            "x {% include \"u@1\" %} y\n{% include \"u@1\" -%}\n z {{ who }} {%- include \"u@1\" %}",
        ];
        for src in corpus {
            let root = text(src);
            let c = compose("p@1", &root, &root.hash(), &mut library(&snippets)).unwrap();
            for v in [json!({"who": "Ada", "vip": true, "items": [1, 2]}), json!({"who": "Ada", "vip": false, "items": []})]
            {
                let v = vars(v);
                let through_loader =
                    crate::template::render_with(src, &v, RenderLimits::default(), None, &c.sources).unwrap();
                let PromptBody::Text(inlined) = &c.body else { panic!() };
                let from_inlined = crate::template::render(inlined, &v, RenderLimits::default(), None).unwrap();
                assert_eq!(through_loader, from_inlined, "{src}");
            }
        }
    }
}
