//! Lab 07: the chat client. Lab 04's poll client, speaking IRC.
//!
//! connect → NICK, USER → loop { poll(stdin, socket) → a typed line becomes
//! an IRC command (/msg → PRIVMSG...) queued for the server → a line from
//! the server is shown as a person would read it (PING is answered) }.
//!
//! The loop is the lesson and stays here; what a typed line becomes and how
//! a server line reads is in src/chat.rs (shared with lab 08's client).

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, connect, socket};
use nix::unistd::{isatty, read, write};
use socket_labs::chat::{Chat, MAX_QUEUED};
use socket_labs::irc;
use socket_labs::{Cli, DEFAULT_HOST, DEFAULT_PORT, Line, LineReader, OrDie, die, log, warn};

const USAGE: &str = "\
usage: client [HOST] [PORT] [--nick NICK] [--raw]

Lab 07: chat client. Speaks IRC with the chat server (or any IRC server).
Type /help once connected for the commands; a plain line goes to the
channel you joined last.

  HOST         server name or address (default 127.0.0.1)
  PORT         server port (default 4242)
  --nick NICK  nickname to register with (else choose one with /nick NAME)
  --raw        also show the IRC lines as sent (>>) and received (<<)
  --help       print this help

Exit status: 0 after /quit or the end of input, 1 if a call failed or the
server closed the connection first, 2 for bad arguments.
";

fn main() {
    let mut cli = Cli::new(USAGE);
    let nick: Option<String> = cli.value("--nick", "NICK");
    let raw = cli.flag("--raw");
    let host: String = cli
        .positional("HOST")
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();

    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .or_die("getaddrinfo", &host)
        .collect();
    let mut connected: Option<(OwnedFd, SocketAddr)> = None;
    let mut last_error = Errno::EADDRNOTAVAIL;
    let mut last_addr = SocketAddr::from(([127, 0, 0, 1], port));
    for addr in addrs {
        let domain = match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let sock = socket(domain, SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
        match connect(sock.as_raw_fd(), &SockaddrStorage::from(addr)) {
            Ok(()) => {
                connected = Some((sock, addr));
                break;
            }
            Err(err) => (last_error, last_addr) = (err, addr),
        }
    }
    let Some((sock, server)) = connected else {
        die("connect", last_addr, &last_error)
    };
    // Non-blocking, as in lab 04: a write takes what fits, poll says when more will.
    let flags = fcntl(&sock, FcntlArg::F_GETFL).or_die("fcntl", server);
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(&sock, FcntlArg::F_SETFL(flags)).or_die("fcntl", server);

    let stdin = std::io::stdin();
    if isatty(&stdin).unwrap_or(false) {
        warn!("connected to {server}; /help for the commands, Ctrl-D or /quit to leave");
    }

    let mut chat = Chat::new(raw);
    let mut queued: Vec<u8> = Vec::new();
    match nick {
        Some(nick) => chat.register(nick.as_bytes(), &mut queued),
        None => log!("-!- choose a nickname: /nick NAME"),
    }

    // Lines from the server are at most 512 bytes (RFC 2812 §2.3); typed
    // lines longer than a message can carry are refused, not cut.
    let mut from_server = LineReader::new(irc::MAX_LINE);
    let mut from_user = LineReader::new(irc::MAX_LINE);
    let mut stdin_open = true;
    loop {
        let (stdin_ready, sock_readable, sock_writable) = {
            let watch_stdin = stdin_open && !chat.quitting() && queued.len() < MAX_QUEUED;
            let mut sock_events = PollFlags::POLLIN;
            if !queued.is_empty() {
                sock_events |= PollFlags::POLLOUT;
            }
            let mut fds = [
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
                PollFd::new(sock.as_fd(), sock_events),
            ];
            // Unwatched, stdin is left out of the array (see lab 04): a pipe
            // whose writer has gone reports POLLHUP whatever was asked.
            let first = if watch_stdin { 0 } else { 1 };
            match poll(&mut fds[first..], PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(err) => die("poll", server, &err),
            }
            let gone = PollFlags::POLLHUP | PollFlags::POLLERR;
            let stdin_revents = if watch_stdin {
                fds[0].revents().unwrap_or(PollFlags::empty())
            } else {
                PollFlags::empty()
            };
            let sock_revents = fds[1].revents().unwrap_or(PollFlags::empty());
            (
                stdin_revents.intersects(PollFlags::POLLIN | gone),
                sock_revents.intersects(PollFlags::POLLIN | gone),
                sock_revents.intersects(PollFlags::POLLOUT | gone),
            )
        };

        if sock_readable {
            match read(&sock, from_server.space()) {
                // After our QUIT the server closes: that is the goodbye.
                Ok(0) if chat.quitting() => return,
                // After QUIT, a reset is a goodbye too: the server closed
                // with some of our input unread, and close(2) then sends a
                // RST instead of a FIN (tcp(7)).
                Err(Errno::ECONNRESET) if chat.quitting() => return,
                Ok(0) => {
                    warn!("server {server} closed the connection");
                    std::process::exit(1);
                }
                Ok(n) => {
                    from_server.filled(n);
                    while let Some(line) = from_server.next_line() {
                        // Longer than IRC allows: not a message of ours to show.
                        if let Line::Whole(line) = line {
                            chat.receive(&line, &mut queued);
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
                        chat.typed_piece(line, &mut queued);
                    }
                    // End of input: leave politely, and read until the
                    // server's ERROR and close.
                    if !chat.quitting() {
                        chat.typed(b"/quit", &mut queued);
                    }
                }
                Ok(n) => {
                    from_user.filled(n);
                    while let Some(line) = from_user.next_line() {
                        chat.typed_piece(line, &mut queued);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(err) => die("read", "stdin", &err),
            }
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
    }
}
