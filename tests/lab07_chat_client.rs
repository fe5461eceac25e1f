//! Lab 07: the chat client, driven through its stdin against the chat server.
//!
//! Every test runs twice, with one body: the Rust client against the Rust
//! server (`NAME::rust`), and the C client against the C server (`NAME::c`,
//! labs/07-chat/client-c and server-c, built by `make c`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use common::{
    Interactive, Server, Twin, c_twin, check_twins_agree_on_arguments, check_usage_error, run,
};

/// Lab 07's two programs, in one implementation or the other.
struct Chat {
    server: String,
    client: String,
}

impl Chat {
    fn of(twin: Twin) -> Chat {
        match twin {
            Twin::Rust => Chat {
                server: env!("CARGO_BIN_EXE_chat-server").to_string(),
                client: env!("CARGO_BIN_EXE_chat-client").to_string(),
            },
            Twin::C => Chat {
                server: c_twin("07-chat", "server"),
                client: c_twin("07-chat", "client"),
            },
        }
    }

    fn start(&self) -> Server {
        Server::start(&self.server, &["0", "--bind", "127.0.0.1"])
    }

    fn client(&self, server: &Server, extra: &[&str]) -> Interactive {
        let port = server.port().to_string();
        let mut args = vec!["127.0.0.1", port.as_str()];
        args.extend_from_slice(extra);
        Interactive::start(&self.client, &args)
    }
}

crate::for_rust_and_c!(
    the_commands_become_irc_lines_and_readable_output,
    a_taken_nick_asks_for_another,
    without_a_nick_the_client_asks_for_one,
    the_client_answers_ping_and_reports_a_server_that_closes,
    the_client_checks_its_arguments,
);

fn the_commands_become_irc_lines_and_readable_output(twin: Twin) {
    let chat = Chat::of(twin);
    let server = chat.start();
    let mut bob = chat.client(&server, &["--nick", "bob"]);
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
        &chat.client,
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

fn a_taken_nick_asks_for_another(twin: Twin) {
    let chat = Chat::of(twin);
    let server = chat.start();
    let mut first = chat.client(&server, &["--nick", "Carol"]);
    first.expect("-!- ");
    let mut second = chat.client(&server, &["--nick", "carol"]);
    second.expect("nickname carol is taken: choose another with /nick NAME");
    second.type_line("/nick carol2");
    second.type_line("/whois carol2");
    second.expect("carol2 is carol");
    let (code, _, _) = second.finish(true);
    assert_eq!(code, Some(0));
}

fn without_a_nick_the_client_asks_for_one(twin: Twin) {
    let chat = Chat::of(twin);
    let server = chat.start();
    let mut anon = chat.client(&server, &[]);
    anon.expect("choose a nickname: /nick NAME");
    anon.type_line("/who");
    anon.expect("choose a nickname first");
    anon.type_line("/nick dave");
    anon.type_line("/who");
    anon.expect("dave (dave@127.0.0.1)");
}

fn the_client_answers_ping_and_reports_a_server_that_closes(twin: Twin) {
    let chat = Chat::of(twin);
    // A stand-in server: registers the client, pings it, then hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();
    let mut user = Interactive::start(&chat.client, &["127.0.0.1", &port, "--nick", "erin"]);
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

fn the_client_checks_its_arguments(twin: Twin) {
    let chat = Chat::of(twin);
    let out = run(&chat.client, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout_text().starts_with("usage: client "));
    check_usage_error(&chat.client, &["--nick"], "--nick needs a value");
    check_usage_error(&chat.client, &["127.0.0.1", "port"], "invalid PORT 'port'");
}

/// `--help` and every mistake on the command line: the same bytes on
/// stdout and stderr, and the same exit status, from both clients; and
/// the same failure to connect where nothing listens.
#[test]
fn both_clients_agree_on_their_arguments() {
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port().to_string();
    drop(closed); // nothing listens there now
    check_twins_agree_on_arguments(
        &Chat::of(Twin::Rust).client,
        &Chat::of(Twin::C).client,
        &[
            &["--help"],
            &["--raw", "-h"],
            &["--nick"],
            &["--bogus"],
            &["-x", "--nick", "a"],
            &["127.0.0.1", "port"],
            &["127.0.0.1", "70000"],
            &["127.0.0.1", ""],
            &["127.0.0.1", "-1"],
            &["127.0.0.1", "4242", "extra"],
            &["127.0.0.1", "4242", "--what"],
            &["127.0.0.1", &port, "--nick", "x"],
            &["127.0.0.1", &port, "--nick=x", "--raw"],
        ],
    );
}
