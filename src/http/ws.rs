//! WebSocket: `GET /api/v1/ws`, topic subscriptions over one connection. A thin adapter
//! over [`crate::realtime::Subscriptions`]: the topics, their authorization (the same as
//! REST), replay and delivery are the service's; this file speaks the protocol.
//!
//! Protocol (JSON text frames, docs/notes/realtime.md):
//! - authenticate with the upgrade request's `Authorization`/`X-Api-Key` (a refused
//!   credential is a 401 problem before the upgrade), or, without one, with a first message
//!   `{"type":"auth","token":"…"}` within [`AUTH_WITHIN`] (else close 1008);
//! - client: `{"type":"subscribe","topic":"order:<id>"|"feed","last_event_id":<seq>?,
//!   "types":[…]?}`, `{"type":"unsubscribe","topic":…}`;
//! - server: `{"type":"subscribed","topic"}`, `{"type":"unsubscribed","topic"}`,
//!   `{"type":"event","topic","event":<envelope>}`, `{"type":"error","code","detail",
//!   "topic"?}` with `code` from the error's kind ([`code_of`]).
//!
//! Pings every `realtime.keepalive_secs` (pings are answered by the protocol layer); a peer
//! silent for three intervals, or that does not take a frame within two, is dropped. Close
//! codes (RFC 6455 §7.4.1): 1000 normal, 1001 server draining, 1003 binary frame, 1008
//! failed authentication, 1009 message over [`MAX_MESSAGE_BYTES`], 1011 internal error,
//! 1013 (try again later) when the client lagged more than `events.hub_capacity` events
//! behind: reconnect and resubscribe with `last_event_id`.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::auth::Principal;
use crate::error::{Error, ErrorKind};
use crate::events::bus::Envelope;
use crate::realtime::{Next, Topic, drained};
use crate::services::AppState;

/// How long an unauthenticated connection may take to send its `auth` message.
pub const AUTH_WITHIN: Duration = Duration::from_secs(5);
/// The largest client message read; larger ones close the connection with 1009.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Close code for a client that fell too far behind (RFC 6455 §7.4.1 "try again later").
pub const LAGGED: u16 = close_code::AGAIN;

/// Not in the OpenAPI document: OpenAPI cannot describe a WebSocket protocol (see the
/// module docs and docs/notes/realtime.md).
pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().route("/ws", axum::routing::get(upgrade))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Auth {
        token: String,
    },
    Subscribe {
        topic: String,
        last_event_id: Option<i64>,
        #[serde(default)]
        types: Vec<String>,
    },
    Unsubscribe {
        topic: String,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    Subscribed {
        topic: &'a str,
    },
    Unsubscribed {
        topic: &'a str,
    },
    Event {
        topic: &'a str,
        event: &'a Envelope,
    },
    Error {
        code: &'static str,
        detail: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<&'a str>,
    },
}

impl ServerMessage<'_> {
    fn frame(&self) -> Message {
        // Serializing these owned strings and already-valid JSON cannot fail.
        Message::Text(serde_json::to_string(self).unwrap_or_default().into())
    }
}

/// The WebSocket error code of an error kind: the same classes REST maps to statuses.
pub fn code_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::Malformed | ErrorKind::UnsupportedMediaType => "bad_request",
        ErrorKind::TooLarge => "too_large",
        ErrorKind::Unauthenticated => "unauthorized",
        ErrorKind::PermissionDenied => "forbidden",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::PreconditionFailed | ErrorKind::PreconditionRequired => "precondition_failed",
        ErrorKind::PaymentRequired => "payment_required",
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Internal => "internal_error",
    }
}

fn error_message<'a>(e: &Error, topic: Option<&'a str>) -> ServerMessage<'a> {
    e.log_if_internal();
    ServerMessage::Error { code: code_of(e.kind()), detail: e.to_string(), topic }
}

/// Upgrades to a WebSocket session. Refused credentials in the request are a 401 problem
/// (the `Principal` extractor); none at all means the first message must authenticate.
async fn upgrade(State(state): State<AppState>, principal: Principal, ws: WebSocketUpgrade) -> Response {
    // Our own limit (1009) applies first; the protocol layer's is a backstop. Small buffers:
    // tungstenite allocates a 128 KiB read buffer per connection by default, and 10,000
    // idle sessions must fit in DESIGN.md's memory budget. Frames go out at once (each
    // send flushes anyway), and at most 1 MiB may queue for a peer that does not read.
    ws.max_message_size(MAX_MESSAGE_BYTES * 4)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .on_upgrade(move |socket| session(state, principal, socket))
}

/// Why a session ends: a close frame to send, or a dead peer to drop.
enum End {
    Close(u16, &'static str),
    Drop,
}

async fn session(state: AppState, principal: Principal, mut socket: WebSocket) {
    let keepalive = Duration::from_secs(state.config.realtime.keepalive_secs.max(1));
    let mut drain = state.drain_signal();
    let principal = match principal.actor {
        Some(_) => principal,
        None => match tokio::time::timeout(AUTH_WITHIN, first_message_auth(&state, principal, &mut socket)).await {
            Ok(Ok(p)) => p,
            Ok(Err(end)) => return finish(socket, end).await,
            Err(_) => return finish(socket, End::Close(close_code::POLICY, "authentication timed out")).await,
        },
    };
    let end = serve(&state, &principal, &mut socket, &mut drain, keepalive).await;
    finish(socket, end).await;
}

/// Waits for `{"type":"auth","token":…}` and resolves it as REST resolves a bearer token or
/// API key; anything else, or a refused token, is a 1008.
async fn first_message_auth(state: &AppState, anonymous: Principal, socket: &mut WebSocket) -> Result<Principal, End> {
    loop {
        let text = match socket.recv().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Err(End::Drop),
            Some(Ok(Message::Binary(_))) => return Err(End::Close(close_code::POLICY, "authenticate first")),
        };
        let Ok(ClientMessage::Auth { token }) = serde_json::from_str(text.as_str()) else {
            return Err(End::Close(close_code::POLICY, "authenticate first: {\"type\":\"auth\",\"token\":…}"));
        };
        return match state.auth.authenticate(&token).await {
            Ok(actor) => {
                let mut p = Principal::actor(actor);
                p.client_ip = anonymous.client_ip;
                Ok(if state.limits.enabled() { p.limited_by(state.limits.clone()) } else { p })
            }
            Err(e) => {
                e.log_if_internal();
                Err(End::Close(close_code::POLICY, "authentication failed"))
            }
        };
    }
}

/// The session loop: client messages, events, pings, the drain.
async fn serve(
    state: &AppState,
    principal: &Principal,
    socket: &mut WebSocket,
    drain: &mut watch::Receiver<bool>,
    keepalive: Duration,
) -> End {
    let mut subs = state.realtime.subscriptions();
    let mut ping = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let deadline = keepalive * 2;
    loop {
        let out = tokio::select! {
            biased;
            () = drained(drain) => return End::Close(close_code::AWAY, "server shutting down"),
            msg = socket.recv() => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) if text.len() > MAX_MESSAGE_BYTES => {
                        return End::Close(close_code::SIZE, "message too big");
                    }
                    Some(Ok(Message::Text(text))) => handle(principal, &mut subs, text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => return End::Close(close_code::UNSUPPORTED, "text frames only"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) => return End::Drop,
                    Some(Err(_)) | None => return End::Drop,
                }
            }
            next = subs.next(), if !subs.is_empty() => match next {
                Ok(Next::Event(d)) => {
                    let name = d.topic.name();
                    ServerMessage::Event { topic: &name, event: &d.event }.frame()
                }
                Ok(Next::Lagged) => {
                    tracing::info!(transport = "ws", "a live client fell behind the hub; closing it");
                    return End::Close(LAGGED, "lagged: reconnect and resubscribe with last_event_id");
                }
                Ok(Next::Closed) => return End::Close(close_code::AWAY, "server shutting down"),
                Err(e) => {
                    e.log_if_internal();
                    return End::Close(close_code::ERROR, "internal error");
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > keepalive * 3 {
                    return End::Drop;
                }
                Message::Ping(axum::body::Bytes::new())
            }
        };
        match tokio::time::timeout(deadline, socket.send(out)).await {
            Ok(Ok(())) => {}
            // A peer that cannot take a frame in time is dropped, not waited for.
            Ok(Err(_)) | Err(_) => return End::Drop,
        }
    }
}

/// One client text message → the answer frame.
async fn handle(principal: &Principal, subs: &mut crate::realtime::Subscriptions, text: &str) -> Message {
    let msg = match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => m,
        Err(e) => {
            let detail = format!("not a client message (auth, subscribe, unsubscribe): {e}");
            return ServerMessage::Error { code: "bad_request", detail, topic: None }.frame();
        }
    };
    match msg {
        ClientMessage::Auth { .. } => {
            let detail = "already authenticated".to_owned();
            ServerMessage::Error { code: "bad_request", detail, topic: None }.frame()
        }
        ClientMessage::Subscribe { topic: name, last_event_id, types } => {
            let added = match Topic::parse(&name, "topic").and_then(|t| t.with_types(&types, "types")) {
                Ok(topic) => subs.add(principal, topic, last_event_id).await,
                Err(e) => Err(e),
            };
            match added {
                Ok(()) => ServerMessage::Subscribed { topic: &name }.frame(),
                Err(e) => error_message(&e, Some(name.as_str())).frame(),
            }
        }
        ClientMessage::Unsubscribe { topic } => {
            if subs.remove(&topic) {
                ServerMessage::Unsubscribed { topic: &topic }.frame()
            } else {
                error_message(&Error::NotFound("subscription"), Some(topic.as_str())).frame()
            }
        }
    }
}

/// Sends the close frame (if any) and waits briefly for the peer's, so the close is clean.
async fn finish(mut socket: WebSocket, end: End) {
    let End::Close(code, reason) = end else { return };
    let frame = CloseFrame { code, reason: reason.into() };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ =
        tokio::time::timeout(Duration::from_secs(1), async { while let Some(Ok(_)) = socket.recv().await {} }).await;
}
