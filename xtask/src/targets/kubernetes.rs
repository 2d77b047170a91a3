//! A Kubernetes cluster through `kubectl`, from the kustomize overlays in
//! `deploy/k8s/overlays/<env>`. Each release freezes the fully rendered
//! manifest (`kubectl kustomize`, image pinned by digest); a rollback
//! applies the earlier release's manifest again.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{Applied, Running, Target, TargetKind};
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::support::cmd::Cmd;
use crate::support::project::{EnvironmentConfig, Project};

pub struct Kubernetes {
    overlay: PathBuf,
    namespace: String,
    url: Option<String>,
}

impl Kubernetes {
    pub fn new(env: Environment, settings: &EnvironmentConfig, project: &Project) -> Kubernetes {
        let overlay = settings
            .overlay
            .clone()
            .unwrap_or_else(|| format!("deploy/k8s/overlays/{env}"));
        Kubernetes {
            overlay: project.root.join(overlay),
            namespace: settings
                .namespace
                .clone()
                .unwrap_or_else(|| format!("api-{env}")),
            url: settings.url.clone(),
        }
    }

    fn url(&self) -> anyhow::Result<String> {
        self.url.clone().context(
            "the kubernetes target needs the URL that reaches the api Service: set `url` for this environment in deploy/release.json",
        )
    }

    fn kubectl() -> Cmd {
        Cmd::new("kubectl")
    }

    fn rollout_cmd(&self) -> Cmd {
        Self::kubectl().args([
            "rollout",
            "status",
            "deployment/api",
            "--namespace",
            &self.namespace,
            "--timeout",
            "300s",
        ])
    }
}

/// A kustomization over `overlay` (a path relative to the kustomization:
/// kustomize refuses absolute roots) that pins the `api` image as
/// `repo:<sha>@sha256:…`. The tag is quoted: an all-digit SHA is a YAML number.
pub fn kustomization(overlay: &Path, image: &ImageRef) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\nimages:\n  - name: api\n    newName: {}\n    newTag: \"{}\"\n    digest: {}\n",
        overlay.display(),
        image.repository,
        image.sha,
        image.digest,
    )
}

/// `to` as seen from `from` (both absolute): `../../deploy/k8s/overlays/staging`.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for c in &to[common..] {
        path.push(c);
    }
    path
}

impl Target for Kubernetes {
    /// Refused rather than approximated (docs/decisions.md): a second
    /// Deployment weighted by replicas gives 1-in-N steps, not percentages.
    fn split(&self) -> anyhow::Result<&dyn super::Split> {
        anyhow::bail!(
            "kubernetes cannot run a canary here: xtask does not split a Service's traffic by weight (replica ratios are not percentages); deploy with --strategy bluegreen (a RollingUpdate), or use Argo Rollouts or Flagger in the cluster"
        )
    }

    fn kind(&self) -> TargetKind {
        TargetKind::Kubernetes
    }

    fn preflight(&self) -> anyhow::Result<()> {
        self.url()?;
        if !self.overlay.join("kustomization.yaml").exists() {
            bail!("no kustomize overlay at {}", self.overlay.display());
        }
        Ok(())
    }

    fn render(&self, image: &ImageRef, _release_id: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        let overlay = self
            .overlay
            .canonicalize()
            .with_context(|| format!("{}", self.overlay.display()))?;
        let kustomize_dir = dir.join("kustomize");
        std::fs::create_dir_all(&kustomize_dir)?;
        let kustomize_dir = kustomize_dir.canonicalize()?;
        let overlay = relative(&kustomize_dir, &overlay);
        std::fs::write(
            kustomize_dir.join("kustomization.yaml"),
            kustomization(&overlay, image),
        )?;
        let manifest = Self::kubectl()
            .arg("kustomize")
            .arg(kustomize_dir.display().to_string())
            .read()?;
        if !manifest.contains(&image.pinned()) {
            bail!(
                "the rendered manifest does not pin {}: check the overlay's image name is `api`",
                image.digest
            );
        }
        let path = dir.join("manifest.yaml");
        std::fs::write(&path, manifest)?;
        Ok(path)
    }

    fn image_in(&self, config: &Path) -> anyhow::Result<ImageRef> {
        super::single_image_in(config)
    }

    fn plan(&self, config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            Self::kubectl()
                .args(["apply", "--filename"])
                .arg(config.display().to_string())
                .to_string(),
            self.rollout_cmd().to_string(),
        ])
    }

    fn apply(&self, config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Applied> {
        Self::kubectl()
            .args(["apply", "--filename"])
            .arg(config.display().to_string())
            .run()?;
        self.rollout_cmd().run()?;
        Ok(Applied {
            url: self.url()?,
            deployment_ref: format!("deployment/api in {}", self.namespace),
        })
    }

    fn commit(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn restore_kept(&self) -> anyhow::Result<Option<Applied>> {
        Ok(None)
    }

    /// No `api` Deployment in the namespace: nothing deployed (kubectl says
    /// `Error from server (NotFound)`). Any other failure: not asked.
    fn status(&self) -> anyhow::Result<Running> {
        let get = Self::kubectl()
            .args(["get", "deployment", "api", "--namespace", &self.namespace])
            .args([
                "--output",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ]);
        let out = get.output()?;
        if !out.status.success() {
            if out.stderr.contains("(NotFound)") {
                return Ok(Running::default());
            }
            anyhow::bail!("`{get}` failed: {}", out.last_words());
        }
        let image = out.stdout.trim().to_owned();
        let pinned = image.parse::<ImageRef>().ok();
        Ok(Running {
            image_sha: pinned.as_ref().map(|i| i.sha.clone()),
            image_digest: pinned.map(|i| i.digest),
            image_ref: Some(image),
            url: self.url.clone(),
            deployment_ref: Some(format!("deployment/api in {}", self.namespace)),
            ..Running::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kustomization_pins_the_api_image_by_digest() {
        let image = ImageRef {
            repository: "ghcr.io/acme/api".parse().expect("repo"),
            sha: "a".repeat(40).parse().expect("sha"),
            digest: format!("sha256:{}", "b".repeat(64))
                .parse()
                .expect("digest"),
        };
        let overlay = relative(
            Path::new("/r/target/xtask/releases/1/kustomize"),
            Path::new("/r/deploy/k8s/overlays/staging"),
        );
        assert_eq!(
            overlay,
            Path::new("../../../../../deploy/k8s/overlays/staging")
        );
        let k = kustomization(&overlay, &image);
        assert!(k.contains(&format!("  - name: api\n    newName: ghcr.io/acme/api\n    newTag: \"{}\"\n    digest: sha256:bbbb", "a".repeat(40))), "{k}");
        assert!(k.contains("resources:\n  - ../../../../../deploy/k8s/overlays/staging\n"));
    }

    /// The real kubectl renders the real overlay pinned by digest (kubectl
    /// renders offline; no cluster is needed).
    #[test]
    fn renders_the_staging_overlay_pinned_with_kubectl() {
        if which::which("kubectl").is_err() {
            eprintln!(
                "SKIPPED: kubectl is not on PATH, the render is covered by xtask/tests/manifests.rs' YAML check"
            );
            return;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("root")
            .to_path_buf();
        let project = Project { root };
        let settings = EnvironmentConfig {
            url: Some("http://127.0.0.1:1".into()),
            ..EnvironmentConfig::default()
        };
        let k8s = Kubernetes::new(Environment::Staging, &settings, &project);
        let image = ImageRef {
            repository: "127.0.0.1:5000/acme/api".parse().expect("repo"),
            sha: "1234567890".repeat(4).parse().expect("sha"),
            digest: format!("sha256:{}", "c".repeat(64))
                .parse()
                .expect("digest"),
        };
        let dir = std::env::temp_dir().join(format!("xtask-k8s-render-{}", std::process::id()));
        let manifest = k8s.render(&image, "test", &dir).expect("renders");
        let text = std::fs::read_to_string(manifest).expect("manifest");
        assert!(
            text.contains(&format!("image: {}", image.pinned())),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
