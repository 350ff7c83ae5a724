//! OAuth 2.0 as Salesforce serves it under `/services/oauth2`, plus the identity URL.
//!
//! Token errors are HTTP 400 `{"error","error_description"}` with Salesforce's texts
//! (SALESFORCE.md); choices it does not list are marked UNCONFIRMED.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use sha2::{Digest, Sha256};

use super::session::AuthCode;
use super::Emulator;
use crate::id::Id;
use crate::org::Org;
use crate::schema::ObjectType;

pub fn router() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/services/oauth2/authorize",
            get(authorize_page).post(authorize_submit),
        )
        .route("/services/oauth2/token", axum::routing::post(token))
        .route(
            "/services/oauth2/revoke",
            get(revoke_query).post(revoke_form),
        )
        .route("/services/oauth2/userinfo", get(userinfo))
        .route("/id/{org}/{user}", get(identity))
}

/// A token-endpoint error.
fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

fn html_error(error: &str, description: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html><head><title>Error</title></head><body><p>error={error}&amp;error_description={}</p></body></html>",
        description.replace(' ', "%20")
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The form fields of the authorize request, carried through the login page.
#[derive(Debug, Deserialize, Default)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

fn callback_allowed(emulator: &Emulator, redirect_uri: &str) -> bool {
    let config = emulator.config.read();
    if config.callback_urls.is_empty() {
        // Convenience for tests: any loopback callback. A configured list is matched exactly.
        url::Url::parse(redirect_uri)
            .is_ok_and(|url| matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
    } else {
        config
            .callback_urls
            .iter()
            .any(|allowed| allowed == redirect_uri)
    }
}

/// What is wrong with an authorize request, as (error, description) for the error page.
fn check_authorize(
    emulator: &Emulator,
    params: &AuthorizeParams,
) -> Result<(), (&'static str, &'static str)> {
    if params.client_id.as_deref() != Some(emulator.app.client_id.as_str()) {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    if params.response_type.as_deref() != Some("code") {
        return Err(("unsupported_response_type", "response type not supported"));
    }
    let redirect_uri = params.redirect_uri.as_deref().unwrap_or_default();
    if !callback_allowed(emulator, redirect_uri) {
        return Err((
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    if params.code_challenge.is_some()
        && params.code_challenge_method.as_deref().unwrap_or("S256") != "S256"
    {
        return Err(("invalid_request", "code_challenge_method must be S256"));
    }
    Ok(())
}

async fn authorize_page(
    State(emulator): State<Arc<Emulator>>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    if let Err((error, description)) = check_authorize(&emulator, &params) {
        return html_error(error, description);
    }
    Html(login_page(&params, None)).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn login_page(params: &AuthorizeParams, error: Option<&str>) -> String {
    let hidden = [
        ("response_type", &params.response_type),
        ("client_id", &params.client_id),
        ("redirect_uri", &params.redirect_uri),
        ("state", &params.state),
        ("scope", &params.scope),
        ("code_challenge", &params.code_challenge),
        ("code_challenge_method", &params.code_challenge_method),
    ]
    .iter()
    .filter_map(|(name, value)| {
        value.as_ref().map(|v| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(v)
            )
        })
    })
    .collect::<String>();
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html><html><head><title>Login | Salesforce emulator</title></head><body>\
         <h1>Log in to the Salesforce emulator</h1>{error}\
         <form method=\"post\" action=\"/services/oauth2/authorize\">{hidden}\
         <label>Username <input name=\"username\" id=\"username\" autocomplete=\"username\"></label>\
         <label>Password <input name=\"password\" id=\"password\" type=\"password\"></label>\
         <p>Allow access? The application will be able to access and manage your data (api, refresh_token).</p>\
         <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Log In and Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\
         </form></body></html>"
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    decision: Option<String>,
    #[serde(flatten)]
    params: HashMap<String, String>,
}

async fn authorize_submit(
    State(emulator): State<Arc<Emulator>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let take = |key: &str| form.params.get(key).cloned();
    let params = AuthorizeParams {
        response_type: take("response_type"),
        client_id: take("client_id"),
        redirect_uri: take("redirect_uri"),
        state: take("state"),
        scope: take("scope"),
        code_challenge: take("code_challenge"),
        code_challenge_method: take("code_challenge_method"),
    };
    if let Err((error, description)) = check_authorize(&emulator, &params) {
        return html_error(error, description);
    }
    let redirect_uri = params.redirect_uri.clone().unwrap_or_default();
    let mut target = url::Url::parse(&redirect_uri).expect("checked above");
    if form.decision.as_deref() == Some("deny") {
        target
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "end-user denied authorization");
        if let Some(state) = &params.state {
            target.query_pairs_mut().append_pair("state", state);
        }
        return Redirect::to(target.as_str()).into_response();
    }
    let username = form.username.unwrap_or_default();
    let user = {
        let org = emulator.org.read();
        let password_ok =
            form.password.as_deref() == Some(emulator.config.read().password.as_str());
        match org.user_by_username(&username) {
            Some(user) if password_ok => login_check(&org, user).map(|()| user),
            _ => Err("authentication failure"),
        }
    };
    let user = match user {
        Ok(user) => user,
        Err(reason) => {
            let message = format!("Please check your username and password. If you still can't log in, contact your Salesforce administrator. ({reason})");
            return (StatusCode::OK, Html(login_page(&params, Some(&message)))).into_response();
        }
    };
    let code = emulator.sessions.issue_code(AuthCode {
        user,
        client_id: emulator.app.client_id.clone(),
        redirect_uri,
        challenge: params.code_challenge.clone(),
        expires_at: Instant::now() + Duration::from_secs(15 * 60),
    });
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = &params.state {
        target.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(target.as_str()).into_response()
}

/// Whether a user may get a session: active and not frozen.
fn login_check(org: &Org, user: Id) -> Result<(), &'static str> {
    let schema = ObjectType::User.schema();
    let record = org
        .get(ObjectType::User, user)
        .ok_or("authentication failure")?;
    if record
        .get(schema.field_index("IsActive").expect("known field"))
        .as_bool()
        != Some(true)
    {
        return Err("inactive user");
    }
    if let Some(login) = org
        .login_of(user)
        .and_then(|id| org.get(ObjectType::UserLogin, id))
    {
        let frozen = ObjectType::UserLogin
            .schema()
            .field_index("IsFrozen")
            .expect("known field");
        if login.get(frozen).as_bool() == Some(true) {
            // UNCONFIRMED: a frozen user's token request fails like a wrong password.
            return Err("authentication failure");
        }
    }
    Ok(())
}

/// Client id and secret from the form or from HTTP Basic auth.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        });
    let id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let secret = form
        .get("client_secret")
        .cloned()
        .or_else(|| basic.map(|b| b.1));
    (id, secret)
}

async fn token(
    State(emulator): State<Arc<Emulator>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    emulator.count_call("POST oauth2/token".to_owned());
    let (client_id, client_secret) = client_credentials(&headers, &form);
    let grant_type = form
        .get("grant_type")
        .map(String::as_str)
        .unwrap_or_default();
    let app = &emulator.app;
    let known_client = client_id.as_deref() == Some(app.client_id.as_str());
    let secret_ok =
        |secret: &Option<String>| secret.as_deref().is_none_or(|s| s == app.client_secret);
    match grant_type {
        "authorization_code" => {
            if !known_client {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if !secret_ok(&client_secret) {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let Some(code) = form
                .get("code")
                .and_then(|c| emulator.sessions.take_code(c))
            else {
                return oauth_error("invalid_grant", "invalid authorization code");
            };
            if Instant::now() > code.expires_at {
                return oauth_error("invalid_grant", "expired authorization code");
            }
            if form.get("redirect_uri") != Some(&code.redirect_uri) {
                return oauth_error(
                    "redirect_uri_mismatch",
                    "redirect_uri must match configuration",
                );
            }
            if let Some(challenge) = &code.challenge {
                let verifier = form
                    .get("code_verifier")
                    .map(String::as_str)
                    .unwrap_or_default();
                let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                if &computed != challenge {
                    return oauth_error("invalid_grant", "invalid code verifier");
                }
            }
            if code.client_id != app.client_id {
                return oauth_error("invalid_grant", "invalid authorization code");
            }
            if let Err(reason) = login_check(&emulator.org.read(), code.user) {
                return oauth_error("invalid_grant", reason);
            }
            let refresh = emulator.sessions.issue_refresh(code.user);
            token_response(
                &emulator,
                code.user,
                Refresh::Issued(refresh),
                "api refresh_token",
            )
        }
        "refresh_token" => {
            if !known_client {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if !secret_ok(&client_secret) {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let token = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(user) = emulator.sessions.refresh_user(&token) else {
                return oauth_error("invalid_grant", "expired access/refresh token");
            };
            if let Err(reason) = login_check(&emulator.org.read(), user) {
                return oauth_error("invalid_grant", reason);
            }
            if emulator.config.read().rotate_refresh_tokens {
                emulator.sessions.revoke(&token);
                let rotated = emulator.sessions.issue_refresh(user);
                token_response(
                    &emulator,
                    user,
                    Refresh::Issued(rotated),
                    "api refresh_token",
                )
            } else {
                token_response(&emulator, user, Refresh::Kept(token), "api refresh_token")
            }
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            jwt_bearer(&emulator, form.get("assertion").map(String::as_str))
        }
        "client_credentials" => {
            if !emulator.config.read().my_domain {
                return oauth_error("invalid_grant", "request not supported on this domain");
            }
            if !known_client {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if client_secret.as_deref() != Some(app.client_secret.as_str()) {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            // The connected app runs as its configured execution user: the integration user.
            let username = emulator.integration_username();
            let Some(user) = emulator.org.read().user_by_username(&username) else {
                return oauth_error("invalid_grant", "no client credentials user enabled");
            };
            if let Err(reason) = login_check(&emulator.org.read(), user) {
                return oauth_error("invalid_grant", reason);
            }
            token_response(&emulator, user, Refresh::None, "api")
        }
        "password" => oauth_error("invalid_grant", "authentication failure"),
        _ => oauth_error("unsupported_grant_type", "grant type not supported"),
    }
}

#[derive(Debug, Deserialize)]
struct JwtClaims {
    iss: String,
    sub: String,
}

fn jwt_bearer(emulator: &Emulator, assertion: Option<&str>) -> Response {
    use jsonwebtoken::{
        decode, decode_header, errors::ErrorKind, Algorithm, DecodingKey, Validation,
    };
    let Some(assertion) = assertion else {
        return oauth_error("invalid_request", "assertion is required");
    };
    match decode_header(assertion) {
        Ok(header) if header.alg == Algorithm::RS256 => {}
        // UNCONFIRMED: the description for an assertion that is not an RS256 JWT.
        _ => return oauth_error("invalid_grant", "invalid assertion"),
    }
    let key = DecodingKey::from_rsa_pem(emulator.app.public_key_pem.as_bytes())
        .expect("the app key is valid PEM");
    let base = emulator.base_url();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[
        "https://login.salesforce.com",
        "https://test.salesforce.com",
        base.as_str(),
    ]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 0;
    let claims = match decode::<JwtClaims>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(err) => {
            return match err.kind() {
                ErrorKind::InvalidAudience => oauth_error("invalid_grant", "audience is invalid"),
                // UNCONFIRMED: the description for an expired assertion.
                ErrorKind::ExpiredSignature => {
                    oauth_error("invalid_grant", "expired authorization code")
                }
                _ => oauth_error("invalid_grant", "invalid assertion"),
            };
        }
    };
    if claims.iss != emulator.app.client_id {
        return oauth_error("invalid_client_id", "client identifier invalid");
    }
    let user = emulator.org.read().user_by_username(&claims.sub);
    let Some(user) = user else {
        return oauth_error("invalid_grant", "user hasn't approved this consumer");
    };
    if let Err(reason) = login_check(&emulator.org.read(), user) {
        return oauth_error("invalid_grant", reason);
    }
    token_response(emulator, user, Refresh::None, "api")
}

fn identity_url(emulator: &Emulator, org: Id, user: Id) -> String {
    format!("{}/id/{}/{}", emulator.base_url(), org, user)
}

fn signature(secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// What a token response carries about the refresh token.
enum Refresh {
    /// No refresh token (JWT bearer, client credentials).
    None,
    /// A refresh token the client gets in this response (a new authorisation, a rotation).
    Issued(String),
    /// The access token belongs to the client's existing refresh token, not sent back.
    Kept(String),
}

fn token_response(emulator: &Emulator, user: Id, refresh: Refresh, scope: &str) -> Response {
    let org = emulator.org.read().organization_id;
    let lifetime = emulator.config.read().session_lifetime;
    let (tied, returned) = match refresh {
        Refresh::None => (None, None),
        Refresh::Issued(token) => (Some(token.clone()), Some(token)),
        Refresh::Kept(token) => (Some(token), None),
    };
    let access = emulator.sessions.issue_access(org, user, lifetime, tied);
    let id = identity_url(emulator, org, user);
    let issued_at = now_ms().to_string();
    let mut body = serde_json::Map::new();
    body.insert("access_token".into(), json!(access));
    if let Some(refresh) = returned {
        body.insert("refresh_token".into(), json!(refresh));
    }
    body.insert(
        "signature".into(),
        json!(signature(&emulator.app.client_secret, &id, &issued_at)),
    );
    body.insert("scope".into(), json!(scope));
    body.insert("instance_url".into(), json!(emulator.base_url()));
    body.insert("id".into(), json!(id));
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("issued_at".into(), json!(issued_at));
    Json(Json_::Object(body)).into_response()
}

#[derive(Debug, Deserialize)]
struct RevokeParams {
    token: Option<String>,
}

async fn revoke_form(
    State(emulator): State<Arc<Emulator>>,
    Form(params): Form<RevokeParams>,
) -> Response {
    revoke(&emulator, params.token)
}

async fn revoke_query(
    State(emulator): State<Arc<Emulator>>,
    Query(params): Query<RevokeParams>,
) -> Response {
    revoke(&emulator, params.token)
}

fn revoke(emulator: &Emulator, token: Option<String>) -> Response {
    match token {
        Some(token) if emulator.sessions.revoke(&token) => StatusCode::OK.into_response(),
        _ => oauth_error("invalid_token", "invalid token"),
    }
}

fn user_fields(org: &Org, user: Id) -> Option<HashMap<&'static str, Json_>> {
    let record = org.get(ObjectType::User, user)?;
    let schema = ObjectType::User.schema();
    let mut fields = HashMap::new();
    for name in [
        "Username",
        "Email",
        "FirstName",
        "LastName",
        "Name",
        "IsActive",
        "UserType",
        "LocaleSidKey",
        "LanguageLocaleKey",
        "TimeZoneSidKey",
        "CommunityNickname",
        "LastModifiedDate",
    ] {
        fields.insert(
            name,
            record
                .get(schema.field_index(name).expect("known field"))
                .to_json(),
        );
    }
    Some(fields)
}

async fn userinfo(State(emulator): State<Arc<Emulator>>, headers: HeaderMap) -> Response {
    let Some(user) = emulator.sessions.user_of(&headers) else {
        return (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    };
    let org = emulator.org.read();
    let Some(f) = user_fields(&org, user) else {
        return (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    };
    let sub = identity_url(&emulator, org.organization_id, user);
    Json(json!({
        "sub": sub,
        "user_id": user.as_str(),
        "organization_id": org.organization_id.as_str(),
        "preferred_username": f["Username"],
        "nickname": f["CommunityNickname"],
        "name": f["Name"],
        "email": f["Email"],
        "email_verified": true,
        "given_name": f["FirstName"],
        "family_name": f["LastName"],
        "zoneinfo": f["TimeZoneSidKey"],
        "locale": f["LocaleSidKey"],
        "language": f["LanguageLocaleKey"],
        "active": f["IsActive"],
        "user_type": f["UserType"].as_str().map(str::to_uppercase),
        "updated_at": f["LastModifiedDate"],
    }))
    .into_response()
}

async fn identity(
    State(emulator): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((org_id, user_id)): Path<(String, String)>,
) -> Response {
    let Some(caller) = emulator.sessions.user_of(&headers) else {
        return (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    };
    let org = emulator.org.read();
    let requested = Id::parse(&user_id);
    if Id::parse(&org_id) != Some(org.organization_id) || requested != Some(caller) {
        return (StatusCode::FORBIDDEN, "Bad_Id").into_response();
    }
    let Some(f) = user_fields(&org, caller) else {
        return (StatusCode::NOT_FOUND, "Bad_Id").into_response();
    };
    let base = emulator.base_url();
    let version = super::API_VERSIONS.last().expect("versions");
    Json(json!({
        "id": identity_url(&emulator, org.organization_id, caller),
        "asserted_user": true,
        "user_id": caller.as_str(),
        "organization_id": org.organization_id.as_str(),
        "username": f["Username"],
        "nick_name": f["CommunityNickname"],
        "display_name": f["Name"],
        "email": f["Email"],
        "email_verified": true,
        "first_name": f["FirstName"],
        "last_name": f["LastName"],
        "timezone": f["TimeZoneSidKey"],
        "active": f["IsActive"],
        "user_type": f["UserType"].as_str().map(str::to_uppercase),
        "language": f["LanguageLocaleKey"],
        "locale": f["LocaleSidKey"],
        "utcOffset": -28_800_000,
        "last_modified_date": f["LastModifiedDate"],
        "is_app_installed": true,
        "urls": {
            "rest": format!("{base}/services/data/v{{version}}/"),
            "sobjects": format!("{base}/services/data/v{{version}}/sobjects/"),
            "query": format!("{base}/services/data/v{{version}}/query/"),
            "limits": format!("{base}/services/data/v{version}/limits"),
            "profile": format!("{base}/{}", caller.as_str()),
        },
    }))
    .into_response()
}
