//! The fused pass against the tape path: it accepts only what the tape path accepts, and
//! builds the same values. The tape path is the judge (its own tests hold it to the JSON
//! Schema Test Suite, RFC 8259 and the input guards); the fused pass is held to it here, on
//! the whole suite, on generated bodies and on named attacks.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Plan;
use super::de::Pass;
use crate::rejection::InputPart;
use crate::validate::tape::Tape;
use crate::validate::{Draft, JsonLimits, SchemaSet};

/// The tape path's verdict on `body` (limits, string guards, schema).
fn tape_accepts(set: &SchemaSet, schema: &Value, body: &str, limits: &JsonLimits) -> bool {
    let Ok(tape) = Tape::parse(body, limits) else {
        return false;
    };
    let hostile =
        crate::validate::strings::check_tape(&tape, body.as_bytes(), limits, &[], usize::MAX);
    hostile.is_empty()
        && set
            .compile(schema)
            .is_ok_and(|s| s.violations_at(tape.root(), InputPart::Body, 1).is_empty())
}

fn fused_with<T: serde::de::DeserializeOwned>(
    set: &SchemaSet,
    schema: &Value,
    body: &str,
    limits: &JsonLimits,
) -> Option<T> {
    let plan = Plan::compile(set, schema);
    Pass::new(&plan, limits, body.as_bytes()).run::<T>(body)
}

fn fused<T: serde::de::DeserializeOwned>(schema: &Value, body: &str) -> Option<T> {
    fused_with(&SchemaSet::new(), schema, body, &JsonLimits::default())
}

#[derive(Debug, Deserialize, PartialEq)]
struct Item {
    sku: String,
    qty: u32,
    #[serde(default)]
    gift: bool,
}

#[derive(Debug, Deserialize, PartialEq)]
enum Currency {
    #[serde(rename = "EUR")]
    Eur,
    #[serde(rename = "USD")]
    Usd,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Order {
    currency: Currency,
    items: Vec<Item>,
    note: Option<String>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, i64>,
}

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["currency", "items"],
        "additionalProperties": false,
        "properties": {
            "currency": {"enum": ["EUR", "USD"]},
            "items": {
                "type": "array", "minItems": 1, "maxItems": 3,
                "items": {
                    "type": "object", "required": ["sku", "qty"], "additionalProperties": false,
                    "properties": {
                        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                        "qty": {"type": "integer", "minimum": 1, "maximum": 999},
                        "gift": {"type": "boolean"}
                    }
                }
            },
            "note": {"type": ["string", "null"], "maxLength": 10},
            "tags": {"type": "object", "maxProperties": 3, "additionalProperties": {"type": "integer"}}
        }
    })
}

const VALID: &str = r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2,"gift":true}],"note":"door","tags":{"a":1}}"#;

#[test]
fn a_valid_body_is_accepted_and_built_as_serde_json_builds_it() {
    let (set, limits) = (SchemaSet::new(), JsonLimits::default());
    assert!(tape_accepts(&set, &order_schema(), VALID, &limits));
    let order: Order = fused(&order_schema(), VALID).expect("accepted");
    assert_eq!(order, serde_json::from_str::<Order>(VALID).unwrap());
    let value: Value = fused(&order_schema(), VALID).expect("accepted as a Value");
    assert_eq!(value, serde_json::from_str::<Value>(VALID).unwrap());
}

/// Bodies the schema or the guards refuse: the fused pass gives up on every one.
#[test]
fn owasp_input_validation_every_refused_body_ends_the_fused_pass() {
    let cases = [
        // RFC 8259 §4: a member named twice, planned or not.
        r#"{"currency":"EUR","currency":"USD","items":[{"sku":"ABC-1234","qty":2}]}"#,
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2}],"tags":{"a":1,"a":2}}"#,
        // `additionalProperties: false`, `required`, `minItems`, `maxItems`.
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2}],"admin":true}"#,
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234"}]}"#,
        r#"{"currency":"EUR","items":[]}"#,
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":1},{"sku":"ABC-1234","qty":1},{"sku":"ABC-1234","qty":1},{"sku":"ABC-1234","qty":1}]}"#,
        // `pattern`, `minimum`, `enum`, `maxLength`, `maxProperties`, types.
        r#"{"currency":"EUR","items":[{"sku":"abc-1234","qty":2}]}"#,
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":0}]}"#,
        r#"{"currency":"GBP","items":[{"sku":"ABC-1234","qty":2}]}"#,
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2}],"note":"far too long a note"}"#,
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2}],"tags":{"a":1,"b":2,"c":3,"d":4}}"#,
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2}],"tags":{"a":1.5}}"#,
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":"2"}]}"#,
        // CVE-2021-42574: a bidirectional control, escaped or sent as is.
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2}],"note":"a\u202eb"}"#,
        "{\"currency\":\"EUR\",\"items\":[{\"sku\":\"ABC-1234\",\"qty\":2}],\"note\":\"a\u{202e}b\"}",
        // A control character in a key.
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2}],"tags":{"a\u0000":1}}"#,
        // Not JSON, or JSON and more.
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2}]"#,
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2}]} {}"#,
        // A whole number written as a float for `integer` (valid, but not certain here).
        r#"{"currency":"EUR","items":[{"sku":"ABC-1234","qty":2.0}]}"#,
    ];
    let (set, limits) = (SchemaSet::new(), JsonLimits::default());
    for body in cases {
        assert!(fused::<Order>(&order_schema(), body).is_none(), "{body}");
        assert!(fused::<Value>(&order_schema(), body).is_none(), "{body}");
        if body.contains("2.0") {
            assert!(tape_accepts(&set, &order_schema(), body, &limits));
        } else {
            assert!(
                !tape_accepts(&set, &order_schema(), body, &limits),
                "{body}"
            );
        }
    }
}

#[test]
fn the_input_limits_hold_in_the_fused_pass() {
    let limits = JsonLimits {
        max_depth: 3,
        max_members: 4,
        max_string_bytes: 12,
        ..JsonLimits::default()
    };
    let any = json!({});
    let set = SchemaSet::new();
    let cases = [
        (r#"[[[1]]]"#, true),
        (r#"[[[[1]]]]"#, false),
        (r#"[1,2,3,4]"#, true),
        (r#"[1,2,3,4,5]"#, false),
        (r#"{"a":1,"b":2,"c":3,"d":4,"e":5}"#, false),
        (r#""twelve bytes""#, true),
        (r#""thirteen bytes""#, false),
        // An escaped string whose bytes as sent are not known to fit: given up.
        (r#""a\nb""#, false),
    ];
    for (body, accepted) in cases {
        let got = fused_with::<Value>(&set, &any, body, &limits);
        assert_eq!(got.is_some(), accepted, "{body}");
        if accepted {
            assert!(tape_accepts(&set, &any, body, &limits), "{body}");
        }
    }
    let long = format!("\"{}\"", "a".repeat(13));
    assert!(!tape_accepts(&set, &any, &long, &limits));
}

#[test]
fn what_the_fused_pass_cannot_see_ends_it() {
    // An enum written as an object, a key read as a number, serde_json's raw values.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    enum Shape {
        Circle(f64),
    }
    assert!(fused::<Shape>(&json!({}), r#"{"Circle":1.5}"#).is_none());
    assert!(fused::<std::collections::HashMap<u32, bool>>(&json!({}), r#"{"1":true}"#).is_none());
    assert!(fused::<Box<serde_json::value::RawValue>>(&json!({}), r#"{"a":1}"#).is_none());
    // A subschema the plan does not know, for an object: given up; for a scalar: judged.
    let one_of = json!({"oneOf": [{"type": "string"}, {"type": "object"}]});
    assert!(fused::<Value>(&one_of, r#"{"a":1}"#).is_none());
    assert!(fused::<Value>(&one_of, r#""s""#).is_some());
    assert!(fused::<Value>(&one_of, "1").is_none());
}

#[test]
fn a_ref_cycle_is_planned_once_and_checked_at_every_level() {
    let tree = json!({
        "$defs": {"node": {
            "type": "object", "additionalProperties": false,
            "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}
        }},
        "$ref": "#/$defs/node"
    });
    let ok = r#"{"v":1,"kids":[{"v":2,"kids":[{"v":3}]}]}"#;
    let bad = r#"{"v":1,"kids":[{"v":2,"kids":[{"v":"3"}]}]}"#;
    assert!(fused::<Value>(&tree, ok).is_some());
    assert!(fused::<Value>(&tree, bad).is_none());
    let set = SchemaSet::new();
    assert!(!tape_accepts(&set, &tree, bad, &JsonLimits::default()));
}

fn suite_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/JSON-Schema-Test-Suite")
}

/// Every case of the JSON Schema Test Suite: whatever the fused pass accepts, the tape path
/// accepts, with the same value.
fn suite(dir: &str, draft: Draft) {
    let set = SchemaSet::new().default_draft(draft);
    let limits = JsonLimits::default();
    let (mut accepted, mut cases) = (0, 0);
    let mut files: Vec<_> = std::fs::read_dir(suite_root().join("tests").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let groups: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for group in groups.as_array().unwrap() {
            let schema = &group["schema"];
            if set.compile(schema).is_err() {
                continue;
            }
            for test in group["tests"].as_array().unwrap() {
                cases += 1;
                let body = test["data"].to_string();
                let Some(value) = fused_with::<Value>(&set, schema, &body, &limits) else {
                    continue;
                };
                accepted += 1;
                assert!(
                    tape_accepts(&set, schema, &body, &limits),
                    "{}: {} / {}: accepted by the fused pass only",
                    file.display(),
                    group["description"],
                    test["description"]
                );
                assert_eq!(value, test["data"], "{}", file.display());
            }
        }
    }
    assert!(
        cases > 500 && accepted > 200,
        "{dir}: {accepted} of {cases} cases"
    );
}

#[test]
fn json_schema_test_suite_draft2020_12_the_fused_pass_never_accepts_more() {
    suite("draft2020-12", Draft::Draft202012);
}

#[test]
fn json_schema_test_suite_draft7_the_fused_pass_never_accepts_more() {
    suite("draft7", Draft::Draft7);
}

#[test]
fn json_schema_test_suite_draft2019_09_the_fused_pass_never_accepts_more() {
    suite("draft2019-09", Draft::Draft201909);
}

#[test]
fn json_schema_test_suite_draft6_the_fused_pass_never_accepts_more() {
    suite("draft6", Draft::Draft6);
}

#[test]
fn json_schema_test_suite_draft4_the_fused_pass_never_accepts_more() {
    suite("draft4", Draft::Draft4);
}

/// Orders, well-formed or not: valid ones, and ones with a field dropped, doubled, mistyped,
/// out of range, escaped, or with a hostile character.
fn order_text() -> impl Strategy<Value = String> {
    let sku = prop_oneof![
        Just("ABC-1234".to_owned()),
        "[A-Z]{3}-[0-9]{4}",
        "[A-Za-z0-9-]{0,9}",
        Just("AB\\u0043-1234".to_owned()),
    ];
    let qty = prop_oneof![
        (0i64..1200).prop_map(|q| q.to_string()),
        Just("2.0".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("\"3\"".to_owned()),
        Just("null".to_owned()),
    ];
    let item = (sku, qty, any::<Option<bool>>(), any::<bool>()).prop_map(|(s, q, g, extra)| {
        let mut fields = vec![format!("\"sku\":\"{s}\""), format!("\"qty\":{q}")];
        if let Some(g) = g {
            fields.push(format!("\"gift\":{g}"));
        }
        if extra {
            fields.push("\"qty\":1".into());
        }
        format!("{{{}}}", fields.join(","))
    });
    let note = prop_oneof![
        Just(None),
        Just(Some("null".to_owned())),
        "[ -~&&[^\"\\\\]]{0,14}".prop_map(|s| Some(format!("\"{s}\""))),
        Just(Some("\"\\u202e\"".to_owned())),
        Just(Some("\"a\\nb\"".to_owned())),
        Just(Some("\"\u{7}\"".to_owned())),
    ];
    let tags = proptest::collection::vec(("[a-c]{1,2}", -3i64..3), 0..5);
    let currency = prop_oneof![Just("\"EUR\""), Just("\"USD\""), Just("\"GBP\""), Just("1")];
    (
        currency,
        proptest::collection::vec(item, 0..5),
        note,
        proptest::option::of(tags),
        any::<u8>(),
    )
        .prop_map(|(c, items, note, tags, shuffle)| {
            let mut fields = vec![
                format!("\"currency\":{c}"),
                format!("\"items\":[{}]", items.join(",")),
            ];
            if let Some(n) = note {
                fields.push(format!("\"note\":{n}"));
            }
            if let Some(t) = tags {
                let t: Vec<String> = t.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                fields.push(format!("\"tags\":{{{}}}", t.join(",")));
            }
            match shuffle % 5 {
                0 => fields.reverse(),
                1 => {
                    fields.remove(0);
                }
                2 => fields.push("\"extra\":0".into()),
                _ => {}
            }
            format!("{{{}}}", fields.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_generated_order_is_accepted_only_if_the_tape_path_accepts_it_and_built_the_same(
        body in order_text(),
    ) {
        let (set, limits) = (SchemaSet::new(), JsonLimits::default());
        if let Some(order) = fused::<Order>(&order_schema(), &body) {
            prop_assert!(tape_accepts(&set, &order_schema(), &body, &limits), "{}", body);
            let tape = Tape::parse(&body, &limits).unwrap();
            prop_assert_eq!(order, Order::deserialize(tape.root()).unwrap());
        }
        if let Some(value) = fused::<Value>(&order_schema(), &body) {
            prop_assert!(tape_accepts(&set, &order_schema(), &body, &limits), "{}", body);
            prop_assert_eq!(value, serde_json::from_str::<Value>(&body).unwrap());
        }
    }

    #[test]
    fn arbitrary_text_never_panics_and_is_never_accepted_alone(body in "[\\[\\]{}\",:0-9a-z\\\\ ]{0,40}") {
        let (set, limits) = (SchemaSet::new(), JsonLimits::default());
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        if fused::<Value>(&schema, &body).is_some() {
            prop_assert!(tape_accepts(&set, &schema, &body, &limits), "{}", body);
        }
    }
}

#[test]
fn an_operation_learns_its_type_once_and_is_on_probation_after_sixteen_misses_in_a_row() {
    let slot = super::Slot::default();
    let plan = Plan::compile(&SchemaSet::new(), &order_schema());
    let limits = JsonLimits::default();
    let run = |body: &str| {
        slot.run(&plan, &limits, body.as_bytes())
            .map(|b| b.is_some())
    };
    assert_eq!(run(VALID), None);
    slot.learn::<Order>();
    // A second type does not replace the first.
    slot.learn::<Value>();
    let built = slot
        .run(&plan, &limits, VALID.as_bytes())
        .flatten()
        .unwrap();
    assert_eq!(built.take::<Value>(), None, "not a Value");
    assert_eq!(built.take::<Order>(), serde_json::from_str(VALID).ok());
    assert_eq!(built.take::<Order>(), None, "taken once");
    let whole = VALID.replace("\"qty\":2", "\"qty\":2.0");
    for _ in 0..15 {
        assert_eq!(run(&whole), Some(false));
        slot.missed();
    }
    // An accepted body clears the count.
    assert_eq!(run(VALID), Some(true));
    for _ in 0..16 {
        assert_eq!(run(&whole), Some(false));
        slot.missed();
    }
    assert!(slot.on_probation());
    // On probation, one body in 256 is tried: the first built ends it, a miss keeps it.
    let next_try = |body: &str| {
        (0..256)
            .find_map(|_| run(body))
            .expect("a body in 256 is tried")
    };
    assert!(!next_try(&whole));
    slot.missed();
    assert!(slot.on_probation(), "a miss on probation keeps it");
    assert!(next_try(VALID));
    assert!(!slot.on_probation(), "a body built ends the probation");
    assert_eq!(run(VALID), Some(true), "every body is tried again");
}
