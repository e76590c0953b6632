//! Rollouts (API.md "Rollouts"): a label moved to a new version gradually. The plan and
//! where each rollout is live in the registry's database; the resolve index serves the
//! split; a judge in the server compares the arms on the evidence that ingest counts per
//! phase (a stretch at one weight, counting what arrives during it), and advances, pauses
//! or rolls back. Every change is
//! one write transaction with its audit event, like a label move, and survives a restart.

mod judge;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::access::Action;
use domain::model::MoveLabel;
use domain::names::{self, LATEST};
use domain::rollout::{
    Arms, Guard, NewRollout, Outcome, PATIENCE, Rollout, RolloutOutcome, RolloutStatus, StepView, Verdict,
};
use domain::telemetry::{Arm, ScoreStat};
use domain::vocabulary::AuditAction;
use parking_lot::RwLock;
use serde_json::json;
use sqlx::AnyConnection;

use crate::index::{PromptEntry, SplitPlan, VersionBase};
use crate::labels::version_row;
use crate::store::rollouts::{self as sql, RolloutRow};
use crate::store::telemetry as telemetry_sql;
use crate::store::{self, NewEvent, VersionRow, WriteGuard};
use crate::telemetry::metrics::version_metrics;
use crate::{Principal, Registry, Result, ServiceError, check_len, detached, time};
pub use judge::Evidence;

/// A prompt's rollouts listed at most.
const LIST_LIMIT: i64 = 100;

/// A live (running or paused) rollout as the server keeps it in memory.
#[derive(Debug)]
pub(crate) struct Live {
    pub row: RolloutRow,
    pub status: RolloutStatus,
    pub steps: Vec<u32>,
    pub guards: Vec<Guard>,
    /// The current phase (stretch at one weight): the evidence that arrives now counts in
    /// it, whatever the caller's clock says of the call.
    pub phase: i64,
}

impl Live {
    fn new(row: RolloutRow, phase: i64) -> Result<Live> {
        Ok(Live { status: row.status()?, steps: row.steps()?, guards: row.guards()?, phase, row })
    }

    /// The version an arm serves.
    pub fn version_of(&self, arm: Arm) -> i64 {
        match arm {
            Arm::Base => self.row.base_version,
            Arm::Candidate => self.row.candidate_version,
        }
    }

    /// When the current step may be judged, and when it pauses for lack of samples.
    fn deadlines(&self) -> (i64, i64) {
        let step = self.row.step_seconds * 1_000_000;
        (self.row.step_started_at + step, self.row.step_started_at + PATIENCE as i64 * step)
    }
}

/// Live rollouts by id, and the judge's alarm clock.
#[derive(Default)]
pub struct Rollouts {
    live: RwLock<HashMap<String, Arc<Live>>>,
    wake: tokio::sync::Notify,
}

/// (prompt, rollout id) of every live rollout.
pub(crate) async fn live_ids(reader: &sqlx::AnyPool) -> Result<Vec<(String, String)>> {
    Ok(sql::live(reader).await?.into_iter().map(|r| (r.prompt, r.id)).collect())
}

/// What a person or the judge does to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Pause,
    Resume,
    Advance,
    Abort,
    /// The judge: a guard failed.
    RollBack,
    /// The judge: too few samples after `PATIENCE` times the step.
    Starve,
}

impl Change {
    fn action(self, completes: bool) -> AuditAction {
        match self {
            Change::Pause | Change::Starve => AuditAction::RolloutPaused,
            Change::Resume => AuditAction::RolloutResumed,
            Change::Advance if completes => AuditAction::RolloutCompleted,
            Change::Advance => AuditAction::RolloutAdvanced,
            Change::Abort => AuditAction::RolloutAborted,
            Change::RollBack => AuditAction::RolloutRolledBack,
        }
    }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("there is no rollout '{id}'"))
}

impl Registry {
    /// Starts a gradual rollout of `plan.version` on `plan.label`, under the label's
    /// rules (protected, eval gate; with approval required it becomes a request, and the
    /// rollout starts when it is approved).
    pub async fn start_rollout(&self, who: &Principal, name: &str, plan: NewRollout) -> Result<RolloutOutcome> {
        who.require(Action::Write)?;
        names::validate_label(&plan.label)?;
        if plan.label == LATEST {
            return Err(ServiceError::rule(
                "latest_is_automatic",
                "`latest` always points at the newest version; roll out on another label, such as stable",
            ));
        }
        plan.check().map_err(|m| ServiceError::rule("invalid_rollout", m))?;
        check_len("reason", &plan.reason, 2000)?;
        self.known(name).await?;
        let (this, who, name) = (self.clone(), who.clone(), name.to_owned());
        let started = detached(async move {
            let mut w = this.write_on(&name).await?;
            let entry = this.entry(&name)?;
            let row = version_row(w.conn(), &entry, plan.version).await?;
            check_startable(w.conn(), &entry, &plan.label, plan.version).await?;
            let policy = this.check_move_rules(w.conn(), &who, &entry, &plan.label, &row).await?;
            // The rollout ends in this move: it must not close a circle of includes.
            this.check_label_includes(&entry, &plan.label, &row).await?;
            if policy.require_approval {
                let req = MoveLabel { version: plan.version, reason: plan.reason.clone() };
                let request = this.insert_request(&mut w, &who, &entry, &plan.label, &req, Some(&plan), None).await?;
                w.commit().await?;
                return Ok(Ok(RolloutOutcome::Requested(Box::new(request))));
            }
            let at = time::now_us();
            let requester = (who.actor.as_str(), who.user_id);
            let (live, candidate) = this.begin_rollout(&mut w, &who, requester, &entry, &row, &plan, at).await?;
            w.commit().await?;
            this.publish_rollout(&live, Some(candidate))?;
            Ok(Err(live))
        })
        .await?;
        match started {
            Ok(requested) => Ok(requested),
            Err(live) => Ok(RolloutOutcome::Started(Box::new(self.rollout_view(live.row.clone()).await?))),
        }
    }

    /// Writes a new rollout, its first phase and its audit event in the caller's
    /// transaction (rules already checked). `requester` is who asked for it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn begin_rollout(
        &self,
        w: &mut WriteGuard<'_>,
        who: &Principal,
        requester: (&str, Option<i64>),
        entry: &PromptEntry,
        candidate: &VersionRow,
        plan: &NewRollout,
        at: i64,
    ) -> Result<(Arc<Live>, Arc<VersionBase>)> {
        let base_version = check_startable(w.conn(), entry, &plan.label, candidate.version).await?;
        let row = RolloutRow {
            id: crate::random_id("ro")?,
            prompt_id: entry.id,
            prompt: entry.summary.name.clone(),
            label: plan.label.clone(),
            base_version,
            candidate_version: candidate.version,
            steps: serde_json::to_string(&plan.steps).map_err(ServiceError::internal)?,
            step_seconds: plan.step_seconds as i64,
            min_samples: plan.min_samples as i64,
            guards: serde_json::to_string(&plan.guards).map_err(ServiceError::internal)?,
            reason: plan.reason.clone(),
            status: RolloutStatus::Running.as_str().into(),
            step: 0,
            weight: i64::from(plan.steps[0]),
            step_started_at: at,
            note: None,
            created_by: requester.0.to_owned(),
            creator_user_id: requester.1,
            created_at: at,
            ended_at: None,
            ended_by: None,
        };
        sql::insert(w.conn(), &row).await?;
        sql::start_phase(w.conn(), &row.id, 0, row.weight, at, &who.actor).await?;
        let detail = json!({"rollout": row.id, "base_version": base_version, "steps": plan.steps,
                            "step_seconds": plan.step_seconds, "min_samples": plan.min_samples,
                            "guards": plan.guards, "weight": row.weight, "reason": plan.reason,
                            "hash": candidate.hash});
        let e = NewEvent {
            actor: &who.actor,
            action: AuditAction::RolloutStarted,
            prompt: Some(&entry.summary.name),
            version: Some(candidate.version),
            label: Some(&plan.label),
            detail,
        };
        w.audit(at, e).await?;
        let live = Arc::new(Live::new(row, 0)?);
        Ok((live, Arc::new(crate::version_base(&entry.summary.name, candidate)?)))
    }

    /// Puts a committed rollout change into memory (the caller holds the write lock):
    /// the split resolve serves, and the judge's list. `candidate` is given when the
    /// rollout is new to memory; after that it is carried from entry to entry.
    pub(crate) fn publish_rollout(&self, live: &Arc<Live>, candidate: Option<Arc<VersionBase>>) -> Result<()> {
        let row = &live.row;
        let entry = self.entry(&row.prompt)?;
        let mut plans = entry.split_plans();
        let carried = plans.iter().position(|p| p.id == row.id).map(|i| plans.remove(i).candidate);
        if live.status.is_live() {
            let candidate =
                carried.or(candidate).ok_or_else(|| ServiceError::internal("rollout candidate not loaded"))?;
            plans.push(SplitPlan {
                label: row.label.clone(),
                id: row.id.clone(),
                weight: row.weight as u32,
                candidate,
            });
            self.inner.rollouts.live.write().insert(row.id.clone(), live.clone());
        } else {
            self.inner.rollouts.live.write().remove(&row.id);
        }
        let candidates: Vec<Arc<VersionBase>> = entry.bases().collect();
        self.index().update(|lookup| PromptEntry::new(entry.id, entry.summary.clone(), candidates, plans, lookup));
        self.inner.rollouts.wake.notify_one();
        Ok(())
    }

    /// Loads live rollouts at start: the judge resumes where it was.
    pub(crate) async fn load_rollouts(&self) -> Result<()> {
        self.load_live_rollouts(None).await
    }

    /// Loads the live rollouts (of `prompt`, or of every prompt) from the database into
    /// the judge's list and the index, forgetting those that are no longer live (another
    /// replica ended them).
    pub(crate) async fn load_live_rollouts(&self, prompt: Option<&str>) -> Result<()> {
        let reader = &self.store().reader;
        let rows: Vec<_> =
            sql::live(reader).await?.into_iter().filter(|r| prompt.is_none_or(|p| p == r.prompt)).collect();
        let ended: Vec<Arc<Live>> = self
            .inner
            .rollouts
            .live
            .read()
            .values()
            .filter(|l| prompt.is_none_or(|p| p == l.row.prompt) && !rows.iter().any(|r| r.id == l.row.id))
            .cloned()
            .collect();
        for live in ended {
            self.inner.rollouts.live.write().remove(&live.row.id);
        }
        for row in rows {
            let phase = sql::phases(reader, &row.id).await?.len() as i64 - 1;
            let entry = self.entry(&row.prompt)?;
            let candidate = store::version(reader, entry.id, row.candidate_version)
                .await?
                .ok_or_else(|| ServiceError::internal("rollout candidate vanished"))?;
            let base = Arc::new(crate::version_base(&row.prompt, &candidate)?);
            self.prepare_includes([&base]).await?;
            self.publish_rollout(&Arc::new(Live::new(row, phase)?), Some(base))?;
        }
        Ok(())
    }

    /// Whether the judge's list has a live rollout of `prompt`.
    pub(crate) fn has_live_rollout(&self, prompt: &str) -> bool {
        self.inner.rollouts.live.read().values().any(|l| l.row.prompt == prompt)
    }

    /// The live rollout a generation names, if any (for ingest).
    pub(crate) fn live_rollout(&self, id: &str) -> Option<Arc<Live>> {
        self.inner.rollouts.live.read().get(id).cloned()
    }

    /// Tells the judge new evidence arrived.
    pub(crate) fn wake_judge(&self) {
        self.inner.rollouts.wake.notify_one();
    }

    pub async fn rollout(&self, who: &Principal, id: &str) -> Result<Rollout> {
        who.require(Action::Read)?;
        let row = sql::get(&self.store().reader, id).await?.ok_or_else(|| not_found(id))?;
        self.rollout_view(row).await
    }

    /// A prompt's rollouts, newest first.
    pub async fn rollouts(&self, who: &Principal, name: &str) -> Result<Vec<Rollout>> {
        who.require(Action::Read)?;
        let entry = self.entry(name)?;
        let mut out = Vec::new();
        for row in sql::of_prompt(&self.store().reader, entry.id, LIST_LIMIT).await? {
            out.push(self.rollout_view(row).await?);
        }
        Ok(out)
    }

    pub async fn pause_rollout(&self, who: &Principal, id: &str, reason: &str) -> Result<Rollout> {
        self.person_change(who, id, Change::Pause, reason).await
    }

    pub async fn resume_rollout(&self, who: &Principal, id: &str, reason: &str) -> Result<Rollout> {
        self.person_change(who, id, Change::Resume, reason).await
    }

    /// Moves to the next step now, without waiting for the judge (the label's rules
    /// apply: this is a decision to show the candidate to more people).
    pub async fn advance_rollout(&self, who: &Principal, id: &str, reason: &str) -> Result<Rollout> {
        self.person_change(who, id, Change::Advance, reason).await
    }

    /// Ends the rollout: the candidate's weight drops to 0, the label stays on the base.
    pub async fn abort_rollout(&self, who: &Principal, id: &str, reason: &str) -> Result<Rollout> {
        self.person_change(who, id, Change::Abort, reason).await
    }

    async fn person_change(&self, who: &Principal, id: &str, change: Change, reason: &str) -> Result<Rollout> {
        who.require(Action::Write)?;
        check_len("reason", reason, 2000)?;
        let live = self.change_rollout(who, id, change, reason, Vec::new(), None).await?;
        let row = match live {
            Some(live) => live.row.clone(),
            None => sql::get(&self.store().reader, id).await?.ok_or_else(|| not_found(id))?,
        };
        self.rollout_view(row).await
    }

    /// Applies one change in one write transaction with its audit event and verdicts.
    /// `expect` (the judge's) is the step and its start the verdicts were reached on: if a
    /// person changed the rollout meanwhile, nothing is done and `None` is returned.
    async fn change_rollout(
        &self,
        who: &Principal,
        id: &str,
        change: Change,
        reason: &str,
        verdicts: Vec<Verdict>,
        expect: Option<(i64, i64)>,
    ) -> Result<Option<Arc<Live>>> {
        let (this, who, id, reason) = (self.clone(), who.clone(), id.to_owned(), reason.to_owned());
        detached(async move {
            let mut w = this.write().await?;
            let mut row = sql::get(w.conn(), &id).await?.ok_or_else(|| not_found(&id))?;
            let status = row.status()?;
            if let Some((step, started)) = expect
                && (status != RolloutStatus::Running || row.step != step || row.step_started_at != started)
            {
                return Ok(None);
            }
            let allowed = match change {
                Change::Pause | Change::RollBack | Change::Starve => status == RolloutStatus::Running,
                Change::Resume => status == RolloutStatus::Paused,
                Change::Advance | Change::Abort => status.is_live(),
            };
            if !allowed {
                let verb = match change {
                    Change::Pause | Change::Starve => "paused",
                    Change::Resume => "resumed (only a paused rollout can)",
                    Change::Advance => "advanced",
                    Change::Abort => "aborted",
                    Change::RollBack => "rolled back",
                };
                let message = format!("rollout {id} is {}: it cannot be {verb}", status.words());
                return Err(ServiceError::Rollout { code: "rollout_state", message });
            }
            let entry = this.entry(&row.prompt)?;
            let candidate = version_row(w.conn(), &entry, row.candidate_version).await?;
            if matches!(change, Change::Advance | Change::Resume) && expect.is_none() {
                let policy = this.check_move_rules(w.conn(), &who, &entry, &row.label, &candidate).await?;
                let creator =
                    who.actor == row.created_by || (who.user_id.is_some() && who.user_id == row.creator_user_id);
                if change == Change::Advance && policy.require_approval && creator {
                    return Err(ServiceError::Forbidden(format!(
                        "'{}' needs approval: another publisher or admin must advance or resume a rollout you started",
                        row.label
                    )));
                }
            }
            let steps = row.steps()?;
            let at = time::now_us();
            let next = (row.step + 1) as usize;
            let completes = change == Change::Advance && steps.get(next) == Some(&100);
            let failing: Vec<&Verdict> = verdicts.iter().filter(|v| v.outcome != Outcome::Pass).collect();
            match change {
                Change::Pause | Change::Starve => {
                    row.status = RolloutStatus::Paused.as_str().into();
                    row.note = Some(match change {
                        Change::Starve => format!(
                            "paused: step {} did not get enough calls to judge in {} seconds ({}); resume it, advance it or abort it",
                            row.step + 1,
                            PATIENCE as i64 * row.step_seconds,
                            words(&failing)
                        ),
                        _ => format!("paused by {}{}", who.actor, because(&reason)),
                    });
                }
                Change::Resume => {
                    sql::start_phase(w.conn(), &id, row.step, row.weight, at, &who.actor).await?;
                    row.status = RolloutStatus::Running.as_str().into();
                    row.step_started_at = at;
                    row.note = None;
                }
                Change::Advance if completes => {
                    let why = format!("rollout {id} completed{}", because(&row.reason));
                    let cause = Some(json!({"rollout": id}));
                    this.write_move(&mut w, &who, &entry, &row.label, &candidate, &why, cause, at).await?;
                    sql::end_phase(w.conn(), &id, at).await?;
                    row.status = RolloutStatus::Completed.as_str().into();
                    row.step = next as i64;
                    row.weight = 100;
                    row.ended_at = Some(at);
                    row.ended_by = Some(who.actor.clone());
                    row.note = None;
                }
                Change::Advance => {
                    let weight = i64::from(*steps.get(next).ok_or_else(|| ServiceError::internal("step past the plan"))?);
                    sql::start_phase(w.conn(), &id, next as i64, weight, at, &who.actor).await?;
                    row.status = RolloutStatus::Running.as_str().into();
                    row.step = next as i64;
                    row.weight = weight;
                    row.step_started_at = at;
                    row.note = None;
                }
                Change::Abort | Change::RollBack => {
                    sql::end_phase(w.conn(), &id, at).await?;
                    row.status = if change == Change::Abort { RolloutStatus::Aborted } else { RolloutStatus::RolledBack }
                        .as_str()
                        .into();
                    row.weight = 0;
                    row.ended_at = Some(at);
                    row.ended_by = Some(who.actor.clone());
                    row.note = Some(if change == Change::Abort {
                        format!("aborted by {}{}", who.actor, because(&reason))
                    } else {
                        format!("rolled back at step {}: {}", row.step + 1, words(&failing))
                    });
                }
            }
            for v in &verdicts {
                sql::insert_verdict(w.conn(), &id, at, v).await?;
            }
            sql::update(w.conn(), &row).await?;
            let detail = json!({"rollout": id, "step": row.step, "weight": row.weight,
                                "base_version": row.base_version, "status": row.status,
                                "reason": (!reason.is_empty()).then_some(&reason), "note": row.note,
                                "verdicts": verdicts});
            let e = NewEvent {
                actor: &who.actor,
                action: change.action(completes),
                prompt: Some(&row.prompt),
                version: Some(row.candidate_version),
                label: Some(&row.label),
                detail,
            };
            w.audit(at, e).await?;
            w.commit().await?;
            let phase = sql::phases(&this.store().reader, &id).await?.len() as i64 - 1;
            let live = Arc::new(Live::new(row, phase)?);
            if completes {
                this.publish_move(&entry, &live.row.label, &candidate, &who.actor, at)?;
            }
            this.publish_rollout(&live, None)?;
            Ok(Some(live))
        })
        .await
    }

    /// A rollout with its phases, verdicts and each arm's figures.
    async fn rollout_view(&self, row: RolloutRow) -> Result<Rollout> {
        let reader = &self.store().reader;
        let phases = sql::phases(reader, &row.id).await?;
        let verdicts = sql::verdicts(reader, &row.id).await?;
        let evidence = self.evidence(&row.id).await?;
        let figures = |phase: i64, arm: Arm| {
            evidence.get(&(phase, arm.as_str().to_owned())).map(Evidence::figures).unwrap_or_default()
        };
        let history = phases
            .iter()
            .map(|p| StepView {
                step: p.step,
                weight: p.weight as u32,
                started_at: time::format_us(p.started_at),
                ended_at: p.ended_at.map(time::format_us),
                base: figures(p.phase, Arm::Base),
                candidate: figures(p.phase, Arm::Candidate),
            })
            .collect();
        let treader = &self.telemetry_store().reader;
        let mut arms = Arms::default();
        let mut merged: HashMap<String, crate::store::telemetry::Rollup> = HashMap::new();
        for (arm, _, rollup) in telemetry_sql::rollout_rollups(treader, &row.prompt, &row.id).await? {
            merged.entry(arm).or_default().merge(&rollup);
        }
        for (arm, version) in [(Arm::Base, row.base_version), (Arm::Candidate, row.candidate_version)] {
            let m = merged.get(arm.as_str()).map(|r| version_metrics(version, r));
            let slot = if arm == Arm::Candidate { &mut arms.candidate } else { &mut arms.base };
            *slot = m.unwrap_or_else(|| domain::telemetry::VersionMetrics { version, ..Default::default() });
        }
        for (arm, name, count, sum) in telemetry_sql::rollout_score_totals(treader, &row.prompt, &row.id).await? {
            let slot = if arm == Arm::Candidate.as_str() { &mut arms.candidate } else { &mut arms.base };
            slot.scores.insert(name, ScoreStat { count, mean: if count > 0 { sum / count as f64 } else { 0.0 } });
        }
        let status = row.status()?;
        let judge_at = (status == RolloutStatus::Running)
            .then(|| time::format_us(row.step_started_at + row.step_seconds * 1_000_000));
        Ok(Rollout {
            status,
            steps: row.steps()?,
            guards: row.guards()?,
            step: row.step,
            weight: row.weight as u32,
            step_seconds: row.step_seconds as u64,
            min_samples: row.min_samples as u64,
            step_started_at: time::format_us(row.step_started_at),
            judge_at,
            arms,
            history,
            verdicts,
            created_at: time::format_us(row.created_at),
            ended_at: row.ended_at.map(time::format_us),
            ended_by: row.ended_by,
            id: row.id,
            prompt: row.prompt,
            label: row.label,
            base_version: row.base_version,
            candidate_version: row.candidate_version,
            created_by: row.created_by,
            reason: row.reason,
            note: row.note,
        })
    }

    /// A rollout's evidence by (phase, arm).
    async fn evidence(&self, id: &str) -> Result<HashMap<(i64, String), Evidence>> {
        let (figures, scores) = telemetry_sql::rollout_evidence(&self.telemetry_store().reader, id).await?;
        let mut out: HashMap<(i64, String), Evidence> = HashMap::new();
        for (phase, arm, rollup) in &figures {
            out.entry((*phase, arm.clone())).or_default().add(rollup);
        }
        for s in &scores {
            out.entry((s.phase, s.arm.clone())).or_default().add_score(s);
        }
        Ok(out)
    }

    /// Judges every running rollout: a step that is due, and an interim look at one that
    /// is not (which can only roll back); what it did is logged.
    pub async fn judge_rollouts(&self) -> Result<()> {
        let now = time::now_us();
        let running: Vec<Arc<Live>> =
            self.inner.rollouts.live.read().values().filter(|l| l.status == RolloutStatus::Running).cloned().collect();
        // One rollout that cannot be judged (its error is logged) does not hold up the others.
        let mut first_error = None;
        for live in running {
            if let Err(e) = self.judge_one(&live, now).await {
                tracing::error!(rollout = %live.row.id, error = %e, "judging a rollout failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn judge_one(&self, live: &Live, now: i64) -> Result<()> {
        let due = now >= live.deadlines().0;
        let row = &live.row;
        let phase = live.phase;
        let evidence = self.evidence(&row.id).await?;
        let empty = Evidence::default();
        let base = evidence.get(&(phase, Arm::Base.as_str().to_owned())).unwrap_or(&empty);
        let candidate = evidence.get(&(phase, Arm::Candidate.as_str().to_owned())).unwrap_or(&empty);
        let at = time::format_us(now);
        let verdict = |guard: &str, f: judge::Finding| Verdict {
            at: at.clone(),
            step: row.step,
            guard: guard.to_owned(),
            base: f.base,
            candidate: f.candidate,
            outcome: f.outcome,
            p_value: f.p_value,
            message: format!("step {}: {}", row.step + 1, f.message),
        };
        let mut verdicts = Vec::new();
        let min = row.min_samples;
        if !due {
            if base.count < min || candidate.count < min {
                return Ok(());
            }
            for guard in &live.guards {
                let finding = judge::judge(guard, base, candidate, judge::INTERIM);
                if finding.outcome == Outcome::Fail {
                    let mut v = verdict(&guard.metric, finding);
                    v.message = format!("{} (before the step's end: the evidence was already overwhelming)", v.message);
                    verdicts.push(v);
                }
            }
            if verdicts.is_empty() {
                return Ok(());
            }
        } else if base.count < min || candidate.count < min {
            verdicts.push(verdict(
                "samples",
                judge::Finding {
                    base: Some(base.count as f64),
                    candidate: Some(candidate.count as f64),
                    outcome: Outcome::Insufficient,
                    p_value: None,
                    message: format!(
                        "{} calls on the candidate and {} on the base; {min} each are needed",
                        candidate.count, base.count
                    ),
                },
            ));
        } else {
            let looks = live.guards.len() * (live.steps.len() - 1);
            let alpha = judge::FINAL / looks.max(1) as f64;
            for guard in &live.guards {
                verdicts.push(verdict(&guard.metric, judge::judge(guard, base, candidate, alpha)));
            }
        }
        let change = if verdicts.iter().any(|v| v.outcome == Outcome::Fail) {
            Change::RollBack
        } else if verdicts.iter().any(|v| v.outcome == Outcome::Insufficient) {
            if now < live.deadlines().1 {
                return Ok(());
            }
            Change::Starve
        } else {
            Change::Advance
        };
        let system = Principal::system();
        let expect = Some((row.step, row.step_started_at));
        if let Some(done) = self.change_rollout(&system, &row.id, change, "", verdicts, expect).await? {
            tracing::info!(rollout = %row.id, prompt = %row.prompt, label = %row.label, status = %done.row.status,
                           step = done.row.step, weight = done.row.weight, "rollout judged");
        }
        Ok(())
    }

    /// Judges rollouts until the process ends (run by `serve`): every second, at a step's
    /// deadline, and at once when new evidence or a rollout change arrives.
    pub async fn run_rollout_judge(self) {
        loop {
            let now = time::now_us();
            let next_deadline = (self.inner.rollouts.live.read().values())
                .filter(|l| l.status == RolloutStatus::Running)
                .map(|l| l.deadlines().0 - now)
                .filter(|us| *us > 0)
                .min();
            let wait = next_deadline
                .map_or(Duration::from_secs(1), |us| Duration::from_micros(us as u64).min(Duration::from_secs(1)));
            let _ = tokio::time::timeout(wait, self.inner.rollouts.wake.notified()).await;
            if self.holds("rollout-judge").await {
                // Each failure was logged where it happened.
                let _ = self.judge_rollouts().await;
            }
        }
    }

    /// What a label served at instant `at`, if a rollout was live then: (rollout id,
    /// candidate version, weight).
    pub(crate) async fn rollout_at(
        &self,
        entry: &PromptEntry,
        label: &str,
        at: i64,
    ) -> Result<Option<(String, i64, u32)>> {
        Ok(sql::serving_at(&self.store().reader, entry.id, label, at)
            .await?
            .filter(|(_, _, weight)| *weight > 0)
            .map(|(id, candidate, weight)| (id, candidate, weight as u32)))
    }
}

/// A label where a rollout may start: it points at a version other than the candidate,
/// and no rollout is live on it. Returns the base version.
async fn check_startable(conn: &mut AnyConnection, entry: &PromptEntry, label: &str, candidate: i64) -> Result<i64> {
    let name = &entry.summary.name;
    crate::labels::refuse_during_rollout(conn, entry, label).await?;
    // The index is exact here: the caller holds the write lock.
    match entry.label(label) {
        None => Err(ServiceError::rule(
            "label_unset",
            format!(
                "'{label}' of '{name}' points at no version yet: move it to a first version, then roll out the next one gradually"
            ),
        )),
        Some(v) if v == candidate => {
            Err(ServiceError::rule("already_live", format!("'{label}' of '{name}' already points at version {v}")))
        }
        Some(v) => Ok(v),
    }
}

/// The verdicts' messages without their "step N: " (the note says the step once).
fn words(verdicts: &[&Verdict]) -> String {
    let strip =
        |m: &str| m.split_once(": ").filter(|(h, _)| h.starts_with("step ")).map_or(m, |(_, rest)| rest).to_owned();
    verdicts.iter().map(|v| strip(&v.message)).collect::<Vec<_>>().join("; ")
}

fn because(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(": {reason}") }
}
