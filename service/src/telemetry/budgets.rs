//! Budgets per prompt: dollars per calendar window (UTC), alerts at fractions of the
//! limit (each once per window: an audit event `budget.alert`, webhook
//! `budget.threshold`), and the opt-in `block` mode that refuses resolve and render with
//! `429 budget_exceeded` until the window ends or the budget is raised.
//!
//! What was spent in the current window is kept in memory, counted up at ingest, so
//! neither ingest nor the resolve hot path reads storage for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use domain::access::Action;
use domain::telemetry::{Budget, BudgetView, OnExceed, forecast};
use domain::vocabulary::AuditAction;
use parking_lot::RwLock;
use serde_json::json;

use super::SYSTEM;
use crate::store::NewEvent;
use crate::store::telemetry::{self as sql, GenerationRow};
use crate::{Principal, Registry, Result, ServiceError, time};

struct BudgetState {
    prompt_id: i64,
    budget: Budget,
    window_start: i64,
    window_end: i64,
    spent: f64,
    /// Alert fractions already fired in this window.
    fired: Vec<f64>,
}

impl BudgetState {
    fn blocked(&self, now: i64) -> bool {
        self.budget.on_exceed == OnExceed::Block && now < self.window_end && self.spent >= self.budget.limit
    }

    fn view(&self, now: i64) -> BudgetView {
        BudgetView {
            window: self.budget.window,
            limit: self.budget.limit,
            alerts: self.budget.alerts.clone(),
            on_exceed: self.budget.on_exceed,
            window_start: time::format_us(self.window_start),
            window_end: time::format_us(self.window_end),
            spent: self.spent,
            forecast: forecast(self.spent, self.window_start, self.window_end, now),
            blocked: self.blocked(now),
        }
    }
}

/// Budgets by prompt name.
#[derive(Default)]
pub struct Budgets {
    states: RwLock<HashMap<String, BudgetState>>,
    /// Whether any budget blocks at all: resolve pays one atomic load when none does.
    any_block: AtomicBool,
}

impl Budgets {
    fn recount_block(&self, states: &HashMap<String, BudgetState>) {
        self.any_block.store(states.values().any(|s| s.budget.on_exceed == OnExceed::Block), Ordering::Relaxed);
    }
}

impl Registry {
    /// The state of one budget for the window holding `now`, read from storage.
    async fn budget_state(&self, prompt: &str, prompt_id: i64, budget: Budget, now: i64) -> Result<BudgetState> {
        let (window_start, window_end) = budget.window.bounds(now);
        let spent = sql::spent(&self.telemetry_store().reader, prompt, window_start, window_end).await?;
        let fired = sql::fired_alerts(&self.store().reader, prompt_id, window_start).await?;
        Ok(BudgetState { prompt_id, budget, window_start, window_end, spent, fired })
    }

    pub(crate) async fn load_budgets(&self) -> Result<()> {
        let now = time::now_us();
        let mut states = HashMap::new();
        for row in sql::budgets(&self.store().reader).await? {
            let id = self.entry(&row.prompt)?.id;
            states.insert(row.prompt.clone(), self.budget_state(&row.prompt, id, row.budget()?, now).await?);
        }
        let budgets = &self.inner.telemetry.budgets;
        budgets.recount_block(&states);
        *budgets.states.write() = states;
        Ok(())
    }

    /// Refuses serving a prompt whose budget blocks (resolve and render call this).
    pub(crate) fn check_budget(&self, prompt: &str) -> Result<()> {
        let budgets = &self.inner.telemetry.budgets;
        if !budgets.any_block.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = time::now_us();
        let states = budgets.states.read();
        match states.get(prompt) {
            Some(s) if s.blocked(now) => Err(ServiceError::BudgetExceeded {
                message: format!(
                    "the {} budget of '{prompt}' (${:.2}) is spent (${:.2}); it is refused until the window ends at {} or the budget is raised",
                    s.budget.window.as_str(),
                    s.budget.limit,
                    s.spent,
                    time::format_us(s.window_end)
                ),
                retry_after: ((s.window_end - now) / 1_000_000).max(1) as u64,
            }),
            _ => Ok(()),
        }
    }

    /// Sets a prompt's budget (admins and publishers); audited.
    pub async fn put_budget(&self, who: &Principal, prompt: &str, budget: Budget) -> Result<BudgetView> {
        who.require(Action::MoveProtectedLabel)?;
        let budget = budget.normalized().map_err(|e| ServiceError::rule("invalid_budget", e.message))?;
        let entry = self.entry(prompt)?;
        let at = time::now_us();
        {
            let mut w = self.write().await?;
            sql::put_budget(w.conn(), entry.id, &budget, &who.actor, at).await?;
            let detail = json!({"window": budget.window, "limit": budget.limit, "alerts": budget.alerts,
                                "on_exceed": budget.on_exceed});
            let e = NewEvent {
                actor: &who.actor,
                action: AuditAction::BudgetSet,
                prompt: Some(prompt),
                version: None,
                label: None,
                detail,
            };
            w.audit(at, e).await?;
            w.commit().await?;
        }
        let state = self.budget_state(prompt, entry.id, budget, at).await?;
        let view = state.view(at);
        {
            let budgets = &self.inner.telemetry.budgets;
            let mut states = budgets.states.write();
            states.insert(prompt.to_owned(), state);
            budgets.recount_block(&states);
        }
        // A budget set below what is already spent alerts at once.
        self.check_alerts(prompt, at).await?;
        Ok(view)
    }

    pub async fn budget(&self, who: &Principal, prompt: &str) -> Result<BudgetView> {
        who.require(Action::Read)?;
        self.entry(prompt)?;
        let now = time::now_us();
        self.roll_window(prompt, now).await?;
        let states = self.inner.telemetry.budgets.states.read();
        states
            .get(prompt)
            .map(|s| s.view(now))
            .ok_or_else(|| ServiceError::NotFound(format!("'{prompt}' has no budget")))
    }

    /// Removes a prompt's budget; audited.
    pub async fn delete_budget(&self, who: &Principal, prompt: &str) -> Result<()> {
        who.require(Action::MoveProtectedLabel)?;
        let entry = self.entry(prompt)?;
        let at = time::now_us();
        let mut w = self.write().await?;
        if !sql::delete_budget(w.conn(), entry.id).await? {
            return Err(ServiceError::NotFound(format!("'{prompt}' has no budget")));
        }
        let e = NewEvent {
            actor: &who.actor,
            action: AuditAction::BudgetRemoved,
            prompt: Some(prompt),
            version: None,
            label: None,
            detail: json!({}),
        };
        w.audit(at, e).await?;
        w.commit().await?;
        let budgets = &self.inner.telemetry.budgets;
        let mut states = budgets.states.write();
        states.remove(prompt);
        budgets.recount_block(&states);
        Ok(())
    }

    /// Starts the next window when the current one has ended.
    async fn roll_window(&self, prompt: &str, now: i64) -> Result<()> {
        let stale = {
            let states = self.inner.telemetry.budgets.states.read();
            match states.get(prompt) {
                Some(s) if now >= s.window_end => Some((s.prompt_id, s.budget.clone())),
                _ => None,
            }
        };
        if let Some((id, budget)) = stale {
            let fresh = self.budget_state(prompt, id, budget, now).await?;
            self.inner.telemetry.budgets.states.write().insert(prompt.to_owned(), fresh);
        }
        Ok(())
    }

    /// Counts a stored batch against the budgets of its prompts, then fires alerts.
    pub(super) async fn count_spend(&self, rows: &[GenerationRow], now: i64) -> Result<()> {
        let budgets = &self.inner.telemetry.budgets;
        if budgets.states.read().is_empty() {
            return Ok(());
        }
        let mut touched: Vec<String> = Vec::new();
        let prompts: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.prompt.as_str()).collect();
        for prompt in prompts {
            if budgets.states.read().contains_key(prompt) {
                self.roll_window(prompt, now).await?;
                touched.push(prompt.to_owned());
            }
        }
        {
            let mut states = budgets.states.write();
            for row in rows {
                if let (Some(cost), Some(s)) = (row.cost, states.get_mut(&row.prompt))
                    && (s.window_start..s.window_end).contains(&row.started_at)
                {
                    s.spent += cost;
                }
            }
        }
        for prompt in touched {
            self.check_alerts(&prompt, now).await?;
        }
        Ok(())
    }

    /// Fires each alert fraction that spending has reached and that has not fired in
    /// this window yet.
    async fn check_alerts(&self, prompt: &str, now: i64) -> Result<()> {
        let due = {
            let mut states = self.inner.telemetry.budgets.states.write();
            let Some(s) = states.get_mut(prompt) else { return Ok(()) };
            let due: Vec<f64> = s
                .budget
                .alerts
                .iter()
                .copied()
                .filter(|f| s.spent >= f * s.budget.limit && !s.fired.contains(f))
                .collect();
            // Claimed before writing, so two batches at once fire each alert once.
            s.fired.extend(&due);
            due.into_iter().map(|f| (f, s.prompt_id, s.window_start, s.budget.clone(), s.spent)).collect::<Vec<_>>()
        };
        for (fraction, prompt_id, window_start, budget, spent) in due {
            let mut w = self.write().await?;
            if !sql::insert_alert(w.conn(), prompt_id, window_start, fraction, now).await? {
                continue;
            }
            let detail = json!({
                "fraction": fraction, "limit": budget.limit, "spent": spent, "window": budget.window,
                "window_start": time::format_us(window_start), "on_exceed": budget.on_exceed,
            });
            let e = NewEvent {
                actor: SYSTEM,
                action: AuditAction::BudgetAlert,
                prompt: Some(prompt),
                version: None,
                label: None,
                detail,
            };
            w.audit(now, e).await?;
            w.commit().await?;
        }
        Ok(())
    }
}
