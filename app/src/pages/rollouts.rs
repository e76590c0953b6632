//! A gradual rollout: a label moved to a new version step by step while a judge compares
//! the two versions in production. The page shows both versions side by side, a chart
//! per guard (old against new, step by step, with the line the new one must not cross),
//! what the judge decided and why in plain words, and the buttons a person may use now.
//! It follows the rollout live (an island asks again every two seconds) until it ends.
//! Also here: the plan in words, for the release review and the pages that mention a
//! rollout.

use domain::access::Action;
use domain::names::STABLE;
use domain::rollout::{Guard, Metric, Outcome, Rollout, RolloutOutcome, RolloutStatus, SplitBrief, StepView, plain};
use domain::telemetry::VersionMetrics;
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::auth::me;
use crate::error::AppError;
use crate::widgets::{ErrorNote, Time, dollars, loading, percent};

/// What a person does to a running or paused rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutAction {
    Pause,
    Resume,
    Advance,
    Abort,
}

#[server(endpoint = "console/get_rollout")]
pub async fn get_rollout(id: String) -> Result<Rollout, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.rollout(&who, &id).await?)
}

/// Starts a rollout with the safe defaults (`NewRollout::new`), or opens a request when
/// the label needs approval.
#[server(endpoint = "console/start_rollout")]
pub async fn start_rollout(
    name: String,
    label: String,
    version: i64,
    reason: String,
) -> Result<RolloutOutcome, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let plan = domain::rollout::NewRollout::new(&label, version, &reason);
    Ok(registry.start_rollout(&who, &name, plan).await?)
}

#[server(input = leptos::server_fn::codec::Json, endpoint = "console/change_rollout")]
pub async fn change_rollout(id: String, action: RolloutAction, reason: String) -> Result<Rollout, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(match action {
        RolloutAction::Pause => registry.pause_rollout(&who, &id, &reason).await?,
        RolloutAction::Resume => registry.resume_rollout(&who, &id, &reason).await?,
        RolloutAction::Advance => registry.advance_rollout(&who, &id, &reason).await?,
        RolloutAction::Abort => registry.abort_rollout(&who, &id, &reason).await?,
    })
}

// ---------------------------------------------------------------- the plan in words

/// "10 minutes", "1 hour", "30 seconds".
pub fn duration_words(seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

/// "5 % of users first, then 25 %, 50 %, then everyone".
pub fn steps_words(steps: &[u32]) -> String {
    let Some((first, rest)) = steps.split_first() else { return String::new() };
    let middle: Vec<String> = rest.iter().filter(|w| **w < 100).map(|w| format!("{w} %")).collect();
    let mut words = format!("{first} % of users first");
    if !middle.is_empty() {
        words += &format!(", then {}", middle.join(", "));
    }
    words + ", then everyone"
}

/// A guard as the condition that takes the rollout back: "if it gets 25 % slower".
pub fn guard_condition(guard: &Guard) -> String {
    match guard.check() {
        Ok((Metric::ErrorRate, m)) => format!("if errors rise by more than {} points", plain(m * 100.0)),
        Ok((Metric::LatencyP95, m)) => format!("if it gets {} % slower", plain((m - 1.0) * 100.0)),
        Ok((Metric::CostPerCall, m)) => format!("if it costs {} % more per call", plain((m - 1.0) * 100.0)),
        Ok((Metric::Score(name), m)) => format!("if the {name} score falls by more than {}", plain(m)),
        Err(_) => format!("if {} gets worse", guard.metric),
    }
}

/// The whole plan in three sentences a product manager reads without statistics.
pub fn plan_words(
    base: i64,
    candidate: i64,
    steps: &[u32],
    step_seconds: u64,
    min_samples: u64,
    guards: &[Guard],
) -> [String; 3] {
    let conditions: Vec<String> = guards.iter().map(guard_condition).collect();
    let back = match conditions.as_slice() {
        [] => "Nothing takes it back by itself: watch it and abort it if needed.".to_owned(),
        [one] => format!("It goes back to v{base} by itself {one}."),
        [init @ .., last] => format!("It goes back to v{base} by itself {}, or {last}.", init.join(", ")),
    };
    [
        format!("v{candidate} goes to {}.", steps_words(steps)),
        format!(
            "Each step lasts at least {} and until both versions have had {min_samples} calls in it.",
            duration_words(step_seconds)
        ),
        back,
    ]
}

/// "stable: v3 for 75 %, v5 for 25 %".
pub fn split_words(label: &str, base: Option<i64>, split: &SplitBrief) -> String {
    let new = format!("v{} for {} %", split.candidate_version, split.weight);
    match base {
        Some(b) => format!("{label}: v{b} for {} %, {new}", 100 - split.weight.min(100)),
        None => format!("{label}: {new}"),
    }
}

/// The live rollouts of a prompt, each linking to its page.
#[component]
pub fn LiveSplits(
    splits: std::collections::BTreeMap<String, SplitBrief>,
    labels: std::collections::BTreeMap<String, i64>,
) -> impl IntoView {
    (!splits.is_empty()).then(|| {
        view! {
            <ul class="live-splits" aria-label="Gradual rollouts running now">
                {splits.into_iter().map(|(label, split)| {
                    let words = split_words(&label, labels.get(&label).copied(), &split);
                    view! { <li><a class="split" href=format!("/rollouts/{}", split.id)>{words}</a>
                        " " <span class="hint">"gradual rollout"</span></li> }
                }).collect_view()}
            </ul>
        }
    })
}

// ---------------------------------------------------------------- the page

#[component]
pub fn RolloutPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id")).unwrap_or_default());
    let rollout = Resource::new(move || id.get(), get_rollout);
    view! {
        <Transition fallback=|| loading("the rollout")>
            {move || Suspend::new(async move {
                match rollout.await {
                    Ok(r) => view! { <RolloutView rollout=r/> }.into_any(),
                    Err(error) => view! {
                        <h1>"Gradual rollout"</h1>
                        <ErrorNote error/>
                        <p class="hint">"Open the prompt and follow the link of its rollout, or look for it in the prompt's History and releases."</p>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn RolloutView(rollout: Rollout) -> impl IntoView {
    let me = me();
    let can_write = me.can(Action::Write);
    // Resuming and advancing show the new version to more people: the label's rules
    // apply, as for a move (`stable` needs a publisher).
    let can_move = can_write && (rollout.label != STABLE || me.can(Action::MoveProtectedLabel));
    let r = rollout.clone();
    let plan = plan_words(r.base_version, r.candidate_version, &r.steps, r.step_seconds, r.min_samples, &r.guards);
    let prompt_href = format!("/prompts/{}", r.prompt);
    let history_href = format!("/history/{}", r.prompt);
    let production_href = format!("/production/{}", r.prompt);
    let title = format!("Gradual rollout of {}: v{} → v{}", r.label, r.base_version, r.candidate_version);
    let reason = (!r.reason.is_empty()).then(|| format!(" · “{}”", r.reason));
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs"><A href="/">"Prompts"</A> " / " <A href=prompt_href>{r.prompt}</A>
                    " / " <A href=history_href.clone()>"History and releases"</A> " /"</p>
                <h1>{title}</h1>
                <p class="description">"Started by " {r.created_by} " · " <Time at=r.created_at/> {reason}
                    " · " <code>{r.id}</code></p>
            </div>
            <div class="head-actions">
                <A href=production_href attr:class="button">"Production"</A>
                <A href=history_href attr:class="button">"History and releases"</A>
            </div>
        </div>
        <RolloutLive rollout can_write can_move/>
        <section class="card" aria-labelledby="plan-title">
            <h2 id="plan-title">"The plan"</h2>
            <ul class="plan">{plan.into_iter().map(|s| view! { <li>{s}</li> }).collect_view()}</ul>
            <p class="hint">"A guard counts only when the difference is clear enough not to be chance, so a few unlucky calls never take it back. \
                Any person with write access may pause or abort it; resuming and advancing follow the label's rules, like a move. Every change is in the audit log."</p>
        </section>
    }
}

/// Everything that changes while the rollout runs: its state, the buttons, both versions'
/// figures, the charts and the judge's decisions. Asks the server again every two
/// seconds while the rollout is running or paused, and stops once it has ended.
#[island(lazy)]
fn RolloutLive(rollout: Rollout, can_write: bool, can_move: bool) -> impl IntoView {
    crate::mark_hydrated();
    let id = StoredValue::new(rollout.id.clone());
    let current = RwSignal::new(rollout);
    let refresh_error = RwSignal::new(None::<AppError>);
    let refresh = move || {
        leptos::task::spawn_local(async move {
            match get_rollout(id.get_value()).await {
                Ok(r) => {
                    current.set(r);
                    refresh_error.set(None);
                }
                Err(e) => refresh_error.set(Some(e)),
            }
        })
    };
    let timer = StoredValue::new(None::<leptos::prelude::IntervalHandle>);
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || {
                if current.with_untracked(|r| r.status.is_live()) {
                    refresh();
                } else if let Some(h) = timer.get_value() {
                    h.clear();
                }
            },
            std::time::Duration::from_secs(2),
        );
        timer.set_value(handle.ok());
        on_cleanup(move || {
            if let Some(h) = timer.get_value() {
                h.clear();
            }
        });
    });
    let change = ServerAction::<ChangeRollout>::new();
    Effect::new(move |_| match change.value().get() {
        Some(Ok(r)) => current.set(r),
        // Refused (someone or the judge changed it first): show it as it is now.
        Some(Err(_)) => refresh(),
        None => {}
    });
    let reason = RwSignal::new(String::new());
    let status = move || current.with(|r| r.status);
    let act = move |action: RolloutAction| {
        change.dispatch(ChangeRollout { id: id.get_value(), action, reason: reason.get_untracked() });
    };
    let advance_words = move || {
        current.with(|r| match r.steps.get(r.step as usize + 1) {
            Some(100) | None => format!("Finish now: everyone gets v{}", r.candidate_version),
            Some(w) => format!("Go to the next step now ({w} %)"),
        })
    };
    let controls = can_write.then(|| {
        view! {
            <div class="rollout-controls" hidden=move || !status().is_live()>
                <label for="rollout-reason">"Why? (kept in the audit log)"</label>
                <input id="rollout-reason" placeholder="e.g. Support saw complaints" prop:value=move || reason.get()
                    on:input=move |ev| reason.set(event_target_value(&ev))/>
                <div class="actions">
                    {move || (status() == RolloutStatus::Running).then(|| view! {
                        <button type="button" disabled=move || change.pending().get() on:click=move |_| act(RolloutAction::Pause)>"Pause"</button>
                    })}
                    {move || (can_move && status() == RolloutStatus::Paused).then(|| view! {
                        <button type="button" class="primary" disabled=move || change.pending().get() on:click=move |_| act(RolloutAction::Resume)>"Resume"</button>
                    })}
                    {move || (can_move && status().is_live()).then(|| view! {
                        <button type="button" disabled=move || change.pending().get() on:click=move |_| act(RolloutAction::Advance)>{advance_words}</button>
                    })}
                    {move || status().is_live().then(|| view! {
                        <button type="button" class="danger" disabled=move || change.pending().get() on:click=move |_| act(RolloutAction::Abort)>
                            {move || format!("Stop and go back to v{}", current.with(|r| r.base_version))}
                        </button>
                    })}
                </div>
                {(!can_move).then(|| view! { <p class="hint">"Resuming and advancing this label needs the publisher role."</p> })}
            </div>
        }
    });
    view! {
        <section class=move || format!("card rollout-state state-{}", status().as_str()) aria-labelledby="state-title">
            <h2 id="state-title">"Where it stands"</h2>
            <div role="status">
                <p class="state-headline">{move || current.with(headline)}</p>
                {move || current.with(|r| r.note.clone()).map(|note| view! { <p class="state-note">{sentence(&note)}</p> })}
            </div>
            <p class="hint">{move || current.with(next_words)}</p>
            {controls}
            {move || change.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error/> })}
            {move || refresh_error.get().map(|error| view! {
                <ErrorNote error/>
                <p class="hint">"The figures below may be out of date; the page keeps trying every two seconds."</p>
            })}
        </section>
        {move || {
            let r = current.get();
            view! {
                <ArmsTable base=r.arms.base.clone() candidate=r.arms.candidate.clone() status=r.status/>
                <section class="card" aria-labelledby="guards-title">
                    <h2 id="guards-title">"The guards, step by step"</h2>
                    {if r.history.is_empty() {
                        view! { <p class="empty">"No step has started yet."</p> }.into_any()
                    } else {
                        view! {
                            <div class="charts">
                                {r.guards.iter().map(|g| view! {
                                    <GuardChart guard=g.clone() history=r.history.clone() base=r.base_version candidate=r.candidate_version/>
                                }).collect_view()}
                            </div>
                        }.into_any()
                    }}
                </section>
                <Timeline rollout=r/>
            }
        }}
    }
}

/// The state in one sentence: who gets which version now.
fn headline(r: &Rollout) -> String {
    let (base, new) = (r.base_version, r.candidate_version);
    let of = r.steps.len();
    match r.status {
        RolloutStatus::Running => {
            format!("Running: v{new} serves {} % of users, v{base} the rest (step {} of {of}).", r.weight, r.step + 1)
        }
        RolloutStatus::Paused => format!(
            "Paused, waiting for a person: v{new} still serves {} % of users, v{base} the rest (step {} of {of}).",
            r.weight,
            r.step + 1
        ),
        RolloutStatus::Completed => format!("Completed: {} now serves v{new} to everyone.", r.label),
        RolloutStatus::RolledBack => {
            format!("Rolled back automatically: {} serves v{base} to everyone again.", r.label)
        }
        RolloutStatus::Aborted => format!("Aborted: {} serves v{base} to everyone again.", r.label),
    }
}

/// What happens next, or what a person may do.
fn next_words(r: &Rollout) -> String {
    let (base, new) = (r.base_version, r.candidate_version);
    match r.status {
        RolloutStatus::Running => {
            let now = r.history.last();
            let count = |f: fn(&StepView) -> i64| now.map_or(0, f);
            format!(
                "The next decision comes once the step has lasted {} and both versions have had {} calls in it \
                 (so far v{base}: {}, v{new}: {}). This page updates by itself.",
                duration_words(r.step_seconds),
                r.min_samples,
                count(|s| s.base.count),
                count(|s| s.candidate.count),
            )
        }
        RolloutStatus::Paused => format!(
            "Nothing moves until a person decides: resume it to let the judge carry on, go to the next step, \
             or stop it to serve v{base} to everyone."
        ),
        RolloutStatus::Completed => "Nothing else to do. The label history shows the move.".to_owned(),
        RolloutStatus::RolledBack => format!(
            "Nothing else to do: users are back on v{base}. Look at v{new}'s calls on the Production page, \
             fix the prompt, and start a new rollout from History and releases."
        ),
        RolloutStatus::Aborted => {
            format!("Nothing else to do: users are back on v{base}. Start a new rollout from History and releases.")
        }
    }
}

/// Words with a capital first letter.
fn capital(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A service message as a sentence: capital first, full stop last.
pub fn sentence(s: &str) -> String {
    let mut out = capital(s);
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Both versions side by side over the whole rollout.
#[component]
fn ArmsTable(base: VersionMetrics, candidate: VersionMetrics, status: RolloutStatus) -> impl IntoView {
    let mut scores: Vec<String> = base.scores.keys().chain(candidate.scores.keys()).cloned().collect();
    scores.sort();
    scores.dedup();
    let figures = |m: &VersionMetrics| -> Vec<String> {
        let seen = m.count > 0;
        let mut out = vec![
            m.count.to_string(),
            if seen { percent(m.error_rate) } else { "—".into() },
            m.latency_ms.p95.map(|l| format!("{l:.0} ms")).unwrap_or_else(|| "—".into()),
            m.cost_per_call.map(dollars).unwrap_or_else(|| if seen { "unpriced".into() } else { "—".into() }),
        ];
        out.extend(scores.iter().map(|n| {
            m.scores.get(n).map(|s| format!("{:.2} ({} scores)", s.mean, s.count)).unwrap_or_else(|| "—".into())
        }));
        out
    };
    let mut names: Vec<String> =
        ["Calls", "Error rate", "Latency (95th percentile)", "Cost per call"].map(String::from).to_vec();
    names.extend(scores.iter().map(|n| format!("Score: {n}")));
    let (old, new) = (figures(&base), figures(&candidate));
    let serving = if status == RolloutStatus::Completed { "served before" } else { "what the label serves" };
    view! {
        <section class="card" aria-labelledby="arms-title">
            <h2 id="arms-title">"Both versions side by side"</h2>
            <p class="hint">"Calls that applications reported for this rollout, since it started."</p>
            <div class="table-scroll">
                <table class="arms">
                    <caption class="visually-hidden">"Figures of the old and the new version during the rollout"</caption>
                    <thead><tr>
                        <th scope="col">"Figure"</th>
                        <th scope="col">{format!("v{} ({serving})", base.version)}</th>
                        <th scope="col">{format!("v{} (new)", candidate.version)}</th>
                    </tr></thead>
                    <tbody>
                        {names.into_iter().zip(old.into_iter().zip(new)).map(|(name, (o, n))| view! {
                            <tr><th scope="row">{name}</th><td>{o}</td><td>{n}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

const W: f64 = 420.0;
const H: f64 = 200.0;
const PAD: f64 = 44.0;

/// One guard's metric per step: the old version, the new one, and the limit the new one
/// must stay within (drawn from the old one's figure and the guard's margin).
#[component]
fn GuardChart(guard: Guard, history: Vec<StepView>, base: i64, candidate: i64) -> impl IntoView {
    let Ok((metric, margin)) = guard.check() else { return ().into_any() };
    let format = |v: f64| figure(&metric, v);
    let limit = |b: f64| match metric {
        Metric::ErrorRate => b + margin,
        Metric::LatencyP95 | Metric::CostPerCall => b * margin,
        Metric::Score(_) => b - margin,
    };
    let rows: Vec<(String, Option<f64>, Option<f64>)> = history
        .iter()
        .map(|s| (format!("step {} · {} %", s.step + 1, s.weight), s.base.value(&metric), s.candidate.value(&metric)))
        .collect();
    let lines: [(String, &'static str, Vec<Option<f64>>); 3] = [
        (format!("v{base}"), "series series-0", rows.iter().map(|r| r.1).collect()),
        (format!("v{candidate} (new)"), "series series-1", rows.iter().map(|r| r.2).collect()),
        ("limit".into(), "series limit", rows.iter().map(|r| r.1.map(limit)).collect()),
    ];
    let values = || lines.iter().flat_map(|l| l.2.iter().flatten().copied());
    let (lo, hi) = (values().fold(0.0_f64, f64::min), values().fold(0.0_f64, f64::max));
    let (lo, hi) = if hi > lo { (lo, hi + (hi - lo) * 0.1) } else { (0.0, 1.0) };
    let n = rows.len();
    let x = |i: usize| if n < 2 { W / 2.0 } else { PAD + (W - 2.0 * PAD) * i as f64 / (n - 1) as f64 };
    let y = |v: f64| PAD / 2.0 + (1.0 - (v - lo) / (hi - lo)) * (H - 1.5 * PAD);
    let title = sentence(&format!("goes back {}", guard_condition(&guard)));
    let summary = format!(
        "{}: {}",
        metric.words(),
        rows.iter()
            .map(|(step, b, c)| {
                let f = |v: &Option<f64>| v.map(format).unwrap_or_else(|| "no calls".into());
                format!("{step}: v{base} {}, v{candidate} {}", f(b), f(c))
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    let first_label = rows.first().map(|r| r.0.clone()).unwrap_or_default();
    let last_label = (n > 1).then(|| rows.last().map(|r| r.0.clone()).unwrap_or_default());
    view! {
        <figure class="card chart-card">
            <figcaption>{capital(&metric.words())} <span class="hint">{format!(" · {title}")}</span></figcaption>
            <svg class="chart trend" viewBox=format!("0 0 {W} {H}") role="img" aria-label=summary>
                <line x1=PAD y1=PAD / 2.0 x2=W - PAD y2=PAD / 2.0 class="grid"/>
                <line x1=PAD y1=H - PAD x2=W - PAD y2=H - PAD class="grid"/>
                <text x="2" y=PAD / 2.0 + 4.0 class="axis">{format(hi)}</text>
                <text x="2" y=H - PAD + 4.0 class="axis">{format(lo)}</text>
                <text x=x(0) y=H - 12.0 class="axis" text-anchor={if n < 2 { "middle" } else { "start" }}>{first_label}</text>
                {last_label.map(|l| view! { <text x=W - PAD y=H - 12.0 class="axis" text-anchor="end">{l}</text> })}
                {lines.iter().map(|(name, class, values)| {
                    let points: Vec<(f64, f64, f64)> =
                        values.iter().enumerate().filter_map(|(i, v)| v.map(|v| (x(i), y(v), v))).collect();
                    let line: String = points.iter().map(|(px, py, _)| format!("{px:.1},{py:.1} ")).collect();
                    let dot = class.replace("series ", "dot ");
                    view! {
                        <polyline points=line class=class.to_string()/>
                        {points.into_iter().map(|(px, py, v)| view! {
                            <circle cx=px cy=py r="3" class=dot.clone()><title>{format!("{name}: {}", format(v))}</title></circle>
                        }).collect_view()}
                    }
                }).collect_view()}
            </svg>
            <ul class="legend">
                <li><span class="swatch series-0" aria-hidden="true"></span>{format!("v{base}")}</li>
                <li><span class="swatch series-1" aria-hidden="true"></span>{format!("v{candidate} (new)")}</li>
                <li><span class="swatch limit" aria-hidden="true"></span>"the limit for the new version"</li>
            </ul>
        </figure>
    }
    .into_any()
}

/// A guard's figure as people read it: 2.0%, 830 ms, $0.00120.
fn figure(metric: &Metric, v: f64) -> String {
    match metric {
        Metric::ErrorRate => percent(v),
        Metric::LatencyP95 => format!("{v:.0} ms"),
        Metric::CostPerCall => dollars(v),
        Metric::Score(_) => format!("{v:.2}"),
    }
}

/// What happened, newest first: steps begun, the judge's decisions, the end.
#[component]
fn Timeline(rollout: Rollout) -> impl IntoView {
    let r = rollout;
    // (when, badge class, badge words, text)
    let mut entries: Vec<(String, &'static str, &'static str, String)> = Vec::new();
    for (i, s) in r.history.iter().enumerate() {
        let text = if i == 0 {
            format!("Started: v{} serves {} % of users.", r.candidate_version, s.weight)
        } else if r.history[i - 1].step == s.step {
            format!("Resumed at step {}: v{} serves {} % of users.", s.step + 1, r.candidate_version, s.weight)
        } else {
            format!("Step {}: v{} serves {} % of users.", s.step + 1, r.candidate_version, s.weight)
        };
        entries.push((s.started_at.clone(), "outcome-step", "step", text));
    }
    for v in &r.verdicts {
        let (class, words) = match v.outcome {
            Outcome::Pass => ("outcome-pass", "within the limit"),
            Outcome::Fail => ("outcome-fail", "worse than allowed"),
            Outcome::Insufficient => ("outcome-insufficient", "not enough calls"),
        };
        entries.push((v.at.clone(), class, words, sentence(&v.message)));
    }
    if let Some(end) = &r.ended_at {
        let class = if r.status == RolloutStatus::Completed { "outcome-pass" } else { "outcome-fail" };
        entries.push((end.clone(), class, r.status.words(), headline(&r)));
    }
    // Instants share one format, so they sort as text; at one instant the end comes first.
    entries.reverse();
    entries.sort_by(|a, b| b.0.cmp(&a.0));
    view! {
        <section class="card" aria-labelledby="timeline-title">
            <h2 id="timeline-title">"What happened, newest first"</h2>
            <ol class="verdicts">
                {entries.into_iter().map(|(at, class, words, text)| view! {
                    <li>
                        <Time at/>
                        " " <span class=format!("badge {class}")>{words}</span>
                        " " <span>{text}</span>
                    </li>
                }).collect_view()}
            </ol>
        </section>
    }
}

/// A prompt's recent rollouts, newest first, for the History page.
#[component]
pub fn RolloutList(rollouts: Vec<Rollout>) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="rollouts-title">
            <h2 id="rollouts-title">"Gradual rollouts"</h2>
            {if rollouts.is_empty() {
                view! { <p class="empty">"None yet. Review a promotion above and choose “Roll out gradually”."</p> }.into_any()
            } else {
                view! {
                    <table class="rollouts">
                        <caption class="visually-hidden">"This prompt's gradual rollouts, newest first"</caption>
                        <thead><tr>
                            <th scope="col">"Label"</th><th scope="col">"Change"</th><th scope="col">"State"</th>
                            <th scope="col">"Started"</th><th scope="col">"Why it ended or paused"</th>
                        </tr></thead>
                        <tbody>
                            {rollouts.into_iter().map(|r| {
                                let state = if r.status.is_live() {
                                    format!("{} ({} %)", r.status.words(), r.weight)
                                } else {
                                    r.status.words().to_owned()
                                };
                                view! {
                                    <tr>
                                        <td>{r.label.clone()}</td>
                                        <td><a href=format!("/rollouts/{}", r.id)>{format!("v{} → v{}", r.base_version, r.candidate_version)}</a></td>
                                        <td><span class=format!("badge state-{}", r.status.as_str())>{state}</span></td>
                                        <td><Time at=r.created_at.clone()/> " · " {r.created_by.clone()}</td>
                                        <td>{r.note.as_deref().map(sentence).unwrap_or_else(|| "—".into())}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_reads_plainly() {
        let p = domain::rollout::NewRollout::new("stable", 2, "");
        let words = plan_words(1, 2, &p.steps, p.step_seconds, p.min_samples, &p.guards);
        assert_eq!(words[0], "v2 goes to 5 % of users first, then 25 %, 50 %, then everyone.");
        assert_eq!(words[1], "Each step lasts at least 10 minutes and until both versions have had 200 calls in it.");
        assert_eq!(
            words[2],
            "It goes back to v1 by itself if errors rise by more than 2 points, if it gets 25 % slower, \
             or if it costs 10 % more per call."
        );
        assert_eq!(steps_words(&[10, 100]), "10 % of users first, then everyone");
        assert_eq!(duration_words(1), "1 second");
        assert_eq!(duration_words(3600), "1 hour");
        assert_eq!(duration_words(90), "90 seconds");
    }

    #[test]
    fn a_split_in_words() {
        let split = SplitBrief { id: "ro_1".into(), candidate_version: 5, weight: 25 };
        assert_eq!(split_words("stable", Some(3), &split), "stable: v3 for 75 %, v5 for 25 %");
    }
}
