//! The REST APIs of GitHub and GitLab, for what the repository editor shows: branch and tag
//! names to pick from, and a connection test reading the commit a reference points at.
//! Answers are cached for a minute per repository and token, as forges limit request rates.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::nix::flake_ref::FlakeRef;

/// How long an answer is reused.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// How many answers are kept.
const CACHE_ENTRIES: usize = 100;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from a forge.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// Where the public forges' APIs live (settings, so tests and mirrors can point elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeApis {
    /// The API of github.com, `https://api.github.com`.
    pub github: String,
    /// The API of gitlab.com, `https://gitlab.com/api/v4`.
    pub gitlab: String,
}

impl Default for ForgeApis {
    fn default() -> Self {
        ForgeApis {
            github: "https://api.github.com".into(),
            gitlab: "https://gitlab.com/api/v4".into(),
        }
    }
}

/// Why a forge gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    /// The reference is not a repository on GitHub or GitLab.
    #[error("Not a supported repository type")]
    Unsupported,
    /// The reference names a host or repository that cannot be put into an API URL.
    #[error("{0}")]
    Invalid(String),
    /// The forge refused (not found, no access, …): its status and message.
    #[error("{status} {message}")]
    Refused {
        /// The HTTP status the forge answered.
        status: u16,
        /// The forge's message.
        message: String,
    },
    /// The forge's request limit is reached.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// The forge could not be reached or answered nonsense.
    #[error("{0}")]
    Unreachable(String),
}

/// Which forge API serves a repository, and its path there.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    GitHub {
        api: String,
        owner: String,
        repo: String,
    },
    GitLab {
        api: String,
        project: String,
    },
}

/// A client of the forge APIs with a short-lived answer cache.
pub struct ForgeClient {
    apis: ForgeApis,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Value)>>,
}

impl ForgeClient {
    /// A client of `apis`.
    pub fn new(apis: ForgeApis) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("thymis-controller/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        ForgeClient {
            apis,
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The repository's branches, as the forge lists them (JSON array).
    pub async fn branches(
        &self,
        reference: &FlakeRef,
        token: Option<&str>,
    ) -> Result<Value, ForgeError> {
        let (path_github, path_gitlab) = ("branches", "repository/branches");
        self.get(reference, token, path_github, path_gitlab).await
    }

    /// The repository's tags, as the forge lists them (JSON array).
    pub async fn tags(
        &self,
        reference: &FlakeRef,
        token: Option<&str>,
    ) -> Result<Value, ForgeError> {
        self.get(reference, token, "tags", "repository/tags").await
    }

    /// The commit hash the reference's ref or rev (else `HEAD`) points at.
    pub async fn head_commit(
        &self,
        reference: &FlakeRef,
        token: Option<&str>,
    ) -> Result<String, ForgeError> {
        let target = match reference {
            FlakeRef::GitHub(r) | FlakeRef::GitLab(r) => r.ref_.as_ref().or(r.rev.as_ref()),
            FlakeRef::Git(r) => r.ref_.as_ref().or(r.rev.as_ref()),
            _ => None,
        };
        let target = encode(target.map_or("HEAD", String::as_str));
        let commit = self
            .get(
                reference,
                token,
                &format!("commits/{target}"),
                &format!("repository/commits/{target}"),
            )
            .await?;
        // GitHub names the hash `sha`, GitLab `id`.
        commit
            .get("sha")
            .or_else(|| commit.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ForgeError::Unreachable("Could not fetch head commit".into()))
    }

    /// GETs `<repository>/<path>` from the reference's forge, from the cache when fresh.
    async fn get(
        &self,
        reference: &FlakeRef,
        token: Option<&str>,
        github_path: &str,
        gitlab_path: &str,
    ) -> Result<Value, ForgeError> {
        let url = match self.endpoint(reference)? {
            Endpoint::GitHub { api, owner, repo } => {
                format!(
                    "{api}/repos/{}/{}/{github_path}",
                    encode(&owner),
                    encode(&repo)
                )
            }
            Endpoint::GitLab { api, project } => {
                format!("{api}/projects/{}/{gitlab_path}", encode(&project))
            }
        };
        // The key holds a digest of the token, never the token.
        let key = format!(
            "{url} {}",
            token.map_or_else(String::new, |t| hex::encode(Sha256::digest(t)))
        );
        if let Some(answer) = self.cached(&key) {
            return Ok(answer);
        }
        let mut request = self.http.get(&url).header("accept", "application/json");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|err| {
            ForgeError::Unreachable(format!(
                "cannot reach {}: {}",
                host_of(&url),
                err.without_url()
            ))
        })?;
        let status = response.status();
        let rate_limited = status.as_u16() == 429
            || (status.as_u16() == 403
                && response
                    .headers()
                    .get("x-ratelimit-remaining")
                    .is_some_and(|remaining| remaining == "0"));
        let body = read_limited(response).await?;
        let answer: Option<Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            let answer = answer.ok_or_else(|| {
                ForgeError::Unreachable(format!("{} did not answer with JSON", host_of(&url)))
            })?;
            self.remember(key, answer.clone());
            return Ok(answer);
        }
        let message = answer
            .as_ref()
            .and_then(|a| a.get("message").or_else(|| a.get("error")))
            .and_then(Value::as_str)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
            .to_owned();
        if rate_limited {
            Err(ForgeError::RateLimited(message))
        } else {
            Err(ForgeError::Refused {
                status: status.as_u16(),
                message,
            })
        }
    }

    /// The API serving `reference`: github.com and gitlab.com through the configured APIs,
    /// GitHub Enterprise and self-hosted GitLab (`?host=`) through their standard API paths.
    fn endpoint(&self, reference: &FlakeRef) -> Result<Endpoint, ForgeError> {
        let github = |host: Option<&str>, owner: &str, repo: &str| {
            let api = match host {
                None | Some("github.com") => self.apis.github.clone(),
                Some(host) => format!("https://{}/api/v3", checked_host(host)?),
            };
            Ok(Endpoint::GitHub {
                api,
                owner: owner.to_owned(),
                repo: repo.to_owned(),
            })
        };
        let gitlab = |host: Option<&str>, owner: &str, repo: &str| {
            let api = match host {
                None | Some("gitlab.com") => self.apis.gitlab.clone(),
                Some(host) => format!("https://{}/api/v4", checked_host(host)?),
            };
            Ok(Endpoint::GitLab {
                api,
                project: format!("{owner}/{repo}"),
            })
        };
        match reference {
            FlakeRef::GitHub(r) => github(r.host.as_deref(), &r.owner, &r.repo),
            FlakeRef::GitLab(r) => gitlab(r.host.as_deref(), &r.owner, &r.repo),
            FlakeRef::Git(r) => match (r.host.as_deref(), &r.owner, &r.repo) {
                (Some("github.com"), Some(owner), Some(repo)) => github(None, owner, repo),
                (Some("gitlab.com"), Some(owner), Some(repo)) => gitlab(None, owner, repo),
                _ => Err(ForgeError::Unsupported),
            },
            _ => Err(ForgeError::Unsupported),
        }
    }

    fn cached(&self, key: &str) -> Option<Value> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, answer)| answer.clone())
    }

    fn remember(&self, key: String, answer: Value) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        if cache.len() >= CACHE_ENTRIES {
            if let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(key, _)| key.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(key, (Instant::now(), answer));
    }
}

/// Reads a response body of at most [`MAX_ANSWER`] bytes.
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, ForgeError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| ForgeError::Unreachable(err.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(ForgeError::Unreachable(
                "the forge's answer is too large".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `host` if it is a plain host name (with an optional port), so it cannot change the URL's
/// meaning.
fn checked_host(host: &str) -> Result<&str, ForgeError> {
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    if valid {
        Ok(host)
    } else {
        Err(ForgeError::Invalid(format!("invalid host name {host:?}")))
    }
}

/// The host part of an API URL, for messages.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// Percent-encodes everything but unreserved characters, so a value stays one path segment
/// (`.` and `..` too, which URL normalisation would otherwise resolve).
fn encode(value: &str) -> String {
    let only_dots = value.bytes().all(|b| b == b'.');
    value
        .bytes()
        .map(|b| {
            if !only_dots && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Result<Endpoint, ForgeError> {
        ForgeClient::new(ForgeApis::default()).endpoint(&url.parse().unwrap())
    }

    #[test]
    fn references_map_to_their_forge_api() {
        assert_eq!(
            endpoint("github:Thymis-io/thymis/v0.9").unwrap(),
            Endpoint::GitHub {
                api: "https://api.github.com".into(),
                owner: "Thymis-io".into(),
                repo: "thymis".into()
            }
        );
        assert_eq!(
            endpoint("git+ssh://git@github.com/acme/private.git").unwrap(),
            Endpoint::GitHub {
                api: "https://api.github.com".into(),
                owner: "acme".into(),
                repo: "private".into()
            }
        );
        assert_eq!(
            endpoint("gitlab:veloren%2Fdev/veloren").unwrap(),
            Endpoint::GitLab {
                api: "https://gitlab.com/api/v4".into(),
                project: "veloren/dev/veloren".into()
            }
        );
        assert_eq!(
            endpoint("gitlab:acme/mods?host=git.example.com").unwrap(),
            Endpoint::GitLab {
                api: "https://git.example.com/api/v4".into(),
                project: "acme/mods".into()
            }
        );
        assert_eq!(
            endpoint("git+https://git.example.com/acme/mods.git"),
            Err(ForgeError::Unsupported)
        );
        assert_eq!(endpoint("nixpkgs"), Err(ForgeError::Unsupported));
        assert_eq!(endpoint("path:/srv/mods"), Err(ForgeError::Unsupported));
    }

    #[test]
    fn hosts_and_names_cannot_change_the_api_url() {
        assert!(matches!(
            endpoint("github:a/b?host=evil.example%2Fx%3F"),
            Err(ForgeError::Invalid(_)) | Err(ForgeError::Unsupported)
        ));
        assert_eq!(encode("feature/x y"), "feature%2Fx%20y");
        assert_eq!(encode("../.."), "..%2F..");
        assert_eq!(encode(".."), "%2E%2E");
        assert_eq!(
            host_of("https://api.github.com/repos/a/b"),
            "api.github.com"
        );
    }
}
