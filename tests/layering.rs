//! The crate's layering, checked: which module of `src/` may import which (the map
//! in `src/lib.rs`), and that the protocol core (`core/`, the `junction-core` crate
//! re-exported as `ids`, `wamp`, `roles`, `broker`, `dealer`, `table`, `link`)
//! depends on no async runtime or network crate. The core cannot import the router,
//! the cluster or a transport at all: it is a crate below them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The protocol core, re-exported by the `junction` crate under these names.
const CORE: &[&str] = &["ids", "wamp", "roles", "broker", "dealer", "table", "link", "dict"];

/// Each module of `src/` and the modules of `src/` it may import (the core is
/// open to all).
const ALLOWED: &[(&str, &[&str])] = &[
    ("config", &["auth"]),
    ("auth", &[]),
    ("observe", &[]),
    ("cluster", &["config", "observe"]),
    ("router", &["config", "auth", "observe", "cluster"]),
    ("transport", &["config", "auth", "observe", "router"]),
    ("ops", &["config", "auth", "observe"]),
];

/// What the router may name of the cluster: its seam, nothing of its insides (the
/// types in `Replicate`'s signatures, which a test double of it names too).
const CLUSTER_SEAM: &[&str] = &[
    "Replicate",
    "ReplicateError",
    "ReplicateError::NoLeader",
    "NodeDownEvent",
    "replicate::ReplicateError",
    "replicate::Pending",
    "NotReady",
    "NotReady::NoLeader",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source of a module (`src/<name>.rs` and `src/<name>/**`), comments dropped.
fn module_source(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    if root.join(format!("{name}.rs")).exists() {
        files.push(root.join(format!("{name}.rs")));
    }
    if root.join(name).is_dir() {
        rust_files(&root.join(name), &mut files);
    }
    assert!(!files.is_empty(), "module {name} not found");
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f).expect("readable").lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules named after `crate::` (also in `crate::{a, b::c}` lists).
fn imports(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in source.match_indices("crate::") {
        let rest = &source[i + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            for item in list[..end].split(',') {
                let name: String =
                    item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn each_module_imports_only_the_layers_the_map_allows() {
    let mut wrong = Vec::new();
    for (module, allowed) in ALLOWED {
        for import in imports(&module_source(module)) {
            if import != *module && !CORE.contains(&import.as_str()) && !allowed.contains(&import.as_str()) {
                wrong.push(format!("{module} imports {import}"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken: {wrong:?}");
}

#[test]
fn the_router_reaches_the_cluster_only_through_its_seam() {
    let source = module_source("router");
    let mut wrong = Vec::new();
    for (i, _) in source.match_indices("crate::cluster::") {
        let rest = &source[i + "crate::cluster::".len()..];
        let names: Vec<String> = match rest.strip_prefix('{') {
            Some(list) => {
                list[..list.find('}').unwrap_or(0)].split(',').map(|s| s.trim().to_owned()).collect()
            }
            None => {
                vec![rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect()]
            }
        };
        wrong.extend(names.into_iter().filter(|n| !CLUSTER_SEAM.contains(&n.as_str())));
    }
    assert!(wrong.is_empty(), "the router names cluster internals: {wrong:?}");
}

#[test]
fn every_module_of_src_is_on_the_map() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: BTreeSet<&str> =
        lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')).collect();
    let mapped: BTreeSet<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    assert_eq!(declared, mapped);
}

#[test]
fn the_core_crate_depends_on_no_runtime_or_network_crate() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("core/Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).expect("a dependencies table");
    let deps = deps.split("\n[").next().unwrap_or(deps);
    for banned in
        ["tokio", "tonic", "openraft", "tungstenite", "axum", "dashmap", "futures", "rustls", "tracing"]
    {
        assert!(!deps.contains(banned), "the core depends on {banned}");
    }
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("core/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("tokio::") && !text.contains("std::net"), "{} does I/O", f.display());
    }
}

#[test]
fn the_import_scanner_reads_both_forms() {
    let found = imports("use crate::wamp::Message;\nuse crate::{router, observe::metrics};\n");
    assert_eq!(found, BTreeSet::from(["wamp".to_owned(), "router".to_owned(), "observe".to_owned()]));
}
