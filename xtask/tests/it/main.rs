//! xtask's integration tests, one binary so `support/` compiles once: the
//! real `xtask` binary against the real Docker engine and a real
//! `docker-registry`; fakes only for cosign and the Akash CLI. The
//! operations files are read by the real linters and validators (`lints`,
//! `manifests`, `workflows`), installed by `.ci/setup`.

mod support;

mod akash;
mod canary;
mod careless;
mod ci_build;
mod cli;
mod deploy;
mod image;
mod lints;
mod manifests;
mod metrics;
mod proof;
mod registry;
mod report;
mod sealed;
mod standin;
mod supply;
mod truth;
mod verify_build;
mod version;
mod workflows;
mod zero_downtime;
