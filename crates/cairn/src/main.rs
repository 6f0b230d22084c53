//! The `cairn` binary: command-line parsing, configuration and wiring. Logic lives in the
//! library crates; this file only connects them.
mod client;
mod data;
mod features;
mod gate;
mod monitor;
mod quality;
mod quickstart;
mod run;
mod serve;
mod server;
mod train;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// mimalloc instead of glibc's allocator: a served request allocates on a runtime thread and
/// the prediction log frees on its writer thread, and glibc's arenas make such cross-thread
/// frees contend on a lock with the next request's allocations (measured in
/// docs/benchmarks.md, "bench/serving"). Built without transparent huge pages (`no_thp`):
/// mimalloc returns memory left free for a second, and the prediction log's writer, which
/// encodes a file every second or so, then faulted whole 2 MiB pages back in, each zeroed by
/// the kernel; with 4 KiB pages its CPU per logged row fell by 15-35% and serving was
/// unchanged (measured in docs/benchmarks.md, "bench/serving").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Cairn: one binary for the life cycle of a machine-learning model.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server (MLflow-compatible REST API and artifact proxy).
    Server(server::ServerArgs),
    /// Serve one ONNX model over the Open Inference Protocol (v2 REST).
    Serve(serve::ServeArgs),
    /// The whole life cycle on a real dataset, through a server on the home folder: version,
    /// validate, train, gate, promote, serve, watch for drift; then keep serving.
    Quickstart(quickstart::QuickstartArgs),
    /// Version data: add, status, diff, log, checkout, verify, gc, push, pull, remote.
    Data(data::DataArgs),
    /// Run the pipeline in cairn.yaml: stages in dependency order, in parallel, cached.
    Repro(data::ReproArgs),
    /// Trace a model version back to its run, data and code, or a dataset version forward.
    Lineage(data::LineageArgs),
    /// Check a table against an expectation suite (Great Expectations' names and results).
    Validate(quality::ValidateArgs),
    /// Work with expectation suites: draft one from known-good data.
    Suite(quality::SuiteArgs),
    /// Compare a current dataset with a reference, column by column (Evidently's methods).
    Drift(quality::DriftArgs),
    /// Watch served models: training references, drift and label metrics of recent
    /// predictions, alert rules.
    Monitor(monitor::MonitorArgs),
    /// The feature store: apply definitions, build training sets point in time, materialize
    /// and serve online features (Feast's concepts and protocol).
    Features(features::FeaturesArgs),
    /// Run a training command or notebook as a tracked run: `cairn run -- python train.py`.
    Run(run::RunArgs),
    /// Run a recorded `cairn run` again, with its dataset versions, and compare the metrics.
    Rerun(run::RerunArgs),
    /// Train the baseline, a linear model and boosted trees on a table; one run each.
    Train(train::TrainArgs),
    /// Measure a model version against a promotion policy: metrics, latency, size, memory, data.
    Gate(gate::GateArgs),
    /// Move an alias to a model version that passed its gate (or --force with a --reason).
    Promote(gate::PromoteArgs),
}

/// `$CAIRN_HOME`, or `./cairn-data`.
pub fn home_dir() -> PathBuf {
    std::env::var_os("CAIRN_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cairn-data"))
}

fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Data commands run on plain threads (rayon, and their own runtime for remotes).
    match cli.command {
        Command::Data(args) => {
            init_logging("warn");
            return data::run(args);
        }
        Command::Repro(args) => {
            init_logging("warn");
            let code = data::repro(args)?;
            std::process::exit(code);
        }
        Command::Lineage(args) => {
            init_logging("warn");
            return data::lineage(args);
        }
        Command::Validate(args) => {
            init_logging("warn");
            let code = quality::run_validate(args)?;
            std::process::exit(code);
        }
        Command::Suite(args) => {
            init_logging("warn");
            return quality::run_suite(args);
        }
        Command::Drift(args) => {
            init_logging("warn");
            let code = quality::run_drift(args)?;
            std::process::exit(code);
        }
        Command::Monitor(args) => {
            init_logging("warn");
            let code = monitor::run(args)?;
            std::process::exit(code);
        }
        Command::Features(args) => {
            init_logging("warn");
            let code = features::run(args)?;
            std::process::exit(code);
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server(args) => {
            init_logging("info");
            runtime.block_on(server::run(args))
        }
        Command::Serve(args) => {
            init_logging("info");
            runtime.block_on(serve::run(args))
        }
        Command::Quickstart(args) => {
            init_logging("warn");
            runtime.block_on(quickstart::run(args))
        }
        Command::Run(args) => {
            init_logging("warn");
            let code = runtime.block_on(run::run(args))?;
            std::process::exit(code);
        }
        Command::Rerun(args) => {
            init_logging("warn");
            let code = runtime.block_on(run::rerun(args))?;
            std::process::exit(code);
        }
        Command::Train(args) => {
            init_logging("warn");
            runtime.block_on(train::run(args))
        }
        Command::Gate(args) => {
            init_logging("warn");
            let code = runtime.block_on(gate::gate(args))?;
            std::process::exit(code);
        }
        Command::Promote(args) => {
            init_logging("warn");
            runtime.block_on(gate::promote(args))
        }
        Command::Data(_)
        | Command::Repro(_)
        | Command::Lineage(_)
        | Command::Validate(_)
        | Command::Suite(_)
        | Command::Drift(_)
        | Command::Monitor(_)
        | Command::Features(_) => unreachable!("handled above"),
    }
}
