//! The IRC commands of lab 07's server: what one line from a client does.
//!
//! Each command answers its sender with numerics (`:server 001 alice :...`,
//! RFC 2812 §5) and may relay a line to others with the sender's prefix
//! (`:alice!alice@127.0.0.1 PRIVMSG #room :hi`). Nothing here reads or
//! writes a socket: lines are queued with `Client::send`, and the loop in
//! server.rs writes them out.

use std::time::Instant;

use socket_labs::irc::{self, MAX_LINE, Message};
use socket_labs::log;

use crate::{Chat, Client, Id, VERSION, unix_now};

/// RFC 2812 §1.2.1: nicknames have at most 9 characters.
const NICKLEN: usize = 9;
/// Channel names, `#` included (RFC 2812 §1.3 allows 50).
const CHANNELLEN: usize = 50;
/// The longest user name kept from USER, and the longest topic, in bytes.
const USERLEN: usize = 10;
const TOPICLEN: usize = 390;
/// How many channels one user may be on at once: with the descriptor
/// limit on users, it bounds the number of channels.
const MAX_CHANNELS: usize = 20;
/// How many targets one PRIVMSG or NOTICE may name: each `$*` is a copy
/// for every user, so one line must not be allowed to make thousands.
const MAX_TARGETS: usize = 4;

/// What a real client reads from 005 (RPL_ISUPPORT) to learn our rules.
const ISUPPORT: &[&str] = &[
    "CASEMAPPING=rfc1459",
    "CHANTYPES=#",
    "CHANLIMIT=#:20",
    "CHANNELLEN=50",
    "NICKLEN=9",
    "TOPICLEN=390",
    "PREFIX=(o)@",
    "TARGMAX=PRIVMSG:4,NOTICE:4",
    "NETWORK=socket-labs",
];

/// A channel: created by its first JOIN, removed with its last member.
pub struct Channel {
    /// As its creator wrote it; the key in `Chat::channels` is folded.
    name: String,
    topic: Option<Topic>,
    members: Vec<Member>,
    /// Seconds since 1970, for MODE's 329.
    created: u64,
}

#[derive(Clone)]
struct Topic {
    text: String,
    by: String,
    at: u64,
}

struct Member {
    id: Id,
    /// A channel operator: `@nick` in NAMES, `@#chan` in WHOIS, `H@` in WHO.
    operator: bool,
}

impl Channel {
    fn member(&self, id: Id) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
}

impl Chat {
    /// Handles one line from clients[i] (CR LF or LF included).
    pub fn command(&mut self, i: usize, line: &[u8]) {
        let Some(msg) = Message::parse(line) else {
            return; // an empty line: nothing to do (RFC 2812 §2.3.1)
        };
        let params: Vec<&str> = msg.params.iter().map(String::as_str).collect();
        let p = params.as_slice();
        let command = msg.command.to_ascii_uppercase();
        let command = command.as_str();
        let before_registration = matches!(
            command,
            "CAP" | "PASS" | "NICK" | "USER" | "PING" | "PONG" | "QUIT"
        );
        if !self.clients.list[i].registered && !before_registration {
            self.reply(i, "451", &["You have not registered"]);
            return;
        }
        let needed = match command {
            "USER" => 4,
            "CAP" | "PING" | "JOIN" | "PART" | "TOPIC" | "MODE" => 1,
            _ => 0,
        };
        if p.len() < needed {
            self.reply(i, "461", &[&msg.command, "Not enough parameters"]);
            return;
        }
        match command {
            "CAP" => self.cap(i, p),
            "PASS" | "PONG" => {} // no passwords here; any line resets the ping clock
            "NICK" => self.nick(i, p),
            "USER" => self.user(i, p),
            "PING" => {
                let line = irc::format_trailing(Some(&self.name), "PONG", &[&self.name, p[0]]);
                self.clients.list[i].send(&line);
            }
            "QUIT" => self.quit(i, p),
            "PRIVMSG" | "NOTICE" => self.message(i, command, p),
            "JOIN" => self.join(i, p),
            "PART" => self.part(i, p),
            "NAMES" => self.names(i, p),
            "LIST" => self.list(i, p),
            "TOPIC" => self.topic(i, p),
            "WHO" => self.who(i, p),
            "WHOIS" => self.whois(i, p),
            "MODE" => self.mode(i, p),
            "MOTD" => self.reply(i, "422", &["MOTD File is missing"]),
            "LUSERS" => self.lusers(i),
            _ => self.reply(i, "421", &[&msg.command, "Unknown command"]),
        }
    }

    /// Queues `:server NUMERIC <client> params...` for clients[i].
    pub fn reply(&mut self, i: usize, numeric: &str, params: &[&str]) {
        let line = self.numeric(i, numeric, params);
        self.clients.list[i].send(&line);
    }

    /// The line of a reply to clients[i]: its first parameter is the
    /// client's nick (`*` before it has one), its last one trailing.
    fn numeric(&self, i: usize, numeric: &str, params: &[&str]) -> String {
        let me = self.clients.list[i].nick.as_deref().unwrap_or("*");
        let params = [&[me], params].concat();
        irc::format_trailing(Some(&self.name), numeric, &params)
    }

    /// A reply whose last parameter is a list (353 names, 319 channels),
    /// spread over as many lines as it takes to keep each within 512 bytes.
    fn reply_list(&mut self, i: usize, numeric: &str, params: &[&str], items: &[String]) {
        let empty = self.numeric(i, numeric, &[params, &[""]].concat());
        let room = MAX_LINE.saturating_sub(empty.len());
        let mut text = String::new();
        for item in items {
            if !text.is_empty() && text.len() + 1 + item.len() > room {
                self.reply(i, numeric, &[params, &[text.as_str()]].concat());
                text.clear();
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(item);
        }
        if !text.is_empty() {
            self.reply(i, numeric, &[params, &[text.as_str()]].concat());
        }
    }

    /// 332 RPL_TOPIC and 333 RPL_TOPICWHOTIME: the topic, who set it and when.
    fn reply_topic(&mut self, i: usize, channel: &str, topic: &Topic) {
        self.reply(i, "332", &[channel, &topic.text]);
        self.reply(i, "333", &[channel, &topic.by, &topic.at.to_string()]);
    }

    /// Every channel's key, in order: NAMES and LIST show them sorted.
    fn channel_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.channels.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The clients who share a channel with `client`, each once.
    fn peers(&self, client: &Client) -> Vec<Id> {
        let mut ids: Vec<Id> = client
            .channels
            .iter()
            .filter_map(|key| self.channels.get(key))
            .flat_map(|channel| channel.members.iter().map(|m| m.id))
            .filter(|&id| id != client.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// CAP (IRCv3 capability negotiation), which irssi and weechat send
    /// first: we offer no capability, and say so, so that they go on.
    fn cap(&mut self, i: usize, p: &[&str]) {
        match p[0].to_ascii_uppercase().as_str() {
            "LS" => self.reply(i, "CAP", &["LS", ""]),
            "LIST" => self.reply(i, "CAP", &["LIST", ""]),
            "REQ" => self.reply(i, "CAP", &["NAK", p.get(1).copied().unwrap_or("")]),
            "END" => {}
            _ => self.reply(i, "410", &[p[0], "Invalid CAP command"]),
        }
    }

    /// NICK: choose a nickname, or change it once registered.
    fn nick(&mut self, i: usize, p: &[&str]) {
        let Some(&new) = p.first().filter(|n| !n.is_empty()) else {
            self.reply(i, "431", &["No nickname given"]);
            return;
        };
        if !irc::valid_nick(new.as_bytes(), NICKLEN) {
            self.reply(i, "432", &[new, "Erroneous nickname"]);
            return;
        }
        // Unique whatever the case: alice, Alice and ALICE are one nick.
        let key = irc::fold(new);
        let client = &self.clients.list[i];
        if self.nicks.get(&key).is_some_and(|&id| id != client.id) {
            self.reply(i, "433", &[new, "Nickname is already in use"]);
            return;
        }
        if client.nick.as_deref() == Some(new) {
            return;
        }
        let old_prefix = client.prefix();
        let (id, registered) = (client.id, client.registered);
        let old = self.clients.list[i].nick.replace(new.to_string());
        if let Some(old) = &old {
            self.nicks.remove(&irc::fold(old));
        }
        self.nicks.insert(key, id);
        if !registered {
            self.try_register(i);
            return;
        }
        // The user and everyone who shares a channel with them see it.
        let line = irc::format(Some(&old_prefix), "NICK", &[new]);
        let client = &self.clients.list[i];
        log!(
            "{} {} is now known as {new}",
            client.peer,
            old.as_deref().unwrap_or("*")
        );
        for peer in self.peers(client) {
            self.clients.send(peer, &line);
        }
        self.clients.list[i].send(&line);
    }

    /// USER <user> <mode> <unused> :<realname> (RFC 2812 §3.1.3).
    fn user(&mut self, i: usize, p: &[&str]) {
        if self.clients.list[i].registered {
            self.reply(i, "462", &["You may not reregister"]);
            return;
        }
        // The user name goes into every prefix: keep it short and plain.
        let user: String = p[0]
            .chars()
            .filter(|c| c.is_ascii_graphic() && !matches!(c, '!' | '@' | ':'))
            .take(USERLEN)
            .collect();
        let client = &mut self.clients.list[i];
        client.user = Some(if user.is_empty() { "user".into() } else { user });
        client.realname = p[3].to_string();
        self.try_register(i);
    }

    /// Once NICK and USER are both in, in either order: the welcome burst.
    fn try_register(&mut self, i: usize) {
        let client = &mut self.clients.list[i];
        let Some(nick) = client.nick.clone() else {
            return;
        };
        if client.user.is_none() {
            return;
        }
        client.registered = true;
        client.signon = unix_now();
        client.last_message = Instant::now();
        let prefix = client.prefix();
        log!("{} registered as {nick}", client.peer);
        let name = self.name.clone();
        self.reply(
            i,
            "001",
            &[&format!("Welcome to the socket-labs Network, {prefix}")],
        );
        let host = format!("Your host is {name}, running version {VERSION}");
        self.reply(i, "002", &[&host]);
        let created = format!("This server was created {}", self.created);
        self.reply(i, "003", &[&created]);
        // <client> <servername> <version> <user modes> <channel modes>: mode
        // letters, not text, so without the trailing colon of reply().
        let info = irc::format(Some(&name), "004", &[&nick, &name, VERSION, "i", "o"]);
        self.clients.list[i].send(&info);
        self.reply(
            i,
            "005",
            &[ISUPPORT, &["are supported by this server"]].concat(),
        );
        self.reply(i, "422", &["MOTD File is missing"]);
    }

    /// QUIT [:message]: answered with ERROR; its channels see the QUIT when
    /// the connection is closed, at the end of this turn.
    fn quit(&mut self, i: usize, p: &[&str]) {
        let why = p.first().copied().filter(|w| !w.is_empty());
        let why = why.unwrap_or("Client quit");
        let client = &mut self.clients.list[i];
        log!(
            "{} {} quit: {why}",
            client.peer,
            client.nick.as_deref().unwrap_or("*")
        );
        let error = format!("Closing link: {} ({why})", client.host);
        client.send(&irc::format_trailing(None, "ERROR", &[&error]));
        client.gone = Some(why.to_string());
    }

    /// PRIVMSG and NOTICE <target>{,<target>} :<text>, to a nick, a channel
    /// or `$*`, every user of this server (RFC 2812 §3.3.1: a server mask).
    /// A NOTICE is never answered, not even with an error (§3.3.2): two
    /// programs answering each other's notices would loop forever.
    fn message(&mut self, i: usize, command: &str, p: &[&str]) {
        let notice = command == "NOTICE";
        let Some(&targets) = p.first().filter(|t| !t.is_empty()) else {
            if !notice {
                self.reply(i, "411", &[&format!("No recipient given ({command})")]);
            }
            return;
        };
        let Some(&text) = p.get(1).filter(|t| !t.is_empty()) else {
            if !notice {
                self.reply(i, "412", &["No text to send"]);
            }
            return;
        };
        let sender = &mut self.clients.list[i];
        sender.last_message = Instant::now();
        let (from, prefix) = (sender.id, sender.prefix());
        for (n, target) in targets.split(',').filter(|t| !t.is_empty()).enumerate() {
            if n == MAX_TARGETS {
                if !notice {
                    self.reply(i, "407", &[target, "Too many targets"]);
                }
                break;
            }
            let refused = if let Some(mask) = target.strip_prefix('$') {
                if irc::mask_matches(mask.as_bytes(), self.name.as_bytes()) {
                    let line = irc::format_trailing(Some(&prefix), command, &[target, text]);
                    for client in &mut self.clients.list {
                        if client.registered && client.id != from {
                            client.send(&line);
                        }
                    }
                    None
                } else {
                    Some(("401", "No such nick/channel"))
                }
            } else if target.starts_with('#') {
                match self.channels.get(&irc::fold(target)) {
                    None => Some(("401", "No such nick/channel")),
                    // Only members may speak in a channel (mode +n, always).
                    Some(channel) if channel.member(from).is_none() => {
                        Some(("404", "Cannot send to channel"))
                    }
                    Some(channel) => {
                        let line =
                            irc::format_trailing(Some(&prefix), command, &[&channel.name, text]);
                        for member in channel.members.iter().filter(|m| m.id != from) {
                            self.clients.send(member.id, &line);
                        }
                        None
                    }
                }
            } else {
                let to = self.nicks.get(&irc::fold(target)).copied();
                match to.and_then(|id| self.clients.get_mut(id)) {
                    Some(to) if to.registered => {
                        let nick = to.nick.as_deref().unwrap_or(target);
                        let line = irc::format_trailing(Some(&prefix), command, &[nick, text]);
                        to.send(&line);
                        None
                    }
                    _ => Some(("401", "No such nick/channel")),
                }
            };
            if let Some((numeric, sentence)) = refused
                && !notice
            {
                self.reply(i, numeric, &[target, sentence]);
            }
        }
    }

    /// JOIN #a,#b (keys ignored), or JOIN 0 to leave every channel.
    fn join(&mut self, i: usize, p: &[&str]) {
        if p[0] == "0" {
            for key in self.clients.list[i].channels.clone() {
                self.leave(i, &key, None);
            }
            return;
        }
        for name in p[0].split(',').filter(|n| !n.is_empty()) {
            if !irc::valid_channel(name.as_bytes(), CHANNELLEN) {
                self.reply(i, "403", &[name, "No such channel"]);
                continue;
            }
            let key = irc::fold(name);
            let client = &mut self.clients.list[i];
            if client.channels.contains(&key) {
                continue;
            }
            if client.channels.len() >= MAX_CHANNELS {
                self.reply(i, "405", &[name, "You have joined too many channels"]);
                continue;
            }
            client.channels.push(key.clone());
            let (id, prefix, peer) = (client.id, client.prefix(), client.peer);
            let channel = self.channels.entry(key.clone()).or_insert_with(|| Channel {
                name: name.to_string(),
                topic: None,
                members: Vec::new(),
                created: unix_now(),
            });
            // Whoever creates the channel is its operator.
            let operator = channel.members.is_empty();
            channel.members.push(Member { id, operator });
            let line = irc::format(Some(&prefix), "JOIN", &[&channel.name]);
            for member in &channel.members {
                self.clients.send(member.id, &line);
            }
            let (name, topic) = (channel.name.clone(), channel.topic.clone());
            log!("{peer} {} joined {name}", prefix_nick(&prefix));
            if let Some(topic) = topic {
                self.reply_topic(i, &name, &topic);
            }
            self.names_of(i, &key);
            self.reply(i, "366", &[&name, "End of /NAMES list"]);
        }
    }

    /// PART #a,#b [:reason]
    fn part(&mut self, i: usize, p: &[&str]) {
        let id = self.clients.list[i].id;
        for name in p[0].split(',').filter(|n| !n.is_empty()) {
            let key = irc::fold(name);
            match self.channels.get(&key) {
                None => self.reply(i, "403", &[name, "No such channel"]),
                Some(channel) if channel.member(id).is_none() => {
                    self.reply(i, "442", &[name, "You're not on that channel"])
                }
                Some(_) => self.leave(i, &key, p.get(1).copied()),
            }
        }
    }

    /// Tells the channel (the leaver included) that clients[i] leaves it,
    /// then forgets the membership; the last member out removes the channel.
    fn leave(&mut self, i: usize, key: &str, why: Option<&str>) {
        let client = &mut self.clients.list[i];
        client.channels.retain(|c| c != key);
        let (id, prefix, peer) = (client.id, client.prefix(), client.peer);
        let Some(channel) = self.channels.get_mut(key) else {
            return;
        };
        let line = match why {
            Some(why) => irc::format_trailing(Some(&prefix), "PART", &[&channel.name, why]),
            None => irc::format(Some(&prefix), "PART", &[&channel.name]),
        };
        for member in &channel.members {
            self.clients.send(member.id, &line);
        }
        channel.members.retain(|m| m.id != id);
        log!("{peer} {} left {}", prefix_nick(&prefix), channel.name);
        if channel.members.is_empty() {
            self.channels.remove(key);
        }
    }

    /// 353 RPL_NAMREPLY lines for the channel with this folded name, if any.
    fn names_of(&mut self, i: usize, key: &str) {
        let Some(channel) = self.channels.get(key) else {
            return;
        };
        let name = channel.name.clone();
        let names: Vec<String> = channel
            .members
            .iter()
            .filter_map(|m| {
                let nick = self.clients.get(m.id)?.nick.as_deref()?;
                Some(if m.operator {
                    format!("@{nick}")
                } else {
                    nick.to_string()
                })
            })
            .collect();
        // "=" a public channel (RFC 2812 §5.1, RPL_NAMREPLY).
        self.reply_list(i, "353", &["=", &name], &names);
    }

    /// NAMES [#a,#b]: who is on these channels (all of them without a
    /// parameter). An unknown channel gets only its 366.
    fn names(&mut self, i: usize, p: &[&str]) {
        match p.first() {
            None => {
                for key in self.channel_keys() {
                    self.names_of(i, &key);
                }
                self.reply(i, "366", &["*", "End of /NAMES list"]);
            }
            Some(list) => {
                for name in list.split(',').filter(|n| !n.is_empty()) {
                    self.names_of(i, &irc::fold(name));
                    self.reply(i, "366", &[name, "End of /NAMES list"]);
                }
            }
        }
    }

    /// LIST [#a,#b]: 322 per channel, then 323. The optional 321 is not sent.
    fn list(&mut self, i: usize, p: &[&str]) {
        let keys: Vec<String> = match p.first() {
            None => self.channel_keys(),
            Some(list) => list.split(',').map(irc::fold).collect(),
        };
        for key in keys {
            let Some(channel) = self.channels.get(&key) else {
                continue;
            };
            let (name, count) = (channel.name.clone(), channel.members.len().to_string());
            let topic = channel
                .topic
                .as_ref()
                .map_or(String::new(), |t| t.text.clone());
            self.reply(i, "322", &[&name, &count, &topic]);
        }
        self.reply(i, "323", &["End of /LIST"]);
    }

    /// TOPIC #chan [:text]. Anyone on the channel may set the topic: this
    /// server has no mode +t (topic reserved to operators).
    fn topic(&mut self, i: usize, p: &[&str]) {
        let key = irc::fold(p[0]);
        let client = &self.clients.list[i];
        let (id, prefix) = (client.id, client.prefix());
        let Some(channel) = self.channels.get_mut(&key) else {
            self.reply(i, "403", &[p[0], "No such channel"]);
            return;
        };
        let name = channel.name.clone();
        let Some(text) = p.get(1) else {
            match channel.topic.clone() {
                Some(topic) => self.reply_topic(i, &name, &topic),
                None => self.reply(i, "331", &[&name, "No topic is set"]),
            }
            return;
        };
        if channel.member(id).is_none() {
            self.reply(i, "442", &[&name, "You're not on that channel"]);
            return;
        }
        let text = &text[..text.floor_char_boundary(TOPICLEN)];
        channel.topic = (!text.is_empty()).then(|| Topic {
            text: text.to_string(),
            by: prefix_nick(&prefix).to_string(),
            at: unix_now(),
        });
        let line = irc::format_trailing(Some(&prefix), "TOPIC", &[&name, text]);
        for member in &channel.members {
            self.clients.send(member.id, &line);
        }
    }

    /// WHO [mask]: one 352 per user matching (a channel's members for
    /// `#chan`; `*` or nothing for everyone), then 315 repeating the mask.
    fn who(&mut self, i: usize, p: &[&str]) {
        let mask = p.first().copied().unwrap_or("*");
        // <channel> <user> <host> <server> <nick> <flags> :<hopcount> <realname>
        let row = |client: &Client, channel: &str, operator: bool| {
            vec![
                channel.to_string(),
                client.user.clone().unwrap_or_default(),
                client.host.clone(),
                self.name.clone(),
                client.nick.clone().unwrap_or_default(),
                if operator { "H@" } else { "H" }.to_string(),
                format!("0 {}", client.realname),
            ]
        };
        let mut rows = Vec::new();
        if mask.starts_with('#') {
            if let Some(channel) = self.channels.get(&irc::fold(mask)) {
                for member in &channel.members {
                    if let Some(client) = self.clients.get(member.id) {
                        rows.push(row(client, &channel.name, member.operator));
                    }
                }
            }
        } else {
            for client in self.clients.list.iter().filter(|c| c.registered) {
                let nick = client.nick.as_deref().unwrap_or("");
                let matches = mask == "0"
                    || irc::mask_matches(mask.as_bytes(), nick.as_bytes())
                    || irc::mask_matches(mask.as_bytes(), client.host.as_bytes())
                    || irc::mask_matches(mask.as_bytes(), client.realname.as_bytes());
                if matches {
                    rows.push(row(client, "*", false));
                }
            }
        }
        for row in rows {
            let params: Vec<&str> = row.iter().map(String::as_str).collect();
            self.reply(i, "352", &params);
        }
        self.reply(i, "315", &[mask, "End of WHO list"]);
    }

    /// WHOIS [server] nick: who they are, where from (address and port),
    /// on which channels, idle how long; always ended by 318.
    fn whois(&mut self, i: usize, p: &[&str]) {
        let Some(&nick) = p.last().filter(|n| !n.is_empty()) else {
            self.reply(i, "431", &["No nickname given"]);
            return;
        };
        let id = self.nicks.get(&irc::fold(nick)).copied();
        let Some(who) = id
            .and_then(|id| self.clients.get(id))
            .filter(|c| c.registered)
        else {
            self.reply(i, "401", &[nick, "No such nick/channel"]);
            self.reply(i, "318", &[nick, "End of /WHOIS list"]);
            return;
        };
        let channels: Vec<String> = who
            .channels
            .iter()
            .filter_map(|key| {
                let channel = self.channels.get(key)?;
                let operator = channel.member(who.id).is_some_and(|m| m.operator);
                Some(format!(
                    "{}{}",
                    if operator { "@" } else { "" },
                    channel.name
                ))
            })
            .collect();
        let nick = who.nick.clone().unwrap_or_default();
        let user = who.user.clone().unwrap_or_default();
        let (host, realname) = (who.host.clone(), who.realname.clone());
        let address = who.peer.to_string();
        let idle = who.last_message.elapsed().as_secs().to_string();
        let signon = who.signon.to_string();
        let name = self.name.clone();
        self.reply(i, "311", &[&nick, &user, &host, "*", &realname]);
        self.reply(i, "312", &[&nick, &name, "socket-labs chat server, lab 07"]);
        if !channels.is_empty() {
            self.reply_list(i, "319", &[&nick], &channels);
        }
        // 338 RPL_WHOISACTUALLY: the address and port the user connects from.
        self.reply(
            i,
            "338",
            &[&nick, &address, "is actually using this address and port"],
        );
        self.reply(
            i,
            "317",
            &[&nick, &idle, &signon, "seconds idle, signon time"],
        );
        self.reply(i, "318", &[&nick, "End of /WHOIS list"]);
    }

    /// MODE, the little of it that clients ask on their own: a user's modes
    /// (+i only, kept but without effect), a channel's (none but operator
    /// status, +o/-o given by an operator), and the ban list (always empty)
    /// that irssi asks for on joining.
    fn mode(&mut self, i: usize, p: &[&str]) {
        if p[0].starts_with('#') {
            self.channel_mode(i, p);
        } else {
            self.user_mode(i, p);
        }
    }

    fn user_mode(&mut self, i: usize, p: &[&str]) {
        let client = &mut self.clients.list[i];
        let me = client.nick.clone().unwrap_or_default();
        if irc::fold(p[0]) != irc::fold(&me) {
            if self.nicks.contains_key(&irc::fold(p[0])) {
                self.reply(i, "502", &["Can't change mode for other users"]);
            } else {
                self.reply(i, "401", &[p[0], "No such nick/channel"]);
            }
            return;
        }
        let Some(changes) = p.get(1) else {
            let modes = if client.invisible { "+i" } else { "+" };
            self.reply(i, "221", &[modes]);
            return;
        };
        let before = client.invisible;
        let mut adding = true;
        let mut unknown = false;
        for c in changes.chars() {
            match c {
                '+' => adding = true,
                '-' => adding = false,
                'i' => client.invisible = adding,
                _ => unknown = true,
            }
        }
        if client.invisible != before {
            let change = if client.invisible { "+i" } else { "-i" };
            client.send(&irc::format(Some(&me), "MODE", &[&me, change]));
        }
        if unknown {
            self.reply(i, "501", &["Unknown MODE flag"]);
        }
    }

    fn channel_mode(&mut self, i: usize, p: &[&str]) {
        let key = irc::fold(p[0]);
        let client = &self.clients.list[i];
        let (id, prefix) = (client.id, client.prefix());
        let Some(channel) = self.channels.get(&key) else {
            self.reply(i, "403", &[p[0], "No such channel"]);
            return;
        };
        let name = channel.name.clone();
        let Some(&changes) = p.get(1) else {
            let created = channel.created.to_string();
            self.reply(i, "324", &[&name, "+"]);
            self.reply(i, "329", &[&name, &created]);
            return;
        };
        if p.len() == 2 && changes.trim_start_matches('+') == "b" {
            self.reply(i, "368", &[&name, "End of channel ban list"]);
            return;
        }
        if !channel.member(id).is_some_and(|m| m.operator) {
            self.reply(i, "482", &[&name, "You're not channel operator"]);
            return;
        }
        let mut arguments = p[2..].iter();
        let mut adding = true;
        for c in changes.chars() {
            match c {
                '+' => adding = true,
                '-' => adding = false,
                'o' => {
                    let Some(&nick) = arguments.next() else {
                        self.reply(i, "461", &["MODE", "Not enough parameters"]);
                        return;
                    };
                    let target = self.nicks.get(&irc::fold(nick)).copied();
                    let Some(channel) = self.channels.get_mut(&key) else {
                        return;
                    };
                    let Some(member) = channel.members.iter_mut().find(|m| Some(m.id) == target)
                    else {
                        self.reply(i, "441", &[nick, &name, "They aren't on that channel"]);
                        continue;
                    };
                    member.operator = adding;
                    let change = if adding { "+o" } else { "-o" };
                    let line = irc::format(Some(&prefix), "MODE", &[&name, change, nick]);
                    for member in &channel.members {
                        self.clients.send(member.id, &line);
                    }
                }
                _ => self.reply(i, "472", &[&c.to_string(), "is unknown mode char to me"]),
            }
        }
    }

    /// LUSERS: how many users, unregistered connections and channels.
    fn lusers(&mut self, i: usize) {
        let users = self.clients.list.iter().filter(|c| c.registered).count();
        let unknown = self.clients.list.len() - users;
        let channels = self.channels.len().to_string();
        let there = format!("There are {users} users and 0 invisible on 1 servers");
        self.reply(i, "251", &[&there]);
        if unknown > 0 {
            self.reply(i, "253", &[&unknown.to_string(), "unknown connection(s)"]);
        }
        self.reply(i, "254", &[&channels, "channels formed"]);
        self.reply(
            i,
            "255",
            &[&format!("I have {users} clients and 0 servers")],
        );
    }

    /// Forgets clients[i], gone: frees its nick, tells those who shared a
    /// channel with it (`:nick!user@host QUIT :reason`), leaves its
    /// channels. The caller closes the descriptor.
    pub fn remove(&mut self, i: usize) -> Client {
        let client = self.clients.swap_remove(i);
        if let Some(nick) = &client.nick {
            self.nicks.remove(&irc::fold(nick));
        }
        if client.registered {
            let why = client.gone.as_deref().unwrap_or("Client quit");
            let line = irc::format_trailing(Some(&client.prefix()), "QUIT", &[why]);
            for peer in self.peers(&client) {
                self.clients.send(peer, &line);
            }
        }
        for key in &client.channels {
            if let Some(channel) = self.channels.get_mut(key) {
                channel.members.retain(|m| m.id != client.id);
                if channel.members.is_empty() {
                    self.channels.remove(key);
                }
            }
        }
        client
    }
}

/// The nick in a `nick!user@host` prefix.
fn prefix_nick(prefix: &str) -> &str {
    prefix.split('!').next().unwrap_or(prefix)
}
