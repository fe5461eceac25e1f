//! Lab 02: the forking echo server, driven over real sockets; its children
//! are read from /proc.
//!
//! Every test runs twice, with one body: against the Rust server
//! (`NAME::rust`) and against its C twin (`NAME::c`, labs/02-fork/server-c,
//! built by `make c`): the C twin is checked, not assumed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    PATIENCE, Server, Twin, check_server_arguments, check_twins_agree_on_arguments,
    children_states, echo, open_descriptors, program, reset, zombies,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Lab 02's server in one implementation or the other.
fn server_program(twin: Twin) -> String {
    program(twin, "02-fork", "server", env!("CARGO_BIN_EXE_fork-server"))
}

fn start(bin: &str, extra: &[&str]) -> Server {
    let mut args = vec!["0", "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    Server::start(bin, &args)
}

/// The pid of the child serving `client`, from its `[pid N] serving ADDR` line.
fn child_of(server: &mut Server, client: &TcpStream) -> i32 {
    let addr = client.local_addr().expect("client address");
    let line = server.expect(&format!(" serving {addr}"));
    line.strip_prefix("[pid ")
        .and_then(|rest| rest.split(']').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// The sockets process `pid` holds: the targets of its /proc/PID/fd links
/// that are sockets, `socket:[INODE]`, one per open socket.
fn sockets_of(pid: i32) -> Vec<String> {
    open_descriptors(pid)
        .into_iter()
        .filter_map(|fd| std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with("socket:"))
        .collect()
}

crate::for_rust_and_c!(
    the_child_closes_the_listening_socket,
    a_child_that_exits_is_reaped_at_once,
    fifty_clients_are_served_at_once_and_all_are_reaped,
    without_reaping_children_stay_zombies,
    a_killed_child_is_reported_and_disturbs_nobody,
    sigterm_stops_the_parent_but_children_finish_their_clients,
    stopping_counts_only_the_children_still_serving,
    a_reset_does_not_disturb_the_server,
    the_server_shares_the_common_interface,
);

/// Hint: in the child, close(2) the listening socket before serving: it only
/// serves its connection; the parent alone accepts (README.md, "The calls").
fn the_child_closes_the_listening_socket(twin: Twin) {
    let server_bin = server_program(twin);
    let mut server = start(&server_bin, &[]);
    // Before any client, the server's one socket is the listening one.
    let listening = sockets_of(server.pid());
    assert_eq!(
        listening.len(),
        1,
        "sockets before any client: {listening:?}"
    );
    let mut client = server.connect();
    let child = child_of(&mut server, &client);
    // The echo comes from serving, which the child reaches after closing.
    assert_eq!(echo(&mut client, b"hi\n"), b"hi\n");
    let held = sockets_of(child);
    assert!(
        !held.contains(&listening[0]),
        "child {child} still holds the listening socket {}: its sockets {held:?}",
        listening[0]
    );
}

/// Hint: when SIGCHLD interrupts accept(2) (EINTR), call waitpid(2) with
/// WNOHANG in a loop until no exited child is left (README.md, "Questions" 2).
fn a_child_that_exits_is_reaped_at_once(twin: Twin) {
    let server_bin = server_program(twin);
    let mut server = start(&server_bin, &[]);
    let mut client = server.connect();
    let child = child_of(&mut server, &client);
    let addr = client.local_addr().expect("client address");
    assert_eq!(echo(&mut client, b"bye\n"), b"bye\n");
    drop(client);
    server.expect(&format!("[pid {child}] {addr} disconnected"));
    // Reaping follows the child's exit at once: two seconds are plenty, and
    // a zombie left that long is one nobody will reap.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut states = children_states(server.pid());
    while states.iter().any(|(pid, _)| *pid == child) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        states = children_states(server.pid());
    }
    assert!(
        !states.iter().any(|(pid, _)| *pid == child),
        "child {child} was not reaped (Z: a zombie): {states:?}"
    );
    server.expect(&format!("child {child} exited (status 0)"));
}

/// Needs: a_child_that_exits_is_reaped_at_once
/// Hint: one fork(2) per accepted client; the parent close(2)s its copy of
/// the connection, and reaps each child that exits (README.md, "The calls").
fn fifty_clients_are_served_at_once_and_all_are_reaped(twin: Twin) {
    let server_bin = server_program(twin);
    let mut server = start(&server_bin, &[]);
    let mut clients: Vec<TcpStream> = (0..50).map(|_| server.connect()).collect();
    // Every client gets its echo while all 50 stay connected: impossible
    // for lab 01's iterative server, which serves one at a time.
    for (i, client) in clients.iter_mut().enumerate() {
        let line = format!("client {i}\n");
        assert_eq!(echo(client, line.as_bytes()), line.as_bytes());
    }
    let serving = children_states(server.pid()).len();
    assert_eq!(serving, 50, "one child per client");

    drop(clients);
    for _ in 0..50 {
        server.expect(" exited (status 0)");
    }
    assert_eq!(
        zombies(server.pid()),
        0,
        "{:?}",
        children_states(server.pid())
    );
    assert!(children_states(server.pid()).is_empty());
}

/// Hint: with --no-reap, no waitpid(2) while serving: the exited children stay
/// zombies (README.md, "What to observe").
fn without_reaping_children_stay_zombies(twin: Twin) {
    let server_bin = server_program(twin);
    let mut server = start(&server_bin, &["--no-reap"]);
    for _ in 0..3 {
        let mut client = server.connect();
        assert_eq!(echo(&mut client, b"hi\n"), b"hi\n");
        drop(client);
        server.expect(" disconnected");
    }
    // Nothing announces that a child has become a zombie: look, bounded.
    let deadline = Instant::now() + PATIENCE;
    while zombies(server.pid()) < 3 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        zombies(server.pid()),
        3,
        "{:?}",
        children_states(server.pid())
    );
    assert!(!server.log_now().iter().any(|l| l.contains("exited")));
}

/// Needs: a_child_that_exits_is_reaped_at_once
/// Hint: waitpid(2) reports a child killed by a signal (WIFSIGNALED,
/// WTERMSIG): log it, and go on accepting (README.md, "What to observe").
fn a_killed_child_is_reported_and_disturbs_nobody(twin: Twin) {
    let server_bin = server_program(twin);
    let mut server = start(&server_bin, &[]);
    let mut first = server.connect();
    let victim = server.connect();
    let mut last = server.connect();
    let victim_pid = child_of(&mut server, &victim);

    kill(Pid::from_raw(victim_pid), Signal::SIGKILL).expect("kill the child");
    server.expect(&format!("child {victim_pid} killed by signal 9 (Killed)"));

    // The victim's connection ends (the kernel closes a dead process's sockets).
    let mut victim = victim;
    let mut buf = [0u8; 1];
    assert_eq!(victim.read(&mut buf).expect("EOF from the dead child"), 0);
    // The others, and new clients, are still served.
    assert_eq!(echo(&mut first, b"one\n"), b"one\n");
    assert_eq!(echo(&mut last, b"three\n"), b"three\n");
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"four\n"), b"four\n");
    assert!(server.is_running());
}

/// Needs: the_child_closes_the_listening_socket
/// Hint: on SIGTERM the parent leaves its accept(2) loop; each child goes on
/// serving (SIGTERM's default in the child) and holds no listening socket.
fn sigterm_stops_the_parent_but_children_finish_their_clients(twin: Twin) {
    let server_bin = server_program(twin);
    let mut server = start(&server_bin, &[]);
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"before\n"), b"before\n");

    kill(Pid::from_raw(server.pid()), Signal::SIGTERM).expect("signal the server");
    server.expect("shutting down; 1 children still serving");
    let status = server.wait();
    assert_eq!(status.code(), Some(0));

    // The orphaned child still serves its client, then exits.
    assert_eq!(echo(&mut client, b"after\n"), b"after\n");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("EOF from the child");
    assert!(rest.is_empty());
    // And the port is free for a new server: no child kept the listener.
    let port = server.port().to_string();
    let again = Server::start(&server_bin, &[&port, "--bind", "127.0.0.1"]);
    let mut client = again.connect();
    assert_eq!(echo(&mut client, b"new\n"), b"new\n");
}

/// Needs: a_child_that_exits_is_reaped_at_once
/// Hint: a child that has exited is not serving, even a zombie: before
/// counting the children left, reap those that exited (README.md, "Answers",
/// observations 3 and 6).
fn stopping_counts_only_the_children_still_serving(twin: Twin) {
    let server_bin = server_program(twin);
    let mut server = start(&server_bin, &["--no-reap"]);
    let mut staying = server.connect();
    let stayer = child_of(&mut server, &staying);
    let mut gone = Vec::new();
    for _ in 0..2 {
        let mut client = server.connect();
        gone.push(child_of(&mut server, &client));
        assert_eq!(echo(&mut client, b"hi\n"), b"hi\n");
        drop(client);
        server.expect(" disconnected");
    }
    // Nothing announces that a child has become a zombie: look, bounded.
    let deadline = Instant::now() + PATIENCE;
    while zombies(server.pid()) < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        zombies(server.pid()),
        2,
        "{:?}",
        children_states(server.pid())
    );

    kill(Pid::from_raw(server.pid()), Signal::SIGTERM).expect("signal the server");
    // Two zombies and one child serving: one is still serving, not three.
    let line = server.expect("shutting down;");
    assert_eq!(line, "shutting down; 1 children still serving");
    assert_eq!(server.wait().code(), Some(0));
    for pid in gone {
        assert!(
            server
                .log_now()
                .contains(&format!("child {pid} exited (status 0)")),
            "zombie {pid} not reaped before the count: {:?}",
            server.log_now()
        );
    }
    assert!(
        !server
            .log_now()
            .iter()
            .any(|l| l.contains(&format!("child {stayer} "))),
        "the child still serving was reported gone: {:?}",
        server.log_now()
    );
    // The one still serving goes on to the end.
    assert_eq!(echo(&mut staying, b"after\n"), b"after\n");
}

/// Needs: a_child_that_exits_is_reaped_at_once
/// Hint: read(2) failing with ECONNRESET ends that child only; the parent
/// reaps it and accepts the next client.
fn a_reset_does_not_disturb_the_server(twin: Twin) {
    let server_bin = server_program(twin);
    let mut server = start(&server_bin, &[]);
    let mut client = server.connect();
    client.write_all(b"unread echo\n").expect("write");
    let pid = child_of(&mut server, &client);
    reset(client);
    server.expect(&format!("child {pid} exited"));
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"next\n"), b"next\n");
}

/// Hint: the arguments every server takes: PORT, --bind ADDR, --help; a bad
/// one prints usage on stderr and exits 2.
fn the_server_shares_the_common_interface(twin: Twin) {
    let server_bin = server_program(twin);
    check_server_arguments(&server_bin);
}

#[test]
fn rust_and_c_agree_on_arguments() {
    let cases: &[&[&str]] = &[
        &["--help"],
        &["--no-reap", "-h"],
        &["abc"],
        &["-1"],
        &["--bogus"],
        &["--no-reap=yes"],
        &["--no-reap", "4242", "x"],
        &["--bind"],
        &["--bind", "--no-reap"],
        &["--bind", "nowhere", "--no-reap"],
        &["--bind", "nowhere", "abc"],
        // bind(2) to an address this machine does not have: no packet is sent.
        &["0", "--bind", "192.0.2.1", "--no-reap"],
    ];
    check_twins_agree_on_arguments(&server_program(Twin::Rust), &server_program(Twin::C), cases);
}
