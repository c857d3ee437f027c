//! `GET /events` (upstream's filters, plus `q` free text; newest first, `before_id` paging)
//! and `POST /events/{id}/ack`.

use axum::Json;
use axum::extract::{Path, Query, State};
use bty_proto::event::EventsPage;

use crate::db::events::{self, Filter};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn list(
    State(s): State<AppState>,
    Query(f): Query<Filter>,
) -> Result<Json<EventsPage>, ApiError> {
    let events = s.db.read(move |c| events::query(c, &f)).await?;
    Ok(Json(EventsPage { events }))
}

pub async fn ack(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !s.db.write(move |c| events::ack(c, id)).await? {
        return Err(ApiError::not_found(format!("no event {id}")));
    }
    Ok(Json(serde_json::json!({ "id": id, "acknowledged": true })))
}
