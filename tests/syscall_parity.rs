//! Syscall parity: every lab with a C twin (labs/NN-name/server.c) makes the
//! same system calls in Rust and in C, the calls that are the lesson, as
//! tools/trace records them under strace and tools/trace.awk normalises
//! them. A new lab takes part as soon as it has a server.c.
//!
//! The Rust programs are this build's (target/debug); the C twins are the
//! ones `make c` built in the lab folders (`make test` runs it first).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use common::run;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tool() -> String {
    root().join("tools/trace").to_string_lossy().into_owned()
}

/// The labs that have a C twin, by their folder name (01-echo).
fn labs_with_a_c_twin() -> Vec<String> {
    let mut labs: Vec<String> = fs::read_dir(root().join("labs"))
        .expect("read labs/")
        .flatten()
        .filter(|entry| entry.path().join("server.c").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    labs.sort();
    labs
}

/// Where cargo put this build's programs: this test runs as
/// target/debug/deps/syscall_parity-HASH, the programs are in target/debug.
fn cargo_bins() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

#[test]
fn every_lab_with_a_c_twin_makes_the_same_system_calls() {
    let strace = Command::new("strace").arg("-V").output();
    assert!(
        strace.is_ok_and(|out| out.status.success()),
        "strace is needed to compare the system calls: apt-get install strace (.ci/run does)"
    );
    let labs = labs_with_a_c_twin();
    assert!(!labs.is_empty(), "no lab has a C twin (labs/*/server.c)");
    let bins = cargo_bins().to_string_lossy().into_owned();
    // One thread per lab: each session takes a fraction of a second, but a
    // lab whose session does not fit fails only after tools/trace's bound.
    let runs: Vec<_> = labs
        .into_iter()
        .map(|lab| {
            let (tool, bins) = (tool(), bins.clone());
            thread::spawn(move || {
                let out = run("bash", &[&tool, "--check", "--rust-bins", &bins, &lab], b"");
                (lab, out)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for handle in runs {
        let (lab, out) = handle.join().expect("a tools/trace run");
        if out.code() != Some(0) {
            failures.push(format!(
                "{lab}: tools/trace exited {:?}\n{}{}",
                out.code(),
                out.stdout_text(),
                out.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the Rust and C programs do not make the same system calls \
         (see them with `make trace LAB=NN-name`):\n\n{}",
        failures.join("\n")
    );
}

// ---- the rules themselves, on sessions made up for the purpose ---------------

/// A made-up strace -ff session of lab 02's Rust server: listener on port
/// 46777, one client from port 43554 served by child 101. It holds what
/// the rules must drop (the runtime's start-up, the log on stdout, a debug
/// build's fcntl before close) and what differs from run to run.
const RUST_PARENT: &str = r#"execve("/work/target/debug/fork-server", ["fork-server", "0", "--bind", "127.0.0.1"], 0x7ffe81e8efe8 /* 35 vars */) = 0
openat(AT_FDCWD</tmp>, "/proc/self/maps", O_RDONLY|O_CLOEXEC) = 3</proc/100/maps>
read(3</proc/100/maps>, "56358fbf3000-56358fc13000 r--p 0"..., 1024) = 1024
close(3</proc/100/maps>)              = 0
poll([{fd=0</dev/null<char 1:3>>, events=0}, {fd=1<pipe:[28491]>, events=0}, {fd=2<pipe:[28492]>, events=0}], 3, 0) = 0 (Timeout)
rt_sigaction(SIGPIPE, {sa_handler=SIG_IGN, sa_mask=[PIPE], sa_flags=SA_RESTORER|SA_RESTART, sa_restorer=0x7f159868b050}, {sa_handler=SIG_DFL, sa_mask=[], sa_flags=0}, 8) = 0
sigaltstack({ss_sp=0x7f1598858000, ss_flags=0, ss_size=8192}, NULL) = 0
rt_sigaction(SIGCHLD, {sa_handler=0x56358fc50e20, sa_mask=[], sa_flags=SA_RESTORER, sa_restorer=0x7f159868b050}, {sa_handler=SIG_DFL, sa_mask=[], sa_flags=0}, 8) = 0
socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3<TCP:[28491257]>
setsockopt(3<TCP:[28491257]>, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
bind(3<TCP:[28491257]>, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 128) = 0
listen(3<TCP:[127.0.0.1:46777]>, 4096)  = 0
getsockname(3<TCP:[127.0.0.1:46777]>, {sa_family=AF_INET, sin_port=htons(46777), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 0
write(1<pipe:[28491]>, "listening on 127.0.0.1:46777\n", 29) = 29
accept(3<TCP:[127.0.0.1:46777]>, NULL, NULL) = 4<TCP:[127.0.0.1:46777->127.0.0.1:43554]>
getpeername(4<TCP:[127.0.0.1:46777->127.0.0.1:43554]>, {sa_family=AF_INET, sin_port=htons(43554), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 0
clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f159864ca50) = 101
close(4<TCP:[127.0.0.1:46777->127.0.0.1:43554]>) = 0
accept(3<TCP:[127.0.0.1:46777]>, NULL, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)
--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=101, si_uid=0, si_status=0, si_utime=0, si_stime=0} ---
rt_sigreturn({mask=[]})                 = -1 EINTR (Interrupted system call)
wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], WNOHANG, NULL) = 101
wait4(-1, 0x7ffc5d8781b0, WNOHANG, NULL) = -1 ECHILD (No child processes)
accept(3<TCP:[127.0.0.1:46777]>, NULL, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)
--- SIGTERM {si_signo=SIGTERM, si_code=SI_USER, si_pid=15970, si_uid=0} ---
fcntl(3<TCP:[127.0.0.1:46777]>, F_GETFD) = 0
close(3<TCP:[127.0.0.1:46777]>)       = 0
exit_group(0)                           = ?
+++ exited with 0 +++
"#;

const RUST_CHILD: &str = r#"close(3<TCP:[127.0.0.1:46777]>)       = 0
rt_sigaction(SIGINT, {sa_handler=SIG_IGN, sa_mask=[], sa_flags=SA_RESTORER, sa_restorer=0x7f159868b050}, {sa_handler=0x56358fc50e20, sa_mask=[], sa_flags=SA_RESTORER, sa_restorer=0x7f159868b050}, 8) = 0
prctl(PR_SET_NAME, "server:43554")      = 0
read(4<TCP:[127.0.0.1:46777->127.0.0.1:43554]>, "hello\n", 16384) = 6
write(4<TCP:[127.0.0.1:46777->127.0.0.1:43554]>, "hello\n", 6) = 6
read(4<TCP:[127.0.0.1:46777->127.0.0.1:43554]>, "", 16384) = 0
write(1<pipe:[28491]>, "[pid 101] 127.0.0.1:43554 disconnected\n", 39) = 39
fcntl(4<TCP:[127.0.0.1:46777->127.0.0.1:43554]>, F_GETFD) = 0
close(4<TCP:[127.0.0.1:46777->127.0.0.1:43554]>) = 0
exit_group(0)                           = ?
+++ exited with 0 +++
"#;

/// The same session of the C twin: other pids, port 4242, client port 50000,
/// other inodes and pointers, descriptors one higher (as if something held
/// descriptor 3), the address's own length in bind, other padding, and none
/// of the Rust runtime's calls.
const C_PARENT: &str = r#"execve("/work/labs/02-fork/server-c", ["server-c", "0", "--bind", "127.0.0.1"], 0x7ffd84d7f558 /* 35 vars */) = 0
rt_sigaction(SIGCHLD, {sa_handler=0x5601c0a6b3a0, sa_mask=[], sa_flags=SA_RESTORER, sa_restorer=0x7f3104a0b050}, NULL, 8) = 0
socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 4<TCP:[3012]>
setsockopt(4<TCP:[3012]>, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
bind(4<TCP:[3012]>, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
listen(4<TCP:[127.0.0.1:4242]>, 4096)   = 0
getsockname(4<TCP:[127.0.0.1:4242]>, {sa_family=AF_INET, sin_port=htons(4242), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 0
write(1<pipe:[777]>, "listening on 127.0.0.1:4242\n", 28) = 28
accept(4<TCP:[127.0.0.1:4242]>, {sa_family=AF_INET, sin_port=htons(50000), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 5<TCP:[127.0.0.1:4242->127.0.0.1:50000]>
clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f31049cca10) = 7
close(5<TCP:[127.0.0.1:4242->127.0.0.1:50000]>) = 0
accept(4<TCP:[127.0.0.1:4242]>, NULL, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)
--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=7, si_uid=0, si_status=0, si_utime=1, si_stime=2} ---
wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], WNOHANG, NULL) = 7
wait4(-1, 0x7fff7c6e24c8, WNOHANG, NULL) = -1 ECHILD (No child processes)
accept(4<TCP:[127.0.0.1:4242]>, NULL, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)
--- SIGTERM {si_signo=SIGTERM, si_code=SI_USER, si_pid=31, si_uid=0} ---
close(4<TCP:[127.0.0.1:4242]>)        = 0
exit_group(0)                           = ?
+++ exited with 0 +++
"#;

const C_CHILD: &str = r#"close(4<TCP:[127.0.0.1:4242]>)        = 0
read(5<TCP:[127.0.0.1:4242->127.0.0.1:50000]>, "hello\n", 16384) = 6
write(5<TCP:[127.0.0.1:4242->127.0.0.1:50000]>, "hello\n", 6) = 6
read(5<TCP:[127.0.0.1:4242->127.0.0.1:50000]>, "", 16384) = 0
close(5<TCP:[127.0.0.1:4242->127.0.0.1:50000]>) = 0
exit_group(0)                           = ?
+++ exited with 0 +++
"#;

/// Writes a recorded session: `port`, and the parent's and child's files.
fn record(dir: &Path, port: u16, (parent, child): (u32, u32), calls: (&str, &str)) {
    fs::create_dir_all(dir).expect("create the session folder");
    fs::write(dir.join("port"), format!("{port}\n")).expect("write port");
    fs::write(dir.join(format!("server.{parent}")), calls.0).expect("write the parent");
    fs::write(dir.join(format!("server.{child}")), calls.1).expect("write the child");
}

/// Compares two made-up sessions with tools/trace --compare.
fn compare(name: &str, c_child: &str) -> common::Run {
    compare_at(name, c_child, None)
}

/// As [`compare`], laid out for `width` columns (TRACE_WIDTH) if given.
fn compare_at(name: &str, c_child: &str, width: Option<&str>) -> common::Run {
    let dir = std::env::temp_dir().join(format!("parity-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    record(
        &dir.join("rust"),
        46777,
        (100, 101),
        (RUST_PARENT, RUST_CHILD),
    );
    record(&dir.join("c"), 4242, (6, 7), (C_PARENT, c_child));
    let (rust, c) = (dir.join("rust"), dir.join("c"));
    let trace_width = format!("TRACE_WIDTH={}", width.unwrap_or(""));
    let out = run(
        "env",
        &[
            &trace_width,
            "bash",
            &tool(),
            "--check",
            "--compare",
            &rust.to_string_lossy(),
            &c.to_string_lossy(),
        ],
        b"",
    );
    let _ = fs::remove_dir_all(&dir);
    out
}

#[test]
fn the_rules_keep_the_lesson_and_drop_what_may_differ() {
    let out = compare("same", C_CHILD);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout_text(), out.stderr);
    // The parent's 16 lesson calls and lines, the child's 6: C's accept
    // with the peer's address matches Rust's accept and getpeername.
    assert_eq!(
        out.stdout_text(),
        "recorded: Rust and C make the same 22 calls\n"
    );
}

#[test]
fn a_missing_call_is_a_difference_and_is_shown() {
    // The C child forgets to close the listening socket.
    let forgetful = C_CHILD.replacen("close(4<TCP:[127.0.0.1:4242]>)        = 0\n", "", 1);
    let out = compare("differ", &forgetful);
    assert_eq!(out.code(), Some(1), "{}", out.stdout_text());
    let text = out.stdout_text();
    assert!(text.contains("recorded: Rust and C DIFFER"), "{text}");
    assert!(
        text.contains("-close(#1<TCP:[127.0.0.1:PORT]>) = 0"),
        "the unified diff names the call only Rust makes: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("close(#1<TCP:[127.0.0.1:PORT]>) = 0") && l.ends_with('<')),
        "the side-by-side view marks it `<`: {text}"
    );
}

#[test]
fn in_80_columns_the_calls_are_one_column_and_nothing_is_cut() {
    // The same forgetful C child, for a terminal 80 columns wide.
    let forgetful = C_CHILD.replacen("close(4<TCP:[127.0.0.1:4242]>)        = 0\n", "", 1);
    let out = compare_at("narrow", &forgetful, Some("80"));
    assert_eq!(out.code(), Some(1), "{}", out.stdout_text());
    let text = out.stdout_text();
    let view = text
        .split("recorded: Rust and C DIFFER")
        .next()
        .unwrap_or("");
    assert!(
        view.lines().all(|l| l.chars().count() <= 80),
        "a line is wider than 80 columns: {text}"
    );
    assert!(
        view.lines()
            .any(|l| l == "< close(#1<TCP:[127.0.0.1:PORT]>) = 0"),
        "the call only Rust makes is marked `<` at the start: {text}"
    );
    // A long call goes on over the next line, indented, not cut: the
    // parent's getsockname, whole once its pieces are joined.
    assert!(
        view.contains("  getsockname(#1<TCP:[127.0.0.1:PORT]>, {sa_family=AF_INET,\n")
            && view.contains("sin_addr=inet_addr(\"127.0.0.1\")}, [128 => 16]) = 0\n"),
        "{text}"
    );
}
