//! The console's embedded files: our own CSS and JavaScript and Bootstrap Italia's CSS, icon
//! sprite, fonts and licences (see `build.rs`).
use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// Content type by file name; nothing is served without one.
pub fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "woff2" => "font/woff2",
        "png" => "image/png",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

/// The embedded file `name`, if there is one.
pub fn find(name: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Whether Bootstrap Italia was embedded (the build found it).
pub fn styled() -> bool {
    find("bi/bootstrap-italia.min.css").is_some()
}

pub async fn serve(Path(name): Path<String>) -> Response {
    let (Some(body), Some(ct)) = (find(&name), content_type(&name)) else {
        return super::secure((StatusCode::NOT_FOUND, "not found").into_response(), false);
    };
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    super::secure(r, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_files_are_embedded_with_a_type() {
        for name in ["console.css", "console.js"] {
            assert!(find(name).is_some_and(|b| !b.is_empty()), "{name}");
            assert!(content_type(name).is_some(), "{name}");
        }
        assert_eq!(find("../Cargo.toml"), None);
        assert_eq!(content_type("x.html"), None);
    }
}
