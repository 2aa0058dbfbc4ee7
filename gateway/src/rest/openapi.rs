//! The OpenAPI 3.1 document, generated from the route table and the `cartella.v1`
//! descriptors: one component schema per message and enum (with the proto comments as
//! descriptions), parameters and bodies from the same bindings the handler uses, and
//! problem+json answers for every error. Nothing here is written per endpoint, so the
//! document cannot drift from what the gateway accepts.
use std::collections::HashMap;

use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::{Api, BASE, CompiledRoute, mapping, routes::Verb};

/// Proto comments by (file, source path).
struct Comments(HashMap<(String, Vec<i32>), String>);

impl Comments {
    fn new(pool: &DescriptorPool) -> Self {
        let mut m = HashMap::new();
        for file in pool.files() {
            let proto = file.file_descriptor_proto();
            let Some(info) = &proto.source_code_info else { continue };
            for loc in &info.location {
                let text = loc.leading_comments.as_deref().or(loc.trailing_comments.as_deref()).unwrap_or("").trim();
                if !text.is_empty() {
                    let joined = text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
                    m.insert((file.name().to_string(), loc.path.clone()), joined);
                }
            }
        }
        Self(m)
    }

    fn get(&self, file: &str, path: &[i32]) -> Option<&str> {
        self.0.get(&(file.to_string(), path.to_vec())).map(String::as_str)
    }
}

/// Component name of a message or enum: its full name without the package.
fn component(full: &str, package: &str) -> String {
    full.strip_prefix(package).and_then(|s| s.strip_prefix('.')).unwrap_or(full).to_string()
}

fn reference(full: &str, package: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", component(full, package)) })
}

fn with_description(mut schema: Value, description: Option<&str>) -> Value {
    if let (Some(d), Value::Object(o)) = (description, &mut schema) {
        o.insert("description".into(), Value::String(d.to_string()));
    }
    schema
}

/// Schema of one value of a field (the item schema for repeated fields).
fn single_schema(field: &FieldDescriptor) -> Value {
    let package = field.parent_file().package_name().to_string();
    let kind = field.kind();
    match &kind {
        Kind::Message(m) => reference(m.full_name(), &package),
        Kind::Enum(e) => reference(e.full_name(), &package),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Double => json!({ "type": "number", "format": "double" }),
        Kind::Float => json!({ "type": "number", "format": "float" }),
        _ => {
            let format = match kind {
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "int32",
                Kind::Uint32 | Kind::Fixed32 => "uint32",
                Kind::Uint64 | Kind::Fixed64 => "uint64",
                _ => "int64",
            };
            let (mut lo, mut hi) = mapping::int_range(&kind).unwrap_or((0, 0));
            if let Some((blo, bhi)) = mapping::bounds(field) {
                lo = lo.max(blo.into());
                hi = hi.min(bhi.into());
            }
            let mut s = json!({ "type": "integer", "format": format });
            // i128 bounds as JSON numbers: every proto integer range fits i64 or u64.
            let num = |n: i128| i64::try_from(n).map(Value::from).or_else(|_| u64::try_from(n).map(Value::from)).unwrap_or(Value::Null);
            s["minimum"] = num(lo);
            s["maximum"] = num(hi);
            s
        }
    }
}

fn field_schema(field: &FieldDescriptor, comments: &Comments) -> Value {
    let single = single_schema(field);
    let schema = if field.is_list() { json!({ "type": "array", "items": single }) } else { single };
    with_description(schema, comments.get(field.parent_file().name(), field.path()))
}

fn message_schema(m: &MessageDescriptor, comments: &Comments) -> Value {
    let mut props = Map::new();
    for f in m.fields() {
        props.insert(f.name().to_string(), field_schema(&f, comments));
    }
    let mut s = json!({ "type": "object", "additionalProperties": false, "properties": props });
    // A oneof allows at most one of its fields: say so in the schema the checker enforces.
    let mut pairs = Vec::new();
    for o in m.oneofs().filter(|o| !o.is_synthetic()) {
        let names: Vec<String> = o.fields().map(|f| f.name().to_string()).collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                pairs.push(json!({ "required": [a, b] }));
            }
        }
    }
    if !pairs.is_empty() {
        s["not"] = json!({ "anyOf": pairs });
    }
    with_description(s, comments.get(m.parent_file().name(), m.path()))
}

fn enum_schema(e: &EnumDescriptor, comments: &Comments) -> Value {
    let names: Vec<String> = e.values().map(|v| v.name().to_string()).collect();
    let mut doc = comments.get(e.parent_file().name(), e.path()).map(str::to_string).unwrap_or_default();
    for v in e.values() {
        if let Some(c) = comments.get(v.parent_file().name(), v.path()) {
            doc.push_str(&format!("{}{}: {c}", if doc.is_empty() { "" } else { " " }, v.name()));
        }
    }
    let s = json!({ "type": "string", "enum": names });
    with_description(s, (!doc.is_empty()).then_some(doc.as_str()))
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem document. Field and parameter errors are listed in invalid_params, every one at once; a codice fiscale already registered names the existing persona in existing_id. Never carries personal data.",
        "required": ["type", "title", "status"],
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
            "instance": { "type": "string" },
            "grpc_code": { "type": "string", "description": "The gRPC status code core answered with, when the error came from core." },
            "reason": { "type": "string", "description": "Machine-readable reason of an authentication refusal." },
            "existing_id": { "type": "string", "description": "Id of the persona already registered with this codice fiscale." },
            "invalid_params": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "reason"],
                    "properties": { "name": { "type": "string" }, "reason": { "type": "string" } }
                }
            }
        }
    })
}

/// Error answers by status: (status, component name, description).
const ERRORS: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "Malformed JSON, unknown field or parameter, wrong type, or a field core refuses: see invalid_params."),
    ("401", "Unauthorized", "No valid bearer token."),
    ("403", "Forbidden", "The record belongs to another ufficio and no condivisione allows the call, or the caller's roles do not."),
    ("404", "NotFound", "No such record."),
    ("409", "Conflict", "A persona with this codice fiscale exists (existing_id), or meta.version is stale."),
    ("412", "PreconditionFailed", "If-Match does not name the current version."),
    ("413", "PayloadTooLarge", "The body is too large."),
    ("415", "UnsupportedMediaType", "The body is not application/json."),
    ("429", "TooManyRequests", "Rate limit reached; retry later."),
    ("503", "ServiceUnavailable", "Core or its store is unavailable; retry after Retry-After seconds."),
];

fn error_response(description: &str, code: &str) -> Value {
    let mut r = json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    });
    match code {
        "401" => r["headers"] = json!({ "WWW-Authenticate": { "schema": { "type": "string" } } }),
        "503" | "429" => r["headers"] = json!({ "Retry-After": { "schema": { "type": "integer" } } }),
        _ => {}
    }
    r
}

fn operation(api: &Api, c: &CompiledRoute, comments: &Comments, package: &str) -> Value {
    let m = &c.method;
    let mut params = Vec::new();
    for p in &c.path_params {
        let mut schema = single_schema(&p.field);
        schema["minLength"] = json!(1);
        params.push(with_description(
            json!({ "name": p.name, "in": "path", "required": true, "schema": schema }),
            comments.get(p.field.parent_file().name(), p.field.path()),
        ));
    }
    for q in &c.query {
        let single = single_schema(&q.field);
        let schema = if q.field.is_list() { json!({ "type": "array", "items": single }) } else { single };
        let mut p = json!({ "name": q.name, "in": "query", "required": false, "schema": schema });
        if q.field.is_list() {
            p["style"] = json!("form");
            p["explode"] = json!(true);
        }
        params.push(with_description(p, comments.get(q.field.parent_file().name(), q.field.path())));
    }
    if c.route.verb == Verb::Put && c.versioned {
        params.push(json!({
            "name": "If-Match", "in": "header", "required": false,
            "description": "ETag of the version being updated (\"<meta.version>\"), or *; 412 when it is not the current version (a weak tag never matches), 400 when it is not of this form. Without it, meta.version in the body is the version checked.",
            "schema": { "type": "string", "pattern": "^(\\*|(W/)?\"[0-9]{1,18}\")$" }
        }));
    }
    let (code, what) = if super::routes::creates(&c.route) { ("201", "Created") } else { ("200", "OK") };
    let mut ok = json!({
        "description": what,
        "content": { "application/json": { "schema": reference(m.output().full_name(), package) } }
    });
    let mut headers = Map::new();
    if c.versioned {
        headers.insert("ETag".into(), json!({ "description": "\"<meta.version>\", for If-Match.", "schema": { "type": "string" } }));
    }
    if c.location.is_some() {
        headers.insert("Location".into(), json!({ "description": "URL of the created record.", "schema": { "type": "string" } }));
    }
    if !headers.is_empty() {
        ok["headers"] = Value::Object(headers);
    }
    // A created record links to the operations on its URL, so clients (and stateful
    // testers) can follow the id without knowing the URL scheme.
    if let Some(tpl) = &c.location {
        let links: Map<String, Value> = api
            .routes
            .iter()
            .filter(|r| &r.full_path() == tpl)
            .map(|r| {
                (r.method.name().to_string(), json!({ "operationId": r.method.name(), "parameters": { "id": "$response.body#/meta/id" } }))
            })
            .collect();
        if !links.is_empty() {
            ok["links"] = Value::Object(links);
        }
    }
    let mut responses = Map::new();
    responses.insert(code.into(), ok);
    let has_body = c.body.is_some();
    for (status, name, _) in ERRORS {
        let applies = match *status {
            "409" | "413" | "415" => has_body,
            "412" => c.route.verb == Verb::Put,
            _ => true,
        };
        if applies {
            responses.insert((*status).into(), json!({ "$ref": format!("#/components/responses/{name}") }));
        }
    }
    responses.insert("default".into(), json!({ "$ref": "#/components/responses/Error" }));
    let service = m.parent_service();
    let mut description = comments.get(m.parent_file().name(), m.path()).map(|s| format!("{s}\n\n")).unwrap_or_default();
    description.push_str(&format!("gRPC: `{}/{}`.", service.full_name(), m.name()));
    let mut op = json!({
        "operationId": m.name(),
        "summary": summary(m.name()),
        "description": description,
        "tags": [c.route.tag],
        "parameters": params,
        "responses": responses,
    });
    if let Some(b) = &c.body {
        op["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": reference(b.message.full_name(), package) } }
        });
    }
    op
}

/// "CreatePersona" → "Create persona".
fn summary(method: &str) -> String {
    let mut out = String::new();
    for (i, ch) in method.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push(' ');
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// The whole document.
pub fn document(api: &Api) -> Value {
    let comments = Comments::new(&api.pool);
    let package = "cartella.v1";
    let mut schemas = Map::new();
    for m in api.pool.all_messages().filter(|m| m.package_name() == package) {
        schemas.insert(component(m.full_name(), package), message_schema(&m, &comments));
    }
    for e in api.pool.all_enums().filter(|e| e.package_name() == package) {
        schemas.insert(component(e.full_name(), package), enum_schema(&e, &comments));
    }
    schemas.insert("Problem".into(), problem_schema());
    let mut responses = Map::new();
    for (status, name, description) in ERRORS {
        responses.insert((*name).into(), error_response(description, status));
    }
    responses.insert("Error".into(), error_response("Any other error, as a problem document.", "default"));

    let mut paths = Map::new();
    for c in &api.routes {
        let item = paths.entry(c.full_path()).or_insert_with(|| json!({}));
        item[c.route.verb.as_str()] = operation(api, c, &comments, package);
    }
    super::importazioni::document(&mut paths, &mut schemas);
    paths.insert("/oauth/token".into(), token_endpoint());
    schemas.insert("TokenResponse".into(), token_response_schema());
    schemas.insert("OAuthError".into(), oauth_error_schema());
    let mut tags: Vec<&str> = Vec::new();
    for c in &api.routes {
        if !tags.contains(&c.route.tag) {
            tags.push(c.route.tag);
        }
    }
    tags.push("autenticazione");
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "SIGeSS hub REST API",
            "version": "v1",
            "summary": "The cartella sociale of Roma Capitale over REST/JSON, translated to cartella.v1 gRPC.",
            "description": concat!(
                "JSON keeps the proto field names; 64-bit integers are numbers; enums are value names; dates are YYYY-MM-DD. ",
                "Every call needs `Authorization: Bearer <token>`. Lists page with page_size (1–500, default 50) and the opaque page_token from next_page_token. ",
                "A record answers with `ETag: \"<meta.version>\"`; PUT takes it back in If-Match (412 if stale) or in meta.version (409 if stale). ",
                "Errors are application/problem+json. Every read is audited by core with the declared purpose."
            ),
            "license": { "name": "EUPL-1.2", "identifier": "EUPL-1.2" }
        },
        "security": [{ "bearer": [] }],
        "tags": tags.iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "A hub caller token (sigess token), or a credential the gateway exchanges for one." },
                "clientBasic": { "type": "http", "scheme": "basic", "description": "Client id and secret of a registered system client (RFC 6749 §2.3.1), for /oauth/token only." }
            },
            "schemas": schemas,
            "responses": responses
        },
        "externalDocs": { "description": "Human-readable operations", "url": format!("{BASE}/docs") }
    })
}

/// `POST /oauth/token` (RFC 6749 §4.4), served next to the REST routes and outside bearer
/// authentication: the errors are RFC 6749 §5.2 JSON, not problem documents.
fn token_endpoint() -> Value {
    let oauth_error = |description: &str| {
        json!({
            "description": description,
            "headers": {
                "Cache-Control": { "schema": { "type": "string", "const": "no-store" } }
            },
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/OAuthError" } } }
        })
    };
    let mut unauthorized = oauth_error("Client authentication failed (`invalid_client`).");
    unauthorized["headers"]["WWW-Authenticate"] = json!({ "schema": { "type": "string" } });
    let mut unavailable = oauth_error("The client registry cannot be read now.");
    unavailable["headers"]["Retry-After"] = json!({ "schema": { "type": "integer", "minimum": 0 } });
    json!({
        "post": {
            "tags": ["autenticazione"],
            "operationId": "oauthToken",
            "summary": "Issue an access token to a registered system client (client credentials)",
            "description": concat!(
                "The client authenticates with HTTP Basic or with client_id and client_secret in the form, not both. ",
                "The token is a JWT (RFC 9068) accepted as `Authorization: Bearer` by this API for `expires_in` seconds; ",
                "scope, if given, narrows the client's roles (operatore, consultazione, statistica)."
            ),
            "security": [{}, { "clientBasic": [] }],
            "requestBody": {
                "required": true,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["grant_type"],
                            "properties": {
                                "grant_type": { "type": "string", "const": "client_credentials" },
                                "client_id": { "type": "string" },
                                "client_secret": { "type": "string", "format": "password" },
                                "scope": { "type": "string", "description": "Space-separated roles." }
                            }
                        }
                    }
                }
            },
            "responses": {
                "200": {
                    "description": "The access token.",
                    "headers": {
                        "Cache-Control": { "schema": { "type": "string", "const": "no-store" } }
                    },
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/TokenResponse" } } }
                },
                "400": oauth_error("`invalid_request`, `unsupported_grant_type` or `invalid_scope`."),
                "401": unauthorized,
                "503": unavailable
            }
        }
    })
}

fn token_response_schema() -> Value {
    json!({
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "scope"],
        "properties": {
            "access_token": { "type": "string" },
            "token_type": { "type": "string", "const": "Bearer" },
            "expires_in": { "type": "integer", "minimum": 1 },
            "scope": { "type": "string" }
        }
    })
}

fn oauth_error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": { "type": "string", "enum": ["invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope", "temporarily_unavailable", "server_error"] },
            "error_description": { "type": "string" }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schemas_and_paths() {
        let api = Api::new().unwrap();
        let doc = document(&api);
        let s = &doc["components"]["schemas"];
        for name in ["Persona", "Meta", "Sesso", "Valutazione", "Riepilogo", "ChangeEvent", "Problem"] {
            assert!(s.get(name).is_some(), "{name}");
        }
        assert_eq!(s["Persona"]["properties"]["sesso"]["$ref"], "#/components/schemas/Sesso");
        assert_eq!(s["Meta"]["properties"]["version"]["format"], "int64");
        assert!(s["Valutazione"]["not"]["anyOf"].is_array());
        assert_eq!(
            doc["paths"]["/api/v1/persone/{id}"]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Persona"
        );
        let list = &doc["paths"]["/api/v1/persone"]["get"]["parameters"];
        assert!(list.as_array().unwrap().iter().any(|p| p["name"] == "page_size" && p["schema"]["maximum"] == 500));
        assert_eq!(summary("CreateDiarioEntry"), "Create diario entry");
        let token = &doc["paths"]["/oauth/token"]["post"];
        assert_eq!(token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["required"][0], "grant_type");
        assert_eq!(token["responses"]["200"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/TokenResponse");
        assert!(
            doc["components"]["schemas"]["OAuthError"]["properties"]["error"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "invalid_client")
        );
        let links = &doc["paths"]["/api/v1/persone"]["post"]["responses"]["201"]["links"];
        assert_eq!(links["GetPersona"]["parameters"]["id"], "$response.body#/meta/id");
        assert!(links["UpdatePersona"].is_object());
    }
}
