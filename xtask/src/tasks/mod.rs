//! One module per `cargo xtask <task>`: the clap `Args` and a `run` that
//! wires the layers together. Nothing below `tasks/` imports a task.

pub mod ci_build;
pub mod deploy;
pub mod history;
pub mod release;
pub mod release_args;
pub mod report;
pub mod rollback;
pub mod signing_report;
pub mod status;
pub mod verify_build;
