//! The page shell (navigation, breadcrumbs, assets) and small shared pieces of markup.
use crate::csrf::{CsrfToken, FIELD};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// A breadcrumb: label and link.
pub type Crumb = (String, String);

/// A whole page: `<head>`, the top bar, breadcrumbs and `body`.
pub fn document(title: &str, crumbs: &[Crumb], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Cairn" }
                link rel="stylesheet" href="/static/cairn.css";
                script src="/static/cairn.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Cairn" }
                    nav {
                        a href="/experiments" { "Experiments" }
                        a href="/models" { "Models" }
                        a href="/datasets" { "Data" }
                        a href="/monitoring" { "Monitoring" }
                    }
                    @if let Some(who) = signed_in() {
                        form.signed-in method="post" action="/logout" {
                            input type="hidden" name=(FIELD) value=(who.csrf);
                            span.muted { (who.username) } " "
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                @if !crumbs.is_empty() {
                    nav.crumbs {
                        @for (label, href) in crumbs {
                            a href=(href) { (label) } " / "
                        }
                        span { (title) }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// Who the page is for, when someone signed in.
fn signed_in() -> Option<crate::login::SignedIn> {
    crate::login::SIGNED_IN
        .try_with(|s| s.clone())
        .ok()
        .flatten()
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(token: &CsrfToken) -> Markup {
    html! { input type="hidden" name=(FIELD) value=(token.0); }
}

/// A one-button form that posts `action` with hidden fields; `confirm` asks first (script).
pub fn button_form(
    action: &str,
    token: &CsrfToken,
    fields: &[(&str, &str)],
    label: &str,
    confirm: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf_field(token))
            @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
            button type="submit" { (label) }
        }
    }
}

/// The form that renames what `action` edits (its handler reads `action=rename` and `name`).
pub fn rename_form(action: &str, token: &CsrfToken, current: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(token))
            input type="hidden" name="action" value="rename";
            input name="name" value=(current) aria-label="New name" required;
            button { "Rename" }
        }
    }
}

/// A key/value table, or a line saying there is nothing.
pub fn kv_table(rows: &[(String, String)], empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { (empty) }
        } @else {
            table.kv {
                @for (k, v) in rows { tr { th { (k) } td { (v) } } }
            }
        }
    }
}

/// Text that may contain many lines, shown as preformatted.
pub fn pre(text: &str) -> Markup {
    html! { pre { (text) } }
}

/// Raw, already-safe markup (SVG the server drew).
pub fn raw(markup: String) -> Markup {
    PreEscaped(markup)
}

/// A GET search box over a filter grammar (`filter`), the grammar's error shown beside it.
pub fn filter_form(
    form_id: &str,
    action: &str,
    filter: &str,
    placeholder: &str,
    label: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        form.search id=(form_id) method="get" action=(action) {
            input type="search" name="filter" value=(filter) size="60"
                placeholder=(placeholder) aria-label=(label);
            button { "Search" }
            @if let Some(e) = error { p.error #filter-error role="alert" { (e) } }
        }
    }
}

/// A list page's status: 400 when its filter was refused, else 200.
pub fn filter_status(error: Option<&str>) -> axum::http::StatusCode {
    if error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    }
}
