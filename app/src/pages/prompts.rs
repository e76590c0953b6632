//! The prompt list: every prompt with what its labels serve.

use domain::model::PromptSummary;
use leptos::prelude::*;

use crate::error::AppError;

/// Prompts shown on one page of the list.
const PAGE: i64 = 200;

#[server]
pub async fn list_prompts() -> Result<Vec<PromptSummary>, AppError> {
    let registry = expect_context::<service::Registry>();
    // Sign-in arrives with the console's accounts; until then the console reads as a viewer.
    let viewer = service::Principal::console_viewer();
    let query = service::PromptQuery { limit: Some(PAGE), ..Default::default() };
    Ok(registry.list_prompts(&viewer, &query)?.items)
}

#[component]
pub fn PromptsPage() -> impl IntoView {
    let prompts = Resource::new(|| (), |_| list_prompts());
    let (filter, set_filter) = signal(String::new());
    // Effects run only in the browser: this marks the page as hydrated (and interactive).
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));

    view! {
        <section class="prompts" data-hydrated=move || hydrated.get().to_string()>
            <div class="page-head">
                <h1>"Prompts"</h1>
                <label class="search">
                    <span class="visually-hidden">"Filter prompts by name"</span>
                    <input
                        type="search"
                        placeholder="Filter by name…"
                        prop:value=filter
                        on:input=move |ev| set_filter.set(event_target_value(&ev))
                    />
                </label>
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Loading prompts…"</p> }>
                <ErrorBoundary fallback=|errors| view! {
                    <p class="error" role="alert">
                        {move || errors.get().into_iter().map(|(_, e)| e.to_string()).collect::<Vec<_>>().join(" ")}
                    </p>
                }>
                    {move || Suspend::new(async move {
                        let items = prompts.await?;
                        Ok::<_, AppError>(view! { <PromptTable items filter/> })
                    })}
                </ErrorBoundary>
            </Suspense>
        </section>
    }
}

#[component]
fn PromptTable(items: Vec<PromptSummary>, filter: ReadSignal<String>) -> impl IntoView {
    if items.is_empty() {
        return view! {
            <p class="empty">
                "No prompts yet. Create one with the API: "
                <code>"POST /api/v1/prompts"</code>
                " (see the README)."
            </p>
        }
        .into_any();
    }
    let items = StoredValue::new(items);
    let visible = move || {
        let needle = filter.get().to_lowercase();
        items.with_value(|all| all.iter().filter(|p| p.name.contains(&needle)).cloned().collect::<Vec<_>>())
    };
    view! {
        <table class="prompt-table">
            <caption class="visually-hidden">"Prompts and the versions their labels serve"</caption>
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Description"</th>
                    <th scope="col">"Latest"</th>
                    <th scope="col">"Labels"</th>
                    <th scope="col">"Updated"</th>
                </tr>
            </thead>
            <tbody>
                <For each=visible key=|p| p.name.clone() let:p>
                    <tr class="prompt-row">
                        <td class="name">{p.name.clone()}</td>
                        <td>{p.description.clone()}</td>
                        <td>"v" {p.latest_version}</td>
                        <td class="labels">
                            {p.labels.iter().map(|(label, version)| view! {
                                <span class="badge" class:stable=label == "stable">{format!("{label} → v{version}")}</span>
                            }).collect_view()}
                        </td>
                        <td><time datetime=p.updated_at.clone()>{p.updated_at.get(..16).unwrap_or_default().replace('T', " ")}</time></td>
                    </tr>
                </For>
            </tbody>
        </table>
        <p class="count">{move || format!("{} of {} prompts", visible().len(), items.with_value(Vec::len))}</p>
    }
    .into_any()
}
