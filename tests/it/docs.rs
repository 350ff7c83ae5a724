//! The manual's examples cannot rot: every `provost` command line in README.md and docs/src
//! parses with the current command line, every `toml` block is a configuration that loads and
//! validates, every `curl` line asks for a path the API serves (with that method), and every
//! link between pages points at a page that exists.

use std::path::{Path, PathBuf};

use clap::Parser;
use provost::cli::Cli;
use provost::http::openapi::Verb;

/// A fenced code block: its tag (`toml`, `sh`...), its lines, and where it starts.
struct Block {
    file: PathBuf,
    line: usize,
    tag: String,
    lines: Vec<String>,
}

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut book: Vec<PathBuf> = std::fs::read_dir(root.join("docs/src"))
        .expect("docs/src exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    book.sort();
    pages.extend(book);
    pages
}

fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("```") {
            match open.take() {
                Some(block) => blocks.push(block),
                None => {
                    open = Some(Block {
                        file: file.to_owned(),
                        line: number + 1,
                        tag: rest.trim().to_owned(),
                        lines: Vec::new(),
                    })
                }
            }
        } else if let Some(block) = &mut open {
            block.lines.push(line.to_owned());
        }
    }
    blocks
}

/// A shell line's words: quotes group, a backslash escapes, `#` starts a comment.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => word.extend(chars.next()),
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                word.extend(chars.next());
                in_word = true;
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `provost` arguments of a shell line, if it runs Provost.
fn provost_command(line: &str) -> Option<Vec<String>> {
    let line = line.trim().trim_start_matches("$ ");
    let mut words = words(line);
    // Environment assignments before the command.
    while words.first().is_some_and(|w| {
        w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
    }) {
        words.remove(0);
    }
    match words.first().map(String::as_str) {
        Some("provost") => Some(words),
        Some("cargo") if words.get(1).map(String::as_str) == Some("run") => {
            let at = words.iter().position(|w| w == "--")?;
            let mut args = vec!["provost".to_owned()];
            args.extend(words[at + 1..].iter().cloned());
            Some(args)
        }
        _ => None,
    }
}

#[test]
fn every_command_line_of_the_manual_parses() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        for block in blocks(&page) {
            for (offset, line) in block.lines.iter().enumerate() {
                let Some(args) = provost_command(line) else {
                    continue;
                };
                checked += 1;
                if let Err(err) = Cli::try_parse_from(&args) {
                    wrong.push(format!(
                        "{}:{}: `{}`: {}",
                        block.file.display(),
                        block.line + offset + 1,
                        line.trim(),
                        err.to_string().lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "commands that do not parse:\n{}",
        wrong.join("\n")
    );
    assert!(
        checked > 20,
        "only {checked} command lines found: is the manual there?"
    );
}

#[test]
fn every_toml_block_of_the_manual_is_a_configuration_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        for block in blocks(&page).into_iter().filter(|b| b.tag == "toml") {
            checked += 1;
            let file = dir.path().join(format!("example-{checked}.toml"));
            std::fs::write(&file, block.lines.join("\n")).unwrap();
            if let Err(err) = provost::config::Config::load(Some(&file)) {
                wrong.push(format!("{}:{}: {err}", block.file.display(), block.line));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "configurations that do not load:\n{}",
        wrong.join("\n\n")
    );
    assert!(checked > 0, "no toml block found");
}

/// Whether `path` (no query) is an instance of the template `template`.
fn instance_of(path: &str, template: &str) -> bool {
    let (path, template): (Vec<&str>, Vec<&str>) =
        (path.split('/').collect(), template.split('/').collect());
    path.len() == template.len()
        && path.iter().zip(&template).all(|(segment, pattern)| {
            segment == pattern || (pattern.starts_with('{') && !segment.is_empty())
        })
}

#[test]
fn every_curl_line_of_the_manual_asks_for_a_served_endpoint() {
    let routes = provost::http::routes();
    let served: Vec<(Verb, String)> = routes
        .endpoints()
        .iter()
        .map(|e| (e.verb, e.path.clone()))
        .collect();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        for block in blocks(&page) {
            for (offset, line) in block.lines.iter().enumerate() {
                let words = words(line.trim().trim_start_matches("$ "));
                let Some(at) = words.iter().position(|w| w == "curl") else {
                    continue;
                };
                let words = &words[at..];
                let Some(url) = words.iter().find(|w| w.starts_with("http")) else {
                    continue;
                };
                let Ok(parsed) = url::Url::parse(&url.replace("$PROVOST", "http://localhost"))
                else {
                    continue;
                };
                let path = parsed.path().to_owned();
                // The emulator's own API (Salesforce's paths, its admin path) is not Provost's.
                if path.starts_with("/__emulator") || path.starts_with("/services/") {
                    continue;
                }
                let explicit = words
                    .iter()
                    .position(|w| w == "-X" || w == "--request")
                    .and_then(|i| words.get(i + 1));
                let has_body = words.iter().any(|w| {
                    matches!(
                        w.as_str(),
                        "-d" | "--data" | "--data-raw" | "--data-binary" | "--json"
                    )
                });
                let verb = match explicit.map(|m| m.to_ascii_uppercase()).as_deref() {
                    Some("GET") => Verb::Get,
                    Some("POST") => Verb::Post,
                    Some("PUT") => Verb::Put,
                    Some("PATCH") => Verb::Patch,
                    Some("DELETE") => Verb::Delete,
                    Some(other) => {
                        wrong.push(format!(
                            "{}:{}: method {other}",
                            block.file.display(),
                            block.line + offset + 1
                        ));
                        continue;
                    }
                    None if has_body => Verb::Post,
                    None => Verb::Get,
                };
                checked += 1;
                if !served
                    .iter()
                    .any(|(v, template)| *v == verb && instance_of(&path, template))
                {
                    wrong.push(format!(
                        "{}:{}: {} {path} is not served",
                        block.file.display(),
                        block.line + offset + 1,
                        verb.as_str().to_uppercase()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "curl lines for endpoints that do not exist:\n{}",
        wrong.join("\n")
    );
    assert!(checked > 5, "only {checked} curl lines found");
}

#[test]
fn every_link_between_pages_points_at_a_page() {
    let mut wrong = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for (number, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("](") {
                let after = &rest[at + 2..];
                let Some(end) = after.find(')') else { break };
                let target = &after[..end];
                rest = &after[end..];
                if target.starts_with("http")
                    || target.starts_with('#')
                    || target.starts_with("mailto:")
                {
                    continue;
                }
                let file = target.split('#').next().unwrap_or_default();
                if !dir.join(file).exists() {
                    wrong.push(format!("{}:{}: {target}", page.display(), number + 1));
                }
            }
        }
    }
    let summary = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/SUMMARY.md");
    assert!(
        summary.exists(),
        "docs/src/SUMMARY.md lists the book's pages"
    );
    assert!(
        wrong.is_empty(),
        "links to pages that do not exist:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_readme_is_a_front_page_whose_first_lines_are_the_two_commands() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    assert!(
        lines[0]
            .trim_start()
            .starts_with("cargo run --release -- demo"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].trim_start().starts_with("cargo test --workspace"),
        "{}",
        lines[1]
    );
    assert!(
        lines.len() < 200,
        "README.md has {} lines: the manual belongs in docs/",
        lines.len()
    );
}

#[test]
fn the_shell_splitter_reads_quotes_escapes_and_comments() {
    assert_eq!(
        words(r#"curl -s -H "Authorization: Bearer $TOKEN" 'http://x/a?b=c' # note"#),
        [
            "curl",
            "-s",
            "-H",
            "Authorization: Bearer $TOKEN",
            "http://x/a?b=c"
        ]
    );
    assert_eq!(
        provost_command("PROVOST_CONFIG=p.toml provost sync --org acme").unwrap(),
        ["provost", "sync", "--org", "acme"]
    );
    assert_eq!(
        provost_command("cargo run --release -- demo --preset small").unwrap(),
        ["provost", "demo", "--preset", "small"]
    );
    assert!(instance_of(
        "/orgs/acme/scim/v2/Users",
        "/orgs/{org}/scim/v2/Users"
    ));
    assert!(!instance_of(
        "/orgs/acme/scim/v2/Users/1",
        "/orgs/{org}/scim/v2/Users"
    ));
}
