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

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let user = Resource::new(|| (), |_| auth::current_user());
    // Effects run only in the browser: this marks the page as hydrated (and interactive).
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    view! {
        <Stylesheet id="leptos" href="/pkg/promptledger.css"/>
        <Title text="promptledger"/>
        <Router>
            <div class="app" data-hydrated=move || hydrated.get().to_string()>
                <a class="skip-link" href="#main">"Skip to content"</a>
                <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match user.await {
                            Ok(Some(me)) => view! { <Console me/> }.into_any(),
                            Ok(None) => view! {
                                <header class="topbar"><span class="brand">"promptledger"</span></header>
                                <main id="main"><LoginPage/></main>
                            }.into_any(),
                            Err(e) => view! {
                                <main id="main"><p class="error" role="alert">{e.to_string()}</p></main>
                            }.into_any(),
                        }
                    })}
                </Suspense>
            </div>
        </Router>
    }
}

/// The signed-in console: navigation and the pages.
#[component]
fn Console(me: Me) -> impl IntoView {
    provide_context(me.clone());
    let admin = me.can(Action::Administer);
    view! {
        <header class="topbar">
            <a class="brand" href="/">"promptledger"</a>
            <nav aria-label="Main">
                <A href="/" exact=true>"Prompts"</A>
                <A href="/audit">"Audit"</A>
                {admin.then(|| view! { <A href="/admin">"Users and keys"</A> })}
            </nav>
            <div class="who">
                <span>{me.username.clone()} " · " <span class="role">{me.role.as_str()}</span></span>
                <LogoutButton/>
            </div>
        </header>
        <main id="main">
            <Routes fallback=|| view! {
                <p class="empty">"This page does not exist. Go back to the " <a href="/">"prompt list"</a> "."</p>
            }>
                <Route path=path!("/") view=pages::prompts::PromptsPage/>
                <Route path=path!("/prompts/*name") view=pages::prompt::PromptPage/>
                <Route path=path!("/history/*name") view=pages::history::HistoryPage/>
                <Route path=path!("/audit") view=pages::audit::AuditPage/>
                <Route path=path!("/admin") view=pages::admin::AdminPage/>
            </Routes>
        </main>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
