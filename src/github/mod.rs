//! The GitHub runner's side of the contract: workflow commands and the
//! output and summary files.

pub mod commands;
pub mod output;
