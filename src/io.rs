//! The write-all loop: Stevens' `writen`.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::unistd::write;

/// Writes all of `buf` with write(2), however many calls it takes.
///
/// write(2) may write less than asked (a partial write: the socket's send
/// buffer had less room) and may be interrupted by a signal before writing
/// anything (EINTR); both are normal and mean "call again with the rest".
/// Any other error is returned: EPIPE or ECONNRESET when the peer is gone,
/// EAGAIN when a send timeout or non-blocking socket stops us.
pub fn write_all<Fd: AsFd>(fd: Fd, mut buf: &[u8]) -> nix::Result<()> {
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
