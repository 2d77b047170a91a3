//! The `api` binary: parse arguments, read configuration, serve until SIGTERM/SIGINT.
//!
//! Exit codes: 0 clean stop (or healthy), 1 unhealthy / could not start / grace period
//! ran out with requests in flight, 2 bad configuration or arguments.

use std::process::ExitCode;

use api::{Config, cli::Command, healthcheck, logging, shutdown, version::BuildInfo};

fn main() -> ExitCode {
    let command = match api::cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("api: {message}\n\n{}", api::cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Serve => serve(),
        Command::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| {
                healthcheck::default_url(std::env::var("API_PORT").ok().as_deref())
            });
            if healthcheck::run(&url) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Version => {
            let build = BuildInfo::CURRENT;
            println!(
                "api {} ({} built {})",
                build.version, build.git_sha, build.built_at
            );
            ExitCode::SUCCESS
        }
        Command::Help => {
            println!("{}", api::cli::USAGE);
            ExitCode::SUCCESS
        }
    }
}

fn serve() -> ExitCode {
    // Validate everything before touching the network or the log: one line, exit 2.
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("api: {error}");
            return ExitCode::from(2);
        }
    };
    // Dropped at the end of this function: flushes the last log lines before exit.
    let _log = logging::init(&config.log);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Handlers first: a SIGTERM during startup then drains instead of killing.
        let signal = shutdown::signal()?;
        let listener = tokio::net::TcpListener::bind(config.addr())
            .await
            .map_err(|error| {
                std::io::Error::new(
                    error.kind(),
                    format!("cannot listen on {}: {error}", config.addr()),
                )
            })?;
        api::serve(config, listener, signal).await
    });
    // Do not wait for connection tasks the grace period gave up on.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "exiting with failure");
            ExitCode::FAILURE
        }
    }
}
