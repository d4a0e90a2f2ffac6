//! The Overview: events per day by category as a server-rendered bar chart, the busiest
//! actors, and the latest alerts, each linking to the filtered log that explains it.

use chrono::NaiveDate;
use chrono_tz::Tz;

use audit_trail_contract::categories::CATEGORIES;

use super::format_time;
use crate::web::params::{LogParams, Range, Tab};
use crate::web::queries::overview::{AlertRow, DayCounts};

/// Chart geometry, in SVG user units (the SVG scales to the page, so 420 px still reads).
const BAR: u32 = 16;
const GAP: u32 = 4;
const HEIGHT: u32 = 140;

pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    /// `cat-` and the category's key.
    pub class: String,
    /// Tooltip and accessible name: "2026-11-30: 12 contacts".
    pub title: String,
}

pub struct Legend {
    pub label: &'static str,
    pub class: String,
    pub total: i64,
    pub href: String,
}

pub struct ActorRow {
    pub actor: String,
    pub count: i64,
    pub href: String,
}

pub struct AlertItem {
    pub when: String,
    pub rule: String,
    pub severity: String,
    pub severity_class: &'static str,
    pub text: String,
    pub event_href: String,
    pub actor_href: Option<String>,
}

pub struct RangeLink {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

pub struct OverviewView {
    pub range_label: &'static str,
    pub ranges: Vec<RangeLink>,
    pub width: u32,
    pub height: u32,
    pub rects: Vec<Rect>,
    /// Day labels under the chart (first, middle, last day): x, text-anchor, text.
    pub labels: Vec<(u32, &'static str, String)>,
    pub max: i64,
    pub legend: Vec<Legend>,
    pub actors: Vec<ActorRow>,
    pub alerts: Vec<AlertItem>,
    pub log_href: String,
}

impl OverviewView {
    pub fn new(
        range: Range,
        today: NaiveDate,
        days: &[DayCounts],
        actors: &[(String, i64)],
        alerts: &[AlertRow],
        zone: Tz,
        tenant: Option<&str>,
    ) -> OverviewView {
        let span: i64 = if range == Range::Week { 7 } else { 30 };
        let first = today - chrono::Duration::days(span - 1);
        let value = |d: &DayCounts, i: usize| d.counts[i];
        let max = days
            .iter()
            .map(|d| d.counts.iter().sum::<i64>())
            .max()
            .unwrap_or(0);
        let mut rects = Vec::new();
        for offset in 0..span {
            let date = first + chrono::Duration::days(offset);
            let Some(d) = days.iter().find(|d| d.day == date) else {
                continue;
            };
            let x = offset as u32 * (BAR + GAP);
            // Each segment reaches the height of the day's running total, so rounding never
            // stacks past the chart (rounding each segment up did, and a full bar then had no
            // room left for its last category); a category too small for a unit still gets
            // one while there is room.
            let mut top = HEIGHT;
            let mut total = 0;
            for (i, category) in CATEGORIES.iter().enumerate() {
                let n = value(d, i);
                if n == 0 || max == 0 {
                    continue;
                }
                total += n;
                let reach = ((total as f64 / max as f64) * f64::from(HEIGHT)).ceil() as u32;
                let height = top
                    .saturating_sub(HEIGHT - reach.min(HEIGHT))
                    .max(1)
                    .min(top);
                if height == 0 {
                    continue;
                }
                top -= height;
                rects.push(Rect {
                    x,
                    y: top,
                    height,
                    class: format!("cat-{}", category.key),
                    title: format!("{date}: {n} {}", category.label.to_lowercase()),
                });
            }
        }
        let labels = [(0, "start"), (span / 2, "middle"), (span - 1, "end")]
            .into_iter()
            .map(|(o, anchor)| {
                let date = first + chrono::Duration::days(o);
                // The last label ends where its bar does; the middle one is centred on it.
                let x = o as u32 * (BAR + GAP)
                    + match anchor {
                        "end" => BAR,
                        "middle" => BAR / 2,
                        _ => 0,
                    };
                (x, anchor, date.format("%b %-d").to_string())
            })
            .collect();
        let base = LogParams {
            range,
            tenant: tenant.unwrap_or_default().to_owned(),
            ..LogParams::default()
        };
        let scope: String = tenant
            .map(|t| {
                form_urlencoded::Serializer::new(String::from("&"))
                    .append_pair("tenant", t)
                    .finish()
            })
            .unwrap_or_default();
        let legend = CATEGORIES
            .iter()
            .enumerate()
            .map(|(i, category)| Legend {
                label: category.label,
                class: format!("cat-{}", category.key),
                total: days.iter().map(|d| value(d, i)).sum(),
                href: base.with_tab(Tab::Category(category)).href(),
            })
            .collect();
        let actor_href = |actor: &str| {
            LogParams {
                actors: vec![actor.to_owned()],
                ..base.clone()
            }
            .href()
        };
        OverviewView {
            range_label: range.label(),
            ranges: [Range::Week, Range::Month]
                .into_iter()
                .map(|r| RangeLink {
                    label: r.label(),
                    href: format!("/reports/overview?range={}{scope}", r.as_str()),
                    current: r == range,
                })
                .collect(),
            width: span as u32 * (BAR + GAP),
            height: HEIGHT,
            rects,
            labels,
            max,
            legend,
            actors: actors
                .iter()
                .map(|(actor, count)| ActorRow {
                    actor: actor.clone(),
                    count: *count,
                    href: actor_href(actor),
                })
                .collect(),
            alerts: alerts
                .iter()
                .map(|a| {
                    let severity = a.severity.clone().unwrap_or_else(|| "info".into());
                    AlertItem {
                        when: format_time(a.occurred_at, zone),
                        rule: a.rule.clone().unwrap_or_else(|| "alert".into()),
                        severity_class: match severity.as_str() {
                            "critical" => "sev-critical",
                            "warning" => "sev-warning",
                            _ => "sev-info",
                        },
                        severity,
                        text: match (&a.description, &a.actor) {
                            (Some(d), Some(actor)) => format!("{d}: {actor}"),
                            (Some(d), None) => d.clone(),
                            (None, Some(actor)) => actor.clone(),
                            (None, None) => String::new(),
                        },
                        event_href: format!("/reports/audit-log/events/{}", a.id),
                        actor_href: a.actor.as_deref().map(actor_href),
                    }
                })
                .collect(),
            log_href: base.href(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32, contacts: i64, exports: i64) -> DayCounts {
        DayCounts {
            day: NaiveDate::from_ymd_opt(2026, 11, d).unwrap(),
            counts: [contacts, 0, 0, exports],
        }
    }

    #[test]
    fn bars_stack_to_the_busiest_day_and_days_without_events_are_empty() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let v = OverviewView::new(
            Range::Week,
            today,
            &[day(28, 30, 10), day(30, 10, 0)],
            &[],
            &[],
            Tz::UTC,
            Some("acme"),
        );
        // One organization's overview links to its log and keeps it across ranges.
        assert!(
            v.ranges.iter().all(|r| r.href.ends_with("&tenant=acme")),
            "{:?}",
            v.ranges.iter().map(|r| &r.href).collect::<Vec<_>>()
        );
        assert_eq!(v.max, 40);
        assert_eq!(v.rects.len(), 3);
        // The busiest day fills the height exactly, contacts below exports.
        let busiest: Vec<&Rect> = v
            .rects
            .iter()
            .filter(|r| r.title.starts_with("2026-11-28"))
            .collect();
        assert_eq!(busiest.iter().map(|r| r.height).sum::<u32>(), HEIGHT);
        assert!(busiest[0].y > busiest[1].y);
        assert_eq!(v.legend[0].total, 40);
        assert_eq!(v.legend[3].total, 10);
        assert_eq!(v.width, 7 * (BAR + GAP));
    }

    /// Counts whose segments, each rounded up, add up to more than the chart's height (a busy
    /// day of the 100M-event benchmark did, and the page panicked).
    #[test]
    fn segments_never_stack_past_the_chart_whatever_the_counts() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        for counts in [
            [1, 1, 1, 1],
            [3, 3, 3, 1],
            [997, 1, 1, 1],
            [1, 1, 1, 997],
            [7, 11, 13, 17],
        ] {
            for scale in [1, 3, 1_000, 249_831] {
                let d = DayCounts {
                    day: today,
                    counts: counts.map(|c: i64| c * scale),
                };
                let v = OverviewView::new(Range::Week, today, &[d], &[], &[], Tz::UTC, None);
                let heights: Vec<u32> = v.rects.iter().map(|r| r.height).collect();
                assert_eq!(heights.iter().sum::<u32>(), HEIGHT, "{counts:?} x {scale}");
                assert!(heights.iter().all(|&h| h >= 1), "{counts:?} x {scale}");
                assert!(v.rects.iter().all(|r| r.y + r.height <= HEIGHT));
            }
        }
    }
}
