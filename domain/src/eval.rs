//! Evaluation suites and runs as they cross the wire (API.md "Evaluations"): a suite is a
//! list of cases, each with variables and assertions about the model's output; a run
//! renders each case with one prompt version, calls a model and records everything.
//! The checks themselves run on the server (`service::eval`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical::{sha256_tagged, to_canonical_json};

/// A suite as saved with `PUT /api/v1/prompts/{name}/suites/{suite}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The pass rate (0 to 1) a run needs to pass.
    #[serde(default = "one")]
    pub threshold: f64,
    pub cases: Vec<Case>,
}

fn one() -> f64 {
    1.0
}

impl Suite {
    /// `sha256:` of the canonical JSON of the suite: the same suite gives the same hash.
    pub fn hash(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        sha256_tagged(to_canonical_json(&value).as_bytes())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub vars: Map<String, Value>,
    #[serde(rename = "assert", default)]
    pub asserts: Vec<Assertion>,
}

/// One assertion; `kind` is the type, possibly negated with `not-`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Weight in the case's score (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// `word-count` bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The model that judges (`llm-rubric`) or embeds (`similar`), `provider/model`;
    /// default: the run's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// The result of one assertion on one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionResult {
    #[serde(rename = "type")]
    pub kind: String,
    pub passed: bool,
    pub score: f64,
    /// Why, in words a person can act on (always set when it failed).
    pub reason: String,
}

/// Token counts of one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
}

/// One case of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub case: usize,
    pub description: String,
    /// What was sent to the model: the rendered text, or the rendered messages.
    pub input: Value,
    pub output: Option<String>,
    pub passed: bool,
    pub score: f64,
    pub latency_ms: Option<u64>,
    pub tokens: Option<Tokens>,
    pub cost: Option<f64>,
    pub finish_reason: Option<String>,
    pub error: Option<String>,
    pub assertions: Vec<AssertionResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Passed,
    Failed,
    Error,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Passed => "passed",
            RunStatus::Failed => "failed",
            RunStatus::Error => "error",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Passed, Self::Failed, Self::Error, Self::Cancelled]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// Whether the run has ended (it will not change again).
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

/// A run (`GET /api/v1/eval-runs/{id}`); lists leave `results` empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRun {
    pub id: String,
    pub prompt: String,
    pub version: i64,
    pub hash: String,
    pub suite: String,
    pub suite_hash: String,
    pub model: String,
    pub status: RunStatus,
    /// The pass rate the suite asked for.
    pub threshold: f64,
    pub total: u64,
    pub done: u64,
    pub passed: u64,
    pub failed: u64,
    /// Cases that ended with an error (counted in `failed` too).
    pub errors: u64,
    pub pass_rate: f64,
    pub cost: f64,
    /// Mean latency of the cases that reached the model, in ms.
    pub latency_ms: Option<f64>,
    /// Why the run as a whole stopped in `error`.
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub results: Vec<CaseResult>,
}

/// `POST /api/v1/prompts/{name}/eval-runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    pub suite: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub version: Option<i64>,
    /// `provider/model`; default: the version's `config.model`.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub concurrency: Option<u32>,
}

/// A suite in the list of a prompt's suites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteView {
    pub prompt: String,
    pub name: String,
    pub hash: String,
    pub threshold: f64,
    pub cases: Vec<Case>,
    pub updated_by: String,
    pub updated_at: String,
}

/// A model provider (`promptledger provider add`). The API key is never here: only the
/// name of the environment variable that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    #[serde(default)]
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    #[serde(default)]
    pub api_key_env: Option<String>,
}

/// OpenAI-compatible chat completions (OpenAI, gateways, vLLM, Ollama, llama.cpp,
/// LiteLLM) or Anthropic Messages.
pub use crate::vocabulary::ProviderKind;

/// Price of a model in US dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    #[serde(default)]
    pub model: String,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// How one case changed from run `a` to run `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Passed in `a`, fails in `b`.
    Regressed,
    /// Failed in `a`, passes in `b`.
    Fixed,
    StillFailing,
    StillPassing,
    /// In one run only (the suites differ, or a run did not finish).
    Unmatched,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseChange {
    pub case: usize,
    pub description: String,
    pub a: Option<bool>,
    pub b: Option<bool>,
    pub change: Change,
}

/// Two runs side by side (`GET /api/v1/eval-runs/{a}/compare/{b}`, an extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunComparison {
    pub a: EvalRun,
    pub b: EvalRun,
    /// Whether both ran the same suite content (otherwise cases are matched by position).
    pub same_suite: bool,
    /// Regressions first, then fixes, then the rest, each by case number.
    pub cases: Vec<CaseChange>,
    pub regressions: u64,
    pub fixes: u64,
    pub pass_rate_delta: f64,
    pub cost_delta: f64,
    pub latency_delta_ms: Option<f64>,
}

impl RunComparison {
    /// Compares `b` with `a`; both with their results (which are moved out).
    pub fn new(mut a: EvalRun, mut b: EvalRun) -> RunComparison {
        let results_a = std::mem::take(&mut a.results);
        let results_b = std::mem::take(&mut b.results);
        let count = results_a.iter().chain(&results_b).map(|r| r.case + 1).max().unwrap_or(0);
        let find =
            |rs: &[CaseResult], i: usize| rs.iter().find(|r| r.case == i).map(|r| (r.passed, r.description.clone()));
        let mut cases: Vec<CaseChange> = (0..count)
            .map(|i| {
                let (ra, rb) = (find(&results_a, i), find(&results_b, i));
                let description = rb.as_ref().or(ra.as_ref()).map(|(_, d)| d.clone()).unwrap_or_default();
                let (pa, pb) = (ra.map(|(p, _)| p), rb.map(|(p, _)| p));
                let change = match (pa, pb) {
                    (Some(true), Some(false)) => Change::Regressed,
                    (Some(false), Some(true)) => Change::Fixed,
                    (Some(false), Some(false)) => Change::StillFailing,
                    (Some(true), Some(true)) => Change::StillPassing,
                    _ => Change::Unmatched,
                };
                CaseChange { case: i, description, a: pa, b: pb, change }
            })
            .collect();
        cases.sort_by_key(|c| (c.change, c.case));
        let tally = |change| cases.iter().filter(|c| c.change == change).count() as u64;
        RunComparison {
            same_suite: a.suite_hash == b.suite_hash,
            regressions: tally(Change::Regressed),
            fixes: tally(Change::Fixed),
            pass_rate_delta: b.pass_rate - a.pass_rate,
            cost_delta: b.cost - a.cost,
            latency_delta_ms: a.latency_ms.zip(b.latency_ms).map(|(x, y)| y - x),
            cases,
            a,
            b,
        }
    }
}

/// `POST /api/v1/eval-migrations` (an extension): every suite of every prompt with a
/// stable version (or of one folder) run against a candidate model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMigration {
    pub model: String,
    #[serde(default)]
    pub folder: Option<String>,
    /// Model calls in flight across all the migration's runs (default 4).
    #[serde(default)]
    pub concurrency: Option<u32>,
}

/// A run in a migration report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunBrief {
    pub id: String,
    pub model: String,
    pub status: RunStatus,
    pub pass_rate: f64,
    pub cost: f64,
}

impl From<&EvalRun> for RunBrief {
    fn from(r: &EvalRun) -> Self {
        RunBrief { id: r.id.clone(), model: r.model.clone(), status: r.status, pass_rate: r.pass_rate, cost: r.cost }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationItem {
    pub prompt: String,
    pub suite: String,
    pub version: i64,
    pub candidate: RunBrief,
    /// The latest finished run of the same suite on the same (stable) version before it,
    /// if any.
    pub baseline: Option<RunBrief>,
    /// The candidate finished with a lower pass rate, or a case that passed now fails.
    pub regressed: bool,
    pub regressed_cases: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    pub id: String,
    pub model: String,
    pub folder: Option<String>,
    pub created_by: String,
    pub created_at: String,
    /// Whether every run has ended.
    pub finished: bool,
    /// Regressed items first.
    pub items: Vec<MigrationItem>,
    pub regressions: u64,
}
