//! The plan of `audit.search` (extension/sql/search.sql): which SQL finds one page of the
//! events that match its filters, newest first, decided from which filters are given and
//! never from their values. Pages are found by keyset, `(occurred_at, id) < (cursor)`, which
//! the `(occurred_at, id)` index serves without OFFSET.
//!
//! The SQL names the search's arguments by fixed positions ([`Arg`]): `audit.search` runs it
//! with `EXECUTE ... USING` its arguments, so a value is never text in the SQL, and each page
//! is planned with the values known (a rare actor and a busy one get different plans).
//!
//! Three ways to a page:
//! - the plain walk of the `(occurred_at, id)` index, filtering as it goes: the newest page,
//!   a time range, a filter that matches often;
//! - one organization: its summarized events by `audit.tenant_events`' `(tenant,
//!   occurred_at, id)` index, each looked up in the events to apply the other filters, and
//!   its events not summarized yet (`txid >= watermark`) by the `(txid, id)` index;
//! - a filter on a dimension of the hourly summary (actor, entity, action, table, source)
//!   without a subject: the hours the summary counts matches in, newest first, then in each
//!   such hour the matching summarized events by the time index, and the events not yet
//!   summarized (`txid >= watermark`) by the `(txid, id)` index. A filter that matches
//!   rarely or never then reads a few index entries per hour that holds a match, instead of
//!   walking the whole log.

/// The arguments of the SQL, by position: `$1` is `since`, and so on. `audit.search` passes
/// them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Arg {
    Since = 1,
    Until,
    Actors,
    Entities,
    Actions,
    Sources,
    Subject,
    TableName,
    Tenant,
    PageSize,
    CursorAt,
    CursorId,
    ExceptActions,
    Watermark,
}

impl Arg {
    fn p(self) -> String {
        format!("${}", self as u8)
    }
}

/// How many arguments the SQL may name.
pub const ARGS: usize = Arg::Watermark as usize;

/// Where a page lies: the newest, older than a cursor, or newer than one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Newest,
    Before,
    After,
}

/// Which filters a search was given: all the plan depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub since: bool,
    pub until: bool,
    /// 1-based positions in `actors` of its distinct names (a name given twice would be
    /// walked twice); empty when no actor is given.
    pub actors: Vec<usize>,
    pub entities: bool,
    pub actions: bool,
    pub except_actions: bool,
    pub sources: bool,
    pub subject: bool,
    pub table_name: bool,
    pub tenant: bool,
    pub direction: Option<Direction>,
    /// The hourly summary counts events below a watermark (`audit.summary_state`).
    pub summarized: bool,
}

impl Shape {
    fn direction(&self) -> Direction {
        self.direction.unwrap_or(Direction::Newest)
    }

    /// A filter on a column the summary counts by (not the time range, subject or tenant).
    pub fn has_dimensions(&self) -> bool {
        !self.actors.is_empty()
            || self.entities
            || self.actions
            || self.except_actions
            || self.sources
            || self.table_name
    }

    /// Whether the page is found through the summary: only a dimension filter makes the
    /// time index walk long; a subject is served by the (entity, subject_id) index, an
    /// organization by its own index, and the summary counts by neither.
    pub fn uses_summary(&self) -> bool {
        self.summarized && self.has_dimensions() && !self.subject && !self.tenant
    }

    /// Whether the page is found through `audit.tenant_events`: one organization, once
    /// maintenance has summarized (a subject's own index is narrower still).
    pub fn uses_tenant_events(&self) -> bool {
        self.summarized && self.tenant && !self.subject
    }
}

/// The WHERE clauses of a shape, by kind: the summary answers for `actors` and
/// `dimensions` only. Column names are those of both `audit.events` and the summary tables.
#[derive(Debug, Default)]
struct Clauses {
    time: Vec<String>,
    actors: Option<String>,
    dimensions: Vec<String>,
    rest: Vec<String>,
}

impl Clauses {
    fn of(shape: &Shape) -> Clauses {
        use Arg::*;
        let mut c = Clauses::default();
        if shape.since {
            c.time.push(format!("occurred_at >= {}", Since.p()));
        }
        if shape.until {
            c.time.push(format!("occurred_at < {}", Until.p()));
        }
        c.actors = match shape.actors.as_slice() {
            [] => None,
            [one] => Some(format!("actor = {}[{one}]", Actors.p())),
            _ => Some(format!("actor = ANY ({})", Actors.p())),
        };
        for (given, clause) in [
            (shape.entities, format!("entity = ANY ({})", Entities.p())),
            (shape.actions, format!("action = ANY ({})", Actions.p())),
            (
                shape.except_actions,
                format!("action <> ALL ({})", ExceptActions.p()),
            ),
            (shape.table_name, format!("table_name = {}", TableName.p())),
            (shape.sources, format!("source = ANY ({})", Sources.p())),
        ] {
            if given {
                c.dimensions.push(clause);
            }
        }
        if shape.subject {
            c.rest.push(format!("subject_id = {}", Subject.p()));
        }
        if shape.tenant {
            c.rest.push(format!("tenant = {}", Tenant.p()));
        }
        c
    }

    fn all(&self) -> Vec<String> {
        self.time
            .iter()
            .chain(&self.actors)
            .chain(&self.dimensions)
            .chain(&self.rest)
            .cloned()
            .collect()
    }
}

/// At most this many `audit.kind_hours` rows are read to learn whether the hours of a filter
/// on actors and other dimensions are few enough to probe one by one (each probe is one
/// index lookup of some tens of microseconds).
pub const PROBE_LIMIT: i64 = 1000;

/// SQL of one page: `occurred_at, id` of at most `page_size` matching events, in the page's
/// order (newest first, or oldest first for a page after a cursor).
pub fn page_sql(shape: &Shape) -> String {
    if shape.uses_tenant_events() {
        tenant_page_sql(shape)
    } else if shape.uses_summary() {
        summarized_page_sql(shape)
    } else {
        plain_page_sql(shape)
    }
}

fn order_of(direction: Direction) -> &'static str {
    match direction {
        Direction::After => "ASC",
        Direction::Newest | Direction::Before => "DESC",
    }
}

fn keyset(direction: Direction) -> Option<String> {
    let op = match direction {
        Direction::Newest => return None,
        Direction::Before => "<",
        Direction::After => ">",
    };
    Some(format!(
        "(occurred_at, id) {op} ({}, {})",
        Arg::CursorAt.p(),
        Arg::CursorId.p()
    ))
}

fn where_(clauses: &[String]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

/// An hour as `audit.event_summary.hour` holds it: the UTC hour, whatever the session's zone.
fn hour_of(arg: Arg) -> String {
    format!("pg_catalog.date_trunc('hour', {}, 'UTC')", arg.p())
}

/// The walk of one index, filtering as it goes.
fn plain_page_sql(shape: &Shape) -> String {
    let mut clauses = Clauses::of(shape).all();
    let direction = shape.direction();
    let order = order_of(direction);
    clauses.extend(keyset(direction));
    format!(
        "SELECT occurred_at, id FROM audit.events{where_} \
         ORDER BY occurred_at {order}, id {order} LIMIT {limit}",
        where_ = where_(&clauses),
        limit = Arg::PageSize.p(),
    )
}

/// One organization's page: its summarized events newest first by `audit.tenant_events`
/// (the join's equality carries the order and the time bounds over to that index, and each
/// row is one lookup by the events' (occurred_at, id) index, where the other filters apply),
/// and its events not summarized yet by the (txid, id) index.
fn tenant_page_sql(shape: &Shape) -> String {
    use Arg::*;
    let direction = shape.direction();
    let order = order_of(direction);
    let mut clauses = Clauses::of(shape).all();
    clauses.extend(keyset(direction));
    let mut tail = clauses.clone();
    tail.push(format!("txid >= {}", Watermark.p()));
    let limit = PageSize.p();
    // The time bounds again on tenant_events' own column, so that its index scan starts at
    // the cursor (a bound on the joined column is not carried over).
    let mut bounds = vec![format!("t.tenant = {}", Tenant.p())];
    if shape.since {
        bounds.push(format!("t.occurred_at >= {}", Since.p()));
    }
    if shape.until {
        bounds.push(format!("t.occurred_at < {}", Until.p()));
    }
    match direction {
        Direction::Newest => {}
        Direction::Before => bounds.push(format!("t.occurred_at <= {}", CursorAt.p())),
        Direction::After => bounds.push(format!("t.occurred_at >= {}", CursorAt.p())),
    }
    // Nothing but the organization and the time: the page is tenant_events' own rows, no
    // event read to find it (the viewer's every first page).
    let summarized_branch = if shape.has_dimensions() {
        format!(
            "SELECT occurred_at, id FROM (SELECT e.* FROM audit.tenant_events AS t \
             JOIN audit.events AS e ON e.occurred_at = t.occurred_at AND e.id = t.id \
             WHERE {bounds}) AS s{summarized}",
            bounds = bounds.join(" AND "),
            summarized = where_(&clauses),
        )
    } else {
        // Its columns are the clauses' (time, tenant, keyset): no subject comes this way.
        format!(
            "SELECT occurred_at, id FROM audit.tenant_events{}",
            where_(&clauses)
        )
    };
    with_unsummarized(
        &format!("({summarized_branch} ORDER BY occurred_at {order}, id {order} LIMIT {limit})"),
        &tail,
        order,
    )
}

/// The page: the first `page_size` of `summarized` (a page of summarized events, in the
/// page's order) and of the events not summarized yet that match `tail`, found by the
/// `(txid, id)` index.
fn with_unsummarized(summarized: &str, tail: &[String], order: &str) -> String {
    format!(
        "SELECT occurred_at, id FROM ({summarized} \
         UNION ALL \
         (SELECT occurred_at, id FROM (SELECT occurred_at, id FROM audit.events{tail} \
         ORDER BY txid, id) AS t \
         ORDER BY occurred_at {order}, id {order} LIMIT {limit})) AS u \
         ORDER BY occurred_at {order}, id {order} LIMIT {limit}",
        tail = where_(tail),
        limit = Arg::PageSize.p(),
    )
}

/// A page found through the hourly summary (see the module's comment).
///
/// `page_size + 3` hours are enough: every candidate hour holds a matching summarized event
/// except the cursor's hour (its matches may all lie on the other side of the cursor) and
/// the two hours cut by the time range, so the hours give at least `page_size` events.
/// Fewer are read when the summary's counts show it: once the hours before one hold
/// `page_size` matching events for certain (not counting those three hours, whose counts
/// may include events outside the page's bounds), that hour and older ones cannot reach the
/// page; so a filter that matches often reads an hour or two.
fn summarized_page_sql(shape: &Shape) -> String {
    use Arg::*;
    let clauses = Clauses::of(shape);
    let direction = shape.direction();
    let order = order_of(direction);
    let mut bounds = Vec::new();
    let mut uncertain = Vec::new();
    if shape.since {
        bounds.push(format!("hour >= {}", hour_of(Since)));
        uncertain.push(hour_of(Since));
    }
    if shape.until {
        bounds.push(format!("hour < {}", Until.p()));
        uncertain.push(hour_of(Until));
    }
    let events = clauses.all();
    let mut tail = events.clone();
    let mut summarized = events;
    if let Some(k) = keyset(direction) {
        tail.push(k.clone());
        let op = if order == "DESC" { "<=" } else { ">=" };
        bounds.push(format!("hour {op} {}", hour_of(CursorAt)));
        uncertain.push(hour_of(CursorAt));
        // In an hour's index scan the keyset bounds only the cursor's own hour. As an index
        // condition a row comparison would start every hour's scan at the cursor and walk
        // all the hours in between; so the time alone bounds the scan, and the row
        // comparison is a filter that only the cursor's hour needs.
        summarized.push(format!("occurred_at {op} {}", CursorAt.p()));
        summarized.push(format!("(h.hour <> {} OR {k})", hour_of(CursorAt)));
    }
    let uncertain = format!("ARRAY[{}]::timestamptz[]", uncertain.join(", "));
    let limit = PageSize.p();
    let counted = counted_hours(shape, &clauses, &bounds, order);
    summarized.push("occurred_at >= h.hour".into());
    summarized.push("occurred_at < h.hour + interval '1 hour'".into());
    summarized.push(format!("txid < {}", Watermark.p()));
    tail.push(format!("txid >= {}", Watermark.p()));
    let summarized = format!(
        "SELECT p.* FROM (SELECT hour FROM (\
         SELECT hour, pg_catalog.sum(CASE WHEN hour = ANY ({uncertain}) THEN 0 ELSE n END) \
         OVER (ORDER BY hour {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before \
         FROM {counted} AS c) AS c \
         WHERE before IS NULL OR before < {limit}::bigint) AS h \
         CROSS JOIN LATERAL (SELECT occurred_at, id FROM audit.events{summarized} \
         ORDER BY occurred_at {order}, id {order} LIMIT {limit}) AS p",
        summarized = where_(&summarized),
    );
    with_unsummarized(&summarized, &tail, order)
}

/// The candidate hours of a page and their matching events, `(hour, n)`, the first
/// `page_size + 3` in the page's order.
///
/// Without actors they come from `audit.kind_hours`, whose rows per hour do not grow with
/// the events. With actors they come from `audit.event_summary` by its (actor, hour) index;
/// with other dimensions too, that walk can read every hour of a busy actor that never
/// matches them. So when `audit.kind_hours` has fewer than [`PROBE_LIMIT`] rows for the
/// other dimensions (a rare or impossible combination), their hours are probed one by one
/// instead, in the page's order. The count decides when the query runs (a one-time
/// filter): the way not taken is never executed.
fn counted_hours(shape: &Shape, clauses: &Clauses, bounds: &[String], order: &str) -> String {
    let limit = format!("({} + 3)", Arg::PageSize.p());
    let kind: Vec<String> = clauses.dimensions.iter().chain(bounds).cloned().collect();
    let Some(actors) = &clauses.actors else {
        return format!(
            "(SELECT hour, pg_catalog.sum(events) AS n FROM audit.kind_hours{kind} \
             GROUP BY hour ORDER BY hour {order} LIMIT {limit})",
            kind = where_(&kind),
        );
    };
    let and_kind: String = kind.iter().map(|c| format!(" AND {c}")).collect();
    let by_actor = if shape.actors.len() > 1 {
        // Several actors: each one's newest hours by its own index scan, then merged (the
        // newest hours of all are among each one's newest, with every count that makes them
        // up), rather than every hour of all of them sorted. Each scan names its actor as an
        // element of the array, whose value the plan knows.
        let per_actor = shape
            .actors
            .iter()
            .map(|i| {
                format!(
                    "(SELECT hour, pg_catalog.sum(events) AS n FROM audit.event_summary \
                     WHERE actor = {array}[{i}]{and_kind} \
                     GROUP BY hour ORDER BY hour {order} LIMIT {limit})",
                    array = Arg::Actors.p(),
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        format!(
            "(SELECT hour, pg_catalog.sum(n) AS n FROM ({per_actor}) AS per \
             GROUP BY hour ORDER BY hour {order} LIMIT {limit})"
        )
    } else {
        format!(
            "(SELECT hour, pg_catalog.sum(events) AS n FROM audit.event_summary \
             WHERE {actors}{and_kind} GROUP BY hour ORDER BY hour {order} LIMIT {limit})",
        )
    };
    if clauses.dimensions.is_empty() {
        return by_actor;
    }
    format!(
        "(WITH kind AS MATERIALIZED (SELECT hour FROM audit.kind_hours{kind} LIMIT {PROBE_LIMIT}) \
         (SELECT k.hour, per.n FROM (SELECT DISTINCT hour FROM kind ORDER BY hour {order}) AS k \
         CROSS JOIN LATERAL (SELECT pg_catalog.sum(events) AS n FROM audit.event_summary \
         WHERE {actors}{and_dimensions} AND hour = k.hour) AS per \
         WHERE per.n IS NOT NULL AND (SELECT pg_catalog.count(*) FROM kind) < {PROBE_LIMIT} \
         ORDER BY k.hour {order} LIMIT {limit}) \
         UNION ALL \
         (SELECT hour, n FROM {by_actor} AS a \
         WHERE (SELECT pg_catalog.count(*) FROM kind) >= {PROBE_LIMIT}))",
        kind = where_(&kind),
        and_dimensions = clauses
            .dimensions
            .iter()
            .map(|c| format!(" AND {c}"))
            .collect::<String>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Vec<Shape> {
        let every = Shape {
            since: true,
            until: true,
            actors: vec![1, 2],
            entities: true,
            actions: true,
            except_actions: true,
            sources: true,
            subject: false,
            table_name: true,
            tenant: false,
            direction: None,
            summarized: true,
        };
        let mut out = Vec::new();
        for direction in [Direction::Newest, Direction::Before, Direction::After] {
            for shape in [
                Shape::default(),
                every.clone(),
                Shape {
                    actors: vec![1],
                    ..every.clone()
                },
                Shape {
                    actors: vec![],
                    ..every.clone()
                },
                Shape {
                    entities: false,
                    actions: false,
                    except_actions: false,
                    sources: false,
                    table_name: false,
                    ..every.clone()
                },
                Shape {
                    subject: true,
                    ..every.clone()
                },
                Shape {
                    tenant: true,
                    ..every.clone()
                },
            ] {
                out.push(Shape {
                    direction: Some(direction),
                    ..shape
                });
            }
        }
        out
    }

    fn args(sql: &str) -> Vec<usize> {
        let mut found: Vec<usize> = sql
            .split('$')
            .skip(1)
            .filter_map(|s| {
                let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        found.sort();
        found.dedup();
        found
    }

    #[test]
    fn the_sql_names_only_the_search_arguments_and_those_given() {
        for shape in shapes() {
            let sql = page_sql(&shape);
            let named = args(&sql);
            assert!(named.iter().all(|&n| (1..=ARGS).contains(&n)), "{sql}");
            let given = |arg: Arg| named.contains(&(arg as usize));
            assert_eq!(given(Arg::Since), shape.since, "{sql}");
            assert_eq!(given(Arg::Subject), shape.subject, "{sql}");
            assert_eq!(given(Arg::Tenant), shape.tenant, "{sql}");
            assert_eq!(given(Arg::Actors), !shape.actors.is_empty(), "{sql}");
            assert_eq!(
                given(Arg::CursorAt),
                shape.direction != Some(Direction::Newest),
                "{sql}"
            );
            assert_eq!(
                given(Arg::Watermark),
                shape.uses_summary() || shape.uses_tenant_events(),
                "{sql}"
            );
            assert!(given(Arg::PageSize));
        }
    }

    #[test]
    fn the_summary_serves_dimensions_without_a_subject_or_an_organization() {
        let entity = Shape {
            entities: true,
            summarized: true,
            ..Shape::default()
        };
        assert!(entity.uses_summary());
        assert!(page_sql(&entity).contains("audit.kind_hours"));
        for other in [
            Shape {
                subject: true,
                ..entity.clone()
            },
            Shape {
                tenant: true,
                ..entity.clone()
            },
            Shape {
                summarized: false,
                ..entity.clone()
            },
            Shape {
                entities: false,
                since: true,
                ..entity.clone()
            },
        ] {
            assert!(!other.uses_summary());
            assert!(!page_sql(&other).contains("audit.kind_hours"));
        }
    }

    #[test]
    fn one_organization_is_found_through_its_events_once_summarized() {
        let shape = Shape {
            tenant: true,
            actors: vec![1],
            summarized: true,
            ..Shape::default()
        };
        assert!(shape.uses_tenant_events() && !shape.uses_summary());
        let sql = page_sql(&shape);
        assert!(sql.contains("FROM audit.tenant_events AS t"), "{sql}");
        assert!(sql.contains("txid >= $14"), "{sql}");
        // The organization alone: its own rows, no event read to find them.
        let alone = page_sql(&Shape {
            actors: vec![],
            since: true,
            ..shape.clone()
        });
        assert!(
            alone.contains("FROM audit.tenant_events WHERE occurred_at >= $1 AND tenant = $9"),
            "{alone}"
        );
        assert!(!alone.contains("JOIN"), "{alone}");
        for other in [
            Shape {
                summarized: false,
                ..shape.clone()
            },
            Shape {
                subject: true,
                ..shape.clone()
            },
        ] {
            assert!(!page_sql(&other).contains("tenant_events"), "{other:?}");
        }
    }

    #[test]
    fn hours_come_from_kinds_without_actors_and_are_probed_for_actors_and_dimensions() {
        let base = Shape {
            summarized: true,
            ..Shape::default()
        };
        let kinds = page_sql(&Shape {
            entities: true,
            ..base.clone()
        });
        assert!(kinds.contains("audit.kind_hours") && !kinds.contains("audit.event_summary"));
        let actors = page_sql(&Shape {
            actors: vec![1, 3],
            ..base.clone()
        });
        assert!(!actors.contains("audit.kind_hours"), "{actors}");
        // An actor named twice is walked once: positions 1 and 3 only.
        assert_eq!(actors.matches("actor = $3[").count(), 2, "{actors}");
        let both = page_sql(&Shape {
            actors: vec![1],
            actions: true,
            ..base
        });
        assert!(both.contains(&format!("LIMIT {PROBE_LIMIT}")), "{both}");
    }

    /// The summary answers for these clauses only because it counts by their columns: each
    /// names one of the contract's summary dimensions (which the installed tables are held
    /// to by the end-to-end tests).
    #[test]
    fn the_summary_clauses_name_the_contract_dimensions() {
        use crate::summary::{EVENT_SUMMARY_DIMENSIONS, KIND_HOURS_DIMENSIONS};
        let column = |clause: &str| clause.split_whitespace().next().unwrap_or("").to_owned();
        for actors in [vec![1], vec![1, 2]] {
            let c = Clauses::of(&Shape {
                actors,
                entities: true,
                actions: true,
                except_actions: true,
                sources: true,
                table_name: true,
                ..Shape::default()
            });
            let actor = column(c.actors.as_deref().unwrap_or(""));
            assert!(
                EVENT_SUMMARY_DIMENSIONS.contains(&actor.as_str()),
                "{actor}"
            );
            assert!(!KIND_HOURS_DIMENSIONS.contains(&actor.as_str()));
            let named: Vec<String> = c.dimensions.iter().map(|d| column(d)).collect();
            assert_eq!(named.len(), 5, "{named:?}");
            for d in &named {
                assert!(KIND_HOURS_DIMENSIONS.contains(&d.as_str()), "{d}");
            }
        }
    }

    #[test]
    fn newer_pages_are_read_oldest_first_and_the_others_newest_first() {
        for shape in shapes() {
            let sql = page_sql(&shape);
            let asc = sql.contains("occurred_at ASC");
            assert_eq!(asc, shape.direction == Some(Direction::After), "{sql}");
        }
    }
}
