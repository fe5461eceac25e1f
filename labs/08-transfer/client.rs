//! Lab 08: sending a file to another chat user, directly between the two
//! clients. Lab 07's chat client, plus /send, /accept and /refuse.
//!
//! The chat server only introduces the two users; the file goes over a
//! second TCP connection opened between the clients themselves. For a
//! moment the sender is a server: it listens, and the receiver connects.
//!
//! ```text
//! alice: /send bob report.pdf                    bob
//!   WHOIS bob → where bob connects from (311)
//!   socket → bind(chat address, port 0) → listen → getsockname
//!   PRIVMSG bob :\x01DCC SEND report.pdf IP PORT SIZE\x01 ──(server)──▶ "alice offers..."
//!                                                                       /accept alice
//!   accept ◀──────────────────────────────────────────────────── socket → connect(IP, PORT)
//!   the peer is bob's address? close the listener
//!   read(file) → write(socket)   ─────────── the file ───────────▶ read(socket) → write(file)
//!   read(socket)                 ◀── bytes received, 4 bytes each ── write(socket)
//!   close                                                            close, NAME.part → NAME
//! ```
//!
//! All of it in lab 07's single poll() loop, this file's `main`: stdin,
//! the chat socket, and one descriptor per transfer (its listening socket,
//! then its connection). No threads: a transfer never stops the chat.
//!
//! Reading order: this loop; then transfer.rs, the two state machines
//! where the lesson's calls are (listen → accept → the peer's address;
//! non-blocking connect → POLLOUT → SO_ERROR; the 4-byte
//! acknowledgements); then offers.rs, the commands and chat messages that
//! set a transfer up. The received file on disk and the progress line are
//! in src/download.rs and src/progress.rs.

mod offers;
mod transfer;

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{SockFlag, SockType, SockaddrStorage, connect, getsockname, socket};
use nix::unistd::{isatty, read, write};
use socket_labs::chat::{Chat, MAX_QUEUED};
use socket_labs::dcc::Size;
use socket_labs::irc;
use socket_labs::{Cli, DEFAULT_HOST, DEFAULT_PORT, Line, LineReader, OrDie, die, log, warn};

use offers::{Slot, Transfers};
use socket_labs::conn::inet_address;
use transfer::family;

const USAGE: &str = "\
usage: client [HOST] [PORT] [--nick NICK] [--raw] [--downloads DIR]
              [--max-size SIZE] [--offer-timeout SECS]

Lab 08: the chat client of lab 07, plus files sent directly to another
user (DCC SEND, as irssi and mIRC do): /send NICK PATH offers a file,
/accept NICK receives one, /refuse NICK declines. Type /help once
connected. The server is lab 07's (../07-chat/server).

  HOST                 server name or address (default 127.0.0.1)
  PORT                 server port (default 4242)
  --nick NICK          nickname to register with (else choose one with /nick NAME)
  --raw                also show the IRC lines as sent (>>) and received (<<)
  --downloads DIR      where received files go (default ./downloads, created if missing)
  --max-size SIZE      refuse offers larger than SIZE (bytes, or 500k, 10M, 2G);
                       offers larger than the free space are always refused
  --offer-timeout SECS how long an offer waits for the peer to connect, and
                       how long a transfer may stall (default 120)
  --help               print this help

Exit status: 0 after /quit or the end of input (once the transfers are
over), 1 if a call failed or the server closed the connection first, 2 for
bad arguments.
";

fn main() {
    let mut cli = Cli::new(USAGE);
    let nick: Option<String> = cli.value("--nick", "NICK");
    let raw = cli.flag("--raw");
    let downloads: PathBuf = cli
        .value("--downloads", "DIR")
        .unwrap_or_else(|| PathBuf::from("downloads"));
    let max_size: Option<Size> = cli.value("--max-size", "SIZE");
    let secs: u64 = cli.value("--offer-timeout", "SECS").unwrap_or(120);
    if !(1..=86_400).contains(&secs) {
        cli.usage_error(format_args!(
            "invalid SECS '{secs}': from 1 to 86400 seconds"
        ));
    }
    let host: String = cli
        .positional("HOST")
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();

    // The chat connection: lab 07's, unchanged.
    let (sock, server) = connect_to_chat(&host, port);
    let flags = fcntl(&sock, FcntlArg::F_GETFL).or_die("fcntl", server);
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(&sock, FcntlArg::F_SETFL(flags)).or_die("fcntl", server);

    // Our own address, as the chat connection uses it (getsockname(2)):
    // the address we offer files on is one the chat server, at least, can
    // reach us at. Behind NAT it is a private address nobody outside can.
    let local: SockaddrStorage = getsockname(sock.as_raw_fd()).or_die("getsockname", server);
    let Some(local) = inet_address(&local) else {
        die("getsockname", server, &Errno::EAFNOSUPPORT)
    };

    let stdin = std::io::stdin();
    if isatty(&stdin).unwrap_or(false) {
        warn!("connected to {server}; /help for the commands, Ctrl-D or /quit to leave");
    }

    let mut chat = Chat::new(raw);
    let offer_timeout = Duration::from_secs(secs);
    let mut transfers = Transfers::new(downloads, max_size.map(|s| s.0), offer_timeout, local.ip());
    let mut queued: Vec<u8> = Vec::new();
    match nick {
        Some(nick) => chat.register(nick.as_bytes(), &mut queued),
        None => log!("-!- choose a nickname: /nick NAME"),
    }

    let mut from_server = LineReader::new(irc::MAX_LINE);
    let mut from_user = LineReader::new(irc::MAX_LINE);
    let mut stdin_open = true;
    loop {
        // [0] stdin, [1] the chat socket, [2..] one per transfer: a
        // listening socket or a connection (lab 07's set, rebuilt each turn).
        let (stdin_ready, sock_readable, sock_writable, ready) = {
            let watch_stdin = stdin_open && !chat.quitting() && queued.len() < MAX_QUEUED;
            let mut sock_events = PollFlags::POLLIN;
            if !queued.is_empty() {
                sock_events |= PollFlags::POLLOUT;
            }
            let interests = transfers.interests();
            let mut fds = vec![
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
                PollFd::new(sock.as_fd(), sock_events),
            ];
            fds.extend(
                interests
                    .iter()
                    .map(|&(fd, events, _)| PollFd::new(fd, events)),
            );
            // The poll timeout is the transfers' clock: the next deadline.
            let timeout = match transfers.next_deadline() {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    PollTimeout::try_from(left.as_millis() + 1).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            // Unwatched, stdin is left out of the array (see lab 04): a pipe
            // whose writer has gone reports POLLHUP whatever was asked.
            let first = if watch_stdin { 0 } else { 1 };
            match poll(&mut fds[first..], timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(err) => die("poll", server, &err),
            }
            let gone = PollFlags::POLLHUP | PollFlags::POLLERR;
            let revents: Vec<PollFlags> = fds
                .iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect();
            let ready: Vec<(Slot, PollFlags)> = interests
                .iter()
                .zip(&revents[2..])
                .filter(|(_, revents)| !revents.is_empty())
                .map(|(&(_, _, slot), &revents)| (slot, revents))
                .collect();
            (
                watch_stdin && revents[0].intersects(PollFlags::POLLIN | gone),
                revents[1].intersects(PollFlags::POLLIN | gone),
                revents[1].intersects(PollFlags::POLLOUT | gone),
                ready,
            )
        };

        // The transfers first: their places in the lists are those poll
        // saw. Nothing is removed before the end of the turn.
        for (slot, revents) in ready {
            transfers.ready(slot, revents);
        }

        if sock_readable {
            match read(&sock, from_server.space()) {
                Ok(0) if chat.quitting() => return,
                // After QUIT, a reset is a goodbye too: the server closed
                // with some of our input unread, and close(2) then sends a
                // RST instead of a FIN (tcp(7)).
                Err(Errno::ECONNRESET) if chat.quitting() => return,
                Ok(0) => {
                    warn!("server {server} closed the connection");
                    transfers.abandon_all();
                    std::process::exit(1);
                }
                Ok(n) => {
                    from_server.filled(n);
                    while let Some(line) = from_server.next_line() {
                        if let Line::Whole(line) = line {
                            chat.receive_with(&line, &mut queued, &mut transfers);
                        }
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(err) => die("read", server, &err),
            }
        }

        if stdin_ready {
            match read(&stdin, from_user.space()) {
                Ok(0) => {
                    stdin_open = false;
                    if let Some(line) = from_user.rest() {
                        chat.typed_piece_with(line, &mut queued, &mut transfers);
                    }
                }
                Ok(n) => {
                    from_user.filled(n);
                    while let Some(line) = from_user.next_line() {
                        chat.typed_piece_with(line, &mut queued, &mut transfers);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(err) => die("read", "stdin", &err),
            }
        }
        // End of input: leave once our offers and transfers are over
        // (lab 07 leaves at once), so that `... | ./client` can send a file.
        if !stdin_open && !chat.quitting() && !transfers.busy() {
            chat.typed(b"/quit", &mut queued);
        }

        if sock_writable && !queued.is_empty() {
            match write(&sock, &queued) {
                Ok(n) => {
                    queued.drain(..n);
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(err) => die("write", server, &err),
            }
        }

        transfers.check_deadlines(Instant::now());
        transfers.show_progress();
        transfers.remove_done();
    }
}

/// The chat connection, as lab 07's client makes it: the first address
/// of `host` that accepts a connect(2), or the program ends with the
/// last address's error.
fn connect_to_chat(host: &str, port: u16) -> (OwnedFd, SocketAddr) {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .or_die("getaddrinfo", host)
        .collect();
    let mut last_error = Errno::EADDRNOTAVAIL;
    let mut last_addr = SocketAddr::from(([127, 0, 0, 1], port));
    for addr in addrs {
        let sock =
            socket(family(addr), SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
        match connect(sock.as_raw_fd(), &SockaddrStorage::from(addr)) {
            Ok(()) => return (sock, addr),
            Err(err) => (last_error, last_addr) = (err, addr),
        }
    }
    die("connect", last_addr, &last_error)
}
