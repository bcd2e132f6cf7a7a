//! Authentication of the fake: `Authorization: token <t>` on the API (token allowed per
//! organisation) and HTTP basic auth on the Git endpoint (password = a token allowed on the
//! application's organisation, user = the configured auth user in strict mode).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;

use super::handlers::{api_error, ERR_BAD_TOKEN, ERR_NO_AUTH, ERR_WRONG_ORG};
use super::model::World;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: token …` header (API).
    Missing,
    /// Another scheme than `token` (API).
    BadScheme,
    /// Unknown token (API).
    UnknownToken,
    /// Token not allowed on this organisation (API).
    WrongOrg(String),
    /// Git basic auth refused: the challenge with this message.
    Git(&'static str),
}

impl AuthFailure {
    /// The response: 401/403 with the Clever error body, or the Git 401 challenge.
    pub fn response(&self) -> HttpResponse {
        match self {
            AuthFailure::Missing => api_error(
                StatusCode::UNAUTHORIZED,
                ERR_NO_AUTH,
                "Not authenticated: missing Authorization header",
            ),
            AuthFailure::BadScheme => api_error(
                StatusCode::UNAUTHORIZED,
                ERR_NO_AUTH,
                "Not authenticated: expected the `token` authorization scheme",
            ),
            AuthFailure::UnknownToken => api_error(
                StatusCode::UNAUTHORIZED,
                ERR_BAD_TOKEN,
                "Not authenticated: unknown token",
            ),
            AuthFailure::WrongOrg(org) => api_error(
                StatusCode::FORBIDDEN,
                ERR_WRONG_ORG,
                format!("This organisation doesn't belong to you: {org}"),
            ),
            AuthFailure::Git(message) => git_challenge(message),
        }
    }
}

/// Checks the API token of `req` for organisation `org`: 401 when missing or unknown, 403
/// when the token is not allowed on `org`.
pub fn check_api(world: &World, req: &HttpRequest, org: &str) -> Result<(), AuthFailure> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthFailure::Missing)?;
    let token = strip_scheme(value, "token").ok_or(AuthFailure::BadScheme)?;
    match world.tokens.get(token) {
        None => Err(AuthFailure::UnknownToken),
        Some(orgs) if !orgs.contains(org) => Err(AuthFailure::WrongOrg(org.to_owned())),
        Some(_) => Ok(()),
    }
}

/// `value` without its leading `scheme ` (case-insensitive scheme), trimmed.
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.trim().split_once(' ')?;
    if s.eq_ignore_ascii_case(scheme) {
        let t = rest.trim();
        (!t.is_empty()).then_some(t)
    } else {
        None
    }
}

/// User and password of an HTTP basic `Authorization` header.
pub fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = strip_scheme(value, "basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The 401 challenge of the Git endpoint.
pub fn git_challenge(message: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"fake\""))
        .content_type("text/plain")
        .body(format!("{message}\n"))
}

/// Checks Git basic auth for an application of `org`; the user name when accepted.
pub fn check_git(world: &World, req: &HttpRequest, org: &str) -> Result<String, AuthFailure> {
    let (user, password) =
        basic_credentials(req).ok_or(AuthFailure::Git("Authentication required"))?;
    if world.git_strict_user && user != world.git_auth_user {
        return Err(AuthFailure::Git("Unknown user"));
    }
    match world.tokens.get(&password) {
        Some(orgs) if orgs.contains(org) => Ok(user),
        _ => Err(AuthFailure::Git("Invalid credentials")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_case_insensitive_and_needs_a_value() {
        assert_eq!(strip_scheme("token abc", "token"), Some("abc"));
        assert_eq!(strip_scheme("Token  abc ", "token"), Some("abc"));
        assert_eq!(strip_scheme("Bearer abc", "token"), None);
        assert_eq!(strip_scheme("token", "token"), None);
        assert_eq!(strip_scheme("token  ", "token"), None);
    }
}
