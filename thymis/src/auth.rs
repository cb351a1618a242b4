//! Who may use the controller: the username/password login (password file, constant-time
//! check), web sessions and API tokens. Secrets are random from the OS and stored hashed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::settings::ControllerSettings;
use crate::store::{hash_token, new_token, ApiTokenRecord, NewSession, Store, StoreError};

/// How long a web session lasts (upstream: one day).
pub const SESSION_LIFETIME: Duration = Duration::days(1);

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Login name (for API tokens: the token's creator).
    pub username: String,
    /// Given name, when known.
    pub given_name: Option<String>,
    /// Family name, when known.
    pub family_name: Option<String>,
    /// E-mail address, when known.
    pub email: Option<String>,
}

impl User {
    fn named(username: &str) -> Self {
        User {
            username: username.to_owned(),
            given_name: None,
            family_name: None,
            email: None,
        }
    }
}

/// A session just created by a login; `token` goes into the browser's cookie and nowhere else.
pub struct NewLogin {
    /// Session id (cookie `session-id`).
    pub id: Uuid,
    /// Session secret (cookie `session-token`).
    pub token: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// An API token just created; `token` is shown once and never stored.
#[derive(Serialize)]
pub struct ApiTokenCreated {
    /// The stored record (without the token).
    #[serde(flatten)]
    pub record: ApiTokenRecord,
    /// The token itself, for `Authorization: Bearer …`.
    pub token: String,
}

// Debug output never carries the secrets (a logged value must not leak them).
impl std::fmt::Debug for NewLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLogin")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ApiTokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokenCreated")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// Errors of authentication.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The password file could not be read or written.
    #[error("password file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// Checks passwords, sessions and API tokens against the store.
pub struct Authenticator {
    store: Arc<dyn Store>,
    basic_enabled: bool,
    username: String,
    password_file: PathBuf,
}

impl Authenticator {
    /// An authenticator for the settings' login options.
    pub fn new(store: Arc<dyn Store>, settings: &ControllerSettings) -> Self {
        Authenticator {
            store,
            basic_enabled: settings.auth_basic,
            username: settings.auth_basic_username.clone(),
            password_file: settings.auth_basic_password_file.clone(),
        }
    }

    /// Creates the password file with a random password (mode 0600) when it is missing, and
    /// returns the new password so it can be shown once.
    pub fn ensure_password_file(path: &Path) -> Result<Option<String>, AuthError> {
        if path.exists() {
            return Ok(None);
        }
        let password = new_token();
        let error = |source| AuthError::PasswordFile {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(error)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(error)?;
        file.write_all(password.as_bytes()).map_err(error)?;
        file.sync_all().map_err(error)?;
        Ok(Some(password))
    }

    /// Whether `username`/`password` are the configured credentials. The password file is read
    /// on every login (so changing it takes effect at once) and compared in constant time.
    fn credentials_match(&self, username: &str, password: &str) -> Result<bool, AuthError> {
        let expected = std::fs::read_to_string(&self.password_file).map_err(|source| {
            AuthError::PasswordFile {
                path: self.password_file.clone(),
                source,
            }
        })?;
        let expected = expected.trim();
        // Compare hashes so that the comparison time does not depend on the lengths either.
        let password_ok = hash_token(password)
            .as_bytes()
            .ct_eq(hash_token(expected).as_bytes());
        let user_ok = hash_token(username)
            .as_bytes()
            .ct_eq(hash_token(&self.username).as_bytes());
        Ok(bool::from(password_ok & user_ok) && !expected.is_empty())
    }

    /// Logs in with username and password; `None` for wrong credentials or when password login
    /// is disabled.
    pub fn login_basic(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<NewLogin>, AuthError> {
        if !self.basic_enabled || !self.credentials_match(username, password)? {
            return Ok(None);
        }
        let token = new_token();
        let expires_at = Utc::now() + SESSION_LIFETIME;
        let record = self.store.create_session(&NewSession {
            token_hash: hash_token(&token),
            username: username.to_owned(),
            given_name: None,
            family_name: None,
            email: None,
            expires_at,
        })?;
        Ok(Some(NewLogin {
            id: record.id,
            token,
            expires_at: record.expires_at,
        }))
    }

    /// The user of a live session, from the two cookies.
    pub fn session_user(&self, id: &str, token: &str) -> Result<Option<User>, AuthError> {
        let Ok(id) = Uuid::parse_str(id) else {
            return Ok(None);
        };
        Ok(self
            .store
            .find_session(id, &hash_token(token))?
            .map(|session| User {
                username: session.username,
                given_name: session.given_name,
                family_name: session.family_name,
                email: session.email,
            }))
    }

    /// Ends a session; only a caller holding its token can end it.
    pub fn logout(&self, id: &str, token: &str) -> Result<(), AuthError> {
        let Ok(id) = Uuid::parse_str(id) else {
            return Ok(());
        };
        if self.store.find_session(id, &hash_token(token))?.is_some() {
            self.store.delete_session(id)?;
        }
        Ok(())
    }

    /// The user an API token acts for.
    pub fn token_user(&self, token: &str) -> Result<Option<User>, AuthError> {
        let Some(record) = self.store.find_active_api_token(&hash_token(token))? else {
            return Ok(None);
        };
        self.store.touch_api_token(record.id)?;
        Ok(Some(User::named(&record.created_by)))
    }

    /// Whether an API token is (still) active, without recording a use.
    pub fn token_is_active(&self, token: &str) -> Result<bool, AuthError> {
        Ok(self
            .store
            .find_active_api_token(&hash_token(token))?
            .is_some())
    }

    /// Creates an API token acting for `user`.
    pub fn create_api_token(&self, name: &str, user: &User) -> Result<ApiTokenCreated, AuthError> {
        let token = new_token();
        let record = self
            .store
            .create_api_token(name, &hash_token(&token), &user.username)?;
        Ok(ApiTokenCreated { record, token })
    }

    /// Every API token (never their values).
    pub fn list_api_tokens(&self) -> Result<Vec<ApiTokenRecord>, AuthError> {
        Ok(self.store.list_api_tokens()?)
    }

    /// Revokes an API token; `false` if it does not exist or was revoked already.
    pub fn revoke_api_token(&self, id: Uuid) -> Result<bool, AuthError> {
        Ok(self.store.revoke_api_token(id)?)
    }
}
