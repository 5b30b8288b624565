//! CloudFormation stacks: change sets, waiting, events, outputs and failure
//! causes.

pub mod changeset;
pub mod deploy;
pub mod events;
pub mod lookup;
pub mod parameters;
pub mod plan;
pub mod status;
pub mod template;
pub mod wait;
