//! The second connection, lab 08's lesson: its two ends, each a state
//! machine that the poll loop of client.rs drives. [`Outgoing::interest`]
//! and [`Incoming::interest`] say what the descriptor of each state waits
//! for; `ready` does what poll(2) says can be done without blocking;
//! `expire` gives up when the deadline has passed.
//!
//! ```text
//! Outgoing: a file we offer (/send)            Incoming: a file offered to us
//!  LookingUp   WHOIS NICK sent                  Offered     shown; /accept or /refuse
//!     │ 311: NICK's address                        │ /accept
//!  Listening   socket → bind(our address, 0)    Connecting  socket(O_NONBLOCK) → connect
//!              → listen(1) → getsockname                    = EINPROGRESS
//!     │ POLLIN: accept, the peer's address?        │ POLLOUT: getsockopt(SO_ERROR) = 0?
//!  Sending     read(file) → write(socket)       Receiving   read(socket) → write(file)
//!              read(socket): 4-byte acks                    write(socket): 4-byte acks
//!     │ the last ack says "all of it"              │ all announced bytes in
//!  Done        close                            Done        close, NAME.part → NAME
//! ```
//!
//! The sender is a server for a moment (lab 01's socket, bind, listen,
//! accept), the receiver a client that must not block the chat (connect(2)
//! in non-blocking mode, UNP's connect_nonb). The file's name on disk
//! ([`PartFile`]) and the progress line ([`Progress`]) are in src/.

use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept4, bind, connect,
    getpeername, getsockname, getsockopt, listen, socket, sockopt,
};
use nix::unistd::{read, write};
use socket_labs::conn::inet_address;
use socket_labs::dcc::Offer;
use socket_labs::download::PartFile;
use socket_labs::progress::Progress;
use socket_labs::{log, reason};

/// A file goes through a buffer of this size, one read(2) and one
/// write(2) at a time: a 1 GB file uses the memory of one chunk.
const CHUNK: usize = 64 * 1024;

/// The revents after which read(2) does not block: data, the peer's
/// close, or an error to collect.
const READABLE: PollFlags = PollFlags::POLLIN
    .union(PollFlags::POLLHUP)
    .union(PollFlags::POLLERR);

// ---- the sender: listen, accept the peer, send, read acknowledgements ------

/// A file we offer (/send).
pub struct Outgoing {
    pub to: String,
    /// The name it is offered under.
    pub name: String,
    file: File,
    pub size: u64,
    /// When to give up: the offer's timeout, then a stall's.
    pub deadline: Instant,
    pub state: Out,
}

pub enum Out {
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
pub struct Sending {
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

impl Outgoing {
    /// `file` (`size` bytes) for `to`, under `name`: the server is asked
    /// where `to` is (WHOIS) until `deadline`.
    pub fn new(to: &str, name: String, file: File, size: u64, deadline: Instant) -> Outgoing {
        Outgoing {
            to: to.to_string(),
            name,
            file,
            size,
            deadline,
            state: Out::LookingUp,
        }
    }

    /// The server said where the peer is (`peer`, if it gave an address):
    /// listen on our address `local`, for `timeout`. The address to put in
    /// the offer, or None if a call failed (and the file is not offered).
    pub fn listen(
        &mut self,
        local: IpAddr,
        peer: Option<IpAddr>,
        timeout: Duration,
    ) -> Option<SocketAddr> {
        match listen_for_peer(local) {
            Ok((listener, addr)) => {
                self.deadline = Instant::now() + timeout;
                self.state = Out::Listening {
                    listener,
                    addr,
                    peer,
                };
                Some(addr)
            }
            Err((call, err)) => {
                self.state = Out::Done;
                log!("-!- {call}: {}: {} not offered", reason(&err), self.name);
                None
            }
        }
    }

    /// Whether the offer or the transfer is still on.
    pub fn active(&self) -> bool {
        !matches!(self.state, Out::Done)
    }

    /// What the descriptor of this state waits for, if it has one.
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        match &self.state {
            // A connection waiting in the backlog makes the listener readable.
            Out::Listening { listener, .. } => Some((listener.as_fd(), PollFlags::POLLIN)),
            Out::Sending(s) => {
                // Always readable: acknowledgements, or the receiver's close.
                let mut events = PollFlags::POLLIN;
                if s.sent < self.size {
                    events |= PollFlags::POLLOUT;
                }
                Some((s.sock.as_fd(), events))
            }
            Out::LookingUp | Out::Done => None,
        }
    }

    /// poll(2) says the listener or the connection is ready.
    pub fn ready(&mut self, revents: PollFlags, timeout: Duration) {
        if matches!(self.state, Out::Listening { .. }) {
            return self.accept_peer(timeout);
        }
        let Out::Sending(s) = &mut self.state else {
            return;
        };
        let end = (self.size & 0xffff_ffff) as u32;
        let line = match s.ready(&mut self.file, self.size, revents) {
            Err(why) => format!("{} to {} failed: {why}", self.name, self.to),
            Ok(_) if s.sent == self.size && s.acked == Some(end) => {
                let summary = s.progress.summary(s.sent);
                format!("sent {} to {}: {summary}", self.name, self.to)
            }
            Ok(moved) => {
                if moved {
                    self.deadline = Instant::now() + timeout;
                }
                return;
            }
        };
        self.state = Out::Done; // closes the connection
        log!("-!- {line}");
    }

    /// A connection waits on the listener: accept(2) it, and keep it if it
    /// comes from the peer's address.
    fn accept_peer(&mut self, timeout: Duration) {
        let Out::Listening {
            listener,
            addr,
            peer,
        } = &self.state
        else {
            return;
        };
        let (addr, peer) = (*addr, *peer);
        let fd = match accept4(listener.as_raw_fd(), SockFlag::SOCK_NONBLOCK) {
            Ok(fd) => fd,
            // Gone before we took it (ECONNABORTED), or not there yet.
            Err(Errno::EAGAIN | Errno::EINTR | Errno::ECONNABORTED) => return,
            Err(err) => {
                let line = format!("accept {addr}: {}: {} not sent", reason(&err), self.name);
                self.state = Out::Done;
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
        // Only the offered peer may take the file. What this proves: the
        // connection comes from the address the server saw the peer at,
        // not that it is the peer. Anyone else on that address (the same
        // machine, all of loopback, the same NAT) passes; an address the
        // server calls by name cannot be checked at all.
        if let Some(expected) = peer
            && from.ip().to_canonical() != expected.to_canonical()
        {
            log!(
                "-!- refused a connection from {from} for {}: {} is at {expected}",
                self.name,
                self.to
            );
            return; // drop closes it; the offer still stands
        }
        // The peer is in: nobody else may come. Replacing the state drops
        // the listening socket, which closes it.
        log!(
            "-!- {} connected from {from}: sending {}",
            self.to,
            self.name
        );
        self.deadline = Instant::now() + timeout;
        self.state = Out::Sending(Sending {
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

    /// Gives up if the deadline has passed: nobody came, or the transfer
    /// stalled for `timeout`.
    pub fn expire(&mut self, now: Instant, timeout: Duration) {
        if now < self.deadline {
            return;
        }
        let (name, to, secs) = (&self.name, &self.to, timeout.as_secs());
        let line = match &self.state {
            Out::LookingUp => format!("no answer about {to} in {secs} s: {name} not offered"),
            Out::Listening { .. } => {
                format!("nobody came for {name} in {secs} s: the offer to {to} is withdrawn")
            }
            Out::Sending(s) if s.sent == self.size => {
                format!("sent {name} to {to}, but {to} did not confirm the end within {secs} s")
            }
            Out::Sending(_) => format!("{name} to {to} stalled for {secs} s: abandoned"),
            Out::Done => return,
        };
        self.state = Out::Done; // closes its descriptor before the line says so
        log!("-!- {line}");
    }

    /// While sending: `what` for the progress line, bytes sent, the size.
    pub fn progress(&mut self) -> Option<(String, u64, u64, &mut Progress)> {
        match &mut self.state {
            Out::Sending(s) => Some((
                format!("{} to {}", self.name, self.to),
                s.sent,
                self.size,
                &mut s.progress,
            )),
            _ => None,
        }
    }
}

impl Sending {
    /// Reads acknowledgements (and the receiver's close), writes the next
    /// piece of the file. Ok(true) if something moved.
    fn ready(&mut self, file: &mut File, size: u64, revents: PollFlags) -> Result<bool, String> {
        let mut moved = false;
        if revents.intersects(READABLE) {
            moved |= self.read_acks(size)?;
        }
        if revents.intersects(PollFlags::POLLOUT) && self.sent < size {
            moved |= self.write_chunk(file, size)?;
        }
        Ok(moved)
    }

    /// Each acknowledgement is 4 bytes, big-endian: how many bytes the
    /// receiver has so far, modulo 2^32. They may arrive split or several
    /// at once, as any bytes on a TCP stream.
    fn read_acks(&mut self, size: u64) -> Result<bool, String> {
        let mut acks = [0u8; 512];
        match read(&self.sock, &mut acks) {
            Ok(0) if self.sent == size => {
                // Closed after everything: classic receivers close at the
                // end instead of (or after) the last acknowledgement.
                self.acked = Some((size & 0xffff_ffff) as u32);
                Ok(false)
            }
            Ok(0) => Err(format!(
                "{} closed the connection after {} of {} bytes",
                self.peer, self.sent, size
            )),
            Ok(n) => {
                for &byte in &acks[..n] {
                    self.ack[self.ack_len] = byte;
                    self.ack_len += 1;
                    if self.ack_len == 4 {
                        self.acked = Some(u32::from_be_bytes(self.ack));
                        self.ack_len = 0;
                    }
                }
                Ok(true)
            }
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(false),
            Err(err) => Err(format!("read {}: {}", self.peer, reason(&err))),
        }
    }

    /// The next piece of the file: read(2) a chunk when the last one is
    /// out, then one write(2) of what is left of it.
    fn write_chunk(&mut self, file: &mut File, size: u64) -> Result<bool, String> {
        if self.start == self.end {
            // The next chunk, and never past the size we announced.
            let want = (size - self.sent).min(CHUNK as u64) as usize;
            match file.read(&mut self.chunk[..want]) {
                Ok(0) => return Err(format!("the file shrank to {} bytes", self.sent)),
                Ok(n) => (self.start, self.end) = (0, n),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(false),
                Err(err) => return Err(format!("read the file: {}", reason(&err))),
            }
        }
        // One write(2): the socket takes what fits; poll says when more will.
        match write(&self.sock, &self.chunk[self.start..self.end]) {
            Ok(n) => {
                self.start += n;
                self.sent += n as u64;
                Ok(true)
            }
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(false),
            Err(err) => Err(format!("write {}: {}", self.peer, reason(&err))),
        }
    }
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

// ---- the receiver: connect without blocking, receive, acknowledge ----------

/// An offer received.
pub struct Incoming {
    pub from: String,
    /// The name it will be saved under ([`socket_labs::dcc::safe_name`]).
    pub name: String,
    pub offer: Offer,
    pub deadline: Instant,
    pub state: In,
}

pub enum In {
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
pub struct Receiving {
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

impl Incoming {
    /// `offer` from `from`, to be saved as `name`: shown, waiting for the
    /// user's answer.
    pub fn new(from: &str, name: String, offer: Offer) -> Incoming {
        Incoming {
            from: from.to_string(),
            name,
            offer,
            deadline: Instant::now(),
            state: In::Offered,
        }
    }

    /// /accept: connect to the sender, the bytes to go into `part`; the
    /// connection must be made, and then the file keep coming, within
    /// `timeout`.
    pub fn connect(&mut self, part: PartFile, timeout: Duration) {
        let addr = self.offer.addr;
        match connect_to_sender(addr) {
            Ok(sock) => {
                log!(
                    "-!- connecting to {} at {addr} for {}",
                    self.from,
                    self.name
                );
                self.deadline = Instant::now() + timeout;
                self.state = In::Connecting { sock, part };
            }
            Err(err) => {
                drop(part); // removed before the line says so
                self.state = In::Done;
                log!(
                    "-!- connect {addr}: {}: {} not received",
                    reason(&err),
                    self.name
                );
            }
        }
    }

    /// Whether a connection is under way.
    pub fn active(&self) -> bool {
        matches!(self.state, In::Connecting { .. } | In::Receiving(_))
    }

    /// What the descriptor of this state waits for, if it has one.
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        match &self.state {
            // A non-blocking connect(2) is done when the socket is writable.
            In::Connecting { sock, .. } => Some((sock.as_fd(), PollFlags::POLLOUT)),
            In::Receiving(r) => {
                let mut events = PollFlags::POLLIN;
                if r.ack_pending() {
                    events |= PollFlags::POLLOUT;
                }
                Some((r.sock.as_fd(), events))
            }
            In::Offered | In::Done => None,
        }
    }

    /// poll(2) says the connection is ready: connected, or bytes to read,
    /// or room for an acknowledgement.
    pub fn ready(&mut self, revents: PollFlags, timeout: Duration) {
        // The state is taken out, and put back unless the transfer is over.
        match std::mem::replace(&mut self.state, In::Done) {
            In::Connecting { sock, part } => self.connected(sock, part, timeout),
            In::Receiving(mut r) => match r.ready(self.offer.size, revents) {
                Ok(_) if r.received == self.offer.size => r.finish(self),
                Ok(moved) => {
                    if moved {
                        self.deadline = Instant::now() + timeout;
                    }
                    self.state = In::Receiving(r);
                }
                Err(why) => {
                    drop(r); // the part file removed before the line says so
                    log!(
                        "-!- {} from {} failed: {why}; nothing kept",
                        self.name,
                        self.from
                    );
                }
            },
            other => self.state = other,
        }
    }

    /// The socket of a non-blocking connect(2) is writable: the handshake
    /// is over, and SO_ERROR says how it went (0, or what connect(2) would
    /// have returned: ECONNREFUSED, ETIMEDOUT...).
    fn connected(&mut self, sock: OwnedFd, part: PartFile, timeout: Duration) {
        match getsockopt(&sock, sockopt::SocketError) {
            Ok(0) => {
                log!("-!- connected to {}: receiving {}", self.from, self.name);
                self.deadline = Instant::now() + timeout;
                let r = Receiving {
                    sock,
                    part,
                    chunk: vec![0; CHUNK],
                    received: 0,
                    ack: [0; 4],
                    ack_sent: 4,
                    progress: Progress::new(),
                };
                if self.offer.size == 0 {
                    r.finish(self);
                } else {
                    self.state = In::Receiving(r);
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
                    self.offer.addr,
                    self.name
                );
            }
        }
    }

    /// Gives up if the connection or the transfer stalled past the deadline.
    pub fn expire(&mut self, now: Instant, timeout: Duration) {
        if self.active() && now >= self.deadline {
            self.state = In::Done; // removes the part file
            log!(
                "-!- {} from {} stalled for {} s: abandoned, nothing kept",
                self.name,
                self.from,
                timeout.as_secs()
            );
        }
    }

    /// While receiving: `what` for the progress line, bytes received, the size.
    pub fn progress(&mut self) -> Option<(String, u64, u64, &mut Progress)> {
        match &mut self.state {
            In::Receiving(r) => Some((
                format!("{} from {}", self.name, self.from),
                r.received,
                self.offer.size,
                &mut r.progress,
            )),
            _ => None,
        }
    }
}

impl Receiving {
    /// Reads the next piece, appends it to the part file, acknowledges.
    /// Ok(true) if something moved.
    fn ready(&mut self, size: u64, revents: PollFlags) -> Result<bool, String> {
        let mut moved = false;
        if revents.intersects(READABLE) {
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
                    self.part.write_all(&self.chunk[..n]).map_err(|err| {
                        format!("write {}: {}", self.part.path().display(), reason(&err))
                    })?;
                    self.received += n as u64;
                    moved = true;
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(err) => return Err(format!("read: {}", reason(&err))),
            }
        }
        self.write_ack()
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
    fn write_ack(&mut self) -> nix::Result<()> {
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
        let _ = self.write_ack();
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

// ---- addresses ---------------------------------------------------------------

/// The address family of `addr`, for socket(2).
pub fn family(addr: SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}
