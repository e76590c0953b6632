//! Small pieces the pages share: error and loading states, time, money and rates, label
//! badges, the side-by-side comparison.

use domain::diff::SideRow;
use leptos::prelude::*;

use crate::error::AppError;

/// An error in plain words, announced to screen readers.
#[component]
pub fn ErrorNote(error: AppError) -> impl IntoView {
    let hint = match &error {
        AppError::SignedOut(_) => Some(view! { " " <a href="/">"Sign in again"</a> "." }),
        _ => None,
    };
    view! { <p class="error" role="alert">{error.to_string()}{hint}</p> }
}

pub fn loading(what: &'static str) -> impl IntoView {
    view! { <p class="loading" role="status">{format!("Loading {what}…")}</p> }
}

/// Dollars as people read them: `$0`, `$0.00012`, `$12.50`.
pub fn dollars(v: f64) -> String {
    if v == 0.0 {
        "$0".into()
    } else if v < 0.01 {
        format!("${v:.5}")
    } else {
        format!("${v:.2}")
    }
}

/// A rate (0.125) as a percentage with one decimal (`12.5%`).
pub fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// `2026-03-15T14:47:00.123456Z` as `2026-03-15 14:47 UTC`, the full instant on hover.
#[component]
pub fn Time(at: String) -> impl IntoView {
    let short = format!("{} UTC", at.get(..16).unwrap_or(&at).replace('T', " "));
    view! { <time datetime=at.clone() title=at>{short}</time> }
}

#[component]
pub fn LabelBadge(label: String, #[prop(optional)] version: Option<i64>) -> impl IntoView {
    let class =
        format!("badge badge-{}", if label == "stable" || label == "latest" { label.as_str() } else { "other" });
    let text = match version {
        Some(v) => format!("{label} → v{v}"),
        None => label.clone(),
    };
    view! { <span class=class>{text}</span> }
}

/// Two documents side by side, changed words highlighted.
#[component]
pub fn SideBySide(
    rows: Vec<SideRow>,
    old_title: String,
    new_title: String,
    #[prop(optional)] config_changed: bool,
) -> impl IntoView {
    let changes = rows.iter().filter(|r| r.is_change()).count();
    let summary = match (changes, config_changed) {
        (0, _) => "No differences.".to_string(),
        (1, _) => "1 changed line.".to_string(),
        (n, _) => format!("{n} changed lines."),
    };
    let config = config_changed.then_some(" The model config changed too (see [config]).");
    view! {
        <p class="diff-summary">{summary}{config}</p>
        <table class="side-by-side">
            <caption class="visually-hidden">{format!("{old_title} compared with {new_title}")}</caption>
            <thead><tr>
                <th scope="col" class="num"><span class="visually-hidden">"Line"</span></th>
                <th scope="col">{old_title}</th>
                <th scope="col" class="num"><span class="visually-hidden">"Line"</span></th>
                <th scope="col">{new_title}</th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|row| {
                    let class = match (&row.old, &row.new) {
                        (Some(_), None) => "removed",
                        (None, Some(_)) => "added",
                        _ if row.is_change() => "changed",
                        _ => "same",
                    };
                    view! {
                        <tr class=class>
                            {side(row.old, "del")}
                            {side(row.new, "ins")}
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

fn side(line: Option<domain::diff::SideLine>, mark: &'static str) -> impl IntoView {
    match line {
        None => view! { <td class="num"></td><td class="line empty-side"></td> }.into_any(),
        Some(line) => view! {
            <td class="num">{line.number}</td>
            <td class="line">
                {line.segments.into_iter().map(|s| if s.changed {
                    if mark == "del" { view! { <del>{s.text}</del> }.into_any() } else { view! { <ins>{s.text}</ins> }.into_any() }
                } else {
                    s.text.into_any()
                }).collect_view()}
            </td>
        }.into_any(),
    }
}
