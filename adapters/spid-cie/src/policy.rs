//! OpenID Federation metadata policy: the operators a superior uses to constrain the
//! metadata of its subordinates (`value`, `add`, `default`, `one_of`, `subset_of`,
//! `superset_of`, `essential`). Policies are applied from the Trust Anchor down, each on
//! the result of the one above, in the order the specification gives: first the operators
//! that change the value (`value`, `add`, `default`), then those that check it.
//!
//! A parameter holding a space-separated string (such as `scope`) is treated as a set of
//! words by the set operators, not as a set of characters.
use serde_json::{Map, Value};

use crate::error::{Error, Result};

const KNOWN: [&str; 7] = ["value", "add", "default", "one_of", "subset_of", "superset_of", "essential"];

/// The values of a parameter as a list, and whether it was a space-separated string.
fn as_list(v: &Value) -> (Vec<Value>, bool) {
    match v {
        Value::Array(a) => (a.clone(), false),
        Value::String(s) => (s.split_whitespace().map(|w| Value::String(w.to_string())).collect(), true),
        other => (vec![other.clone()], false),
    }
}

fn from_list(items: Vec<Value>, was_string: bool) -> Value {
    if was_string { Value::String(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")) } else { Value::Array(items) }
}

fn policy_list(op: &Value, param: &str, name: &str) -> Result<Vec<Value>> {
    op.as_array().cloned().ok_or_else(|| Error::Policy(format!("{param}: {name} must be a list")))
}

/// Applies the policy of one entity type (`{"param": {"op": …}}`) to `metadata`.
///
/// `crit` lists the extra operators the issuer marked critical: one not understood here
/// makes the policy fail; other unknown operators are ignored, as the specification says.
pub fn apply(metadata: &mut Map<String, Value>, policy: &Map<String, Value>, crit: &[String]) -> Result<()> {
    for (param, ops) in policy {
        let ops = ops.as_object().ok_or_else(|| Error::Policy(format!("{param}: policy is not an object")))?;
        for name in ops.keys() {
            if !KNOWN.contains(&name.as_str()) && crit.iter().any(|c| c == name) {
                return Err(Error::Policy(format!("{param}: critical operator {name} not supported")));
            }
        }
        if let Some(v) = ops.get("value") {
            if v.is_null() {
                metadata.remove(param);
            } else {
                metadata.insert(param.clone(), v.clone());
            }
        }
        if let Some(add) = ops.get("add") {
            let add = match add {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            let (mut items, was_string) = metadata.get(param).map_or((Vec::new(), false), as_list);
            for a in add {
                if !items.contains(&a) {
                    items.push(a);
                }
            }
            metadata.insert(param.clone(), from_list(items, was_string));
        }
        if let Some(d) = ops.get("default")
            && !metadata.contains_key(param)
            && !d.is_null()
        {
            metadata.insert(param.clone(), d.clone());
        }
        if let Some(one_of) = ops.get("one_of") {
            let allowed = policy_list(one_of, param, "one_of")?;
            if let Some(v) = metadata.get(param)
                && !allowed.contains(v)
            {
                return Err(Error::Policy(format!("{param}: value not among one_of")));
            }
        }
        if let Some(subset) = ops.get("subset_of") {
            let allowed = policy_list(subset, param, "subset_of")?;
            if let Some(v) = metadata.get(param) {
                let (items, was_string) = as_list(v);
                let kept: Vec<Value> = items.into_iter().filter(|i| allowed.contains(i)).collect();
                if kept.is_empty() {
                    metadata.remove(param);
                } else {
                    metadata.insert(param.clone(), from_list(kept, was_string));
                }
            }
        }
        if let Some(superset) = ops.get("superset_of") {
            let required = policy_list(superset, param, "superset_of")?;
            if let Some(v) = metadata.get(param) {
                let (items, _) = as_list(v);
                if !required.iter().all(|r| items.contains(r)) {
                    return Err(Error::Policy(format!("{param}: value is not a superset of superset_of")));
                }
            }
        }
        if ops.get("essential").and_then(Value::as_bool) == Some(true) && !metadata.contains_key(param) {
            return Err(Error::Policy(format!("{param}: essential but absent")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn every_operator() {
        let mut md = obj(json!({
            "grant_types": ["authorization_code", "implicit"],
            "scopes_supported": ["openid", "offline_access", "email"],
            "subject_types_supported": ["public", "pairwise"],
            "token_endpoint_auth_method": "private_key_jwt",
            "contacts": ["a@example.org"],
            "scope": "openid email"
        }));
        let policy = obj(json!({
            "grant_types": {"subset_of": ["authorization_code", "refresh_token"]},
            "scopes_supported": {"superset_of": ["openid"]},
            "subject_types_supported": {"value": ["pairwise"]},
            "token_endpoint_auth_method": {"one_of": ["private_key_jwt", "self_signed_tls_client_auth"], "essential": true},
            "contacts": {"add": ["ops@example.org"]},
            "application_type": {"default": "web"},
            "id_token_signed_response_alg": {"essential": false},
            "scope": {"subset_of": ["openid", "offline_access"]}
        }));
        apply(&mut md, &policy, &[]).expect("applies");
        assert_eq!(md["grant_types"], json!(["authorization_code"]));
        assert_eq!(md["subject_types_supported"], json!(["pairwise"]));
        assert_eq!(md["contacts"], json!(["a@example.org", "ops@example.org"]));
        assert_eq!(md["application_type"], "web");
        assert_eq!(md["scope"], "openid", "a scope string is a set of words");
        assert!(!md.contains_key("id_token_signed_response_alg"));
    }

    #[test]
    fn refusals() {
        let cases = [
            (json!({"m": "basic"}), json!({"m": {"one_of": ["private_key_jwt"]}})),
            (json!({"s": ["email"]}), json!({"s": {"superset_of": ["openid"]}})),
            (json!({}), json!({"x": {"essential": true}})),
            (json!({"g": ["implicit"]}), json!({"g": {"subset_of": ["authorization_code"], "essential": true}})),
            (json!({"a": 1}), json!({"a": {"regexp": "x"}})),
        ];
        for (md, policy) in cases {
            let mut md = obj(md);
            assert!(apply(&mut md, &obj(policy.clone()), &["regexp".into()]).is_err(), "{policy}");
        }
        // An unknown operator that is not critical is ignored.
        let mut md = obj(json!({"a": 1}));
        apply(&mut md, &obj(json!({"a": {"regexp": "x"}})), &[]).expect("ignored");
        // value null removes the parameter.
        apply(&mut md, &obj(json!({"a": {"value": null}})), &[]).expect("ok");
        assert!(md.is_empty());
    }
}
