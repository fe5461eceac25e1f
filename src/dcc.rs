//! DCC SEND, the IRC convention for sending a file directly between two
//! clients: the offer travels through the server inside a PRIVMSG as a CTCP
//! message (text between two `\x01` bytes), and names the address and
//! port where the sender listens; the file itself goes over a TCP
//! connection from the receiver to that address.
//!
//! ```text
//! PRIVMSG bob :\x01DCC SEND report.pdf 2130706433 41234 1234567\x01
//!                          name       IPv4 as a   port  size in
//!                                     32-bit number      bytes
//! NOTICE alice :\x01DCC REJECT SEND report.pdf\x01      bob says no
//! ```
//!
//! A name with spaces is quoted (`"my report.pdf"`, as mIRC and irssi
//! do); an IPv6 address is written as text (irssi's extension: the 32-bit
//! form cannot hold one).
//!
//! Also here, since none of it is the lesson of lab 08 (the second
//! connection is): what a receiver does with a name it did not choose
//! ([`safe_name`], [`numbered`]), and sizes, rates and progress as text.
//! Every input, however hostile, gives a value or an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The byte that opens and closes a CTCP message in a PRIVMSG or NOTICE.
pub const CTCP: char = '\x01';

/// The longest file name kept, in bytes: NAME_MAX is 255 on Linux, and a
/// numbered name (`-12`) and the `.part` suffix must still fit.
pub const MAX_NAME: usize = 200;

/// One DCC SEND offer as it came: the name as offered (unquoted, not yet
/// made safe), where the sender listens, and the size it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub name: String,
    pub addr: SocketAddr,
    pub size: u64,
}

/// A DCC request or reply, read from a CTCP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dcc {
    /// `DCC SEND name ip port size`: a file offered.
    Send(Offer),
    /// `DCC REJECT SEND name`: the receiver refuses the offer of `name`.
    Reject(String),
    /// A DCC this client does not do (CHAT, RESUME, passive SEND...): what it is.
    Unsupported(String),
}

/// The text between the `\x01` marks, if `text` is a CTCP message. The
/// closing mark is optional, as in most clients.
pub fn ctcp_body(text: &str) -> Option<&str> {
    let inner = text.strip_prefix(CTCP)?;
    Some(inner.strip_suffix(CTCP).unwrap_or(inner))
}

/// Reads a CTCP body. `None` if it is not a DCC at all (an ACTION, a
/// VERSION...); an error, in words, if it is a DCC that makes no sense.
pub fn parse(body: &str) -> Option<Result<Dcc, String>> {
    let (word, rest) = body.split_once(' ').unwrap_or((body, ""));
    if !word.eq_ignore_ascii_case("DCC") {
        return None;
    }
    let rest = rest.trim_start_matches(' ');
    let (kind, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let kind = kind.to_ascii_uppercase();
    Some(match kind.as_str() {
        "SEND" => parse_send(args),
        "REJECT" => {
            let args = args.trim_start_matches(' ');
            match args.split_once(' ') {
                Some((what, name)) if what.eq_ignore_ascii_case("SEND") => {
                    Ok(Dcc::Reject(unquote(name.trim()).to_string()))
                }
                _ => Ok(Dcc::Unsupported(format!("DCC REJECT {args}"))),
            }
        }
        "" => Err("an empty DCC request".to_string()),
        _ => Ok(Dcc::Unsupported(format!("DCC {kind}"))),
    })
}

const FEWER: &str = "fewer than 4 fields (name, address, port, size)";

/// `name ip port size`, the name quoted if it holds spaces. A fifth field
/// is the token of a passive (reverse) offer, port 0: the receiver would
/// have to listen, which this client does not do.
fn parse_send(args: &str) -> Result<Dcc, String> {
    let args = args.trim_matches(' ');
    let (name, fields): (String, Vec<&str>) = match args.strip_prefix('"') {
        Some(quoted) => {
            let (name, rest) = quoted
                .split_once('"')
                .ok_or("a quoted name without its closing quote")?;
            (
                name.to_string(),
                rest.split(' ').filter(|f| !f.is_empty()).collect(),
            )
        }
        None => {
            // Some clients do not quote names with spaces: the name is
            // everything before the numeric fields at the end.
            let all: Vec<&str> = args.split(' ').filter(|f| !f.is_empty()).collect();
            if all.len() < 4 {
                return Err(FEWER.to_string());
            }
            let passive = all.len() >= 5 && all[all.len() - 3] == "0";
            let cut = all.len() - if passive { 4 } else { 3 };
            (all[..cut].join(" "), all[cut..].to_vec())
        }
    };
    let [ip, port, size, token @ ..] = fields.as_slice() else {
        return Err(FEWER.to_string());
    };
    if token.len() > 1 {
        return Err("too many fields".to_string());
    }
    let ip = parse_ip(ip).ok_or_else(|| format!("bad address {ip:?}"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let size: u64 = size.parse().map_err(|_| format!("bad size {size:?}"))?;
    if port == 0 || !token.is_empty() {
        return Ok(Dcc::Unsupported("passive DCC SEND (port 0)".to_string()));
    }
    Ok(Dcc::Send(Offer {
        name,
        addr: SocketAddr::new(ip, port),
        size,
    }))
}

/// The address of an offer: an IPv4 address as a 32-bit number in
/// network order (2130706433 is 127.0.0.1), or IPv6 (or dotted IPv4) as
/// text. Nobody listens on 0.0.0.0 or a multicast address.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip = if text.bytes().all(|b| b.is_ascii_digit()) {
        IpAddr::V4(Ipv4Addr::from(text.parse::<u32>().ok()?))
    } else if text.contains(':') {
        IpAddr::V6(text.parse::<Ipv6Addr>().ok()?)
    } else {
        IpAddr::V4(text.parse::<Ipv4Addr>().ok()?)
    };
    (!ip.is_unspecified() && !ip.is_multicast()).then_some(ip)
}

/// How an address is written in an offer: IPv4 as a 32-bit number,
/// IPv6 as text.
pub fn ip_field(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u32::from(v4).to_string(),
        IpAddr::V6(v6) => v6.to_string(),
    }
}

/// The CTCP text of an offer, `\x01DCC SEND name ip port size\x01`.
pub fn send_offer(name: &str, addr: SocketAddr, size: u64) -> String {
    format!(
        "{CTCP}DCC SEND {} {} {} {size}{CTCP}",
        quote(name),
        ip_field(addr.ip()),
        addr.port()
    )
}

/// The CTCP text that refuses an offer of `name`, sent in a NOTICE as
/// irssi and mIRC do: `\x01DCC REJECT SEND name\x01`.
pub fn reject(name: &str) -> String {
    format!("{CTCP}DCC REJECT SEND {name}{CTCP}")
}

fn quote(name: &str) -> String {
    if name.contains(' ') {
        format!("\"{name}\"")
    } else {
        name.to_string()
    }
}

fn unquote(name: &str) -> &str {
    name.strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name)
}

/// The name under which an offered file may be saved, or `None` if
/// nothing usable is left. A name is the sender's choice, so:
/// - only its last component is kept, after `/` or `\`: no directory,
///   no `..`, no absolute path can lead outside the download directory;
/// - names made only of dots (`.`, `..`) are refused, and a leading dot
///   becomes `_` (no hidden files);
/// - control characters (a terminal escape, a newline in a log), quotes,
///   and the Unicode controls that reverse text (`cod.exe` shown as
///   `exe.doc`) become `_`;
/// - blanks around it go, and it is cut to [`MAX_NAME`] bytes.
pub fn safe_name(offered: &str) -> Option<String> {
    let base = offered.rsplit(['/', '\\']).next().unwrap_or("").trim();
    if base.chars().all(|c| c == '.') {
        return None; // "", ".", ".."
    }
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_control() || c == '"' || bidi(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.starts_with('.') {
        name.replace_range(..1, "_");
    }
    name.truncate(name.floor_char_boundary(MAX_NAME));
    Some(name)
}

/// Unicode's explicit direction controls (LRM, RLM, embeddings,
/// overrides, isolates): invisible, and they reorder what follows.
fn bidi(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The `n`th name to try when `name` exists: `report.pdf`, then
/// `report-1.pdf`, `report-2.pdf`... (`README-1` without an extension).
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}-{n}{}", &name[..dot], &name[dot..]),
        _ => format!("{name}-{n}"),
    }
}

/// A size for people: `512 B`, `1.2 MB` (decimal units, as network rates are).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A size given on the command line: bytes, or with a decimal unit
/// (`500k`, `10M`, `2G`, `1T`; `kB`, `MB`... too), as [`human`] writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Size, String> {
        let text = text.trim();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits);
        let usage = || "a number of bytes, with k, M, G or T if you like".to_string();
        let number: u64 = number.parse().map_err(|_| usage())?;
        let unit = unit.trim().to_ascii_lowercase();
        let factor: u64 = match unit.strip_suffix('b').unwrap_or(&unit) {
            "" => 1,
            "k" => 1_000,
            "m" => 1_000_000,
            "g" => 1_000_000_000,
            "t" => 1_000_000_000_000,
            _ => return Err(usage()),
        };
        number
            .checked_mul(factor)
            .map(Size)
            .ok_or_else(|| "too large".to_string())
    }
}

/// Bytes per second over `elapsed`, as `61.2 MB/s`.
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!("{}/s", human((bytes as f64 / secs) as u64))
}

/// A progress report: `12.3 MB of 52.4 MB (23%), 61.2 MB/s, 1 s left`.
pub fn progress(done: u64, total: u64, elapsed: Duration) -> String {
    let percent = if total == 0 {
        100
    } else {
        (u128::from(done) * 100 / u128::from(total)) as u64
    };
    let secs = elapsed.as_secs_f64();
    let left = if done == 0 || secs <= 0.0 {
        "?".to_string()
    } else {
        let per_byte = secs / done as f64;
        format!("{:.0}", total.saturating_sub(done) as f64 * per_byte)
    };
    format!(
        "{} of {} ({percent}%), {}, {left} s left",
        human(done),
        human(total),
        rate(done, elapsed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(body: &str) -> Offer {
        match parse(body) {
            Some(Ok(Dcc::Send(offer))) => offer,
            other => panic!("no offer in {body:?}: {other:?}"),
        }
    }

    #[test]
    fn offers_read_and_write_both_ways() {
        let o = offer("DCC SEND report.pdf 2130706433 41234 1234567");
        assert_eq!(o.name, "report.pdf");
        assert_eq!(o.addr, SocketAddr::from(([127, 0, 0, 1], 41234)));
        assert_eq!(o.size, 1_234_567);
        let text = send_offer("my report.pdf", o.addr, 5);
        assert_eq!(
            text,
            "\x01DCC SEND \"my report.pdf\" 2130706433 41234 5\x01"
        );
        let back = offer(ctcp_body(&text).unwrap_or_default());
        assert_eq!(back.name, "my report.pdf");
        let six = offer("DCC SEND a.txt ::1 5000 10");
        assert_eq!(six.addr, SocketAddr::from((Ipv6Addr::LOCALHOST, 5000)));
        assert_eq!(ip_field(six.addr.ip()), "::1");
        // Unquoted names with spaces, as some clients send them.
        assert_eq!(offer("DCC SEND my file 16777343 5000 10").name, "my file");
        assert_eq!(offer("dcc send x 10.0.0.1 5000 10").addr.port(), 5000);
    }

    #[test]
    fn rejects_and_other_dcc() {
        assert_eq!(
            parse("DCC REJECT SEND \"my file\""),
            Some(Ok(Dcc::Reject("my file".into())))
        );
        assert!(matches!(
            parse("DCC SEND f 16843009 0 10 7"),
            Some(Ok(Dcc::Unsupported(_)))
        ));
        assert!(matches!(
            parse("DCC CHAT chat 2130706433 5000"),
            Some(Ok(Dcc::Unsupported(_)))
        ));
        assert_eq!(parse("ACTION waves"), None);
        assert_eq!(ctcp_body("hello"), None);
        assert_eq!(ctcp_body("\x01VERSION"), Some("VERSION"));
    }

    #[test]
    fn broken_offers_are_errors() {
        for body in [
            "DCC",
            "DCC SEND",
            "DCC SEND 2130706433 5000 10",
            "DCC SEND f 2130706433 5000",
            "DCC SEND f 4294967296 5000 10",
            "DCC SEND f 0 5000 10",
            "DCC SEND f 2130706433 65536 10",
            "DCC SEND f 2130706433 5000 -1",
            "DCC SEND f 2130706433 5000 99999999999999999999999",
            "DCC SEND \"f 2130706433 5000 10",
            "DCC SEND \"\" 2130706433",
            "DCC SEND f 224.0.0.1 5000 10",
        ] {
            assert!(matches!(parse(body), Some(Err(_))), "{body:?}");
        }
        // An empty quoted name parses; safe_name refuses it.
        assert_eq!(offer("DCC SEND \"\" 2130706433 5000 10").name, "");
    }

    #[test]
    fn names_are_made_safe() {
        for (offered, safe) in [
            ("report.pdf", Some("report.pdf")),
            ("../../etc/passwd", Some("passwd")),
            ("/etc/passwd", Some("passwd")),
            ("C:\\Windows\\win.ini", Some("win.ini")),
            ("dir/", None),
            ("", None),
            (".", None),
            ("..", None),
            ("...", None),
            (" .. ", None),
            (".bashrc", Some("_bashrc")),
            ("a\x1b[2Jb\nc", Some("a_[2Jb_c")),
            ("cod\u{202e}fdp.exe", Some("cod_fdp.exe")),
            ("\"quoted\"", Some("_quoted_")),
            ("été.txt", Some("été.txt")),
        ] {
            assert_eq!(safe_name(offered).as_deref(), safe, "{offered:?}");
        }
        let long = "é".repeat(300);
        let cut = safe_name(&long).unwrap_or_default();
        assert!(cut.len() <= MAX_NAME && !cut.is_empty());
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("report.pdf", 0), "report.pdf");
        assert_eq!(numbered("report.pdf", 2), "report-2.pdf");
        assert_eq!(numbered("README", 1), "README-1");
        assert_eq!(numbered("_bashrc", 1), "_bashrc-1");
    }

    #[test]
    fn sizes_rates_and_progress_read_well() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_234_567), "1.2 MB");
        assert_eq!(human(52_428_800), "52.4 MB");
        assert_eq!(human(999_999_999), "1.0 GB");
        assert_eq!(human(u64::MAX), "18.4 EB");
        assert_eq!(rate(50_000_000, Duration::from_secs(2)), "25.0 MB/s");
        assert_eq!(
            progress(25, 100, Duration::from_secs(1)),
            "25 B of 100 B (25%), 25 B/s, 3 s left"
        );
        assert!(progress(0, 0, Duration::ZERO).contains("(100%)"));
        assert!(progress(u64::MAX, u64::MAX, Duration::from_secs(1)).contains("(100%)"));
    }

    #[test]
    fn sizes_on_the_command_line() {
        for (text, bytes) in [
            ("0", 0),
            ("512", 512),
            ("10M", 10_000_000),
            ("2 GB", 2_000_000_000),
            ("5kb", 5000),
        ] {
            assert_eq!(text.parse::<Size>(), Ok(Size(bytes)), "{text}");
        }
        for bad in ["", "M", "-1", "1.5M", "10X", "99999999999999999999T"] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
    }

    /// Random bytes as CTCP bodies: nothing may panic, and what is kept
    /// as a name never holds a separator or a control character.
    #[test]
    fn no_input_panics() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let words = [
            "DCC",
            "SEND",
            "REJECT",
            "\"",
            "\"a b\"",
            "0",
            "1",
            "65535",
            "65536",
            "::1",
            "4294967295",
            "../",
            "..",
            "/",
            "\\",
            "é",
            "\x01",
            "\0",
            " ",
            "x",
            "-1",
        ];
        for _ in 0..20_000 {
            let n = (next() % 8) as usize;
            let body: String = (0..n)
                .map(|_| words[(next() % words.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(if next() % 2 == 0 { " " } else { "" });
            if let Some(Ok(Dcc::Send(offer))) = parse(&body)
                && let Some(name) = safe_name(&offer.name)
            {
                assert!(!name.is_empty() && !name.starts_with('.'), "{name:?}");
                assert!(!name.contains(['/', '\\']), "{name:?}");
                assert!(!name.chars().any(char::is_control), "{name:?}");
            }
            let _ = ctcp_body(&body);
        }
    }
}
