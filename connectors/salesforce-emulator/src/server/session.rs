//! Access tokens, refresh tokens and authorization codes, as the emulator's OAuth server
//! issues them and its REST API checks them.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use parking_lot::Mutex;
use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::error::SfError;
use crate::id::Id;

/// The user a REST call runs as, put in the request's extensions by the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct SessionUser(pub Id);

struct AccessSession {
    user: Id,
    expires_at: Instant,
    calls: u64,
    refresh: Option<String>,
}

pub struct AuthCode {
    pub user: Id,
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge given to `authorize`, if any.
    pub challenge: Option<String>,
    pub expires_at: Instant,
}

#[derive(Default)]
struct Inner {
    access: HashMap<String, AccessSession>,
    refresh: HashMap<String, Id>,
    codes: HashMap<String, AuthCode>,
}

#[derive(Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Sessions {
    /// A new access token for `user`, valid for `lifetime`, tied to a refresh token if given.
    pub fn issue_access(
        &self,
        org: Id,
        user: Id,
        lifetime: Duration,
        refresh: Option<String>,
    ) -> String {
        // Salesforce's form: the 15-character org id, '!', then an opaque part.
        let token = format!("{}!AQ{}", &org.as_str()[..15], random_token(96));
        self.inner.lock().access.insert(
            token.clone(),
            AccessSession {
                user,
                expires_at: Instant::now() + lifetime,
                calls: 0,
                refresh,
            },
        );
        token
    }

    pub fn issue_refresh(&self, user: Id) -> String {
        let token = format!("5Aep861{}", random_token(80));
        self.inner.lock().refresh.insert(token.clone(), user);
        token
    }

    pub fn refresh_user(&self, token: &str) -> Option<Id> {
        self.inner.lock().refresh.get(token).copied()
    }

    /// Revokes an access or refresh token; a refresh token takes its access tokens with it.
    pub fn revoke(&self, token: &str) -> bool {
        let mut inner = self.inner.lock();
        if inner.access.remove(token).is_some() {
            return true;
        }
        if inner.refresh.remove(token).is_some() {
            inner
                .access
                .retain(|_, session| session.refresh.as_deref() != Some(token));
            return true;
        }
        false
    }

    pub fn issue_code(&self, code: AuthCode) -> String {
        let value = format!("aPrx{}", random_token(60));
        self.inner.lock().codes.insert(value.clone(), code);
        value
    }

    /// Takes a code out: a code works once.
    pub fn take_code(&self, code: &str) -> Option<AuthCode> {
        self.inner.lock().codes.remove(code)
    }

    /// The user behind a bearer token, or INVALID_SESSION_ID. Counts the call against
    /// `expire_after_calls` when that fault is set.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        expire_after_calls: Option<u64>,
    ) -> Result<SessionUser, SfError> {
        let token = bearer(headers).ok_or_else(SfError::invalid_session)?;
        let mut inner = self.inner.lock();
        let session = inner
            .access
            .get_mut(token)
            .ok_or_else(SfError::invalid_session)?;
        if Instant::now() >= session.expires_at {
            return Err(SfError::invalid_session());
        }
        session.calls += 1;
        if expire_after_calls.is_some_and(|limit| session.calls > limit) {
            inner.access.remove(token);
            return Err(SfError::invalid_session());
        }
        Ok(SessionUser(session.user))
    }

    /// The user behind a token without counting a call (userinfo, identity URL).
    pub fn user_of(&self, headers: &HeaderMap) -> Option<Id> {
        let token = bearer(headers)?;
        let inner = self.inner.lock();
        let session = inner.access.get(token)?;
        (Instant::now() < session.expires_at).then_some(session.user)
    }

    /// Every access token stops working at once (refresh tokens stay valid).
    pub fn expire_access_tokens(&self) {
        self.inner.lock().access.clear();
    }

    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.access.clear();
        inner.refresh.clear();
        inner.codes.clear();
    }
}

/// `Authorization: Bearer T` (or Salesforce's older `OAuth T`).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim())
}

/// The key pair of a private key given as PKCS#8 PEM (a key file kept from an earlier run).
pub fn key_pair_from_pem(private_pem: &str) -> Result<(String, String), String> {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem)
        .map_err(|err| format!("not a PKCS#8 PEM RSA private key: {err}"))?;
    let public = rsa::RsaPublicKey::from(&private)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|err| err.to_string())?;
    Ok((private_pem.to_owned(), public))
}

/// The connected app's RSA key pair (PKCS#8 private PEM, SPKI public PEM), made once per process.
pub fn app_key_pair() -> (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private =
            rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation");
        let public = rsa::RsaPublicKey::from(&private);
        (
            private
                .to_pkcs8_pem(LineEnding::LF)
                .expect("PEM encoding")
                .to_string(),
            public
                .to_public_key_pem(LineEnding::LF)
                .expect("PEM encoding"),
        )
    })
    .clone()
}
