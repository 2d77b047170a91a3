//! The files a release attaches, under `<state dir>/release/X.Y.Z/`: the
//! api binary out of the image, its SBOM, `SHA256SUMS` and `SHA512SUMS`
//! (written by coreutils themselves, so `sha256sum -c` reads them back).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::build::BuildRecord;
use crate::model::image::ImageRef;
use crate::model::version::Version;
use crate::registry::extract;
use crate::supply::digest;
use crate::supply::sign::Signer;
use crate::support::cmd::Cmd;
use crate::support::project::Project;
use crate::verify::cosign;

/// The checksum files, and the coreutils tool that writes and checks each.
pub const SUMS: [(&str, &str); 2] = [("SHA256SUMS", "sha256sum"), ("SHA512SUMS", "sha512sum")];

pub struct Artifacts {
    pub dir: PathBuf,
    /// The attached files (binary, SBOM), in the order the sums list them.
    pub files: Vec<String>,
    /// Where the SBOM came from (said to the user and recorded).
    pub sbom_source: String,
}

pub fn binary_name(version: &Version) -> String {
    format!("api-{}-x86_64-linux", version.number())
}

pub fn sbom_name(version: &Version) -> String {
    format!("api-{}.spdx.json", version.number())
}

/// Extract, SBOM, checksums, the checksums signed: every file is written
/// again on each run (the same image gives the same bytes).
pub fn write(
    project: &Project,
    image: &ImageRef,
    version: &Version,
    attested_sbom: Option<&serde_json::Value>,
) -> anyhow::Result<Artifacts> {
    let dir = project.state_dir().join("release").join(version.number());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let binary = binary_name(version);
    extract::api_binary(&image.by_digest(), &dir.join(&binary))?;
    let sbom = sbom_name(version);
    let sbom_source = sbom_into(project, image, attested_sbom, &dir.join(&sbom))?;
    let mut files = vec![binary];
    if sbom_source.is_some() {
        files.push(sbom);
    }
    for (sums, tool) in SUMS {
        let out = Cmd::new(tool)
            .arg("--")
            .args(files.iter().cloned())
            .dir(&dir)
            .read()?;
        std::fs::write(dir.join(sums), format!("{out}\n"))
            .with_context(|| format!("writing {}", dir.join(sums).display()))?;
    }
    Ok(Artifacts {
        dir,
        files,
        sbom_source: sbom_source
            .unwrap_or_else(|| "none: no attested SBOM and no ci-build record of it".to_owned()),
    })
}

/// The SBOM a release ships is the ATTESTED one, read back from the
/// registry through `cosign verify-attestation` (issue 24): ci-build's own
/// file when it is byte for byte that document (its recorded sha256 still
/// holds), else the attested document itself. Without an attestation
/// (soft policy), ci-build's recorded file of this digest, said so; never a
/// fresh syft run, which would describe the image as syft sees it today,
/// not what was attested. `None`: no SBOM to ship.
fn sbom_into(
    project: &Project,
    image: &ImageRef,
    attested: Option<&serde_json::Value>,
    dest: &Path,
) -> anyhow::Result<Option<String>> {
    let record = project.state_dir().join("metadata.json");
    let built = built_sbom(&project.root, &record, image);
    let same_document = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| Some(&v) == attested)
    };
    let source = match (attested, built) {
        (Some(_), Ok(path)) if same_document(&path) => {
            copy(&path, dest)?;
            format!(
                "attested (verified by cosign; ci-build's file {}, the same document)",
                path.display()
            )
        }
        (Some(doc), _) => {
            std::fs::write(dest, serde_json::to_string(doc)?)
                .with_context(|| format!("writing {}", dest.display()))?;
            format!("attested (verified by cosign on {})", image.by_digest())
        }
        (None, Ok(path)) => {
            eprintln!(
                "warning: SBOM: no verified SBOM attestation on {}: shipping ci-build's recorded file (not attested)",
                image.by_digest()
            );
            copy(&path, dest)?;
            format!("ci-build ({}, not attested)", path.display())
        }
        (None, Err(why)) => {
            eprintln!(
                "warning: SBOM: no verified SBOM attestation on {} and no ci-build record to take it from ({why}): no SBOM attached (a fresh syft run would not be the attested one)",
                image.by_digest()
            );
            let _ = std::fs::remove_file(dest);
            return Ok(None);
        }
    };
    eprintln!("SBOM: {source}");
    Ok(Some(source))
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// `cosign sign-blob` of SHA256SUMS (issue 24), so a downloader checks
/// authenticity, not only integrity: with `COSIGN_KEY` (then the files
/// `SHA256SUMS.sig`), or keyless in CI (then also the Fulcio certificate
/// `SHA256SUMS.pem`); verified right away with `cosign verify-blob` when a
/// verification key or identity is configured. `Ok(Err(reason))` when it
/// cannot be signed (soft); the files written otherwise.
pub fn sign_sums(dir: &Path) -> anyhow::Result<Result<Vec<String>, String>> {
    let signer = match crate::supply::sign::signer()? {
        Ok(s) => s,
        Err(reason) => return Ok(Err(reason)),
    };
    let sums = dir.join("SHA256SUMS");
    let sig = dir.join("SHA256SUMS.sig");
    let pem = dir.join("SHA256SUMS.pem");
    // The one child that may read COSIGN_KEY and COSIGN_PASSWORD.
    let mut cmd = Cmd::new("cosign").args(["sign-blob", "--yes"]).signing();
    let mut files = vec!["SHA256SUMS.sig".to_owned()];
    match &signer {
        Signer::Key(key) => cmd = cmd.args(["--key", key, "--tlog-upload=false"]),
        Signer::Keyless => {
            cmd = cmd.args(["--output-certificate", &pem.display().to_string()]);
            files.push("SHA256SUMS.pem".to_owned());
        }
    }
    let out = cmd
        .args(["--output-signature", &sig.display().to_string()])
        .arg(sums.display().to_string())
        .output()?;
    if !out.status.success() {
        return Ok(Err(format!(
            "cosign sign-blob failed: {}",
            out.last_words()
        )));
    }
    if let Some(policy) = cosign::policy()? {
        let mut verify = Cmd::new("cosign")
            .arg("verify-blob")
            .args(policy.blob_args())
            .args(["--signature", &sig.display().to_string()]);
        if matches!(signer, Signer::Keyless) {
            verify = verify.args(["--certificate", &pem.display().to_string()]);
        }
        let out = verify.arg(sums.display().to_string()).output()?;
        if !out.status.success() {
            return Ok(Err(format!(
                "SHA256SUMS was signed, but cosign verify-blob refused it: {}",
                out.last_words()
            )));
        }
    }
    Ok(Ok(files))
}

/// The SBOM file ci-build recorded for exactly this SHA and digest, checked
/// against the sha256 it recorded. `Err` says why it cannot be reused.
fn built_sbom(root: &Path, record: &Path, image: &ImageRef) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(record)
        .with_context(|| format!("no ci-build record at {}", record.display()))?;
    let build: BuildRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a ci-build record", record.display()))?;
    if build.image_sha != image.sha || build.image_digest != image.digest {
        bail!(
            "{} records {} {}, not this release's image",
            record.display(),
            build.image_sha,
            build.image_digest
        );
    }
    let (Some(path), Some(sha256)) = (build.supply.sbom_path, build.supply.sbom_sha256) else {
        bail!("{} records no SBOM", record.display());
    };
    let path = root.join(path);
    let actual = digest::sha256_files(&[&path])?;
    if actual.first() != Some(&sha256) {
        bail!(
            "{} changed since ci-build recorded its sha256",
            path.display()
        );
    }
    Ok(path)
}
