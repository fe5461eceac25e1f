//! The command line: `--help`, options, positional arguments, usage errors.
//!
//! Every program has the same shape: `server [PORT] [--bind ADDR] ...` and
//! `client [HOST] [PORT] ...`. `--help` prints the usage on stdout and exits
//! 0; a bad argument prints one line saying what is wrong, then the usage,
//! on stderr, and exits 2.
//!
//! ```no_run
//! # use socket_labs::{Cli, DEFAULT_PORT};
//! # use std::net::{IpAddr, Ipv4Addr};
//! let mut cli = Cli::new("usage: server [PORT] [--bind ADDR]\n");
//! let ip: IpAddr = cli.value("--bind", "ADDR").unwrap_or(Ipv4Addr::UNSPECIFIED.into());
//! let port = cli.port().unwrap_or(DEFAULT_PORT);
//! cli.finish();
//! ```

use std::fmt::Display;
use std::process;
use std::str::FromStr;

/// The port every lab uses unless told otherwise.
pub const DEFAULT_PORT: u16 = 4242;
/// Where the clients connect unless told otherwise.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The arguments not yet taken, and the usage text to show.
#[derive(Debug)]
pub struct Cli {
    usage: &'static str,
    args: Vec<String>,
}

impl Cli {
    /// Reads the program's arguments. `--help` (or `-h`) anywhere prints
    /// `usage` on stdout and exits 0.
    pub fn new(usage: &'static str) -> Cli {
        // args_os: an argument that is not UTF-8 must be a usage error, not
        // the panic std::env::args() gives; it becomes U+FFFD and is refused.
        let args = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Cli::from_args(usage, args)
    }

    /// As [`new`](Self::new), from the given arguments (without the program name).
    pub fn from_args(usage: &'static str, args: Vec<String>) -> Cli {
        if args.iter().any(|a| a == "--help" || a == "-h") {
            crate::log!("{}", usage.trim_end());
            process::exit(0);
        }
        Cli { usage, args }
    }

    /// Takes `--name`, and says whether it was there.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.args.len();
        self.args.retain(|a| a != name);
        self.args.len() != before
    }

    /// Takes `--name VALUE` (or `--name=VALUE`) and parses VALUE; `what`
    /// names it in an error, as the usage does (`ADDR`).
    pub fn value<T: FromStr<Err: Display>>(&mut self, name: &str, what: &str) -> Option<T> {
        let prefix = format!("{name}=");
        let i = self
            .args
            .iter()
            .position(|a| a == name || a.starts_with(&prefix))?;
        let arg = self.args.remove(i);
        let text = match arg.strip_prefix(&prefix) {
            Some(text) => text.to_string(),
            None if i < self.args.len() => self.args.remove(i),
            None => self.usage_error(format_args!("{name} needs a value ({what})")),
        };
        Some(self.parse(&text, what))
    }

    /// Takes the next positional argument and parses it; `what` names it.
    pub fn positional<T: FromStr<Err: Display>>(&mut self, what: &str) -> Option<T> {
        let first = self.args.first()?;
        if first.len() > 1 && first.starts_with('-') {
            self.usage_error(format_args!("unknown option '{first}'"));
        }
        let text = self.args.remove(0);
        Some(self.parse(&text, what))
    }

    /// Takes the next positional argument as a port number.
    pub fn port(&mut self) -> Option<u16> {
        let text: String = self.positional("PORT")?;
        match text.parse() {
            Ok(port) => Some(port),
            Err(_) => self.usage_error(format_args!(
                "invalid PORT '{text}': a port is a number from 0 to 65535"
            )),
        }
    }

    /// Ends parsing: anything not taken is an error.
    pub fn finish(self) {
        if let Some(extra) = self.args.first() {
            if extra.len() > 1 && extra.starts_with('-') {
                self.usage_error(format_args!("unknown option '{extra}'"));
            }
            self.usage_error(format_args!("unexpected argument '{extra}'"));
        }
    }

    /// Prints `message`, then the usage line, on stderr, and exits 2.
    pub fn usage_error(&self, message: impl Display) -> ! {
        let synopsis = self.usage.split("\n\n").next().unwrap_or_default();
        crate::warn!("{message}\n{}\n(--help for details)", synopsis.trim_end());
        process::exit(2)
    }

    fn parse<T: FromStr<Err: Display>>(&self, text: &str, what: &str) -> T {
        match text.parse() {
            Ok(value) => value,
            Err(err) => self.usage_error(format_args!("invalid {what} '{text}': {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};

    fn cli(args: &[&str]) -> Cli {
        Cli::from_args("usage", args.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn options_are_taken_before_positionals() {
        let mut c = cli(&["0", "--bind", "::1", "--no-reap"]);
        assert!(c.flag("--no-reap"));
        assert!(!c.flag("--verbose"));
        let ip: Option<IpAddr> = c.value("--bind", "ADDR");
        assert_eq!(ip, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(c.port(), Some(0));
        assert_eq!(c.port(), None);
        c.finish();
    }

    #[test]
    fn values_may_be_joined_with_equals() {
        let mut c = cli(&["--workers=4", "4243"]);
        assert_eq!(c.value::<u32>("--workers", "N"), Some(4));
        assert_eq!(c.port(), Some(4243));
        c.finish();
    }

    #[test]
    fn absent_arguments_are_none() {
        let mut c = cli(&[]);
        assert_eq!(c.value::<String>("--bind", "ADDR"), None);
        assert_eq!(c.positional::<String>("HOST"), None);
        c.finish();
    }
}
