//! The chat client's conversation, without its sockets: a typed line
//! becomes an IRC command (`/msg bob hi` → `PRIVMSG bob :hi`), a line from
//! the server is shown as a person would read it (`*alice* hi`), and PING
//! is answered.
//!
//! Not the lesson of the chat labs (the lesson is the poll loop on stdin
//! and the socket, written out in each lab's client.rs), so lab 07's client
//! and lab 08's share it. Nothing here reads or writes a descriptor: lines
//! for the server are appended to the caller's queue, which its loop
//! writes when poll(2) says the socket takes them.
//!
//! Text is bytes, as the server relays it (RFC 2812 §2.2 names no
//! character set), and as the C twin (labs/common/chat.c) holds it: a typed
//! line and a server line are never decoded, only split at ASCII spaces;
//! white space trimmed is ASCII's (isspace(3) in the C locale); a NUL ends
//! a line, as it ends a C string; a line too long for IRC is cut at its
//! 510th byte ([`irc::format_bytes`]); and what is shown goes to stdout as
//! it came, as printf(3)'s `%s` writes it.
//!
//! Lab 08 adds commands of its own and a first look at every server line
//! through an [`Extension`]; lab 07 uses [`Chat`] as it is.

use crate::irc::{self, Message, RawMessage};
use crate::{Line, log};

/// Shows one line on stdout made of pieces, text or bytes, written as they
/// are (see the module's notes).
macro_rules! say {
    ($($part:expr),+ $(,)?) => {
        $crate::fail::print_out_bytes(&[$(AsRef::<[u8]>::as_ref(&$part)),+].concat())
    };
}

/// Stdin is read only while less than this waits to go to the server.
pub const MAX_QUEUED: usize = 64 * 1024;
/// The queue's hard bound: MAX_QUEUED, and what one turn may add on top of
/// it (one read of stdin: at most 256 lines of up to 512 bytes; one read of
/// the socket: a few PONGs). Past it a line is dropped (see `queue`), as the
/// C twin's fixed array does.
pub const QUEUE_SIZE: usize = MAX_QUEUED + 256 * irc::MAX_LINE + 4 * irc::MAX_LINE;
/// The most channels remembered; the server lets a user be on 20.
pub const MAX_JOINED: usize = 100;

/// What `/help` shows.
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
  /away [text]       say you are away: a /msg to you gets text back
  /back              no longer away
  /topic [#chan] [text]
                     see or set the topic of #chan (the current one by default)
  /kick [#chan] NICK [reason]
                     put NICK out of #chan, the current one by default
                     (a channel operator's command)
  /invite NICK [#chan]
                     ask NICK to join #chan (the current one by default),
                     even an invite-only one
  /mode TARGET [MODES [ARGS]]
                     show or change the modes of a channel, or your own:
                     /mode #chan +k key, /mode #chan +o NICK, /mode #chan b
  /lusers            how many users and channels the server has
  /whowas NICK       who had NICK last
  /time              the server's clock
  /motd              the server's message of the day
  /quote RAW         send RAW as it is, e.g. /quote TOPIC #chan : (no topic)
  /quit [message]    leave
  /help              this list";

/// What a lab adds to the chat client: commands of its own, and a first
/// look at each message from the server before it is shown.
pub trait Extension {
    /// Lines added to `/help`, one per command, laid out as the chat's own.
    fn help(&self) -> &'static str {
        ""
    }

    /// A typed `/name args` that the chat does not know (the user has a
    /// nickname by then). Returns false if the extension does not know it
    /// either. Given as text: bytes that are not UTF-8 become U+FFFD.
    fn command(&mut self, chat: &mut Chat, name: &str, args: &str, queued: &mut Vec<u8>) -> bool {
        let _ = (chat, name, args, queued);
        false
    }

    /// A message from the server, before the chat shows it, as text (see
    /// [`Message`]). Returns true if the extension took it: the chat then
    /// shows nothing.
    fn message(&mut self, chat: &mut Chat, msg: &Message, queued: &mut Vec<u8>) -> bool {
        let _ = (chat, msg, queued);
        false
    }
}

/// The plain chat: no extension.
pub struct Plain;

impl Extension for Plain {}

/// What the client knows of the conversation.
pub struct Chat {
    nick: Option<Vec<u8>>,
    registered: bool,
    user_sent: bool,
    /// Channels joined, the current one last.
    channels: Vec<Vec<u8>>,
    raw: bool,
    quitting: bool,
    /// The welcome burst is over (376 or 422 ended its message of the day):
    /// the server's statistics and the MOTD's frame, quiet until then, are
    /// now answers to /lusers or /motd.
    welcomed: bool,
}

impl Chat {
    /// A conversation not yet registered; `raw` also prints each IRC line
    /// sent (`>>`) and received (`<<`).
    pub fn new(raw: bool) -> Chat {
        Chat {
            nick: None,
            registered: false,
            user_sent: false,
            channels: Vec::new(),
            raw,
            quitting: false,
            welcomed: false,
        }
    }

    /// Whether `/quit` was sent: the server's close is then the goodbye.
    pub fn quitting(&self) -> bool {
        self.quitting
    }

    /// Our nickname, `?` before we have one.
    pub fn me(&self) -> &[u8] {
        self.nick.as_deref().unwrap_or(b"?")
    }

    /// `channel` becomes the current one (the last of the list). The list
    /// is bounded whatever the server sends: past MAX_JOINED, the oldest is
    /// forgotten (the server lets a user be on 20).
    fn join(&mut self, channel: &[u8]) {
        self.forget(channel);
        if self.channels.len() == MAX_JOINED {
            self.channels.remove(0);
        }
        self.channels.push(channel.to_vec());
    }

    /// We are not on `channel` (any case of it).
    fn forget(&mut self, channel: &[u8]) {
        let name = irc::fold_bytes(channel);
        self.channels.retain(|c| irc::fold_bytes(c) != name);
    }

    /// The channel a command's words name first (`#chan` or `&chan`) and
    /// the words after it; or, when the first word is not a channel, as in
    /// irssi, the current channel (None if there is none) and all of them.
    fn channel_first<'a>(&'a self, words: &'a [u8]) -> (Option<&'a [u8]>, &'a [u8]) {
        let (first, rest) = split_space(words);
        match first.first() {
            Some(b'#' | b'&') => (Some(first), rest),
            _ => (self.channels.last().map(Vec::as_slice), words),
        }
    }

    /// Queues one IRC message for the server: a line of at most 512 bytes,
    /// cut at its 510th byte if longer, as the C twin's irc_format does.
    pub fn queue(&self, queued: &mut Vec<u8>, command: &str, params: &[&[u8]]) {
        self.queue_line(queued, irc::format_bytes(None, command, params, false));
    }

    /// Queues `text` as it was typed (`/quote`), without CR (a typed line
    /// holds no LF): a line of at most 512 bytes, as [`queue`](Self::queue)
    /// makes them.
    fn queue_raw(&self, queued: &mut Vec<u8>, text: &[u8]) {
        let mut line: Vec<u8> = text.iter().filter(|&&b| b != b'\r').copied().collect();
        line.truncate(irc::MAX_LINE - 2);
        line.extend_from_slice(b"\r\n");
        self.queue_line(queued, line);
    }

    fn queue_line(&self, queued: &mut Vec<u8>, line: Vec<u8>) {
        if self.raw {
            say!(">> ", trim_end(&line));
        }
        // Bounded whatever the server does: stdin is read only below
        // MAX_QUEUED, but a server that sends PINGs and never reads our
        // PONGs would make the queue grow. Past the bound, a line is dropped.
        if queued.len() + line.len() <= QUEUE_SIZE {
            queued.extend_from_slice(&line);
        }
    }

    /// Sends NICK, and USER the first time: registration (RFC 2812 §3.1).
    pub fn register(&mut self, nick: &[u8], queued: &mut Vec<u8>) {
        self.queue(queued, "NICK", &[nick]);
        if !self.user_sent {
            // USER <user> <mode> <unused> :<realname> (RFC 2812 §3.1.3)
            self.queue(queued, "USER", &[nick, b"0", b"*", nick]);
            self.user_sent = true;
        }
        self.nick = Some(nick.to_vec());
    }

    /// A piece of typed input: whole lines are used; a line too long for
    /// one IRC message is refused once, and the rest of it skipped.
    pub fn typed_piece(&mut self, line: Line, queued: &mut Vec<u8>) {
        self.typed_piece_with(line, queued, &mut Plain);
    }

    /// As [`typed_piece`](Self::typed_piece), with an extension's commands.
    pub fn typed_piece_with(&mut self, line: Line, queued: &mut Vec<u8>, ext: &mut dyn Extension) {
        match line {
            Line::Whole(line) => self.typed_with(&line, queued, ext),
            Line::Long(_) => log!("-!- line too long: a message holds about 400 characters"),
            Line::Rest(_) => {}
        }
    }

    /// A line the user typed: a /command or text for the current channel.
    pub fn typed(&mut self, line: &[u8], queued: &mut Vec<u8>) {
        self.typed_with(line, queued, &mut Plain);
    }

    /// As [`typed`](Self::typed), with an extension's commands.
    pub fn typed_with(&mut self, line: &[u8], queued: &mut Vec<u8>, ext: &mut dyn Extension) {
        let mut text = line;
        while let [before @ .., b'\r' | b'\n'] = text {
            text = before;
        }
        let text = until_nul(text);
        if trim(text).is_empty() {
            return;
        }
        let Some(command) = text.strip_prefix(b"/") else {
            match self.channels.last() {
                Some(channel) => {
                    let channel = channel.clone();
                    self.queue(queued, "PRIVMSG", &[&channel, text]);
                    say!("[", channel, "] ", self.me(), ": ", text);
                }
                None => log!("-!- you are on no channel: /join #name, or /msg NICK text"),
            }
            return;
        };
        let (name, args) = split_space(command);
        let args = trim(args);
        let (first, rest) = split_space(args);
        if !self.user_sent && !matches!(name, b"nick" | b"help" | b"quit") {
            log!("-!- choose a nickname first: /nick NAME");
            return;
        }
        match name {
            b"nick" if !first.is_empty() => {
                if self.registered {
                    self.queue(queued, "NICK", &[first]);
                } else {
                    self.register(first, queued);
                }
            }
            b"who" => self.queue(
                queued,
                "WHO",
                &[if first.is_empty() { b"*" } else { first }],
            ),
            b"whois" if !first.is_empty() => self.queue(queued, "WHOIS", &[first]),
            b"msg" if !first.is_empty() && !rest.is_empty() => {
                self.queue(queued, "PRIVMSG", &[first, rest]);
                say!("-> *", first, "* ", rest);
            }
            b"msgall" if !args.is_empty() => {
                // $* is the mask "every user on this server" (RFC 2812 §3.3.1).
                self.queue(queued, "PRIVMSG", &[b"$*", args]);
                say!("[all] ", self.me(), ": ", args);
            }
            b"join" if !first.is_empty() => {
                let channel = if first.starts_with(b"#") {
                    first.to_vec()
                } else {
                    [b"#", first].concat()
                };
                self.queue(queued, "JOIN", &[&channel]);
                // Lines typed next go there at once, without waiting for
                // the server's JOIN: piped input does not wait. An error
                // about the channel undoes it.
                self.join(&channel);
            }
            b"part" => match (first, self.channels.last()) {
                (b"", Some(current)) => {
                    let current = current.clone();
                    self.queue(queued, "PART", &[&current]);
                }
                (b"", None) => log!("-!- you are on no channel"),
                (channel, _) => self.queue(queued, "PART", &[channel]),
            },
            b"names" => match (first, self.channels.last()) {
                (b"", Some(current)) => {
                    let current = current.clone();
                    self.queue(queued, "NAMES", &[&current]);
                }
                (b"", None) => self.queue(queued, "NAMES", &[]),
                (channel, _) => self.queue(queued, "NAMES", &[channel]),
            },
            b"list" => self.queue(queued, "LIST", &[]),
            // AWAY with a text: away; AWAY alone: back (RFC 2812 §4.1).
            b"away" => {
                let text: &[u8] = if args.is_empty() { b"away" } else { args };
                self.queue(queued, "AWAY", &[text]);
            }
            b"back" => self.queue(queued, "AWAY", &[]),
            // TOPIC <channel> [:<topic>]: without a text, the server tells
            // the topic (RFC 2812 §3.2.4).
            b"topic" => match self.channel_first(args) {
                (None, _) => log!("-!- you are on no channel: /topic #chan [text]"),
                (Some(channel), b"") => self.queue(queued, "TOPIC", &[channel]),
                (Some(channel), text) => self.queue(queued, "TOPIC", &[channel, text]),
            },
            // KICK <channel> <user> [:<comment>] (RFC 2812 §3.2.8); as in
            // irssi, the channel is the current one when the first word is
            // not a channel's name.
            b"kick" if !first.is_empty() => {
                let (channel, rest) = self.channel_first(args);
                match (channel, split_space(rest)) {
                    (Some(_), (b"", _)) => say!("-!- /kick needs more: /help shows how to use it"),
                    (None, _) => log!("-!- you are on no channel: /kick #chan NICK [reason]"),
                    (Some(channel), (nick, b"")) => self.queue(queued, "KICK", &[channel, nick]),
                    (Some(channel), (nick, reason)) => {
                        self.queue(queued, "KICK", &[channel, nick, reason])
                    }
                }
            }
            // INVITE <nickname> <channel> (RFC 2812 §3.2.7), to the current
            // channel by default, as in irssi.
            b"invite" if !first.is_empty() => match (split_space(rest).0, self.channels.last()) {
                (b"", None) => log!("-!- you are on no channel: /invite NICK #chan"),
                (b"", Some(current)) => {
                    let current = current.clone();
                    self.queue(queued, "INVITE", &[first, &current]);
                }
                (channel, _) => self.queue(queued, "INVITE", &[first, channel]),
            },
            // MODE <target> [<modes> [<mode params>]]: one parameter per
            // word, at most the 15 a message holds (RFC 2812 §2.3).
            b"mode" if !first.is_empty() => {
                let params = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
                self.queue(queued, "MODE", &params.take(15).collect::<Vec<_>>());
            }
            b"lusers" => self.queue(queued, "LUSERS", &[]),
            b"whowas" if !first.is_empty() => self.queue(queued, "WHOWAS", &[first]),
            b"time" => self.queue(queued, "TIME", &[]),
            b"motd" => self.queue(queued, "MOTD", &[]),
            // The line as typed: the protocol with nothing in between. A
            // QUIT so sent is a leaving as /quit's: the server's ERROR and
            // close are then the goodbye (RFC 2812 §3.1.7).
            b"quote" if !args.is_empty() => {
                self.queue_raw(queued, args);
                if split_space(args).0.eq_ignore_ascii_case(b"QUIT") {
                    self.quitting = true;
                }
            }
            b"quit" => {
                if self.user_sent {
                    let message = if args.is_empty() { b"leaving" } else { args };
                    self.queue(queued, "QUIT", &[message]);
                    self.quitting = true;
                } else {
                    std::process::exit(0);
                }
            }
            b"help" => log!("{COMMANDS}{}", ext.help()),
            b"nick" | b"whois" | b"msg" | b"msgall" | b"join" | b"kick" | b"invite" | b"mode"
            | b"whowas" | b"quote" => {
                say!("-!- /", name, " needs more: /help shows how to use it")
            }
            _ => {
                let text = |bytes| String::from_utf8_lossy(bytes).into_owned();
                if !ext.command(self, &text(name), &text(args), queued) {
                    say!("-!- unknown command /", name, ": /help lists them")
                }
            }
        }
    }

    /// A line from the server, shown as a person would read it.
    pub fn receive(&mut self, line: &[u8], queued: &mut Vec<u8>) {
        self.receive_with(line, queued, &mut Plain);
    }

    /// As [`receive`](Self::receive), the extension looking first.
    pub fn receive_with(&mut self, line: &[u8], queued: &mut Vec<u8>, ext: &mut dyn Extension) {
        let Some(msg) = RawMessage::parse(line) else {
            return;
        };
        if self.raw {
            say!("<< ", trim_end(until_nul(line)));
        }
        if let Some(text) = Message::parse(until_nul(line))
            && ext.message(self, &text, queued)
        {
            return;
        }
        let from = raw_sender(&msg);
        let me = |nick: &[u8]| irc::fold_bytes(nick) == irc::fold_bytes(self.me());
        let is_me = me(from);
        let p = |i: usize| msg.params.get(i).copied().unwrap_or(b"");
        let last = msg.params.last().copied().unwrap_or(b"");
        match msg.command.to_ascii_uppercase().as_slice() {
            b"PING" => self.queue(queued, "PONG", &[last]),
            b"PRIVMSG" | b"NOTICE" => {
                let target = p(0);
                let text = p(1);
                if msg.is("NOTICE") {
                    say!("-", from, "- ", text);
                } else if target.starts_with(b"$") {
                    say!("[all] ", from, ": ", text);
                } else if target.starts_with(b"#") || target.starts_with(b"&") {
                    say!("[", target, "] ", from, ": ", text);
                } else {
                    say!("*", from, "* ", text);
                }
            }
            b"JOIN" => {
                if is_me {
                    say!("-!- you joined ", p(0));
                    self.join(p(0));
                } else {
                    say!("-!- ", from, " joined ", p(0));
                }
            }
            b"PART" => {
                if is_me {
                    say!("-!- you left ", p(0));
                    self.forget(p(0));
                } else {
                    say!("-!- ", from, " left ", p(0));
                }
            }
            b"QUIT" => say!("-!- ", from, " quit (", p(0), ")"),
            b"NICK" => {
                if is_me {
                    self.nick = Some(p(0).to_vec());
                    say!("-!- you are now known as ", p(0));
                } else {
                    say!("-!- ", from, " is now known as ", p(0));
                }
            }
            b"TOPIC" if p(1).is_empty() => say!("-!- ", from, " cleared the topic of ", p(0)),
            b"TOPIC" => say!("-!- ", from, " set the topic of ", p(0), ": ", p(1)),
            // KICK <channel> <nick> :<comment>
            b"KICK" => {
                let by = [&b" by "[..], from, b" (", p(2), b")"].concat();
                if me(p(1)) {
                    say!("-!- you were kicked from ", p(0), by);
                    self.forget(p(0));
                } else {
                    say!("-!- ", p(1), " was kicked from ", p(0), by);
                }
            }
            // INVITE <nick> <channel>: to us (or, with invite-notify, to another)
            b"INVITE" if me(p(0)) => say!("-!- ", from, " invites you to ", p(1), ": /join ", p(1)),
            b"INVITE" => say!("-!- ", from, " invited ", p(0), " to ", p(1)),
            // MODE <target> <changes> [<args>...], a channel's or ours
            b"MODE" => {
                let changes = words(&msg.params, 1);
                say!("-!- ", from, " sets mode ", changes, " on ", p(0));
            }
            b"ERROR" if self.quitting => {}
            b"ERROR" => say!("-!- server: ", last),
            // RPL_WELCOME: registered, under the nick the server confirms.
            b"001" => {
                self.registered = true;
                self.nick = Some(p(0).to_vec());
                say!("-!- ", last);
            }
            // The rest of the welcome burst.
            b"002" | b"003" | b"004" | b"005" => {}
            // Quiet in the burst, up to its end (the MOTD's: 376, or 422 for
            // none); after it, answers to /lusers and /motd.
            code @ (b"250" | b"251" | b"252" | b"253" | b"254" | b"255" | b"265" | b"266"
            | b"375" | b"376" | b"422")
                if !self.welcomed =>
            {
                self.welcomed = matches!(code, b"376" | b"422");
            }
            // LUSERS: sentences (250 the most connections, 251 255 265 266),
            // or a count and its words.
            b"250" | b"251" | b"255" | b"265" | b"266" => say!("-!- ", last),
            b"252" | b"253" | b"254" => say!("-!- ", p(1), " ", last),
            // MOTD: 375, a 372 per line, 376.
            b"375" | b"372" => say!(last),
            b"376" => log!("-!- end of /motd"),
            // WHO: one 352 per user, then 315.
            b"352" => {
                // <me> <channel> <user> <host> <server> <nick> <flags> :<hops> <realname>
                match p(1) {
                    b"*" => say!(p(5), " (", p(2), "@", p(3), ")"),
                    channel => say!(p(5), " (", p(2), "@", p(3), ") on ", channel),
                }
            }
            b"315" => log!("-!- end of /who"),
            // WHOIS
            b"311" => say!(p(1), " is ", p(2), "@", p(3), " (", last, ")"),
            // In WHOIS and in WHOWAS (whose 312 may tell when instead).
            b"312" => say!(p(1), " on server ", p(2), " (", last, ")"),
            b"317" => say!(p(1), " has been idle ", p(2), " s"),
            b"319" => say!(p(1), " is on ", last),
            // RPL_WHOISACTUALLY: the address and port the user connects from.
            b"338" => say!(p(1), " is connected from ", p(2)),
            b"318" => log!("-!- end of /whois"),
            // WHOWAS: 314 <me> <nick> <user> <host> * :<realname>, 312, 369.
            b"314" => say!(p(1), " was ", p(2), "@", p(3), " (", last, ")"),
            b"369" => log!("-!- end of /whowas"),
            // TIME: 391 <me> <server> [<timestamp> [<offset>]] :<the time, to read>
            b"391" => say!("-!- time on ", p(1), ": ", last),
            // NAMES: 353 <me> <type> <channel> :<names>, then 366.
            b"353" => say!("users on ", p(2), ": ", last),
            b"366" => {}
            // LIST: 322 <me> <channel> <visible> :<topic>
            b"321" => {}
            b"322" => {
                let line = [p(1), b" (", p(2), b" users) ", last].concat();
                say!(trim_end(&line));
            }
            b"323" => log!("-!- end of /list"),
            b"331" => say!("-!- ", p(1), " has no topic"),
            // AWAY: 301 RPL_AWAY <me> <nick> :<text>, after a message to an
            // away user or in WHOIS; 305 back, 306 away.
            b"301" => say!("-!- ", p(1), " is away: ", last),
            b"305" => say!("-!- you are back"),
            b"306" => say!("-!- you are marked as away: /back when you return"),
            b"332" => say!("-!- topic of ", p(1), ": ", last),
            // 333 <me> <channel> <nick> <set at>
            b"333" => say!("-!- topic of ", p(1), " set by ", p(2), " on ", date(p(3))),
            // Channel modes: 324 <me> <channel> <modes> [<args>...], 329 <me> <channel> <created>
            b"324" => say!("-!- modes of ", p(1), ": ", words(&msg.params, 2)),
            b"329" => say!("-!- ", p(1), " was created on ", date(p(2))),
            // INVITE: 341 RPL_INVITING <me> <nick> <channel>
            b"341" => say!("-!- you invited ", p(1), " to ", p(2)),
            // Bans: 367 <me> <channel> <mask> [<who> <set at>] each, then 368.
            b"367" if p(3).is_empty() => say!("-!- ban on ", p(1), ": ", p(2)),
            b"367" => say!("-!- ban on ", p(1), ": ", p(2), " (set by ", p(3), ")"),
            b"368" => say!("-!- end of the ban list of ", p(1)),
            b"433" => {
                say!(
                    "-!- nickname ",
                    p(1),
                    " is taken: choose another with /nick NAME"
                );
                if !self.registered {
                    self.nick = None;
                }
            }
            // Errors, and 696 ERR_INVALIDMODEPARAM (Modern IRC): "<me>
            // [<subjects>...] :<sentence>" (441: <nick> <channel>); show one
            // plain sentence.
            code if code.len() == 3 && (b"45".contains(&code[0]) || code == b"696") => {
                let middle = msg.params.get(1..msg.params.len().saturating_sub(1));
                let subject = middle.unwrap_or_default().join(&b' ');
                // 403, 405, 471-476: we are not on that channel after all.
                if matches!(
                    code,
                    b"403" | b"405" | b"471" | b"473" | b"474" | b"475" | b"476"
                ) {
                    self.forget(p(1));
                }
                if subject.is_empty() {
                    say!("-!- error: ", last);
                } else {
                    say!("-!- error: ", last, " (", subject, ")");
                }
            }
            // Any other reply (WHOIS extras such as the address, 338/378): its text.
            code if code.len() == 3 && code.iter().all(|b| b.is_ascii_digit()) => {
                say!(msg.params[1.min(msg.params.len())..].join(&b' '));
            }
            // Any other command (a PONG to /quote PING...): its words.
            _ => {
                let params = words(&msg.params, 0);
                let parts = [from, msg.command, &params];
                let parts: Vec<&[u8]> = parts.into_iter().filter(|p| !p.is_empty()).collect();
                say!("-!- ", parts.join(&b' '));
            }
        }
    }
}

/// `params[from..]`, a space between each.
fn words(params: &[&[u8]], from: usize) -> Vec<u8> {
    params.get(from..).unwrap_or_default().join(&b' ')
}

/// A time in seconds since 1970 (333, 329) as `2025-01-31 14:05:09 UTC`;
/// anything else, or past the year 9999, as it came.
fn date(text: &[u8]) -> Vec<u8> {
    let secs = std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<u64>().ok());
    match secs {
        Some(secs) if secs < 253_402_300_800 && text.iter().all(u8::is_ascii_digit) => {
            crate::date::utc(secs).into_bytes()
        }
        _ => text.to_vec(),
    }
}

/// White space as isspace(3) knows it in the C locale: ASCII's, vertical
/// tab included (which `u8::is_ascii_whitespace` leaves out).
fn is_space(b: &u8) -> bool {
    b" \t\n\x0b\x0c\r".contains(b)
}

/// `bytes` without white space at its end.
fn trim_end(mut bytes: &[u8]) -> &[u8] {
    while let [before @ .., last] = bytes
        && is_space(last)
    {
        bytes = before;
    }
    bytes
}

/// `bytes` without white space at either end.
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    trim_end(&bytes[start..])
}

/// What comes before the first NUL: a NUL ends a line, as it ends a C string.
fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// What comes before the first space, and what after it ("" without one).
fn split_space(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, b""),
    }
}

/// The nick of who sent `msg`, as [`sender`] says it, in bytes.
fn raw_sender<'a>(msg: &RawMessage<'a>) -> &'a [u8] {
    msg.prefix
        .map(|p| p.split(|&b| b == b'!').next().unwrap_or(p))
        .unwrap_or(b"")
}

/// The nick of who sent `msg`: the `nick` of a `nick!user@host` prefix,
/// the server's name for a numeric, "" without a prefix.
pub fn sender(msg: &Message) -> &str {
    msg.prefix
        .as_deref()
        .map(|p| p.split('!').next().unwrap_or(p))
        .unwrap_or("")
}

/// The host of a `nick!user@host` prefix, if it has one.
pub fn sender_host(msg: &Message) -> Option<&str> {
    msg.prefix.as_deref()?.split_once('@').map(|(_, host)| host)
}
