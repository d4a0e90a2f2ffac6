//! Tokens and cookies: random secrets for sessions and forms, and the cookie headers that
//! carry them. A leaf: nothing here knows about sessions, pages or errors.

use std::time::Duration;

use axum::http::HeaderMap;

/// 32 bytes from the operating system's random source, as 64 hex digits.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of a cookie in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a cookie only this site's pages send back, and no script can read.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    c
}

/// `Set-Cookie` for an embed session's cookie, which the browser must send from inside the
/// application's frame (a cross-site iframe, where a SameSite=Strict or Lax cookie is never
/// sent): `SameSite=None`, which browsers accept only with `Secure` (so the dashboard must be
/// served over HTTPS, or on a loopback address, which browsers count as secure), and
/// `Partitioned` (CHIPS), so that a browser blocking third-party cookies still keeps it, for
/// that application's pages only. CSRF is still refused by the origin check and the form
/// token ([`super::csrf`]).
pub fn set_embed_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=None; Partitioned")
}

pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "x_audit_trail_session=evil; audit_trail_session=good; other=1"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie(&h, "audit_trail_session"), Some("good"));
        assert_eq!(cookie(&h, "missing"), None);
        let embed = set_embed_cookie("audit_trail_embed", "t");
        assert!(
            embed.contains("HttpOnly")
                && embed.contains("Secure")
                && embed.contains("SameSite=None")
                && embed.contains("Partitioned")
        );
        let set = set_cookie("audit_trail_session", "t", None);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/")
        );
    }
}
