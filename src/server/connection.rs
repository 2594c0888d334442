//! One client connection from accept to close: the deadlines that close a connection
//! whose first request head has not arrived in time (counted from accept, the TLS
//! handshake and HTTP/2's preface included) or that holds no request in flight for too
//! long (HTTP/1.1 keep-alive, HTTP/2 with no open stream), and the count of requests in
//! flight that tells the two apart — two atomics per request, kept by the response body.

use super::body::GatewayBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// How long a connection may go without a request (`server.header_timeout_secs`,
/// `server.idle_timeout_secs`).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From accept until the first request head is in.
    pub header: Duration,
    /// With no request in flight, after the first.
    pub idle: Duration,
}

/// `idle_since_ms` before any request finished.
const NEVER: u64 = u64::MAX;

/// What a connection's requests tell its watchdog.
#[derive(Debug)]
pub struct Activity {
    accepted: Instant,
    /// Requests whose response has not been sent in full.
    in_flight: AtomicU32,
    /// When (milliseconds after accept) the last request finished; [`NEVER`] before.
    idle_since_ms: AtomicU64,
}

/// What the watchdog does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing before this instant.
    WaitUntil(Instant),
    /// No request head arrived in time: close at once.
    CloseSilent,
    /// No request in flight for the idle timeout: close gracefully (GOAWAY on HTTP/2).
    CloseIdle,
}

impl Activity {
    pub fn new(accepted: Instant) -> Arc<Self> {
        Arc::new(Self {
            accepted,
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(NEVER),
        })
    }

    /// When the connection was accepted.
    pub fn accepted(&self) -> Instant {
        self.accepted
    }

    /// Counts a request as in flight until the returned guard drops (with its response
    /// body, once sent, or with the request's future, if the connection ends first).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Whether a request has begun on the connection.
    pub fn has_begun(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
            || self.idle_since_ms.load(Ordering::Acquire) != NEVER
    }

    /// The watchdog's decision at `now`.
    pub fn verdict(&self, now: Instant, deadlines: Deadlines) -> Verdict {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // The earliest it can have been idle long enough.
            return Verdict::WaitUntil(now + deadlines.idle);
        }
        let (due, verdict) = match self.idle_since_ms.load(Ordering::Acquire) {
            NEVER => (self.accepted + deadlines.header, Verdict::CloseSilent),
            since => (
                self.accepted + Duration::from_millis(since) + deadlines.idle,
                Verdict::CloseIdle,
            ),
        };
        if now >= due {
            verdict
        } else {
            Verdict::WaitUntil(due)
        }
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let elapsed = u64::try_from(activity.accepted.elapsed().as_millis()).unwrap_or(NEVER - 1);
        activity.idle_since_ms.store(elapsed, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
pub struct Tracked {
    body: GatewayBody,
    _in_flight: InFlight,
}

impl Tracked {
    pub fn new(body: GatewayBody, in_flight: InFlight) -> Self {
        Self {
            body,
            _in_flight: in_flight,
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// How a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The client or the protocol ended it (or the gateway's drain did).
    Finished(Result<(), Box<dyn std::error::Error + Send + Sync>>),
    /// No request head arrived within the header timeout.
    Silent,
    /// No request was in flight for the idle timeout.
    Idle,
}

/// While the gateway drains, how often a connection that has not had a request yet
/// looks again: once one began, it is closed after it (so a new connection can still
/// ask `/readyz`, and hear it is draining).
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// Serves `conn` until it ends, closing it when its deadlines pass, and gracefully
/// (finishing requests in flight, GOAWAY on HTTP/2) once `drain` says the gateway is
/// shutting down and the connection has had a request.
pub async fn drive<C>(
    conn: C,
    activity: &Activity,
    deadlines: Deadlines,
    mut drain: tokio::sync::watch::Receiver<Option<Instant>>,
) -> Ended
where
    C: GracefulConnection,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let mut draining = false;
    let mut graceful = false;
    // Set once an idle connection was asked to close: when it must be gone by.
    let mut closing_by: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if draining && !graceful && activity.has_begun() {
            conn.as_mut().graceful_shutdown();
            graceful = true;
        }
        let mut wake = match closing_by {
            Some(by) => by,
            None => match activity.verdict(now, deadlines) {
                Verdict::WaitUntil(at) => at,
                Verdict::CloseSilent => return Ended::Silent,
                Verdict::CloseIdle => {
                    if !graceful {
                        conn.as_mut().graceful_shutdown();
                        graceful = true;
                    }
                    // A peer that never acknowledges the GOAWAY is cut after this.
                    let by = now + deadlines.header;
                    closing_by = Some(by);
                    by
                }
            },
        };
        if draining && !graceful {
            wake = wake.min(now + DRAIN_POLL);
        }
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                return match (result, closing_by) {
                    (Ok(()), Some(_)) => Ended::Idle,
                    (result, _) => Ended::Finished(result.map_err(Into::into)),
                };
            }
            _ = drain.changed(), if !draining => draining = true,
            () = tokio::time::sleep_until(wake) => {
                if closing_by.is_some_and(|by| Instant::now() >= by) {
                    return Ended::Idle;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[test]
    fn a_connection_without_a_request_closes_at_the_header_deadline() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(
            activity.verdict(start + Duration::from_secs(3), DEADLINES),
            Verdict::WaitUntil(start + DEADLINES.header)
        );
        assert_eq!(
            activity.verdict(start + DEADLINES.header, DEADLINES),
            Verdict::CloseSilent
        );
    }

    #[test]
    fn requests_in_flight_keep_it_open_and_idleness_counts_from_the_last() {
        let start = Instant::now();
        let activity = Activity::new(start);
        let first = activity.begin();
        let second = activity.begin();
        let late = start + Duration::from_secs(1000);
        assert_eq!(
            activity.verdict(late, DEADLINES),
            Verdict::WaitUntil(late + DEADLINES.idle)
        );
        drop(first);
        assert!(matches!(
            activity.verdict(late, DEADLINES),
            Verdict::WaitUntil(_)
        ));
        drop(second);
        let idle_since =
            start + Duration::from_millis(activity.idle_since_ms.load(Ordering::Acquire));
        assert_eq!(
            activity.verdict(idle_since, DEADLINES),
            Verdict::WaitUntil(idle_since + DEADLINES.idle)
        );
        assert_eq!(
            activity.verdict(idle_since + DEADLINES.idle, DEADLINES),
            Verdict::CloseIdle
        );
    }
}
