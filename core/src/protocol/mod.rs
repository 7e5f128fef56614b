//! The streaming API's wire protocol, without I/O: [`frame`] cuts the response body into
//! messages (newline- or length-delimited), [`classify`](mod@classify) tells what each message is and pulls out
//! the few fields a stream needs from control messages (disconnect codes, limit counts, warnings).

pub mod classify;
pub mod frame;

pub use classify::{classify, kind_from_top_level_keys, Classified, ControlDetail};
pub use frame::{FrameDecoder, FrameError, FrameStats, Item, ItemRef, DEFAULT_MAX_FRAME_BYTES};
