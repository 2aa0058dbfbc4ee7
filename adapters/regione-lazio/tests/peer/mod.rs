//! The real FHIR R4 server of `conformance/fhir` (Medplum's router on its in-memory
//! repository, in Node) as a child process. Under `CI=true` a missing `node` or install is a
//! failure; otherwise the test skips saying so.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

pub struct FhirServer {
    child: Child,
    pub port: u16,
}

impl FhirServer {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server the hard way (as an outage would).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `conformance/fhir` of the workspace, found upwards from the crate including this module
/// (the adapter's tests and the gateway's share it).
fn dir() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().map(|p| p.join("conformance/fhir")).find(|p| p.join("server.js").is_file()).unwrap_or(here)
}

fn unavailable(why: &str) -> Option<FhirServer> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the FHIR R4 test server is required under CI=true: {why} (run conformance/fhir/setup.sh)");
    }
    eprintln!("SKIPPED: no FHIR R4 test server: {why} (run conformance/fhir/setup.sh)");
    None
}

/// Starts the server on `port` (0: any) and waits until it listens.
pub fn start(port: u16) -> Option<FhirServer> {
    let dir = dir();
    if !dir.join("node_modules/@medplum/fhir-router").is_dir() {
        return unavailable("conformance/fhir/node_modules is not installed");
    }
    let mut child = match Command::new("node")
        .arg("server.js")
        .arg(port.to_string())
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return unavailable(&format!("cannot run node: {e}")),
    };
    let stdout = child.stdout.take().expect("stdout piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read the server's first line");
    let port: u16 = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from the FHIR server: {line:?}"));
    Some(FhirServer { child, port })
}

/// A free port on 127.0.0.1 (to restart a server where it was).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

pub async fn get(base: &str, path: &str) -> Value {
    let r = client().get(format!("{base}/{path}")).send().await.expect("GET");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    serde_json::from_slice(&r.bytes().await.expect("body")).expect("JSON")
}

/// Runs Medplum's `validateResource` on a resource or Bundle (and each entry); returns the
/// error issues.
pub async fn validate(base: &str, resource: &Value) -> Vec<Value> {
    let r = client().post(format!("{base}/$validate-all")).json(resource).send().await.expect("POST $validate-all");
    let v: Value = serde_json::from_slice(&r.bytes().await.expect("body")).expect("JSON");
    v["issue"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i["severity"] == "error" || i["severity"] == "fatal")
        .collect()
}
