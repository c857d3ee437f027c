//! Wire types of bty-web's HTTP API, wire-compatible with upstream bty-web 0.47: field names,
//! value spellings and validation rules. Shared by the server and (later) the agent, so both
//! sides agree by construction. No I/O here.

pub mod catalog;
pub mod event;
pub mod mac;
pub mod machine;

pub use mac::{Mac, MacError};
pub use machine::{BootMode, InventoryDisk, Machine, MachineUpsert, ValidationError};
