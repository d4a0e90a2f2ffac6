//! The Export button: exactly the filtered events, as the same CSV as `audit-trail export`,
//! through the same code ([`ExportRecord`], then [`crate::export::stream_events`] into a
//! [`ChunkSink`] that feeds the response body). It runs on the signed-in role's own
//! connection, so the `audit_log`/`export` event is theirs (`db_user`, `actor`), with source
//! `dashboard`; when the dashboard reads a standby, the events are recorded through the
//! role's own connection to the primary (`--record-db`).
//!
//! A token viewer's export (an embed session's, source `embed`, or the API's
//! `GET /api/v1/events.csv`, source `api`, through [`respond`]) is restricted to their
//! organization, runs on a `--viewer-db` connection, and both records name the viewer as
//! their actor.
//!
//! The export is recorded, committed, before its first byte leaves (a browser that hangs up
//! after 5 MB has still been seen exporting, and how many rows the filters matched), and its
//! end after the last: complete, or cut off with the rows sent. The download completes only
//! once the end is recorded: the sink always holds back the latest chunk, and sends it after
//! that. If anything fails before the first byte, the browser gets an error page; after it,
//! the connection is cut, so the browser reports a failed download instead of saving a
//! truncated file as if it were whole.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::stream;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::auth::FormFields;
use super::error::WebError;
use super::params::LogParams;
use super::session::SignedIn;
use super::state::Settings;
use crate::event_row::TimeFormat;
use crate::export::{
    stream_counting, ChunkSink, Ending, ExportRecord, ExportRequest, Format, Progress,
};
use crate::own_events::OnBehalf;

/// What the export task tells the response: bytes, or why it stopped.
type Message = Result<Bytes, WebError>;

struct ResponseSink {
    tx: mpsc::Sender<Message>,
    held: Option<Vec<u8>>,
    /// Whether the response has started (its headers are gone).
    started: bool,
}

impl ResponseSink {
    async fn forward(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        self.started = true;
        self.tx.send(Ok(Bytes::from(chunk))).await.map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the browser stopped the download",
            )
        })
    }
}

impl ChunkSink for ResponseSink {
    async fn send(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        match self.held.replace(chunk) {
            Some(previous) => self.forward(previous).await,
            None => Ok(()),
        }
    }
}

pub async fn download(
    axum::extract::State(settings): axum::extract::State<Arc<Settings>>,
    SignedIn { session, .. }: SignedIn,
    body: Bytes,
) -> Result<Response, WebError> {
    // A viewer without the export scope is told so, form token or not (their pages hold no
    // form, so no token either).
    if !session.may_export() {
        return Err(WebError::NotAllowed(
            "Your access to the audit log does not include exporting it.",
        ));
    }
    let form = FormFields::parse(&body);
    session.check_csrf(form.get("csrf"))?;
    let params = LogParams::parse(&body);
    let now = Utc::now();
    let filters = params
        .to_filters(now, settings.zone)
        .map_err(WebError::BadRequest)?;
    let request = ExportRequest {
        filters: session.scope(filters),
        format: Format::Csv,
        bom: false,
        times: TimeFormat::default(),
        record_id: None,
    };
    let client = session.client().await?;
    let record = session.record_client().await?;
    let (via, on_behalf) = match session.on_behalf() {
        None => ("dashboard", None),
        Some(viewer) => ("embed", Some(viewer)),
    };
    let who = session.role.clone();
    respond(client, record, request, via, on_behalf, who, now).await
}

/// The CSV of `request` as a response: recorded (through `record`, else `client`) before its
/// first byte leaves, streamed from `client`, its end recorded before the last chunk. `via`
/// is how it ran (`dashboard`, `embed`, `api`); `on_behalf`, a token viewer it is for; `who`
/// names the person in the server's log.
pub async fn respond<C, R>(
    mut client: C,
    record: Option<R>,
    request: ExportRequest,
    via: &str,
    on_behalf: Option<OnBehalf>,
    who: String,
    now: chrono::DateTime<Utc>,
) -> Result<Response, WebError>
where
    C: DerefMut<Target = Client> + Send + 'static,
    R: Deref<Target = Client> + Send + 'static,
{
    let role = who;
    let started = ExportRecord::start_for(
        &client,
        record.as_deref().unwrap_or(&*client),
        &request,
        via,
        on_behalf,
    )
    .await
    .map_err(|e| WebError::from_export(&role, e))?;
    let request = started.leave_out(&request);
    let via = via.to_owned();

    let (tx, mut rx) = mpsc::channel::<Message>(4);
    tokio::spawn(async move {
        let mut sink = ResponseSink {
            tx: tx.clone(),
            held: None,
            started: false,
        };
        let mut sent = 0;
        let streamed = stream_counting(
            &mut client,
            &request,
            &mut sink,
            &mut Progress::new(false),
            &mut sent,
        )
        .await;
        let ending = match &streamed {
            Ok(()) => Ending::Complete,
            Err(e) => Ending::of(e),
        };
        let ended = started
            .end(record.as_deref().unwrap_or(&*client), sent, ending)
            .await;
        let result = streamed.and(ended).map(|_| sent);
        match result {
            Ok(rows) => {
                let last = sink.held.take().unwrap_or_default();
                if sink.forward(last).await.is_ok() {
                    tracing::info!(role = ?role, rows, via, "exported events");
                }
            }
            Err(crate::error::Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::warn!(role = ?role, "an export was stopped before it finished");
            }
            Err(e) if sink.started => {
                tracing::error!(role = ?role, "an export failed after it started: {e}");
                let _ = tx.send(Err(WebError::from_export(&role, e))).await;
            }
            // Not started: the handler shows the error as a page (and logs it).
            Err(e) => {
                let _ = tx.send(Err(WebError::from_export(&role, e))).await;
            }
        }
    });

    // Nothing is sent until the export has either produced its first bytes or failed: a
    // failure that early is still a proper error page.
    let first = match rx.recv().await {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => return Err(e),
        None => return Err(WebError::internal("the export stopped without a result")),
    };
    let rest = stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Some(Ok(bytes)) => Some((Ok::<Bytes, std::io::Error>(bytes), rx)),
            // The headers are gone already (the task logged why): cut the download short.
            Some(Err(_)) => Some((Err(std::io::Error::other("the export failed")), rx)),
            None => None,
        }
    });
    let body = Body::from_stream(stream::StreamExt::chain(
        stream::once(async move { Ok::<Bytes, std::io::Error>(first) }),
        rest,
    ));
    let filename = format!("audit-log-{}.csv", now.format("%Y%m%d-%H%M%S"));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Format::Csv.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
