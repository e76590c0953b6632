//! A prompt in production: what its versions did (calls, error rate, p95 latency and cost
//! per call over time, one line per version), stable compared with the other versions
//! side by side, drift in plain words, the budget as a bar, and the recent calls with
//! filters. Everything is rendered on the server; only the budget form is an island.

use std::collections::BTreeMap;

use domain::access::Action;
use domain::model::Page;
use domain::telemetry::{BudgetView, Generation, MetricsView, SeriesPoint, VersionMetrics};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use crate::auth::me;
use crate::error::AppError;
use crate::widgets::{ErrorNote, Time, dollars, loading, percent};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Production {
    pub name: String,
    pub period: String,
    pub metrics: MetricsView,
    pub stable: Option<i64>,
    pub budget: Option<BudgetView>,
    pub calls: Page<Generation>,
}

/// Filters of the recent calls, as the page's query string has them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallFilter {
    pub version: Option<i64>,
    pub status: Option<String>,
    pub drift: Option<String>,
}

/// The periods people pick from: (query value, words, length in hours, interval).
const PERIODS: [(&str, &str, i64, &str); 3] =
    [("24h", "last 24 hours", 24, "5m"), ("7d", "last 7 days", 168, "1h"), ("30d", "last 30 days", 720, "1d")];

#[server(endpoint = "console/get_production")]
pub async fn get_production(name: String, period: String, filter: CallFilter) -> Result<Production, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let (period, _, hours, interval) = PERIODS.iter().find(|p| p.0 == period).copied().unwrap_or(PERIODS[0]);
    let now = service::time::now_us();
    let since = service::time::format_us(now - hours * 3_600_000_000);
    let metrics = registry.metrics(&who, &name, Some(&since), None, Some(interval)).await?;
    let stable = registry.prompt(&who, &name)?.labels.get(domain::names::STABLE).copied();
    let budget = match registry.budget(&who, &name).await {
        Ok(b) => Some(b),
        Err(service::ServiceError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let query = domain::telemetry::GenerationFilter {
        prompt: Some(name.clone()),
        version: filter.version,
        status: filter.status.as_deref().and_then(domain::telemetry::Status::parse),
        drift: filter.drift.as_deref().and_then(domain::telemetry::Drift::parse),
        limit: Some(50),
        ..Default::default()
    };
    let calls = registry.generations(&who, &query).await?;
    Ok(Production { name, period: period.to_owned(), metrics, stable, budget, calls })
}

#[server(endpoint = "console/set_budget")]
pub async fn set_budget(
    name: String,
    window: String,
    limit: String,
    alerts: String,
    on_exceed: String,
) -> Result<BudgetView, AppError> {
    use domain::telemetry::{Budget, BudgetWindow, OnExceed};
    let (who, registry) = crate::auth::ssr::caller().await?;
    let window = BudgetWindow::parse(&window).ok_or_else(|| AppError::invalid("Choose a day, a week or a month."))?;
    let limit: f64 = limit
        .trim()
        .trim_start_matches('$')
        .parse()
        .map_err(|_| AppError::invalid("The limit must be a number of dollars, such as 50 or 12.5."))?;
    let alerts = alerts
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| a.trim_end_matches('%').trim().parse::<f64>().map(|p| p / 100.0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            AppError::invalid("Alerts are percentages of the limit separated by commas, such as 50, 80, 100.")
        })?;
    let on_exceed = OnExceed::parse(&on_exceed).unwrap_or_default();
    Ok(registry.put_budget(&who, &name, Budget { window, limit, alerts, on_exceed }).await?)
}

#[component]
pub fn ProductionPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let name = Memo::new(move |_| params.with(|p| p.get("name")).unwrap_or_default());
    let args = Memo::new(move |_| {
        query.with(|q| {
            let period = q.get("period").unwrap_or_else(|| "24h".into());
            let filter = CallFilter {
                version: q.get("version").and_then(|v| v.parse().ok()),
                status: q.get("status").filter(|s| !s.is_empty()),
                drift: q.get("drift").filter(|s| !s.is_empty()),
            };
            (period, filter)
        })
    });
    let data = Resource::new(move || (name.get(), args.get()), |(n, (p, f))| get_production(n, p, f));
    view! {
        <Transition fallback=|| loading("production figures")>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => view! { <ProductionView data=d filter=args.get_untracked().1/> }.into_any(),
                    Err(error) => view! { <h1>{name.get()}</h1><ErrorNote error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ProductionView(data: Production, filter: CallFilter) -> impl IntoView {
    let can_budget = me().can(Action::MoveProtectedLabel);
    let name = data.name.clone();
    let (prompt_href, crumb) = (format!("/prompts/{name}"), name.clone());
    let period_words = PERIODS.iter().find(|p| p.0 == data.period).map_or("last 24 hours", |p| p.1);
    let series = data.metrics.series.clone();
    let span = (data.metrics.since.clone(), data.metrics.until.clone());
    let total: i64 = data.metrics.versions.iter().map(|v| v.count).sum();
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs"><A href="/">"Prompts"</A> " / " <A href=prompt_href>{crumb}</A> " /"</p>
                <h1>"Production: " {name.clone()}</h1>
                <p class="description">{format!("What each version did in production over the {period_words}: {total} calls.")}</p>
            </div>
            <nav class="head-actions" aria-label="Period">
                {PERIODS.iter().map(|(key, words, _, _)| {
                    let current = *key == data.period;
                    view! { <a class="button" href=format!("/production/{name}?period={key}") aria-current=current.then_some("page")>{*words}</a> }
                }).collect_view()}
            </nav>
        </div>
        <DriftNote versions=data.metrics.versions.clone() stable=data.stable/>
        {if total == 0 {
            view! { <p class="empty">"No calls were reported in this period. Applications report them with POST /api/v1/generations (an app key), or OpenTelemetry."</p> }.into_any()
        } else {
            view! {
                <div class="charts">
                    <TrendChart title="Calls" span=span.clone() series=series.clone() value=|p| Some(p.count as f64) format=|v| format!("{v:.0}")/>
                    <TrendChart title="Error rate" span=span.clone() series=series.clone() value=|p| Some(p.error_rate) format=|v| format!("{:.1}%", v * 100.0)/>
                    <TrendChart title="Latency, 95th percentile" span=span.clone() series=series.clone() value=|p| p.latency_p95_ms format=|v| format!("{v:.0} ms")/>
                    <TrendChart title="Cost per call" span=span.clone() series=series value=|p| p.cost_per_call format=dollars/>
                </div>
                <CompareTable versions=data.metrics.versions.clone() stable=data.stable/>
            }.into_any()
        }}
        <BudgetCard name=name.clone() budget=data.budget.clone() can_budget/>
        <RecentCalls name=name period=data.period.clone() calls=data.calls filter versions=data.metrics.versions/>
    }
}

/// Drift in plain words: "3 calls used a version stable had left".
#[component]
fn DriftNote(versions: Vec<VersionMetrics>, stable: Option<i64>) -> impl IntoView {
    let hash: i64 = versions.iter().map(|v| v.drift_hash_mismatch).sum();
    let stale: i64 = versions.iter().map(|v| v.drift_stale_label).sum();
    if hash == 0 && stale == 0 {
        return ().into_any();
    }
    let calls = |n: i64| if n == 1 { "1 call".to_owned() } else { format!("{n} calls") };
    let serving = stable.map(|v| format!(" (stable serves version {v})")).unwrap_or_default();
    view! {
        <section class="card drift" aria-labelledby="drift-title">
            <h2 id="drift-title">"Production is not running what the registry says"</h2>
            <ul>
                {(stale > 0).then(|| view! { <li>{format!("{} used a version its label had already left{serving}: an application is caching an old version.", calls(stale))}</li> })}
                {(hash > 0).then(|| view! { <li>{format!("{} ran text that differs from the registered version (the content hash does not match): someone changed the prompt outside promptledger.", calls(hash))}</li> })}
            </ul>
            <p class="hint">"Filter the calls below by drift to see which ones."</p>
        </section>
    }
    .into_any()
}

const W: f64 = 420.0;
const H: f64 = 200.0;
const PAD: f64 = 44.0;

/// One metric over the period, a line per version, each point placed at its time.
#[component]
fn TrendChart(
    title: &'static str,
    span: (String, String),
    series: Vec<SeriesPoint>,
    value: fn(&SeriesPoint) -> Option<f64>,
    format: fn(f64) -> String,
) -> impl IntoView {
    use domain::telemetry::utc_micros;
    let (since, until) = (utc_micros(&span.0).unwrap_or(0), utc_micros(&span.1).unwrap_or(1));
    let mut lines: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for p in &series {
        if let (Some(v), Some(t)) = (value(p), utc_micros(&p.start)) {
            lines.entry(p.version).or_default().push((t.max(since), v));
        }
    }
    let max = lines.values().flatten().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let width = (until - since).max(1) as f64;
    let xy = |t: i64, v: f64| {
        (PAD + (W - 2.0 * PAD) * (t - since) as f64 / width, PAD / 2.0 + (1.0 - v / top) * (H - 1.5 * PAD))
    };
    let summary = format!(
        "{title} per version: {}",
        lines
            .iter()
            .map(|(version, pts)| format!(
                "version {version} latest {}",
                pts.last().map(|p| format(p.1)).unwrap_or_default()
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let short = |s: &str| s.get(5..16).unwrap_or(s).replace('T', " ");
    view! {
        <figure class="card chart-card">
            <figcaption>{title}</figcaption>
            <svg class="chart trend" viewBox=format!("0 0 {W} {H}") role="img" aria-label=summary>
                <line x1=PAD y1=PAD / 2.0 x2=W - PAD y2=PAD / 2.0 class="grid"/>
                <line x1=PAD y1=H - PAD x2=W - PAD y2=H - PAD class="grid"/>
                <text x="2" y=PAD / 2.0 + 4.0 class="axis">{format(top)}</text>
                <text x="2" y=H - PAD + 4.0 class="axis">{format(0.0)}</text>
                <text x=PAD y=H - 12.0 class="axis">{short(&span.0)}</text>
                <text x=W - PAD y=H - 12.0 class="axis" text-anchor="end">{short(&span.1)}</text>
                {lines.iter().enumerate().map(|(n, (version, pts))| {
                    let class = format!("series series-{}", n % 6);
                    let points: String = pts.iter().map(|(t, v)| { let (x, y) = xy(*t, *v); format!("{x:.1},{y:.1} ") }).collect();
                    let dots = pts.iter().map(|(t, v)| {
                        let (x, y) = xy(*t, *v);
                        view! { <circle cx=x cy=y r="2.5" class=format!("dot series-{}", n % 6)><title>{format!("v{version}: {}", format(*v))}</title></circle> }
                    }).collect_view();
                    view! { <polyline points=points class=class/>{dots} }
                }).collect_view()}
            </svg>
            <ul class="legend">
                {lines.keys().enumerate().map(|(n, v)| view! { <li><span class=format!("swatch series-{}", n % 6) aria-hidden="true"></span>{format!("v{v}")}</li> }).collect_view()}
            </ul>
        </figure>
    }
}

/// Stable next to every other version, with the difference in words.
#[component]
fn CompareTable(versions: Vec<VersionMetrics>, stable: Option<i64>) -> impl IntoView {
    let mut ordered: Vec<VersionMetrics> = versions.clone();
    // Stable first, then the rest newest first.
    ordered.sort_by_key(|v| (Some(v.version) != stable, -v.version));
    let base = ordered.first().cloned().unwrap_or_default();
    let score_names: Vec<String> = {
        let mut n: Vec<String> = ordered.iter().flat_map(|v| v.scores.keys().cloned()).collect();
        n.sort();
        n.dedup();
        n
    };
    let ratio = |a: Option<f64>, b: Option<f64>, worse_if_higher: bool| -> String {
        match (a, b) {
            (Some(a), Some(b)) if b > 0.0 && (a - b).abs() / b >= 0.005 => {
                let change = (a - b) / b * 100.0;
                let worse = (change > 0.0) == worse_if_higher;
                format!(" ({:+.0}% {})", change, if worse { "worse" } else { "better" })
            }
            _ => String::new(),
        }
    };
    type Row = (String, Box<dyn Fn(&VersionMetrics) -> String>);
    let b2 = base.clone();
    let b3 = base.clone();
    let b4 = base.clone();
    let mut rows: Vec<Row> = vec![
        ("Calls".into(), Box::new(|v: &VersionMetrics| v.count.to_string())),
        (
            "Error rate".into(),
            Box::new(move |v: &VersionMetrics| {
                format!("{}{}", percent(v.error_rate), ratio(Some(v.error_rate), Some(b2.error_rate), true))
            }),
        ),
        (
            "Latency p50".into(),
            Box::new(|v: &VersionMetrics| v.latency_ms.p50.map(|l| format!("{l:.0} ms")).unwrap_or("—".into())),
        ),
        (
            "Latency p95".into(),
            Box::new(move |v: &VersionMetrics| {
                let text = v.latency_ms.p95.map(|l| format!("{l:.0} ms")).unwrap_or("—".into());
                format!("{text}{}", ratio(v.latency_ms.p95, b3.latency_ms.p95, true))
            }),
        ),
        (
            "Cost per call".into(),
            Box::new(move |v: &VersionMetrics| {
                let text = v.cost_per_call.map(dollars).unwrap_or("unpriced".into());
                format!("{text}{}", ratio(v.cost_per_call, b4.cost_per_call, true))
            }),
        ),
        ("Cost".into(), Box::new(|v: &VersionMetrics| dollars(v.cost))),
        ("Calls without a price".into(), Box::new(|v: &VersionMetrics| v.unpriced.to_string())),
        ("Drift".into(), Box::new(|v: &VersionMetrics| v.drift.to_string())),
    ];
    for name in score_names {
        let key = name.clone();
        rows.push((
            format!("Score: {name}"),
            Box::new(move |v: &VersionMetrics| {
                v.scores.get(&key).map(|s| format!("{:.2} ({} scores)", s.mean, s.count)).unwrap_or("—".into())
            }),
        ));
    }
    let heads = ordered
        .iter()
        .map(|v| {
            let tag = if Some(v.version) == stable { " (stable)" } else { "" };
            view! { <th scope="col">{format!("Version {}{tag}", v.version)}</th> }
        })
        .collect_view();
    let base_words = match stable {
        Some(s) if base.version == s => format!("Differences are against version {s}, which stable serves."),
        _ => "Differences are against the newest version with calls.".to_owned(),
    };
    view! {
        <section class="card" aria-labelledby="compare-title">
            <h2 id="compare-title">"Versions side by side"</h2>
            <p class="hint">{base_words}</p>
            <div class="table-scroll">
                <table class="compare-versions">
                    <caption class="visually-hidden">"Production figures of each version"</caption>
                    <thead><tr><th scope="col">"Figure"</th>{heads}</tr></thead>
                    <tbody>
                        {rows.into_iter().map(|(label, cell)| view! {
                            <tr><th scope="row">{label}</th>{ordered.iter().map(|v| view! { <td>{cell(v)}</td> }).collect_view()}</tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

#[component]
fn BudgetCard(name: String, budget: Option<BudgetView>, can_budget: bool) -> impl IntoView {
    let summary = match &budget {
        None => view! { <p class="empty">"No budget is set: spending is not limited."</p> }.into_any(),
        Some(b) => {
            let used = (b.spent / b.limit).clamp(0.0, 1.0);
            let forecast = (b.forecast / b.limit).clamp(0.0, 1.0);
            let window = b.window.as_str();
            let words = format!(
                "{} of {} spent this {window} ({}); at this pace {} by the end of the {window}.",
                dollars(b.spent),
                dollars(b.limit),
                percent(b.spent / b.limit),
                dollars(b.forecast),
            );
            let mode = if b.on_exceed == domain::telemetry::OnExceed::Block {
                "When it is spent, applications are refused this prompt until the window ends."
            } else {
                "When it is spent, people are alerted; applications keep being served."
            };
            view! {
                // SVG, not inline styles: the page's CSP allows no inline style.
                <svg class="budget-bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label=words.clone()>
                    <rect class="track" width="100" height="8"/>
                    <rect class="spent" width=format!("{:.2}", used * 100.0) height="8"/>
                    <line class="forecast" x1=format!("{:.2}", forecast * 100.0) x2=format!("{:.2}", forecast * 100.0) y1="0" y2="8"/>
                </svg>
                <p>{words}</p>
                <p class="hint">{mode}</p>
                {b.blocked.then(|| view! { <p class="error" role="alert">"The budget is spent: applications get 429 budget_exceeded for this prompt. Raise the limit below to serve it again."</p> })}
            }
            .into_any()
        }
    };
    view! {
        <section class="card" aria-labelledby="budget-title">
            <h2 id="budget-title">"Budget"</h2>
            {summary}
            {if can_budget {
                view! { <BudgetForm name budget/> }.into_any()
            } else {
                view! { <p class="hint">"Publishers and administrators set budgets."</p> }.into_any()
            }}
        </section>
    }
}

#[island(lazy)]
fn BudgetForm(name: String, budget: Option<BudgetView>) -> impl IntoView {
    crate::mark_hydrated();
    let save = ServerAction::<SetBudget>::new();
    let reload_to = format!("/production/{name}?budget=saved");
    Effect::new(move |_| {
        if let Some(Ok(_)) = save.value().get() {
            crate::auth::reload_to(&reload_to);
        }
    });
    let window = budget.as_ref().map_or("month", |b| b.window.as_str());
    let limit = budget.as_ref().map(|b| b.limit.to_string()).unwrap_or_default();
    let alerts = budget
        .as_ref()
        .map(|b| b.alerts.iter().map(|a| format!("{}", (a * 100.0).round())).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "50, 80, 100".into());
    let block = budget.as_ref().is_some_and(|b| b.on_exceed == domain::telemetry::OnExceed::Block);
    view! {
        <h3 id="set-budget-title">{if budget.is_some() { "Change the budget" } else { "Set a budget" }}</h3>
        <ActionForm action=save attr:class="set-budget" attr:aria-labelledby="set-budget-title">
            <input type="hidden" name="name" value=name/>
            <div class="field">
                <label for="budget-limit">"Limit in dollars"</label>
                <input id="budget-limit" name="limit" inputmode="decimal" required value=limit placeholder="50"/>
            </div>
            <div class="field">
                <label for="budget-window">"Per"</label>
                <select id="budget-window" name="window">
                    {["day", "week", "month"].into_iter().map(|w| view! { <option value=w selected=w == window>{w}</option> }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="budget-alerts">"Alert at (% of the limit)"</label>
                <input id="budget-alerts" name="alerts" value=alerts/>
            </div>
            <div class="field">
                <label for="budget-exceed">"When it is spent"</label>
                <select id="budget-exceed" name="on_exceed">
                    <option value="alert" selected=!block>"alert people, keep serving"</option>
                    <option value="block" selected=block>"refuse applications until the window ends"</option>
                </select>
            </div>
            <button type="submit" class="primary" disabled=move || save.pending().get()>"Save the budget"</button>
        </ActionForm>
        {move || save.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error/> })}
    }
}

#[component]
fn RecentCalls(
    name: String,
    period: String,
    calls: Page<Generation>,
    filter: CallFilter,
    versions: Vec<VersionMetrics>,
) -> impl IntoView {
    let versions: Vec<(String, String)> =
        versions.iter().map(|v| (v.version.to_string(), format!("v{}", v.version))).collect();
    let pairs =
        |list: &[(&str, &str)]| list.iter().map(|(v, w)| ((*v).to_owned(), (*w).to_owned())).collect::<Vec<_>>();
    view! {
        <section class="card" aria-labelledby="calls-title">
            <h2 id="calls-title">"Recent calls"</h2>
            <form class="filters" method="get" action=format!("/production/{name}")>
                <input type="hidden" name="period" value=period/>
                <Choice name="version" label="Version" options=versions current=filter.version.map(|v| v.to_string())/>
                <Choice name="status" label="Outcome" options=pairs(&[("ok", "ok"), ("error", "error")]) current=filter.status/>
                <Choice name="drift" label="Drift"
                    options=pairs(&[("stale_label", "stale label"), ("hash_mismatch", "content changed")]) current=filter.drift/>
                <button type="submit">"Show"</button>
            </form>
            {if calls.items.is_empty() {
                view! { <p class="empty">"No calls match."</p> }.into_any()
            } else {
                view! {
                    <div class="table-scroll">
                    <table>
                        <caption class="visually-hidden">"The latest calls, newest first"</caption>
                        <thead><tr>
                            <th scope="col">"Started"</th><th scope="col">"Request id"</th><th scope="col">"Version"</th>
                            <th scope="col">"Outcome"</th><th scope="col">"Latency"</th><th scope="col">"Cost"</th><th scope="col">"Drift"</th>
                        </tr></thead>
                        <tbody>
                            {calls.items.into_iter().map(|g| view! {
                                <tr>
                                    <td><Time at=g.started_at.clone()/></td>
                                    <td><a href=format!("/calls?id={}", crate::pages::prompts::urlencode(&g.id))>{g.id.clone()}</a></td>
                                    <td>{format!("v{}", g.version)}</td>
                                    <td>{g.status.as_str()}</td>
                                    <td>{g.latency_ms.map(|l| format!("{l:.0} ms")).unwrap_or_default()}</td>
                                    <td>{g.cost.map(dollars).unwrap_or_else(|| "unpriced".into())}</td>
                                    <td>{g.drift.map(|d| d.as_str().replace('_', " ")).unwrap_or_default()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

/// One filter of the calls: a labelled list whose first choice is "any".
#[component]
fn Choice(
    name: &'static str,
    label: &'static str,
    options: Vec<(String, String)>,
    current: Option<String>,
) -> impl IntoView {
    let id = format!("calls-{name}");
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <select id=id name=name>
                <option value="">"any"</option>
                {options.into_iter().map(|(value, words)| {
                    let selected = current.as_deref() == Some(value.as_str());
                    view! { <option value=value selected=selected>{words}</option> }
                }).collect_view()}
            </select>
        </div>
    }
}
