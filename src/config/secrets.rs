//! `secrets_file` indirection: any string value written `secret:KEY`
//! anywhere in the configuration is replaced by the value of `KEY` in the
//! secrets file (a flat TOML table of strings), before validation.
//!
//! A `[[runners]]` section may name its own `secrets_file` (where the
//! Python runner 1.1 reads it): that section's `secret:KEY` values are then
//! looked up in it, the rest of the file in the top-level one. 1.1 looks up
//! `token`, `cc_token`, `cc_gitlab_namespace_attributes_token` and the
//! trace-watch `token` there; every `secret:` value of the section is
//! looked up here, as the top-level file does for the whole file.
//!
//! A secrets file path is relative to the configuration file's directory.
//! A reference to an undefined key is an error naming both the referring key
//! and the secret's name (never its value).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::Value;

use super::fields::{describe, Ctx};
use super::raw;

/// The key naming the secrets file.
pub(crate) const SECRETS_FILE_KEY: &str = "secrets_file";
/// The prefix marking a string value as a reference to a secret.
pub(crate) const SECRET_PREFIX: &str = "secret:";

/// Where the secrets come from, for messages.
enum Source {
    /// No `secrets_file` key.
    None,
    /// The file could not be loaded (already reported).
    Broken,
    /// Loaded from this path.
    File(PathBuf, HashMap<String, String>),
}

/// Replaces every `secret:KEY` string of `table` (except the
/// `secrets_file` keys themselves), recording problems in `ctx`.
pub(crate) fn substitute(table: &mut toml::Table, config_dir: &Path, ctx: &mut Ctx<'_>) {
    let source = load(table, "", config_dir, ctx);
    for (key, value) in table.iter_mut() {
        match (key.as_str(), value) {
            (SECRETS_FILE_KEY, _) => {}
            (RUNNERS, Value::Array(sections)) => {
                for (i, section) in sections.iter_mut().enumerate() {
                    let path = format!("{RUNNERS}[{i}]");
                    match section {
                        Value::Table(t) => runner_section(t, &path, &source, config_dir, ctx),
                        other => walk(other, &path, &source, ctx),
                    }
                }
            }
            (_, value) => walk(value, key, &source, ctx),
        }
    }
}

/// The key of the runner sections.
const RUNNERS: &str = "runners";

/// A runner section: its own secrets file when it names one, else `top`.
fn runner_section(
    section: &mut toml::Table,
    path: &str,
    top: &Source,
    config_dir: &Path,
    ctx: &mut Ctx<'_>,
) {
    let own = section
        .contains_key(SECRETS_FILE_KEY)
        .then(|| load(section, path, config_dir, ctx));
    let source = own.as_ref().unwrap_or(top);
    for (key, value) in section.iter_mut() {
        if key != SECRETS_FILE_KEY {
            walk(value, &format!("{path}.{key}"), source, ctx);
        }
    }
}

/// The secrets file named by `table` (the top level when `path` is empty,
/// else the runner section at `path`).
fn load(table: &toml::Table, path: &str, config_dir: &Path, ctx: &mut Ctx<'_>) -> Source {
    let Some(value) = table.get(SECRETS_FILE_KEY) else {
        return Source::None;
    };
    let key = if path.is_empty() {
        SECRETS_FILE_KEY.to_string()
    } else {
        format!("{path}.{SECRETS_FILE_KEY}")
    };
    let key = key.as_str();
    let Some(name) = value.as_str().filter(|s| !s.is_empty()) else {
        ctx.problem(
            key,
            format!(
                "expected the path of a TOML file of secrets (a non-empty string), found {}",
                ctx.found(key, value)
            ),
        );
        return Source::Broken;
    };
    let path = config_dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            ctx.problem(
                key,
                format!("cannot read secrets file {}: {e}", path.display()),
            );
            return Source::Broken;
        }
    };
    let doc = match raw::parse(&text) {
        Ok(d) => d,
        Err(e) => {
            let at = e.line.map(|l| format!(" at line {l}")).unwrap_or_default();
            ctx.problem(
                key,
                format!(
                    "secrets file {} is not valid TOML{at}: {}",
                    path.display(),
                    e.message
                ),
            );
            return Source::Broken;
        }
    };
    let mut secrets = HashMap::new();
    let mut ok = true;
    for (k, v) in &doc.table {
        match v.as_str() {
            Some(s) => {
                secrets.insert(k.clone(), s.to_string());
            }
            None => {
                ok = false;
                let at = doc
                    .lines
                    .line_of(k)
                    .map(|l| format!(" (line {l})"))
                    .unwrap_or_default();
                ctx.problem(
                    key,
                    format!(
                        "secret `{k}` in {}{at}: expected a string, found {} \
                         (the secrets file is a flat table of strings)",
                        path.display(),
                        describe(v)
                    ),
                );
            }
        }
    }
    if ok {
        Source::File(path, secrets)
    } else {
        Source::Broken
    }
}

fn walk(value: &mut Value, path: &str, source: &Source, ctx: &mut Ctx<'_>) {
    match value {
        Value::String(s) => {
            let Some(name) = s.strip_prefix(SECRET_PREFIX) else {
                return;
            };
            let name = name.trim().to_string();
            match source {
                Source::File(file, secrets) => match secrets.get(&name) {
                    Some(secret) => {
                        *s = secret.clone();
                        ctx.secret_paths.insert(path.to_string());
                    }
                    None => ctx.problem(
                        path,
                        format!(
                            "refers to secret `{name}`, which is not defined in secrets file {}",
                            file.display()
                        ),
                    ),
                },
                Source::None => ctx.problem(
                    path,
                    format!(
                        "refers to secret `{name}`, but no `{SECRETS_FILE_KEY}` is configured \
                         (expected `{SECRETS_FILE_KEY} = \"path/to/secrets.toml\"` at the top \
                         level or in this `[[runners]]` section)"
                    ),
                ),
                // The file's own problem is already reported.
                Source::Broken => {}
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &format!("{path}[{i}]"), source, ctx);
            }
        }
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                walk(v, &format!("{path}.{k}"), source, ctx);
            }
        }
        _ => {}
    }
}
