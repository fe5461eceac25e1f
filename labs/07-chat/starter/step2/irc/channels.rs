//! Channels: JOIN, PART, NAMES, LIST, TOPIC, and a channel's MODE (RFC
//! 2812 §3.2). A channel is created by its first JOIN and removed with its
//! last member; whoever creates it is its operator.

use socket_labs::date::unix_now;
use socket_labs::irc::{fold_bytes, format_bytes, valid_channel};

use super::{Id, Irc, Outbox, log_bytes};

/// Channel names, `#` included (RFC 2812 §1.3 allows 50).
const CHANNELLEN: usize = 50;
/// The longest topic, in bytes.
const TOPICLEN: usize = 390;
/// How many channels one user may be on at once: with the descriptor
/// limit on users, it bounds the number of channels.
const MAX_CHANNELS: usize = 20;

pub struct Channel {
    /// As its creator wrote it; the key in `Irc::channels` is folded.
    pub name: Vec<u8>,
    topic: Option<Topic>,
    /// In the order they joined: NAMES lists them so.
    pub members: Vec<Member>,
    /// Seconds since 1970, for MODE's 329.
    created: u64,
}

struct Topic {
    text: Vec<u8>,
    /// The nick of who set it, and when (seconds since 1970).
    by: String,
    at: u64,
}

pub struct Member {
    pub id: Id,
    /// A channel operator: `@nick` in NAMES, `@#chan` in WHOIS, `H@` in WHO.
    pub operator: bool,
}

impl Channel {
    pub fn member(&self, id: Id) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
}

impl Irc {
    /// JOIN #a,#b (keys ignored), or JOIN 0 to leave every channel.
    pub(super) fn join(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let Some(user) = self.users.get(&from) else {
            return;
        };
        if p[0] == b"0" {
            for key in user.channels.clone() {
                self.leave(out, from, &key, None);
            }
            return;
        }
        for name in p[0].split(|&b| b == b',').filter(|n| !n.is_empty()) {
            if !valid_channel(name, CHANNELLEN) {
                self.reply(out, from, "403", &[name, b"No such channel"]);
                continue;
            }
            let key = fold_bytes(name);
            let Some(user) = self.users.get_mut(&from) else {
                return;
            };
            if user.channels.contains(&key) {
                continue;
            }
            if user.channels.len() >= MAX_CHANNELS {
                self.reply(
                    out,
                    from,
                    "405",
                    &[name, b"You have joined too many channels"],
                );
                continue;
            }
            user.channels.push(key.clone());
            let (prefix, who) = (
                user.prefix(),
                format!("{} {} joined ", user.peer, user.nick()),
            );
            let channel = self.channels.entry(key.clone()).or_insert_with(|| Channel {
                name: name.to_vec(),
                topic: None,
                members: Vec::new(),
                created: unix_now(),
            });
            // Whoever creates the channel is its operator.
            let operator = channel.members.is_empty();
            channel.members.push(Member { id: from, operator });
            let line = format_bytes(Some(prefix.as_bytes()), "JOIN", &[&channel.name], false);
            for member in &channel.members {
                out.queue(member.id, &line);
            }
            log_bytes(&[who.as_bytes(), &channel.name]);
            let Some(channel) = self.channels.get(&key) else {
                return;
            };
            if let Some(topic) = &channel.topic {
                self.reply_topic(out, from, &channel.name, topic);
            }
            self.names_of(out, from, channel);
            self.reply(out, from, "366", &[&channel.name, b"End of /NAMES list"]);
        }
    }

    /// `PART #a,#b [:reason]`
    pub(super) fn part(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        for name in p[0].split(|&b| b == b',').filter(|n| !n.is_empty()) {
            let key = fold_bytes(name);
            match self.channels.get(&key) {
                None => self.reply(out, from, "403", &[name, b"No such channel"]),
                Some(channel) if channel.member(from).is_none() => {
                    self.reply(out, from, "442", &[name, b"You're not on that channel"])
                }
                Some(_) => self.leave(out, from, &key, p.get(1).copied()),
            }
        }
    }

    /// Tells the channel (the leaver included) that `from` leaves it, then
    /// forgets the membership; the last member out removes the channel.
    fn leave(&mut self, out: &mut dyn Outbox, from: Id, key: &[u8], why: Option<&[u8]>) {
        let (Some(user), Some(channel)) = (self.users.get_mut(&from), self.channels.get_mut(key))
        else {
            return;
        };
        user.channels.retain(|c| c != key);
        let prefix = Some(user.prefix().into_bytes());
        let line = match why {
            Some(why) => format_bytes(prefix.as_deref(), "PART", &[&channel.name, why], true),
            None => format_bytes(prefix.as_deref(), "PART", &[&channel.name], false),
        };
        for member in &channel.members {
            out.queue(member.id, &line);
        }
        channel.members.retain(|m| m.id != from);
        let who = format!("{} {} left ", user.peer, user.nick());
        log_bytes(&[who.as_bytes(), &channel.name]);
        if channel.members.is_empty() {
            self.channels.remove(key);
        }
    }

    /// 353 RPL_NAMREPLY lines: who is on the channel.
    fn names_of(&self, out: &mut dyn Outbox, to: Id, channel: &Channel) {
        let names: Vec<Vec<u8>> = channel
            .members
            .iter()
            .filter_map(|m| {
                let nick = self.users.get(&m.id)?.nick.as_deref()?;
                Some(format!("{}{nick}", if m.operator { "@" } else { "" }).into_bytes())
            })
            .collect();
        // "=" a public channel (RFC 2812 §5.1, RPL_NAMREPLY).
        self.reply_list(out, to, "353", &[b"=", &channel.name], &names);
    }

    /// NAMES [#a,#b]: who is on these channels (all of them without a
    /// parameter). An unknown channel gets only its 366.
    pub(super) fn names(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let Some(list) = p.first() else {
            for channel in self.channels.values() {
                self.names_of(out, from, channel);
            }
            self.reply(out, from, "366", &[b"*", b"End of /NAMES list"]);
            return;
        };
        for name in list.split(|&b| b == b',').filter(|n| !n.is_empty()) {
            if let Some(channel) = self.channels.get(&fold_bytes(name)) {
                self.names_of(out, from, channel);
            }
            self.reply(out, from, "366", &[name, b"End of /NAMES list"]);
        }
    }

    /// LIST [#a,#b]: 322 per channel, then 323. The optional 321 is not sent.
    pub(super) fn list(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let channels: Vec<&Channel> = match p.first() {
            None => self.channels.values().collect(),
            Some(list) => list
                .split(|&b| b == b',')
                .filter_map(|name| self.channels.get(&fold_bytes(name)))
                .collect(),
        };
        for channel in channels {
            let count = channel.members.len().to_string();
            let topic = channel.topic.as_ref().map_or(&[][..], |t| &t.text);
            self.reply(out, from, "322", &[&channel.name, count.as_bytes(), topic]);
        }
        self.reply(out, from, "323", &[b"End of /LIST"]);
    }

    /// `TOPIC #chan [:text]`. Anyone on the channel may set the topic: this
    /// server has no mode +t (topic reserved to operators).
    pub(super) fn topic(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let Some(channel) = self.channels.get(&fold_bytes(p[0])) else {
            self.reply(out, from, "403", &[p[0], b"No such channel"]);
            return;
        };
        let Some(&text) = p.get(1) else {
            match &channel.topic {
                Some(topic) => self.reply_topic(out, from, &channel.name, topic),
                None => self.reply(out, from, "331", &[&channel.name, b"No topic is set"]),
            }
            return;
        };
        if channel.member(from).is_none() {
            self.reply(
                out,
                from,
                "442",
                &[&channel.name, b"You're not on that channel"],
            );
            return;
        }
        let Some(user) = self.users.get(&from) else {
            return;
        };
        let (prefix, by) = (user.prefix(), user.nick().to_string());
        let Some(channel) = self.channels.get_mut(&fold_bytes(p[0])) else {
            return;
        };
        let text = &text[..text.len().min(TOPICLEN)];
        channel.topic = (!text.is_empty()).then(|| Topic {
            text: text.to_vec(),
            by,
            at: unix_now(),
        });
        let line = format_bytes(
            Some(prefix.as_bytes()),
            "TOPIC",
            &[&channel.name, text],
            true,
        );
        for member in &channel.members {
            out.queue(member.id, &line);
        }
    }

    /// 332 RPL_TOPIC and 333 RPL_TOPICWHOTIME: the topic, who set it and when.
    fn reply_topic(&self, out: &mut dyn Outbox, to: Id, channel: &[u8], topic: &Topic) {
        self.reply(out, to, "332", &[channel, &topic.text]);
        let at = topic.at.to_string();
        self.reply(
            out,
            to,
            "333",
            &[channel, topic.by.as_bytes(), at.as_bytes()],
        );
    }

    /// `MODE #chan [changes [nicks]]`: the channel's modes (none but operator
    /// status, +o/-o given by an operator), and the ban list (always empty)
    /// that irssi asks for on joining.
    pub(super) fn channel_mode(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let key = fold_bytes(p[0]);
        let Some(channel) = self.channels.get(&key) else {
            self.reply(out, from, "403", &[p[0], b"No such channel"]);
            return;
        };
        let Some(&changes) = p.get(1) else {
            let created = channel.created.to_string();
            self.reply(out, from, "324", &[&channel.name, b"+"]);
            self.reply(out, from, "329", &[&channel.name, created.as_bytes()]);
            return;
        };
        let plus = changes.iter().take_while(|&&b| b == b'+').count();
        if p.len() == 2 && &changes[plus..] == b"b" {
            self.reply(
                out,
                from,
                "368",
                &[&channel.name, b"End of channel ban list"],
            );
            return;
        }
        if !channel.member(from).is_some_and(|m| m.operator) {
            self.reply(
                out,
                from,
                "482",
                &[&channel.name, b"You're not channel operator"],
            );
            return;
        }
        let Some(prefix) = self.users.get(&from).map(|u| u.prefix().into_bytes()) else {
            return;
        };
        let mut nicks = p[2..].iter();
        let mut adding = true;
        for &c in changes {
            match c {
                b'+' => adding = true,
                b'-' => adding = false,
                b'o' => {
                    let Some(&nick) = nicks.next() else {
                        self.reply(out, from, "461", &[b"MODE", b"Not enough parameters"]);
                        return;
                    };
                    let Some(target) = self.nicks.get(&fold_bytes(nick)).copied() else {
                        self.reply(out, from, "401", &[nick, b"No such nick/channel"]);
                        continue;
                    };
                    let Some(channel) = self.channels.get_mut(&key) else {
                        return;
                    };
                    let Some(member) = channel.members.iter_mut().find(|m| m.id == target) else {
                        let name = channel.name.clone();
                        self.reply(
                            out,
                            from,
                            "441",
                            &[nick, &name, b"They aren't on that channel"],
                        );
                        continue;
                    };
                    member.operator = adding;
                    let change: &[u8] = if adding { b"+o" } else { b"-o" };
                    let line =
                        format_bytes(Some(&prefix), "MODE", &[&channel.name, change, nick], false);
                    for member in &channel.members {
                        out.queue(member.id, &line);
                    }
                }
                _ => self.reply(out, from, "472", &[&[c], b"is unknown mode char to me"]),
            }
        }
    }
}
