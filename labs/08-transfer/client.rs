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
//! All of it in lab 07's single poll() loop: stdin, the chat socket, and
//! one descriptor per transfer (its listening socket, then its
//! connection). No threads: a transfer never stops the chat.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept4, bind, connect,
    getpeername, getsockname, getsockopt, listen, socket, sockopt,
};
use nix::sys::statvfs::statvfs;
use nix::unistd::{isatty, read, write};
use socket_labs::chat::{self, Chat, Extension, MAX_QUEUED};
use socket_labs::dcc::{self, Dcc, Offer, Size, human};
use socket_labs::irc::{self, Message};
use socket_labs::{
    Cli, DEFAULT_HOST, DEFAULT_PORT, Line, LineReader, OrDie, die, log, reason, warn,
};

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

const TRANSFER_COMMANDS: &str = "
  /send NICK PATH    offer a file to NICK; it goes straight to NICK's client
  /accept NICK       receive the file NICK offers (into --downloads)
  /refuse NICK       decline NICK's offer";

/// A file goes through a buffer of this size, one read(2) and one
/// write(2) at a time: a 1 GB file uses the memory of one chunk.
const CHUNK: usize = 64 * 1024;

/// Offers received and not yet answered, and transfers of our own, at
/// most: a flood of offers cannot take the client's memory or descriptors.
const MAX_OFFERS: usize = 16;
const MAX_TRANSFERS: usize = 16;

/// A progress line on a terminal is redrawn at most this often.
const REDRAW: Duration = Duration::from_millis(200);

fn main() {
    let mut cli = Cli::new(USAGE);
    let nick: Option<String> = cli.value("--nick", "NICK");
    let raw = cli.flag("--raw");
    let downloads: PathBuf = cli
        .value("--downloads", "DIR")
        .unwrap_or_else(|| PathBuf::from("downloads"));
    let max_size: Option<Size> = cli.value("--max-size", "SIZE");
    let timeout: u64 = cli.value("--offer-timeout", "SECS").unwrap_or(120);
    if !(1..=86_400).contains(&timeout) {
        cli.usage_error(format_args!(
            "invalid SECS '{timeout}': from 1 to 86400 seconds"
        ));
    }
    let host: String = cli
        .positional("HOST")
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();

    // The chat connection: lab 07's, unchanged.
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .or_die("getaddrinfo", &host)
        .collect();
    let mut connected: Option<(OwnedFd, SocketAddr)> = None;
    let mut last_error = Errno::EADDRNOTAVAIL;
    let mut last_addr = SocketAddr::from(([127, 0, 0, 1], port));
    for addr in addrs {
        let sock =
            socket(family(addr), SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
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
    let mut transfers = Transfers {
        downloads,
        max_size: max_size.map(|s| s.0),
        timeout: Duration::from_secs(timeout),
        local: local.ip(),
        tty: isatty(std::io::stdout()).unwrap_or(false),
        outgoing: Vec::new(),
        incoming: Vec::new(),
        whois: Vec::new(),
        redrawn: Instant::now(),
    };
    let mut queued: Vec<u8> = Vec::new();
    match nick {
        Some(nick) => chat.register(&nick, &mut queued),
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
            match slot {
                Slot::Out(i) => transfers.outgoing_ready(i, revents),
                Slot::In(i) => transfers.incoming_ready(i, revents),
            }
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

/// A transfer's place in the poll set: `outgoing[i]` or `incoming[i]`.
#[derive(Clone, Copy)]
enum Slot {
    Out(usize),
    In(usize),
}

/// The file transfers: what lab 08 adds to the chat.
struct Transfers {
    downloads: PathBuf,
    max_size: Option<u64>,
    timeout: Duration,
    /// Our address on the chat connection: offers listen there.
    local: IpAddr,
    /// Whether stdout is a terminal: a progress line, or plain lines.
    tty: bool,
    outgoing: Vec<Outgoing>,
    incoming: Vec<Incoming>,
    /// Folded nicks we sent a WHOIS about: its replies, up to its 318, are
    /// ours and not shown.
    whois: Vec<String>,
    redrawn: Instant,
}

/// A file we offer (/send).
struct Outgoing {
    to: String,
    name: String,
    file: File,
    size: u64,
    /// When to give up: the offer's timeout, then a stall's.
    deadline: Instant,
    state: Out,
}

enum Out {
    /// WHOIS sent: waiting for the server to say where the peer is.
    LookingUp,
    /// The offer is out; listening for the peer, who connects from `peer`
    /// (None when the server gives a host name, not an address).
    Listening {
        listener: OwnedFd,
        addr: SocketAddr,
        peer: Option<IpAddr>,
    },
    Sending(Sending),
    Done,
}

/// A connection that sends a file: a chunk read from the file, written to
/// the socket as the socket takes it; acknowledgements read back.
struct Sending {
    sock: OwnedFd,
    peer: SocketAddr,
    chunk: Vec<u8>,
    /// chunk[start..end] has been read from the file, not yet written.
    start: usize,
    end: usize,
    sent: u64,
    /// The receiver's last acknowledgement (bytes received, modulo 2^32),
    /// and one arriving in pieces.
    acked: Option<u32>,
    ack: [u8; 4],
    ack_len: usize,
    progress: Progress,
}

/// An offer received.
struct Incoming {
    from: String,
    /// The name it will be saved under ([`dcc::safe_name`]).
    name: String,
    offer: Offer,
    deadline: Instant,
    state: In,
}

enum In {
    /// Shown to the user, who may /accept or /refuse it.
    Offered,
    /// /accept: connect(2) in progress (non-blocking).
    Connecting {
        sock: OwnedFd,
        part: PartFile,
    },
    Receiving(Receiving),
    Done,
}

/// A connection that receives a file into a `.part` file.
struct Receiving {
    sock: OwnedFd,
    part: PartFile,
    chunk: Vec<u8>,
    received: u64,
    /// The acknowledgement being written and how much of it is out; 4 when
    /// all of it is.
    ack: [u8; 4],
    ack_sent: usize,
    progress: Progress,
}

struct Progress {
    started: Instant,
    /// Quarters reported as plain lines (not on a terminal).
    quarters: u64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            started: Instant::now(),
            quarters: 0,
        }
    }

    /// `52.4 MB (52428800 bytes) in 0.9 s, 58.1 MB/s`
    fn summary(&self, bytes: u64) -> String {
        let elapsed = self.started.elapsed();
        format!(
            "{} ({bytes} bytes) in {:.2} s, {}",
            human(bytes),
            elapsed.as_secs_f64(),
            dcc::rate(bytes, elapsed)
        )
    }
}

impl Extension for Transfers {
    fn help(&self) -> &'static str {
        TRANSFER_COMMANDS
    }

    fn command(&mut self, chat: &mut Chat, name: &str, args: &str, queued: &mut Vec<u8>) -> bool {
        let (nick, rest) = args.split_once(' ').unwrap_or((args, ""));
        let rest = rest.trim();
        match name {
            "send" if !nick.is_empty() && !rest.is_empty() => self.send(chat, nick, rest, queued),
            "accept" if !nick.is_empty() => self.accept(chat, nick, queued),
            "refuse" if !nick.is_empty() => self.refuse(chat, nick, queued),
            "send" | "accept" | "refuse" => {
                log!("-!- /{name} needs more: /help shows how to use it")
            }
            _ => return false,
        }
        true
    }

    fn message(&mut self, chat: &mut Chat, msg: &Message, queued: &mut Vec<u8>) -> bool {
        let from = chat::sender(msg);
        if msg.is("PRIVMSG") || msg.is("NOTICE") {
            let text = msg.param(1).unwrap_or("");
            let Some(body) = dcc::ctcp_body(text) else {
                return false;
            };
            let Some(dcc) = dcc::parse(body) else {
                return false; // a CTCP that is not DCC (ACTION...): the chat shows it
            };
            match dcc {
                Ok(Dcc::Send(offer)) if msg.is("PRIVMSG") => {
                    self.offered(from, chat::sender_host(msg), offer)
                }
                Ok(Dcc::Reject(name)) => self.rejected(from, &name),
                Ok(Dcc::Send(_)) => log!("-!- {from} sent an offer in a NOTICE: ignored"),
                Ok(Dcc::Unsupported(what)) => {
                    log!("-!- {from} sent a {what}: this client does not do that, ignored")
                }
                Err(why) => {
                    log!("-!- {from} sent a DCC offer that makes no sense ({why}): ignored")
                }
            }
            return true;
        }
        // The replies to our WHOIS: where the peer of an offer is.
        let nick = msg.param(1).unwrap_or("");
        let numeric = msg.command.len() == 3 && msg.command.bytes().all(|b| b.is_ascii_digit());
        if !numeric || !self.whois.contains(&irc::fold(nick)) {
            return false;
        }
        match msg.command.as_str() {
            // RPL_WHOISUSER: <me> <nick> <user> <host> * :<real name>
            "311" => self.listen(chat, nick, msg.param(3).unwrap_or(""), queued),
            // ERR_NOSUCHNICK
            "401" => self.no_peer(nick, "there is no such nick"),
            // RPL_ENDOFWHOIS: without a 311 before it, nobody to offer to.
            "318" => {
                self.whois.retain(|n| *n != irc::fold(nick));
                self.no_peer(nick, "the server did not say where they are");
            }
            _ => {}
        }
        true
    }
}

impl Transfers {
    /// /send NICK PATH: open the file, then ask the server where NICK is
    /// (WHOIS); the offer goes out with its reply (see `listen`).
    fn send(&mut self, chat: &Chat, to: &str, path: &str, queued: &mut Vec<u8>) {
        if self.outgoing.len() >= MAX_TRANSFERS {
            log!("-!- {MAX_TRANSFERS} files are offered or sent already: wait for one to end");
            return;
        }
        // O_NONBLOCK: open(2) of a FIFO would wait for a writer; a regular
        // file, the only kind sent, ignores the flag.
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .and_then(|file| Ok((file.metadata()?, file)));
        let (meta, file) = match opened {
            Ok((meta, file)) if meta.is_file() => (meta, file),
            Ok(_) => {
                log!("-!- {path} is not a regular file: not sent");
                return;
            }
            Err(err) => {
                log!("-!- open {path}: {}: not sent", reason(&err));
                return;
            }
        };
        // The receiver gets the base name only, made safe as ours would make it.
        let base = Path::new(path).file_name().unwrap_or_default();
        let Some(name) = dcc::safe_name(&base.to_string_lossy()) else {
            log!("-!- {path} has no usable file name: not sent");
            return;
        };
        chat.queue(queued, "WHOIS", &[to]);
        // Its replies are ours until its end (318); a server that never
        // ends one cannot make the list grow.
        if !self.whois.contains(&irc::fold(to)) {
            if self.whois.len() >= MAX_TRANSFERS {
                self.whois.remove(0);
            }
            self.whois.push(irc::fold(to));
        }
        self.outgoing.push(Outgoing {
            to: to.to_string(),
            name,
            file,
            size: meta.len(),
            deadline: Instant::now() + self.timeout,
            state: Out::LookingUp,
        });
    }

    /// The server says `nick` connects from `host` (WHOIS, 311): for each
    /// file waiting for `nick`, listen on a port of our own and offer it.
    fn listen(&mut self, chat: &Chat, nick: &str, host: &str, queued: &mut Vec<u8>) {
        let peer: Option<IpAddr> = host.parse().ok();
        for out in &mut self.outgoing {
            if !matches!(out.state, Out::LookingUp) || irc::fold(&out.to) != irc::fold(nick) {
                continue;
            }
            let (listener, bound) = match listen_for_peer(self.local) {
                Ok(listening) => listening,
                Err((call, err)) => {
                    out.state = Out::Done;
                    log!("-!- {call}: {}: {} not offered", reason(&err), out.name);
                    continue;
                }
            };
            chat.queue(
                queued,
                "PRIVMSG",
                &[&out.to, &dcc::send_offer(&out.name, bound, out.size)],
            );
            log!(
                "-!- offering {} ({}) to {} at {host}: listening on {bound} for {} s",
                out.name,
                human(out.size),
                out.to,
                self.timeout.as_secs()
            );
            if peer.is_none() {
                log!(
                    "-!- {host} is not an address: whoever connects first gets {}",
                    out.name
                );
            }
            out.deadline = Instant::now() + self.timeout;
            out.state = Out::Listening {
                listener,
                addr: bound,
                peer,
            };
        }
    }

    /// No WHOIS answer for `nick`: the files waiting for them are not offered.
    fn no_peer(&mut self, nick: &str, why: &str) {
        for out in &mut self.outgoing {
            if matches!(out.state, Out::LookingUp) && irc::fold(&out.to) == irc::fold(nick) {
                log!("-!- {nick}: {why}: {} not offered", out.name);
                out.state = Out::Done;
            }
        }
    }

    /// `DCC REJECT SEND name` from `from`: they refuse our offer.
    fn rejected(&mut self, from: &str, name: &str) {
        for out in &mut self.outgoing {
            let offered = matches!(out.state, Out::LookingUp | Out::Listening { .. });
            if offered && irc::fold(&out.to) == irc::fold(from) && out.name == name {
                out.state = Out::Done; // dropping the listener closes it
                log!("-!- {from} refused {}", out.name);
                return;
            }
        }
    }

    /// A DCC SEND offer from `from`, whose host the server gave in the
    /// message's prefix: shown, kept until /accept or /refuse.
    fn offered(&mut self, from: &str, host: Option<&str>, offer: Offer) {
        let Some(name) = dcc::safe_name(&offer.name) else {
            log!(
                "-!- {from} offers a file without a usable name ({:?}): ignored",
                offer.name
            );
            return;
        };
        // A port below 1024 is a service (mail, ssh...), not a client: an
        // offer pointing there would make us connect to it for someone.
        if offer.addr.port() < 1024 {
            log!(
                "-!- {from}'s offer of {name} points to {}, a service's port: ignored",
                offer.addr
            );
            return;
        }
        // A newer offer of the same file replaces the old one; past
        // MAX_OFFERS the oldest waiting offer goes.
        self.incoming.retain(|i| {
            !(matches!(i.state, In::Offered)
                && irc::fold(&i.from) == irc::fold(from)
                && i.name == name)
        });
        let waiting = |i: &&mut Incoming| matches!(i.state, In::Offered);
        if self.incoming.iter_mut().filter(waiting).count() >= MAX_OFFERS
            && let Some(old) = self.incoming.iter_mut().find(waiting)
        {
            log!(
                "-!- too many offers waiting: {} from {} forgotten",
                old.name,
                old.from
            );
            old.state = In::Done;
        }
        log!(
            "-!- {from} offers {name} ({}): /accept {from} or /refuse {from}",
            human(offer.size)
        );
        if name != offer.name {
            log!("-!- (offered as {:?}: saved as {name})", offer.name);
        }
        let host_ip = host.and_then(|h| h.parse::<IpAddr>().ok());
        if host_ip.is_some_and(|ip| ip.to_canonical() != offer.addr.ip().to_canonical()) {
            log!(
                "-!- (the offer points to {}, but {from} connects from {})",
                offer.addr.ip(),
                host.unwrap_or("")
            );
        }
        self.incoming.push(Incoming {
            from: from.to_string(),
            name,
            offer,
            deadline: Instant::now(),
            state: In::Offered,
        });
    }

    /// The first waiting offer from `nick`.
    fn offer_from(&mut self, nick: &str) -> Option<&mut Incoming> {
        let offer = self
            .incoming
            .iter_mut()
            .find(|i| matches!(i.state, In::Offered) && irc::fold(&i.from) == irc::fold(nick));
        if offer.is_none() {
            log!("-!- no offer from {nick}");
        }
        offer
    }

    /// /refuse NICK: tell the sender no (DCC REJECT, in a NOTICE), forget it.
    fn refuse(&mut self, chat: &Chat, nick: &str, queued: &mut Vec<u8>) {
        if let Some(offer) = self.offer_from(nick) {
            chat.queue(
                queued,
                "NOTICE",
                &[&offer.from, &dcc::reject(&offer.offer.name)],
            );
            log!("-!- refused {} from {}", offer.name, offer.from);
            offer.state = In::Done;
        }
    }

    /// /accept NICK: check the size, create NAME.part, connect to the sender.
    fn accept(&mut self, chat: &Chat, nick: &str, queued: &mut Vec<u8>) {
        let (downloads, max_size, timeout) = (self.downloads.clone(), self.max_size, self.timeout);
        let Some(offer) = self.offer_from(nick) else {
            return;
        };
        if let Err(err) = fs::create_dir_all(&downloads) {
            log!("-!- mkdir {}: {}", downloads.display(), reason(&err));
            return;
        }
        // Before any byte is written: does the file fit?
        let size = offer.offer.size;
        let too_big = match (max_size, free_space(&downloads)) {
            (Some(max), _) if size > max => Some(format!("more than --max-size {}", human(max))),
            (_, Ok(free)) if size > free => Some(format!(
                "more than the free space in {} ({})",
                downloads.display(),
                human(free)
            )),
            (_, Ok(_)) => None,
            (_, Err(err)) => Some(format!("{}: {}", downloads.display(), reason(&err))),
        };
        if let Some(why) = too_big {
            log!("-!- {} ({}) refused: {why}", offer.name, human(size));
            chat.queue(
                queued,
                "NOTICE",
                &[&offer.from, &dcc::reject(&offer.offer.name)],
            );
            offer.state = In::Done;
            return;
        }
        let part = match PartFile::create(&downloads, &offer.name) {
            Ok(part) => part,
            Err(err) => {
                log!(
                    "-!- create a file in {}: {}",
                    downloads.display(),
                    reason(&err)
                );
                offer.state = In::Done;
                return;
            }
        };
        let addr = offer.offer.addr;
        match connect_to_sender(addr) {
            Ok(sock) => {
                log!(
                    "-!- connecting to {} at {addr} for {}",
                    offer.from,
                    offer.name
                );
                offer.deadline = Instant::now() + timeout;
                offer.state = In::Connecting { sock, part };
            }
            Err(err) => {
                drop(part); // removed before the line says so
                offer.state = In::Done;
                log!(
                    "-!- connect {addr}: {}: {} not received",
                    reason(&err),
                    offer.name
                );
            }
        }
    }

    /// What each transfer waits for, for the poll set.
    fn interests(&self) -> Vec<(BorrowedFd<'_>, PollFlags, Slot)> {
        let mut interests = Vec::new();
        for (i, out) in self.outgoing.iter().enumerate() {
            match &out.state {
                // A connection waiting in the backlog makes the listener readable.
                Out::Listening { listener, .. } => {
                    interests.push((listener.as_fd(), PollFlags::POLLIN, Slot::Out(i)))
                }
                Out::Sending(s) => {
                    // Always readable: acknowledgements, or the receiver's close.
                    let mut events = PollFlags::POLLIN;
                    if s.sent < out.size {
                        events |= PollFlags::POLLOUT;
                    }
                    interests.push((s.sock.as_fd(), events, Slot::Out(i)));
                }
                Out::LookingUp | Out::Done => {}
            }
        }
        for (i, inc) in self.incoming.iter().enumerate() {
            match &inc.state {
                // A non-blocking connect(2) is done when the socket is writable.
                In::Connecting { sock, .. } => {
                    interests.push((sock.as_fd(), PollFlags::POLLOUT, Slot::In(i)))
                }
                In::Receiving(r) => {
                    let mut events = PollFlags::POLLIN;
                    if r.ack_pending() {
                        events |= PollFlags::POLLOUT;
                    }
                    interests.push((r.sock.as_fd(), events, Slot::In(i)));
                }
                In::Offered | In::Done => {}
            }
        }
        interests
    }

    /// The sender's side of a connection (or of its listening socket) is ready.
    fn outgoing_ready(&mut self, i: usize, revents: PollFlags) {
        let timeout = self.timeout;
        let Some(out) = self.outgoing.get_mut(i) else {
            return;
        };
        match &mut out.state {
            Out::Listening {
                listener,
                addr,
                peer,
            } => {
                let fd = match accept4(listener.as_raw_fd(), SockFlag::SOCK_NONBLOCK) {
                    Ok(fd) => fd,
                    // Gone before we took it (ECONNABORTED), or not there yet.
                    Err(Errno::EAGAIN | Errno::EINTR | Errno::ECONNABORTED) => return,
                    Err(err) => {
                        let line =
                            format!("accept {addr}: {}: {} not sent", reason(&err), out.name);
                        out.state = Out::Done;
                        log!("-!- {line}");
                        return;
                    }
                };
                // SAFETY: accept4(2) just returned this descriptor and nothing
                // else owns it: from here on, dropping the OwnedFd closes it.
                let conn = unsafe { OwnedFd::from_raw_fd(fd) };
                let Some(from) = getpeername::<SockaddrStorage>(conn.as_raw_fd())
                    .ok()
                    .and_then(|a| inet_address(&a))
                else {
                    return; // gone already: drop closes it
                };
                // Only the offered peer may take the file. What this proves:
                // the connection comes from the address the server saw the
                // peer at, not that it is the peer. Anyone else on that
                // address (the same machine, all of loopback, the same NAT)
                // passes; an address the server calls by name cannot be
                // checked at all.
                if let Some(expected) = *peer
                    && from.ip().to_canonical() != expected.to_canonical()
                {
                    log!(
                        "-!- refused a connection from {from} for {}: {} is at {expected}",
                        out.name,
                        out.to
                    );
                    return; // drop closes it; the offer still stands
                }
                // The peer is in: nobody else may come. Replacing the state
                // drops the listening socket, which closes it.
                log!("-!- {} connected from {from}: sending {}", out.to, out.name);
                out.deadline = Instant::now() + timeout;
                out.state = Out::Sending(Sending {
                    sock: conn,
                    peer: from,
                    chunk: vec![0; CHUNK],
                    start: 0,
                    end: 0,
                    sent: 0,
                    acked: None,
                    ack: [0; 4],
                    ack_len: 0,
                    progress: Progress::new(),
                });
            }
            Out::Sending(s) => {
                let end = (out.size & 0xffff_ffff) as u32;
                let line = match s.ready(&mut out.file, out.size, revents) {
                    Err(why) => format!("{} to {} failed: {why}", out.name, out.to),
                    Ok(_) if s.sent == out.size && s.acked == Some(end) => {
                        let summary = s.progress.summary(s.sent);
                        format!("sent {} to {}: {summary}", out.name, out.to)
                    }
                    Ok(moved) => {
                        if moved {
                            out.deadline = Instant::now() + timeout;
                        }
                        return;
                    }
                };
                out.state = Out::Done; // closes the connection
                log!("-!- {line}");
            }
            Out::LookingUp | Out::Done => {}
        }
    }

    /// The receiver's connection is ready.
    fn incoming_ready(&mut self, i: usize, revents: PollFlags) {
        let timeout = self.timeout;
        let Some(inc) = self.incoming.get_mut(i) else {
            return;
        };
        // The state is taken out, and put back unless the transfer is over.
        match std::mem::replace(&mut inc.state, In::Done) {
            In::Connecting { sock, part } => match getsockopt(&sock, sockopt::SocketError) {
                // SO_ERROR holds the outcome of a non-blocking connect(2).
                Ok(0) => {
                    log!("-!- connected to {}: receiving {}", inc.from, inc.name);
                    inc.deadline = Instant::now() + timeout;
                    let r = Receiving {
                        sock,
                        part,
                        chunk: vec![0; CHUNK],
                        received: 0,
                        ack: [0; 4],
                        ack_sent: 4,
                        progress: Progress::new(),
                    };
                    if inc.offer.size == 0 {
                        r.finish(inc);
                    } else {
                        inc.state = In::Receiving(r);
                    }
                }
                result => {
                    drop(part); // removed before the line says so
                    let why = match result {
                        Ok(code) => reason(&Errno::from_raw(code)),
                        Err(err) => reason(&err),
                    };
                    log!(
                        "-!- connect {}: {why}: {} not received",
                        inc.offer.addr,
                        inc.name
                    );
                }
            },
            In::Receiving(mut r) => match r.ready(inc.offer.size, revents) {
                Ok(_) if r.received == inc.offer.size => r.finish(inc),
                Ok(moved) => {
                    if moved {
                        inc.deadline = Instant::now() + timeout;
                    }
                    inc.state = In::Receiving(r);
                }
                Err(why) => {
                    drop(r); // the part file removed before the line says so
                    log!(
                        "-!- {} from {} failed: {why}; nothing kept",
                        inc.name,
                        inc.from
                    );
                }
            },
            other => inc.state = other,
        }
    }

    /// Whether anything of ours is under way: an offer out, a transfer.
    fn busy(&self) -> bool {
        self.outgoing.iter().any(|o| !matches!(o.state, Out::Done))
            || self
                .incoming
                .iter()
                .any(|i| matches!(i.state, In::Connecting { .. } | In::Receiving(_)))
    }

    fn next_deadline(&self) -> Option<Instant> {
        let outgoing = self
            .outgoing
            .iter()
            .filter(|o| !matches!(o.state, Out::Done))
            .map(|o| o.deadline);
        let incoming = self
            .incoming
            .iter()
            .filter(|i| matches!(i.state, In::Connecting { .. } | In::Receiving(_)))
            .map(|i| i.deadline);
        outgoing.chain(incoming).min()
    }

    /// Offers nobody took, transfers that stalled: given up.
    fn check_deadlines(&mut self, now: Instant) {
        let secs = self.timeout.as_secs();
        for out in &mut self.outgoing {
            if now < out.deadline {
                continue;
            }
            let (name, to) = (&out.name, &out.to);
            let line = match &out.state {
                Out::LookingUp => format!("no answer about {to} in {secs} s: {name} not offered"),
                Out::Listening { .. } => {
                    format!("nobody came for {name} in {secs} s: the offer to {to} is withdrawn")
                }
                Out::Sending(s) if s.sent == out.size => {
                    format!("sent {name} to {to}, but {to} did not confirm the end within {secs} s")
                }
                Out::Sending(_) => format!("{name} to {to} stalled for {secs} s: abandoned"),
                Out::Done => continue,
            };
            out.state = Out::Done; // closes its descriptor before the line says so
            log!("-!- {line}");
        }
        for inc in &mut self.incoming {
            let active = matches!(inc.state, In::Connecting { .. } | In::Receiving(_));
            if active && now >= inc.deadline {
                inc.state = In::Done; // removes the part file
                log!(
                    "-!- {} from {} stalled for {secs} s: abandoned, nothing kept",
                    inc.name,
                    inc.from
                );
            }
        }
    }

    /// Progress: one line redrawn in place on a terminal; elsewhere a plain
    /// line at each quarter of each transfer.
    fn show_progress(&mut self) {
        let mut parts = Vec::new();
        let sending = self.outgoing.iter_mut().filter_map(|o| match &mut o.state {
            Out::Sending(s) => Some((
                format!("{} to {}", o.name, o.to),
                s.sent,
                o.size,
                &mut s.progress,
            )),
            _ => None,
        });
        let receiving = self.incoming.iter_mut().filter_map(|i| match &mut i.state {
            In::Receiving(r) => Some((
                format!("{} from {}", i.name, i.from),
                r.received,
                i.offer.size,
                &mut r.progress,
            )),
            _ => None,
        });
        for (what, done, total, progress) in sending.chain(receiving) {
            let line = format!(
                "{what}: {}",
                dcc::progress(done, total, progress.started.elapsed())
            );
            if self.tty {
                parts.push(line);
            } else {
                let quarters = (u128::from(done) * 4 / u128::from(total.max(1))) as u64;
                if quarters > progress.quarters && quarters < 4 {
                    progress.quarters = quarters;
                    log!("-!- {line}");
                }
            }
        }
        if !parts.is_empty() && self.redrawn.elapsed() >= REDRAW {
            socket_labs::fail::status(&parts.join(" | "));
            self.redrawn = Instant::now();
        }
    }

    /// The end of the turn: forget what is over (its descriptors close, a
    /// part file left is removed, as each is dropped).
    fn remove_done(&mut self) {
        self.outgoing.retain(|o| !matches!(o.state, Out::Done));
        self.incoming.retain(|i| !matches!(i.state, In::Done));
    }

    /// The client is leaving without the chat: every transfer is dropped
    /// (process::exit runs no destructors, so this is said explicitly).
    fn abandon_all(&mut self) {
        if self.busy() {
            log!("-!- transfers abandoned");
        }
        self.outgoing.clear();
        self.incoming.clear();
    }
}

impl Sending {
    /// Reads acknowledgements (and the receiver's close), writes the next
    /// piece of the file. Ok(true) if something moved.
    fn ready(&mut self, file: &mut File, size: u64, revents: PollFlags) -> Result<bool, String> {
        let mut moved = false;
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        if revents.intersects(readable) {
            // Each acknowledgement is 4 bytes, big-endian: how many bytes
            // the receiver has so far, modulo 2^32. They may arrive split
            // or several at once, as any bytes on a TCP stream.
            let mut acks = [0u8; 512];
            match read(&self.sock, &mut acks) {
                Ok(0) if self.sent == size => {
                    // Closed after everything: classic receivers close at
                    // the end instead of (or after) the last acknowledgement.
                    self.acked = Some((size & 0xffff_ffff) as u32);
                }
                Ok(0) => {
                    return Err(format!(
                        "{} closed the connection after {} of {} bytes",
                        self.peer, self.sent, size
                    ));
                }
                Ok(n) => {
                    for &byte in &acks[..n] {
                        self.ack[self.ack_len] = byte;
                        self.ack_len += 1;
                        if self.ack_len == 4 {
                            self.acked = Some(u32::from_be_bytes(self.ack));
                            self.ack_len = 0;
                        }
                    }
                    moved = true;
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(err) => return Err(format!("read {}: {}", self.peer, reason(&err))),
            }
        }
        if revents.intersects(PollFlags::POLLOUT) && self.sent < size {
            if self.start == self.end {
                // The next chunk, and never past the size we announced.
                let want = (size - self.sent).min(CHUNK as u64) as usize;
                match file.read(&mut self.chunk[..want]) {
                    Ok(0) => return Err(format!("the file shrank to {} bytes", self.sent)),
                    Ok(n) => (self.start, self.end) = (0, n),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(moved),
                    Err(err) => return Err(format!("read the file: {}", reason(&err))),
                }
            }
            // One write(2): the socket takes what fits; poll says when more will.
            match write(&self.sock, &self.chunk[self.start..self.end]) {
                Ok(n) => {
                    self.start += n;
                    self.sent += n as u64;
                    moved = true;
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(err) => return Err(format!("write {}: {}", self.peer, reason(&err))),
            }
        }
        Ok(moved)
    }
}

impl Receiving {
    /// Reads the next piece, appends it to the part file, acknowledges.
    /// Ok(true) if something moved.
    fn ready(&mut self, size: u64, revents: PollFlags) -> Result<bool, String> {
        let mut moved = false;
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        if revents.intersects(readable) {
            // Never more than announced: a sender that sends more is cut
            // off at the size, the rest never read.
            let want = (size - self.received).min(CHUNK as u64) as usize;
            match read(&self.sock, &mut self.chunk[..want]) {
                Ok(0) => {
                    return Err(format!(
                        "the sender closed the connection after {} of {} bytes",
                        self.received, size
                    ));
                }
                Ok(n) => {
                    self.part.file.write_all(&self.chunk[..n]).map_err(|err| {
                        format!("write {}: {}", self.part.path.display(), reason(&err))
                    })?;
                    self.received += n as u64;
                    moved = true;
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(err) => return Err(format!("read: {}", reason(&err))),
            }
        }
        self.send_ack()
            .map_err(|err| format!("write the acknowledgement: {}", reason(&err)))?;
        Ok(moved)
    }

    /// Whether an acknowledgement is still to go out.
    fn ack_pending(&self) -> bool {
        self.ack_sent < 4 || u32::from_be_bytes(self.ack) != (self.received & 0xffff_ffff) as u32
    }

    /// Tells the sender how many bytes arrived: 4 bytes, big-endian, modulo
    /// 2^32 (the classic DCC acknowledgement, which irssi waits for before
    /// it closes). Only the latest count matters, so one is kept, never a
    /// queue; one begun is finished first, or the stream would lose its
    /// 4-byte framing.
    fn send_ack(&mut self) -> nix::Result<()> {
        loop {
            if self.ack_sent == 4 {
                if !self.ack_pending() {
                    return Ok(());
                }
                self.ack = ((self.received & 0xffff_ffff) as u32).to_be_bytes();
                self.ack_sent = 0;
            }
            match write(&self.sock, &self.ack[self.ack_sent..]) {
                Ok(n) => self.ack_sent += n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(()), // poll says POLLOUT when there is room
                Err(err) => return Err(err),
            }
        }
    }

    /// All announced bytes are in: the last acknowledgement, the part file
    /// renamed to its final name, the connection closed.
    fn finish(mut self, inc: &Incoming) {
        // Best effort: 4 bytes into an empty send buffer. A sender that
        // never reads its acknowledgements may not get this one; it sees
        // our close instead.
        let _ = self.send_ack();
        let summary = self.progress.summary(self.received);
        let kept = self.part.keep();
        drop(self); // closes the connection (and removes a part not kept)
        match kept {
            Ok(path) => log!(
                "-!- received {} from {}: {summary}, saved as {}",
                inc.name,
                inc.from,
                path.display()
            ),
            Err(err) => log!("-!- keep {}: {}: nothing kept", inc.name, reason(&err)),
        }
    }
}

/// A file being received, written as `NAME.part` until it is complete: a
/// transfer that fails leaves nothing (the part is removed when dropped),
/// and a client killed midway leaves a name that says it is partial.
struct PartFile {
    file: File,
    dir: PathBuf,
    name: String,
    /// The number tried first for the final name ([`dcc::numbered`]).
    number: u32,
    path: PathBuf,
    kept: bool,
}

impl PartFile {
    /// Creates `dir/NAME.part`, or `dir/NAME-1.part`... for the first
    /// number whose final name and part are both free. O_EXCL
    /// (create_new): an existing file, or a symlink planted there, is
    /// never opened, let alone overwritten.
    fn create(dir: &Path, name: &str) -> io::Result<PartFile> {
        for number in 0..1000 {
            let candidate = dcc::numbered(name, number);
            if fs::symlink_metadata(dir.join(&candidate)).is_ok() {
                continue;
            }
            let path = dir.join(format!("{candidate}.part"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(PartFile {
                        file,
                        dir: dir.to_path_buf(),
                        name: name.to_string(),
                        number,
                        path,
                        kept: false,
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
        Err(io::Error::from(io::ErrorKind::AlreadyExists))
    }

    /// Gives the complete file its final name without overwriting anything:
    /// link(2) fails with EEXIST where rename(2) would replace a file
    /// created meanwhile; then the next number is tried.
    fn keep(&mut self) -> io::Result<PathBuf> {
        for number in self.number..self.number + 1000 {
            let target = self.dir.join(dcc::numbered(&self.name, number));
            let done = match fs::hard_link(&self.path, &target) {
                // No hard links on this file system (FAT): rename(2), if the name is free.
                Err(err) if err.raw_os_error() == Some(libc::EPERM) => {
                    match fs::symlink_metadata(&target) {
                        Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
                        Err(_) => fs::rename(&self.path, &target),
                    }
                }
                other => other,
            };
            match done {
                Ok(()) => {
                    self.kept = true;
                    let _ = fs::remove_file(&self.path); // the part's name; gone after a rename
                    return Ok(target);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
        Err(io::Error::from(io::ErrorKind::AlreadyExists))
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The bytes free for us in `dir`: statvfs(3)'s blocks available to an
/// unprivileged user, times the fragment size.
fn free_space(dir: &Path) -> nix::Result<u64> {
    let fs = statvfs(dir)?;
    Ok((fs.blocks_available() as u64).saturating_mul(fs.fragment_size() as u64))
}

/// The second connection's server side, as lab 01's server: a socket
/// bound to `ip` (our address on the chat connection) and port 0, so that
/// the kernel picks a free port, listen(2) with a backlog of 1 (one peer
/// is expected), and getsockname(2) to learn which port we got.
fn listen_for_peer(ip: IpAddr) -> Result<(OwnedFd, SocketAddr), (String, Errno)> {
    let addr = SocketAddr::new(ip, 0);
    let failed = |call: &'static str| move |err| (format!("{call} {addr}"), err);
    let listener = socket(
        family(addr),
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(failed("socket"))?;
    bind(listener.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(failed("bind"))?;
    let backlog = Backlog::new(1).map_err(failed("listen"))?;
    listen(&listener, backlog).map_err(failed("listen"))?;
    let bound: SockaddrStorage =
        getsockname(listener.as_raw_fd()).map_err(failed("getsockname"))?;
    Ok((listener, inet_address(&bound).unwrap_or(addr)))
}

/// The second connection's client side, as lab 01's client, but
/// non-blocking: connect(2) answers EINPROGRESS at once, and poll(2) says
/// POLLOUT when the handshake is over (connect(2), "EINPROGRESS"), so the
/// chat goes on meanwhile, even towards an address that never answers.
fn connect_to_sender(addr: SocketAddr) -> nix::Result<OwnedFd> {
    let sock = socket(
        family(addr),
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    match connect(sock.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(sock),
        Err(err) => Err(err),
    }
}

fn family(addr: SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The IP address and port of a socket address, if it is one.
fn inet_address(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}
