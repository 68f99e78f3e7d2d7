//! What Go's `http.ServeMux` (debrid-mount-monitor's router, Go 1.21) does around the routes, so
//! that clients see the same answers: an unclean path (`//healthz/ready`, `/healthz/./ready`) is
//! redirected to its clean form with the query kept, and an unknown path is Go's plain 404.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What Go's `url.URL.String` leaves unescaped in a path (`shouldEscape`, `encodePath`).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

/// The mux's 301 when the decoded path of `uri` is not clean, for every method; `None` when it
/// is. Asked where routing ends without a route (the fallback, and `/readyz/{*mount}`, whose
/// wildcard takes `./x`), which is where an unclean path lands: a smaller binary than a
/// middleware in front of the router.
pub fn redirect_unclean(method: &Method, uri: &Uri) -> Option<Response> {
    // Only a path is cleaned: not `OPTIONS *`'s asterisk, nor a CONNECT's authority, which
    // Go's mux leaves as they are too.
    if method == Method::CONNECT || !uri.path().starts_with('/') {
        return None;
    }
    // A path that does not decode to UTF-8 has no clean form Go would agree on: 404 it.
    let decoded = percent_decode_str(uri.path()).decode_utf8().ok()?;
    let clean = clean_path(&decoded);
    if clean == decoded {
        return None;
    }
    let mut location = utf8_percent_encode(&clean, PATH).to_string();
    if let Some(query) = uri.query().filter(|q| !q.is_empty()) {
        location.push('?');
        location.push_str(query);
    }
    let value = HeaderValue::from_str(&location).ok()?;
    let status = StatusCode::MOVED_PERMANENTLY;
    let mut response = if method == Method::GET {
        // Go's `http.Redirect`: a short HTML body for old user agents, on GET only.
        let body = format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(&location)
        );
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    } else if method == Method::HEAD {
        (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")]).into_response()
    } else {
        status.into_response()
    };
    response.headers_mut().insert(header::LOCATION, value);
    Some(response)
}

/// No route: the mux's 301 for an unclean path, else its 404.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    redirect_unclean(&method, &uri).unwrap_or_else(not_found)
}

/// Go's `http.NotFound`.
pub fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "404 page not found\n",
    )
        .into_response()
}

/// Go's `cleanPath` in net/http: `path.Clean` on a rooted path (no `.`, `..` or empty
/// segments; `..` stops at the root), keeping a trailing slash.
pub fn clean_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut clean = format!("/{}", segments.join("/"));
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

/// Go's `htmlEscape` in net/http (`html.EscapeString`'s replacements).
fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&#34;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from Go's `path.Clean` and `cleanPath` tests.
    #[test]
    fn paths_are_cleaned_as_go_cleans_them() {
        for (path, clean) in [
            ("/", "/"),
            ("", "/"),
            ("/healthz/ready", "/healthz/ready"),
            ("//healthz/ready", "/healthz/ready"),
            ("/healthz//ready", "/healthz/ready"),
            ("/healthz/./ready", "/healthz/ready"),
            ("/healthz/../healthz/ready", "/healthz/ready"),
            ("/../healthz/ready", "/healthz/ready"),
            ("/healthz/ready/", "/healthz/ready/"),
            ("/healthz/ready/.", "/healthz/ready"),
            ("/healthz/ready//", "/healthz/ready/"),
            ("/a/b/../..", "/"),
            ("/a/b/../../", "/"),
            ("/abc/def/../../..", "/"),
            ("/abc/./../def", "/def"),
        ] {
            assert_eq!(clean_path(path), clean, "{path:?}");
        }
    }

    #[test]
    fn only_paths_are_redirected() {
        for (method, target) in [(Method::OPTIONS, "*"), (Method::CONNECT, "example.com:443")] {
            let uri: Uri = target.parse().unwrap();
            assert!(
                redirect_unclean(&method, &uri).is_none(),
                "{method} {target}"
            );
        }
        let unclean: Uri = "//healthz/ready".parse().unwrap();
        assert!(redirect_unclean(&Method::OPTIONS, &unclean).is_some());
    }

    #[test]
    fn html_in_a_location_is_escaped() {
        assert_eq!(
            html_escape("/a?x=1&y=\"'<>"),
            "/a?x=1&amp;y=&#34;&#39;&lt;&gt;"
        );
    }
}
