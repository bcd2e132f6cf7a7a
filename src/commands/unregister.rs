//! `unregister CONFIG --name NAME | --all`: tells each selected runner's
//! coordinator (`DELETE /runners` for legacy tokens; a `glrt-` runner is
//! deleted from GitLab's UI or API, so only its section goes), then removes
//! the `[[runners]]` sections from the file: the text of the other
//! sections, comments and global keys is kept byte for byte, and the file
//! keeps its mode and owner. Refused while a service holds the state
//! file's lock.

use crate::cli::UnregisterArgs;
use crate::config::{Config, ConfigError};
use crate::gitlab::{RunnersApi, Timeouts};
use crate::instance_lock::{InstanceLock, LockError};
use std::path::{Path, PathBuf};

/// Why `unregister` did not remove every selected section.
#[derive(Debug, thiserror::Error)]
pub enum UnregisterError {
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No section has the name given.
    #[error("{0}")]
    NoSuchSection(String),
    /// A service uses the state file, or its lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The sections cannot be cut out of the file safely (told before any
    /// coordinator call).
    #[error(transparent)]
    Edit(#[from] EditError),
    /// No async runtime.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The edited file cannot be written.
    #[error("cannot edit {}: {why}", path.display())]
    Rewrite {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Some coordinator calls failed (each told as it failed; their
    /// sections are kept).
    #[error("{0} runner(s) not unregistered")]
    NotUnregistered(usize),
}

/// Why the sections could not be cut out of the file's text.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum EditError {
    /// The file does not have one `[[runners]]` header per section (inline
    /// arrays, headers inside multi-line strings…).
    #[error(
        "cannot find the `[[runners]]` header of runners[{0}] in the file: remove the section \
         by hand"
    )]
    NoHeader(usize),
    /// The edited text does not parse back to the expected sections.
    #[error("the edited file would not keep the other sections intact ({0}): remove the section by hand")]
    Unsafe(String),
}

/// What a section header line opens.
#[derive(Debug, PartialEq)]
enum Header {
    /// `[[runners]]`: a new runner section.
    Runner,
    /// `[runners.x]` or `[[runners.x]]`: part of the current runner section.
    RunnerSub,
    /// Any other table.
    Other,
}

fn header(line: &str) -> Option<Header> {
    let t = line.trim_start();
    if !t.starts_with('[') {
        return None;
    }
    // Header name: between the brackets, before any comment.
    let body = t.split('#').next().unwrap_or(t).trim_end();
    let name = body.trim_start_matches('[').trim_end_matches(']').trim();
    let array = body.starts_with("[[");
    let dotted: Vec<String> = name
        .split('.')
        .map(|p| p.trim().trim_matches('"').trim_matches('\'').to_string())
        .collect();
    Some(
        match (array, dotted.first().map(String::as_str), dotted.len()) {
            (true, Some("runners"), 1) => Header::Runner,
            (_, Some("runners"), n) if n > 1 => Header::RunnerSub,
            _ => Header::Other,
        },
    )
}

/// `text` without the `[[runners]]` sections whose index is in `remove`.
/// A section spans from its header to the next header that is not one of
/// its sub-tables. The result is parsed back: it must hold exactly the
/// other sections, with the same names and tokens.
pub fn remove_sections(text: &str, remove: &[usize]) -> Result<String, EditError> {
    let mut out = String::with_capacity(text.len());
    let mut index: Option<usize> = None;
    let mut in_runner = false;
    let mut seen = 0usize;
    for line in text.split_inclusive('\n') {
        match header(line) {
            Some(Header::Runner) => {
                index = Some(seen);
                seen += 1;
                in_runner = true;
            }
            Some(Header::RunnerSub) => {}
            Some(Header::Other) => in_runner = false,
            None => {}
        }
        let dropped = in_runner && index.is_some_and(|i| remove.contains(&i));
        if !dropped {
            out.push_str(line);
        }
    }
    if let Some(missing) = remove.iter().find(|&&i| i >= seen) {
        return Err(EditError::NoHeader(*missing));
    }
    check_edit(text, &out, remove)?;
    Ok(out)
}

fn sections(text: &str) -> Result<Vec<toml::Value>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    Ok(match table.get("runners") {
        Some(toml::Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    })
}

fn check_edit(before: &str, after: &str, removed: &[usize]) -> Result<(), EditError> {
    let old = sections(before).map_err(EditError::Unsafe)?;
    let new = sections(after).map_err(EditError::Unsafe)?;
    let kept: Vec<&toml::Value> = old
        .iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(i))
        .map(|(_, v)| v)
        .collect();
    if kept.len() != new.len() || kept.iter().zip(&new).any(|(a, b)| *a != b) {
        return Err(EditError::Unsafe(format!(
            "{} section(s) expected, {} found",
            kept.len(),
            new.len()
        )));
    }
    Ok(())
}

/// Indices of the sections selected by `--name` or `--all`; an error
/// message when no section has that name.
pub fn select(config: &Config, name: Option<&str>, all: bool) -> Result<Vec<usize>, String> {
    if all {
        return Ok((0..config.runners.len()).collect());
    }
    let name = name.unwrap_or_default();
    let found: Vec<usize> = config
        .runners
        .iter()
        .enumerate()
        .filter(|(_, r)| r.name == name)
        .map(|(i, _)| i)
        .collect();
    if found.is_empty() {
        let names: Vec<String> = config
            .runners
            .iter()
            .map(|r| format!("{:?}", r.name))
            .collect();
        return Err(format!(
            "no [[runners]] section is named {name:?} (sections: {})",
            names.join(", ")
        ));
    }
    Ok(found)
}

/// Writes `text` to `path` atomically, keeping the file's mode and owner.
pub fn rewrite(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path)?;
    paas_actors::state::write_atomic(path, text.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    // Only root may give a file away; for anyone else the owner is already theirs.
    let _ = std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()));
    Ok(())
}

/// The `unregister` command.
pub fn run(args: &UnregisterArgs) -> Result<(), UnregisterError> {
    let config = &super::load(args.config.path())?;
    let selected =
        select(config, args.name.as_deref(), args.all).map_err(UnregisterError::NoSuchSection)?;
    // Never while a service runs with this file: it would keep polling
    // with the removed runner, and its state names it.
    let _lock = config
        .state_file
        .as_deref()
        .map(InstanceLock::acquire)
        .transpose()?;
    let text =
        std::fs::read_to_string(args.config.path()).map_err(|source| UnregisterError::Read {
            path: args.config.path().to_path_buf(),
            source,
        })?;
    // Check the edit before any call: a file that cannot be edited safely
    // is reported before a runner is deleted at its coordinator.
    remove_sections(&text, &selected)?;
    let system = crate::runtime::system().map_err(UnregisterError::Runtime)?;
    let (removed, failed) = unregister_at_coordinators(config, &selected, &system);
    if !removed.is_empty() {
        remove_from_file(args.config.path(), &text, &removed)?;
        warn_if_reference_removed(config, &removed);
    }
    if failed > 0 {
        return Err(UnregisterError::NotUnregistered(failed));
    }
    Ok(())
}

/// Unregisters the selected runners at their coordinators, telling each
/// outcome; returns the sections to remove and how many calls failed.
fn unregister_at_coordinators(
    config: &Config,
    selected: &[usize],
    system: &actix_rt::SystemRunner,
) -> (Vec<usize>, usize) {
    let mut removed = Vec::new();
    let mut failed = 0;
    for &i in selected {
        let Some(runner) = config.runners.get(i) else {
            continue;
        };
        if runner.token.expose().starts_with("glrt-") {
            println!(
                "runners[{i}] ({:?}): created in GitLab (glrt- token): delete the runner in \
                 GitLab's UI (Settings > CI/CD > Runners) or API; removing its section only",
                runner.name
            );
            removed.push(i);
            continue;
        }
        let api = RunnersApi::new(&runner.url, Timeouts::default())
            .map(|api| api.with_ca_file(runner.tls_ca_file.clone()));
        let outcome = match api {
            Ok(api) => system
                .block_on(api.unregister(&runner.token, None))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                println!(
                    "runners[{i}] ({:?}): unregistered from {}",
                    runner.name, runner.url
                );
                removed.push(i);
            }
            Err(e) => {
                eprintln!(
                    "heptapod-paas-runner unregister: runners[{i}] ({:?}): {e}; section kept",
                    runner.name
                );
                failed += 1;
            }
        }
    }
    (removed, failed)
}

/// Cuts the `removed` sections out of the file at `path`, whose text is
/// `text`.
fn remove_from_file(path: &Path, text: &str, removed: &[usize]) -> Result<(), UnregisterError> {
    let edited = remove_sections(text, removed)
        .map_err(|e| e.to_string())
        .and_then(|t| rewrite(path, &t).map_err(|e| e.to_string()));
    if let Err(why) = edited {
        return Err(UnregisterError::Rewrite {
            path: path.to_path_buf(),
            why,
        });
    }
    println!(
        "removed {} section(s) from {}",
        removed.len(),
        path.display()
    );
    Ok(())
}

/// Warns when `quota_computation.reference_runner` named a removed runner
/// and no remaining one.
fn warn_if_reference_removed(config: &Config, removed: &[usize]) {
    let reference = &config.quota_computation.reference_runner;
    let reference_gone = removed
        .iter()
        .any(|&i| config.runners.get(i).is_some_and(|r| &r.name == reference));
    let still_named = config
        .runners
        .iter()
        .enumerate()
        .any(|(i, r)| !removed.contains(&i) && &r.name == reference);
    if reference_gone && !still_named {
        eprintln!(
            "warning: quota_computation.reference_runner = {reference:?} named a removed \
             runner: set it to a remaining runner's name before starting the service"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# global comment\nconcurrent = 2\n\n[quota_computation]\nreference_runner = \"a\"\n\
        reference_flavor = \"M\"\nreference_jobs_count = 1\n\n# runner a\n[[runners]]\nname = \"a\"\n\
        token = \"ta\"\n[runners.docker]\nimage = \"x\"\n[[runners.docker.services]]\nname = \"s\"\n\n\
        [[ runners ]]  # second\nname = \"b\"\ntoken = \"tb\"\n\n[session_server]\nx = 1\n\
        [[runners]]\nname = \"c\"\ntoken = \"tc\"\n";

    #[test]
    fn removes_one_section_with_its_subtables_and_keeps_the_rest() {
        let out = remove_sections(TEXT, &[0]).expect("edit");
        assert!(
            !out.contains("name = \"a\"") && !out.contains("image = \"x\""),
            "{out}"
        );
        assert!(
            out.starts_with("# global comment\nconcurrent = 2\n"),
            "{out}"
        );
        assert!(
            out.contains("[[ runners ]]  # second\nname = \"b\""),
            "{out}"
        );
        assert!(
            out.contains("[session_server]\nx = 1\n[[runners]]\nname = \"c\""),
            "{out}"
        );
        let out = remove_sections(TEXT, &[1]).expect("edit");
        assert!(!out.contains("\"b\""), "{out}");
        assert!(out.contains("[session_server]\nx = 1\n"), "{out}");
        let out = remove_sections(TEXT, &[0, 1, 2]).expect("edit");
        assert!(!out.contains("[[runners"), "{out}");
        assert!(out.contains("[session_server]"), "{out}");
    }

    #[test]
    fn an_edit_that_would_damage_the_file_is_refused() {
        let inline = "runners = [{name = \"a\", token = \"t\"}]\n";
        assert_eq!(remove_sections(inline, &[0]), Err(EditError::NoHeader(0)));
        let tricky = "[[runners]]\nname = \"a\"\nnote = \"\"\"\n[[runners]]\n\"\"\"\n[[runners]]\nname = \"b\"\n";
        assert!(matches!(
            remove_sections(tricky, &[1]),
            Err(EditError::Unsafe(_))
        ));
    }
}
