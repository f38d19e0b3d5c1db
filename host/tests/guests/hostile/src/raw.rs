//! Attacks that need `wasi:http` below the SDK: requests held open, header fields hoarded.

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, FutureIncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme};

/// Fire `n` requests at `authority` without waiting for any answer; keep them all open.
/// Returns how many the host accepted and how many it refused.
/// The last request is waited for (past a cap it is refused at once), so the host has started
/// every send before the count.
pub fn connections(authority: &str, n: usize) -> (usize, usize, Vec<FutureIncomingResponse>) {
    let mut held = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..n {
        let req = OutgoingRequest::new(Fields::new());
        let _ = req.set_method(&Method::Get);
        let _ = req.set_scheme(Some(&Scheme::Http));
        let _ = req.set_authority(Some(authority));
        let _ = req.set_path_with_query(Some("/hold"));
        let body = req.body().expect("body");
        match outgoing_handler::handle(req, None) {
            Ok(f) => {
                let _ = OutgoingBody::finish(body, None);
                held.push(f);
            }
            Err(_) => refused += 1,
        }
    }
    // Let the host start every send; those it refused resolve at once with an error.
    if let Some(last) = held.last() {
        last.subscribe().block();
    }
    for f in &held {
        if let Some(Ok(Err(_))) = f.get() {
            refused += 1;
        } else {
            accepted += 1;
        }
    }
    (accepted, refused, held)
}

/// Keep header fields until the host says no: each `fields` holds about 56 KiB.
pub fn hoard_headers() -> usize {
    let mut hoard = Vec::new();
    let value = vec![b'v'; 8 * 1024];
    loop {
        let f = Fields::new();
        for i in 0..7 {
            if f.append(&format!("x-hoard-{i}"), &value).is_err() {
                return hoard.len();
            }
        }
        hoard.push(f);
    }
}
