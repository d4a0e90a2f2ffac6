//! The categories of the Audit Log Report, defined once: which events each holds. The SQL
//! views (`audit.contact_activity`, ...), the dashboard's tabs, the Overview's chart and its
//! counts all derive from (or are tested against) [`CATEGORIES`], so a number the Overview
//! shows is the length of the list its legend opens.
//!
//! The categories do not overlap: an export of contacts is an export, not a contact change.

/// One category: an entity, or an action, or an entity but for one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Category {
    /// The key the dashboard's chart uses in CSS classes and the JSON of its counts.
    pub key: &'static str,
    /// The chart's legend.
    pub label: &'static str,
    /// The log's tab.
    pub tab_label: &'static str,
    /// The SQL view of the category (in schema `audit`).
    pub view: &'static str,
    /// Only events of this entity.
    pub entity: Option<&'static str>,
    /// Only events of this action.
    pub action: Option<&'static str>,
    /// No events of this action.
    pub except_action: Option<&'static str>,
}

/// The action of exports, which the export category holds whatever was exported.
pub const EXPORT_ACTION: &str = crate::sidecar_actions::EXPORT;

pub const CATEGORIES: [Category; 4] = [
    Category {
        key: "contact",
        label: "Contacts",
        tab_label: "Contact changes",
        view: "contact_activity",
        entity: Some("contact"),
        action: None,
        except_action: Some(EXPORT_ACTION),
    },
    Category {
        key: "group",
        label: "Groups",
        tab_label: "Groups",
        view: "group_activity",
        entity: Some("group"),
        action: None,
        except_action: Some(EXPORT_ACTION),
    },
    Category {
        key: "user",
        label: "Users",
        tab_label: "User profile changes",
        view: "user_activity",
        entity: Some("user"),
        action: None,
        except_action: Some(EXPORT_ACTION),
    },
    Category {
        key: "export",
        label: "Exports",
        tab_label: "Exports",
        view: "export_activity",
        entity: None,
        action: Some(EXPORT_ACTION),
        except_action: None,
    },
];

impl Category {
    /// The category as a SQL condition on the columns `entity` and `action` (of
    /// `audit.events`, the report or a summary table). The values are the constants above,
    /// never input.
    pub fn sql(&self) -> String {
        let mut parts = Vec::new();
        if let Some(entity) = self.entity {
            parts.push(format!("entity = '{entity}'"));
        }
        if let Some(action) = self.action {
            parts.push(format!("action = '{action}'"));
        }
        if let Some(action) = self.except_action {
            parts.push(format!("action <> '{action}'"));
        }
        parts.join(" AND ")
    }

    /// Whether an event of this entity and action is in the category.
    pub fn holds(&self, entity: &str, action: &str) -> bool {
        self.entity.is_none_or(|e| e == entity)
            && self.action.is_none_or(|a| a == action)
            && self.except_action.is_none_or(|a| a != action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_event_is_in_two_categories() {
        for (entity, action) in [
            ("contact", "create"),
            ("contact", "export"),
            ("group", "export"),
            ("user", "update"),
            ("audit_log", "export"),
            ("invoice", "delete"),
        ] {
            let holding: Vec<&str> = CATEGORIES
                .iter()
                .filter(|c| c.holds(entity, action))
                .map(|c| c.key)
                .collect();
            assert!(holding.len() <= 1, "{entity}/{action}: {holding:?}");
        }
        assert!(CATEGORIES[0].holds("contact", "merge"));
        assert!(!CATEGORIES[0].holds("contact", "export"));
        assert!(CATEGORIES[3].holds("audit_log", "export"));
    }

    #[test]
    fn the_sql_says_what_holds_says() {
        assert_eq!(
            CATEGORIES[0].sql(),
            "entity = 'contact' AND action <> 'export'"
        );
        assert_eq!(CATEGORIES[3].sql(), "action = 'export'");
    }
}
