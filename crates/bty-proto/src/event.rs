//! Audit-log events as `GET /events` returns them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub ts: String,
    pub kind: String,
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    pub actor: Option<String>,
    pub source_ip: Option<String>,
    pub summary: String,
    pub details: Option<serde_json::Value>,
    pub acknowledged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    pub events: Vec<Event>,
}
