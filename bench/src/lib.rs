//! The load generator for the socket-labs echo servers, and `make bench`.
//!
//! - [`load`]: the generator (active, idle and churn modes), one epoll loop
//!   per thread, every echoed byte verified;
//! - [`count`]: instructions and system calls per round trip, counted
//!   under callgrind and strace: the Rust/C figure that noise does not move;
//! - [`proc`]: a server's processes and their CPU time, from /proc;
//! - [`hist`]: the latency histogram it records into;
//! - [`suite`]: `make bench`, every server design in Rust and in C, side by side;
//! - [`server`]: starting a lab's server pinned to its cores, and stopping
//!   it with everything it forked;
//! - [`output`]: the CSV, the Markdown tables and the SVG plots.

pub mod count;
pub mod hist;
pub mod load;
pub mod output;
pub mod proc;
pub mod server;
pub mod suite;
