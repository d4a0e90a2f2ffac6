//! Plain HTTP requests to the dashboard ([`Http`]), no browser: refused sign-ins, missing
//! CSRF tokens, the API. Re-exported by [`crate::browser`], where tests have always found it.

use std::time::Duration;

use crate::browser::Dashboard;

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value a `Set-Cookie` of this response gives `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().into_iter().find_map(|c| {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.to_owned())
        })
    }

    /// The value of the first `<input name="NAME" value="...">` in the page.
    pub fn hidden_field(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_owned())
    }
}

/// A plain HTTP client that follows no redirects and keeps no cookies by itself.
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    pub fn new(dashboard: &Dashboard) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Http {
            agent,
            base: dashboard.base.clone(),
        }
    }

    fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = result.expect("HTTP request to the dashboard");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(100 * 1024 * 1024)
            .read_to_string()
            .expect("read the response body");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            request = request.header("Cookie", c);
        }
        Self::reply(request.call())
    }

    /// GETs with extra request headers (e.g. an Authorization).
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Self::reply(request.call())
    }

    /// POSTs a form; `headers` are extra request headers (e.g. an Origin).
    pub fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            request = request.header("Cookie", c);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Self::reply(request.send_form(form.iter().copied()))
    }

    /// Loads the sign-in form and posts it: the reply, and the sign-in cookie it was sent with.
    pub fn sign_in(&self, role: &str, password: &str) -> Reply {
        let form = self.get("/sign-in", None);
        assert_eq!(form.status, 200, "{}", form.body);
        let token = form.hidden_field("csrf").expect("a CSRF token in the form");
        let cookie = form
            .cookie("audit_trail_sign_in")
            .expect("the sign-in form sets its cookie");
        self.post(
            "/sign-in",
            Some(&format!("audit_trail_sign_in={cookie}")),
            &[("csrf", &token), ("role", role), ("password", password)],
            &[],
        )
    }

    /// Signs in and returns the `Cookie` header value of the session.
    pub fn session(&self, role: &str, password: &str) -> String {
        let reply = self.sign_in(role, password);
        assert_eq!(
            reply.status, 303,
            "sign-in as {role} refused: {}",
            reply.body
        );
        let token = reply
            .cookie("audit_trail_session")
            .expect("a session cookie");
        format!("audit_trail_session={token}")
    }
}
