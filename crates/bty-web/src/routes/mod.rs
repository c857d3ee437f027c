//! HTTP handlers, one module per area.

pub mod boot;
pub mod catalog;
pub mod events;
pub mod images;
pub mod live;
pub mod machines;
pub mod misc;
pub mod pxe;
