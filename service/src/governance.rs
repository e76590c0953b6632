//! Governance: label policies (protected, eval gate, approval), and label requests that
//! another publisher or admin approves or rejects. API keys are held to the same rules as
//! people: a key acting for a person cannot approve that person's request.

use std::time::Duration;

use domain::access::Action;
use domain::model::{Decision, EvalGate, LabelPolicy, LabelRequest, MoveLabel, ReleasePlan, RequestStatus};
use domain::names::{self, LATEST};
use domain::rollout::NewRollout;
use domain::vocabulary::AuditAction;
use serde_json::json;
use sqlx::AnyConnection;

use crate::index::PromptEntry;
use crate::store::{NewEvent, WriteGuard, evals as eval_sql, governance as sql};
use crate::{Principal, Registry, Result, ServiceError, check_len, detached, time};

/// How long a request waits for a decision.
pub const REQUEST_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const REQUESTS_PAGE: i64 = 500;

impl Registry {
    pub async fn label_policy(&self, who: &Principal, label: &str) -> Result<LabelPolicy> {
        who.require(Action::Read)?;
        names::validate_label(label)?;
        sql::policy(&self.store().reader, label).await
    }

    /// Every label with a policy, and its policy.
    pub async fn label_policies(&self, who: &Principal) -> Result<Vec<(String, LabelPolicy)>> {
        who.require(Action::Read)?;
        let reader = &self.store().reader;
        let mut out = Vec::new();
        for label in sql::policies(reader).await? {
            let policy = sql::policy(reader, &label).await?;
            out.push((label, policy));
        }
        Ok(out)
    }

    /// Why moving `label` of `name` to `version` would be refused by its eval gate, in
    /// words, or `None` when it would pass (for the console's review before a move).
    pub async fn gate_refusal(&self, who: &Principal, name: &str, label: &str, version: i64) -> Result<Option<String>> {
        who.require(Action::Read)?;
        let Some(gate) = sql::policy(&self.store().reader, label).await?.require_eval else { return Ok(None) };
        let entry = self.entry(name)?;
        let mut conn = self.store().reader.acquire().await?;
        let row = crate::labels::version_row(&mut conn, &entry, version).await?;
        match self.check_eval_gate(&mut conn, &entry, label, &row, &gate).await {
            Ok(()) => Ok(None),
            Err(ServiceError::EvalGate { message, .. }) => Ok(Some(message)),
            Err(e) => Err(e),
        }
    }

    /// Sets the rules for moving `label` on every prompt (admins).
    pub async fn set_label_policy(&self, who: &Principal, label: &str, policy: LabelPolicy) -> Result<LabelPolicy> {
        who.require(Action::Administer)?;
        names::validate_label(label)?;
        if label == LATEST {
            return Err(ServiceError::rule("latest_is_automatic", "`latest` moves by itself: it has no policy"));
        }
        if let Some(gate) = &policy.require_eval {
            if !(0.0..=1.0).contains(&gate.min_pass_rate) {
                return Err(ServiceError::rule(
                    "invalid_policy",
                    "min_pass_rate is a fraction from 0 to 1 (0.9 is 90%)",
                ));
            }
            if gate.suite.is_empty() || gate.suite.len() > 64 {
                return Err(ServiceError::rule("invalid_policy", "require_eval needs the name of a suite"));
            }
        }
        let mut w = self.write().await?;
        sql::set_policy(w.conn(), label, &policy).await?;
        let detail = json!({"protected": policy.protected, "require_approval": policy.require_approval,
                            "require_eval": policy.require_eval.as_ref().map(|g| json!({"suite": g.suite, "min_pass_rate": g.min_pass_rate}))});
        let e = NewEvent {
            actor: &who.actor,
            action: AuditAction::LabelPolicySet,
            prompt: None,
            version: None,
            label: Some(label),
            detail,
        };
        w.audit(time::now_us(), e).await?;
        w.commit().await?;
        Ok(policy)
    }

    /// Refuses a move unless a finished run of the gate's suite on exactly this version
    /// reached the pass rate; a prompt without the suite is refused too.
    pub(crate) async fn check_gate(
        &self,
        conn: &mut AnyConnection,
        prompt_id: i64,
        name: &str,
        version: i64,
        hash: &str,
        gate: &EvalGate,
    ) -> Result<()> {
        let refuse = |best: Option<(String, f64)>, why: String| ServiceError::EvalGate {
            suite: gate.suite.clone(),
            min_pass_rate: gate.min_pass_rate,
            best_pass_rate: best.as_ref().map(|b| b.1),
            best_run: best.map(|b| b.0),
            message: why,
        };
        if eval_sql::suite(&mut *conn, prompt_id, name, &gate.suite).await?.is_none() {
            return Err(refuse(
                None,
                format!(
                    "this label needs the suite '{}' to pass at {:.0}% on the version, and '{name}' has no such suite: add it, run it on version {version}, then move the label",
                    gate.suite,
                    gate.min_pass_rate * 100.0
                ),
            ));
        }
        match eval_sql::best_run(conn, prompt_id, hash, &gate.suite).await? {
            Some((_, rate)) if rate + 1e-9 >= gate.min_pass_rate => Ok(()),
            best => {
                let found = match &best {
                    Some((run, rate)) => {
                        format!("the best run of it on version {version} ({run}) passed {:.0}%", rate * 100.0)
                    }
                    None => format!("it has not been run on version {version}"),
                };
                Err(refuse(
                    best,
                    format!(
                        "this label needs the suite '{}' to pass at {:.0}% or more on the version; {found}: run the suite on version {version} (and fix what fails) first",
                        gate.suite,
                        gate.min_pass_rate * 100.0
                    ),
                ))
            }
        }
    }

    /// Opens a request for another publisher or admin to decide, in the caller's
    /// transaction: a label move, or a gradual rollout when `rollout` is its plan.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_request(
        &self,
        w: &mut WriteGuard<'_>,
        who: &Principal,
        entry: &PromptEntry,
        label: &str,
        req: &MoveLabel,
        rollout: Option<&NewRollout>,
        release: Option<&ReleasePlan>,
    ) -> Result<LabelRequest> {
        let name = &entry.summary.name;
        let id = crate::random_id("req")?;
        let at = time::now_us();
        let plan = rollout.map(|p| serde_json::to_string(p).map_err(ServiceError::internal)).transpose()?;
        let release_plan = release.map(|p| serde_json::to_string(p).map_err(ServiceError::internal)).transpose()?;
        let row = sql::NewRequest {
            id: &id,
            prompt_id: entry.id,
            label,
            version: req.version,
            reason: &req.reason,
            requested_by: &who.actor,
            requester_user_id: who.user_id,
            at,
            expires_at: at + REQUEST_TTL.as_micros() as i64,
            rollout: plan.as_deref(),
            release: release_plan.as_deref(),
        };
        sql::insert_request(w.conn(), &row).await?;
        let mut detail =
            json!({"request": id, "reason": req.reason, "previous_version": entry.summary.labels.get(label)});
        if let Some(plan) = rollout {
            detail["rollout"] = json!({"steps": plan.steps, "step_seconds": plan.step_seconds});
        }
        if let Some(plan) = release {
            detail["release"] = json!({"prompts": plan.prompts, "rollback_of": plan.rollback_of});
        }
        let e = NewEvent {
            actor: &who.actor,
            action: AuditAction::RequestOpened,
            prompt: Some(name),
            version: Some(req.version),
            label: Some(label),
            detail,
        };
        w.audit(at, e).await?;
        sql::request(w.conn(), &id).await?.ok_or_else(|| ServiceError::internal("request vanished"))?.view()
    }

    /// Requests, newest first (`status` to filter); expired ones are closed first.
    pub async fn label_requests(&self, who: &Principal, status: Option<RequestStatus>) -> Result<Vec<LabelRequest>> {
        who.require(Action::Read)?;
        self.expire_requests().await?;
        sql::requests(&self.store().reader, status, REQUESTS_PAGE).await?.iter().map(|r| r.view()).collect()
    }

    pub async fn label_request(&self, who: &Principal, id: &str) -> Result<LabelRequest> {
        who.require(Action::Read)?;
        self.expire_requests().await?;
        self.request_row(id).await?.view()
    }

    async fn request_row(&self, id: &str) -> Result<sql::RequestRow> {
        sql::request(&self.store().reader, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no label request '{id}'")))
    }

    /// Approves a request: the label's rules are checked again, inside the write
    /// transaction, then the label moves (or the rollout it asked for starts). The
    /// requester cannot approve (nor can any key acting for them).
    pub async fn approve_request(&self, who: &Principal, id: &str, decision: Decision) -> Result<LabelRequest> {
        let row = self.decidable(who, id, &decision).await?;
        let (this, who, request) = (self.clone(), who.clone(), id.to_owned());
        detached(async move {
            let id = request;
            let mut w = this.write().await?;
            let entry = this.entry(&row.prompt)?;
            let version = crate::labels::version_row(w.conn(), &entry, row.version).await?;
            let release = row.release()?;
            if release.is_none() {
                this.check_move_rules(w.conn(), &who, &entry, &row.label, &version).await?;
            }
            let at = time::now_us();
            let comment = Some(decision.comment.as_str()).filter(|c| !c.is_empty());
            if !sql::decide(w.conn(), &id, RequestStatus::Approved, &who.actor, comment, at).await? {
                return Err(ServiceError::Closed(format!("request {id} is no longer pending")));
            }
            let e = NewEvent {
                actor: &who.actor,
                action: AuditAction::RequestApproved,
                prompt: Some(&row.prompt),
                version: Some(row.version),
                label: Some(&row.label),
                detail: json!({"request": id, "comment": comment}),
            };
            w.audit(at, e).await?;
            let reason = format!("{} (requested by {}, approved by {})", row.reason, row.requested_by, who.actor);
            if let Some(plan) = release {
                let written = this.write_approved_release(&mut w, &who, &row, &plan).await?;
                w.commit().await?;
                this.publish_release(&written, &who.actor)?;
                return Ok(());
            }
            match row.rollout_plan()? {
                Some(mut plan) => {
                    plan.reason = reason;
                    let requester = (row.requested_by.as_str(), row.requester_user_id);
                    let (live, candidate) =
                        this.begin_rollout(&mut w, &who, requester, &entry, &version, &plan, at).await?;
                    w.commit().await?;
                    this.publish_rollout(&live, Some(candidate))?;
                }
                None => {
                    crate::labels::refuse_during_rollout(w.conn(), &entry, &row.label).await?;
                    let cause = Some(json!({"request": id}));
                    this.write_move(&mut w, &who, &entry, &row.label, &version, &reason, cause, at).await?;
                    w.commit().await?;
                    this.publish_move(&entry, &row.label, &version, &who.actor, at)?;
                }
            }
            Ok(())
        })
        .await?;
        self.request_row(id).await?.view()
    }

    pub async fn reject_request(&self, who: &Principal, id: &str, decision: Decision) -> Result<LabelRequest> {
        let row = self.decidable(who, id, &decision).await?;
        self.close_request(who, &row, RequestStatus::Rejected, AuditAction::RequestRejected, &decision.comment).await
    }

    /// The requester (or an admin) takes a pending request back.
    pub async fn withdraw_request(&self, who: &Principal, id: &str, decision: Decision) -> Result<LabelRequest> {
        who.require(Action::Write)?;
        check_len("comment", &decision.comment, 2000)?;
        self.expire_requests().await?;
        let row = self.request_row(id).await?;
        if !same_person(who, &row) && !who.grant.allows(Action::Administer) {
            return Err(ServiceError::Forbidden(format!(
                "only {} (or an admin) can withdraw this request",
                row.requested_by
            )));
        }
        self.close_request(who, &row, RequestStatus::Withdrawn, AuditAction::RequestWithdrawn, &decision.comment).await
    }

    /// The request, if `who` may decide it now: a publisher or admin who did not ask.
    async fn decidable(&self, who: &Principal, id: &str, decision: &Decision) -> Result<sql::RequestRow> {
        who.require(Action::MoveProtectedLabel)?;
        check_len("comment", &decision.comment, 2000)?;
        self.expire_requests().await?;
        let row = self.request_row(id).await?;
        if same_person(who, &row) {
            return Err(ServiceError::Forbidden(
                "you asked for this move: another publisher or admin must approve or reject it".into(),
            ));
        }
        if row.status != RequestStatus::Pending.as_str() {
            return Err(ServiceError::Closed(format!("request {id} is {} already", row.status)));
        }
        Ok(row)
    }

    async fn close_request(
        &self,
        who: &Principal,
        row: &sql::RequestRow,
        status: RequestStatus,
        action: AuditAction,
        comment: &str,
    ) -> Result<LabelRequest> {
        let mut w = self.write().await?;
        let at = time::now_us();
        let comment = Some(comment).filter(|c| !c.is_empty());
        if !sql::decide(w.conn(), &row.id, status, &who.actor, comment, at).await? {
            return Err(ServiceError::Closed(format!("request {} is no longer pending", row.id)));
        }
        let detail = json!({"request": row.id, "comment": comment});
        let e = NewEvent {
            actor: &who.actor,
            action,
            prompt: Some(&row.prompt),
            version: Some(row.version),
            label: Some(&row.label),
            detail,
        };
        w.audit(at, e).await?;
        w.commit().await?;
        self.request_row(&row.id).await?.view()
    }

    /// Closes pending requests past their expiry, each with an audit event.
    async fn expire_requests(&self) -> Result<()> {
        let now = time::now_us();
        if sql::due(&self.store().reader, now).await?.is_empty() {
            return Ok(());
        }
        let mut w = self.write().await?;
        for row in sql::due(w.conn(), now).await? {
            if sql::decide(w.conn(), &row.id, RequestStatus::Expired, "system", None, now).await? {
                let e = NewEvent {
                    actor: "system",
                    action: AuditAction::RequestExpired,
                    prompt: Some(&row.prompt),
                    version: Some(row.version),
                    label: Some(&row.label),
                    detail: json!({"request": row.id}),
                };
                w.audit(now, e).await?;
            }
        }
        w.end().await
    }
}

/// Whether `who` is the requester: the same actor, or any key acting for the same person.
fn same_person(who: &Principal, row: &sql::RequestRow) -> bool {
    who.actor == row.requested_by || (who.user_id.is_some() && who.user_id == row.requester_user_id)
}
