//! External repositories: flake inputs of the project that may provide modules. This module
//! finds out what each one is ([`discovery`]), talks to GitHub and GitLab for the repository
//! editor ([`forge`]), and hands out their access tokens only where they belong.

pub mod discovery;
pub mod forge;

use uuid::Uuid;

use crate::nix::flake_ref::FlakeRef;
use crate::secrets::{Vault, VaultError};
use crate::state::{Repo, State};

/// Why a repository token was not handed out.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No repository of the state uses this secret as token for the reference's host, so
    /// sending it there could leak it to a stranger.
    #[error("this secret is not the token of a repository on that host")]
    NotForThisHost,
    /// The secret could not be read.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The access token in secret `secret`, for requests about `reference`: only if a repository
/// of `state` is configured with that secret on the same host.
pub fn token_for_reference(
    state: &State,
    vault: &Vault,
    secret: Uuid,
    reference: &FlakeRef,
) -> Result<String, TokenError> {
    let host = reference.token_host();
    let secret_text = secret.to_string();
    let configured = state.repositories.values().any(|repo| {
        repo.api_key_secret.as_deref() == Some(secret_text.as_str())
            && repo
                .url
                .as_deref()
                .and_then(|url| url.parse::<FlakeRef>().ok())
                .is_some_and(|configured| configured.token_host() == host)
    });
    if host.is_none() || !configured {
        return Err(TokenError::NotForThisHost);
    }
    let (_, value) = vault.reveal(secret)?;
    Ok(String::from_utf8_lossy(&value).trim().to_owned())
}

/// The `NIX_CONFIG` line with the access tokens of every repository of `state` that has one,
/// each bound to its repository's host; `None` when there are none. Nix needs it for every
/// call that may fetch an input, builds included.
pub fn nix_access_tokens(state: &State, vault: &Vault) -> Option<String> {
    let entries: Vec<String> = state
        .repositories
        .values()
        .filter_map(|repo| {
            let reference: FlakeRef = repo.url.as_deref()?.parse().ok()?;
            let token = token_of_repository(vault, repo)?;
            crate::nix::prefetch::access_token_entry(&reference, &token)
        })
        .collect();
    (!entries.is_empty()).then(|| format!("access-tokens = {}", entries.join(" ")))
}

/// The access token a repository is configured with, if any and readable.
pub fn token_of_repository(vault: &Vault, repo: &Repo) -> Option<String> {
    let secret = Uuid::parse_str(repo.api_key_secret.as_deref()?).ok()?;
    match vault.reveal(secret) {
        Ok((_, value)) => Some(String::from_utf8_lossy(&value).trim().to_owned()),
        Err(err) => {
            tracing::warn!(%secret, error = %err, "the token secret of a repository is unreadable");
            None
        }
    }
}
