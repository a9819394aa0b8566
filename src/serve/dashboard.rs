//! The dashboard page at `/`: one HTML file, its script and its style sheet, embedded in
//! the binary (no build step, nothing fetched from elsewhere).
//!
//! The script is a file of its own so that the Content-Security-Policy can forbid inline
//! script outright (`script-src 'self'`): a story label that slipped past the page's own
//! escaping still could not run. The page reads `/api/stories` and follows `/api/events`
//! with `EventSource`; with a bearer token configured, open it as `/#token=TOKEN` (the
//! fragment never leaves the browser): the script sends it as `Authorization` to the JSON
//! endpoints and as `access_token` to `/api/events`, since `EventSource` cannot send
//! headers.

/// The page.
pub const HTML: &str = include_str!("dashboard.html");
/// Its script.
pub const JS: &str = include_str!("dashboard.js");
/// Its style sheet.
pub const CSS: &str = include_str!("dashboard.css");

/// The policy sent with the page: its own script, style and API, nothing else.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; base-uri 'none'; \
                       form-action 'none'; frame-ancestors 'none'";

/// The `(content type, body)` served at `path`, for the dashboard's own paths.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", HTML)),
        "/dashboard.js" => Some(("text/javascript; charset=utf-8", JS)),
        "/dashboard.css" => Some(("text/css; charset=utf-8", CSS)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(HTML.contains(r#"<script src="/dashboard.js""#));
        assert!(HTML.contains(r#"href="/dashboard.css""#));
        // No inline script or style (the policy would block them), nothing from elsewhere.
        assert!(!HTML.contains("<script>") && !HTML.contains("<style") && !HTML.contains("style="));
        for text in [HTML, JS, CSS] {
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "no remote loads"
            );
        }
        assert!(!JS.contains("innerHTML"), "text is set as text");
        assert_eq!(asset("/").map(|a| a.0), Some("text/html; charset=utf-8"));
        assert_eq!(asset("/nope"), None);
    }
}
