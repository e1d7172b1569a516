//! The store's files depend on each other without cycles (issue #10): every `use` and path
//! in `server/src/store/**` that names another file's module is an edge, and the graph
//! must be acyclic. A parent that re-exports a child (`pub use seam::QueueStore`) and a
//! child that reaches back into the parent (`use super::QueueStore`) make a cycle; the
//! seam, the configs and the helpers live in leaf modules instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path, e.g. `["store", "sqlite", "schema"]`.
type ModPath = Vec<String>;

/// Every `.rs` file under `dir`, by module path.
fn modules(dir: &Path, prefix: &ModPath, out: &mut BTreeMap<ModPath, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut sub = prefix.clone();
            sub.push(name);
            modules(&path, &sub, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut module = prefix.clone();
            if name != "mod" {
                module.push(name);
            }
            out.insert(module, path);
        }
    }
}

/// The code of a file: comments and the trailing `#[cfg(test)]` module left out.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file's code names: `use` trees expanded, and inline `a::b::c` paths.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let tail = &rest[i + 4..];
        let Some(end) = tail.find(';') else { break };
        if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
            expand(
                &tail[..end].replace(char::is_whitespace, ""),
                &mut Vec::new(),
                &mut out,
            );
        }
        rest = &tail[end..];
    }
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    for token in code.split(|c: char| !word(c)) {
        if token.contains("::") {
            out.push(token.split("::").map(str::to_string).collect());
        }
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d}}`) into its paths.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(open) = tree.find('{') else {
        let mut path = prefix.clone();
        path.extend(
            tree.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        out.push(path);
        return;
    };
    let head: Vec<String> = tree[..open]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut depth = 0;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let len = prefix.len();
    prefix.extend(head);
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        if part == "self" {
            out.push(prefix.clone());
        } else {
            expand(part, prefix, out);
        }
    }
    prefix.truncate(len);
}

/// The file module a path from module `from` lands in, if it is another store file.
fn target(from: &ModPath, path: &[String], known: &BTreeMap<ModPath, PathBuf>) -> Option<ModPath> {
    let (mut at, rest): (ModPath, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("super") => {
            let mut at = from.clone();
            let mut i = 0;
            while path.get(i).map(String::as_str) == Some("super") {
                at.pop();
                i += 1;
            }
            (at, &path[i..])
        }
        Some("self") => (from.clone(), &path[1..]),
        Some(first) => {
            // A relative path starts at a child module of `from`, or names nothing here.
            let mut child = from.clone();
            child.push(first.to_string());
            if !known.contains_key(&child) {
                return None;
            }
            (from.clone(), path)
        }
        None => return None,
    };
    if at.is_empty() && rest.first().map(String::as_str) != Some("store") {
        return None;
    }
    let mut found = known.contains_key(&at).then(|| at.clone());
    for segment in rest {
        at.push(segment.clone());
        if known.contains_key(&at) {
            found = Some(at.clone());
        } else {
            break;
        }
    }
    found.filter(|f| f != from)
}

/// A cycle in `edges`, if there is one.
fn cycle(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<ModPath>> {
    fn visit(
        node: &ModPath,
        edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        state: &mut BTreeMap<ModPath, u8>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(1) => {
                    let at = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node) {
            if let Some(c) = visit(node, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn store_modules_have_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut known = BTreeMap::new();
    modules(&src.join("store"), &vec!["store".to_string()], &mut known);
    assert!(known.len() > 10, "store files found: {:?}", known.keys());
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (module, file) in &known {
        let code = code(&std::fs::read_to_string(file).unwrap());
        let targets = edges.entry(module.clone()).or_default();
        for path in paths(&code) {
            if let Some(to) = target(module, &path, &known) {
                targets.insert(to);
            }
        }
    }
    // The graph is really read: the runner uses the seam, the registry every backend.
    let seam = vec!["store".to_string(), "seam".to_string()];
    assert!(edges[&vec!["store".into(), "runner".into(), "worker".into()]].contains(&seam));
    assert!(edges[&vec!["store".into(), "registry".into()]]
        .contains(&vec!["store".to_string(), "sqlite".to_string()]));
    if let Some(cycle) = cycle(&edges) {
        let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
        panic!("import cycle: {}", names.join(" -> "));
    }
}
