//! The accept pause: how lab 03's select(2) server survives running out of
//! descriptors.
//!
//! When accept(2) fails with EMFILE (this process holds as many descriptors
//! as RLIMIT_NOFILE allows), ENFILE (the whole system does), ENOBUFS or
//! ENOMEM, the connection stays in the listener's backlog and the listener
//! stays readable. A loop that keeps the listener in select(2)'s read set
//! is woken at once, turn after turn: 100% CPU, and nobody new is served.
//! [`AcceptPause`] takes the listener out of the read set instead, until a
//! client leaves (a descriptor is free again) or the pause has lasted its
//! length (with ENFILE, another process may have freed some), and says so
//! once per shortage, not once per attempt.
//!
//! The waiting clients wait in the backlog and are served as soon as a
//! descriptor frees. Labs 04, 05 and 07 refuse them instead, with a spare
//! descriptor ([`crate::spare`]); lab 04's sheet compares the two.

use std::fmt::Display;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::time::{TimeVal, TimeValLike};

use crate::fail::reason;

/// Whether the listener is watched, and since when it is not.
#[derive(Debug)]
pub struct AcceptPause {
    /// How long a pause lasts unless a client leaves first.
    length: Duration,
    /// When accept(2) last ran out of descriptors; None: not paused.
    since: Option<Instant>,
    /// Whether this shortage has been reported. It ends when accept(2)
    /// finds the backlog empty.
    reported: bool,
}

impl AcceptPause {
    /// Not paused; a pause will last `length` unless a client leaves first.
    pub fn new(length: Duration) -> AcceptPause {
        AcceptPause {
            length,
            since: None,
            reported: false,
        }
    }

    /// Whether to watch the listener this turn: yes, unless paused. A pause
    /// that has lasted its length ends here.
    pub fn accepting(&mut self) -> bool {
        if self
            .since
            .is_some_and(|since| since.elapsed() >= self.length)
        {
            self.since = None;
        }
        self.since.is_none()
    }

    /// select(2)'s timeout: none (wait for ever) unless paused; paused, wake
    /// up after the pause's length to try accept(2) again.
    pub fn timeout(&self) -> Option<TimeVal> {
        let millis = self.length.as_millis() as i64;
        self.since.map(|_| TimeVal::milliseconds(millis))
    }

    /// accept(2) on `local` failed with `err`, for want of a descriptor
    /// (or of memory): stop watching the listener. The first time in a
    /// shortage, says so on stderr: `accept LOCAL: reason; new clients wait
    /// in the backlog`.
    pub fn start(&mut self, local: impl Display, err: Errno) {
        if !self.reported {
            crate::warn!(
                "accept {local}: {}; new clients wait in the backlog",
                reason(&err)
            );
            self.reported = true;
        }
        self.since = Some(Instant::now());
    }

    /// accept(2) found the backlog empty (EAGAIN): nobody waits for a
    /// descriptor any more. The next shortage is reported again.
    pub fn backlog_empty(&mut self) {
        self.reported = false;
    }

    /// A client left: a descriptor is free, accept(2) may succeed now.
    pub fn end(&mut self) {
        self.since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // start() says `accept 127.0.0.1:4242: ...` on stderr, as a server would.
    const LOCAL: &str = "127.0.0.1:4242";

    #[test]
    fn a_pause_lasts_until_a_client_leaves() {
        let mut pause = AcceptPause::new(Duration::from_secs(60));
        assert!(pause.accepting());
        assert_eq!(pause.timeout(), None);
        pause.start(LOCAL, Errno::EMFILE);
        assert!(!pause.accepting());
        assert_eq!(pause.timeout(), Some(TimeVal::seconds(60)));
        pause.end();
        assert!(pause.accepting());
        assert_eq!(pause.timeout(), None);
    }

    #[test]
    fn a_pause_ends_by_itself_after_its_length() {
        let mut pause = AcceptPause::new(Duration::from_millis(20));
        pause.start(LOCAL, Errno::ENFILE);
        assert!(!pause.accepting());
        std::thread::sleep(Duration::from_millis(30));
        assert!(pause.accepting());
        assert_eq!(pause.timeout(), None);
    }

    #[test]
    fn a_shortage_is_reported_once_until_the_backlog_empties() {
        let mut pause = AcceptPause::new(Duration::from_secs(60));
        pause.start(LOCAL, Errno::EMFILE);
        assert!(pause.reported);
        pause.end();
        pause.start(LOCAL, Errno::EMFILE);
        assert!(pause.reported, "still the same shortage");
        pause.backlog_empty();
        assert!(!pause.reported, "over: the next one is reported");
    }
}
