//! Test fixtures: a Trust Anchor and a provider minted locally, with the documents a chain
//! is made of, so chain and token checks run without any network.
use serde_json::{Map, Value, json};

use crate::{
    federation::{ChainDocs, ENTITY_STATEMENT_TYP, Provider, TrustSettings},
    jose::{self, now},
    keys::{KeyUse, RpKey},
};

pub const TA: &str = "https://ta.example.org/";
pub const OP: &str = "https://op.example.org/oidc/op/";
pub const TM_OP: &str = "https://ta.example.org/openid_provider/public/";

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

#[derive(Debug)]
pub struct Fed {
    pub ta_key: RpKey,
    pub op_fed_key: RpKey,
    pub op_sig_key: RpKey,
}

impl Fed {
    pub fn new() -> Self {
        Self {
            ta_key: RpKey::generate(KeyUse::Federation).expect("key"),
            op_fed_key: RpKey::generate(KeyUse::Federation).expect("key"),
            op_sig_key: RpKey::generate(KeyUse::Sig).expect("key"),
        }
    }

    pub fn ta_ec(&self, exp_in: i64) -> String {
        let t = now();
        let c = obj(json!({
            "iss": TA, "sub": TA, "iat": t, "exp": t + exp_in,
            "jwks": {"keys": [self.ta_key.public_jwk()]},
            "metadata": {"federation_entity": {
                "federation_fetch_endpoint": format!("{TA}fetch"),
                "federation_list_endpoint": format!("{TA}list"),
            }}
        }));
        jose::sign(&c, Some(ENTITY_STATEMENT_TYP), &self.ta_key).expect("sign")
    }

    pub fn trust_mark(&self, sub: &str, signer: &RpKey) -> String {
        let c = obj(json!({"iss": TA, "sub": sub, "iat": now(), "trust_mark_type": TM_OP, "id": TM_OP}));
        jose::sign(&c, Some("trust-mark+jwt"), signer).expect("sign")
    }

    pub fn op_metadata(&self) -> Value {
        json!({
            "issuer": OP,
            "authorization_endpoint": format!("{OP}authorization"),
            "token_endpoint": format!("{OP}token"),
            "userinfo_endpoint": format!("{OP}userinfo"),
            "revocation_endpoint": format!("{OP}revocation"),
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256", "HS256"],
            "jwks": {"keys": [self.op_sig_key.public_jwk()]},
        })
    }

    pub fn op_ec_signed_by(&self, key: &RpKey, marks: Value) -> String {
        let t = now();
        let c = obj(json!({
            "iss": OP, "sub": OP, "iat": t, "exp": t + 3600,
            "jwks": {"keys": [key.public_jwk()]},
            "authority_hints": [TA],
            "trust_marks": marks,
            "metadata": {"openid_provider": self.op_metadata(), "federation_entity": {"organization_name": "OP di prova"}}
        }));
        jose::sign(&c, Some(ENTITY_STATEMENT_TYP), key).expect("sign")
    }

    pub fn op_ec(&self) -> String {
        let tm = self.trust_mark(OP, &self.ta_key);
        self.op_ec_signed_by(&self.op_fed_key, json!([{"trust_mark_type": TM_OP, "trust_mark": tm}]))
    }

    pub fn statement(&self, signer: &RpKey, exp_in: i64) -> String {
        let t = now();
        let c = obj(json!({
            "iss": TA, "sub": OP, "iat": t, "exp": t + exp_in,
            "jwks": {"keys": [self.op_fed_key.public_jwk()]},
            "metadata_policy": {"openid_provider": {
                "subject_types_supported": {"value": ["pairwise"]},
                "id_token_signing_alg_values_supported": {"subset_of": ["RS256", "RS512"]},
            }}
        }));
        jose::sign(&c, Some(ENTITY_STATEMENT_TYP), signer).expect("sign")
    }

    pub fn docs(&self) -> ChainDocs {
        ChainDocs { leaf_ec: self.op_ec(), levels: vec![(TA.to_string(), self.ta_ec(3600), self.statement(&self.ta_key, 1800))] }
    }

    pub fn settings(&self) -> TrustSettings {
        TrustSettings {
            trust_anchor: TA.into(),
            anchor_keys: vec![self.ta_key.public_jwk()],
            required_trust_marks: vec![TM_OP.into()],
            intermediates: Vec::new(),
            allow_http_loopback: false,
        }
    }

    pub fn provider(&self) -> Provider {
        crate::federation::validate_chain(OP, "openid_provider", &self.docs(), &self.settings(), now()).expect("valid chain")
    }
}
