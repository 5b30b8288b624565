//! Whole systems of stacks in one step: the manifest (`manifest.rs`, with
//! where each of its keys is written: `key_lines.rs`), the order its stacks
//! deploy in (`graph.rs`), a starting manifest for a folder of templates
//! (`init.rs`); the run itself is the job's (`job/system.rs`).

pub mod graph;
pub mod init;
pub mod key_lines;
pub mod manifest;
