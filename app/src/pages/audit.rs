//! The audit log for every signed-in person (a viewer is the compliance officer): events
//! filtered by prompt, person, action and time, newest first, paged through the server,
//! exported as CSV or JSON, the chain verified, and what a label served at an instant
//! (both versions, when a gradual rollout was under way then).
//! Times are UTC throughout: the date pickers' values are read as UTC.

use domain::model::{AuditEvent, Page, VerifyReport, VersionView};
use domain::vocabulary::AuditAction;
use leptos::prelude::*;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::pages::prompts::urlencode;
use crate::pages::rollouts::steps_words;
use crate::widgets::{ErrorNote, Time, loading};

/// The filters, as the address and the export links carry them.
const FILTERS: [&str; 5] = ["prompt", "actor", "action", "since", "until"];

/// An instant as a date picker (`<input type="datetime-local">`) or a person writes it,
/// read as UTC, in RFC 3339: `2026-03-15T14:47` becomes `2026-03-15T14:47:00Z`. Seconds,
/// fractions and an explicit zone (`Z`, `+02:00`) are kept; a space may stand for the
/// `T`. `None` when it is not shaped like a date and time (the calendar itself is
/// checked by the server's parser).
pub fn utc_instant(input: &str) -> Option<String> {
    let s = input.trim();
    let b = s.as_bytes();
    let digits = |from: usize, to: usize| b.get(from..to).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shaped = digits(0, 4)
        && b.get(4) == Some(&b'-')
        && digits(5, 7)
        && b.get(7) == Some(&b'-')
        && digits(8, 10)
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && digits(11, 13)
        && b.get(13) == Some(&b':')
        && digits(14, 16);
    if !shaped {
        return None;
    }
    let mut out = format!("{}T{}", &s[..10], &s[11..16]);
    let mut rest = &s[16..];
    if let Some(r) = rest.strip_prefix(':') {
        let (seconds, r) = r.split_at_checked(2)?;
        if !seconds.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        out.push(':');
        out.push_str(seconds);
        rest = r;
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            out.push('.');
            out.push_str(&r[..n]);
            rest = &r[n..];
        }
    } else {
        out.push_str(":00");
    }
    let zb = rest.as_bytes();
    match rest {
        "" | "Z" | "z" => out.push('Z'),
        _ if zb.len() == 6
            && matches!(zb[0], b'+' | b'-')
            && zb[1..3].iter().all(u8::is_ascii_digit)
            && zb[3] == b':'
            && zb[4..6].iter().all(u8::is_ascii_digit) =>
        {
            out.push_str(rest)
        }
        _ => return None,
    }
    Some(out)
}

/// What a date picker shows for an instant from the address: `2026-03-15T14:47:00Z`
/// back to `2026-03-15T14:47`; anything else as it is.
fn picker_value(value: &str) -> String {
    match utc_instant(value) {
        Some(s) if s.ends_with(":00Z") && s.len() == 20 => s[..16].to_owned(),
        _ => value.to_owned(),
    }
}

/// `2026-03-15T14:47:00Z` as `2026-03-15 14:47 UTC`; an instant with another offset as
/// it is.
fn readable_instant(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(utc) => format!("{} UTC", utc.get(..16).unwrap_or(utc).replace('T', " ")),
        None => rfc3339.to_owned(),
    }
}

/// A time filter from the form, as the service's microseconds.
#[cfg(feature = "ssr")]
fn filter_instant(what: &str, value: Option<String>) -> Result<Option<i64>, AppError> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    utc_instant(&value).and_then(|s| service::time::parse_rfc3339(&s)).map(Some).ok_or_else(|| {
        AppError::invalid(format!(
            "“{what}” is not a date and time we can read (you gave '{value}'). Pick one with the date picker, \
             or write it like 2026-03-15T14:47 (times are UTC)."
        ))
    })
}

#[server(endpoint = "console/audit_events")]
pub async fn audit_events(
    prompt: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
) -> Result<Page<AuditEvent>, AppError> {
    /// Events shown on one page of the log.
    const PAGE: i64 = 100;
    let (who, registry) = crate::auth::ssr::caller().await?;
    let text = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let filter = service::AuditFilter {
        prompt: text(prompt),
        actor: text(actor),
        action: text(action),
        since: filter_instant("From", since)?,
        until: filter_instant("Until", until)?,
        before_seq: None,
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since > until
    {
        return Err(AppError::invalid(
            "“From” is later than “Until”, so no event can match. Swap the two times or clear one of them.",
        ));
    }
    Ok(registry.audit(&who, filter, Some(PAGE), text(cursor).as_deref()).await?)
}

#[server(endpoint = "console/verify_chain")]
pub async fn verify_chain() -> Result<VerifyReport, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.verify(&who).await?)
}

/// What a label served at an instant: the version it pointed at, and the new version of
/// a gradual rollout under way then with its share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveAt {
    pub version: VersionView,
    pub rollout: Option<LiveSplit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSplit {
    pub id: String,
    pub weight: u32,
    pub candidate: VersionView,
}

/// The version `label` of prompt `name` served at the instant `at` (UTC).
#[server(endpoint = "console/live_version")]
pub async fn live_version(name: String, label: String, at: String) -> Result<LiveAt, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let name = name.trim();
    if name.is_empty() {
        return Err(AppError::invalid("Type the name of a prompt, for example support/greeting."));
    }
    let label = match label.trim() {
        "" => "stable",
        l => l,
    };
    let at = match at.trim() {
        "" => return Err(AppError::invalid("Pick the date and time to look at (UTC).")),
        at => utc_instant(at).ok_or_else(|| {
            AppError::invalid(format!(
                "“At” is not a date and time we can read (you gave '{at}'). Pick one with the date picker, \
                 or write it like 2026-03-15T14:47 (UTC)."
            ))
        })?,
    };
    let selector = domain::model::Selector { version: None, label: Some(label.to_owned()), at: Some(at), unit: None, raw: false };
    let served = registry.resolve(&who, name, &selector).await?;
    let Some(arm) = served.rollout.clone() else {
        return Ok(LiveAt { version: served.base.view.clone(), rollout: None });
    };
    // Resolve picked one of the rollout's two versions; show both, by number.
    let rollout = registry.rollout(&who, &arm.id).await?;
    let exact = |v: i64| domain::model::Selector { version: Some(v), ..Default::default() };
    let base = registry.resolve(&who, name, &exact(rollout.base_version)).await?.base.view.clone();
    let candidate = registry.resolve(&who, name, &exact(rollout.candidate_version)).await?.base.view.clone();
    Ok(LiveAt { version: base, rollout: Some(LiveSplit { id: arm.id, weight: arm.weight, candidate }) })
}

/// `/audit?...` with the given filters (empty ones left out).
fn audit_href(path: &str, params: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) }
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |k: &str| query.with(|q| q.get(k)).filter(|v| !v.is_empty());
    let filters = move || FILTERS.map(|k| (k, param(k)));
    let events = Resource::new(
        move || (param("prompt"), param("actor"), param("action"), param("since"), param("until"), param("cursor")),
        |(prompt, actor, action, since, until, cursor)| audit_events(prompt, actor, action, since, until, cursor),
    );
    let value = move |k: &'static str| move || param(k).unwrap_or_default();
    let picker = move |k: &'static str| move || param(k).map(|v| picker_value(&v)).unwrap_or_default();
    let filtered = move || FILTERS.iter().any(|k| param(k).is_some());
    // The "what was live" panel starts from the prompt the log is filtered by, if any.
    let first_prompt = query.with_untracked(|q| q.get("prompt")).unwrap_or_default();
    view! {
        <section class="audit">
            <h1>"Audit log"</h1>
            <p class="hint">"Every change to prompts, labels, people and keys, newest first. Times are in UTC."</p>
            <div class="audit-panels">
                <VerifyPanel/>
                <LiveAtPanel prompt=first_prompt/>
            </div>
            <Form method="GET" action="" attr:class="audit-filters" attr:aria-label="Filter the audit log">
                <div class="field">
                    <label for="filter-prompt">"Prompt (exact name)"</label>
                    <input id="filter-prompt" name="prompt" placeholder="support/greeting"
                        value=value("prompt") prop:value=value("prompt")/>
                </div>
                <div class="field">
                    <label for="filter-actor">"Person"</label>
                    <input id="filter-actor" name="actor" placeholder="username or key:NAME"
                        value=value("actor") prop:value=value("actor")/>
                </div>
                <div class="field">
                    <label for="filter-action">"Action"</label>
                    <select id="filter-action" name="action" prop:value=value("action")>
                        <option value="" selected=move || param("action").is_none()>"Any action"</option>
                        {AuditAction::ALL.iter().map(|a| {
                            let action = a.as_str();
                            view! {
                                <option value=action selected=move || param("action").as_deref() == Some(action)>
                                    {format!("{action}: {}", a.words())}
                                </option>
                            }
                        }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="filter-since">"From (UTC)"</label>
                    <input id="filter-since" name="since" type="datetime-local"
                        value=picker("since") prop:value=picker("since")/>
                </div>
                <div class="field">
                    <label for="filter-until">"Until (UTC)"</label>
                    <input id="filter-until" name="until" type="datetime-local"
                        value=picker("until") prop:value=picker("until")/>
                </div>
                <div class="actions">
                    <button type="submit" class="primary">"Show events"</button>
                    {move || filtered().then(|| view! { <a href="/audit">"Clear filters"</a> })}
                </div>
            </Form>
            <p class="export">
                <a href=move || audit_href("/export/audit.csv", &filters()) download rel="external">"Export CSV"</a>
                " "
                <a href=move || audit_href("/export/audit.json", &filters()) download rel="external">"Export JSON"</a>
                " "
                <span class="hint">"(every event that matches the filters, not only this page)"</span>
            </p>
            <Transition fallback=|| loading("events")>
                {move || Suspend::new(async move {
                    match events.await {
                        Ok(page) => view! {
                            <EventTable page filters=filters() cursor=param("cursor") filtered=filtered()/>
                        }.into_any(),
                        Err(error) => view! { <ErrorNote error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn EventTable(
    page: Page<AuditEvent>,
    filters: [(&'static str, Option<String>); 5],
    cursor: Option<String>,
    filtered: bool,
) -> impl IntoView {
    if page.items.is_empty() {
        let text = if filtered || cursor.is_some() {
            "No events match these filters. Widen the time range or clear the filters."
        } else {
            "No events yet. Every change to a prompt, a label, a person or a key will be listed here."
        };
        let newest = cursor.is_some().then(|| {
            view! {
                <nav class="pager" aria-label="Pages"><a href=audit_href("/audit", &filters)>"Newest events"</a></nav>
            }
        });
        return view! { <p class="empty">{text}</p> {newest} }.into_any();
    }
    let older = page.next_cursor.clone().map(|c| {
        let mut params = filters.to_vec();
        params.push(("cursor", Some(c)));
        audit_href("/audit", &params)
    });
    let newest = cursor.is_some().then(|| audit_href("/audit", &filters));
    view! {
        <table class="audit-table">
            <caption class="visually-hidden">"Audit events, newest first"</caption>
            <thead>
                <tr>
                    <th scope="col" class="num">"#"</th>
                    <th scope="col">"Time"</th>
                    <th scope="col">"Person"</th>
                    <th scope="col">"Action"</th>
                    <th scope="col">"Prompt"</th>
                    <th scope="col" class="num">"Version"</th>
                    <th scope="col">"Label"</th>
                    <th scope="col">"Details"</th>
                </tr>
            </thead>
            <tbody>
                {page.items.into_iter().map(|ev| {
                    let details = summarise(&ev);
                    let rollout = ev.detail.get("rollout").and_then(|v| v.as_str()).map(|id| view! {
                        " " <a href=format!("/rollouts/{id}")>"Open the rollout"</a>
                    });
                    let prompt = ev.prompt.clone().map(|p| view! { <A href=format!("/prompts/{p}")>{p.clone()}</A> });
                    view! {
                        <tr class="audit-row" id=format!("event-{}", ev.seq)>
                            <td class="num" title=format!("Event hash {}", ev.hash)>{ev.seq}</td>
                            <td><Time at=ev.at.clone()/></td>
                            <td>{ev.actor.clone()}</td>
                            <td><code class="action">{ev.action.clone()}</code></td>
                            <td class="name">{prompt}</td>
                            <td class="num">{ev.version.map(|v| format!("v{v}"))}</td>
                            <td>{ev.label.clone()}</td>
                            <td class="details">{details}{rollout}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        {(newest.is_some() || older.is_some()).then(|| view! {
            <nav class="pager" aria-label="Pages">
                {newest.map(|href| view! { <a href=href>"Newest events"</a> })}
                {older.map(|href| view! { <a href=href>"Older events →"</a> })}
            </nav>
        })}
    }
    .into_any()
}

/// An event's `detail` in a few words: the commit message, the reason for a label move,
/// what changed about a person or a key.
pub fn summarise(ev: &AuditEvent) -> String {
    let d = &ev.detail;
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let quoted = |k: &str, none: &str| match text(k) {
        t if t.trim().is_empty() => none.to_owned(),
        t => format!("“{t}”"),
    };
    match ev.action.as_str() {
        "version.created" | "prompt.created" => quoted("message", "No message"),
        "label.moved" => {
            let from = match d.get("previous_version").and_then(|v| v.as_i64()) {
                Some(v) => format!("Moved from v{v}"),
                None => "First placed".to_owned(),
            };
            format!("{from}. Reason: {}", quoted("reason", "none given"))
        }
        "user.created" => format!("{} added as {}", text("username"), text("role")),
        "user.updated" => {
            let mut changes = Vec::new();
            let (role, previous) = (text("role"), text("previous_role"));
            if !previous.is_empty() && previous != role {
                changes.push(format!("role {previous} → {role}"));
            }
            if d.get("password_changed").and_then(|v| v.as_bool()) == Some(true) {
                changes.push("new password".to_owned());
            }
            if changes.is_empty() {
                changes.push(format!("role stays {role}"));
            }
            format!("{}: {}", text("username"), changes.join(", "))
        }
        "user.disabled" => format!("{} can no longer sign in", text("username")),
        "user.enabled" => format!("{} can sign in again", text("username")),
        "apikey.created" => {
            let acts_as = match text("user") {
                u if u.is_empty() => String::new(),
                u => format!(", acts as {u}"),
            };
            format!("{} ({}…), {} scope{acts_as}", text("name"), text("prefix"), text("scope"))
        }
        "apikey.revoked" => format!("{} ({}…)", text("name"), text("prefix")),
        action if action.starts_with("rollout.") => {
            let number = |k: &str| d.get(k).and_then(|v| v.as_i64()).unwrap_or_default();
            let what = match action {
                "rollout.started" => {
                    let steps: Vec<u32> = serde_json::from_value(d["steps"].clone()).unwrap_or_default();
                    format!("Gradual rollout from v{}: {}", number("base_version"), steps_words(&steps))
                }
                "rollout.advanced" => format!("Next step: {} % of users", number("weight")),
                "rollout.resumed" => format!("Resumed at {} % of users", number("weight")),
                "rollout.completed" => "Finished: everyone gets this version".to_owned(),
                _ => text("note"),
            };
            match text("reason") {
                r if r.trim().is_empty() || what.contains(&r) => what,
                r => format!("{what}. Reason: “{r}”"),
            }
        }
        _ => {
            let all = d.to_string();
            if all.chars().count() > 200 { format!("{}…", all.chars().take(200).collect::<String>()) } else { all }
        }
    }
}

#[island(lazy)]
fn VerifyPanel() -> impl IntoView {
    crate::mark_hydrated();
    let report = Resource::new(|| (), |_| verify_chain());
    view! {
        <section id="verify" class="panel" aria-labelledby="verify-title">
            <h2 id="verify-title">"Chain verification"</h2>
            <p class="hint">
                "Recomputes every event's hash and every version's content hash, and checks that nothing was \
                 changed, removed or inserted."
            </p>
            <Transition fallback=|| loading("the verification")>
                {move || Suspend::new(async move {
                    match report.await {
                        Ok(report) => verify_result(report).into_any(),
                        Err(error) => view! { <ErrorNote error/> }.into_any(),
                    }
                })}
            </Transition>
            <button type="button" on:click=move |_| report.refetch()>"Check again"</button>
        </section>
    }
}

fn verify_result(report: VerifyReport) -> impl IntoView {
    if report.ok {
        let short = match report.head.strip_prefix("sha256:") {
            Some(hex) => format!("sha256:{}…", hex.get(..12).unwrap_or(hex)),
            None => report.head.clone(),
        };
        view! {
            <p class="verify-ok" role="status">
                {format!("Audit chain intact: {} events, {} versions checked, head ", report.events, report.versions)}
                <code title=report.head.clone()>{short}</code>
            </p>
        }
        .into_any()
    } else {
        let message = report.message.clone().unwrap_or_else(|| "the log does not check out".into());
        let text = match report.first_bad_seq {
            Some(seq) => format!("Audit chain broken at event #{seq}: {message}"),
            None => format!("Audit chain broken: {message}"),
        };
        view! {
            <p class="verify-broken" role="alert">{text}</p>
            <p class="hint">
                "The events from this point on cannot be trusted. Keep a copy of the database file as it is now and \
                 tell your administrator, who can compare it with a backup to find what changed."
            </p>
        }
        .into_any()
    }
}

/// What a label served at an instant, as asked.
#[derive(Clone)]
struct Asked {
    label: String,
    at: String,
}

#[island(lazy)]
fn LiveAtPanel(prompt: String) -> impl IntoView {
    crate::mark_hydrated();
    let name = RwSignal::new(prompt);
    let label = RwSignal::new("stable".to_owned());
    let at = RwSignal::new(String::new());
    let asked = RwSignal::new(None::<Asked>);
    let action = ServerAction::<LiveVersion>::new();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (n, l, a) = (name.get_untracked(), label.get_untracked(), at.get_untracked());
        let shown_label = if l.trim().is_empty() { "stable".to_owned() } else { l.trim().to_owned() };
        let shown_at = utc_instant(&a).map(|s| readable_instant(&s)).unwrap_or_else(|| a.clone());
        asked.set(Some(Asked { label: shown_label, at: shown_at }));
        action.dispatch(LiveVersion { name: n, label: l, at: a });
    };
    view! {
        <section id="live-at" class="panel" aria-labelledby="live-at-title">
            <h2 id="live-at-title">"What was live at"</h2>
            <p class="hint">"Which version a label served at a past instant (UTC), and its text."</p>
            <form class="live-at-form" on:submit=on_submit>
                <div class="field">
                    <label for="live-name">"Prompt name"</label>
                    <input id="live-name" required placeholder="support/greeting" value=name.get_untracked() bind:value=name/>
                </div>
                <div class="field">
                    <label for="live-label">"Label"</label>
                    <input id="live-label" required value="stable" bind:value=label/>
                </div>
                <div class="field">
                    <label for="live-at-instant">"At (UTC)"</label>
                    <input id="live-at-instant" type="datetime-local" step="1" required bind:value=at/>
                </div>
                <button type="submit" class="primary" disabled=move || action.pending().get()>"Show"</button>
            </form>
            <div class="live-result" aria-live="polite">
                {move || {
                    if action.pending().get() {
                        return Some(view! { <p class="loading" role="status">"Looking it up…"</p> }.into_any());
                    }
                    action.value().get().map(|result| match result {
                        Ok(live) => live_result(live, asked.get_untracked()).into_any(),
                        Err(error) => view! { <ErrorNote error/> }.into_any(),
                    })
                }}
            </div>
        </section>
    }
}

fn live_result(live: LiveAt, asked: Option<Asked>) -> impl IntoView {
    let asked = asked.unwrap_or(Asked { label: "stable".into(), at: String::new() });
    let version = live.version;
    let Some(split) = live.rollout else {
        let heading = format!("{} · {} served version {} at {}", version.name, asked.label, version.version, asked.at);
        return view! { <h3 class="live-heading">{heading}</h3> {version_block(version)} }.into_any();
    };
    let heading = format!(
        "{} · {} served version {}, with version {} at {} % (rollout {}) at {}",
        version.name, asked.label, version.version, split.candidate.version, split.weight, split.id, asked.at
    );
    let base_share = format!("Version {} ({} % of users)", version.version, 100 - split.weight.min(100));
    let new_share =
        format!("Version {} ({} % of users, in the gradual rollout)", split.candidate.version, split.weight);
    view! {
        <h3 class="live-heading">{heading}</h3>
        <p><a href=format!("/rollouts/{}", split.id)>"Open the rollout"</a>" to see how the two versions did."</p>
        <h4>{base_share}</h4>
        {version_block(version)}
        <h4>{new_share}</h4>
        {version_block(split.candidate)}
    }
    .into_any()
}

/// A version's text (or messages) with who saved it and why.
fn version_block(version: VersionView) -> impl IntoView {
    let text = match (&version.template, &version.messages) {
        (Some(template), _) => template.clone().into_any(),
        (None, Some(messages)) => messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let role = match m.role {
                    domain::MessageRole::System => "system",
                    domain::MessageRole::User => "user",
                    domain::MessageRole::Assistant => "assistant",
                    domain::MessageRole::Placeholder => "placeholder",
                };
                let gap = if i == 0 { "" } else { "\n\n" };
                view! { {gap} <span class="message-role">{format!("[{role}]")}</span> "\n" {m.content.clone()} }
            })
            .collect_view()
            .into_any(),
        (None, None) => "".into_any(),
    };
    let message =
        if version.message.trim().is_empty() { "no message".to_owned() } else { format!("“{}”", version.message) };
    view! {
        <p class="version-meta">
            {format!("Version {} saved by {}, ", version.version, version.created_by)}
            <Time at=version.created_at.clone()/>
            {format!(": {message}")}
        </p>
        <pre class="prompt-text">{text}</pre>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_picker_values_are_read_as_utc() {
        assert_eq!(utc_instant("2026-03-15T14:47").as_deref(), Some("2026-03-15T14:47:00Z"));
        assert_eq!(utc_instant(" 2026-03-15 14:47 ").as_deref(), Some("2026-03-15T14:47:00Z"));
        assert_eq!(utc_instant("2026-03-15T14:47:05").as_deref(), Some("2026-03-15T14:47:05Z"));
        assert_eq!(utc_instant("2026-03-15T14:47:05.250").as_deref(), Some("2026-03-15T14:47:05.250Z"));
        assert_eq!(utc_instant("2026-03-15T14:47:00Z").as_deref(), Some("2026-03-15T14:47:00Z"));
        assert_eq!(utc_instant("2026-03-15T14:47:00+02:00").as_deref(), Some("2026-03-15T14:47:00+02:00"));
        for bad in ["", "yesterday", "2026-03-15", "2026-3-15T14:47", "2026-03-15T14:47:5", "2026-03-15T14:47 UTC"] {
            assert_eq!(utc_instant(bad), None, "{bad}");
        }
        assert_eq!(picker_value("2026-03-15T14:47:00Z"), "2026-03-15T14:47");
        assert_eq!(picker_value("2026-03-15T14:47"), "2026-03-15T14:47");
    }
}
