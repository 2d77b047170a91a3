//! The engine driven without Docker: an in-memory target that can fail at
//! each step (apply, verify, restore, asking what runs) and a Ctrl-C that
//! can arrive at each point. Each test asserts the ledger lines and what is
//! left running.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Engine, Outcome, Request, execute, finish};
use crate::ledger::{Ledger, Reason, RecordKind, Release, Status};
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::model::sha::GitSha;
use crate::targets::{Applied, Running, Target, TargetKind};
use crate::verify::cosign::{Signature, SignatureStatus};
use crate::verify::{Outcome as Probed, Probe};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    Render,
    Apply,
    Verify,
    Restore,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Instance {
    image: ImageRef,
    healthy: bool,
    /// Where it runs and with what, from its config: `name=` (the
    /// environment's container and port) and `env=` (the release's own).
    name: String,
    env: String,
}

/// A target with one live instance and at most one kept aside, like the
/// docker target, whose faults are set per test.
#[derive(Default)]
struct Mem {
    main: RefCell<Option<Instance>>,
    kept: RefCell<Option<Instance>>,
    /// Every instance that was thrown away, in order.
    dropped: RefCell<Vec<ImageRef>>,
    calls: RefCell<Vec<String>>,
    interrupted: Cell<bool>,
    interrupt_at: Cell<Option<Point>>,
    cannot_ask: Cell<bool>,
    apply_fails_for: RefCell<HashSet<GitSha>>,
    /// Refused before anything changed (a transaction the chain refused).
    refused_untouched: RefCell<HashSet<GitSha>>,
    unhealthy: RefCell<HashSet<GitSha>>,
    restore_fails: Cell<bool>,
    /// The environment's current settings, as a config would render them.
    name: RefCell<String>,
    env: RefCell<String>,
    /// A target with a proxy: `switch` says where users reach the release,
    /// and the service fails there when `proxy_fails`.
    proxied: Cell<bool>,
    proxy_fails: Cell<bool>,
}

/// A config file: the pinned image, then `name=…` and `env=…` lines.
fn config_field(config: &Path, key: &str) -> String {
    std::fs::read_to_string(config)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .unwrap_or_default()
}

impl Mem {
    fn hit(&self, point: Point) {
        if self.interrupt_at.get() == Some(point) {
            self.interrupted.set(true);
        }
    }

    fn drop_instance(&self, slot: &RefCell<Option<Instance>>) {
        if let Some(gone) = slot.borrow_mut().take() {
            self.dropped.borrow_mut().push(gone.image);
        }
    }

    fn running(&self) -> Option<GitSha> {
        self.main.borrow().as_ref().map(|i| i.image.sha.clone())
    }

    fn applied(&self) -> Applied {
        Applied {
            url: "mem://main".to_owned(),
            deployment_ref: "mem".to_owned(),
        }
    }
}

impl Target for Mem {
    fn kind(&self) -> TargetKind {
        TargetKind::Docker
    }

    fn preflight(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn render(&self, image: &ImageRef, _id: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        self.hit(Point::Render);
        std::fs::create_dir_all(dir)?;
        let path = dir.join("mem.txt");
        std::fs::write(
            &path,
            format!(
                "{}\nname={}\nenv={}\n",
                image.pinned(),
                self.name.borrow(),
                self.env.borrow()
            ),
        )?;
        Ok(path)
    }

    fn carry_over(&self, frozen: &Path, fresh: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(fresh)?;
        let kept: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with("env="))
            .map(str::to_owned)
            .chain([format!("env={}", config_field(frozen, "env"))])
            .collect();
        std::fs::write(fresh, kept.join("\n") + "\n")?;
        Ok(())
    }

    fn image_in(&self, config: &Path) -> anyhow::Result<ImageRef> {
        std::fs::read_to_string(config)?
            .lines()
            .next()
            .unwrap_or_default()
            .parse()
    }

    fn plan(&self, _config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Like docker: set the running instance aside (unless the kept one is
    /// the verified release and the running one is not), then start.
    fn apply(&self, config: &Path, keep: Option<&ImageRef>) -> anyhow::Result<Applied> {
        let image = self.image_in(config)?;
        self.calls
            .borrow_mut()
            .push(format!("apply {}", image.sha.short()));
        // Like docker: a config for another container is refused (before
        // anything changes, but said as a plain error, as docker does).
        let name = config_field(config, "name");
        if name != *self.name.borrow() {
            anyhow::bail!(
                "that release config is for container {name:?}, not {:?}",
                self.name.borrow()
            );
        }
        let env = config_field(config, "env");
        if self.refused_untouched.borrow().contains(&image.sha) {
            return Err(crate::targets::NothingChanged(
                "the chain refused the deployment update (code 13): nothing changed".to_owned(),
            )
            .into());
        }
        let kept_is_verified = keep.is_some_and(|k| {
            self.kept.borrow().as_ref().is_some_and(|i| i.image == *k)
                && self.main.borrow().as_ref().is_none_or(|i| i.image != *k)
        });
        if kept_is_verified {
            self.drop_instance(&self.main);
        } else {
            self.drop_instance(&self.kept);
            let main = self.main.borrow_mut().take();
            *self.kept.borrow_mut() = main;
        }
        self.hit(Point::Apply);
        if self.apply_fails_for.borrow().contains(&image.sha) {
            anyhow::bail!("docker: Error response from daemon: bind: address already in use");
        }
        let healthy = !self.unhealthy.borrow().contains(&image.sha);
        *self.main.borrow_mut() = Some(Instance {
            image,
            healthy,
            name,
            env,
        });
        Ok(self.applied())
    }

    fn switch(&self) -> anyhow::Result<Option<String>> {
        if !self.proxied.get() {
            return Ok(None);
        }
        self.calls.borrow_mut().push("switch".to_owned());
        Ok(Some("mem://proxy".to_owned()))
    }

    fn commit(&self) -> anyhow::Result<()> {
        self.drop_instance(&self.kept);
        Ok(())
    }

    fn restore_kept(&self) -> anyhow::Result<Option<Applied>> {
        self.calls.borrow_mut().push("restore".to_owned());
        self.drop_instance(&self.main);
        if self.restore_fails.get() {
            anyhow::bail!("docker: Error response from daemon: rename failed");
        }
        let kept = self.kept.borrow_mut().take();
        let restored = kept.is_some();
        *self.main.borrow_mut() = kept;
        Ok(restored.then(|| self.applied()))
    }

    fn status(&self) -> anyhow::Result<Running> {
        if self.cannot_ask.get() {
            anyhow::bail!("Cannot connect to the Docker daemon at unix:///var/run/docker.sock");
        }
        Ok(match &*self.main.borrow() {
            Some(i) => Running {
                image_ref: Some(i.image.pinned()),
                image_sha: Some(i.image.sha.clone()),
                image_digest: Some(i.image.digest.clone()),
                url: Some("mem://main".to_owned()),
                deployment_ref: Some("mem".to_owned()),
                ..Running::default()
            },
            None => Running::default(),
        })
    }

    fn rollout_overlaps(&self) -> bool {
        false
    }
}

impl Probe for Mem {
    fn verify(
        &self,
        url: &str,
        sha: &GitSha,
        _previous: Option<&GitSha>,
        _timeout: Duration,
        interruptible: bool,
    ) -> Probed {
        self.hit(if interruptible {
            Point::Verify
        } else {
            Point::Restore
        });
        let main = self.main.borrow();
        let through_failing_proxy = url == "mem://proxy" && self.proxy_fails.get();
        let healthy = main.as_ref().is_some_and(|i| i.healthy) && !through_failing_proxy;
        let serves = main.as_ref().is_some_and(|i| i.image.sha == *sha);
        Probed {
            verified: crate::ledger::Verified {
                health: healthy,
                sha: healthy && serves,
            },
            last_seen: if healthy {
                "/version reports it".to_owned()
            } else {
                "timed out: connection refused".to_owned()
            },
        }
    }

    fn reported_sha(&self, _url: &str) -> Option<GitSha> {
        self.running()
    }
}

struct World {
    mem: Mem,
    dir: PathBuf,
    ledger: Ledger,
}

fn sha(c: char) -> GitSha {
    c.to_string().repeat(40).parse().expect("sha")
}

fn image(c: char) -> ImageRef {
    ImageRef {
        repository: "127.0.0.1:5000/acme/api".parse().expect("repo"),
        sha: sha(c),
        digest: format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .expect("digest"),
    }
}

impl World {
    fn new(name: &str) -> World {
        let dir = std::env::temp_dir().join(format!("xtask-engine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ledger = Ledger::at(dir.join("ledger/staging.jsonl"));
        World {
            mem: Mem::default(),
            dir,
            ledger,
        }
    }

    fn execute(&self, req: Request) -> anyhow::Result<Outcome> {
        let interrupted = || self.mem.interrupted.get();
        let engine = Engine {
            target: &self.mem,
            probe: &self.mem,
            ledger: &self.ledger,
            releases_dir: self.dir.join("releases"),
            interrupted: &interrupted,
        };
        execute(req, &engine)
    }

    fn request(&self, kind: RecordKind, c: char) -> Request {
        Request {
            kind,
            env: Environment::Staging,
            image: image(c),
            recorded: None,
            signature: Signature {
                status: SignatureStatus::Unverified,
                reason: Some("cosign not found".to_owned()),
            },
            attestations: Default::default(),
            config: None,
            reason: (kind == RecordKind::Rollback).then_some(Reason::Manual),
            verify_timeout: Duration::from_secs(1),
            initiated_by: "test".to_owned(),
            strategy: super::Strategy::BlueGreen,
            content: None,
            rebuild_of: None,
        }
    }

    fn deploy(&self, c: char) -> Outcome {
        self.execute(self.request(RecordKind::Deploy, c))
            .expect("engine ran")
    }

    /// Each ledger line as (sha char, record, status).
    fn lines(&self) -> Vec<(char, &'static str, Status)> {
        let text = std::fs::read_to_string(self.ledger.path()).unwrap_or_default();
        text.lines()
            .map(|l| {
                let r: Release = serde_json::from_str(l).expect("ledger line");
                let kind = match r.record {
                    RecordKind::Deploy => "deploy",
                    RecordKind::Rollback => "rollback",
                };
                let c = r.image_sha.as_str().chars().next().unwrap_or('?');
                (c, kind, r.status)
            })
            .collect()
    }

    fn runs(&self) -> Option<(char, bool)> {
        self.mem.main.borrow().as_ref().map(|i| {
            (
                i.image.sha.as_str().chars().next().unwrap_or('?'),
                i.healthy,
            )
        })
    }
}

use Status::{Complete, Failed, Interrupted, Running as Started};

#[test]
fn deploys_settle_and_drop_the_old_instance_only_once_verified() {
    let w = World::new("happy");
    assert!(w.deploy('a').ok());
    let second = w.deploy('b');
    assert!(second.ok() && second.auto_rollback.is_none());
    assert_eq!(second.release.previous_sha, Some(sha('a')));
    assert_eq!(
        w.lines(),
        [
            ('a', "deploy", Started),
            ('a', "deploy", Complete),
            ('b', "deploy", Started),
            ('b', "deploy", Complete)
        ]
    );
    assert_eq!(w.runs(), Some(('b', true)));
    assert!(w.mem.kept.borrow().is_none(), "the old instance is gone");
    assert_eq!(*w.mem.dropped.borrow(), [image('a')]);
}

#[test]
fn an_apply_error_restores_the_previous_release_and_says_why() {
    let w = World::new("apply");
    w.deploy('a');
    w.mem.apply_fails_for.borrow_mut().insert(sha('b'));
    let out = w.deploy('b');
    assert_eq!(out.release.status, Failed);
    let error = out.release.error.clone().unwrap_or_default();
    assert!(error.contains("bind: address already in use"), "{error}");
    assert_eq!(out.release.left_on_sha, Some(sha('a')));
    let rollback = out.auto_rollback.as_ref().expect("automatic rollback");
    assert_eq!(
        (rollback.status, rollback.reason),
        (Complete, Some(Reason::FailedVerification))
    );
    assert_eq!(w.runs(), Some(('a', true)));
    assert_eq!(
        w.lines()[2..],
        [
            ('b', "deploy", Started),
            ('b', "deploy", Failed),
            ('a', "rollback", Complete)
        ]
    );
    let said = finish(&out, false).expect_err("a failed deploy exits non-zero");
    assert!(
        said.to_string()
            .contains("rolled back automatically, staging runs aaaa"),
        "{said}"
    );
}

#[test]
fn a_verification_timeout_restores_the_previous_release() {
    let w = World::new("verify");
    w.deploy('a');
    w.mem.unhealthy.borrow_mut().insert(sha('b'));
    let out = w.deploy('b');
    assert_eq!(out.release.status, Failed);
    assert!(
        out.release
            .error
            .as_deref()
            .is_some_and(|e| e.contains("verification failed") && e.contains("health not ok")),
        "{:?}",
        out.release.error
    );
    assert_eq!(w.runs(), Some(('a', true)));
    assert_eq!(*w.mem.dropped.borrow(), [image('b')]);
}

#[test]
fn a_failed_restore_is_recorded_and_the_exit_says_the_previous_release_is_not_verified() {
    let w = World::new("restore");
    w.deploy('a');
    w.mem.unhealthy.borrow_mut().insert(sha('b'));
    w.mem.restore_fails.set(true);
    // Nothing kept to bring back, and re-applying the frozen config fails too.
    w.mem.apply_fails_for.borrow_mut().insert(sha('a'));
    let out = w.deploy('b');
    assert_eq!(out.release.status, Failed);
    assert_eq!(out.release.left_on_sha, None);
    let rollback = out.auto_rollback.as_ref().expect("the attempt is recorded");
    assert_eq!(rollback.status, Failed);
    assert_eq!(w.lines().last(), Some(&('a', "rollback", Failed)));
    let said = finish(&out, false).expect_err("non-zero").to_string();
    assert!(said.contains("could NOT be verified"), "{said}");
}

#[test]
fn a_refusal_that_changed_nothing_restores_nothing() {
    let w = World::new("untouched");
    w.deploy('a');
    w.mem.refused_untouched.borrow_mut().insert(sha('b'));
    let out = w.deploy('b');
    assert_eq!(out.release.status, Failed);
    assert!(out.auto_rollback.is_none(), "no second transaction");
    assert_eq!(out.release.left_on_sha, Some(sha('a')));
    assert_eq!(
        *w.mem.calls.borrow(),
        ["apply aaaaaaaaaaaa", "apply bbbbbbbbbbbb"]
    );
    assert_eq!(w.runs(), Some(('a', true)));
    assert_eq!(w.lines().last(), Some(&('b', "deploy", Failed)));
    let said = finish(&out, false).expect_err("non-zero").to_string();
    assert!(
        said.contains("code 13") && said.contains("nothing was changed, staging still runs aaaa"),
        "{said}"
    );
}

#[test]
fn ctrl_c_before_apply_changes_nothing() {
    let w = World::new("int-render");
    w.deploy('a');
    w.mem.interrupt_at.set(Some(Point::Render));
    let out = w.deploy('b');
    assert_eq!(out.release.status, Interrupted);
    assert_eq!(
        out.release.error.as_deref(),
        Some("interrupted before the target was touched")
    );
    assert_eq!(out.release.left_on_sha, Some(sha('a')));
    assert!(out.auto_rollback.is_none());
    assert_eq!(w.runs(), Some(('a', true)));
    assert!(!w.mem.calls.borrow().iter().any(|c| c.contains("bbbb")));
    let said = finish(&out, false).expect_err("non-zero").to_string();
    assert!(
        said.contains("nothing was changed, staging still runs aaaa"),
        "{said}"
    );
}

#[test]
fn ctrl_c_during_apply_or_verify_restores_the_verified_release() {
    for point in [Point::Apply, Point::Verify] {
        let w = World::new(&format!("int-{point:?}"));
        w.deploy('a');
        w.mem.interrupt_at.set(Some(point));
        let out = w.deploy('b');
        assert_eq!(out.release.status, Interrupted, "{point:?}");
        let rollback = out.auto_rollback.as_ref().expect("restored");
        assert_eq!(
            (rollback.status, rollback.reason),
            (Complete, Some(Reason::Interrupted)),
            "{point:?}"
        );
        assert_eq!(w.runs(), Some(('a', true)), "{point:?}");
        assert_eq!(w.lines().last(), Some(&('a', "rollback", Complete)));
    }
}

#[test]
fn ctrl_c_during_the_restore_does_not_cut_it_short() {
    let w = World::new("int-restore");
    w.deploy('a');
    w.mem.unhealthy.borrow_mut().insert(sha('b'));
    w.mem.interrupt_at.set(Some(Point::Restore));
    let out = w.deploy('b');
    assert_eq!(out.release.status, Interrupted);
    assert_eq!(out.auto_rollback.as_ref().map(|r| r.status), Some(Complete));
    assert_eq!(w.runs(), Some(('a', true)));
}

#[test]
fn a_target_that_cannot_be_asked_stops_the_release_before_anything() {
    let w = World::new("cannot-ask");
    w.deploy('a');
    let lines = w.lines().len();
    w.mem.cannot_ask.set(true);
    let err = w
        .execute(w.request(RecordKind::Deploy, 'b'))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("could not ask the docker target what runs"),
        "{err}"
    );
    assert_eq!(w.lines().len(), lines, "no ledger line");
    assert_eq!(w.runs(), Some(('a', true)));
    assert!(!w.mem.calls.borrow().iter().any(|c| c.contains("bbbb")));
}

/// `kill -9` mid-verification of B left B (never verified) running and A
/// (the last verified release) kept aside; the ledger says B `running`.
/// The next release keeps A until it is verified itself, and a failure
/// restores A, not B.
#[test]
fn after_an_unclean_death_the_last_verified_release_is_kept_and_restored() {
    for c_is_healthy in [false, true] {
        let w = World::new(&format!("kill9-{c_is_healthy}"));
        w.deploy('a');
        let mut dead = w.deploy('a').release;
        dead.id = "20260101T000000.000Z-bbbbbbbbbbbb".to_owned();
        dead.image_sha = sha('b');
        dead.status = Started;
        w.ledger.append(&dead).expect("append");
        *w.mem.kept.borrow_mut() = w.mem.main.borrow_mut().take();
        *w.mem.main.borrow_mut() = Some(Instance {
            image: image('b'),
            healthy: false,
            name: String::new(),
            env: String::new(),
        });
        w.mem.dropped.borrow_mut().clear();
        if !c_is_healthy {
            w.mem.unhealthy.borrow_mut().insert(sha('c'));
        }
        let out = w.deploy('c');
        // B was what the target ran when C started.
        assert_eq!(out.release.previous_sha, Some(sha('b')));
        let dropped = w.mem.dropped.borrow().clone();
        if c_is_healthy {
            assert!(out.ok());
            assert_eq!(w.runs(), Some(('c', true)));
            assert_eq!(
                dropped,
                [image('b'), image('a')],
                "A went only after C verified"
            );
        } else {
            assert_eq!(out.release.status, Failed);
            assert_eq!(out.release.left_on_sha, Some(sha('a')));
            assert_eq!(w.runs(), Some(('a', true)), "A, not the unverified B");
            assert!(!dropped.contains(&image('a')), "{dropped:?}");
        }
    }
}

#[test]
fn an_edited_frozen_config_is_refused_naming_config_registry_and_ledger() {
    let w = World::new("frozen");
    let a = w.deploy('a').release;
    w.deploy('b');
    let frozen = a.config.clone().expect("frozen config");
    // Someone edits the frozen config to run other bytes under A's tag.
    let mut other = image('a');
    other.digest = format!("sha256:{}", "f".repeat(64))
        .parse()
        .expect("digest");
    std::fs::write(&frozen, format!("{}\nname=\nenv=\n", other.pinned())).expect("edit");
    let lines = w.lines().len();
    let mut req = w.request(RecordKind::Rollback, 'a');
    req.config = Some(frozen);
    req.recorded = Some((format!("release {}", a.id), a.image_digest.clone()));
    let err = w.execute(req).err().expect("refused").to_string();
    assert!(
        err.contains(&other.digest.to_string())
            && err.contains(&image('a').digest.to_string())
            && err.contains(&format!("release {} recorded", a.id)),
        "{err}"
    );
    assert_eq!(w.lines().len(), lines, "refused before any ledger line");
    assert_eq!(w.runs(), Some(('b', true)));
}

#[test]
fn a_first_deploy_that_fails_leaves_nothing_running_and_says_so() {
    let w = World::new("first");
    w.mem.unhealthy.borrow_mut().insert(sha('a'));
    let out = w.deploy('a');
    assert_eq!(out.release.status, Failed);
    assert!(out.auto_rollback.is_none());
    assert_eq!(w.runs(), None, "the failed instance is removed");
    let said = finish(&out, false).expect_err("non-zero").to_string();
    assert!(said.contains("nothing verified ran before"), "{said}");
}

/// Issue 23, items 6 and 7: after a legitimate change of the environment's
/// port/name, a rollback must not move the service back to the old one,
/// nor be refused half-way and remove the healthy release: it restores the
/// image and its env, with the environment's current port and names.
#[test]
fn a_rollback_restores_image_and_env_with_the_current_port_and_names() {
    let w = World::new("rollback-settings");
    *w.mem.name.borrow_mut() = "api:18080".to_owned();
    *w.mem.env.borrow_mut() = "API_LOG=debug".to_owned();
    let a = w.deploy('a').release;
    *w.mem.env.borrow_mut() = "API_LOG=info".to_owned();
    assert!(w.deploy('b').ok());
    // The operator moves the environment to another port.
    *w.mem.name.borrow_mut() = "api:19080".to_owned();
    let mut req = w.request(RecordKind::Rollback, 'a');
    req.config = a.config.clone();
    let out = w.execute(req).expect("engine ran");
    assert!(out.ok(), "{:?}", out.release.error);
    let main = w.mem.main.borrow().clone().expect("runs");
    assert_eq!(main.image, image('a'));
    assert_eq!(main.name, "api:19080", "the environment's port now");
    assert_eq!(main.env, "API_LOG=debug", "A's own env");
    assert_eq!(w.lines().last(), Some(&('a', "rollback", Complete)));
}

/// A refusal touches nothing: a frozen config changed after it was applied
/// (here its env: the image is still right) is refused before the target
/// is asked to do anything, with no ledger line; B keeps running.
#[test]
fn a_frozen_config_that_no_longer_matches_the_ledger_is_refused_touching_nothing() {
    let w = World::new("frozen-digest");
    let a = w.deploy('a').release;
    assert!(a.config_sha256.is_some(), "the digest is recorded");
    w.deploy('b');
    let frozen = a.config.clone().expect("frozen config");
    let text = std::fs::read_to_string(&frozen).expect("frozen");
    std::fs::write(&frozen, text.replace("env=", "env=API_ADMIN=1")).expect("edit");
    let lines = w.lines().len();
    let calls = w.mem.calls.borrow().len();
    let mut req = w.request(RecordKind::Rollback, 'a');
    req.config = Some(frozen.clone());
    let err = w.execute(req).err().expect("refused").to_string();
    assert!(
        err.contains("was changed after it was applied")
            && err.contains(&frozen.display().to_string()),
        "{err}"
    );
    assert_eq!(w.lines().len(), lines, "no ledger line");
    assert_eq!(
        w.mem.calls.borrow().len(),
        calls,
        "the target was not touched"
    );
    assert_eq!(w.runs(), Some(('b', true)));
}

/// Issue 23, item 9: the ledger is behind what runs (B's `complete` line
/// torn away). A failed deploy restores B, the instance that ran before,
/// and checks it against what the target said ran, not the ledger's A.
#[test]
fn a_torn_ledger_does_not_make_a_good_restore_look_failed() {
    let w = World::new("torn-ledger");
    w.deploy('a');
    w.deploy('b');
    let text = std::fs::read_to_string(w.ledger.path()).expect("ledger");
    let keep: Vec<&str> = text.lines().collect();
    let last = keep[keep.len() - 1];
    let torn = format!(
        "{}\n{}",
        keep[..keep.len() - 1].join("\n"),
        &last[..last.len() / 2]
    );
    std::fs::write(w.ledger.path(), torn).expect("tear");
    w.mem.unhealthy.borrow_mut().insert(sha('c'));
    let out = w.deploy('c');
    assert_eq!(out.release.status, Failed);
    assert_eq!(out.release.previous_sha, Some(sha('b')));
    let rollback = out.auto_rollback.as_ref().expect("restored");
    assert_eq!(rollback.status, Complete, "B verified");
    assert_eq!(rollback.image_sha, sha('b'));
    assert_eq!(out.release.left_on_sha, Some(sha('b')));
    assert_eq!(w.runs(), Some(('b', true)));
    let said = finish(&out, false).expect_err("non-zero").to_string();
    assert!(
        said.contains("rolled back automatically, staging runs bbbb"),
        "{said}"
    );
}

/// Issue 23, item 10: a release left `running` by a `kill -9` is recorded
/// `abandoned` by the next one, before that one's own `running` line.
#[test]
fn the_next_release_records_a_dead_one_abandoned() {
    let w = World::new("abandoned");
    w.deploy('a');
    let mut dead = w.deploy('a').release;
    dead.id = "20260101T000000.000Z-bbbbbbbbbbbb".to_owned();
    dead.image_sha = sha('b');
    dead.status = Started;
    w.ledger.append(&dead).expect("append");
    assert!(w.deploy('c').ok());
    assert_eq!(
        w.lines()[4..],
        [
            ('b', "deploy", Started),
            ('b', "deploy", Status::Abandoned),
            ('c', "deploy", Started),
            ('c', "deploy", Complete)
        ]
    );
}

#[test]
fn a_release_that_fails_through_the_proxy_after_the_switch_is_switched_back() {
    let w = World::new("proxy");
    w.mem.proxied.set(true);
    assert!(w.deploy('a').ok());
    assert_eq!(w.deploy('a').release.url.as_deref(), Some("mem://proxy"));
    w.mem.proxy_fails.set(true);
    let out = w.deploy('b');
    assert!(!out.ok());
    let why = out.release.error.clone().unwrap_or_default();
    assert!(why.contains("not through mem://proxy"), "{why}");
    // Verified directly, switched, failed through the proxy, restored.
    let calls = w.mem.calls.borrow().clone();
    assert_eq!(
        calls[calls.len() - 3..],
        ["apply bbbbbbbbbbbb", "switch", "restore"]
    );
    assert_eq!(w.runs(), Some(('a', true)));
}
