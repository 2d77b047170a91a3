//! The canary driven without Docker: an in-memory proxy with a stable and a
//! canary slot, whose `/metrics` grow with a virtual load split by the
//! weight (a faulty canary answers 5xx to a share of its part, a slow one
//! answers in 250–500 ms). Steps last a fraction of a second here; the real
//! engine's tests are in `tests/it/canary.rs`.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::strategy::{Canary, Strategy};
use super::{Engine, Outcome, Request, execute, finish};
use crate::analysis::{OnInconclusive, Side, Template, Verdict};
use crate::ledger::{Ledger, Reason, RecordKind, Release, Status};
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::model::sha::GitSha;
use crate::model::strategy::StrategyKind;
use crate::targets::{Applied, Running, Split, Target, TargetKind};
use crate::verify::cosign::{Signature, SignatureStatus};
use crate::verify::{Outcome as Probed, Probe};

/// Requests per release of the virtual load, per scrape.
const LOAD: u64 = 50;

#[derive(Default)]
struct Counters {
    requests: u64,
    errors: u64,
    slow: u64,
}

#[derive(Default)]
struct Proxy {
    stable: RefCell<Option<ImageRef>>,
    canary: RefCell<Option<ImageRef>>,
    weight: Cell<u8>,
    /// Every weight set, in order (0 for an abort).
    weights: RefCell<Vec<u8>>,
    stable_counts: RefCell<Counters>,
    canary_counts: RefCell<Counters>,
    /// The canary's behaviour.
    fault: Cell<f64>,
    slow: Cell<bool>,
    no_traffic: Cell<bool>,
    unreachable: Cell<bool>,
    malformed: Cell<bool>,
    /// Ctrl-C once this many scrapes of the canary were taken.
    interrupt_after_scrapes: Cell<Option<u32>>,
    scrapes: Cell<u32>,
    interrupted: Cell<bool>,
    can_split: Cell<bool>,
    recovered: Cell<u32>,
}

impl Proxy {
    fn load(&self) {
        if self.no_traffic.get() {
            return;
        }
        let to_canary = LOAD * u64::from(self.weight.get()) / 100;
        let mut c = self.canary_counts.borrow_mut();
        c.requests += to_canary;
        c.errors += (to_canary as f64 * self.fault.get()).round() as u64;
        if self.slow.get() {
            c.slow += to_canary;
        }
        self.stable_counts.borrow_mut().requests += LOAD - to_canary;
    }

    fn live(&self) -> Option<ImageRef> {
        self.stable.borrow().clone()
    }
}

/// The api's exposition, with two buckets and `+Inf`.
fn exposition(c: &Counters) -> String {
    let fast = c.requests - c.slow;
    let ok = c.requests - c.errors;
    format!(
        "# TYPE http_requests_total counter\n\
         http_requests_total{{method=\"GET\",route=\"/health\",status=\"200\"}} 7\n\
         http_requests_total{{method=\"GET\",route=\"/work\",status=\"200\"}} {ok}\n\
         http_requests_total{{method=\"GET\",route=\"/work\",status=\"500\"}} {err}\n\
         # TYPE http_request_duration_seconds histogram\n\
         http_request_duration_seconds_bucket{{method=\"GET\",route=\"/work\",status=\"200\",le=\"0.01\"}} {fast_ok}\n\
         http_request_duration_seconds_bucket{{method=\"GET\",route=\"/work\",status=\"200\",le=\"0.5\"}} {ok}\n\
         http_request_duration_seconds_bucket{{method=\"GET\",route=\"/work\",status=\"200\",le=\"+Inf\"}} {ok}\n\
         http_request_duration_seconds_bucket{{method=\"GET\",route=\"/work\",status=\"500\",le=\"0.01\"}} {fast_err}\n\
         http_request_duration_seconds_bucket{{method=\"GET\",route=\"/work\",status=\"500\",le=\"0.5\"}} {err}\n\
         http_request_duration_seconds_bucket{{method=\"GET\",route=\"/work\",status=\"500\",le=\"+Inf\"}} {err}\n",
        err = c.errors,
        // The slow requests are all successful ones.
        fast_ok = ok.saturating_sub(c.slow).min(fast),
        fast_err = c.errors,
    )
}

impl Split for Proxy {
    fn recover(&self, stable: &ImageRef) -> anyhow::Result<()> {
        self.recovered.set(self.recovered.get() + 1);
        self.weight.set(0);
        self.canary.borrow_mut().take();
        anyhow::ensure!(
            self.stable.borrow().as_ref() == Some(stable),
            "the stable slot does not run {}",
            stable.sha
        );
        Ok(())
    }

    fn start_canary(&self, config: &Path, _stable: &ImageRef) -> anyhow::Result<Applied> {
        *self.canary.borrow_mut() = Some(std::fs::read_to_string(config)?.parse()?);
        *self.canary_counts.borrow_mut() = Counters::default();
        Ok(Applied {
            url: "mem://canary".to_owned(),
            deployment_ref: "canary".to_owned(),
        })
    }

    fn set_weight(&self, canary: u8) -> anyhow::Result<()> {
        self.weight.set(canary);
        self.weights.borrow_mut().push(canary);
        Ok(())
    }

    fn metrics(&self, side: Side) -> anyhow::Result<String> {
        if side == Side::Stable {
            return Ok(exposition(&self.stable_counts.borrow()));
        }
        self.scrapes.set(self.scrapes.get() + 1);
        if Some(self.scrapes.get()) == self.interrupt_after_scrapes.get() {
            self.interrupted.set(true);
        }
        self.load();
        if self.unreachable.get() {
            anyhow::bail!("connecting to 172.18.0.3:8080: Connection refused");
        }
        if self.malformed.get() {
            return Ok("<html>502 Bad Gateway</html>".to_owned());
        }
        Ok(exposition(&self.canary_counts.borrow()))
    }

    fn promote(&self) -> anyhow::Result<Applied> {
        self.weight.set(100);
        let canary = self.canary.borrow_mut().take();
        *self.stable.borrow_mut() = canary;
        Ok(Applied {
            url: "mem://proxy".to_owned(),
            deployment_ref: "canary".to_owned(),
        })
    }

    fn abort(&self) -> anyhow::Result<()> {
        self.set_weight(0)?;
        self.canary.borrow_mut().take();
        Ok(())
    }
}

impl Target for Proxy {
    fn kind(&self) -> TargetKind {
        TargetKind::Docker
    }
    fn preflight(&self) -> anyhow::Result<()> {
        Ok(())
    }
    fn render(&self, image: &ImageRef, _id: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("mem.txt");
        std::fs::write(&path, image.pinned())?;
        Ok(path)
    }
    fn image_in(&self, config: &Path) -> anyhow::Result<ImageRef> {
        std::fs::read_to_string(config)?.parse()
    }
    fn plan(&self, _: &Path, _: Option<&ImageRef>) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// All at once (a first release, or bluegreen).
    fn apply(&self, config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Applied> {
        *self.stable.borrow_mut() = Some(self.image_in(config)?);
        Ok(Applied {
            url: "mem://proxy".to_owned(),
            deployment_ref: "stable".to_owned(),
        })
    }
    fn commit(&self) -> anyhow::Result<()> {
        Ok(())
    }
    fn restore_kept(&self) -> anyhow::Result<Option<Applied>> {
        Ok(None)
    }
    fn status(&self) -> anyhow::Result<Running> {
        Ok(match self.live() {
            Some(i) => Running {
                image_ref: Some(i.pinned()),
                image_sha: Some(i.sha.clone()),
                image_digest: Some(i.digest),
                url: Some("mem://proxy".to_owned()),
                deployment_ref: Some("stable".to_owned()),
                ..Running::default()
            },
            None => Running::default(),
        })
    }
    fn split(&self) -> anyhow::Result<&dyn Split> {
        anyhow::ensure!(self.can_split.get(), "this target cannot run a canary");
        Ok(self)
    }
}

impl Probe for Proxy {
    fn verify(&self, url: &str, sha: &GitSha, _: Option<&GitSha>, _: Duration, _: bool) -> Probed {
        let serving = if url == "mem://canary" {
            self.canary.borrow().clone()
        } else {
            self.live()
        };
        let ok = serving.is_some_and(|i| i.sha == *sha);
        Probed {
            verified: crate::ledger::Verified {
                health: ok,
                sha: ok,
            },
            last_seen: "mem".to_owned(),
        }
    }
    fn reported_sha(&self, _url: &str) -> Option<GitSha> {
        self.live().map(|i| i.sha)
    }
}

fn image(c: char) -> ImageRef {
    ImageRef {
        repository: "127.0.0.1:5000/acme/api".parse().expect("repo"),
        sha: c.to_string().repeat(40).parse().expect("sha"),
        digest: format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .expect("digest"),
    }
}

struct World {
    proxy: Proxy,
    dir: PathBuf,
    ledger: Ledger,
}

fn quick(steps: &str) -> Canary {
    Canary {
        steps: steps.parse().expect("steps"),
        step_duration: Duration::from_millis(150),
        analysis: Template {
            interval: Duration::from_millis(10),
            ..Template::default()
        },
    }
}

impl World {
    /// A proxy whose stable slot runs `a`, deployed through the engine.
    fn new(name: &str) -> World {
        let dir = std::env::temp_dir().join(format!("xtask-canary-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = World {
            proxy: Proxy::default(),
            ledger: Ledger::at(dir.join("ledger/staging.jsonl")),
            dir,
        };
        w.proxy.can_split.set(true);
        assert!(w.deploy('a', Strategy::BlueGreen).ok());
        w
    }

    fn deploy(&self, c: char, strategy: Strategy) -> Outcome {
        self.try_deploy(c, strategy).expect("the engine ran")
    }

    fn try_deploy(&self, c: char, strategy: Strategy) -> anyhow::Result<Outcome> {
        let interrupted = || self.proxy.interrupted.get();
        let engine = Engine {
            target: &self.proxy,
            probe: &self.proxy,
            ledger: &self.ledger,
            releases_dir: self.dir.join("releases"),
            interrupted: &interrupted,
        };
        execute(
            Request {
                kind: RecordKind::Deploy,
                env: Environment::Staging,
                image: image(c),
                recorded: None,
                signature: Signature {
                    status: SignatureStatus::Unverified,
                    reason: Some("cosign not found".to_owned()),
                },
                attestations: Default::default(),
                config: None,
                reason: None,
                verify_timeout: Duration::from_secs(1),
                initiated_by: "test".to_owned(),
                strategy,
                content: None,
                rebuild_of: None,
            },
            &engine,
        )
    }

    fn canary(&self, c: char, plan: Canary) -> Outcome {
        self.deploy(c, Strategy::Canary(plan))
    }

    fn stable(&self) -> Option<char> {
        self.proxy
            .live()
            .and_then(|i| i.sha.as_str().chars().next())
    }

    fn last_line(&self) -> Release {
        let text = std::fs::read_to_string(self.ledger.path()).expect("ledger");
        serde_json::from_str(text.lines().last().expect("a line")).expect("a release")
    }

    fn verdicts(out: &Outcome) -> Vec<(u8, Verdict)> {
        out.release
            .analysis
            .as_ref()
            .map(|a| a.steps.iter().map(|s| (s.weight, s.verdict)).collect())
            .unwrap_or_default()
    }
}

#[test]
fn a_healthy_canary_is_promoted_through_every_step_with_its_figures() {
    let w = World::new("healthy");
    let out = w.canary('b', quick("10,50,100"));
    assert!(out.ok(), "{:?}", out.release.error);
    assert_eq!(
        World::verdicts(&out),
        [
            (10, Verdict::Successful),
            (50, Verdict::Successful),
            (100, Verdict::Successful)
        ]
    );
    assert_eq!(*w.proxy.weights.borrow(), [10, 50, 100]);
    assert_eq!(w.stable(), Some('b'));
    let r = w.last_line();
    assert_eq!(
        (r.status, r.strategy),
        (Status::Complete, Some(StrategyKind::Canary))
    );
    let steps = r.analysis.expect("figures in the ledger").steps;
    assert!(
        steps
            .iter()
            .all(|s| s.figures.requests >= 20 && s.figures.errors == 0)
    );
    assert_eq!(steps[0].figures.success_rate, Some(1.0));
    // A line per step, so a run killed later still shows the figures.
    let text = std::fs::read_to_string(w.ledger.path()).expect("ledger");
    assert_eq!(
        text.lines().filter(|l| l.contains("\"bbbb")).count(),
        1 + 3 + 1
    );
}

#[test]
fn a_faulty_canary_is_aborted_at_its_first_step_and_the_exit_names_the_figures() {
    let w = World::new("faulty");
    w.proxy.fault.set(0.25);
    let out = w.canary('b', quick("10,50,100"));
    assert_eq!(out.release.status, Status::Failed);
    assert_eq!(out.release.reason, Some(Reason::FailedAnalysis));
    assert_eq!(World::verdicts(&out), [(10, Verdict::Failed)]);
    assert_eq!(*w.proxy.weights.borrow(), [10, 0], "weight 0 at once");
    assert!(w.proxy.canary.borrow().is_none(), "the canary is removed");
    assert_eq!(w.stable(), Some('a'));
    assert_eq!(out.release.left_on_sha, Some(image('a').sha));
    let line = serde_json::to_string(&w.last_line()).expect("json");
    assert!(line.contains("\"reason\":\"failed-analysis\""), "{line}");
    assert!(line.contains("\"success_rate\":0.8"), "{line}");
    let said = finish(&out, false).expect_err("non-zero").to_string();
    assert!(
        said.contains("failed-analysis: step 1 (10%) failed")
            && said.contains("success rate 80.0% < 99.0%")
            && said.contains("requests answered 5xx")
            && said.contains("canary was aborted (weight 0, removed): staging runs aaaa"),
        "{said}"
    );
}

#[test]
fn a_slow_canary_is_aborted_on_its_p99_against_the_stable() {
    let w = World::new("slow");
    w.proxy.slow.set(true);
    let out = w.canary('b', quick("50,100"));
    assert_eq!(out.release.reason, Some(Reason::FailedAnalysis));
    let why = out.release.error.unwrap_or_default();
    assert!(why.contains("the stable's"), "{why}");
    assert_eq!(w.stable(), Some('a'));
}

#[test]
fn no_traffic_is_inconclusive_and_fails_closed_unless_configured() {
    let w = World::new("quiet");
    w.proxy.no_traffic.set(true);
    let out = w.canary('b', quick("10,100"));
    assert_eq!(out.release.status, Status::Failed);
    assert_eq!(World::verdicts(&out), [(10, Verdict::Inconclusive)]);
    assert!(
        out.release
            .error
            .as_deref()
            .is_some_and(|e| e.contains("too little traffic")),
        "{:?}",
        out.release.error
    );
    assert_eq!(w.stable(), Some('a'));
    let mut plan = quick("10,100");
    plan.analysis.on_inconclusive = OnInconclusive::Promote;
    let out = w.canary('c', plan);
    assert!(out.ok(), "{:?}", out.release.error);
    assert_eq!(w.stable(), Some('c'));
}

#[test]
fn unreachable_or_malformed_canary_metrics_fail_the_check() {
    for name in ["unreachable", "malformed"] {
        let w = World::new(name);
        match name {
            "unreachable" => w.proxy.unreachable.set(true),
            _ => w.proxy.malformed.set(true),
        }
        let out = w.canary('b', quick("10,100"));
        assert_eq!(out.release.reason, Some(Reason::FailedAnalysis), "{name}");
        let why = out.release.error.unwrap_or_default();
        assert!(why.contains("could not be read"), "{name}: {why}");
        assert_eq!(w.stable(), Some('a'), "{name}");
    }
}

#[test]
fn ctrl_c_during_a_step_puts_all_traffic_back_on_the_stable() {
    let w = World::new("ctrl-c");
    w.proxy.interrupt_after_scrapes.set(Some(3));
    let out = w.canary('b', quick("10,50,100"));
    assert_eq!(out.release.status, Status::Interrupted);
    assert_eq!(w.proxy.weights.borrow().last(), Some(&0));
    assert!(w.proxy.canary.borrow().is_none());
    assert_eq!(out.release.left_on_sha, Some(image('a').sha));
    assert_eq!(w.stable(), Some('a'));
}

#[test]
fn after_a_kill_9_mid_step_the_next_release_first_puts_all_traffic_on_the_stable() {
    let w = World::new("kill-9");
    // What a killed canary leaves: a `running` line with its strategy, the
    // proxy at 50 % on an unverified canary.
    let mut left = w.last_line();
    left.id = "20990101T000000.000Z-bbbbbbbbbbbb".to_owned();
    left.image_sha = image('b').sha;
    left.status = Status::Running;
    left.strategy = Some(StrategyKind::Canary);
    w.ledger.append(&left).expect("append");
    *w.proxy.canary.borrow_mut() = Some(image('b'));
    w.proxy.weight.set(50);
    let out = w.deploy('c', Strategy::BlueGreen);
    assert!(out.ok());
    assert_eq!(w.proxy.recovered.get(), 1, "recovered before anything else");
    assert!(w.proxy.canary.borrow().is_none());
}

#[test]
fn a_target_that_cannot_split_refuses_before_anything_is_recorded() {
    let w = World::new("refused");
    w.proxy.can_split.set(false);
    let lines = std::fs::read_to_string(w.ledger.path()).expect("ledger");
    let err = w
        .try_deploy('b', Strategy::Canary(quick("10,100")))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("cannot run a canary"), "{err}");
    assert_eq!(
        std::fs::read_to_string(w.ledger.path()).expect("ledger"),
        lines
    );
}

#[test]
fn a_first_release_has_no_stable_to_compare_with_and_goes_in_at_once() {
    let dir = std::env::temp_dir().join(format!("xtask-canary-first-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = World {
        proxy: Proxy::default(),
        ledger: Ledger::at(dir.join("ledger/staging.jsonl")),
        dir,
    };
    w.proxy.can_split.set(true);
    let out = w.canary('a', quick("10,100"));
    assert!(out.ok());
    assert!(out.release.analysis.is_none());
    assert!(w.proxy.weights.borrow().is_empty());
}
