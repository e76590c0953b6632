use leptos::prelude::*;
#[component]
pub fn AuditPage() -> impl IntoView {
    view! { <p>"todo"</p> }
}
