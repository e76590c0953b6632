//! Labels: release channels moved by promotion and rollback, with their history.

use std::collections::HashMap;
use std::sync::Arc;

use domain::access::Action;
use domain::compose::{IncludeRef, Reference};
use domain::model::{LabelOutcome, LabelPolicy, LabelsView, MoveLabel, MovedLabel};
use domain::names::{self, LATEST};
use domain::rollout::WeightChange;
use domain::vocabulary::AuditAction;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use crate::index::{PromptEntry, VersionBase};
use crate::store::{self, LabelMoveRow, NewEvent, VersionRow, WriteGuard};
use crate::{Principal, Registry, Result, ServiceError, check_len, detached, time};

/// A version of the entry's prompt, read in the caller's transaction.
pub(crate) async fn version_row(conn: &mut AnyConnection, entry: &PromptEntry, version: i64) -> Result<VersionRow> {
    store::version(conn, entry.id, version)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("'{}' has no version {version}", entry.summary.name)))
}

/// A label a person may move: a valid name, and not `latest`.
fn movable(label: &str) -> Result<()> {
    names::validate_label(label)?;
    if label == LATEST {
        return Err(ServiceError::rule(
            "latest_is_automatic",
            "`latest` always points at the newest version and cannot be moved; save a new version instead",
        ));
    }
    Ok(())
}

/// Label history entries returned with the labels.
const HISTORY_LIMIT: i64 = 1000;

/// A label under a live rollout is moved by the rollout only (and gets no second one).
pub(crate) async fn refuse_during_rollout(conn: &mut AnyConnection, entry: &PromptEntry, label: &str) -> Result<()> {
    match store::rollouts::live_on(conn, entry.id, label).await? {
        Some(rollout) => Err(ServiceError::Rollout {
            code: "rollout_running",
            message: format!(
                "rollout {} is moving '{label}' of '{}' to version {}: one rollout at a time, and no move by hand meanwhile; abort it, or let it finish, first",
                rollout.id, entry.summary.name, rollout.candidate_version
            ),
        }),
        None => Ok(()),
    }
}

impl Registry {
    /// Points `label` at a version (promote, or roll back to an older one), under the
    /// label's policy: protected labels need a publisher, an admin or an admin-scope key;
    /// an eval gate needs a good enough run on the exact version; with approval required
    /// the move becomes a request for another publisher or admin to decide. The policy is
    /// read inside the write transaction, so a policy changed at the same moment is seen.
    pub async fn move_label(&self, who: &Principal, name: &str, label: &str, req: MoveLabel) -> Result<LabelOutcome> {
        who.require(Action::Write)?;
        movable(label)?;
        check_len("reason", &req.reason, 2000)?;
        self.known(name).await?;
        let (this, who, name, label) = (self.clone(), who.clone(), name.to_owned(), label.to_owned());
        detached(async move {
            let mut w = this.write_on(&name).await?;
            let entry = this.entry(&name)?;
            let row = version_row(w.conn(), &entry, req.version).await?;
            refuse_during_rollout(w.conn(), &entry, &label).await?;
            let policy = this.check_move_rules(w.conn(), &who, &entry, &label, &row).await?;
            this.check_label_includes(&entry, &label, &row).await?;
            if policy.require_approval && entry.summary.labels.get(&label) != Some(&req.version) {
                let request = this.insert_request(&mut w, &who, &entry, &label, &req, None, None).await?;
                w.commit().await?;
                return Ok(LabelOutcome::Requested(Box::new(request)));
            }
            let at = time::now_us();
            let previous_version = this.write_move(&mut w, &who, &entry, &label, &row, &req.reason, None, at).await?;
            w.end().await?; // nothing to write when the label points there already
            this.publish_move(&entry, &label, &row, &who.actor, at)?;
            Ok(LabelOutcome::Moved(MovedLabel { label, version: req.version, previous_version }))
        })
        .await
    }

    /// Checks, writing nothing, that each of `labels` of `name` may move to `version`
    /// (`None`: a version about to be saved, which has no evaluation run yet), so that a
    /// caller moving several labels one by one (Langfuse's create and label update)
    /// refuses them all before it writes anything. A label that needs approval passes:
    /// its move opens a request.
    pub async fn check_label_moves(
        &self,
        who: &Principal,
        name: &str,
        version: Option<i64>,
        labels: &[&str],
    ) -> Result<()> {
        who.require(Action::Write)?;
        for label in labels {
            movable(label)?;
        }
        let entry = self.index().get(name);
        let mut conn = self.store().reader.acquire().await?;
        for label in labels {
            if let Some(entry) = &entry {
                refuse_during_rollout(&mut conn, entry, label).await?;
            }
            match (&entry, version) {
                (Some(entry), Some(version)) => {
                    let row = version_row(&mut conn, entry, version).await?;
                    self.check_move_rules(&mut conn, who, entry, label, &row).await?;
                    self.check_label_includes(entry, label, &row).await?;
                }
                _ => {
                    let policy = store::governance::policy(&mut *conn, label).await?;
                    if policy.protected {
                        who.require(Action::MoveProtectedLabel)?;
                    }
                    if let Some(gate) = policy.require_eval {
                        let message = format!(
                            "'{label}' needs an evaluation run of the version it moves to, and a new version has none: save the version without '{label}', run the suite '{}' on it, then move the label",
                            gate.suite
                        );
                        let (suite, min_pass_rate) = (gate.suite, gate.min_pass_rate);
                        return Err(ServiceError::EvalGate { suite, min_pass_rate, best_pass_rate: None, best_run: None, message });
                    }
                }
            }
        }
        Ok(())
    }

    /// The label's rules for a move of `label` to `row`, read and checked inside the
    /// caller's write transaction: protected, and the eval gate. Returns the policy (the
    /// caller decides what approval means for it).
    pub(crate) async fn check_move_rules(
        &self,
        conn: &mut AnyConnection,
        who: &Principal,
        entry: &PromptEntry,
        label: &str,
        row: &VersionRow,
    ) -> Result<LabelPolicy> {
        let policy = store::governance::policy(&mut *conn, label).await?;
        if policy.protected {
            who.require(Action::MoveProtectedLabel)?;
        }
        if let Some(gate) = &policy.require_eval {
            self.check_eval_gate(conn, entry, label, row, gate).await?;
        }
        Ok(policy)
    }

    /// A label's eval gate for a move to `row`. On a label others include, what they
    /// serve changes too, so an impact check of the candidate stands in for the prompt's
    /// own run.
    pub(crate) async fn check_eval_gate(
        &self,
        conn: &mut AnyConnection,
        entry: &PromptEntry,
        label: &str,
        row: &VersionRow,
        gate: &domain::model::EvalGate,
    ) -> Result<()> {
        let dependents = self.index().affected(&entry.summary.name, label).len();
        if dependents > 0 {
            self.check_impact_gate(conn, entry, row.version, gate, dependents).await
        } else {
            self.check_gate(conn, entry.id, &entry.summary.name, row.version, &row.hash, gate).await
        }
    }

    /// The prompts that serve `label` of `name` through an include, each with its
    /// labels that do: what moving that label changes besides `name`.
    pub fn affected_by(&self, who: &Principal, name: &str, label: &str) -> Result<Vec<(String, Vec<String>)>> {
        who.require(Action::Read)?;
        self.entry(name)?;
        Ok(self.index().affected(name, label))
    }

    /// Checks that `row` composes with `label` pointing at it, and so does every version
    /// served through that label: a label move must not close a circle of includes, nor
    /// nest a prompt that includes it more than ten levels deep.
    pub(crate) async fn check_label_includes(&self, entry: &PromptEntry, label: &str, row: &VersionRow) -> Result<()> {
        let name = &entry.summary.name;
        let target = crate::version_base(name, row)?;
        let moved = IncludeRef { name: name.clone(), reference: Reference::Label(label.to_owned()) };
        let key = moved.to_string();
        let overrides = HashMap::from([(moved, target.source())]);
        self.check_includes(&target, &overrides).await?;
        for (dependent, labels) in self.index().affected(name, label) {
            let Some(dependent) = self.index().get(&dependent) else { continue };
            let versions: std::collections::BTreeSet<i64> = labels.iter().filter_map(|l| dependent.label(l)).collect();
            for version in versions {
                let Some(served) = dependent.served.get(&version) else { continue };
                if matches!(&served.composition, Ok(Some(c)) if c.sources.contains_key(&key)) {
                    self.check_includes(&served.base, &overrides).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes a label move and its audit event, in the caller's transaction. Returns the
    /// version the label pointed at before (nothing is written when it already points
    /// at `row`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_move(
        &self,
        w: &mut WriteGuard<'_>,
        who: &Principal,
        entry: &PromptEntry,
        label: &str,
        row: &VersionRow,
        reason: &str,
        cause: Option<Value>,
        at: i64,
    ) -> Result<Option<i64>> {
        let name = &entry.summary.name;
        let previous_version = entry.summary.labels.get(label).copied();
        if previous_version == Some(row.version) {
            return Ok(previous_version);
        }
        let change = LabelMoveRow {
            prompt_id: entry.id,
            label: label.to_owned(),
            version: row.version,
            previous_version,
            actor: who.actor.clone(),
            reason: reason.to_owned(),
            at,
        };
        store::insert_label_move(w.conn(), &change).await?;
        store::touch_prompt(w.conn(), entry.id, at, &who.actor).await?;
        let mut detail = json!({"reason": reason, "previous_version": previous_version, "hash": row.hash});
        // What else now serves something new: prompts that include this label.
        let affected = self.index().affected(name, label);
        if !affected.is_empty() {
            detail["dependents"] =
                affected.into_iter().map(|(prompt, labels)| json!({"prompt": prompt, "labels": labels})).collect();
        }
        if let (Some(Value::Object(cause)), Value::Object(d)) = (cause, &mut detail) {
            d.extend(cause);
        }
        let e = NewEvent {
            actor: &who.actor,
            action: AuditAction::LabelMoved,
            prompt: Some(name),
            version: Some(row.version),
            label: Some(label),
            detail,
        };
        w.audit(at, e).await?;
        Ok(previous_version)
    }

    /// Puts a committed label move into the index (the caller still holds the write
    /// lock). A rollout on that label ends with it.
    pub(crate) fn publish_move(
        &self,
        entry: &PromptEntry,
        label: &str,
        row: &VersionRow,
        actor: &str,
        at: i64,
    ) -> Result<()> {
        let name = &entry.summary.name;
        let target = match entry.served.get(&row.version) {
            Some(s) => s.base.clone(),
            None => Arc::new(crate::version_base(name, row)?),
        };
        let mut summary = entry.summary.clone();
        summary.labels.insert(label.to_owned(), row.version);
        summary.updated_at = time::format_us(at);
        summary.updated_by = actor.to_owned();
        let mut plans = entry.split_plans();
        plans.retain(|p| p.label != label);
        let candidates: Vec<Arc<VersionBase>> =
            entry.bases().chain(plans.iter().map(|p| p.candidate.clone())).chain([target]).collect();
        self.index().update(|lookup| PromptEntry::new(entry.id, summary, candidates, plans, lookup));
        Ok(())
    }

    /// Where every label points now, and the history of moves, newest first.
    pub async fn labels(&self, who: &Principal, name: &str) -> Result<LabelsView> {
        who.require(Action::Read)?;
        let entry = self.entry(name)?;
        let mut labels = entry.summary.labels.clone();
        labels.insert(LATEST.to_owned(), entry.summary.latest_version);
        let history = store::label_history(&self.store().reader, entry.id, HISTORY_LIMIT)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        let rollouts = store::rollouts::weight_history(&self.store().reader, entry.id, HISTORY_LIMIT)
            .await?
            .into_iter()
            .map(|w| WeightChange {
                rollout: w.rollout,
                label: w.label,
                base_version: w.base_version,
                candidate_version: w.candidate_version,
                weight: w.weight as u32,
                at: time::format_us(w.started_at),
                until: w.ended_at.map(time::format_us),
                actor: w.actor,
                reason: w.reason,
            })
            .collect();
        Ok(LabelsView { labels, history, rollouts })
    }
}
