//! Impact checks: before a shared prompt's label moves, its candidate version is run
//! against every suite of every prompt that includes it by label, beside a run of what
//! those prompts serve now, so a regression shows before anyone is served it. When the
//! label has an eval gate, moving it on an included prompt needs a passing impact check.

use std::collections::HashMap;
use std::sync::Arc;

use domain::access::Action;
use domain::compose::{IncludeRef, Reference};
use domain::model::{EvalGate, Impact, ImpactRow, RunBrief};
use domain::names::{LATEST, STABLE};
use domain::vocabulary::AuditAction;
use serde_json::json;
use sqlx::AnyConnection;
use tokio::sync::Semaphore;

use crate::compose::evaluated;
use crate::index::{PromptEntry, ServedVersion};
use crate::store::{NewEvent, impacts as sql};
use crate::{Principal, Registry, Result, ServiceError, time};

impl Registry {
    /// Starts an impact check of `version` of `name`: for every prompt that serves `name`
    /// through a label include, each of its suites is run twice, as served now and with
    /// `version` in place of every label of `name` it includes.
    pub async fn start_impact(&self, who: &Principal, name: &str, version: i64) -> Result<Impact> {
        who.require(Action::Write)?;
        let entry = self.entry(name)?;
        let candidate = self.version_of(&entry, version).await?;
        if candidate.base.content.body.template().is_none() {
            return Err(ServiceError::rule("not_includable", format!("'{name}' is a chat prompt: only text prompts are included")));
        }
        let id = crate::random_id("imp")?;
        let at = time::now_us();
        let concurrency = self.eval_settings().default_concurrency;
        let permits = Arc::new(Semaphore::new(concurrency as usize));
        let mut rows = Vec::new();
        for (dependent, label, served) in self.serving_dependents(name) {
            let overrides: HashMap<IncludeRef, _> = followed_refs(&served, name)
                .into_iter()
                .map(|target| (target, candidate.base.source()))
                .collect();
            let with_candidate = self.composition_of(&served.base, None, &overrides).await?;
            let suites = self.suites(who, &dependent).await?;
            for suite in suites {
                let mut row = sql::ImpactRunRow {
                    dependent: dependent.clone(),
                    dependent_version: served.base.view.version,
                    label: label.clone(),
                    suite: suite.name.clone(),
                    baseline_run: None,
                    candidate_run: None,
                    error: None,
                };
                let started: Result<(String, String)> = async {
                    let composed = with_candidate.clone()?;
                    let view = &served.base.view;
                    let now = evaluated(&served.base.content, served.composed()?);
                    let changed = evaluated(&served.base.content, composed.as_ref());
                    let changed_hash = composed.as_ref().map_or(view.hash.clone(), |c| c.resolved_hash.clone());
                    let plan_now = self.plan_for(who, &dependent, view, now, view.hash.clone(), &suite.name, None).await?;
                    let plan_changed =
                        self.plan_for(who, &dependent, view, changed, changed_hash, &suite.name, None).await?;
                    let a = self.launch(who, plan_now, concurrency, permits.clone(), Some(&id)).await?;
                    let b = self.launch(who, plan_changed, concurrency, permits.clone(), Some(&id)).await?;
                    Ok((a.id, b.id))
                }
                .await;
                match started {
                    Ok((a, b)) => (row.baseline_run, row.candidate_run) = (Some(a), Some(b)),
                    Err(ServiceError::Internal(m)) => return Err(ServiceError::Internal(m)),
                    Err(e) => row.error = Some(e.to_string()),
                }
                rows.push(row);
            }
        }
        let impact = sql::ImpactRow { id: id.clone(), prompt: name.to_owned(), version, created_by: who.actor.clone(), created_at: at };
        let mut w = self.write().await?;
        sql::insert_impact(w.conn(), &impact, entry.id, &rows).await?;
        let detail = json!({"impact": id, "runs": rows.len() * 2,
                            "dependents": rows.iter().map(|r| r.dependent.as_str()).collect::<std::collections::BTreeSet<_>>()});
        let e = NewEvent {
            actor: &who.actor,
            action: AuditAction::ImpactStarted,
            prompt: Some(name),
            version: Some(version),
            label: None,
            detail,
        };
        w.audit(at, e).await?;
        w.commit().await?;
        drop(w);
        self.impact(who, &id).await
    }

    /// For each prompt that includes `name` by label, the version to check: the one its
    /// `stable` serves if that includes `name`, else its first other label that does
    /// (`latest` last).
    fn serving_dependents(&self, name: &str) -> Vec<(String, String, Arc<ServedVersion>)> {
        let mut out = Vec::new();
        for dependent in self.index().dependents(name) {
            let Some(entry) = self.index().get(&dependent) else { continue };
            if let Some((label, served)) = labels_in_order(&entry)
                .into_iter()
                .filter_map(|(label, v)| entry.served.get(&v).map(|s| (label, s.clone())))
                .find(|(_, s)| !followed_refs(s, name).is_empty())
            {
                out.push((dependent, label, served));
            }
        }
        out
    }

    /// An impact check with its runs as they are now.
    pub async fn impact(&self, who: &Principal, id: &str) -> Result<Impact> {
        who.require(Action::Read)?;
        let mut conn = self.store().reader.acquire().await?;
        let row = sql::impact(&mut *conn, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no impact check '{id}'")))?;
        impact_view(&mut conn, row).await
    }

    /// The eval gate of a label on a prompt others include through it: a finished impact
    /// check of exactly this version in which every dependent with the gate's suite
    /// passes it with the candidate.
    pub(crate) async fn check_impact_gate(
        &self,
        conn: &mut AnyConnection,
        entry: &PromptEntry,
        version: i64,
        gate: &EvalGate,
        dependents: usize,
    ) -> Result<()> {
        let name = &entry.summary.name;
        for row in sql::impacts_of(&mut *conn, entry.id, version).await? {
            let impact = impact_view(conn, row).await?;
            let gated: Vec<&ImpactRow> = impact.runs.iter().filter(|r| r.suite == gate.suite).collect();
            let passes = |r: &&ImpactRow| {
                r.candidate.as_ref().is_some_and(|c| c.status != "running" && c.status != "queued" && c.pass_rate + 1e-9 >= gate.min_pass_rate)
            };
            if impact.status == "finished" && gated.iter().all(passes) {
                return Ok(());
            }
        }
        Err(ServiceError::EvalGate {
            suite: gate.suite.clone(),
            min_pass_rate: gate.min_pass_rate,
            best_pass_rate: None,
            best_run: None,
            message: format!(
                "{dependents} other prompt(s) include this label of '{name}', so moving it changes what they serve: run an impact check of version {version} and have every one of them that has the suite '{}' pass it at {:.0}% or more first",
                gate.suite,
                gate.min_pass_rate * 100.0
            ),
        })
    }
}

/// The label refs of `name` that what `served` serves includes (at any depth).
fn followed_refs(served: &ServedVersion, name: &str) -> Vec<IncludeRef> {
    let Ok(Some(c)) = &served.composition else { return Vec::new() };
    c.sources
        .keys()
        .filter_map(|k| IncludeRef::parse(k).ok())
        .filter(|r| r.name == name && matches!(r.reference, Reference::Label(_)))
        .collect()
}

/// A prompt's labels with their versions: `stable` first, `latest` last.
fn labels_in_order(entry: &PromptEntry) -> Vec<(String, i64)> {
    let mut labels: Vec<(String, i64)> = entry.summary.labels.iter().map(|(l, v)| (l.clone(), *v)).collect();
    labels.sort_by_key(|(l, _)| l != STABLE);
    labels.push((LATEST.to_owned(), entry.summary.latest_version));
    labels
}

async fn impact_view(conn: &mut AnyConnection, row: sql::ImpactRow) -> Result<Impact> {
    let mut runs = Vec::new();
    let mut running = false;
    for r in sql::impact_runs(&mut *conn, &row.id).await? {
        let now = brief(conn, r.baseline_run.as_deref()).await?;
        let candidate = brief(conn, r.candidate_run.as_deref()).await?;
        running |= [&now, &candidate].iter().any(|b| b.as_ref().is_some_and(|b| matches!(b.status.as_str(), "queued" | "running")));
        let regression = match (&now, &candidate) {
            (Some(a), Some(b)) => b.pass_rate + 1e-9 < a.pass_rate || (a.passed && !b.passed),
            _ => false,
        };
        runs.push(ImpactRow {
            dependent: r.dependent,
            version: r.dependent_version,
            label: r.label,
            suite: r.suite,
            now,
            candidate,
            regression,
            error: r.error,
        });
    }
    runs.sort_by_key(|r| !r.regression);
    let passed = !running && runs.iter().all(|r| r.error.is_none() && r.candidate.as_ref().is_some_and(|c| c.passed));
    Ok(Impact {
        id: row.id,
        prompt: row.prompt,
        version: row.version,
        status: if running { "running" } else { "finished" }.into(),
        passed,
        created_by: row.created_by,
        created_at: time::format_us(row.created_at),
        runs,
    })
}

async fn brief(conn: &mut AnyConnection, id: Option<&str>) -> Result<Option<RunBrief>> {
    let Some(id) = id else { return Ok(None) };
    let Some((status, passed, total)) = sql::run_brief(&mut *conn, id).await? else { return Ok(None) };
    let pass_rate = if total > 0 { passed as f64 / total as f64 } else { 0.0 };
    Ok(Some(RunBrief { id: id.to_owned(), passed: status == "passed", status, pass_rate }))
}
