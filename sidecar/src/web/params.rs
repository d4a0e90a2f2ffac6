//! The Audit Log view as it travels in a URL (so it can be bookmarked and shared) and in the
//! Export form: `range=7d&entity=contact&action=update&action=delete&actor=...&before=...`.
//! Reading is lenient (unknown keys and empty values are ignored, an unreadable page cursor
//! means the first page); turning the view into [`Filters`] is strict, with messages for people.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use audit_trail_contract::categories::{Category, CATEGORIES};

use crate::filters::Filters;
use crate::timespec::{self, Bound};

/// Longest value kept from a URL or form (longer ones are cut: nobody types more).
const MAX_VALUE: usize = 200;
/// Most values kept for one repeatable key.
const MAX_VALUES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Range {
    Day,
    Week,
    #[default]
    Month,
    All,
    Custom,
}

impl Range {
    pub const ALL: [Range; 5] = [
        Range::Day,
        Range::Week,
        Range::Month,
        Range::All,
        Range::Custom,
    ];

    fn parse(text: &str) -> Option<Range> {
        Range::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
            Range::All => "all",
            Range::Custom => "custom",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Range::Day => "Last 24 hours",
            Range::Week => "Last 7 days",
            Range::Month => "Last 30 days",
            Range::All => "All time",
            Range::Custom => "Custom range",
        }
    }

    fn since(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let span = match self {
            Range::Day => chrono::Duration::hours(24),
            Range::Week => chrono::Duration::days(7),
            Range::Month => chrono::Duration::days(30),
            Range::All | Range::Custom => return None,
        };
        now.checked_sub_signed(span)
    }
}

/// A position in the newest-first list: the (occurred_at, id) of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: i64,
}

impl Cursor {
    /// `<microseconds since 1970>_<id>`: opaque to people, exact to the microsecond.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at.timestamp_micros(), self.id)
    }

    fn decode(text: &str) -> Option<Cursor> {
        let (micros, id) = text.rsplit_once('_')?;
        Some(Cursor {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

/// Which page of the newest-first list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Page {
    #[default]
    Newest,
    /// Events older than the cursor.
    Before(Cursor),
    /// Events newer than the cursor (the "Newer" link).
    After(Cursor),
}

/// The quick filters above the table: every event, or one category of the report
/// (`audit_trail_contract::categories`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    All,
    Category(&'static Category),
}

impl Tab {
    pub fn all() -> impl Iterator<Item = Tab> {
        std::iter::once(Tab::All).chain(CATEGORIES.iter().map(Tab::Category))
    }

    pub fn label(self) -> &'static str {
        match self {
            Tab::All => "All events",
            Tab::Category(c) => c.tab_label,
        }
    }

    /// The tab's entity, action and excluded action filters.
    fn filters(self) -> [Vec<String>; 3] {
        let list = |v: Option<&str>| v.map(str::to_owned).into_iter().collect();
        match self {
            Tab::All => Default::default(),
            Tab::Category(c) => [list(c.entity), list(c.action), list(c.except_action)],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogParams {
    pub range: Range,
    /// Custom range bounds as typed: a date (2026-11-25) or a date and time.
    pub from: String,
    pub to: String,
    pub actors: Vec<String>,
    pub entities: Vec<String>,
    pub actions: Vec<String>,
    pub except_actions: Vec<String>,
    pub source: String,
    /// `table_name`, e.g. `crm.contacts` (no form field: links and hand-made URLs).
    pub table: String,
    pub subject: String,
    /// The organization (`tenant`); a token viewer's own is forced whatever this says.
    pub tenant: String,
    pub page: Page,
}

fn clean(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let mut end = value.len().min(MAX_VALUE);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    // PostgreSQL's text holds no NUL: one would be a database error. As the replacement
    // character the value still filters, and matches what it can (nothing).
    Some(value[..end].replace('\0', "\u{FFFD}"))
}

impl LogParams {
    /// Reads a query string or an `application/x-www-form-urlencoded` body.
    pub fn parse(input: &[u8]) -> LogParams {
        let mut p = LogParams::default();
        let mut range = None;
        for (key, value) in form_urlencoded::parse(input) {
            let Some(value) = clean(&value) else {
                continue;
            };
            let push = |list: &mut Vec<String>| {
                if list.len() < MAX_VALUES && !list.contains(&value) {
                    list.push(value.clone());
                }
            };
            match key.as_ref() {
                "range" => range = Range::parse(&value),
                "from" => p.from = value,
                "to" => p.to = value,
                "actor" => push(&mut p.actors),
                "entity" => push(&mut p.entities),
                "action" => push(&mut p.actions),
                "except_action" => push(&mut p.except_actions),
                "source" => p.source = value,
                "table" => p.table = value,
                "subject" => p.subject = value,
                "tenant" => p.tenant = value,
                "before" => {
                    if let Some(c) = Cursor::decode(&value) {
                        p.page = Page::Before(c);
                    }
                }
                "after" => {
                    if let Some(c) = Cursor::decode(&value) {
                        p.page = Page::After(c);
                    }
                }
                _ => {}
            }
        }
        p.range = match range {
            Some(r) => r,
            // Dates without a preset (a hand-made link, or a form without script): custom.
            None if !p.from.is_empty() || !p.to.is_empty() => Range::Custom,
            None => Range::default(),
        };
        p
    }

    /// The filters this view selects, with relative ranges resolved against `now` and custom
    /// dates read in `zone`. The error is a sentence for the person who typed the dates.
    pub fn to_filters(&self, now: DateTime<Utc>, zone: Tz) -> Result<Filters, String> {
        let (since, until) = match self.range {
            Range::Custom => {
                let read = |label: &str, text: &str, bound| {
                    if text.is_empty() {
                        return Ok(None);
                    }
                    timespec::parse("date", text, bound, now, zone)
                        .map(Some)
                        .map_err(|_| {
                            format!(
                                "The {label} date \u{201c}{text}\u{201d} is not a date: use a date \
                                 like 2026-11-25, or a date and time like 2026-11-25 14:30."
                            )
                        })
                };
                (
                    read("From", &self.from, Bound::Start)?,
                    read("To", &self.to, Bound::End)?,
                )
            }
            preset => (preset.since(now), None),
        };
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Err("The From date must be before the To date.".into());
            }
        }
        let one = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        Ok(Filters {
            since,
            until,
            actors: self.actors.clone(),
            entities: self.entities.clone(),
            actions: self.actions.clone(),
            // A tab's exclusion does not undo an action chosen on it: Contact changes with
            // Action = export lists the contact exports, not nothing.
            except_actions: self
                .except_actions
                .iter()
                .filter(|a| !self.actions.contains(a))
                .cloned()
                .collect(),
            table: one(&self.table),
            subject: one(&self.subject),
            source: one(&self.source),
            tenant: one(&self.tenant),
        })
    }

    /// The view's filters as key/value pairs, in a stable order (no page position).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("range", self.range.as_str().to_owned())];
        if self.range == Range::Custom {
            if !self.from.is_empty() {
                pairs.push(("from", self.from.clone()));
            }
            if !self.to.is_empty() {
                pairs.push(("to", self.to.clone()));
            }
        }
        for (key, values) in [
            ("entity", &self.entities),
            ("action", &self.actions),
            ("except_action", &self.except_actions),
            ("actor", &self.actors),
        ] {
            pairs.extend(values.iter().map(|v| (key, v.clone())));
        }
        if !self.source.is_empty() {
            pairs.push(("source", self.source.clone()));
        }
        if !self.table.is_empty() {
            pairs.push(("table", self.table.clone()));
        }
        if !self.subject.is_empty() {
            pairs.push(("subject", self.subject.clone()));
        }
        if !self.tenant.is_empty() {
            pairs.push(("tenant", self.tenant.clone()));
        }
        pairs
    }

    /// The query string of this view, with its page position.
    pub fn query(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs() {
            out.append_pair(k, &v);
        }
        match self.page {
            Page::Newest => {}
            Page::Before(c) => {
                out.append_pair("before", &c.encode());
            }
            Page::After(c) => {
                out.append_pair("after", &c.encode());
            }
        }
        out.finish()
    }

    /// A link to the Audit Log showing this view.
    pub fn href(&self) -> String {
        format!("/reports/audit-log?{}", self.query())
    }

    pub fn at_page(&self, page: Page) -> LogParams {
        LogParams {
            page,
            ..self.clone()
        }
    }

    pub fn first_page(&self) -> LogParams {
        self.at_page(Page::Newest)
    }

    /// The tab this view is exactly, if any.
    pub fn tab(&self) -> Option<Tab> {
        Tab::all().find(|t| {
            let [entities, actions, except] = t.filters();
            self.entities == entities && self.actions == actions && self.except_actions == except
        })
    }

    /// This view with the entity and action filters of a tab (other filters kept).
    pub fn with_tab(&self, tab: Tab) -> LogParams {
        let [entities, actions, except_actions] = tab.filters();
        LogParams {
            entities,
            actions,
            except_actions,
            page: Page::Newest,
            ..self.clone()
        }
    }

    /// The whole history of one subject.
    pub fn subject_history(entity: &str, subject: &str) -> LogParams {
        LogParams {
            range: Range::All,
            entities: vec![entity.to_owned()],
            subject: subject.to_owned(),
            ..LogParams::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    #[test]
    fn round_trips_through_the_query_string() {
        let p = LogParams::parse(
            b"range=custom&from=2026-11-01&to=2026-11-20&actor=alice%40example.com&actor=bob\
              &entity=contact&action=update&action=delete&source=import&subject=42&table=crm.contacts\
              &before=1764072000000000_17&junk=1",
        );
        assert_eq!(p.range, Range::Custom);
        assert_eq!(p.actors, ["alice@example.com", "bob"]);
        assert_eq!(p.actions, ["update", "delete"]);
        assert_eq!(p.table, "crm.contacts");
        assert_eq!(
            p.page,
            Page::Before(Cursor {
                at: Utc.timestamp_micros(1_764_072_000_000_000).unwrap(),
                id: 17
            })
        );
        assert_eq!(LogParams::parse(p.query().as_bytes()), p);
    }

    #[test]
    fn lenient_reading() {
        let p = LogParams::parse(b"range=fortnight&actor=+&before=garbage&entity=%20contact%20");
        assert_eq!(p.range, Range::Month);
        assert!(p.actors.is_empty());
        assert_eq!(p.page, Page::Newest);
        assert_eq!(p.entities, ["contact"]);
        // dates without a preset mean a custom range
        assert_eq!(LogParams::parse(b"from=2026-01-01").range, Range::Custom);
        let long = "x".repeat(500);
        let p = LogParams::parse(format!("subject={long}").as_bytes());
        assert_eq!(p.subject.len(), MAX_VALUE);
    }

    #[test]
    fn presets_and_custom_ranges_become_filters() {
        let f = LogParams::parse(b"range=7d&entity=group")
            .to_filters(now(), Tz::UTC)
            .unwrap();
        assert_eq!(f.since, Some(now() - chrono::Duration::days(7)));
        assert_eq!(f.until, None);
        assert_eq!(f.entities, ["group"]);
        let f = LogParams::parse(b"range=all")
            .to_filters(now(), Tz::UTC)
            .unwrap();
        assert_eq!((f.since, f.until), (None, None));
        let f = LogParams::parse(b"range=custom&from=2026-11-01&to=2026-11-01")
            .to_filters(now(), Tz::Europe__Paris)
            .unwrap();
        assert_eq!(
            f.since,
            Some(Utc.with_ymd_and_hms(2026, 10, 31, 23, 0, 0).unwrap())
        );
        assert_eq!(
            f.until,
            Some(Utc.with_ymd_and_hms(2026, 11, 1, 23, 0, 0).unwrap())
        );
    }

    #[test]
    fn bad_dates_get_a_sentence() {
        let e = LogParams::parse(b"range=custom&from=yesterday-ish")
            .to_filters(now(), Tz::UTC)
            .unwrap_err();
        assert!(e.contains("From date"), "{e}");
        let e = LogParams::parse(b"range=custom&from=2026-11-20&to=2026-11-01")
            .to_filters(now(), Tz::UTC)
            .unwrap_err();
        assert!(e.contains("before the To date"), "{e}");
    }

    #[test]
    fn tabs() {
        let p = LogParams::parse(b"range=7d&actor=alice");
        assert_eq!(p.tab(), Some(Tab::All));
        let contacts = Tab::Category(&CATEGORIES[0]);
        let c = p.with_tab(contacts);
        assert_eq!(c.tab(), Some(contacts));
        assert_eq!(c.actors, ["alice"]);
        assert_eq!(c.entities, ["contact"]);
        assert_eq!(c.except_actions, ["export"]);
        // Carried by the URL: the tab is the same after a reload.
        assert_eq!(
            LogParams::parse(c.href().split_once('?').unwrap().1.as_bytes()).tab(),
            Some(contacts)
        );
        let e = c.with_tab(Tab::Category(&CATEGORIES[3]));
        assert!(e.entities.is_empty());
        assert!(e.except_actions.is_empty());
        assert_eq!(e.actions, ["export"]);
        assert_eq!(
            LogParams::parse(b"entity=contact&action=update").tab(),
            None
        );
    }

    #[test]
    fn an_action_chosen_on_a_tab_is_not_excluded_by_it() {
        let f = LogParams::parse(b"entity=contact&except_action=export&action=export")
            .to_filters(now(), Tz::UTC)
            .unwrap();
        assert_eq!(f.actions, ["export"]);
        assert!(f.except_actions.is_empty());
        let f = LogParams::parse(b"entity=contact&except_action=export&action=update")
            .to_filters(now(), Tz::UTC)
            .unwrap();
        assert_eq!(f.except_actions, ["export"]);
    }
}
