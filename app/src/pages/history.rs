//! A prompt's history and releases: the version timeline, any two versions compared
//! side by side, and promotion / roll back as a label move confirmed against the diff
//! between what the label serves now and what it will serve (or a gradual rollout with
//! safe defaults), with the label history and the prompt's rollouts.

use std::collections::BTreeMap;

use domain::access::Action;
use domain::model::{Comparison, LabelMove, LabelOutcome, VersionView};
use domain::names::{LATEST, STABLE};
use domain::rollout::{Rollout, RolloutOutcome, RolloutStatus, SplitBrief, WeightChange};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use crate::auth::me;
use crate::error::AppError;
use crate::pages::evals::RunBadge;
use crate::pages::rollouts::{LiveSplits, RolloutList, StartRollout, plan_words, sentence};
use crate::widgets::{ErrorNote, LabelBadge, SideBySide, Time, loading};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub versions: Vec<VersionView>,
    pub labels: BTreeMap<String, i64>,
    pub moves: Vec<LabelMove>,
    /// The latest finished evaluation run of each version.
    pub results: BTreeMap<i64, domain::eval::EvalRun>,
    /// Rollouts' stretches at one weight, newest first (for the label history).
    pub weights: Vec<WeightChange>,
    /// The prompt's rollouts, newest first.
    pub rollouts: Vec<Rollout>,
}

/// What a label move would change, for the confirmation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveReview {
    pub label: String,
    pub current: Option<i64>,
    pub target: i64,
    pub comparison: Option<Comparison>,
    /// The label's rules, and why its eval gate would refuse this version (if it would).
    pub policy: domain::model::LabelPolicy,
    pub gate_refusal: Option<String>,
    /// A gradual rollout moving this label now: the label is moved by it only.
    pub rollout: Option<SplitBrief>,
    /// Prompts that include this label of this prompt, with their labels that serve it:
    /// the move changes what they serve too.
    pub affected: Vec<(String, Vec<String>)>,
}

#[server(endpoint = "console/get_history")]
pub async fn get_history(name: String) -> Result<History, AppError> {
    /// Versions shown on the timeline.
    const TIMELINE: i64 = 200;
    let (who, registry) = crate::auth::ssr::caller().await?;
    let versions = registry.list_versions(&who, &name, Some(TIMELINE), None).await?.items;
    let labels = registry.labels(&who, &name).await?;
    let results = registry.latest_results(&who, &name).await?;
    let rollouts = registry.rollouts(&who, &name).await?;
    Ok(History { versions, labels: labels.labels, moves: labels.history, results, weights: labels.rollouts, rollouts })
}

#[server(endpoint = "console/compare_versions")]
pub async fn compare_versions(name: String, from: i64, to: i64, composed: bool) -> Result<Comparison, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.compare(&who, &name, from, to, composed).await?)
}

#[server(endpoint = "console/review_move")]
pub async fn review_move(name: String, label: String, version: i64) -> Result<MoveReview, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    domain::names::validate_label(&label).map_err(|e| AppError::invalid(e.0))?;
    let current = registry.labels(&who, &name).await?.labels.get(&label).copied();
    let comparison = match current {
        Some(c) => Some(registry.compare(&who, &name, c, version, false).await?),
        // A new label: show the version itself against nothing.
        None => None,
    };
    // A version that does not exist is refused here (404), before anything is shown.
    let exact = domain::model::Selector { version: Some(version), ..Default::default() };
    registry.resolve(&who, &name, &exact).await?;
    let policy = registry.label_policy(&who, &label).await?;
    let gate_refusal = registry.gate_refusal(&who, &name, &label, version).await?;
    let rollout = registry.prompt(&who, &name)?.rollouts.remove(&label);
    let affected = registry.affected_by(&who, &name, &label)?;
    Ok(MoveReview { label, current, target: version, comparison, policy, gate_refusal, rollout, affected })
}

#[server(endpoint = "console/start_impact")]
pub async fn start_impact(name: String, version: i64) -> Result<domain::model::Impact, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.start_impact(&who, &name, version).await?)
}

#[server(endpoint = "console/get_impact")]
pub async fn get_impact(id: String) -> Result<domain::model::Impact, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.impact(&who, &id).await?)
}

#[server(endpoint = "console/move_label")]
pub async fn move_label(name: String, label: String, version: i64, reason: String) -> Result<LabelOutcome, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let req = domain::model::MoveLabel { version, reason };
    Ok(registry.move_label(&who, &name, &label, req).await?)
}

/// A label's rules in words, for the review before a move.
pub(crate) fn policy_words(label: &str, p: &domain::model::LabelPolicy) -> String {
    let mut rules = Vec::new();
    if p.protected {
        rules.push("only publishers and admins may move it".to_owned());
    }
    if let Some(g) = &p.require_eval {
        rules.push(format!(
            "the suite {} must pass at {:.0}% or more on the version first",
            g.suite,
            g.min_pass_rate * 100.0
        ));
    }
    if p.require_approval {
        rules.push("another publisher or admin must approve the move (you will send a request)".to_owned());
    }
    if rules.is_empty() { String::new() } else { format!("Rules for {label}: {}.", rules.join("; ")) }
}

#[component]
pub fn HistoryPage() -> impl IntoView {
    let params = use_params_map();
    let name = Memo::new(move |_| params.with(|p| p.get("name")).unwrap_or_default());
    let history = Resource::new(move || name.get(), get_history);
    // After a label move the page is loaded again with what moved (`?moved=stable&to=2`;
    // `&gradual=1` when a gradual rollout waits for approval), and a roll-back link asks
    // for a review (`?review=stable&version=1`).
    let query = use_query_map();
    let notice = move || {
        query.with(|q| {
            let to = q.get("to")?.parse::<i64>().ok()?;
            match (q.get("moved"), q.get("requested")) {
                (Some(label), _) => Some(format!("{label} now serves version {to}.")),
                (None, Some(label)) if q.get("gradual").is_some() => Some(format!(
                    "Rolling out version {to} on {label} gradually needs approval: another publisher or admin will find your request in their approvals, and the rollout starts when they approve it."
                )),
                (None, Some(label)) => Some(format!(
                    "Moving {label} to version {to} needs approval: another publisher or admin will find your request in their approvals."
                )),
                _ => None,
            }
        })
    };
    let review = move || query.with(|q| Some((q.get("review")?, q.get("version")?.parse::<i64>().ok()?)));
    view! {
        {move || notice().map(|text| view! { <p class="success notice" role="status">{text}</p> })}
        <Transition fallback=|| loading("the history")>
            {move || Suspend::new(async move {
                match history.await {
                    Ok(h) => view! {
                        <HistoryView name=name.get_untracked() history=h review=review()/>
                    }.into_any(),
                    Err(error) => view! { <h1>{name.get()}</h1><ErrorNote error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn HistoryView(name: String, history: History, review: Option<(String, i64)>) -> impl IntoView {
    let me = me();
    let can_move = me.can(Action::Write);
    let can_protected = me.can(Action::MoveProtectedLabel);
    let newest = history.versions.first().map_or(1, |v| v.version);
    let numbers: Vec<i64> = history.versions.iter().map(|v| v.version).collect();
    let prompt_href = format!("/prompts/{name}");
    let title = name.clone();
    let release = can_move.then(|| {
        view! {
            <ReleaseForm name=name.clone() labels=history.labels.clone() numbers=numbers.clone()
                can_protected review/>
        }
    });
    let compare = view! { <Compare name=name.clone() numbers=numbers.clone() newest/> };
    let rows = history_rows(&name, &history, can_move, can_protected);
    let splits = history
        .rollouts
        .iter()
        .filter(|r| r.status.is_live())
        .map(|r| {
            (r.label.clone(), SplitBrief { id: r.id.clone(), candidate_version: r.candidate_version, weight: r.weight })
        })
        .collect();
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs"><A href="/">"Prompts"</A> " / " <A href=prompt_href.clone()>{title}</A> " /"</p>
                <h1>"History and releases"</h1>
            </div>
            <A href=prompt_href attr:class="button">"Back to the prompt"</A>
        </div>
        <div class="labels-now">
            {history.labels.iter().map(|(l, v)| view! { <LabelBadge label=l.clone() version=*v/> }).collect_view()}
        </div>
        <LiveSplits splits=splits labels=history.labels.clone()/>
        {release}
        {compare}
        <section class="card" aria-labelledby="timeline-title">
            <h2 id="timeline-title">"Versions"</h2>
            <table class="timeline">
                <caption class="visually-hidden">"Every version, newest first"</caption>
                <thead><tr>
                    <th scope="col">"Version"</th><th scope="col">"Author"</th><th scope="col">"When"</th>
                    <th scope="col">"Message"</th><th scope="col">"Labels"</th><th scope="col">"Latest evaluation"</th>
                </tr></thead>
                <tbody>
                    {history.versions.into_iter().map(|v| view! {
                        <tr class="version-row">
                            <td>"v" {v.version}</td>
                            <td>{v.created_by.clone()}</td>
                            <td><Time at=v.created_at.clone()/></td>
                            <td>{if v.message.is_empty() { "—".to_string() } else { v.message.clone() }}</td>
                            <td>{v.labels.iter().map(|l| view! { <LabelBadge label=l.clone()/> }).collect_view()}</td>
                            <td>{history.results.get(&v.version).map(|r| view! {
                                <a href=format!("/runs/{}", r.id) title=format!("{} · {}", r.suite, r.model)>
                                    <RunBadge status=r.status pass_rate=r.pass_rate/>
                                </a>
                            })}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        <section class="card" aria-labelledby="moves-title">
            <h2 id="moves-title">"Label history"</h2>
            {if rows.is_empty() {
                view! { <p class="empty">"No label has been moved yet. Promote a version above to release it."</p> }.into_any()
            } else {
                view! {
                    <table class="label-history">
                        <caption class="visually-hidden">"Every label move and gradual rollout step, newest first: who, when and why"</caption>
                        <thead><tr>
                            <th scope="col">"Label"</th><th scope="col">"Change"</th><th scope="col">"Who"</th>
                            <th scope="col">"When"</th><th scope="col">"Why"</th>
                            {can_move.then(|| view! { <th scope="col"><span class="visually-hidden">"Actions"</span></th> })}
                        </tr></thead>
                        <tbody>{rows.into_iter().map(|(_, row)| row).collect_view()}</tbody>
                    </table>
                }.into_any()
            }}
        </section>
        <RolloutList rollouts=history.rollouts/>
    }
}

/// Text, or a dash when there is none.
fn or_dash(text: &str) -> String {
    if text.trim().is_empty() { "—".to_owned() } else { text.to_owned() }
}

/// The label history as table rows with their instants: moves (with a roll-back link),
/// each step of a gradual rollout ("v1, with v2 at 25 %"), and rollouts that took
/// themselves back or were aborted.
fn history_rows(name: &str, history: &History, can_move: bool, can_protected: bool) -> Vec<(String, AnyView)> {
    let action_cell = move |content: Option<AnyView>| can_move.then(|| view! { <td>{content}</td> });
    let mut rows: Vec<(String, AnyView)> = Vec::new();
    for m in &history.moves {
        let change = match m.previous_version {
            Some(p) => format!("v{p} → v{}", m.version),
            None => format!("→ v{}", m.version),
        };
        let allowed = can_move && (m.label != STABLE || can_protected);
        let back = m.previous_version.filter(|_| allowed).map(|p| {
            view! {
                <a class="button" href=format!("/history/{name}?review={}&version={p}#release-title", m.label)>
                    {format!("Roll back to v{p}")}
                </a>
            }
            .into_any()
        });
        let row = view! {
            <tr>
                <td><LabelBadge label=m.label.clone()/></td>
                <td>{change}</td>
                <td>{m.actor.clone()}</td>
                <td><Time at=m.at.clone()/></td>
                <td>{or_dash(&m.reason)}</td>
                {action_cell(back)}
            </tr>
        };
        rows.push((m.at.clone(), row.into_any()));
    }
    for w in &history.weights {
        let row = view! {
            <tr class="rollout-step">
                <td><LabelBadge label=w.label.clone()/></td>
                <td><a href=format!("/rollouts/{}", w.rollout)>
                    {format!("v{}, with v{} at {} %", w.base_version, w.candidate_version, w.weight)}</a>
                    " " <span class="hint">"(gradual rollout)"</span></td>
                <td>{w.actor.clone()}</td>
                <td><Time at=w.at.clone()/></td>
                <td>{or_dash(&w.reason)}</td>
                {action_cell(None)}
            </tr>
        };
        rows.push((w.at.clone(), row.into_any()));
    }
    let ended =
        history.rollouts.iter().filter(|r| matches!(r.status, RolloutStatus::RolledBack | RolloutStatus::Aborted));
    for r in ended {
        let Some(at) = r.ended_at.clone() else { continue };
        let who = match (r.status, r.ended_by.as_deref()) {
            (RolloutStatus::RolledBack, _) => "automatic".to_owned(),
            (_, Some(person)) => person.to_owned(),
            (_, None) => "—".to_owned(),
        };
        let row = view! {
            <tr class="rollout-step">
                <td><LabelBadge label=r.label.clone()/></td>
                <td><a href=format!("/rollouts/{}", r.id)>{format!("v{} for everyone again", r.base_version)}</a>
                    " " <span class="hint">{format!("(rollout to v{} {})", r.candidate_version, r.status.words())}</span></td>
                <td>{who}</td>
                <td><Time at=at.clone()/></td>
                <td>{r.note.as_deref().map(sentence).unwrap_or_else(|| "—".into())}</td>
                {action_cell(None)}
            </tr>
        };
        rows.push((at, row.into_any()));
    }
    // Instants share one format, so they sort as text.
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    rows
}

#[island(lazy)]
fn Compare(name: String, numbers: Vec<i64>, newest: i64) -> impl IntoView {
    crate::mark_hydrated();
    let from = RwSignal::new((newest - 1).max(1));
    let to = RwSignal::new(newest);
    let composed = RwSignal::new(false);
    let compare = ServerAction::<CompareVersions>::new();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (from, to, composed) = (from.get_untracked(), to.get_untracked(), composed.get_untracked());
        compare.dispatch(CompareVersions { name: name.clone(), from, to, composed });
    };
    let options = move |selected: RwSignal<i64>| {
        numbers.iter().map(|&n| view! { <option value=n.to_string() selected=move || selected.get() == n>{format!("v{n}")}</option> }).collect_view()
    };
    let (from_options, to_options) = (options(from), options(to));
    view! {
        <section class="card" aria-labelledby="compare-title">
            <h2 id="compare-title">"Compare two versions"</h2>
            <form class="inline-form" on:submit=on_submit>
                <label for="compare-from">"From"</label>
                <select id="compare-from" on:change=move |ev| from.set(event_target_value(&ev).parse().unwrap_or(1))>{from_options}</select>
                <label for="compare-to">"To"</label>
                <select id="compare-to" on:change=move |ev| to.set(event_target_value(&ev).parse().unwrap_or(1))>{to_options}</select>
                <input type="checkbox" id="compare-composed" prop:checked=move || composed.get()
                    on:change=move |ev| composed.set(event_target_checked(&ev))/>
                <label for="compare-composed">"with included prompts filled in"</label>
                <button type="submit">{move || if compare.pending().get() { "Comparing…" } else { "Compare" }}</button>
            </form>
            {move || compare.value().get().map(|result| match result {
                Ok(c) => view! {
                    <SideBySide rows=c.rows old_title=format!("Version {}", c.from) new_title=format!("Version {}", c.to) config_changed=c.config_changed/>
                }.into_any(),
                Err(error) => view! { <ErrorNote error/> }.into_any(),
            })}
        </section>
    }
}

/// Promote or roll back: an island (runs in the browser). `review` is a move to show at
/// once (from a roll-back link).
#[island(lazy)]
fn ReleaseForm(
    name: String,
    labels: BTreeMap<String, i64>,
    numbers: Vec<i64>,
    can_protected: bool,
    review: Option<(String, i64)>,
) -> impl IntoView {
    crate::mark_hydrated();
    let initial_review = review;
    let mut choices: Vec<String> = labels.keys().filter(|l| l.as_str() != LATEST).cloned().collect();
    if !choices.iter().any(|l| l == STABLE) {
        choices.insert(0, STABLE.into());
    }
    choices.retain(|l| l != STABLE || can_protected);
    let first = choices.first().cloned().unwrap_or_default();
    let label = RwSignal::new(first);
    let new_label = RwSignal::new(String::new());
    let version = RwSignal::new(numbers.first().copied().unwrap_or(1));
    let reason = RwSignal::new(String::new());
    let review = ServerAction::<ReviewMove>::new();
    let apply = ServerAction::<MoveLabel>::new();
    let gradual = ServerAction::<StartRollout>::new();
    let chosen_label = move || {
        let typed = new_label.get_untracked().trim().to_owned();
        if typed.is_empty() { label.get_untracked() } else { typed }
    };
    let review_name = name.clone();
    let on_review = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        apply.clear();
        gradual.clear();
        review.dispatch(ReviewMove {
            name: review_name.clone(),
            label: chosen_label(),
            version: version.get_untracked(),
        });
    };
    // A roll-back link asked for this review.
    let rollback_name = name.clone();
    Effect::new(move |_| {
        if let Some((l, v)) = initial_review.clone() {
            review.dispatch(ReviewMove { name: rollback_name.clone(), label: l, version: v });
        }
    });
    // Moved: load the page again, so the badges, timeline and label history are current.
    let moved_name = name.clone();
    Effect::new(move |_| match apply.value().get() {
        Some(Ok(LabelOutcome::Moved(m))) => {
            crate::auth::reload_to(&format!("/history/{moved_name}?moved={}&to={}", m.label, m.version))
        }
        Some(Ok(LabelOutcome::Requested(r))) => {
            crate::auth::reload_to(&format!("/history/{moved_name}?requested={}&to={}", r.label, r.version))
        }
        _ => {}
    });
    // Started: follow it on its page; waiting for approval: say so here.
    let gradual_name = name.clone();
    Effect::new(move |_| match gradual.value().get() {
        Some(Ok(RolloutOutcome::Started(r))) => crate::auth::reload_to(&format!("/rollouts/{}", r.id)),
        Some(Ok(RolloutOutcome::Requested(r))) => {
            crate::auth::reload_to(&format!("/history/{gradual_name}?requested={}&to={}&gradual=1", r.label, r.version))
        }
        _ => {}
    });
    let busy = move || apply.pending().get() || gradual.pending().get();
    let version_options =
        numbers.iter().map(|&n| view! { <option value=n.to_string()>{format!("v{n}")}</option> }).collect_view();
    let apply_name = StoredValue::new(name);
    view! {
        <section class="card release" aria-labelledby="release-title">
            <h2 id="release-title">"Promote or roll back"</h2>
            <p class="hint">"Choose a label and the version it should serve. You will see what changes before anything moves."
                {(!can_protected).then_some(" Moving stable needs the publisher role.")}</p>
            <form class="inline-form" on:submit=on_review>
                <label for="release-label">"Label"</label>
                <select id="release-label" on:change=move |ev| label.set(event_target_value(&ev))>
                    {choices.into_iter().map(|l| view! { <option value=l.clone()>{l.clone()}</option> }).collect_view()}
                </select>
                <label for="release-new-label">"or a new label"</label>
                <input id="release-new-label" placeholder="e.g. canary" prop:value=move || new_label.get()
                    on:input=move |ev| new_label.set(event_target_value(&ev))/>
                <label for="release-version">"Version"</label>
                <select id="release-version" on:change=move |ev| version.set(event_target_value(&ev).parse().unwrap_or(1))>
                    {version_options}
                </select>
                <button type="submit">{move || if review.pending().get() { "Preparing…" } else { "Review the change" }}</button>
            </form>
            {move || review.value().get().map(|result| match result {
                Err(error) => view! { <ErrorNote error/> }.into_any(),
                Ok(r) => {
                    let verb = match r.current { Some(c) if r.target < c => "Roll back", _ => "Promote" };
                    let headline = match r.current {
                        Some(c) if c == r.target => format!("{} already serves version {c}.", r.label),
                        Some(c) => format!("{} serves version {c} now; after this it will serve version {}.", r.label, r.target),
                        None => format!("{} is a new label; it will serve version {}.", r.label, r.target),
                    };
                    let same = r.current == Some(r.target);
                    let blocked = r.gate_refusal.is_some() || r.rollout.is_some();
                    // Gradually only forward, from a version the label serves: a roll back
                    // should be immediate.
                    let base = r.current.filter(|c| *c < r.target && r.label != LATEST);
                    let plan = base.map(|b| {
                        let p = domain::rollout::NewRollout::new(&r.label, r.target, "");
                        plan_words(b, r.target, &p.steps, p.step_seconds, p.min_samples, &p.guards)
                    });
                    let gradual_button = if r.policy.require_approval { "Ask for approval to roll out gradually" } else { "Roll out gradually" };
                    let rollout_href = r.rollout.as_ref().map(|s| format!("/rollouts/{}", s.id));
                    let (label, target) = (r.label.clone(), r.target);
                    let button = if r.policy.require_approval {
                        format!("Ask for approval to {} {label} to v{target}", verb.to_lowercase())
                    } else {
                        format!("{verb} {label} to v{target}")
                    };
                    let evals_href = format!("/evals/{}", apply_name.get_value());
                    let rules = policy_words(&r.label, &r.policy);
                    let affected = (!r.affected.is_empty()).then(|| view! {
                        <Affected name=apply_name.get_value() label=r.label.clone() version=r.target affected=r.affected.clone()/>
                    });
                    view! {
                        <div class="review" role="region" aria-label="Review the label move">
                            <p class="review-headline">{headline}</p>
                            {(!rules.is_empty()).then(|| view! { <p class="hint policy-rules">{rules}</p> })}
                            {affected}
                            {r.gate_refusal.clone().map(|why| view! {
                                <p class="error gate" role="alert">"This move is blocked: " {why} ". "
                                    <a href=evals_href.clone()>"Open the evaluations"</a> " to run the suite."</p>
                            })}
                            {r.rollout.clone().map(|s| view! {
                                <p class="error gate" role="alert">{format!(
                                    "A gradual rollout is moving {} now (v{} at {} %): the label moves only with it. ", r.label, s.candidate_version, s.weight)}
                                    <a href=rollout_href.clone().unwrap_or_default()>"Open the rollout"</a> " to follow it, finish it or stop it."</p>
                            })}
                            {r.comparison.map(|c| view! {
                                <SideBySide rows=c.rows old_title=format!("Now: version {}", c.from)
                                    new_title=format!("After: version {}", c.to) config_changed=c.config_changed/>
                            })}
                            {(!same && !blocked).then(|| view! {
                                <form class="confirm" on:submit=move |ev: leptos::ev::SubmitEvent| {
                                    ev.prevent_default();
                                    apply.dispatch(MoveLabel { name: apply_name.get_value(), label: label.clone(), version: target, reason: reason.get_untracked() });
                                }>
                                    <label for="move-reason">"Why? (kept in the label history)"</label>
                                    <input id="move-reason" placeholder="e.g. Approved by support lead" prop:value=move || reason.get()
                                        on:input=move |ev| reason.set(event_target_value(&ev))/>
                                    <button type="submit" class="primary" disabled=busy>{move || if apply.pending().get() { "Moving…".to_string() } else { button.clone() }}</button>
                                    {plan.is_some().then(|| {
                                        let label = r.label.clone();
                                        view! {
                                            <button type="button" disabled=busy on:click=move |_| {
                                                gradual.dispatch(StartRollout { name: apply_name.get_value(), label: label.clone(), version: target, reason: reason.get_untracked() });
                                            }>{move || if gradual.pending().get() { "Starting…" } else { gradual_button }}</button>
                                        }
                                    })}
                                    <button type="button" on:click=move |_| review.clear()>"Cancel"</button>
                                </form>
                                {plan.map(|plan| view! {
                                    <div class="gradual">
                                        <p><strong>"Roll out gradually"</strong> " instead of moving everyone at once:"</p>
                                        <ul class="plan">{plan.into_iter().map(|s| view! { <li>{s}</li> }).collect_view()}</ul>
                                        <p class="hint">"You can follow it live, pause it or stop it on its page."</p>
                                    </div>
                                })}
                            })}
                        </div>
                    }.into_any()
                }
            })}
            {move || apply.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error/> })}
            {move || gradual.value().get().and_then(Result::err).map(|error| {
                let running = matches!(error, AppError::Conflict(_));
                view! {
                    <ErrorNote error/>
                    {running.then(|| view! { <p class="hint">"The Gradual rollouts list below shows the one under way: let it finish or stop it there, then try again."</p> })}
                }
            })}
        </section>
    }
}

/// The prompts a move of a shared prompt's label changes too, and an impact check of the
/// candidate against their evaluations, with its results in place (regressions first).
#[component]
fn Affected(name: String, label: String, version: i64, affected: Vec<(String, Vec<String>)>) -> impl IntoView {
    let start = ServerAction::<StartImpact>::new();
    let impact = RwSignal::new(None::<domain::model::Impact>);
    Effect::new(move |_| {
        if let Some(Ok(started)) = start.value().get() {
            impact.set(Some(started));
        }
    });
    // Poll while the check runs.
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || {
                let Some(current) = impact.get_untracked() else { return };
                if current.status != "running" {
                    return;
                }
                leptos::task::spawn_local(async move {
                    if let Ok(now) = get_impact(current.id).await {
                        impact.set(Some(now));
                    }
                });
            },
            std::time::Duration::from_millis(700),
        );
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });
    let count = affected.len();
    let start_name = name.clone();
    view! {
        <div class="affected" role="region" aria-label="Prompts this move changes">
            <p><strong>{format!("This also changes what {count} other prompt{} serve{}", if count == 1 { "" } else { "s" }, if count == 1 { "s" } else { "" })}</strong>
                {format!(", because they include {name}@{label}:")}</p>
            <ul class="used-by">
                {affected.into_iter().map(|(prompt, labels)| view! {
                    <li><a href=format!("/prompts/{prompt}")>{prompt.clone()}</a> {format!(" (served by {})", labels.join(", "))}</li>
                }).collect_view()}
            </ul>
            <button type="button" on:click=move |_| { start.dispatch(StartImpact { name: start_name.clone(), version }); }>
                {move || if start.pending().get() { "Starting…".to_string() } else { format!("Check the impact: run their evaluations with version {version}") }}
            </button>
            {move || start.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error/> })}
            {move || impact.get().map(|i| view! { <ImpactTable impact=i/> })}
        </div>
    }
}

/// An impact check's rows: each dependent's suite now and with the candidate.
#[component]
fn ImpactTable(impact: domain::model::Impact) -> impl IntoView {
    let rate = |b: &Option<domain::model::RunBrief>| match b {
        Some(b) if matches!(b.status.as_str(), "queued" | "running") => "running…".to_string(),
        Some(b) => format!("{:.0}% ({})", b.pass_rate * 100.0, b.status),
        None => "—".into(),
    };
    let summary = match (impact.status.as_str(), impact.passed) {
        ("running", _) => "Running their evaluations…".to_string(),
        (_, true) => format!("Every prompt that includes it passes with version {}.", impact.version),
        (_, false) if impact.runs.is_empty() => "None of them has an evaluation suite to run.".into(),
        (_, false) => format!("Some prompts do worse with version {}: see the regressions first below.", impact.version),
    };
    view! {
        <div class="impact" role="status" aria-live="polite">
            <p class=if impact.status == "finished" && !impact.passed { "error" } else { "hint" }>{summary}</p>
            {(!impact.runs.is_empty()).then(|| view! {
                <table class="impact-table">
                    <caption class="visually-hidden">"Impact of the new version on each prompt that includes it"</caption>
                    <thead><tr><th scope="col">"Prompt"</th><th scope="col">"Suite"</th><th scope="col">"Now"</th>
                        <th scope="col">{format!("With version {}", impact.version)}</th><th scope="col">"Result"</th></tr></thead>
                    <tbody>
                        {impact.runs.iter().map(|r| view! {
                            <tr class=if r.regression { "regression" } else { "" }>
                                <th scope="row"><a href=format!("/prompts/{}", r.dependent)>{r.dependent.clone()}</a>{format!(" ({})", r.label)}</th>
                                <td>{r.suite.clone()}</td>
                                <td>{rate(&r.now)}</td>
                                <td>{rate(&r.candidate)}</td>
                                <td>{match (&r.error, r.regression) {
                                    (Some(e), _) => e.clone(),
                                    (None, true) => "Worse".into(),
                                    (None, false) => "OK".into(),
                                }}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </div>
    }
}
