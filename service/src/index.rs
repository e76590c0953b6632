//! The in-memory index that resolve is served from: for every prompt its summary, its
//! labels and, ready to send, each version that a label (or `latest`) points at.
//!
//! It is changed only by the code path that commits a version or a label move, while that
//! path still holds the write lock, so the next request after a promotion sees it. Each
//! prompt's entry is immutable and replaced whole (copy on write): readers take an `Arc`
//! under a short read lock and never wait for a writer's work.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use domain::content::Content;
use domain::model::{PromptSummary, VersionView};
use domain::names::LATEST;
use domain::rollout::{self, BUCKETS, RolloutRef, SplitBrief};
use domain::telemetry::Arm;
use parking_lot::RwLock;

/// A version's content and object, labels left empty.
#[derive(Debug)]
pub struct VersionBase {
    pub view: VersionView,
    pub content: Content,
}

/// A version as resolve sends it.
#[derive(Debug)]
pub struct ServedVersion {
    pub base: Arc<VersionBase>,
    /// The version object with its current labels, serialised once.
    pub json: Bytes,
    /// `"<hash>"`, the ETag.
    pub etag: String,
    /// The rollout and arm that chose it, if one did.
    pub rollout: Option<RolloutRef>,
}

impl ServedVersion {
    /// Serialises a version object once, with its labels and the rollout that serves it.
    pub fn new(base: Arc<VersionBase>, labels: Vec<String>, rollout: Option<RolloutRef>) -> ServedVersion {
        let view = VersionView { labels, rollout: rollout.clone(), ..base.view.clone() };
        let json = Bytes::from(serde_json::to_vec(&view).expect("a version object serialises"));
        let etag = format!("\"{}\"", base.view.hash);
        ServedVersion { base, json, etag, rollout }
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
}

impl PromptEntry {
    /// Builds an entry, keeping of `candidates` the versions that are pointed at and
    /// serialising each with its labels, and the splits of live rollouts.
    pub fn new(
        id: i64,
        mut summary: PromptSummary,
        candidates: impl IntoIterator<Item = Arc<VersionBase>>,
        plans: Vec<SplitPlan>,
    ) -> Self {
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
            served.insert(version, Arc::new(ServedVersion::new(base, labels, None)));
        }
        let mut splits = BTreeMap::new();
        for plan in plans {
            let Some(base) = summary.labels.get(&plan.label).and_then(|v| served.get(v)) else { continue };
            let arm = |arm, version: &Arc<VersionBase>| {
                let rollout = RolloutRef { id: plan.id.clone(), arm, weight: plan.weight };
                Arc::new(ServedVersion::new(version.clone(), labels_of(&summary, version.view.version), Some(rollout)))
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
        PromptEntry { id, summary, served, search_text, splits }
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
    pub fn with_version(&self, base: Arc<VersionBase>, at: String, actor: String) -> PromptEntry {
        let mut summary = self.summary.clone();
        summary.latest_version = base.view.version;
        summary.updated_at = at;
        summary.updated_by = actor;
        PromptEntry::new(self.id, summary, self.bases().chain([base]), self.split_plans())
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
}

fn count_folders(folders: &mut BTreeMap<String, i64>, name: &str) {
    for (i, _) in name.match_indices('/') {
        *folders.entry(name[..i].to_owned()).or_default() += 1;
    }
}

#[derive(Default)]
pub struct Index {
    prompts: RwLock<Prompts>,
}

impl Index {
    pub fn get(&self, name: &str) -> Option<Arc<PromptEntry>> {
        self.prompts.read().by_name.get(name).cloned()
    }

    pub fn put(&self, entry: PromptEntry) {
        let (name, entry) = (entry.summary.name.clone(), Arc::new(entry));
        let mut prompts = self.prompts.write();
        if prompts.by_name.insert(name.clone(), entry.clone()).is_none() {
            count_folders(&mut prompts.folders, &name);
        }
        prompts.ordered.insert(name, entry);
    }

    pub fn replace_all(&self, ordered: BTreeMap<String, Arc<PromptEntry>>) {
        let by_name = ordered.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut folders = BTreeMap::new();
        ordered.keys().for_each(|name| count_folders(&mut folders, name));
        *self.prompts.write() = Prompts { by_name, ordered, folders };
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
