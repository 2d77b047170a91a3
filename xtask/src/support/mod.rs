//! What every task leans on: commands as values, records, timed steps,
//! Ctrl-C, the project's paths and settings, plain HTTP, the docker CLI.

pub mod base64;
pub mod cmd;
pub mod docker;
pub mod http;
pub mod interrupt;
pub mod output;
pub mod project;
pub mod step;
