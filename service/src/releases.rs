//! Releases: one label moved on several prompts in one transaction (all or none, under
//! every rule of the label, one approval request for the whole release), and rolled
//! back the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::access::Action;
use domain::model::{
    LabelRequest, MoveLabel, NewRelease, Page, Refusal, Release, ReleaseOutcome, ReleasePlan, RequestStatus,
};
use domain::names::{self, LATEST};
use domain::vocabulary::AuditAction;
use serde_json::json;

use crate::index::PromptEntry;
use crate::store::{self, NewEvent, VersionRow, WriteGuard, governance as policy_sql, releases as sql};
use crate::{Principal, Registry, Result, ServiceError, check_len, detached, number_cursor, page_limit, time};

/// Prompts one release may move.
const MAX_PROMPTS: usize = 200;

/// One move of a release, checked.
pub(crate) struct Planned {
    entry: Arc<PromptEntry>,
    row: VersionRow,
}

/// A release written but not yet in the index: published once committed.
pub(crate) struct Written {
    pub release: Release,
    planned: Vec<Planned>,
    at: i64,
}

impl Registry {
    /// Moves `label` on every prompt named to its version, all or none. A refusal names
    /// every prompt that cannot move and why; with approval required, one request is
    /// opened for the whole release.
    pub async fn create_release(&self, who: &Principal, req: NewRelease) -> Result<ReleaseOutcome> {
        who.require(Action::Write)?;
        check_len("reason", &req.reason, 2000)?;
        let plan = ReleasePlan { prompts: req.prompts, rollback_of: None };
        self.make_release(who, req.label, plan, req.reason).await
    }

    /// Takes a release back: every label it moved goes back to where it pointed before,
    /// all or none, as a release of its own.
    pub async fn rollback_release(&self, who: &Principal, id: &str, reason: String) -> Result<ReleaseOutcome> {
        who.require(Action::Write)?;
        check_len("reason", &reason, 2000)?;
        let release = self.release_by_id(who, id).await?;
        if let Some(by) = &release.rolled_back_by {
            return Err(ServiceError::Closed(format!("release {id} was rolled back already (by release {by})")));
        }
        let mut prompts = BTreeMap::new();
        let mut refusals = Vec::new();
        for m in &release.moves {
            match m.previous_version {
                Some(v) => {
                    prompts.insert(m.prompt.clone(), v);
                }
                None => refusals.push(Refusal {
                    prompt: m.prompt.clone(),
                    code: "no_previous_version".into(),
                    message: format!(
                        "'{}' had no '{}' before this release, so there is nothing to go back to; move it by hand instead",
                        m.prompt, release.label
                    ),
                }),
            }
        }
        if !refusals.is_empty() {
            return Err(refused(refusals));
        }
        let reason = if reason.is_empty() { format!("rollback of {id}") } else { reason };
        self.make_release(who, release.label, ReleasePlan { prompts, rollback_of: Some(id.to_owned()) }, reason).await
    }

    async fn make_release(&self, who: &Principal, label: String, plan: ReleasePlan, reason: String) -> Result<ReleaseOutcome> {
        names::validate_label(&label)?;
        if label == LATEST {
            return Err(ServiceError::rule(
                "latest_is_automatic",
                "`latest` always points at the newest version and cannot be released",
            ));
        }
        if plan.prompts.is_empty() || plan.prompts.len() > MAX_PROMPTS {
            return Err(ServiceError::rule(
                "invalid_release",
                format!("a release moves 1 to {MAX_PROMPTS} prompts: give `prompts` as {{\"name\": version, ...}}"),
            ));
        }
        let (this, who) = (self.clone(), who.clone());
        detached(async move {
            let mut w = this.write().await?;
            let policy = policy_sql::policy(w.conn(), &label).await?;
            let planned = this.plan_release(&mut w, &who, &label, &plan).await?;
            let changes = planned.iter().any(|p| p.entry.summary.labels.get(&label) != Some(&p.row.version));
            if policy.require_approval && changes {
                let first = &planned[0];
                let request = MoveLabel { version: first.row.version, reason: reason.clone() };
                let request =
                    this.insert_request(&mut w, &who, &first.entry, &label, &request, None, Some(&plan)).await?;
                w.commit().await?;
                return Ok(ReleaseOutcome::Requested(Box::new(request)));
            }
            let written = this.write_release(&mut w, &who, &label, planned, &reason, plan.rollback_of.as_deref()).await?;
            w.commit().await?;
            this.publish_release(&written, &who.actor)?;
            Ok(ReleaseOutcome::Released(written.release))
        })
        .await
    }

    /// Checks every move of a release inside the write transaction: the version exists,
    /// no rollout holds the label, the label's rules (protected, eval gate) and includes
    /// allow it. Any refusal refuses the whole release, naming each prompt.
    async fn plan_release(
        &self,
        w: &mut WriteGuard<'_>,
        who: &Principal,
        label: &str,
        plan: &ReleasePlan,
    ) -> Result<Vec<Planned>> {
        let mut planned = Vec::with_capacity(plan.prompts.len());
        let mut refusals = Vec::new();
        for (name, version) in &plan.prompts {
            match self.plan_move(w, who, name, label, *version).await {
                Ok(p) => planned.push(p),
                // Not allowed at all: the same for every prompt, so said once.
                Err(e @ ServiceError::Forbidden(_)) => return Err(e),
                Err(ServiceError::Internal(m)) => return Err(ServiceError::Internal(m)),
                Err(e) => refusals.push(Refusal { prompt: name.clone(), code: e.code().into(), message: e.to_string() }),
            }
        }
        if refusals.is_empty() { Ok(planned) } else { Err(refused(refusals)) }
    }

    async fn plan_move(
        &self,
        w: &mut WriteGuard<'_>,
        who: &Principal,
        name: &str,
        label: &str,
        version: i64,
    ) -> Result<Planned> {
        let entry = self.entry(name)?;
        let row = crate::labels::version_row(w.conn(), &entry, version).await?;
        crate::labels::refuse_during_rollout(w.conn(), &entry, label).await?;
        self.check_move_rules(w.conn(), who, &entry, label, &row).await?;
        self.check_label_includes(&entry, label, &row).await?;
        Ok(Planned { entry, row })
    }

    /// Writes every move, the release and its audit event; once the caller commits,
    /// [`Registry::publish_release`] puts the moves into the index.
    async fn write_release(
        &self,
        w: &mut WriteGuard<'_>,
        who: &Principal,
        label: &str,
        planned: Vec<Planned>,
        reason: &str,
        rollback_of: Option<&str>,
    ) -> Result<Written> {
        let id = crate::random_id("rel")?;
        let at = time::now_us();
        let mut moves = Vec::with_capacity(planned.len());
        for p in &planned {
            let cause = Some(json!({"release": id}));
            let previous = self.write_move(w, who, &p.entry, label, &p.row, reason, cause, at).await?;
            moves.push((p.entry.id, p.row.version, previous));
        }
        let row = sql::NewRelease { id: &id, label, reason, created_by: &who.actor, at, rollback_of };
        sql::insert_release(w.conn(), &row, &moves).await?;
        let action = if rollback_of.is_some() { AuditAction::ReleaseRolledBack } else { AuditAction::ReleaseCreated };
        let detail = json!({
            "release": id,
            "reason": reason,
            "rollback_of": rollback_of,
            "moves": planned.iter().zip(&moves).map(|(p, m)| json!({
                "prompt": p.entry.summary.name, "version": m.1, "previous_version": m.2,
            })).collect::<Vec<_>>(),
        });
        let e = NewEvent { actor: &who.actor, action, prompt: None, version: None, label: Some(label), detail };
        w.audit(at, e).await?;
        let release = sql::release(w.conn(), &id).await?.ok_or_else(|| ServiceError::internal("release vanished"))?;
        Ok(Written { release, planned, at })
    }

    /// Puts a committed release's moves into the index (the caller still holds the
    /// write lock).
    pub(crate) fn publish_release(&self, written: &Written, actor: &str) -> Result<()> {
        for p in &written.planned {
            // Each prompt's current entry: an earlier move of this release may have
            // recomposed it (it includes another released prompt).
            let entry = self.entry(&p.entry.summary.name)?;
            self.publish_move(&entry, &written.release.label, &p.row, actor, written.at)?;
        }
        Ok(())
    }

    /// Writes an approved release request's release, every rule checked again, in the
    /// approval's transaction.
    pub(crate) async fn write_approved_release(
        &self,
        w: &mut WriteGuard<'_>,
        who: &Principal,
        request: &store::governance::RequestRow,
        plan: &ReleasePlan,
    ) -> Result<Written> {
        let planned = self.plan_release(w, who, &request.label, plan).await?;
        let reason = format!("{} (requested by {}, approved by {})", request.reason, request.requested_by, who.actor);
        self.write_release(w, who, &request.label, planned, &reason, plan.rollback_of.as_deref()).await
    }

    /// Releases, newest first.
    pub async fn releases(&self, who: &Principal, limit: Option<i64>, cursor: Option<&str>) -> Result<Page<Release>> {
        who.require(Action::Read)?;
        let limit = page_limit(limit, 50, 500)?;
        let before = number_cursor(cursor)?;
        let mut conn = self.store().reader.acquire().await?;
        let mut items = sql::releases(&mut conn, before, limit + 1).await?;
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_cursor = if more {
            items.last().and_then(|r| time::parse_param("cursor", Some(&r.at)).ok().flatten()).map(|t| t.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    pub async fn release_by_id(&self, who: &Principal, id: &str) -> Result<Release> {
        who.require(Action::Read)?;
        let mut conn = self.store().reader.acquire().await?;
        sql::release(&mut conn, id).await?.ok_or_else(|| ServiceError::NotFound(format!("there is no release '{id}'")))
    }

    /// Pending release requests (for the console's Releases page).
    pub async fn pending_releases(&self, who: &Principal) -> Result<Vec<LabelRequest>> {
        let pending = self.label_requests(who, Some(RequestStatus::Pending)).await?;
        Ok(pending.into_iter().filter(|r| r.release.is_some()).collect())
    }
}

fn refused(refusals: Vec<Refusal>) -> ServiceError {
    let names: Vec<&str> = refusals.iter().map(|r| r.prompt.as_str()).collect();
    ServiceError::ReleaseRefused {
        message: format!(
            "nothing was released: {} cannot move ({}); fix each reason below, or leave those prompts out",
            names.join(", "),
            refusals.iter().map(|r| r.message.as_str()).collect::<Vec<_>>().join("; ")
        ),
        refusals,
    }
}
