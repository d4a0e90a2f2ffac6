//! Evaluating rules over the stream: per (rule, actor) sliding windows of matching events (or
//! per (rule, database role), for rules that count per `db_user`), thresholds, and one alert
//! per rule, actor (role) and window.
//!
//! Time is the events' own `occurred_at`, not the clock: evaluation gives the same alerts
//! whenever it runs, which is what lets a restart rebuild the windows by replaying the
//! events just before the cursor (see [`Engine::observe`] with `emit = false`).

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rules::{Per, Rule, Severity};
use crate::event_row::OutputEvent;

/// At most this many event ids are listed in one alert (its count says how many there were).
pub const MAX_EVENT_IDS: usize = 100;
/// At most this many actors are named in an alert counted per database role.
pub const MAX_ACTORS: usize = 20;

fn is_per_actor(per: &Per) -> bool {
    *per == Per::Actor
}

/// The rule an alert event raises when it names this engine's consumer but another role
/// recorded it: not the engine's own, so it must not silence a rule.
pub const FORGED_ALERT_RULE: &str = "alert-forged";

/// What an alert records as its event's details, and what webhooks receive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    pub rule: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The actor whose events the window counted; for a rule counted per database role, the
    /// actor of the event that crossed the threshold.
    pub actor: String,
    /// What the window counted per (`actor` unless the rule says `db_user`).
    #[serde(default, skip_serializing_if = "is_per_actor")]
    pub per: Per,
    /// For a rule counted per database role: the role, and the actors its events named in
    /// this alert's batch (at most [`MAX_ACTORS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actors: Vec<String>,
    /// The organization whose events the window counted: each organization's are counted
    /// apart, so one customer's activity never adds to another's threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Matching events in the window.
    pub count: u64,
    /// The window's total of the rule's `sum` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// The first [`MAX_EVENT_IDS`] of them.
    pub event_ids: Vec<i64>,
    /// The consumer that raised it: a restart of that consumer knows its own alerts.
    pub consumer: String,
}

#[derive(Debug, Clone, Default)]
struct Group {
    /// Matching events in the window: when, how much, which, and (for a rule counted per
    /// database role) whose.
    events: VecDeque<(DateTime<Utc>, f64, i64, Option<String>)>,
    total: f64,
    /// Alerted for the window ending then: quiet until an event at or after it.
    quiet_until: Option<DateTime<Utc>>,
    /// The alert raised in the current batch, still gathering the burst's events.
    pending: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Engine {
    rules: Vec<Rule>,
    consumer: String,
    /// The login role that records this engine's alerts: an alert in its consumer's name
    /// recorded by another role is not its own.
    writer: Option<String>,
    /// Windows by (rule, actor or role, organization).
    groups: HashMap<(usize, String, Option<String>), Group>,
    pending: Vec<Alert>,
}

/// An event's JSON columns, parsed only when a rule looks at them.
struct Lazy<'a> {
    event: &'a OutputEvent,
    details: Option<Option<Value>>,
    context: Option<Option<Value>>,
    changed: Option<Vec<String>>,
}

impl<'a> Lazy<'a> {
    fn details(&mut self) -> Option<&Value> {
        let event = self.event;
        self.details
            .get_or_insert_with(|| {
                event
                    .details
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
            })
            .as_ref()
    }

    fn context(&mut self) -> Option<&Value> {
        let event = self.event;
        self.context
            .get_or_insert_with(|| {
                event
                    .context
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
            })
            .as_ref()
    }

    fn number(&mut self, key: &str) -> Option<f64> {
        self.details().and_then(|d| d.get(key)).and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    }

    fn changed(&mut self) -> &[String] {
        let event = self.event;
        self.changed.get_or_insert_with(|| {
            event
                .changed_fields
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default()
        })
    }
}

fn any_of(list: &Option<Vec<String>>, value: &str) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|v| v == value))
}

/// Whether a JSON value says something: not null, false or empty.
fn present(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        Value::Bool(true) | Value::Number(_) => true,
    }
}

fn matches(rule: &Rule, e: &mut Lazy<'_>) -> bool {
    let f = &rule.filter;
    let event = e.event;
    if !(any_of(&f.entity, &event.entity)
        && any_of(&f.action, &event.action)
        && any_of(&f.source, &event.source))
    {
        return false;
    }
    if f.application_name.is_some()
        && !any_of(
            &f.application_name,
            event.application_name.as_deref().unwrap_or(""),
        )
    {
        return false;
    }
    if let Some(allowed) = &f.db_user_not_in {
        if allowed.iter().any(|u| u == &event.db_user) {
            return false;
        }
    }
    if rule
        .outside
        .as_ref()
        .is_some_and(|h| h.contains(event.occurred_at))
    {
        return false;
    }
    if let Some(fields) = &f.changed_fields_any {
        if !e.changed().iter().any(|c| fields.contains(c)) {
            return false;
        }
    }
    if let Some(keys) = &f.details_any {
        let hit = e
            .details()
            .is_some_and(|d| keys.iter().any(|k| d.get(k).is_some_and(present)));
        if !hit {
            return false;
        }
    }
    if let Some(keys) = &f.context_any {
        let hit = e
            .context()
            .is_some_and(|c| keys.iter().any(|k| c.get(k).is_some_and(present)));
        if !hit {
            return false;
        }
    }
    f.details_above
        .iter()
        .all(|(key, above)| e.number(key).is_some_and(|n| n.is_finite() && n > *above))
}

impl Engine {
    pub fn new(rules: Vec<Rule>, consumer: &str) -> Engine {
        Engine {
            rules,
            consumer: consumer.to_owned(),
            writer: None,
            groups: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// The login role this engine records its alerts as.
    pub fn recorded_by(mut self, role: &str) -> Engine {
        self.writer = Some(role.to_owned());
        self
    }

    /// The consumer whose cursor the engine moves, and in whose name it records alerts.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The longest window: how far back a restart replays to rebuild the windows.
    pub fn longest_window(&self) -> std::time::Duration {
        self.rules
            .iter()
            .map(|r| r.window)
            .max()
            .unwrap_or_default()
    }

    /// Evaluates one event. With `emit`, alerts are raised for [`Engine::take`]; without, the
    /// windows and the quiet periods are only rebuilt (a restart replaying events already
    /// evaluated: a crossing there was alerted then).
    pub fn observe(&mut self, event: &OutputEvent, emit: bool) {
        if event.entity == audit_trail_contract::AUDIT_LOG_ENTITY && event.action == "alert" {
            // Alerts are not evaluated (no rule alerting on alerts, forever); our own
            // restore the quiet period they started. One in our name that another role
            // recorded is not ours: it is an alert of its own, and restores nothing.
            if self.claims_our_consumer(event)
                && self.writer.as_ref().is_some_and(|w| *w != event.db_user)
            {
                if emit {
                    self.pending.push(self.forged(event));
                }
                return;
            }
            self.remember(event);
            return;
        }
        let mut lazy = Lazy {
            event,
            details: None,
            context: None,
            changed: None,
        };
        for (index, rule) in self.rules.iter().enumerate() {
            if !matches(rule, &mut lazy) {
                continue;
            }
            let amount = match &rule.sum {
                // An event without the field adds nothing to the total.
                // Only a finite amount, zero or more: a negative or NaN one (any role may
                // log an export) would otherwise cancel others' out of the window.
                Some(field) => lazy
                    .number(field)
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .unwrap_or(0.0),
                None => 1.0,
            };
            let at = event.occurred_at;
            let window = chrono::Duration::from_std(rule.window).unwrap_or(chrono::Duration::MAX);
            let key = match rule.per {
                Per::Actor => &event.actor,
                Per::DbUser => &event.db_user,
            };
            let group = self
                .groups
                .entry((index, key.clone(), event.tenant.clone()))
                .or_default();
            let since = at - window;
            while group.events.front().is_some_and(|(t, _, _, _)| *t <= since) {
                if let Some((_, a, _, _)) = group.events.pop_front() {
                    group.total -= a;
                }
            }
            let actor = (rule.per == Per::DbUser).then(|| event.actor.clone());
            group.events.push_back((at, amount, event.id, actor));
            group.total += amount;
            let measure = if rule.sum.is_some() {
                group.total
            } else {
                group.events.len() as f64
            };
            if let Some(p) = group.pending {
                // Still the same burst, in the same batch: one alert gathers it.
                if let Some(alert) = self.pending.get_mut(p) {
                    alert.count = group.events.len() as u64;
                    alert.sum = rule.sum.as_ref().map(|_| group.total);
                    if alert.event_ids.len() < MAX_EVENT_IDS {
                        alert.event_ids.push(event.id);
                    }
                    if rule.per == Per::DbUser
                        && alert.actors.len() < MAX_ACTORS
                        && !alert.actors.contains(&event.actor)
                    {
                        alert.actors.push(event.actor.clone());
                    }
                }
                continue;
            }
            if group.quiet_until.is_some_and(|q| at < q) || measure <= rule.more_than {
                continue;
            }
            let window_start = group.events.front().map_or(at, |(t, _, _, _)| *t);
            let window_end = window_start + window;
            group.quiet_until = Some(window_end);
            if emit {
                group.pending = Some(self.pending.len());
                self.pending.push(Alert {
                    rule: rule.name.clone(),
                    severity: rule.severity,
                    description: rule.description.clone(),
                    actor: event.actor.clone(),
                    per: rule.per,
                    db_user: (rule.per == Per::DbUser).then(|| event.db_user.clone()),
                    actors: group.events.iter().fold(Vec::new(), |mut actors, e| {
                        if let Some(a) = &e.3 {
                            if actors.len() < MAX_ACTORS && !actors.contains(a) {
                                actors.push(a.clone());
                            }
                        }
                        actors
                    }),
                    tenant: event.tenant.clone(),
                    window_start,
                    window_end,
                    count: group.events.len() as u64,
                    sum: rule.sum.as_ref().map(|_| group.total),
                    event_ids: group
                        .events
                        .iter()
                        .map(|(_, _, id, _)| *id)
                        .take(MAX_EVENT_IDS)
                        .collect(),
                    consumer: self.consumer.clone(),
                });
            }
        }
    }

    /// Whether an alert event says it was raised by this engine's consumer.
    fn claims_our_consumer(&self, event: &OutputEvent) -> bool {
        event
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .is_some_and(|d| d.get("consumer").and_then(Value::as_str) == Some(&self.consumer))
    }

    /// The alert an alert event recorded in our name by another role raises.
    fn forged(&self, event: &OutputEvent) -> Alert {
        Alert {
            rule: FORGED_ALERT_RULE.into(),
            severity: Severity::Critical,
            description: Some(format!(
                "an alert event in the name of consumer \"{}\" recorded by role {}, not by the engine",
                self.consumer, event.db_user
            )),
            actor: event.actor.clone(),
            per: Per::Actor,
            db_user: Some(event.db_user.clone()),
            actors: Vec::new(),
            tenant: event.tenant.clone(),
            window_start: event.occurred_at,
            window_end: event.occurred_at,
            count: 1,
            sum: None,
            event_ids: vec![event.id],
            consumer: self.consumer.clone(),
        }
    }

    /// An alert this consumer raised before: quiet for its rule, actor (or role) and window.
    fn remember(&mut self, event: &OutputEvent) {
        let Some(alert) = event
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str::<Alert>(d).ok())
            .filter(|a| a.consumer == self.consumer)
        else {
            return;
        };
        let Some(index) = self.rules.iter().position(|r| r.name == alert.rule) else {
            return;
        };
        let key = match alert.per {
            Per::Actor => alert.actor,
            Per::DbUser => alert.db_user.unwrap_or_default(),
        };
        let group = self.groups.entry((index, key, alert.tenant)).or_default();
        if group.quiet_until.is_none_or(|q| q < alert.window_end) {
            group.quiet_until = Some(alert.window_end);
        }
    }

    /// The alerts raised since the last call; the bursts they gather end with the batch.
    pub fn take(&mut self) -> Vec<Alert> {
        for group in self.groups.values_mut() {
            group.pending = None;
        }
        // Forget actors whose windows are empty and quiet periods over, so the state stays
        // the size of the recent activity.
        std::mem::take(&mut self.pending)
    }

    /// Drops groups with nothing in their window any more, as of `now` (event time).
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let rules = &self.rules;
        self.groups.retain(|(index, _, _), g| {
            let window = rules
                .get(*index)
                .and_then(|r| chrono::Duration::from_std(r.window).ok())
                .unwrap_or(chrono::Duration::MAX);
            let recent = g
                .events
                .back()
                .is_some_and(|(t, _, _, _)| *t > now - window);
            let quiet = g.quiet_until.is_some_and(|q| q > now);
            recent || quiet
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rules;

    fn event(id: i64, minute: i64, actor: &str, entity: &str, action: &str) -> OutputEvent {
        OutputEvent {
            id,
            occurred_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minute),
            actor: actor.into(),
            db_user: "crm_app".into(),
            source: "app".into(),
            entity: entity.into(),
            action: action.into(),
            subject_id: None,
            table_name: None,
            changed_fields: None,
            old_data: None,
            new_data: None,
            client_addr: None,
            application_name: None,
            context: None,
            details: None,
            txid: "1".into(),
            tenant: None,
        }
    }

    #[test]
    fn each_organization_is_counted_apart_and_a_cross_organization_burst_is_one_alert() {
        let mut engine = Engine::new(rules::builtin(), "alerts");
        // 80 deletions by one role in each of two organizations: under the threshold in
        // each, so neither organization's alert fires.
        for (k, tenant) in ["acme", "globex"].iter().enumerate() {
            for id in 0..80 {
                let mut e = event(k as i64 * 100 + id, 0, "ann", "contact", "delete");
                e.tenant = Some((*tenant).into());
                engine.observe(&e, true);
            }
        }
        assert!(engine.take().is_empty());
        // 300 updates of globex's contacts by a transaction acting for acme: one alert,
        // naming the organization whose data changed.
        for id in 1000..1300 {
            let mut e = event(id, 1, "ann", "contact", "update");
            e.tenant = Some("globex".into());
            e.context = Some(r#"{"acting_tenant": "acme"}"#.into());
            engine.observe(&e, true);
        }
        let alerts = engine.take();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, "cross-tenant");
        assert_eq!(alerts[0].tenant.as_deref(), Some("globex"));
        assert_eq!(alerts[0].count, 300);
        // acme's own changes are not cross-organization writes.
        let mut own = event(2000, 2, "ann", "contact", "update");
        own.tenant = Some("acme".into());
        engine.observe(&own, true);
        assert!(engine.take().is_empty());
    }

    #[test]
    fn a_burst_is_one_alert_per_window() {
        let mut engine = Engine::new(rules::builtin(), "alerts");
        for id in 0..150 {
            engine.observe(&event(id, 0, "ann", "contact", "delete"), true);
        }
        // Once per actor, and once per database role (ann's role is crm_app).
        let alerts = engine.take();
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(rules, ["mass-deletion", "mass-deletion-role"]);
        assert_eq!(alerts[0].count, 150);
        assert_eq!(alerts[0].event_ids.len(), MAX_EVENT_IDS);
        assert_eq!(alerts[1].db_user.as_deref(), Some("crm_app"));
        // Later in the same window: quiet. In the next one: again.
        for id in 150..300 {
            engine.observe(&event(id, 5, "ann", "contact", "delete"), true);
        }
        assert!(engine.take().is_empty());
        for id in 300..402 {
            engine.observe(&event(id, 30, "ann", "contact", "delete"), true);
        }
        assert_eq!(engine.take().len(), 2);
        // Another actor's few deletes: nothing (the role's window is quiet until it ends).
        for id in 500..550 {
            engine.observe(&event(id, 30, "bob", "contact", "delete"), true);
        }
        assert!(engine.take().is_empty());
    }

    #[test]
    fn deletions_spread_over_actors_are_counted_per_database_role() {
        let mut engine = Engine::new(rules::builtin(), "alerts");
        // 300 deletions by one role within seconds, as three actors of 100.
        for (k, actor) in ["ann", "bob", "cy"].iter().enumerate() {
            for id in 0..100 {
                engine.observe(
                    &event(k as i64 * 100 + id, 0, actor, "contact", "delete"),
                    true,
                );
            }
        }
        let alerts = engine.take();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, "mass-deletion-role");
        assert_eq!(alerts[0].per, rules::Per::DbUser);
        assert_eq!(alerts[0].actors, ["ann", "bob", "cy"]);
        assert!(alerts[0].count > 100);
    }

    #[test]
    fn an_alert_in_our_name_recorded_by_another_role_is_an_alert_and_silences_nothing() {
        let mut first = Engine::new(rules::builtin(), "alerts");
        first.observe(&event(1, 0, "ann", "user", "delete"), true);
        let alert = first.take().remove(0);
        let mut forged = event(2, 0, "mallory", "audit_log", "alert");
        forged.db_user = "mallory".into();
        forged.details = serde_json::to_string(&alert).ok();
        let mut engine = Engine::new(rules::builtin(), "alerts").recorded_by("alerter");
        engine.observe(&forged, true);
        let raised = engine.take();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].rule, FORGED_ALERT_RULE);
        assert_eq!(raised[0].event_ids, [2]);
        // The forged alert's quiet period was not taken: ann's next deletion alerts.
        engine.observe(&event(3, 1, "ann", "user", "delete"), true);
        assert_eq!(engine.take().len(), 1);
        // The same alert recorded by the engine's own role is its own.
        let mut own = event(4, 0, "alerter", "audit_log", "alert");
        own.db_user = "alerter".into();
        own.details = serde_json::to_string(&alert).ok();
        let mut restarted = Engine::new(rules::builtin(), "alerts").recorded_by("alerter");
        restarted.observe(&own, false);
        restarted.observe(&event(5, 2, "ann", "user", "delete"), true);
        assert!(restarted.take().is_empty());
    }

    #[test]
    fn a_replayed_crossing_or_a_recorded_alert_keeps_a_restart_quiet() {
        let mut engine = Engine::new(rules::builtin(), "alerts");
        for id in 0..101 {
            engine.observe(&event(id, 0, "ann", "contact", "delete"), false);
        }
        engine.observe(&event(101, 1, "ann", "contact", "delete"), true);
        assert!(engine.take().is_empty());

        let mut first = Engine::new(rules::builtin(), "alerts");
        first.observe(&event(1, 0, "ann", "user", "delete"), true);
        let alert = first.take().remove(0);
        let mut recorded = event(2, 0, "alerter", "audit_log", "alert");
        recorded.details = serde_json::to_string(&alert).ok();
        let mut restarted = Engine::new(rules::builtin(), "alerts");
        restarted.observe(&recorded, false);
        restarted.observe(&event(3, 2, "ann", "user", "delete"), true);
        assert!(restarted.take().is_empty());
    }

    #[test]
    fn sums_and_details() {
        let mut engine = Engine::new(rules::builtin(), "alerts");
        let mut export = |id, rows: u64| {
            let mut e = event(id, id, "ann", "audit_log", "export");
            e.details = Some(format!("{{\"rows\": {rows}}}"));
            engine.observe(&e, true);
            engine.take()
        };
        assert!(export(1, 900).is_empty());
        let big = export(2, 2000);
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].rule, "mass-export");
        assert!(export(3, 900).is_empty());
        let total = export(4, 1500);
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].rule, "mass-export-total");
        assert_eq!(total[0].sum, Some(5300.0));
    }

    #[test]
    fn a_negative_or_nan_amount_cancels_nothing() {
        // Any role may log an export, with any details: -1e18 rows or "NaN" must not take
        // the others' rows out of the window.
        let mut engine = Engine::new(rules::builtin(), "alerts");
        for (id, rows) in [(1, "-1e18"), (2, "\"NaN\""), (3, "\"-inf\"")] {
            let mut e = event(id, 0, "ann", "contact", "export");
            e.details = Some(format!("{{\"rows\": {rows}}}"));
            engine.observe(&e, true);
        }
        assert!(engine.take().is_empty());
        for id in 4..10 {
            let mut e = event(id, 1, "ann", "contact", "export");
            e.details = Some("{\"rows\": 1000}".into());
            engine.observe(&e, true);
        }
        let fired = engine.take();
        let total = fired
            .iter()
            .find(|a| a.rule == "mass-export-total")
            .expect("the total still crosses 5,000");
        assert_eq!(total.sum, Some(6000.0));
    }
}
