//! Wire types of bty-web's HTTP API, wire-compatible with upstream bty-web 0.47 and 0.77: field names,
//! value spellings and validation rules. Shared by the server and (later) the agent, so both
//! sides agree by construction. No I/O here.

pub mod arch;
pub mod catalog;
pub mod event;
pub mod mac;
pub mod machine;
pub mod plan;

pub use mac::{Mac, MacError};
pub use machine::{
    BootMode, FlashFailed, FlashProgress, InventoryDisk, InventoryPost, Machine, MachineUpsert,
    PxeStatus, TerminalStatus, ValidationError,
};
