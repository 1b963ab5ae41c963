//! Drive one tracker connection over a WebSocket: read text frames into the state machine,
//! write replies and relayed messages out, close on silence, on oversized or binary messages,
//! and when the tracker drops the connection for being too slow.
//!
//! Writes are batched: everything ready when the task wakes (the reply to the frame just read
//! and whatever other peers queued meanwhile) is handed to the socket first and written with one
//! flush, so a busy connection costs one kernel send per wakeup rather than one per message.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Reject;
use crate::state::Connection;

/// A frame read from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary,
    /// Ping/pong: answered by the WebSocket library; counts as activity.
    Control,
    /// A message the WebSocket library refused to buffer for its size: refused with a
    /// `failure reason` and counted like any message over the limit.
    TooLarge,
    Close,
}

/// The few WebSocket operations the tracker needs; implemented for axum's socket in the node
/// and over channels in tests.
pub trait WsSocket: Send {
    /// The next frame; `None` when the socket is closed or failed.
    fn recv(&mut self) -> impl Future<Output = Option<Frame>> + Send;
    /// Queue a text frame; it is written by the next [`WsSocket::flush`] at the latest. `false`
    /// when the socket failed.
    fn send_text(&mut self, text: String) -> impl Future<Output = bool> + Send;
    /// Write out every queued frame; `false` when the socket failed. Sockets that write in
    /// `send_text` need not implement it.
    fn flush(&mut self) -> impl Future<Output = bool> + Send {
        async { true }
    }
    /// Close the socket (best effort).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// How long one write may take before the client is considered gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Most queued messages written in one batch, so one busy connection cannot hold its worker.
const MAX_BATCH: usize = 64;

/// Serve one connection until it ends; returns why it ended (for logs and tests).
pub async fn serve<S: WsSocket>(conn: Connection, mut rx: mpsc::Receiver<String>, mut socket: S) -> &'static str {
    let cfg = conn.tracker().config().clone();
    let idle = cfg.idle_timeout();
    // One timer for the idle close, moved only when it fires early: re-arming it for every
    // frame would cost a timer-wheel update per message.
    let mut last_frame = Instant::now();
    let idle_timer = tokio::time::sleep_until(last_frame + idle);
    tokio::pin!(idle_timer);
    let mut out = Vec::new();
    let why = loop {
        // In this order: a frame from the client first, so that when both it and messages from
        // other peers are ready, its reply and those messages go out in one write.
        tokio::select! {
            biased;
            frame = socket.recv() => {
                last_frame = Instant::now();
                match frame {
                    None | Some(Frame::Close) => break "closed by the client",
                    Some(Frame::Control) => continue,
                    Some(Frame::Binary) => {
                        let _ = send(&mut socket, [conn.refuse(Reject::Binary, None, None)]).await;
                        break "binary message";
                    }
                    Some(Frame::TooLarge) => {
                        let _ = send(&mut socket, [conn.refuse(Reject::TooLarge, None, None)]).await;
                        break "message too large";
                    }
                    Some(Frame::Text(text)) => {
                        if text.len() > cfg.max_message_bytes {
                            let _ = send(&mut socket, [conn.refuse(Reject::TooLarge, None, None)]).await;
                            break "message too large";
                        }
                        out.extend(conn.handle_text(&text));
                    }
                }
            }
            () = &mut idle_timer => {
                if last_frame.elapsed() >= idle {
                    conn.tracker().metrics().idle_closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    break "idle";
                }
                idle_timer.as_mut().reset(last_frame + idle);
                continue;
            }
            msg = rx.recv() => match msg {
                Some(text) => out.push(text),
                None => break "dropped by the tracker",
            },
        }
        // Whatever else is already queued goes out in the same write.
        while out.len() < MAX_BATCH
            && let Ok(text) = rx.try_recv()
        {
            out.push(text);
        }
        if !out.is_empty() && !send(&mut socket, out.drain(..)).await {
            break "write failed";
        }
    };
    tracing::debug!(conn = conn.id(), reason = why, "tracker connection ended");
    drop(conn);
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.close()).await;
    why
}

/// Queue the messages and flush them, within [`SEND_TIMEOUT`].
async fn send<S: WsSocket>(socket: &mut S, msgs: impl IntoIterator<Item = String>) -> bool {
    let write = async {
        for text in msgs {
            if !socket.send_text(text).await {
                return false;
            }
        }
        socket.flush().await
    };
    tokio::time::timeout(SEND_TIMEOUT, write).await.unwrap_or(false)
}
