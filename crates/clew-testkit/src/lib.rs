//! What tests, `clew loadgen` and `clew bench` share: synthetic span workloads with the shape
//! DESIGN.md calls "std" (and two others), and [`TestServer`], which runs the real `clew`
//! binary on free loopback ports with a throwaway data directory.

mod server;
mod workload;

pub use server::TestServer;
pub use workload::{Profile, Workload};
