//! Lab 07: the chat client, driven through its stdin against the chat server.
//!
//! Every test runs twice, with one body: the Rust client against the Rust
//! server (`NAME::rust`), and the C client against the C server (`NAME::c`,
//! labs/07-chat/client-c and server-c, built by `make c`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc::channel;
use std::thread;
use std::time::Duration;

use common::{
    Interactive, Server, Twin, check_twins_agree_on_arguments, check_usage_error, program, run,
};

/// Lab 07's two programs, in one implementation or the other.
struct Chat {
    server: String,
    client: String,
}

impl Chat {
    fn of(twin: Twin) -> Chat {
        Chat {
            server: program(twin, "07-chat", "server", env!("CARGO_BIN_EXE_chat-server")),
            client: program(twin, "07-chat", "client", env!("CARGO_BIN_EXE_chat-client")),
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
    away_and_back_are_sent_and_replies_read,
);

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing, who_and_whois_tell_who_is_there_and_from_where, messages_go_to_a_nick_a_channel_or_everyone
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

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing
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

/// Text is bytes, for the client as for the server (RFC 2812 §2.2 names no
/// character set): typed lines and server lines go on the wire and to
/// stdout as they came, whatever their encoding; white space trimmed is
/// ASCII's; a NUL ends a line; a line too long is cut at its 510th byte,
/// in the middle of a character if that is where it falls. Both clients
/// must write the same bytes, on the wire and on stdout.
#[test]
fn both_clients_pass_bytes_as_they_come() {
    let long = format!("x{}", "\u{e9}".repeat(250)); // 501 bytes, no space
    let mut script: Vec<u8> = Vec::new();
    for line in [
        &b"/join #caf\xe9"[..],
        b"\xe9t\xe9",                // Latin-1, not UTF-8
        b"\xc2\xa0\xe3\x80\x80",     // only blanks, but not ASCII ones
        b"/msg bob hi\xe3\x80\x80 ", // a non-ASCII blank before the ASCII one
        b"a\0b",                     // a NUL ends the line
        long.as_bytes(),
        b"/quit bye",
    ] {
        script.extend_from_slice(line);
        script.push(b'\n');
    }
    let from_server: &[u8] = b":bob!bob@127.0.0.1 PRIVMSG erin :caf\xe9 \xff\xfe\r\n\
        :bob!bob@127.0.0.1 PRIVMSG #caf\xe9 :x\0y\r\n";

    // The long line: "PRIVMSG #caf\xe9 " and 496 bytes of the text, the last
    // of them the first half of an é.
    let cut = [&b"PRIVMSG #caf\xe9 "[..], &long.as_bytes()[..496], b"\r\n"].concat();
    assert!(cut.ends_with(b"\xc3\r\n") && cut.len() == 512);
    let wire = [
        &b"NICK erin\r\nUSER erin 0 * erin\r\nJOIN #caf\xe9\r\n"[..],
        b"PRIVMSG #caf\xe9 \xe9t\xe9\r\n",
        b"PRIVMSG #caf\xe9 \xc2\xa0\xe3\x80\x80\r\n",
        b"PRIVMSG bob hi\xe3\x80\x80\r\n",
        b"PRIVMSG #caf\xe9 a\r\n",
        &cut,
        b"QUIT bye\r\n",
    ]
    .concat();
    let long_shown = [&b"[#caf\xe9] erin: "[..], long.as_bytes(), b"\n"].concat();
    let shown = [
        &b"[#caf\xe9] erin: \xe9t\xe9\n"[..],
        b"[#caf\xe9] erin: \xc2\xa0\xe3\x80\x80\n",
        b"-> *bob* hi\xe3\x80\x80\n",
        b"[#caf\xe9] erin: a\n",
        &long_shown,
        b"*bob* caf\xe9 \xff\xfe\n",
        b"[#caf\xe9] bob: x\n",
    ]
    .concat();

    for twin in [Twin::Rust, Twin::C] {
        let (sent, out) = bytes_scene(&Chat::of(twin).client, &script, from_server);
        assert_eq!(out.code(), Some(0), "{twin:?}: stderr {}", out.stderr);
        assert_eq!(
            sent.escape_ascii().to_string(),
            wire.escape_ascii().to_string(),
            "{twin:?}: the wire"
        );
        assert_eq!(
            out.stdout.escape_ascii().to_string(),
            shown.escape_ascii().to_string(),
            "{twin:?}: stdout"
        );
    }
}

/// Runs `client --nick erin` with `script` on its stdin against a stand-in
/// server that reads every line up to QUIT, then sends `lines` and closes.
/// Returns what the client sent, and how it ended.
fn bytes_scene(client: &str, script: &[u8], lines: &[u8]) -> (Vec<u8>, common::Run) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();
    let lines = lines.to_vec();
    let (tx, rx) = channel();
    thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut reader = BufReader::new(conn.try_clone().expect("clone"));
        let (mut sent, mut line) = (Vec::new(), Vec::new());
        while !line.starts_with(b"QUIT") {
            line.clear();
            if reader.read_until(b'\n', &mut line).expect("read") == 0 {
                break;
            }
            sent.extend_from_slice(&line);
        }
        let mut conn = conn;
        conn.write_all(&lines).expect("write");
        let _ = tx.send(sent);
    });
    let out = run(client, &["127.0.0.1", &port, "--nick", "erin"], script);
    let sent = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the stand-in server saw the client's QUIT");
    (sent, out)
}

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing, away_is_told_to_senders_whois_who_and_userhost
fn away_and_back_are_sent_and_replies_read(twin: Twin) {
    let chat = Chat::of(twin);
    let server = chat.start();
    let mut bob = chat.client(&server, &["--nick", "bob", "--raw"]);
    bob.expect("-!- "); // the welcome: bob is registered
    bob.type_line("/away");
    assert_eq!(bob.expect(">> AWAY").trim_end(), ">> AWAY away");
    bob.expect("-!- you are marked as away");
    bob.type_line("/away gone fishing");
    assert_eq!(bob.expect(">> AWAY").trim_end(), ">> AWAY :gone fishing");
    bob.expect("-!- you are marked as away");

    let port = server.port().to_string();
    let script = "/msg bob hi bob\n/whois bob\n/quit\n";
    let out = run(
        &chat.client,
        &["127.0.0.1", &port, "--nick", "alice"],
        script.as_bytes(),
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    let text = out.stdout_text();
    // Once for the message, once in WHOIS.
    let away = "-!- bob is away: gone fishing";
    assert_eq!(text.matches(away).count(), 2, "{away:?} twice in:\n{text}");

    bob.expect("*alice* hi bob");
    bob.type_line("/back");
    assert_eq!(bob.expect(">> AWAY").trim_end(), ">> AWAY");
    bob.expect("-!- you are back");
    bob.type_line("/help");
    bob.expect("/away [text]");
    bob.expect("/back");
    let (code, stderr, _) = bob.finish(true);
    assert_eq!(code, Some(0), "stderr: {stderr}");
}
