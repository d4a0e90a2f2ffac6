//! `audit.context`: a JSON object the application sets per transaction.

/// The key of `context` under which capture records the role the connection authenticated
/// as, when `SET SESSION AUTHORIZATION` made `session_user` (and so `db_user`) another one.
/// Reserved: an application's context may not use it.
pub const AUTHENTICATED_ROLE_KEY: &str = "authenticated_role";

/// The key of `context` under which capture records the organization the transaction acted
/// for (`audit.set_actor`'s tenant) when it changed a row of another: a cross-organization
/// write, which the built-in `cross-tenant` alert rule reports. Reserved like the role's.
pub const ACTING_TENANT_KEY: &str = "acting_tenant";

/// The key of `context` under which capture records, on each change `audit.revert` or
/// `audit.revert_transaction` writes, the id of the event it puts back (docs/undo.md).
/// Reserved like the others, so that only a revert reads as one.
pub const REVERTS_KEY: &str = "reverts";

/// The `source` of the changes a revert writes: reserved to them in the same way.
pub const REVERT_SOURCE: &str = "revert";

/// Keys of `context` only capture writes.
pub const RESERVED_CONTEXT_KEYS: [&str; 3] =
    [AUTHENTICATED_ROLE_KEY, ACTING_TENANT_KEY, REVERTS_KEY];

/// Why an `audit.context` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("{0}")]
    NotJson(String),
    #[error("got {0}")]
    NotAnObject(String),
    #[error("the key \"{0}\" is reserved: only capture records it")]
    ReservedKey(&'static str),
}

/// Checks that `raw` is one JSON object, so that a bad value fails with a message naming the
/// setting rather than a bare JSON syntax error from PostgreSQL.
pub fn check_context(raw: &str) -> Result<(), ContextError> {
    serde_json::from_str::<serde::de::IgnoredAny>(raw)
        .map_err(|e| ContextError::NotJson(e.to_string()))?;
    let start = raw.trim_start();
    if !start.starts_with('{') {
        return Err(ContextError::NotAnObject(start.chars().take(20).collect()));
    }
    let keys: std::collections::HashMap<String, serde::de::IgnoredAny> =
        serde_json::from_str(raw).map_err(|e| ContextError::NotJson(e.to_string()))?;
    if let Some(key) = RESERVED_CONTEXT_KEYS
        .iter()
        .find(|k| keys.contains_key(**k))
    {
        return Err(ContextError::ReservedKey(key));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_pass_and_everything_else_is_named() {
        assert_eq!(check_context(r#"{"request_id": "42"}"#), Ok(()));
        assert_eq!(check_context(" {}"), Ok(()));
        assert_eq!(
            check_context("[1, 2]"),
            Err(ContextError::NotAnObject("[1, 2]".into()))
        );
        assert!(matches!(check_context("{"), Err(ContextError::NotJson(_))));
        assert!(matches!(
            check_context(r#"{"a": 1} {"b": 2}"#),
            Err(ContextError::NotJson(_))
        ));
        assert_eq!(
            check_context(r#"{"authenticated_role": "ceo"}"#),
            Err(ContextError::ReservedKey(AUTHENTICATED_ROLE_KEY))
        );
        assert_eq!(
            check_context(r#"{"acting_tenant": "acme"}"#),
            Err(ContextError::ReservedKey(ACTING_TENANT_KEY))
        );
        assert_eq!(
            check_context(r#"{"reverts": 42}"#),
            Err(ContextError::ReservedKey(REVERTS_KEY))
        );
    }
}
