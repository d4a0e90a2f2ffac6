//! The alert rule format (TOML, see docs/alerts.md) and the built-in set.
//!
//! A rule is a declarative filter on one event, plus a threshold over a sliding window of
//! the matching events of one actor: more than `more_than` events (or, with `sum`, more than
//! that total of a numeric `details` field) within `within`. A rule without a threshold
//! fires on any matching event; its window then only groups a burst into one alert.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// A rules file. Unknown keys are refused: a misspelt filter would otherwise match
/// everything (or nothing) without a word.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    /// Start from the built-in set (on by default).
    #[serde(default = "yes")]
    builtin: bool,
    /// The roles the application connects as: with any, the built-in `direct-edit` rule
    /// reports captured changes made by other roles.
    #[serde(default)]
    application_roles: Vec<String>,
    /// The site's business hours: with them, the built-in `off-hours` rule reports activity
    /// outside them.
    #[serde(default)]
    business_hours: Option<HoursSpec>,
    /// Names of built-in rules to leave out.
    #[serde(default)]
    disable: Vec<String>,
    /// Rules of the site; one named like a built-in replaces it.
    #[serde(default, rename = "rule")]
    rules: Vec<RuleSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    severity: Severity,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "match")]
    filter: Filter,
    #[serde(default)]
    threshold: Option<ThresholdSpec>,
}

/// What one event must look like. Every given condition must hold; lists mean "any of".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default)]
    pub entity: Option<Vec<String>>,
    #[serde(default)]
    pub action: Option<Vec<String>>,
    #[serde(default)]
    pub source: Option<Vec<String>>,
    #[serde(default)]
    pub application_name: Option<Vec<String>>,
    #[serde(default)]
    pub db_user_not_in: Option<Vec<String>>,
    /// The event's changed_fields contain at least one of these.
    #[serde(default)]
    pub changed_fields_any: Option<Vec<String>>,
    /// `details.<key>` is a number greater than the value.
    #[serde(default)]
    pub details_above: BTreeMap<String, f64>,
    /// `details.<key>` is there and not empty (a non-empty array, object or string, a number,
    /// `true`), for one of these keys.
    #[serde(default)]
    pub details_any: Option<Vec<String>>,
    /// `context.<key>` is there and not empty, for one of these keys (as `details_any`).
    #[serde(default)]
    pub context_any: Option<Vec<String>>,
    /// The event happened outside these hours (in their time zone).
    #[serde(default)]
    pub outside_hours: Option<HoursSpec>,
}

/// Business hours as written in a rules file: `{ timezone = "Europe/Berlin", days = ["mon",
/// "tue", "wed", "thu", "fri"], from = "08:00", to = "19:00" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursSpec {
    timezone: String,
    #[serde(default = "working_days")]
    days: Vec<String>,
    from: String,
    to: String,
}

fn working_days() -> Vec<String> {
    ["mon", "tue", "wed", "thu", "fri"]
        .map(String::from)
        .to_vec()
}

/// Business hours, checked: the days they apply on and the minutes of the day [from, to).
#[derive(Debug, Clone)]
pub struct BusinessHours {
    zone: chrono_tz::Tz,
    days: [bool; 7],
    from: u32,
    to: u32,
}

impl BusinessHours {
    fn parse(spec: &HoursSpec) -> std::result::Result<BusinessHours, String> {
        let zone = spec
            .timezone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| format!("unknown time zone \"{}\"", spec.timezone))?;
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let mut days = [false; 7];
        for day in &spec.days {
            let i = NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(day))
                .ok_or_else(|| format!("unknown day \"{day}\" (mon ... sun)"))?;
            days[i] = true;
        }
        let minute = |text: &str| -> std::result::Result<u32, String> {
            let bad = || format!("\"{text}\" is not a time of day (HH:MM, 00:00 to 24:00)");
            let (h, m) = text.split_once(':').ok_or_else(bad)?;
            let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if m > 59 || h > 24 || (h == 24 && m != 0) {
                return Err(bad());
            }
            Ok(h * 60 + m)
        };
        let (from, to) = (minute(&spec.from)?, minute(&spec.to)?);
        if from >= to {
            return Err(format!(
                "business hours from {} must be before to {}",
                spec.from, spec.to
            ));
        }
        Ok(BusinessHours {
            zone,
            days,
            from,
            to,
        })
    }

    /// Whether `at` falls within these hours, on one of their days, in their time zone.
    pub fn contains(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        use chrono::{Datelike, Timelike};
        let local = at.with_timezone(&self.zone);
        let minute = local.hour() * 60 + local.minute();
        self.days[local.weekday().num_days_from_monday() as usize]
            && self.from <= minute
            && minute < self.to
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdSpec {
    #[serde(default)]
    more_than: f64,
    within: String,
    #[serde(default)]
    sum: Option<String>,
    /// Whose events a window counts: one actor's (the default), or one database role's,
    /// whatever actors it names (an application that switches actors to stay under a
    /// per-actor threshold still crosses it).
    #[serde(default)]
    per: Per,
}

/// What a rule's windows are kept per.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// The application user the event names (`actor`).
    #[default]
    Actor,
    /// The login role that wrote the event (`db_user`), which the application cannot choose.
    DbUser,
}

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub severity: Severity,
    pub description: Option<String>,
    pub filter: Filter,
    /// Fires when the window's count (or sum) is greater than this.
    pub more_than: f64,
    pub window: Duration,
    /// Sum this numeric `details` field instead of counting events.
    pub sum: Option<String>,
    /// From `match.outside_hours`: the event must fall outside these.
    pub outside: Option<BusinessHours>,
    /// Whose events one window counts.
    pub per: Per,
}

/// How long a rule without a threshold gathers a burst into one alert.
const DEFAULT_WINDOW: Duration = Duration::from_secs(600);

impl Rule {
    fn from_spec(spec: RuleSpec) -> std::result::Result<Rule, String> {
        if spec.name.trim().is_empty() {
            return Err("a rule has an empty name".into());
        }
        let (more_than, window, sum, per) = match spec.threshold {
            None => (0.0, DEFAULT_WINDOW, None, Per::Actor),
            Some(t) => {
                let window = parse_within(&t.within)
                    .map_err(|e| format!("rule \"{}\": within: {e}", spec.name))?;
                if !t.more_than.is_finite() || t.more_than < 0.0 {
                    return Err(format!(
                        "rule \"{}\": more_than must be a number, 0 or more",
                        spec.name
                    ));
                }
                (t.more_than, window, t.sum, t.per)
            }
        };
        let outside = spec
            .filter
            .outside_hours
            .as_ref()
            .map(BusinessHours::parse)
            .transpose()
            .map_err(|e| format!("rule \"{}\": outside_hours: {e}", spec.name))?;
        Ok(Rule {
            name: spec.name,
            severity: spec.severity,
            description: spec.description,
            filter: spec.filter,
            more_than,
            window,
            sum,
            outside,
            per,
        })
    }
}

/// A threshold's `within`: a duration ([`crate::duration`]) of more than zero.
fn parse_within(text: &str) -> std::result::Result<Duration, String> {
    match crate::duration::parse(text) {
        Ok(d) if d.is_zero() => Err(format!("\"{}\" must be more than 0", text.trim())),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// The built-in set: thresholds a CRM's security team would pick. Rules needing site
/// knowledge (the application's roles) are added only when it is given.
const BUILTIN: &str = r#"
[[rule]]
name = "mass-export"
severity = "warning"
description = "one export of more than 1,000 rows"
match = { action = ["export"], details_above = { rows = 1000 } }

[[rule]]
name = "mass-export-total"
severity = "warning"
description = "more than 5,000 rows exported by one actor within an hour"
match = { action = ["export"] }
threshold = { sum = "rows", more_than = 5000, within = "1h" }

[[rule]]
name = "mass-deletion"
severity = "critical"
description = "more than 100 contacts deleted by one actor within 10 minutes"
match = { entity = ["contact"], action = ["delete"] }
threshold = { more_than = 100, within = "10m" }

[[rule]]
name = "mass-deletion-role"
severity = "critical"
description = "more than 100 contacts deleted through one database role within 10 minutes, whatever actors it named"
match = { entity = ["contact"], action = ["delete"] }
threshold = { more_than = 100, within = "10m", per = "db_user" }

[[rule]]
name = "user-deleted"
severity = "warning"
description = "a user deleted"
match = { entity = ["user"], action = ["delete"] }

[[rule]]
name = "truncate"
severity = "critical"
description = "a tracked table truncated"
match = { action = ["truncate"] }

[[rule]]
name = "privilege-change"
severity = "warning"
description = "a user's role or permissions changed"
match = { entity = ["user"], action = ["update"], changed_fields_any = ["role", "roles", "permission", "permissions"] }

[[rule]]
name = "audit-trail-touched"
severity = "critical"
description = "tracking stopped or altered, events purged, a tracked table dropped, or an integrity violation"
match = { entity = ["audit_log"], action = ["untrack", "purge", "table_dropped", "alter", "verify_failed"] }

[[rule]]
name = "audit-trail-changed"
severity = "warning"
description = "what is captured or kept changed: a table tracked or re-tracked, the retention policy or partition interval set, a legal hold placed or released, a partition archived, a sealing key registered"
match = { entity = ["audit_log"], action = ["track", "retention", "hold", "release", "archive", "seal_key"] }

[[rule]]
name = "privilege-capture-narrowed"
severity = "warning"
description = "a re-track stopped capturing (ignores) or hides (redacts) a column the privilege-change rule watches"
match = { entity = ["audit_log"], action = ["track"], details_any = ["privilege_fields_ignored", "privilege_fields_redacted"] }

[[rule]]
name = "consumer-claimed"
severity = "warning"
description = "a change-stream cursor made before 0.3.0 was claimed by the first role to use it"
match = { entity = ["audit_log"], action = ["consumer_moved"], details_any = ["claimed_by"] }

[[rule]]
name = "archive-damaged"
severity = "critical"
description = "audit-trail archive found an archive's files missing, altered or another database's: retention keeps the partition until they are intact again"
match = { entity = ["audit_log"], action = ["archive_check"], details_any = ["problem"] }

[[rule]]
name = "cross-tenant"
severity = "critical"
description = "a transaction acting for one organization changed another organization's data"
match = { action = ["create", "update", "delete"], context_any = ["acting_tenant"] }

[[rule]]
name = "stream-skipped"
severity = "critical"
description = "a change-stream cursor (a follower's, or the alert engine's own) was moved past events without delivering them"
match = { entity = ["audit_log"], action = ["consumer_moved"], details_above = { skipped = 0 } }
"#;

/// The built-in rule that needs `application_roles`.
fn direct_edit(roles: &[String]) -> Rule {
    Rule {
        name: "direct-edit".into(),
        severity: Severity::Warning,
        description: Some("a captured change made outside the application's roles".into()),
        filter: Filter {
            action: Some(
                audit_trail_contract::CAPTURED_ACTIONS
                    .iter()
                    .map(|a| (*a).to_owned())
                    .collect(),
            ),
            db_user_not_in: Some(roles.to_vec()),
            ..Filter::default()
        },
        more_than: 0.0,
        window: DEFAULT_WINDOW,
        sum: None,
        outside: None,
        per: Per::Actor,
    }
}

/// The built-in rule that needs `business_hours`: any activity outside them, a burst of one
/// actor gathered into one alert.
fn off_hours(hours: BusinessHours) -> Rule {
    Rule {
        name: "off-hours".into(),
        severity: Severity::Warning,
        description: Some("activity outside business hours".into()),
        filter: Filter::default(),
        more_than: 0.0,
        window: DEFAULT_WINDOW,
        sum: None,
        outside: Some(hours),
        per: Per::Actor,
    }
}

/// Built-in rules that stay off until the rules file gives what they need.
const SITE_RULES: [&str; 2] = ["direct-edit", "off-hours"];

/// The built-in set, as used without --rules.
pub fn builtin() -> Vec<Rule> {
    compile(parse_builtin(), Vec::new()).unwrap_or_default()
}

fn parse_builtin() -> RulesFile {
    // The built-in text is a constant checked by the unit tests below.
    toml::from_str(BUILTIN).unwrap_or(RulesFile {
        builtin: false,
        application_roles: Vec::new(),
        business_hours: None,
        disable: Vec::new(),
        rules: Vec::new(),
    })
}

fn compile(file: RulesFile, extra: Vec<Rule>) -> std::result::Result<Vec<Rule>, String> {
    let mut rules = file
        .rules
        .into_iter()
        .map(Rule::from_spec)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rules.extend(extra);
    Ok(rules)
}

/// Reads a rules file: the built-in set (unless `builtin = false`) with the file's changes.
/// Any problem is one line naming the file, exit 2.
pub fn load(path: &Path) -> Result<Vec<Rule>> {
    let bad = |problem: String| Error::Usage(format!("{}: {problem}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| Error::File {
        path: path.to_owned(),
        source: e,
    })?;
    let file: RulesFile = toml::from_str(&text).map_err(|e| bad(one_line(&e)))?;
    for name in &file.disable {
        if !builtin().iter().any(|r| &r.name == name) && !SITE_RULES.contains(&name.as_str()) {
            return Err(bad(format!("disable: no built-in rule named \"{name}\"")));
        }
    }
    let mut rules = if file.builtin { builtin() } else { Vec::new() };
    if file.builtin && !file.application_roles.is_empty() {
        rules.push(direct_edit(&file.application_roles));
    }
    if let Some(spec) = &file.business_hours {
        let hours = BusinessHours::parse(spec).map_err(|e| bad(format!("business_hours: {e}")))?;
        if file.builtin {
            rules.push(off_hours(hours));
        }
    }
    rules.retain(|r| !file.disable.contains(&r.name));
    let own = file
        .rules
        .iter()
        .cloned()
        .map(Rule::from_spec)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(bad)?;
    for (i, rule) in own.iter().enumerate() {
        if own[..i].iter().any(|r| r.name == rule.name) {
            return Err(bad(format!("two rules are named \"{}\"", rule.name)));
        }
    }
    // A site rule named like a built-in one replaces it.
    rules.retain(|r| !own.iter().any(|o| o.name == r.name));
    rules.extend(own);
    Ok(rules)
}

/// toml's message spans several lines (the offending line, a caret): keep the cause and
/// where it is.
fn one_line(e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => format!("{message} (at byte {})", span.start),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_set_parses() {
        let rules = builtin();
        let names: Vec<_> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mass-export",
                "mass-export-total",
                "mass-deletion",
                "mass-deletion-role",
                "user-deleted",
                "truncate",
                "privilege-change",
                "audit-trail-touched",
                "audit-trail-changed",
                "privilege-capture-narrowed",
                "consumer-claimed",
                "archive-damaged",
                "cross-tenant",
                "stream-skipped"
            ]
        );
        let total = &rules[1];
        assert_eq!(total.sum.as_deref(), Some("rows"));
        assert_eq!(total.window, Duration::from_secs(3600));
        assert_eq!(rules[2].more_than, 100.0);
        assert_eq!((rules[2].per, rules[3].per), (Per::Actor, Per::DbUser));
        // The privilege rule watches the contract's privilege columns, no more, no fewer.
        let privilege = rules.iter().find(|r| r.name == "privilege-change").unwrap();
        assert_eq!(
            privilege.filter.changed_fields_any.as_deref(),
            Some(&audit_trail_contract::PRIVILEGE_FIELDS.map(String::from)[..])
        );
        // The cross-organization rule looks for the key capture writes.
        let cross = rules.iter().find(|r| r.name == "cross-tenant").unwrap();
        assert_eq!(
            cross.filter.context_any.as_deref(),
            Some(&[audit_trail_contract::ACTING_TENANT_KEY.to_owned()][..])
        );
        assert_eq!(cross.severity, Severity::Critical);
    }

    /// A built-in rule names only actions the product records (a misspelt one would never
    /// fire): captured, the extension's, the log's own or the sidecar's.
    #[test]
    fn builtin_rules_name_only_actions_that_are_recorded() {
        use audit_trail_contract as c;
        for rule in builtin() {
            for action in rule.filter.action.iter().flatten() {
                let a = action.as_str();
                assert!(
                    c::is_reserved_action(a)
                        || c::AUDIT_LOG_RECORDED_ACTIONS.contains(&a)
                        || c::sidecar_actions::ALL.contains(&a),
                    "rule {}: action {a}",
                    rule.name
                );
            }
        }
    }

    #[test]
    fn business_hours_follow_their_time_zone_and_days() {
        let spec = |days: &[&str], from: &str, to: &str| HoursSpec {
            timezone: "Europe/Berlin".into(),
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            from: from.into(),
            to: to.into(),
        };
        let hours = BusinessHours::parse(&spec(
            &["mon", "tue", "wed", "thu", "fri"],
            "08:00",
            "19:00",
        ))
        .unwrap();
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        // Tuesday 1 December 2026: 07:30 UTC is 08:30 in Berlin (winter, UTC+1).
        assert!(hours.contains(at("2026-12-01T07:30:00Z")));
        assert!(!hours.contains(at("2026-12-01T06:30:00Z")));
        assert!(!hours.contains(at("2026-12-01T18:00:00Z")));
        // In summer Berlin is UTC+2: 06:30 UTC is 08:30 there.
        assert!(hours.contains(at("2026-07-01T06:30:00Z")));
        // Saturday.
        assert!(!hours.contains(at("2026-12-05T10:00:00Z")));
        let always = BusinessHours::parse(&spec(
            &["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "00:00",
            "24:00",
        ))
        .unwrap();
        assert!(always.contains(at("2026-12-05T23:59:00Z")));
        for (days, from, to) in [
            (&["mon"][..], "9:00", "8:00"),
            (&["mon"][..], "25:00", "26:00"),
            (&["funday"][..], "08:00", "09:00"),
            (&["mon"][..], "08:61", "09:00"),
        ] {
            assert!(
                BusinessHours::parse(&spec(days, from, to)).is_err(),
                "{days:?} {from} {to}"
            );
        }
        let bad_zone = HoursSpec {
            timezone: "Mars/Olympus".into(),
            ..spec(&["mon"], "08:00", "09:00")
        };
        assert!(BusinessHours::parse(&bad_zone).is_err());
    }

    #[test]
    fn business_hours_turn_on_the_off_hours_rule() {
        let rules =
            load_text("business_hours = { timezone = \"UTC\", from = \"08:00\", to = \"18:00\" }")
                .unwrap();
        assert!(rules
            .iter()
            .any(|r| r.name == "off-hours" && r.outside.is_some()));
        assert!(!builtin().iter().any(|r| r.name == "off-hours"));
        let err = load_text(
            "business_hours = { timezone = \"Nowhere\", from = \"08:00\", to = \"18:00\" }",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("business_hours: unknown time zone"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_within("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_within("1d"), Ok(Duration::from_secs(86400)));
        assert!(parse_within("10").is_err());
        assert_eq!(parse_within("0s"), Err("\"0s\" must be more than 0".into()));
        assert!(parse_within("m")
            .unwrap_err()
            .contains("\"m\" as a duration"));
    }

    fn load_text(text: &str) -> Result<Vec<Rule>> {
        let dir = tempfile::tempdir().map_err(|e| Error::Unexpected(e.to_string()))?;
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, text).map_err(|e| Error::Unexpected(e.to_string()))?;
        load(&path)
    }

    #[test]
    fn unknown_fields_and_bad_syntax_are_one_line() {
        for text in [
            "[[rule]]\nname = \"x\"\nseverity = \"info\"\nmatch = { entitty = [\"a\"] }\n",
            "[[rule]\nname = \"x\"\n",
            "[[rule]]\nname = \"x\"\nseverity = \"loud\"\n",
            "[[rule]]\nname = \"x\"\nseverity = \"info\"\nthreshold = { within = \"5 min\" }\n",
        ] {
            match load_text(text) {
                Err(Error::Usage(m)) => {
                    assert!(m.contains("rules.toml: "), "{m}");
                    assert!(!m.contains('\n'), "{m}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn site_rules_add_replace_and_disable() {
        let rules = load_text(
            "application_roles = [\"crm_app\"]\ndisable = [\"truncate\"]\n\
             [[rule]]\nname = \"mass-deletion\"\nseverity = \"info\"\n\
             match = { action = [\"delete\"] }\nthreshold = { more_than = 5, within = \"1m\" }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = rules.iter().map(|r| r.name.as_str()).collect();
        assert!(names.contains(&"direct-edit"));
        assert!(!names.contains(&"truncate"));
        let deletion = rules.iter().find(|r| r.name == "mass-deletion");
        assert_eq!(deletion.map(|r| r.more_than), Some(5.0));
    }
}
