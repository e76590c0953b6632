//! promptledger's console: components rendered on the server and hydrated in the browser.
//! Components see data only through server functions, which are thin callers of the
//! service layer (`service::Registry`, server-only).

#![recursion_limit = "256"]
pub mod auth;
pub mod error;
pub mod pages;
pub mod widgets;

use domain::access::Action;
use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

use auth::{LoginPage, LogoutButton, Me};
use error::AppError;

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Who is signed in, fetched once per page load and shared by the top bar and the pages.
type UserResource = Resource<Result<Option<Me>, AppError>>;

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let user: UserResource = Resource::new(|| (), |_| auth::current_user());
    provide_context(user);
    view! {
        <Stylesheet id="leptos" href="/pkg/promptledger.css"/>
        <Title text="promptledger"/>
        <Router>
            <div class="app" data-hydrated="false">
                <HydrationMark/>
                <a class="skip-link" href="#main">"Skip to content"</a>
                <TopBar/>
                <main id="main">
                    <Routes fallback=|| view! {
                        <p class="empty">"This page does not exist. Go back to the " <a href="/">"prompt list"</a> "."</p>
                    }>
                        <Route path=path!("/") view=|| view! { <Gate><pages::prompts::PromptsPage/></Gate> }/>
                        <Route path=path!("/prompts/*name") view=|| view! { <Gate><pages::prompt::PromptPage/></Gate> }/>
                        <Route path=path!("/history/*name") view=|| view! { <Gate><pages::history::HistoryPage/></Gate> }/>
                        <Route path=path!("/production/*name") view=|| view! { <Gate><pages::production::ProductionPage/></Gate> }/>
                        <Route path=path!("/calls") view=|| view! { <Gate><pages::calls::CallPage/></Gate> }/>
                        <Route path=path!("/evals/*name") view=|| view! { <Gate><pages::evals::EvalsPage/></Gate> }/>
                        <Route path=path!("/rollouts/:id") view=|| view! { <Gate><pages::rollouts::RolloutPage/></Gate> }/>
                        <Route path=path!("/runs/:id") view=|| view! { <Gate><pages::evals::RunPage/></Gate> }/>
                        <Route path=path!("/compare-runs") view=|| view! { <Gate><pages::evals::CompareRunsPage/></Gate> }/>
                        <Route path=path!("/approvals") view=|| view! { <Gate><pages::approvals::ApprovalsPage/></Gate> }/>
                        <Route path=path!("/releases") view=|| view! { <Gate><pages::releases::ReleasesPage/></Gate> }/>
                        <Route path=path!("/rules") view=|| view! { <Gate><pages::approvals::PoliciesPage/></Gate> }/>
                        <Route path=path!("/audit") view=|| view! { <Gate><pages::audit::AuditPage/></Gate> }/>
                        <Route path=path!("/admin") view=|| view! { <Gate><pages::admin::AdminPage/></Gate> }/>
                    </Routes>
                </main>
            </div>
        </Router>
    }
}

/// Counts the page's islands as they hydrate; the page is marked interactive
/// (`data-hydrated="true"` on `div.app`, for people's tools and the browser tests) once
/// every island on it runs. Islands load lazily, each from its own wasm chunk.
#[island]
fn HydrationMark() -> impl IntoView {
    mark_hydrated();
}

/// Called at the top of every island: counts it once it runs in the browser.
pub(crate) fn mark_hydrated() {
    Effect::new(|_| {
        let document = document();
        let Ok(Some(app)) = document.query_selector("div.app") else { return };
        let done = app.get_attribute("data-islands").and_then(|n| n.parse::<u32>().ok()).unwrap_or(0) + 1;
        let _ = app.set_attribute("data-islands", &done.to_string());
        let total = document.get_elements_by_tag_name("leptos-island").length();
        if done >= total {
            let _ = app.set_attribute("data-hydrated", "true");
        }
    });
}

/// The navigation, with who is signed in.
#[component]
fn TopBar() -> impl IntoView {
    let user = expect_context::<UserResource>();
    view! {
        <header class="topbar">
            <a class="brand" href="/">"promptledger"</a>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    user.await.ok().flatten().map(|me| {
                        let admin = me.can(Action::Administer);
                        view! {
                            <nav aria-label="Main">
                                <A href="/" exact=true>"Prompts"</A>
                                <A href="/releases">"Releases"</A>
                                <A href="/approvals">"Approvals"</A>
                                <A href="/audit">"Audit"</A>
                                {admin.then(|| view! { <A href="/rules">"Label rules"</A> <A href="/admin">"Users and keys"</A> })}
                            </nav>
                            <pages::calls::LookupBox/>
                            <div class="who">
                                <span>{me.username.clone()} " · " <span class="role">{me.role.as_str()}</span></span>
                                <LogoutButton/>
                            </div>
                        }
                    })
                })}
            </Suspense>
        </header>
    }
}

/// Shows the page to a signed-in person (who is then in context as `Me`), else the
/// sign-in form in its place, so the address is kept for after signing in.
#[component]
fn Gate(children: ChildrenFn) -> impl IntoView {
    let user = expect_context::<UserResource>();
    let children = StoredValue::new(children);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(me)) => view! { <leptos::context::Provider value=me>{children.read_value()()}</leptos::context::Provider> }.into_any(),
                    Ok(None) => view! { <LoginPage/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
