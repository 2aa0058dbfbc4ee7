//! OpenID Federation metadata policy: the operators a superior uses to constrain the
//! metadata of its subordinates (`value`, `add`, `default`, `one_of`, `subset_of`,
//! `superset_of`, `essential`). The policies of a chain are first merged into one, from the
//! Trust Anchor down ([`merge`]: a subordinate may only narrow what its superiors set, and a
//! conflict makes the chain invalid), and the merged policy is then applied once ([`apply`]),
//! in the order the specification gives: first the operators that change the value (`value`,
//! `add`, `default`), then those that check it.
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

fn intersect(a: &[Value], b: &[Value]) -> Vec<Value> {
    a.iter().filter(|v| b.contains(v)).cloned().collect()
}

fn union(a: &[Value], b: &[Value]) -> Vec<Value> {
    let mut out = a.to_vec();
    for v in b {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

fn as_values(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// Merges the operators of one parameter: `upper` from the superior, `lower` from the
/// subordinate, as OpenID Federation 1.0 (section 6.1.4) says for each operator.
fn merge_param(param: &str, upper: &Map<String, Value>, lower: &Map<String, Value>) -> Result<Map<String, Value>> {
    let conflict = |op: &str| Error::Policy(format!("{param}: the policies of the chain disagree on {op}"));
    let mut out = upper.clone();
    for (op, lv) in lower {
        let merged = match (op.as_str(), upper.get(op)) {
            (_, None) => lv.clone(),
            ("value" | "default", Some(uv)) => {
                if uv != lv {
                    return Err(conflict(op));
                }
                uv.clone()
            }
            ("add" | "superset_of", Some(uv)) => Value::Array(union(&as_values(uv), &as_values(lv))),
            ("one_of" | "subset_of", Some(uv)) => {
                let both = intersect(&policy_list(uv, param, op)?, &policy_list(lv, param, op)?);
                if both.is_empty() {
                    return Err(conflict(op));
                }
                Value::Array(both)
            }
            ("essential", Some(uv)) => Value::Bool(uv.as_bool() == Some(true) || lv.as_bool() == Some(true)),
            // An operator not known here: the superior's stands.
            (_, Some(uv)) => uv.clone(),
        };
        out.insert(op.clone(), merged);
    }
    // Combinations that cannot hold at once.
    let list = |op: &str| out.get(op).map(as_values);
    if let (Some(v), Some(one_of)) = (out.get("value"), list("one_of"))
        && !v.is_null()
        && !one_of.contains(v)
    {
        return Err(conflict("value and one_of"));
    }
    if let (Some(v), Some(subset)) = (out.get("value"), list("subset_of"))
        && !v.is_null()
        && !as_list(v).0.iter().all(|i| subset.contains(i))
    {
        return Err(conflict("value and subset_of"));
    }
    if let (Some(add), Some(subset)) = (list("add"), list("subset_of"))
        && !add.iter().all(|i| subset.contains(i))
    {
        return Err(conflict("add and subset_of"));
    }
    if let (Some(sup), Some(subset)) = (list("superset_of"), list("subset_of"))
        && !sup.iter().all(|i| subset.contains(i))
    {
        return Err(conflict("superset_of and subset_of"));
    }
    Ok(out)
}

/// Merges the policy of a subordinate statement (`lower`) into the one merged from the
/// levels above it (`upper`), parameter by parameter.
pub fn merge(upper: &Map<String, Value>, lower: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut out = upper.clone();
    for (param, lops) in lower {
        let lops = lops.as_object().ok_or_else(|| Error::Policy(format!("{param}: policy is not an object")))?;
        let merged = match upper.get(param) {
            Some(uops) => {
                let uops = uops.as_object().ok_or_else(|| Error::Policy(format!("{param}: policy is not an object")))?;
                merge_param(param, uops, lops)?
            }
            None => lops.clone(),
        };
        out.insert(param.clone(), Value::Object(merged));
    }
    Ok(out)
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
    fn policies_are_merged_before_they_are_applied() {
        let anchor = obj(json!({
            "grant_types": {"subset_of": ["authorization_code", "refresh_token"]},
            "contacts": {"add": ["ta@example.org"]},
            "token_endpoint_auth_method": {"one_of": ["private_key_jwt", "self_signed_tls_client_auth"]},
            "scope": {"superset_of": ["openid"]},
            "application_type": {"default": "web"}
        }));
        let intermediate = obj(json!({
            "grant_types": {"subset_of": ["authorization_code", "implicit"]},
            "contacts": {"add": ["int@example.org"]},
            "token_endpoint_auth_method": {"one_of": ["private_key_jwt"], "essential": true},
            "application_type": {"default": "web"}
        }));
        let merged = merge(&anchor, &intermediate).expect("merges");
        assert_eq!(merged["grant_types"]["subset_of"], json!(["authorization_code"]), "subset_of is intersected");
        assert_eq!(merged["contacts"]["add"], json!(["ta@example.org", "int@example.org"]), "add is a union");
        assert_eq!(merged["token_endpoint_auth_method"], json!({"one_of": ["private_key_jwt"], "essential": true}));
        assert_eq!(merged["scope"]["superset_of"], json!(["openid"]));
        // Applied once: the intermediate's implicit is not allowed by the anchor, so it goes.
        let mut md = obj(
            json!({"grant_types": ["authorization_code", "implicit"], "token_endpoint_auth_method": "private_key_jwt", "scope": "openid"}),
        );
        apply(&mut md, &merged, &[]).expect("applies");
        assert_eq!(md["grant_types"], json!(["authorization_code"]));
        assert_eq!(md["contacts"], json!(["ta@example.org", "int@example.org"]));
        assert_eq!(md["application_type"], "web");

        // A subordinate may narrow, never contradict.
        for lower in [
            json!({"application_type": {"value": "native"}}),
            json!({"token_endpoint_auth_method": {"one_of": ["client_secret_basic"]}}),
            json!({"grant_types": {"subset_of": ["implicit"]}}),
            json!({"application_type": {"default": "native"}}),
            json!({"contacts": {"add": ["x@example.org"], "subset_of": ["ta@example.org"]}}),
        ] {
            let upper = merge(&anchor, &obj(json!({"application_type": {"value": "web"}}))).expect("the anchor and a matching value merge");
            assert!(merge(&upper, &obj(lower.clone())).is_err(), "{lower}");
        }
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
