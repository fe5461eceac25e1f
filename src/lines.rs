//! Framing lines across `read(2)` calls, with a cap on their length.
//!
//! TCP is a byte stream: one read(2) may return half a line, or three lines
//! and the start of a fourth. A program that works in lines keeps what it has
//! read in a buffer and cuts complete lines out of it. The buffer is bounded:
//! a peer that sends a gigabyte without a newline must not make it grow, so a
//! line longer than the cap comes out in pieces (see [`Line`]).
//!
//! The read itself stays in the program, where the lesson is:
//!
//! ```no_run
//! # use socket_labs::{LineReader, OrDie};
//! # let fd = std::io::stdin();
//! let mut lines = LineReader::new(4096);
//! loop {
//!     let n = nix::unistd::read(&fd, lines.space()).or_die("read", "stdin");
//!     if n == 0 {
//!         break; // end of file; lines.rest() holds a last line without newline
//!     }
//!     lines.filled(n);
//!     while let Some(line) = lines.next_line() {
//!         // handle line.bytes()
//!     }
//! }
//! ```

/// One piece of input, as cut by [`LineReader::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, its `\n` included.
    Whole(Vec<u8>),
    /// The first `max` bytes of a line longer than the cap: no newline yet.
    Long(Vec<u8>),
    /// More of that long line; the last piece ends with its `\n`.
    Rest(Vec<u8>),
}

impl Line {
    /// The bytes of this piece, whatever kind it is.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Line::Whole(b) | Line::Long(b) | Line::Rest(b) => b,
        }
    }
}

/// A per-connection input buffer that hands out lines.
#[derive(Debug)]
pub struct LineReader {
    buf: Vec<u8>,
    len: usize,
    /// How far `buf[..len]` is known to hold no newline, so that a line that
    /// trickles in byte by byte is scanned once, not once per read.
    scanned: usize,
    /// Inside a line longer than the cap.
    in_long_line: bool,
}

impl LineReader {
    /// A reader for lines of at most `max` bytes (newline included); longer
    /// lines come out in pieces of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        LineReader {
            buf: vec![0; max],
            len: 0,
            scanned: 0,
            in_long_line: false,
        }
    }

    /// The free space to read(2) into; call [`filled`](Self::filled) after.
    ///
    /// Never empty once [`next_line`](Self::next_line) has returned `None`,
    /// so a read into it returns 0 only at end of file.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// Records that read(2) put `n` bytes into [`space`](Self::space).
    pub fn filled(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    /// Bytes held that do not yet make a line.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// The next complete line, or a piece of a line that reached the cap;
    /// `None` when what is left needs more input. Call it until `None`
    /// before reading again.
    pub fn next_line(&mut self) -> Option<Line> {
        let end = match self.buf[self.scanned..self.len]
            .iter()
            .position(|&b| b == b'\n')
        {
            Some(i) => self.scanned + i + 1,
            None if self.len == self.buf.len() => self.len,
            None => {
                self.scanned = self.len;
                return None;
            }
        };
        let bytes = self.take(end);
        let complete = bytes.last() == Some(&b'\n');
        let line = match (self.in_long_line, complete) {
            (false, true) => Line::Whole(bytes),
            (false, false) => Line::Long(bytes),
            (true, _) => Line::Rest(bytes),
        };
        self.in_long_line = !complete;
        Some(line)
    }

    /// At end of file: what is left, a last line that had no newline.
    pub fn rest(&mut self) -> Option<Line> {
        if self.len == 0 {
            return None;
        }
        let bytes = self.take(self.len);
        let line = if self.in_long_line {
            Line::Rest(bytes)
        } else {
            Line::Whole(bytes)
        };
        self.in_long_line = false;
        Some(line)
    }

    fn take(&mut self, end: usize) -> Vec<u8> {
        let bytes = self.buf[..end].to_vec();
        self.buf.copy_within(end..self.len, 0);
        self.len -= end;
        self.scanned = 0;
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reader: &mut LineReader, mut input: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let space = reader.space();
            let n = space.len().min(input.len()).min(3); // reads of 3 bytes at most
            space[..n].copy_from_slice(&input[..n]);
            reader.filled(n);
            input = &input[n..];
            while let Some(line) = reader.next_line() {
                out.push(line);
            }
        }
        out
    }

    #[test]
    fn lines_are_framed_across_reads() {
        let mut r = LineReader::new(64);
        let lines = feed(&mut r, b"hello\nworld\n\nhalf");
        assert_eq!(
            lines,
            [
                Line::Whole(b"hello\n".to_vec()),
                Line::Whole(b"world\n".to_vec()),
                Line::Whole(b"\n".to_vec()),
            ]
        );
        assert_eq!(r.pending(), 4);
        assert_eq!(r.rest(), Some(Line::Whole(b"half".to_vec())));
        assert_eq!(r.rest(), None);
    }

    #[test]
    fn long_lines_come_out_in_bounded_pieces() {
        let mut r = LineReader::new(4);
        let lines = feed(&mut r, b"abcdefghij\nok\n");
        assert_eq!(
            lines,
            [
                Line::Long(b"abcd".to_vec()),
                Line::Rest(b"efgh".to_vec()),
                Line::Rest(b"ij\n".to_vec()),
                Line::Whole(b"ok\n".to_vec()),
            ]
        );
        assert!(!r.space().is_empty());
    }

    #[test]
    fn a_line_of_exactly_max_bytes_is_whole() {
        let mut r = LineReader::new(4);
        assert_eq!(feed(&mut r, b"abc\n"), [Line::Whole(b"abc\n".to_vec())]);
    }

    #[test]
    fn memory_stays_bounded_whatever_the_input() {
        let mut r = LineReader::new(16);
        let big = vec![b'x'; 100_000];
        let pieces = feed(&mut r, &big);
        assert!(pieces.iter().all(|p| p.bytes().len() <= 16));
        assert_eq!(
            pieces.iter().map(|p| p.bytes().len()).sum::<usize>(),
            100_000
        );
        assert_eq!(r.pending(), 0);
    }
}
