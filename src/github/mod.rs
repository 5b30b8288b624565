//! The GitHub runner's side of the contract: workflow commands, the output
//! and summary files, and the event payload; and the REST API client with
//! its HTTP stack.

pub mod api;
pub mod commands;
pub mod event;
pub mod lint;
pub mod output;
pub(crate) mod transport;
