//! Labels: release channels moved by promotion and rollback, with their history.

use std::sync::Arc;

use domain::access::Action;
use domain::model::{LabelOutcome, LabelsView, MoveLabel, MovedLabel, RequestStatus};
use domain::names::{self, LATEST};
use serde_json::json;

use crate::index::PromptEntry;
use crate::store::{self, LabelMoveRow, NewEvent};
use crate::{Principal, Registry, Result, ServiceError, check_len, detached, time};

/// Label history entries returned with the labels.
const HISTORY_LIMIT: i64 = 1000;

impl Registry {
    /// Points `label` at a version (promote, or roll back to an older one), under the
    /// label's policy: protected labels need a publisher, an admin or an admin-scope key;
    /// an eval gate needs a good enough run on the exact version; with approval required
    /// the move becomes a request for another publisher or admin to decide.
    pub async fn move_label(&self, who: &Principal, name: &str, label: &str, req: MoveLabel) -> Result<LabelOutcome> {
        who.require(Action::Write)?;
        names::validate_label(label)?;
        if label == LATEST {
            return Err(ServiceError::rule(
                "latest_is_automatic",
                "`latest` always points at the newest version and cannot be moved; save a new version instead",
            ));
        }
        check_len("reason", &req.reason, 2000)?;
        let entry = self.entry(name)?;
        let policy = store::governance::policy(&self.store().reader, label).await?;
        if policy.protected {
            who.require(Action::MoveProtectedLabel)?;
        }
        let row = store::version(&self.store().reader, entry.id, req.version)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("'{name}' has no version {}", req.version)))?;
        if let Some(gate) = &policy.require_eval {
            self.check_gate(entry.id, name, req.version, &row.hash, gate).await?;
        }
        if policy.require_approval && entry.summary.labels.get(label) != Some(&req.version) {
            return Ok(LabelOutcome::Requested(Box::new(self.open_request(who, name, label, &req).await?)));
        }
        Ok(LabelOutcome::Moved(self.apply_move(who, name, label, req, None).await?))
    }

    /// Writes a label move (and closes the request that asked for it, if any) in one
    /// transaction, then updates the index.
    pub(crate) async fn apply_move(
        &self,
        who: &Principal,
        name: &str,
        label: &str,
        req: MoveLabel,
        request: Option<(String, String)>,
    ) -> Result<MovedLabel> {
        let (this, who, name, label) = (self.clone(), who.clone(), name.to_owned(), label.to_owned());
        detached(async move {
            let mut w = this.store().write().await?;
            if store::label_is_protected(&mut *w.tx, &label).await? {
                who.require(Action::MoveProtectedLabel)?;
            }
            let entry = this.entry(&name)?;
            let row = store::version(&mut *w.tx, entry.id, req.version)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("'{name}' has no version {}", req.version)))?;
            let at = time::now_us();
            if let Some((id, comment)) = &request {
                let comment = Some(comment.as_str()).filter(|c| !c.is_empty());
                if !store::governance::decide(&mut w.tx, id, RequestStatus::Approved, &who.actor, comment, at).await? {
                    return Err(ServiceError::Closed(format!("request {id} is no longer pending")));
                }
                let detail = json!({"request": id, "comment": comment});
                let e = NewEvent {
                    actor: &who.actor,
                    action: "label.request.approved",
                    prompt: Some(&name),
                    version: Some(req.version),
                    label: Some(&label),
                    detail,
                };
                store::append_event(&mut w.tx, at, e).await?;
            }
            let previous_version = entry.summary.labels.get(&label).copied();
            if previous_version == Some(req.version) {
                w.tx.commit().await?;
                return Ok(MovedLabel { label, version: req.version, previous_version });
            }
            let change = LabelMoveRow {
                prompt_id: entry.id,
                label: label.clone(),
                version: req.version,
                previous_version,
                actor: who.actor.clone(),
                reason: req.reason.clone(),
                at,
            };
            store::insert_label_move(&mut w.tx, &change).await?;
            store::touch_prompt(&mut w.tx, entry.id, at, &who.actor).await?;
            let detail = json!({"reason": req.reason, "previous_version": previous_version, "hash": row.hash,
                                "request": request.as_ref().map(|(id, _)| id)});
            store::append_event(
                &mut w.tx,
                at,
                NewEvent {
                    actor: &who.actor,
                    action: "label.moved",
                    prompt: Some(&name),
                    version: Some(req.version),
                    label: Some(&label),
                    detail,
                },
            )
            .await?;
            w.tx.commit().await?;
            let target = match entry.served.get(&req.version) {
                Some(s) => s.base.clone(),
                None => Arc::new(crate::version_base(&name, &row)?),
            };
            let mut summary = entry.summary.clone();
            summary.labels.insert(label.clone(), req.version);
            summary.updated_at = time::format_us(at);
            summary.updated_by = who.actor.clone();
            let candidates = entry.served.values().map(|s| s.base.clone()).chain([target]);
            this.index().put(PromptEntry::new(entry.id, summary, candidates));
            Ok(MovedLabel { label, version: req.version, previous_version })
        })
        .await
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
        Ok(LabelsView { labels, history })
    }
}
