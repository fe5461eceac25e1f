//! What the labs share and what is not the lesson.
//!
//! The socket calls themselves are written out in every lab, at the call
//! site, as in the C originals. This library holds the rest, each module
//! named for what it does:
//!
//! - every lab: the command line (`cli`), error lines and strerror(3) and
//!   strsignal(3) texts (`fail`), the write-all loops, Stevens' `writen`
//!   (`io`), framing lines across `read(2)` calls (`lines`), an accepted
//!   connection's peer and a client's connect loop (`conn`);
//! - surviving a shortage of descriptors: raising RLIMIT_NOFILE (`limits`),
//!   lab 03's accept pause (`pause`), the spare descriptor of labs 04, 05
//!   and 07 (`spare`);
//! - rate limits: lab 06's token bucket that bounds its echoes and its
//!   log, lab 07's flood timer (RFC 1459 §8.10) (`rate`);
//! - labs 07 and 08: the IRC message format (`irc`), the chat client's
//!   conversation (`chat`), the date of a reply (`date`), DCC offers and
//!   safe file names (`dcc`), the received file (`download`) and the
//!   transfer's progress line (`progress`).
//!
//! The C twins share the same kind of helpers in `labs/common/` (labs.h,
//! irc.h, chat.h, dcc.h), as UNP's programs share unp.h.

pub mod chat;
pub mod cli;
pub mod conn;
pub mod date;
pub mod dcc;
pub mod download;
pub mod fail;
pub mod io;
pub mod irc;
pub mod limits;
pub mod lines;
pub mod pause;
pub mod progress;
pub mod rate;
pub mod spare;

pub use cli::{Cli, DEFAULT_HOST, DEFAULT_PORT};
pub use fail::{OrDie, die, reason, signal_text, todo};
pub use io::{writen, writen_before};
pub use lines::{Line, LineReader};
