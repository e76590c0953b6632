//! Governance in the console: the approvals inbox (each pending label move with the
//! diff between what the label serves and what it would serve, and the candidate's
//! evaluation results; approve or reject with a comment) and, for admins, the rules of
//! each label.

use domain::access::Action;
use domain::eval::EvalRun;
use domain::model::{Comparison, LabelPolicy, LabelRequest, RequestStatus};
use leptos::prelude::*;
use leptos_router::components::A;
use serde::{Deserialize, Serialize};

use crate::auth::me;
use crate::error::AppError;
use crate::pages::evals::RunBadge;
use crate::widgets::{ErrorNote, SideBySide, Time, loading};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub request: LabelRequest,
    /// What the label serves now.
    pub current: Option<i64>,
    pub comparison: Option<Comparison>,
    /// The latest finished evaluation of the requested version.
    pub result: Option<EvalRun>,
    /// Why the eval gate would refuse it now, if it would.
    pub gate_refusal: Option<String>,
}

#[server(endpoint = "console/pending_approvals")]
pub async fn pending_approvals() -> Result<Vec<Approval>, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let mut out = Vec::new();
    for request in registry.label_requests(&who, Some(RequestStatus::Pending)).await? {
        let current = registry.labels(&who, &request.prompt).await?.labels.get(&request.label).copied();
        let comparison = match current {
            Some(c) => Some(registry.compare(&who, &request.prompt, c, request.version, false).await?),
            None => None,
        };
        let result = registry.latest_results(&who, &request.prompt).await?.remove(&request.version);
        let gate_refusal = registry.gate_refusal(&who, &request.prompt, &request.label, request.version).await?;
        out.push(Approval { request, current, comparison, result, gate_refusal });
    }
    Ok(out)
}

#[server(endpoint = "console/decide_request")]
pub async fn decide_request(id: String, approve: bool, comment: String) -> Result<LabelRequest, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let decision = domain::model::Decision { comment };
    Ok(if approve {
        registry.approve_request(&who, &id, decision).await?
    } else {
        registry.reject_request(&who, &id, decision).await?
    })
}

#[server(endpoint = "console/list_policies")]
pub async fn list_policies() -> Result<Vec<(String, LabelPolicy)>, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.label_policies(&who).await?)
}

/// Form fields: checkboxes arrive only when ticked; an empty suite means no eval gate.
#[server(endpoint = "console/save_policy")]
pub async fn save_policy(
    label: String,
    protected: Option<String>,
    require_approval: Option<String>,
    suite: String,
    min_pass_rate: String,
) -> Result<LabelPolicy, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let suite = suite.trim().to_owned();
    let require_eval = if suite.is_empty() {
        None
    } else {
        let percent: f64 = min_pass_rate
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| AppError::invalid("The pass rate needed is a percentage, like 90."))?;
        Some(domain::model::EvalGate { suite, min_pass_rate: percent / 100.0 })
    };
    let policy =
        LabelPolicy { protected: protected.is_some(), require_eval, require_approval: require_approval.is_some() };
    Ok(registry.set_label_policy(&who, label.trim(), policy).await?)
}

#[component]
pub fn ApprovalsPage() -> impl IntoView {
    let approvals = Resource::new(|| (), |_| pending_approvals());
    let query = leptos_router::hooks::use_query_map();
    let notice = move || {
        query.with(|q| match (q.get("approved"), q.get("rejected")) {
            (Some(p), _) if q.get("gradual").is_some() => {
                Some(format!("Approved: the gradual rollout of {p} started. Follow it from the prompt's page."))
            }
            (Some(p), _) => Some(format!("Approved: the label of {p} moved.")),
            (None, Some(p)) => Some(format!("Rejected: the label of {p} stays where it was.")),
            _ => None,
        })
    };
    view! {
        {move || notice().map(|text| view! { <p class="success notice" role="status">{text}</p> })}
        <div class="page-head"><div><h1>"Approvals"</h1>
            <p class="description">"Label moves waiting for a second publisher or admin. You cannot decide your own requests."</p>
        </div></div>
        <Transition fallback=|| loading("the approvals")>
            {move || Suspend::new(async move {
                match approvals.await {
                    Ok(list) if list.is_empty() => view! { <p class="empty">"Nothing is waiting for approval."</p> }.into_any(),
                    Ok(list) => list.into_iter().map(|a| view! { <ApprovalCard approval=a/> }).collect_view().into_any(),
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ApprovalCard(approval: Approval) -> impl IntoView {
    let me = me();
    let r = approval.request.clone();
    let can_decide = me.can(Action::MoveProtectedLabel) && me.username != r.requested_by;
    let now = match (approval.current, &r.rollout) {
        (Some(c), Some(plan)) => format!(
            "{} serves version {c} now; approving starts a gradual rollout: version {} goes to {}, and goes back by itself if it does worse.",
            r.label,
            r.version,
            crate::pages::rollouts::steps_words(&plan.steps)
        ),
        (Some(c), None) => {
            format!("{} serves version {c} now; approving makes it serve version {}.", r.label, r.version)
        }
        (None, _) => format!("{} is new on this prompt; approving makes it serve version {}.", r.label, r.version),
    };
    // A whole release: every prompt moves together when approved.
    let release = r.release.as_ref().map(|plan| {
        let what = if plan.rollback_of.is_some() { "a rollback of a release" } else { "a release" };
        let moves = plan.prompts.iter().map(|(p, v)| format!("{p} → v{v}")).collect::<Vec<_>>().join(", ");
        format!("This is {what}: approving moves {} on every one of these prompts together, or none: {moves}.", r.label)
    });
    let title = match &r.release {
        Some(plan) => format!("Release of {} prompts · {}", plan.prompts.len(), r.label),
        None => format!("{} · {} → v{}", r.prompt, r.label, r.version),
    };
    let region = title.clone();
    view! {
        <section class="card approval" aria-label=region>
            <h2><A href=format!("/history/{}", r.prompt)>{r.prompt.clone()}</A> {format!(" · {} → v{}", r.label, r.version)}</h2>
            <p class="meta">"Asked by " {r.requested_by.clone()} " · " <Time at=r.created_at.clone()/> " · expires " <Time at=r.expires_at.clone()/></p>
            {match release {
                Some(text) => view! { <p class="release-plan">{text}</p> }.into_any(),
                None => view! { <p>{now}</p> }.into_any(),
            }}
            {(!r.reason.is_empty()).then(|| view! { <p>"Reason: " {r.reason.clone()}</p> })}
            <p>"Evaluation of version " {r.version} ": "
                {match approval.result.clone() {
                    Some(run) => view! { <a href=format!("/runs/{}", run.id)><RunBadge status=run.status pass_rate=run.pass_rate/></a> " " {format!("suite {} · {}", run.suite, run.model)}}.into_any(),
                    None => view! { <span>"none yet"</span> }.into_any(),
                }}
            </p>
            {approval.gate_refusal.clone().map(|why| view! { <p class="error" role="alert">"Approving is blocked: " {why} "."</p> })}
            {approval.comparison.map(|c| view! {
                <SideBySide rows=c.rows old_title=format!("Now: version {}", c.from) new_title=format!("After: version {}", c.to) config_changed=c.config_changed/>
            })}
            {if can_decide {
                view! { <Decide id=r.id.clone() title/> }.into_any()
            } else if me.username == r.requested_by {
                view! { <p class="hint">"You asked for this move; another publisher or admin decides it."</p> }.into_any()
            } else {
                view! { <p class="hint">"Publishers and admins decide label moves."</p> }.into_any()
            }}
        </section>
    }
}

#[island(lazy)]
fn Decide(id: String, title: String) -> impl IntoView {
    crate::mark_hydrated();
    let comment = RwSignal::new(String::new());
    let decide = ServerAction::<DecideRequest>::new();
    Effect::new(move |_| {
        if let Some(Ok(r)) = decide.value().get() {
            let outcome = if r.status == RequestStatus::Approved { "approved" } else { "rejected" };
            let gradual = if r.rollout.is_some() { "&gradual=1" } else { "" };
            crate::auth::reload_to(&format!("/approvals?{outcome}={}{gradual}", r.prompt));
        }
    });
    let field = format!("comment-{id}");
    let (approve_id, reject_id) = (id.clone(), id);
    view! {
        <div class="decide">
            <label for=field.clone()>{format!("Comment on {title} (kept with the decision)")}</label>
            <input id=field prop:value=move || comment.get() on:input=move |ev| comment.set(event_target_value(&ev))/>
            <div class="actions">
                <button type="button" class="primary" disabled=move || decide.pending().get()
                    on:click=move |_| { decide.dispatch(DecideRequest { id: approve_id.clone(), approve: true, comment: comment.get_untracked() }); }>"Approve"</button>
                <button type="button" disabled=move || decide.pending().get()
                    on:click=move |_| { decide.dispatch(DecideRequest { id: reject_id.clone(), approve: false, comment: comment.get_untracked() }); }>"Reject"</button>
            </div>
            {move || decide.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error/> })}
        </div>
    }
}

#[component]
pub fn PoliciesPage() -> impl IntoView {
    if !me().can(Action::Administer) {
        return view! { <h1>"Label rules"</h1><p class="empty">"Only administrators set the rules of labels."</p> }
            .into_any();
    }
    view! {
        <div class="page-head"><div><h1>"Label rules"</h1>
            <p class="description">"Rules hold on every prompt, for people and API keys alike."</p>
        </div></div>
        <PolicyPanel/>
    }
    .into_any()
}

#[island(lazy)]
fn PolicyPanel() -> impl IntoView {
    crate::mark_hydrated();
    let save = ServerAction::<SavePolicy>::new();
    let policies = Resource::new(move || save.version().get(), |_| list_policies());
    view! {
        <section class="card" aria-labelledby="rules-title">
            <h2 id="rules-title">"Labels with rules"</h2>
            <Transition fallback=|| loading("the rules")>
                {move || Suspend::new(async move {
                    match policies.await {
                        Ok(list) => view! {
                            <table>
                                <caption class="visually-hidden">"Labels and their rules"</caption>
                                <thead><tr><th scope="col">"Label"</th><th scope="col">"Protected"</th><th scope="col">"Evaluation needed"</th><th scope="col">"Approval"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|(label, p)| view! {
                                        <tr>
                                            <th scope="row">{label}</th>
                                            <td>{if p.protected { "yes" } else { "no" }}</td>
                                            <td>{p.require_eval.map(|g| format!("{} at {:.0}%", g.suite, g.min_pass_rate * 100.0)).unwrap_or_else(|| "none".into())}</td>
                                            <td>{if p.require_approval { "a second publisher or admin" } else { "none" }}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(error) => view! { <ErrorNote error/> }.into_any(),
                    }
                })}
            </Transition>
            <h3 id="set-rules-title">"Set the rules of a label"</h3>
            <ActionForm action=save attr:class="set-rules" attr:aria-labelledby="set-rules-title">
                <div class="field">
                    <label for="rule-label">"Label"</label>
                    <input id="rule-label" name="label" required maxlength="36" placeholder="stable"/>
                </div>
                <label class="inline"><input type="checkbox" name="protected" value="on"/> " Protected: only publishers and admins move it"</label>
                <label class="inline"><input type="checkbox" name="require_approval" value="on"/> " Needs a second publisher or admin to approve each move"</label>
                <div class="field">
                    <label for="rule-suite">"Suite that must pass (leave empty for none)"</label>
                    <input id="rule-suite" name="suite" placeholder="smoke"/>
                </div>
                <div class="field">
                    <label for="rule-rate">"Pass rate needed (%)"</label>
                    <input id="rule-rate" name="min_pass_rate" inputmode="decimal" value="100"/>
                </div>
                <button type="submit" class="primary" disabled=move || save.pending().get()>"Save the rules"</button>
            </ActionForm>
            <div class="notice" aria-live="polite">
                {move || save.value().get().map(|result| match result {
                    Ok(_) => view! { <p class="success">"Saved. The rules hold from the next move."</p> }.into_any(),
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </div>
        </section>
    }
}
