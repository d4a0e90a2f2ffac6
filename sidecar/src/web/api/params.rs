//! What an API request asks for: the export's filters as query parameters, a page size and
//! a cursor. Strict, unlike the dashboard's URLs: an unknown parameter, a repeated one that
//! takes one value, an empty value or an unreadable time is a 400 that says which. The
//! organization is never a parameter (it comes from the token).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use utoipa::{IntoParams, ToSchema};

use crate::filters::Filters;
use crate::timespec::{self, Bound};
use crate::web::queries::api::After;

/// Events per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most events one page may ask for.
pub const MAX_LIMIT: i64 = 1000;
/// Values of one repeatable parameter read at most.
const MAX_VALUES: usize = 50;
/// Longest value read.
const MAX_VALUE: usize = 500;

/// One value of a filter, as the description states it: what `parse` accepts (a type of
/// the OpenAPI description only).
pub struct FilterValue;

impl utoipa::PartialSchema for FilterValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_VALUE))
            .into()
    }
}

impl ToSchema for FilterValue {}

/// The query parameters of `GET /api/v1/events` (and, without `limit` and `cursor`, of
/// `GET /api/v1/events.csv`): the filters of `audit-trail export`.
#[derive(Debug, Default, PartialEq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Events at or after this time: RFC 3339, a date (2026-11-25, UTC), or relative (7d,
    /// 12h, 30m).
    #[param(value_type = Option<FilterValue>)]
    pub since: Option<String>,
    /// Events before this time (a bare date includes that whole day).
    #[param(value_type = Option<FilterValue>)]
    pub until: Option<String>,
    /// Only events by this actor (repeatable).
    #[param(value_type = Vec<FilterValue>)]
    pub actor: Vec<String>,
    /// Only events about this entity: contact, group, user, ... (repeatable).
    #[param(value_type = Vec<FilterValue>)]
    pub entity: Vec<String>,
    /// Only this action: create, update, delete, export, ... (repeatable).
    #[param(value_type = Vec<FilterValue>)]
    pub action: Vec<String>,
    /// Only events from this source: manual, import, api, ...
    #[param(value_type = Option<FilterValue>)]
    pub source: Option<String>,
    /// Only events about this subject id.
    #[param(value_type = Option<FilterValue>)]
    pub subject: Option<String>,
    /// Only changes to this table, schema-qualified as in table_name (crm.contacts).
    #[param(value_type = Option<FilterValue>)]
    pub table: Option<String>,
    /// Events per page, 1 to 1000 (50 by default).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Where the page starts: the `next_cursor` of the previous page.
    #[param(value_type = Option<FilterValue>)]
    pub cursor: Option<String>,
}

impl EventQuery {
    /// Reads a query string; the error is the 400's message.
    pub fn parse(query: &str) -> Result<EventQuery, String> {
        let mut q = EventQuery::default();
        let mut limit = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            if value.is_empty() {
                return Err(format!("{key}: value must not be empty"));
            }
            if value.len() > MAX_VALUE {
                return Err(format!("{key}: value longer than {MAX_VALUE} bytes"));
            }
            // PostgreSQL's text cannot hold one: refused here, not as a database error.
            if value.contains('\0') {
                return Err(format!("{key}: value holds a NUL character"));
            }
            let value = value.to_owned();
            let many = |list: &mut Vec<String>| {
                if list.len() >= MAX_VALUES {
                    return Err(format!("{key}: at most {MAX_VALUES} values"));
                }
                list.push(value.clone());
                Ok(())
            };
            let one = |slot: &mut Option<String>| match slot {
                Some(_) => Err(format!("{key}: give it once")),
                None => {
                    *slot = Some(value.clone());
                    Ok(())
                }
            };
            match key.as_ref() {
                "since" => one(&mut q.since)?,
                "until" => one(&mut q.until)?,
                "source" => one(&mut q.source)?,
                "subject" => one(&mut q.subject)?,
                "table" => one(&mut q.table)?,
                "cursor" => one(&mut q.cursor)?,
                "limit" => one(&mut limit)?,
                "actor" => many(&mut q.actor)?,
                "entity" => many(&mut q.entity)?,
                "action" => many(&mut q.action)?,
                "tenant" => {
                    return Err("tenant: the organization is the token's, not a parameter".into())
                }
                other => return Err(format!("unknown parameter \"{other}\"")),
            }
        }
        q.limit = limit
            .map(|l| match l.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(format!(
                    "limit: a number from 1 to {MAX_LIMIT}, not \"{l}\""
                )),
            })
            .transpose()?;
        Ok(q)
    }

    /// The page size asked for.
    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// Where the page starts.
    pub fn after(&self) -> Result<Option<After>, String> {
        self.cursor
            .as_deref()
            .map(|c| decode_cursor(c).ok_or_else(|| "cursor: not a cursor of this API".into()))
            .transpose()
    }

    /// The filters, times read as `audit-trail export` reads them (in UTC), relative ones
    /// against `now`. No organization: the caller scopes them.
    pub fn filters(&self, now: DateTime<Utc>) -> Result<Filters, String> {
        let time = |flag, value: &Option<String>, bound| {
            value
                .as_deref()
                .map(|v| timespec::parse(flag, v, bound, now, Tz::UTC))
                .transpose()
                .map_err(|e| e.to_string())
        };
        let filters = Filters {
            since: time("since", &self.since, Bound::Start)?,
            until: time("until", &self.until, Bound::End)?,
            actors: self.actor.clone(),
            entities: self.entity.clone(),
            actions: self.action.clone(),
            except_actions: Vec::new(),
            table: self.table.clone(),
            subject: self.subject.clone(),
            source: self.source.clone(),
            tenant: None,
        };
        if let (Some(since), Some(until)) = (filters.since, filters.until) {
            if since >= until {
                return Err("since must be before until".into());
            }
        }
        Ok(filters)
    }
}

/// The cursor of the page after `after`: opaque to clients (`v1.` and the hex of
/// `<microseconds since 1970>:<id>`). It only says where to start: the organization and the
/// filters are the request's, so a cursor altered or taken from another organization's
/// pages cannot show anything the token does not allow.
pub fn encode_cursor(after: After) -> String {
    format!(
        "v1.{}",
        hex::encode(format!("{}:{}", after.at.timestamp_micros(), after.id))
    )
}

fn decode_cursor(text: &str) -> Option<After> {
    let bytes = hex::decode(text.strip_prefix("v1.")?).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (micros, id) = text.split_once(':')?;
    Some(After {
        at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        id: id.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    #[test]
    fn cursors_round_trip_exactly() {
        let after = After {
            at: Utc.timestamp_micros(1_764_072_000_123_456).unwrap(),
            id: 4_242,
        };
        let c = encode_cursor(after);
        assert!(c.starts_with("v1.") && !c.contains("4242"), "{c}");
        assert_eq!(decode_cursor(&c), Some(after));
    }

    #[test]
    fn tampered_cursors_are_refused_not_guessed() {
        let good = encode_cursor(After { at: now(), id: 7 });
        for bad in [
            "",
            "v1.",
            "v2.31",
            "garbage",
            &good[3..],
            &format!("{good}0"),
            &format!("v1.{}", hex::encode("12:abc")),
            &format!("v1.{}", hex::encode("12")),
            &format!("v1.{}", hex::encode("99999999999999999999:1")),
            &format!("v1.{}", hex::encode("1:1:1")),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
            let q = EventQuery {
                cursor: Some(bad.to_owned()),
                ..EventQuery::default()
            };
            if !bad.is_empty() {
                assert!(q.after().is_err(), "{bad:?}");
            }
        }
    }

    #[test]
    fn parameters_become_the_exports_filters() {
        let q = EventQuery::parse(
            "since=2026-11-01&until=2026-11-20&actor=alice%40example.com&actor=bob\
             &entity=contact&action=update&action=delete&source=import&subject=42\
             &table=crm.contacts&limit=200",
        )
        .unwrap();
        assert_eq!(q.limit(), 200);
        let f = q.filters(now()).unwrap();
        assert_eq!(
            f.since,
            Some(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(
            f.until,
            Some(Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap())
        );
        assert_eq!(f.actors, ["alice@example.com", "bob"]);
        assert_eq!(f.actions, ["update", "delete"]);
        assert_eq!(f.table.as_deref(), Some("crm.contacts"));
        assert_eq!(f.tenant, None);
        let f = EventQuery::parse("since=7d")
            .unwrap()
            .filters(now())
            .unwrap();
        assert_eq!(f.since, Some(now() - chrono::Duration::days(7)));
        assert_eq!(EventQuery::parse("").unwrap().limit(), DEFAULT_LIMIT);
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        for (query, says) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=ten", "limit"),
            ("limit=-5", "limit"),
            ("tenant=globex", "token"),
            ("organization=globex", "unknown"),
            ("actor=", "empty"),
            ("source=a&source=b", "once"),
            ("cursor=a&cursor=b", "once"),
        ] {
            let e = EventQuery::parse(query).unwrap_err();
            assert!(e.contains(says), "{query}: {e}");
        }
        assert!(EventQuery::parse("limit=1").is_ok());
        assert!(EventQuery::parse("limit=1000").is_ok());
        for (query, says) in [
            ("since=yesterday-ish", "since"),
            ("until=2026-13-01", "until"),
            ("since=2026-11-20&until=2026-11-01", "before"),
        ] {
            let e = EventQuery::parse(query)
                .unwrap()
                .filters(now())
                .unwrap_err();
            assert!(e.contains(says), "{query}: {e}");
        }
    }
}
