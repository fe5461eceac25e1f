//! Error reporting: `call ADDR: reason` on stderr, as perror(3) would say it.
//!
//! A program that cannot go on says which call failed, on what, and why, and
//! exits 1. Nothing here panics: printing to a closed stdout or stderr is
//! ignored rather than turned into a panic as `println!` would. Log lines
//! and a terminal's status line (lab 08's progress, [`status`]) never mix.

use std::fmt::{self, Display};
use std::io::Write;
use std::process;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

/// Prints a log line on stdout and flushes it, so the line is seen as the
/// event happens even when stdout is a pipe. A closed stdout is ignored: a
/// server keeps serving when nobody reads its log.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::fail::print_out(format_args!($($arg)*)) };
}

/// Prints a line on stderr, for errors a program survives.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::fail::print_err(format_args!($($arg)*)) };
}

#[doc(hidden)]
pub fn print_out(args: fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    erase_status(&mut out);
    let _ = writeln!(out, "{args}");
    let _ = out.flush();
}

/// As [`log!`], for a line that is bytes and not text (lab 07's chat
/// client shows what the server relays as it came, as printf(3)'s `%s`
/// would): written as it is, then a newline.
pub fn print_out_bytes(line: &[u8]) {
    let mut out = std::io::stdout().lock();
    erase_status(&mut out);
    let _ = out.write_all(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

#[doc(hidden)]
pub fn print_err(args: fmt::Arguments) {
    erase_status(&mut std::io::stdout().lock());
    // stderr is not buffered: formatted piece by piece, one line would be
    // a dozen write(2) calls in strace. Made first, it is one.
    let line = format!("{args}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Whether a status line is on the terminal, without its newline.
static STATUS_SHOWN: AtomicBool = AtomicBool::new(false);

/// Shows `text` as the terminal's status line (a transfer's progress): it
/// is drawn over the previous one, and erased before the next log line so
/// the two never mix. Only for a terminal: the caller checks isatty(3).
pub fn status(text: &str) {
    let mut out = std::io::stdout().lock();
    // CR goes back to the start of the line, ESC [ K (ECMA-48 EL) erases
    // what was there: the line is rewritten in place.
    let _ = write!(out, "\r\x1b[K{text}");
    let _ = out.flush();
    STATUS_SHOWN.store(true, Ordering::Relaxed);
}

fn erase_status(out: &mut impl Write) {
    if STATUS_SHOWN.swap(false, Ordering::Relaxed) {
        let _ = write!(out, "\r\x1b[K");
        let _ = out.flush();
    }
}

/// The strerror(3) text of an error: `Connection refused`, without Rust's
/// `(os error 111)` or nix's `ECONNREFUSED: ` prefix.
pub fn reason(err: &dyn Reason) -> String {
    err.text()
}

/// Errors that have a strerror(3)-style text.
pub trait Reason {
    fn text(&self) -> String;
}

impl Reason for Errno {
    fn text(&self) -> String {
        strerror(*self as i32)
    }
}

/// The C library's own text for an errno value, so that the Rust programs
/// say what their C twins say (nix's texts differ for a few: EAGAIN is
/// "Try again" there, "Resource temporarily unavailable" in glibc).
fn strerror(code: i32) -> String {
    // std formats an OS error as strerror_r(3)'s text plus " (os error N)".
    let text = std::io::Error::from_raw_os_error(code).to_string();
    match text.rsplit_once(" (os error ") {
        Some((reason, _)) => reason.to_string(),
        None => text,
    }
}

impl Reason for std::io::Error {
    fn text(&self) -> String {
        match self.raw_os_error() {
            Some(code) => strerror(code),
            None => {
                // std's resolver errors read "failed to lookup address
                // information: Name or service not known": keep the reason.
                let text = self.to_string();
                match text.split_once(": ") {
                    Some((_, why)) => why.to_string(),
                    None => text,
                }
            }
        }
    }
}

/// What strsignal(3) says of a signal (`Killed` for SIGKILL), as the C
/// twins print it: `child 1234 killed by signal 9 (Killed)`.
pub fn signal_text(signal: nix::sys::signal::Signal) -> String {
    // SAFETY: strsignal(3) takes any number and returns a NUL-terminated
    // string of the C library's, valid until the next call on this thread;
    // it is copied at once. POSIX allows NULL for an unknown signal.
    unsafe {
        let text = libc::strsignal(signal as libc::c_int);
        if text.is_null() {
            return format!("signal {}", signal as i32);
        }
        std::ffi::CStr::from_ptr(text)
            .to_string_lossy()
            .into_owned()
    }
}

/// A starter's gap (`make exercise`): says on stderr which part of the
/// lesson is still to write and exits 1. It returns `!`, so it stands in
/// for any value: `let listener: OwnedFd = todo("socket(2)");`.
pub fn todo(what: &str) -> ! {
    warn!("TODO {what}: not written yet");
    process::exit(1)
}

/// Prints `call ADDR: reason` on stderr and exits 1.
pub fn die(call: &str, addr: impl Display, err: &dyn Reason) -> ! {
    warn!("{call} {addr}: {}", err.text());
    process::exit(1)
}

/// `result.or_die("bind", addr)`: the value, or `bind ADDR: reason` and exit 1.
/// The C twin's `if (bind(...) < 0) { perror(...); exit(1); }`.
pub trait OrDie<T> {
    fn or_die(self, call: &str, addr: impl Display) -> T;
}

impl<T, E: Reason> OrDie<T> for Result<T, E> {
    fn or_die(self, call: &str, addr: impl Display) -> T {
        match self {
            Ok(value) => value,
            Err(err) => die(call, addr, &err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_like_strerror() {
        assert_eq!(reason(&Errno::EADDRINUSE), "Address already in use");
        assert_eq!(reason(&Errno::EAGAIN), "Resource temporarily unavailable");
        let io = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(reason(&io), "Connection refused");
        let lookup = std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        );
        assert_eq!(reason(&lookup), "Name or service not known");
    }

    #[test]
    fn signals_read_like_strsignal() {
        use nix::sys::signal::Signal;
        assert_eq!(signal_text(Signal::SIGKILL), "Killed");
        assert_eq!(signal_text(Signal::SIGTERM), "Terminated");
    }
}
