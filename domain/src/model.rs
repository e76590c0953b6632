//! The shapes that cross the wire (API.md): what the REST API and the console's server
//! functions send and receive. Plain serde types, shared by server and browser.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::content::{Message, PromptType};

/// One version of a prompt, as resolve and the version endpoints return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    pub name: String,
    pub version: i64,
    pub hash: String,
    #[serde(rename = "type")]
    pub prompt_type: PromptType,
    pub template: Option<String>,
    pub messages: Option<Vec<Message>>,
    pub config: Map<String, Value>,
    pub variables: Vec<String>,
    /// Labels that point at this version now (`latest` included).
    pub labels: Vec<String>,
    /// The prompts it includes, resolved now (or at `at=`), in order.
    #[serde(default)]
    pub includes: Vec<crate::compose::Include>,
    /// `sha256:` over `hash` and each include's `resolved_hash`; `hash` when it
    /// includes nothing. The resolve ETag.
    #[serde(default)]
    pub resolved_hash: String,
    pub message: String,
    pub created_by: String,
    pub created_at: String,
    /// Set on a save whose content equals the newest version (nothing was written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<bool>,
    /// Set when a rollout chose this version: which rollout, which arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::RolloutRef>,
}

impl VersionView {
    /// The view with its includes resolved: the composed text (every include inlined),
    /// the variables of everything it includes, its includes and `resolved_hash`.
    pub fn composed(mut self, c: &crate::compose::Composition) -> VersionView {
        use crate::content::PromptBody;
        match &c.body {
            PromptBody::Text(t) => self.template = Some(t.clone()),
            PromptBody::Chat(m) => self.messages = Some(m.clone()),
        }
        self.variables = c.variables.clone();
        self.includes = c.includes.clone();
        self.resolved_hash = c.resolved_hash.clone();
        self
    }
}

/// A version that includes a prompt (`GET /api/v1/prompts/{name}/dependents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependent {
    pub name: String,
    pub version: i64,
    /// The label or version number it includes.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The labels that serve this version now (`latest` included).
    pub labels: Vec<String>,
}

/// `POST /api/v1/lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRequest {
    /// `name@label` or `name@N` (a bare name means `name@stable`).
    pub refs: Vec<String>,
}

/// One ref of a lockfile: what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    pub name: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub version: i64,
    pub hash: String,
    pub resolved_hash: String,
    #[serde(default)]
    pub includes: Vec<crate::compose::Include>,
}

/// What a deployment pins (`POST /api/v1/lock`, and the lockfile the command line writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockfile {
    pub prompts: Vec<Locked>,
    pub audit_head: String,
}

/// One prompt as a file (`promptledger export` / `apply`, `GET /api/v1/export`): what a
/// person reads and edits in a pull request. The top-level content is the newest
/// version; `versions` holds older ones a label still serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The newest version when exported: an edit of this file starts from it, so a newer
    /// version saved meanwhile is a conflict, never overwritten.
    pub version: i64,
    #[serde(rename = "type")]
    pub prompt_type: PromptType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Label -> version: `version` (the content above) or one of `versions`.
    #[serde(default)]
    pub labels: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<FileVersion>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub suites: BTreeMap<String, crate::eval::Suite>,
}

/// An older version a label serves, as a file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileVersion {
    pub version: i64,
    #[serde(rename = "type")]
    pub prompt_type: PromptType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    #[serde(default)]
    pub config: Map<String, Value>,
}

/// One step of an apply's plan, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyStep {
    pub prompt: String,
    /// `create`, `new_version`, `label`, `suite` or `unchanged`.
    pub action: String,
    pub detail: String,
    /// `planned` (a dry run), `done`, `requested` (waits for approval), `conflict` or `refused`.
    pub outcome: String,
}

/// An apply's plan and outcome; `refused` when any step was refused or in conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub steps: Vec<ApplyStep>,
    pub refused: bool,
}

/// An impact check (`POST /api/v1/prompts/{name}/impact`): a candidate version of an
/// included prompt against the suites of every prompt that includes it by label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    pub id: String,
    pub prompt: String,
    pub version: i64,
    /// `running` while any run is, then `finished`.
    pub status: String,
    /// Every dependent with the suite passes with the candidate (once finished).
    pub passed: bool,
    pub created_by: String,
    pub created_at: String,
    /// Per dependent and suite, regressions first.
    pub runs: Vec<ImpactRow>,
}

/// One dependent's suite, now and with the candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpactRow {
    pub dependent: String,
    /// The dependent's version run, and the label that serves it.
    pub version: i64,
    pub label: String,
    pub suite: String,
    pub now: Option<RunBrief>,
    pub candidate: Option<RunBrief>,
    /// The candidate passes fewer cases than what is served now.
    pub regression: bool,
    /// Why the runs could not start (no model in the config...).
    pub error: Option<String>,
}

/// A run in brief: its id, status and pass rate so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunBrief {
    pub id: String,
    pub status: String,
    pub pass_rate: f64,
    pub passed: bool,
}

/// A prompt in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSummary {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub latest_version: i64,
    /// Labels other than `latest`, with the version each points at.
    pub labels: BTreeMap<String, i64>,
    pub updated_at: String,
    /// Who made the last change (a version or a label move).
    #[serde(default)]
    pub updated_by: String,
    /// Live rollouts by label: "stable: v3 for 75 %, v5 for 25 %".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rollouts: BTreeMap<String, crate::rollout::SplitBrief>,
}

/// A page of a list; `next_cursor` fetches the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMove {
    pub label: String,
    pub version: i64,
    pub previous_version: Option<i64>,
    pub actor: String,
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelsView {
    /// Every label with its version, `latest` included.
    pub labels: BTreeMap<String, i64>,
    /// Moves, newest first.
    pub history: Vec<LabelMove>,
    /// Rollouts' stretches at one weight, newest first: "stable: v3, with v5 at 25 %".
    #[serde(default)]
    pub rollouts: Vec<crate::rollout::WeightChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedLabel {
    pub label: String,
    pub version: i64,
    pub previous_version: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub prompt: Option<String>,
    pub version: Option<i64>,
    pub label: Option<String>,
    pub detail: Value,
    pub hash: String,
    pub prev_hash: String,
}

/// The outcome of checking the audit chain and every version's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub events: i64,
    /// Hash of the newest event (the genesis hash for an empty log).
    pub head: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Versions whose content was checked against their hash.
    pub versions: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffView {
    pub from: i64,
    pub to: i64,
    pub unified: String,
    pub config_changed: bool,
}

/// Two versions side by side (the console's comparison), config included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub from: i64,
    pub to: i64,
    pub rows: Vec<crate::diff::SideRow>,
    pub config_changed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderView {
    pub name: String,
    pub version: i64,
    pub hash: String,
    /// The hash of what was rendered, includes resolved.
    #[serde(default)]
    pub resolved_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    /// Set when a rollout chose the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::RolloutRef>,
}

/// `PATCH /api/v1/prompts/{name}`: what is given replaces what the prompt has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptUpdate {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// `POST /api/v1/prompts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPrompt {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(rename = "type", default)]
    pub prompt_type: Option<PromptType>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /api/v1/prompts/{name}/versions`. Leaving out `config` keeps the base config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    #[serde(default)]
    pub base_version: Option<i64>,
    #[serde(rename = "type", default)]
    pub prompt_type: Option<PromptType>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub message: Option<String>,
}

/// `PUT /api/v1/prompts/{name}/labels/{label}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveLabel {
    pub version: i64,
    #[serde(default)]
    pub reason: String,
}

/// Which version to use: a number, a label (now or at an instant), or `stable` by default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Selector {
    pub version: Option<i64>,
    pub label: Option<String>,
    /// RFC 3339 instant, with a label.
    pub at: Option<String>,
    /// A rollout's unit (a user id...): the same unit always gets the same arm.
    #[serde(default)]
    pub unit: Option<String>,
    /// The stored text, includes not inlined.
    #[serde(default)]
    pub raw: bool,
}

/// `POST /api/v1/prompts/{name}/render`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub variables: Map<String, Value>,
    #[serde(default)]
    pub allow_unknown: bool,
    /// A rollout's unit, as for resolve.
    #[serde(default)]
    pub unit: Option<String>,
}

/// A person's account (never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    pub role: String,
    pub disabled: bool,
    pub has_password: bool,
    pub created_at: String,
}

/// An API key, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub name: String,
    pub prefix: String,
    pub scope: String,
    pub user: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A key just created: the only time `key` is ever shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    pub name: String,
    pub key: String,
    pub scope: crate::access::Scope,
    pub user: Option<String>,
}

/// The rules for moving a label on every prompt (`PUT /api/v1/labels/{label}/policy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelPolicy {
    /// Only a publisher, an admin or an admin-scope key may move it.
    #[serde(default)]
    pub protected: bool,
    /// A move needs a run of this suite on the exact version hash with this pass rate.
    #[serde(default)]
    pub require_eval: Option<EvalGate>,
    /// A move becomes a request that another publisher or admin decides.
    #[serde(default)]
    pub require_approval: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalGate {
    pub suite: String,
    pub min_pass_rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Approved,
    Rejected,
    Withdrawn,
    Expired,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Withdrawn => "withdrawn",
            RequestStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Rejected, Self::Withdrawn, Self::Expired]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A label move waiting for (or given) another person's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelRequest {
    pub id: String,
    pub prompt: String,
    pub label: String,
    pub version: i64,
    pub reason: String,
    pub requested_by: String,
    pub status: RequestStatus,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub decided_at: Option<String>,
    /// Set when the request is for a gradual rollout rather than a move: its plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::NewRollout>,
    /// Set when the request is for a whole release: every prompt and version it moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleasePlan>,
}

/// `POST /api/v1/releases`: one label moved on several prompts together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    pub label: String,
    /// Prompt name -> the version the label is to point at.
    pub prompts: BTreeMap<String, i64>,
    #[serde(default)]
    pub reason: String,
}

/// What a release request waiting for approval will move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePlan {
    pub prompts: BTreeMap<String, i64>,
    /// The release this one takes back, for a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
}

/// One label move of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseMove {
    pub prompt: String,
    pub version: i64,
    pub previous_version: Option<i64>,
}

/// A release: label moves made together, all or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub label: String,
    pub moves: Vec<ReleaseMove>,
    pub reason: String,
    pub created_by: String,
    pub at: String,
    /// The release this one took back.
    pub rollback_of: Option<String>,
    /// The release that took this one back.
    pub rolled_back_by: Option<String>,
}

/// What a release did: moved every label, or opened one request for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReleaseOutcome {
    Released(Release),
    Requested(Box<LabelRequest>),
}

/// Why one prompt of a release cannot move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub prompt: String,
    pub code: String,
    pub message: String,
}

/// What a label move did: moved at once, or opened a request for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LabelOutcome {
    Moved(MovedLabel),
    Requested(Box<LabelRequest>),
}

/// `POST /api/v1/label-requests/{id}/approve|reject|withdraw`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub comment: String,
}

/// A webhook endpoint (an extension: `POST /api/v1/webhooks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
}

/// A webhook just created, with its signing secret (shown once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

/// One delivery of one event to one webhook, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: i64,
    pub webhook: String,
    pub event: String,
    pub audit_seq: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub response_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
}
