//! The registry as files (GitOps): `export` writes one file per prompt (description,
//! tags, content, config, labels, suites); `apply` plans what the files change and makes
//! it through the same calls as the API, so every rule, gate, approval and audit event
//! holds. A version saved since a file was exported is a conflict, never overwritten.

use std::collections::{BTreeMap, BTreeSet};

use domain::access::Action;
use domain::content::{Content, Message, PromptBody, PromptType};
use domain::eval::Suite;
use domain::model::{
    ApplyReport, ApplyStep, FileVersion, LabelOutcome, MoveLabel, NewPrompt, NewVersion, PromptFile, PromptUpdate,
};
use serde_json::{Map, Value};

use crate::{Principal, Registry, Result, ServiceError, store};

/// Files one apply may hold.
const MAX_FILES: usize = 10_000;

/// One version's content as a file holds it, with its hash.
struct FileContent {
    version: i64,
    prompt_type: PromptType,
    template: Option<String>,
    messages: Option<Vec<Message>>,
    config: Map<String, Value>,
    hash: String,
}

impl Registry {
    /// Every prompt as a file, by name.
    pub async fn export_files(&self, who: &Principal) -> Result<Vec<PromptFile>> {
        who.require(Action::Read)?;
        let (entries, _) = self.index().scan(None, usize::MAX, |_| true);
        let mut files = Vec::with_capacity(entries.len());
        for entry in entries {
            let s = &entry.summary;
            let newest = self.version_of(&entry, s.latest_version).await?;
            let mut versions = Vec::new();
            for version in s.labels.values().copied().collect::<BTreeSet<i64>>() {
                if version == s.latest_version {
                    continue;
                }
                let v = &self.version_of(&entry, version).await?.base;
                versions.push(FileVersion {
                    version,
                    prompt_type: v.content.body.prompt_type(),
                    template: v.content.body.template().map(str::to_owned),
                    messages: v.content.body.messages().map(<[Message]>::to_vec),
                    config: v.content.config.clone(),
                });
            }
            let suites = self
                .suites(who, &s.name)
                .await?
                .into_iter()
                .map(|v| (v.name, Suite { threshold: v.threshold, cases: v.cases }))
                .collect();
            let content = &newest.base.content;
            files.push(PromptFile {
                name: s.name.clone(),
                description: s.description.clone(),
                tags: s.tags.clone(),
                version: s.latest_version,
                prompt_type: content.body.prompt_type(),
                template: content.body.template().map(str::to_owned),
                messages: content.body.messages().map(<[Message]>::to_vec),
                config: content.config.clone(),
                labels: s.labels.clone(),
                versions,
                suites,
            });
        }
        Ok(files)
    }

    /// Plans what `files` change and (unless `dry_run`) makes each change: a prompt
    /// created with its versions, a new version on the newest, suites saved, labels
    /// moved under their rules. Prompts are applied after the prompts they include.
    pub async fn apply_files(&self, who: &Principal, files: Vec<PromptFile>, dry_run: bool) -> Result<ApplyReport> {
        who.require(Action::Write)?;
        if files.len() > MAX_FILES {
            return Err(ServiceError::BadRequest(format!("at most {MAX_FILES} prompts per apply")));
        }
        let mut steps = Vec::new();
        for file in in_include_order(files) {
            self.apply_file(who, file, dry_run, &mut steps).await?;
        }
        let refused = steps.iter().any(|s| matches!(s.outcome.as_str(), "refused" | "conflict"));
        Ok(ApplyReport { steps, refused })
    }

    async fn apply_file(&self, who: &Principal, f: PromptFile, dry_run: bool, steps: &mut Vec<ApplyStep>) -> Result<()> {
        let contents = match file_contents(&f) {
            Ok(c) => c,
            Err(e) => {
                steps.push(step(&f.name, "unchanged", format!("the file is not valid: {e}"), "refused"));
                return Ok(());
            }
        };
        let planned = if dry_run { "planned" } else { "done" };
        // File version -> the registry's version with that content (once it exists).
        let mut numbers: BTreeMap<i64, i64> = BTreeMap::new();
        let top = contents.last().expect("a file has its newest version");
        match self.index().get(&f.name) {
            None => {
                steps.push(step(&f.name, "create", format!("{} version(s)", contents.len()), planned));
                if dry_run {
                    for (i, c) in contents.iter().enumerate() {
                        numbers.insert(c.version, i as i64 + 1);
                    }
                } else {
                    let mut newest = 0;
                    for c in &contents {
                        let outcome = if newest == 0 {
                            let req = NewPrompt {
                                name: f.name.clone(),
                                description: f.description.clone(),
                                tags: f.tags.clone(),
                                prompt_type: Some(c.prompt_type),
                                template: c.template.clone(),
                                messages: c.messages.clone(),
                                config: Some(Value::Object(c.config.clone())),
                                message: Some("apply: created from files".into()),
                            };
                            self.create_prompt(who, req).await
                        } else {
                            self.add_version(who, &f.name, new_version(c, newest)).await
                        };
                        match outcome {
                            Ok(view) => {
                                newest = view.version;
                                numbers.insert(c.version, view.version);
                            }
                            Err(e) => return refuse(steps, &f.name, "create", e),
                        }
                    }
                }
            }
            Some(entry) => {
                if entry.summary.description != f.description || entry.summary.tags != f.tags {
                    steps.push(step(&f.name, "details", "description and tags".into(), planned));
                    let details = PromptUpdate { description: Some(f.description.clone()), tags: Some(f.tags.clone()) };
                    if !dry_run && let Err(e) = self.update_details(who, &f.name, details).await {
                        return refuse(steps, &f.name, "details", e);
                    }
                }
                let latest = entry.summary.latest_version;
                let newest_hash = self.version_of(&entry, latest).await?.base.view.hash.clone();
                if newest_hash == top.hash {
                    numbers.insert(top.version, latest);
                } else if latest != f.version {
                    steps.push(step(&f.name, "new_version",
                        format!(
                            "version {latest} was saved after version {} this file was exported from: export again, \
                             make your edit on it, and apply (nothing was overwritten)",
                            f.version
                        ),
                        "conflict",
                    ));
                    return Ok(());
                } else {
                    steps.push(step(&f.name, "new_version", format!("version {} on version {latest}", latest + 1), planned));
                    if dry_run {
                        numbers.insert(top.version, latest + 1);
                    } else {
                        match self.add_version(who, &f.name, new_version(top, latest)).await {
                            Ok(view) => {
                                numbers.insert(top.version, view.version);
                            }
                            Err(e) => return refuse(steps, &f.name, "new_version", e),
                        }
                    }
                }
                for c in &contents[..contents.len() - 1] {
                    if let Some(v) = store::version_with_hash(&self.store().reader, entry.id, &c.hash).await? {
                        numbers.insert(c.version, v);
                    }
                }
            }
        }
        self.apply_suites(who, &f, dry_run, steps).await?;
        self.apply_labels(who, &f, &contents, &numbers, dry_run, steps).await?;
        if !steps.iter().any(|s| s.prompt == f.name) {
            steps.push(ApplyStep {
                prompt: f.name.clone(),
                action: "unchanged".into(),
                detail: String::new(),
                outcome: "done".into(),
            });
        }
        Ok(())
    }

    async fn apply_suites(&self, who: &Principal, f: &PromptFile, dry_run: bool, steps: &mut Vec<ApplyStep>) -> Result<()> {
        for (suite_name, suite) in &f.suites {
            let current = self.suite(who, &f.name, suite_name).await.ok();
            if current.is_some_and(|c| Suite { threshold: c.threshold, cases: c.cases }.hash() == suite.hash()) {
                continue;
            }
            let detail = format!("suite '{suite_name}' ({} cases)", suite.cases.len());
            if dry_run {
                steps.push(step(&f.name, "suite", detail, "planned"));
            } else if let Err(e) = self.put_suite(who, &f.name, suite_name, suite.clone()).await {
                refuse(steps, &f.name, "suite", e)?;
            } else {
                steps.push(step(&f.name, "suite", detail, "done"));
            }
        }
        Ok(())
    }

    async fn apply_labels(
        &self,
        who: &Principal,
        f: &PromptFile,
        contents: &[FileContent],
        numbers: &BTreeMap<i64, i64>,
        dry_run: bool,
        steps: &mut Vec<ApplyStep>,
    ) -> Result<()> {
        let current = self.index().get(&f.name).map(|e| e.summary.labels.clone()).unwrap_or_default();
        for (label, file_version) in &f.labels {
            let Some(target) = numbers.get(file_version).copied() else {
                let why = match contents.iter().any(|c| c.version == *file_version) {
                    true => format!("'{label}' points at version {file_version} of the file, whose content is not a version here"),
                    false => format!("'{label}' points at version {file_version}, which the file does not hold"),
                };
                steps.push(step(&f.name, "label", why, "refused"));
                continue;
            };
            let from = current.get(label).copied();
            if from == Some(target) {
                continue;
            }
            let detail = format!("{label}: {} → {target}", from.map_or("none".into(), |v| v.to_string()));
            if dry_run {
                steps.push(step(&f.name, "label", detail, "planned"));
                continue;
            }
            let req = MoveLabel { version: target, reason: "apply".into() };
            match self.move_label(who, &f.name, label, req).await {
                Ok(LabelOutcome::Moved(_)) => steps.push(step(&f.name, "label", detail, "done")),
                Ok(LabelOutcome::Requested(r)) => {
                    steps.push(step(&f.name, "label", format!("{detail} (request {})", r.id), "requested"))
                }
                Err(e) => refuse(steps, &f.name, "label", e)?,
            }
        }
        Ok(())
    }
}

fn step(prompt: &str, action: &str, detail: String, outcome: &str) -> ApplyStep {
    ApplyStep { prompt: prompt.into(), action: action.into(), detail, outcome: outcome.into() }
}

/// Records a refused step; a failure of ours stops the apply.
fn refuse(steps: &mut Vec<ApplyStep>, prompt: &str, action: &str, e: ServiceError) -> Result<()> {
    if let ServiceError::Internal(_) = e {
        return Err(e);
    }
    steps.push(step(prompt, action, e.to_string(), "refused"));
    Ok(())
}

fn new_version(c: &FileContent, base: i64) -> NewVersion {
    NewVersion {
        base_version: Some(base),
        prompt_type: Some(c.prompt_type),
        template: c.template.clone(),
        messages: c.messages.clone(),
        config: Some(Value::Object(c.config.clone())),
        message: Some("apply".into()),
    }
}

/// The file's versions, oldest first, the newest (top) last; each checked and hashed.
fn file_contents(f: &PromptFile) -> std::result::Result<Vec<FileContent>, String> {
    let mut out = Vec::with_capacity(f.versions.len() + 1);
    let mut older = f.versions.clone();
    older.sort_by_key(|v| v.version);
    for v in older {
        if v.version >= f.version {
            return Err(format!("versions must be older than version {} (found {})", f.version, v.version));
        }
        out.push(content_of(v.version, v.prompt_type, v.template, v.messages, v.config)?);
    }
    let top = content_of(f.version, f.prompt_type, f.template.clone(), f.messages.clone(), f.config.clone())?;
    out.push(top);
    Ok(out)
}

fn content_of(
    version: i64,
    prompt_type: PromptType,
    template: Option<String>,
    messages: Option<Vec<Message>>,
    config: Map<String, Value>,
) -> std::result::Result<FileContent, String> {
    let body = match (prompt_type, &template, &messages) {
        (PromptType::Text, Some(t), None) => PromptBody::Text(t.clone()),
        (PromptType::Chat, None, Some(m)) => PromptBody::Chat(m.clone()),
        _ => return Err(format!("version {version}: a text prompt has `template`, a chat prompt `messages`")),
    };
    let hash = Content::new(body, config.clone()).map_err(|e| format!("version {version}: {e}"))?.hash();
    Ok(FileContent { version, prompt_type, template, messages, config, hash })
}

/// Files ordered so that a prompt comes after the prompts (in these files) it includes;
/// otherwise by name.
fn in_include_order(mut files: Vec<PromptFile>) -> Vec<PromptFile> {
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let names: BTreeSet<String> = files.iter().map(|f| f.name.clone()).collect();
    let includes = |f: &PromptFile| -> BTreeSet<String> {
        let templates = f
            .template
            .iter()
            .cloned()
            .chain(f.messages.iter().flatten().map(|m| m.content.clone()))
            .chain(f.versions.iter().flat_map(|v| v.template.iter().cloned().chain(v.messages.iter().flatten().map(|m| m.content.clone()))));
        templates
            .flat_map(|t| domain::compose::includes_of(&t).unwrap_or_default())
            .map(|r| r.name)
            .filter(|n| *n != f.name && names.contains(n))
            .collect()
    };
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut ordered = Vec::with_capacity(files.len());
    let mut waiting: Vec<(PromptFile, BTreeSet<String>)> = files.into_iter().map(|f| { let i = includes(&f); (f, i) }).collect();
    while !waiting.is_empty() {
        let ready = waiting.iter().position(|(_, inc)| inc.iter().all(|n| done.contains(n))).unwrap_or(0);
        let (f, _) = waiting.remove(ready);
        done.insert(f.name.clone());
        ordered.push(f);
    }
    ordered
}
