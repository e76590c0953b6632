//! Releases: several prompts moved to one label together. Pick the prompts and their
//! versions, review every change and the label's rules on one page, confirm once; the
//! list below takes any release back in one click, every prompt together.

use std::collections::BTreeMap;

use domain::access::Action;
use domain::model::{Comparison, LabelPolicy, Release, ReleaseOutcome};
use leptos::prelude::*;
use leptos_router::components::A;
use serde::{Deserialize, Serialize};

use crate::auth::me;
use crate::error::AppError;
use crate::widgets::{ErrorNote, SideBySide, Time, loading};

/// A prompt that can be released: its newest version and its labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Releasable {
    pub name: String,
    pub latest: i64,
    pub labels: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleasesData {
    pub releases: Vec<Release>,
    pub prompts: Vec<Releasable>,
}

/// One prompt of a release under review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseItem {
    pub prompt: String,
    pub current: Option<i64>,
    pub target: i64,
    pub comparison: Option<Comparison>,
    /// Why the label's eval gate would refuse this prompt, if it would.
    pub gate_refusal: Option<String>,
    /// Prompts that include this one through the label: they change too.
    pub affected: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseReview {
    pub label: String,
    pub policy: LabelPolicy,
    pub items: Vec<ReleaseItem>,
}

#[server(endpoint = "console/get_releases")]
pub async fn get_releases() -> Result<ReleasesData, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let releases = registry.releases(&who, Some(50), None).await?.items;
    let query = service::PromptQuery { limit: Some(500), ..Default::default() };
    let prompts = registry
        .list_prompts(&who, &query)?
        .items
        .into_iter()
        .map(|p| Releasable { name: p.name, latest: p.latest_version, labels: p.labels })
        .collect();
    Ok(ReleasesData { releases, prompts })
}

#[server(input = leptos::server_fn::codec::Json, endpoint = "console/review_release")]
pub async fn review_release(label: String, prompts: BTreeMap<String, i64>) -> Result<ReleaseReview, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    domain::names::validate_label(&label).map_err(|e| AppError::invalid(e.0))?;
    if prompts.is_empty() {
        return Err(AppError::invalid("Pick at least one prompt to release, with the version it should serve."));
    }
    let mut items = Vec::new();
    for (prompt, target) in prompts {
        let exact = domain::model::Selector { version: Some(target), ..Default::default() };
        registry.resolve(&who, &prompt, &exact).await?;
        let current = registry.labels(&who, &prompt).await?.labels.get(&label).copied();
        let comparison = match current {
            Some(c) => Some(registry.compare(&who, &prompt, c, target, false).await?),
            None => None,
        };
        let gate_refusal = registry.gate_refusal(&who, &prompt, &label, target).await?;
        let affected = registry.affected_by(&who, &prompt, &label)?;
        items.push(ReleaseItem { prompt, current, target, comparison, gate_refusal, affected });
    }
    let policy = registry.label_policy(&who, &label).await?;
    Ok(ReleaseReview { label, policy, items })
}

#[server(input = leptos::server_fn::codec::Json, endpoint = "console/create_release")]
pub async fn create_release(
    label: String,
    prompts: BTreeMap<String, i64>,
    reason: String,
) -> Result<ReleaseOutcome, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.create_release(&who, domain::model::NewRelease { label, prompts, reason }).await?)
}

#[server(endpoint = "console/rollback_release")]
pub async fn rollback_release(id: String) -> Result<ReleaseOutcome, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.rollback_release(&who, &id, String::new()).await?)
}

#[component]
pub fn ReleasesPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_releases());
    let can_release = me().can(Action::Write);
    view! {
        <div class="page-head">
            <div>
                <h1>"Releases"</h1>
                <p class="description">"Move one label on several prompts together: they go live together, and come back together."</p>
            </div>
        </div>
        <Transition fallback=|| loading("the releases")>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => view! {
                        {if can_release {
                            view! { <ReleaseBuilder prompts=d.prompts.clone()/> }.into_any()
                        } else {
                            view! { <p class="hint">"You can read the releases. Releasing needs the editor role (or publisher, for protected labels)."</p> }.into_any()
                        }}
                        <ReleaseList releases=d.releases can_release/>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Pick prompts and versions for one label, review, confirm: an island.
#[island(lazy)]
fn ReleaseBuilder(prompts: Vec<Releasable>) -> impl IntoView {
    crate::mark_hydrated();
    let label = RwSignal::new("stable".to_string());
    let reason = RwSignal::new(String::new());
    // Prompt -> the version picked (absent: not in the release).
    let picked = RwSignal::new(BTreeMap::<String, i64>::new());
    let review = ServerAction::<ReviewRelease>::new();
    let release = ServerAction::<CreateRelease>::new();
    let busy = move || release.pending().get();
    let rows = prompts.clone();
    view! {
        <section class="card" aria-labelledby="new-release-title">
            <h2 id="new-release-title">"New release"</h2>
            <form class="release-builder" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                review.dispatch(ReviewRelease { label: label.get_untracked(), prompts: picked.get_untracked() });
            }>
                <label for="release-label">"Label to move"</label>
                <input id="release-label" prop:value=move || label.get() on:input=move |ev| label.set(event_target_value(&ev))/>
                <table class="release-picks">
                    <caption>"Tick each prompt to release and choose the version its label should serve."</caption>
                    <thead><tr><th scope="col">"Release"</th><th scope="col">"Prompt"</th><th scope="col">"Version"</th><th scope="col">"Serves now"</th></tr></thead>
                    <tbody>
                        {rows.into_iter().map(|p| {
                            let (name, checkbox_name, version_name) = (p.name.clone(), p.name.clone(), p.name.clone());
                            let id = format!("pick-{}", p.name.replace('/', "-"));
                            let version_id = format!("{id}-version");
                            let latest = p.latest;
                            let now = p.labels.iter().map(|(l, v)| format!("{l} v{v}")).collect::<Vec<_>>().join(", ");
                            view! {
                                <tr>
                                    <td><input type="checkbox" id=id.clone()
                                        prop:checked=move || picked.with(|m| m.contains_key(&checkbox_name))
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            picked.update(|m| { if on { m.insert(name.clone(), latest); } else { m.remove(&name); } });
                                        }/></td>
                                    <td><label for=id>{p.name.clone()}</label></td>
                                    <td>
                                        <label class="visually-hidden" for=version_id.clone()>{format!("Version of {}", p.name)}</label>
                                        <input type="number" class="narrow" id=version_id min="1" max=latest.to_string()
                                            prop:value=move || picked.with(|m| m.get(&version_name).copied().unwrap_or(latest)).to_string()
                                            on:input={
                                                let name = p.name.clone();
                                                move |ev| {
                                                    if let Ok(v) = event_target_value(&ev).parse::<i64>() {
                                                        picked.update(|m| { m.insert(name.clone(), v); });
                                                    }
                                                }
                                            }/>
                                    </td>
                                    <td>{if now.is_empty() { "—".to_string() } else { now }}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
                <button type="submit" disabled=move || picked.with(BTreeMap::is_empty)>
                    {move || if review.pending().get() { "Preparing…".to_string() } else {
                        format!("Review the release ({} prompt{})", picked.with(BTreeMap::len), if picked.with(BTreeMap::len) == 1 { "" } else { "s" })
                    }}
                </button>
            </form>
            {move || review.value().get().map(|result| match result {
                Err(error) => view! { <ErrorNote error/> }.into_any(),
                Ok(r) => {
                    let blocked: Vec<String> = r.items.iter().filter(|i| i.gate_refusal.is_some()).map(|i| i.prompt.clone()).collect();
                    let rules = crate::pages::history::policy_words(&r.label, &r.policy);
                    let moves: BTreeMap<String, i64> = r.items.iter().map(|i| (i.prompt.clone(), i.target)).collect();
                    let count = moves.len();
                    let button = if r.policy.require_approval {
                        format!("Ask for approval to release {count} prompts to {}", r.label)
                    } else {
                        format!("Release {count} prompts to {}", r.label)
                    };
                    let release_label = r.label.clone();
                    view! {
                        <div class="review" role="region" aria-label="Review the release">
                            <p class="review-headline">{format!("{count} prompt{} will move {} together, or none will.", if count == 1 { "" } else { "s" }, r.label)}</p>
                            {(!rules.is_empty()).then(|| view! { <p class="hint policy-rules">{rules}</p> })}
                            {r.items.into_iter().map(|i| view! {
                                <div class="release-item">
                                    <h3>{i.prompt.clone()}</h3>
                                    <p>{match i.current {
                                        Some(c) if c == i.target => format!("{} already serves version {c}.", r.label),
                                        Some(c) => format!("{} serves version {c} now; after the release, version {}.", r.label, i.target),
                                        None => format!("A new label here: it will serve version {}.", i.target),
                                    }}</p>
                                    {i.gate_refusal.clone().map(|why| view! { <p class="error gate" role="alert">"Blocked: " {why} "."</p> })}
                                    {(!i.affected.is_empty()).then(|| view! {
                                        <p class="hint">{format!("Also changes what these prompts serve (they include it): {}.",
                                            i.affected.iter().map(|(p, l)| format!("{p} ({})", l.join(", "))).collect::<Vec<_>>().join(", "))}</p>
                                    })}
                                    {i.comparison.map(|c| view! {
                                        <SideBySide rows=c.rows old_title=format!("Now: version {}", c.from)
                                            new_title=format!("After: version {}", c.to) config_changed=c.config_changed/>
                                    })}
                                </div>
                            }).collect_view()}
                            {if blocked.is_empty() {
                                view! {
                                    <form class="confirm" on:submit=move |ev: leptos::ev::SubmitEvent| {
                                        ev.prevent_default();
                                        release.dispatch(CreateRelease { label: release_label.clone(), prompts: moves.clone(), reason: reason.get_untracked() });
                                    }>
                                        <label for="release-reason">"Why? (kept with the release)"</label>
                                        <input id="release-reason" placeholder="e.g. New refund policy, all assistants" prop:value=move || reason.get()
                                            on:input=move |ev| reason.set(event_target_value(&ev))/>
                                        <button type="submit" class="primary" disabled=busy>{move || if busy() { "Releasing…".to_string() } else { button.clone() }}</button>
                                        <button type="button" on:click=move |_| review.clear()>"Cancel"</button>
                                    </form>
                                }.into_any()
                            } else {
                                view! { <p class="error" role="alert">{format!("Nothing can be released until {} pass{} the label's evaluation gate: run the suite on those versions, or leave them out.", blocked.join(", "), if blocked.len() == 1 { "es" } else { "" })}</p> }.into_any()
                            }}
                        </div>
                    }.into_any()
                }
            })}
            {move || release.value().get().map(|result| match result {
                Err(error) => view! { <ErrorNote error/> }.into_any(),
                Ok(ReleaseOutcome::Released(r)) => {
                    crate::auth::reload_to(&format!("/releases?released={}", r.id));
                    view! { <p class="success" role="status">{format!("Released: {} now serves the new versions.", r.label)}</p> }.into_any()
                }
                Ok(ReleaseOutcome::Requested(q)) => view! {
                    <p class="success" role="status">{format!("The release needs approval: another publisher or admin will find request {} in their approvals, and every prompt moves when they approve it.", q.id)}</p>
                }.into_any(),
            })}
        </section>
    }
}

#[component]
fn ReleaseList(releases: Vec<Release>, can_release: bool) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="releases-title">
            <h2 id="releases-title">"Recent releases"</h2>
            {if releases.is_empty() {
                view! { <p class="empty">"No release yet."</p> }.into_any()
            } else {
                view! {
                    <table class="releases">
                        <caption class="visually-hidden">"Releases, newest first"</caption>
                        <thead><tr><th scope="col">"When"</th><th scope="col">"Label"</th><th scope="col">"Prompts"</th><th scope="col">"By"</th><th scope="col">"Reason"</th><th scope="col">"Roll back"</th></tr></thead>
                        <tbody>
                            {releases.into_iter().map(|r| {
                                let moves = r.moves.iter().map(|m| format!("{} v{} (was {})", m.prompt, m.version,
                                    m.previous_version.map_or("none".into(), |v| format!("v{v}")))).collect::<Vec<_>>().join("; ");
                                let state = match (&r.rollback_of, &r.rolled_back_by) {
                                    (Some(of), _) => Some(format!("Rollback of {of}")),
                                    (None, Some(by)) => Some(format!("Rolled back by {by}")),
                                    _ => None,
                                };
                                let can_roll_back = can_release && r.rolled_back_by.is_none() && r.rollback_of.is_none();
                                view! {
                                    <tr>
                                        <td><Time at=r.at.clone()/></td>
                                        <td>{r.label.clone()}</td>
                                        <td>{moves}</td>
                                        <td>{r.created_by.clone()}</td>
                                        <td>{r.reason.clone()}</td>
                                        <td>{match (can_roll_back, state) {
                                            (true, _) => view! { <RollbackButton id=r.id.clone() label=r.label.clone()/> }.into_any(),
                                            (false, Some(s)) => view! { <span>{s}</span> }.into_any(),
                                            (false, None) => view! { <span>"—"</span> }.into_any(),
                                        }}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
            <p class="hint"><A href="/approvals">"Releases waiting for approval"</A>" are in the approvals."</p>
        </section>
    }
}

/// Takes a release back in one click, every prompt together.
#[island]
fn RollbackButton(id: String, label: String) -> impl IntoView {
    crate::mark_hydrated();
    let rollback = ServerAction::<RollbackRelease>::new();
    let text = format!("Roll back (every prompt back on {label})");
    view! {
        <button type="button" disabled=move || rollback.pending().get()
            on:click=move |_| { rollback.dispatch(RollbackRelease { id: id.clone() }); }>
            {move || if rollback.pending().get() { "Rolling back…".to_string() } else { text.clone() }}
        </button>
        {move || rollback.value().get().map(|result| match result {
            Err(error) => view! { <ErrorNote error/> }.into_any(),
            Ok(ReleaseOutcome::Released(r)) => {
                crate::auth::reload_to(&format!("/releases?rolled_back={}", r.id));
                view! { <span role="status">"Rolled back."</span> }.into_any()
            }
            Ok(ReleaseOutcome::Requested(q)) => view! {
                <span role="status">{format!("Rolling back needs approval: request {} waits in the approvals.", q.id)}</span>
            }.into_any(),
        })}
    }
}
