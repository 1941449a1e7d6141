//! `/admin/dead-letters`: events durable consumers gave up on, listed and replayed. Admin
//! sessions only; the rules live in [`crate::events::consumers::dead_letters`].

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::Result;
use crate::events::consumers::dead_letters::{DeadLetter, DeadLetterParams, Replay};
use crate::pagination::Page;
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_dead_letters)).routes(routes!(replay_dead_letter))
}

/// List dead letters, newest failure first, by consumer and status (admin session).
#[utoipa::path(get, path = "/admin/dead-letters", tag = "events", security(("bearer" = [])), params(DeadLetterParams),
    responses((status = 200, body = Page<DeadLetter>), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, description = "bad `consumer`, `status`, `limit` or `cursor`", body = Problem)))]
async fn list_dead_letters(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<DeadLetterParams>,
) -> Result<Json<Page<DeadLetter>>> {
    Ok(Json(state.consumers.list_dead_letters(&principal, &q).await?))
}

/// Replay a dead letter: its consumer's handler runs on the event again, now, once. 200
/// with `outcome` `handled` (marked replayed) or `failed` (error and attempts updated).
/// 409 `dead-letter-replayed` if a replay handled it already, 409 `consumer-unavailable`
/// if this replica does not run its consumer.
#[utoipa::path(post, path = "/admin/dead-letters/{id}/replay", tag = "events", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the dead letter")),
    responses((status = 200, body = Replay), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn replay_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Replay>> {
    Ok(Json(state.consumers.replay_dead_letter(&principal, id).await?))
}
