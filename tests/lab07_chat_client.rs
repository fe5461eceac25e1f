//! Lab 07: the chat client, driven through its stdin against the chat server.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use common::{Interactive, Server, check_usage_error, run};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

fn start() -> Server {
    Server::start(SERVER, &["0", "--bind", "127.0.0.1"])
}

fn client(server: &Server, extra: &[&str]) -> Interactive {
    let port = server.port().to_string();
    let mut args = vec!["127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    Interactive::start(CLIENT, &args)
}

#[test]
fn the_commands_become_irc_lines_and_readable_output() {
    let server = start();
    let mut bob = client(&server, &["--nick", "bob"]);
    bob.expect("-!- "); // the welcome: bob is registered
    bob.type_line("/join #room");
    bob.expect("you joined #room");

    let port = server.port().to_string();
    let script = "/join #room\n\
                  hello room\n\
                  /msg bob hi bob\n\
                  /msgall hey all\n\
                  /who\n\
                  /whois bob\n\
                  /bogus\n\
                  /quit bye\n";
    let out = run(
        CLIENT,
        &["127.0.0.1", &port, "--nick", "alice", "--raw"],
        script.as_bytes(),
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    let text = out.stdout_text();
    // What went on the wire: IRC, as RFC 2812 writes it.
    for wire in [
        ">> NICK alice",
        ">> USER alice 0 * alice",
        ">> JOIN #room",
        ">> PRIVMSG #room :hello room",
        ">> PRIVMSG bob :hi bob",
        ">> PRIVMSG $* :hey all",
        ">> WHO *",
        ">> WHOIS bob",
        ">> QUIT bye",
    ] {
        assert!(text.contains(wire), "no {wire:?} in:\n{text}");
    }
    // What the person reads.
    for shown in [
        "-!- you joined #room",
        "[#room] alice: hello room",
        "-> *bob* hi bob",
        "[all] alice: hey all",
        "bob (bob@127.0.0.1)",
        "bob is bob@127.0.0.1",
        "bob is connected from 127.0.0.1:",
        "-!- end of /whois",
        "-!- unknown command /bogus",
    ] {
        assert!(text.contains(shown), "no {shown:?} in:\n{text}");
    }

    // And bob's client shows what alice did, as it happened.
    bob.expect("-!- alice joined #room");
    bob.expect("[#room] alice: hello room");
    bob.expect("*alice* hi bob");
    bob.expect("[all] alice: hey all");
    bob.expect("-!- alice quit (bye)");
    let (code, stderr, _) = bob.finish(true);
    assert_eq!(code, Some(0), "stderr: {stderr}");
}

#[test]
fn a_taken_nick_asks_for_another() {
    let server = start();
    let mut first = client(&server, &["--nick", "Carol"]);
    first.expect("-!- ");
    let mut second = client(&server, &["--nick", "carol"]);
    second.expect("nickname carol is taken: choose another with /nick NAME");
    second.type_line("/nick carol2");
    second.type_line("/whois carol2");
    second.expect("carol2 is carol");
    let (code, _, _) = second.finish(true);
    assert_eq!(code, Some(0));
}

#[test]
fn without_a_nick_the_client_asks_for_one() {
    let server = start();
    let mut anon = client(&server, &[]);
    anon.expect("choose a nickname: /nick NAME");
    anon.type_line("/who");
    anon.expect("choose a nickname first");
    anon.type_line("/nick dave");
    anon.type_line("/who");
    anon.expect("dave (dave@127.0.0.1)");
}

#[test]
fn the_client_answers_ping_and_reports_a_server_that_closes() {
    // A stand-in server: registers the client, pings it, then hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();
    let mut user = Interactive::start(CLIENT, &["127.0.0.1", &port, "--nick", "erin"]);
    let (conn, _) = listener.accept().expect("accept");
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut conn = conn;
    let mut line = String::new();
    for _ in 0..2 {
        line.clear();
        reader.read_line(&mut line).expect("NICK, USER");
    }
    conn.write_all(b":test 001 erin :Welcome to the test, erin\r\nPING :token42\r\n")
        .expect("write");
    user.expect("Welcome to the test, erin");
    line.clear();
    reader.read_line(&mut line).expect("PONG");
    assert_eq!(line, "PONG token42\r\n");
    drop(reader);
    drop(conn);
    let (code, stderr, _) = user.finish(false);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!("server 127.0.0.1:{port} closed the connection\n")
    );
}

#[test]
fn the_client_checks_its_arguments() {
    let out = run(CLIENT, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout_text().starts_with("usage: client "));
    check_usage_error(CLIENT, &["--nick"], "--nick needs a value");
    check_usage_error(CLIENT, &["127.0.0.1", "port"], "invalid PORT 'port'");
}
