//! Named, timed steps: `==> build image` … `    done in 3.2s`.

use std::time::{Duration, Instant};

pub struct Steps {
    pub timings: Vec<(String, Duration)>,
}

impl Steps {
    pub fn new() -> Steps {
        Steps {
            timings: Vec::new(),
        }
    }

    pub fn run<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        eprintln!("==> {name}");
        let started = Instant::now();
        let result = f();
        let took = started.elapsed();
        match &result {
            Ok(_) => eprintln!("    {name}: done in {:.1}s", took.as_secs_f64()),
            Err(_) => eprintln!("    {name}: failed after {:.1}s", took.as_secs_f64()),
        }
        self.timings.push((name.to_owned(), took));
        result
    }

    pub fn summary(&self) -> String {
        self.timings
            .iter()
            .map(|(n, d)| format!("{n} {:.1}s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
