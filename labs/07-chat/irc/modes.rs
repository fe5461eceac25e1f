//! A channel's modes (RFC 2811 §4) and the MODE command that shows and
//! changes them (RFC 2812 §3.2.3): who may join (+i +k +l +b), who may
//! speak (+n +m), who may set the topic (+t), whether outsiders see the
//! channel (+s), and a member's status (+o operator, +v voice).

use std::collections::BTreeSet;

use socket_labs::date::unix_now;
use socket_labs::irc::{fold_bytes, format_bytes, mask_matches};

use super::channels::Channel;
use super::{Id, Irc, Outbox};

/// The flag modes, which take no parameter (CHANMODES=b,k,l,imnst in 005).
const FLAGS: &[u8] = b"imnst";
/// How many bans one channel holds (MAXLIST=b:20 in 005).
const MAXBANS: usize = 20;
/// The longest key (ratbox's and Solanum's KEYLEN).
const KEYLEN: usize = 23;
/// The longest ban mask: a whole nick!user@host of this server (30, 10 and
/// an IPv6 address) fits, and four of them fit in one MODE line.
const BANLEN: usize = 80;
/// The highest +l.
const MAX_LIMIT: usize = 99_999;
/// Changes with a parameter (b k l o v) one MODE line may make (MODES=4 in
/// 005): the line relayed to the channel stays within 512 bytes.
const MODES: usize = 4;

/// What a channel's modes hold besides its members' statuses.
pub struct Modes {
    /// The flag modes set, letters of FLAGS, in order.
    pub flags: BTreeSet<u8>,
    /// +k: the key JOIN must give.
    pub key: Option<Vec<u8>>,
    /// +l: the most members.
    pub limit: Option<usize>,
    /// +b: nick!user@host masks that may not join or speak, oldest first.
    pub bans: Vec<Ban>,
}

pub struct Ban {
    mask: Vec<u8>,
    /// Who set it and when (seconds since 1970), for 367.
    by: String,
    at: u64,
}

impl Modes {
    /// A new channel's modes: +nt, as most servers (ratbox, Solanum,
    /// InspIRCd) give. +n because a message from outside is nearly always
    /// spam (and this server never took one); +t because the topic is the
    /// channel's notice board, its operators' to write.
    pub fn new() -> Modes {
        Modes {
            flags: BTreeSet::from([b'n', b't']),
            key: None,
            limit: None,
            bans: Vec::new(),
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags.contains(&flag)
    }

    /// Whether one of the bans matches `prefix`, a nick!user@host.
    pub fn banned(&self, prefix: &str) -> bool {
        self.bans
            .iter()
            .any(|ban| mask_matches(&ban.mask, prefix.as_bytes()))
    }
}

/// A ban mask made whole, as servers store it: `bob` is `bob!*@*`,
/// `*@host` is `*!*@host`, `bob!x` is `bob!x@*`.
fn whole_mask(mask: &[u8]) -> Vec<u8> {
    let or_any = |part: &[u8]| {
        if part.is_empty() {
            b"*".to_vec()
        } else {
            part.to_vec()
        }
    };
    let (nick, rest) = match mask.iter().position(|&b| b == b'!') {
        Some(bang) => (&mask[..bang], &mask[bang + 1..]),
        None if mask.contains(&b'@') => (&b"*"[..], mask),
        None => (mask, &b""[..]),
    };
    let (user, host) = match rest.iter().position(|&b| b == b'@') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &b""[..]),
    };
    [
        or_any(nick),
        b"!".to_vec(),
        or_any(user),
        b"@".to_vec(),
        or_any(host),
    ]
    .concat()
}

/// One change of a channel's modes as relayed: `+` (true) or `-`, its
/// letter, its parameter (empty for none).
type Change = (bool, u8, Vec<u8>);

/// The letters of a MODE line, a sign where it changes: `+mt-n+l`.
fn mode_letters(changes: &[Change]) -> Vec<u8> {
    let mut text = Vec::new();
    let mut sign = None;
    for &(adding, letter, _) in changes {
        if sign != Some(adding) {
            text.push(if adding { b'+' } else { b'-' });
            sign = Some(adding);
        }
        text.push(letter);
    }
    text
}

/// A key JOIN could give: printable ASCII, no comma (JOIN's separator), at
/// most KEYLEN bytes.
fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= KEYLEN && key.iter().all(|&b| b.is_ascii_graphic() && b != b',')
}

impl Irc {
    /// `MODE #chan [changes [params]]`: 324 and 329 without changes; the
    /// ban list (367, 368) for `b` alone, to anyone; changes from an
    /// operator, relayed to the channel in one MODE line.
    pub(super) fn channel_mode(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let key = fold_bytes(p[0]);
        let Some(channel) = self.channels.get(&key) else {
            self.reply(out, from, "403", &[p[0], b"No such channel"]);
            return;
        };
        let Some(&changes) = p.get(1) else {
            self.reply_modes(out, from, channel);
            return;
        };
        let letters: Vec<u8> = changes
            .iter()
            .copied()
            .filter(|c| !b"+-".contains(c))
            .collect();
        if p.len() == 2 && !letters.is_empty() && letters.iter().all(|&c| c == b'b') {
            self.reply_bans(out, from, channel);
            return;
        }
        if !channel.member(from).is_some_and(|m| m.operator) {
            let name = channel.name.clone();
            self.reply(out, from, "482", &[&name, b"You're not channel operator"]);
            return;
        }
        let Some(setter) = self.users.get(&from) else {
            return;
        };
        let (prefix, setter) = (setter.prefix(), setter.nick().to_string());
        let Some(channel) = self.channels.get(&key) else {
            return;
        };
        let name = channel.name.clone();
        // The flags, key and limit as the line leaves them: what changed
        // is relayed once, whatever the line said (`+i-i+i` is `+i`).
        let (mut flags, mut new_key, mut limit) = (
            channel.modes.flags.clone(),
            channel.modes.key.clone(),
            channel.modes.limit,
        );
        // The changes of bans and statuses, in order.
        let mut listed: Vec<Change> = Vec::new();
        let mut params = p[2..].iter().copied();
        let (mut adding, mut with_param) = (true, 0);
        for &c in changes {
            if c == b'+' || c == b'-' {
                adding = c == b'+';
                continue;
            }
            if FLAGS.contains(&c) {
                if adding {
                    flags.insert(c);
                } else {
                    flags.remove(&c);
                }
                continue;
            }
            if !b"bklov".contains(&c) {
                self.reply(out, from, "472", &[&[c], b"is unknown mode char to me"]);
                continue;
            }
            // -l takes no parameter; -k takes the key if given, any key.
            let param = match (c, adding) {
                (b'l', false) => None,
                (b'k', false) => params.next().map(|_| &b"*"[..]),
                _ => match params.next() {
                    Some(param) => Some(param),
                    None if c == b'b' => {
                        let Some(channel) = self.channels.get(&key) else {
                            return;
                        };
                        self.reply_bans(out, from, channel);
                        continue;
                    }
                    None => {
                        self.reply(out, from, "461", &[b"MODE", b"Not enough parameters"]);
                        continue;
                    }
                },
            };
            if param.is_some() || c == b'l' {
                if with_param == MODES {
                    continue; // past MODES changes with a parameter: ignored
                }
                with_param += 1;
            }
            let param = param.unwrap_or(b"");
            match c {
                b'k' if !adding => new_key = None,
                b'k' if valid_key(param) => new_key = Some(param.to_vec()),
                b'k' => self.reply(out, from, "525", &[&name, b"Key is not well-formed"]),
                b'l' if !adding => limit = None,
                b'l' => match std::str::from_utf8(param).ok().and_then(|n| n.parse().ok()) {
                    Some(n) if (1..=MAX_LIMIT).contains(&n) && param[0] != b'+' => limit = Some(n),
                    _ => self.reply(out, from, "696", &[&name, b"l", param, b"Invalid limit"]),
                },
                b'b' => {
                    let mask = whole_mask(param);
                    if mask.len() > BANLEN {
                        let why: &[u8] = b"Ban mask too long";
                        self.reply(out, from, "696", &[&name, b"b", param, why]);
                    } else {
                        match self.ban(&key, adding, &mask, &setter) {
                            Ok(true) => listed.push((adding, c, mask)),
                            Ok(false) => {}
                            Err(()) => {
                                let full: &[u8] = b"Channel list is full";
                                self.reply(out, from, "478", &[&name, b"b", full]);
                            }
                        }
                    }
                }
                _ => {
                    // o and v: a member's status.
                    let Some(target) = self.nicks.get(&fold_bytes(param)).copied() else {
                        self.reply(out, from, "401", &[param, b"No such nick/channel"]);
                        continue;
                    };
                    let nick = self.users.get(&target).map(|u| u.nick().to_string());
                    let Some(channel) = self.channels.get_mut(&key) else {
                        return;
                    };
                    let Some(member) = channel.members.iter_mut().find(|m| m.id == target) else {
                        let why: &[u8] = b"They aren't on that channel";
                        self.reply(out, from, "441", &[param, &name, why]);
                        continue;
                    };
                    let status = if c == b'o' {
                        &mut member.operator
                    } else {
                        &mut member.voice
                    };
                    if *status != adding {
                        *status = adding;
                        listed.push((adding, c, nick.unwrap_or_default().into_bytes()));
                    }
                }
            }
        }
        let Some(channel) = self.channels.get_mut(&key) else {
            return;
        };
        // What changed, in the order flags, limit, key, then the rest.
        let mut all: Vec<Change> = Vec::new();
        for &flag in FLAGS {
            if flags.contains(&flag) != channel.modes.has(flag) {
                all.push((flags.contains(&flag), flag, Vec::new()));
            }
        }
        if limit != channel.modes.limit {
            let text = limit
                .map(|n| n.to_string().into_bytes())
                .unwrap_or_default();
            all.push((limit.is_some(), b'l', text));
        }
        if new_key != channel.modes.key {
            all.push((
                new_key.is_some(),
                b'k',
                new_key.clone().unwrap_or(b"*".to_vec()),
            ));
        }
        all.extend(listed);
        channel.modes.flags = flags;
        channel.modes.limit = limit;
        channel.modes.key = new_key;
        if all.is_empty() {
            return;
        }
        // +mt-n+l 10: the letters, then the parameters in order.
        let text = mode_letters(&all);
        let mut line_params: Vec<&[u8]> = vec![&channel.name, &text];
        line_params.extend(all.iter().filter(|c| !c.2.is_empty()).map(|c| &c.2[..]));
        let line = format_bytes(Some(prefix.as_bytes()), "MODE", &line_params, false);
        for member in &channel.members {
            out.queue(member.id, &line);
        }
    }

    /// Adds (or takes off) a ban of channel `key`: whether that changed
    /// anything, or Err when the list is full.
    fn ban(&mut self, key: &[u8], adding: bool, mask: &[u8], by: &str) -> Result<bool, ()> {
        let Some(channel) = self.channels.get_mut(key) else {
            return Ok(false);
        };
        let bans = &mut channel.modes.bans;
        let found = bans
            .iter()
            .position(|b| fold_bytes(&b.mask) == fold_bytes(mask));
        match (adding, found) {
            (true, None) if bans.len() == MAXBANS => Err(()),
            (true, None) => {
                let (mask, by, at) = (mask.to_vec(), by.to_string(), unix_now());
                bans.push(Ban { mask, by, at });
                Ok(true)
            }
            (false, Some(at)) => {
                bans.remove(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// 324 RPL_CHANNELMODEIS and 329 RPL_CREATIONTIME: the modes, with the
    /// limit and, only to a member, the key (l before k, so that a client
    /// that is shown no key still reads the limit as l's parameter).
    pub(super) fn reply_modes(&self, out: &mut dyn Outbox, to: Id, channel: &Channel) {
        let modes = &channel.modes;
        let mut letters = vec![b'+'];
        letters.extend(&modes.flags);
        let limit = modes.limit.map(|n| n.to_string().into_bytes());
        let mut params: Vec<&[u8]> = vec![&channel.name, &[]];
        if let Some(limit) = &limit {
            letters.push(b'l');
            params.push(limit);
        }
        if let Some(key) = &modes.key {
            letters.push(b'k');
            if channel.member(to).is_some() {
                params.push(key);
            }
        }
        params[1] = &letters;
        self.reply_words(out, to, "324", &params);
        let created = channel.created.to_string();
        self.reply(out, to, "329", &[&channel.name, created.as_bytes()]);
    }

    /// 367 RPL_BANLIST for each ban (mask, who set it, when), then 368.
    fn reply_bans(&self, out: &mut dyn Outbox, to: Id, channel: &Channel) {
        for ban in &channel.modes.bans {
            let at = ban.at.to_string();
            let params = [
                &channel.name[..],
                &ban.mask,
                ban.by.as_bytes(),
                at.as_bytes(),
            ];
            self.reply_words(out, to, "367", &params);
        }
        self.reply(out, to, "368", &[&channel.name, b"End of channel ban list"]);
    }
}
