//! promptledger's console: components rendered on the server and hydrated in the browser.
//! Components see data only through server functions, which are thin callers of the
//! service layer (`service::Registry`, server-only).

pub mod error;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

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
    view! {
        <Stylesheet id="leptos" href="/pkg/promptledger.css"/>
        <Title text="promptledger"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"promptledger"</a>
            </header>
            <main id="main">
                <Routes fallback=|| view! { <p class="empty">"This page does not exist. Go back to the " <a href="/">"prompt list"</a> "."</p> }>
                    <Route path=path!("/") view=pages::prompts::PromptsPage/>
                </Routes>
            </main>
        </Router>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
