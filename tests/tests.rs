//! Integration tests: the real binary, run as the GitHub runner runs a
//! container action, against the local AWS emulator. One test binary with a
//! module per area (as ripgrep does), sharing one emulator process.

mod util;

mod act;
mod bad_input;
mod before_change;
mod bluegreen;
mod cancel;
mod chain;
mod container;
mod contract;
mod deploy;
mod faults;
mod github;
mod iam;
mod migration;
mod package;
mod proxy;
mod rollout;
mod strategies;
mod system;
mod verdict;
mod verify;
