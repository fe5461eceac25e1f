//! Lab 07: a chat server speaking a small, honest subset of IRC (RFC 2812).
//!
//! Lab 04's structure: one process, poll(), non-blocking sockets. What is
//! new is the server's role: it is the go-between of its users. A line read
//! from one client is a command (`PRIVMSG #room :hi`) that makes the server
//! queue lines for other clients, so each client now has an output queue
//! that others fill, and a client that stops reading must not let its queue
//! grow without bound or stall the rest.
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → loop { poll(listener
//! and every client, until the next PING or timeout is due) → read from the
//! readable, each whole line a command (commands.rs) → PING the silent, drop
//! the late (no answer to a PING, or not registered in time) → write every
//! queue → close those gone → accept the new ones }.

mod commands;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept4, bind, getpeername,
    getsockname, listen, setsockopt, socket, sockopt,
};
use nix::unistd::{close, read, write};
use socket_labs::irc::{self, MAX_LINE};
use socket_labs::limits::raise_descriptor_limit;
use socket_labs::spare::SpareDescriptor;
use socket_labs::{Cli, DEFAULT_PORT, Line, LineReader, OrDie, log, reason, warn};

use commands::Channel;

const USAGE: &str = "\
usage: server [PORT] [--bind ADDR] [--name NAME] [--ping-timeout SECS]
              [--register-timeout SECS]

Lab 07: chat server, one process, poll(). Speaks a subset of IRC (RFC 2812):
connect with lab 07's client, with irssi (irssi -c 127.0.0.1 -p 4242 -n alice)
or by hand (nc -C 127.0.0.1 4242, then NICK alice and USER alice 0 * :Alice).

  PORT                 port to listen on (default 4242; 0 = any free port)
  --bind ADDR          address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)
  --name NAME          the server's name, the prefix of its replies (default chat.socket-labs)
  --ping-timeout SECS  a client silent this long is sent a PING; one still silent
                       as long again is dropped (default 120, at most 86400)
  --register-timeout SECS
                       a connection not registered (NICK and USER) this long
                       after it connected is dropped (default 60, at most 86400)
  --help               print this help
";

const DEFAULT_NAME: &str = "chat.socket-labs";
const VERSION: &str = concat!("socket-labs-", env!("CARGO_PKG_VERSION"));

/// The most a client's output queue may hold. The queue only grows when the
/// client reads less than others send it: past this bound it is dropped
/// ("too slow") rather than let one peer take the server's memory.
const MAX_QUEUED: usize = 256 * 1024;

/// A client's number, never reused: channels and the nick table name
/// clients by it, since a client's place in the Vec changes (swap_remove).
type Id = u64;

/// One connection; a user once NICK and USER are done.
struct Client {
    id: Id,
    fd: OwnedFd,
    peer: SocketAddr,
    /// The IP address as text: the host part of `nick!user@host`.
    host: String,
    /// Bytes read and not yet a whole line: at most one IRC line (512 bytes).
    input: LineReader,
    /// Lines queued for this client, not yet taken by write(2): at most MAX_QUEUED.
    output: Vec<u8>,
    /// Why the client must be closed (the QUIT message its channels see).
    gone: Option<String>,
    /// When to PING it (or, if `pinged`, to drop it) unless it sends a line.
    deadline: Instant,
    pinged: bool,
    /// Until it registers: when to drop it if it still has not, counted
    /// from its connect whatever it sends meanwhile.
    register_by: Instant,
    nick: Option<String>,
    user: Option<String>,
    realname: String,
    registered: bool,
    /// User mode +i: kept and reported, changes nothing here.
    invisible: bool,
    /// The channels joined (folded names, keys of `Chat::channels`).
    channels: Vec<String>,
    /// Registration time, seconds since 1970, and the last PRIVMSG or
    /// NOTICE sent: WHOIS shows both (317).
    signon: u64,
    last_message: Instant,
}

impl Client {
    /// When `check_timeouts` next has something to do for this client: its
    /// PING (or drop), or before that its registration deadline.
    fn next_deadline(&self) -> Instant {
        if self.registered {
            self.deadline
        } else {
            self.deadline.min(self.register_by)
        }
    }

    /// Queues `line` for this client. A client whose queue would pass
    /// MAX_QUEUED even after the socket took what it could is marked gone.
    fn send(&mut self, line: &str) {
        if self.gone.is_some() {
            return;
        }
        if self.output.len() + line.len() > MAX_QUEUED {
            self.flush();
            if self.gone.is_some() {
                return;
            }
            if self.output.len() + line.len() > MAX_QUEUED {
                log!(
                    "{} too slow: {} KiB waiting to be sent, dropped",
                    self.peer,
                    self.output.len() / 1024
                );
                self.output = Vec::new();
                self.gone = Some("Too slow: output queue full".to_string());
                return;
            }
        }
        self.output.extend_from_slice(line.as_bytes());
    }

    /// Writes what is queued, as much as the socket takes now. The socket is
    /// non-blocking: EAGAIN means "full, try when poll says POLLOUT".
    fn flush(&mut self) {
        while !self.output.is_empty() {
            match write(&self.fd, &self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(err) => {
                    // EPIPE or ECONNRESET: the client left.
                    warn!("write {}: {}", self.peer, reason(&err));
                    self.output = Vec::new();
                    self.gone.get_or_insert_with(|| reason(&err));
                    break;
                }
            }
        }
    }

    /// `nick!user@host`, the prefix of what this client says.
    fn prefix(&self) -> String {
        format!(
            "{}!{}@{}",
            self.nick.as_deref().unwrap_or("*"),
            self.user.as_deref().unwrap_or("*"),
            self.host
        )
    }
}

/// The clients, in a Vec as in lab 04, with an index from Id to place.
struct Clients {
    list: Vec<Client>,
    place: HashMap<Id, usize>,
}

impl Clients {
    fn push(&mut self, client: Client) {
        self.place.insert(client.id, self.list.len());
        self.list.push(client);
    }

    /// Removes clients[i]; the last client takes its place.
    fn swap_remove(&mut self, i: usize) -> Client {
        let client = self.list.swap_remove(i);
        self.place.remove(&client.id);
        if let Some(moved) = self.list.get(i) {
            self.place.insert(moved.id, i);
        }
        client
    }

    fn get_mut(&mut self, id: Id) -> Option<&mut Client> {
        let i = *self.place.get(&id)?;
        self.list.get_mut(i)
    }

    fn get(&self, id: Id) -> Option<&Client> {
        self.list.get(*self.place.get(&id)?)
    }

    fn send(&mut self, id: Id, line: &str) {
        if let Some(client) = self.get_mut(id) {
            client.send(line);
        }
    }
}

/// Everything the server knows: clients, nicknames, channels.
struct Chat {
    name: String,
    created: String,
    ping_timeout: Duration,
    register_timeout: Duration,
    clients: Clients,
    /// Folded nickname (irc::fold) → client: nicknames are unique
    /// whatever their case.
    nicks: HashMap<String, Id>,
    /// Folded channel name → channel; a channel lives while it has members.
    channels: HashMap<String, Channel>,
}

fn main() {
    let mut cli = Cli::new(USAGE);
    let ip: IpAddr = cli
        .value("--bind", "ADDR")
        .unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let name: String = cli
        .value("--name", "NAME")
        .unwrap_or_else(|| DEFAULT_NAME.to_string());
    let ping_secs: u64 = cli.value("--ping-timeout", "SECS").unwrap_or(120);
    let register_secs: u64 = cli.value("--register-timeout", "SECS").unwrap_or(60);
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    // The name is the prefix of every reply: one word, as a host name is.
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        cli.usage_error(format_args!(
            "invalid NAME '{name}': letters, digits, '.' and '-', at most 63"
        ));
    }
    if !(1..=86_400).contains(&ping_secs) {
        cli.usage_error(format_args!(
            "invalid SECS '{ping_secs}': from 1 to 86400 seconds"
        ));
    }
    if !(1..=86_400).contains(&register_secs) {
        cli.usage_error(format_args!(
            "invalid SECS '{register_secs}': from 1 to 86400 seconds"
        ));
    }
    cli.finish();
    let addr = SocketAddr::new(ip, port);

    // Every client costs a descriptor: the soft limit (often 1024) goes up
    // to the hard one (src/limits.rs).
    let limit = raise_descriptor_limit();

    let domain = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let listener =
        socket(domain, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).or_die("socket", addr);
    setsockopt(&listener, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    bind(listener.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    listen(&listener, Backlog::MAXCONN).or_die("listen", addr);
    let local: SockaddrStorage = getsockname(listener.as_raw_fd()).or_die("getsockname", addr);
    // The reserve descriptor for EMFILE, as in lab 04 (src/spare.rs).
    let mut spare = SpareDescriptor::reserve(limit);
    log!("listening on {local}");
    log!("descriptor limit {limit} (RLIMIT_NOFILE)");
    let mut out_of_descriptors = false;

    let mut chat = Chat {
        created: date(unix_now()),
        name,
        ping_timeout: Duration::from_secs(ping_secs),
        register_timeout: Duration::from_secs(register_secs),
        clients: Clients {
            list: Vec::new(),
            place: HashMap::new(),
        },
        nicks: HashMap::new(),
        channels: HashMap::new(),
    };
    let mut next_id: Id = 0;
    loop {
        // Sleep in poll(2) until something happens or a client's next
        // deadline (a PING, a drop for silence or for not registering) is
        // due: the timeout argument is the server's only clock.
        let timeout = match chat.clients.list.iter().map(Client::next_deadline).min() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Rounded up: a timeout rounded down wakes us just before
                // the deadline, to find nothing due and poll again at once.
                PollTimeout::try_from(left.as_millis() + 1).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        // [0] is the listener, [i + 1] is clients[i], rebuilt each turn (lab 04).
        let revents: Vec<PollFlags> = {
            let mut fds = Vec::with_capacity(chat.clients.list.len() + 1);
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            for client in &chat.clients.list {
                let mut events = PollFlags::POLLIN;
                if !client.output.is_empty() {
                    events |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(client.fd.as_fd(), events));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(err) => socket_labs::die("poll", local, &err),
            }
            fds.iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect()
        };
        let now = Instant::now();

        // Read: one read(2) per readable client. Each whole line is a
        // command, which may queue lines for any client; nobody is removed
        // before the turn ends, so the indexes stay valid.
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        for i in 0..chat.clients.list.len() {
            let client = &mut chat.clients.list[i];
            if !revents[i + 1].intersects(readable) || client.gone.is_some() {
                continue;
            }
            match read(&client.fd, client.input.space()) {
                Ok(0) => {
                    // End of file. A last line without its newline still counts.
                    if let Some(Line::Whole(line)) = client.input.rest() {
                        chat.command(i, &line);
                    }
                    let client = &mut chat.clients.list[i];
                    client
                        .gone
                        .get_or_insert_with(|| "Connection closed".into());
                }
                Ok(n) => {
                    client.input.filled(n);
                    while let Some(piece) = chat.clients.list[i].input.next_line() {
                        let client = &mut chat.clients.list[i];
                        if client.gone.is_some() {
                            break; // QUIT: what follows is not read
                        }
                        // A complete line proves the client alive: no PING
                        // needed. Bytes without a newline do not, or one
                        // byte a second (a slowloris) would hold a
                        // connection, and its nick, for ever.
                        if piece.bytes().ends_with(b"\n") {
                            client.deadline = now + chat.ping_timeout;
                            client.pinged = false;
                        }
                        match piece {
                            Line::Whole(line) => chat.command(i, &line),
                            // The first MAX_LINE bytes of a longer line:
                            // refuse it; its rest comes as Line::Rest, ignored.
                            Line::Long(_) => chat.reply(i, "417", &["Input line was too long"]),
                            Line::Rest(_) => {}
                        }
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(err) => {
                    // ECONNRESET: the client is gone without a goodbye.
                    warn!("read {}: {}", client.peer, reason(&err));
                    client.gone = Some(reason(&err));
                }
            }
        }

        chat.check_timeouts(now);

        // Write: every queue, as far as each socket takes it now, at once
        // rather than waiting for POLLOUT (there is almost always room).
        for client in &mut chat.clients.list {
            if !client.output.is_empty() {
                client.flush();
            }
        }

        // Close: those who quit, left, failed, timed out or were too slow.
        // Their channels see a QUIT; that may overflow a slow peer's queue
        // and mark it gone in turn: go round until nobody is left marked.
        while chat.clients.list.iter().any(|c| c.gone.is_some()) {
            for i in (0..chat.clients.list.len()).rev() {
                if chat.clients.list[i].gone.is_some() {
                    let client = chat.remove(i);
                    log!("{} disconnected", client.peer);
                    if let Err(err) = close(client.fd) {
                        warn!("close {}: {}", client.peer, reason(&err));
                    }
                }
            }
        }

        if revents[0].contains(PollFlags::POLLIN) {
            // Every connection waiting in the backlog, as in lab 04.
            loop {
                let fd = match accept4(listener.as_raw_fd(), SockFlag::SOCK_NONBLOCK) {
                    Ok(fd) => fd,
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                    Err(err @ (Errno::EMFILE | Errno::ENFILE)) => {
                        if !out_of_descriptors {
                            warn!(
                                "accept {local}: {}; closing new connections until one frees",
                                reason(&err)
                            );
                            out_of_descriptors = true;
                        }
                        if !spare.refuse_one(listener.as_raw_fd(), local) {
                            break; // nobody was waiting
                        }
                        continue;
                    }
                    Err(err) => socket_labs::die("accept", local, &err),
                };
                // SAFETY: accept4(2) just returned this descriptor and nothing
                // else owns it: from here on, dropping the OwnedFd closes it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                out_of_descriptors = false;
                let peer = match getpeername::<SockaddrStorage>(fd.as_raw_fd()) {
                    Ok(peer) => peer,
                    Err(err) => {
                        warn!("getpeername {local}: {}", reason(&err));
                        continue;
                    }
                };
                let Some(peer) = inet_address(&peer) else {
                    continue; // not an IP connection: cannot happen on an IP listener
                };
                log!("connection from {peer}");
                // An IPv4 client of a `::` listener shows as ::ffff:a.b.c.d:
                // name it by its IPv4 address. An IPv6 host may not start
                // with ':' in a parameter (":" starts the trailing one): ::1
                // is written 0::1, the same address.
                let host = match peer.ip().to_canonical().to_string() {
                    host if host.starts_with(':') => format!("0{host}"),
                    host => host,
                };
                chat.clients.push(Client {
                    id: next_id,
                    fd,
                    peer,
                    host,
                    input: LineReader::new(MAX_LINE),
                    output: Vec::new(),
                    gone: None,
                    deadline: now + chat.ping_timeout,
                    pinged: false,
                    register_by: now + chat.register_timeout,
                    nick: None,
                    user: None,
                    realname: String::new(),
                    registered: false,
                    invisible: false,
                    channels: Vec::new(),
                    signon: 0,
                    last_message: now,
                });
                next_id += 1;
            }
        }
    }
}

impl Chat {
    /// Drops every connection not registered in time, sends a PING to
    /// every client silent for the ping timeout, and drops those still
    /// silent as long after it.
    fn check_timeouts(&mut self, now: Instant) {
        let secs = self.ping_timeout.as_secs();
        for client in &mut self.clients.list {
            if client.gone.is_some() {
                continue;
            }
            // A PONG now and then would keep an unregistered connection
            // for ever, holding a nick and a descriptor: whatever it says,
            // it has this long from its connect to send NICK and USER
            // (ircd-hybrid allows 30 s; ngIRCd drops it too).
            if !client.registered && now >= client.register_by {
                log!(
                    "{} registration timeout: not registered after {} s, dropped",
                    client.peer,
                    self.register_timeout.as_secs()
                );
                let error = format!("Closing link: {} (Registration timed out)", client.host);
                client.send(&irc::format_trailing(None, "ERROR", &[&error]));
                client.gone = Some("Registration timed out".into());
                continue;
            }
            if now < client.deadline {
                continue;
            }
            client.deadline = now + self.ping_timeout;
            if !client.pinged {
                client.pinged = true;
                client.send(&irc::format_trailing(
                    Some(&self.name),
                    "PING",
                    &[&self.name],
                ));
            } else {
                log!(
                    "{} ping timeout: silent for {} s, dropped",
                    client.peer,
                    2 * secs
                );
                let why = format!("Ping timeout: {secs} seconds");
                let error = format!("Closing link: {} ({why})", client.host);
                client.send(&irc::format_trailing(None, "ERROR", &[&error]));
                client.gone = Some(why);
            }
        }
    }
}

/// The IP address and port of a socket address, if it is one.
fn inet_address(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// Seconds since 1970 (time(2)).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2025-01-31 14:05:09 UTC`, for RPL_CREATED (003), without a date library:
/// the days since 1970 become a civil date (H. Hinnant's days_from_civil, inverted).
fn date(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::date(1_735_689_599), "2024-12-31 23:59:59 UTC");
    }
}
