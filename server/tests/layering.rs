//! Dependencies between the top-level modules of every workspace crate point one way: this test
//! fails when two top-level modules import each other, directly or through a longer cycle, and
//! when a module of riptide-server imports one above it in the documented order
//! (`SERVER_LAYERS`, drawn in docs/ARCHITECTURE.md §11).
//!
//! A module's imports are the `crate::x` paths (and, in a top-level file, `super::x`) in its
//! files outside comments, `use crate::{a, b}` groups included. The crate roots (`lib.rs`,
//! `main.rs`) only declare modules and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("server/ is inside the workspace").to_path_buf()
}

/// Crate directories from the workspace `members` list.
fn members(root: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("workspace Cargo.toml");
    let start = manifest.find("members").expect("members list");
    let list = &manifest[start..];
    let list = &list[list.find('[').expect("[") + 1..list.find(']').expect("]")];
    list.split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|m| root.join(m))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn strip_comments(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level module names that `code` refers to through `prefix` (`crate::` or `super::`).
fn referenced(code: &str, prefix: &str, out: &mut BTreeSet<String>) {
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `foo::crate::` or `mycrate::` is not this crate
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    c if item_start && depth == 1 && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident_at(&group[j..]);
                        if !name.is_empty() && name != "self" {
                            out.insert(name.to_string());
                        }
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
}

/// Module graph of one crate's `src/`.
fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let module = parts[0].trim_end_matches(".rs").to_string();
        if parts.len() == 1 && (module == "lib" || module == "main") {
            continue;
        }
        let top_level_file = parts.len() == 1 || (parts.len() == 2 && parts[1] == "mod.rs");
        let code = strip_comments(&std::fs::read_to_string(&file).expect("read source"));
        let mut refs = BTreeSet::new();
        referenced(&code, "crate::", &mut refs);
        if top_level_file {
            referenced(&code, "super::", &mut refs);
        }
        refs.remove(&module);
        graph.entry(module).or_default().extend(refs);
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| known.contains(d));
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_crate_has_a_cycle_between_top_level_modules() {
    let root = workspace_root();
    let crates = members(&root);
    assert!(crates.len() >= 4, "workspace members not found: {crates:?}");
    let mut report = Vec::new();
    for krate in &crates {
        let src = krate.join("src");
        let graph = module_graph(&src);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        // A crate that is one file has no modules to order; any other must show some.
        assert!(!graph.is_empty() || files.len() == 1, "no modules found in {}", krate.display());
        for cycle in cycles(&graph) {
            let edges: Vec<String> = cycle
                .iter()
                .flat_map(|m| {
                    graph[m].iter().filter(|d| cycle.contains(d)).map(move |d| format!("{m} -> {d}"))
                })
                .collect();
            report.push(format!(
                "{}: cycle among {}: {}",
                krate.display(),
                cycle.join(", "),
                edges.join("; ")
            ));
        }
    }
    assert!(report.is_empty(), "module cycles:\n{}", report.join("\n"));
}

/// riptide-server's top-level modules by layer, lowest first: a module may import only modules
/// of lower layers. Every module must be listed, so a new one is placed on purpose.
const SERVER_LAYERS: &[&[&str]] = &[
    &["config"],
    &["bind", "clock", "quota", "security", "telemetry"],
    &["metrics", "catalog"],
    &["cluster"],
    &["broker", "partition"],
    &["shard"],
    &["coordinator", "replication"],
    &["api"],
    &["net"],
    &["server", "fuzzing"],
];

fn layer_of(layers: &[&[&str]], module: &str) -> Option<usize> {
    layers.iter().position(|l| l.contains(&module))
}

/// Imports of a module in the same or a higher layer.
fn upward_imports(graph: &Graph, layers: &[&[&str]]) -> Vec<String> {
    let mut found = Vec::new();
    for (module, deps) in graph {
        let Some(mine) = layer_of(layers, module) else {
            found.push(format!("{module} is in no layer of SERVER_LAYERS"));
            continue;
        };
        for dep in deps {
            match layer_of(layers, dep) {
                Some(theirs) if theirs < mine => {}
                Some(theirs) => found.push(format!("{module} (layer {mine}) imports {dep} (layer {theirs})")),
                None => found.push(format!("{dep} is in no layer of SERVER_LAYERS")),
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn server_modules_import_only_lower_layers() {
    let graph = module_graph(&workspace_root().join("server/src"));
    let found = upward_imports(&graph, SERVER_LAYERS);
    assert!(found.is_empty(), "imports against the documented layers:\n{}", found.join("\n"));
}

#[test]
fn the_order_check_finds_an_upward_import() {
    let mut graph = Graph::new();
    graph.entry("partition".into()).or_default().insert("shard".into());
    graph.entry("shard".into()).or_default().insert("partition".into());
    graph.entry("net".into()).or_default().insert("api".into());
    graph.entry("newcomer".into()).or_default();
    let found = upward_imports(&graph, SERVER_LAYERS);
    assert_eq!(
        found,
        ["newcomer is in no layer of SERVER_LAYERS", "partition (layer 4) imports shard (layer 5)"],
        "{found:?}"
    );
}

/// The checker finds a cycle through three modules and a two-module one, and reads `use
/// crate::{..}` groups and `super::` in top-level files.
#[test]
fn the_checker_finds_planted_cycles() {
    let dir = std::env::temp_dir().join(format!("riptide-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src/b")).expect("mkdir");
    let files = [
        ("src/lib.rs", "pub mod a; pub mod b; pub mod c; pub mod d; pub mod e;"),
        ("src/a.rs", "use crate::{b::Thing, self};\n// use crate::e; (a comment is no import)"),
        ("src/b/mod.rs", "mod inner; pub struct Thing; use super::c;"),
        ("src/b/inner.rs", "use super::Thing;"),
        ("src/c.rs", "fn f() { crate::a::g() }"),
        ("src/d.rs", "use crate::e::X;"),
        ("src/e.rs", "pub struct X; fn f(_: crate::d::Y) {}"),
    ];
    for (path, text) in files {
        std::fs::write(dir.join(path), text).expect("write");
    }
    let found = cycles(&module_graph(&dir.join("src")));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.contains(&vec!["a".to_string(), "b".to_string(), "c".to_string()]), "{found:?}");
    assert!(found.contains(&vec!["d".to_string(), "e".to_string()]), "{found:?}");
}
