//! Upstream adapters, one per wire format, and SSE parsing and re-framing.

pub mod destination;
pub mod h1;
pub mod inline_pool;
pub mod openai_compat;
pub mod sse;
pub mod sse_relay;
pub mod stream_restore;
pub mod wire_format;

use std::cell::Cell;

thread_local! {
    static POOL_INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Makes this thread use the `index`th connection pool of every upstream (one per
/// worker thread, so a pooled connection is always driven by the thread using it).
pub fn set_pool_index(index: usize) {
    POOL_INDEX.with(|i| i.set(index));
}

/// The connection pool this thread uses.
pub fn pool_index() -> usize {
    POOL_INDEX.with(Cell::get)
}
