//! HTTP handlers, one module per area.

pub mod catalog;
pub mod events;
pub mod machines;
pub mod misc;
pub mod ui;
