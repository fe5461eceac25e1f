//! Lab 07: the chat client. Lab 04's poll client, speaking IRC.
//!
//! connect → NICK, USER → loop { poll(stdin, socket) → a typed line becomes
//! an IRC command (/msg → PRIVMSG...) queued for the server → a line from
//! the server is shown as a person would read it (PING is answered) }.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, connect, socket};
use nix::unistd::{isatty, read, write};
use socket_labs::irc::{self, Message};
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

const COMMANDS: &str = "\
commands:
  /nick NEW          change your nickname (or choose the first one)
  /who               list the connected users
  /whois NICK        details on one user: address, port, channels, idle time
  /msg NICK text     private message
  /msgall text       message to every connected user
  /join #chan        join (or create) a channel; plain lines then go there
  /part [#chan]      leave the current channel (or #chan)
  /names [#chan]     who is on a channel
  /list              the channels
  /quit [message]    leave
  /help              this list";

/// Stdin is read only while less than this waits to go to the server.
const MAX_QUEUED: usize = 64 * 1024;

/// What the client knows of the conversation.
struct Chat {
    nick: Option<String>,
    registered: bool,
    user_sent: bool,
    /// Channels joined, the current one last.
    channels: Vec<String>,
    raw: bool,
    quitting: bool,
}

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

    let mut chat = Chat {
        nick: None,
        registered: false,
        user_sent: false,
        channels: Vec::new(),
        raw,
        quitting: false,
    };
    let mut queued: Vec<u8> = Vec::new();
    match nick {
        Some(nick) => chat.register(&nick, &mut queued),
        None => log!("-!- choose a nickname: /nick NAME"),
    }

    // Lines from the server are at most 512 bytes (RFC 2812 §2.3); typed
    // lines longer than a message can carry are refused, not cut.
    let mut from_server = LineReader::new(irc::MAX_LINE);
    let mut from_user = LineReader::new(irc::MAX_LINE);
    let mut stdin_open = true;
    loop {
        let (stdin_ready, sock_readable, sock_writable) = {
            let mut stdin_events = PollFlags::empty();
            if stdin_open && !chat.quitting && queued.len() < MAX_QUEUED {
                stdin_events |= PollFlags::POLLIN;
            }
            let mut sock_events = PollFlags::POLLIN;
            if !queued.is_empty() {
                sock_events |= PollFlags::POLLOUT;
            }
            let mut fds = [
                PollFd::new(stdin.as_fd(), stdin_events),
                PollFd::new(sock.as_fd(), sock_events),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(err) => die("poll", server, &err),
            }
            let gone = PollFlags::POLLHUP | PollFlags::POLLERR;
            let stdin_revents = fds[0].revents().unwrap_or(PollFlags::empty());
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
                Ok(0) if chat.quitting => return,
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
                    if !chat.quitting {
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

impl Chat {
    /// Queues one IRC message for the server.
    fn send(&self, queued: &mut Vec<u8>, command: &str, params: &[&str]) {
        let line = irc::format(None, command, params);
        if self.raw {
            log!(">> {}", line.trim_end());
        }
        queued.extend_from_slice(line.as_bytes());
    }

    fn register(&mut self, nick: &str, queued: &mut Vec<u8>) {
        self.send(queued, "NICK", &[nick]);
        if !self.user_sent {
            // USER <user> <mode> <unused> :<realname> (RFC 2812 §3.1.3)
            self.send(queued, "USER", &[nick, "0", "*", nick]);
            self.user_sent = true;
        }
        self.nick = Some(nick.to_string());
    }

    fn me(&self) -> &str {
        self.nick.as_deref().unwrap_or("?")
    }

    /// A piece of typed input: whole lines are used; a line too long for
    /// one IRC message is refused once, and the rest of it skipped.
    fn typed_piece(&mut self, line: Line, queued: &mut Vec<u8>) {
        match line {
            Line::Whole(line) => self.typed(&line, queued),
            Line::Long(_) => log!("-!- line too long: a message holds about 400 characters"),
            Line::Rest(_) => {}
        }
    }

    /// A line the user typed: a /command or text for the current channel.
    fn typed(&mut self, line: &[u8], queued: &mut Vec<u8>) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            return;
        }
        let Some(command) = text.strip_prefix('/') else {
            match self.channels.last() {
                Some(channel) => {
                    let channel = channel.clone();
                    self.send(queued, "PRIVMSG", &[&channel, text]);
                    log!("[{channel}] {}: {text}", self.me());
                }
                None => log!("-!- you are on no channel: /join #name, or /msg NICK text"),
            }
            return;
        };
        let (name, args) = command.split_once(' ').unwrap_or((command, ""));
        let args = args.trim();
        let (first, rest) = args.split_once(' ').unwrap_or((args, ""));
        if !self.user_sent && !matches!(name, "nick" | "help" | "quit") {
            log!("-!- choose a nickname first: /nick NAME");
            return;
        }
        match name {
            "nick" if !first.is_empty() => {
                if self.registered {
                    self.send(queued, "NICK", &[first]);
                } else {
                    self.register(first, queued);
                }
            }
            "who" => self.send(queued, "WHO", &[if first.is_empty() { "*" } else { first }]),
            "whois" if !first.is_empty() => self.send(queued, "WHOIS", &[first]),
            "msg" if !first.is_empty() && !rest.is_empty() => {
                self.send(queued, "PRIVMSG", &[first, rest]);
                log!("-> *{first}* {rest}");
            }
            "msgall" if !args.is_empty() => {
                // $* is the mask "every user on this server" (RFC 2812 §3.3.1).
                self.send(queued, "PRIVMSG", &["$*", args]);
                log!("[all] {}: {args}", self.me());
            }
            "join" if !first.is_empty() => {
                let channel = if first.starts_with('#') {
                    first.to_string()
                } else {
                    format!("#{first}")
                };
                self.send(queued, "JOIN", &[&channel]);
                // Lines typed next go there at once, without waiting for
                // the server's JOIN: piped input does not wait. An error
                // about the channel undoes it.
                self.channels
                    .retain(|c| irc::fold(c) != irc::fold(&channel));
                self.channels.push(channel);
            }
            "part" => match (first, self.channels.last()) {
                ("", Some(current)) => {
                    let current = current.clone();
                    self.send(queued, "PART", &[&current]);
                }
                ("", None) => log!("-!- you are on no channel"),
                (channel, _) => self.send(queued, "PART", &[channel]),
            },
            "names" => match (first, self.channels.last()) {
                ("", Some(current)) => {
                    let current = current.clone();
                    self.send(queued, "NAMES", &[&current]);
                }
                ("", None) => self.send(queued, "NAMES", &[]),
                (channel, _) => self.send(queued, "NAMES", &[channel]),
            },
            "list" => self.send(queued, "LIST", &[]),
            "quit" => {
                if self.user_sent {
                    let message = if args.is_empty() { "leaving" } else { args };
                    self.send(queued, "QUIT", &[message]);
                    self.quitting = true;
                } else {
                    std::process::exit(0);
                }
            }
            "help" => log!("{COMMANDS}"),
            "nick" | "whois" | "msg" | "msgall" | "join" => {
                log!("-!- /{name} needs more: /help shows how to use it")
            }
            _ => log!("-!- unknown command /{name}: /help lists them"),
        }
    }

    /// A line from the server, shown as a person would read it.
    fn receive(&mut self, line: &[u8], queued: &mut Vec<u8>) {
        let Some(msg) = Message::parse(line) else {
            return;
        };
        if self.raw {
            log!("<< {}", String::from_utf8_lossy(line).trim_end());
        }
        let from = msg
            .prefix
            .as_deref()
            .map(|p| p.split('!').next().unwrap_or(p))
            .unwrap_or("")
            .to_string();
        let is_me = irc::fold(&from) == irc::fold(self.me());
        let p = |i: usize| msg.param(i).unwrap_or("");
        let last = msg.params.last().map(String::as_str).unwrap_or("");
        match msg.command.to_ascii_uppercase().as_str() {
            "PING" => self.send(queued, "PONG", &[last]),
            "PRIVMSG" | "NOTICE" => {
                let target = p(0);
                let text = p(1);
                if msg.is("NOTICE") {
                    log!("-{from}- {text}");
                } else if target.starts_with('$') {
                    log!("[all] {from}: {text}");
                } else if target.starts_with('#') || target.starts_with('&') {
                    log!("[{target}] {from}: {text}");
                } else {
                    log!("*{from}* {text}");
                }
            }
            "JOIN" => {
                let channel = p(0).to_string();
                if is_me {
                    log!("-!- you joined {channel}");
                    self.channels
                        .retain(|c| irc::fold(c) != irc::fold(&channel));
                    self.channels.push(channel);
                } else {
                    log!("-!- {from} joined {channel}");
                }
            }
            "PART" => {
                let channel = p(0).to_string();
                if is_me {
                    log!("-!- you left {channel}");
                    self.channels
                        .retain(|c| irc::fold(c) != irc::fold(&channel));
                } else {
                    log!("-!- {from} left {channel}");
                }
            }
            "QUIT" => log!("-!- {from} quit ({})", p(0)),
            "NICK" => {
                if is_me {
                    self.nick = Some(p(0).to_string());
                    log!("-!- you are now known as {}", p(0));
                } else {
                    log!("-!- {from} is now known as {}", p(0));
                }
            }
            "TOPIC" => log!("-!- {from} set the topic of {}: {}", p(0), p(1)),
            "ERROR" if self.quitting => {}
            "ERROR" => log!("-!- server: {last}"),
            // RPL_WELCOME: registered, under the nick the server confirms.
            "001" => {
                self.registered = true;
                self.nick = Some(p(0).to_string());
                log!("-!- {last}");
            }
            // The rest of the welcome burst and the server's statistics.
            "002" | "003" | "004" | "005" | "251" | "252" | "253" | "254" | "255" | "265"
            | "266" | "375" | "376" => {}
            "372" => log!("{last}"),
            "422" => {} // no message of the day
            // WHO: one 352 per user, then 315.
            "352" => {
                // <me> <channel> <user> <host> <server> <nick> <flags> :<hops> <realname>
                match p(1) {
                    "*" => log!("{} ({}@{})", p(5), p(2), p(3)),
                    channel => log!("{} ({}@{}) on {channel}", p(5), p(2), p(3)),
                }
            }
            "315" => log!("-!- end of /who"),
            // WHOIS
            "311" => log!("{} is {}@{} ({})", p(1), p(2), p(3), last),
            "312" => log!("{} is on server {}", p(1), p(2)),
            "317" => log!("{} has been idle {} s", p(1), p(2)),
            "319" => log!("{} is on {}", p(1), last),
            // RPL_WHOISACTUALLY: the address and port the user connects from.
            "338" => log!("{} is connected from {}", p(1), p(2)),
            "318" => log!("-!- end of /whois"),
            // NAMES: 353 <me> <type> <channel> :<names>, then 366.
            "353" => log!("users on {}: {}", p(2), last),
            "366" => {}
            // LIST: 322 <me> <channel> <visible> :<topic>
            "321" => {}
            "322" => {
                let line = format!("{} ({} users) {}", p(1), p(2), last);
                log!("{}", line.trim_end());
            }
            "323" => log!("-!- end of /list"),
            "331" => log!("-!- {} has no topic", p(1)),
            "332" => log!("-!- topic of {}: {}", p(1), last),
            "433" => {
                log!(
                    "-!- nickname {} is taken: choose another with /nick NAME",
                    p(1)
                );
                if !self.registered {
                    self.nick = None;
                }
            }
            code if code.len() == 3 && code.starts_with(['4', '5']) => {
                // Errors: "<me> [<subject>] :<sentence>"; show one plain sentence.
                let subject = if msg.params.len() > 2 { p(1) } else { "" };
                // 403, 405, 471-476: we are not on that channel after all.
                if matches!(code, "403" | "405" | "471" | "473" | "474" | "475" | "476") {
                    self.channels.retain(|c| irc::fold(c) != irc::fold(subject));
                }
                if subject.is_empty() {
                    log!("-!- error: {last}");
                } else {
                    log!("-!- error: {last} ({subject})");
                }
            }
            // Any other reply (WHOIS extras such as the address, 338/378): its text.
            code if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
                let rest: Vec<&str> = msg.params.iter().skip(1).map(String::as_str).collect();
                log!("{}", rest.join(" "));
            }
            _ => {}
        }
    }
}
