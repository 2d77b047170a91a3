//! xtask's integration tests, one binary so `support/` compiles once: the
//! real `xtask` binary against the real Docker engine and a real
//! `docker-registry`; fakes only for cosign and the Akash CLI.

mod support;

mod ci_build;
mod deploy;
mod manifests;
mod registry;
mod verify_build;
mod workflows;
