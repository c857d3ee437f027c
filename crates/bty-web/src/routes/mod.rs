//! HTTP handlers of the JSON API and the open routes, one module per area; what they share
//! with the UI is in [`crate::ops`].

pub mod boot;
pub mod cache;
pub mod catalog;
pub mod events;
pub mod images;
pub mod live;
pub mod machines;
pub mod misc;
pub mod pxe;
pub mod ranges;
