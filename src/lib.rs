//! `ecs-stack-deploy`: deploys AWS CloudFormation stacks through change sets
//! and rolls out ECS services pinned to immutable images, as a GitHub
//! container action and as a CLI.
//!
//! One run is a pipeline of typed phases ([`job`]):
//!
//! ```text
//! inputs ─► job::prepare      raw inputs (action INPUT_* or CLI flags), files,
//!                             event payload, run context; no AWS call
//! plan   ─► plan::build_plan  read-only AWS calls → one Plan, printed
//! apply  ─► apply::apply_plan the Plan's steps, each recorded as it lands
//! report ─► job (report)      dispatch, GitHub deployment, outputs, summary
//! ```
//!
//! Every check that can fail on user input runs before the first call that
//! changes AWS, and the report never claims more or less than what was
//! applied. `ARCHITECTURE.md` in the repository is the map: the phases, the
//! modules, and where a new deploy kind or rollout strategy goes.

pub(crate) mod apply;
pub(crate) mod aws;
pub mod cli;
pub(crate) mod console;
pub mod env;
pub(crate) mod github;
pub mod inputs;
pub mod job;
pub(crate) mod plan;
pub(crate) mod proxy;
pub(crate) mod references;
pub mod refusal;
pub mod report;
pub(crate) mod service;
pub(crate) mod stack;
pub(crate) mod system;
pub(crate) mod taskdef;
pub mod termination;

pub use aws::direct_http_client;
pub use stack::wait::PollSchedule;
