//! The descriptor limit (RLIMIT_NOFILE): every client costs a descriptor.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::fail::{OrDie, reason};

/// Raises the soft limit on open descriptors to the hard one and returns
/// the limit in force. The soft limit is often 1024, too few for thousands
/// of clients; a process may raise it up to the hard limit, which only the
/// administrator can raise (getrlimit(2)). If raising fails, says so on
/// stderr and returns the soft limit.
pub fn raise_descriptor_limit() -> u64 {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).or_die("getrlimit", "RLIMIT_NOFILE");
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => hard,
        Err(err) => {
            crate::warn!("setrlimit RLIMIT_NOFILE: {}", reason(&err));
            soft
        }
    }
}
