use leptos::prelude::*;
#[component]
pub fn HistoryPage() -> impl IntoView {
    view! { <p>"todo"</p> }
}
