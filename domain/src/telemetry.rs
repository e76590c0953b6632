//! Production telemetry as it crosses the wire (API.md "Telemetry"): generations that
//! applications send, scores on them, per-version metrics and budgets. Also the pure
//! rules behind them: checking one generation, cutting oversized text, the latency
//! histogram the rollups keep, and budget windows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::VersionView;
use crate::names;

/// `variables` and `output` are kept up to this many bytes each; longer ones are cut.
pub const KEEP_BYTES: usize = 32 * 1024;
/// At most this many items per `POST /api/v1/generations`.
pub const MAX_BATCH: usize = 1000;
/// A label "had left" a version when it moved off it more than this long (µs) before
/// the generation started.
pub const STALE_AFTER_US: i64 = 5 * 60 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Ok,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Status::Ok, Status::Error].into_iter().find(|v| v.as_str() == s)
    }
}

/// What production ran that the registry did not say it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// The content's hash is not the registered hash of the version it names.
    HashMismatch,
    /// It names a label but used a version that label had left (more than 5 minutes before).
    StaleLabel,
}

impl Drift {
    pub const ALL: [Drift; 2] = [Drift::HashMismatch, Drift::StaleLabel];

    pub fn as_str(self) -> &'static str {
        match self {
            Drift::HashMismatch => "hash_mismatch",
            Drift::StaleLabel => "stale_label",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Drift::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// In words, for people: "3 calls used ...".
    pub fn explain(self) -> &'static str {
        match self {
            Drift::HashMismatch => "ran content that differs from the registered version (hash mismatch)",
            Drift::StaleLabel => "used a version the label had already left (stale label)",
        }
    }
}

/// Which side of a rollout served a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Base,
    Candidate,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Base => "base",
            Arm::Candidate => "candidate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Arm::Base, Arm::Candidate].into_iter().find(|v| v.as_str() == s)
    }
}

/// One item of `POST /api/v1/generations`, as the application sends it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGeneration {
    pub id: String,
    pub prompt: String,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub rollout: Option<String>,
    #[serde(default)]
    pub arm: Option<Arm>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub input_tokens: Option<i64>,
    #[serde(default)]
    pub output_tokens: Option<i64>,
    #[serde(default)]
    pub cost: Option<f64>,
    #[serde(default)]
    pub latency_ms: Option<f64>,
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    pub status: Status,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    pub started_at: String,
}

/// Why one item of a batch was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field, message: message.into() }
}

fn check_text(name: &'static str, value: Option<&str>, max: usize) -> Result<(), FieldError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(field(name, format!("`{name}` must be 1 to {max} printable characters")))
        }
        _ => Ok(()),
    }
}

fn check_count(name: &'static str, value: Option<i64>) -> Result<(), FieldError> {
    match value {
        Some(n) if !(0..=1_000_000_000_000).contains(&n) => {
            Err(field(name, format!("`{name}` must be a whole number from 0 up (got {n})")))
        }
        _ => Ok(()),
    }
}

fn check_amount(name: &'static str, value: Option<f64>, max: f64) -> Result<(), FieldError> {
    match value {
        Some(x) if !x.is_finite() || x < 0.0 || x > max => {
            Err(field(name, format!("`{name}` must be a number from 0 to {max} (got {x})")))
        }
        _ => Ok(()),
    }
}

/// Whether `id` is a valid request id: 1 to 128 printable characters.
pub fn check_request_id(id: &str) -> Result<(), FieldError> {
    if id.is_empty() || id.chars().count() > 128 || id.chars().any(|c| c.is_control()) {
        return Err(field("id", "`id` (the request id) must be 1 to 128 printable characters"));
    }
    Ok(())
}

impl NewGeneration {
    /// The rules one item must meet on its own (the registry checks the rest: that the
    /// prompt and version exist, and the time).
    pub fn check(&self) -> Result<(), FieldError> {
        check_request_id(&self.id)?;
        names::validate_prompt_name(&self.prompt).map_err(|e| field("prompt", e.0))?;
        if self.version.is_none() && self.hash.is_none() {
            return Err(field("version", "give `version` or `hash` (or both): which version the call used"));
        }
        if let Some(v) = self.version
            && v < 1
        {
            return Err(field("version", format!("`version` must be a whole number from 1 up (got {v})")));
        }
        if let Some(h) = &self.hash
            && !is_hash(h)
        {
            return Err(field("hash", "`hash` must be `sha256:` followed by 64 lower-case hex digits"));
        }
        if let Some(l) = &self.label {
            names::validate_label(l).map_err(|e| field("label", e.0))?;
        }
        check_text("rollout", self.rollout.as_deref(), 64)?;
        if self.arm.is_some() && self.rollout.is_none() {
            return Err(field("arm", "`arm` is only meaningful with `rollout`"));
        }
        check_text("model", self.model.as_deref(), 200)?;
        check_count("input_tokens", self.input_tokens)?;
        check_count("output_tokens", self.output_tokens)?;
        check_amount("cost", self.cost, 1_000_000.0)?;
        check_amount("latency_ms", self.latency_ms, 86_400_000.0)?;
        check_amount("ttft_ms", self.ttft_ms, 86_400_000.0)?;
        if let (Some(t), Some(l)) = (self.ttft_ms, self.latency_ms)
            && t > l
        {
            return Err(field("ttft_ms", "`ttft_ms` (time to first token) cannot exceed `latency_ms`"));
        }
        check_text("finish_reason", self.finish_reason.as_deref(), 64)?;
        check_text("user", self.user.as_deref(), 256)?;
        check_text("session", self.session.as_deref(), 256)?;
        if let Some(m) = &self.metadata
            && serde_json::to_string(m).map_or(0, |s| s.len()) > 16 * 1024
        {
            return Err(field("metadata", "`metadata` must be at most 16 KiB of JSON"));
        }
        Ok(())
    }
}

/// `sha256:` and 64 lower-case hex digits.
pub fn is_hash(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Cuts `text` to at most `max` bytes on a character boundary; whether it was cut.
pub fn cut_text(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// Shrinks a JSON object until its serialised form fits in `max` bytes, by halving its
/// longest string values (or dropping a value that is not a string for a note of its
/// size); whether anything was cut.
pub fn cut_object(object: &mut Map<String, Value>, max: usize) -> bool {
    let size = |o: &Map<String, Value>| serde_json::to_string(o).map_or(0, |s| s.len());
    let mut cut = false;
    for _ in 0..256 {
        let total = size(object);
        if total <= max {
            return cut;
        }
        cut = true;
        let Some((key, biggest)) = object
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_string(v).map_or(0, |s| s.len())))
            .max_by_key(|(_, n)| *n)
        else {
            return cut;
        };
        let value = object.get_mut(&key).expect("the key was just found");
        match value {
            Value::String(s) if s.len() > 64 => {
                let keep = (s.len() / 2).max(s.len().saturating_sub(total - max));
                cut_text(s, keep.min(s.len() - 1));
            }
            _ => *value = Value::String(format!("[cut: {biggest} bytes]")),
        }
    }
    // Keys alone too big: nothing sensible is left to keep.
    object.clear();
    true
}

/// A generation as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub id: String,
    pub prompt: String,
    pub version: i64,
    pub hash: Option<String>,
    pub label: Option<String>,
    pub rollout: Option<String>,
    pub arm: Option<Arm>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// US dollars; `None` when the caller sent none and the model has no price.
    pub cost: Option<f64>,
    /// Where `cost` came from: `"sent"`, `"price_table"`, or `None` (unpriced).
    pub cost_source: Option<String>,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub status: Status,
    pub error: Option<String>,
    pub finish_reason: Option<String>,
    pub variables: Option<Map<String, Value>>,
    pub output: Option<String>,
    pub user: Option<String>,
    pub session: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub started_at: String,
    pub received_at: String,
    pub drift: Option<Drift>,
    /// Fields that were longer than 32 KiB and were cut (`variables`, `output`, `error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

/// `POST /api/v1/generations` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    pub accepted: i64,
    pub duplicates: i64,
}

/// `POST /api/v1/generations/{id}/scores`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScore {
    pub name: String,
    /// A number, or a boolean (`true` is 1).
    pub value: Value,
    #[serde(default)]
    pub comment: Option<String>,
}

impl NewScore {
    /// The numeric value, or why the score is refused.
    pub fn check(&self) -> Result<f64, FieldError> {
        let ok_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        if !ok_name {
            return Err(field("name", "`name` must be 1 to 64 characters of letters, digits and _ - . :"));
        }
        if let Some(c) = &self.comment
            && c.chars().count() > 2000
        {
            return Err(field("comment", "`comment` must be at most 2000 characters"));
        }
        match &self.value {
            Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
            Value::Number(n) => n
                .as_f64()
                .filter(|x| x.is_finite() && x.abs() <= 1e12)
                .ok_or_else(|| field("value", "`value` is out of range")),
            _ => Err(field("value", "`value` must be a number or a boolean")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub name: String,
    pub value: f64,
    pub comment: Option<String>,
    pub created_at: String,
}

/// `GET /api/v1/generations/{id}`: one call reconstructed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationDetail {
    #[serde(flatten)]
    pub generation: Generation,
    pub scores: Vec<Score>,
    /// The whole version object of the version it used.
    pub prompt_version: Option<VersionView>,
    /// That version rendered with the generation's variables (text, or chat messages).
    pub rendered: Option<Value>,
    /// Why `rendered` is missing although variables were sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_error: Option<String>,
    /// The version the generation's `label` pointed at at `started_at`.
    pub label_at_start: Option<i64>,
}

/// `GET /api/v1/generations` filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationFilter {
    pub prompt: Option<String>,
    pub version: Option<i64>,
    pub label: Option<String>,
    pub status: Option<Status>,
    pub user: Option<String>,
    pub session: Option<String>,
    pub drift: Option<Drift>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Time-series resolution of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
}

impl Interval {
    pub fn micros(self) -> i64 {
        match self {
            Interval::FiveMinutes => 300_000_000,
            Interval::Hour => 3_600_000_000,
            Interval::Day => 86_400_000_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::FiveMinutes => "5m",
            Interval::Hour => "1h",
            Interval::Day => "1d",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "5m" => Some(Interval::FiveMinutes),
            "1h" => Some(Interval::Hour),
            "1d" => Some(Interval::Day),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ScoreStat {
    pub count: i64,
    pub mean: f64,
}

/// One version's figures over the period.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VersionMetrics {
    pub version: i64,
    pub count: i64,
    pub errors: i64,
    pub error_rate: f64,
    pub latency_ms: Percentiles,
    pub ttft_ms: Percentiles,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Dollars over the priced calls.
    pub cost: f64,
    /// `cost` over the priced calls (unpriced calls are not counted as free).
    pub cost_per_call: Option<f64>,
    pub unpriced: i64,
    pub scores: BTreeMap<String, ScoreStat>,
    pub drift: i64,
    pub drift_hash_mismatch: i64,
    pub drift_stale_label: i64,
}

/// One version in one interval of the time series.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub start: String,
    pub version: i64,
    pub count: i64,
    pub errors: i64,
    pub error_rate: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub cost: f64,
    pub cost_per_call: Option<f64>,
    pub drift: i64,
}

/// `GET /api/v1/prompts/{name}/metrics`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricsView {
    pub prompt: String,
    pub since: String,
    pub until: String,
    pub interval: String,
    pub versions: Vec<VersionMetrics>,
    pub series: Vec<SeriesPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetWindow {
    Day,
    Week,
    Month,
}

impl BudgetWindow {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetWindow::Day => "day",
            BudgetWindow::Week => "week",
            BudgetWindow::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [BudgetWindow::Day, BudgetWindow::Week, BudgetWindow::Month].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExceed {
    #[default]
    Alert,
    Block,
}

impl OnExceed {
    pub fn as_str(self) -> &'static str {
        match self {
            OnExceed::Alert => "alert",
            OnExceed::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [OnExceed::Alert, OnExceed::Block].into_iter().find(|v| v.as_str() == s)
    }
}

/// `PUT /api/v1/prompts/{name}/budget`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub window: BudgetWindow,
    /// Dollars per window.
    pub limit: f64,
    #[serde(default = "default_alerts")]
    pub alerts: Vec<f64>,
    #[serde(default)]
    pub on_exceed: OnExceed,
}

fn default_alerts() -> Vec<f64> {
    vec![0.5, 0.8, 1.0]
}

impl Budget {
    /// Checks the rules and puts the alert fractions in order.
    pub fn normalized(mut self) -> Result<Budget, FieldError> {
        if !self.limit.is_finite() || self.limit <= 0.0 || self.limit > 1e9 {
            return Err(field("limit", "`limit` must be a number of dollars above 0"));
        }
        if self.alerts.len() > 10 || self.alerts.iter().any(|a| !a.is_finite() || *a <= 0.0 || *a > 10.0) {
            return Err(field(
                "alerts",
                "`alerts` must be at most 10 fractions of the limit, each above 0 (1.0 is the limit)",
            ));
        }
        self.alerts.sort_by(f64::total_cmp);
        self.alerts.dedup();
        Ok(self)
    }
}

/// `GET /api/v1/prompts/{name}/budget`: the budget and where the window stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    pub window: BudgetWindow,
    pub limit: f64,
    pub alerts: Vec<f64>,
    pub on_exceed: OnExceed,
    pub window_start: String,
    pub window_end: String,
    /// Dollars spent in this window so far (priced calls).
    pub spent: f64,
    /// `spent` extrapolated to the end of the window at the pace so far.
    pub forecast: f64,
    /// Whether resolve and render are refused now (`block` and over the limit).
    pub blocked: bool,
}

/// Latency histogram with logarithmic buckets: each bucket is 2 % wider than the one
/// below, so a percentile read from it is within 1 % of the true value, whatever the
/// number of calls. Rollups keep one per version and five minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: BTreeMap<u16, u64>,
}

const GROWTH: f64 = 1.02;
const TOP_BUCKET: u16 = 1200;

impl Histogram {
    fn bucket(value: f64) -> u16 {
        if value < 1.0 {
            return 0;
        }
        // Bucket i (from 1) holds [GROWTH^(i-1), GROWTH^i).
        ((value.ln() / GROWTH.ln()).floor() as u64 + 1).min(TOP_BUCKET as u64) as u16
    }

    /// The value a bucket stands for: the geometric middle of its bounds.
    fn representative(bucket: u16) -> f64 {
        if bucket == 0 {
            return 0.5;
        }
        GROWTH.powf(bucket as f64 - 0.5)
    }

    pub fn record(&mut self, value: f64) {
        *self.counts.entry(Self::bucket(value)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.counts {
            *self.counts.entry(*b).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The nearest-rank `q` quantile (0 < q ≤ 1), rounded to 0.1 ms.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        self.at_rank((q * total as f64).ceil() as u64)
    }

    /// The value of the `rank`-th smallest call (1-based, clamped to the calls there are).
    pub fn at_rank(&self, rank: u64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = rank.clamp(1, total);
        let mut seen = 0;
        for (b, n) in &self.counts {
            seen += n;
            if seen >= rank {
                return Some((Self::representative(*b) * 10.0).round() / 10.0);
            }
        }
        None
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles { p50: self.quantile(0.5), p95: self.quantile(0.95), p99: self.quantile(0.99) }
    }

    /// Compact bytes: (bucket u16, count u32) pairs, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.counts.len() * 6);
        for (b, n) in &self.counts {
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&(*n).min(u32::MAX as u64).to_le_bytes()[..4]);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Histogram {
        let mut counts = BTreeMap::new();
        for pair in bytes.chunks_exact(6) {
            let b = u16::from_le_bytes([pair[0], pair[1]]);
            let n = u32::from_le_bytes([pair[2], pair[3], pair[4], pair[5]]) as u64;
            *counts.entry(b).or_default() += n;
        }
        Histogram { counts }
    }
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date of a day number.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const DAY_US: i64 = 86_400_000_000;

impl BudgetWindow {
    /// The calendar window (UTC) holding instant `at` (µs): its start and end.
    pub fn bounds(self, at: i64) -> (i64, i64) {
        let day = at.div_euclid(DAY_US);
        match self {
            BudgetWindow::Day => (day * DAY_US, (day + 1) * DAY_US),
            BudgetWindow::Week => {
                // 1970-01-01 was a Thursday; weeks start on Monday.
                let monday = day - (day + 3).rem_euclid(7);
                (monday * DAY_US, (monday + 7) * DAY_US)
            }
            BudgetWindow::Month => {
                let (y, m, _) = civil_from_days(day);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (days_from_civil(y, m, 1) * DAY_US, days_from_civil(ny, nm, 1) * DAY_US)
            }
        }
    }
}

/// Microseconds since the epoch of a time as the server writes it
/// (`2026-03-15T14:47:00.123456Z`, UTC, fixed width); `None` for anything else. Lets the
/// console place points in time without a date library.
pub fn utc_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || !s.ends_with('Z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?);
    let seconds = days * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    let fraction = match s.get(19..s.len() - 1)? {
        "" => 0,
        f => {
            let digits = f.strip_prefix('.')?;
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            digits.parse::<i64>().ok()? * 10_i64.pow(6 - digits.len() as u32)
        }
    };
    Some(seconds * 1_000_000 + fraction)
}

/// Spent so far extrapolated to the end of the window at the same pace.
pub fn forecast(spent: f64, start: i64, end: i64, now: i64) -> f64 {
    let elapsed = (now - start).max(1) as f64;
    let length = (end - start) as f64;
    if now >= end { spent } else { spent * (length / elapsed).max(1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_one_percent() {
        let mut h = Histogram::default();
        let values: Vec<f64> = (1..=1000).map(|i| (i * 7 % 1000) as f64 * 3.3 + 1.0).collect();
        values.iter().for_each(|v| h.record(*v));
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.5, 0.95, 0.99] {
            let exact = sorted[((q * 1000.0_f64).ceil() as usize) - 1];
            let got = h.quantile(q).unwrap();
            assert!((got - exact).abs() / exact <= 0.011, "q={q}: {got} vs {exact}");
        }
        let round = Histogram::from_bytes(&h.to_bytes());
        assert_eq!(round, h);
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn windows_are_calendar_windows_in_utc() {
        // 2026-12-01T09:14:03Z is a Tuesday.
        let at = 1_796_116_443_000_000;
        let (s, e) = BudgetWindow::Day.bounds(at);
        assert_eq!((s, e), (1_796_083_200_000_000, 1_796_169_600_000_000));
        let (s, e) = BudgetWindow::Week.bounds(at);
        assert_eq!((s, e - s), (1_796_083_200_000_000 - DAY_US, 7 * DAY_US));
        let (s, e) = BudgetWindow::Month.bounds(at);
        assert_eq!((s, e), (1_796_083_200_000_000, 1_798_761_600_000_000));
        let (s, e) = BudgetWindow::Month.bounds(1_798_761_600_000_000 - 1);
        assert_eq!((s, e), (1_796_083_200_000_000, 1_798_761_600_000_000));
    }

    #[test]
    fn server_times_parse() {
        assert_eq!(utc_micros("2026-12-01T09:14:03.000000Z"), Some(1_796_116_443_000_000));
        assert_eq!(utc_micros("2026-12-01T09:14:03.5Z"), Some(1_796_116_443_500_000));
        assert_eq!(utc_micros("2026-12-01T09:14:03Z"), Some(1_796_116_443_000_000));
        assert_eq!(utc_micros("2026-12-01 09:14:03Z"), None);
        assert_eq!(utc_micros("2026-12-01T09:14:03+01:00"), None);
    }

    #[test]
    fn generation_rules() {
        let good = NewGeneration {
            id: "req-1".into(),
            prompt: "support/greeting".into(),
            version: Some(1),
            started_at: "2026-12-01T09:14:03Z".into(),
            ..Default::default()
        };
        assert_eq!(good.check(), Ok(()));
        let bad = |f: fn(&mut NewGeneration)| {
            let mut g = good.clone();
            f(&mut g);
            g.check().unwrap_err().field
        };
        assert_eq!(bad(|g| g.id = String::new()), "id");
        assert_eq!(bad(|g| g.id = "a\nb".into()), "id");
        assert_eq!(bad(|g| g.prompt = "Bad Name".into()), "prompt");
        assert_eq!(bad(|g| g.version = None), "version");
        assert_eq!(bad(|g| g.hash = Some("md5:x".into())), "hash");
        assert_eq!(bad(|g| g.latency_ms = Some(-1.0)), "latency_ms");
        assert_eq!(bad(|g| g.cost = Some(f64::NAN)), "cost");
        assert_eq!(bad(|g| g.arm = Some(Arm::Base)), "arm");
        assert_eq!(bad(|g| g.label = Some("latest!".into())), "label");
    }

    #[test]
    fn cutting_keeps_the_limit() {
        let mut s = "é".repeat(100);
        assert!(cut_text(&mut s, 51));
        assert_eq!(s.len(), 50);
        let mut o = Map::new();
        o.insert("a".into(), Value::String("x".repeat(50_000)));
        o.insert("b".into(), Value::String("short".into()));
        o.insert("c".into(), Value::from(vec![1; 20_000]));
        assert!(cut_object(&mut o, KEEP_BYTES));
        assert!(serde_json::to_string(&o).unwrap().len() <= KEEP_BYTES);
        assert_eq!(o["b"], "short");
        let mut small = Map::new();
        small.insert("a".into(), Value::from(1));
        assert!(!cut_object(&mut small, KEEP_BYTES));
    }
}
