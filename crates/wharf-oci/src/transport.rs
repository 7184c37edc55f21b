//! The registry's HTTP for pulls, pushes (`crate::upload`) and authentication, done here rather
//! than in oci-client so that every read is bounded (size and time) and credentials go only
//! where they may:
//!
//! - connect, each read and each small request (ping, token, manifest, error body) are bounded
//!   by [`RegistryConfig::timeout`]; manifests by [`RegistryConfig::max_manifest_bytes`]; token
//!   answers and error bodies by [`SMALL_BODY_LIMIT`]; blobs by their declared size (the caller).
//! - a credential is attached only over HTTPS, or over plain HTTP to a host the operator named
//!   in [`RegistryConfig::insecure`]; a token service a registry names in its challenge gets the
//!   credential under the same rule. Otherwise the request is anonymous and, if the registry then
//!   refuses, the error says why.
//! - error bodies are never echoed: only the status and the registry's error codes.
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::Reference;
use oci_client::secrets::RegistryAuth;

use crate::Error;
use crate::auth::Credential;

/// The most a token answer or an error body may hold.
pub const SMALL_BODY_LIMIT: u64 = 256 * 1024;

/// How a [`crate::Registry`] reaches registries.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `host[:port]`s the operator allowed over plain HTTP (`--insecure`): credentials may go
    /// there.
    pub insecure: Vec<String>,
    /// `host[:port]`s reached over plain HTTP only because a reference was written `http://...`:
    /// never sent a credential.
    pub plain_http: Vec<String>,
    /// Connect timeout, the longest wait for any read, and the longest a ping, token request or
    /// manifest may take in all.
    pub timeout: Duration,
    /// The largest manifest or index accepted (distribution's own limit is 4 MiB).
    pub max_manifest_bytes: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            plain_http: Vec::new(),
            timeout: Duration::from_secs(30),
            max_manifest_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What to present to one registry for one repository, found by [`Transport::authenticate`].
pub(crate) struct Session {
    /// The credential or token for oci-client (push) and the `Authorization` header (pull).
    pub auth: RegistryAuth,
    /// Why a credential was not sent, to explain a refusal that follows.
    pub withheld: Option<String>,
}

impl Session {
    pub(crate) fn header(&self) -> Option<String> {
        match &self.auth {
            RegistryAuth::Anonymous => None,
            RegistryAuth::Basic(user, password) => {
                Some(format!("Basic {}", BASE64.encode(format!("{user}:{password}"))))
            }
            RegistryAuth::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }

    /// Adds the reason a credential was withheld to an authentication failure.
    pub fn explain(&self, error: Error) -> Error {
        match (error, &self.withheld) {
            (Error::Auth { registry, detail }, Some(why)) => {
                Error::Auth { registry, detail: format!("{detail}; {why}") }
            }
            (error, _) => error,
        }
    }
}

pub(crate) struct Transport {
    pub(crate) http: reqwest::Client,
    pub config: RegistryConfig,
}

impl Transport {
    pub fn new(config: RegistryConfig) -> Result<Transport, Error> {
        // reqwest is built without a default crypto provider; pick ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let downgrade = attempt.url().scheme() != "https"
                && attempt.previous().last().is_some_and(|previous| previous.scheme() == "https");
            if attempt.previous().len() > 5 {
                attempt.error("more than 5 redirects")
            } else if downgrade {
                attempt.error("a redirect from HTTPS to plain HTTP")
            } else {
                // reqwest drops `Authorization` when the host, port or scheme changes.
                attempt.follow()
            }
        });
        let tls = crate::tls::client_config().map_err(|e| Error::Registry {
            reference: "(registry client)".into(),
            detail: format!("cannot set up TLS: {e}"),
        })?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout)
            .redirect(policy)
            .build()
            .map_err(|e| Error::Registry {
                reference: "(registry client)".into(),
                detail: crate::registry::chain(&e),
            })?;
        Ok(Transport { http, config })
    }

    /// `http` for `--insecure` hosts and `http://` references, else `https`.
    pub fn scheme(&self, registry: &str) -> &'static str {
        let registry = registry.to_ascii_lowercase();
        let listed = |hosts: &[String]| hosts.iter().any(|h| h.eq_ignore_ascii_case(&registry));
        if listed(&self.config.insecure) || listed(&self.config.plain_http) { "http" } else { "https" }
    }

    /// Whether a credential may travel to `url`: HTTPS, or a host the operator named insecure.
    fn may_send_credential(&self, url: &reqwest::Url) -> bool {
        match url.scheme() {
            "https" => true,
            "http" => {
                let host = url.host_str().unwrap_or_default();
                let host = match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                };
                self.config.insecure.iter().any(|h| h.eq_ignore_ascii_case(&host))
            }
            _ => false,
        }
    }

    pub(crate) fn transport_error(reference: &Reference, error: reqwest::Error) -> Error {
        let detail = if error.is_timeout() {
            format!("the registry did not answer within the timeout ({})", crate::registry::chain(&error))
        } else {
            crate::registry::chain(&error)
        };
        Error::Registry { reference: reference.whole(), detail }
    }

    /// Finds out how `reference`'s registry wants to be authenticated for `scope_actions`
    /// (`pull` or `pull,push`) and gets a token when it uses a token service.
    pub async fn authenticate(
        &self,
        reference: &Reference,
        credential: &Credential,
        scope_actions: &str,
    ) -> Result<Session, Error> {
        let registry = reference.resolve_registry().to_string();
        let base = format!("{}://{registry}/v2/", self.scheme(&registry));
        let base_url = reqwest::Url::parse(&base)
            .map_err(|e| Error::Registry { reference: reference.whole(), detail: e.to_string() })?;
        let mut withheld = None;
        let mut basic = match credential {
            Credential::Anonymous => None,
            Credential::Basic { username, password } => Some((username.clone(), password.clone())),
        };
        if basic.is_some() && !self.may_send_credential(&base_url) {
            let why = format!(
                "the credentials for {registry} were not sent over plain HTTP (pass --insecure {registry} to allow it)"
            );
            tracing::info!(registry, "{why}");
            withheld = Some(why);
            basic = None;
        }
        let ping = self
            .http
            .get(base_url)
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|e| Self::transport_error(reference, e))?;
        let status = ping.status();
        let challenge =
            ping.headers().get(reqwest::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(String::from);
        let _ = read_capped(ping, SMALL_BODY_LIMIT, reference, "the registry's answer", self.config.timeout).await;
        let Some(challenge) = challenge.filter(|_| status.as_u16() == 401) else {
            // The registry wants nothing (or says nothing useful): stay anonymous.
            return Ok(Session { auth: RegistryAuth::Anonymous, withheld });
        };
        let Some(bearer) = parse_bearer_challenge(&challenge) else {
            // Basic (or another scheme): present the credential to the registry itself.
            let auth = basic.map_or(RegistryAuth::Anonymous, |(u, p)| RegistryAuth::Basic(u, p));
            return Ok(Session { auth, withheld });
        };
        let realm = reqwest::Url::parse(&bearer.realm).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
        let Some(realm) = realm else {
            return Err(Error::Auth {
                registry,
                detail: format!("its token service `{}` is not an HTTP URL", bearer.realm),
            });
        };
        if basic.is_some() && !self.may_send_credential(&realm) {
            let why = format!(
                "the credentials for {registry} were not sent to its token service {} over plain HTTP \
                 (pass --insecure {} to allow it)",
                realm.origin().ascii_serialization(),
                realm
                    .host_str()
                    .map(|h| realm.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
                    .unwrap_or_default()
            );
            tracing::info!(registry, "{why}");
            withheld = Some(why);
            basic = None;
        }
        let scope = format!("repository:{}:{scope_actions}", reference.repository());
        let mut request = self.http.get(realm).timeout(self.config.timeout).query(&[("scope", scope.as_str())]);
        if let Some(service) = &bearer.service {
            request = request.query(&[("service", service.as_str())]);
        }
        if let Some((user, password)) = &basic {
            request = request.basic_auth(user, Some(password));
        }
        let answer = request.send().await.map_err(|e| Self::transport_error(reference, e))?;
        let status = answer.status();
        let body =
            read_capped(answer, SMALL_BODY_LIMIT, reference, "the token service's answer", self.config.timeout).await?;
        let session = Session { auth: RegistryAuth::Anonymous, withheld };
        if !status.is_success() {
            return Err(
                session.explain(Error::Auth { registry, detail: format!("the token service answered {status}") })
            );
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token = serde_json::from_slice::<TokenAnswer>(&body)
            .ok()
            .and_then(|t| t.token.or(t.access_token))
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
        match token {
            Some(token) => Ok(Session { auth: RegistryAuth::Bearer(token), ..session }),
            None => Err(Error::Auth { registry, detail: "the token service's answer holds no usable token".into() }),
        }
    }

    /// GETs `url` with the session's credential; a non-success status becomes an error
    /// (status and error codes only, never the body's text).
    async fn get(
        &self,
        reference: &Reference,
        session: &Session,
        url: &str,
        accept: Option<&str>,
        whole: bool,
    ) -> Result<reqwest::Response, Error> {
        let mut request = self.http.get(url);
        if whole {
            request = request.timeout(self.config.timeout);
        }
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        if let Some(header) = session.header() {
            request = request.header(reqwest::header::AUTHORIZATION, header);
        }
        let response = request.send().await.map_err(|e| Self::transport_error(reference, e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(session.explain(status_error(reference, response, self.config.timeout).await))
    }

    /// Fetches a manifest or index, at most [`RegistryConfig::max_manifest_bytes`], within the
    /// timeout; checks it against the registry's digest header and the reference's digest.
    /// Returns the bytes and their digest.
    pub async fn manifest(
        &self,
        reference: &Reference,
        session: &Session,
        accepted: &[&str],
    ) -> Result<(Vec<u8>, String), Error> {
        let registry = reference.resolve_registry();
        let target = reference.digest().or(reference.tag()).unwrap_or("latest");
        let url = format!("{}://{registry}/v2/{}/manifests/{target}", self.scheme(registry), reference.repository());
        let response = self.get(reference, session, &url, Some(&accepted.join(", ")), true).await?;
        let header = response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes =
            read_capped(response, self.config.max_manifest_bytes, reference, "the manifest", self.config.timeout)
                .await?;
        let digest = crate::digest::sha256_digest(&bytes);
        let what = format!("manifest {}", reference.whole());
        if let Some(expected) = reference.digest() {
            crate::digest::verify(&what, expected, &bytes)?;
        }
        if let Some(header) = header.filter(|h| h.starts_with("sha256:"))
            && header != digest
        {
            return Err(Error::DigestMismatch { what, expected: header, actual: digest });
        }
        Ok((bytes, digest))
    }

    /// Starts fetching blob `digest`; the caller reads it, bounded by the declared size.
    pub async fn blob(
        &self,
        reference: &Reference,
        session: &Session,
        digest: &str,
    ) -> Result<reqwest::Response, Error> {
        let registry = reference.resolve_registry();
        let url = format!("{}://{registry}/v2/{}/blobs/{digest}", self.scheme(registry), reference.repository());
        self.get(reference, session, &url, None, false).await
    }
}

/// Reads a body of at most `cap` bytes within `timeout`; more is an error, never a longer read.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
    reference: &Reference,
    what: &str,
    timeout: Duration,
) -> Result<Vec<u8>, Error> {
    let too_big = || Error::Registry {
        reference: reference.whole(),
        detail: format!("{what} is larger than {cap} bytes; refused"),
    };
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(too_big());
    }
    let read = async {
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| Transport::transport_error(reference, e))? {
            if bytes.len() as u64 + chunk.len() as u64 > cap {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    tokio::time::timeout(timeout, read).await.unwrap_or_else(|_| {
        Err(Error::Registry { reference: reference.whole(), detail: format!("{what} took longer than {timeout:?}") })
    })
}

/// Turns a refusal into NotFound / Auth / Registry from its status and error codes alone.
pub(crate) async fn status_error(reference: &Reference, response: reqwest::Response, timeout: Duration) -> Error {
    let status = response.status();
    let body = read_capped(response, SMALL_BODY_LIMIT, reference, "the error body", timeout).await.unwrap_or_default();
    let codes = error_codes(&body);
    let has = |wanted: &[&str]| codes.iter().any(|c| wanted.contains(&c.as_str()));
    let registry = reference.resolve_registry().to_string();
    if matches!(status.as_u16(), 401 | 403) || has(&["UNAUTHORIZED", "DENIED"]) {
        return Error::Auth { registry, detail: status.to_string() };
    }
    if status.as_u16() == 404 || has(&["MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"]) {
        return Error::NotFound { reference: reference.whole() };
    }
    let codes = if codes.is_empty() { String::new() } else { format!(" ({})", codes.join(", ")) };
    Error::Registry { reference: reference.whole(), detail: format!("the registry answered {status}{codes}") }
}

/// The `code`s of an OCI error envelope, keeping only code-shaped words (no echoed text).
fn error_codes(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else { return Vec::new() };
    envelope
        .errors
        .into_iter()
        .map(|e| e.code)
        .filter(|c| !c.is_empty() && c.len() <= 40 && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .take(8)
        .collect()
}

/// A `Bearer realm="...",service="..."` challenge.
#[derive(Debug, PartialEq)]
struct BearerChallenge {
    realm: String,
    service: Option<String>,
}

/// Parses the first challenge of a `WWW-Authenticate` value if it is `Bearer` with a realm.
fn parse_bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let header = header.trim_start();
    let (scheme, mut rest) = header.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let (mut realm, mut service) = (None, None);
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().to_ascii_lowercase();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        match key.as_str() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            _ => {}
        }
        rest = next;
    }
    Some(BearerChallenge { realm: realm?, service })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse() {
        let c = parse_bearer_challenge(r#"Bearer realm="https://auth.example/token",service="reg,istry",scope="x""#);
        assert_eq!(
            c,
            Some(BearerChallenge { realm: "https://auth.example/token".into(), service: Some("reg,istry".into()) })
        );
        let c = parse_bearer_challenge(r#"bearer service=s, realm="http://a/\"t\"""#).unwrap();
        assert_eq!((c.realm.as_str(), c.service.as_deref()), (r#"http://a/"t""#, Some("s")));
        for other in [r#"Basic realm="x""#, "Bearer", r#"Bearer service="x""#, r#"Bearer realm="unterminated"#, ""] {
            assert_eq!(parse_bearer_challenge(other), None, "{other}");
        }
    }

    #[test]
    fn credentials_travel_only_over_https_or_named_hosts() {
        let config = RegistryConfig {
            insecure: vec!["127.0.0.1:5000".into()],
            plain_http: vec!["127.0.0.1:6000".into()],
            ..RegistryConfig::default()
        };
        let transport = Transport::new(config).unwrap();
        let may = |url: &str| transport.may_send_credential(&reqwest::Url::parse(url).unwrap());
        assert!(may("https://anywhere.example/token"));
        assert!(may("http://127.0.0.1:5000/v2/"));
        assert!(!may("http://127.0.0.1:6000/v2/"), "an http:// reference is not --insecure");
        assert!(!may("http://127.0.0.1:5001/token"));
        assert!(!may("http://127.0.0.1/token"));
        assert!(!may("ftp://127.0.0.1:5000/"));
        assert_eq!((transport.scheme("127.0.0.1:6000"), transport.scheme("example.com")), ("http", "https"));
    }

    #[test]
    fn error_codes_are_not_echoed_text() {
        let body = br#"{"errors":[{"code":"DENIED","message":"secret internal text"},{"code":"<script>"}]}"#;
        assert_eq!(error_codes(body), vec!["DENIED".to_string()]);
        assert!(error_codes(b"internal service page").is_empty());
    }
}
