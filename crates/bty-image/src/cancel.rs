//! Cancellation: a cheap shared flag that the decode, hash, write and verify loops poll between
//! buffers. Setting it makes the flash fail with [`crate::FlashError`] kind `Cancelled`, which
//! wipes the target like any other failure once writing has begun.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
