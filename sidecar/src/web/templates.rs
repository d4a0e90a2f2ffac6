//! One template struct per page, each over `templates/base.html`. Askama escapes every value
//! for HTML unless a template says otherwise (none does), so text from the audit log (a
//! contact's name, an actor) is always shown as text.

use askama::Template;
use axum::response::Html;

use super::session::Session;
use super::view::{EventView, LogView, OverviewView};

/// What the base template needs: the page title, and who is signed in (for the sign-out form).
/// The page of the main navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    AuditLog,
    Overview,
}

pub struct Layout {
    pub title: String,
    pub nav: Nav,
    pub user: Option<UserBar>,
    /// Cache-busting suffix of the asset URLs.
    pub version: &'static str,
}

pub struct UserBar {
    pub role: String,
    /// The first letter of the role, for the avatar.
    pub initial: String,
    pub csrf: String,
    /// A token viewer's organization, shown beside their name.
    pub organization: Option<String>,
    /// Whether to offer signing out: not inside the application's frame, whose session the
    /// application opens.
    pub sign_out: bool,
}

impl Layout {
    pub fn public(title: &str) -> Layout {
        Layout {
            title: title.to_owned(),
            nav: Nav::AuditLog,
            user: None,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// A page for a signed-in `role`, whose forms carry `csrf`.
    pub fn signed_in(title: &str, role: &str, csrf: &str) -> Layout {
        Layout {
            user: Some(UserBar {
                role: role.to_owned(),
                initial: role
                    .chars()
                    .find(|c| c.is_alphanumeric())
                    .map(|c| c.to_uppercase().collect())
                    .unwrap_or_else(|| "?".into()),
                csrf: csrf.to_owned(),
                organization: None,
                sign_out: true,
            }),
            ..Layout::public(title)
        }
    }

    /// A page for `session`: a role's, or a token viewer's (their organization shown, no
    /// sign-out).
    pub fn for_session(title: &str, session: &Session) -> Layout {
        let mut layout = Layout::signed_in(title, &session.role, &session.csrf);
        if let (Some(user), Some(tenant)) = (layout.user.as_mut(), session.tenant()) {
            user.organization = Some(tenant.to_owned());
            user.sign_out = false;
        }
        layout
    }
}

impl Layout {
    /// The same layout, marking `nav` as the current page of the navigation.
    pub fn on(self, nav: Nav) -> Layout {
        Layout { nav, ..self }
    }

    pub fn is(&self, nav: Nav) -> bool {
        self.nav == nav
    }
}

/// Renders a page; a template that fails to render (a bug, not a user error) becomes a
/// plain apology rather than a panic.
pub fn render<T: Template>(page: &T) -> Html<String> {
    match page.render() {
        Ok(html) => Html(html),
        Err(e) => {
            tracing::error!("rendering a page: {e}");
            Html(
                "<!doctype html><meta charset=utf-8><title>Error</title>\
                 <p>Something went wrong showing this page. The details are in the dashboard's log."
                    .into(),
            )
        }
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub layout: Layout,
    pub csrf: String,
    pub next: String,
    /// The role typed last time (never the password).
    pub role: String,
    pub error: Option<String>,
    pub notice: Option<&'static str>,
    pub database: String,
}

#[derive(Template)]
#[template(path = "not_admin.html")]
pub struct NotAdminPage {
    pub layout: Layout,
    pub role: String,
}

impl NotAdminPage {
    pub fn new(role: String) -> NotAdminPage {
        NotAdminPage {
            layout: Layout::public("Not an audit admin"),
            role,
        }
    }

    /// The statement that would let this role in, with the role quoted as an identifier.
    pub fn grant(&self) -> String {
        format!(
            "GRANT audit_admin TO \"{}\";",
            self.role.replace('"', "\"\"")
        )
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub heading: &'static str,
    pub message: String,
    pub reference: Option<String>,
    pub link: Option<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "log.html")]
pub struct LogPage {
    pub layout: Layout,
    pub view: LogView,
    /// How far the log is sealed, in one line (not for a token viewer: it counts every
    /// organization's events).
    pub integrity: Option<String>,
    /// Whether the Export button is offered.
    pub can_export: bool,
    /// Set when the hourly summary is stale (see `view::summary_notice`).
    pub summary_notice: Option<String>,
}

#[derive(Template)]
#[template(path = "event.html")]
pub struct EventPage {
    pub layout: Layout,
    pub event: EventView,
    pub back_href: String,
    pub history_href: Option<String>,
    /// The confirmation page of its revert: a tracked table's change, for a role's session.
    pub revert_href: Option<String>,
    /// The row's versions, newest first (a role's session only).
    pub versions: Vec<super::view::Version>,
}

#[derive(Template)]
#[template(path = "revert.html")]
pub struct RevertPage {
    pub layout: Layout,
    pub id: i64,
    /// What the revert changes: each change's summary and what it does to the row.
    pub changes: Vec<(String, String)>,
    /// Why the database refused it, in its words.
    pub refusal: Option<String>,
    /// Redacted columns are left out (the admin chose so).
    pub skip_redacted: bool,
    /// Refused only for a redacted value: leaving it out would go through.
    pub skip_offered: bool,
    /// The database role it runs as.
    pub role: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub layout: Layout,
    pub view: OverviewView,
    /// Set when the hourly summary is stale (see `view::summary_notice`).
    pub summary_notice: Option<String>,
}
