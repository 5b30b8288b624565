//! The GitHub runner's side of the contract: workflow commands, the output
//! and summary files, and the event payload.

pub mod api;
pub mod commands;
pub mod event;
pub mod lint;
pub mod output;
