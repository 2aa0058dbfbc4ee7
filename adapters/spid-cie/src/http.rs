//! The outbound HTTP client (reqwest on rustls): bounded time and size, no redirects, and
//! only `https` URLs; plain `http` to a loopback host only when explicitly allowed
//! (`--spid-allow-http-loopback`, for tests against local federation peers).
use std::time::Duration;

use reqwest::{Client, Response, Url};

use crate::error::{Error, Result, http_error};

/// Largest document accepted from a federation peer or an OP.
pub const MAX_BODY: usize = 512 * 1024;

#[derive(Clone, Debug)]
pub struct Http {
    client: Client,
    allow_http_loopback: bool,
}

/// `https`, or `http` on a loopback host when `allow_http_loopback`.
pub fn check_url(url: &str, allow_http_loopback: bool) -> Result<Url> {
    let u = Url::parse(url).map_err(|_| Error::http("url", "not a URL"))?;
    let host = u.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback && allow_http_loopback => Ok(u),
        "http" if loopback => Err(Error::http("url", "plain http is allowed only with --spid-allow-http-loopback (tests)")),
        _ => Err(Error::http("url", "only https is allowed")),
    }
}

impl Http {
    pub fn new(timeout: Duration, allow_http_loopback: bool) -> Result<Self> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sigess-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| http_error("client", &e))?;
        Ok(Self { client, allow_http_loopback })
    }

    /// [`check_url`] with this client's setting.
    pub fn check(&self, url: &str) -> Result<Url> {
        check_url(url, self.allow_http_loopback)
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// GET returning the body as text; non-2xx is an error naming only the status.
    pub async fn get_text(&self, step: &'static str, url: Url, accept: &str) -> Result<String> {
        let r = self.client.get(url).header(reqwest::header::ACCEPT, accept).send().await.map_err(|e| http_error(step, &e))?;
        read_text(step, r).await
    }
}

/// Reads at most `MAX_BODY` bytes of a 2xx response as UTF-8.
pub async fn read_text(step: &'static str, mut r: Response) -> Result<String> {
    let status = r.status();
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| http_error(step, &e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Error::http(step, "response too large"));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(Error::http(step, format!("status {}", status.as_u16())));
    }
    String::from_utf8(body).map_err(|_| Error::http(step, "response is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn plain_http_only_to_loopback_and_only_when_allowed() {
        assert!(check_url("https://registry.spid.gov.it/", false).is_ok());
        assert!(check_url("http://127.0.0.1:8000/", true).is_ok());
        assert!(check_url("http://[::1]:8000/", true).is_ok());
        for (url, allowed) in [
            ("http://127.0.0.1:8000/", false),
            ("http://localhost/", false),
            ("http://registry.spid.gov.it/", true),
            ("ftp://127.0.0.1/", true),
            ("not a url", true),
        ] {
            assert!(check_url(url, allowed).is_err(), "{url} with http allowed={allowed}");
        }
    }
}
