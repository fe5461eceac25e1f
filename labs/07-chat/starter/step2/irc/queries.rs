//! Questions about users: WHO, WHOIS, WHOWAS, USERHOST, a user's own MODE
//! and AWAY (RFC 2812 §3.6, §4.8, §3.1.5, §4.1). They only answer the one
//! who asks.
//!
//! The starter, step 2: WHO and WHOIS are yours to write.
// While gaps remain, their placeholders make code unused or unreachable.
#![allow(unused, unreachable_code, clippy::diverging_sub_expression)]

use socket_labs::date::{unix_now, utc};
use socket_labs::irc::{fold_bytes, format_bytes, mask_matches};

use super::{Id, Irc, Outbox, User, WHOWAS_MAX, Was};

/// How many nicks one USERHOST answers for (RFC 2812 §4.8).
const MAX_USERHOST: usize = 5;

impl Irc {
    /// `WHO [mask]`: one 352 per user matching (a channel's members for
    /// `#chan`, but a secret one's to outsiders; `*` or nothing for
    /// everyone, but the invisible who share no channel with the asker),
    /// then 315 repeating the mask.
    pub(super) fn who(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let mask = p.first().copied().unwrap_or(b"*");
        // <channel> <user> <host> <server> <nick> <flags> :<hopcount> <realname>
        let mut row = |user: &User, channel: &[u8], status: &str| {
            let hops_and_name = [b"0 ", &user.realname[..]].concat();
            // H: here, G: gone (AWAY); then @ a channel operator, + voiced.
            let here = if user.away.is_some() { "G" } else { "H" };
            let flags = format!("{here}{status}");
            let params = [
                channel,
                user.user.as_deref().unwrap_or("").as_bytes(),
                user.host.as_bytes(),
                self.name.as_bytes(),
                user.nick.as_deref().unwrap_or("").as_bytes(),
                flags.as_bytes(),
                &hops_and_name,
            ];
            self.reply(out, from, "352", &params);
        };
        // `#chan`: its members; a secret one's (+s) only to its members.
        let channel = mask
            .starts_with(b"#")
            .then(|| self.channels.get(&fold_bytes(mask)));
        let channel = channel.flatten().filter(|c| c.visible_to(from));
        // TODO `#chan`: a row per member of `channel`, if any, with the channel's
        // name and the member's status (member.prefix(): "@", "+" or ""); any
        // other mask: a row per registered user, channel "*" and status "",
        // whose nick, host or realname the mask matches (mask_matches), every
        // one for mask "0", but not an invisible one (+i, user.invisible) other
        // than `from` that shares no channel with it (self.peers(from)); then
        // 315 (mask) "End of WHO list"
        socket_labs::todo("WHO");
    }

    /// `WHOIS [server] nick`: who they are, where from (address and port),
    /// on which channels (not the secret ones the asker is not on), idle
    /// how long; always ended by 318.
    pub(super) fn whois(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let Some(&nick) = p.last().filter(|n| !n.is_empty()) else {
            self.reply(out, from, "431", &[b"No nickname given"]);
            return;
        };
        let id = self.nicks.get(&fold_bytes(nick)).copied();
        let Some((id, who)) = id
            .and_then(|id| Some((id, self.users.get(&id)?)))
            .filter(|(_, u)| u.registered)
        else {
            self.reply(out, from, "401", &[nick, b"No such nick/channel"]);
            self.reply(out, from, "318", &[nick, b"End of /WHOIS list"]);
            return;
        };
        let channels: Vec<Vec<u8>> = who
            .channels
            .iter()
            .filter_map(|key| {
                let channel = self.channels.get(key).filter(|c| c.visible_to(from))?;
                let status = channel.member(id).map_or("", |m| m.prefix());
                Some([status.as_bytes(), &channel.name].concat())
            })
            .collect();
        // TODO the replies, each with the nick first: 311 (user, host, "*",
        // realname); 312 (server name) "socket-labs chat server, lab 07"; if
        // away (who.away), 301 RPL_AWAY (the away text); 319 (reply_list of the
        // channels, if any); 338 RPL_WHOISACTUALLY, the address and port it
        // connects from (who.peer) "is actually using this address and port";
        // 317 (idle seconds since who.last_message, signon) "seconds idle,
        // signon time"; 318 "End of /WHOIS list"
        socket_labs::todo("WHOIS");
    }

    /// `USERHOST nick [nick...]`: one 302 with `nick=+user@host` for each
    /// of the first five nicks in use (`-` for `+` when away), none for the
    /// others.
    pub(super) fn userhost(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let found: Vec<String> = p
            .iter()
            .take(MAX_USERHOST)
            .filter_map(|&nick| self.nicks.get(&fold_bytes(nick)))
            .filter_map(|id| self.users.get(id))
            .filter(|u| u.registered)
            .map(|u| {
                let here = if u.away.is_some() { '-' } else { '+' };
                let user = u.user.as_deref().unwrap_or("*");
                format!("{}={here}{user}@{}", u.nick(), u.host)
            })
            .collect();
        self.reply(out, from, "302", &[found.join(" ").as_bytes()]);
    }

    /// `AWAY [:text]`: with a text, away (306) until an AWAY without one
    /// (305).
    pub(super) fn away(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let text = p.first().filter(|t| !t.is_empty()).map(|t| t.to_vec());
        let away = text.is_some();
        if let Some(user) = self.users.get_mut(&from) {
            user.away = text;
        }
        if away {
            self.reply(out, from, "306", &[b"You have been marked as being away"]);
        } else {
            self.reply(
                out,
                from,
                "305",
                &[b"You are no longer marked as being away"],
            );
        }
    }

    /// `MODE nick [changes]`: a user's own modes, +i only (invisible: see
    /// WHO).
    pub(super) fn user_mode(&mut self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let Some(user) = self.users.get(&from) else {
            return;
        };
        let me = user.nick.clone().unwrap_or_default();
        if fold_bytes(p[0]) != fold_bytes(me.as_bytes()) {
            if self.nicks.contains_key(&fold_bytes(p[0])) {
                self.reply(out, from, "502", &[b"Can't change mode for other users"]);
            } else {
                self.reply(out, from, "401", &[p[0], b"No such nick/channel"]);
            }
            return;
        }
        let Some(&changes) = p.get(1) else {
            let modes: &[u8] = if user.invisible { b"+i" } else { b"+" };
            self.reply(out, from, "221", &[modes]);
            return;
        };
        let before = user.invisible;
        let (mut invisible, mut adding, mut unknown) = (before, true, false);
        for &c in changes {
            match c {
                b'+' => adding = true,
                b'-' => adding = false,
                b'i' => invisible = adding,
                _ => unknown = true,
            }
        }
        if invisible != before {
            if let Some(user) = self.users.get_mut(&from) {
                user.invisible = invisible;
            }
            let change: &[u8] = if invisible { b"+i" } else { b"-i" };
            let me = me.as_bytes();
            out.queue(from, &format_bytes(Some(me), "MODE", &[me, change], false));
        }
        if unknown {
            self.reply(out, from, "501", &[b"Unknown MODE flag"]);
        }
    }

    /// `WHOWAS nick [count]`: the users who last held `nick`, most recent
    /// first, `count` of them if it is a positive number (all otherwise):
    /// for each, 314 (who it was) and 312 (on which server, until when);
    /// 406 if none; always ended by 369 (RFC 2812 §3.6.3).
    pub(super) fn whowas(&self, out: &mut dyn Outbox, from: Id, p: &[&[u8]]) {
        let Some(&nick) = p.first().filter(|n| !n.is_empty()) else {
            self.reply(out, from, "431", &[b"No nickname given"]);
            return;
        };
        let count = p
            .get(1)
            .and_then(|c| std::str::from_utf8(c).ok()?.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(WHOWAS_MAX);
        // The same nick whatever its case, as NICK has it.
        let key = fold_bytes(nick);
        let found = self.history.iter().rev();
        let found = found.filter(|was| fold_bytes(was.nick.as_bytes()) == key);
        let mut any = false;
        for was in found.take(count) {
            any = true;
            let name = was.nick.as_bytes();
            let params = [
                name,
                was.user.as_bytes(),
                was.host.as_bytes(),
                b"*",
                &was.realname,
            ];
            self.reply(out, from, "314", &params);
            let until = utc(was.when);
            self.reply(
                out,
                from,
                "312",
                &[name, self.name.as_bytes(), until.as_bytes()],
            );
        }
        if !any {
            self.reply(out, from, "406", &[nick, b"There was no such nickname"]);
        }
        self.reply(out, from, "369", &[nick, b"End of WHOWAS"]);
    }

    /// Writes down the nick of `id`'s user for WHOWAS, as it gives it up
    /// (NICK, or it leaves): a registered user's only, the oldest forgotten
    /// past WHOWAS_MAX.
    pub(super) fn remember(&mut self, id: Id) {
        let Some(user) = self.users.get(&id).filter(|u| u.registered) else {
            return;
        };
        let was = Was {
            nick: user.nick().to_string(),
            user: user.user.clone().unwrap_or_default(),
            host: user.host.clone(),
            realname: user.realname.clone(),
            when: unix_now(),
        };
        if self.history.len() == WHOWAS_MAX {
            self.history.pop_front();
        }
        self.history.push_back(was);
    }
}
