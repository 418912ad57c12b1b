//! The user documentation stays true: every link in the README, ARCHITECTURE.md and `docs/`
//! resolves inside the repository (anchors included); the complete example of
//! `docs/configuration.md` passes `switchboard check-config`, and its keys are exactly the
//! keys the reference tables document; every metric family a running server exports is in
//! `docs/metrics.md`; every operation of the served OpenAPI document is in `docs/api.md`.
//!
//! Markdown is read by hand here (inline links, reference definitions, ATX headings outside
//! code fences): the workspace has no Markdown crate, and our own pages use nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::harness::*;

/// The pages whose links must resolve.
fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of a page outside fenced code blocks, with their line numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            out.push((i + 1, line));
        }
    }
    out
}

/// A line with its inline code spans blanked out (a link inside backticks is not a link).
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
            out.push(' ');
        } else {
            out.push(if in_code { ' ' } else { c });
        }
    }
    out
}

/// Link targets of a page: inline `[text](target)` and reference definitions `[x]: target`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, raw) in prose_lines(text) {
        let line = without_code_spans(raw);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            out.push((n, target.to_owned()));
            rest = &after[end..];
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[')
            && let Some((label, target)) = trimmed.split_once("]:")
            && !label.contains(']')
        {
            out.push((n, target.trim().to_owned()));
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings, with GitHub's `-1`, `-2` suffixes for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// Why `target`, linked from `page`, does not resolve inside the repository (None: it does).
fn broken(page: &Path, target: &str, root: &Path) -> Option<String> {
    if target.is_empty() {
        return Some("empty link".into());
    }
    if target.contains("://") || target.starts_with("mailto:") {
        return Some("points outside the repository".into());
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().expect("page dir").join(path)
    };
    let Ok(file) = file.canonicalize() else {
        return Some(format!("{} does not exist", file.display()));
    };
    if !file.starts_with(root) {
        return Some(format!("{} is outside the repository", file.display()));
    }
    if !anchor.is_empty() {
        if file.extension().is_none_or(|e| e != "md") {
            return Some("an anchor into a file that is not Markdown".into());
        }
        let text = std::fs::read_to_string(&file).expect("read link target");
        if !anchors(&text).contains(anchor) {
            return Some(format!("{} has no heading #{anchor}", file.display()));
        }
    }
    None
}

#[test]
fn every_link_in_readme_architecture_and_docs_resolves_inside_the_repository() {
    let root = repo_root().canonicalize().expect("repo root");
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("read page");
        for (line, target) in links(&text) {
            checked += 1;
            if let Some(why) = broken(&page, &target, &root) {
                let page = page.canonicalize().unwrap_or_else(|_| page.clone());
                let shown = page
                    .strip_prefix(&root)
                    .unwrap_or(&page)
                    .display()
                    .to_string();
                problems.push(format!("{shown}:{line}: ({target}) {why}"));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} links found: is the scanner broken?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_link_checker_catches_what_it_must() {
    let root = repo_root().canonicalize().unwrap();
    let readme = root.join("README.md");
    assert!(broken(&readme, "docs/routing.md", &root).is_none());
    assert!(broken(&readme, "docs/api.md#authentication", &root).is_none());
    assert!(broken(&readme, "docs/api.md#no-such-heading", &root).is_some());
    assert!(broken(&readme, "docs/nowhere.md", &root).is_some());
    assert!(broken(&readme, "../shared/PRODUCT.md", &root).is_some());
    assert!(broken(&readme, "https://example.com/", &root).is_some());
    assert_eq!(
        slug("`[http]` — health, metrics, API"),
        "http--health-metrics-api"
    );
    let found = links(
        "a [x](one.md) `[y](not-a-link)` and [z](two.md#b)\n```\n[c](code)\n```\n[r]: three.md",
    );
    let targets: Vec<&str> = found.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(targets, ["one.md", "two.md#b", "three.md"]);
}

/// The complete example file of `docs/configuration.md`.
fn configuration_example(doc: &str) -> String {
    let section = doc
        .split("## A complete example")
        .nth(1)
        .expect("docs/configuration.md has a section \"A complete example\"");
    section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .expect("a ```toml block in that section")
        .to_owned()
}

/// (table, key) of every row of the reference tables: sections titled "## `[table]`" or
/// "## `[[table]]`", keys in backticks in the first cell.
fn documented_keys(doc: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut table: Option<String> = None;
    for (_, line) in prose_lines(doc) {
        if let Some(heading) = line.strip_prefix("## ") {
            table = heading
                .strip_prefix('`')
                .and_then(|h| h.split('`').next())
                .map(|t| t.trim_matches(|c| c == '[' || c == ']').to_owned());
            continue;
        }
        let (Some(t), Some(row)) = (&table, line.strip_prefix("| `")) else {
            continue;
        };
        let first_cell = format!("`{}", row.split(" |").next().unwrap_or(""));
        for key in first_cell.split(',') {
            let key = key.trim().trim_matches('`');
            if !key.is_empty() {
                out.insert((t.clone(), key.to_owned()));
            }
        }
    }
    out
}

/// (table, key) of every key an example file sets.
fn example_keys(example: &str) -> BTreeSet<(String, String)> {
    let value: toml::Table = example.parse().expect("the example is TOML");
    let mut out = BTreeSet::new();
    for (table, inner) in &value {
        let tables: Vec<&toml::Table> = match inner {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(items) => items.iter().filter_map(|i| i.as_table()).collect(),
            other => panic!("top-level key {table} = {other} outside any table"),
        };
        for t in tables {
            for key in t.keys() {
                out.insert((table.clone(), key.clone()));
            }
        }
    }
    out
}

/// check-config loads the `[tls]` files: puts a throwaway certificate, its key and a CA
/// bundle where the example names them (relative to the example's directory).
fn write_example_certificates(example: &str, dir: &Path) {
    let value: toml::Table = example.parse().expect("the example is TOML");
    let Some(tls) = value.get("tls").and_then(|t| t.as_table()) else {
        return;
    };
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = [
        ("cert", made.cert.pem()),
        ("key", made.signing_key.serialize_pem()),
        ("ca", made.cert.pem()),
    ];
    for (key, pem) in files {
        if let Some(path) = tls.get(key).and_then(|p| p.as_str()) {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, pem).unwrap();
        }
    }
}

#[test]
fn the_configuration_example_is_valid_and_sets_exactly_the_documented_keys() {
    let doc = std::fs::read_to_string(repo_root().join("docs/configuration.md")).unwrap();
    let example = configuration_example(&doc);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.toml");
    std::fs::write(&path, &example).unwrap();
    write_example_certificates(&example, dir.path());
    let out = run_cli(&["check-config", path.to_str().unwrap()], dir.path());
    assert!(
        out.status.success(),
        "the example of docs/configuration.md fails check-config:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The binary refuses unknown keys, so every key the example sets exists; the tables must
    // document each of them, and document nothing the example does not set.
    let documented = documented_keys(&doc);
    let set = example_keys(&example);
    assert!(
        documented.len() > 60,
        "only {} keys documented",
        documented.len()
    );
    let undocumented: Vec<_> = set.difference(&documented).collect();
    let not_in_example: Vec<_> = documented.difference(&set).collect();
    assert!(
        undocumented.is_empty() && not_in_example.is_empty(),
        "docs/configuration.md: keys set by the example but in no table: {undocumented:?}; \
         keys in a table but not set by the example: {not_in_example:?}"
    );

    // A misspelt key in the example would be caught: the binary refuses it.
    let wrong = example.replacen("t1_ms", "t1_msec", 1);
    std::fs::write(&path, wrong).unwrap();
    let out = run_cli(&["check-config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn every_exported_metric_and_every_api_operation_is_documented() {
    let ports = Ports::new();
    let config = demo_config(&ports);
    let server = Server::start(&config, ports);
    let port = server.ports.http;

    let metrics_doc = std::fs::read_to_string(repo_root().join("docs/metrics.md")).unwrap();
    let (status, text) = http_get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(families.contains("switchboard_calls_total"), "{text}");
    let missing: Vec<&&str> = families
        .iter()
        .filter(|name| !metrics_doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics exported but not in docs/metrics.md: {missing:?}"
    );

    let api_doc = std::fs::read_to_string(repo_root().join("docs/api.md")).unwrap();
    let (status, body) = http_get(port, "/api/v1/openapi.json").unwrap();
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut operations = 0;
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations += 1;
            let row = format!("`{} {path}", method.to_uppercase());
            let documented = [format!("{row}`"), format!("{row}?")]
                .iter()
                .any(|needle| api_doc.contains(needle.as_str()));
            if !documented {
                missing.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(operations >= 15, "only {operations} operations served");
    assert!(
        missing.is_empty(),
        "API operations served but not in docs/api.md: {missing:?}"
    );
}
