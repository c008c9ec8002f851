//! `docs/openapi.yaml` describes every route the router serves, and only those. (That each
//! documented answer is what the server gives is proven by schemathesis, run over the spec
//! against the real binary by `scripts/test`.)

use std::collections::BTreeSet;

const SPEC: &str = include_str!("../../../docs/openapi.yaml");

/// Method and path of each operation under the spec's `paths:` (two-space-indented paths,
/// four-space-indented methods, as the file is written).
fn documented() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut in_paths = false;
    let mut path = None;
    for line in SPEC.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            path = Some(format!("/{p}"));
        } else if let (Some(method), Some(path)) = (line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')), &path)
        {
            if ["get", "post", "put", "delete", "patch", "head"].contains(&method) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_route_served_is_documented_and_every_documented_route_is_served() {
    let documented = documented();
    assert!(documented.len() > 40, "the spec parses: {} operations", documented.len());
    let mut served: BTreeSet<(String, String)> = clew_api::served_routes().into_iter().collect();
    // The Zipkin receiver answers on this listener too (the composition root merges it in).
    served.insert(("POST".into(), clew_ingest::ZIPKIN_SPANS_PATH.into()));
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "served but not in docs/openapi.yaml: {undocumented:#?}");
    assert!(not_served.is_empty(), "in docs/openapi.yaml but not served: {not_served:#?}");
}
