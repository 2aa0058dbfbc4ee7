//! How the region's answer to a delivery becomes an [`Outcome`]. Pure: status, the
//! `Retry-After` header and the body in, outcome out.
//!
//! 2xx → delivered; 408, 429 (honouring `Retry-After`), 5xx → retry; 401 → retry (the cached
//! voucher is dropped first by the caller, a fresh one may pass); 3xx (redirects are not
//! followed) and any other 4xx → permanent,
//! with the OperationOutcome's issue `code`s and `expression`s only: `diagnostics` and
//! `details` are left out because a server may echo the values it refused.
use std::time::Duration;

use adapter_contract::{Outcome, Reason};
use serde_json::Value;

/// The longest `Retry-After` honoured; a longer one is capped (the engine retries anyway).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses `Retry-After` given in seconds (the HTTP-date form is rare from FHIR servers and
/// falls back to the engine's backoff).
pub fn retry_after(header: Option<&str>) -> Option<Duration> {
    let secs: u64 = header?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Keeps what a FHIRPath expression may hold; anything else (a quoted value in a `where()`)
/// is cut, so an expression cannot carry personal data.
fn safe_expression(e: &str) -> String {
    let cut = e.find(['\'', '"', '=']).unwrap_or(e.len());
    e[..cut].chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '(' | ')' | '_' | '-')).take(120).collect()
}

/// The issues of an OperationOutcome as `severity code at expression` items, or None when
/// `body` is not one.
pub fn outcome_issues(body: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") {
        return None;
    }
    let issues = v.get("issue")?.as_array()?;
    Some(
        issues
            .iter()
            .take(20)
            .map(|i| {
                let text = |k: &str| {
                    i.get(k)
                        .and_then(Value::as_str)
                        .map(|s| s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>())
                };
                let mut s = format!("{} {}", text("severity").unwrap_or_default(), text("code").unwrap_or_else(|| "unknown".into()));
                let exprs: Vec<String> = i
                    .get("expression")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(safe_expression).filter(|e| !e.is_empty()).collect())
                    .unwrap_or_default();
                if !exprs.is_empty() {
                    s.push_str(" at ");
                    s.push_str(&exprs.join(", "));
                }
                s
            })
            .collect(),
    )
}

/// Classifies the region's answer to one delivery.
pub fn classify(status: u16, retry_after_header: Option<&str>, body: &[u8]) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        429 => Outcome::Retry { after: retry_after(retry_after_header), reason: Reason::new("FHIR_RATE_LIMITED", "HTTP 429") },
        408 => Outcome::retry("FHIR_TIMEOUT", "HTTP 408"),
        401 => Outcome::retry("FHIR_UNAUTHORIZED", "HTTP 401: voucher refused, a new one is requested"),
        500..=599 => {
            Outcome::Retry { after: retry_after(retry_after_header), reason: Reason::new("FHIR_UNAVAILABLE", format!("HTTP {status}")) }
        }
        400..=499 => match outcome_issues(body) {
            Some(issues) if !issues.is_empty() => Outcome::permanent("FHIR_REJECTED", format!("HTTP {status}: {}", issues.join("; "))),
            _ => Outcome::permanent("FHIR_REJECTED", format!("HTTP {status} without an OperationOutcome")),
        },
        // Redirects are not followed (a POST redirected could silently become a GET): a base
        // URL that redirects is a configuration to fix, not a delivery to repeat.
        300..=399 => {
            Outcome::permanent("FHIR_REDIRECT", format!("HTTP {status}: the FHIR base redirects; set --regione-fhir-base to the final URL"))
        }
        _ => Outcome::retry("FHIR_UNEXPECTED", format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let oo = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"RSSMRA80A01H501U is bad","details":{"text":"Mario"},"expression":["Patient.birthDate"]},{"severity":"error","code":"required","expression":["Bundle.entry[2].resource.where(value='RSSMRA80A01H501U')"]}]}"#;
        let cases: Vec<(u16, Option<&str>, &[u8], &str)> = vec![
            (200, None, b"{}", "delivered"),
            (201, None, b"", "delivered"),
            (429, Some("7"), b"", "retry"),
            (408, None, b"", "retry"),
            (401, None, b"", "retry"),
            (500, None, b"", "retry"),
            (503, Some("2"), b"", "retry"),
            (400, None, oo, "permanent"),
            (422, None, b"not json", "permanent"),
            (404, None, b"", "permanent"),
            (302, None, b"", "permanent"),
            (307, None, b"", "permanent"),
            (101, None, b"", "retry"),
        ];
        for (status, ra, body, want) in cases {
            assert_eq!(classify(status, ra, body).label(), want, "status {status}");
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        assert_eq!(
            classify(429, Some("7"), b""),
            Outcome::Retry { after: Some(Duration::from_secs(7)), reason: Reason::new("FHIR_RATE_LIMITED", "HTTP 429") }
        );
        assert_eq!(retry_after(Some("999999")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn rejection_keeps_codes_and_expressions_and_no_values() {
        let oo = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"RSSMRA80A01H501U is bad","details":{"text":"Mario"},"expression":["Patient.birthDate"]},{"severity":"error","code":"required","expression":["Bundle.entry[2].resource.where(value='RSSMRA80A01H501U')"]}]}"#;
        let Outcome::Permanent(r) = classify(400, None, oo) else { panic!("not permanent") };
        assert_eq!(r.code, "FHIR_REJECTED");
        assert_eq!(r.message, "HTTP 400: error invalid at Patient.birthDate; error required at Bundle.entry[2].resource.where(value");
        assert!(!r.message.contains("RSSMRA") && !r.message.contains("Mario"));
    }
}
