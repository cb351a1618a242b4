//! Authentication over HTTP: the login/logout routes, the session cookies, bearer API tokens,
//! the [`Caller`] extractor that every `/api` route takes, the Origin check and the limit on
//! failed logins.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use thymis::auth::{ApiTokenCreated, User};
use thymis::repository::Author;
use thymis::store::ApiTokenRecord;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::{blocking, ApiError};

const SESSION_ID: &str = "session-id";
const SESSION_TOKEN: &str = "session-token";

/// Routes under `/auth`.
pub fn auth_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login_basic))
        .routes(routes!(redirect_success))
        .routes(routes!(logout))
        .routes(routes!(logged_in))
        .routes(routes!(auth_methods))
        // Anyone may post a login form, so it must stay small.
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024))
}

/// Routes under `/api` that manage API tokens.
pub fn token_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// The authenticated caller of a request: a browser session or an API token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who it is.
    pub user: User,
    credential: Credential,
}

/// What the caller proved itself with, to check again later (long-lived WebSockets).
#[derive(Clone)]
enum Credential {
    Session { id: String, token: String },
    Token(String),
}

/// Never prints the secrets, so a logged `Caller` cannot leak them.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Session { id, .. } => write!(f, "Session({id}, <token>)"),
            Credential::Token(_) => f.write_str("Token(<token>)"),
        }
    }
}

impl Caller {
    /// Whether the session or token this caller used is still valid (not logged out, expired
    /// or revoked).
    pub async fn still_valid(&self, app: &AppState) -> bool {
        let auth = app.auth.clone();
        let credential = self.credential.clone();
        let check = blocking(move || {
            Ok(match credential {
                Credential::Session { id, token } => {
                    auth.session_user(&id, &token).map(|u| u.is_some())
                }
                Credential::Token(token) => auth.token_is_active(&token),
            })
        })
        .await;
        matches!(check, Ok(Ok(true)))
    }

    /// The commit author for this caller (upstream: given + family name, else the username).
    pub fn author(&self) -> Author {
        let user = &self.user;
        let full_name = [user.given_name.as_deref(), user.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Author {
            name: if full_name.trim().is_empty() {
                user.username.clone()
            } else {
                full_name
            },
            email: user
                .email
                .clone()
                .unwrap_or_else(|| format!("{}@thymis.local", user.username)),
        }
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let auth = app.auth.clone();
        if let Some(token) = bearer_token(&parts.headers) {
            let credential = Credential::Token(token.clone());
            let user =
                blocking(move || auth.token_user(&token).map_err(ApiError::internal)).await?;
            return user
                .map(|user| Caller { user, credential })
                .ok_or_else(ApiError::unauthorized);
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let (Some(id), Some(token)) = (jar.get(SESSION_ID), jar.get(SESSION_TOKEN)) else {
            return Err(ApiError::unauthorized());
        };
        let (id, token) = (id.value().to_owned(), token.value().to_owned());
        let credential = Credential::Session {
            id: id.clone(),
            token: token.clone(),
        };
        let user =
            blocking(move || auth.session_user(&id, &token).map_err(ApiError::internal)).await?;
        user.map(|user| Caller { user, credential })
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Refuses state-changing requests and WebSocket upgrades whose `Origin` is another site.
/// Requests without `Origin` (scripts, curl) pass: browsers always send it on such requests.
pub async fn check_origin(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let is_upgrade = request.headers().contains_key(header::UPGRADE);
    if changes_state || is_upgrade {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let allowed = origin
                .to_str()
                .is_ok_and(|origin| is_same_origin(origin, host, &app.settings.base_url));
            if !allowed {
                return ApiError::forbidden("cross-origin request refused").into_response();
            }
        }
    }
    next.run(request).await
}

/// The origin (scheme://host[:port]) of a URL.
fn origin_of(url: &str) -> &str {
    let rest_start = url.find("://").map_or(0, |i| i + 3);
    match url[rest_start..].find('/') {
        Some(slash) => &url[..rest_start + slash],
        None => url,
    }
}

fn is_same_origin(origin: &str, host: Option<&str>, base_url: &str) -> bool {
    if origin.eq_ignore_ascii_case(origin_of(base_url)) {
        return true;
    }
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    host.is_some_and(|host| origin_host.eq_ignore_ascii_case(host))
}

/// Counts login attempts per client address until one succeeds; after
/// [`LoginLimiter::MAX_FAILURES`] within [`LoginLimiter::WINDOW`] further attempts are refused
/// with 429 until the window has passed.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    const MAX_FAILURES: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(60);
    /// Entry count at which expired entries are swept, and the most that are kept.
    const SWEEP_AT: usize = 10_000;

    /// Counts an attempt before the password is checked, so that concurrent attempts cannot
    /// slip past the limit; a successful login forgets the count. Returns how long to wait when
    /// the limit is reached.
    fn begin_attempt(&self, ip: IpAddr) -> Result<(), Duration> {
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        if failures.len() >= Self::SWEEP_AT {
            failures.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
            if failures.len() >= Self::SWEEP_AT {
                // Under a flood from very many addresses, refuse rather than grow without bound.
                return Err(Self::WINDOW);
            }
        }
        let entry = failures
            .entry(client_key(ip))
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= Self::WINDOW {
            *entry = (0, Instant::now());
        }
        if entry.0 >= Self::MAX_FAILURES {
            return Err(Self::WINDOW.saturating_sub(entry.1.elapsed()));
        }
        entry.0 += 1;
        Ok(())
    }

    fn record_success(&self, ip: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&client_key(ip));
        }
    }
}

/// The address a client is counted under: IPv6 clients by their /64 network, since one host
/// can use many addresses of it.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(network.into())
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The login form.
#[derive(Debug, Deserialize, ToSchema)]
struct LoginForm {
    username: String,
    password: String,
    /// Where to go after logging in (a path on this site).
    redirect: Option<String>,
}

/// The page to return to: the form's `redirect` when it is a path, or upstream's protocol —
/// `redirect` is a key and the `login-redirect` cookie holds `<key>-<path>`.
fn redirect_target<'a>(redirect: Option<&'a str>, cookie: Option<&'a str>) -> Option<&'a str> {
    let redirect = redirect?;
    if redirect.starts_with('/') {
        return Some(redirect);
    }
    let (key, path) = cookie?.split_once('-')?;
    (!redirect.is_empty() && key == redirect).then_some(path)
}

/// A path on this site to return to after login; anything else (other sites, `//host`, and
/// anything with spaces or control characters, which browsers strip into `//host`) is ignored.
fn safe_redirect(target: Option<&str>) -> &str {
    match target {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            path
        }
        _ => "/overview",
    }
}

/// Logs in with username and password. Answers 303 to the page asked for (or `/overview`) with
/// the session cookies, or 303 to `/login?authError=credentials`; 429 after too many failures.
#[utoipa::path(post, path = "/auth/login/basic", tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Logged in, or back to the login page"),
        (status = 401, description = "Password login is disabled"),
        (status = 429, description = "Too many failed logins")))]
async fn login_basic(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    if !app.settings.auth_basic {
        return Err(ApiError::unauthorized().with_detail("password login is disabled".into()));
    }
    let ip = peer.ip();
    if let Err(wait) = app.login_limiter.begin_attempt(ip) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins; try again later",
        )
        .into_response();
        if let Ok(value) = wait.as_secs().max(1).to_string().parse() {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let auth = app.auth.clone();
    let (username, password) = (form.username, form.password);
    let session = blocking(move || {
        auth.login_basic(&username, &password)
            .map_err(ApiError::internal)
    })
    .await?;
    let Some(session) = session else {
        tracing::info!(%ip, "failed login");
        // The login page keeps where to go (upstream's key, or a path) across a failed attempt.
        let redirect = form.redirect.filter(|redirect| {
            let is_key =
                !redirect.is_empty() && redirect.bytes().all(|b| b.is_ascii_alphanumeric());
            is_key || safe_redirect(Some(redirect)) == redirect
        });
        let target = match redirect {
            Some(redirect) => format!(
                "/login?authError=credentials&redirect={}",
                percent_encode(&redirect)
            ),
            None => "/login?authError=credentials".to_owned(),
        };
        return Ok(Redirect::to(&target).into_response());
    };
    app.login_limiter.record_success(ip);
    let max_age = (session.expires_at - chrono::Utc::now())
        .num_seconds()
        .max(0);
    let secure = app.settings.is_https();
    let cookie = |name: &'static str, value: String| {
        Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure)
            .path("/")
            .max_age(time_seconds(max_age))
            .build()
    };
    let jar = jar
        .add(cookie(SESSION_ID, session.id.to_string()))
        .add(cookie(SESSION_TOKEN, session.token));
    let requested = redirect_target(
        form.redirect.as_deref(),
        jar.get("login-redirect").map(|c| c.value()),
    );
    let target = safe_redirect(requested).to_owned();
    Ok((jar, Redirect::to(&target)).into_response())
}

/// `value` with everything but unreserved characters percent-encoded, for a query string.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn time_seconds(seconds: i64) -> time::Duration {
    time::Duration::seconds(seconds)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct RedirectQuery {
    /// The key of the page to return to (upstream's login-redirect protocol).
    redirect: Option<String>,
}

/// Finishes a login (upstream's second step): 303 to the page stored under the key in the
/// `login-redirect` cookie, else `/overview`.
#[utoipa::path(get, path = "/auth/redirect_success", tag = "auth", params(RedirectQuery),
    responses((status = 303, description = "To the page asked for"), (status = 401, description = "Not logged in")))]
async fn redirect_success(
    _caller: Caller,
    jar: CookieJar,
    axum::extract::Query(query): axum::extract::Query<RedirectQuery>,
) -> Redirect {
    let requested = redirect_target(
        query.redirect.as_deref(),
        jar.get("login-redirect").map(|c| c.value()),
    );
    Redirect::to(safe_redirect(requested))
}

/// Ends the session: deletes it and its cookies, then 303 to `/`.
#[utoipa::path(get, path = "/auth/logout", tag = "auth",
    responses((status = 303, description = "Logged out")))]
async fn logout(State(app): State<AppState>, jar: CookieJar) -> Result<Response, ApiError> {
    if let (Some(id), Some(token)) = (jar.get(SESSION_ID), jar.get(SESSION_TOKEN)) {
        let (id, token) = (id.value().to_owned(), token.value().to_owned());
        let auth = app.auth.clone();
        blocking(move || auth.logout(&id, &token).map_err(ApiError::internal)).await?;
    }
    let removal = |name: &'static str| Cookie::build((name, "")).path("/").build();
    let jar = jar
        .remove(removal(SESSION_ID))
        .remove(removal(SESSION_TOKEN));
    Ok((jar, Redirect::to("/")).into_response())
}

/// The logged-in user.
#[derive(Debug, Serialize, ToSchema)]
struct UserInfo {
    username: String,
    given_name: Option<String>,
    family_name: Option<String>,
    email: Option<String>,
}

/// Who is logged in; 401 without a valid session or token.
#[utoipa::path(get, path = "/auth/logged_in", tag = "auth",
    responses((status = 200, body = UserInfo), (status = 401, description = "Not logged in")))]
async fn logged_in(caller: Caller) -> Json<UserInfo> {
    let user = caller.user;
    Json(UserInfo {
        username: user.username,
        given_name: user.given_name,
        family_name: user.family_name,
        email: user.email,
    })
}

/// Which login methods are enabled.
#[derive(Debug, Serialize, ToSchema)]
struct AuthMethods {
    basic: bool,
    oauth2: bool,
}

/// The enabled login methods. (The path really is `/auth/auth/methods`, as upstream.)
#[utoipa::path(get, path = "/auth/auth/methods", tag = "auth",
    responses((status = 200, body = AuthMethods)))]
async fn auth_methods(State(app): State<AppState>) -> Json<AuthMethods> {
    Json(AuthMethods {
        basic: app.settings.auth_basic,
        oauth2: false,
    })
}

/// A new API token's name.
#[derive(Debug, Deserialize, ToSchema)]
struct NewToken {
    /// What the token is for, e.g. `ci-deploy`.
    name: String,
}

/// API tokens (never their values).
#[utoipa::path(get, path = "/api/tokens", tag = "auth",
    responses((status = 200, body = [Object])))]
async fn list_tokens(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<ApiTokenRecord>>, ApiError> {
    let auth = app.auth.clone();
    Ok(Json(
        blocking(move || auth.list_api_tokens().map_err(ApiError::internal)).await?,
    ))
}

/// Creates an API token for scripts (`Authorization: Bearer <token>`). The token is shown only
/// in this answer.
#[utoipa::path(post, path = "/api/tokens", tag = "auth", request_body = NewToken,
    responses((status = 200, body = Object), (status = 400, description = "Bad name"),
        (status = 403, description = "Called with an API token")))]
async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<NewToken>,
) -> Result<Json<ApiTokenCreated>, ApiError> {
    // A token must not outlive its own revocation by minting others: only people (sessions)
    // create tokens.
    if matches!(caller.credential, Credential::Token(_)) {
        return Err(ApiError::forbidden(
            "API tokens are created from a logged-in session, not with another token",
        ));
    }
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "a token name must be 1–100 printable characters",
        ));
    }
    let auth = app.auth.clone();
    let user = caller.user.clone();
    let created = blocking(move || {
        auth.create_api_token(&name, &user)
            .map_err(ApiError::internal)
    })
    .await?;
    app.audit(&caller, "token.create", &created.record.id.to_string());
    app.events.publish(thymis::events::Event::ApiTokensChanged);
    Ok(Json(created))
}

/// Revokes an API token.
#[utoipa::path(delete, path = "/api/tokens/{token_id}", tag = "auth",
    params(("token_id" = uuid::Uuid, Path, description = "The token's id")),
    responses((status = 200, description = "Revoked"), (status = 404, description = "Unknown token")))]
async fn revoke_token(
    State(app): State<AppState>,
    caller: Caller,
    Path(token_id): Path<uuid::Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let auth = app.auth.clone();
    let revoked =
        blocking(move || auth.revoke_api_token(token_id).map_err(ApiError::internal)).await?;
    if !revoked {
        return Err(ApiError::not_found("no such token"));
    }
    app.audit(&caller, "token.revoke", &token_id.to_string());
    app.events.publish(thymis::events::Event::ApiTokensChanged);
    Ok(Json(serde_json::json!({"message": "token revoked"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(is_same_origin(
            "http://127.0.0.1:8000",
            Some("127.0.0.1:8000"),
            "http://x"
        ));
        assert!(is_same_origin(
            "https://thymis.example.com",
            None,
            "https://thymis.example.com/"
        ));
        assert!(!is_same_origin(
            "https://evil.example",
            Some("127.0.0.1:8000"),
            "http://127.0.0.1:8000"
        ));
        assert!(!is_same_origin(
            "null",
            Some("127.0.0.1:8000"),
            "http://127.0.0.1:8000"
        ));
    }

    #[test]
    fn redirects_stay_on_this_site() {
        assert_eq!(safe_redirect(Some("/configuration/x")), "/configuration/x");
        assert_eq!(safe_redirect(Some("//evil.example")), "/overview");
        assert_eq!(safe_redirect(Some("https://evil.example")), "/overview");
        assert_eq!(safe_redirect(Some("/\\evil.example")), "/overview");
        assert_eq!(safe_redirect(None), "/overview");
        assert_eq!(safe_redirect(Some("/\t/evil.example")), "/overview");
        assert_eq!(safe_redirect(Some("/a b")), "/overview");
    }

    #[test]
    fn upstream_redirect_keys_are_looked_up_in_the_cookie() {
        assert_eq!(redirect_target(Some("/x"), None), Some("/x"));
        assert_eq!(
            redirect_target(Some("k1"), Some("k1-/configuration?a=b")),
            Some("/configuration?a=b")
        );
        assert_eq!(redirect_target(Some("k2"), Some("k1-/configuration")), None);
        assert_eq!(redirect_target(Some(""), Some("-/x")), None);
        assert_eq!(redirect_target(None, Some("k1-/x")), None);
    }
}
