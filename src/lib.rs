//! `ecs-stack-deploy`: deploys AWS CloudFormation stacks through change sets,
//! as a GitHub container action and as a CLI.
//!
//! Both front ends ([`cli`] and the runner's `INPUT_*` variables read by
//! [`inputs`]) produce the same raw inputs; [`job`] validates them, deploys
//! and reports. See `DESIGN.md` in the project's shared folder for the map.

pub(crate) mod apply;
pub(crate) mod aws;
pub mod cli;
pub(crate) mod console;
pub mod env;
pub(crate) mod github;
pub mod inputs;
pub mod job;
pub(crate) mod plan;
pub mod report;
pub(crate) mod service;
pub(crate) mod stack;
pub(crate) mod taskdef;
pub mod termination;

pub use stack::wait::PollSchedule;
