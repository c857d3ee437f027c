//! Operations on bty-web's state that both faces — the JSON API (`routes/`) and the HTML UI
//! (`ui/`) — call, so neither depends on the other's handlers. SQL stays in `db/`.

pub mod boot;
pub mod catalog;
pub mod machines;
