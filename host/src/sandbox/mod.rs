//! What a plugin may do: limits on time, memory and state, and a WASI context that grants
//! no authority (no files, sockets, environment, arguments or real clocks).

mod limiter;
mod limits;
mod wasi;

pub use limiter::Limiter;
pub use limits::{ByteSize, Limits, parse_size};
pub use wasi::{GuestOutput, no_authority_wasi};
