//! PRIVMSG and NOTICE: what the server is for, one line in and a copy of
//! it out to each of its recipients (RFC 2812 §3.3).

use std::time::Instant;

use socket_labs::irc::{fold_bytes, format_bytes, mask_matches};

use super::{Id, Irc, Outbox};

/// How many targets one PRIVMSG or NOTICE may name: each `$*` is a copy
/// for every user, so one line must not be allowed to make thousands.
const MAX_TARGETS: usize = 4;

impl Irc {
    /// PRIVMSG and NOTICE `<target>{,<target>} :<text>`, to a nick, a channel
    /// or `$*`, every user of this server (RFC 2812 §3.3.1: a server mask).
    /// A NOTICE is never answered, not even with an error (§3.3.2): two
    /// programs answering each other's notices would loop forever.
    pub(super) fn message(&mut self, out: &mut dyn Outbox, from: Id, command: &str, p: &[&[u8]]) {
        let notice = command == "NOTICE";
        let Some(&targets) = p.first().filter(|t| !t.is_empty()) else {
            if !notice {
                let sentence = format!("No recipient given ({command})");
                self.reply(out, from, "411", &[sentence.as_bytes()]);
            }
            return;
        };
        let Some(&text) = p.get(1).filter(|t| !t.is_empty()) else {
            if !notice {
                self.reply(out, from, "412", &[b"No text to send"]);
            }
            return;
        };
        let Some(sender) = self.users.get_mut(&from) else {
            return;
        };
        sender.last_message = Instant::now();
        let prefix = sender.prefix();
        let relay = |to: &[u8]| format_bytes(Some(prefix.as_bytes()), command, &[to, text], true);
        let targets = targets.split(|&b| b == b',').filter(|t| !t.is_empty());
        for (n, target) in targets.enumerate() {
            if n == MAX_TARGETS {
                if !notice {
                    self.reply(out, from, "407", &[target, b"Too many targets"]);
                }
                break;
            }
            let refused: Option<(&str, &[u8])> = if let Some(mask) = target.strip_prefix(b"$") {
                if mask_matches(mask, self.name.as_bytes()) {
                    let line = relay(target);
                    for (&id, user) in &self.users {
                        if user.registered && id != from {
                            out.queue(id, &line);
                        }
                    }
                    None
                } else {
                    Some(("401", b"No such nick/channel"))
                }
            } else if target.starts_with(b"#") {
                match self.channels.get(&fold_bytes(target)) {
                    None => Some(("401", b"No such nick/channel")),
                    // +n: only members; +m: only @ and +; +b: not the banned.
                    Some(channel) if !channel.may_speak(from, &prefix) => {
                        Some(("404", b"Cannot send to channel"))
                    }
                    Some(channel) => {
                        let line = relay(&channel.name);
                        for member in channel.members.iter().filter(|m| m.id != from) {
                            out.queue(member.id, &line);
                        }
                        None
                    }
                }
            } else {
                let to = self.nicks.get(&fold_bytes(target)).copied();
                match to.and_then(|id| Some((id, self.users.get(&id)?))) {
                    Some((id, user)) if user.registered => {
                        let nick = user.nick().as_bytes();
                        out.queue(id, &relay(nick));
                        // 301 RPL_AWAY: the sender learns the user is away.
                        if let Some(away) = user.away.as_ref().filter(|_| !notice) {
                            self.reply(out, from, "301", &[nick, away]);
                        }
                        None
                    }
                    _ => Some(("401", b"No such nick/channel")),
                }
            };
            if let Some((numeric, sentence)) = refused
                && !notice
            {
                self.reply(out, from, numeric, &[target, sentence]);
            }
        }
    }
}
