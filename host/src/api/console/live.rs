//! Live updates of an incident page: Server-Sent Events carrying the re-rendered `#live` part
//! whenever the incident (its version) or one of its actions (its status) changed. The first
//! event is the current state, so a browser that reconnects (after a host restart, say) catches
//! up at once; `retry` asks it to reconnect after a second. A stream keeps the identity it was
//! opened with (it renders the buttons for it) until it closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::session::Identity;
use super::{Console, Who, view};

/// What a viewer of the page would see change.
fn key(rec: &crate::incident::IncidentRecord, actions: &[crate::incident::ActionRun]) -> String {
    format!("{}|{}", rec.version, view::actions_key(actions))
}

struct Watch {
    st: Arc<Console>,
    id: String,
    who: Identity,
    changes: tokio::sync::watch::Receiver<u64>,
    last: Option<String>,
}

impl Watch {
    /// The next event: the page's part as it is now, once it differs from what was sent.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Watch)> {
        loop {
            // Mark the tick seen before reading, so a change made after the read wakes us.
            self.changes.borrow_and_update();
            let now = self.st.api.reconciler.incident(&self.id);
            let key = now.as_ref().map(|(r, a)| key(r, a));
            if key != self.last {
                self.last = key;
                let event = match now {
                    Some((rec, actions)) => Event::default()
                        .event("update")
                        .retry(Duration::from_secs(1))
                        .data(view::incident_live(&rec, &actions, Some(&self.who), self.st.api.executor).into_string()),
                    None => Event::default().event("gone").data("this incident is no longer kept"),
                };
                return Some((Ok(event), self));
            }
            self.changes.changed().await.ok()?;
        }
    }
}

/// A stream of one `gone` event: the page stops listening (an error status would make the
/// script retry for ever).
fn gone(why: String) -> Response {
    let event = Event::default().event("gone").data(why);
    Sse::new(futures::stream::iter([Ok::<_, Infallible>(event)])).into_response()
}

pub(super) async fn incident(State(st): State<Arc<Console>>, Who(who): Who, Path(id): Path<String>) -> Response {
    let Some(who) = who else {
        return gone("signed out: reload the page to sign in again".into());
    };
    if st.api.reconciler.incident(&id).is_none() {
        return gone(format!("incident `{id}` is no longer kept here"));
    }
    let changes = st.api.reconciler.changes();
    let watch = Watch {
        st,
        id,
        who,
        changes,
        last: None,
    };
    let stream = futures::stream::unfold(watch, Watch::next);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
