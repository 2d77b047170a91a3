//! Test support for xtask's integration tests: real tools, real processes.
//!
//! Everything here drives the real `xtask` binary against the real Docker
//! engine and a real registry (Debian's `docker-registry`); the only fakes are
//! the compiled ones from the `test-fakes` crate (cosign, provider-services),
//! put on the CHILD's PATH only.
//!
//! - [`Registry`]: a `docker-registry` on a free loopback port, read back over
//!   raw HTTP (independently of docker) with [`Registry::digest`] and
//!   [`Registry::tags`].
//! - [`Proxy`]: a fault-injecting HTTP proxy in front of a registry
//!   ([`ProxyRule`]: serve another reference, fail a manifest PUT).
//! - [`Project`]: a throwaway git repository holding a copy of this workspace,
//!   and [`Project::xtask`] / [`Xtask`] to run the binary in it with a clean
//!   environment; a [`Run`] keeps what it printed and shows it on failure.
//! - [`DockerGuard`]: removes the images and containers a test created.
//! - [`FakeCosign`]: the fake `cosign` with its own state, keys and PATH dir.
//! - The operations tools ([`require_tool`], [`run_clean`]): zizmor,
//!   yamllint, kubernetes-validate, shellcheck and kubectl, from
//!   `.ci/setup`'s pinned install or PATH; missing under CI is a failure.
//! - [`Pushgateway`]: Debian's `prometheus-pushgateway` on a free loopback
//!   port, scraped back with [`Pushgateway::scrape`].
//! - [`ledger`]: synthetic ledger lines, times chosen by the test.
//! - [`standin`]: images of the stand-in api (`standin-api`), faulty or slow
//!   on request, for the engine, proxy and canary tests.
//! - [`world`]: the real clean builds the build tests share;
//!   [`releases`]: the same commits on stand-in images, for the engine's
//!   tests (deploy, rollback, status, targets), built in seconds.
//! - Small helpers: [`free_port`], [`poll_until`], [`http_get`], [`TempDir`],
//!   [`at_exit`], [`path_without`], [`bin_dir`].
//!
//! Nothing waits with a fixed sleep: [`poll_until`] polls with a deadline.
//!
//! Use it from a test file with `mod support;` and `use support::*;`.

#![allow(dead_code, unused_imports)] // each test binary uses its own subset

mod docker;
mod fakes;
mod http;
pub mod ledger;
mod process;
mod project;
mod proxy;
mod pushgateway;
mod registry;
pub mod releases;
pub mod standin;
mod tools;
pub mod world;

pub use docker::{
    DockerGuard, docker, docker_build_from, docker_build_labelled, docker_build_relabelled,
    docker_build_swapped, docker_build_tiny, docker_ok, extract_api, layer_diff_ids, sha256sum,
};
pub use fakes::{FakeCosign, KEY_PASSWORD, fake_bin};
pub use http::{HttpResponse, http_get, http_request};
pub use process::{TempDir, at_exit, bin_dir, free_port, path_without, poll_until, tools_only};
pub use project::{Project, Run, Xtask, shared_target_dir, workspace_root};
pub use proxy::{Proxy, ProxyRule};
pub use pushgateway::Pushgateway;
pub use registry::{MANIFEST_ACCEPT, Registry};
pub use tools::{ci_tools_bin, find_tool, in_ci, printed, require_tool, run_captured, run_clean};
