//! What verify found: each violation, as `--format json` lists it.

use serde::Serialize;

pub(super) fn push(
    findings: &mut Vec<Finding>,
    kind: &'static str,
    seal: Option<i64>,
    event_id: Option<i64>,
    message: String,
) {
    findings.push(Finding {
        kind,
        seal,
        event_id,
        message,
    });
}

/// One finding; the first is the one reported.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Finding {
    pub(super) kind: &'static str,
    pub(super) seal: Option<i64>,
    pub(super) event_id: Option<i64>,
    pub(super) message: String,
}
