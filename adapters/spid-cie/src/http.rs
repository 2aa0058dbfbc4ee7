//! The outbound HTTP client (reqwest on rustls): bounded time and size, no redirects, and
//! only `https` URLs, except on loopback where the conformance peers run on plain HTTP.
use std::time::Duration;

use reqwest::{Client, Response, Url};

use crate::error::{Error, Result, http_error};

/// Largest document accepted from a federation peer or an OP.
pub const MAX_BODY: usize = 512 * 1024;

#[derive(Clone, Debug)]
pub struct Http {
    client: Client,
}

/// `https`, or `http` on a loopback host.
pub fn check_url(url: &str) -> Result<Url> {
    let u = Url::parse(url).map_err(|_| Error::http("url", "not a URL"))?;
    let host = u.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(Error::http("url", "only https (or http on loopback) is allowed")),
    }
}

impl Http {
    pub fn new(timeout: Duration) -> Result<Self> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sigess-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| http_error("client", &e))?;
        Ok(Self { client })
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
