//! Shared pieces of the test fakes for `cosign` and `provider-services`.
//!
//! These are FAKES for xtask's tests, not the real tools: they check the
//! argument shapes of the real CLIs (each binary cites its sources at the top)
//! and keep their state in a directory named by an environment variable.

pub mod cli;
pub mod cosign_oci;
pub mod go_regexp;
pub mod image_ref;
pub mod keys;
pub mod registry;
pub mod sdl;
pub mod state;
