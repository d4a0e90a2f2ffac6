//! Which SQL a page of the Audit Log runs, decided without a database: the plain walk of the
//! (occurred_at, id) index, or the walk of the hours the summary counts matches in. Pages are
//! found by keyset, `(occurred_at, id) < (cursor)`, which the `(occurred_at, id)` index
//! serves newest first without OFFSET.

use chrono::DurationRound;
use chrono::{DateTime, Utc};

use super::super::params::Page;
use super::SummaryState;
use crate::filters::{Clauses, Filters, Params};

/// Floors a time to its UTC hour, as `audit.event_summary.hour` is.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::hours(1)).unwrap_or(t)
}

/// The SQL of one page of the list and its parameters.
pub struct PageSql {
    pub sql: String,
    pub params: Params,
}

/// Whether a page of `filters` is worth finding through the summary: only a filter on a
/// dimension of the summary makes the time index walk long, a subject filter is served
/// by the (entity, subject_id) index instead, and an organization by its own
/// (tenant, occurred_at, id) index (the summary does not count by it).
pub fn may_use_summary(filters: &Filters) -> bool {
    filters.has_dimensions() && filters.subject.is_none() && filters.tenant.is_none()
}

/// The page of `limit` events to read, through the summary when [`may_use_summary`] and
/// `state` has a watermark, else by [`plain_page_sql`].
pub fn page_sql(filters: &Filters, page: Page, limit: i64, state: &SummaryState) -> PageSql {
    match state.watermark() {
        Some(w) if may_use_summary(filters) => summarized_page_sql(filters, page, limit, w),
        _ => plain_page_sql(filters, page, limit),
    }
}

/// Today's page query: the newest (or, going back, oldest) `limit` matching events by the
/// (occurred_at, id) index. With a dimension filter that matches rarely or never, this walks
/// the index a long way: [`summarized_page_sql`] is used then.
pub fn plain_page_sql(filters: &Filters, page: Page, limit: i64) -> PageSql {
    let mut params = Params::new();
    let mut clauses: Vec<String> = filters.clauses(&mut params).all().collect();
    let order = order_of(page);
    if let Some(k) = keyset(page, &mut params) {
        clauses.push(k.clause);
    }
    let limit = params.push(limit);
    PageSql {
        sql: format!(
            "SELECT {COLUMNS} FROM audit.events{where_} \
             ORDER BY occurred_at {order}, id {order} LIMIT {limit}",
            where_ = where_(&clauses),
        ),
        params,
    }
}

/// A page found through the hourly summary: the hours whose summary rows match the
/// dimension filters, newest first (oldest first going back to newer pages), then in each
/// such hour the matching summarized events by the (occurred_at, id) index, and the events
/// not summarized yet (`txid >= watermark`) by the (txid, id) index. See [`counted_hours`]
/// for how the hours are found.
///
/// `limit + 3` hours are enough: every candidate hour holds a matching summarized event
/// except the cursor's hour (its matches may all lie on the other side of the cursor) and
/// the two hours cut by the time range, so the hours give at least `limit` events.
/// Fewer are read when the summary's counts show it: once the hours before one hold `limit`
/// matching events for certain (not counting those three hours, whose counts may include
/// events outside the page's bounds), that hour and older ones cannot reach the page; so a
/// filter that matches often reads an hour or two, not `limit + 3`.
pub fn summarized_page_sql(filters: &Filters, page: Page, limit: i64, watermark: &str) -> PageSql {
    let mut params = Params::new();
    let clauses = filters.clauses(&mut params);
    let order = order_of(page);
    // The hours the page's bounds allow.
    let mut bounds = Vec::new();
    let mut uncertain = Vec::new();
    if let Some(since) = filters.since {
        bounds.push(format!("hour >= {}", params.push(hour_of(since))));
        uncertain.push(hour_of(since));
    }
    if let Some(until) = filters.until {
        bounds.push(format!("hour < {}", params.push(until)));
        uncertain.push(hour_of(until));
    }
    let events: Vec<String> = clauses.all().collect();
    let mut tail = events.clone();
    let mut summarized = events;
    if let (Some(k), Page::Before(c) | Page::After(c)) = (keyset(page, &mut params), page) {
        tail.push(k.clause.clone());
        let cursor_hour = params.push(hour_of(c.at));
        let op = if order == "DESC" { "<=" } else { ">=" };
        bounds.push(format!("hour {op} {cursor_hour}"));
        uncertain.push(hour_of(c.at));
        // In an hour's index scan the keyset bounds only the cursor's own hour. As an index
        // condition a row comparison would start every hour's scan at the cursor and walk
        // all the hours in between; so the time alone bounds the scan, and the row comparison
        // is a filter that only the cursor's hour needs.
        summarized.push(format!("occurred_at {op} {}", k.at));
        summarized.push(format!("(h.hour <> {cursor_hour} OR {})", k.clause));
    }
    let uncertain = params.push(uncertain);
    let watermark = format!("{}::text::xid8", params.push(watermark.to_owned()));
    let hours = HoursQuery {
        clauses: &clauses,
        distinct_actors: (0..filters.actors.len())
            .filter(|&i| !filters.actors[..i].contains(&filters.actors[i]))
            .map(|i| i + 1)
            .collect(),
        bounds: &bounds,
        order,
        limit: params.push(limit + 3),
    };
    let counted = counted_hours(&hours, &mut params);
    let limit = params.push(limit);
    summarized.push("occurred_at >= h.hour".into());
    summarized.push("occurred_at < h.hour + interval '1 hour'".into());
    summarized.push(format!("txid < {watermark}"));
    tail.push(format!("txid >= {watermark}"));
    PageSql {
        sql: format!(
            "SELECT {COLUMNS} FROM (\
             SELECT p.* FROM (SELECT hour FROM (\
             SELECT hour, pg_catalog.sum(CASE WHEN hour = ANY ({uncertain}) THEN 0 ELSE n END) \
             OVER (ORDER BY hour {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before \
             FROM {counted} AS c) AS c \
             WHERE before IS NULL OR before < {limit}::bigint) AS h \
             CROSS JOIN LATERAL (SELECT {COLUMNS} FROM audit.events{summarized} \
             ORDER BY occurred_at {order}, id {order} LIMIT {limit}) AS p \
             UNION ALL \
             (SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM audit.events{tail} ORDER BY txid, id) AS t \
             ORDER BY occurred_at {order}, id {order} LIMIT {limit})) AS u \
             ORDER BY occurred_at {order}, id {order} LIMIT {limit}",
            summarized = where_(&summarized),
            tail = where_(&tail),
        ),
        params,
    }
}

const COLUMNS: &str = "id, occurred_at, actor, action, entity, subject_id, source";

/// At most this many `audit.kind_hours` rows are read to learn whether the hours of a filter
/// on actors and other dimensions are few enough to probe one by one (each probe is one
/// index lookup of some tens of microseconds).
const PROBE_LIMIT: i64 = 1000;

/// What [`counted_hours`] needs: the filters' clauses, the hour bounds of the page, the
/// order, and the parameter that holds how many hours to return.
struct HoursQuery<'a> {
    clauses: &'a Clauses,
    /// The 1-based positions in `clauses.actors_array` of its distinct actors (a name given
    /// twice would otherwise be counted twice).
    distinct_actors: Vec<usize>,
    bounds: &'a [String],
    order: &'static str,
    limit: String,
}

/// The candidate hours of a page and their matching events, `(hour, n)`, the first
/// `limit` in the page's order.
///
/// Without actors they come from `audit.kind_hours`, whose rows per hour do not grow with
/// the events. With actors they come from `audit.event_summary` by its (actor, hour) index;
/// with other dimensions too, that walk can read every hour of a busy actor that never
/// matches them. So when `audit.kind_hours` has fewer than [`PROBE_LIMIT`] rows for the
/// other dimensions (a rare or impossible combination), their hours are probed one by one
/// instead, in the page's order, until `limit` match. The count decides when the query runs
/// (a one-time filter): the way not taken is never executed.
fn counted_hours(q: &HoursQuery, params: &mut Params) -> String {
    let HoursQuery {
        clauses,
        ref distinct_actors,
        bounds,
        order,
        ref limit,
    } = *q;
    let kind: Vec<String> = clauses.dimensions.iter().chain(bounds).cloned().collect();
    let Some(actors) = &clauses.actors else {
        return format!(
            "(SELECT hour, pg_catalog.sum(events) AS n FROM audit.kind_hours{kind} \
             GROUP BY hour ORDER BY hour {order} LIMIT {limit})",
            kind = where_(&kind),
        );
    };
    let and_kind: String = kind.iter().map(|c| format!(" AND {c}")).collect();
    let by_actor = match &clauses.actors_array {
        // Several actors: each one's newest hours by its own index scan, then merged (the
        // newest hours of all are among each one's newest, with every count that makes them
        // up), rather than every hour of all of them sorted. Each scan names its actor as an
        // element of the array, which the plan knows the value of (not so a row of unnest,
        // which made every scan a bitmap over all of the actor's rows).
        Some(array) => format!(
            "(SELECT hour, pg_catalog.sum(n) AS n FROM ({per_actor}) AS per \
             GROUP BY hour ORDER BY hour {order} LIMIT {limit})",
            per_actor = distinct_actors
                .iter()
                .map(|i| {
                    format!(
                        "(SELECT hour, pg_catalog.sum(events) AS n FROM audit.event_summary \
                         WHERE actor = ({array}::text[])[{i}]{and_kind} \
                         GROUP BY hour ORDER BY hour {order} LIMIT {limit})"
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL "),
        ),
        None => format!(
            "(SELECT hour, pg_catalog.sum(events) AS n FROM audit.event_summary \
             WHERE {actors}{and_kind} GROUP BY hour ORDER BY hour {order} LIMIT {limit})",
        ),
    };
    if clauses.dimensions.is_empty() {
        return by_actor;
    }
    let probed = params.push(PROBE_LIMIT);
    format!(
        "(WITH kind AS MATERIALIZED (SELECT hour FROM audit.kind_hours{kind} LIMIT {probed}) \
         (SELECT k.hour, per.n FROM (SELECT DISTINCT hour FROM kind ORDER BY hour {order}) AS k \
         CROSS JOIN LATERAL (SELECT pg_catalog.sum(events) AS n FROM audit.event_summary \
         WHERE {actors}{and_dimensions} AND hour = k.hour) AS per \
         WHERE per.n IS NOT NULL AND (SELECT pg_catalog.count(*) FROM kind) < {probed} \
         ORDER BY k.hour {order} LIMIT {limit}) \
         UNION ALL \
         (SELECT hour, n FROM {by_actor} AS a \
         WHERE (SELECT pg_catalog.count(*) FROM kind) >= {probed}))",
        kind = where_(&kind),
        and_dimensions = clauses
            .dimensions
            .iter()
            .map(|c| format!(" AND {c}"))
            .collect::<String>(),
    )
}

pub fn order_of(page: Page) -> &'static str {
    match page {
        Page::After(_) => "ASC",
        Page::Newest | Page::Before(_) => "DESC",
    }
}

/// The keyset condition of a page after or before a cursor, and the placeholder of the
/// cursor's time.
struct Keyset {
    clause: String,
    at: String,
}

fn keyset(page: Page, params: &mut Params) -> Option<Keyset> {
    let (op, c) = match page {
        Page::Newest => return None,
        Page::Before(c) => ("<", c),
        Page::After(c) => (">", c),
    };
    let at = params.push(c.at);
    let id = params.push(c.id);
    Some(Keyset {
        clause: format!("(occurred_at, id) {op} ({at}, {id})"),
        at,
    })
}

fn where_(clauses: &[String]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::web::params::Cursor;
    use chrono::TimeZone;

    const WATERMARK: &str = "4242424242";
    const LIMIT: i64 = 51;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, h, m, 7).unwrap()
    }

    fn hour(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, h, 0, 0).unwrap()
    }

    fn pages() -> [Page; 3] {
        let c = Cursor {
            at: t(15, 20),
            id: 99,
        };
        [Page::Newest, Page::Before(c), Page::After(c)]
    }

    fn summarized() -> SummaryState {
        SummaryState::At {
            watermark: WATERMARK.into(),
            summarized_at: t(8, 0),
        }
    }

    /// Every filter, each value one that can be looked for in the SQL text.
    fn every_filter() -> Filters {
        Filters {
            since: Some(t(9, 30)),
            until: Some(t(17, 45)),
            actors: vec!["actor-ann".into(), "actor-bob".into()],
            entities: vec!["entity-one".into()],
            actions: vec!["action-one".into(), "action-two".into()],
            except_actions: vec!["action-not".into()],
            table: Some("table-one".into()),
            subject: None,
            source: Some("source'; DROP TABLE x; --".into()),
            tenant: None,
        }
    }

    /// The filter shapes the planner tells apart.
    fn filter_sets() -> Vec<Filters> {
        let one = |f: fn(&mut Filters)| {
            let mut filters = Filters::default();
            f(&mut filters);
            filters
        };
        vec![
            Filters::default(),
            one(|f| f.since = Some(t(9, 30))),
            one(|f| f.entities = vec!["entity-one".into()]),
            one(|f| f.actors = vec!["actor-ann".into()]),
            one(|f| f.actors = vec!["actor-ann".into(), "actor-bob".into()]),
            one(|f| {
                f.actors = vec!["actor-ann".into()];
                f.source = Some("source-one".into());
            }),
            every_filter(),
            Filters {
                subject: Some("subject-one".into()),
                ..every_filter()
            },
        ]
    }

    /// Every page of every filter shape, by both ways.
    fn every_plan() -> Vec<(String, PageSql)> {
        let mut plans = Vec::new();
        for filters in filter_sets() {
            for page in pages() {
                let label = format!("{filters:?} {page:?}");
                plans.push((
                    format!("plain {label}"),
                    plain_page_sql(&filters, page, LIMIT),
                ));
                plans.push((
                    format!("summarized {label}"),
                    summarized_page_sql(&filters, page, LIMIT, WATERMARK),
                ));
            }
        }
        plans
    }

    /// The numbers of the `$n` placeholders in `sql`.
    fn placeholders(sql: &str) -> BTreeSet<usize> {
        sql.split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect()
    }

    /// The bound values, as `Debug` shows them, `$1` first.
    fn bound(q: &PageSql) -> Vec<String> {
        q.params.values().iter().map(|p| format!("{p:?}")).collect()
    }

    /// The value bound to `placeholder` (`$n`).
    fn value_of(q: &PageSql, placeholder: &str) -> String {
        let n: usize = placeholder
            .trim_start_matches('$')
            .parse()
            .expect("a placeholder");
        bound(q)[n - 1].clone()
    }

    fn reads(q: &PageSql, table: &str) -> bool {
        q.sql.contains(&format!("FROM {table}"))
    }

    fn is_plain(q: &PageSql) -> bool {
        reads(q, "audit.events")
            && !reads(q, "audit.event_summary")
            && !reads(q, "audit.kind_hours")
    }

    #[test]
    fn placeholders_are_numbered_densely_and_match_the_parameters() {
        for (label, q) in every_plan() {
            let expected: BTreeSet<usize> = (1..=q.params.len()).collect();
            assert_eq!(placeholders(&q.sql), expected, "{label}: {}", q.sql);
        }
    }

    #[test]
    fn filter_values_are_parameters_never_sql_text() {
        let values = [
            "actor-ann",
            "actor-bob",
            "entity-one",
            "action-one",
            "action-two",
            "action-not",
            "table-one",
            "subject-one",
            "DROP TABLE",
        ];
        let with_subject = Filters {
            subject: Some("subject-one".into()),
            ..every_filter()
        };
        for page in pages() {
            let plans = [
                plain_page_sql(&with_subject, page, LIMIT),
                summarized_page_sql(&with_subject, page, LIMIT, WATERMARK),
            ];
            for q in &plans {
                let bound = bound(q).join(" ");
                for value in values {
                    assert!(!q.sql.contains(value), "{value} in {}", q.sql);
                    assert!(bound.contains(value), "{value} not bound: {bound}");
                }
                // Times and the cursor too.
                assert!(
                    !q.sql.contains("2026") && !q.sql.contains("99"),
                    "{}",
                    q.sql
                );
            }
            let summarized = &plans[1];
            assert!(!summarized.sql.contains(WATERMARK), "{}", summarized.sql);
            assert!(bound(summarized).contains(&format!("{WATERMARK:?}")));
        }
    }

    #[test]
    fn the_summary_is_used_for_dimension_filters_without_a_subject_once_summarized() {
        let entity = Filters {
            entities: vec!["entity-one".into()],
            ..Filters::default()
        };
        let time_only = Filters {
            since: Some(t(9, 30)),
            until: Some(t(17, 45)),
            ..Filters::default()
        };
        let with_subject = Filters {
            subject: Some("subject-one".into()),
            ..entity.clone()
        };
        for page in pages() {
            for state in [SummaryState::Unavailable, SummaryState::Empty, summarized()] {
                for filters in [&Filters::default(), &time_only, &with_subject] {
                    assert!(is_plain(&page_sql(filters, page, LIMIT, &state)));
                }
            }
            for state in [SummaryState::Unavailable, SummaryState::Empty] {
                assert!(is_plain(&page_sql(&entity, page, LIMIT, &state)));
            }
            let q = page_sql(&entity, page, LIMIT, &summarized());
            assert!(!is_plain(&q), "{}", q.sql);
            assert!(bound(&q).contains(&format!("{WATERMARK:?}")));
        }
        assert!(may_use_summary(&entity));
        assert!(!may_use_summary(&time_only) && !may_use_summary(&with_subject));
    }

    #[test]
    fn hours_are_counted_by_kind_without_actors_and_probed_for_actors_and_other_dimensions() {
        let probes = |q: &PageSql| bound(q).iter().filter(|v| **v == "1000").count();
        let entity = Filters {
            entities: vec!["entity-one".into()],
            ..Filters::default()
        };
        let actor = Filters {
            actors: vec!["actor-ann".into()],
            ..Filters::default()
        };
        let both = Filters {
            entities: entity.entities.clone(),
            ..actor.clone()
        };
        for page in pages() {
            let q = summarized_page_sql(&entity, page, LIMIT, WATERMARK);
            assert!(reads(&q, "audit.kind_hours") && !reads(&q, "audit.event_summary"));
            assert_eq!(probes(&q), 0);
            let q = summarized_page_sql(&actor, page, LIMIT, WATERMARK);
            assert!(!reads(&q, "audit.kind_hours") && reads(&q, "audit.event_summary"));
            assert_eq!(probes(&q), 0);
            let q = summarized_page_sql(&both, page, LIMIT, WATERMARK);
            assert!(reads(&q, "audit.kind_hours") && reads(&q, "audit.event_summary"));
            assert_eq!(probes(&q), 1, "{:?}", bound(&q));
        }
    }

    #[test]
    fn newer_pages_are_read_oldest_first_and_the_others_newest_first() {
        for (label, q) in every_plan() {
            let (order, other) = if label.contains("After") {
                ("ASC", "DESC")
            } else {
                ("DESC", "ASC")
            };
            assert!(
                q.sql
                    .contains(&format!("ORDER BY occurred_at {order}, id {order}"))
                    && !q.sql.contains(other),
                "{label}: {}",
                q.sql
            );
        }
    }

    #[test]
    fn the_page_reads_its_limit_and_the_hours_limit_plus_three() {
        for (label, q) in every_plan() {
            let last = q.sql.rsplit("LIMIT ").next().unwrap_or_default();
            assert_eq!(value_of(&q, last), LIMIT.to_string(), "{label}");
            if label.starts_with("summarized") {
                // The hours: `limit + 3` are enough (see summarized_page_sql).
                assert!(bound(&q).contains(&(LIMIT + 3).to_string()), "{label}");
            }
        }
    }

    #[test]
    fn only_a_page_after_or_before_a_cursor_is_bounded_by_it() {
        for (label, q) in every_plan() {
            let keyset = if label.contains("Before") {
                Some("(occurred_at, id) <")
            } else if label.contains("After") {
                Some("(occurred_at, id) >")
            } else {
                None
            };
            match keyset {
                Some(k) => {
                    assert!(q.sql.contains(k), "{label}: {}", q.sql);
                    assert!(bound(&q).contains(&"99".to_owned()), "{label}");
                }
                None => assert!(!q.sql.contains("(occurred_at, id)"), "{label}: {}", q.sql),
            }
        }
    }

    #[test]
    fn the_hours_cut_by_the_range_or_the_cursor_are_not_counted_as_certain() {
        let f = every_filter();
        let [newest, before, _] = pages();
        let q = summarized_page_sql(&f, newest, LIMIT, WATERMARK);
        assert!(bound(&q).contains(&format!("{:?}", vec![hour(9), hour(17)])));
        let q = summarized_page_sql(&f, before, LIMIT, WATERMARK);
        assert!(bound(&q).contains(&format!("{:?}", vec![hour(9), hour(17), hour(15)])));
    }

    #[test]
    fn an_actor_named_twice_is_walked_once() {
        let twice = Filters {
            actors: vec!["ann".into(), "bob".into(), "ann".into()],
            ..Filters::default()
        };
        let sql = summarized_page_sql(&twice, Page::Newest, 11, "7").sql;
        assert_eq!(sql.matches("::text[])[").count(), 2, "{sql}");
    }

    #[test]
    fn hours_are_utc_hours() {
        assert_eq!(hour_of(t(9, 30)), hour(9));
    }
}
