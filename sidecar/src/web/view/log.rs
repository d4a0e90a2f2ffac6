//! The Audit Log page: filters, tabs, chips and the rows of one page of events.

use chrono_tz::Tz;

use super::{action_class, format_time, iso};
use crate::web::params::{LogParams, Page, Range, Tab};
use crate::web::queries::log::EventPage as Listed;

/// Entities every installation has (the three categories of the report, and the log itself).
const KNOWN_ENTITIES: [&str; 4] = ["contact", "group", "user", "audit_log"];
/// Sources suggested in the Source filter (any value can be typed).
const KNOWN_SOURCES: [&str; 6] = ["manual", "import", "api", "sync", "cli", "dashboard"];

pub struct SelectOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct TabLink {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// An active filter, shown as a removable chip.
pub struct Chip {
    pub label: &'static str,
    pub value: String,
    pub remove_href: String,
}

pub struct Row {
    pub href: String,
    pub time: String,
    pub time_iso: String,
    pub actor: String,
    pub action: String,
    pub action_class: &'static str,
    pub entity: String,
    pub subject: String,
    pub source: String,
    pub summary: String,
    /// The event's organization.
    pub tenant: String,
}

pub struct LogView {
    pub csrf: String,
    pub zone: String,
    pub tabs: Vec<TabLink>,
    pub ranges: Vec<SelectOption>,
    pub custom: bool,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub entities: Vec<SelectOption>,
    pub actions: Vec<SelectOption>,
    pub sources: Vec<&'static str>,
    pub source: String,
    pub subject: String,
    /// The Organization filter as typed.
    pub tenant: String,
    /// Whether the Organization filter and column are shown: to whole-database admins, not
    /// to a token viewer, who sees one organization only.
    pub organizations: bool,
    /// Values past the first of repeatable filters, kept as hidden fields.
    pub hidden: Vec<(&'static str, String)>,
    pub chips: Vec<Chip>,
    /// The filters, for the Export form.
    pub export_fields: Vec<(&'static str, String)>,
    pub error: Option<String>,
    pub rows: Vec<Row>,
    pub newer_href: Option<String>,
    pub older_href: Option<String>,
    pub first_href: Option<String>,
    pub range_label: &'static str,
    /// The same filters over all time, offered when nothing matched in a shorter range.
    pub widen_href: Option<String>,
    pub clear_href: String,
}

fn options(known: &[&str], extra: &[String], selected: Option<&str>) -> Vec<SelectOption> {
    let mut values: Vec<String> = known.iter().map(|s| (*s).to_owned()).collect();
    for v in extra.iter().map(String::as_str).chain(selected) {
        if !values.iter().any(|x| x == v) {
            values.push(v.to_owned());
        }
    }
    let mut out = vec![SelectOption {
        value: String::new(),
        label: "Any".into(),
        selected: selected.is_none(),
    }];
    out.extend(values.into_iter().map(|v| SelectOption {
        selected: Some(v.as_str()) == selected,
        label: v.replace('_', " "),
        value: v,
    }));
    out
}

impl LogView {
    /// The page for `params`; `listed` is None when the filters could not be read (`error`).
    pub fn new(
        params: &LogParams,
        listed: Option<Listed>,
        error: Option<String>,
        tracked: &[String],
        actions: &[String],
        zone: Tz,
        csrf: &str,
    ) -> LogView {
        let current_tab = params.tab();
        let tabs = Tab::all()
            .map(|t| TabLink {
                label: t.label(),
                href: params.with_tab(t).href(),
                current: current_tab == Some(t),
            })
            .collect();
        let ranges = Range::ALL
            .into_iter()
            .map(|r| SelectOption {
                value: r.as_str().into(),
                label: r.label().into(),
                selected: r == params.range,
            })
            .collect();
        let mut hidden = Vec::new();
        for (key, values) in [
            ("actor", &params.actors),
            ("entity", &params.entities),
            ("action", &params.actions),
        ] {
            hidden.extend(values.iter().skip(1).map(|v| (key, v.clone())));
        }
        // A tab's exclusion has no field of its own either.
        hidden.extend(
            params
                .except_actions
                .iter()
                .map(|v| ("except_action", v.clone())),
        );
        // No field of its own: kept across "Apply filters" as a hidden field.
        if !params.table.is_empty() {
            hidden.push(("table", params.table.clone()));
        }

        let chips = Self::chips(params);
        let rows: Vec<Row> = listed
            .as_ref()
            .map(|l| {
                l.events
                    .iter()
                    .map(|e| Row {
                        href: format!("/reports/audit-log/events/{}?{}", e.id, params.query()),
                        time: format_time(e.occurred_at, zone),
                        time_iso: iso(e.occurred_at),
                        actor: e.actor.clone(),
                        action_class: action_class(&e.action),
                        action: e.action.clone(),
                        entity: e.entity.replace('_', " "),
                        subject: e.subject_id.clone().unwrap_or_default(),
                        source: e.source.clone(),
                        summary: e.summary.clone(),
                        tenant: e.tenant.clone().unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (mut newer_href, mut older_href) = (None, None);
        if let Some(l) = &listed {
            match (l.events.first(), l.events.last()) {
                (Some(top), Some(bottom)) => {
                    if l.has_newer {
                        newer_href = Some(params.at_page(Page::After(top.cursor())).href());
                    }
                    if l.has_older {
                        older_href = Some(params.at_page(Page::Before(bottom.cursor())).href());
                    }
                }
                _ => {
                    if params.page != Page::Newest {
                        newer_href = Some(params.first_page().href());
                    }
                }
            }
        }
        let first_href = (params.page != Page::Newest).then(|| params.first_page().href());
        let widen_href = (listed.as_ref().is_some_and(|l| l.events.is_empty())
            && params.range != Range::All)
            .then(|| {
                LogParams {
                    range: Range::All,
                    from: String::new(),
                    to: String::new(),
                    page: Page::Newest,
                    ..params.clone()
                }
                .href()
            });
        LogView {
            csrf: csrf.to_owned(),
            zone: zone.name().to_owned(),
            tabs,
            ranges,
            custom: params.range == Range::Custom,
            from: params.from.clone(),
            to: params.to.clone(),
            actor: params.actors.first().cloned().unwrap_or_default(),
            entities: options(
                &KNOWN_ENTITIES,
                tracked,
                params.entities.first().map(String::as_str),
            ),
            actions: options(&[], actions, params.actions.first().map(String::as_str)),
            sources: KNOWN_SOURCES.to_vec(),
            source: params.source.clone(),
            subject: params.subject.clone(),
            tenant: params.tenant.clone(),
            organizations: true,
            hidden,
            chips,
            export_fields: params.pairs(),
            error,
            rows,
            newer_href,
            older_href,
            first_href,
            range_label: params.range.label(),
            widen_href,
            clear_href: LogParams {
                range: params.range,
                from: params.from.clone(),
                to: params.to.clone(),
                ..LogParams::default()
            }
            .href(),
        }
    }

    fn chips(params: &LogParams) -> Vec<Chip> {
        let mut chips = Vec::new();
        let base = params.first_page();
        for (label, values, which) in [
            ("Entity", &params.entities, 0),
            ("Action", &params.actions, 1),
            ("Actor", &params.actors, 2),
            ("Not action", &params.except_actions, 3),
        ] {
            for v in values {
                let mut without = base.clone();
                let list = match which {
                    0 => &mut without.entities,
                    1 => &mut without.actions,
                    2 => &mut without.actors,
                    _ => &mut without.except_actions,
                };
                list.retain(|x| x != v);
                chips.push(Chip {
                    label,
                    value: v.clone(),
                    remove_href: without.href(),
                });
            }
        }
        if !params.tenant.is_empty() {
            chips.push(Chip {
                label: "Organization",
                value: params.tenant.clone(),
                remove_href: LogParams {
                    tenant: String::new(),
                    ..base.clone()
                }
                .href(),
            });
        }
        if !params.source.is_empty() {
            chips.push(Chip {
                label: "Source",
                value: params.source.clone(),
                remove_href: LogParams {
                    source: String::new(),
                    ..base.clone()
                }
                .href(),
            });
        }
        if !params.table.is_empty() {
            chips.push(Chip {
                label: "Table",
                value: params.table.clone(),
                remove_href: LogParams {
                    table: String::new(),
                    ..base.clone()
                }
                .href(),
            });
        }
        if !params.subject.is_empty() {
            chips.push(Chip {
                label: "Subject",
                value: params.subject.clone(),
                remove_href: LogParams {
                    subject: String::new(),
                    ..base.clone()
                }
                .href(),
            });
        }
        chips
    }
}
