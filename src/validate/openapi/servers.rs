//! The `servers` of an OpenAPI document, as the base paths its operations are served under.

use serde_json::Value;

/// The path parts of `doc`'s `servers` URLs, other than `/` (see
/// [`OpenApi::base_paths`](super::OpenApi::base_paths)).
pub(super) fn base_paths(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let servers = doc.get("servers").and_then(Value::as_array);
    for server in servers.into_iter().flatten() {
        let Some(url) = server.get("url").and_then(Value::as_str) else {
            continue;
        };
        let mut url = url.to_owned();
        if let Some(vars) = server.get("variables").and_then(Value::as_object) {
            for (name, var) in vars {
                if let Some(default) = var.get("default").and_then(Value::as_str) {
                    url = url.replace(&format!("{{{name}}}"), default);
                }
            }
        }
        // The path of an absolute URL (`scheme://authority/path`), or the URL itself.
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
            None => url.as_str(),
        };
        let path = path
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        if path.is_empty() || path.contains('{') {
            continue;
        }
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        if !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_urls_give_their_paths_with_variables_filled_in() {
        let doc = json!({"servers": [
            {"url": "https://api.example.com/v1/"},
            {"url": "/v1"},
            {"url": "{scheme}://h/{version}/api", "variables": {
                "scheme": {"default": "https"}, "version": {"default": "v2"}}},
            {"url": "https://api.example.com"},
            {"url": "/"},
            {"url": "staging"}
        ]});
        assert_eq!(base_paths(&doc), ["/v1", "/v2/api", "/staging"]);
        assert!(base_paths(&json!({})).is_empty());
    }
}
