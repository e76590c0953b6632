//! Evaluations in the console: a prompt's suites (edited as a table of cases, imported
//! and exported as CSV or JSONL), starting a run, its live progress and results, two runs
//! compared, and the pass rate per version over time. Server-rendered; the suite editor,
//! the run form and the live progress are islands.

use std::collections::BTreeMap;

use domain::access::Action;
use domain::eval::{Assertion, Case, Change, EvalRun, RunComparison, RunStatus, Suite, SuiteView};
use domain::vocabulary::AssertionType;
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::me;
use crate::error::AppError;
use crate::widgets::{ErrorNote, Time, loading};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluations {
    pub name: String,
    pub suites: Vec<SuiteView>,
    pub runs: Vec<EvalRun>,
    /// Every label (`latest` included) and its version.
    pub labels: BTreeMap<String, i64>,
    /// The variables of the newest version, for new cases.
    pub variables: Vec<String>,
    /// `config.model` of the newest version.
    pub default_model: Option<String>,
    pub providers: Vec<String>,
}

#[server(endpoint = "console/eval_overview")]
pub async fn eval_overview(name: String) -> Result<Evaluations, AppError> {
    /// Runs listed on the page.
    const RUNS: i64 = 100;
    let (who, registry) = crate::auth::ssr::caller().await?;
    let suites = registry.suites(&who, &name).await?;
    let runs = registry.eval_runs(&who, &name, Some(RUNS), None).await?.items;
    let labels = registry.labels(&who, &name).await?.labels;
    let latest = domain::model::Selector { label: Some(domain::names::LATEST.into()), ..Default::default() };
    let latest = registry.resolve(&who, &name, &latest).await?;
    let view = &latest.base.view;
    let providers = registry.providers(&who).await?.into_iter().map(|p| p.name).collect();
    Ok(Evaluations {
        suites,
        runs,
        labels,
        variables: view.variables.clone(),
        default_model: view.config.get("model").and_then(Value::as_str).map(str::to_owned),
        providers,
        name,
    })
}

#[server(input = leptos::server_fn::codec::Json, endpoint = "console/save_suite")]
pub async fn save_suite(name: String, suite_name: String, suite: Suite) -> Result<SuiteView, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.put_suite(&who, &name, &suite_name, suite).await?)
}

/// `target` is `label:NAME` or `version:N`; an empty `model` means the version's own.
#[server(endpoint = "console/start_eval_run")]
pub async fn start_eval_run(name: String, suite: String, target: String, model: String) -> Result<EvalRun, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let mut req = domain::eval::NewRun { suite, ..Default::default() };
    match target.split_once(':') {
        Some(("label", label)) => req.label = Some(label.to_owned()),
        Some(("version", n)) => {
            req.version = Some(n.parse().map_err(|_| AppError::invalid("Pick a version to test."))?)
        }
        _ => return Err(AppError::invalid("Pick a label or a version to test.")),
    }
    req.model = Some(model.trim().to_owned()).filter(|m| !m.is_empty());
    Ok(registry.start_run(&who, &name, req).await?)
}

#[server(endpoint = "console/get_eval_run")]
pub async fn get_eval_run(id: String, with_results: bool) -> Result<EvalRun, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let mut run = registry.eval_run(&who, &id).await?;
    if !with_results {
        run.results.clear();
    }
    Ok(run)
}

#[server(endpoint = "console/cancel_eval_run")]
pub async fn cancel_eval_run(id: String) -> Result<EvalRun, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.cancel_run(&who, &id).await?)
}

#[server(endpoint = "console/compare_eval_runs")]
pub async fn compare_eval_runs(a: String, b: String) -> Result<RunComparison, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.compare_runs(&who, &a, &b).await?)
}

fn percent(rate: f64) -> String {
    format!("{:.0}%", rate * 100.0)
}

fn dollars(cost: f64) -> String {
    if cost == 0.0 { "$0".into() } else { format!("${cost:.4}") }
}

fn status_words(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "Waiting to start",
        RunStatus::Running => "Running",
        RunStatus::Passed => "Passed",
        RunStatus::Failed => "Failed",
        RunStatus::Error => "Could not run",
        RunStatus::Cancelled => "Cancelled",
    }
}

#[component]
pub fn RunBadge(status: RunStatus, #[prop(optional)] pass_rate: Option<f64>) -> impl IntoView {
    let text = match pass_rate {
        Some(rate) if status.is_final() && status != RunStatus::Error => {
            format!("{} {}", status_words(status), percent(rate))
        }
        _ => status_words(status).to_owned(),
    };
    view! { <span class=format!("badge run-{}", status.as_str())>{text}</span> }
}

// ---------------------------------------------------------------- the prompt's evaluations

#[component]
pub fn EvalsPage() -> impl IntoView {
    let params = use_params_map();
    let name = Memo::new(move |_| params.with(|p| p.get("name")).unwrap_or_default());
    let overview = Resource::new(move || name.get(), eval_overview);
    let query = use_query_map();
    let edit = move || query.with(|q| q.get("edit"));
    let notice = move || {
        query.with(|q| {
            q.get("imported")
                .map(|n| format!("Imported {n} cases."))
                .or_else(|| q.get("saved").map(|s| format!("Suite {s} saved.")))
        })
    };
    let import_error = move || {
        query.with(|q| {
            q.get("import_error").map(|e| format!("The file was not imported: {e}. Fix the file and import it again."))
        })
    };
    view! {
        {move || notice().map(|text| view! { <p class="success notice" role="status">{text}</p> })}
        {move || import_error().map(|text| view! { <p class="error notice" role="alert">{text}</p> })}
        <Transition fallback=|| loading("the evaluations")>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(o) => view! { <EvalsView overview=o edit=edit()/> }.into_any(),
                    Err(error) => view! { <h1>{name.get()}</h1><ErrorNote error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn EvalsView(overview: Evaluations, edit: Option<String>) -> impl IntoView {
    let can_write = me().can(Action::Write);
    let name = overview.name.clone();
    let prompt_href = format!("/prompts/{name}");
    let title = name.clone();
    let editing = edit.filter(|_| can_write).map(|suite_name| {
        let existing = overview.suites.iter().find(|s| s.name == suite_name);
        let suite = existing.map(|s| Suite { threshold: s.threshold, cases: s.cases.clone() });
        view! {
            <SuiteEditor prompt=name.clone() suite_name=existing.map(|s| s.name.clone()).unwrap_or_default()
                suite variables=overview.variables.clone()/>
        }
    });
    let run_form = (can_write && !overview.suites.is_empty()).then(|| {
        let targets: Vec<(String, String)> = overview
            .labels
            .iter()
            .map(|(l, v)| (format!("label:{l}"), format!("{l} (version {v})")))
            .chain((1..=overview.labels.get(domain::names::LATEST).copied().unwrap_or(1)).rev().map(|v| (format!("version:{v}"), format!("version {v}"))))
            .collect();
        view! {
            <RunForm prompt=name.clone() suites=overview.suites.iter().map(|s| s.name.clone()).collect()
                targets default_model=overview.default_model.clone().unwrap_or_default() providers=overview.providers.clone()/>
        }
    });
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs"><A href="/">"Prompts"</A> " / " <A href=prompt_href.clone()>{title}</A> " /"</p>
                <h1>"Evaluations"</h1>
            </div>
            <A href=prompt_href attr:class="button">"Back to the prompt"</A>
        </div>
        <Suites name suites=overview.suites.clone() can_write/>
        {editing}
        {run_form}
        <PassRateChart runs=overview.runs.clone()/>
        <Runs runs=overview.runs/>
    }
}

#[component]
fn Suites(name: String, suites: Vec<SuiteView>, can_write: bool) -> impl IntoView {
    let encoded = |s: &str| s.replace('%', "%25").replace('&', "%26").replace('#', "%23").replace('?', "%3F");
    let rows = suites
        .iter()
        .map(|s| {
            let export = |format: &str| format!("/export/suite.{format}?prompt={}&suite={}", encoded(&name), s.name);
            view! {
                <tr>
                    <th scope="row">{s.name.clone()}</th>
                    <td class="num">{s.cases.len()}</td>
                    <td class="num">{percent(s.threshold)}</td>
                    <td>{s.updated_by.clone()} " · " <Time at=s.updated_at.clone()/></td>
                    <td class="actions-cell">
                        {can_write.then(|| view! { <a href=format!("?edit={}", s.name)>"Edit"</a> " · " })}
                        <a href=export("csv") download="">"CSV"</a> " · " <a href=export("jsonl") download="">"JSONL"</a>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="suites-title">
            <h2 id="suites-title">"Test suites"</h2>
            {if suites.is_empty() {
                view! { <p class="empty">"No suite yet. A suite is a list of example inputs with checks on the model's answers; add one to test changes before they reach production."</p> }.into_any()
            } else {
                view! {
                    <table>
                        <caption class="visually-hidden">"Test suites of this prompt"</caption>
                        <thead><tr>
                            <th scope="col">"Suite"</th><th scope="col" class="num">"Cases"</th>
                            <th scope="col" class="num">"Pass needed"</th><th scope="col">"Last change"</th>
                            <th scope="col">"Actions"</th>
                        </tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                }.into_any()
            }}
            {can_write.then(|| view! {
                <p><a class="button" href="?edit=">"New suite"</a></p>
                <form class="import" method="post" action="/import/suite" enctype="multipart/form-data">
                    <input type="hidden" name="prompt" value=name.clone()/>
                    <fieldset>
                        <legend>"Import cases from a file"</legend>
                        <label for="import-suite">"Into suite"</label>
                        <input id="import-suite" name="suite" required pattern="[a-z0-9][a-z0-9_.\\-]*" placeholder="smoke"/>
                        <label for="import-file">"CSV or JSONL file"</label>
                        <input id="import-file" name="file" type="file" accept=".csv,.jsonl,.ndjson,text/csv" required/>
                        <label class="inline"><input type="checkbox" name="append" value="1"/> " Add to the suite's cases (instead of replacing them)"</label>
                        <button type="submit">"Import"</button>
                        <p class="hint">"CSV: one case per row; a column per variable, " <code>"__description"</code> ", and " <code>"__expected"</code> " columns such as " <code>"icontains: refund"</code> "."</p>
                    </fieldset>
                </form>
            })}
        </section>
    }
}

#[component]
fn Runs(runs: Vec<EvalRun>) -> impl IntoView {
    if runs.is_empty() {
        return view! {
            <section class="card"><h2>"Runs"</h2><p class="empty">"No run yet. Start one above to see how the prompt does."</p></section>
        }
        .into_any();
    }
    let options = |selected: usize| {
        runs.iter()
            .enumerate()
            .map(|(i, r)| {
                let label = format!(
                    "{} · v{} · {} · {} · {}",
                    r.created_at.get(..16).unwrap_or("").replace('T', " "),
                    r.version,
                    r.suite,
                    r.model,
                    percent(r.pass_rate)
                );
                view! { <option value=r.id.clone() selected=i == selected>{label}</option> }
            })
            .collect_view()
    };
    let compare = (runs.len() >= 2).then(|| {
        view! {
            <form class="compare-runs" method="get" action="/compare-runs">
                <label for="run-a">"Compare"</label>
                <select id="run-a" name="a">{options(1)}</select>
                <label for="run-b">"with"</label>
                <select id="run-b" name="b">{options(0)}</select>
                <button type="submit">"Compare runs"</button>
            </form>
        }
    });
    let rows = runs
        .iter()
        .map(|r| {
            view! {
                <tr>
                    <td><a href=format!("/runs/{}", r.id)><Time at=r.created_at.clone()/></a></td>
                    <td>{r.suite.clone()}</td>
                    <td class="num">{format!("v{}", r.version)}</td>
                    <td>{r.model.clone()}</td>
                    <td><RunBadge status=r.status pass_rate=r.pass_rate/></td>
                    <td class="num">{format!("{}/{}", r.passed, r.total)}</td>
                    <td class="num">{dollars(r.cost)}</td>
                    <td>{r.created_by.clone()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="runs-title">
            <h2 id="runs-title">"Runs"</h2>
            {compare}
            <table>
                <caption class="visually-hidden">"Evaluation runs, newest first"</caption>
                <thead><tr>
                    <th scope="col">"Started"</th><th scope="col">"Suite"</th><th scope="col" class="num">"Version"</th>
                    <th scope="col">"Model"</th><th scope="col">"Result"</th><th scope="col" class="num">"Passed"</th>
                    <th scope="col" class="num">"Cost"</th><th scope="col">"By"</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
    .into_any()
}

/// Pass rate of finished runs over time, each point labelled with its version.
#[component]
fn PassRateChart(runs: Vec<EvalRun>) -> impl IntoView {
    const W: f64 = 640.0;
    const H: f64 = 170.0;
    const PAD: f64 = 28.0;
    let mut points: Vec<&EvalRun> =
        runs.iter().filter(|r| matches!(r.status, RunStatus::Passed | RunStatus::Failed)).collect();
    points.reverse();
    if points.len() < 2 {
        return ().into_any();
    }
    let step = (W - 2.0 * PAD) / (points.len() - 1) as f64;
    let xy = |i: usize, rate: f64| (PAD + step * i as f64, PAD + (1.0 - rate) * (H - 2.0 * PAD));
    let line: String = points
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (x, y) = xy(i, r.pass_rate);
            format!("{x:.1},{y:.1} ")
        })
        .collect();
    let summary = format!(
        "Pass rate of the last {} finished runs, oldest first: {}",
        points.len(),
        points.iter().map(|r| format!("v{} {}", r.version, percent(r.pass_rate))).collect::<Vec<_>>().join(", ")
    );
    view! {
        <section class="card" aria-labelledby="chart-title">
            <h2 id="chart-title">"Pass rate per version over time"</h2>
            <svg class="chart" viewBox=format!("0 0 {W} {H}") role="img" aria-label=summary>
                <line x1=PAD y1=PAD x2=W - PAD y2=PAD class="grid"/>
                <line x1=PAD y1=H - PAD x2=W - PAD y2=H - PAD class="grid"/>
                <text x="2" y=PAD + 4.0 class="axis">"100%"</text>
                <text x="2" y=H - PAD + 4.0 class="axis">"0%"</text>
                <polyline points=line class="series"/>
                {points.iter().enumerate().map(|(i, r)| {
                    let (x, y) = xy(i, r.pass_rate);
                    let class = if r.status == RunStatus::Passed { "dot passed" } else { "dot failed" };
                    view! {
                        <circle cx=x cy=y r="4" class=class><title>{format!("v{} · {} · {} · {}", r.version, r.suite, r.model, percent(r.pass_rate))}</title></circle>
                        <text x=x y=H - 8.0 class="axis" text-anchor="middle">{format!("v{}", r.version)}</text>
                    }
                }).collect_view()}
            </svg>
        </section>
    }
    .into_any()
}

// ---------------------------------------------------------------- the suite editor

#[derive(Clone, Copy)]
struct CheckDraft {
    id: u32,
    kind: RwSignal<String>,
    negate: RwSignal<bool>,
    value: RwSignal<String>,
    threshold: RwSignal<String>,
}

#[derive(Clone, Copy)]
struct CaseDraft {
    id: u32,
    description: RwSignal<String>,
    vars: RwSignal<BTreeMap<String, String>>,
    checks: RwSignal<Vec<CheckDraft>>,
}

fn value_text(a: &Assertion) -> String {
    match (a.kind.trim_start_matches("not-"), &a.value) {
        ("word-count", _) => match (a.min, a.max) {
            (None, None) => a.value.as_ref().map(Value::to_string).unwrap_or_default(),
            (min, max) => format!(
                "{}-{}",
                min.map(|m| m.to_string()).unwrap_or_default(),
                max.map(|m| m.to_string()).unwrap_or_default()
            ),
        },
        (_, Some(Value::String(s))) => s.clone(),
        (_, Some(Value::Array(items))) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        }
        (_, Some(other)) => other.to_string(),
        (_, None) => String::new(),
    }
}

/// What the person typed, as an assertion: lists from commas, JSON where JSON is meant,
/// `min-max` for word counts.
fn to_assertion(check: &CheckDraft) -> Result<Assertion, String> {
    let kind = check.kind.get_untracked();
    let text = check.value.get_untracked().trim().to_owned();
    let threshold = check.threshold.get_untracked().trim().to_owned();
    let mut a = Assertion {
        kind: kind.clone(),
        value: None,
        weight: None,
        threshold: None,
        min: None,
        max: None,
        provider: None,
    };
    if !threshold.is_empty() {
        a.threshold = Some(threshold.parse().map_err(|_| format!("The limit of “{kind}” must be a number."))?);
    }
    match kind.as_str() {
        "latency" | "cost" if a.threshold.is_none() && !text.is_empty() => {
            a.threshold = Some(text.parse().map_err(|_| format!("“{kind}” needs a number."))?);
        }
        "latency" | "cost" | "is-json" => {}
        "icontains-any" | "icontains-all" | "contains-any" | "contains-all" => {
            a.value = Some(Value::Array(
                text.split(',').map(|s| Value::String(s.trim().to_owned())).filter(|v| v != "").collect(),
            ));
        }
        "json-schema" | "equals" if text.starts_with('{') || text.starts_with('[') => {
            a.value =
                Some(serde_json::from_str(&text).map_err(|e| format!("The JSON of “{kind}” does not parse: {e}."))?);
        }
        "word-count" => {
            let (min, max) = text.split_once('-').unwrap_or((text.as_str(), text.as_str()));
            let number = |s: &str| if s.trim().is_empty() { Ok(None) } else { s.trim().parse::<f64>().map(Some) };
            a.min = number(min).map_err(|_| "Word counts are written like 10-50.".to_owned())?;
            a.max = number(max).map_err(|_| "Word counts are written like 10-50.".to_owned())?;
        }
        _ => a.value = Some(Value::String(text)),
    }
    if check.negate.get_untracked() {
        a.kind = format!("not-{kind}");
    }
    Ok(a)
}

/// The suite as a table of cases: add, remove and duplicate cases; per case its values
/// for the prompt's variables and its checks.
#[island(lazy)]
fn SuiteEditor(prompt: String, suite_name: String, suite: Option<Suite>, variables: Vec<String>) -> impl IntoView {
    crate::mark_hydrated();
    let next = StoredValue::new(0u32);
    let fresh = move || {
        let id = next.get_value();
        next.set_value(id + 1);
        id
    };
    let check = move |a: &Assertion| CheckDraft {
        id: fresh(),
        negate: RwSignal::new(a.kind.starts_with("not-")),
        kind: RwSignal::new(a.kind.trim_start_matches("not-").to_owned()),
        value: RwSignal::new(value_text(a)),
        threshold: RwSignal::new(
            a.threshold
                .filter(|_| !matches!(a.kind.trim_start_matches("not-"), "latency" | "cost"))
                .map(|t| t.to_string())
                .unwrap_or_default(),
        ),
    };
    let case_draft = move |c: &Case| CaseDraft {
        id: fresh(),
        description: RwSignal::new(c.description.clone()),
        vars: RwSignal::new(
            c.vars
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                .collect(),
        ),
        checks: RwSignal::new(c.asserts.iter().map(check).collect()),
    };
    let is_new = suite_name.is_empty();
    let name = RwSignal::new(if is_new { "smoke".to_owned() } else { suite_name });
    let initial = suite.unwrap_or(Suite {
        threshold: 1.0,
        cases: vec![Case { description: String::new(), vars: Map::new(), asserts: Vec::new() }],
    });
    let threshold = RwSignal::new(format!("{}", (initial.threshold * 100.0).round()));
    let cases = RwSignal::new(initial.cases.iter().map(case_draft).collect::<Vec<_>>());
    let variables = StoredValue::new(variables);
    let save = ServerAction::<SaveSuite>::new();
    let problem = RwSignal::new(None::<String>);
    let prompt_for_save = prompt.clone();
    let on_save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        problem.set(None);
        let threshold = match threshold.get_untracked().trim().parse::<f64>() {
            Ok(t) if (0.0..=100.0).contains(&t) => t / 100.0,
            _ => return problem.set(Some("The pass rate needed is a percentage from 0 to 100.".into())),
        };
        let mut built = Vec::new();
        for c in cases.get_untracked() {
            let asserts = match c.checks.get_untracked().iter().map(to_assertion).collect::<Result<Vec<_>, _>>() {
                Ok(a) => a,
                Err(e) => return problem.set(Some(e)),
            };
            let vars = c.vars.get_untracked().into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            built.push(Case { description: c.description.get_untracked(), vars, asserts });
        }
        save.dispatch(SaveSuite {
            name: prompt_for_save.clone(),
            suite_name: name.get_untracked(),
            suite: Suite { threshold, cases: built },
        });
    };
    Effect::new(move |_| {
        if let Some(Ok(saved)) = save.value().get() {
            crate::auth::reload_to(&format!("?saved={}", saved.name));
        }
    });
    let add_case = move |_| {
        let vars = variables.with_value(|v| v.iter().map(|n| (n.clone(), String::new())).collect());
        let draft = CaseDraft {
            id: fresh(),
            description: RwSignal::new(String::new()),
            vars: RwSignal::new(vars),
            checks: RwSignal::new(Vec::new()),
        };
        cases.update(|c| c.push(draft));
    };
    let case_rows = move || cases.get().into_iter().enumerate().collect::<Vec<_>>();
    view! {
        <section class="card suite-editor" aria-labelledby="editor-title">
            <h2 id="editor-title">{if is_new { "New suite".to_owned() } else { format!("Edit suite {}", name.get_untracked()) }}</h2>
            <form on:submit=on_save>
                <div class="row">
                    <div>
                        <label for="suite-name">"Suite name"</label>
                        <input id="suite-name" prop:value=move || name.get() readonly=!is_new
                            on:input=move |ev| name.set(event_target_value(&ev))/>
                    </div>
                    <div>
                        <label for="suite-threshold">"Pass rate needed (%)"</label>
                        <input id="suite-threshold" inputmode="decimal" prop:value=move || threshold.get()
                            on:input=move |ev| threshold.set(event_target_value(&ev))/>
                    </div>
                </div>
                <For each=case_rows key=|(i, c)| (c.id, *i) let((index, case))>
                    <CaseRow index case cases variables=variables.get_value() fresh=Callback::new(move |_| fresh())/>
                </For>
                <div class="actions">
                    <button type="button" on:click=add_case>"Add a case"</button>
                    <button type="submit" class="primary" disabled=move || save.pending().get()>
                        {move || if save.pending().get() { "Saving…" } else { "Save the suite" }}
                    </button>
                    <a href="?">"Close without saving"</a>
                </div>
                {move || problem.get().map(|p| view! { <p class="error" role="alert">{p}</p> })}
                {move || save.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error/> })}
            </form>
        </section>
    }
}

#[component]
fn CaseRow(
    index: usize,
    case: CaseDraft,
    cases: RwSignal<Vec<CaseDraft>>,
    variables: Vec<String>,
    fresh: Callback<(), u32>,
) -> impl IntoView {
    let n = index + 1;
    let duplicate = move |_| {
        let copy = CaseDraft {
            id: fresh.run(()),
            description: RwSignal::new(format!("{} (copy)", case.description.get_untracked())),
            vars: RwSignal::new(case.vars.get_untracked()),
            checks: RwSignal::new(
                case.checks
                    .get_untracked()
                    .iter()
                    .map(|c| CheckDraft {
                        id: fresh.run(()),
                        kind: RwSignal::new(c.kind.get_untracked()),
                        negate: RwSignal::new(c.negate.get_untracked()),
                        value: RwSignal::new(c.value.get_untracked()),
                        threshold: RwSignal::new(c.threshold.get_untracked()),
                    })
                    .collect(),
            ),
        };
        cases.update(|c| c.insert(index + 1, copy));
    };
    let add_check = move |_| {
        let c = CheckDraft {
            id: fresh.run(()),
            kind: RwSignal::new("icontains".into()),
            negate: RwSignal::new(false),
            value: RwSignal::new(String::new()),
            threshold: RwSignal::new(String::new()),
        };
        case.checks.update(|v| v.push(c));
    };
    let mut names = variables;
    for k in case.vars.get_untracked().keys() {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    let check_rows = move || case.checks.get().into_iter().enumerate().collect::<Vec<_>>();
    view! {
        <fieldset class="case-row">
            <legend>{format!("Case {n}")}</legend>
            <label for=format!("case-{}-description", case.id)>{format!("Case {n} description")}</label>
            <input id=format!("case-{}-description", case.id) prop:value=move || case.description.get()
                on:input=move |ev| case.description.set(event_target_value(&ev))/>
            <div class="vars">
                {names.into_iter().map(|var| {
                    let id = format!("case-{}-var-{var}", case.id);
                    let (key, key2) = (var.clone(), var.clone());
                    view! {
                        <div>
                            <label for=id.clone()><code>{var.clone()}</code></label>
                            <input id=id prop:value=move || case.vars.with(|v| v.get(&key).cloned().unwrap_or_default())
                                on:input=move |ev| { let value = event_target_value(&ev); case.vars.update(|v| { v.insert(key2.clone(), value); }); }/>
                        </div>
                    }
                }).collect_view()}
            </div>
            <p class="checks-title">"The answer…"</p>
            <For each=check_rows key=|(i, c)| (c.id, *i) let((ci, check))>
                <CheckRow case_number=n index=ci check checks=case.checks/>
            </For>
            <div class="row-actions">
                <button type="button" on:click=add_check>{format!("Add a check to case {n}")}</button>
                <button type="button" on:click=duplicate>{format!("Duplicate case {n}")}</button>
                <button type="button" disabled=move || cases.with(Vec::len) <= 1
                    on:click=move |_| cases.update(|c| { c.remove(index); })>{format!("Remove case {n}")}</button>
            </div>
        </fieldset>
    }
}

#[component]
fn CheckRow(case_number: usize, index: usize, check: CheckDraft, checks: RwSignal<Vec<CheckDraft>>) -> impl IntoView {
    let label = format!("case {case_number}, check {}", index + 1);
    let id = format!("check-{}", check.id);
    view! {
        <div class="check-row">
            <label class="inline" for=format!("{id}-not")>
                <input type="checkbox" id=format!("{id}-not") prop:checked=move || check.negate.get()
                    on:change=move |ev| check.negate.set(event_target_checked(&ev))/>
                " must NOT"
            </label>
            <label class="visually-hidden" for=format!("{id}-kind")>{format!("Kind of {label}")}</label>
            <select id=format!("{id}-kind") on:change=move |ev| check.kind.set(event_target_value(&ev))>
                {AssertionType::ALL.iter().map(|t| {
                    let k = t.as_str();
                    view! { <option value=k selected=move || check.kind.get() == k>{t.words()}</option> }
                }).collect_view()}
            </select>
            <label class="visually-hidden" for=format!("{id}-value")>{format!("Value of {label}")}</label>
            <input id=format!("{id}-value") class="check-value" placeholder="value" prop:value=move || check.value.get()
                on:input=move |ev| check.value.set(event_target_value(&ev))/>
            <label class="visually-hidden" for=format!("{id}-threshold")>{format!("Limit of {label}")}</label>
            <input id=format!("{id}-threshold") class="check-threshold" placeholder="limit" inputmode="decimal"
                prop:value=move || check.threshold.get() on:input=move |ev| check.threshold.set(event_target_value(&ev))/>
            <button type="button" on:click=move |_| checks.update(|c| { c.remove(index); })
                aria-label=format!("Remove {label}")>"Remove"</button>
        </div>
    }
}

// ---------------------------------------------------------------- starting a run

#[island(lazy)]
fn RunForm(
    prompt: String,
    suites: Vec<String>,
    targets: Vec<(String, String)>,
    default_model: String,
    providers: Vec<String>,
) -> impl IntoView {
    crate::mark_hydrated();
    let suite = RwSignal::new(suites.first().cloned().unwrap_or_default());
    let target = RwSignal::new(targets.first().map(|t| t.0.clone()).unwrap_or_default());
    let model = RwSignal::new(default_model.clone());
    let start = ServerAction::<StartEvalRun>::new();
    Effect::new(move |_| {
        if let Some(Ok(run)) = start.value().get() {
            crate::auth::reload_to(&format!("/runs/{}", run.id));
        }
    });
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        start.dispatch(StartEvalRun {
            name: prompt.clone(),
            suite: suite.get_untracked(),
            target: target.get_untracked(),
            model: model.get_untracked(),
        });
    };
    let hint = if providers.is_empty() {
        "No model provider is set up yet: an administrator adds one (promptledger provider add).".to_owned()
    } else {
        format!(
            "Write provider/model; providers here: {}. Leave it as is to use the version's own model.",
            providers.join(", ")
        )
    };
    view! {
        <section class="card" aria-labelledby="run-title">
            <h2 id="run-title">"Run a suite"</h2>
            <form on:submit=on_submit class="run-form">
                <label for="run-suite">"Suite"</label>
                <select id="run-suite" on:change=move |ev| suite.set(event_target_value(&ev))>
                    {suites.iter().map(|s| view! { <option value=s.clone()>{s.clone()}</option> }).collect_view()}
                </select>
                <label for="run-target">"Test"</label>
                <select id="run-target" on:change=move |ev| target.set(event_target_value(&ev))>
                    {targets.iter().map(|(v, l)| view! { <option value=v.clone()>{l.clone()}</option> }).collect_view()}
                </select>
                <label for="run-model">"Model"</label>
                <input id="run-model" aria-describedby="run-model-hint" prop:value=move || model.get()
                    on:input=move |ev| model.set(event_target_value(&ev))/>
                <p id="run-model-hint" class="hint">{hint}</p>
                <button type="submit" class="primary" disabled=move || start.pending().get()>
                    {move || if start.pending().get() { "Starting…" } else { "Start the run" }}
                </button>
                {move || start.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error/> })}
            </form>
        </section>
    }
}

// ---------------------------------------------------------------- one run

#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id")).unwrap_or_default());
    let run = Resource::new(move || id.get(), |id| get_eval_run(id, true));
    let query = use_query_map();
    let failed_only = move || query.with(|q| q.get("failed").is_some_and(|v| v == "1"));
    view! {
        <Transition fallback=|| loading("the run")>
            {move || Suspend::new(async move {
                match run.await {
                    Ok(r) => view! { <RunView run=r failed_only=failed_only()/> }.into_any(),
                    Err(error) => view! { <h1>"Evaluation run"</h1><ErrorNote error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn RunView(run: EvalRun, failed_only: bool) -> impl IntoView {
    let can_write = me().can(Action::Write);
    let evals_href = format!("/evals/{}", run.prompt);
    let live = (!run.status.is_final()).then(|| view! { <RunProgress id=run.id.clone() can_cancel=can_write/> });
    let failures = run.results.iter().filter(|r| !r.passed).count();
    let shown: Vec<_> = run.results.iter().filter(|r| !failed_only || !r.passed).cloned().collect();
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs"><A href="/">"Prompts"</A> " / " <A href=format!("/prompts/{}", run.prompt)>{run.prompt.clone()}</A>
                   " / " <A href=evals_href.clone()>"Evaluations"</A> " /"</p>
                <h1>{format!("Suite {} on version {}", run.suite, run.version)}</h1>
            </div>
            <A href=evals_href attr:class="button">"All runs"</A>
        </div>
        <section class="card run-summary" aria-labelledby="summary-title">
            <h2 id="summary-title" class="visually-hidden">"Summary"</h2>
            <dl>
                <dt>"Result"</dt><dd><RunBadge status=run.status pass_rate=run.pass_rate/></dd>
                <dt>"Passed"</dt><dd>{format!("{} of {} cases ({}; {} needed)", run.passed, run.total, percent(run.pass_rate), percent(run.threshold))}</dd>
                <dt>"Model"</dt><dd>{run.model.clone()}</dd>
                <dt>"Cost"</dt><dd>{dollars(run.cost)}</dd>
                <dt>"Mean latency"</dt><dd>{run.latency_ms.map(|l| format!("{l:.0} ms")).unwrap_or_else(|| "—".into())}</dd>
                <dt>"Started by"</dt><dd>{run.created_by.clone()} " · " <Time at=run.created_at.clone()/></dd>
            </dl>
            {run.error.clone().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {live}
        </section>
        <section class="card" aria-labelledby="results-title">
            <h2 id="results-title">"Cases"</h2>
            <p class="filters">
                {if failed_only {
                    view! { <a href="?">{format!("Show all {} cases", run.results.len())}</a> }.into_any()
                } else {
                    view! { <a href="?failed=1">{format!("Show failed only ({failures})")}</a> }.into_any()
                }}
            </p>
            {if shown.is_empty() {
                view! { <p class="empty">{if failed_only { "No case failed." } else { "No case has finished yet." }}</p> }.into_any()
            } else {
                shown.into_iter().map(|r| view! { <CaseDetails result=r/> }).collect_view().into_any()
            }}
        </section>
    }
}

#[component]
fn CaseDetails(result: domain::eval::CaseResult) -> impl IntoView {
    let mark = if result.passed { "✓ Passed" } else { "✗ Failed" };
    let title = if result.description.is_empty() {
        format!("Case {}", result.case + 1)
    } else {
        format!("Case {}: {}", result.case + 1, result.description)
    };
    let input = match &result.input {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    let facts = [
        result.latency_ms.map(|l| format!("{l} ms")),
        result.cost.map(dollars),
        result.tokens.map(|t| format!("{} + {} tokens", t.input, t.output)),
        result.finish_reason.clone().map(|f| format!("stopped: {f}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    view! {
        <details class=if result.passed { "case-result passed" } else { "case-result failed" }>
            <summary><span class="mark">{mark}</span> " " {title} <span class="meta">{facts}</span></summary>
            <h3>"Sent to the model"</h3>
            <pre class="prompt-text">{input}</pre>
            <h3>"The model's answer"</h3>
            <pre class="prompt-text">{result.output.clone().unwrap_or_else(|| "(no answer)".into())}</pre>
            {result.error.clone().map(|e| view! { <p class="error">{e}</p> })}
            {(!result.assertions.is_empty()).then(|| view! {
                <table class="checks">
                    <caption class="visually-hidden">"Checks of this case"</caption>
                    <thead><tr><th scope="col">"Check"</th><th scope="col">"Result"</th><th scope="col">"Why"</th></tr></thead>
                    <tbody>
                        {result.assertions.iter().map(|a| view! {
                            <tr class=if a.passed { "passed" } else { "failed" }>
                                <td><code>{a.kind.clone()}</code></td>
                                <td>{if a.passed { "passed" } else { "failed" }}</td>
                                <td>{a.reason.clone()}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </details>
    }
}

/// Live progress of a run that has not ended: polls every second, and loads the page
/// again (with every result) once the run ends.
#[island(lazy)]
fn RunProgress(id: String, can_cancel: bool) -> impl IntoView {
    crate::mark_hydrated();
    let progress = RwSignal::new(None::<EvalRun>);
    let cancel = ServerAction::<CancelEvalRun>::new();
    let poll_id = id.clone();
    Effect::new(move |_| {
        let id = poll_id.clone();
        let handle = set_interval_with_handle(
            move || {
                let id = id.clone();
                leptos::task::spawn_local(async move {
                    if let Ok(run) = get_eval_run(id, false).await {
                        if run.status.is_final() {
                            crate::auth::reload_to("");
                        }
                        progress.set(Some(run));
                    }
                });
            },
            std::time::Duration::from_secs(1),
        );
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });
    view! {
        <div class="run-progress" role="status" aria-live="polite">
            {move || match progress.get() {
                None => view! { <p>"Running… the results below fill in as cases finish."</p> }.into_any(),
                Some(run) => view! {
                    <progress max=run.total value=run.done>{format!("{} of {}", run.done, run.total)}</progress>
                    <p>{format!("{} of {} cases done · {} passed · {} failed so far", run.done, run.total, run.passed, run.failed)}</p>
                }.into_any(),
            }}
            {can_cancel.then(|| {
                let id = id.clone();
                view! {
                    <button type="button" on:click=move |_| { cancel.dispatch(CancelEvalRun { id: id.clone() }); }>"Cancel the run"</button>
                }
            })}
        </div>
    }
}

// ---------------------------------------------------------------- two runs compared

#[component]
pub fn CompareRunsPage() -> impl IntoView {
    let query = use_query_map();
    let pair = Memo::new(move |_| query.with(|q| (q.get("a").unwrap_or_default(), q.get("b").unwrap_or_default())));
    let comparison = Resource::new(move || pair.get(), |(a, b)| compare_eval_runs(a, b));
    view! {
        <Transition fallback=|| loading("the comparison")>
            {move || Suspend::new(async move {
                match comparison.await {
                    Ok(c) => view! { <ComparisonView c/> }.into_any(),
                    Err(error) => view! { <h1>"Compare runs"</h1><ErrorNote error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ComparisonView(c: RunComparison) -> impl IntoView {
    let signed = |v: f64, unit: &str| format!("{}{v:.4}{unit}", if v >= 0.0 { "+" } else { "" });
    let head = |r: &EvalRun, which: &str| {
        view! {
            <div class="card">
                <h2>{format!("{which}: version {} · {}", r.version, r.model)}</h2>
                <p><a href=format!("/runs/{}", r.id)>{format!("Suite {}", r.suite)}</a> " · " <Time at=r.created_at.clone()/></p>
                <p><RunBadge status=r.status pass_rate=r.pass_rate/> " " {format!("{} of {} passed · {}", r.passed, r.total, dollars(r.cost))}</p>
            </div>
        }
    };
    let rows = c
        .cases
        .iter()
        .map(|case| {
            let (class, words) = match case.change {
                Change::Regressed => ("regressed", "Newly failing"),
                Change::Fixed => ("fixed", "Fixed"),
                Change::StillFailing => ("still-failing", "Still failing"),
                Change::StillPassing => ("still-passing", "Still passing"),
                Change::Unmatched => ("unmatched", "In one run only"),
            };
            let word = |p: Option<bool>| match p {
                Some(true) => "passed",
                Some(false) => "failed",
                None => "—",
            };
            view! {
                <tr class=class>
                    <td class="num">{case.case + 1}</td>
                    <td>{case.description.clone()}</td>
                    <td>{word(case.a)}</td>
                    <td>{word(case.b)}</td>
                    <td><span class=format!("badge change-{class}")>{words}</span></td>
                </tr>
            }
        })
        .collect_view();
    let title = format!("{} · suite {}", c.b.prompt, c.b.suite);
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs"><A href="/">"Prompts"</A> " / " <A href=format!("/evals/{}", c.b.prompt)>"Evaluations"</A> " /"</p>
                <h1>"Compare runs"</h1>
                <p class="description">{title}</p>
            </div>
        </div>
        <div class="serving">{head(&c.a, "Before")}{head(&c.b, "After")}</div>
        <section class="card" aria-labelledby="delta-title">
            <h2 id="delta-title">"What changed"</h2>
            <p class="delta">
                {format!("{} newly failing, {} fixed. Pass rate {} → {} ({:+.0} points). Cost {}. ",
                    c.regressions, c.fixes, percent(c.a.pass_rate), percent(c.b.pass_rate),
                    c.pass_rate_delta * 100.0, signed(c.cost_delta, " $"))}
                {c.latency_delta_ms.map(|d| format!("Mean latency {d:+.0} ms."))}
            </p>
            {(!c.same_suite).then(|| view! { <p class="hint">"The suite changed between the two runs: cases are matched by their position."</p> })}
            <table>
                <caption class="visually-hidden">"Cases of both runs, newly failing first"</caption>
                <thead><tr><th scope="col" class="num">"Case"</th><th scope="col">"Description"</th>
                    <th scope="col">"Before"</th><th scope="col">"After"</th><th scope="col">"Change"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
}
