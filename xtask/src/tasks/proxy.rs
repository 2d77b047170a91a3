//! `cargo xtask proxy build`: the docker target's reverse proxy image, made
//! here from the HAProxy binary `.ci/setup` installs (Debian's `haproxy`),
//! for machines that cannot pull the official image. Its reference
//! (`xtask-proxy:haproxy-<binary sha256>@sha256:<image id>`) is the last
//! line of stdout: give it to `XTASK_PROXY_IMAGE` or to
//! `deploy/release.json`'s `proxy.image`.

use crate::support::output;
use crate::support::project::Project;
use crate::targets::docker::proxy_image;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Build a FROM scratch image of this machine's HAProxy binary and its libraries; print its pinned reference last
    Build,
}

pub fn run(action: Action, project: &Project) -> anyhow::Result<()> {
    match action {
        Action::Build => {
            let image = proxy_image::build(&project.state_dir())?;
            eprintln!(
                "the digest is the local image ID (no registry holds this image): use it as {}={image} or as proxy.image in deploy/release.json",
                proxy_image::ENV_VAR
            );
            output::print_text(image)
        }
    }
}
