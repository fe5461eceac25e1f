//! A received file on disk (lab 08): where it goes, whether it fits, and
//! how it gets its name without ever overwriting anything.
//!
//! None of this is the lesson of lab 08 (the second connection is), but a
//! receiver that writes what a stranger sends must do all of it:
//! - the bytes go to `NAME.part`, created with O_EXCL, until the announced
//!   size is in: a transfer that fails leaves nothing (the part is removed
//!   when dropped), and a client killed midway leaves a name that says the
//!   file is partial;
//! - the complete file gets its final name with link(2), which fails where
//!   rename(2) would replace a file created meanwhile: `report.pdf`, else
//!   `report-1.pdf`, `report-2.pdf`... ([`dcc::numbered`]);
//! - before anything is created, statvfs(3) says whether the file fits.
//!
//! The name itself has been made safe before it comes here ([`dcc::safe_name`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::sys::statvfs::statvfs;

use crate::dcc::{self, human};
use crate::fail::reason;

/// How many numbered names are tried before giving up.
const NUMBERS: u32 = 1000;

/// A file being received, written as `NAME.part` until it is complete.
/// Dropped before [`keep`](Self::keep), it removes itself.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    dir: PathBuf,
    name: String,
    /// The number tried first for the final name ([`dcc::numbered`]).
    number: u32,
    path: PathBuf,
    kept: bool,
}

impl PartFile {
    /// Creates `dir/NAME.part`, or `dir/NAME-1.part`... for the first
    /// number whose final name and part are both free. O_EXCL
    /// (create_new): an existing file, or a symlink planted there, is
    /// never opened, let alone overwritten.
    pub fn create(dir: &Path, name: &str) -> io::Result<PartFile> {
        for number in 0..NUMBERS {
            let candidate = dcc::numbered(name, number);
            if fs::symlink_metadata(dir.join(&candidate)).is_ok() {
                continue;
            }
            let path = dir.join(format!("{candidate}.part"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(PartFile {
                        file,
                        dir: dir.to_path_buf(),
                        name: name.to_string(),
                        number,
                        path,
                        kept: false,
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
        Err(all_taken())
    }

    /// Where the part is: `dir/NAME.part`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes` to the part (write(2) until all of it is written).
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Gives the complete file its final name without overwriting anything:
    /// link(2) fails with EEXIST where rename(2) would replace a file
    /// created meanwhile; then the next number is tried. The part's own
    /// name is removed.
    pub fn keep(&mut self) -> io::Result<PathBuf> {
        for number in self.number..self.number + NUMBERS {
            let target = self.dir.join(dcc::numbered(&self.name, number));
            let done = match fs::hard_link(&self.path, &target) {
                // No hard links on this file system (FAT): rename(2), if the name is free.
                Err(err) if err.raw_os_error() == Some(libc::EPERM) => {
                    match fs::symlink_metadata(&target) {
                        Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
                        Err(_) => fs::rename(&self.path, &target),
                    }
                }
                other => other,
            };
            match done {
                Ok(()) => {
                    self.kept = true;
                    let _ = fs::remove_file(&self.path); // the part's name; gone after a rename
                    return Ok(target);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
        Err(all_taken())
    }
}

/// EEXIST, as open(2) and link(2) say it: every numbered name is taken.
fn all_taken() -> io::Error {
    io::Error::from_raw_os_error(libc::EEXIST)
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The bytes free for us in `dir`: statvfs(3)'s blocks available to an
/// unprivileged user, times the fragment size.
pub fn free_space(dir: &Path) -> nix::Result<u64> {
    let fs = statvfs(dir)?;
    Ok((fs.blocks_available() as u64).saturating_mul(fs.fragment_size() as u64))
}

/// Why a file of `size` bytes may not be received into `dir`, if it may
/// not: more than `max_size` (--max-size), more than the free space, or a
/// `dir` statvfs(3) cannot look at. Asked before any byte is written:
/// after the transfer, the disk is already full.
pub fn will_not_fit(dir: &Path, size: u64, max_size: Option<u64>) -> Option<String> {
    match (max_size, free_space(dir)) {
        (Some(max), _) if size > max => Some(format!("more than --max-size {}", human(max))),
        (_, Ok(free)) if size > free => Some(format!(
            "more than the free space in {} ({})",
            dir.display(),
            human(free)
        )),
        (_, Ok(_)) => None,
        (_, Err(err)) => Some(format!("{}: {}", dir.display(), reason(&err))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty directory for one test, removed at the end.
    struct Dir(PathBuf);

    impl Dir {
        fn new(test: &str) -> std::io::Result<Dir> {
            let path = std::env::temp_dir().join(format!(
                "socket-labs-download-{test}-{}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path)?;
            Ok(Dir(path))
        }

        fn names(&self) -> std::io::Result<Vec<String>> {
            let mut names: Vec<String> = fs::read_dir(&self.0)?
                .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect();
            names.sort();
            Ok(names)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_part_is_kept_under_its_name_or_removed() -> Result<(), Box<dyn std::error::Error>> {
        let dir = Dir::new("keep")?;
        let mut part = PartFile::create(&dir.0, "a.txt")?;
        assert_eq!(part.path(), dir.0.join("a.txt.part"));
        part.write_all(b"data")?;
        assert_eq!(dir.names()?, ["a.txt.part"]);
        assert_eq!(part.keep()?, dir.0.join("a.txt"));
        drop(part);
        assert_eq!(dir.names()?, ["a.txt"]);
        assert_eq!(fs::read(dir.0.join("a.txt"))?, b"data");

        let part = PartFile::create(&dir.0, "b.txt")?;
        drop(part);
        assert_eq!(dir.names()?, ["a.txt"], "a part not kept is removed");
        Ok(())
    }

    #[test]
    fn nothing_existing_is_overwritten() -> Result<(), Box<dyn std::error::Error>> {
        let dir = Dir::new("exists")?;
        fs::write(dir.0.join("r.txt"), b"mine")?;
        fs::write(dir.0.join("r-1.txt.part"), b"theirs")?;
        let mut part = PartFile::create(&dir.0, "r.txt")?;
        assert_eq!(part.path(), dir.0.join("r-2.txt.part"));
        // Created meanwhile: the next free number.
        fs::write(dir.0.join("r-2.txt"), b"late")?;
        assert_eq!(part.keep()?, dir.0.join("r-3.txt"));
        drop(part);
        assert_eq!(
            dir.names()?,
            ["r-1.txt.part", "r-2.txt", "r-3.txt", "r.txt"]
        );
        assert_eq!(fs::read(dir.0.join("r.txt"))?, b"mine");
        assert_eq!(fs::read(dir.0.join("r-2.txt"))?, b"late");
        Ok(())
    }

    #[test]
    fn too_big_is_said_before_anything_is_written() -> Result<(), Box<dyn std::error::Error>> {
        let dir = Dir::new("fit")?;
        assert_eq!(will_not_fit(&dir.0, 10, Some(100)), None);
        assert_eq!(
            will_not_fit(&dir.0, 2_000_000, Some(1_000_000)).as_deref(),
            Some("more than --max-size 1.0 MB")
        );
        let why = will_not_fit(&dir.0, u64::MAX, None).unwrap_or_default();
        assert!(why.starts_with("more than the free space in "), "{why}");
        let why = will_not_fit(&dir.0.join("nowhere"), 1, None).unwrap_or_default();
        assert!(why.ends_with("No such file or directory"), "{why}");
        Ok(())
    }
}
