//! Git smart-HTTP endpoint: the real `git http-backend` run as CGI over one bare repository per
//! application, behind HTTP basic auth. A push that moves `refs/heads/master` is a deployment,
//! handed to the simulated inner runner.

use std::io;
use std::path::Path;
use std::process::Stdio;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use tokio::io::AsyncWriteExt;

use super::auth::check_git;
use super::faults::Endpoint;
use super::handlers::{guard, Guard};
use super::inner_runner;
use super::model::{RepoState, SharedWorld};
use super::repos::{git_command, master_commit};

/// Splits `/app_X.git/tail` into the app id and the tail, refusing anything that is not a
/// plain `app_<hex and dashes>.git` name.
fn split_repo_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix('/')?;
    let (repo, tail) = rest.split_once('/')?;
    let id = repo.strip_suffix(".git")?;
    let uuid = id.strip_prefix("app_")?;
    if uuid.is_empty() || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return None;
    }
    Some((id.to_owned(), tail.to_owned()))
}

fn classify(method: &str, tail: &str) -> Endpoint {
    match (method, tail) {
        ("GET", "info/refs") => Endpoint::GitInfoRefs,
        ("POST", "git-upload-pack") => Endpoint::GitUploadPack,
        ("POST", "git-receive-pack") => Endpoint::GitReceivePack,
        _ => Endpoint::Other,
    }
}

fn not_found(what: &str) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain")
        .body(format!("{what}\n"))
}

/// Everything under `/git`: auth, state checks, then CGI.
pub async fn serve(
    world: web::Data<SharedWorld>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let path = req.path().strip_prefix("/git").unwrap_or("").to_owned();
    let Some((app_id, tail)) = split_repo_path(&path) else {
        world
            .lock()
            .enter(Endpoint::Other, req.method().as_str(), req.path());
        return not_found("Repository not found");
    };
    let endpoint = classify(req.method().as_str(), &tail);
    if endpoint == Endpoint::Other {
        world
            .lock()
            .enter(endpoint, req.method().as_str(), req.path());
        return not_found("Not a smart-HTTP git endpoint");
    }
    let reject = match guard(&world, endpoint, &req).await {
        Guard::Answer(r) => return r,
        Guard::ProceedRejectingPush => true,
        _ => false,
    };
    let (user, repo_root, repo_path) = {
        let w = world.lock();
        let Some(app) = w.apps.get(&app_id).filter(|a| !a.deleted) else {
            return not_found("Repository not found");
        };
        let user = match check_git(&w, &req, &app.org) {
            Ok(u) => u,
            Err(f) => return f.response(),
        };
        if app.repo_state(std::time::Instant::now()) != RepoState::Created {
            return not_found("Repository not found (not created yet)");
        }
        (user, w.repo_root.clone(), app.repo_path.clone())
    };
    let before = if endpoint == Endpoint::GitReceivePack {
        master_commit(&repo_path).await
    } else {
        None
    };
    let cgi = CgiRequest {
        repo_root: &repo_root,
        path_info: &path,
        user: &user,
        reject,
    };
    let response = match run_cgi(&req, &cgi, body).await {
        Ok(r) => r,
        Err(e) => {
            return HttpResponse::InternalServerError()
                .content_type("text/plain")
                .body(format!("git http-backend failed: {e}\n"))
        }
    };
    if endpoint == Endpoint::GitReceivePack {
        if let Some(after) = master_commit(&repo_path).await {
            if before.as_deref() != Some(after.as_str()) {
                inner_runner::on_deployment(world.get_ref().clone(), app_id, after).await;
            }
        }
    }
    response
}

struct CgiRequest<'a> {
    repo_root: &'a Path,
    path_info: &'a str,
    user: &'a str,
    reject: bool,
}

async fn run_cgi(
    req: &HttpRequest,
    cgi: &CgiRequest<'_>,
    body: web::Bytes,
) -> io::Result<HttpResponse> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut cmd = git_command();
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", cgi.repo_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", cgi.path_info)
        .env("QUERY_STRING", req.query_string())
        .env("REQUEST_METHOD", req.method().as_str())
        .env("REMOTE_USER", cgi.user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let encoding = header("content-encoding");
    if !encoding.is_empty() {
        cmd.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let protocol = header("git-protocol");
    if !protocol.is_empty() {
        cmd.env("GIT_PROTOCOL", protocol);
    }
    if cgi.reject {
        cmd.env("PAAS_SIM_REJECT_PUSH", "1");
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin for git http-backend"))?;
    let write = async move {
        // git may exit before reading everything (e.g. on errors): ignore a broken pipe.
        let _ = stdin.write_all(&body).await;
        drop(stdin);
    };
    let (_, out) = tokio::join!(write, child.wait_with_output());
    let out = out?;
    parse_cgi_output(&out.stdout).ok_or_else(|| {
        io::Error::other(format!(
            "unparsable CGI output ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}

/// Parses CGI output (headers, blank line, body) into a response; `Status:` gives the code.
fn parse_cgi_output(out: &[u8]) -> Option<HttpResponse> {
    let (head_end, body_start) = find_header_end(out)?;
    let head = std::str::from_utf8(out.get(..head_end)?).ok()?;
    let body = out.get(body_start..)?.to_vec();
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next()?.parse::<u16>().ok()?;
            status = StatusCode::from_u16(code).ok()?;
        } else {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    let mut b = HttpResponse::build(status);
    for (n, v) in headers {
        b.append_header((n, v));
    }
    Some(b.body(body))
}

/// End of the CGI header block and start of the body (handles `\r\n\r\n` and `\n\n`).
fn find_header_end(out: &[u8]) -> Option<(usize, usize)> {
    let crlf = out.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = out.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(c), Some(l)) if l < c + 1 => Some((l, l + 2)),
        (Some(c), _) => Some((c, c + 4)),
        (None, Some(l)) => Some((l, l + 2)),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_paths_are_strict() {
        assert_eq!(
            split_repo_path("/app_ab-12.git/info/refs"),
            Some(("app_ab-12".to_owned(), "info/refs".to_owned()))
        );
        assert_eq!(split_repo_path("/../etc.git/info/refs"), None);
        assert_eq!(split_repo_path("/app_.git/info/refs"), None);
        assert_eq!(split_repo_path("/app_x/y.git/info/refs"), None);
        assert_eq!(split_repo_path("/app_ab12.git"), None);
    }

    #[test]
    fn cgi_output_is_parsed() {
        let r = parse_cgi_output(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope");
        assert_eq!(r.map(|r| r.status()), Some(StatusCode::NOT_FOUND));
        let r = parse_cgi_output(b"Content-Type: x\n\nbody\n\nmore");
        assert_eq!(r.map(|r| r.status()), Some(StatusCode::OK));
        assert!(parse_cgi_output(b"garbage without end").is_none());
        assert!(parse_cgi_output(b"Status: abc\n\n").is_none());
    }
}
