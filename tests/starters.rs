//! The starters (labs/NN-name/starter/, `make exercise`): each is its lab's
//! reference program cut at its `starter:` marks by tools/starter.awk. A
//! committed starter must be what the cut gives today (`make starters`
//! writes them again), so that a change to a lab cannot leave its starter
//! behind; and each must build, run, and say what is left to write.

mod common;

use std::fs;
use std::path::Path;

use common::{c_twin, run};

#[test]
fn every_starter_is_what_its_reference_cuts_to() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for lab in fs::read_dir(root.join("labs")).expect("labs/") {
        let starters = lab.expect("a lab").path().join("starter");
        let Ok(files) = fs::read_dir(&starters) else {
            continue;
        };
        for file in files {
            let starter = file.expect("a starter").path();
            let name = starter.file_name().unwrap().to_string_lossy().into_owned();
            let lang = match starter.extension().and_then(|e| e.to_str()) {
                Some("rs") => "rust",
                Some("c") => "c",
                _ => continue, // what make built from it
            };
            let lab = starters.parent().unwrap();
            let reference = lab.join(&name);
            let lab_name = lab.file_name().unwrap().to_string_lossy().into_owned();
            let cut = run(
                "awk",
                &[
                    "-v",
                    &format!("lab={lab_name}"),
                    "-v",
                    &format!("lang={lang}"),
                    "-v",
                    &format!("answer={name}"),
                    "-f",
                    &root.join("tools/starter.awk").to_string_lossy(),
                    &reference.to_string_lossy(),
                ],
                b"",
            );
            assert_eq!(cut.code(), Some(0), "{}", cut.stderr);
            let committed = fs::read(&starter).expect("the starter");
            assert!(
                cut.stdout == committed,
                "{} is not what {} cuts to today: run `make starters`",
                starter.display(),
                reference.display()
            );
            assert!(
                cut.stdout_text().contains("TODO "),
                "{} has no gap",
                starter.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 2, "only {seen} starters found");
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
