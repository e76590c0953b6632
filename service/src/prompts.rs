//! Prompts and their versions: create, save a version, list, resolve, render, diff.

use std::collections::HashMap;
use std::sync::Arc;

use domain::access::Action;
use domain::content::{Content, Message, PromptBody, PromptType, Rendered};
use domain::compose::{IncludeRef, Reference, Source};
use domain::diff;
use domain::model::{
    Comparison, DiffView, NewPrompt, NewVersion, Page, PromptSummary, PromptUpdate, RenderRequest, RenderView, Selector,
    VersionView,
};
use domain::names::{self, LATEST, STABLE};
use domain::rollout::{self, BUCKETS, RolloutRef};
use domain::telemetry::Arm;
use domain::template::RenderLimits;
use domain::vocabulary::AuditAction;
use serde_json::{Map, Value, json};

use crate::index::{PromptEntry, ServedVersion, VersionBase};
use crate::store::{self, NewEvent, VersionRow};
use crate::{Principal, Registry, Result, ServiceError, check_len, detached, number_cursor, page_limit, time};

const MAX_TEXT: usize = 2000;
/// A rollout unit's longest length, in bytes.
const MAX_UNIT: usize = 256;
const MAX_TAGS: usize = 20;

/// `GET /api/v1/prompts` filters.
#[derive(Debug, Clone, Default)]
pub struct PromptQuery {
    pub q: Option<String>,
    pub tag: Option<String>,
    pub folder: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn body_from(
    prompt_type: Option<PromptType>,
    template: Option<String>,
    messages: Option<Vec<Message>>,
) -> Result<PromptBody> {
    match (prompt_type, template, messages) {
        (Some(PromptType::Text) | None, Some(t), None) => Ok(PromptBody::Text(t)),
        (Some(PromptType::Chat) | None, None, Some(m)) => Ok(PromptBody::Chat(m)),
        (_, Some(_), Some(_)) => Err(ServiceError::rule(
            "invalid_body",
            "give either `template` (a text prompt) or `messages` (a chat prompt), not both",
        )),
        (Some(PromptType::Text), _, _) => {
            Err(ServiceError::rule("invalid_body", "a text prompt needs `template`, a string"))
        }
        (Some(PromptType::Chat), _, _) => {
            Err(ServiceError::rule("invalid_body", "a chat prompt needs `messages`, a list of {\"role\", \"content\"}"))
        }
        (None, None, None) => {
            Err(ServiceError::rule("invalid_body", "give `template` (a text prompt) or `messages` (a chat prompt)"))
        }
    }
}

fn config_from(config: Option<Value>) -> Result<Option<Map<String, Value>>> {
    match config {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(ServiceError::rule("invalid_config", "`config` must be a JSON object")),
    }
}

/// Tags as a prompt keeps them (trimmed, each once), or why they cannot be.
pub fn check_tags(tags: &[String]) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(ServiceError::rule("invalid_tags", format!("a prompt can have at most {MAX_TAGS} tags")));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim();
        if tag.is_empty() || tag.chars().count() > 64 || tag.chars().any(char::is_control) {
            return Err(ServiceError::rule("invalid_tags", "each tag must be 1 to 64 printable characters"));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_owned());
        }
    }
    Ok(out)
}

fn row_for(prompt_id: i64, version: i64, content: &Content, message: String, actor: &str, at: i64) -> VersionRow {
    // Stored in canonical form, so verification rehashes the stored text as it is.
    let parts = content.parts();
    VersionRow {
        prompt_id,
        version,
        hash: content.hash(),
        prompt_type: parts.prompt_type.as_str().to_owned(),
        template: parts.template,
        messages: parts.messages,
        config: parts.config,
        variables: parts.variables,
        message,
        created_by: actor.to_owned(),
        created_at: at,
    }
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("there is no prompt named '{name}'"))
}

impl Registry {
    pub(crate) fn entry(&self, name: &str) -> Result<Arc<PromptEntry>> {
        self.index().get(name).ok_or_else(|| not_found(name))
    }

    /// Creates a prompt and its version 1.
    pub async fn create_prompt(&self, who: &Principal, req: NewPrompt) -> Result<VersionView> {
        who.require(Action::Write)?;
        names::validate_prompt_name(&req.name)?;
        check_len("description", &req.description, MAX_TEXT)?;
        let message = req.message.unwrap_or_default();
        check_len("message", &message, MAX_TEXT)?;
        let tags = check_tags(&req.tags)?;
        let body = body_from(req.prompt_type, req.template, req.messages)?;
        let content = Content::new(body, config_from(req.config)?.unwrap_or_default())?;
        let (this, who, name, description) = (self.clone(), who.clone(), req.name, req.description);
        detached(async move {
            let at = time::now_us();
            let mut w = this.write_on(&name).await?;
            let id = store::insert_prompt(w.conn(), &name, &description, &tags, &who.actor, at).await?;
            let row = row_for(id, 1, &content, message, &who.actor, at);
            let base = Arc::new(VersionBase::new(row.view(&name, &content), content));
            this.check_includes(&base, &own_overrides(&base)).await?;
            store::insert_version(w.conn(), &row).await?;
            let detail = json!({"hash": row.hash, "message": row.message, "description": description, "tags": tags});
            w.audit(
                at,
                NewEvent {
                    actor: &who.actor,
                    action: AuditAction::PromptCreated,
                    prompt: Some(&name),
                    version: Some(1),
                    label: None,
                    detail,
                },
            )
            .await?;
            w.commit().await?;
            let summary = PromptSummary {
                name: name.clone(),
                description,
                tags,
                latest_version: 1,
                labels: Default::default(),
                updated_at: time::format_us(at),
                updated_by: who.actor.clone(),
                rollouts: Default::default(),
            };
            let entry = this.index().update(|lookup| PromptEntry::new(id, summary, [base], Vec::new(), lookup));
            served_view(&entry, 1)
        })
        .await
    }

    /// Saves the next version. A stale `base_version` is refused and writes nothing;
    /// content equal to the newest version writes nothing and says `unchanged`.
    pub async fn add_version(&self, who: &Principal, name: &str, req: NewVersion) -> Result<VersionView> {
        who.require(Action::Write)?;
        let entry = self.known(name).await?;
        let base_version = req.base_version.ok_or_else(|| {
            ServiceError::rule("base_version_required", "give `base_version`: the version your edit started from")
        })?;
        let message = req.message.unwrap_or_default();
        check_len("message", &message, MAX_TEXT)?;
        let body = body_from(req.prompt_type, req.template, req.messages)?;
        let config = match config_from(req.config)? {
            Some(c) => c,
            // Left out: keep the config of the newest version (checked to be the base below).
            None => match entry.served.get(&entry.summary.latest_version) {
                Some(v) => v.base.content.config.clone(),
                None => Map::new(),
            },
        };
        let content = Content::new(body, config)?;
        let (this, who, name) = (self.clone(), who.clone(), name.to_owned());
        detached(async move {
            let mut w = this.write_on(&name).await?;
            let latest = store::latest_version_named(w.conn(), &name).await?.ok_or_else(|| not_found(&name))?;
            if base_version != latest.version {
                return Err(ServiceError::Stale { base_version, latest_version: latest.version });
            }
            let entry = this.entry(&name)?;
            if content.hash() == latest.hash {
                let mut view = served_view(&entry, latest.version)?;
                view.unchanged = Some(true);
                return Ok(view);
            }
            let at = time::now_us();
            let version = latest.version + 1;
            let row = row_for(latest.prompt_id, version, &content, message, &who.actor, at);
            let base = Arc::new(VersionBase::new(row.view(&name, &content), content));
            this.check_includes(&base, &own_overrides(&base)).await?;
            store::insert_version(w.conn(), &row).await?;
            store::touch_prompt(w.conn(), latest.prompt_id, at, &who.actor).await?;
            let mut detail = json!({"hash": row.hash, "message": row.message, "base_version": base_version});
            // What else now serves something new: prompts that include this one's `latest`.
            let affected = this.index().affected(&name, LATEST);
            if !affected.is_empty() {
                detail["dependents"] =
                    affected.into_iter().map(|(prompt, labels)| json!({"prompt": prompt, "labels": labels})).collect();
            }
            w.audit(
                at,
                NewEvent {
                    actor: &who.actor,
                    action: AuditAction::VersionCreated,
                    prompt: Some(&name),
                    version: Some(version),
                    label: None,
                    detail,
                },
            )
            .await?;
            w.commit().await?;
            let (at, actor) = (time::format_us(at), who.actor.clone());
            let entry = this.index().update(|lookup| entry.with_version(base, at, actor, lookup));
            served_view(&entry, version)
        })
        .await
    }

    /// Changes a prompt's description or tags (what is given replaces what it has); no
    /// version is made. A change that changes nothing writes nothing.
    pub async fn update_details(&self, who: &Principal, name: &str, req: PromptUpdate) -> Result<PromptSummary> {
        who.require(Action::Write)?;
        self.known(name).await?;
        if let Some(description) = &req.description {
            check_len("description", description, MAX_TEXT)?;
        }
        let tags = req.tags.as_deref().map(check_tags).transpose()?;
        let (this, who, name) = (self.clone(), who.clone(), name.to_owned());
        detached(async move {
            let mut w = this.write_on(&name).await?;
            let entry = this.entry(&name)?;
            let mut summary = entry.summary.clone();
            let description = req.description.unwrap_or_else(|| summary.description.clone());
            let tags = tags.unwrap_or_else(|| summary.tags.clone());
            if description == summary.description && tags == summary.tags {
                return Ok(summary);
            }
            let at = time::now_us();
            store::set_prompt_details(w.conn(), entry.id, &description, &tags, at, &who.actor).await?;
            let mut detail = json!({});
            if description != summary.description {
                detail["description"] = json!(description);
                detail["previous_description"] = json!(summary.description);
            }
            if tags != summary.tags {
                detail["tags"] = json!(tags);
                detail["previous_tags"] = json!(summary.tags);
            }
            let e = NewEvent {
                actor: &who.actor,
                action: AuditAction::PromptUpdated,
                prompt: Some(&name),
                version: None,
                label: None,
                detail,
            };
            w.audit(at, e).await?;
            w.commit().await?;
            (summary.description, summary.tags) = (description, tags);
            summary.updated_at = time::format_us(at);
            summary.updated_by = who.actor.clone();
            let changed = summary.clone();
            this.index().update(|lookup| {
                PromptEntry::new(entry.id, changed, entry.bases().collect::<Vec<_>>(), entry.split_plans(), lookup)
            });
            Ok(summary)
        })
        .await
    }

    /// Lists prompts by name, filtered.
    pub fn list_prompts(&self, who: &Principal, query: &PromptQuery) -> Result<Page<PromptSummary>> {
        who.require(Action::Read)?;
        let limit = page_limit(query.limit, 50, 500)? as usize;
        let after = match &query.cursor {
            None => None,
            Some(c) => Some(
                hex::decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ServiceError::BadRequest(format!("'{c}' is not a valid cursor")))?,
            ),
        };
        let needle = query.q.as_deref().map(str::to_lowercase).filter(|q| !q.is_empty());
        let folder = query.folder.as_deref().map(|f| f.trim_end_matches('/')).filter(|f| !f.is_empty());
        let (entries, more) = self.index().scan(after.as_deref(), limit, |e| {
            let s = &e.summary;
            needle.as_deref().is_none_or(|n| e.search_text.contains(n))
                && query.tag.as_deref().is_none_or(|t| s.tags.iter().any(|x| x == t))
                && folder.is_none_or(|f| s.name.strip_prefix(f).is_some_and(|rest| rest.starts_with('/')))
        });
        let next_cursor = if more { entries.last().map(|e| hex::encode(&e.summary.name)) } else { None };
        Ok(Page { items: entries.iter().map(|e| e.summary.clone()).collect(), next_cursor })
    }

    /// One prompt's summary: description, tags, labels, last change.
    pub fn prompt(&self, who: &Principal, name: &str) -> Result<PromptSummary> {
        who.require(Action::Read)?;
        Ok(self.entry(name)?.summary.clone())
    }

    /// Every folder with the number of prompts in it (sub-folders included).
    pub fn folders(&self, who: &Principal) -> Result<Vec<(String, i64)>> {
        who.require(Action::Read)?;
        Ok(self.index().folders())
    }

    /// Resolve for applications (the delivery API): like [`Registry::resolve`], for the
    /// `app` scope too, and refused while the prompt's budget blocks.
    pub async fn serve(&self, who: &Principal, name: &str, sel: &Selector) -> Result<Arc<ServedVersion>> {
        who.require(Action::Serve)?;
        self.check_budget(name)?;
        self.select(name, sel).await.and_then(composed)
    }

    /// Chooses one version: by number, by label now, by label at an instant, or `stable`.
    pub async fn resolve(&self, who: &Principal, name: &str, sel: &Selector) -> Result<Arc<ServedVersion>> {
        who.require(Action::Read)?;
        self.select(name, sel).await.and_then(composed)
    }

    async fn select(&self, name: &str, sel: &Selector) -> Result<Arc<ServedVersion>> {
        let entry = self.entry(name)?;
        if sel.version.is_some() && (sel.label.is_some() || sel.at.is_some()) {
            return Err(ServiceError::BadRequest(
                "give either a version or a label (with an optional `at`), not both".into(),
            ));
        }
        if let Some(v) = sel.version {
            return self.version_of(&entry, v).await;
        }
        let label = sel.label.as_deref().unwrap_or(STABLE);
        names::validate_label(label).map_err(|e| ServiceError::BadRequest(e.0))?;
        let unit = sel.unit.as_deref();
        if unit.is_some_and(|u| u.len() > MAX_UNIT) {
            return Err(ServiceError::BadRequest(format!("a unit is at most {MAX_UNIT} bytes")));
        }
        let Some(at) = &sel.at else {
            if let Some(split) = entry.splits.get(label) {
                return Ok(split.pick(unit).clone());
            }
            let version = entry.label(label).ok_or_else(|| {
                ServiceError::NotFound(format!("label '{label}' does not point at any version of '{name}'"))
            })?;
            return self.version_of(&entry, version).await;
        };
        let instant = time::parse_param("at", Some(at))?.unwrap_or_default();
        let reader = &self.store().reader;
        let found = if label == LATEST {
            store::latest_at(reader, entry.id, instant).await?
        } else {
            store::label_at(reader, entry.id, label, instant).await?
        };
        let version = found.ok_or_else(|| {
            ServiceError::NotFound(format!("label '{label}' pointed at no version of '{name}' at {at}"))
        })?;
        // A rollout live at that instant: the arm that unit got then (at random without one).
        if label != LATEST
            && let Some((id, candidate, weight)) = self.rollout_at(&entry, label, instant).await?
        {
            let bucket = unit.map_or_else(|| fastrand::u64(..BUCKETS), |u| rollout::bucket(&id, u));
            let arm = rollout::arm_of(bucket, weight);
            let chosen = if arm == Arm::Candidate { candidate } else { version };
            let rollout = RolloutRef { id, arm, weight };
            return self.version_as_of(&entry, chosen, Some(instant), Some(rollout)).await;
        }
        self.version_as_of(&entry, version, Some(instant), None).await
    }

    /// One version with its includes resolved now: from the index if a label points at
    /// it, else from storage.
    pub(crate) async fn version_of(&self, entry: &PromptEntry, version: i64) -> Result<Arc<ServedVersion>> {
        self.version_as_of(entry, version, None, None).await
    }

    /// One version with its includes resolved as of `at` (`None`: now), and the rollout
    /// that chose it.
    async fn version_as_of(
        &self,
        entry: &PromptEntry,
        version: i64,
        at: Option<i64>,
        rollout: Option<RolloutRef>,
    ) -> Result<Arc<ServedVersion>> {
        let served = entry.served.get(&version);
        if let Some(served) = served
            && rollout.is_none()
            && (at.is_none() || served.base.includes.is_empty())
        {
            return Ok(served.clone());
        }
        let base = match served {
            Some(s) => s.base.clone(),
            None => {
                let name = &entry.summary.name;
                let row = store::version(&self.store().reader, entry.id, version)
                    .await?
                    .ok_or_else(|| ServiceError::NotFound(format!("'{name}' has no version {version}")))?;
                Arc::new(crate::version_base(name, &row)?)
            }
        };
        let composition = self.composition_of(&base, at, &HashMap::new()).await?;
        Ok(Arc::new(ServedVersion::new(base, entry.labels_of(version), rollout, composition)))
    }

    /// A prompt's versions, newest first.
    pub async fn list_versions(
        &self,
        who: &Principal,
        name: &str,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<VersionView>> {
        who.require(Action::Read)?;
        let entry = self.entry(name)?;
        let limit = page_limit(limit, 50, 500)?;
        let before = number_cursor(cursor)?;
        let rows = store::versions_page(&self.store().reader, entry.id, before, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(limit as usize) {
            let base = crate::version_base(name, row)?;
            let mut view = VersionView { labels: entry.labels_of(row.version), ..base.view.clone() };
            // Composed as resolve serves it (a version whose includes no longer resolve is
            // listed as stored).
            if let Ok(Some(c)) = self.composition_of(&base, None, &HashMap::new()).await? {
                view = view.composed(&c);
            }
            items.push(view);
        }
        let next_cursor = if more { items.last().map(|v| v.version.to_string()) } else { None };
        Ok(Page { items, next_cursor })
    }

    /// Renders a version strictly with the given variables.
    pub async fn render(&self, who: &Principal, name: &str, req: RenderRequest) -> Result<RenderView> {
        let sel = Selector { version: req.version, label: req.label, at: req.at, unit: req.unit, raw: false };
        let served = self.serve(who, name, &sel).await?;
        let view = &served.base.view;
        let rendered = served.base.content.render_composed(
            served.composed()?,
            &req.variables,
            req.allow_unknown,
            RenderLimits::default(),
        )?;
        let (text, messages) = match rendered {
            Rendered::Text(t) => (Some(t), None),
            Rendered::Chat(m) => (None, Some(m)),
        };
        Ok(RenderView {
            name: view.name.clone(),
            version: view.version,
            hash: view.hash.clone(),
            resolved_hash: served.view.resolved_hash.clone(),
            text,
            messages,
            rollout: served.rollout.clone(),
        })
    }

    /// The readable documents of two versions (stored, or `composed` with their includes
    /// inlined as served now), and whether their configs differ.
    async fn documents(
        &self,
        who: &Principal,
        name: &str,
        from: i64,
        to: i64,
        composed: bool,
    ) -> Result<(String, String, bool)> {
        who.require(Action::Read)?;
        let entry = self.entry(name)?;
        let a = self.version_of(&entry, from).await?;
        let b = self.version_of(&entry, to).await?;
        let document = |s: &ServedVersion| -> Result<String> {
            let content = &s.base.content;
            match s.composed()? {
                Some(c) if composed => Ok(diff::document(&c.body, &content.config)),
                _ => Ok(diff::document(&content.body, &content.config)),
            }
        };
        Ok((document(&a)?, document(&b)?, diff::config_changed(&a.base.content.config, &b.base.content.config)))
    }

    /// A unified diff between two versions, config included.
    pub async fn diff(&self, who: &Principal, name: &str, from: i64, to: i64, composed: bool) -> Result<DiffView> {
        let (a, b, config_changed) = self.documents(who, name, from, to, composed).await?;
        let unified = diff::unified(&a, &b, &format!("{name}@{from}"), &format!("{name}@{to}"));
        Ok(DiffView { from, to, unified, config_changed })
    }

    /// Two versions side by side with the changed words marked (the console's view).
    pub async fn compare(&self, who: &Principal, name: &str, from: i64, to: i64, composed: bool) -> Result<Comparison> {
        let (a, b, config_changed) = self.documents(who, name, from, to, composed).await?;
        Ok(Comparison { from, to, rows: diff::side_by_side(&a, &b), config_changed })
    }
}

/// A version whose includes resolved, or why they did not.
fn composed(served: Arc<ServedVersion>) -> Result<Arc<ServedVersion>> {
    served.composed()?;
    Ok(served)
}

/// The object of a version the entry serves, includes resolved.
fn served_view(entry: &PromptEntry, version: i64) -> Result<VersionView> {
    let served = entry.served.get(&version).ok_or_else(|| ServiceError::internal("a saved version is not served"))?;
    Ok(served.view.clone())
}

/// `name@latest` and `name@N` as a version about to be saved: what its own includes
/// (through others) would come back to once it is.
pub(crate) fn own_overrides(base: &VersionBase) -> HashMap<IncludeRef, Source> {
    let name = base.view.name.clone();
    let latest = IncludeRef { name: name.clone(), reference: Reference::Label(LATEST.to_owned()) };
    let exact = IncludeRef { name, reference: Reference::Version(base.view.version) };
    HashMap::from([(latest, base.source()), (exact, base.source())])
}
