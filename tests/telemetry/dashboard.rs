//! `docs/grafana-dashboard.json` against the metric names the library emits: every name its
//! PromQL uses is one of `palisade::telemetry::names::ALL` (a histogram's `_bucket`, `_sum`
//! and `_count` series counted as the histogram), every emitted name is charted, every label a
//! selector names is one that metric has, and the file is a dashboard Grafana imports (a schema
//! version, a Prometheus data source variable used by every panel and query, unique panel ids
//! on a 24-column grid).

use std::collections::{BTreeMap, BTreeSet};

use palisade::telemetry::names;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../docs/grafana-dashboard.json");

/// The histograms among the names (Prometheus adds `_bucket`, `_sum` and `_count`).
const HISTOGRAMS: &[&str] = &[names::DECISION_SECONDS];

/// Each metric's labels, as `docs/observability.md` lists them.
fn labels() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        (names::ALLOWED, &["layer"][..]),
        (names::REFUSED, &["layer", "reason", "status"][..]),
        (names::DECISION_SECONDS, &["layer", "le"][..]),
        (names::BACKEND_ERRORS, &["backend", "kind"][..]),
        (names::QUOTA_DEGRADED, &["mode"][..]),
        (names::AUDIT_EVENTS, &["state"][..]),
        (names::JWKS_FETCHES, &["outcome"][..]),
        (names::CACHE_LOOKUPS, &["cache", "result"][..]),
        (names::RESPONSE_DIVERGENCES, &["action"][..]),
        (names::VALIDATION_BODIES, &["path"][..]),
    ])
}

/// Labels Prometheus adds to every series it scrapes.
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("docs/grafana-dashboard.json is JSON")
}

/// Every PromQL expression: each panel target's `expr` and each query variable's query.
fn expressions(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(target["expr"].as_str().expect("a target's expr").to_owned());
        }
    }
    for var in d["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            out.push(var["query"]["query"].as_str().unwrap().to_owned());
        }
    }
    out
}

/// A metric name a PromQL expression uses, and the label names of its selector (`{...}`
/// right after it).
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            // A string literal (a label value or a regex): skipped.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !ident(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        if !word.starts_with("palisade_") {
            continue;
        }
        let mut labels = Vec::new();
        if bytes.get(i) == Some(&b'{') {
            let end = i + expr[i..].find('}').expect("a closed selector");
            for matcher in split_matchers(&expr[i + 1..end]) {
                let name: String = matcher
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                labels.push(name);
            }
            i = end + 1;
        }
        out.push((word.to_owned(), labels));
    }
    out
}

/// The matchers of a selector's body, split on the commas outside quotes.
fn split_matchers(body: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in body.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(body[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(body[start..].trim());
    out.retain(|m| !m.is_empty());
    out
}

/// The labels named in `by (...)` and `without (...)` clauses.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for keyword in ["by (", "by(", "without (", "without("] {
        for (at, _) in expr.match_indices(keyword) {
            let rest = &expr[at + keyword.len()..];
            let list = &rest[..rest.find(')').expect("a closed grouping")];
            out.extend(list.split(',').map(|l| l.trim().to_owned()));
        }
    }
    out
}

/// The emitted name a series name stands for: itself, or the histogram it is a series of.
fn metric_of(series: &str) -> Option<&'static str> {
    if let Some(name) = names::ALL.iter().find(|n| **n == series) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = series.strip_suffix(suffix)?;
        HISTOGRAMS.iter().find(|h| **h == base).copied()
    })
}

#[test]
fn every_name_the_dashboard_charts_is_emitted_and_every_emitted_name_is_charted() {
    let d = dashboard();
    let exprs = expressions(&d);
    assert!(exprs.len() >= names::ALL.len(), "{exprs:?}");
    let mut charted = BTreeSet::new();
    for expr in &exprs {
        let found = selectors(expr);
        assert!(!found.is_empty(), "no palisade metric in {expr}");
        for (series, _) in found {
            let name = metric_of(&series)
                .unwrap_or_else(|| panic!("`{series}` (in {expr}) is not a name palisade emits"));
            charted.insert(name);
        }
    }
    let emitted: BTreeSet<_> = names::ALL.iter().copied().collect();
    let missing: Vec<_> = emitted.difference(&charted).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
    // Also the names written anywhere else in the file (descriptions): none is stale.
    for (series, _) in selectors(&DASHBOARD.replace('"', " ")) {
        let series = series.trim_end_matches(':');
        assert!(
            metric_of(series).is_some(),
            "`{series}` in the dashboard's text"
        );
    }
}

#[test]
fn every_label_the_dashboard_selects_or_groups_by_exists() {
    let labels = labels();
    assert_eq!(labels.len(), names::ALL.len(), "a label list per name");
    let any: BTreeSet<&str> = labels
        .values()
        .flat_map(|l| l.iter().copied())
        .chain(TARGET_LABELS.iter().copied())
        .collect();
    for expr in expressions(&dashboard()) {
        for (series, selected) in selectors(&expr) {
            let name = metric_of(&series).unwrap();
            for label in selected {
                assert!(
                    labels[name].contains(&label.as_str())
                        || TARGET_LABELS.contains(&label.as_str()),
                    "`{label}` is not a label of {name} (in {expr})"
                );
            }
        }
        for label in grouping_labels(&expr) {
            assert!(any.contains(label.as_str()), "`{label}` (in {expr})");
        }
    }
}

#[test]
fn the_dashboard_is_importable_with_a_prometheus_data_source_variable() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().unwrap() >= 36,
        "a current schema version"
    );
    assert!(d["title"].is_string() && d["uid"].is_string());
    let vars = d["templating"]["list"].as_array().unwrap();
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(ds["query"], "prometheus");
    let uid = format!("${{{}}}", ds["name"].as_str().unwrap());
    let mut ids = BTreeSet::new();
    let panels = d["panels"].as_array().unwrap();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id: {panel}"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24 && grid["h"].as_u64().unwrap() > 0, "{panel}");
        if panel["type"] == "row" {
            continue;
        }
        assert!(panel["title"].is_string());
        assert_eq!(
            panel["datasource"]["uid"],
            uid.as_str(),
            "{}",
            panel["title"]
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], uid.as_str(), "{}", panel["title"]);
            let expr = t["expr"].as_str().unwrap();
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{expr}"
            );
            assert_eq!(
                expr.matches('{').count(),
                expr.matches('}').count(),
                "{expr}"
            );
        }
    }
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"]["uid"], uid.as_str(), "{v}");
    }
}
