//! The HTTP control API of the `wps-fault-proxy` command (JSON bodies, loopback only):
//!
//! | request | effect |
//! |---|---|
//! | `GET /faults` | the [`FaultSet`] in force |
//! | `PUT /faults` | replaces it (fields left out are cleared) |
//! | `POST /faults/{upstream,downstream,both}` | replaces the [`Faults`] of that direction |
//! | `DELETE /faults` | clears every fault |
//! | `POST /refuse`, `DELETE /refuse` | new connections are reset at once, or accepted again |
//! | `POST /reset`, `POST /close` | resets (RST) or closes (FIN) every live connection; answers `{"connections": N}` |
//! | `GET /stats` | the counters ([`crate::Stats`]) |
//!
//! A body that is not a valid fault description gets `400` with `{"error": "..."}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::{Direction, FaultProxy, FaultSet, Faults};

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// The control API's routes for `proxy`.
pub fn router(proxy: Arc<FaultProxy>) -> Router {
    Router::new()
        .route(
            "/faults",
            get(|State(p): State<Arc<FaultProxy>>| async move { Json(p.faults()) })
                .put(|State(p): State<Arc<FaultProxy>>, body: String| async move {
                    match serde_json::from_str::<FaultSet>(&body) {
                        Ok(set) => match set.upstream.validate().and(set.downstream.validate()) {
                            Ok(()) => {
                                p.set_all(set);
                                Json(p.faults()).into_response()
                            }
                            Err(e) => bad_request(e),
                        },
                        Err(e) => bad_request(e.to_string()),
                    }
                })
                .delete(|State(p): State<Arc<FaultProxy>>| async move {
                    p.clear();
                    Json(p.faults())
                }),
        )
        .route(
            "/faults/{direction}",
            post(
                |State(p): State<Arc<FaultProxy>>,
                 Path(direction): Path<String>,
                 body: String| async move {
                    let direction = match direction.as_str() {
                        "upstream" => Direction::Upstream,
                        "downstream" => Direction::Downstream,
                        "both" => Direction::Both,
                        other => return bad_request(format!("unknown direction {other:?}")),
                    };
                    match serde_json::from_str::<Faults>(&body) {
                        Ok(f) => match f.validate() {
                            Ok(()) => {
                                p.set(direction, f);
                                Json(p.faults()).into_response()
                            }
                            Err(e) => bad_request(e),
                        },
                        Err(e) => bad_request(e.to_string()),
                    }
                },
            ),
        )
        .route(
            "/refuse",
            post(|State(p): State<Arc<FaultProxy>>| async move {
                p.set_refuse(true);
                Json(p.faults())
            })
            .delete(|State(p): State<Arc<FaultProxy>>| async move {
                p.set_refuse(false);
                Json(p.faults())
            }),
        )
        .route(
            "/reset",
            post(|State(p): State<Arc<FaultProxy>>| async move {
                Json(serde_json::json!({ "connections": p.reset_all() }))
            }),
        )
        .route(
            "/close",
            post(|State(p): State<Arc<FaultProxy>>| async move {
                Json(serde_json::json!({ "connections": p.close_all() }))
            }),
        )
        .route(
            "/stats",
            get(|State(p): State<Arc<FaultProxy>>| async move { Json(p.stats()) }),
        )
        .with_state(proxy)
}
