//! Load for Clew: synthetic span workloads with the shape DESIGN.md calls "std" (and two
//! others), which `clew loadgen`, `clew bench` and the tests send, and [`ClewProcess`], which
//! runs the real `clew` binary on free loopback ports with a throwaway data directory.

mod server;
mod workload;

pub use server::ClewProcess;
pub use workload::{Profile, Workload};
