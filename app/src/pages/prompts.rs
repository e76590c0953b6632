//! The prompt list: search by name or description, filter by tag and folder, label
//! badges, last change and author, paged through the server (so 10,000 prompts stay
//! fast), with links that keep the filters in the address.

use domain::model::PromptSummary;
use leptos::prelude::*;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::widgets::{ErrorNote, LabelBadge, Time, loading};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptList {
    pub items: Vec<PromptSummary>,
    pub next_cursor: Option<String>,
    pub folders: Vec<(String, i64)>,
}

#[server(endpoint = "console/list_prompts")]
pub async fn list_prompts(
    q: Option<String>,
    tag: Option<String>,
    folder: Option<String>,
    cursor: Option<String>,
) -> Result<PromptList, AppError> {
    /// Prompts shown on one page of the list.
    const PAGE: i64 = 50;
    let (who, registry) = crate::auth::ssr::caller().await?;
    let query = service::PromptQuery { q, tag, folder, cursor, limit: Some(PAGE) };
    let page = registry.list_prompts(&who, &query)?;
    Ok(PromptList { items: page.items, next_cursor: page.next_cursor, folders: registry.folders(&who)? })
}

/// `?key=value&...` for the list's address, leaving out empty values.
fn list_href(params: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    if query.is_empty() { "/".into() } else { format!("/?{}", query.join("&")) }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[component]
pub fn PromptsPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |k: &str| query.with(|q| q.get(k)).filter(|v| !v.is_empty());
    let prompts = Resource::new(
        move || (param("q"), param("tag"), param("folder"), param("cursor")),
        |(q, tag, folder, cursor)| list_prompts(q, tag, folder, cursor),
    );
    view! {
        <section class="prompts">
            <div class="page-head">
                <h1>"Prompts"</h1>
                <Form method="GET" action="" attr:class="search" attr:role="search">
                    <label for="q" class="visually-hidden">"Search prompts by name or description"</label>
                    <input id="q" type="search" name="q" placeholder="Search by name or description"
                        value=param("q").unwrap_or_default()
                        prop:value=move || param("q").unwrap_or_default()/>
                    {move || param("tag").map(|t| view! { <input type="hidden" name="tag" value=t/> })}
                    {move || param("folder").map(|f| view! { <input type="hidden" name="folder" value=f/> })}
                    <button type="submit">"Search"</button>
                </Form>
            </div>
            <Transition fallback=|| loading("prompts")>
                {move || Suspend::new(async move {
                    match prompts.await {
                        Ok(list) => view! {
                            <PromptList list q=param("q") tag=param("tag") folder=param("folder") cursor=param("cursor")/>
                        }.into_any(),
                        Err(error) => view! { <ErrorNote error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn PromptList(
    list: PromptList,
    q: Option<String>,
    tag: Option<String>,
    folder: Option<String>,
    cursor: Option<String>,
) -> impl IntoView {
    let filtered = q.is_some() || tag.is_some() || folder.is_some();
    let folders = list.folders.clone();
    let current_folder = folder.clone();
    let tree = view! {
        <nav class="folders" aria-label="Folders">
            <h2>"Folders"</h2>
            <ul>
                <li><A href=list_href(&[("q", q.as_deref()), ("tag", tag.as_deref())])
                    attr:aria-current=current_folder.is_none().then_some("page")>"All prompts"</A></li>
                {folders.into_iter().map(|(path, count)| {
                    let depth = path.matches('/').count();
                    let leaf = path.rsplit('/').next().unwrap_or(&path).to_owned();
                    let href = list_href(&[("q", q.as_deref()), ("tag", tag.as_deref()), ("folder", Some(&path))]);
                    let current = (current_folder.as_deref() == Some(path.as_str())).then_some("page");
                    view! {
                        <li class=format!("depth-{}", depth.min(4))>
                            <A href=href attr:aria-current=current>{leaf} " " <span class="count">{count}</span></A>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </nav>
    };
    let active_filters = (tag.is_some() || folder.is_some()).then(|| {
        view! {
            <p class="filters">
                {tag.clone().map(|t| view! { <span class="chip">"Tag: " {t}</span> })}
                {folder.clone().map(|f| view! { <span class="chip">"Folder: " {f}</span> })}
                " " <a href="/">"Clear filters"</a>
            </p>
        }
    });
    let body = if list.items.is_empty() {
        let text = if filtered {
            "No prompt matches these filters. Try other words or clear the filters."
        } else {
            "No prompts yet. Create one with the API (POST /api/v1/prompts, see the README); it then appears here."
        };
        view! { <p class="empty">{text}</p> }.into_any()
    } else {
        let next = list.next_cursor.clone().map(|c| {
            list_href(&[
                ("q", q.as_deref()),
                ("tag", tag.as_deref()),
                ("folder", folder.as_deref()),
                ("cursor", Some(&c)),
            ])
        });
        let first = cursor
            .is_some()
            .then(|| list_href(&[("q", q.as_deref()), ("tag", tag.as_deref()), ("folder", folder.as_deref())]));
        view! {
            <table class="prompt-table">
                <caption class="visually-hidden">"Prompts, the versions their labels serve and their last change"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Description"</th>
                        <th scope="col">"Labels"</th>
                        <th scope="col">"Last change"</th>
                    </tr>
                </thead>
                <tbody>
                    {list.items.into_iter().map(|p| {
                        let href = format!("/prompts/{}", p.name);
                        view! {
                            <tr class="prompt-row">
                                <td class="name"><A href=href>{p.name.clone()}</A></td>
                                <td>
                                    {p.description.clone()}
                                    <span class="tags">{p.tags.iter().map(|t| view! {
                                        <a class="tag" href=list_href(&[("tag", Some(t))])>{format!("#{t}")}</a>
                                    }).collect_view()}</span>
                                </td>
                                <td class="labels">
                                    <LabelBadge label="latest".into() version=p.latest_version/>
                                    {p.labels.iter().map(|(label, version)| view! {
                                        <LabelBadge label=label.clone() version=*version/>
                                    }).collect_view()}
                                    {p.rollouts.iter().map(|(label, split)| view! {
                                        <a class="badge badge-rollout" href=format!("/rollouts/{}", split.id)
                                            title="A gradual rollout is running">
                                            {format!("{label}: v{} at {} %", split.candidate_version, split.weight)}
                                        </a>
                                    }).collect_view()}
                                </td>
                                <td><Time at=p.updated_at.clone()/> <span class="by">{format!("by {}", p.updated_by)}</span></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            <nav class="pager" aria-label="Pages">
                // Plain links: `<A>` would mark every link to `/` as the current page.
                {first.map(|href| view! { <a href=href>"← First page"</a> })}
                {next.map(|href| view! { <a href=href>"Next page →"</a> })}
            </nav>
        }
        .into_any()
    };
    view! {
        <div class="with-sidebar">
            {tree}
            <div class="list">{active_filters}{body}</div>
        </div>
    }
}
