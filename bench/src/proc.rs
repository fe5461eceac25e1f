//! What /proc says about a server's processes: how many are alive, and the
//! CPU time they used (proc(5), /proc/PID/stat).
//!
//! A server runs in a process group of its own (the group id is its pid):
//! its forked children (lab 02) and workers (lab 05) are in it too.

use std::fs;

use nix::unistd::Pid;

/// Fields of /proc/PID/stat after the command name, which is in
/// parentheses and may hold spaces: state is field 3 of proc(5).
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

// Indices in stat_fields: proc(5) numbers from 1, and the first two
// fields (pid, comm) are before the slice.
const STATE: usize = 0; // (3)
const PGRP: usize = 2; // (5)
const UTIME: usize = 11; // (14)
const CSTIME: usize = 14; // (17): utime, stime, cutime, cstime are 14 to 17

/// The processes of the group: their stat fields.
fn members(group: Pid) -> Vec<Vec<String>> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let wanted = group.as_raw().to_string();
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| stat_fields(&pid))
        .filter(|f| f.get(PGRP) == Some(&wanted))
        .collect()
}

/// Processes of the group that have not exited (zombies do not count).
pub fn live_members(group: Pid) -> usize {
    members(group)
        .iter()
        .filter(|f| f.get(STATE).is_some_and(|s| s != "Z"))
        .count()
}

/// CPU time of the group so far, in seconds: user and system time of every
/// process in it, and of the children each has reaped (cutime, cstime).
/// /proc/PID/stat counts in clock ticks (sysconf(_SC_CLK_TCK)).
pub fn group_cpu_seconds(group: Pid) -> f64 {
    let ticks: u64 = members(group)
        .iter()
        .map(|f| {
            f.get(UTIME..=CSTIME)
                .map_or(0, |t| t.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        })
        .sum();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&t| t > 0)
        .unwrap_or(100);
    ticks as f64 / per_second as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_group_is_alive_and_uses_cpu() {
        let group = nix::unistd::getpgrp();
        assert!(live_members(group) >= 1);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(group_cpu_seconds(group) > 0.0);
    }
}
