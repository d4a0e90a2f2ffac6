//! Choosing the partitions `audit-trail archive` writes: `audit.partitions` as listed, held
//! to `--partition` and `--before`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::timespec::{self, Bound};

/// A partition as `audit.partitions` lists it.
#[derive(Debug, Clone)]
pub(super) struct Partition {
    pub(super) name: String,
    /// None for `-infinity`: the partition an upgrade from 0.1.0 attached, FROM (MINVALUE).
    pub(super) from_time: Option<DateTime<Utc>>,
    /// None for `infinity` (and the default partition).
    pub(super) to_time: Option<DateTime<Utc>>,
    is_default: bool,
    closed: bool,
    archived: bool,
}

/// `--before`, read as the other commands read times (a bare date is its midnight in UTC).
pub(super) fn parse_before(text: &str) -> Result<DateTime<Utc>> {
    timespec::parse("--before", text, Bound::Start, Utc::now(), Tz::UTC)
        .map_err(|e| Error::Usage(e.to_string()))
}

/// `audit.events_20260101` for `events_20260101`.
fn qualified(name: &str) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        format!("audit.{name}")
    }
}

pub(super) async fn list_partitions(client: &Client) -> Result<Vec<Partition>> {
    let rows = client
        .query(
            // A partition attached by an upgrade from 0.1.0 starts at -infinity, which no
            // chrono time holds: such a bound reads as NULL, and the partition's months are
            // those of its rows.
            "SELECT partition, \
                    CASE WHEN pg_catalog.isfinite(from_time) THEN from_time END, \
                    CASE WHEN pg_catalog.isfinite(to_time) THEN to_time END, \
                    is_default, closed, archived \
               FROM audit.partitions ORDER BY is_default, from_time, partition",
            &[],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
                Error::NotInstalled(
                    "this database's audit_trail has no audit.partitions: update it \
                     (ALTER EXTENSION audit_trail UPDATE)"
                        .into(),
                )
            } else {
                Error::database("listing partitions", &e)
            }
        })?;
    rows.iter()
        .map(|r| {
            let decode = |e: tokio_postgres::Error| Error::database("listing partitions", &e);
            Ok(Partition {
                name: r.try_get(0).map_err(decode)?,
                from_time: r.try_get(1).map_err(decode)?,
                to_time: r.try_get(2).map_err(decode)?,
                is_default: r.try_get(3).map_err(decode)?,
                closed: r.try_get(4).map_err(decode)?,
                archived: r.try_get(5).map_err(decode)?,
            })
        })
        .collect()
}

/// The partitions to archive, oldest first. Named partitions that cannot be archived are
/// refused (exit 2) before anything is written; named ones already archived are skipped
/// with a note.
pub(super) fn select(
    all: &[Partition],
    names: &[String],
    before: Option<DateTime<Utc>>,
) -> Result<Vec<Partition>> {
    let fits_before = |p: &Partition| match (before, p.to_time) {
        (None, _) => true,
        (Some(b), Some(t)) => t <= b,
        (Some(_), None) => false,
    };
    // A closed partition has an end; only its start may be -infinity (0.1.0's partition).
    let bounded = |p: &Partition| p.to_time.is_some();
    if names.is_empty() {
        return Ok(all
            .iter()
            .filter(|p| !p.is_default && p.closed && !p.archived && fits_before(p) && bounded(p))
            .cloned()
            .collect());
    }
    let mut chosen: Vec<Partition> = Vec::new();
    for name in names {
        let name = qualified(name.trim());
        let p = all.iter().find(|p| p.name == name).ok_or_else(|| {
            Error::Usage(format!(
                "--partition {name}: no such partition (see audit.partitions)"
            ))
        })?;
        if p.is_default {
            return Err(Error::Usage(format!(
                "--partition {name}: the default partition is never archived (audit.maintain() \
                 moves its rows into partitions of their own)"
            )));
        }
        if !p.closed {
            return Err(Error::Usage(format!(
                "--partition {name}: still open (it ends {})",
                p.to_time.map_or_else(|| "never".into(), |t| t.to_rfc3339())
            )));
        }
        if !bounded(p) {
            return Err(Error::Usage(format!(
                "--partition {name}: has no end; cannot be archived"
            )));
        }
        if p.archived {
            tracing::info!(partition = %name, "already archived; skipped");
            continue;
        }
        if !fits_before(p) {
            tracing::info!(partition = %name, "ends after --before; skipped");
            continue;
        }
        if !chosen.iter().any(|c| c.name == p.name) {
            chosen.push(p.clone());
        }
    }
    chosen.sort_by_key(|p| p.from_time);
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn month(y: i32, m: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()
    }

    fn partitions() -> Vec<Partition> {
        let p = |name: &str, from, to, closed, archived| Partition {
            name: name.into(),
            from_time: from,
            to_time: to,
            is_default: false,
            closed,
            archived,
        };
        vec![
            p(
                "audit.events_20260101",
                month(2026, 1),
                month(2026, 2),
                true,
                true,
            ),
            p(
                "audit.events_20260201",
                month(2026, 2),
                month(2026, 3),
                true,
                false,
            ),
            p(
                "audit.events_20260301",
                month(2026, 3),
                month(2026, 4),
                true,
                false,
            ),
            p(
                "audit.events_20261201",
                month(2026, 12),
                month(2027, 1),
                false,
                false,
            ),
            Partition {
                name: "audit.events_default".into(),
                from_time: None,
                to_time: None,
                is_default: true,
                closed: false,
                archived: false,
            },
        ]
    }

    fn names(ps: &[Partition]) -> Vec<&str> {
        ps.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn selects_closed_unarchived_partitions_before_a_date() {
        let all = partitions();
        let chosen = select(&all, &[], None).expect("select");
        assert_eq!(
            names(&chosen),
            ["audit.events_20260201", "audit.events_20260301"]
        );
        let before = parse_before("2026-03-01").expect("a date");
        let chosen = select(&all, &[], Some(before)).expect("select");
        assert_eq!(names(&chosen), ["audit.events_20260201"]);
        let chosen = select(&all, &["events_20260301".into()], None).expect("select");
        assert_eq!(names(&chosen), ["audit.events_20260301"]);
    }

    #[test]
    fn the_partition_of_an_upgrade_from_0_1_0_is_archived_once_closed() {
        let mut all = partitions();
        all.insert(
            0,
            Partition {
                name: "audit.events_0_1_0".into(),
                from_time: None,
                to_time: month(2026, 1),
                is_default: false,
                closed: true,
                archived: false,
            },
        );
        let chosen = select(&all, &[], None).expect("select");
        assert_eq!(names(&chosen)[0], "audit.events_0_1_0");
        let chosen = select(
            &all,
            &["events_20260201".into(), "events_0_1_0".into()],
            None,
        )
        .expect("select");
        assert_eq!(
            names(&chosen),
            ["audit.events_0_1_0", "audit.events_20260201"]
        );
    }

    #[test]
    fn refuses_unknown_open_and_default_partitions() {
        let all = partitions();
        for bad in ["events_20250101", "audit.events_20261201", "events_default"] {
            let err = select(&all, &[bad.into()], None).expect_err(bad);
            assert_eq!(err.exit_code(), 2, "{bad}: {err}");
        }
        assert_eq!(
            parse_before("last tuesday").expect_err("bad").exit_code(),
            2
        );
    }
}
