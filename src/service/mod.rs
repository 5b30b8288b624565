//! ECS services: registering task definitions, updating the service, waiting
//! for the rollout we started, and saying why it fails.

pub mod ecr;
pub mod plan;
pub mod register;
pub mod rollout;
pub mod watch;
