//! The order of the validation and stack benches: a ~1 KB JSON body (customer object, currency
//! enum, 10 line items with patterns and bounds, shipping address, nullable note) and its schema.

#![allow(dead_code)]

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct Order {
    customer: Customer,
    currency: String,
    items: Vec<Item>,
    shipping: Address,
    note: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct Customer {
    id: String,
    email: String,
    tier: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct Item {
    sku: String,
    name: String,
    qty: u32,
    unit_price: f64,
    gift: bool,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct Address {
    line1: String,
    city: String,
    postcode: String,
    country: String,
}

/// The order schema: nested objects, 10 line items, patterns, enums, bounds.
pub(crate) fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["customer", "currency", "items", "shipping"],
        "additionalProperties": false,
        "properties": {
            "customer": {
                "type": "object", "required": ["id", "email", "tier"], "additionalProperties": false,
                "properties": {
                    "id": {"type": "string", "pattern": "^cus_[a-zA-Z0-9]{12}$"},
                    "email": {"type": "string", "maxLength": 254, "pattern": "^[^@\\s]+@[^@\\s]+$"},
                    "tier": {"enum": ["free", "pro", "enterprise"]}
                }
            },
            "currency": {"enum": ["EUR", "USD", "GBP", "JPY"]},
            "items": {
                "type": "array", "minItems": 1, "maxItems": 50,
                "items": {
                    "type": "object", "required": ["sku", "name", "qty", "unit_price"], "additionalProperties": false,
                    "properties": {
                        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                        "name": {"type": "string", "minLength": 1, "maxLength": 80},
                        "qty": {"type": "integer", "minimum": 1, "maximum": 999},
                        "unit_price": {"type": "number", "exclusiveMinimum": 0, "maximum": 100000},
                        "gift": {"type": "boolean"}
                    }
                }
            },
            "shipping": {
                "type": "object", "required": ["line1", "city", "postcode", "country"],
                "properties": {
                    "line1": {"type": "string", "minLength": 1, "maxLength": 100},
                    "city": {"type": "string", "minLength": 1, "maxLength": 60},
                    "postcode": {"type": "string", "pattern": "^[A-Z0-9 -]{3,10}$"},
                    "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
                }
            },
            "note": {"type": ["string", "null"], "maxLength": 500}
        }
    })
}

/// A batch of orders: an array of up to 2,000 of them.
pub(crate) fn batch_schema() -> Value {
    json!({"type": "array", "maxItems": 2000, "items": schema()})
}

/// `n` orders in one array (about 1,010 bytes each).
pub(crate) fn batch_body(n: usize) -> Bytes {
    let one = body();
    let mut out = Vec::with_capacity(n * (one.len() + 1) + 2);
    out.push(b'[');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&one);
    }
    out.push(b']');
    Bytes::from(out)
}

/// [`by_hand`] for a batch.
pub(crate) fn by_hand_batch(validator: &jsonschema::Validator, body: &[u8]) -> http::StatusCode {
    use http::StatusCode;
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return StatusCode::BAD_REQUEST;
    };
    if validator.iter_errors(&value).next().is_some() {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    let Ok(orders) = serde_json::from_value::<Vec<Order>>(value) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    std::hint::black_box(orders);
    StatusCode::OK
}

pub(crate) fn body() -> Bytes {
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"sku": format!("ABC-{:04}", 1000 + i), "name": format!("Widget #{i}"), "qty": i + 1, "unit_price": 19.99 + f64::from(i), "gift": i % 3 == 0}))
        .collect();
    let order = json!({
        "customer": {"id": "cus_a1B2c3D4e5F6", "email": "alice@example.com", "tier": "pro"},
        "currency": "EUR",
        "items": items,
        "shipping": {"line1": "1 Rue de la Paix", "city": "Paris", "postcode": "75002", "country": "FR"},
        "note": "Leave at the door, please."
    });
    Bytes::from(order.to_string())
}

/// What a host writes without palisade: parse, validate with `jsonschema`, deserialize;
/// `ok` when all of it passes.
pub(crate) fn by_hand(
    validator: &jsonschema::Validator,
    body: &[u8],
    ok: http::StatusCode,
) -> http::StatusCode {
    use http::StatusCode;
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return StatusCode::BAD_REQUEST;
    };
    if validator.iter_errors(&value).next().is_some() {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    let Ok(order) = serde_json::from_value::<Order>(value) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    std::hint::black_box(order);
    ok
}
