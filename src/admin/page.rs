//! The status page for people (`GET /`): one self-contained HTML document
//! with the current status embedded, refreshing itself from `/status`. Its
//! Fleet panel shows only when the status has a `fleet` object.

use axum::extract::State;
use axum::response::Html;

use super::{App, status};

const TEMPLATE: &str = include_str!("page.html");

pub(super) async fn page(State(app): State<App>) -> Html<String> {
    let status = status::build(&app.plane, 50);
    // `</` must not close the script element early.
    let json = serde_json::to_string(&status)
        .unwrap_or_else(|_| "null".into())
        .replace("</", "<\\/");
    Html(TEMPLATE.replace("/*STATUS*/null", &json))
}
