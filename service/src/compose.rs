//! Composition in the registry: the includes of a version resolved now (from the index)
//! or as of an instant (from storage), the checks made before a save or a label move, and
//! the prompts that include a prompt.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use domain::access::Action;
use domain::compose::{ComposeError, Composition, IncludeRef, Reference, Source};
use domain::content::Content;
use domain::model::{Dependent, Locked, Lockfile, Page};
use domain::names::{LATEST, STABLE};

use crate::index::{PromptEntry, VersionBase};
use crate::{Principal, Registry, Result, ServiceError, store};

/// Refs one lock may name.
const MAX_LOCK_REFS: usize = 500;

/// References one composition may resolve in all (a guard against a runaway fan-out;
/// depth is limited separately).
const MAX_REFERENCES: usize = 1000;

/// Includes resolved ahead of a check: the version named, or why there is none.
type Resolved = HashMap<IncludeRef, std::result::Result<Source, String>>;

/// The content an evaluation renders: the version with its includes inlined (which
/// renders as the include does), and the variables of everything it includes.
pub(crate) fn evaluated(content: &Content, composition: Option<&Composition>) -> Content {
    match composition {
        Some(c) => Content::stored(c.body.clone(), content.config.clone(), c.variables.clone()),
        None => content.clone(),
    }
}

impl Registry {
    /// Resolves every include `base` reaches (at any depth), now or as of `at`, with
    /// `overrides` in place of what the index holds (a version about to be saved, a label
    /// about to move), then composes. `None` when it includes nothing.
    pub(crate) async fn composition_of(
        &self,
        base: &VersionBase,
        at: Option<i64>,
        overrides: &HashMap<IncludeRef, Source>,
    ) -> Result<std::result::Result<Option<Composition>, ComposeError>> {
        if base.includes.is_empty() {
            return Ok(Ok(None));
        }
        let resolved = self.resolve_includes(&base.includes, at, overrides).await?;
        let mut lookup = |target: &IncludeRef| {
            resolved.get(target).cloned().unwrap_or_else(|| Err(format!("'{target}' was not resolved")))
        };
        Ok(base.compose(&mut lookup))
    }

    async fn resolve_includes(
        &self,
        roots: &[IncludeRef],
        at: Option<i64>,
        overrides: &HashMap<IncludeRef, Source>,
    ) -> Result<Resolved> {
        let mut resolved = Resolved::new();
        let mut queue: VecDeque<IncludeRef> = roots.iter().cloned().collect();
        while let Some(target) = queue.pop_front() {
            if resolved.contains_key(&target) || resolved.len() >= MAX_REFERENCES {
                continue;
            }
            let found = match overrides.get(&target) {
                Some(source) => Ok(source.clone()),
                None => self.resolve_one(&target, at).await?,
            };
            if let Ok(source) = &found {
                queue.extend(source.content.includes());
            }
            resolved.insert(target, found);
        }
        Ok(resolved)
    }

    /// One reference, now (the index; a version no label serves is read once and kept)
    /// or as of `at` (the label's history).
    async fn resolve_one(&self, target: &IncludeRef, at: Option<i64>) -> Result<std::result::Result<Source, String>> {
        let name = &target.name;
        let Some(entry) = self.index().get(name) else {
            return Ok(Err(format!("there is no prompt named '{name}'")));
        };
        let version = match (&target.reference, at) {
            (Reference::Version(v), _) => *v,
            (Reference::Label(_), None) => return Ok(self.index().source(target)),
            (Reference::Label(label), Some(at)) => {
                let reader = &self.store().reader;
                let found = if label == LATEST {
                    store::latest_at(reader, entry.id, at).await?
                } else {
                    store::label_at(reader, entry.id, label, at).await?
                };
                match found {
                    Some(v) => v,
                    None => return Ok(Err(format!("label '{label}' of '{name}' pointed at no version then"))),
                }
            }
        };
        if self.index().has_version(name, version) {
            return Ok(self.index().source(&IncludeRef { name: name.clone(), reference: Reference::Version(version) }));
        }
        let Some(row) = store::version(&self.store().reader, entry.id, version).await? else {
            return Ok(Err(format!("'{name}' has no version {version}")));
        };
        let base = Arc::new(crate::version_base(name, &row)?);
        let source = base.source();
        self.index().pin(base);
        Ok(Ok(source))
    }

    /// Loads what the index needs to compose `bases` (the versions included by number
    /// that no label serves), before it is asked to.
    pub(crate) async fn prepare_includes(&self, bases: impl IntoIterator<Item = &Arc<VersionBase>>) -> Result<()> {
        for base in bases {
            if !base.includes.is_empty() {
                self.resolve_includes(&base.includes, None, &HashMap::new()).await?;
            }
        }
        Ok(())
    }

    /// Checks that `base` (a version about to be saved, or the version a label is about
    /// to point at) composes once `overrides` hold: every include exists, none comes
    /// back round, none nests too deep.
    pub(crate) async fn check_includes(&self, base: &VersionBase, overrides: &HashMap<IncludeRef, Source>) -> Result<()> {
        self.composition_of(base, None, overrides).await??;
        Ok(())
    }

    /// What each ref resolves to now, and the audit chain's head: what a deployment pins.
    /// A label under a rollout pins the label's own version, not an arm.
    pub async fn lock(&self, who: &Principal, refs: &[String]) -> Result<Lockfile> {
        who.require(Action::Serve)?;
        if refs.is_empty() || refs.len() > MAX_LOCK_REFS {
            return Err(ServiceError::BadRequest(format!("give 1 to {MAX_LOCK_REFS} refs such as \"support/greeting@stable\"")));
        }
        // Read first: a change committed while the refs resolve makes the head newer, never older.
        let audit_head = store::head_hash(&self.store().reader).await?.unwrap_or_default();
        let mut prompts = Vec::with_capacity(refs.len());
        for text in refs {
            let target = if text.contains('@') {
                IncludeRef::parse(text).map_err(|e| ServiceError::BadRequest(format!("'{text}': {e}")))?
            } else {
                IncludeRef { name: text.clone(), reference: Reference::Label(STABLE.to_owned()) }
            };
            let entry = self.entry(&target.name)?;
            let version = match &target.reference {
                Reference::Version(v) => *v,
                Reference::Label(label) => entry.label(label).ok_or_else(|| {
                    ServiceError::NotFound(format!("label '{label}' does not point at any version of '{}'", target.name))
                })?,
            };
            let served = self.version_of(&entry, version).await?;
            served.composed()?;
            let view = &served.view;
            prompts.push(Locked {
                name: target.name.clone(),
                reference: target.reference.to_string(),
                version,
                hash: view.hash.clone(),
                resolved_hash: view.resolved_hash.clone(),
                includes: view.includes.clone(),
            });
        }
        Ok(Lockfile { prompts, audit_head })
    }

    /// What `refs` name now and everything they include in turn, by `name@ref`: what
    /// the console's live preview composes a draft with. Refs that name nothing are left
    /// out (the preview says so).
    pub async fn include_sources(&self, who: &Principal, refs: &[String]) -> Result<BTreeMap<String, Source>> {
        who.require(Action::Read)?;
        let roots: Vec<IncludeRef> = refs.iter().take(MAX_LOCK_REFS).filter_map(|r| IncludeRef::parse(r).ok()).collect();
        let resolved = self.resolve_includes(&roots, None, &HashMap::new()).await?;
        Ok(resolved.into_iter().filter_map(|(k, v)| Some((k.to_string(), v.ok()?))).collect())
    }

    /// Every `name@label` a template can include now: each text prompt's labels and
    /// `latest`, by name.
    pub fn include_choices(&self, who: &Principal) -> Result<Vec<String>> {
        who.require(Action::Read)?;
        let (entries, _) = self.index().scan(None, usize::MAX, |e| {
            e.served.get(&e.summary.latest_version).is_some_and(|s| s.base.content.body.template().is_some())
        });
        Ok(entries
            .iter()
            .flat_map(|e| {
                let name = &e.summary.name;
                e.summary.labels.keys().map(move |l| format!("{name}@{l}")).chain([format!("{name}@{LATEST}")])
            })
            .collect())
    }

    /// Every version of any prompt that includes `name`, with the labels that serve it.
    pub async fn dependents(&self, who: &Principal, name: &str) -> Result<Page<Dependent>> {
        who.require(Action::Read)?;
        self.entry(name)?;
        let rows = store::versions_mentioning(&self.store().reader, name).await?;
        let ids: HashSet<i64> = rows.iter().map(|r| r.prompt_id).collect();
        let (entries, _) = self.index().scan(None, usize::MAX, |e| ids.contains(&e.id));
        let by_id: HashMap<i64, &Arc<PromptEntry>> = entries.iter().map(|e| (e.id, e)).collect();
        let mut items = Vec::new();
        for row in rows {
            let Some(entry) = by_id.get(&row.prompt_id) else { continue };
            for target in row.content()?.includes().into_iter().filter(|t| t.name == name) {
                items.push(Dependent {
                    name: entry.summary.name.clone(),
                    version: row.version,
                    reference: target.reference.to_string(),
                    labels: entry.labels_of(row.version),
                });
            }
        }
        Ok(Page { items, next_cursor: None })
    }
}
