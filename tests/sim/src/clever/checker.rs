//! The inner runner's checks of a pushed build context (pure functions): the `Dockerfile`, the
//! inner `runner.toml`, and `job.json` compared with the job the coordinator handed out after
//! the dependency-proxy rewrite (reimplemented here from the reference's documented rule).
//!
//! Service applications get their own checks: the helper `Dockerfile` (the only pushed file),
//! the helper's token in the env, and each `launch-job` request (its inner `runner.toml` and
//! job, checked like a pushed build context's).

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

/// The ENTRYPOINT the inner image must run.
pub const EXPECTED_ENTRYPOINT: [&str; 5] = [
    "/usr/bin/gitlab-runner",
    "exec-fetched-job",
    "--config",
    "/etc/gitlab-runner/runner.toml",
    "/etc/gitlab-runner/job.json",
];
/// The COPY instructions the Dockerfile must hold.
pub const EXPECTED_COPIES: [[&str; 2]; 2] = [
    ["runner.toml", "/etc/gitlab-runner/runner.toml"],
    ["job.json", "/etc/gitlab-runner/job.json"],
];
/// Keys of the runner table that must never reach the inner `runner.toml` (plus `cc_*`).
pub const FORBIDDEN_INNER_KEYS: [&str; 11] = [
    "paas_job_trace_watch",
    "job_trace_watch",
    "heptapod_runner_main_image",
    "host",
    "quota_max_fraction",
    "local_docker_network_mode",
    "paas_long_polling",
    "heptapod_paas_runner_helper_image",
    "paas_keep_resources_for_reuse_seconds",
    "paas_max_jobs_per_resource",
    "secrets_file",
];
/// Files of a build context.
pub const CONTEXT_FILES: [&str; 3] = ["Dockerfile", "job.json", "runner.toml"];
/// Variable holding the dependency proxy prefix.
pub const PROXY_VARIABLE: &str = "CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX";
/// The CMD of the helper Dockerfile: the helper's HTTP/1 API on port 8080.
pub const HELPER_CMD: [&str; 3] = ["--http1", "--listen-address", "0.0.0.0:8080"];
/// Env variable holding a service application's helper token.
pub const HELPER_TOKEN_VARIABLE: &str = "HEPTAPOD_PAAS_RUNNER_TOKEN";
/// Length of a helper token (characters of `[A-Za-z0-9]`).
pub const HELPER_TOKEN_LEN: usize = 40;
/// Job variable naming the job's top-level group.
pub const ROOT_NAMESPACE_VARIABLE: &str = "CI_PROJECT_ROOT_NAMESPACE";

/// One problem found by a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Machine-friendly kind (e.g. `dockerfile_from`).
    pub kind: &'static str,
    /// Explanation (never contains a token).
    pub message: String,
}

fn finding(kind: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        kind,
        message: message.into(),
    }
}

/// The pushed tree of `master`.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// Top-level entry names.
    pub files: Vec<String>,
    /// `Dockerfile` content, when present and UTF-8.
    pub dockerfile: Option<String>,
    /// `runner.toml` content.
    pub runner_toml: Option<String>,
    /// `job.json` content.
    pub job_json: Option<String>,
}

/// What the inner runner needs to run the job.
#[derive(Debug, Clone)]
pub struct InnerJob {
    /// Coordinator URL from `runner.toml` (no trailing slash).
    pub coordinator_url: String,
    /// Job id.
    pub job_id: i64,
    /// Job token (from `job.json`).
    pub job_token: String,
    /// The pushed job.
    pub job: Value,
}

/// The job to run, when both the coordinator URL and the job are known.
fn inner_job(url: Option<String>, job: Option<(i64, String, Value)>) -> Option<InnerJob> {
    let (coordinator_url, (job_id, job_token, job)) = (url?, job?);
    Some(InnerJob {
        coordinator_url,
        job_id,
        job_token,
        job,
    })
}

/// The image of a `FROM` instruction's arguments (its options skipped).
fn from_image(args: &str) -> &str {
    args.split_whitespace()
        .find(|t| !t.starts_with("--"))
        .unwrap_or("")
}

/// Checks a whole build context; the job to run when `runner.toml` and `job.json` are usable.
pub fn check_build_context(
    ctx: &BuildContext,
    expected_image: &str,
) -> (Vec<Finding>, Option<InnerJob>) {
    let mut findings = Vec::new();
    let present: BTreeSet<&str> = ctx.files.iter().map(String::as_str).collect();
    for f in CONTEXT_FILES {
        if !present.contains(f) {
            findings.push(finding(
                "build_context_missing",
                format!("{f} is missing from the pushed tree"),
            ));
        }
    }
    for f in &present {
        if !CONTEXT_FILES.contains(f) {
            findings.push(finding(
                "build_context_extra",
                format!("unexpected entry {f} in the pushed tree"),
            ));
        }
    }
    if let Some(d) = &ctx.dockerfile {
        findings.extend(check_dockerfile(d, expected_image));
    }
    let url = ctx.runner_toml.as_deref().and_then(|t| {
        let (f, url) = check_runner_toml(t);
        findings.extend(f);
        url
    });
    let job = ctx.job_json.as_deref().and_then(|t| match parse_job(t) {
        Ok(j) => Some(j),
        Err(f) => {
            findings.push(f);
            None
        }
    });
    (findings, inner_job(url, job))
}

/// Dockerfile instructions (keyword upper-cased, arguments), continuation lines joined,
/// comments and blank lines dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(cont) = trimmed.strip_suffix('\\') {
            current.push_str(cont);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let full = std::mem::take(&mut current);
        let (kw, args) = full
            .split_once(char::is_whitespace)
            .unwrap_or((full.as_str(), ""));
        out.push((kw.to_ascii_uppercase(), args.trim().to_owned()));
    }
    if !current.trim().is_empty() {
        let (kw, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((current.as_str(), ""));
        out.push((kw.to_ascii_uppercase(), args.trim().to_owned()));
    }
    out
}

/// Checks that `first` (a Dockerfile's first instruction) is `FROM expected_image`; the
/// finding of kind `kind` otherwise.
fn check_from(
    first: Option<&(String, String)>,
    expected_image: &str,
    kind: &'static str,
) -> Option<Finding> {
    match first {
        Some((kw, args)) if kw == "FROM" => {
            let image = from_image(args);
            (image != expected_image).then(|| {
                finding(
                    kind,
                    format!("FROM {image}: expected FROM {expected_image}"),
                )
            })
        }
        _ => Some(finding(kind, "the first instruction is not FROM")),
    }
}

/// Checks the Dockerfile: `FROM` the expected image first, both `COPY`s, the exec-form
/// `ENTRYPOINT`, and no `CMD` (its arguments would be appended to the entrypoint).
pub fn check_dockerfile(text: &str, expected_image: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let instr = instructions(text);
    findings.extend(check_from(instr.first(), expected_image, "dockerfile_from"));
    if instr.iter().filter(|(kw, _)| kw == "FROM").count() > 1 {
        findings.push(finding(
            "dockerfile_from",
            "more than one FROM (multi-stage build)",
        ));
    }
    for [src, dst] in EXPECTED_COPIES {
        let found = instr.iter().any(|(kw, args)| {
            kw == "COPY" && args.split_whitespace().collect::<Vec<_>>() == [src, dst]
        });
        if !found {
            findings.push(finding(
                "dockerfile_copy",
                format!("missing COPY {src} {dst}"),
            ));
        }
    }
    match instr.iter().rev().find(|(kw, _)| kw == "ENTRYPOINT") {
        None => findings.push(finding("dockerfile_entrypoint", "no ENTRYPOINT")),
        Some((_, args)) => match serde_json::from_str::<Vec<String>>(args) {
            Ok(v) if v == EXPECTED_ENTRYPOINT => {}
            Ok(v) => findings.push(finding(
                "dockerfile_entrypoint",
                format!("ENTRYPOINT {v:?}: expected {EXPECTED_ENTRYPOINT:?}"),
            )),
            Err(_) => findings.push(finding(
                "dockerfile_entrypoint",
                format!("ENTRYPOINT {args} is not in exec (JSON array) form"),
            )),
        },
    }
    if instr.iter().any(|(kw, _)| kw == "CMD") {
        findings.push(finding(
            "dockerfile_cmd",
            "CMD would add arguments to the ENTRYPOINT",
        ));
    }
    findings
}

/// True for the tree of a service application's deployment: one `Dockerfile`, nothing else.
pub fn is_helper_tree(ctx: &BuildContext) -> bool {
    ctx.files.len() == 1 && ctx.files.first().map(String::as_str) == Some("Dockerfile")
}

/// Checks a helper Dockerfile: `FROM` the expected helper image, then the exec-form `CMD`
/// serving the HTTP/1 API, and nothing else.
pub fn check_helper_dockerfile(text: &str, expected_image: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let instr = instructions(text);
    let mut rest = instr.iter();
    findings.extend(check_from(
        rest.next(),
        expected_image,
        "helper_dockerfile_from",
    ));
    match rest.next() {
        Some((kw, args)) if kw == "CMD" => match serde_json::from_str::<Vec<String>>(args) {
            Ok(v) if v == HELPER_CMD => {}
            _ => findings.push(finding(
                "helper_dockerfile_cmd",
                format!("CMD {args}: expected {HELPER_CMD:?} in exec form"),
            )),
        },
        _ => findings.push(finding(
            "helper_dockerfile_cmd",
            "the second instruction is not the helper's CMD",
        )),
    }
    if let Some((kw, _)) = rest.next() {
        findings.push(finding(
            "helper_dockerfile_extra",
            format!("unexpected {kw} after the helper's CMD"),
        ));
    }
    findings
}

/// The image of a helper Dockerfile's first `FROM`, when it has one.
pub fn helper_image(text: &str) -> Option<String> {
    let instr = instructions(text);
    let (kw, args) = instr.first()?;
    if kw != "FROM" {
        return None;
    }
    Some(from_image(args).to_owned()).filter(|i| !i.is_empty())
}

/// Checks the env a service application was deployed with: the Docker socket, and a helper
/// token of [`HELPER_TOKEN_LEN`] characters of `[A-Za-z0-9]` (never quoted in a finding).
pub fn check_service_env(env: &std::collections::BTreeMap<String, String>) -> Vec<Finding> {
    let mut findings = Vec::new();
    if env.get("CC_MOUNT_DOCKER_SOCKET").map(String::as_str) != Some("true") {
        findings.push(finding(
            "env_snapshot",
            "CC_MOUNT_DOCKER_SOCKET=true was not in the env when the deployment started",
        ));
    }
    match env.get(HELPER_TOKEN_VARIABLE) {
        None => findings.push(finding(
            "helper_token",
            format!("{HELPER_TOKEN_VARIABLE} was not in the env when the deployment started"),
        )),
        Some(t) if t.len() != HELPER_TOKEN_LEN || !t.chars().all(|c| c.is_ascii_alphanumeric()) => {
            findings.push(finding(
                "helper_token",
                format!(
                    "{HELPER_TOKEN_VARIABLE} is not {HELPER_TOKEN_LEN} characters of [A-Za-z0-9] \
                     ({} characters)",
                    t.chars().count()
                ),
            ))
        }
        Some(_) => {}
    }
    findings
}

/// A `launch-job` request, as sent to a helper.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchRequest {
    /// Job id.
    pub job_id: i64,
    /// Unique name of the runner section.
    pub runner_name: String,
    /// The job payload, as a JSON string.
    pub specification: String,
    /// The inner `runner.toml`, as a TOML string.
    pub config: String,
}

/// Checks a `launch-job` request like a pushed build context: its `config` as the inner
/// `runner.toml`, its `specification` as `job.json`, and that both name the same job. The
/// job to run when both are usable.
pub fn check_launch(req: &LaunchRequest) -> (Vec<Finding>, Option<InnerJob>) {
    let (mut findings, url) = check_runner_toml(&req.config);
    if req.runner_name.trim().is_empty() {
        findings.push(finding("helper_launch_runner_name", "empty runner_name"));
    }
    let job = match parse_job(&req.specification) {
        Ok(j) => Some(j),
        Err(f) => {
            findings.push(f);
            None
        }
    };
    if let Some((id, _, _)) = &job {
        if *id != req.job_id {
            findings.push(finding(
                "helper_launch_job_id",
                format!(
                    "job_id {} differs from the specification's id {id}",
                    req.job_id
                ),
            ));
            return (findings, None);
        }
    }
    (findings, inner_job(url, job))
}

/// The tenant of a job: the organisation its top-level group maps to in `tenant_orgs`, else
/// `group:<top-level group>` (`group:` when the job names none).
pub fn job_tenant(job: &Value, tenant_orgs: &std::collections::BTreeMap<String, String>) -> String {
    let vars = job_variables(job);
    let group = vars
        .get(ROOT_NAMESPACE_VARIABLE)
        .map(String::as_str)
        .unwrap_or("");
    match tenant_orgs.get(group) {
        Some(org) => org.clone(),
        None => format!("group:{group}"),
    }
}

/// Checks the inner `runner.toml`; the coordinator URL of its runner when present.
pub fn check_runner_toml(text: &str) -> (Vec<Finding>, Option<String>) {
    let mut findings = Vec::new();
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return (
                vec![finding(
                    "runner_toml_syntax",
                    format!("runner.toml does not parse: {}", e.message()),
                )],
                None,
            )
        }
    };
    for key in table.keys().filter(|k| *k != "runners") {
        findings.push(finding(
            "runner_toml_global",
            format!("unexpected global key `{key}`"),
        ));
    }
    let runners = match table.get("runners") {
        Some(toml::Value::Array(a)) => a,
        _ => {
            findings.push(finding("runner_toml_runners", "no [[runners]] array"));
            return (findings, None);
        }
    };
    if runners.len() != 1 {
        findings.push(finding(
            "runner_toml_runners",
            format!(
                "{} [[runners]] sections instead of exactly one",
                runners.len()
            ),
        ));
    }
    let Some(toml::Value::Table(runner)) = runners.first() else {
        return (findings, None);
    };
    match runner.get("executor") {
        Some(toml::Value::String(e)) if e == "docker" => {}
        Some(other) => findings.push(finding(
            "runner_toml_executor",
            format!("executor = {other}: expected \"docker\""),
        )),
        None => findings.push(finding("runner_toml_executor", "no executor")),
    }
    for key in runner.keys() {
        if key.starts_with("cc_") || FORBIDDEN_INNER_KEYS.contains(&key.as_str()) {
            findings.push(finding(
                "runner_toml_forbidden_key",
                format!("`{key}` is for the PAAS runner only and must not reach the inner runner"),
            ));
        }
    }
    if !matches!(runner.get("token"), Some(toml::Value::String(_))) {
        findings.push(finding("runner_toml_token", "no runner token"));
    }
    let url = match runner.get("url") {
        Some(toml::Value::String(u)) if !u.is_empty() => Some(u.trim_end_matches('/').to_owned()),
        _ => {
            findings.push(finding("runner_toml_url", "no coordinator url"));
            None
        }
    };
    (findings, url)
}

/// Parses `job.json`: its id, token and the whole value.
pub fn parse_job(text: &str) -> Result<(i64, String, Value), Finding> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| finding("job_json_syntax", format!("job.json does not parse: {e}")))?;
    let id = v
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| finding("job_json_syntax", "job.json has no integer `id`"))?;
    let token = v
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| finding("job_json_syntax", "job.json has no string `token`"))?
        .to_owned();
    Ok((id, token, v))
}

/// Compares the pushed job with the handed-out one after the dependency-proxy rewrite.
pub fn compare_jobs(pushed: &Value, handed: &Value) -> Vec<Finding> {
    let mut expected = handed.clone();
    dependency_proxy_rewrite(&mut expected);
    if *pushed == expected {
        return Vec::new();
    }
    let empty = serde_json::Map::new();
    let p = pushed.as_object().unwrap_or(&empty);
    let e = expected.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = p.keys().chain(e.keys()).collect();
    let mut parts = Vec::new();
    for k in keys {
        if p.get(k) == e.get(k) {
            continue;
        }
        if k == "image" || k == "services" {
            let show = |v: Option<&Value>| v.map_or("absent".to_owned(), Value::to_string);
            parts.push(format!(
                "{k} (expected {}, got {})",
                show(e.get(k)),
                show(p.get(k))
            ));
        } else {
            parts.push(k.clone());
        }
    }
    vec![finding(
        "job_json_mismatch",
        format!(
            "job.json differs from the job handed out by the coordinator in: {}",
            parts.join(", ")
        ),
    )]
}

/// The job variables as a map (`variables: [{key, value}]`).
pub fn job_variables(job: &Value) -> HashMap<String, String> {
    job.get("variables")
        .and_then(Value::as_array)
        .map(|vars| {
            vars.iter()
                .filter_map(|v| {
                    Some((
                        v.get("key")?.as_str()?.to_owned(),
                        v.get("value")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Applies the dependency-proxy rule: with `CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX` set, Docker
/// Hub images (main and services) get the prefix, and Docker Hub services without an alias get
/// one derived from the original name (`postgres:13` → `postgres`, `tutum/wordpress` →
/// `tutum-wordpress`).
pub fn dependency_proxy_rewrite(job: &mut Value) {
    let vars = job_variables(job);
    let Some(proxy) = vars.get(PROXY_VARIABLE).filter(|p| !p.is_empty()) else {
        return;
    };
    if let Some(name) = job.get_mut("image").and_then(|i| i.get_mut("name")) {
        if let Some(n) = name.as_str() {
            let (domain, remainder) = split_docker_image_domain(&expand_variables(n, &vars));
            if domain == DOCKER_HUB {
                *name = Value::String(format!("{proxy}/{remainder}"));
            }
        }
    }
    let Some(services) = job.get_mut("services").and_then(Value::as_array_mut) else {
        return;
    };
    for service in services.iter_mut() {
        let Some(obj) = service.as_object_mut() else {
            continue;
        };
        let Some(name) = obj.get("name").and_then(Value::as_str) else {
            continue;
        };
        let expanded = expand_variables(name, &vars);
        let (domain, remainder) = split_docker_image_domain(&expanded);
        if domain != DOCKER_HUB {
            continue;
        }
        obj.insert(
            "name".to_owned(),
            Value::String(format!("{proxy}/{remainder}")),
        );
        let has_alias = match obj.get("alias") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if !has_alias {
            let base = expanded
                .rsplit_once(':')
                .map_or(expanded.as_str(), |(b, _)| b);
            obj.insert("alias".to_owned(), Value::String(base.replace('/', "-")));
        }
    }
}

const DOCKER_HUB: &str = "docker.io";

/// Splits an image name into its registry domain (Docker Hub normalised to `docker.io`) and the
/// rest (official images get `library/`), like Docker's reference normalisation.
pub fn split_docker_image_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((d, r)) => (Some(d.to_owned()), r.to_owned()),
        None => (None, name.to_owned()),
    };
    let hub_like = match &domain {
        None => true,
        Some(d) => !d.contains(['.', ':']) && d != "localhost" && d.to_lowercase() == *d,
    };
    if hub_like {
        domain = Some(DOCKER_HUB.to_owned());
        remainder = name.to_owned();
    }
    let mut domain = domain.unwrap_or_else(|| DOCKER_HUB.to_owned());
    if domain == "index.docker.io" {
        domain = DOCKER_HUB.to_owned();
    }
    if domain == DOCKER_HUB && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    (domain, remainder)
}

/// Expands `$NAME` and `${NAME}` with job variables (unknown → empty), recursively in the
/// substituted values, like GitLab Runner (Go's `os.Expand`) as the reference does.
pub fn expand_variables(s: &str, vars: &HashMap<String, String>) -> String {
    expand_depth(s, vars, 0)
}

fn expand_depth(s: &str, vars: &HashMap<String, String>, depth: usize) -> String {
    if depth > 16 {
        return s.to_owned();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        // braces: `{` then at least one char (not a newline) up to the first `}` after it
        if chars.get(i + 1) == Some(&'{') {
            let close = chars
                .iter()
                .enumerate()
                .skip(i + 3)
                .take_while(|(_, ch)| **ch != '\n')
                .find(|(_, ch)| **ch == '}')
                .map(|(j, _)| j);
            let no_newline_first = chars.get(i + 2).is_some_and(|ch| *ch != '\n');
            if let (Some(j), true) = (close, no_newline_first) {
                let group: String = chars
                    .get(i + 1..=j)
                    .map(|g| g.iter().collect())
                    .unwrap_or_default();
                let name = group.trim_matches(|ch| ch == '{' || ch == '}');
                out.push_str(&expand_depth(
                    vars.get(name).map_or("", String::as_str),
                    vars,
                    depth + 1,
                ));
                i = j + 1;
                continue;
            }
        }
        let name: String = chars
            .iter()
            .skip(i + 1)
            .take_while(|ch| ch.is_ascii_alphanumeric() || **ch == '_')
            .collect();
        if name.is_empty() {
            out.push('$');
            i += 1;
        } else {
            i += 1 + name.chars().count();
            out.push_str(&expand_depth(
                vars.get(&name).map_or("", String::as_str),
                vars,
                depth + 1,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IMAGE: &str = "registry.example:443/runner:1";

    fn good_dockerfile() -> String {
        format!(
            "FROM {IMAGE}\nCOPY runner.toml /etc/gitlab-runner/runner.toml\n\
             COPY job.json /etc/gitlab-runner/job.json\nENV DEBUG=\"true\"\n\
             ENTRYPOINT [\"/usr/bin/gitlab-runner\", \"exec-fetched-job\", \
             \"--config\", \"/etc/gitlab-runner/runner.toml\",\"/etc/gitlab-runner/job.json\"]\n"
        )
    }

    fn kinds(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn good_dockerfile_passes() {
        assert_eq!(check_dockerfile(&good_dockerfile(), IMAGE), vec![]);
    }

    #[test]
    fn bad_dockerfiles_are_flagged() {
        let cases = [
            (
                good_dockerfile().replace(IMAGE, "alpine"),
                "dockerfile_from",
            ),
            (
                good_dockerfile().replace("COPY job.json", "COPY jobs.json"),
                "dockerfile_copy",
            ),
            (
                good_dockerfile().replace("\"--config\", ", ""),
                "dockerfile_entrypoint",
            ),
            (
                good_dockerfile()
                    .replace("ENTRYPOINT [", "ENTRYPOINT gitlab-runner [")
                    .to_owned(),
                "dockerfile_entrypoint",
            ),
            (
                format!("{}CMD [\"x\"]\n", good_dockerfile()),
                "dockerfile_cmd",
            ),
            (
                format!("# c\nRUN true\n{}", good_dockerfile()),
                "dockerfile_from",
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(kinds(&check_dockerfile(&text, IMAGE)), vec![kind], "{text}");
        }
    }

    const GOOD_TOML: &str = "[[runners]]\nname = \"r\"\nurl = \"http://127.0.0.1:1/\"\n\
        token = \"t\"\nexecutor = \"docker\"\n[runners.docker]\nimage = \"alpine\"\n";

    #[test]
    fn good_runner_toml_passes_and_gives_the_url() {
        let (f, url) = check_runner_toml(GOOD_TOML);
        assert_eq!(f, vec![]);
        assert_eq!(url.as_deref(), Some("http://127.0.0.1:1"));
    }

    #[test]
    fn bad_runner_tomls_are_flagged() {
        let cases = [
            (
                GOOD_TOML.replace("\"docker\"\n[", "\"clever-docker\"\n["),
                vec!["runner_toml_executor"],
            ),
            (
                format!("concurrent = 3\n{GOOD_TOML}"),
                vec!["runner_toml_global"],
            ),
            (
                format!("{GOOD_TOML}[[runners]]\nurl = \"x\"\n"),
                vec!["runner_toml_runners"],
            ),
            (
                GOOD_TOML.replace("name = \"r\"", "cc_token = \"s\""),
                vec!["runner_toml_forbidden_key"],
            ),
            (
                GOOD_TOML.replace("name = \"r\"", "host = \"h\""),
                vec!["runner_toml_forbidden_key"],
            ),
            (
                format!("{GOOD_TOML}[runners.paas_job_trace_watch]\ntimeout_seconds = 3\n"),
                vec!["runner_toml_forbidden_key"],
            ),
            (
                GOOD_TOML.replace("url = \"http://127.0.0.1:1/\"\n", ""),
                vec!["runner_toml_url"],
            ),
            ("[[runners]\n".to_owned(), vec!["runner_toml_syntax"]),
        ];
        for (text, expected) in cases {
            assert_eq!(kinds(&check_runner_toml(&text).0), expected, "{text}");
        }
    }

    #[test]
    fn build_context_lists_missing_and_extra_files() {
        let ctx = BuildContext {
            files: vec!["Dockerfile".into(), "README".into(), "runner.toml".into()],
            dockerfile: Some(good_dockerfile()),
            runner_toml: Some(GOOD_TOML.to_owned()),
            job_json: None,
        };
        let (f, job) = check_build_context(&ctx, IMAGE);
        assert_eq!(
            kinds(&f),
            vec!["build_context_missing", "build_context_extra"]
        );
        assert!(job.is_none());
    }

    const HELPER_IMAGE: &str = "registry.example/helper:testing";

    fn helper_dockerfile() -> String {
        format!("FROM {HELPER_IMAGE}\nCMD [\"--http1\", \"--listen-address\", \"0.0.0.0:8080\"]\n")
    }

    #[test]
    fn the_helper_dockerfile_is_checked() {
        assert_eq!(
            check_helper_dockerfile(&helper_dockerfile(), HELPER_IMAGE),
            vec![]
        );
        assert_eq!(
            helper_image(&helper_dockerfile()).as_deref(),
            Some(HELPER_IMAGE)
        );
        let cases = [
            (
                helper_dockerfile().replace(HELPER_IMAGE, "alpine"),
                vec!["helper_dockerfile_from"],
            ),
            (
                helper_dockerfile().replace("0.0.0.0:8080", "0.0.0.0:80"),
                vec!["helper_dockerfile_cmd"],
            ),
            (
                format!("{}RUN true\n", helper_dockerfile()),
                vec!["helper_dockerfile_extra"],
            ),
            (
                good_dockerfile(),
                vec![
                    "helper_dockerfile_from",
                    "helper_dockerfile_cmd",
                    "helper_dockerfile_extra",
                ],
            ),
            (
                String::new(),
                vec!["helper_dockerfile_from", "helper_dockerfile_cmd"],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                kinds(&check_helper_dockerfile(&text, HELPER_IMAGE)),
                expected,
                "{text}"
            );
        }
        let tree = |files: &[&str]| BuildContext {
            files: files.iter().map(|f| (*f).to_owned()).collect(),
            ..BuildContext::default()
        };
        assert!(is_helper_tree(&tree(&["Dockerfile"])));
        assert!(!is_helper_tree(&tree(&["Dockerfile", "job.json"])));
        assert!(!is_helper_tree(&tree(&[])));
    }

    #[test]
    fn the_service_env_needs_the_socket_and_a_well_formed_token() {
        let env = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let token = "a".repeat(HELPER_TOKEN_LEN);
        let good = env(&[
            ("CC_MOUNT_DOCKER_SOCKET", "true"),
            (HELPER_TOKEN_VARIABLE, &token),
        ]);
        assert_eq!(check_service_env(&good), vec![]);
        let short = env(&[
            ("CC_MOUNT_DOCKER_SOCKET", "true"),
            (HELPER_TOKEN_VARIABLE, "s3cr3t-but-short"),
        ]);
        let f = check_service_env(&short);
        assert_eq!(kinds(&f), vec!["helper_token"]);
        assert!(f.iter().all(|f| !f.message.contains("s3cr3t")));
        assert_eq!(
            kinds(&check_service_env(&env(&[]))),
            vec!["env_snapshot", "helper_token"]
        );
    }

    fn launch(job_id: i64, spec: &Value) -> LaunchRequest {
        LaunchRequest {
            job_id,
            runner_name: "glrt-001".to_owned(),
            specification: spec.to_string(),
            config: GOOD_TOML.to_owned(),
        }
    }

    #[test]
    fn launch_requests_are_checked_like_build_contexts() {
        let spec = json!({"id": 7, "token": "jt"});
        let (f, job) = check_launch(&launch(7, &spec));
        assert_eq!(f, vec![]);
        let job = job.map(|j| (j.job_id, j.job_token, j.coordinator_url));
        assert_eq!(
            job,
            Some((7, "jt".to_owned(), "http://127.0.0.1:1".to_owned()))
        );
        let (f, job) = check_launch(&launch(8, &spec));
        assert_eq!(kinds(&f), vec!["helper_launch_job_id"]);
        assert!(job.is_none());
        let mut bad = launch(7, &spec);
        bad.config = GOOD_TOML.replace("name = \"r\"", "paas_max_jobs_per_resource = 3");
        bad.runner_name = " ".to_owned();
        bad.specification = "{".to_owned();
        let (f, job) = check_launch(&bad);
        assert_eq!(
            kinds(&f),
            vec![
                "runner_toml_forbidden_key",
                "helper_launch_runner_name",
                "job_json_syntax"
            ]
        );
        assert!(job.is_none());
    }

    #[test]
    fn a_job_tenant_is_its_groups_organisation() {
        let job = json!({"variables": [{"key": ROOT_NAMESPACE_VARIABLE, "value": "acme"}]});
        let mut orgs = std::collections::BTreeMap::new();
        assert_eq!(job_tenant(&job, &orgs), "group:acme");
        orgs.insert("acme".to_owned(), "orga_1".to_owned());
        assert_eq!(job_tenant(&job, &orgs), "orga_1");
        assert_eq!(job_tenant(&json!({}), &orgs), "group:");
    }

    #[test]
    fn image_domains() {
        let cases = [
            ("postgres:13", "docker.io", "library/postgres:13"),
            ("tutum/wordpress", "docker.io", "tutum/wordpress"),
            ("index.docker.io/foo/bar", "docker.io", "foo/bar"),
            ("docker.io/redis", "docker.io", "library/redis"),
            ("registry.example:5000/x/y", "registry.example:5000", "x/y"),
            ("localhost/x", "localhost", "x"),
            ("Upper/x", "Upper", "x"),
        ];
        for (name, d, r) in cases {
            assert_eq!(
                split_docker_image_domain(name),
                (d.to_owned(), r.to_owned()),
                "{name}"
            );
        }
    }

    #[test]
    fn variable_expansion_matches_the_reference_examples() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            expand_variables("somethin-${FOO-BAR}-hop", &vars(&[("FOO-BAR", "foo")])),
            "somethin-foo-hop"
        );
        assert_eq!(
            expand_variables("somethin-$FOO_BAR-hop", &vars(&[("FOO_BAR", "foo")])),
            "somethin-foo-hop"
        );
        assert_eq!(
            expand_variables("$FOO_BAR-hop", &vars(&[("FOO_BAR", "foo")])),
            "foo-hop"
        );
        assert_eq!(
            expand_variables("somethin-$FOO-BAR-hop", &vars(&[("FOO-BAR", "foo")])),
            "somethin--BAR-hop"
        );
        assert_eq!(
            expand_variables("somethin-${FOO-${BAR}}-hop", &vars(&[("FOO-BAR", "foo")])),
            "somethin-}-hop"
        );
        assert_eq!(
            expand_variables("somethin-${FOO-${BAR}}-hop", &vars(&[("FOO-${BAR", "foo")])),
            "somethin-foo}-hop"
        );
        assert_eq!(
            expand_variables(
                "somethin-${FOO}-hop",
                &vars(&[("FOO", "foo${BAR}"), ("BAR", "bar")])
            ),
            "somethin-foobar-hop"
        );
        assert_eq!(expand_variables("a$ b$", &vars(&[])), "a$ b$");
        assert_eq!(expand_variables("$A", &vars(&[("A", "$A")])), "$A");
    }

    fn handed(proxy: Option<&str>) -> Value {
        let mut variables =
            vec![json!({"key": "CI_JOB_ID", "value": "7", "public": true, "masked": false})];
        if let Some(p) = proxy {
            variables
                .push(json!({"key": PROXY_VARIABLE, "value": p, "public": true, "masked": false}));
        }
        json!({"id": 7, "token": "jt", "image": {"name": "alpine:3"},
               "services": [{"name": "postgres:13"}, {"name": "tutum/wordpress", "alias": ""},
                            {"name": "redis", "alias": "cache"}, {"name": "quay.io/x/y:1"}],
               "variables": variables, "steps": []})
    }

    #[test]
    fn dependency_proxy_rewrite_follows_the_rule() {
        let mut job = handed(Some("gitlab.example:443/grp/dependency_proxy/containers"));
        dependency_proxy_rewrite(&mut job);
        let p = "gitlab.example:443/grp/dependency_proxy/containers";
        assert_eq!(job["image"]["name"], format!("{p}/library/alpine:3"));
        assert_eq!(
            job["services"][0],
            json!({"name": format!("{p}/library/postgres:13"), "alias": "postgres"})
        );
        assert_eq!(
            job["services"][1],
            json!({"name": format!("{p}/tutum/wordpress"), "alias": "tutum-wordpress"})
        );
        assert_eq!(
            job["services"][2],
            json!({"name": format!("{p}/library/redis"), "alias": "cache"})
        );
        assert_eq!(job["services"][3], json!({"name": "quay.io/x/y:1"}));

        let mut unchanged = handed(None);
        dependency_proxy_rewrite(&mut unchanged);
        assert_eq!(unchanged, handed(None));
    }

    #[test]
    fn job_comparison() {
        let h = handed(Some("proxy"));
        let mut good = h.clone();
        dependency_proxy_rewrite(&mut good);
        assert_eq!(compare_jobs(&good, &h), vec![]);
        // pushing the job without the rewrite is a violation naming image and services
        let f = compare_jobs(&h, &h);
        assert_eq!(kinds(&f), vec!["job_json_mismatch"]);
        assert!(f
            .iter()
            .all(|f| f.message.contains("image") && f.message.contains("services")));
        // an altered variable is named by key only
        let mut bad = good.clone();
        bad["variables"] = json!([]);
        let f = compare_jobs(&bad, &h);
        assert!(f.iter().all(|f| f.message.ends_with("variables")), "{f:?}");
        // without proxy the job must be identical
        let plain = handed(None);
        assert_eq!(compare_jobs(&plain, &plain), vec![]);
    }
}
