//! Checks `deploy/k8s` as Kubernetes will see it, and `deploy/compose.yaml`.
//!
//! Each overlay is rendered with `kubectl kustomize` (offline; kubectl embeds
//! kustomize), the way `cargo xtask deploy --target kubernetes` renders it,
//! validated by `kubernetes-validate --strict` against the Kubernetes API
//! schemas, and the rendered objects are checked: replicas (production's
//! belong to its HPA), probes, securityContext, the NetworkPolicy's peers,
//! and the placeholder image that the xtask's `images:` override replaces
//! with a digest-pinned reference and that nothing can pull unrendered.
//!
//! Without kubectl (never under CI, where it fails the test) the overlays are
//! read with yaml-rust2 instead (resources, `namespace:` and `replicas:`
//! only) and the override render is skipped, with a loud message on stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::{docker, in_ci, printed, require_tool};

/// The base's image: matched by the `images: [{name: api}]` override, and an
/// invalid reference (braces) until that override gives it a tag or digest.
const UNRENDERED_IMAGE: &str = "api:{pinned-by-cargo-xtask-deploy}";

const SHA256_HEX: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits in the workspace root")
        .to_path_buf()
}

fn overlay(env: &str) -> PathBuf {
    workspace_root().join("deploy/k8s/overlays").join(env)
}

fn parse_all(text: &str, what: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
}

fn read_yaml(path: &Path) -> Vec<Yaml> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_all(&text, &path.display().to_string())
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// `kubectl kustomize <dir>`, parsed. Panics with kubectl's stderr on failure.
fn kustomize(dir: &Path) -> Vec<Yaml> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("run kubectl kustomize {}: {e}", dir.display()));
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("kubectl prints UTF-8");
    parse_all(&text, "kubectl kustomize output")
}

/// The overlay as kubectl renders it, or, without kubectl, as far as
/// yaml-rust2 can assemble it.
fn render(env: &str) -> Vec<Yaml> {
    if kubectl_available() {
        kustomize(&overlay(env))
    } else {
        assert!(
            !in_ci(),
            "kubectl is not installed: deploy/k8s cannot be rendered (CI needs kubectl 1.27+, see .ci/setup)"
        );
        eprintln!(
            "!!!! kubectl not found on PATH: deploy/k8s/overlays/{env} is checked from its YAML files \
             with a partial kustomize (resources, namespace, replicas), NOT as rendered. \
             Install kubectl to check what Kubernetes will get. !!!!"
        );
        assemble_without_kubectl(&overlay(env))
    }
}

/// A partial kustomize for machines without kubectl: follows `resources:`,
/// applies `namespace:` and `replicas:`. Patches and generators are skipped.
fn assemble_without_kubectl(dir: &Path) -> Vec<Yaml> {
    let kustomization = read_yaml(&dir.join("kustomization.yaml")).remove(0);
    let mut objects = Vec::new();
    for resource in kustomization["resources"].as_vec().into_iter().flatten() {
        let path = dir.join(resource.as_str().expect("resources are paths"));
        if path.is_dir() {
            objects.extend(assemble_without_kubectl(&path));
        } else {
            objects.extend(read_yaml(&path));
        }
    }
    if let Some(namespace) = kustomization["namespace"].as_str() {
        for object in &mut objects {
            if object["kind"].as_str() != Some("Namespace") {
                set(
                    object,
                    &["metadata", "namespace"],
                    Yaml::String(namespace.to_owned()),
                );
            }
        }
    }
    for replicas in kustomization["replicas"].as_vec().into_iter().flatten() {
        let name = replicas["name"].as_str();
        for object in &mut objects {
            if object["kind"].as_str() == Some("Deployment")
                && object["metadata"]["name"].as_str() == name
            {
                set(object, &["spec", "replicas"], replicas["count"].clone());
            }
        }
    }
    objects
}

fn set(node: &mut Yaml, path: &[&str], value: Yaml) {
    let Yaml::Hash(map) = node else { return };
    let key = Yaml::String(path[0].to_owned());
    if path.len() == 1 {
        map.insert(key, value);
    } else {
        let child = map
            .entry(key)
            .or_insert_with(|| Yaml::Hash(Default::default()));
        set(child, &path[1..], value);
    }
}

fn find<'a>(objects: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} named {name} in the rendered overlay"))
}

fn kinds(objects: &[Yaml]) -> Vec<&str> {
    objects.iter().filter_map(|o| o["kind"].as_str()).collect()
}

fn api_container(deployment: &Yaml) -> &Yaml {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .and_then(|containers| {
            containers
                .iter()
                .find(|c| c["name"].as_str() == Some("api"))
        })
        .expect("the Deployment has a container named api")
}

fn containers(objects: &[Yaml]) -> Vec<&Yaml> {
    objects
        .iter()
        .flat_map(|o| {
            o["spec"]["template"]["spec"]["containers"]
                .as_vec()
                .into_iter()
                .flatten()
        })
        .collect()
}

/// A probe's port as a number, following a named port to the container's ports.
fn probe_port(container: &Yaml, probe: &Yaml) -> i64 {
    let port = &probe["httpGet"]["port"];
    if let Some(number) = port.as_i64() {
        return number;
    }
    let name = port
        .as_str()
        .expect("a probe port is a number or a port name");
    container["ports"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("probe port {name} is not a container port"))
}

/// `kubernetes.io/metadata.name` of every namespace a NetworkPolicy rule's
/// peers (`from` or `to`) select; panics on a peer that selects no namespace.
fn peer_namespaces(rule: &Yaml, peers: &str) -> BTreeSet<String> {
    let list = rule[peers]
        .as_vec()
        .unwrap_or_else(|| panic!("a rule without `{peers}` admits any peer: {rule:?}"));
    assert!(!list.is_empty(), "an empty `{peers}` admits any peer");
    list.iter()
        .map(|peer| {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                .as_str()
                .unwrap_or_else(|| panic!("a peer not limited to a named namespace: {peer:?}"))
                .to_owned()
        })
        .collect()
}

/// `(port, protocol)` of every port a NetworkPolicy rule names.
fn rule_ports(rule: &Yaml) -> Vec<(i64, String)> {
    rule["ports"]
        .as_vec()
        .unwrap_or_else(|| panic!("a rule without `ports` admits every port: {rule:?}"))
        .iter()
        .map(|p| {
            (
                p["port"].as_i64().expect("a numeric port"),
                p["protocol"].as_str().unwrap_or("TCP").to_owned(),
            )
        })
        .collect()
}

/// `replicas`: the count the overlay sets, or `None` where the HPA owns it.
fn check_overlay(env: &str, replicas: Option<i64>) -> Vec<Yaml> {
    let objects = render(env);
    let namespace = format!("api-{env}");
    for object in &objects {
        if object["kind"].as_str() != Some("Namespace") {
            assert_eq!(
                object["metadata"]["namespace"].as_str(),
                Some(namespace.as_str()),
                "{env}: {:?} {:?} outside {namespace}",
                object["kind"],
                object["metadata"]["name"]
            );
        }
    }

    let deployment = find(&objects, "Deployment", "api");
    match replicas {
        Some(count) => assert_eq!(
            deployment["spec"]["replicas"].as_i64(),
            Some(count),
            "{env}: replicas"
        ),
        // Any count in the manifest is re-applied by every deploy, scaling
        // the HPA's Deployment back to it.
        None => assert!(
            deployment["spec"]["replicas"].is_badvalue(),
            "{env}: the Deployment must not set replicas, its HPA does: {:?}",
            deployment["spec"]["replicas"]
        ),
    }
    let pod = &deployment["spec"]["template"]["spec"];
    let container = api_container(deployment);

    // The kustomize `images:` override matches on the name `api`.
    assert_eq!(
        container["image"].as_str(),
        Some(UNRENDERED_IMAGE),
        "{env}: placeholder image"
    );
    assert_eq!(
        containers(&objects).len(),
        1,
        "{env}: one container, the api"
    );

    for (probe, path) in [
        ("livenessProbe", "/liveness"),
        ("readinessProbe", "/readiness"),
    ] {
        let probe_yaml = &container[probe];
        assert_eq!(
            probe_yaml["httpGet"]["path"].as_str(),
            Some(path),
            "{env}: {probe}"
        );
        assert_eq!(
            probe_port(container, probe_yaml),
            8080,
            "{env}: {probe} port"
        );
    }
    if !container["startupProbe"].is_badvalue() {
        assert_eq!(
            probe_port(container, &container["startupProbe"]),
            8080,
            "{env}: startupProbe port"
        );
    }

    let pod_security = &pod["securityContext"];
    assert_eq!(
        pod_security["runAsNonRoot"].as_bool(),
        Some(true),
        "{env}: pod runAsNonRoot"
    );
    assert_eq!(
        pod_security["runAsUser"].as_i64(),
        Some(65532),
        "{env}: pod runAsUser"
    );
    assert_eq!(
        pod_security["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault"),
        "{env}: pod seccompProfile"
    );
    let security = &container["securityContext"];
    assert_eq!(
        security["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "{env}: readOnlyRootFilesystem"
    );
    assert_eq!(
        security["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "{env}: allowPrivilegeEscalation"
    );
    assert_eq!(
        security["runAsNonRoot"].as_bool(),
        Some(true),
        "{env}: container runAsNonRoot"
    );
    let dropped: Vec<&str> = security["capabilities"]["drop"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(dropped, ["ALL"], "{env}: capabilities.drop");
    assert!(
        security["capabilities"]["add"].is_badvalue(),
        "{env}: no capability is added back"
    );

    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][resource].as_str().is_some(),
                "{env}: resources.{bound}.{resource}"
            );
        }
    }

    // The settings come from the generated ConfigMap the container names.
    let config_name = container["envFrom"][0]["configMapRef"]["name"]
        .as_str()
        .expect("envFrom a ConfigMap");
    if kubectl_available() {
        let config = find(&objects, "ConfigMap", config_name);
        let data = &config["data"];
        assert_eq!(data["API_PORT"].as_str(), Some("8080"), "{env}: API_PORT");
        assert_eq!(
            data["API_BIND"].as_str(),
            Some("0.0.0.0"),
            "{env}: API_BIND"
        );
        assert!(data["API_LOG"].as_str().is_some(), "{env}: API_LOG");
        let grace: i64 = data["API_SHUTDOWN_GRACE_SECS"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("API_SHUTDOWN_GRACE_SECS is a number of seconds");
        let termination = pod["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("terminationGracePeriodSeconds");
        assert!(
            termination > grace,
            "{env}: terminationGracePeriodSeconds {termination} must exceed API_SHUTDOWN_GRACE_SECS {grace}"
        );
    }

    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selects_the_pods = |selector: &Yaml| {
        selector.as_hash().is_some_and(|wanted| {
            !wanted.is_empty()
                && wanted
                    .iter()
                    .all(|(k, v)| &pod_labels[k.as_str().unwrap_or("")] == v)
        })
    };

    let service = find(&objects, "Service", "api");
    assert!(
        selects_the_pods(&service["spec"]["selector"]),
        "{env}: Service selects the api pods"
    );
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(
        service_port["port"].as_i64(),
        Some(80),
        "{env}: Service port"
    );
    let target = &service_port["targetPort"];
    assert!(
        target.as_i64() == Some(8080) || target.as_str() == Some("http"),
        "{env}: Service targets 8080"
    );

    let policy = find(&objects, "NetworkPolicy", "api");
    assert!(
        selects_the_pods(&policy["spec"]["podSelector"]["matchLabels"]),
        "{env}: NetworkPolicy selects the api pods"
    );
    let types: Vec<&str> = policy["spec"]["policyTypes"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(types, ["Ingress", "Egress"], "{env}: policyTypes");

    // Into the api: its port only, from the ingress controller and Prometheus.
    let ingress = policy["spec"]["ingress"].as_vec().expect("ingress rules");
    assert!(!ingress.is_empty(), "{env}: ingress rules");
    let mut sources = BTreeSet::new();
    for rule in ingress {
        assert_eq!(
            rule_ports(rule),
            [(8080, "TCP".to_owned())],
            "{env}: ingress only to 8080"
        );
        sources.extend(peer_namespaces(rule, "from"));
    }
    assert_eq!(
        sources,
        BTreeSet::from(["ingress-nginx".to_owned(), "monitoring".to_owned()]),
        "{env}: ingress sources"
    );

    // Out of the api: the cluster's DNS and nothing else.
    let egress = policy["spec"]["egress"].as_vec().expect("egress rules");
    assert!(!egress.is_empty(), "{env}: egress rules");
    for rule in egress {
        assert_eq!(
            rule_ports(rule),
            [(53, "UDP".to_owned()), (53, "TCP".to_owned())],
            "{env}: egress only to DNS"
        );
        assert_eq!(
            peer_namespaces(rule, "to"),
            BTreeSet::from(["kube-system".to_owned()]),
            "{env}: DNS is kube-system's"
        );
        for peer in rule["to"].as_vec().into_iter().flatten() {
            assert_eq!(
                peer["podSelector"]["matchLabels"]["k8s-app"].as_str(),
                Some("kube-dns"),
                "{env}: egress to the DNS pods only"
            );
        }
    }

    objects
}

#[test]
fn staging_overlay_runs_one_hardened_replica() {
    let objects = check_overlay("staging", Some(1));
    assert!(
        !kinds(&objects).contains(&"HorizontalPodAutoscaler"),
        "staging does not autoscale"
    );
}

#[test]
fn production_overlay_leaves_its_count_to_cpu_autoscaling() {
    let objects = check_overlay("production", None);
    let hpa = find(&objects, "HorizontalPodAutoscaler", "api");
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"].as_str(), Some("Deployment"));
    assert_eq!(target["name"].as_str(), Some("api"));
    let min = hpa["spec"]["minReplicas"].as_i64().expect("minReplicas");
    let max = hpa["spec"]["maxReplicas"].as_i64().expect("maxReplicas");
    assert_eq!(min, 3, "production never runs fewer than 3");
    assert!(max > min, "maxReplicas {max} leaves room to scale");
    let scales_on_cpu = hpa["spec"]["metrics"]
        .as_vec()
        .into_iter()
        .flatten()
        .any(|m| {
            m["type"].as_str() == Some("Resource") && m["resource"]["name"].as_str() == Some("cpu")
        });
    assert!(scales_on_cpu, "the HPA scales on CPU");

    let pdb = find(&objects, "PodDisruptionBudget", "api");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
        Some("api")
    );
}

/// A kustomization the test writes under the workspace's `target/` (as the
/// xtask does), removed when dropped.
struct ScratchKustomization(PathBuf);

impl ScratchKustomization {
    fn over(env: &str, images: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = workspace_root()
            .join("target/xtask-tests")
            .join(format!("kustomize-{env}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        // kustomize refuses an absolute path to a kustomization directory
        // ("new root cannot be absolute"): the overlay must be relative.
        let text = format!("resources:\n  - ../../../deploy/k8s/overlays/{env}\nimages:\n{images}");
        fs::write(dir.join("kustomization.yaml"), text).expect("write kustomization.yaml");
        ScratchKustomization(dir)
    }
}

impl Drop for ScratchKustomization {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn rendered_images(objects: &[Yaml]) -> Vec<String> {
    containers(objects)
        .into_iter()
        .filter_map(|c| c["image"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn an_images_override_pins_the_staging_overlay_by_digest() {
    if !kubectl_available() {
        assert!(
            !in_ci(),
            "kubectl is not installed: the digest-pinning render cannot be checked"
        );
        eprintln!(
            "!!!! kubectl not found on PATH: the digest-pinning render is NOT checked; only that the \
             base names its image `api`, which the override needs. !!!!"
        );
        let base = read_yaml(&workspace_root().join("deploy/k8s/base/deployment.yaml")).remove(0);
        assert_eq!(
            api_container(&base)["image"].as_str(),
            Some(UNRENDERED_IMAGE)
        );
        return;
    }

    let digest_only = ScratchKustomization::over(
        "staging",
        &format!(
            "  - name: api\n    newName: 127.0.0.1:5000/x/api\n    digest: sha256:{SHA256_HEX}\n"
        ),
    );
    let images = rendered_images(&kustomize(&digest_only.0));
    assert_eq!(
        images,
        [format!("127.0.0.1:5000/x/api@sha256:{SHA256_HEX}")]
    );

    // The design's reference form `repo:<sha>@sha256:…`: tag and digest both.
    // A SHA of digits only is a YAML number, so the tag must be quoted.
    let sha = "0123456789012345678901234567890123456789";
    let tag_and_digest = ScratchKustomization::over(
        "staging",
        &format!(
            "  - name: api\n    newName: 127.0.0.1:5000/x/api\n    newTag: \"{sha}\"\n    digest: sha256:{SHA256_HEX}\n"
        ),
    );
    let images = rendered_images(&kustomize(&tag_and_digest.0));
    assert_eq!(
        images,
        [format!("127.0.0.1:5000/x/api:{sha}@sha256:{SHA256_HEX}")]
    );

    // An override that names a repository but no tag or digest leaves the
    // placeholder's invalid tag: still nothing that can be pulled.
    let name_only = ScratchKustomization::over(
        "staging",
        "  - name: api\n    newName: 127.0.0.1:5000/x/api\n",
    );
    let images = rendered_images(&kustomize(&name_only.0));
    assert_eq!(
        images,
        ["127.0.0.1:5000/x/api:{pinned-by-cargo-xtask-deploy}"]
    );
}

#[test]
fn the_unrendered_image_is_not_a_reference_anything_can_pull() {
    // The engine parses the reference before it looks anything up: an
    // invalid one is refused on the spot, with no registry asked (a bare
    // `api` would mean docker.io/library/api:latest). The kubelet parses
    // image names with the same grammar (distribution's reference package).
    let out = docker(&["image", "inspect", UNRENDERED_IMAGE]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("invalid reference format"),
        "{UNRENDERED_IMAGE} must be an invalid image reference ({}): {text}",
        out.status
    );
    // The same question about a valid name gets another answer, so the
    // message above is about the reference, not about a missing image.
    let out = docker(&["image", "inspect", "api:not-built-here"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !text.contains("invalid reference format"),
        "a valid name is not refused as a format: {text}"
    );
}

/// `kubernetes-validate --strict -` on `manifest`: exit status and output.
fn validate(validator: &Path, manifest: &str) -> (bool, String) {
    let mut child = Command::new(validator)
        .args(["--strict", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", validator.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest.as_bytes())
        .expect("write the manifest to kubernetes-validate");
    let out = child.wait_with_output().expect("kubernetes-validate ends");
    (out.status.success(), printed(&out))
}

#[test]
fn each_overlay_validates_against_the_kubernetes_api_schemas() {
    let Some(validator) = require_tool(
        "kubernetes-validate",
        "the rendered overlays against the Kubernetes API schemas",
    ) else {
        return;
    };
    let Some(kubectl) = require_tool("kubectl", "the rendered overlays") else {
        return;
    };
    for env in ["staging", "production"] {
        let out = Command::new(&kubectl)
            .arg("kustomize")
            .arg(overlay(env))
            .output()
            .unwrap_or_else(|e| panic!("run kubectl kustomize: {e}"));
        assert!(
            out.status.success(),
            "kubectl kustomize {env}: {}",
            printed(&out)
        );
        let manifest = String::from_utf8(out.stdout).expect("kubectl prints UTF-8");
        let objects = parse_all(&manifest, "kubectl kustomize output").len();
        let (ok, report) = validate(&validator, &manifest);
        assert!(ok, "deploy/k8s/overlays/{env} does not validate:\n{report}");
        // One verdict per object: the validator read the whole manifest.
        assert_eq!(
            report.matches("passed for resource").count(),
            objects,
            "{env}: every rendered object validated:\n{report}"
        );
    }

    // A misspelt field is refused (--strict), so a pass above means something.
    let typo = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replica: 3\n  \
                selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    \
                spec:\n      containers:\n        - name: api\n          image: x\n";
    let (ok, report) = validate(&validator, typo);
    assert!(
        !ok && report.contains("replica"),
        "a typo must fail:\n{report}"
    );
}

#[test]
fn compose_runs_only_an_image_named_by_the_caller() {
    let compose = read_yaml(&workspace_root().join("deploy/compose.yaml")).remove(0);
    let services = compose["services"].as_hash().expect("services");
    assert_eq!(services.len(), 1, "one service, the api");
    let api = &compose["services"]["api"];

    let image = api["image"].as_str().expect("image is a string");
    assert!(
        image.starts_with("${API_IMAGE:?") && image.ends_with('}'),
        "the image must be exactly the required variable API_IMAGE, got {image}"
    );
    assert!(
        !image.contains(":-"),
        "API_IMAGE must have no default: {image}"
    );
    assert!(
        api["build"].is_badvalue(),
        "compose never builds: it runs a released image"
    );

    let ports: Vec<&str> = api["ports"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(ports, ["127.0.0.1:8080:8080"], "loopback only");
    assert_eq!(
        api["read_only"].as_bool(),
        Some(true),
        "read-only root filesystem"
    );
    let user = api["user"].as_str().expect("user");
    assert!(
        user == "65532" || user.starts_with("65532:"),
        "runs as 65532, got {user}"
    );
    let health: Vec<&str> = api["healthcheck"]["test"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(
        health,
        ["CMD", "/api", "healthcheck"],
        "FROM scratch: the binary checks itself"
    );

    let environment: BTreeMap<&str, &str> = api["environment"]
        .as_hash()
        .expect("environment as a map")
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
        .collect();
    for variable in ["API_PORT", "API_BIND", "API_LOG", "API_SHUTDOWN_GRACE_SECS"] {
        assert!(
            environment.contains_key(variable),
            "compose sets {variable}"
        );
    }
    assert_eq!(environment.get("API_PORT"), Some(&"8080"));
}
