//! The man page and the bash, zsh and fish completions, written from the
//! command-line definition in `src/cli.rs` so that they never differ from
//! `--help` (the hidden `generate-cli-docs` command; `scripts/package` puts
//! the files into the Debian package).
//!
//! clap 2 has no documented API to walk a definition: the man page reads the
//! fields that clap 2.34 keeps public for its own completion generators
//! (`App::p`: `meta`, `flags`, `opts`, `positionals`, `subcommands`). The
//! test below checks the result against `--help` of every command.

use crate::build_info;
use crate::cli::{CliDocsArgs, Command};
use std::io;
use std::path::{Path, PathBuf};
use structopt::clap::{App, AppSettings, ArgSettings, Shell};
use structopt::StructOpt;

/// The program name, as installed.
pub const BIN_NAME: &str = "heptapod-paas-runner";

/// Files written by [`write_all`], by name.
pub const MAN_PAGE: &str = "heptapod-paas-runner.1";
pub const BASH: &str = "heptapod-paas-runner.bash";
pub const ZSH: &str = "_heptapod-paas-runner";
pub const FISH: &str = "heptapod-paas-runner.fish";

/// The man page and the completions, in memory.
pub struct CliDocs {
    pub man_page: String,
    pub bash: Vec<u8>,
    pub zsh: Vec<u8>,
    pub fish: Vec<u8>,
}

/// Renders everything from the definition. `date` is the man page's date
/// (`YYYY-MM-DD`).
pub fn render(date: &str) -> CliDocs {
    let mut app = Command::clap();
    // Hidden commands stay out of the completions as they are out of --help.
    app.p
        .subcommands
        .retain(|sub| !sub.p.is_set(AppSettings::Hidden));
    // Settings first (as parsing does): clap's completion generator adds the
    // -h/-V flags before it propagates `VersionlessSubcommands`.
    app.p.propagate_settings();
    let mut bash = Vec::new();
    let mut zsh = Vec::new();
    let mut fish = Vec::new();
    // The first generation also adds clap's own -h/-V flags and `help`
    // command to the definition, which the man page then lists too.
    app.gen_completions_to(BIN_NAME, Shell::Bash, &mut bash);
    app.gen_completions_to(BIN_NAME, Shell::Zsh, &mut zsh);
    app.gen_completions_to(BIN_NAME, Shell::Fish, &mut fish);
    CliDocs {
        man_page: man_page(&app, date),
        bash,
        zsh,
        fish,
    }
}

/// The files cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write into {}: {source}", dir.display())]
pub struct CliDocsError {
    /// The directory given.
    pub dir: PathBuf,
    /// Why.
    pub source: io::Error,
}

/// The `generate-cli-docs DIR` command: writes the files and prints their
/// paths.
pub fn run(args: &CliDocsArgs) -> Result<(), CliDocsError> {
    let files = write_all(&args.dir).map_err(|source| CliDocsError {
        dir: args.dir.clone(),
        source,
    })?;
    for file in files {
        println!("{}", file.display());
    }
    Ok(())
}

/// Writes the four files into `dir` (created if missing) and returns their
/// paths.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let docs = render(build_info::BUILD_DATE);
    std::fs::create_dir_all(dir)?;
    let files: [(&str, &[u8]); 4] = [
        (MAN_PAGE, docs.man_page.as_bytes()),
        (BASH, &docs.bash),
        (ZSH, &docs.zsh),
        (FISH, &docs.fish),
    ];
    let mut written = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content)?;
        written.push(path);
    }
    Ok(written)
}

/// Escapes text for roff: backslashes, hyphens (so they are not broken or
/// turned into dashes), and a leading control character on a line.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|line| {
            let line = line.trim();
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One option or argument: the `.TP` tag line and its description.
struct Entry {
    tag: String,
    text: String,
}

fn describe(help: Option<&str>, long_help: Option<&str>) -> String {
    roff(long_help.or(help).unwrap_or(""))
}

fn with_values(mut text: String, default: Option<String>, possible: Option<&[&str]>) -> String {
    if let Some(values) = possible {
        text.push_str(&format!("\n.br\nOne of: {}.", roff(&values.join(", "))));
    }
    if let Some(default) = default {
        text.push_str(&format!("\n.br\nDefault: {}.", roff(&default)));
    }
    text
}

/// The options of one command (flags and options with a value), in the
/// order `--help` shows them, hidden ones left out.
fn options(app: &App) -> Vec<(usize, String, Entry)> {
    let mut out = Vec::new();
    let switch = |short: Option<char>, long: Option<&str>| {
        let mut names = Vec::new();
        if let Some(s) = short {
            names.push(format!("\\fB\\-{}\\fR", roff(&s.to_string())));
        }
        if let Some(l) = long {
            names.push(format!("\\fB\\-\\-{}\\fR", roff(l)));
        }
        names.join(", ")
    };
    for f in &app.p.flags {
        if f.b.is_set(ArgSettings::Hidden) {
            continue;
        }
        let tag = switch(f.s.short, f.s.long);
        let text = describe(f.b.help, f.b.long_help);
        out.push((f.s.disp_ord, f.b.name.to_owned(), Entry { tag, text }));
    }
    for o in &app.p.opts {
        if o.b.is_set(ArgSettings::Hidden) {
            continue;
        }
        let value =
            o.v.val_names
                .as_ref()
                .and_then(|names| names.values().next().copied())
                .unwrap_or(o.b.name);
        let tag = format!("{} \\fI{}\\fR", switch(o.s.short, o.s.long), roff(value));
        let default = o.v.default_val.map(|d| d.to_string_lossy().into_owned());
        let text = with_values(
            describe(o.b.help, o.b.long_help),
            default,
            o.v.possible_vals.as_deref(),
        );
        out.push((o.s.disp_ord, o.b.name.to_owned(), Entry { tag, text }));
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

/// The positional arguments of one command, in order.
fn positionals(app: &App) -> Vec<(String, Entry)> {
    app.p
        .positionals
        .values()
        .filter(|p| !p.b.is_set(ArgSettings::Hidden))
        .map(|p| {
            let name =
                p.v.val_names
                    .as_ref()
                    .and_then(|names| names.values().next().copied())
                    .unwrap_or(p.b.name);
            let entry = Entry {
                tag: format!("\\fI{}\\fR", roff(name)),
                text: describe(p.b.help, p.b.long_help),
            };
            (name.to_owned(), entry)
        })
        .collect()
}

fn synopsis(full_name: &str, app: &App) -> String {
    let mut line = format!(".B {}\n", roff(full_name));
    if app.p.meta.name == "help" {
        line.push_str("[\\fICOMMAND\\fR]");
        return line;
    }
    if app.p.has_visible_subcommands() {
        line.push_str("\\fICOMMAND\\fR ");
    }
    line.push_str("[\\fIOPTIONS\\fR]");
    for (name, _) in positionals(app) {
        line.push_str(&format!(" \\fI{}\\fR", roff(&name)));
    }
    line
}

fn entries(out: &mut String, list: impl IntoIterator<Item = Entry>) {
    for entry in list {
        out.push_str(&format!(".TP\n{}\n{}\n", entry.tag, entry.text));
    }
}

/// The whole man page (roff, section 1).
pub fn man_page(app: &App, date: &str) -> String {
    let meta = &app.p.meta;
    let title = roff(&BIN_NAME.to_uppercase());
    let source = format!("{BIN_NAME} {}", env!("CARGO_PKG_VERSION"));
    let mut out = String::new();
    out.push_str(&format!(
        ".TH {title} 1 \"{}\" \"{}\" \"User Commands\"\n",
        roff(date),
        roff(&source)
    ));
    out.push_str(&format!(
        ".SH NAME\n{} \\- {}\n",
        roff(BIN_NAME),
        roff(env!("CARGO_PKG_DESCRIPTION"))
    ));

    out.push_str(".SH SYNOPSIS\n");
    let visible: Vec<&App> = app
        .p
        .subcommands
        .iter()
        .filter(|sub| !sub.p.is_set(AppSettings::Hidden))
        .collect();
    for sub in &visible {
        out.push_str(&synopsis(&format!("{BIN_NAME} {}", sub.p.meta.name), sub));
        out.push_str("\n.br\n");
    }
    out.push_str(&synopsis(BIN_NAME, app));
    out.push('\n');

    out.push_str(".SH DESCRIPTION\n");
    out.push_str(&roff(meta.long_about.or(meta.about).unwrap_or("")));
    out.push('\n');

    out.push_str(".SH OPTIONS\n");
    entries(&mut out, options(app).into_iter().map(|(_, _, e)| e));

    out.push_str(".SH COMMANDS\n");
    for sub in &visible {
        let name = &sub.p.meta.name;
        out.push_str(&format!(
            ".SS \"{}\"\n",
            roff(&format!("{BIN_NAME} {name}"))
        ));
        let about = sub.p.meta.long_about.or(sub.p.meta.about).unwrap_or("");
        out.push_str(&format!("{}\n.PP\n", roff(about)));
        out.push_str(&synopsis(&format!("{BIN_NAME} {name}"), sub));
        out.push('\n');
        // clap's own `help` command takes command names only.
        if name != "help" {
            entries(&mut out, positionals(sub).into_iter().map(|(_, e)| e));
            entries(&mut out, options(sub).into_iter().map(|(_, _, e)| e));
        }
    }

    if let Some(more) = meta.more_help {
        out.push_str(".SH NOTES\n");
        out.push_str(&roff(more).replace('\n', "\n.PP\n"));
        out.push('\n');
    }
    out.push_str(&format!(
        ".SH VERSION\nThis page describes {} {}.\n",
        roff(BIN_NAME),
        roff(build_info::VERSION)
    ));
    out.push_str(".SH SEE ALSO\n");
    out.push_str(&format!(
        "The project's README and the systemd unit \\fI{}.service\\fR. {}\n",
        roff(BIN_NAME),
        roff(env!("CARGO_PKG_REPOSITORY"))
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// What `--help` shows for `args` (clap prints it through an error).
    fn help(args: &[&str]) -> String {
        let mut argv = vec![BIN_NAME];
        argv.extend_from_slice(args);
        argv.push("--help");
        match Command::clap().get_matches_from_safe(argv) {
            Err(e) => e.message,
            Ok(_) => panic!("--help must not parse as a command: {args:?}"),
        }
    }

    /// The lines of one section (`FLAGS:`, `OPTIONS:`, `ARGS:`,
    /// `SUBCOMMANDS:`) of a `--help` text: indented or blank lines up to the
    /// next title.
    fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
        text.lines()
            .skip_while(|l| l.trim_end() != title)
            .skip(1)
            .take_while(|l| l.trim().is_empty() || l.starts_with(' '))
            .collect()
    }

    /// Entry lines start within 8 columns; wrapped help text further right.
    fn entry_lines<'a>(lines: &[&'a str]) -> Vec<&'a str> {
        lines
            .iter()
            .filter(|l| !l.trim().is_empty() && l.len() - l.trim_start().len() <= 8)
            .map(|l| l.trim_start())
            .collect()
    }

    /// `-x`/`--long` names and `<arg>` positionals of one command's `--help`.
    fn help_names(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for title in ["FLAGS:", "OPTIONS:"] {
            for line in entry_lines(&section(text, title)) {
                for word in line.split_whitespace() {
                    let word = word.trim_end_matches(',');
                    if !word.starts_with('-') {
                        break;
                    }
                    names.insert(word.to_owned());
                }
            }
        }
        for line in entry_lines(&section(text, "ARGS:")) {
            if let Some(arg) = line.split_whitespace().next() {
                names.insert(arg.trim_matches(|c| c == '<' || c == '>').to_owned());
            }
        }
        names
    }

    fn help_commands(text: &str) -> BTreeSet<String> {
        entry_lines(&section(text, "SUBCOMMANDS:"))
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// Un-escapes the roff this module writes, keeping words only.
    fn plain(roff: &str) -> String {
        roff.replace("\\fB", "")
            .replace("\\fI", "")
            .replace("\\fR", "")
            .replace("\\-", "-")
            .replace("\\e", "\\")
    }

    /// Man page: the commands (`.SS` titles) and, per command, the names in
    /// its `.TP` tag lines; the top level is "".
    fn man_names(page: &str) -> Vec<(String, BTreeSet<String>)> {
        let mut out: Vec<(String, BTreeSet<String>)> = vec![(String::new(), BTreeSet::new())];
        let mut lines = page.lines();
        let mut in_commands_or_options = false;
        while let Some(line) = lines.next() {
            if let Some(title) = line.strip_prefix(".SH ") {
                in_commands_or_options = title == "OPTIONS" || title == "COMMANDS";
            } else if let Some(title) = line.strip_prefix(".SS ") {
                let title = plain(title.trim_matches('"'));
                let name = title
                    .strip_prefix(&format!("{BIN_NAME} "))
                    .unwrap_or(&title)
                    .to_owned();
                out.push((name, BTreeSet::new()));
            } else if line == ".TP" && in_commands_or_options {
                let tag = plain(lines.next().unwrap_or_default());
                let set = &mut out.last_mut().expect("top level is first").1;
                for word in tag.split_whitespace() {
                    let word = word.trim_end_matches(',');
                    if word.starts_with('-') {
                        set.insert(word.to_owned());
                    } else if !tag.starts_with('-') {
                        // A positional's tag is its name alone.
                        set.insert(word.to_owned());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn man_page_lists_what_help_lists() {
        let docs = render("2026-01-01");
        let man = man_names(&docs.man_page);
        let top_help = help(&[]);

        let man_commands: BTreeSet<String> = man.iter().skip(1).map(|(n, _)| n.clone()).collect();
        let commands = help_commands(&top_help);
        assert!(commands.contains("run") && commands.contains("register"));
        assert_eq!(man_commands, commands, "commands in the man page vs --help");

        assert_eq!(man[0].1, help_names(&top_help), "top-level options");
        for (name, names) in man.iter().skip(1) {
            if name == "help" {
                assert!(names.is_empty(), "clap's help command: {names:?}");
                continue;
            }
            let expected = help_names(&help(&[name]));
            assert!(!expected.is_empty(), "{name}: --help lists nothing");
            assert_eq!(
                names, &expected,
                "options of `{name}` in the man page vs --help"
            );
        }
    }

    #[test]
    fn hidden_command_is_in_no_generated_file() {
        let docs = render("2026-01-01");
        assert!(!docs.man_page.contains("generate\\-cli\\-docs"));
        for file in [&docs.bash, &docs.zsh, &docs.fish] {
            let text = String::from_utf8_lossy(file);
            assert!(!text.contains("generate-cli-docs"));
        }
    }

    #[test]
    fn completions_know_every_command_and_long_option() {
        let docs = render("2026-01-01");
        let man = man_names(&docs.man_page);
        for file in [&docs.bash, &docs.zsh, &docs.fish] {
            let text = String::from_utf8_lossy(file);
            for (command, names) in &man {
                assert!(text.contains(command.as_str()), "{command}");
                for long in names.iter().filter_map(|n| n.strip_prefix("--")) {
                    assert!(text.contains(long), "{command} --{long}");
                }
            }
        }
    }

    #[test]
    fn roff_escapes_hyphens_backslashes_and_leading_dots() {
        assert_eq!(roff("a-b \\n"), "a\\-b \\en");
        assert_eq!(roff("x\n.y\n'z"), "x\n\\&.y\n\\&'z");
    }

    #[test]
    fn write_all_writes_four_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_all(&dir.path().join("docs")).expect("written");
        assert_eq!(written.len(), 4);
        for path in written {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            assert!(len > 100, "{}", path.display());
        }
    }
}
