//! The write-all loops: Stevens' `writen`, and one that keeps a deadline.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::{TimeVal, TimeValLike};
use nix::unistd::write;

/// Writes all of `buf` with write(2), however many calls it takes.
///
/// write(2) may write less than asked (a partial write: the socket's send
/// buffer had less room) and may be interrupted by a signal before writing
/// anything (EINTR); both are normal and mean "call again with the rest".
/// Any other error is returned: EPIPE or ECONNRESET when the peer is gone,
/// EAGAIN when a send timeout or non-blocking socket stops us.
pub fn writen<Fd: AsFd>(fd: Fd, mut buf: &[u8]) -> nix::Result<()> {
    while !buf.is_empty() {
        match write(&fd, buf) {
            Ok(0) => return Err(Errno::EIO), // write(2) never does this for a non-empty buffer
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Writes all of `buf` to a blocking socket with a send timeout, or gives
/// up with EAGAIN once `deadline` has passed.
///
/// Why not [`writen`] and SO_SNDTIMEO alone: the send timeout bounds each
/// write(2) call, not the whole write-all (socket(7)). A blocked write that
/// times out after sending part of the buffer returns that count; the loop
/// calls again for the rest, and that call waits a whole timeout more: a
/// peer that stopped reading is given up after twice the timeout, and one
/// that reads a little now and then, never.
///
/// So `fd` must be a blocking socket whose SO_SNDTIMEO is already set, to
/// at most the time until `deadline` (set once per connection: a write that
/// completes costs no other call). A blocking write(2) stops early only when
/// that timeout fired or a signal came: it returns a short count, EAGAIN
/// (nothing sent) or EINTR. Each time, SO_SNDTIMEO is set again to the time
/// left, and the rest is written; when no time is left, EAGAIN, as write(2)
/// says it. The last SO_SNDTIMEO set stays on the socket: a later write-all
/// may then stop early once, and is resumed the same way. Not for a
/// non-blocking socket, whose EAGAIN would be retried in a busy loop.
///
/// Errors as [`writen`]'s, and any of setsockopt(2).
pub fn writen_before<Fd: AsFd>(fd: Fd, mut buf: &[u8], deadline: Instant) -> nix::Result<()> {
    while !buf.is_empty() {
        match write(&fd, buf) {
            Ok(0) => return Err(Errno::EIO), // write(2) never does this for a non-empty buffer
            Ok(n) if n == buf.len() => return Ok(()),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(err) => return Err(err),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Errno::EAGAIN);
        }
        // Rounded up to the microsecond: an SO_SNDTIMEO of zero would mean
        // "no timeout" and block for ever (socket(7)). Capped at 136 years,
        // so that the count fits an i64 and TimeVal.
        let left = left.min(Duration::from_secs(u32::MAX.into()));
        let micros = left.as_nanos().div_ceil(1000) as i64;
        setsockopt(&fd, sockopt::SendTimeout, &TimeVal::microseconds(micros))?;
    }
    Ok(())
}
