//! The core's modules form no circle: each type sits below its users (`reply` below `error` and
//! `cors`, `json` below `jwt` and `claims`, `Alg` in `signature` below `jwks`), so any module can
//! be read, and tested, with only what is under it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, bail};

use crate::common::repo_root;

/// Each module of `src/` and the `crate::` modules its non-test code uses.
fn uses() -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(repo_root().join("src"))? {
        let path = entry?.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_none_or(|e| e != "rs") || name.ends_with("tests") || name == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let used: BTreeSet<String> = code
            .split("crate::")
            .skip(1)
            .filter_map(|rest| {
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                (!module.is_empty() && module != name).then_some(module)
            })
            .collect();
        graph.insert(name.to_string(), used);
    }
    Ok(graph)
}

/// A circle through `start`, if there is one.
fn circle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in graph.get(path.last()?)? {
        if next == start {
            let mut found = path.clone();
            found.push(next.clone());
            return Some(found);
        }
        if !path.contains(next) && graph.contains_key(next) {
            path.push(next.clone());
            if let Some(found) = circle(graph, start, path) {
                return Some(found);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn the_core_modules_form_no_circle() -> anyhow::Result<()> {
    let graph = uses()?;
    graph.get("handler").context("no src/handler.rs")?;
    for module in graph.keys() {
        if let Some(found) = circle(&graph, module, &mut vec![module.clone()]) {
            bail!("a circle of imports: {}", found.join(" -> "));
        }
    }
    Ok(())
}

#[test]
fn the_circle_finder_finds_one() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(circle(&graph, "a", &mut vec!["a".to_string()]).is_some());
    graph.insert("b".to_string(), BTreeSet::new());
    assert!(circle(&graph, "a", &mut vec!["a".to_string()]).is_none());
}
