//! One production call, looked up by the request id from a complaint: what the assistant
//! was told (the exact version, rendered with the call's variables), what it answered,
//! how it went (latency, tokens, cost, errors, scores), and whether it ran what the
//! registry said at that moment. The lookup box in the top bar leads here.

use domain::telemetry::{GenerationDetail, Status};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use serde_json::Value;

use crate::error::AppError;
use crate::widgets::{ErrorNote, Time, loading};

#[server(endpoint = "console/get_call")]
pub async fn get_call(id: String) -> Result<GenerationDetail, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    match registry.generation(&who, id.trim()).await {
        Err(service::ServiceError::NotFound(_)) => Err(AppError::NotFound(format!(
            "No call has the request id “{}”. Check that it is the id your application sent with the call; calls older than the retention period (30 days unless your administrator changed it) are no longer kept.",
            id.trim()
        ))),
        other => Ok(other?),
    }
}

/// The request-id lookup in the top bar: a plain form, so it works before the page's
/// scripts run.
#[component]
pub fn LookupBox() -> impl IntoView {
    view! {
        <form class="lookup" method="get" action="/calls" role="search" aria-label="Look up a call">
            <label for="lookup-id" class="visually-hidden">"Request id of a call"</label>
            <input id="lookup-id" name="id" placeholder="Paste a request id" required maxlength="128"/>
            <button type="submit">"Look up"</button>
        </form>
    }
}

#[component]
pub fn CallPage() -> impl IntoView {
    let query = use_query_map();
    let id = Memo::new(move |_| query.with(|q| q.get("id")).unwrap_or_default());
    let call = Resource::new(
        move || id.get(),
        |id| async move { if id.trim().is_empty() { Ok(None) } else { get_call(id).await.map(Some) } },
    );
    view! {
        <Transition fallback=|| loading("the call")>
            {move || Suspend::new(async move {
                match call.await {
                    Ok(Some(detail)) => view! { <CallView detail/> }.into_any(),
                    Ok(None) => view! {
                        <h1>"Look up a call"</h1>
                        <p class="hint">"Paste the request id of a call (from a complaint, a log or a support ticket) in the box at the top of the page."</p>
                    }.into_any(),
                    Err(error) => view! { <h1>"Look up a call"</h1><ErrorNote error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

fn drift_words(detail: &GenerationDetail) -> Option<String> {
    let g = &detail.generation;
    let label = g.label.clone().unwrap_or_else(|| "its label".into());
    g.drift.map(|d| match d {
        domain::telemetry::Drift::HashMismatch => {
            "The application ran text that differs from the registered version (the content hash does not match): the prompt was changed outside promptledger.".to_owned()
        }
        domain::telemetry::Drift::StaleLabel => format!(
            "The application used version {} although {label} had already moved{}: it was serving an old copy.",
            g.version,
            detail.label_at_start.map(|v| format!(" to version {v}")).unwrap_or_default()
        ),
    })
}

#[component]
fn CallView(detail: GenerationDetail) -> impl IntoView {
    let g = detail.generation.clone();
    let drift = drift_words(&detail);
    let serving = match (&g.label, detail.label_at_start) {
        (Some(label), Some(v)) if v == g.version => format!("{label} served version {v} when the call started."),
        (Some(label), Some(v)) => {
            format!("{label} served version {v} when the call started; the call used version {}.", g.version)
        }
        (Some(label), None) => format!("{label} pointed at no version when the call started."),
        (None, _) => "The application did not say which label it asked for.".to_owned(),
    };
    let outcome = match g.status {
        Status::Ok => "answered".to_owned(),
        Status::Error => format!("failed: {}", g.error.clone().unwrap_or_else(|| "no error message was sent".into())),
    };
    let rendered = match &detail.rendered {
        Some(Value::String(text)) => view! { <pre class="prompt-text">{text.clone()}</pre> }.into_any(),
        Some(Value::Array(messages)) => view! {
            <ol class="chat-messages">
                {messages.iter().map(|m| view! {
                    <li><span class="role">{m["role"].as_str().unwrap_or("").to_owned()}</span><pre>{m["content"].as_str().unwrap_or("").to_owned()}</pre></li>
                }).collect_view()}
            </ol>
        }.into_any(),
        _ => view! { <p class="empty">{detail.render_error.clone().map(|e| format!("The prompt could not be rendered with the call's variables: {e}")).unwrap_or_else(|| "The application did not send the variables, so the exact text cannot be shown; the version's template is below.".into())}</p> }.into_any(),
    };
    let template = detail.prompt_version.as_ref().map(|v| view! {
        <details><summary>{format!("Version {} as stored", v.version)}</summary><crate::pages::prompt::PromptText version=v.clone()/></details>
    });
    let pretty = |v: &serde_json::Map<String, Value>| serde_json::to_string_pretty(v).unwrap_or_default();
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs"><A href=format!("/production/{}", g.prompt)>{format!("Production: {}", g.prompt)}</A> " /"</p>
                <h1>"Call " {g.id.clone()}</h1>
                <p class="description">"Started " <Time at=g.started_at.clone()/> {format!(" · {} version {} · {outcome}", g.prompt, g.version)}</p>
            </div>
        </div>
        {drift.map(|d| view! { <p class="error" role="alert">{d}</p> })}
        <dl class="facts card">
            <dt>"What was live"</dt><dd>{serving}
                {g.rollout.clone().map(|id| view! {
                    " " {match g.arm {
                        Some(domain::telemetry::Arm::Candidate) => "It got the new version in ",
                        Some(domain::telemetry::Arm::Base) => "It got the old version in ",
                        None => "It was part of ",
                    }}
                    <a href=format!("/rollouts/{id}")>{format!("gradual rollout {id}")}</a> "."
                })}</dd>
            <dt>"Model"</dt><dd>{g.model.clone().unwrap_or_else(|| "not sent".into())}</dd>
            <dt>"Latency"</dt><dd>{g.latency_ms.map(|l| format!("{l:.0} ms")).unwrap_or_else(|| "not sent".into())}
                {g.ttft_ms.map(|t| format!(" (first token after {t:.0} ms)"))}</dd>
            <dt>"Tokens"</dt><dd>{format!("{} in, {} out", g.input_tokens.unwrap_or(0), g.output_tokens.unwrap_or(0))}</dd>
            <dt>"Cost"</dt><dd>{match g.cost { Some(c) => format!("${c:.6}"), None => "unknown: the model has no price".into() }}</dd>
            <dt>"Finish reason"</dt><dd>{g.finish_reason.clone().unwrap_or_else(|| "not sent".into())}</dd>
            <dt>"User and session"</dt><dd>{format!("{} · {}", g.user.clone().unwrap_or_else(|| "—".into()), g.session.clone().unwrap_or_else(|| "—".into()))}</dd>
        </dl>
        <section class="card" aria-labelledby="saw-title">
            <h2 id="saw-title">"What the assistant was told"</h2>
            {rendered}
            {template}
        </section>
        <section class="card" aria-labelledby="said-title">
            <h2 id="said-title">"What it answered"</h2>
            {match g.output.clone() {
                Some(o) => view! { <pre class="output">{o}</pre> }.into_any(),
                None => view! { <p class="empty">"The application did not send the answer."</p> }.into_any(),
            }}
            {(!g.truncated.is_empty()).then(|| view! { <p class="hint">{format!("Cut to 32 KiB when stored: {}.", g.truncated.join(", "))}</p> })}
        </section>
        <section class="card" aria-labelledby="scores-title">
            <h2 id="scores-title">"Feedback and scores"</h2>
            {if detail.scores.is_empty() {
                view! { <p class="empty">"None yet."</p> }.into_any()
            } else {
                view! { <ul>{detail.scores.iter().map(|s| view! {
                    <li>{format!("{}: {}", s.name, s.value)}{s.comment.clone().map(|c| format!(" — “{c}”"))}" · "<Time at=s.created_at.clone()/></li>
                }).collect_view()}</ul> }.into_any()
            }}
        </section>
        {g.variables.as_ref().map(|v| view! {
            <details class="card"><summary>"Variables the application sent"</summary><pre>{pretty(v)}</pre></details>
        })}
        {g.metadata.as_ref().map(|m| view! {
            <details class="card"><summary>"Metadata"</summary><pre>{pretty(m)}</pre></details>
        })}
    }
}
