//! Thin entry point: install the signal handlers, capture the environment,
//! parse the front end, run the job, exit with its code (0 success, 1 deploy
//! failed or cancelled, 2 bad input).

use std::process::ExitCode;

use ecs_stack_deploy::PollSchedule;
use ecs_stack_deploy::cli::{Invocation, parse};
use ecs_stack_deploy::env::Environment;
use ecs_stack_deploy::job::{self, JobSettings, LogTarget};
use ecs_stack_deploy::termination::Termination;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    // First, before anything can take time: as PID 1 in the container the
    // binary would otherwise ignore the runner's SIGTERM.
    let termination = {
        let _entered = runtime.enter();
        Termination::install().unwrap_or_else(|error| {
            eprintln!("warning: cannot install signal handlers ({error}); a cancel stops the job without a report");
            Termination::never()
        })
    };
    let env = Environment::capture();
    let invocation = match parse(std::env::args_os(), &env) {
        Ok(invocation) => invocation,
        Err(error) => {
            // clap prints help/version to stdout and usage errors to stderr.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let raw = match invocation {
        Invocation::Action(raw) | Invocation::Deploy(raw) => raw,
        Invocation::LintWorkflows(dir) => return job::lint_workflows(&dir, &env).into(),
        Invocation::InitStacks { dir, output } => {
            return job::init_stacks(&dir, output.as_deref(), &env).into();
        }
        Invocation::Package { raw, output } => {
            return runtime
                .block_on(job::package(&raw, output.as_deref(), &env))
                .into();
        }
    };
    let settings = JobSettings {
        poll: PollSchedule::default(),
        termination,
        log: LogTarget::Stdout,
    };
    runtime.block_on(job::deploy(&raw, &env, settings)).into()
}
