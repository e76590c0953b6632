//! One prompt: what `stable` and `latest` serve now, and the editor. The editor parses
//! and renders with the same template engine as the server (the `domain` crate compiled
//! to wasm), so variables and the live preview update as the person types, with no
//! round trip. Saving over a newer version shows the conflict and lets the person
//! rebase their edit; nothing is ever silently overwritten.

use std::collections::BTreeMap;

use domain::access::Action;
use domain::compose::{Composition, IncludeRef, Source};
use domain::content::{Content, Message, MessageRole, PromptBody, PromptType, Rendered};
use domain::diff::SideRow;
use domain::model::VersionView;
use domain::template::{RenderLimits, TemplateError};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::me;
use crate::error::AppError;
use crate::widgets::{ErrorNote, LabelBadge, SideBySide, Time, loading};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptDetail {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Every label (`latest` included) and its version.
    pub labels: BTreeMap<String, i64>,
    pub latest: VersionView,
    pub stable: Option<VersionView>,
    /// Gradual rollouts running now, by label.
    pub rollouts: BTreeMap<String, domain::rollout::SplitBrief>,
    /// Versions of other prompts that include this one, with the labels serving them.
    pub used_by: Vec<domain::model::Dependent>,
    /// What stable serves with its includes inlined, when it includes any.
    pub stable_composed: Option<VersionView>,
}

/// What the editor sends to save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub base_version: i64,
    pub prompt_type: PromptType,
    pub template: String,
    pub messages: Vec<Message>,
    /// The model config as the person typed it (JSON text).
    pub config: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SaveOutcome {
    Saved(VersionView),
    /// Someone saved first: their version, and it beside this edit.
    Conflict {
        latest: VersionView,
        rows: Vec<SideRow>,
        config_changed: bool,
    },
}

impl Draft {
    #[cfg(feature = "ssr")]
    fn body(&self) -> PromptBody {
        match self.prompt_type {
            PromptType::Text => PromptBody::Text(self.template.clone()),
            PromptType::Chat => PromptBody::Chat(self.messages.clone()),
        }
    }

    fn config_map(&self) -> Result<Map<String, Value>, String> {
        match serde_json::from_str::<Value>(if self.config.trim().is_empty() { "{}" } else { &self.config }) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err("The model config must be a JSON object, like {\"model\": \"gpt-4o-mini\"}.".into()),
            Err(e) => Err(format!("The model config is not valid JSON ({e}). Fix it and try again.")),
        }
    }
}

/// The stored text of an included prompt as the editor's preview composes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncludedText {
    pub version: i64,
    pub hash: String,
    pub template: String,
}

/// What `refs` (`name@label` / `name@N`) name now, and everything those include in turn:
/// the texts the browser's live preview composes with (unknown refs are left out).
#[server(input = leptos::server_fn::codec::Json, endpoint = "console/include_library")]
pub async fn include_library(refs: Vec<String>) -> Result<BTreeMap<String, IncludedText>, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry
        .include_sources(&who, &refs)
        .await?
        .into_iter()
        .filter_map(|(k, s)| Some((k, IncludedText { version: s.version, hash: s.hash, template: s.content.body.template()?.to_owned() })))
        .collect())
}

/// Every `name@label` a template can include (text prompts, each label and `latest`).
#[server(endpoint = "console/include_choices")]
pub async fn include_choices() -> Result<Vec<String>, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.include_choices(&who)?)
}

#[server(endpoint = "console/get_prompt")]
pub async fn get_prompt(name: String) -> Result<PromptDetail, AppError> {
    use domain::model::Selector;
    let (who, registry) = crate::auth::ssr::caller().await?;
    let summary = registry.prompt(&who, &name)?;
    let mut labels = summary.labels;
    labels.insert(domain::names::LATEST.into(), summary.latest_version);
    let pick = |label: &str| Selector { label: Some(label.into()), ..Default::default() };
    let latest = registry.resolve(&who, &name, &pick(domain::names::LATEST)).await?.base.view.clone();
    // The version stable points at, asked for by number: during a gradual rollout,
    // resolving the label would pick one of the two versions at random.
    let (stable, stable_composed) = match labels.get(domain::names::STABLE) {
        Some(&v) => {
            let exact = Selector { version: Some(v), ..Default::default() };
            let served = registry.resolve(&who, &name, &exact).await?;
            let composed = (!served.view.includes.is_empty()).then(|| served.view.clone());
            (Some(served.base.view.clone()), composed)
        }
        None => (None, None),
    };
    let rollouts = summary.rollouts;
    let used_by = registry.dependents(&who, &name).await?.items;
    Ok(PromptDetail {
        name,
        description: summary.description,
        tags: summary.tags,
        labels,
        latest,
        stable,
        rollouts,
        used_by,
        stable_composed,
    })
}

#[server(input = leptos::server_fn::codec::Json, endpoint = "console/save_version")]
pub async fn save_version(name: String, draft: Draft) -> Result<SaveOutcome, AppError> {
    use domain::model::{NewVersion, Selector};
    let (who, registry) = crate::auth::ssr::caller().await?;
    let config = draft.config_map().map_err(AppError::invalid)?;
    let (template, messages) = match draft.prompt_type {
        PromptType::Text => (Some(draft.template.clone()), None),
        PromptType::Chat => (None, Some(draft.messages.clone())),
    };
    let req = NewVersion {
        base_version: Some(draft.base_version),
        prompt_type: Some(draft.prompt_type),
        template,
        messages,
        config: Some(Value::Object(config.clone())),
        message: Some(draft.message.clone()),
    };
    match registry.add_version(&who, &name, req).await {
        Ok(view) => Ok(SaveOutcome::Saved(view)),
        Err(service::ServiceError::Stale { .. }) => {
            let pick = Selector { label: Some(domain::names::LATEST.into()), ..Default::default() };
            let latest = registry.resolve(&who, &name, &pick).await?.base.view.clone();
            let theirs = domain::diff::document(&view_body(&latest), &latest.config);
            let mine = domain::diff::document(&draft.body(), &config);
            Ok(SaveOutcome::Conflict {
                rows: domain::diff::side_by_side(&theirs, &mine),
                config_changed: domain::diff::config_changed(&latest.config, &config),
                latest,
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(feature = "ssr")]
fn view_body(v: &VersionView) -> PromptBody {
    match v.prompt_type {
        PromptType::Text => PromptBody::Text(v.template.clone().unwrap_or_default()),
        PromptType::Chat => PromptBody::Chat(v.messages.clone().unwrap_or_default()),
    }
}

fn prompt_name() -> Memo<String> {
    let params = use_params_map();
    Memo::new(move |_| params.with(|p| p.get("name")).unwrap_or_default())
}

#[component]
pub fn PromptPage() -> impl IntoView {
    let name = prompt_name();
    let detail = Resource::new(move || name.get(), get_prompt);
    view! {
        <Transition fallback=|| loading("the prompt")>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <PromptView detail=d/> }.into_any(),
                    Err(error) => view! { <h1>{name.get()}</h1><ErrorNote error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn PromptView(detail: PromptDetail) -> impl IntoView {
    let can_edit = me().can(Action::Write);
    let history = format!("/history/{}", detail.name);
    let stable = detail.stable.clone();
    let latest = detail.latest.clone();
    let stable_note = detail.rollouts.get(domain::names::STABLE).map(|s| {
        format!("To most users: a gradual rollout gives version {} to {} % of them.", s.candidate_version, s.weight)
    });
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs"><A href="/">"Prompts"</A> " / "</p>
                <h1>{detail.name.clone()}</h1>
                <p class="description">{detail.description.clone()}</p>
            </div>
            <div class="head-actions">
                <A href=format!("/production/{}", detail.name) attr:class="button">"Production"</A>
                <A href=format!("/evals/{}", detail.name) attr:class="button">"Evaluations"</A>
                <A href=history attr:class="button">"History and releases"</A>
            </div>
        </div>
        <div class="labels-now">
            {detail.labels.iter().map(|(l, v)| view! { <LabelBadge label=l.clone() version=*v/> }).collect_view()}
        </div>
        <crate::pages::rollouts::LiveSplits splits=detail.rollouts.clone() labels=detail.labels.clone()/>
        <div class="serving">
            <ServingCard title="Production (stable) serves" version=stable note=stable_note/>
            <ServingCard title="Newest version (latest)" version=Some(latest.clone()) note=None/>
        </div>
        {detail.stable_composed.clone().map(|v| view! {
            <details class="card composed">
                <summary>"Show what stable serves with its includes filled in"</summary>
                <p class="hint">{format!("Includes: {}.", v.includes.iter().map(|i| format!("{}@{} (version {})", i.name, i.reference, i.version)).collect::<Vec<_>>().join(", "))}</p>
                <PromptText version=v/>
            </details>
        })}
        <UsedBy name=detail.name.clone() used_by=detail.used_by.clone()/>
        {if can_edit {
            view! { <Editor name=detail.name.clone() latest/> }.into_any()
        } else {
            view! {
                <p class="hint">"You can read this prompt. Editing needs the editor role; ask an administrator."</p>
            }.into_any()
        }}
    }
}

/// The prompts that include this one: changing a label they include changes them too.
#[component]
fn UsedBy(name: String, used_by: Vec<domain::model::Dependent>) -> impl IntoView {
    (!used_by.is_empty()).then(|| {
        let serving: Vec<_> = used_by.iter().filter(|d| !d.labels.is_empty()).cloned().collect();
        let older = used_by.len() - serving.len();
        view! {
            <section class="card used-by" aria-labelledby="used-by-title">
                <h2 id="used-by-title">"Used by"</h2>
                <p class="hint">{format!("These prompts include {name}. When the label they include moves, what they serve changes too: the History page shows them before you promote.")}</p>
                <table>
                    <caption class="visually-hidden">"Prompts that include this one"</caption>
                    <thead><tr><th scope="col">"Prompt"</th><th scope="col">"Its version"</th><th scope="col">"Includes"</th><th scope="col">"Served by"</th></tr></thead>
                    <tbody>
                        {serving.into_iter().map(|d| view! {
                            <tr>
                                <th scope="row"><A href=format!("/prompts/{}", d.name)>{d.name.clone()}</A></th>
                                <td>{d.version}</td>
                                <td>{format!("{name}@{}", d.reference)}</td>
                                <td>{d.labels.join(", ")}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
                {(older > 0).then(|| view! { <p class="hint">{format!("{older} older version(s) no label serves include it too.")}</p> })}
            </section>
        }
    })
}

#[component]
fn ServingCard(title: &'static str, version: Option<VersionView>, note: Option<String>) -> impl IntoView {
    view! {
        <section class="card serving-card">
            <h2>{title}</h2>
            {note.map(|n| view! { <p class="hint">{n}</p> })}
            {match version {
                None => view! { <p class="empty">"Nothing yet. A publisher promotes a version to stable from the History page."</p> }.into_any(),
                Some(v) => view! {
                    <p class="meta">"Version " {v.version} " · " {v.created_by.clone()} " · " <Time at=v.created_at.clone()/></p>
                    <PromptText version=v/>
                }.into_any(),
            }}
        </section>
    }
}

/// A version's text (or messages) as stored, read-only.
#[component]
pub fn PromptText(version: VersionView) -> impl IntoView {
    match version.prompt_type {
        PromptType::Text => view! { <pre class="prompt-text">{version.template.unwrap_or_default()}</pre> }.into_any(),
        PromptType::Chat => view! {
            <div class="messages">
                {version.messages.unwrap_or_default().into_iter().map(|m| view! {
                    <p class="role">{role_name(m.role)}</p>
                    <pre class="prompt-text">{m.content}</pre>
                }).collect_view()}
            </div>
        }
        .into_any(),
    }
}

fn role_name(role: MessageRole) -> &'static str {
    role.as_str()
}

/// One chat message in the editor; `id` keeps rows stable while they move.
#[derive(Clone, Copy)]
struct DraftMessage {
    id: u32,
    role: RwSignal<MessageRole>,
    content: RwSignal<String>,
}

struct EditorState {
    base_version: RwSignal<i64>,
    prompt_type: RwSignal<PromptType>,
    template: RwSignal<String>,
    messages: RwSignal<Vec<DraftMessage>>,
    config: RwSignal<String>,
    next_id: StoredValue<u32>,
}

impl EditorState {
    fn new(v: &VersionView) -> Self {
        let state = EditorState {
            base_version: RwSignal::new(0),
            prompt_type: RwSignal::new(PromptType::Text),
            template: RwSignal::new(String::new()),
            messages: RwSignal::new(Vec::new()),
            config: RwSignal::new(String::new()),
            next_id: StoredValue::new(0),
        };
        state.load(v);
        state
    }

    /// Puts a stored version into the editor.
    fn load(&self, v: &VersionView) {
        self.base_version.set(v.version);
        self.prompt_type.set(v.prompt_type);
        self.template.set(v.template.clone().unwrap_or_default());
        let messages = v.messages.clone().unwrap_or_default().into_iter().map(|m| self.message(m.role, m.content));
        self.messages.set(messages.collect());
        self.config.set(serde_json::to_string_pretty(&v.config).unwrap_or_else(|_| "{}".into()));
    }

    fn message(&self, role: MessageRole, content: String) -> DraftMessage {
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        DraftMessage { id, role: RwSignal::new(role), content: RwSignal::new(content) }
    }

    fn draft(&self, message: String) -> Draft {
        Draft {
            base_version: self.base_version.get_untracked(),
            prompt_type: self.prompt_type.get_untracked(),
            template: self.template.get_untracked(),
            messages: self
                .messages
                .get_untracked()
                .iter()
                .map(|m| Message { role: m.role.get_untracked(), content: m.content.get_untracked() })
                .collect(),
            config: self.config.get_untracked(),
            message,
        }
    }

    /// The body as typed (tracked, for the live analysis).
    fn body(&self) -> PromptBody {
        match self.prompt_type.get() {
            PromptType::Text => PromptBody::Text(self.template.get()),
            PromptType::Chat => PromptBody::Chat(
                self.messages.get().iter().map(|m| Message { role: m.role.get(), content: m.content.get() }).collect(),
            ),
        }
    }
}

/// A template error in plain words, saying where.
/// The partial name after an unfinished `{% include "` at the end of `before`, if any.
fn open_include(before: &str) -> Option<&str> {
    let start = before.rfind("include \"").or_else(|| before.rfind("include '"))? + "include \"".len();
    let tag = before[..start].rfind("{%")?;
    let between = &before[tag + 2..start - "include \"".len()];
    let partial = &before[start..];
    (between.trim_matches(|c: char| c == '-' || c.is_whitespace()).is_empty()
        && !partial.contains(['"', '\'', '%', '\n']))
    .then_some(partial)
}

/// A draft with its includes resolved from the texts the server handed over.
fn compose_draft(content: &Content, texts: &BTreeMap<String, IncludedText>) -> Result<Composition, String> {
    let mut lookup = |target: &IncludeRef| {
        let t = texts.get(&target.to_string()).ok_or_else(|| {
            "there is no such prompt, label or version in the registry: check the name, and that the label points at a version".to_string()
        })?;
        let content = Content::new(PromptBody::Text(t.template.clone()), Map::new()).map_err(|e| e.to_string())?;
        Ok(Source { version: t.version, hash: t.hash.clone(), content })
    };
    domain::compose::compose("this draft", content, &content.hash(), &mut lookup).map_err(|e| {
        format!("{}.", {
            let text = e.to_string();
            let mut chars = text.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
    })
}

fn explain(err: &TemplateError) -> String {
    match err {
        TemplateError::Syntax { message, line, column, location } => {
            let place =
                match location.as_deref().and_then(|l| l.strip_prefix("messages[")).and_then(|l| l.strip_suffix(']')) {
                    Some(i) => {
                        format!("Message {}, line {line}, column {column}", i.parse::<i64>().map_or(0, |i| i + 1))
                    }
                    None => format!("Line {line}, column {column}"),
                };
            format!("{place}: {message}. Check that every {{{{ has a matching }}}} and every {{% block is closed.")
        }
        other => other.to_string(),
    }
}

/// The source line a syntax error points at, to show under the message.
fn error_line(body: &PromptBody, err: &TemplateError) -> Option<String> {
    let TemplateError::Syntax { line, location, .. } = err else { return None };
    let source = match (body, location.as_deref()) {
        (PromptBody::Text(t), None) => t.as_str(),
        (PromptBody::Chat(m), Some(l)) => {
            let i: usize = l.strip_prefix("messages[")?.strip_suffix(']')?.parse().ok()?;
            m.get(i)?.content.as_str()
        }
        _ => return None,
    };
    source.lines().nth((*line as usize).saturating_sub(1)).map(str::to_owned)
}

/// The editor is an island: the only part of this page that runs in the browser.
#[island(lazy)]
fn Editor(name: String, latest: VersionView) -> impl IntoView {
    crate::mark_hydrated();
    let state = StoredValue::new(EditorState::new(&latest));
    let s = move || state.read_value();
    let (base, kind, template, messages, config) = {
        let st = s();
        (st.base_version, st.prompt_type, st.template, st.messages, st.config)
    };
    let commit_message = RwSignal::new(String::new());
    let samples = RwSignal::new(BTreeMap::<String, String>::new());
    let saved = RwSignal::new(None::<i64>);
    let conflict = RwSignal::new(None::<(VersionView, Vec<SideRow>, bool)>);

    // Parsed as the person types: variables, or the error with its place.
    let analysis = Memo::new(move |_| {
        let body = s().body();
        Content::new(body.clone(), Map::new()).map_err(|e| (explain(&e), error_line(&body, &e)))
    });
    // What the draft includes, composed with the texts the server hands over (fetched
    // again when the includes change): the same engine as the server's.
    let refs = Memo::new(move |_| {
        analysis.with(|a| a.as_ref().map(|c| c.includes().iter().map(|r| r.to_string()).collect::<Vec<_>>()).unwrap_or_default())
    });
    // Fetched by an effect, so in the browser only: on the server a fetch would end after
    // the island's render and wake memos that are gone by then. Kept with the refs it is
    // for, so an older answer arriving late is never used.
    type Library = (Vec<String>, Result<BTreeMap<String, IncludedText>, AppError>);
    let library = RwSignal::new(None::<Library>);
    Effect::new(move |_| {
        let refs = refs.get();
        leptos::task::spawn_local(async move {
            let texts = if refs.is_empty() { Ok(BTreeMap::new()) } else { include_library(refs.clone()).await };
            library.try_set(Some((refs, texts)));
        });
    });
    let composed = Memo::new(move |_| {
        analysis.with(|a| {
            let Ok(content) = a else { return Ok(None) };
            if refs.with(Vec::is_empty) {
                return Ok(None);
            }
            library.with(|l| match l {
                Some((fetched, result)) if refs.with(|r| r == fetched) => match result {
                    Err(e) => Err(e.to_string()),
                    Ok(texts) => compose_draft(content, texts).map(Some),
                },
                _ => Err("Loading the prompts it includes…".to_string()),
            })
        })
    });
    let variables = Memo::new(move |_| {
        composed.with(|c| match c {
            Ok(Some(c)) => c.variables.clone(),
            _ => analysis.with(|a| a.as_ref().map(|c| c.variables.clone()).unwrap_or_default()),
        })
    });
    let preview = Memo::new(move |_| {
        analysis.with(|a| {
            let content = a.as_ref().map_err(|(e, _)| e.clone())?;
            let composition = composed.get()?;
            let sample = samples.get();
            let vars: Map<String, Value> = variables
                .get()
                .iter()
                .map(|v| {
                    let value = sample.get(v).filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| format!("[{v}]"));
                    (v.clone(), Value::String(value))
                })
                .collect();
            content.render_composed(composition.as_ref(), &vars, true, RenderLimits::default()).map_err(|e| explain(&e))
        })
    });
    // Suggestions while the person types `{% include "`: prompts and their labels.
    let choices = RwSignal::new(Vec::<String>::new());
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            if let Ok(all) = include_choices().await {
                choices.try_set(all);
            }
        });
    });
    let area = NodeRef::<leptos::html::Textarea>::new();
    let typing = RwSignal::new(None::<String>);
    let check_caret = move || {
        if let Some(el) = area.get_untracked() {
            let caret = el.selection_start().ok().flatten().unwrap_or(0) as usize;
            let before: String = el.value().chars().take(caret).collect();
            typing.set(open_include(&before).map(str::to_owned));
        }
    };
    let suggestions = Memo::new(move |_| {
        let Some(partial) = typing.get() else { return Vec::new() };
        choices.get().into_iter().filter(|c| c.contains(partial.as_str())).take(8).collect::<Vec<_>>()
    });
    let pick = move |choice: String| {
        let Some(el) = area.get_untracked() else { return };
        let caret = el.selection_start().ok().flatten().unwrap_or(0) as usize;
        let text = el.value();
        let before: String = text.chars().take(caret).collect();
        let after: String = text.chars().skip(caret).collect();
        let Some(partial) = open_include(&before) else { return };
        let kept = &before[..before.len() - partial.len()];
        template.set(format!("{kept}{choice}\" %}}{after}"));
        typing.set(None);
    };
    let config_error = Memo::new(move |_| {
        s().draft(String::new()).config_map().err().filter(|_| {
            config.track();
            true
        })
    });

    let save = ServerAction::<SaveVersion>::new();
    let save_name = name.clone();
    Effect::new(move |_| match save.value().get() {
        Some(Ok(SaveOutcome::Saved(v))) => {
            conflict.set(None);
            base.set(v.version);
            commit_message.set(String::new());
            saved.set(Some(v.version));
        }
        Some(Ok(SaveOutcome::Conflict { latest, rows, config_changed })) => {
            saved.set(None);
            conflict.set(Some((latest, rows, config_changed)));
        }
        _ => {}
    });
    let can_save = move || analysis.with(Result::is_ok) && config_error.get().is_none() && !save.pending().get();
    let on_save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        saved.set(None);
        save.dispatch(SaveVersion { name: save_name.clone(), draft: s().draft(commit_message.get_untracked()) });
    };

    let rows = move || messages.get().into_iter().enumerate().collect::<Vec<_>>();
    let add_message = move |_| {
        let m = s().message(MessageRole::User, String::new());
        messages.update(|v| v.push(m));
    };
    let to_chat = move |_| {
        if kind.get_untracked() == PromptType::Text {
            let m = s().message(MessageRole::System, template.get_untracked());
            messages.set(vec![m]);
            kind.set(PromptType::Chat);
        }
    };

    view! {
        <section class="card editor" aria-labelledby="editor-title">
            <h2 id="editor-title">"Edit"</h2>
            <p class="meta">{move || format!("Your edit starts from version {}.", base.get())}</p>
            <form on:submit=on_save>
                <div class="editor-grid">
                    <div class="editor-input">
                        {move || match kind.get() {
                            PromptType::Text => view! {
                                <label for="template">"Prompt text"</label>
                                <textarea id="template" name="template" rows="12" spellcheck="true" node_ref=area
                                    aria-invalid=move || analysis.with(Result::is_err).to_string()
                                    aria-describedby="template-help"
                                    prop:value=move || template.get()
                                    on:input=move |ev| { template.set(event_target_value(&ev)); check_caret(); }
                                    on:click=move |_| check_caret()
                                    on:keyup=move |_| check_caret()></textarea>
                                {move || (!suggestions.with(Vec::is_empty)).then(|| view! {
                                    <div class="suggestions">
                                        <p class="hint" id="suggest-help">"Include a shared prompt: pick one (the label decides which version; it follows the label when it moves)."</p>
                                        <ul aria-describedby="suggest-help">
                                            {suggestions.get().into_iter().map(|c| {
                                                let chosen = c.clone();
                                                view! { <li><button type="button" class="suggestion" on:click=move |_| pick(chosen.clone())>{c}</button></li> }
                                            }).collect_view()}
                                        </ul>
                                    </div>
                                })}
                                <p id="template-help" class="hint">"Use {{ name }} for a value filled in when the prompt is used, and {% include \"shared/name@stable\" %} to include a shared prompt."</p>
                                <button type="button" class="link" on:click=to_chat>"Turn into a chat prompt (messages)"</button>
                            }.into_any(),
                            PromptType::Chat => view! {
                                <fieldset class="messages-editor">
                                    <legend>"Messages"</legend>
                                    <For each=rows key=|(i, m)| (m.id, *i) let((index, message))>
                                        <MessageRow index message messages/>
                                    </For>
                                    <button type="button" on:click=add_message>"Add a message"</button>
                                </fieldset>
                            }.into_any(),
                        }}
                        <label for="config">"Model config (JSON)"</label>
                        <textarea id="config" name="config" rows="5" class="code" spellcheck="false"
                            aria-invalid=move || config_error.get().is_some().to_string()
                            prop:value=move || config.get()
                            on:input=move |ev| config.set(event_target_value(&ev))></textarea>
                        {move || config_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                    </div>
                    <div class="editor-preview">
                        <h3>"Variables"</h3>
                        {move || {
                            let vars = variables.get();
                            if vars.is_empty() {
                                view! { <p class="hint">"This prompt has no variables."</p> }.into_any()
                            } else {
                                view! {
                                    <ul class="variables">
                                        {vars.into_iter().map(|v| {
                                            let id = format!("sample-{v}");
                                            let key = v.clone();
                                            let key2 = v.clone();
                                            view! {
                                                <li>
                                                    <label for=id.clone()><code>{v.clone()}</code> " sample value"</label>
                                                    <input id=id class="sample"
                                                        prop:value=move || samples.with(|s| s.get(&key).cloned().unwrap_or_default())
                                                        on:input=move |ev| { let value = event_target_value(&ev); samples.update(|s| { s.insert(key2.clone(), value); }); }/>
                                                </li>
                                            }
                                        }).collect_view()}
                                    </ul>
                                }.into_any()
                            }
                        }}
                        <h3>"Live preview"</h3>
                        <div class="preview" aria-live="polite">
                            {move || match preview.get() {
                                Ok(Rendered::Text(t)) => view! { <pre class="preview-text">{t}</pre> }.into_any(),
                                Ok(Rendered::Chat(ms)) => view! {
                                    <div class="preview-text">
                                        {ms.into_iter().map(|m| view! { <p class="role">{role_name(m.role)}</p><pre>{m.content}</pre> }).collect_view()}
                                    </div>
                                }.into_any(),
                                Err(e) => {
                                    let line = analysis.with(|a| a.as_ref().err().and_then(|(_, l)| l.clone()));
                                    view! {
                                        <p class="error template-error" role="alert">{e}</p>
                                        {line.map(|l| view! { <pre class="error-line">{l}</pre> })}
                                    }.into_any()
                                }
                            }}
                        </div>
                    </div>
                </div>
                <label for="commit-message">"What did you change? (saved with the version)"</label>
                <input id="commit-message" name="message" maxlength="2000"
                    placeholder="e.g. Warmer tone in the greeting"
                    prop:value=move || commit_message.get()
                    on:input=move |ev| commit_message.set(event_target_value(&ev))/>
                <div class="actions">
                    <button type="submit" class="primary" disabled=move || !can_save()>
                        {move || if save.pending().get() { "Saving…" } else { "Save as a new version" }}
                    </button>
                    {move || saved.get().map(|v| view! {
                        <span class="success" role="status">{format!("Saved as version {v}.")}</span>
                        <a href="">"Reload the page to see it above"</a>
                    })}
                </div>
                {move || save.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error/> })}
            </form>
            {move || conflict.get().map(|(latest, rows, config_changed)| {
                let theirs = latest.version;
                let author = latest.created_by.clone();
                let theirs_version = latest.clone();
                view! {
                    <section class="conflict" role="alert" aria-labelledby="conflict-title">
                        <h3 id="conflict-title">{format!("{author} saved version {theirs} while you were editing")}</h3>
                        <p>"Your edit was not saved. Compare their version with yours, then choose:"</p>
                        <SideBySide rows old_title=format!("Version {theirs} (saved by {author})") new_title="Your edit".to_string() config_changed/>
                        <div class="actions">
                            <button type="button" class="primary" on:click=move |_| { base.set(theirs); conflict.set(None); }>
                                {format!("Keep my edit on top of version {theirs}")}
                            </button>
                            <button type="button" on:click=move |_| { s().load(&theirs_version); conflict.set(None); }>
                                {format!("Discard my edit and load version {theirs}")}
                            </button>
                        </div>
                        <p class="hint">"Keeping your edit replaces their text with yours when you save again; copy anything of theirs you want to keep first."</p>
                    </section>
                }
            })}
        </section>
    }
}

#[component]
fn MessageRow(index: usize, message: DraftMessage, messages: RwSignal<Vec<DraftMessage>>) -> impl IntoView {
    let n = index + 1;
    let role_id = format!("role-{}", message.id);
    let content_id = format!("content-{}", message.id);
    let len = move || messages.with(Vec::len);
    let swap = move |a: usize, b: usize| messages.update(|v| v.swap(a, b));
    view! {
        <div class="message-row">
            <label for=role_id.clone()>{format!("Message {n} role")}</label>
            <select id=role_id
                on:change=move |ev| message.role.set(match event_target_value(&ev).as_str() {
                    "system" => MessageRole::System,
                    "assistant" => MessageRole::Assistant,
                    "placeholder" => MessageRole::Placeholder,
                    _ => MessageRole::User,
                })>
                {[MessageRole::System, MessageRole::User, MessageRole::Assistant, MessageRole::Placeholder].into_iter().map(|r| view! {
                    <option value=role_name(r) selected=move || message.role.get() == r>{role_name(r)}</option>
                }).collect_view()}
            </select>
            <label for=content_id.clone()>{format!("Message {n} text")}</label>
            <textarea id=content_id rows="4" prop:value=move || message.content.get()
                on:input=move |ev| message.content.set(event_target_value(&ev))></textarea>
            {move || (message.role.get() == MessageRole::Placeholder).then(|| view! {
                <p class="hint">"A placeholder: write the name of the variable that will hold a list of messages when the prompt is used (a conversation's history), such as history."</p>
            })}
            <div class="row-actions">
                <button type="button" disabled=move || index == 0 on:click=move |_| swap(index, index - 1)
                    aria-label=format!("Move message {n} up")>"↑ Up"</button>
                <button type="button" disabled=move || { index + 1 >= len() } on:click=move |_| swap(index, index + 1)
                    aria-label=format!("Move message {n} down")>"↓ Down"</button>
                <button type="button" disabled=move || { len() <= 1 }
                    on:click=move |_| messages.update(|v| { v.remove(index); })
                    aria-label=format!("Remove message {n}")>"Remove"</button>
            </div>
        </div>
    }
}
