//! The crates depend on each other in the order ARCHITECTURE.md states: each only on crates
//! above it in its table, as `cargo metadata` reports the workspace.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Command;

const ARCHITECTURE: &str = include_str!("../../../ARCHITECTURE.md");

/// The crates of the table, top to bottom: rows that start with a crate name in backticks.
fn stated_order() -> Vec<String> {
    ARCHITECTURE
        .lines()
        .filter_map(|line| line.strip_prefix("| `clew-"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| format!("clew-{name}"))
        .collect()
}

/// Each workspace crate and the workspace crates it depends on to build or run (dev
/// dependencies, used by tests only, left out).
fn dependencies() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let uses = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .filter_map(|d| d["name"].as_str())
                .filter(|name| name.starts_with("clew-"))
                .map(str::to_owned)
                .collect();
            (package["name"].as_str().unwrap().to_owned(), uses)
        })
        .collect()
}

#[test]
fn every_crate_depends_only_on_crates_above_it_in_architecture_md() {
    let order = stated_order();
    let crates = dependencies();
    let listed: Vec<&String> = crates.keys().filter(|name| !order.contains(name)).collect();
    assert!(listed.is_empty(), "crates ARCHITECTURE.md does not list: {listed:?}");
    let position = |name: &str| order.iter().position(|n| n == name).unwrap();
    let mut wrong = Vec::new();
    for (name, uses) in &crates {
        for used in uses {
            if position(used) >= position(name) {
                wrong.push(format!("{name} depends on {used}, which ARCHITECTURE.md lists below it"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(order.len() >= 20, "the table parses: {order:?}");
}

#[test]
fn the_clew_binary_does_not_link_the_test_kit() {
    let crates = dependencies();
    let mut seen = vec!["clew-cli".to_owned()];
    let mut next = 0;
    while next < seen.len() {
        for used in &crates[&seen[next]] {
            if !seen.contains(used) {
                seen.push(used.clone());
            }
        }
        next += 1;
    }
    assert!(!seen.iter().any(|name| name == "clew-testkit"), "clew links: {seen:?}");
}
