//! The IRC side of lab 07's server: the users, their nicknames and their
//! channels, and what one line from a user does (RFC 2812).
//!
//! server.rs is the go-between: it reads lines from the connections and
//! writes out what is queued for them. This module decides what a line
//! means and for whom it makes lines; it queues them through an [`Outbox`]
//! (server.rs's connections) and never reads or writes a socket. The
//! commands, one file per topic:
//!
//! - registration.rs: CAP, PASS, NICK, USER and the welcome; PING, PONG,
//!   QUIT; a connection that comes and goes
//! - messages.rs: PRIVMSG and NOTICE, to a nick, a channel or everyone
//! - channels.rs: JOIN, PART, NAMES, LIST, TOPIC, KICK and INVITE
//! - modes.rs: a channel's modes and its MODE
//! - queries.rs: WHO, WHOIS, WHOWAS, USERHOST, AWAY, a user's MODE
//! - server_info.rs: LUSERS, TIME, MOTD (and the message of the day's file)
//!
//! Each command answers its sender with numerics (`:server 001 alice
//! :...`, RFC 2812 §5) and may relay a line to others with the sender's
//! prefix (`:alice!alice@127.0.0.1 PRIVMSG #room :hi`). Text is bytes,
//! relayed as it came: IRC names no character set (RFC 2812 §2.2). Only
//! nicknames, user names and hosts, plain ASCII, are Rust strings here.

mod channels;
mod messages;
mod modes;
mod queries;
mod registration;
mod server_info;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

use socket_labs::date::{unix_now, utc};
use socket_labs::irc::{RawMessage, format_bytes};

use channels::Channel;
pub use server_info::read_motd;

/// How many departed nicks WHOWAS remembers: past it, the oldest is
/// forgotten (a bounded history, whatever the users do).
const WHOWAS_MAX: usize = 100;

/// A connection's number, given by server.rs and never reused.
pub type Id = u64;

/// Where the lines go: server.rs's connections.
pub trait Outbox {
    /// Queues `line` for connection `to`, to be written when its socket
    /// takes it.
    fn queue(&mut self, to: Id, line: &[u8]);
    /// Closes connection `who` at the end of this turn; its channels then
    /// see `why` as its QUIT message.
    fn hang_up(&mut self, who: Id, why: &[u8]);
}

/// Everything the server knows of its users and channels.
pub struct Irc {
    /// The server's name, the prefix of its replies.
    name: String,
    /// When the server started, for 003.
    created: String,
    /// Every connection's user, registered or not, in the order they came:
    /// WHO lists them so.
    users: BTreeMap<Id, User>,
    /// Folded nickname (`fold_bytes`) → its user: nicknames are unique
    /// whatever their case.
    nicks: HashMap<Vec<u8>, Id>,
    /// Folded name → channel, in order: NAMES and LIST show them sorted. A
    /// channel lives while it has members.
    channels: BTreeMap<Vec<u8>, Channel>,
    /// The message of the day's lines (`--motd FILE`), None without a file.
    motd: Option<Vec<Vec<u8>>>,
    /// The most users registered at once since the server started (265).
    max_users: usize,
    /// The nicks that were, oldest first, at most WHOWAS_MAX: a user's nick
    /// is written here when it changes it or leaves.
    history: VecDeque<Was>,
}

/// A nick as it was: what WHOWAS tells of it.
struct Was {
    nick: String,
    user: String,
    host: String,
    realname: Vec<u8>,
    /// When it was given up, seconds since 1970.
    when: u64,
}

/// Who is behind a connection, once NICK and USER are done.
struct User {
    /// IP:PORT, for the log and WHOIS.
    peer: SocketAddr,
    /// The IP address as text: the host part of `nick!user@host`.
    host: String,
    nick: Option<String>,
    user: Option<String>,
    realname: Vec<u8>,
    registered: bool,
    /// CAP LS or CAP REQ came before registration: the welcome waits for
    /// CAP END (IRCv3 capability negotiation).
    negotiating: bool,
    /// User mode +i: `WHO *` and `WHO mask` list the user only to itself
    /// and to those who share a channel with it.
    invisible: bool,
    /// AWAY's text while the user is away: a PRIVMSG to it gets 301 back,
    /// WHOIS shows it, WHO says `G` (gone) for `H` (here).
    away: Option<Vec<u8>>,
    /// The channels joined, in order (folded names, keys of `Irc::channels`).
    channels: Vec<Vec<u8>>,
    /// The channels (folded names) it was invited to and has not joined.
    invited: Vec<Vec<u8>>,
    /// Registration time, seconds since 1970, and the last PRIVMSG or
    /// NOTICE sent: WHOIS shows both (317).
    signon: u64,
    last_message: Instant,
}

impl User {
    /// `nick!user@host`, the prefix of what this user says.
    fn prefix(&self) -> String {
        format!(
            "{}!{}@{}",
            self.nick(),
            self.user.as_deref().unwrap_or("*"),
            self.host
        )
    }

    /// The nickname, `*` before it has one.
    fn nick(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }
}

impl Irc {
    /// The server `name`, with the message of the day's lines if any
    /// (`read_motd`).
    pub fn new(name: String, motd: Option<Vec<Vec<u8>>>) -> Irc {
        Irc {
            name,
            created: utc(unix_now()),
            users: BTreeMap::new(),
            nicks: HashMap::new(),
            channels: BTreeMap::new(),
            motd,
            max_users: 0,
            history: VecDeque::new(),
        }
    }

    /// Whether `id` has registered (NICK and USER done).
    pub fn is_registered(&self, id: Id) -> bool {
        self.users.get(&id).is_some_and(|u| u.registered)
    }

    /// Handles one line from `from` (CR LF or LF included).
    pub fn command(&mut self, out: &mut dyn Outbox, from: Id, line: &[u8]) {
        let Some(msg) = RawMessage::parse(line) else {
            return; // an empty line: nothing to do (RFC 2812 §2.3.1)
        };
        let Some(user) = self.users.get(&from) else {
            return;
        };
        let p = msg.params.as_slice();
        let command = msg.command.to_ascii_uppercase();
        let before_registration = matches!(
            &command[..],
            b"CAP" | b"PASS" | b"NICK" | b"USER" | b"PING" | b"PONG" | b"QUIT"
        );
        if !user.registered && !before_registration {
            self.reply(out, from, "451", &[b"You have not registered"]);
            return;
        }
        let needed = match &command[..] {
            b"USER" => 4,
            b"KICK" | b"INVITE" => 2,
            b"CAP" | b"PING" | b"JOIN" | b"PART" | b"TOPIC" | b"MODE" | b"USERHOST" => 1,
            _ => 0,
        };
        if p.len() < needed {
            self.reply(out, from, "461", &[msg.command, b"Not enough parameters"]);
            return;
        }
        match &command[..] {
            b"CAP" => self.cap(out, from, p),
            b"PASS" | b"PONG" => {} // no passwords here; any line resets the ping clock
            b"NICK" => self.nick(out, from, p),
            b"USER" => self.user(out, from, p),
            b"PING" => self.pong(out, from, p),
            b"QUIT" => self.quit(out, from, p),
            b"PRIVMSG" => self.message(out, from, "PRIVMSG", p),
            b"NOTICE" => self.message(out, from, "NOTICE", p),
            b"JOIN" => self.join(out, from, p),
            b"PART" => self.part(out, from, p),
            b"NAMES" => self.names(out, from, p),
            b"LIST" => self.list(out, from, p),
            b"TOPIC" => self.topic(out, from, p),
            b"KICK" => self.kick(out, from, p),
            b"INVITE" => self.invite(out, from, p),
            b"MODE" if p[0].starts_with(b"#") => self.channel_mode(out, from, p),
            b"MODE" => self.user_mode(out, from, p),
            b"WHO" => self.who(out, from, p),
            b"WHOIS" => self.whois(out, from, p),
            b"USERHOST" => self.userhost(out, from, p),
            b"AWAY" => self.away(out, from, p),
            b"WHOWAS" => self.whowas(out, from, p),
            b"MOTD" => self.motd(out, from),
            b"LUSERS" => self.lusers(out, from),
            b"TIME" => self.time(out, from),
            _ => self.reply(out, from, "421", &[msg.command, b"Unknown command"]),
        }
    }

    /// A line longer than IRC allows (its first 512 bytes; the rest is
    /// ignored by server.rs): refused.
    pub fn line_too_long(&self, out: &mut dyn Outbox, from: Id) {
        self.reply(out, from, "417", &[b"Input line was too long"]);
    }

    /// Queues `:server NUMERIC <nick> params...` for `to`: its first
    /// parameter is the user's nick (`*` before it has one), its last one
    /// trailing.
    fn reply(&self, out: &mut dyn Outbox, to: Id, numeric: &str, params: &[&[u8]]) {
        out.queue(to, &self.numeric(to, numeric, params, true));
    }

    /// A reply whose parameters are words, not text (324's modes, 367's
    /// mask, 004's mode letters): the last one without the colon of `reply`.
    fn reply_words(&self, out: &mut dyn Outbox, to: Id, numeric: &str, params: &[&[u8]]) {
        out.queue(to, &self.numeric(to, numeric, params, false));
    }

    /// The line of a reply to `to`, its last parameter `trailing` or not.
    fn numeric(&self, to: Id, numeric: &str, params: &[&[u8]], trailing: bool) -> Vec<u8> {
        let me = self.users.get(&to).map_or("*", User::nick);
        let params = [&[me.as_bytes()], params].concat();
        format_bytes(Some(self.name.as_bytes()), numeric, &params, trailing)
    }

    /// A reply whose last parameter is a list (353 names, 319 channels),
    /// spread over as many lines as it takes to keep each within 512 bytes.
    fn reply_list(
        &self,
        out: &mut dyn Outbox,
        to: Id,
        numeric: &str,
        params: &[&[u8]],
        items: &[Vec<u8>],
    ) {
        let empty = self.numeric(to, numeric, &[params, &[b""]].concat(), true);
        let room = socket_labs::irc::MAX_LINE.saturating_sub(empty.len());
        let mut text = Vec::new();
        for item in items {
            if !text.is_empty() && text.len() + 1 + item.len() > room {
                self.reply(out, to, numeric, &[params, &[&text]].concat());
                text.clear();
            }
            if !text.is_empty() {
                text.push(b' ');
            }
            text.extend_from_slice(item);
        }
        if !text.is_empty() {
            self.reply(out, to, numeric, &[params, &[&text]].concat());
        }
    }

    /// The users who share a channel with `id`, each once, in the order
    /// they came.
    fn peers(&self, id: Id) -> BTreeSet<Id> {
        let Some(user) = self.users.get(&id) else {
            return BTreeSet::new();
        };
        user.channels
            .iter()
            .filter_map(|key| self.channels.get(key))
            .flat_map(|channel| channel.members.iter().map(|m| m.id))
            .filter(|&peer| peer != id)
            .collect()
    }
}

/// A log line that holds what a user sent (a channel's name, a reason to
/// quit): those bytes are printed as they came, as the C twin's printf(3)
/// prints them, where log! would take only UTF-8 text.
fn log_bytes(parts: &[&[u8]]) {
    let mut stdout = std::io::stdout().lock();
    for part in parts {
        let _ = stdout.write_all(part);
    }
    let _ = stdout.write_all(b"\n");
    let _ = stdout.flush();
}
