//! Channels: JOIN, PART, NAMES, LIST, TOPIC, KICK and INVITE (RFC 2812
//! §3.2). A channel is created by its first JOIN and removed with its last
//! member; whoever creates it is its operator. Its modes: modes.rs.

use socket_labs::date::unix_now;
use socket_labs::irc::{fold_bytes, format_bytes, valid_channel};

use super::modes::Modes;
use super::{Id, Irc, Outbox, User, log_bytes};

/// Channel names, `#` included (RFC 2812 §1.3 allows 50).
const CHANNELLEN: usize = 50;
/// The longest topic, in bytes.
const TOPICLEN: usize = 390;
/// How many channels one user may be on at once: with the descriptor
/// limit on users, it bounds the number of channels.
const MAX_CHANNELS: usize = 20;
/// The longest KICK reason, in bytes (KICKLEN in 005).
const KICKLEN: usize = 255;
/// How many nicks one KICK may name (TARGMAX in 005): each is a line to
/// every member.
const MAX_KICKS: usize = 4;
/// How many invitations a user holds at once: a new one past that makes
/// the oldest forgotten.
const MAX_INVITES: usize = 10;

pub struct Channel {
    /// As its creator wrote it; the key in `Irc::channels` is folded.
    pub name: Vec<u8>,
    topic: Option<Topic>,
    /// In the order they joined: NAMES lists them so.
    pub members: Vec<Member>,
    /// Seconds since 1970, for MODE's 329.
    pub created: u64,
    pub modes: Modes,
}

struct Topic {
    text: Vec<u8>,
    /// The nick of who set it, and when (seconds since 1970).
    by: String,
    at: u64,
}

pub struct Member {
    pub id: Id,
    /// A channel operator (+o): may KICK, set the modes, the topic under
    /// +t; `@nick` in NAMES, `@#chan` in WHOIS, `H@` in WHO.
    pub operator: bool,
    /// Voice (+v): may speak under +m; `+nick`, `+#chan`, `H+`.
    pub voice: bool,
}

impl Member {
    /// The member's highest status, as NAMES, WHO and WHOIS show it.
    pub fn prefix(&self) -> &'static str {
        match (self.operator, self.voice) {
            (true, _) => "@",
            (false, true) => "+",
            _ => "",
        }
    }
}

impl Channel {
    pub fn member(&self, id: Id) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Whether `id` may know of the channel: a secret one (+s) is hidden
    /// from LIST, NAMES and WHOIS but for its members.
    pub fn visible_to(&self, id: Id) -> bool {
        !self.modes.has(b's') || self.member(id).is_some()
    }

    /// Whether user `id` (`prefix`, its nick!user@host) may send to the
    /// channel: an operator or a voiced member always; from outside not
    /// under +n; not under +m; not when banned (+b).
    pub fn may_speak(&self, id: Id, prefix: &str) -> bool {
        match self.member(id) {
            Some(m) if m.operator || m.voice => true,
            None if self.modes.has(b'n') => false,
            _ => !self.modes.has(b'm') && !self.modes.banned(prefix),
        }
    }

    /// Why `user` may not join, as a numeric and its text, if it may not.
    /// An invitation lets it past +i and +b (as ngIRCd), not past +k or +l.
    fn refuses(&self, user: &User, key: Option<&[u8]>) -> Option<(&'static str, &'static [u8])> {
        let invited = user.invited.contains(&fold_bytes(&self.name));
        let full = self.modes.limit.is_some_and(|n| self.members.len() >= n);
        if !invited && self.modes.banned(&user.prefix()) {
            Some(("474", b"Cannot join channel (+b)"))
        } else if !invited && self.modes.has(b'i') {
            Some(("473", b"Cannot join channel (+i)"))
        } else if self.modes.key.as_deref().is_some_and(|k| Some(k) != key) {
            Some(("475", b"Cannot join channel (+k)"))
        } else if full {
            Some(("471", b"Cannot join channel (+l)"))
        } else {
            None
        }
    }
}

impl Irc {
    /// `JOIN #a,#b [keyA,keyB]`, or JOIN 0 to leave every channel.
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
        let mut keys = p.get(1).into_iter().flat_map(|k| k.split(|&b| b == b','));
        for name in p[0].split(|&b| b == b',').filter(|n| !n.is_empty()) {
            let given = keys.next();
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
            let refused = self.channels.get(&key).and_then(|c| c.refuses(user, given));
            if let Some((numeric, why)) = refused {
                let name = self.channels.get(&key).map_or(name, |c| &c.name[..]);
                self.reply(out, from, numeric, &[name, why]);
                continue;
            }
            let Some(user) = self.users.get_mut(&from) else {
                return;
            };
            // An invitation lasts until the invitee joins.
            user.invited.retain(|k| *k != key);
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
                modes: Modes::new(),
            });
            // Whoever creates the channel is its operator.
            let operator = channel.members.is_empty();
            channel.members.push(Member {
                id: from,
                operator,
                voice: false,
            });
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
        let (Some(user), Some(channel)) = (self.users.get(&from), self.channels.get(key)) else {
            return;
        };
        let prefix = Some(user.prefix().into_bytes());
        let line = match why {
            Some(why) => format_bytes(prefix.as_deref(), "PART", &[&channel.name, why], true),
            None => format_bytes(prefix.as_deref(), "PART", &[&channel.name], false),
        };
        for member in &channel.members {
            out.queue(member.id, &line);
        }
        let who = format!("{} {} left ", user.peer, user.nick());
        log_bytes(&[who.as_bytes(), &channel.name]);
        self.drop_member(key, from);
    }

    /// Takes user `id` off channel `key`, and the channel off the user's
    /// list; the last member out removes the channel, and the invitations
    /// to it.
    pub(super) fn drop_member(&mut self, key: &[u8], id: Id) {
        if let Some(user) = self.users.get_mut(&id) {
            user.channels.retain(|k| k != key);
        }
        let Some(channel) = self.channels.get_mut(key) else {
            return;
        };
        channel.members.retain(|m| m.id != id);
        if channel.members.is_empty() {
            self.channels.remove(key);
            for user in self.users.values_mut() {
                user.invited.retain(|k| k != key);
            }
        }
    }

    /// 353 RPL_NAMREPLY lines: who is on the channel.
    fn names_of(&self, out: &mut dyn Outbox, to: Id, channel: &Channel) {
        let names: Vec<Vec<u8>> = channel
            .members
            .iter()
            .filter_map(|m| {
                let nick = self.users.get(&m.id)?.nick.as_deref()?;
                Some(format!("{}{nick}", m.prefix()).into_bytes())
            })
            .collect();
        // "=" a public channel, "@" a secret one (RFC 2812 §5.1, RPL_NAMREPLY).
        let symbol: &[u8] = if channel.modes.has(b's') { b"@" } else { b"=" };
        self.reply_list(out, to, "353", &[symbol, &channel.name], &names);
    }

    /// NAMES [#a,#b]: who is on these channels (all of them without a
    /// parameter). An unknown channel, or a secret one (+s) to an outsider,
    /// gets only its 366.
    pub(super) fn names(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let Some(list) = p.first() else {
            for channel in self.channels.values().filter(|c| c.visible_to(from)) {
                self.names_of(out, from, channel);
            }
            self.reply(out, from, "366", &[b"*", b"End of /NAMES list"]);
            return;
        };
        for name in list.split(|&b| b == b',').filter(|n| !n.is_empty()) {
            let channel = self.channels.get(&fold_bytes(name));
            if let Some(channel) = channel.filter(|c| c.visible_to(from)) {
                self.names_of(out, from, channel);
            }
            self.reply(out, from, "366", &[name, b"End of /NAMES list"]);
        }
    }

    /// LIST [#a,#b]: 322 per channel (not a secret one, +s, to an outsider),
    /// then 323. The optional 321 is not sent.
    pub(super) fn list(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let channels: Vec<&Channel> = match p.first() {
            None => self.channels.values().collect(),
            Some(list) => list
                .split(|&b| b == b',')
                .filter_map(|name| self.channels.get(&fold_bytes(name)))
                .collect(),
        };
        for channel in channels.into_iter().filter(|c| c.visible_to(from)) {
            let count = channel.members.len().to_string();
            let topic = channel.topic.as_ref().map_or(&[][..], |t| &t.text);
            self.reply(out, from, "322", &[&channel.name, count.as_bytes(), topic]);
        }
        self.reply(out, from, "323", &[b"End of /LIST"]);
    }

    /// `TOPIC #chan [:text]`: anyone may read it; a member may set it, an
    /// operator only under +t.
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
        let Some(member) = channel.member(from) else {
            self.reply(
                out,
                from,
                "442",
                &[&channel.name, b"You're not on that channel"],
            );
            return;
        };
        if channel.modes.has(b't') && !member.operator {
            let why: &[u8] = b"You're not channel operator";
            self.reply(out, from, "482", &[&channel.name, why]);
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

    /// `KICK #chan nick[,nick] [:reason]` (RFC 2812 §3.2.8), by an
    /// operator: the channel, the kicked included, sees the KICK; the last
    /// member out removes the channel.
    pub(super) fn kick(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let key = fold_bytes(p[0]);
        let Some(channel) = self.channels.get(&key) else {
            self.reply(out, from, "403", &[p[0], b"No such channel"]);
            return;
        };
        let name = channel.name.clone();
        let refused: Option<(&str, &[u8])> = match channel.member(from) {
            None => Some(("442", b"You're not on that channel")),
            Some(m) if !m.operator => Some(("482", b"You're not channel operator")),
            Some(_) => None,
        };
        if let Some((numeric, why)) = refused {
            self.reply(out, from, numeric, &[&name, why]);
            return;
        }
        let Some(kicker) = self.users.get(&from) else {
            return;
        };
        let (prefix, nick) = (kicker.prefix(), kicker.nick().to_string());
        let kicker = format!("{} {nick}", kicker.peer);
        // Without a reason, the kicker's nick, as most servers say.
        let why = p.get(2).copied().filter(|w| !w.is_empty());
        let why = why.unwrap_or(nick.as_bytes());
        let why = &why[..why.len().min(KICKLEN)];
        let nicks = p[1].split(|&b| b == b',').filter(|n| !n.is_empty());
        for (n, nick) in nicks.enumerate() {
            if n == MAX_KICKS {
                self.reply(out, from, "407", &[nick, b"Too many targets"]);
                break;
            }
            let Some(target) = self.nicks.get(&fold_bytes(nick)).copied() else {
                self.reply(out, from, "401", &[nick, b"No such nick/channel"]);
                continue;
            };
            let (Some(user), Some(channel)) = (self.users.get(&target), self.channels.get(&key))
            else {
                return; // the kicker kicked itself out, the last member
            };
            if channel.member(target).is_none() {
                let why: &[u8] = b"They aren't on that channel";
                self.reply(out, from, "441", &[nick, &name, why]);
                continue;
            }
            let nick = user.nick().as_bytes();
            let line = format_bytes(Some(prefix.as_bytes()), "KICK", &[&name, nick, why], true);
            for member in &channel.members {
                out.queue(member.id, &line);
            }
            log_bytes(&[kicker.as_bytes(), b" kicked ", nick, b" from ", &name]);
            self.drop_member(&key, target);
        }
    }

    /// `INVITE nick #chan` (RFC 2812 §3.2.7), by a member, an operator
    /// under +i: 341 to the inviter, the INVITE to the invitee, who may
    /// then join past +i and +b until it does (or the channel ends).
    pub(super) fn invite(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let (nick, key) = (p[0], fold_bytes(p[1]));
        let target = self.nicks.get(&fold_bytes(nick)).copied();
        let Some((target, user)) = target
            .and_then(|id| Some((id, self.users.get(&id)?)))
            .filter(|(_, u)| u.registered)
        else {
            self.reply(out, from, "401", &[nick, b"No such nick/channel"]);
            return;
        };
        let Some(channel) = self.channels.get(&key) else {
            self.reply(out, from, "403", &[p[1], b"No such channel"]);
            return;
        };
        let refused: Option<(&str, &[u8])> = match channel.member(from) {
            None => Some(("442", b"You're not on that channel")),
            Some(m) if channel.modes.has(b'i') && !m.operator => {
                Some(("482", b"You're not channel operator"))
            }
            Some(_) => None,
        };
        if let Some((numeric, why)) = refused {
            self.reply(out, from, numeric, &[&channel.name, why]);
            return;
        }
        let nick = user.nick().as_bytes();
        if channel.member(target).is_some() {
            let why: &[u8] = b"is already on channel";
            self.reply(out, from, "443", &[nick, &channel.name, why]);
            return;
        }
        let Some(inviter) = self.users.get(&from) else {
            return;
        };
        let line = format_bytes(
            Some(inviter.prefix().as_bytes()),
            "INVITE",
            &[nick, &channel.name],
            false,
        );
        out.queue(target, &line);
        self.reply_words(out, from, "341", &[nick, &channel.name]);
        if let Some(away) = &user.away {
            self.reply(out, from, "301", &[nick, away]);
        }
        let Some(user) = self.users.get_mut(&target) else {
            return;
        };
        if !user.invited.contains(&key) {
            if user.invited.len() == MAX_INVITES {
                user.invited.remove(0);
            }
            user.invited.push(key);
        }
    }
}
