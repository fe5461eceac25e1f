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
//! Lab 08 adds commands of its own and a first look at every server line
//! through an [`Extension`]; lab 07 uses [`Chat`] as it is.

use crate::irc::{self, Message};
use crate::{Line, log};

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
    /// either.
    fn command(&mut self, chat: &mut Chat, name: &str, args: &str, queued: &mut Vec<u8>) -> bool {
        let _ = (chat, name, args, queued);
        false
    }

    /// A message from the server, before the chat shows it. Returns true
    /// if the extension took it: the chat then shows nothing.
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
    nick: Option<String>,
    registered: bool,
    user_sent: bool,
    /// Channels joined, the current one last.
    channels: Vec<String>,
    raw: bool,
    quitting: bool,
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
        }
    }

    /// Whether `/quit` was sent: the server's close is then the goodbye.
    pub fn quitting(&self) -> bool {
        self.quitting
    }

    /// Our nickname, `?` before we have one.
    pub fn me(&self) -> &str {
        self.nick.as_deref().unwrap_or("?")
    }

    /// `channel` becomes the current one (the last of the list). The list
    /// is bounded whatever the server sends: past MAX_JOINED, the oldest is
    /// forgotten (the server lets a user be on 20).
    fn join(&mut self, channel: String) {
        self.channels
            .retain(|c| irc::fold(c) != irc::fold(&channel));
        if self.channels.len() == MAX_JOINED {
            self.channels.remove(0);
        }
        self.channels.push(channel);
    }

    /// Queues one IRC message for the server.
    pub fn queue(&self, queued: &mut Vec<u8>, command: &str, params: &[&str]) {
        let line = irc::format(None, command, params);
        if self.raw {
            log!(">> {}", line.trim_end());
        }
        // Bounded whatever the server does: stdin is read only below
        // MAX_QUEUED, but a server that sends PINGs and never reads our
        // PONGs would make the queue grow. Past the bound, a line is dropped.
        if queued.len() + line.len() <= QUEUE_SIZE {
            queued.extend_from_slice(line.as_bytes());
        }
    }

    /// Sends NICK, and USER the first time: registration (RFC 2812 §3.1).
    pub fn register(&mut self, nick: &str, queued: &mut Vec<u8>) {
        self.queue(queued, "NICK", &[nick]);
        if !self.user_sent {
            // USER <user> <mode> <unused> :<realname> (RFC 2812 §3.1.3)
            self.queue(queued, "USER", &[nick, "0", "*", nick]);
            self.user_sent = true;
        }
        self.nick = Some(nick.to_string());
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
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            return;
        }
        let Some(command) = text.strip_prefix('/') else {
            match self.channels.last() {
                Some(channel) => {
                    let channel = channel.clone();
                    self.queue(queued, "PRIVMSG", &[&channel, text]);
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
                    self.queue(queued, "NICK", &[first]);
                } else {
                    self.register(first, queued);
                }
            }
            "who" => self.queue(queued, "WHO", &[if first.is_empty() { "*" } else { first }]),
            "whois" if !first.is_empty() => self.queue(queued, "WHOIS", &[first]),
            "msg" if !first.is_empty() && !rest.is_empty() => {
                self.queue(queued, "PRIVMSG", &[first, rest]);
                log!("-> *{first}* {rest}");
            }
            "msgall" if !args.is_empty() => {
                // $* is the mask "every user on this server" (RFC 2812 §3.3.1).
                self.queue(queued, "PRIVMSG", &["$*", args]);
                log!("[all] {}: {args}", self.me());
            }
            "join" if !first.is_empty() => {
                let channel = if first.starts_with('#') {
                    first.to_string()
                } else {
                    format!("#{first}")
                };
                self.queue(queued, "JOIN", &[&channel]);
                // Lines typed next go there at once, without waiting for
                // the server's JOIN: piped input does not wait. An error
                // about the channel undoes it.
                self.join(channel);
            }
            "part" => match (first, self.channels.last()) {
                ("", Some(current)) => {
                    let current = current.clone();
                    self.queue(queued, "PART", &[&current]);
                }
                ("", None) => log!("-!- you are on no channel"),
                (channel, _) => self.queue(queued, "PART", &[channel]),
            },
            "names" => match (first, self.channels.last()) {
                ("", Some(current)) => {
                    let current = current.clone();
                    self.queue(queued, "NAMES", &[&current]);
                }
                ("", None) => self.queue(queued, "NAMES", &[]),
                (channel, _) => self.queue(queued, "NAMES", &[channel]),
            },
            "list" => self.queue(queued, "LIST", &[]),
            "quit" => {
                if self.user_sent {
                    let message = if args.is_empty() { "leaving" } else { args };
                    self.queue(queued, "QUIT", &[message]);
                    self.quitting = true;
                } else {
                    std::process::exit(0);
                }
            }
            "help" => log!("{COMMANDS}{}", ext.help()),
            "nick" | "whois" | "msg" | "msgall" | "join" => {
                log!("-!- /{name} needs more: /help shows how to use it")
            }
            _ => {
                if !ext.command(self, name, args, queued) {
                    log!("-!- unknown command /{name}: /help lists them")
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
        let Some(msg) = Message::parse(line) else {
            return;
        };
        if self.raw {
            log!("<< {}", String::from_utf8_lossy(line).trim_end());
        }
        if ext.message(self, &msg, queued) {
            return;
        }
        let from = sender(&msg).to_string();
        let is_me = irc::fold(&from) == irc::fold(self.me());
        let p = |i: usize| msg.param(i).unwrap_or("");
        let last = msg.params.last().map(String::as_str).unwrap_or("");
        match msg.command.to_ascii_uppercase().as_str() {
            "PING" => self.queue(queued, "PONG", &[last]),
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
                    self.join(channel);
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
