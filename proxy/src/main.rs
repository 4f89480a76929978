//! The `pipgate` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use pipgate_proxy::cli::{self, CaCmd, CacheCmd, Cli, Cmd, ConfigCmd, LogFormat, ProvenanceCmd};
use pipgate_proxy::App;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Ca {
            cmd:
                CaCmd::Init {
                    dir,
                    force,
                    permit,
                    config,
                    unconstrained,
                },
        } => cli::ca_init(&dir, force, &permit, config.as_deref(), unconstrained),
        Cmd::Ca {
            cmd: CaCmd::Bundle { config },
        } => cli::ca_bundle(config.as_deref()),
        Cmd::Config {
            cmd: ConfigCmd::Check { config },
        } => cli::config_check(&config),
        Cmd::Passwd { file, user } => cli::passwd(&file, &user),
        Cmd::Provenance { cmd } => {
            init_tracing(LogFormat::Text, std::io::stderr);
            match runtime(1) {
                Ok(rt) => rt.block_on(async {
                    match cmd {
                        ProvenanceCmd::Show { config, name } => {
                            cli::provenance::show(config.as_deref(), &name).await
                        }
                        ProvenanceCmd::Accept { config, name } => {
                            cli::provenance::accept(config.as_deref(), &name).await
                        }
                    }
                }),
                Err(code) => code,
            }
        }
        Cmd::Cache {
            cmd: CacheCmd::Stats { config },
        } => cli::cache_stats(config.as_deref()),
        Cmd::Cache {
            cmd: CacheCmd::Purge { config, name },
        } => cli::cache_purge(config.as_deref(), name.as_deref()),
        Cmd::Exec { config, cmd } => {
            // pipgate's own log would interleave with the command's output: errors only,
            // unless RUST_LOG asks for more. What it blocked is printed when the command ends.
            init_tracing_with(LogFormat::Text, std::io::stderr, "error");
            let config = match cli::load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match runtime(1) {
                Ok(rt) => rt.block_on(pipgate_proxy::exec(config, cmd)),
                Err(code) => code,
            }
        }
        Cmd::Explain {
            config,
            offline,
            name,
            version,
        } => {
            init_tracing(LogFormat::Text, std::io::stderr);
            match runtime(1) {
                Ok(rt) => rt.block_on(cli::explain(
                    config.as_deref(),
                    offline,
                    &name,
                    version.as_deref(),
                )),
                Err(code) => code,
            }
        }
        Cmd::Run { config, log_format } => {
            // Access lines are batched; the flusher writes what is left when `run` returns.
            let _flusher = match pipgate_proxy::log::Sink::new(std::io::stderr()) {
                Ok((sink, flusher)) => {
                    init_tracing(log_format, sink);
                    flusher
                }
                Err(e) => {
                    eprintln!("pipgate: cannot start the log writer: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let config = match cli::load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let threads = config.threads.count();
            match runtime(threads) {
                // On several threads the accept loops run on a worker, so the connections they
                // spawn start in that worker's own queue, not handed over from this thread.
                Ok(rt) => rt
                    .block_on(async { tokio::spawn(run(config, threads)).await })
                    .unwrap_or(ExitCode::FAILURE),
                Err(code) => code,
            }
        }
    }
}

/// One thread (the default) runs everything on this thread: on a box shared with the
/// installers it serves, handing tasks between threads costs more than a second core gives
/// (bench/README.md has the figures). More threads are for a gateway with cores to spare.
fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads).thread_name("pipgate-worker");
        b
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("pipgate: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

fn init_tracing<W>(format: LogFormat, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    init_tracing_with(format, writer, "info");
}

/// Logging to `writer` at `RUST_LOG`'s levels, else at `default`.
fn init_tracing_with<W>(format: LogFormat, writer: W, default: &str)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.event_format(pipgate_proxy::log::Logfmt).init(),
    }
}

async fn run(config: pipgate_proxy::config::Config, threads: usize) -> ExitCode {
    let ca_pem = config.ca.cert.clone();
    let credentials = config.access.credentials.is_some();
    let app = match App::bind(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("pipgate: {e}");
            return if e.is_config() {
                ExitCode::from(cli::EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            };
        }
    };
    let Some(addr) = app.local_addr() else {
        eprintln!("pipgate: listener has no address");
        return ExitCode::FAILURE;
    };
    // Machine-readable first lines (tests and scripts read them), then the hints for humans.
    println!("pipgate: listening on {addr}");
    if let Some(admin) = app.admin_addr() {
        println!("pipgate: admin on {admin}");
    }
    if let Some(transparent) = app.transparent_addr() {
        println!("pipgate: transparent on {transparent}");
    }
    println!("pipgate: CA certificate {}", ca_pem.display());
    print!("{}", cli::hints(addr, &ca_pem, credentials));
    for warning in cli::environment_warnings(&ca_pem) {
        tracing::warn!("{warning}");
    }
    tracing::info!(%addr, threads, "pipgate listening");
    spawn_reload_on_sighup(app.reloader());
    app.run(shutdown_signal()).await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

fn spawn_reload_on_sighup(reloader: pipgate_proxy::Reloader) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // The outcome is logged and counted by the reload itself.
            let _ = reloader.reload();
        }
    });
}
