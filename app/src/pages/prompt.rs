use leptos::prelude::*;
#[component]
pub fn PromptPage() -> impl IntoView {
    view! { <p>"todo"</p> }
}
