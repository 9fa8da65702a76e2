//! The official JSON-Schema-Test-Suite (drafts 2020-12, 2019-09, 7, 6 and 4, vendored under
//! `tests/data/JSON-Schema-Test-Suite/`) through palisade's schema loading: every case's
//! schema is compiled by a `SchemaSet` holding the suite's remotes, and every instance must be
//! judged as the suite says. Known exceptions are listed, with the reason, in
//! `tests/data/JSON-Schema-Test-Suite/PALISADE.md`; an exception that starts passing fails the
//! test too, so the list stays true.

use std::path::{Path, PathBuf};

use palisade::validate::{Draft, SchemaSet};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/JSON-Schema-Test-Suite")
}

/// Every remote under `http://localhost:1234/`, as the suite's README asks.
fn with_remotes(mut set: SchemaSet) -> SchemaSet {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, Value)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                out.push((format!("http://localhost:1234/{rel}"), value));
            }
        }
    }
    let mut remotes = Vec::new();
    let base = root().join("remotes");
    walk(&base, &base, &mut remotes);
    for (uri, value) in remotes {
        set = set.register(&uri, value);
    }
    set
}

/// The cases known not to pass, by "file / group description / test description" (or
/// "file / group description" for a whole group), with the reason in PALISADE.md.
fn known_exceptions(draft: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("PALISADE.md")).unwrap();
    let marker = format!("<!-- {draft} -->");
    let Some(section) = text.split(&marker).nth(1) else {
        return Vec::new();
    };
    section
        .split("<!--")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn run(draft_dir: &str, draft: Draft) {
    let set = with_remotes(
        SchemaSet::new()
            .default_draft(draft)
            .validate_formats(false),
    );
    let exceptions = known_exceptions(draft_dir);
    let mut failures = Vec::new();
    let (mut passed, mut excepted) = (0, 0);
    let mut files: Vec<_> = std::fs::read_dir(root().join("tests").join(draft_dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut seen_exceptions = Vec::new();
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let groups: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for group in groups.as_array().unwrap() {
            let gdesc = group["description"].as_str().unwrap();
            let gkey = format!("{name} / {gdesc}");
            let compiled = set.compile(&group["schema"]);
            for test in group["tests"].as_array().unwrap() {
                let tdesc = test["description"].as_str().unwrap();
                let key = format!("{gkey} / {tdesc}");
                let expected = test["valid"].as_bool().unwrap();
                let ok = match &compiled {
                    Ok(schema) => schema.is_valid(&test["data"]) == expected,
                    Err(_) => false,
                };
                let excepted_here = exceptions.contains(&key) || exceptions.contains(&gkey);
                match (ok, excepted_here) {
                    (true, false) => passed += 1,
                    (false, true) => {
                        excepted += 1;
                        seen_exceptions.push(if exceptions.contains(&key) {
                            key
                        } else {
                            gkey.clone()
                        });
                    }
                    (false, false) => failures.push(match &compiled {
                        Err(e) => format!("{key}: schema did not compile: {e}"),
                        Ok(_) => format!("{key}: expected valid = {expected}"),
                    }),
                    (true, true) => {
                        failures.push(format!("{key}: listed as an exception but passes"))
                    }
                }
            }
        }
    }
    for e in &exceptions {
        if !seen_exceptions.contains(e) {
            failures.push(format!("{e}: listed as an exception but not found"));
        }
    }
    println!("{draft_dir}: {passed} cases pass, {excepted} documented exceptions");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed > 500, "the suite ran ({passed} cases)");
}

#[test]
fn json_schema_test_suite_draft2020_12() {
    run("draft2020-12", Draft::Draft202012);
}

#[test]
fn json_schema_test_suite_draft7() {
    run("draft7", Draft::Draft7);
}

#[test]
fn json_schema_test_suite_draft2019_09() {
    run("draft2019-09", Draft::Draft201909);
}

#[test]
fn json_schema_test_suite_draft6() {
    run("draft6", Draft::Draft6);
}

#[test]
fn json_schema_test_suite_draft4() {
    run("draft4", Draft::Draft4);
}
