//! Every relative link in README.md, docs/ (and its folders) and
//! bench/README.md points to a file that exists and, with a `#fragment`, to
//! a heading in it (anchors as GitHub makes them). The README is the front
//! door and the manual is split over docs/, so a renamed heading or file
//! would otherwise strand readers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md"), root().join("bench/README.md")];
    // docs/ and its folders (docs/monitoring/).
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                docs.push(path);
            }
        }
    }
    docs.sort();
    docs
}

/// The lines outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push(line);
        }
    }
    lines
}

/// GitHub's anchor for a heading: the rendered text, lowercased, without
/// punctuation but `-` and `_`, spaces as `-`; repeats get `-1`, `-2`, ….
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let rendered = rendered(heading.trim());
        let base: String = rendered
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// Markdown to its visible text: links become their text, code and
/// emphasis marks go.
fn rendered(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("](") {
        let close = rest[i..].find(')').map_or(rest.len(), |j| i + j + 1);
        out.push_str(&rest[..i]);
        rest = &rest[close..];
    }
    out.push_str(rest);
    out.replace(['`', '*', '[', ']'], "")
}

/// Every link target in the document's prose: what follows `](` up to `)`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let end = rest.find([')', ' ']).unwrap_or(rest.len());
            found.push((n + 1, rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    found
}

fn problems_in(doc: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(doc).unwrap();
    let name = doc.strip_prefix(root()).unwrap().display().to_string();
    let mut problems = Vec::new();
    for (line, target) in links(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, fragment) = match target.split_once('#') {
            Some((file, fragment)) => (file, Some(fragment)),
            None => (target.as_str(), None),
        };
        let path = if file.is_empty() {
            doc.to_path_buf()
        } else {
            doc.parent().unwrap().join(file)
        };
        if !path.exists() {
            problems.push(format!("{name}:{line}: {target}: no such file"));
            continue;
        }
        let Some(fragment) = fragment else { continue };
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let target_text = std::fs::read_to_string(&path).unwrap();
        if !anchors(&target_text).contains(fragment) {
            problems.push(format!(
                "{name}:{line}: {target}: no heading with the anchor #{fragment}"
            ));
        }
    }
    problems
}

#[test]
fn relative_links_in_the_documentation_resolve() {
    let problems: Vec<String> = documents().iter().flat_map(|d| problems_in(d)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn readme_links_every_document() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let targets: HashSet<String> = links(&readme)
        .into_iter()
        .map(|(_, t)| t.split('#').next().unwrap().to_string())
        .collect();
    let missing: Vec<String> = documents()
        .iter()
        .map(|d| d.strip_prefix(root()).unwrap().display().to_string())
        .filter(|d| d != "README.md" && !targets.contains(d))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not link {missing:?} (its \"Where to read on\" lists every document)"
    );
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    let text = "# A `[[zone]]` table\n## Why it's ours (really)\n## Why it's ours (really)\n\
                ```\n# not a heading\n```\n### Cluster soak (`--cluster`)\n";
    let want: HashSet<String> = [
        "a-zone-table",
        "why-its-ours-really",
        "why-its-ours-really-1",
        "cluster-soak---cluster",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(anchors(text), want);
}
