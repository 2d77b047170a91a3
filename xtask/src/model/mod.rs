//! The values that carry the rules, parsed once at the edge. No I/O here:
//! once a value of these types exists it is valid, and nothing re-checks strings.

pub mod digest;
pub mod environment;
pub mod image;
mod parsed;
pub mod repository;
pub mod sha;
pub mod strategy;
pub mod version;
