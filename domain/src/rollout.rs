//! Rollouts: a label moved to a new version gradually. The candidate serves a share of
//! units (sticky, by the published bucket formula), a judge compares it with the base on
//! live evidence, and it advances step by step or takes itself back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::LabelRequest;
use crate::names::STABLE;
use crate::telemetry::{Arm, VersionMetrics};

/// Units are bucketed into this many buckets; a weight of w % is `w × 100` of them.
pub const BUCKETS: u64 = 10_000;
pub const DEFAULT_STEPS: [u32; 4] = [5, 25, 50, 100];
pub const DEFAULT_STEP_SECONDS: u64 = 600;
pub const DEFAULT_MIN_SAMPLES: u64 = 200;
/// A step that has lasted this many times `step_seconds` without enough samples pauses.
pub const PATIENCE: u64 = 3;
/// A score guard is judged on at least this many scores in each arm.
pub const MIN_SCORES: i64 = 10;

/// The bucket of `unit` in rollout `rollout`: the first 8 bytes of
/// SHA-256(`rollout` + ":" + `unit`) as a big-endian unsigned integer, mod 10,000. The
/// candidate serves when `bucket < weight × 100`, so raising the weight keeps every unit
/// already on the candidate.
pub fn bucket(rollout: &str, unit: &str) -> u64 {
    let digest = Sha256::new().chain_update(rollout).chain_update(b":").chain_update(unit).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % BUCKETS
}

/// The arm a bucket falls in at `weight` percent.
pub fn arm_of(bucket: u64, weight: u32) -> Arm {
    if bucket < u64::from(weight) * 100 { Arm::Candidate } else { Arm::Base }
}

/// What a guard compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    ErrorRate,
    LatencyP95,
    CostPerCall,
    Score(String),
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "error_rate" => Some(Metric::ErrorRate),
            "latency_p95" => Some(Metric::LatencyP95),
            "cost_per_call" => Some(Metric::CostPerCall),
            _ => s
                .strip_prefix("score:")
                .filter(|n| !n.is_empty() && n.len() <= 64 && !n.chars().any(char::is_control))
                .map(|n| Metric::Score(n.to_owned())),
        }
    }

    /// In words, for people: "error rate", "95th-percentile latency"...
    pub fn words(&self) -> String {
        match self {
            Metric::ErrorRate => "error rate".into(),
            Metric::LatencyP95 => "latency (95th percentile)".into(),
            Metric::CostPerCall => "cost per call".into(),
            Metric::Score(n) => format!("score '{n}'"),
        }
    }
}

/// A guard: the candidate may be worse than the base by at most its margin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// `error_rate`, `latency_p95`, `cost_per_call` or `score:<name>`.
    pub metric: String,
    /// `error_rate`: how many points (a fraction: 0.02 is 2 points) it may rise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<f64>,
    /// `latency_p95`, `cost_per_call`: how many times the base's it may reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ratio: Option<f64>,
    /// `score:<name>`: how much its mean may fall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_decrease: Option<f64>,
}

impl Guard {
    pub fn new(metric: &str, margin: f64) -> Guard {
        let mut g = Guard { metric: metric.into(), max_increase: None, max_ratio: None, max_decrease: None };
        match Metric::parse(metric) {
            Some(Metric::ErrorRate) => g.max_increase = Some(margin),
            Some(Metric::Score(_)) => g.max_decrease = Some(margin),
            _ => g.max_ratio = Some(margin),
        }
        g
    }

    /// The metric and its margin, or why the guard is not valid.
    pub fn check(&self) -> Result<(Metric, f64), String> {
        let metric = Metric::parse(&self.metric).ok_or_else(|| {
            format!(
                "'{}' is not a guard metric: use error_rate, latency_p95, cost_per_call or score:<name>",
                self.metric
            )
        })?;
        let (field, value, range) = match metric {
            Metric::ErrorRate => ("max_increase", self.max_increase, 0.0..=1.0),
            Metric::LatencyP95 | Metric::CostPerCall => ("max_ratio", self.max_ratio, 1.0..=100.0),
            Metric::Score(_) => ("max_decrease", self.max_decrease, 0.0..=1e9),
        };
        let given =
            [("max_increase", self.max_increase), ("max_ratio", self.max_ratio), ("max_decrease", self.max_decrease)];
        if let Some((other, _)) = given.iter().find(|(f, v)| *f != field && v.is_some()) {
            return Err(format!("the {} guard takes `{field}`, not `{other}`", self.metric));
        }
        let value = value.ok_or_else(|| format!("the {} guard needs `{field}`", self.metric))?;
        if !value.is_finite() || !range.contains(&value) {
            return Err(format!(
                "`{field}` of the {} guard must be from {} to {} (got {value})",
                self.metric,
                range.start(),
                range.end()
            ));
        }
        Ok((metric, value))
    }

    /// The rule in words: "error rate may rise by at most 2 points".
    pub fn words(&self) -> String {
        let Ok((metric, margin)) = self.check() else { return self.metric.clone() };
        match metric {
            Metric::ErrorRate => format!("error rate may rise by at most {} points", plain(margin * 100.0)),
            Metric::LatencyP95 | Metric::CostPerCall => {
                format!("{} may grow by at most {} %", metric.words(), plain((margin - 1.0) * 100.0))
            }
            Metric::Score(_) => format!("{} may fall by at most {}", metric.words(), plain(margin)),
        }
    }
}

/// A number for people: two decimals at most, no trailing zeros (2, 0.5, 12.5).
pub fn plain(x: f64) -> String {
    let s = format!("{:.2}", x);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The guards a rollout gets when it names none: error rate +2 points, p95 latency
/// ×1.25, cost per call ×1.10.
pub fn default_guards() -> Vec<Guard> {
    vec![Guard::new("error_rate", 0.02), Guard::new("latency_p95", 1.25), Guard::new("cost_per_call", 1.10)]
}

fn default_label() -> String {
    STABLE.to_owned()
}
fn default_steps() -> Vec<u32> {
    DEFAULT_STEPS.to_vec()
}
fn default_step_seconds() -> u64 {
    DEFAULT_STEP_SECONDS
}
fn default_min_samples() -> u64 {
    DEFAULT_MIN_SAMPLES
}

/// `POST /api/v1/prompts/{name}/rollouts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRollout {
    #[serde(default = "default_label")]
    pub label: String,
    /// The candidate version.
    pub version: i64,
    #[serde(default = "default_steps")]
    pub steps: Vec<u32>,
    #[serde(default = "default_step_seconds")]
    pub step_seconds: u64,
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    #[serde(default = "default_guards")]
    pub guards: Vec<Guard>,
    #[serde(default)]
    pub reason: String,
}

impl NewRollout {
    /// With the defaults: 5 → 25 → 50 → 100 %, ten minutes a step, 200 calls per arm.
    pub fn new(label: &str, version: i64, reason: &str) -> NewRollout {
        NewRollout {
            label: label.into(),
            version,
            steps: default_steps(),
            step_seconds: DEFAULT_STEP_SECONDS,
            min_samples: DEFAULT_MIN_SAMPLES,
            guards: default_guards(),
            reason: reason.into(),
        }
    }

    /// Checks the plan (not the label's rules).
    pub fn check(&self) -> Result<(), String> {
        if self.steps.is_empty() || self.steps.len() > 20 {
            return Err("`steps` must hold 1 to 20 weights, e.g. [5, 25, 50, 100]".into());
        }
        if self.steps.windows(2).any(|w| w[0] >= w[1]) || self.steps[0] == 0 {
            return Err("`steps` must rise strictly, from 1 up (percent of units on the new version)".into());
        }
        if self.steps.last() != Some(&100) {
            return Err("`steps` must end at 100 (the step that completes the rollout)".into());
        }
        if self.steps.len() < 2 {
            return Err("a gradual rollout needs a step below 100 first, e.g. [5, 25, 50, 100]".into());
        }
        if !(1..=7 * 24 * 3600).contains(&self.step_seconds) {
            return Err("`step_seconds` must be from 1 to 604800 (a week)".into());
        }
        if !(1..=10_000_000).contains(&self.min_samples) {
            return Err("`min_samples` must be from 1 to 10000000 calls per arm and step".into());
        }
        if self.guards.len() > 10 {
            return Err("a rollout takes at most 10 guards".into());
        }
        let mut seen = Vec::new();
        for g in &self.guards {
            g.check()?;
            if seen.contains(&&g.metric) {
                return Err(format!("the {} guard is given twice", g.metric));
            }
            seen.push(&g.metric);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    Running,
    Paused,
    Completed,
    RolledBack,
    Aborted,
}

impl RolloutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStatus::Running => "running",
            RolloutStatus::Paused => "paused",
            RolloutStatus::Completed => "completed",
            RolloutStatus::RolledBack => "rolled_back",
            RolloutStatus::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use RolloutStatus::*;
        [Running, Paused, Completed, RolledBack, Aborted].into_iter().find(|v| v.as_str() == s)
    }

    /// Running or paused: the candidate still serves its share.
    pub fn is_live(self) -> bool {
        matches!(self, RolloutStatus::Running | RolloutStatus::Paused)
    }

    pub fn words(self) -> &'static str {
        match self {
            RolloutStatus::Running => "running",
            RolloutStatus::Paused => "paused, waiting for a person",
            RolloutStatus::Completed => "completed",
            RolloutStatus::RolledBack => "rolled back automatically",
            RolloutStatus::Aborted => "aborted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Insufficient,
}

/// One guard judged at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub at: String,
    /// The step (0-based) judged.
    pub step: i64,
    pub guard: String,
    pub base: Option<f64>,
    pub candidate: Option<f64>,
    pub outcome: Outcome,
    /// The one-sided test's p-value, where one was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// In plain words: "error rate 0.4 % vs 0.5 %, within the 2-point margin".
    pub message: String,
}

/// One arm's figures in one step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StepArm {
    pub count: i64,
    pub error_rate: Option<f64>,
    pub latency_p95: Option<f64>,
    pub cost_per_call: Option<f64>,
    /// Mean of each score.
    pub scores: BTreeMap<String, f64>,
}

impl StepArm {
    /// The figure a guard's metric reads.
    pub fn value(&self, metric: &Metric) -> Option<f64> {
        match metric {
            Metric::ErrorRate => self.error_rate,
            Metric::LatencyP95 => self.latency_p95,
            Metric::CostPerCall => self.cost_per_call,
            Metric::Score(n) => self.scores.get(n).copied(),
        }
    }
}

/// A stretch of the rollout at one weight (a step, or a step resumed after a pause).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepView {
    pub step: i64,
    pub weight: u32,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub base: StepArm,
    pub candidate: StepArm,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Arms {
    pub base: VersionMetrics,
    pub candidate: VersionMetrics,
}

/// `GET /api/v1/rollouts/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub prompt: String,
    pub label: String,
    pub base_version: i64,
    pub candidate_version: i64,
    pub status: RolloutStatus,
    /// The current step (0-based) in `steps`.
    pub step: i64,
    /// Percent of units the candidate serves now (0 once it has ended).
    pub weight: u32,
    pub steps: Vec<u32>,
    pub step_seconds: u64,
    pub min_samples: u64,
    pub guards: Vec<Guard>,
    pub step_started_at: String,
    /// When the current step is judged at the earliest (running rollouts).
    pub judge_at: Option<String>,
    pub arms: Arms,
    /// Every stretch at one weight, oldest first, with each arm's figures.
    pub history: Vec<StepView>,
    /// Newest last.
    pub verdicts: Vec<Verdict>,
    pub created_by: String,
    pub created_at: String,
    pub ended_at: Option<String>,
    /// Who ended it: a person, or `system` (the judge).
    pub ended_by: Option<String>,
    pub reason: String,
    /// Why it ended or paused, in words.
    pub note: Option<String>,
}

/// A rollout as the version object shows it: which one, which arm, at what weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRef {
    pub id: String,
    pub arm: Arm,
    pub weight: u32,
}

/// A live rollout in a prompt's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitBrief {
    pub id: String,
    pub candidate_version: i64,
    pub weight: u32,
}

/// `POST /api/v1/prompts/{name}/rollouts`: started, or waiting for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RolloutOutcome {
    Started(Box<Rollout>),
    Requested(Box<LabelRequest>),
}

/// A weight change of a rollout, for the label history ("stable: v3, with v5 at 25 %").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightChange {
    pub rollout: String,
    pub label: String,
    pub base_version: i64,
    pub candidate_version: i64,
    pub weight: u32,
    pub at: String,
    /// When the next weight (or the end of the rollout) took over.
    pub until: Option<String>,
    pub actor: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_vectors() {
        // The published vectors (README, OpenAPI): anyone can recompute them.
        for (rollout, unit, expected) in VECTORS {
            assert_eq!(bucket(rollout, unit), *expected, "{rollout}:{unit}");
        }
    }

    const VECTORS: &[(&str, &str, u64)] = &[
        ("ro_0123456789abcdef01234567", "user-88", 21),
        ("ro_0123456789abcdef01234567", "user-15", 470),
        ("ro_0123456789abcdef01234567", "user-42", 6636),
    ];

    #[test]
    fn raising_the_weight_keeps_candidates() {
        for unit in 0..2000 {
            let b = bucket("ro_abc", &unit.to_string());
            let mut was = false;
            for w in [5, 25, 50, 100] {
                let now = arm_of(b, w) == Arm::Candidate;
                assert!(!was || now);
                was = now;
            }
            assert!(was, "weight 100 serves everyone the candidate");
        }
    }

    #[test]
    fn plans_are_checked() {
        assert!(NewRollout::new("stable", 2, "").check().is_ok());
        let bad = |f: fn(&mut NewRollout)| {
            let mut p = NewRollout::new("stable", 2, "");
            f(&mut p);
            p.check().unwrap_err()
        };
        assert!(bad(|p| p.steps = vec![5, 5, 100]).contains("rise"));
        assert!(bad(|p| p.steps = vec![5, 50]).contains("end at 100"));
        assert!(bad(|p| p.steps = vec![]).contains("1 to 20"));
        assert!(bad(|p| p.step_seconds = 0).contains("step_seconds"));
        assert!(bad(|p| p.guards = vec![Guard::new("error_rate", 2.0)]).contains("from 0 to 1"));
        assert!(bad(|p| p.guards = vec![Guard::new("p99", 2.0)]).contains("not a guard metric"));
        assert!(
            bad(|p| p.guards = vec![Guard { max_ratio: Some(1.1), ..Guard::new("error_rate", 0.1) }])
                .contains("not `max_ratio`")
        );
    }

    #[test]
    fn guards_in_words() {
        let words: Vec<String> = default_guards().iter().map(Guard::words).collect();
        assert_eq!(
            words,
            [
                "error rate may rise by at most 2 points",
                "latency (95th percentile) may grow by at most 25 %",
                "cost per call may grow by at most 10 %"
            ]
        );
    }
}
