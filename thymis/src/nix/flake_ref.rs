//! Nix flake references: parsing, canonical printing and access-token scoping.
//!
//! This file owns the interpretation of the URL-like flake reference strings
//! that a Thymis project stores for its external repositories
//! (`state.json` → `repositories.<name>.url`). The controller needs to know
//! what kind of reference a URL is, which host an access token for it belongs
//! to (for `NIX_CONFIG="access-tokens = …"`), and which owner/repo/ref it names
//! (for branch/tag listings). Nix itself remains the authority on fetching;
//! this parser only has to understand the forms users actually write and
//! reject obviously broken ones with a message that says what is wrong.
//!
//! Supported forms:
//!
//! * `github:`, `gitlab:`, `sourcehut:` — `owner/repo[/ref-or-rev][?…]`
//! * git — `git+https://`, `git+http://`, `git+ssh://`, `git+git://`,
//!   `git://`, `git+file://` (and `git+file:/abs`)
//! * path — `path:<path>` and plain paths starting with `/` or `.`
//! * tarball / file — plain `http(s)://` or `file://` URLs ending in an archive
//!   extension, `tarball+<url>`, `file+<url>`
//! * indirect — `flake:<id>`, `<id>`, `<id>/<ref-or-rev>`, `<id>/<ref>/<rev>`
//!
//! Query values are kept verbatim (no percent-decoding) except for the GitLab
//! owner, where `%2F` is how subgroups are written and must be decoded to be
//! useful. Mercurial references are recognised only to be rejected.

use std::fmt;
use std::str::FromStr;

/// Default host of `github:` references.
const GITHUB_HOST: &str = "github.com";
/// Default host of `gitlab:` references.
const GITLAB_HOST: &str = "gitlab.com";
/// Default host of `sourcehut:` references.
const SOURCEHUT_HOST: &str = "git.sr.ht";

/// Archive extensions for which Nix treats a plain URL as a tarball flake.
const ARCHIVE_EXTENSIONS: &[&str] = &[
    ".zip", ".tar", ".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst",
];

/// A parsed Nix flake reference.
///
/// Obtain one with [`str::parse`]; print it back with [`FlakeRef::to_url`] or
/// `Display`. For every value produced by parsing, parsing its `to_url()`
/// yields the same value again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FlakeRef {
    /// `github:owner/repo[/ref-or-rev]`.
    GitHub(GitForgeRef),
    /// `gitlab:owner/repo[/ref-or-rev]`; the owner is percent-decoded.
    GitLab(GitForgeRef),
    /// `sourcehut:~owner/repo[/ref-or-rev]`.
    SourceHut(GitForgeRef),
    /// A git repository reached through a transport URL (`git+https://…`).
    Git(GitRef),
    /// A local directory (`path:…`, `/abs`, `./rel`).
    Path(PathRef),
    /// An archive or plain file fetched over http(s) or from a `file://` URL.
    Tarball(TarballRef),
    /// A flake registry lookup (`nixpkgs`, `flake:nixpkgs/nixos-24.05`).
    Indirect(IndirectRef),
}

/// A reference to a repository on a git forge with a tarball API
/// (GitHub, GitLab, SourceHut).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GitForgeRef {
    /// Repository owner; for GitLab the percent-decoded (sub)group path,
    /// e.g. `veloren/dev`; for SourceHut including the leading `~`.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Branch or tag name, if given. Never set together with `rev`
    /// (Nix rejects forge references naming both).
    pub ref_: Option<String>,
    /// 40-hex commit hash, if given.
    pub rev: Option<String>,
    /// `?host=` override for self-hosted instances.
    pub host: Option<String>,
    /// Remaining query parameters (`dir`, `narHash`, …) in input order,
    /// values verbatim.
    pub params: Vec<(String, String)>,
}

/// A reference to a git repository via a transport URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GitRef {
    /// The transport URL without the `git+` prefix and without the query,
    /// e.g. `https://git.example.com/acme/mods.git`,
    /// `ssh://git@github.com/acme/private.git` (the user part is kept),
    /// `file:///srv/repo`, `git://github.com/edolstra/dwarffs`.
    pub url: String,
    /// Host (with `:port` if given) without the `user@` part; `None` for
    /// `file` URLs.
    pub host: Option<String>,
    /// Everything between host and the last path segment, joined with `/`
    /// (GitLab subgroups give `group/subgroup`); `None` for `file` URLs and
    /// single-segment paths.
    pub owner: Option<String>,
    /// The last path segment without a `.git` suffix; `None` for `file` URLs.
    pub repo: Option<String>,
    /// `?ref=`: branch or tag name; may contain slashes.
    pub ref_: Option<String>,
    /// `?rev=`: 40-hex commit hash.
    pub rev: Option<String>,
    /// Remaining query parameters (`dir`, `submodules`, `shallow`, …) in
    /// input order, values verbatim.
    pub params: Vec<(String, String)>,
}

/// A reference to a local directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathRef {
    /// The path as written (absolute, or relative starting with `.`, or any
    /// relative path after an explicit `path:`).
    pub path: String,
    /// Query parameters (`dir`, `narHash`, `lastModified`, …) in input order.
    pub params: Vec<(String, String)>,
}

/// A reference to a downloadable archive or file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TarballRef {
    /// The download URL without a `tarball+`/`file+` prefix, query included
    /// verbatim (the server may need it).
    pub url: String,
    /// `true` for tarball flakes (unpacked), `false` for `file+…` references
    /// (fetched as a single file).
    pub unpack: bool,
}

/// A flake registry lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndirectRef {
    /// The registry id, e.g. `nixpkgs`.
    pub id: String,
    /// Branch or tag overriding the registry entry; may contain slashes.
    pub ref_: Option<String>,
    /// 40-hex commit hash overriding the registry entry.
    pub rev: Option<String>,
    /// Remaining query parameters (e.g. `dir`) in input order.
    pub params: Vec<(String, String)>,
}

/// Why a string is not an acceptable flake reference.
///
/// Every variant carrying `input` holds the offending reference with any
/// URL password or token-like user part replaced by `***`, so errors can be
/// logged without leaking credentials.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlakeRefError {
    /// The input is empty.
    #[error("empty flake reference")]
    Empty,
    /// Whitespace or control characters, which no flake reference contains.
    #[error("flake reference contains whitespace or control characters: {input:?}")]
    InvalidCharacter {
        /// The offending reference.
        input: String,
    },
    /// A `#fragment`, i.e. an installable rather than a flake reference.
    #[error("flake reference must not contain a fragment (`#…`; that selects an output, not a repository): {input}")]
    Fragment {
        /// The offending reference.
        input: String,
    },
    /// The text before the first `:` is not a URL scheme.
    #[error("flake reference is neither a path, a registry id nor `scheme:…`: {input}")]
    NotAScheme {
        /// The offending reference.
        input: String,
    },
    /// A syntactically valid scheme this parser does not know.
    #[error("unknown flake reference scheme `{scheme}` (expected github:, gitlab:, sourcehut:, git+https:, git+ssh:, git+http:, git+file:, git:, path:, tarball+…, file+…, http(s): archive URLs or flake:): {input}")]
    UnknownScheme {
        /// The scheme as written.
        scheme: String,
        /// The offending reference.
        input: String,
    },
    /// A known reference type Thymis does not support.
    #[error("{what} flake references are not supported: {input}")]
    Unsupported {
        /// Which type, e.g. `mercurial`.
        what: &'static str,
        /// The offending reference.
        input: String,
    },
    /// A forge reference without both owner and repo.
    #[error("{kind} flake reference needs owner/repo: {input}")]
    MissingOwnerRepo {
        /// `github`, `gitlab` or `sourcehut`.
        kind: &'static str,
        /// The offending reference.
        input: String,
    },
    /// A forge reference with a trailing `/` but no ref or rev after it.
    #[error("{kind} flake reference has an empty ref/rev after owner/repo: {input}")]
    EmptyRefOrRev {
        /// `github`, `gitlab` or `sourcehut`.
        kind: &'static str,
        /// The offending reference.
        input: String,
    },
    /// A forge reference naming more than one ref/rev.
    #[error("{kind} flake reference names more than one ref/rev (a path segment plus ?ref=/?rev=, or both ?ref= and ?rev=); give exactly one: {input}")]
    ConflictingRefRev {
        /// `github`, `gitlab` or `sourcehut`.
        kind: &'static str,
        /// The offending reference.
        input: String,
    },
    /// An indirect reference giving `ref` or `rev` both in the path and the query.
    #[error("`{attr}` is given both in the path and as ?{attr}=: {input}")]
    DuplicateAttribute {
        /// `ref` or `rev`.
        attr: &'static str,
        /// The offending reference.
        input: String,
    },
    /// A branch/tag name with characters or a shape git/Nix reject.
    #[error("invalid ref `{ref_}` (letters, digits and `_ . / @ + - %` only; no leading `-`, `.` or `/`, no `..` or `//`, no trailing `/` or `.`): {input}")]
    InvalidRef {
        /// The rejected ref.
        ref_: String,
        /// The offending reference.
        input: String,
    },
    /// A `?rev=` that is not a 40-hex commit hash.
    #[error("invalid rev `{rev}` (expected a 40-character hexadecimal commit hash): {input}")]
    InvalidRev {
        /// The rejected rev.
        rev: String,
        /// The offending reference.
        input: String,
    },
    /// A query segment without `=` or with an empty key.
    #[error("malformed query parameter `{param}` (expected key=value): {input}")]
    MalformedQuery {
        /// The query segment as written.
        param: String,
        /// The offending reference.
        input: String,
    },
    /// A meaningful query parameter (`ref`, `rev`, `host`) given twice.
    #[error("query parameter `{param}` is given more than once: {input}")]
    DuplicateParam {
        /// The parameter name.
        param: String,
        /// The offending reference.
        input: String,
    },
    /// A meaningful query parameter (`ref`, `rev`, `host`) with an empty value.
    #[error("query parameter `{param}` has an empty value: {input}")]
    EmptyParam {
        /// The parameter name.
        param: String,
        /// The offending reference.
        input: String,
    },
    /// The GitLab owner does not decode to UTF-8.
    #[error("gitlab owner is not valid UTF-8 after percent-decoding: {input}")]
    InvalidOwnerEncoding {
        /// The offending reference.
        input: String,
    },
    /// A malformed git transport URL.
    #[error("invalid git flake reference ({reason}): {input}")]
    InvalidGitUrl {
        /// What is wrong.
        reason: &'static str,
        /// The offending reference.
        input: String,
    },
    /// A malformed path reference.
    #[error("invalid path flake reference ({reason}): {input}")]
    InvalidPath {
        /// What is wrong.
        reason: &'static str,
        /// The offending reference.
        input: String,
    },
    /// A malformed tarball/file URL.
    #[error("invalid tarball/file flake reference ({reason}): {input}")]
    InvalidTarballUrl {
        /// What is wrong.
        reason: &'static str,
        /// The offending reference.
        input: String,
    },
    /// A plain http(s)/file URL that does not end in an archive extension.
    #[error("plain URL is not an archive (.tar.gz, .zip, …); write git+https://… for a git repository, or tarball+…/file+… to fetch it as is: {input}")]
    NotAnArchive {
        /// The offending reference.
        input: String,
    },
    /// An indirect reference whose id is not a valid registry id.
    #[error("invalid flake registry id `{id}` (must start with a letter, then letters, digits, `_` or `-`): {input}")]
    InvalidFlakeId {
        /// The rejected id.
        id: String,
        /// The offending reference.
        input: String,
    },
    /// An indirect reference with an empty `/…/` segment.
    #[error("indirect flake reference has an empty path segment: {input}")]
    EmptySegment {
        /// The offending reference.
        input: String,
    },
}

impl FromStr for FlakeRef {
    type Err = FlakeRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Parser::new(s).parse()
    }
}

impl fmt::Display for FlakeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_url())
    }
}

impl FlakeRef {
    /// Upstream's JSON form of a parsed reference (`/api/external-repositories/flake-ref/…`):
    /// `{type, …}` with the fields of each kind.
    pub fn to_wire(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            FlakeRef::GitHub(r) | FlakeRef::GitLab(r) | FlakeRef::SourceHut(r) => {
                let kind = match self {
                    FlakeRef::GitHub(_) => "github",
                    FlakeRef::GitLab(_) => "gitlab",
                    _ => "sourcehut",
                };
                json!({"type": kind, "host": r.host, "owner": r.owner, "repo": r.repo, "ref": r.ref_, "rev": r.rev})
            }
            FlakeRef::Git(r) => {
                let protocol = r.url.split_once("://").map_or("file", |(scheme, _)| scheme);
                json!({"type": "git", "protocol": protocol, "url": r.url, "host": r.host,
                       "owner": r.owner, "repo": r.repo, "ref": r.ref_, "rev": r.rev})
            }
            FlakeRef::Path(r) => json!({"type": "path", "path": r.path}),
            FlakeRef::Tarball(r) => {
                json!({"type": if r.unpack { "tarball" } else { "file" }, "url": r.url})
            }
            FlakeRef::Indirect(r) => {
                json!({"type": "indirect", "flake_id": r.id, "ref": r.ref_, "rev": r.rev})
            }
        }
    }
    /// The host an access token for this reference is scoped to, if any:
    /// `github.com` for `github:`, `gitlab.com` for `gitlab:`, `git.sr.ht`
    /// for `sourcehut:` (each replaced by `?host=` when given), and the URL
    /// host without `user@` (port kept) for non-`file` git URLs.
    ///
    /// Path, tarball and indirect references yield `None`: Nix does not look
    /// up access tokens for them, so there is nothing to scope.
    pub fn token_host(&self) -> Option<String> {
        // `?host=` is honoured for every forge because that is the key Nix
        // itself uses when looking up `access-tokens` (GitHub Enterprise,
        // self-hosted GitLab).
        match self {
            FlakeRef::GitHub(f) => Some(f.host.as_deref().unwrap_or(GITHUB_HOST).to_string()),
            FlakeRef::GitLab(f) => Some(f.host.as_deref().unwrap_or(GITLAB_HOST).to_string()),
            FlakeRef::SourceHut(f) => Some(f.host.as_deref().unwrap_or(SOURCEHUT_HOST).to_string()),
            FlakeRef::Git(g) => g.host.clone(),
            FlakeRef::Path(_) | FlakeRef::Tarball(_) | FlakeRef::Indirect(_) => None,
        }
    }

    /// Canonical text form.
    ///
    /// For values produced by parsing, `to_url().parse()` gives the same
    /// value back. Refs go into the path when that is unambiguous (no `/`,
    /// not 40 hex characters) and into `?ref=` otherwise; indirect
    /// references are printed without `flake:`; plain paths get `path:`;
    /// tarballs keep the plain URL when its extension identifies it.
    pub fn to_url(&self) -> String {
        match self {
            FlakeRef::GitHub(f) => forge_url("github", f, false),
            FlakeRef::GitLab(f) => forge_url("gitlab", f, true),
            FlakeRef::SourceHut(f) => forge_url("sourcehut", f, false),
            FlakeRef::Git(g) => {
                // Nix's own canonical form writes the git transport as
                // `git://`, every other transport with the `git+` prefix.
                let mut s = if g.url.starts_with("git://") {
                    g.url.clone()
                } else {
                    format!("git+{}", g.url)
                };
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(r) = &g.ref_ {
                    query.push(("ref", r));
                }
                if let Some(r) = &g.rev {
                    query.push(("rev", r));
                }
                push_params(&mut query, &g.params);
                append_query(&mut s, &query);
                s
            }
            FlakeRef::Path(p) => {
                let mut s = format!("path:{}", p.path);
                let mut query = Vec::new();
                push_params(&mut query, &p.params);
                append_query(&mut s, &query);
                s
            }
            FlakeRef::Tarball(t) => {
                if t.unpack && is_plain_archive_url(&t.url) {
                    t.url.clone()
                } else if t.unpack {
                    format!("tarball+{}", t.url)
                } else {
                    format!("file+{}", t.url)
                }
            }
            FlakeRef::Indirect(i) => {
                let mut s = i.id.clone();
                let mut query: Vec<(&str, &str)> = Vec::new();
                if i.ref_.as_deref().is_none_or(ref_fits_path) {
                    // `id/ref/rev` parses back unambiguously because the
                    // ref is neither 40-hex nor contains `/`.
                    for part in [&i.ref_, &i.rev].into_iter().flatten() {
                        s.push('/');
                        s.push_str(part);
                    }
                } else {
                    if let Some(r) = &i.ref_ {
                        query.push(("ref", r));
                    }
                    if let Some(r) = &i.rev {
                        query.push(("rev", r));
                    }
                }
                push_params(&mut query, &i.params);
                append_query(&mut s, &query);
                s
            }
        }
    }
}

/// Prints a forge reference; `encode_owner` re-encodes a decoded GitLab owner.
fn forge_url(scheme: &str, f: &GitForgeRef, encode_owner: bool) -> String {
    let owner = if encode_owner {
        percent_encode(&f.owner)
    } else {
        f.owner.clone()
    };
    let mut s = format!("{scheme}:{owner}/{}", f.repo);
    let mut query: Vec<(&str, &str)> = Vec::new();
    match (&f.ref_, &f.rev) {
        (Some(r), None) if ref_fits_path(r) => {
            s.push('/');
            s.push_str(r);
        }
        (None, Some(r)) if is_rev(r) => {
            s.push('/');
            s.push_str(r);
        }
        (ref_, rev) => {
            if let Some(r) = ref_ {
                query.push(("ref", r));
            }
            if let Some(r) = rev {
                query.push(("rev", r));
            }
        }
    }
    if let Some(h) = &f.host {
        query.push(("host", h));
    }
    push_params(&mut query, &f.params);
    append_query(&mut s, &query);
    s
}

fn push_params<'a>(query: &mut Vec<(&'a str, &'a str)>, params: &'a [(String, String)]) {
    query.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

fn append_query(s: &mut String, query: &[(&str, &str)]) {
    for (i, (k, v)) in query.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
}

/// Which forge a `github:`-like reference is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forge {
    GitHub,
    GitLab,
    SourceHut,
}

impl Forge {
    fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::SourceHut => "sourcehut",
        }
    }
}

/// One parse: holds the raw input so every error can quote it (redacted).
struct Parser<'a> {
    input: &'a str,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser { input }
    }

    /// The input as shown in error messages, credentials masked.
    fn shown(&self) -> String {
        redact(self.input)
    }

    fn parse(&self) -> Result<FlakeRef, FlakeRefError> {
        let input = self.input;
        if input.is_empty() {
            return Err(FlakeRefError::Empty);
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FlakeRefError::InvalidCharacter {
                input: self.shown(),
            });
        }
        if input.contains('#') {
            return Err(FlakeRefError::Fragment {
                input: self.shown(),
            });
        }
        // `?` never occurs before the query in any supported form, so the
        // first one splits body and query for every reference type. Scheme
        // detection looks only at the body, so a `:` inside a query value
        // of `nixpkgs?x=a:b` does not turn a registry id into a scheme.
        let (body, query) = match input.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (input, None),
        };
        // Nix requires relative paths to start with `.` precisely so they
        // cannot be mistaken for registry ids.
        if body.starts_with('/') || body.starts_with('.') {
            return self.parse_path(body, query);
        }
        let Some((scheme, rest)) = body.split_once(':') else {
            return self.parse_indirect(body, query);
        };
        if !is_scheme(scheme) {
            return Err(FlakeRefError::NotAScheme {
                input: self.shown(),
            });
        }
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "flake" => self.parse_indirect(rest, query),
            "github" => self
                .parse_forge(Forge::GitHub, rest, query)
                .map(FlakeRef::GitHub),
            "gitlab" => self
                .parse_forge(Forge::GitLab, rest, query)
                .map(FlakeRef::GitLab),
            "sourcehut" => self
                .parse_forge(Forge::SourceHut, rest, query)
                .map(FlakeRef::SourceHut),
            "git" => self.parse_git("git", rest, query),
            "path" => self.parse_path(rest, query),
            "http" | "https" | "file" => self.parse_archive(&scheme, rest, query, true, false),
            s => {
                if let Some(transport) = s.strip_prefix("git+") {
                    if matches!(transport, "https" | "http" | "ssh" | "git" | "file") {
                        return self.parse_git(transport, rest, query);
                    }
                } else if let Some(inner) = s.strip_prefix("tarball+") {
                    if matches!(inner, "https" | "http" | "file") {
                        return self.parse_archive(inner, rest, query, true, true);
                    }
                } else if let Some(inner) = s.strip_prefix("file+") {
                    if matches!(inner, "https" | "http" | "file") {
                        return self.parse_archive(inner, rest, query, false, true);
                    }
                } else if s == "hg" || s.starts_with("hg+") {
                    return Err(FlakeRefError::Unsupported {
                        what: "mercurial",
                        input: self.shown(),
                    });
                }
                Err(FlakeRefError::UnknownScheme {
                    scheme: s.to_string(),
                    input: self.shown(),
                })
            }
        }
    }

    /// `owner/repo[/ref-or-rev]` with `?ref=&rev=&host=`.
    fn parse_forge(
        &self,
        forge: Forge,
        rest: &str,
        query: Option<&str>,
    ) -> Result<GitForgeRef, FlakeRefError> {
        let kind = forge.name();
        // Only the first two slashes separate fields: whatever follows the
        // repo is one ref, so `feature/awesome` stays intact.
        let mut parts = rest.splitn(3, '/');
        let owner = parts.next().unwrap_or("");
        let repo = parts.next().unwrap_or("");
        let tail = parts.next();
        if owner.is_empty() || repo.is_empty() {
            return Err(FlakeRefError::MissingOwnerRepo {
                kind,
                input: self.shown(),
            });
        }
        let mut params = self.parse_query(query)?;
        let query_ref = self.take_param(&mut params, "ref")?;
        let query_rev = self.take_param(&mut params, "rev")?;
        let host = self.take_param(&mut params, "host")?;

        let (ref_, rev) = match tail {
            Some("") => {
                return Err(FlakeRefError::EmptyRefOrRev {
                    kind,
                    input: self.shown(),
                })
            }
            Some(_) if query_ref.is_some() || query_rev.is_some() => {
                return Err(FlakeRefError::ConflictingRefRev {
                    kind,
                    input: self.shown(),
                })
            }
            Some(t) if is_rev(t) => (None, Some(t.to_string())),
            Some(t) => (Some(t.to_string()), None),
            // Forges fetch archives by exactly one name; Nix rejects both.
            None if query_ref.is_some() && query_rev.is_some() => {
                return Err(FlakeRefError::ConflictingRefRev {
                    kind,
                    input: self.shown(),
                })
            }
            None => (query_ref, query_rev),
        };
        self.check_ref_rev(ref_.as_deref(), rev.as_deref())?;

        let owner = if forge == Forge::GitLab {
            percent_decode(owner).ok_or_else(|| FlakeRefError::InvalidOwnerEncoding {
                input: self.shown(),
            })?
        } else {
            owner.to_string()
        };
        Ok(GitForgeRef {
            owner,
            repo: repo.to_string(),
            ref_,
            rev,
            host,
            params,
        })
    }

    /// `<transport>:` followed by `rest`, e.g. `https` + `//host/o/r.git`.
    fn parse_git(
        &self,
        transport: &str,
        rest: &str,
        query: Option<&str>,
    ) -> Result<FlakeRef, FlakeRefError> {
        let err = |reason| FlakeRefError::InvalidGitUrl {
            reason,
            input: self.shown(),
        };
        let (url, host, owner, repo) = if transport == "file" {
            // Accept `file:///abs` and the authority-less `file:/abs`, and
            // normalise both to the former so they compare equal.
            let path = if let Some(p) = rest.strip_prefix("//") {
                p
            } else {
                rest
            };
            if !path.starts_with('/') {
                return Err(err(
                    "git+file needs an absolute path, e.g. git+file:///srv/repo",
                ));
            }
            (format!("file://{path}"), None, None, None)
        } else {
            let Some(after) = rest.strip_prefix("//") else {
                return Err(err("expected //host/path after the scheme"));
            };
            let (authority, path) = match after.find('/') {
                Some(i) => after.split_at(i),
                None => (after, ""),
            };
            let host = match authority.rsplit_once('@') {
                Some((_, h)) => h,
                None => authority,
            };
            self.check_host_port(host)?;
            let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let Some((last, parents)) = segments.split_last() else {
                return Err(err("missing repository path after the host"));
            };
            // `.git` is conventional on clone URLs but not part of the
            // repository's name as forges' APIs know it.
            let repo = match last.strip_suffix(".git") {
                Some(r) if !r.is_empty() => r,
                _ => last,
            };
            let owner = if parents.is_empty() {
                None
            } else {
                Some(parents.join("/"))
            };
            (
                format!("{transport}://{after}"),
                Some(host.to_string()),
                owner,
                Some(repo.to_string()),
            )
        };
        let mut params = self.parse_query(query)?;
        let ref_ = self.take_param(&mut params, "ref")?;
        let rev = self.take_param(&mut params, "rev")?;
        self.check_ref_rev(ref_.as_deref(), rev.as_deref())?;
        Ok(FlakeRef::Git(GitRef {
            url,
            host,
            owner,
            repo,
            ref_,
            rev,
            params,
        }))
    }

    /// Validates `host[:port]` / `[v6][:port]` of a git URL.
    fn check_host_port(&self, host: &str) -> Result<(), FlakeRefError> {
        let err = |reason| FlakeRefError::InvalidGitUrl {
            reason,
            input: self.shown(),
        };
        let port = if let Some(v6) = host.strip_prefix('[') {
            let Some((_, after)) = v6.split_once(']') else {
                return Err(err("unterminated IPv6 host"));
            };
            if after.is_empty() {
                None
            } else if let Some(p) = after.strip_prefix(':') {
                Some(p)
            } else {
                return Err(err("unexpected text after IPv6 host"));
            }
        } else {
            let (name, port) = match host.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (host, None),
            };
            if name.is_empty() {
                return Err(err("missing host"));
            }
            port
        };
        // A non-numeric "port" almost always means scp-style
        // `git@host:owner/repo`, which is not a URL; say so.
        if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(err(
                "port is not a number; scp-style host:path is not a URL, write ssh://user@host/owner/repo",
            ));
        }
        Ok(())
    }

    fn parse_path(&self, path: &str, query: Option<&str>) -> Result<FlakeRef, FlakeRefError> {
        if path.is_empty() {
            return Err(FlakeRefError::InvalidPath {
                reason: "empty path",
                input: self.shown(),
            });
        }
        let params = self.parse_query(query)?;
        Ok(FlakeRef::Path(PathRef {
            path: path.to_string(),
            params,
        }))
    }

    /// `scheme` is `http`, `https` or `file`; `explicit` when written with a
    /// `tarball+`/`file+` prefix, which skips the extension requirement.
    fn parse_archive(
        &self,
        scheme: &str,
        rest: &str,
        query: Option<&str>,
        unpack: bool,
        explicit: bool,
    ) -> Result<FlakeRef, FlakeRefError> {
        let err = |reason| FlakeRefError::InvalidTarballUrl {
            reason,
            input: self.shown(),
        };
        let Some(after) = rest.strip_prefix("//") else {
            return Err(err("expected //host/path after the scheme"));
        };
        if scheme == "file" {
            if !after.starts_with('/') {
                return Err(err(
                    "file URL needs an absolute path, e.g. file:///srv/x.tar.gz",
                ));
            }
        } else if after.split('/').next().unwrap_or("").is_empty() {
            return Err(err("missing host"));
        }
        let mut url = format!("{scheme}:{rest}");
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        if !explicit && !is_plain_archive_url(&url) {
            return Err(FlakeRefError::NotAnArchive {
                input: self.shown(),
            });
        }
        Ok(FlakeRef::Tarball(TarballRef { url, unpack }))
    }

    /// `id[/ref-or-rev[/rev]]`; `body` is without `flake:`.
    fn parse_indirect(&self, body: &str, query: Option<&str>) -> Result<FlakeRef, FlakeRefError> {
        let mut segments = body.split('/');
        let id = segments.next().unwrap_or("");
        if !is_flake_id(id) {
            return Err(FlakeRefError::InvalidFlakeId {
                id: id.to_string(),
                input: self.shown(),
            });
        }
        let rest: Vec<&str> = segments.collect();
        if rest.iter().any(|s| s.is_empty()) {
            return Err(FlakeRefError::EmptySegment {
                input: self.shown(),
            });
        }
        // A trailing 40-hex segment is the rev; everything between id and it
        // is the ref, which may itself contain slashes (as Nix allows).
        let (path_ref, path_rev) = match rest.split_last() {
            None => (None, None),
            Some((last, init)) if is_rev(last) => {
                let r = (!init.is_empty()).then(|| init.join("/"));
                (r, Some(last.to_string()))
            }
            Some(_) => (Some(rest.join("/")), None),
        };
        let mut params = self.parse_query(query)?;
        let query_ref = self.take_param(&mut params, "ref")?;
        let query_rev = self.take_param(&mut params, "rev")?;
        let ref_ = self.merge_attr("ref", path_ref, query_ref)?;
        let rev = self.merge_attr("rev", path_rev, query_rev)?;
        self.check_ref_rev(ref_.as_deref(), rev.as_deref())?;
        Ok(FlakeRef::Indirect(IndirectRef {
            id: id.to_string(),
            ref_,
            rev,
            params,
        }))
    }

    fn merge_attr(
        &self,
        attr: &'static str,
        from_path: Option<String>,
        from_query: Option<String>,
    ) -> Result<Option<String>, FlakeRefError> {
        match (from_path, from_query) {
            (Some(_), Some(_)) => Err(FlakeRefError::DuplicateAttribute {
                attr,
                input: self.shown(),
            }),
            (a, b) => Ok(a.or(b)),
        }
    }

    fn check_ref_rev(&self, ref_: Option<&str>, rev: Option<&str>) -> Result<(), FlakeRefError> {
        if let Some(r) = ref_ {
            if !is_valid_ref(r) {
                return Err(FlakeRefError::InvalidRef {
                    ref_: r.to_string(),
                    input: self.shown(),
                });
            }
        }
        if let Some(r) = rev {
            if !is_rev(r) {
                return Err(FlakeRefError::InvalidRev {
                    rev: r.to_string(),
                    input: self.shown(),
                });
            }
        }
        Ok(())
    }

    /// Splits `a=b&c=d`; empty segments (`?`, `&&`) are ignored.
    fn parse_query(&self, query: Option<&str>) -> Result<Vec<(String, String)>, FlakeRefError> {
        let mut params = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) if !k.is_empty() => params.push((k.to_string(), v.to_string())),
                _ => {
                    return Err(FlakeRefError::MalformedQuery {
                        param: part.to_string(),
                        input: self.shown(),
                    })
                }
            }
        }
        Ok(params)
    }

    /// Removes `key` from `params`; it must occur at most once and be non-empty.
    fn take_param(
        &self,
        params: &mut Vec<(String, String)>,
        key: &str,
    ) -> Result<Option<String>, FlakeRefError> {
        let mut found = None;
        let mut i = 0;
        while i < params.len() {
            if params[i].0 == key {
                let (_, v) = params.remove(i);
                if found.is_some() {
                    return Err(FlakeRefError::DuplicateParam {
                        param: key.to_string(),
                        input: self.shown(),
                    });
                }
                found = Some(v);
            } else {
                i += 1;
            }
        }
        if found.as_deref() == Some("") {
            return Err(FlakeRefError::EmptyParam {
                param: key.to_string(),
                input: self.shown(),
            });
        }
        Ok(found)
    }
}

/// A 40-character hex string: a (SHA-1) git commit hash.
fn is_rev(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Nix's branch/tag name rule, relaxed to allow `%` because query values
/// are kept percent-encoded here.
fn is_valid_ref(r: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_./@+-%".contains(c);
    !r.is_empty()
        && r.chars().all(allowed)
        && !r.starts_with(['-', '.', '/'])
        && !r.ends_with(['/', '.'])
        && !r.contains("..")
        && !r.contains("//")
}

/// Whether a ref can be printed as a path segment and parse back as the
/// same ref (rather than as a rev, several segments or a decoded string).
fn ref_fits_path(r: &str) -> bool {
    is_valid_ref(r)
        && !is_rev(r)
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c))
}

/// RFC 3986 scheme syntax.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// Nix's flake registry id syntax.
fn is_flake_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether a plain URL is recognised by Nix as a tarball flake.
fn is_plain_archive_url(url: &str) -> bool {
    let (scheme_and_path, _) = url.split_once('?').unwrap_or((url, ""));
    let scheme_ok = ["http://", "https://", "file://"]
        .iter()
        .any(|p| scheme_and_path.starts_with(p));
    scheme_ok
        && ARCHIVE_EXTENSIONS
            .iter()
            .any(|ext| scheme_and_path.ends_with(ext))
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is kept
/// literally (lenient, like browsers). `None` if the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Encodes everything but RFC 3986 unreserved characters, so that decoding
/// the result gives back `s` exactly.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Masks credentials in `scheme://user:password@host…` for error messages.
/// A password is always masked; a user part without password is masked when
/// it is long enough to be a token (`https://ghp_…@github.com`) rather than
/// a login name such as `git` or `oauth2`.
fn redact(input: &str) -> String {
    let Some(start) = input.find("://").map(|i| i + 3) else {
        return input.to_string();
    };
    let after = &input[start..];
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    let Some(at) = after[..authority_end].rfind('@') else {
        return input.to_string();
    };
    let userinfo = &after[..at];
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None if userinfo.chars().count() > 16 => "***".to_string(),
        None => return input.to_string(),
    };
    format!("{}{masked}{}", &input[..start], &after[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const REV: &str = "a3a3dda3bacf61e8a39258a0ed9c924eeca8e293";

    fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn forge(
        owner: &str,
        repo: &str,
        ref_: Option<&str>,
        rev: Option<&str>,
        host: Option<&str>,
        p: &[(&str, &str)],
    ) -> GitForgeRef {
        GitForgeRef {
            owner: owner.into(),
            repo: repo.into(),
            ref_: ref_.map(Into::into),
            rev: rev.map(Into::into),
            host: host.map(Into::into),
            params: params(p),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn git(
        url: &str,
        host: Option<&str>,
        owner: Option<&str>,
        repo: Option<&str>,
        ref_: Option<&str>,
        rev: Option<&str>,
        p: &[(&str, &str)],
    ) -> FlakeRef {
        FlakeRef::Git(GitRef {
            url: url.into(),
            host: host.map(Into::into),
            owner: owner.map(Into::into),
            repo: repo.map(Into::into),
            ref_: ref_.map(Into::into),
            rev: rev.map(Into::into),
            params: params(p),
        })
    }

    fn path(p: &str, q: &[(&str, &str)]) -> FlakeRef {
        FlakeRef::Path(PathRef {
            path: p.into(),
            params: params(q),
        })
    }

    fn tarball(url: &str, unpack: bool) -> FlakeRef {
        FlakeRef::Tarball(TarballRef {
            url: url.into(),
            unpack,
        })
    }

    fn indirect(id: &str, ref_: Option<&str>, rev: Option<&str>, q: &[(&str, &str)]) -> FlakeRef {
        FlakeRef::Indirect(IndirectRef {
            id: id.into(),
            ref_: ref_.map(Into::into),
            rev: rev.map(Into::into),
            params: params(q),
        })
    }

    /// (input, expected value, token host, canonical form)
    fn table() -> Vec<(&'static str, FlakeRef, Option<&'static str>, &'static str)> {
        use FlakeRef::{GitHub, GitLab, SourceHut};
        let gh = Some("github.com");
        let gl = Some("gitlab.com");
        vec![
            // --- github ---
            (
                "github:Thymis-io/thymis",
                GitHub(forge("Thymis-io", "thymis", None, None, None, &[])),
                gh,
                "github:Thymis-io/thymis",
            ),
            (
                "github:Thymis-io/thymis/v0.9",
                GitHub(forge("Thymis-io", "thymis", Some("v0.9"), None, None, &[])),
                gh,
                "github:Thymis-io/thymis/v0.9",
            ),
            (
                "github:NixOS/nixpkgs/nixos-24.05",
                GitHub(forge("NixOS", "nixpkgs", Some("nixos-24.05"), None, None, &[])),
                gh,
                "github:NixOS/nixpkgs/nixos-24.05",
            ),
            (
                "github:NixOS/nixpkgs/a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
                GitHub(forge("NixOS", "nixpkgs", None, Some(REV), None, &[])),
                gh,
                "github:NixOS/nixpkgs/a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
            ),
            (
                "github:edolstra/nix-warez?dir=blender",
                GitHub(forge("edolstra", "nix-warez", None, None, None, &[("dir", "blender")])),
                gh,
                "github:edolstra/nix-warez?dir=blender",
            ),
            (
                "github:NixOS/nix/feature/awesome",
                GitHub(forge("NixOS", "nix", Some("feature/awesome"), None, None, &[])),
                gh,
                "github:NixOS/nix?ref=feature/awesome",
            ),
            (
                "github:internal/project?host=company-github.example.org",
                GitHub(forge(
                    "internal",
                    "project",
                    None,
                    None,
                    Some("company-github.example.org"),
                    &[],
                )),
                Some("company-github.example.org"),
                "github:internal/project?host=company-github.example.org",
            ),
            (
                "github:acme/thymis-modules?ref=release/2024.1&dir=modules",
                GitHub(forge(
                    "acme",
                    "thymis-modules",
                    Some("release/2024.1"),
                    None,
                    None,
                    &[("dir", "modules")],
                )),
                gh,
                "github:acme/thymis-modules?ref=release/2024.1&dir=modules",
            ),
            (
                "github:acme/thymis-modules?rev=a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
                GitHub(forge("acme", "thymis-modules", None, Some(REV), None, &[])),
                gh,
                "github:acme/thymis-modules/a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
            ),
            (
                "github:acme/mods/main?narHash=sha256-AAAA%2Bbbb=",
                GitHub(forge(
                    "acme",
                    "mods",
                    Some("main"),
                    None,
                    None,
                    &[("narHash", "sha256-AAAA%2Bbbb=")],
                )),
                gh,
                "github:acme/mods/main?narHash=sha256-AAAA%2Bbbb=",
            ),
            // --- gitlab ---
            (
                "gitlab:veloren%2Fdev/rfcs",
                GitLab(forge("veloren/dev", "rfcs", None, None, None, &[])),
                gl,
                "gitlab:veloren%2Fdev/rfcs",
            ),
            (
                "gitlab:veloren/veloren/master",
                GitLab(forge("veloren", "veloren", Some("master"), None, None, &[])),
                gl,
                "gitlab:veloren/veloren/master",
            ),
            (
                "gitlab:veloren/veloren/80a4d7f13492d916e47d6195be23acae8001985a",
                GitLab(forge(
                    "veloren",
                    "veloren",
                    None,
                    Some("80a4d7f13492d916e47d6195be23acae8001985a"),
                    None,
                    &[],
                )),
                gl,
                "gitlab:veloren/veloren/80a4d7f13492d916e47d6195be23acae8001985a",
            ),
            (
                "gitlab:openldap/openldap?host=git.openldap.org",
                GitLab(forge("openldap", "openldap", None, None, Some("git.openldap.org"), &[])),
                Some("git.openldap.org"),
                "gitlab:openldap/openldap?host=git.openldap.org",
            ),
            // --- sourcehut ---
            (
                "sourcehut:~misterio/nix-colors",
                SourceHut(forge("~misterio", "nix-colors", None, None, None, &[])),
                Some("git.sr.ht"),
                "sourcehut:~misterio/nix-colors",
            ),
            (
                "sourcehut:~misterio/nix-colors/21c1a380a6915d890d408e9f22203436a35bb2de?host=hg.sr.ht",
                SourceHut(forge(
                    "~misterio",
                    "nix-colors",
                    None,
                    Some("21c1a380a6915d890d408e9f22203436a35bb2de"),
                    Some("hg.sr.ht"),
                    &[],
                )),
                Some("hg.sr.ht"),
                "sourcehut:~misterio/nix-colors/21c1a380a6915d890d408e9f22203436a35bb2de?host=hg.sr.ht",
            ),
            // --- git ---
            (
                "git+https://git.example.com/acme/mods.git?ref=main",
                git(
                    "https://git.example.com/acme/mods.git",
                    Some("git.example.com"),
                    Some("acme"),
                    Some("mods"),
                    Some("main"),
                    None,
                    &[],
                ),
                Some("git.example.com"),
                "git+https://git.example.com/acme/mods.git?ref=main",
            ),
            (
                "git+https://github.com/NixOS/patchelf",
                git(
                    "https://github.com/NixOS/patchelf",
                    gh,
                    Some("NixOS"),
                    Some("patchelf"),
                    None,
                    None,
                    &[],
                ),
                gh,
                "git+https://github.com/NixOS/patchelf",
            ),
            (
                "git+https://github.com/NixOS/patchelf?ref=master&rev=f34751b88bd07d7f44f5cd3200fb4122bf916c7e",
                git(
                    "https://github.com/NixOS/patchelf",
                    gh,
                    Some("NixOS"),
                    Some("patchelf"),
                    Some("master"),
                    Some("f34751b88bd07d7f44f5cd3200fb4122bf916c7e"),
                    &[],
                ),
                gh,
                "git+https://github.com/NixOS/patchelf?ref=master&rev=f34751b88bd07d7f44f5cd3200fb4122bf916c7e",
            ),
            (
                "git+ssh://git@github.com/acme/private.git",
                git(
                    "ssh://git@github.com/acme/private.git",
                    gh,
                    Some("acme"),
                    Some("private"),
                    None,
                    None,
                    &[],
                ),
                gh,
                "git+ssh://git@github.com/acme/private.git",
            ),
            (
                "git+ssh://git@github.com/NixOS/nix?ref=v1.2.3",
                git(
                    "ssh://git@github.com/NixOS/nix",
                    gh,
                    Some("NixOS"),
                    Some("nix"),
                    Some("v1.2.3"),
                    None,
                    &[],
                ),
                gh,
                "git+ssh://git@github.com/NixOS/nix?ref=v1.2.3",
            ),
            (
                "git://github.com/edolstra/dwarffs?ref=unstable&rev=e486d8d40e626a20e06d792db8cc5ac5aba9a5b4",
                git(
                    "git://github.com/edolstra/dwarffs",
                    gh,
                    Some("edolstra"),
                    Some("dwarffs"),
                    Some("unstable"),
                    Some("e486d8d40e626a20e06d792db8cc5ac5aba9a5b4"),
                    &[],
                ),
                gh,
                "git://github.com/edolstra/dwarffs?ref=unstable&rev=e486d8d40e626a20e06d792db8cc5ac5aba9a5b4",
            ),
            (
                "git+git://github.com/edolstra/dwarffs",
                git(
                    "git://github.com/edolstra/dwarffs",
                    gh,
                    Some("edolstra"),
                    Some("dwarffs"),
                    None,
                    None,
                    &[],
                ),
                gh,
                "git://github.com/edolstra/dwarffs",
            ),
            (
                "git+file:///srv/repo",
                git("file:///srv/repo", None, None, None, None, None, &[]),
                None,
                "git+file:///srv/repo",
            ),
            (
                "git+file:/home/my-user/some-repo/some-repo",
                git(
                    "file:///home/my-user/some-repo/some-repo",
                    None,
                    None,
                    None,
                    None,
                    None,
                    &[],
                ),
                None,
                "git+file:///home/my-user/some-repo/some-repo",
            ),
            (
                "git+https://gitlab.com/group/subgroup/project.git?dir=flake&submodules=1",
                git(
                    "https://gitlab.com/group/subgroup/project.git",
                    gl,
                    Some("group/subgroup"),
                    Some("project"),
                    None,
                    None,
                    &[("dir", "flake"), ("submodules", "1")],
                ),
                gl,
                "git+https://gitlab.com/group/subgroup/project.git?dir=flake&submodules=1",
            ),
            (
                "git+http://10.0.0.5:3000/acme/mods",
                git(
                    "http://10.0.0.5:3000/acme/mods",
                    Some("10.0.0.5:3000"),
                    Some("acme"),
                    Some("mods"),
                    None,
                    None,
                    &[],
                ),
                Some("10.0.0.5:3000"),
                "git+http://10.0.0.5:3000/acme/mods",
            ),
            (
                "git+https://oauth2@gitlab.example.com/acme/mods.git?ref=refs/heads/feature/x",
                git(
                    "https://oauth2@gitlab.example.com/acme/mods.git",
                    Some("gitlab.example.com"),
                    Some("acme"),
                    Some("mods"),
                    Some("refs/heads/feature/x"),
                    None,
                    &[],
                ),
                Some("gitlab.example.com"),
                "git+https://oauth2@gitlab.example.com/acme/mods.git?ref=refs/heads/feature/x",
            ),
            (
                "git+ssh://git@[2001:db8::1]:2222/mods.git",
                git(
                    "ssh://git@[2001:db8::1]:2222/mods.git",
                    Some("[2001:db8::1]:2222"),
                    None,
                    Some("mods"),
                    None,
                    None,
                    &[],
                ),
                Some("[2001:db8::1]:2222"),
                "git+ssh://git@[2001:db8::1]:2222/mods.git",
            ),
            // --- path ---
            ("path:./sub", path("./sub", &[]), None, "path:./sub"),
            (
                "path:/srv/thymis/modules?narHash=sha256-x",
                path("/srv/thymis/modules", &[("narHash", "sha256-x")]),
                None,
                "path:/srv/thymis/modules?narHash=sha256-x",
            ),
            ("./modules", path("./modules", &[]), None, "path:./modules"),
            (
                "/home/alice/src/patchelf",
                path("/home/alice/src/patchelf", &[]),
                None,
                "path:/home/alice/src/patchelf",
            ),
            (".", path(".", &[]), None, "path:."),
            ("../sibling", path("../sibling", &[]), None, "path:../sibling"),
            // --- indirect ---
            ("nixpkgs", indirect("nixpkgs", None, None, &[]), None, "nixpkgs"),
            ("flake:nixpkgs", indirect("nixpkgs", None, None, &[]), None, "nixpkgs"),
            (
                "nixpkgs/nixos-24.05",
                indirect("nixpkgs", Some("nixos-24.05"), None, &[]),
                None,
                "nixpkgs/nixos-24.05",
            ),
            (
                "nixpkgs/a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
                indirect("nixpkgs", None, Some(REV), &[]),
                None,
                "nixpkgs/a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
            ),
            (
                "flake:nixpkgs/nixos-unstable/a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
                indirect("nixpkgs", Some("nixos-unstable"), Some(REV), &[]),
                None,
                "nixpkgs/nixos-unstable/a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
            ),
            (
                "thymis/release/v1?dir=lib",
                indirect("thymis", Some("release/v1"), None, &[("dir", "lib")]),
                None,
                "thymis?ref=release/v1&dir=lib",
            ),
            // --- tarball / file ---
            (
                "https://example.com/x.tar.gz",
                tarball("https://example.com/x.tar.gz", true),
                None,
                "https://example.com/x.tar.gz",
            ),
            (
                "https://github.com/NixOS/patchelf/archive/master.tar.gz",
                tarball("https://github.com/NixOS/patchelf/archive/master.tar.gz", true),
                None,
                "https://github.com/NixOS/patchelf/archive/master.tar.gz",
            ),
            (
                "tarball+https://example.com/download?id=5",
                tarball("https://example.com/download?id=5", true),
                None,
                "tarball+https://example.com/download?id=5",
            ),
            (
                "tarball+https://example.com/mods.zip",
                tarball("https://example.com/mods.zip", true),
                None,
                "https://example.com/mods.zip",
            ),
            (
                "file+https://example.com/x.tar.gz",
                tarball("https://example.com/x.tar.gz", false),
                None,
                "file+https://example.com/x.tar.gz",
            ),
            (
                "file:///srv/archives/mods.tar.zst",
                tarball("file:///srv/archives/mods.tar.zst", true),
                None,
                "file:///srv/archives/mods.tar.zst",
            ),
        ]
    }

    #[test]
    fn table_parses_as_expected() {
        let table = table();
        assert!(table.len() >= 30);
        for (input, expected, token_host, canonical) in table {
            let parsed: FlakeRef = input
                .parse()
                .unwrap_or_else(|e| panic!("{input} should parse: {e}"));
            assert_eq!(parsed, expected, "parse of {input}");
            assert_eq!(
                parsed.token_host().as_deref(),
                token_host,
                "token_host of {input}"
            );
            assert_eq!(parsed.to_url(), canonical, "to_url of {input}");
            assert_eq!(parsed.to_string(), canonical, "Display of {input}");
            let reparsed: FlakeRef = canonical
                .parse()
                .unwrap_or_else(|e| panic!("canonical {canonical} should parse: {e}"));
            assert_eq!(reparsed, parsed, "round trip of {input}");
        }
    }

    #[test]
    fn error_cases() {
        use FlakeRefError as E;
        type Check = fn(&FlakeRefError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, E::Empty)),
            (" github:o/r", |e| matches!(e, E::InvalidCharacter { .. })),
            ("github:o/r\n", |e| matches!(e, E::InvalidCharacter { .. })),
            ("github:o/r#default", |e| matches!(e, E::Fragment { .. })),
            ("github:", |e| matches!(e, E::MissingOwnerRepo { kind: "github", .. })),
            ("github:foo", |e| matches!(e, E::MissingOwnerRepo { .. })),
            ("github:/repo", |e| matches!(e, E::MissingOwnerRepo { .. })),
            ("gitlab:foo/", |e| matches!(e, E::MissingOwnerRepo { kind: "gitlab", .. })),
            ("github:o/r/", |e| matches!(e, E::EmptyRefOrRev { .. })),
            ("github:o/r/main?ref=dev", |e| matches!(e, E::ConflictingRefRev { .. })),
            (
                "github:o/r/main?rev=a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
                |e| matches!(e, E::ConflictingRefRev { .. }),
            ),
            (
                "github:o/r/a3a3dda3bacf61e8a39258a0ed9c924eeca8e293?ref=main",
                |e| matches!(e, E::ConflictingRefRev { .. }),
            ),
            (
                "gitlab:o/r?ref=main&rev=a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
                |e| matches!(e, E::ConflictingRefRev { .. }),
            ),
            ("github:o/r?rev=main", |e| matches!(e, E::InvalidRev { .. })),
            ("git+https://h/o/r?rev=abc", |e| matches!(e, E::InvalidRev { .. })),
            ("github:o/r/a..b", |e| matches!(e, E::InvalidRef { .. })),
            ("github:o/r?ref=-rf", |e| matches!(e, E::InvalidRef { .. })),
            ("github:o/r?ref=", |e| matches!(e, E::EmptyParam { .. })),
            ("github:o/r?ref=a&ref=b", |e| matches!(e, E::DuplicateParam { .. })),
            ("github:o/r?dir", |e| matches!(e, E::MalformedQuery { .. })),
            ("github:o/r?=x", |e| matches!(e, E::MalformedQuery { .. })),
            ("gitlab:%FF/r", |e| matches!(e, E::InvalidOwnerEncoding { .. })),
            ("foo:bar", |e| matches!(e, E::UnknownScheme { .. })),
            ("git+svn://h/r", |e| matches!(e, E::UnknownScheme { .. })),
            ("1nix:x", |e| matches!(e, E::NotAScheme { .. })),
            ("nixpkgs/a:b", |e| matches!(e, E::NotAScheme { .. })),
            ("hg+https://hg.example.com/r", |e| matches!(e, E::Unsupported { .. })),
            ("git+https://", |e| matches!(e, E::InvalidGitUrl { .. })),
            ("git+https:///acme/mods", |e| matches!(e, E::InvalidGitUrl { .. })),
            ("git+https://git.example.com", |e| matches!(e, E::InvalidGitUrl { .. })),
            ("git+https://git.example.com/", |e| matches!(e, E::InvalidGitUrl { .. })),
            ("git+https:git.example.com/a/b", |e| matches!(e, E::InvalidGitUrl { .. })),
            (
                "git+ssh://git@github.com:acme/private.git",
                |e| matches!(e, E::InvalidGitUrl { .. }),
            ),
            ("git+ssh://git@[::1/x", |e| matches!(e, E::InvalidGitUrl { .. })),
            ("git+file://srv/repo", |e| matches!(e, E::InvalidGitUrl { .. })),
            ("git+file:relative", |e| matches!(e, E::InvalidGitUrl { .. })),
            ("git:github.com/o/r", |e| matches!(e, E::InvalidGitUrl { .. })),
            ("path:", |e| matches!(e, E::InvalidPath { .. })),
            ("path:?dir=x", |e| matches!(e, E::InvalidPath { .. })),
            ("https://github.com/acme/mods", |e| matches!(e, E::NotAnArchive { .. })),
            ("file:///srv/repo", |e| matches!(e, E::NotAnArchive { .. })),
            ("https:example.com/x.tar.gz", |e| matches!(e, E::InvalidTarballUrl { .. })),
            ("tarball+https:///x.tar.gz", |e| matches!(e, E::InvalidTarballUrl { .. })),
            ("tarball+file://srv/x.tar.gz", |e| matches!(e, E::InvalidTarballUrl { .. })),
            ("1nixpkgs", |e| matches!(e, E::InvalidFlakeId { .. })),
            ("flake:", |e| matches!(e, E::InvalidFlakeId { .. })),
            ("?dir=x", |e| matches!(e, E::InvalidFlakeId { .. })),
            ("nixpkgs/", |e| matches!(e, E::EmptySegment { .. })),
            ("nixpkgs//main", |e| matches!(e, E::EmptySegment { .. })),
            (
                "nixpkgs/main?ref=dev",
                |e| matches!(e, E::DuplicateAttribute { attr: "ref", .. }),
            ),
            (
                "nixpkgs/a3a3dda3bacf61e8a39258a0ed9c924eeca8e293?rev=a3a3dda3bacf61e8a39258a0ed9c924eeca8e293",
                |e| matches!(e, E::DuplicateAttribute { attr: "rev", .. }),
            ),
        ];
        for (input, check) in cases {
            match input.parse::<FlakeRef>() {
                Ok(v) => panic!("{input:?} should fail, got {v:?}"),
                Err(e) => {
                    assert!(check(&e), "{input:?}: unexpected error {e:?}");
                    // Every message names the problem and the input.
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        let e = "github:Thymis-io".parse::<FlakeRef>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "github flake reference needs owner/repo: github:Thymis-io"
        );
        let e = "gitlab:acme/mods/main?rev=a3a3dda3bacf61e8a39258a0ed9c924eeca8e293"
            .parse::<FlakeRef>()
            .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("gitlab flake reference names more than one ref/rev"));
        let e = "svn+https://x/y".parse::<FlakeRef>().unwrap_err();
        assert!(e
            .to_string()
            .contains("unknown flake reference scheme `svn+https`"));
    }

    #[test]
    fn errors_do_not_leak_credentials() {
        for input in [
            "git+https://oauth2:glpat-SECRETSECRET@gitlab.example.com",
            "git+https://ghp_SECRETSECRETSECRETSECRET@github.com",
            "https://user:SECRET@example.com/archive",
        ] {
            let e = input.parse::<FlakeRef>().unwrap_err();
            let msg = e.to_string();
            assert!(!msg.contains("SECRET"), "{msg}");
            assert!(msg.contains("***@"), "{msg}");
        }
        // A plain login name is useful context and kept.
        assert_eq!(redact("git+ssh://git@h"), "git+ssh://git@h");
        assert_eq!(redact("no scheme@here"), "no scheme@here");
        assert_eq!(redact("https://h/p@x"), "https://h/p@x");
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let a: FlakeRef = "GitHub:NixOS/nix".parse().unwrap();
        let b: FlakeRef = "github:NixOS/nix".parse().unwrap();
        assert_eq!(a, b);
        let g: FlakeRef = "GIT+HTTPS://h/o/r".parse().unwrap();
        assert_eq!(g.to_url(), "git+https://h/o/r");
    }

    #[test]
    fn gitlab_owner_encoding_round_trips() {
        for (input, owner) in [
            ("gitlab:a%2Fb%2Fc/r", "a/b/c"),
            ("gitlab:a%2fb/r", "a/b"),
            ("gitlab:100%/r", "100%"),
            ("gitlab:a%3Fb/r", "a?b"),
            ("gitlab:a%20b/r", "a b"),
        ] {
            let v: FlakeRef = input.parse().unwrap();
            let FlakeRef::GitLab(f) = &v else {
                panic!("{input} is not gitlab")
            };
            assert_eq!(f.owner, owner);
            assert_eq!(v.to_url().parse::<FlakeRef>().unwrap(), v);
        }
    }

    #[test]
    fn forty_hex_from_query_ref_stays_a_ref() {
        let v: FlakeRef = "github:o/r?ref=a3a3dda3bacf61e8a39258a0ed9c924eeca8e293"
            .parse()
            .unwrap();
        let FlakeRef::GitHub(f) = &v else { panic!() };
        assert_eq!(f.ref_.as_deref(), Some(REV));
        assert_eq!(f.rev, None);
        assert_eq!(
            v.to_url(),
            "github:o/r?ref=a3a3dda3bacf61e8a39258a0ed9c924eeca8e293"
        );
        assert_eq!(v.to_url().parse::<FlakeRef>().unwrap(), v);
    }

    /// Deterministic xorshift so the fuzz test needs no extra dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Parsing never panics, and whatever parses round-trips. Returns
    /// whether `input` parsed, so the test can check it exercised both paths.
    fn check_no_panic_and_round_trip(input: &str) -> bool {
        let Ok(v) = input.parse::<FlakeRef>() else {
            return false;
        };
        let url = v.to_url();
        let again = url
            .parse::<FlakeRef>()
            .unwrap_or_else(|e| panic!("{input:?} → {url:?} does not reparse: {e}"));
        assert_eq!(again, v, "{input:?} → {url:?}");
        let _ = v.token_host();
        true
    }

    #[test]
    fn fuzz_no_panic_and_round_trip() {
        const TOKENS: &[&str] = &[
            "github:",
            "gitlab:",
            "sourcehut:",
            "git+https://",
            "git+ssh://",
            "git+file://",
            "git://",
            "git:",
            "path:",
            "flake:",
            "tarball+",
            "file+",
            "https://",
            "http://",
            "file://",
            "hg+https://",
            "/",
            "//",
            ".",
            "..",
            "?",
            "&",
            "=",
            "%",
            "%2F",
            "%ff",
            "@",
            ":",
            "#",
            "[",
            "]",
            "ref=",
            "rev=",
            "host=",
            "dir=",
            REV,
            "main",
            "v1.0",
            "a",
            "Z",
            "0",
            "~",
            "-",
            "_",
            "+",
            ".git",
            ".tar.gz",
            ".zip",
            "git@",
            "h.com",
            ":22",
            " ",
            "\u{0}",
            "é",
            "ß/",
            "\u{1F600}",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut parsed = 0;
        for _ in 0..30_000 {
            let mut s = String::new();
            for _ in 0..rng.below(9) {
                s.push_str(TOKENS[rng.below(TOKENS.len())]);
            }
            parsed += usize::from(check_no_panic_and_round_trip(&s));
        }
        // Arbitrary bytes, made into (lossy) strings.
        for _ in 0..10_000 {
            let len = rng.below(24);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check_no_panic_and_round_trip(&String::from_utf8_lossy(&bytes));
        }
        // Mutations of real references: every prefix, and token insertions.
        for (input, ..) in table() {
            for (i, _) in input.char_indices() {
                check_no_panic_and_round_trip(&input[..i]);
                check_no_panic_and_round_trip(&input[i..]);
            }
            for _ in 0..300 {
                let mut s = input.to_string();
                let boundaries: Vec<usize> =
                    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
                let at = boundaries[rng.below(boundaries.len())];
                s.insert_str(at, TOKENS[rng.below(TOKENS.len())]);
                parsed += usize::from(check_no_panic_and_round_trip(&s));
            }
        }
        // Guard against a generator that only ever produces errors, which
        // would make the round-trip half of this test vacuous.
        assert!(parsed > 3_000, "only {parsed} fuzz inputs parsed");
    }
}
