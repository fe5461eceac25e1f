//! IRC messages (RFC 1459 §2.3, RFC 2812 §2.3.1): parsing one line into
//! prefix, command and parameters, and writing one back.
//!
//! ```text
//! message  =  [ ":" prefix SPACE ] command [ params ] crlf
//! params   =  *14( SPACE middle ) [ SPACE ":" trailing ]
//! ```
//!
//! Two views of the same format. A line is bytes, and IRC names no
//! character set (RFC 2812 §2.2): a server relays text without reading it,
//! so lab 07's server and the chat clients (src/chat.rs) work on
//! [`RawMessage`] and [`format_bytes`], as their C twins do
//! (labs/common/irc.c). [`Message`] holds a line as Rust strings, bytes
//! that are not UTF-8 replaced, for what reads words (lab 08's DCC offers).
//!
//! Not the lesson of lab 07 (which is the server as go-between), so it lives
//! here, with its tests. Every input, however hostile, gives a message or
//! `None`, never a panic.

/// The longest line IRC allows, CRLF included (RFC 2812 §2.3).
pub const MAX_LINE: usize = 512;

/// One message as the bytes it came in. The trailing parameter, if any, is
/// the last of `params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage<'a> {
    /// Who sent it (`nick!user@host` or a server name), without the colon.
    pub prefix: Option<&'a [u8]>,
    /// The command as sent; commands are case-insensitive.
    pub command: &'a [u8],
    pub params: Vec<&'a [u8]>,
}

impl<'a> RawMessage<'a> {
    /// Parses one line, with or without its CR LF. A NUL, which no message
    /// may hold, ends the line (as it ends a C string). `None` for a line
    /// with no command (empty, blanks, or a lone prefix).
    pub fn parse(line: &'a [u8]) -> Option<RawMessage<'a>> {
        let end = line.iter().position(|&b| b == 0).unwrap_or(line.len());
        split(&line[..end])
    }

    /// Whether the command is `name` (case-insensitive, as IRC commands are).
    pub fn is(&self, name: &str) -> bool {
        self.command.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// One parsed message, as text. The trailing parameter, if any, is the
/// last of `params`.
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
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let raw = split(line)?;
        Some(Message {
            prefix: raw.prefix.map(text),
            command: text(raw.command),
            params: raw.params.into_iter().map(text).collect(),
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

/// The parser of both views. Every delimiter is ASCII, so splitting the
/// bytes and then decoding each piece gives what decoding the whole line
/// first would.
fn split(line: &[u8]) -> Option<RawMessage<'_>> {
    let mut rest = line;
    while let [before @ .., b'\r' | b'\n'] = rest {
        rest = before;
    }
    let mut prefix = None;
    if let [b':', after @ ..] = rest {
        let (p, r) = split_once(after);
        prefix = Some(p);
        rest = r;
    }
    let (command, mut rest) = split_once(skip_spaces(rest));
    if command.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = skip_spaces(rest);
        if rest.is_empty() {
            break;
        }
        // RFC 2812 allows at most 15 parameters; the 15th takes the rest.
        if let [b':', trailing @ ..] = rest {
            params.push(trailing);
            break;
        }
        if params.len() == 14 {
            params.push(rest);
            break;
        }
        let (middle, r) = split_once(rest);
        params.push(middle);
        rest = r;
    }
    Some(RawMessage {
        prefix,
        command,
        params,
    })
}

/// What comes before the first space, and what after it.
fn split_once(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}

/// Without its leading spaces (only spaces: a tab is a byte like any other).
fn skip_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    &bytes[start..]
}

/// Writes one message as a line ending in CR LF. The last parameter is sent
/// as trailing (with a colon) when it must be: empty, starting with a colon,
/// or holding a space. Control characters CR, LF and NUL are dropped so that
/// no parameter can smuggle in a second message. A line never exceeds
/// [`MAX_LINE`]: what does not fit is cut from the end, before a character.
pub fn format(prefix: Option<&str>, command: &str, params: &[&str]) -> String {
    let params: Vec<&[u8]> = params.iter().map(|p| p.as_bytes()).collect();
    let bytes = build(prefix.map(str::as_bytes), command, &params, false);
    // Strings with some ASCII bytes taken out: still UTF-8, nothing replaced.
    let mut line = String::from_utf8_lossy(&bytes).into_owned();
    line.truncate(line.floor_char_boundary(MAX_LINE - 2));
    line.push_str("\r\n");
    line
}

/// As [`format()`], on bytes, as a server relays them: the last parameter is
/// always sent as trailing if `trailing` (the usual form for text, a
/// PRIVMSG's message, a numeric's sentence), and a line too long is cut at
/// its 510th byte, before CR LF, whatever that byte is.
pub fn format_bytes(
    prefix: Option<&[u8]>,
    command: &str,
    params: &[&[u8]],
    trailing: bool,
) -> Vec<u8> {
    let mut line = build(prefix, command, params, trailing);
    line.truncate(MAX_LINE - 2);
    line.extend_from_slice(b"\r\n");
    line
}

/// The line without its CR LF, and not cut.
fn build(prefix: Option<&[u8]>, command: &str, params: &[&[u8]], trailing: bool) -> Vec<u8> {
    let mut line = Vec::with_capacity(MAX_LINE);
    let mut push = |bytes: &[u8]| {
        line.extend(bytes.iter().filter(|b| !matches!(b, b'\r' | b'\n' | b'\0')));
    };
    if let Some(prefix) = prefix {
        push(b":");
        push(prefix);
        push(b" ");
    }
    push(command.as_bytes());
    for (i, param) in params.iter().enumerate() {
        let last = i + 1 == params.len();
        push(b" ");
        if last && (trailing || param.is_empty() || param[0] == b':' || param.contains(&b' ')) {
            push(b":");
        }
        push(param);
    }
    line
}

/// IRC's case mapping (`CASEMAPPING=rfc1459`): ASCII letters fold, and
/// `[]\~` are the upper case of `{}|^` (RFC 2812 §2.2).
pub fn fold(name: &str) -> String {
    // Only ASCII bytes change, into ASCII bytes: still UTF-8.
    String::from_utf8_lossy(&fold_bytes(name.as_bytes())).into_owned()
}

/// As [`fold`], on bytes.
pub fn fold_bytes(name: &[u8]) -> Vec<u8> {
    name.iter().map(|&b| fold_byte(b)).collect()
}

fn fold_byte(b: u8) -> u8 {
    match b {
        b'[' => b'{',
        b']' => b'}',
        b'\\' => b'|',
        b'~' => b'^',
        b => b.to_ascii_lowercase(),
    }
}

/// Whether `nick` is a valid nickname (RFC 2812 §2.3.1): a letter or one of
/// `[]\`_^{|}`, then letters, digits, those specials or `-`; at most `max`
/// bytes. A valid nick is ASCII.
pub fn valid_nick(nick: &[u8], max: usize) -> bool {
    let special = |b: &u8| b"[]\\`_^{|}".contains(b);
    match nick.split_first() {
        Some((first, rest)) if first.is_ascii_alphabetic() || special(first) => {
            nick.len() <= max
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || special(b) || *b == b'-')
        }
        _ => false,
    }
}

/// Whether `name` is a valid channel name (RFC 2812 §1.3, with only the
/// `#` channel type): `#`, then at least one byte, at most `max` in all,
/// none of them space, comma, colon, BEL, NUL, CR or LF.
pub fn valid_channel(name: &[u8], max: usize) -> bool {
    name.len() > 1
        && name.len() <= max
        && name[0] == b'#'
        && !name.iter().any(|b| b" ,:\x07\0\r\n".contains(b))
}

/// Whether `name` matches `mask`, IRC's wildcards (RFC 2812 §2.5): `*` any
/// run of bytes, `?` any one; compared folded. Without backtracking beyond
/// the last `*`, it takes at most the product of the two lengths: no mask
/// can make it take long.
pub fn mask_matches(mask: &[u8], name: &[u8]) -> bool {
    let (mask, name) = (fold_bytes(mask), fold_bytes(name));
    let (mut m, mut n) = (0, 0);
    // After a `*`: where it stands in the mask, and where in the name the
    // run it swallows ends so far. On a mismatch, the star takes one more.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match mask.get(m) {
            Some(b'*') => {
                star = Some((m, n));
                m += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
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
    mask[m.min(mask.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Message {
        Message::parse(line.as_bytes()).unwrap_or_else(|| panic!("no message in {line:?}"))
    }

    fn parse_raw(line: &[u8]) -> RawMessage<'_> {
        RawMessage::parse(line).unwrap_or_else(|| panic!("no message in {line:?}"))
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
            format_bytes(Some(b"a!b@c"), "QUIT", &[b"bye"], true),
            b":a!b@c QUIT :bye\r\n"
        );
    }

    #[test]
    fn raw_messages_keep_their_bytes_and_end_at_a_nul() {
        let m = parse_raw(b":a!b@c PRIVMSG #caf\xe9 :caf\xe9 cr\xe8me\r\n");
        assert_eq!(m.prefix, Some(&b"a!b@c"[..]));
        assert!(m.is("privmsg"));
        assert_eq!(m.params, [&b"#caf\xe9"[..], b"caf\xe9 cr\xe8me"]);
        let m = parse_raw(b"PRIVMSG bob :hi\0QUIT\r\n");
        assert_eq!(m.params, [&b"bob"[..], b"hi"]);
        assert_eq!(RawMessage::parse(b"\0NICK bob"), None);
        // The text view of the same line: what is not UTF-8 becomes U+FFFD.
        let m = parse("PRIVMSG #x :caf\u{e9}");
        assert_eq!(m.params[1], "caf\u{e9}");
        let m = Message::parse(b"PRIVMSG #x :caf\xe9").unwrap_or_else(|| panic!("no message"));
        assert_eq!(m.params[1], "caf\u{fffd}");
    }

    #[test]
    fn nicks_and_case_folding() {
        assert!(valid_nick(b"alice", 30));
        assert!(valid_nick(b"[away]_bob-2", 30));
        assert!(!valid_nick(b"2pac", 30));
        assert!(!valid_nick(b"", 30));
        assert!(!valid_nick(b"a b", 30));
        assert!(!valid_nick(b"caf\xe9", 30));
        assert!(!valid_nick(b"toolongnickname", 9));
        assert_eq!(fold("Alice[x]"), fold("aLICE{X}"));
        assert_eq!(fold_bytes(b"\xc9T\xc9[x]"), b"\xc9t\xc9{x}");
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
        // Bytes are cut at the 510th, whatever it is: the middle of a
        // character, here.
        let prefix = b"alice!alice@127.0.0.1";
        let text = format!("x{text}");
        let line = format_bytes(Some(prefix), "PRIVMSG", &[b"#room", text.as_bytes()], true);
        assert_eq!(line.len(), MAX_LINE);
        assert!(line.ends_with(b"\xc3\r\n"), "{line:?}");
    }

    #[test]
    fn channel_names() {
        assert!(valid_channel(b"#room", 50));
        assert!(valid_channel("#Ünï-[x]".as_bytes(), 50));
        assert!(valid_channel(b"#caf\xe9", 50));
        for bad in ["#", "room", "#a b", "#a,b", "#a:b", "#a\x07", "&local"] {
            assert!(!valid_channel(bad.as_bytes(), 50), "{bad:?}");
        }
        assert!(!valid_channel(
            format!("#{}", "x".repeat(50)).as_bytes(),
            50
        ));
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
            ("caf??", "café"), // '?' is one byte, and é two
        ] {
            assert!(
                mask_matches(mask.as_bytes(), name.as_bytes()),
                "{mask} {name}"
            );
        }
        for (mask, name) in [
            ("al", "alice"),
            ("?", ""),
            ("b*", "alice"),
            ("a*x", "alice"),
            ("caf?", "café"),
        ] {
            assert!(
                !mask_matches(mask.as_bytes(), name.as_bytes()),
                "{mask} {name}"
            );
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
            if let Some(m) = RawMessage::parse(&bytes) {
                assert!(!m.command.is_empty() && m.params.len() <= 15);
                let command = String::from_utf8_lossy(m.command);
                let again = format_bytes(m.prefix, &command, &m.params, false);
                assert!(again.len() <= MAX_LINE);
            }
            let _ = valid_nick(&bytes, 30);
            let _ = valid_channel(&bytes, 50);
            let (mask, name) = bytes.split_at(bytes.len() / 2);
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
