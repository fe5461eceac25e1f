//! Questions about the server: LUSERS, TIME, MOTD (RFC 2812 §3.4.1, §3.4.2,
//! §3.4.6), which the welcome burst also answers (LUSERS and MOTD, as real
//! servers do); and the message of the day's file, read once at start-up.
//! There is one server and no operator: "1 servers", "0 servers" linked, and
//! no 252 (RPL_LUSEROP counts operators, a positive number in the Modern IRC
//! document). A `<target>` server parameter is ignored: we are the only one.

use std::fs::File;
use std::io::Read;

use socket_labs::OrDie;
use socket_labs::date::{unix_now, utc};

use super::{Id, Irc, Outbox};

/// What is read of the message of the day's file: its first 64 KiB, at most
/// 100 lines, each cut at 400 bytes so that its 372 line fits in 512 bytes
/// whatever the server's name (63 bytes) and the nick (30).
const MOTD_BYTES: u64 = 64 * 1024;
const MOTD_LINES: usize = 100;
const MOTD_LINE: usize = 400;

/// The lines of the message of the day in `path`, without their CR LF or LF.
/// A line stops at a NUL byte (IRC allows none, RFC 2812 §2.3.1) and is cut
/// at MOTD_LINE bytes, not in the middle of a UTF-8 character. A file that
/// cannot be read: `open PATH: reason` (or `read`), exit 1.
pub fn read_motd(path: &str) -> Vec<Vec<u8>> {
    let file = File::open(path).or_die("open", path);
    let mut text = Vec::new();
    file.take(MOTD_BYTES)
        .read_to_end(&mut text)
        .or_die("read", path);
    if text.ends_with(b"\n") {
        text.pop(); // the last line's newline ends it, it starts no other
    }
    if text.is_empty() {
        return Vec::new();
    }
    text.split(|&b| b == b'\n')
        .take(MOTD_LINES)
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = line.split(|&b| b == 0).next().unwrap_or(b"");
            let mut end = line.len().min(MOTD_LINE);
            // A UTF-8 continuation byte (10xxxxxx) does not start a character.
            while end < line.len() && end > 0 && line[end] & 0xC0 == 0x80 {
                end -= 1;
            }
            line[..end].to_vec()
        })
        .collect()
}

impl Irc {
    /// LUSERS: how many users (the invisible apart, as 251 says them),
    /// unregistered connections, channels; then 265 and 266, the users now
    /// and the most there have been at once, here and on the network (one
    /// server: the same numbers).
    pub(super) fn lusers(&self, out: &mut dyn Outbox, from: Id) {
        let registered = self.users.values().filter(|u| u.registered);
        let users = registered.clone().count();
        let invisible = registered.filter(|u| u.invisible).count();
        let unknown = self.users.len() - users;
        // <u> users and <i> invisible: u + i is every user (RFC 1459's 251;
        // ircd-hybrid counts them so).
        let visible = users - invisible;
        let there = format!("There are {visible} users and {invisible} invisible on 1 servers");
        self.reply(out, from, "251", &[there.as_bytes()]);
        if unknown > 0 {
            let unknown = unknown.to_string();
            let what: &[u8] = b"unknown connection(s)";
            self.reply(out, from, "253", &[unknown.as_bytes(), what]);
        }
        let channels = self.channels.len().to_string();
        self.reply(out, from, "254", &[channels.as_bytes(), b"channels formed"]);
        let have = format!("I have {users} clients and 0 servers");
        self.reply(out, from, "255", &[have.as_bytes()]);
        let (now, max) = (users.to_string(), self.max_users.to_string());
        for (numeric, which) in [("265", "local"), ("266", "global")] {
            let text = format!("Current {which} users {now}, max {max}");
            let params = [now.as_bytes(), max.as_bytes(), text.as_bytes()];
            self.reply(out, from, numeric, &params);
        }
    }

    /// TIME: 391 with the server's name, the time in seconds since 1970 (for
    /// a program) and as a person reads it. In UTC, as 003 and the log say
    /// dates: the same on every machine and in both twins, with no time zone
    /// database to consult.
    pub(super) fn time(&self, out: &mut dyn Outbox, from: Id) {
        let now = unix_now();
        let (unix, text) = (now.to_string(), utc(now));
        let params = [self.name.as_bytes(), unix.as_bytes(), text.as_bytes()];
        self.reply(out, from, "391", &params);
    }

    /// MOTD: the message of the day, 375, a 372 per line and 376; or 422
    /// without a file (`--motd`).
    pub(super) fn motd(&self, out: &mut dyn Outbox, from: Id) {
        let Some(lines) = &self.motd else {
            self.reply(out, from, "422", &[b"MOTD File is missing"]);
            return;
        };
        let start = format!("- {} Message of the day - ", self.name);
        self.reply(out, from, "375", &[start.as_bytes()]);
        for line in lines {
            self.reply(out, from, "372", &[&[b"- ", &line[..]].concat()]);
        }
        self.reply(out, from, "376", &[b"End of /MOTD command."]);
    }
}
