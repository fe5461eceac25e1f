//! How a transfer is set up through the chat: the commands /send, /accept
//! and /refuse, and what the server brings back (a DCC SEND offer, a DCC
//! REJECT, the WHOIS reply that says where the peer is). The transfers
//! themselves are the state machines of transfer.rs; [`Transfers`] holds
//! them all, and gives the poll loop of client.rs their descriptors, their
//! deadlines and their progress.
//!
//! ```text
//! /send bob FILE   → WHOIS bob               (queued for the server)
//! 311 bob HOST     → Outgoing::listen        → PRIVMSG bob :\x01DCC SEND ...\x01
//! PRIVMSG ... DCC SEND from alice            → Incoming, shown: /accept or /refuse
//! /accept alice    → does it fit? NAME.part  → Incoming::connect
//! /refuse alice    → NOTICE alice :\x01DCC REJECT SEND NAME\x01
//! ```

use std::fs::{self, OpenOptions};
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use socket_labs::chat::{self, Chat, Extension};
use socket_labs::dcc::{self, Dcc, Offer, human};
use socket_labs::download::{PartFile, will_not_fit};
use socket_labs::irc::{self, Message};
use socket_labs::progress::ProgressLine;
use socket_labs::{log, reason};

use crate::transfer::{In, Incoming, Out, Outgoing};

const TRANSFER_COMMANDS: &str = "
  /send NICK PATH    offer a file to NICK; it goes straight to NICK's client
  /accept NICK       receive the file NICK offers (into --downloads)
  /refuse NICK       decline NICK's offer";

/// Offers received and not yet answered, and transfers of our own, at
/// most: a flood of offers cannot take the client's memory or descriptors.
const MAX_OFFERS: usize = 16;
const MAX_TRANSFERS: usize = 16;

/// A transfer's place in the poll set: `outgoing[i]` or `incoming[i]`.
#[derive(Clone, Copy)]
pub enum Slot {
    Out(usize),
    In(usize),
}

/// The file transfers: what lab 08 adds to the chat.
pub struct Transfers {
    downloads: PathBuf,
    max_size: Option<u64>,
    timeout: Duration,
    /// Our address on the chat connection: offers listen there.
    local: IpAddr,
    outgoing: Vec<Outgoing>,
    incoming: Vec<Incoming>,
    /// Folded nicks we sent a WHOIS about: its replies, up to its 318, are
    /// ours and not shown.
    whois: Vec<String>,
    progress: ProgressLine,
}

impl Transfers {
    /// Received files go into `downloads`, if no larger than `max_size`;
    /// offers wait `timeout` for the peer, transfers stall that long at
    /// most; our offers listen on `local`.
    pub fn new(
        downloads: PathBuf,
        max_size: Option<u64>,
        timeout: Duration,
        local: IpAddr,
    ) -> Transfers {
        Transfers {
            downloads,
            max_size,
            timeout,
            local,
            outgoing: Vec::new(),
            incoming: Vec::new(),
            whois: Vec::new(),
            progress: ProgressLine::new(),
        }
    }

    // ---- for the poll loop ---------------------------------------------------

    /// What each transfer waits for, for the poll set.
    pub fn interests(&self) -> Vec<(BorrowedFd<'_>, PollFlags, Slot)> {
        let outgoing = self.outgoing.iter().enumerate().filter_map(|(i, out)| {
            out.interest()
                .map(|(fd, events)| (fd, events, Slot::Out(i)))
        });
        let incoming =
            self.incoming.iter().enumerate().filter_map(|(i, inc)| {
                inc.interest().map(|(fd, events)| (fd, events, Slot::In(i)))
            });
        outgoing.chain(incoming).collect()
    }

    /// poll(2) says the descriptor of the transfer at `slot` is ready.
    pub fn ready(&mut self, slot: Slot, revents: PollFlags) {
        match slot {
            Slot::Out(i) => {
                if let Some(out) = self.outgoing.get_mut(i) {
                    out.ready(revents, self.timeout);
                }
            }
            Slot::In(i) => {
                if let Some(inc) = self.incoming.get_mut(i) {
                    inc.ready(revents, self.timeout);
                }
            }
        }
    }

    /// Whether anything of ours is under way: an offer out, a transfer.
    pub fn busy(&self) -> bool {
        self.outgoing.iter().any(Outgoing::active) || self.incoming.iter().any(Incoming::active)
    }

    /// The earliest deadline of an offer or a transfer: the poll timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        let outgoing = self.outgoing.iter().filter(|o| o.active());
        let incoming = self.incoming.iter().filter(|i| i.active());
        outgoing
            .map(|o| o.deadline)
            .chain(incoming.map(|i| i.deadline))
            .min()
    }

    /// Offers nobody took, transfers that stalled: given up.
    pub fn check_deadlines(&mut self, now: Instant) {
        for out in &mut self.outgoing {
            out.expire(now, self.timeout);
        }
        for inc in &mut self.incoming {
            inc.expire(now, self.timeout);
        }
    }

    /// Every transfer's progress, sending first ([`ProgressLine`]).
    pub fn show_progress(&mut self) {
        let sending = self.outgoing.iter_mut().filter_map(Outgoing::progress);
        let receiving = self.incoming.iter_mut().filter_map(Incoming::progress);
        for (what, done, total, progress) in sending.chain(receiving) {
            self.progress.add(&what, done, total, progress);
        }
        self.progress.draw();
    }

    /// The end of the turn: forget what is over (its descriptors close, a
    /// part file left is removed, as each is dropped).
    pub fn remove_done(&mut self) {
        self.outgoing.retain(Outgoing::active);
        self.incoming.retain(|i| !matches!(i.state, In::Done));
    }

    /// The client is leaving without the chat: every transfer is dropped
    /// (process::exit runs no destructors, so this is said explicitly).
    pub fn abandon_all(&mut self) {
        if self.busy() {
            log!("-!- transfers abandoned");
        }
        self.outgoing.clear();
        self.incoming.clear();
    }

    // ---- the sender's commands and replies -----------------------------------

    /// /send NICK PATH: open the file, then ask the server where NICK is
    /// (WHOIS); the offer goes out with its reply (see `listen`).
    fn offer(&mut self, chat: &Chat, to: &str, path: &str, queued: &mut Vec<u8>) {
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
        chat.queue(queued, "WHOIS", &[to.as_bytes()]);
        // Its replies are ours until its end (318); a server that never
        // ends one cannot make the list grow.
        if !self.whois.contains(&irc::fold(to)) {
            if self.whois.len() >= MAX_TRANSFERS {
                self.whois.remove(0);
            }
            self.whois.push(irc::fold(to));
        }
        let deadline = Instant::now() + self.timeout;
        let out = Outgoing::new(to, name, file, meta.len(), deadline);
        self.outgoing.push(out);
    }

    /// The server says `nick` connects from `host` (WHOIS, 311): for each
    /// file waiting for `nick`, listen on a port of our own and offer it.
    fn listen(&mut self, chat: &Chat, nick: &str, host: &str, queued: &mut Vec<u8>) {
        let peer: Option<IpAddr> = host.parse().ok();
        for out in &mut self.outgoing {
            if !matches!(out.state, Out::LookingUp) || irc::fold(&out.to) != irc::fold(nick) {
                continue;
            }
            let Some(bound) = out.listen(self.local, peer, self.timeout) else {
                continue;
            };
            chat.queue(
                queued,
                "PRIVMSG",
                &[
                    out.to.as_bytes(),
                    dcc::send_offer(&out.name, bound, out.size).as_bytes(),
                ],
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

    // ---- the receiver's: an offer, /accept, /refuse --------------------------

    /// A DCC SEND offer from `from`, whose host the server gave in the
    /// message's prefix: shown, kept until /accept or /refuse.
    fn offer_received(&mut self, from: &str, host: Option<&str>, offer: Offer) {
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
        self.incoming.push(Incoming::new(from, name, offer));
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
                &[
                    offer.from.as_bytes(),
                    dcc::reject(&offer.offer.name).as_bytes(),
                ],
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
        if let Some(why) = will_not_fit(&downloads, size, max_size) {
            log!("-!- {} ({}) refused: {why}", offer.name, human(size));
            chat.queue(
                queued,
                "NOTICE",
                &[
                    offer.from.as_bytes(),
                    dcc::reject(&offer.offer.name).as_bytes(),
                ],
            );
            offer.state = In::Done;
            return;
        }
        match PartFile::create(&downloads, &offer.name) {
            Ok(part) => offer.connect(part, timeout),
            Err(err) => {
                log!(
                    "-!- create a file in {}: {}",
                    downloads.display(),
                    reason(&err)
                );
                offer.state = In::Done;
            }
        }
    }
}

/// The chat hands us the commands it does not know and shows us each
/// message from the server first ([`Extension`], src/chat.rs).
impl Extension for Transfers {
    fn help(&self) -> &'static str {
        TRANSFER_COMMANDS
    }

    fn command(&mut self, chat: &mut Chat, name: &str, args: &str, queued: &mut Vec<u8>) -> bool {
        let (nick, rest) = args.split_once(' ').unwrap_or((args, ""));
        let rest = rest.trim();
        match name {
            "send" if !nick.is_empty() && !rest.is_empty() => self.offer(chat, nick, rest, queued),
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
                    self.offer_received(from, chat::sender_host(msg), offer)
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
