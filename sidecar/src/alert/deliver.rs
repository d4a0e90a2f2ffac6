//! Delivering recorded alerts: JSON POSTs to webhooks and JSON lines on stdout.
//!
//! Delivery happens after the alert is committed to the log, so a dead endpoint loses
//! nothing: each POST has a 5 s timeout and is retried with exponential backoff a bounded
//! number of times, then reported on stderr, and the stream moves on.
//!
//! The HTTP client is ureq (blocking, small, rustls with the ring provider the sidecar
//! already uses); it runs on a blocking thread so the async runtime is never held up.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

pub struct Webhook {
    url: String,
    /// Scheme and host only: a webhook URL often carries a secret in its path.
    shown: String,
}

impl Webhook {
    pub fn parse(url: &str) -> Result<Webhook> {
        let uri: ureq::http::Uri = url
            .parse()
            .map_err(|_| Error::Usage(format!("--webhook: \"{url}\" is not a URL")))?;
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(Error::Usage(format!(
                "--webhook: \"{url}\" is not an http:// or https:// URL"
            )));
        };
        if scheme != "http" && scheme != "https" {
            return Err(Error::Usage(format!(
                "--webhook: \"{url}\" is not an http:// or https:// URL"
            )));
        }
        Ok(Webhook {
            url: url.to_owned(),
            shown: format!("{scheme}://{host}"),
        })
    }
}

pub struct Delivery {
    webhooks: Vec<Webhook>,
    stdout: bool,
    agent: ureq::Agent,
}

impl Delivery {
    pub fn new(webhooks: Vec<Webhook>, stdout: bool) -> Delivery {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(true)
            .build()
            .into();
        Delivery {
            webhooks,
            stdout,
            agent,
        }
    }

    /// Delivers the alerts, each once per destination; returns when all are delivered or
    /// given up on.
    pub async fn deliver(&self, alerts: Vec<Value>) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        if self.stdout {
            let mut out = std::io::stdout().lock();
            for alert in &alerts {
                writeln!(out, "{alert}").map_err(Error::Output)?;
            }
            out.flush().map_err(Error::Output)?;
        }
        if self.webhooks.is_empty() {
            return Ok(());
        }
        let agent = self.agent.clone();
        let hooks: Vec<(String, String)> = self
            .webhooks
            .iter()
            .map(|w| (w.url.clone(), w.shown.clone()))
            .collect();
        tokio::task::spawn_blocking(move || {
            for (url, shown) in &hooks {
                // An endpoint that failed every attempt gets one attempt per further alert
                // of the batch, so a dead one delays the stream once, not once per alert.
                let mut attempts = ATTEMPTS;
                for alert in &alerts {
                    if let Err(reason) = post(&agent, url, alert, attempts) {
                        tracing::error!(
                            webhook = %shown,
                            alert = %alert["alert_id"],
                            attempts,
                            "alert not delivered: {reason} (it is in the audit log)"
                        );
                        attempts = 1;
                    }
                }
            }
        })
        .await
        .map_err(|e| Error::System(format!("delivering alerts: {e}")))
    }
}

fn post(agent: &ureq::Agent, url: &str, alert: &Value, attempts: u32) -> Result<(), String> {
    let body = alert.to_string();
    let mut backoff = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=attempts {
        match agent
            .post(url)
            .header("content-type", "application/json")
            .send(body.as_str())
        {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        if attempt < attempts {
            std::thread::sleep(backoff);
            backoff *= 2;
        }
    }
    Err(last)
}
