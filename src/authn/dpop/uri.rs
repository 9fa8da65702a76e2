//! The `htu` comparison of RFC 9449 §4.3 check 9: both URIs without query and fragment,
//! after RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based normalization.

/// `uri` normalized: lowercase scheme and host, no default port, an empty path as `/`,
/// percent-encodings uppercase and unreserved characters decoded, dot segments removed; the
/// query and fragment dropped. `None` for anything but an absolute `http`/`https` URI with a
/// host and no user information.
pub(super) fn normalize(uri: &str) -> Option<String> {
    let uri = uri.split(['#', '?']).next().unwrap_or("");
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let mut authority = authority.to_ascii_lowercase();
    if authority.ends_with(default_port) {
        authority.truncate(authority.len() - default_port.len());
    } else if authority.ends_with(':') {
        authority.pop();
    }
    let mut out = format!("{scheme}://{authority}");
    out.push_str(&remove_dot_segments(&normalize_path(path)?));
    if out.len() == scheme.len() + 3 + authority.len() {
        out.push('/');
    }
    Some(out)
}

/// The path with percent-encodings in uppercase, and those of unreserved characters decoded
/// (RFC 3986 §6.2.2.1, §6.2.2.2). `None` for a broken percent-encoding.
pub(super) fn normalize_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    path.is_ascii().then_some(out)
}

/// RFC 3986 §5.2.4: `.` and `..` segments resolved.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            "." | ".." => {
                if segment == ".." {
                    segments.pop();
                }
                if last {
                    segments.push("");
                }
            }
            s => segments.push(s),
        }
    }
    if path.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(path.len());
    for s in segments {
        out.push('/');
        out.push_str(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn rfc9449_4_3_9_htu_is_compared_after_rfc3986_normalization() {
        let n = |s| normalize(s).unwrap();
        assert_eq!(
            n("https://server.example.com/token"),
            "https://server.example.com/token"
        );
        // §6.2.2.1 case, §6.2.3 default port and empty path, query and fragment ignored.
        assert_eq!(
            n("HTTPS://Server.Example.COM:443"),
            "https://server.example.com/"
        );
        assert_eq!(n("http://a.example:80/x?y=1#z"), "http://a.example/x");
        assert_eq!(n("https://a.example:8443/x"), "https://a.example:8443/x");
        // §6.2.2.2 percent-encoding, §6.2.2.3 dot segments.
        assert_eq!(
            n("https://a.example/%7euser/a%2fb"),
            "https://a.example/~user/a%2Fb"
        );
        assert_eq!(n("https://a.example/a/./b/../c"), "https://a.example/a/c");
        assert_eq!(n("https://a.example/a/.."), "https://a.example/");
        for bad in [
            "ftp://a.example/",
            "https:///x",
            "https://user@a.example/",
            "/relative",
            "https://a.example/%zz",
            "https://a.example/é",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn normalization_is_idempotent(path in "(/[a-zA-Z0-9%._~-]{0,6}){0,4}") {
            if let Some(once) = normalize(&format!("https://A.example{path}")) {
                prop_assert_eq!(normalize(&once), Some(once.clone()));
            }
        }
    }
}
