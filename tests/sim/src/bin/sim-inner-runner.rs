//! `sim-inner-runner`: a stand-in for the inner Heptapod Runner, small
//! enough to be linked statically and run in a `FROM scratch` image.
//!
//! The deploy context's Dockerfile runs
//! `/usr/bin/gitlab-runner exec-fetched-job --config RUNNER_TOML JOB_JSON`;
//! test images install this binary at that path. It then does what the
//! real inner runner does as far as the coordinator can see:
//!
//! 1. reads the job (`id`, `token`, `variables`) from `JOB_JSON` and the
//!    coordinator URL from the first `[[runners]]` of `RUNNER_TOML`;
//! 2. appends a line to the job trace (`PATCH /api/v4/jobs/:id/trace` with
//!    header `JOB-TOKEN`, `Content-Range` from offset 0, adopting the
//!    `Range` of a 416 once the trace already holds something);
//! 3. waits `PAAS_SIM_DURATION_MS` milliseconds (job variable, default 0);
//! 4. appends a closing line and sends `PUT /api/v4/jobs/:id` with
//!    `{"token": …, "state": PAAS_SIM_OUTCOME}` (`success` by default;
//!    `failed` adds `failure_reason` `script_failure` and `exit_code` 1).
//!
//! Dependencies: std, serde_json and toml only. HTTP is a minimal HTTP/1.1
//! client over `std::net::TcpStream` (`Connection: close`, plain `http://`
//! only: the fake coordinator listens on 127.0.0.1). Every network call has
//! a timeout; transient failures are retried a bounded number of times.
//! Exit status: 0 when the final state was accepted (or the job is already
//! over: 403), 1 otherwise; progress goes to stderr (`docker logs`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const DEFAULT_CONFIG: &str = "/etc/gitlab-runner/runner.toml";
const DEFAULT_JOB: &str = "/etc/gitlab-runner/job.json";
/// Per-call connect / read / write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per HTTP call on transient failures (connection, 429, 5xx).
const ATTEMPTS: u32 = 5;
/// Longest accepted `PAAS_SIM_DURATION_MS` (one hour).
const MAX_DURATION_MS: u64 = 3_600_000;
/// Largest response read (headers and body).
const MAX_RESPONSE: u64 = 1 << 20;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sim-inner-runner: error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// What the command line, `job.json` and `runner.toml` tell us.
struct Plan {
    base: BaseUrl,
    job_id: i64,
    token: String,
    duration: Duration,
    outcome: String,
}

fn run() -> Result<(), String> {
    let (config_path, job_path) = parse_args(std::env::args().skip(1))?;
    let plan = read_plan(&config_path, &job_path)?;
    eprintln!(
        "sim-inner-runner: job {} on {}:{}, duration {:?}, outcome {}",
        plan.job_id, plan.base.host, plan.base.port, plan.duration, plan.outcome
    );

    let mut offset = 0u64;
    let first = format!(
        "Running with sim-inner-runner {} (paas-sim stand-in for the inner runner)\n",
        env!("CARGO_PKG_VERSION")
    );
    if !append_trace(&plan, &mut offset, &first)? {
        eprintln!("sim-inner-runner: job is over (403 on trace), stopping");
        return Ok(());
    }
    std::thread::sleep(plan.duration);
    let last = if plan.outcome == "success" {
        "Job succeeded\n".to_string()
    } else {
        format!("ERROR: Job failed (simulated outcome {})\n", plan.outcome)
    };
    if !append_trace(&plan, &mut offset, &last)? {
        eprintln!("sim-inner-runner: job is over (403 on trace), stopping");
        return Ok(());
    }
    update_state(&plan)
}

/// `[exec-fetched-job] [--config PATH] [JOB_JSON]`, defaults as in the
/// deploy context's Dockerfile.
fn parse_args(args: impl Iterator<Item = String>) -> Result<(PathBuf, PathBuf), String> {
    let mut config = PathBuf::from(DEFAULT_CONFIG);
    let mut job = PathBuf::from(DEFAULT_JOB);
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "exec-fetched-job" => {}
            "--config" | "-c" => {
                config = PathBuf::from(args.next().ok_or("--config needs a value")?);
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other => job = PathBuf::from(other),
        }
    }
    Ok((config, job))
}

fn read_plan(config_path: &PathBuf, job_path: &PathBuf) -> Result<Plan, String> {
    let job_text = std::fs::read_to_string(job_path)
        .map_err(|e| format!("cannot read {}: {e}", job_path.display()))?;
    let job: serde_json::Value = serde_json::from_str(&job_text)
        .map_err(|e| format!("{} is not JSON: {e}", job_path.display()))?;
    let job_id = job
        .get("id")
        .and_then(|v| v.as_i64())
        .ok_or("job.json: `id` missing or not an integer")?;
    let token = job
        .get("token")
        .and_then(|v| v.as_str())
        .ok_or("job.json: `token` missing or not a string")?
        .to_string();
    let variable = |key: &str| -> Option<String> {
        job.get("variables")?
            .as_array()?
            .iter()
            .find(|v| v.get("key").and_then(|k| k.as_str()) == Some(key))?
            .get("value")?
            .as_str()
            .map(str::to_string)
    };
    let duration_ms = match variable("PAAS_SIM_DURATION_MS") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("PAAS_SIM_DURATION_MS {v:?}: {e}"))?,
    };
    let outcome = variable("PAAS_SIM_OUTCOME").unwrap_or_else(|| "success".to_string());

    let config_text = std::fs::read_to_string(config_path)
        .map_err(|e| format!("cannot read {}: {e}", config_path.display()))?;
    let config: toml::Table = config_text
        .parse()
        .map_err(|e| format!("{} is not TOML: {e}", config_path.display()))?;
    let url = config
        .get("runners")
        .and_then(|r| r.as_array())
        .and_then(|r| r.first())
        .and_then(|r| r.get("url"))
        .and_then(|u| u.as_str())
        .ok_or("runner.toml: no `url` in the first [[runners]]")?;
    Ok(Plan {
        base: BaseUrl::parse(url)?,
        job_id,
        token,
        duration: Duration::from_millis(duration_ms.min(MAX_DURATION_MS)),
        outcome,
    })
}

/// Appends `text` at `*offset`, adopting the server's length on 416.
/// Returns `Ok(false)` when the job no longer accepts updates (403).
fn append_trace(plan: &Plan, offset: &mut u64, text: &str) -> Result<bool, String> {
    let path = format!("/api/v4/jobs/{}/trace", plan.job_id);
    // One resynchronisation (416) plus one final try.
    for _ in 0..3 {
        let end = offset.saturating_add(text.len() as u64);
        let headers = [
            ("JOB-TOKEN", plan.token.as_str()),
            ("Content-Range", &format!("{offset}-{end}")),
            ("Content-Type", "text/plain"),
        ];
        let resp = request_with_retries(&plan.base, "PATCH", &path, &headers, text.as_bytes())?;
        match resp.status {
            202 => {
                *offset = resp.range_end().unwrap_or(end);
                return Ok(true);
            }
            416 => {
                let len = resp
                    .range_end()
                    .ok_or("416 on trace without a usable Range header")?;
                eprintln!("sim-inner-runner: trace is {len} bytes long, appending there");
                *offset = len;
            }
            403 => return Ok(false),
            other => return Err(format!("PATCH {path}: unexpected status {other}")),
        }
    }
    Err(format!("PATCH {path}: offset still refused after resync"))
}

fn update_state(plan: &Plan) -> Result<(), String> {
    let path = format!("/api/v4/jobs/{}", plan.job_id);
    let mut body = serde_json::json!({"token": plan.token, "state": plan.outcome});
    if plan.outcome == "failed" {
        body["failure_reason"] = "script_failure".into();
        body["exit_code"] = 1.into();
    }
    let body = body.to_string();
    let headers = [
        ("JOB-TOKEN", plan.token.as_str()),
        ("Content-Type", "application/json"),
    ];
    let resp = request_with_retries(&plan.base, "PUT", &path, &headers, body.as_bytes())?;
    match resp.status {
        200..=299 => {
            eprintln!(
                "sim-inner-runner: job {} reported {}",
                plan.job_id, plan.outcome
            );
            Ok(())
        }
        403 => {
            eprintln!("sim-inner-runner: job {} already over (403)", plan.job_id);
            Ok(())
        }
        other => Err(format!("PUT {path}: unexpected status {other}")),
    }
}

// ---------------------------------------------------------------------------
// Minimal HTTP/1.1 client
// ---------------------------------------------------------------------------

/// `http://host[:port][/prefix]`.
struct BaseUrl {
    host: String,
    port: u16,
    prefix: String,
}

impl BaseUrl {
    fn parse(url: &str) -> Result<BaseUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("coordinator URL {url:?}: only http:// is supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|e| format!("coordinator URL {url:?}: bad port: {e}"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("coordinator URL {url:?}: no host"));
        }
        Ok(BaseUrl {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `N` of a `Range: 0-N` header.
    fn range_end(&self) -> Option<u64> {
        self.header("Range")?
            .rsplit_once('-')?
            .1
            .trim()
            .parse()
            .ok()
    }
}

fn request_with_retries(
    base: &BaseUrl,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let started = Instant::now();
    let mut last_err = String::new();
    for attempt in 1..=ATTEMPTS {
        match request(base, method, path, headers, body) {
            Ok(resp) if resp.status == 429 || resp.status >= 500 => {
                last_err = format!("{method} {path}: status {}", resp.status);
            }
            Ok(resp) => return Ok(resp),
            Err(e) => last_err = e,
        }
        if attempt < ATTEMPTS && started.elapsed() < Duration::from_secs(60) {
            eprintln!("sim-inner-runner: attempt {attempt} failed ({last_err}), retrying");
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
        }
    }
    Err(last_err)
}

fn request(
    base: &BaseUrl,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let target = format!("{}{}", base.prefix, path);
    let what = format!("{method} {target}");
    let addr = (base.host.as_str(), base.port)
        .to_socket_addrs()
        .map_err(|e| format!("{what}: cannot resolve {}: {e}", base.host))?
        .next()
        .ok_or_else(|| format!("{what}: no address for {}", base.host))?;
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("{what}: cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("{what}: {e}"))?;

    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        base.host,
        base.port,
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush())
        .map_err(|e| format!("{what}: sending: {e}"))?;

    // `Connection: close`: the response ends when the server closes. Only
    // the status line and headers matter to us.
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| format!("{what}: reading the response: {e}"))?;
    parse_response(&raw).ok_or_else(|| format!("{what}: malformed HTTP response"))
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..end)?).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Response { status, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        let u = BaseUrl::parse("http://127.0.0.1:8080/").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("127.0.0.1", 8080, "")
        );
        let u = BaseUrl::parse("http://gitlab.test/sub/").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("gitlab.test", 80, "/sub")
        );
        assert!(BaseUrl::parse("https://x").is_err());
        assert!(BaseUrl::parse("http://:80").is_err());
        assert!(BaseUrl::parse("http://x:notaport").is_err());
    }

    #[test]
    fn response_parsing() {
        let r = parse_response(b"HTTP/1.1 416 Range Not Satisfiable\r\nrange: 0-42\r\n\r\n")
            .expect("valid");
        assert_eq!(r.status, 416);
        assert_eq!(r.range_end(), Some(42));
        assert!(parse_response(b"garbage").is_none());
        assert!(parse_response(b"SMTP 220 hi\r\n\r\n").is_none());
    }

    #[test]
    fn args_follow_the_dockerfile_entrypoint() {
        let args = ["exec-fetched-job", "--config", "/c.toml", "/j.json"].map(String::from);
        let (c, j) = parse_args(args.into_iter()).expect("valid");
        assert_eq!((c, j), (PathBuf::from("/c.toml"), PathBuf::from("/j.json")));
        let (c, j) = parse_args(std::iter::empty()).expect("defaults");
        assert_eq!(
            (c, j),
            (PathBuf::from(DEFAULT_CONFIG), PathBuf::from(DEFAULT_JOB))
        );
        assert!(parse_args(["--bogus".to_string()].into_iter()).is_err());
    }
}
