//! README's key tables are the declarations' ([`super::keys`],
//! [`super::keys_executors`], `paas_actors::settings`): each row is
//! rendered from one declared key (its name and aliases, its default, its
//! documentation line), and a key documented differently, documented but
//! not declared, or declared but not documented fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use paas_actors::settings::{
    Fallback, Key, RunnerSettings, Setting, Shape, SupervisorSettings, TraceWatch,
};

use super::{keys, keys_executors};

const README: &str = include_str!("../../README.md");

/// A declared key and its default as README's tables show it.
struct Documented {
    key: &'static Key,
    default: String,
}

fn plain(key: &'static Key) -> Documented {
    let default = match &key.default {
        Fallback::Required => "(required)".to_string(),
        Fallback::Absent | Fallback::Declared => "none".to_string(),
        Fallback::Value(v) => v.to_string(),
        Fallback::Text(t) => format!("`{t}`"),
        Fallback::Words(w) => (*w).to_string(),
    };
    Documented { key, default }
}

fn field<S: Default>(setting: &'static Setting<S>) -> Documented {
    Documented {
        key: &setting.key,
        default: setting.default_value().to_string(),
    }
}

/// The key column: the name, a table as `[section.name]`, each alias.
fn key_cell(key: &Key, section: &str) -> String {
    let shown = |name: &str| match key.kind.shape {
        Shape::Table => format!("`[{section}{name}]`"),
        _ => format!("`{name}`"),
    };
    let mut cell = shown(key.name);
    for alias in key.aliases {
        cell.push_str(&format!(
            " (also {}, the documented spelling)",
            shown(alias)
        ));
    }
    cell
}

fn row(doc: &Documented, section: &str) -> String {
    format!(
        "| {} | {} | {} |",
        key_cell(doc.key, section),
        doc.default,
        doc.key.doc_line()
    )
}

/// The rows of the table under README's heading `heading`.
fn readme_rows(heading: &str) -> Vec<&'static str> {
    let start = README
        .lines()
        .position(|l| l == heading)
        .unwrap_or_else(|| panic!("README has no heading {heading:?}"));
    README
        .lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with("## ") && !l.starts_with("### "))
        .filter(|l| l.starts_with("| `"))
        .collect()
}

fn check_table(heading: &str, section: &str, declared: Vec<Documented>) {
    let rows = readme_rows(heading);
    let expected: Vec<String> = declared.iter().map(|d| row(d, section)).collect();
    let mut problems = Vec::new();
    for (doc, want) in declared.iter().zip(&expected) {
        if !rows.contains(&want.as_str()) {
            let written = rows
                .iter()
                .find(|r| r.starts_with(&format!("| {} |", key_cell(doc.key, section))));
            problems.push(format!(
                "`{}` is documented differently or not at all; expected\n{want}\nfound\n{}",
                doc.key.name,
                written.unwrap_or(&"(no row)")
            ));
        }
    }
    for row in &rows {
        if !expected.iter().any(|e| e == row) && !problems.iter().any(|p| p.contains(row)) {
            problems.push(format!("documented but not declared:\n{row}"));
        }
    }
    assert!(problems.is_empty(), "{heading}:\n{}", problems.join("\n\n"));
}

#[test]
fn readme_documents_the_global_keys_as_declared() {
    let declared = keys::GLOBAL
        .iter()
        .copied()
        .map(plain)
        .chain(SupervisorSettings::KEYS.iter().map(field))
        .collect();
    check_table("### Global keys", "", declared);
}

#[test]
fn readme_documents_the_runner_keys_as_declared() {
    let declared = keys::RUNNER
        .iter()
        .copied()
        .map(plain)
        .chain(RunnerSettings::KEYS.iter().map(field))
        .chain(TraceWatch::KEYS.iter().map(field))
        .collect();
    check_table("### `[[runners]]`: common keys", "runners.", declared);
}

#[test]
fn readme_documents_the_executor_keys_as_declared() {
    let clever = keys_executors::CLEVER.iter().copied().map(plain).collect();
    check_table("### `[[runners]]`: `clever-docker`", "runners.", clever);
    let service = keys_executors::SERVICE.iter().copied().map(plain).collect();
    check_table(
        "### `[[runners]]`: `clever-service-docker`",
        "runners.",
        service,
    );
    let local = keys_executors::LOCAL_DOCKER
        .iter()
        .copied()
        .map(plain)
        .collect();
    check_table("### `[[runners]]`: `local-docker`", "runners.", local);
}

/// The check itself fails on a row that differs from its declaration.
#[test]
fn a_row_documented_differently_is_found() {
    let doc = plain(&keys::STATE_FILE);
    let good = row(&doc, "");
    assert!(readme_rows("### Global keys").contains(&good.as_str()));
    let changed = Documented {
        key: &keys::STATE_FILE,
        default: "none".to_string(),
    };
    assert!(!readme_rows("### Global keys").contains(&row(&changed, "").as_str()));
}
