//! Coming and going: a connection's user, CAP, PASS, NICK and USER (the
//! welcome once both are in), PING and PONG, QUIT, and what a connection
//! that ends leaves behind (RFC 2812 §3.1).

use std::net::SocketAddr;
use std::time::Instant;

use socket_labs::date::unix_now;
use socket_labs::irc::{fold_bytes, format_bytes, valid_nick};
use socket_labs::log;

use super::{Id, Irc, Outbox, User, log_bytes};

/// What 002 and 004 say the server runs.
const VERSION: &str = concat!("socket-labs-", env!("CARGO_PKG_VERSION"));
/// The longest nickname: RFC 2812 §1.2.1 says 9, today's servers allow more
/// (ngIRCd, like many, 30) and say so in 005.
const NICKLEN: usize = 30;
/// The longest user name kept from USER.
const USERLEN: usize = 10;

/// What a real client reads from 005 (RPL_ISUPPORT) to learn our rules.
const ISUPPORT: &[&[u8]] = &[
    b"CASEMAPPING=rfc1459",
    b"CHANTYPES=#",
    b"CHANLIMIT=#:20",
    b"CHANNELLEN=50",
    b"NICKLEN=30",
    b"TOPICLEN=390",
    b"PREFIX=(ov)@+",
    b"CHANMODES=b,k,l,imnst",
    b"MODES=4",
    b"MAXLIST=b:20",
    b"KICKLEN=255",
    b"TARGMAX=PRIVMSG:4,NOTICE:4,KICK:4",
    b"NETWORK=socket-labs",
];

impl Irc {
    /// A new connection from `peer`: a user not registered yet.
    pub fn connected(&mut self, id: Id, peer: SocketAddr) {
        // An IPv4 client of a `::` listener shows as ::ffff:a.b.c.d: name it
        // by its IPv4 address. An IPv6 host may not start with ':' in a
        // parameter (":" starts the trailing one): ::1 is written 0::1, the
        // same address.
        let host = match peer.ip().to_canonical().to_string() {
            host if host.starts_with(':') => format!("0{host}"),
            host => host,
        };
        let user = User {
            peer,
            host,
            nick: None,
            user: None,
            realname: Vec::new(),
            registered: false,
            negotiating: false,
            invisible: false,
            away: None,
            channels: Vec::new(),
            invited: Vec::new(),
            signon: 0,
            last_message: Instant::now(),
        };
        self.users.insert(id, user);
    }

    /// CAP (IRCv3 capability negotiation), which irssi and weechat send
    /// first: we offer no capability, and say so. A CAP LS or CAP REQ before
    /// registration holds the welcome until CAP END.
    pub(super) fn cap(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let subcommand = p[0].to_ascii_uppercase();
        if let Some(user) = self.users.get_mut(&from)
            && !user.registered
            && matches!(&subcommand[..], b"LS" | b"REQ")
        {
            user.negotiating = true;
        }
        match &subcommand[..] {
            b"LS" => self.reply(out, from, "CAP", &[b"LS", b""]),
            b"LIST" => self.reply(out, from, "CAP", &[b"LIST", b""]),
            b"REQ" => self.reply(
                out,
                from,
                "CAP",
                &[b"NAK", p.get(1).copied().unwrap_or(b"")],
            ),
            b"END" => {
                if let Some(user) = self.users.get_mut(&from) {
                    user.negotiating = false;
                }
                if !self.is_registered(from) {
                    self.welcome(out, from);
                }
            }
            _ => self.reply(out, from, "410", &[p[0], b"Invalid CAP command"]),
        }
    }

    /// NICK: choose a nickname, or change it once registered.
    pub(super) fn nick(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let Some(&new) = p.first().filter(|n| !n.is_empty()) else {
            self.reply(out, from, "431", &[b"No nickname given"]);
            return;
        };
        if !valid_nick(new, NICKLEN) {
            self.reply(out, from, "432", &[new, b"Erroneous nickname"]);
            return;
        }
        // Unique whatever the case: alice, Alice and ALICE are one nick.
        let key = fold_bytes(new);
        if self.nicks.get(&key).is_some_and(|&id| id != from) {
            self.reply(out, from, "433", &[new, b"Nickname is already in use"]);
            return;
        }
        let new = String::from_utf8_lossy(new).into_owned(); // ASCII: valid_nick
        let Some(user) = self.users.get(&from) else {
            return;
        };
        if user.nick.as_deref() == Some(new.as_str()) {
            return;
        }
        self.remember(from); // the old nick, for WHOWAS
        let Some(user) = self.users.get_mut(&from) else {
            return;
        };
        let old_prefix = user.prefix();
        let old = user.nick.replace(new.clone());
        let (registered, peer) = (user.registered, user.peer);
        if let Some(old) = &old {
            self.nicks.remove(&fold_bytes(old.as_bytes()));
        }
        self.nicks.insert(key, from);
        if !registered {
            self.welcome(out, from);
            return;
        }
        // The user and everyone who shares a channel with them see it.
        let line = format_bytes(
            Some(old_prefix.as_bytes()),
            "NICK",
            &[new.as_bytes()],
            false,
        );
        log!(
            "{peer} {} is now known as {new}",
            old.as_deref().unwrap_or("*")
        );
        for peer in self.peers(from) {
            out.queue(peer, &line);
        }
        out.queue(from, &line);
    }

    /// `USER <user> <mode> <unused> :<realname>` (RFC 2812 §3.1.3).
    pub(super) fn user(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        // `USER name * * :`, an empty real name, lacks a parameter too.
        if p[3].is_empty() {
            self.reply(out, from, "461", &[b"USER", b"Not enough parameters"]);
            return;
        }
        if self.is_registered(from) {
            self.reply(out, from, "462", &[b"You may not reregister"]);
            return;
        }
        let Some(user) = self.users.get_mut(&from) else {
            return;
        };
        // The user name goes into every prefix: keep it short and plain.
        let name: String = p[0]
            .iter()
            .filter(|b| b.is_ascii_graphic() && !matches!(b, b'!' | b'@' | b':'))
            .take(USERLEN)
            .map(|&b| char::from(b))
            .collect();
        user.user = Some(if name.is_empty() { "user".into() } else { name });
        user.realname = p[3].to_vec();
        self.welcome(out, from);
    }

    /// Once NICK and USER are both in, in either order, and CAP negotiation
    /// (if any) is over: registered, and the welcome burst.
    fn welcome(&mut self, out: &mut dyn Outbox, from: Id) {
        let Some(user) = self.users.get_mut(&from) else {
            return;
        };
        let (Some(nick), Some(_), false) = (user.nick.clone(), &user.user, user.negotiating) else {
            return;
        };
        user.registered = true;
        user.signon = unix_now();
        user.last_message = Instant::now();
        log!("{} registered as {nick}", user.peer);
        let welcome = format!("Welcome to the socket-labs Network, {}", user.prefix());
        self.reply(out, from, "001", &[welcome.as_bytes()]);
        let host = format!("Your host is {}, running version {VERSION}", self.name);
        self.reply(out, from, "002", &[host.as_bytes()]);
        let created = format!("This server was created {}", self.created);
        self.reply(out, from, "003", &[created.as_bytes()]);
        // <client> <servername> <version> <user modes> <channel modes>
        // <channel modes with a parameter>: mode letters, not text.
        let name = self.name.as_bytes();
        let info: [&[u8]; 5] = [name, VERSION.as_bytes(), b"i", b"biklmnostv", b"bklov"];
        self.reply_words(out, from, "004", &info);
        let supported: &[&[u8]] = &[b"are supported by this server"];
        self.reply(out, from, "005", &[ISUPPORT, supported].concat());
        let users = self.users.values().filter(|u| u.registered).count();
        self.max_users = self.max_users.max(users);
        // Then what LUSERS and MOTD say, as real servers do.
        self.lusers(out, from);
        self.motd(out, from);
    }

    /// `PING <token>`: PONG, with the same token.
    pub(super) fn pong(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let name = self.name.as_bytes();
        out.queue(from, &format_bytes(Some(name), "PONG", &[name, p[0]], true));
    }

    /// A PING of our own, to a connection that has been silent (server.rs
    /// decides when): any line in answer proves it alive.
    pub fn ping(&self, out: &mut dyn Outbox, to: Id) {
        let name = self.name.as_bytes();
        out.queue(to, &format_bytes(Some(name), "PING", &[name], true));
    }

    /// `QUIT [:message]`: answered with ERROR; its channels see the QUIT when
    /// the connection is closed, at the end of this turn.
    pub(super) fn quit(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let why = p.first().copied().filter(|w| !w.is_empty());
        let why = why.unwrap_or(b"Client quit");
        let Some(user) = self.users.get(&from) else {
            return;
        };
        log_bytes(&[
            format!("{} {} quit: ", user.peer, user.nick()).as_bytes(),
            why,
        ]);
        self.close_link(out, from, why);
    }

    /// ERROR :Closing link, the last line a connection gets, then it is
    /// closed: after QUIT, or when it timed out (server.rs).
    pub fn close_link(&self, out: &mut dyn Outbox, who: Id, why: &[u8]) {
        let Some(user) = self.users.get(&who) else {
            return;
        };
        let error = [b"Closing link: ", user.host.as_bytes(), b" (", why, b")"].concat();
        out.queue(who, &format_bytes(None, "ERROR", &[&error], true));
        out.hang_up(who, why);
    }

    /// Forgets the user of a connection that has ended: frees its nick,
    /// tells those who shared a channel with it (`:nick!user@host QUIT
    /// :why`), leaves its channels.
    pub fn disconnected(&mut self, out: &mut dyn Outbox, id: Id, why: &[u8]) {
        let peers = self.peers(id);
        self.remember(id); // for WHOWAS
        let Some(user) = self.users.remove(&id) else {
            return;
        };
        if let Some(nick) = &user.nick {
            self.nicks.remove(&fold_bytes(nick.as_bytes()));
        }
        if user.registered {
            let line = format_bytes(Some(user.prefix().as_bytes()), "QUIT", &[why], true);
            for peer in peers {
                out.queue(peer, &line);
            }
        }
        for key in &user.channels {
            self.drop_member(key, id);
        }
    }
}
