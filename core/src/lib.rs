//! traptor's domain, in plain Rust with no actors and no I/O:
//!
//! - [`rules`]: the original's Redis rule hashes, validated and normalized;
//! - [`plan`]: which connections (slot, API key) carry which rules, within the API's limits;
//! - [`filter`]: the filter form one connection sends;
//! - [`protocol`]: frames of the streaming body and the kinds of message they carry;
//! - [`matching`]: which rules a tweet matched, as the streaming API selects;
//! - [`enrich`]: the output document with its `traptor` object spliced in;
//! - [`oauth`]: OAuth 1.0a signing, shared by the client and the emulator.

pub mod enrich;
pub mod filter;
pub mod matching;
pub mod oauth;
pub mod plan;
pub mod protocol;
pub mod record;
pub mod rules;
pub mod timestamps;

pub use record::{MessageKind, Record};
pub use rules::{
    BoundingBox, FilterTerm, OrigType, Rule, RuleData, RuleError, RuleSet, SlotId, StreamType,
};
