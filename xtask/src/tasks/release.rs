//! `cargo xtask release vX.Y.Z [--sha SHA]`: name a version. The image built
//! from the tagged commit of main is tagged `X.Y.Z` by digest (never
//! rebuilt), and the artifacts and notes a GitHub release attaches are
//! written under target/xtask/release/X.Y.Z/.

use crate::model::sha::GitSha;
use crate::model::version::Version;
use crate::promote::{self, Request};
use crate::support::output;
use crate::support::project::{Project, RepositoryArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The version's git tag, `vMAJOR.MINOR.PATCH` (annotated, on a commit of main); never `latest` or `v1.2`
    #[arg(value_name = "vX.Y.Z")]
    pub version: Version,
    /// The commit the tag must name (a check from a shell; CI releases the pushed tag's commit)
    #[arg(long, value_name = "SHA")]
    pub sha: Option<GitSha>,
    #[command(flatten)]
    pub repos: RepositoryArgs,
    /// Print the record as one JSON line on stdout
    #[arg(long)]
    pub json: bool,
    /// Run the checks, print the promotion, push and write nothing
    #[arg(long, conflicts_with = "publish")]
    pub dry_run: bool,
    /// Then create the GitHub release with `gh` (the notes, the artifacts attached); kept if it exists
    #[arg(long)]
    pub publish: bool,
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let repos = args.repos.resolve(project)?;
    let record = promote::release(&Request {
        project,
        version: args.version,
        expect_sha: args.sha,
        canonical: repos.canonical,
        dry_run: args.dry_run,
        publish: args.publish,
    })?;
    if let Some(dir) = &record.artifacts_dir {
        let dir = dir.display().to_string();
        let notes = record
            .notes
            .as_ref()
            .map(|n| n.display().to_string())
            .unwrap_or_default();
        let prerelease = record.prerelease.to_string();
        output::github(
            &[
                ("tag", &record.tag),
                ("dir", &dir),
                ("notes", &notes),
                ("prerelease", &prerelease),
            ],
            &format!(
                "### {}\n\n`{}` ({:?})",
                record.tag, record.image_ref, record.promotion
            ),
        )?;
    }
    if args.json {
        output::print_line(&record)?;
    }
    Ok(())
}
