//! The in-memory index that resolve is served from: for every prompt its summary, its
//! labels and, ready to send, each version that a label (or `latest`) points at.
//!
//! It is changed only by the code path that commits a version or a label move, while that
//! path still holds the write lock, so the next request after a promotion sees it. Each
//! prompt's entry is immutable and replaced whole (copy on write): readers take an `Arc`
//! under a short read lock and never wait for a writer's work.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use domain::compose::{self, ComposeError, Composition, IncludeRef, Reference, Source};
use domain::content::Content;
use domain::model::{PromptSummary, VersionView};
use domain::names::LATEST;
use domain::rollout::{self, BUCKETS, RolloutRef, SplitBrief};
use domain::telemetry::Arm;
use parking_lot::{Mutex, RwLock};

/// Resolves an include to the version it names, or says why it cannot.
pub type Lookup<'a> = dyn FnMut(&IncludeRef) -> Result<Source, String> + 'a;

/// A version's content and object, labels left empty.
#[derive(Debug)]
pub struct VersionBase {
    pub view: VersionView,
    pub content: Content,
    /// What its templates include, in order.
    pub includes: Vec<IncludeRef>,
}

impl VersionBase {
    pub fn new(view: VersionView, content: Content) -> VersionBase {
        let includes = content.includes();
        VersionBase { view, content, includes }
    }

    /// Its includes resolved through `lookup`; `None` when it includes nothing.
    pub fn compose(&self, lookup: &mut Lookup<'_>) -> Result<Option<Composition>, ComposeError> {
        if self.includes.is_empty() {
            return Ok(None);
        }
        let root = format!("{}@{}", self.view.name, self.view.version);
        compose::compose(&root, &self.content, &self.view.hash, lookup).map(Some)
    }

    pub fn source(&self) -> Source {
        Source { version: self.view.version, hash: self.view.hash.clone(), content: self.content.clone() }
    }
}

/// A version as resolve sends it.
#[derive(Debug)]
pub struct ServedVersion {
    pub base: Arc<VersionBase>,
    /// The version object with its current labels and its includes resolved.
    pub view: VersionView,
    /// `view`, serialised once.
    pub json: Bytes,
    /// `"<resolved_hash>"`, the ETag.
    pub etag: String,
    /// The rollout and arm that chose it, if one did.
    pub rollout: Option<RolloutRef>,
    /// Its includes resolved (`None` when it includes nothing), or why they cannot be.
    pub composition: Result<Option<Arc<Composition>>, ComposeError>,
}

impl ServedVersion {
    /// Serialises a version object once, with its labels, its includes resolved and the
    /// rollout that serves it.
    pub fn new(
        base: Arc<VersionBase>,
        labels: Vec<String>,
        rollout: Option<RolloutRef>,
        composition: Result<Option<Composition>, ComposeError>,
    ) -> ServedVersion {
        let composition = composition.map(|c| c.map(Arc::new));
        let mut view = VersionView { labels, rollout: rollout.clone(), ..base.view.clone() };
        if let Ok(Some(c)) = &composition {
            view = view.composed(c);
        }
        let json = Bytes::from(serde_json::to_vec(&view).expect("a version object serialises"));
        let etag = format!("\"{}\"", view.resolved_hash);
        ServedVersion { base, view, json, etag, rollout, composition }
    }

    /// The version object with the stored text (includes not inlined, its own variables).
    pub fn raw_view(&self) -> VersionView {
        let stored = &self.base.view;
        VersionView {
            template: stored.template.clone(),
            messages: stored.messages.clone(),
            variables: stored.variables.clone(),
            ..self.view.clone()
        }
    }

    /// The composition, or the reason it failed as an error for the caller.
    pub fn composed(&self) -> Result<Option<&Composition>, ComposeError> {
        self.composition.as_ref().map(|c| c.as_deref()).map_err(Clone::clone)
    }
}

/// A live rollout as resolve serves it: the candidate for `weight` percent of buckets,
/// the label's own version for the rest. Both answers are serialised in advance.
#[derive(Debug)]
pub struct Split {
    pub id: String,
    pub weight: u32,
    pub base: Arc<ServedVersion>,
    pub candidate: Arc<ServedVersion>,
}

impl Split {
    /// The arm for `unit` (sticky: one SHA-256 of a short string, no allocation), or
    /// a random one without a unit.
    pub fn pick(&self, unit: Option<&str>) -> &Arc<ServedVersion> {
        let bucket = match unit {
            Some(unit) => rollout::bucket(&self.id, unit),
            None => fastrand::u64(..BUCKETS),
        };
        match rollout::arm_of(bucket, self.weight) {
            Arm::Candidate => &self.candidate,
            Arm::Base => &self.base,
        }
    }
}

/// What a [`Split`] is built from, carried from one entry to the next.
#[derive(Debug, Clone)]
pub struct SplitPlan {
    pub label: String,
    pub id: String,
    pub weight: u32,
    pub candidate: Arc<VersionBase>,
}

#[derive(Debug)]
pub struct PromptEntry {
    pub id: i64,
    /// `labels` holds every label but `latest`.
    pub summary: PromptSummary,
    /// Versions some label or `latest` points at.
    pub served: BTreeMap<i64, Arc<ServedVersion>>,
    /// Name and description in lower case, for the list's search (made once, not per search).
    pub search_text: String,
    /// Live rollouts by label.
    pub splits: BTreeMap<String, Arc<Split>>,
    /// Prompts whose labels (`latest` included) what it serves includes, at any depth:
    /// a move of one of their labels recomposes this entry.
    pub follows: BTreeSet<String>,
}

impl PromptEntry {
    /// Builds an entry, keeping of `candidates` the versions that are pointed at and
    /// serialising each with its labels and its includes resolved through `lookup`, and
    /// the splits of live rollouts.
    pub fn new(
        id: i64,
        mut summary: PromptSummary,
        candidates: impl IntoIterator<Item = Arc<VersionBase>>,
        plans: Vec<SplitPlan>,
        lookup: &mut Lookup<'_>,
    ) -> Self {
        let mut follows = BTreeSet::new();
        let mut serve = |base: Arc<VersionBase>, labels: Vec<String>, rollout: Option<RolloutRef>| {
            let composition = base.compose(lookup);
            // Its own label includes always (so an include that cannot be resolved yet is
            // resolved again when that prompt changes), and those at every depth.
            let deeper = composition.iter().flatten().flat_map(|c| c.sources.keys().filter_map(|k| IncludeRef::parse(k).ok()));
            for target in base.includes.iter().cloned().chain(deeper) {
                if let Reference::Label(_) = target.reference {
                    follows.insert(target.name);
                }
            }
            Arc::new(ServedVersion::new(base, labels, rollout, composition))
        };
        let mut served = BTreeMap::new();
        for base in candidates {
            let version = base.view.version;
            if served.contains_key(&version) {
                continue;
            }
            let labels = labels_of(&summary, version);
            if labels.is_empty() {
                continue;
            }
            served.insert(version, serve(base, labels, None));
        }
        let mut splits = BTreeMap::new();
        for plan in plans {
            let Some(base) = summary.labels.get(&plan.label).and_then(|v| served.get(v)) else { continue };
            let mut arm = |arm, version: &Arc<VersionBase>| {
                let rollout = RolloutRef { id: plan.id.clone(), arm, weight: plan.weight };
                serve(version.clone(), labels_of(&summary, version.view.version), Some(rollout))
            };
            let split = Split {
                base: arm(Arm::Base, &base.base),
                candidate: arm(Arm::Candidate, &plan.candidate),
                id: plan.id,
                weight: plan.weight,
            };
            splits.insert(plan.label, Arc::new(split));
        }
        summary.rollouts = splits
            .iter()
            .map(|(label, s)| {
                let brief =
                    SplitBrief { id: s.id.clone(), candidate_version: s.candidate.base.view.version, weight: s.weight };
                (label.clone(), brief)
            })
            .collect();
        let search_text = format!("{}\n{}", summary.name, summary.description).to_lowercase();
        PromptEntry { id, summary, served, search_text, splits, follows }
    }

    /// Whether anything it serves includes another prompt.
    pub fn composes(&self) -> bool {
        self.served.values().chain(self.splits.values().flat_map(|s| [&s.base, &s.candidate])).any(|s| !s.base.includes.is_empty())
    }

    /// The same entry with its includes resolved again (after a label it follows moved).
    pub fn recomposed(&self, lookup: &mut Lookup<'_>) -> PromptEntry {
        PromptEntry::new(self.id, self.summary.clone(), self.bases(), self.split_plans(), lookup)
    }

    /// The plans of its splits, to carry into the next entry.
    pub fn split_plans(&self) -> Vec<SplitPlan> {
        self.splits
            .iter()
            .map(|(label, s)| SplitPlan {
                label: label.clone(),
                id: s.id.clone(),
                weight: s.weight,
                candidate: s.candidate.base.clone(),
            })
            .collect()
    }

    /// The entry once `base` is saved as the newest version, at `at` by `actor`.
    pub fn with_version(
        &self,
        base: Arc<VersionBase>,
        at: String,
        actor: String,
        lookup: &mut Lookup<'_>,
    ) -> PromptEntry {
        let mut summary = self.summary.clone();
        summary.latest_version = base.view.version;
        summary.updated_at = at;
        summary.updated_by = actor;
        PromptEntry::new(self.id, summary, self.bases().chain([base]), self.split_plans(), lookup)
    }

    /// Every version a label points at, to build the next entry from.
    pub fn bases(&self) -> impl Iterator<Item = Arc<VersionBase>> + '_ {
        self.served.values().map(|s| s.base.clone())
    }

    /// The version a label points at now (`latest` included).
    pub fn label(&self, label: &str) -> Option<i64> {
        if label == LATEST { Some(self.summary.latest_version) } else { self.summary.labels.get(label).copied() }
    }

    pub fn labels_of(&self, version: i64) -> Vec<String> {
        labels_of(&self.summary, version)
    }
}

/// The labels pointing at `version`, sorted, `latest` included.
fn labels_of(summary: &PromptSummary, version: i64) -> Vec<String> {
    let mut labels: Vec<String> =
        summary.labels.iter().filter(|(_, v)| **v == version).map(|(l, _)| l.clone()).collect();
    if summary.latest_version == version {
        labels.push(LATEST.to_owned());
        labels.sort();
    }
    labels
}

/// The same entries twice: hashed by name for resolve (one lookup, few cache misses
/// however many prompts there are) and ordered by name for listing.
#[derive(Default)]
struct Prompts {
    by_name: HashMap<String, Arc<PromptEntry>>,
    ordered: BTreeMap<String, Arc<PromptEntry>>,
    /// Every folder (each prefix of a name before a `/`) with how many prompts it holds.
    folders: BTreeMap<String, i64>,
    /// For each prompt, the prompts that follow one of its labels (`follows`).
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Prompts {
    fn insert(&mut self, entry: Arc<PromptEntry>) {
        let name = entry.summary.name.clone();
        let old = self.by_name.insert(name.clone(), entry.clone());
        match &old {
            None => count_folders(&mut self.folders, &name),
            Some(old) => {
                for followed in old.follows.difference(&entry.follows) {
                    if let Some(set) = self.dependents.get_mut(followed) {
                        set.remove(&name);
                    }
                }
            }
        }
        for followed in &entry.follows {
            self.dependents.entry(followed.clone()).or_default().insert(name.clone());
        }
        self.ordered.insert(name, entry);
    }
}

fn count_folders(folders: &mut BTreeMap<String, i64>, name: &str) {
    for (i, _) in name.match_indices('/') {
        *folders.entry(name[..i].to_owned()).or_default() += 1;
    }
}

#[derive(Default)]
pub struct Index {
    prompts: RwLock<Prompts>,
    /// Versions included by number that no label serves, loaded once (versions never
    /// change).
    pinned: RwLock<HashMap<(String, i64), Arc<VersionBase>>>,
    /// Held while an entry and the entries that follow its labels are replaced, so two
    /// changes never compose from each other's halves.
    changes: Mutex<()>,
}

impl Index {
    pub fn get(&self, name: &str) -> Option<Arc<PromptEntry>> {
        self.prompts.read().by_name.get(name).cloned()
    }

    /// What an include names now, from the entries (and the pinned versions loaded).
    pub fn source(&self, target: &IncludeRef) -> Result<Source, String> {
        let name = &target.name;
        let entry = self.get(name).ok_or_else(|| format!("there is no prompt named '{name}'"))?;
        let version = match &target.reference {
            Reference::Label(label) => {
                entry.label(label).ok_or_else(|| format!("label '{label}' of '{name}' points at no version"))?
            }
            Reference::Version(v) => *v,
        };
        if let Some(served) = entry.served.get(&version) {
            return Ok(served.base.source());
        }
        if let Some(base) = self.pinned.read().get(&(name.clone(), version)) {
            return Ok(base.source());
        }
        Err(format!("'{name}' has no version {version}"))
    }

    /// Whether `version` of `name` can be looked up without storage.
    pub fn has_version(&self, name: &str, version: i64) -> bool {
        self.get(name).is_some_and(|e| e.served.contains_key(&version))
            || self.pinned.read().contains_key(&(name.to_owned(), version))
    }

    /// Keeps a version included by number, for [`Index::source`].
    pub fn pin(&self, base: Arc<VersionBase>) {
        self.pinned.write().insert((base.view.name.clone(), base.view.version), base);
    }

    /// Replaces one prompt's entry with the one `build` makes (its includes resolved
    /// through the index), then recomposes every entry that follows its labels, so the
    /// next request serves the new composition. Returns the new entry.
    pub fn update(&self, build: impl FnOnce(&mut Lookup<'_>) -> PromptEntry) -> Arc<PromptEntry> {
        let _changes = self.changes.lock();
        let entry = Arc::new(build(&mut |target| self.source(target)));
        let name = entry.summary.name.clone();
        self.prompts.write().insert(entry.clone());
        for dependent in self.dependents(&name) {
            if let Some(current) = self.get(&dependent) {
                let next = Arc::new(current.recomposed(&mut |target| self.source(target)));
                self.prompts.write().insert(next);
            }
        }
        entry
    }

    /// The prompts that serve `label` of `name` through an include (at any depth), each
    /// with its labels that do: what a move of that label changes besides `name`.
    pub fn affected(&self, name: &str, label: &str) -> Vec<(String, Vec<String>)> {
        let key = format!("{name}@{label}");
        let mut out = Vec::new();
        for dependent in self.dependents(name) {
            let Some(entry) = self.get(&dependent) else { continue };
            let mut labels: Vec<String> = entry
                .summary
                .labels
                .iter()
                .map(|(l, v)| (l.as_str(), *v))
                .chain([(LATEST, entry.summary.latest_version)])
                .filter(|(_, v)| {
                    entry.served.get(v).is_some_and(|s| matches!(&s.composition, Ok(Some(c)) if c.sources.contains_key(&key)))
                })
                .map(|(l, _)| l.to_owned())
                .collect();
            labels.sort();
            if !labels.is_empty() {
                out.push((dependent, labels));
            }
        }
        out
    }

    /// The prompts that follow one of `name`'s labels, at any depth.
    pub fn dependents(&self, name: &str) -> Vec<String> {
        self.prompts.read().dependents.get(name).map(|d| d.iter().cloned().collect()).unwrap_or_default()
    }

    /// Replaces every entry (at start-up).
    pub fn replace_all(&self, ordered: BTreeMap<String, Arc<PromptEntry>>) {
        let mut prompts = Prompts::default();
        for entry in ordered.into_values() {
            prompts.insert(entry);
        }
        *self.prompts.write() = prompts;
    }

    /// Resolves the includes of every entry that has any (after [`Index::replace_all`],
    /// once the versions they pin are loaded).
    pub fn recompose_all(&self) {
        let _changes = self.changes.lock();
        let composing: Vec<Arc<PromptEntry>> = self
            .prompts
            .read()
            .ordered
            .values()
            .filter(|e| e.composes())
            .cloned()
            .collect();
        for entry in composing {
            let next = Arc::new(entry.recomposed(&mut |target| self.source(target)));
            self.prompts.write().insert(next);
        }
    }

    /// Folders and how many prompts each holds, sorted by path.
    pub fn folders(&self) -> Vec<(String, i64)> {
        self.prompts.read().folders.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Up to `limit` entries after `after` (by name) for which `keep` holds, and whether
    /// more remain.
    pub fn scan(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&PromptEntry) -> bool,
    ) -> (Vec<Arc<PromptEntry>>, bool) {
        use std::ops::Bound::{Excluded, Unbounded};
        let prompts = self.prompts.read();
        let start = after.map_or(Unbounded, |a| Excluded(a.to_owned()));
        let mut out = Vec::with_capacity(limit.min(64));
        for entry in prompts.ordered.range((start, Unbounded)).map(|(_, e)| e) {
            if keep(entry) {
                if out.len() == limit {
                    return (out, true);
                }
                out.push(entry.clone());
            }
        }
        (out, false)
    }
}
