//! Deploy targets: where a pinned image runs. One small trait, one file each.

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The local Docker engine (the default where nothing is configured)
    Docker,
    /// Akash Network through the `provider-services` CLI
    Akash,
    /// A Kubernetes cluster through `kubectl` and the kustomize overlays
    Kubernetes,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Docker => "docker",
            TargetKind::Akash => "akash",
            TargetKind::Kubernetes => "kubernetes",
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
