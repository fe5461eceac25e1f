//! The starters (labs/NN-name/starter/, `make exercise`): each is its lab's
//! reference program changed by a patch beside it (tools/starter). A
//! committed starter must be what its reference and patch give today
//! (`make starters` writes them again), so that a change to a lab cannot
//! leave its starter behind; and each must build, run, and say what is
//! left to write.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{Server, c_twin, run};

/// Every file under `dir`, its subfolders too (a lab in steps has
/// starter/step1/, and lab 07's steps an irc/ folder each).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn every_starter_is_what_its_reference_and_patch_give() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = run(
        "bash",
        &[&root.join("tools/starter").to_string_lossy(), "check"],
        b"",
    );
    assert_eq!(check.code(), Some(0), "{}", check.stderr);
    let seen: usize = check
        .stdout_text()
        .trim_end()
        .strip_suffix(" starters checked")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(seen >= 18, "only {seen} starters found");
    // Each patch leaves gaps to write, each said by a TODO.
    for lab in fs::read_dir(root.join("labs")).expect("labs/") {
        for path in files_under(&lab.expect("a lab").path().join("starter")) {
            if path.extension().is_some_and(|e| e == "patch") {
                let patch = fs::read_to_string(&path).expect("the patch");
                assert!(
                    patch
                        .lines()
                        .any(|l| l.starts_with('+') && l.contains("TODO ")),
                    "{} leaves no gap",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn a_starter_runs_and_says_what_is_left_to_write() {
    // A client's starter needs a server to connect to: this listener's
    // backlog completes the connection without an accept(2).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let server_args: &[&str] = &["0", "--bind", "127.0.0.1"];
    let client_args: &[&str] = &["127.0.0.1", &port];
    let socket_todo = "TODO socket(2), bind(2), listen(2): not written yet\n";
    let poll_todo = "TODO poll(2) on stdin and the socket: not written yet\n";
    let select_todo = "TODO socket(2), bind(2), listen(2), O_NONBLOCK: not written yet\n";
    let udp_server_todo = "TODO socket(2), bind(2): not written yet\n";
    // Lab 06's client needs no server: it stops before its first datagram.
    let udp_client_todo = "TODO socket(2), connect(2) with --connect: not written yet\n";
    for (program, args, todo) in [
        (
            env!("CARGO_BIN_EXE_starter-echo-server").to_string(),
            server_args,
            socket_todo,
        ),
        (
            c_twin("01-echo/starter", "server"),
            server_args,
            socket_todo,
        ),
        (
            env!("CARGO_BIN_EXE_starter-poll-server").to_string(),
            server_args,
            socket_todo,
        ),
        (
            c_twin("04-poll/starter", "server"),
            server_args,
            socket_todo,
        ),
        (
            env!("CARGO_BIN_EXE_starter-poll-client").to_string(),
            client_args,
            poll_todo,
        ),
        (c_twin("04-poll/starter", "client"), client_args, poll_todo),
        (
            env!("CARGO_BIN_EXE_starter-select-server").to_string(),
            server_args,
            select_todo,
        ),
        (
            c_twin("03-select/starter", "server"),
            server_args,
            select_todo,
        ),
        (
            env!("CARGO_BIN_EXE_starter-epoll-server").to_string(),
            server_args,
            socket_todo,
        ),
        (
            c_twin("05-epoll/starter", "server"),
            server_args,
            socket_todo,
        ),
        (
            env!("CARGO_BIN_EXE_starter-fork-server").to_string(),
            server_args,
            socket_todo,
        ),
        (
            c_twin("02-fork/starter", "server"),
            server_args,
            socket_todo,
        ),
        (
            env!("CARGO_BIN_EXE_starter-udp-server").to_string(),
            server_args,
            udp_server_todo,
        ),
        (
            c_twin("06-udp/starter", "server"),
            server_args,
            udp_server_todo,
        ),
        (
            env!("CARGO_BIN_EXE_starter-udp-client").to_string(),
            client_args,
            udp_client_todo,
        ),
        (
            c_twin("06-udp/starter", "client"),
            client_args,
            udp_client_todo,
        ),
        (
            env!("CARGO_BIN_EXE_starter-chat-step1-server").to_string(),
            server_args,
            socket_todo,
        ),
        (
            c_twin("07-chat/starter/step1", "server"),
            server_args,
            socket_todo,
        ),
    ] {
        let out = run(&program, args, b"");
        assert_eq!(out.code(), Some(1), "{program}: {}", out.stderr);
        assert_eq!(out.stderr, todo, "{program}");
    }
    for program in [
        env!("CARGO_BIN_EXE_starter-echo-client").to_string(),
        c_twin("01-echo/starter", "client"),
    ] {
        // It stops at its first gap, before any connection.
        let out = run(&program, &["127.0.0.1", "4242"], b"hello\n");
        assert_eq!(out.code(), Some(1), "{program}: {}", out.stderr);
        assert_eq!(
            out.stderr, "TODO socket(2), connect(2): not written yet\n",
            "{program}"
        );
    }
}

#[test]
fn the_chat_starter_of_step_2_listens_and_stops_at_the_first_command() {
    // Step 2 has the loop given whole: the server listens and accepts, and
    // the first NICK reaches a gap.
    for program in [
        env!("CARGO_BIN_EXE_starter-chat-step2-server").to_string(),
        c_twin("07-chat/starter/step2", "server"),
    ] {
        let mut server = Server::start(&program, &["0", "--bind", "127.0.0.1"]);
        let mut irc = server.connect();
        irc.write_all(b"NICK alice\r\n").expect("write");
        assert_eq!(
            server.expect_err("TODO"),
            "TODO NICK: not written yet",
            "{program}"
        );
        assert_eq!(server.wait().code(), Some(1), "{program}");
    }
}
