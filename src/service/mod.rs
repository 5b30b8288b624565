//! ECS services: registering task definitions, updating the service, waiting
//! for the rollout we started, and saying why it fails.

pub mod blue_green;
pub mod codedeploy;
pub mod ec2;
pub mod ecr;
pub mod ecs_json;
pub mod plan;
pub mod preflight;
pub mod register;
pub mod rollout;
pub mod strategy;
pub mod task;
pub mod verdict;
pub mod verify;
pub mod watch;
