//! IRC messages (RFC 1459 §2.3, RFC 2812 §2.3.1): parsing one line into
//! prefix, command and parameters, and writing one back.
//!
//! ```text
//! message  =  [ ":" prefix SPACE ] command [ params ] crlf
//! params   =  *14( SPACE middle ) [ SPACE ":" trailing ]
//! ```
//!
//! Not the lesson of lab 07 (which is the server as go-between), so it lives
//! here, with its tests. Every input, however hostile, gives a `Message` or
//! `None`, never a panic.

use std::fmt::Write as _;

/// The longest line IRC allows, CRLF included (RFC 2812 §2.3).
pub const MAX_LINE: usize = 512;

/// One parsed message. The trailing parameter, if any, is the last of `params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who sent it (`nick!user@host` or a server name), without the colon.
    pub prefix: Option<String>,
    /// The command as sent (`PRIVMSG`, `001`...). Compare with
    /// `eq_ignore_ascii_case`: commands are case-insensitive.
    pub command: String,
    pub params: Vec<String>,
}

impl Message {
    /// Parses one line, with or without its CR LF. Bytes that are not UTF-8
    /// (old clients send Latin-1) become U+FFFD. `None` for a line with no
    /// command (empty, blanks, or a lone prefix).
    pub fn parse(line: &[u8]) -> Option<Message> {
        let text = String::from_utf8_lossy(line);
        let mut rest = text.trim_end_matches(['\r', '\n']);
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (p, r) = after.split_once(' ').unwrap_or((after, ""));
            prefix = Some(p.to_string());
            rest = r;
        }
        rest = rest.trim_start_matches(' ');
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            // RFC 2812 allows at most 15 parameters; the 15th takes the rest.
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_string());
                break;
            }
            if params.len() == 14 {
                params.push(rest.to_string());
                break;
            }
            let (middle, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(middle.to_string());
            rest = r;
        }
        Some(Message {
            prefix,
            command: command.to_string(),
            params,
        })
    }

    /// The parameter at `index`, if present.
    pub fn param(&self, index: usize) -> Option<&str> {
        self.params.get(index).map(String::as_str)
    }

    /// Whether the command is `name` (case-insensitive, as IRC commands are).
    pub fn is(&self, name: &str) -> bool {
        self.command.eq_ignore_ascii_case(name)
    }
}

/// Writes one message as a line ending in CR LF. The last parameter is sent
/// as trailing (with a colon) when it must be: empty, starting with a colon,
/// or holding a space. Control characters CR, LF and NUL are dropped so that
/// no parameter can smuggle in a second message. A line never exceeds
/// [`MAX_LINE`]: what does not fit is cut from the end (the text of a
/// message relayed with a longer prefix than it came with, say).
pub fn format(prefix: Option<&str>, command: &str, params: &[&str]) -> String {
    build(prefix, command, params, false)
}

/// As [`format`], but the last parameter is always sent as trailing, with
/// its colon: the usual form for text (a PRIVMSG's message, a numeric's
/// sentence), and what simple clients that look for `" :"` expect.
pub fn format_trailing(prefix: Option<&str>, command: &str, params: &[&str]) -> String {
    build(prefix, command, params, true)
}

fn build(prefix: Option<&str>, command: &str, params: &[&str], trailing: bool) -> String {
    let mut line = String::with_capacity(64);
    if let Some(prefix) = prefix {
        line.push(':');
        push_clean(&mut line, prefix);
        line.push(' ');
    }
    push_clean(&mut line, command);
    for (i, param) in params.iter().enumerate() {
        let last = i + 1 == params.len();
        line.push(' ');
        if last && (trailing || param.is_empty() || param.starts_with(':') || param.contains(' ')) {
            line.push(':');
        }
        push_clean(&mut line, param);
    }
    line.truncate(line.floor_char_boundary(MAX_LINE - 2));
    line.push_str("\r\n");
    line
}

fn push_clean(line: &mut String, text: &str) {
    for c in text.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')) {
        let _ = line.write_char(c);
    }
}

/// IRC's case mapping (`CASEMAPPING=rfc1459`): ASCII letters fold, and
/// `[]\~` are the upper case of `{}|^` (RFC 2812 §2.2).
pub fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether `nick` is a valid nickname (RFC 2812 §2.3.1): a letter or one of
/// `[]\`_^{|}`, then letters, digits, those specials or `-`; at most `max`
/// characters.
pub fn valid_nick(nick: &str, max: usize) -> bool {
    let special = |c: char| "[]\\`_^{|}".contains(c);
    let mut chars = nick.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || special(c) => {}
        _ => return false,
    }
    nick.len() <= max && chars.all(|c| c.is_ascii_alphanumeric() || special(c) || c == '-')
}

/// Whether `name` is a valid channel name (RFC 2812 §1.3, with only the
/// `#` channel type): `#`, then at least one character, at most `max` in
/// all, none of them space, comma, colon, BEL, NUL, CR or LF.
pub fn valid_channel(name: &str, max: usize) -> bool {
    name.len() > 1
        && name.len() <= max
        && name.starts_with('#')
        && !name.contains([' ', ',', ':', '\x07', '\0', '\r', '\n'])
}

/// Whether `name` matches `mask`, IRC's wildcards (RFC 2812 §2.5): `*` any
/// run of characters, `?` any one; compared with [`fold`]. Without
/// backtracking beyond the last `*`, it takes at most the product of the
/// two lengths: no mask can make it take long.
pub fn mask_matches(mask: &str, name: &str) -> bool {
    let mask: Vec<char> = fold(mask).chars().collect();
    let name: Vec<char> = fold(name).chars().collect();
    let (mut m, mut n) = (0, 0);
    // After a `*`: where it stands in the mask, and where in the name the
    // run it swallows ends so far. On a mismatch, the star takes one more.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match mask.get(m) {
            Some('*') => {
                star = Some((m, n));
                m += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                m += 1;
                n += 1;
            }
            _ => match star {
                Some((star_at, swallowed)) => {
                    star = Some((star_at, swallowed + 1));
                    m = star_at + 1;
                    n = swallowed + 1;
                }
                None => return false,
            },
        }
    }
    mask[m.min(mask.len())..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Message {
        Message::parse(line.as_bytes()).unwrap_or_else(|| panic!("no message in {line:?}"))
    }

    #[test]
    fn prefix_command_middles_and_trailing() {
        let m = parse(":alice!a@127.0.0.1 PRIVMSG #room :hello there\r\n");
        assert_eq!(m.prefix.as_deref(), Some("alice!a@127.0.0.1"));
        assert!(m.is("privmsg"));
        assert_eq!(m.params, ["#room", "hello there"]);
        let m = parse("USER guest 0 * :Real Name");
        assert_eq!(m.params, ["guest", "0", "*", "Real Name"]);
        let m = parse("NICK  bob  ");
        assert_eq!(m.params, ["bob"]);
        let m = parse("PRIVMSG bob ::-)");
        assert_eq!(m.params, ["bob", ":-)"]);
        let m = parse("PING");
        assert!(m.params.is_empty());
    }

    #[test]
    fn lines_without_a_command_are_none() {
        for line in ["", "\r\n", "   ", ":prefix", ":prefix   "] {
            assert_eq!(Message::parse(line.as_bytes()), None, "{line:?}");
        }
    }

    #[test]
    fn the_fifteenth_parameter_takes_the_rest() {
        let line = format!(
            "CMD {}",
            (1..=20)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let m = parse(&line);
        assert_eq!(m.params.len(), 15);
        assert_eq!(m.params[14], "15 16 17 18 19 20");
    }

    #[test]
    fn format_adds_the_colon_only_when_needed_and_drops_crlf() {
        assert_eq!(format(None, "NICK", &["bob"]), "NICK bob\r\n");
        assert_eq!(
            format(Some("srv"), "001", &["bob", "Welcome bob"]),
            ":srv 001 bob :Welcome bob\r\n"
        );
        assert_eq!(format(None, "TOPIC", &["#a", ""]), "TOPIC #a :\r\n");
        assert_eq!(
            format(None, "PRIVMSG", &["bob", "hi\r\nQUIT"]),
            "PRIVMSG bob hiQUIT\r\n"
        );
        let back = parse(&format(Some("a!b@c"), "PRIVMSG", &["#x", ":) ok"]));
        assert_eq!(back.params, ["#x", ":) ok"]);
        assert_eq!(
            format_trailing(Some("a!b@c"), "QUIT", &["bye"]),
            ":a!b@c QUIT :bye\r\n"
        );
    }

    #[test]
    fn nicks_and_case_folding() {
        assert!(valid_nick("alice", 30));
        assert!(valid_nick("[away]_bob-2", 30));
        assert!(!valid_nick("2pac", 30));
        assert!(!valid_nick("", 30));
        assert!(!valid_nick("a b", 30));
        assert!(!valid_nick("toolongnickname", 9));
        assert_eq!(fold("Alice[x]"), fold("aLICE{X}"));
    }

    #[test]
    fn lines_are_cut_to_512_bytes() {
        let text = "é".repeat(400); // 800 bytes
        let line = format(Some("alice!alice@127.0.0.1"), "PRIVMSG", &["#room", &text]);
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(line.ends_with("\r\n"));
        let m = parse(&line);
        assert_eq!(m.params[0], "#room");
        assert!(text.starts_with(&m.params[1]));
        let short = format(None, "PING", &["x".repeat(510 - 5).as_str()]);
        assert_eq!(short.len(), MAX_LINE);
    }

    #[test]
    fn channel_names() {
        assert!(valid_channel("#room", 50));
        assert!(valid_channel("#Ünï-[x]", 50));
        for bad in ["#", "room", "#a b", "#a,b", "#a:b", "#a\x07", "&local"] {
            assert!(!valid_channel(bad, 50), "{bad:?}");
        }
        assert!(!valid_channel(&format!("#{}", "x".repeat(50)), 50));
    }

    #[test]
    fn masks_match_with_wildcards_and_case_folding() {
        for (mask, name) in [
            ("*", "alice"),
            ("*", ""),
            ("al*", "Alice"),
            ("a?ice", "alice"),
            ("*ce", "alice"),
            ("a*c*e", "abcde"),
            ("[x]*", "{X}bob"),
            ("**a**", "a"),
        ] {
            assert!(mask_matches(mask, name), "{mask} {name}");
        }
        for (mask, name) in [
            ("al", "alice"),
            ("?", ""),
            ("b*", "alice"),
            ("a*x", "alice"),
        ] {
            assert!(!mask_matches(mask, name), "{mask} {name}");
        }
    }

    /// A property test in place of a fuzzer: random bytes, random splits of
    /// valid messages; nothing may panic, and what `format` writes must
    /// parse back to the same parameters.
    #[test]
    fn no_input_panics_and_format_round_trips() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b" :!@#$*\r\n\0\xff\xc3abcXYZ019[]{}|-";
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if let Some(m) = Message::parse(&bytes) {
                assert!(!m.command.is_empty());
                assert!(m.params.len() <= 15);
                let params: Vec<&str> = m.params.iter().map(String::as_str).collect();
                let again = format(m.prefix.as_deref(), &m.command, &params);
                let _ = Message::parse(again.as_bytes());
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = valid_nick(&text, 30);
            let _ = valid_channel(&text, 50);
            let (mask, name) = text.split_at(text.floor_char_boundary(text.len() / 2));
            let _ = mask_matches(mask, name);
        }
        for _ in 0..5_000 {
            let n = (next() % 5) as usize;
            let words = ["a", "b:c", "#chan", "x y", "", ":z", "é"];
            let params: Vec<&str> = (0..n)
                .map(|_| words[(next() % words.len() as u64) as usize])
                .collect();
            // Only the last parameter may be empty, hold a space or start with ':'.
            let ok = params
                .iter()
                .rev()
                .skip(1)
                .all(|p| !p.is_empty() && !p.contains(' ') && !p.starts_with(':'));
            if !ok {
                continue;
            }
            let m = parse(&format(Some("p"), "CMD", &params));
            assert_eq!(m.params, params);
        }
    }
}
