//! A file out of an image, without running it: `docker create` the image
//! by digest, `docker cp` the file out, `docker rm` the container (also
//! when the copy fails).

use std::path::Path;

use anyhow::{Context, bail};

use crate::support::docker::docker;

/// Copy `/api` from `image` (pulled by `docker create` when not local;
/// pass it by digest, `repo@sha256:…`) to `dest`.
pub fn api_binary(image: &str, dest: &Path) -> anyhow::Result<()> {
    let id = docker()
        .args(["create", image])
        .read()
        .with_context(|| format!("creating a container of {image} to copy /api out"))?;
    let id = id.lines().last().unwrap_or_default().trim().to_owned();
    if id.is_empty() {
        bail!("`docker create {image}` printed no container id");
    }
    let copied = docker()
        .args(["cp", &format!("{id}:/api"), &dest.display().to_string()])
        .read()
        .with_context(|| format!("copying /api out of {image}"));
    let removed = docker().args(["rm", &id]).read();
    copied?;
    removed.with_context(|| format!("removing the container {id} made to copy /api"))?;
    Ok(())
}
