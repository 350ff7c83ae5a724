//! Secrets at rest: refresh tokens and PKCE verifiers are sealed with AES-256-GCM before they
//! reach the database.
//!
//! The key comes from `PROVOST_SECRET_KEY` (32 bytes, base64) or from the key file
//! (`secrets.key_file`, default `provost.key`), created on first use readable by its owner only.
//! Each sealed value is bound to its context (such as `org:production:refresh_token`), so a
//! value copied to another row does not open.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use provost_connector::secret::Secret;

pub const KEY_ENV: &str = "PROVOST_SECRET_KEY";
const VERSION: &str = "v1:";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{KEY_ENV} must be 32 bytes encoded in base64 (for example the output of `openssl rand -base64 32`)")]
    BadEnvKey,
    #[error("the key file {path} is not a base64-encoded 32-byte key; restore the right file or remove it to start over (stored tokens then need `provost connect` again)")]
    BadKeyFile { path: String },
    #[error("cannot read or create the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("a stored secret cannot be opened with this key (wrong key, or the value was moved or altered); connect the org again")]
    Undecryptable,
}

/// Seals and opens secrets with the installation's key.
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl SecretBox {
    /// The key from the environment, else from `key_file`, created if missing.
    pub fn load(key_file: &Path) -> Result<SecretBox, SecretsError> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            return decode_key(&text)
                .map(SecretBox::with_key)
                .ok_or(SecretsError::BadEnvKey);
        }
        let path = key_file.display().to_string();
        match std::fs::read_to_string(key_file) {
            Ok(text) => decode_key(&text)
                .map(SecretBox::with_key)
                .ok_or(SecretsError::BadKeyFile { path }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key = Aes256Gcm::generate_key(OsRng);
                write_key_file(key_file, &STANDARD.encode(key)).map_err(|source| {
                    SecretsError::KeyFile {
                        path: path.clone(),
                        source,
                    }
                })?;
                tracing::info!(path, "created a new secret key file (mode 0600)");
                Ok(SecretBox::with_key(key.into()))
            }
            Err(source) => Err(SecretsError::KeyFile { path, source }),
        }
    }

    fn with_key(key: [u8; 32]) -> SecretBox {
        SecretBox {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        }
    }

    /// `v1:` + base64(nonce || ciphertext), bound to `context`.
    pub fn seal(&self, secret: &Secret, context: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption does not fail for in-memory buffers");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{VERSION}{}", STANDARD.encode(bytes))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret, SecretsError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or(SecretsError::Undecryptable)?;
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Undecryptable)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SecretsError::Undecryptable)
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    STANDARD.decode(text.trim()).ok()?.try_into().ok()
}

fn write_key_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("provost.key");
        let secrets = SecretBox::load(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let token = Secret::new("5Aep861-refresh-token");
        let sealed = secrets.seal(&token, "org:prod:refresh_token");
        assert!(sealed.starts_with("v1:") && !sealed.contains("5Aep861"));
        assert_eq!(
            secrets.open(&sealed, "org:prod:refresh_token").unwrap(),
            token
        );
        assert!(
            secrets.open(&sealed, "org:other:refresh_token").is_err(),
            "bound to its context"
        );
        assert_ne!(
            sealed,
            secrets.seal(&token, "org:prod:refresh_token"),
            "a fresh nonce each time"
        );

        let again = SecretBox::load(&path).unwrap();
        assert_eq!(
            again.open(&sealed, "org:prod:refresh_token").unwrap(),
            token,
            "the key file is reused"
        );
        let other = SecretBox::load(&dir.path().join("other.key")).unwrap();
        assert!(matches!(
            other.open(&sealed, "org:prod:refresh_token"),
            Err(SecretsError::Undecryptable)
        ));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(secrets.open(&tampered, "org:prod:refresh_token").is_err());
    }

    #[test]
    fn a_bad_key_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("provost.key");
        std::fs::write(&path, "not a key").unwrap();
        let err = SecretBox::load(&path).err().unwrap().to_string();
        assert!(err.contains("32-byte key"), "{err}");
    }
}
