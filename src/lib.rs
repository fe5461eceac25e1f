//! What the labs share and what is not the lesson.
//!
//! The socket calls themselves are written out in every lab, at the call
//! site, as in the C originals. This library holds the rest: reading the
//! command line, reporting errors, framing lines across `read(2)` calls and
//! the write-all loop (Stevens' `writen`), the spare descriptor that lets
//! the servers of labs 04, 05 and 07 survive EMFILE, the IRC message format
//! of lab 07, the chat client's conversation (labs 07 and 08), and lab 08's
//! DCC offers; the token bucket that bounds lab 06's echoes and log.

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
pub use fail::{OrDie, die, reason, signal_text};
pub use io::{writen, writen_before};
pub use lines::{Line, LineReader};
