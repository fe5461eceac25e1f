//! Lab 07: the chat client, driven through its stdin against the chat server.
//!
//! Every test runs twice, with one body: the Rust client against the Rust
//! server (`NAME::rust`), and the C client against the C server (`NAME::c`,
//! labs/07-chat/client-c and server-c, built by `make c`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
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

    /// The server without flood control: the tests pipe lines into the
    /// client faster than one every 2 s (lab07_chat.rs tests flood control).
    fn start(&self) -> Server {
        Server::start(
            &self.server,
            &["0", "--bind", "127.0.0.1", "--flood-penalty", "0"],
        )
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
    topic_mode_lusers_motd_and_quote_with_the_server,
    the_channel_operators_commands_and_their_replies_read_plainly,
    kick_and_invite_name_the_current_channel_by_default,
    a_quit_sent_with_quote_is_a_leaving,
    a_kicked_client_forgets_the_channel,
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

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing, registration_in_either_order_gives_the_welcome_burst, channels_join_part_names_topic_and_list, mode_answers_what_clients_ask_and_operators_give_operator_status
fn topic_mode_lusers_motd_and_quote_with_the_server(twin: Twin) {
    let chat = Chat::of(twin);
    let server = chat.start();
    let mut bob = chat.client(&server, &["--nick", "bob", "--raw"]);
    bob.expect("-!- "); // the welcome: bob is registered
    bob.type_line("/join #room");
    bob.expect("-!- you joined #room");
    bob.type_line("/topic fresh paint");
    assert_eq!(
        bob.expect(">> TOPIC").trim_end(),
        ">> TOPIC #room :fresh paint"
    );
    bob.expect("-!- bob set the topic of #room: fresh paint");
    bob.type_line("/topic #room");
    assert_eq!(bob.expect(">> TOPIC").trim_end(), ">> TOPIC #room");
    bob.expect("-!- topic of #room: fresh paint");
    bob.expect("-!- topic of #room set by bob on 2"); // a date, 20xx-...
    bob.type_line("/mode #room");
    assert_eq!(bob.expect(">> MODE").trim_end(), ">> MODE #room");
    bob.expect("-!- modes of #room: +");
    bob.expect("-!- #room was created on 2");
    bob.type_line("/mode #room b");
    bob.expect("-!- end of the ban list of #room");
    // The statistics and the MOTD, quiet in the welcome burst, answer /lusers and /motd.
    bob.type_line("/lusers");
    assert_eq!(bob.expect(">> LUSERS").trim_end(), ">> LUSERS");
    bob.expect("-!- 1 channels formed");
    bob.type_line("/motd");
    assert_eq!(bob.expect(">> MOTD").trim_end(), ">> MOTD");
    bob.expect("-!- error: MOTD File is missing");
    // /quote: the line as typed, and what comes back, even a PONG.
    bob.type_line("/quote PING :are you there");
    assert_eq!(bob.expect(">> PING").trim_end(), ">> PING :are you there");
    let pong = bob.expect("-!- ");
    assert!(
        pong.contains(" PONG ") && pong.trim_end().ends_with(" are you there"),
        "{pong:?}"
    );
    bob.type_line("/help");
    for usage in [
        "/topic [#chan] [text]",
        "/kick [#chan] NICK [reason]",
        "/invite NICK [#chan]",
        "/mode TARGET [MODES [ARGS]]",
        "/lusers",
        "/whowas NICK",
        "/time",
        "/motd",
        "/quote RAW",
    ] {
        bob.expect(usage);
    }
    let (code, stderr, _) = bob.finish(true);
    assert_eq!(code, Some(0), "stderr: {stderr}");
}

/// Every new command becomes the IRC line it should, and every reply to
/// them reads as a sentence: a stand-in server checks the lines the client
/// sends, then plays the replies a full server gives (ngIRCd's, RFC 2812
/// §5 and the Modern IRC documentation's numerics).
fn the_channel_operators_commands_and_their_replies_read_plainly(twin: Twin) {
    let script = "/topic\n\
                  /join #room\n\
                  /topic\n\
                  /topic new paint\n\
                  /topic #other\n\
                  /topic #other word\n\
                  /kick #room bob\n\
                  /kick #room bob too loud\n\
                  /kick #room\n\
                  /invite bob #room\n\
                  /mode #room\n\
                  /mode  #room +kl  secret 10\n\
                  /mode #room b\n\
                  /mode erin +i\n\
                  /lusers\n\
                  /whowas bob\n\
                  /time\n\
                  /motd\n\
                  /quote PRIVMSG bob :as typed\n\
                  /quote\n\
                  /quit\n";
    let wire = "NICK erin\r\nUSER erin 0 * erin\r\nJOIN #room\r\n\
                TOPIC #room\r\n\
                TOPIC #room :new paint\r\n\
                TOPIC #other\r\n\
                TOPIC #other word\r\n\
                KICK #room bob\r\n\
                KICK #room bob :too loud\r\n\
                INVITE bob #room\r\n\
                MODE #room\r\n\
                MODE #room +kl secret 10\r\n\
                MODE #room b\r\n\
                MODE erin +i\r\n\
                LUSERS\r\n\
                WHOWAS bob\r\n\
                TIME\r\n\
                MOTD\r\n\
                PRIVMSG bob :as typed\r\n\
                QUIT leaving\r\n";
    // (server line, what the person reads: "" for nothing)
    let replies: &[(&str, &str)] = &[
        // The welcome burst: statistics and the MOTD's frame stay quiet.
        (":srv 001 erin :Welcome, erin", "-!- Welcome, erin"),
        (
            ":srv 251 erin :There are 2 users and 0 invisible on 1 servers",
            "",
        ),
        (":srv 254 erin 1 :channels formed", ""),
        (":srv 250 erin :Highest connection count: 2", ""),
        (":srv 375 erin :- srv Message of the day -", ""),
        (":srv 372 erin :- be nice", "- be nice"),
        (":srv 376 erin :End of MOTD command", ""),
        (":erin!erin@127.0.0.1 JOIN #room", "-!- you joined #room"),
        // TOPIC
        (
            ":srv 332 erin #room :old paint",
            "-!- topic of #room: old paint",
        ),
        (
            ":srv 333 erin #room alice 1735689599",
            "-!- topic of #room set by alice on 2024-12-31 23:59:59 UTC",
        ),
        (
            ":srv 333 erin #room alice soon",
            "-!- topic of #room set by alice on soon",
        ),
        (
            ":alice!alice@127.0.0.1 TOPIC #room :new paint",
            "-!- alice set the topic of #room: new paint",
        ),
        (
            ":alice!alice@127.0.0.1 TOPIC #room :",
            "-!- alice cleared the topic of #room",
        ),
        (
            ":srv 331 erin #other :No topic is set",
            "-!- #other has no topic",
        ),
        // KICK, INVITE
        (
            ":alice!alice@127.0.0.1 KICK #room bob :too loud",
            "-!- bob was kicked from #room by alice (too loud)",
        ),
        (
            ":alice!alice@127.0.0.1 INVITE erin #room",
            "-!- alice invites you to #room: /join #room",
        ),
        (
            ":alice!alice@127.0.0.1 INVITE bob #room",
            "-!- alice invited bob to #room",
        ),
        (":srv 341 erin bob #room", "-!- you invited bob to #room"),
        // MODE
        (
            ":srv 324 erin #room +kl secret 10",
            "-!- modes of #room: +kl secret 10",
        ),
        (
            ":srv 329 erin #room 951782400",
            "-!- #room was created on 2000-02-29 00:00:00 UTC",
        ),
        (
            ":srv 367 erin #room *!*@evil alice 951782400",
            "-!- ban on #room: *!*@evil (set by alice)",
        ),
        (
            ":srv 367 erin #room *!*@worse",
            "-!- ban on #room: *!*@worse",
        ),
        (
            ":srv 368 erin #room :End of channel ban list",
            "-!- end of the ban list of #room",
        ),
        (
            ":alice!alice@127.0.0.1 MODE #room +o erin",
            "-!- alice sets mode +o erin on #room",
        ),
        (":erin MODE erin :+i", "-!- erin sets mode +i on erin"),
        // LUSERS, after the burst
        (
            ":srv 251 erin :There are 2 users and 1 invisible on 1 servers",
            "-!- There are 2 users and 1 invisible on 1 servers",
        ),
        (
            ":srv 250 erin :Highest connection count: 2",
            "-!- Highest connection count: 2",
        ),
        (
            ":srv 252 erin 1 :operator(s) online",
            "-!- 1 operator(s) online",
        ),
        (
            ":srv 253 erin 2 :unknown connection(s)",
            "-!- 2 unknown connection(s)",
        ),
        (":srv 254 erin 3 :channels formed", "-!- 3 channels formed"),
        (
            ":srv 255 erin :I have 2 clients and 0 servers",
            "-!- I have 2 clients and 0 servers",
        ),
        (
            ":srv 265 erin 2 5 :Current local users 2, max 5",
            "-!- Current local users 2, max 5",
        ),
        (
            ":srv 266 erin :Current global users 2, max 5",
            "-!- Current global users 2, max 5",
        ),
        // WHOWAS, TIME, MOTD
        (
            ":srv 314 erin bob bob 127.0.0.1 * :Bob B",
            "bob was bob@127.0.0.1 (Bob B)",
        ),
        (
            ":srv 312 erin bob srv :Wed Dec  2 09:00:00 2026",
            "bob on server srv (Wed Dec  2 09:00:00 2026)",
        ),
        (":srv 369 erin bob :End of WHOWAS", "-!- end of /whowas"),
        (
            ":srv 406 erin carol :There was no such nickname",
            "-!- error: There was no such nickname (carol)",
        ),
        (
            ":srv 391 erin srv :Wednesday December 2 2026 -- 10:00 +00:00",
            "-!- time on srv: Wednesday December 2 2026 -- 10:00 +00:00",
        ),
        (
            ":srv 375 erin :- srv Message of the day -",
            "- srv Message of the day -",
        ),
        (":srv 372 erin :- be nice", "- be nice"),
        (":srv 376 erin :End of MOTD command", "-!- end of /motd"),
        (
            ":srv 422 erin :MOTD File is missing",
            "-!- error: MOTD File is missing",
        ),
        // The errors, one sentence each, with what they are about.
        (
            ":srv 401 erin carol :No such nick/channel",
            "-!- error: No such nick/channel (carol)",
        ),
        (
            ":srv 403 erin #nowhere :No such channel",
            "-!- error: No such channel (#nowhere)",
        ),
        (
            ":srv 404 erin #room :Cannot send to channel",
            "-!- error: Cannot send to channel (#room)",
        ),
        (
            ":srv 441 erin bob #room :They aren't on that channel",
            "-!- error: They aren't on that channel (bob #room)",
        ),
        (
            ":srv 442 erin #other :You're not on that channel",
            "-!- error: You're not on that channel (#other)",
        ),
        (
            ":srv 443 erin bob #room :is already on channel",
            "-!- error: is already on channel (bob #room)",
        ),
        (
            ":srv 461 erin KICK :Not enough parameters",
            "-!- error: Not enough parameters (KICK)",
        ),
        (
            ":srv 471 erin #full :Cannot join channel (+l)",
            "-!- error: Cannot join channel (+l) (#full)",
        ),
        (
            ":srv 472 erin z :is unknown mode char to me",
            "-!- error: is unknown mode char to me (z)",
        ),
        (
            ":srv 473 erin #closed :Cannot join channel (+i)",
            "-!- error: Cannot join channel (+i) (#closed)",
        ),
        (
            ":srv 474 erin #banned :Cannot join channel (+b)",
            "-!- error: Cannot join channel (+b) (#banned)",
        ),
        (
            ":srv 475 erin #locked :Cannot join channel (+k)",
            "-!- error: Cannot join channel (+k) (#locked)",
        ),
        (
            ":srv 476 erin bad :Bad Channel Mask",
            "-!- error: Bad Channel Mask (bad)",
        ),
        (
            ":srv 482 erin #room :You're not channel operator",
            "-!- error: You're not channel operator (#room)",
        ),
        (
            ":srv 696 erin #room l ten :Invalid limit mode parameter",
            "-!- error: Invalid limit mode parameter (#room l ten)",
        ),
        // Still readable: a numeric or a command the client does not know.
        (":srv 999 erin some thing :odd one", "some thing odd one"),
        (":srv PONG srv :as typed", "-!- srv PONG srv as typed"),
        (
            ":alice!alice@127.0.0.1 KICK #room erin :bye now",
            "-!- you were kicked from #room by alice (bye now)",
        ),
    ];
    let lines: String = replies
        .iter()
        .map(|(line, _)| format!("{line}\r\n"))
        .collect();
    let mut shown = String::from(
        "-!- you are on no channel: /topic #chan [text]\n\
         -!- /kick needs more: /help shows how to use it\n\
         -!- /quote needs more: /help shows how to use it\n",
    );
    for (_, text) in replies.iter().filter(|(_, text)| !text.is_empty()) {
        shown.push_str(text);
        shown.push('\n');
    }

    let (sent, out) = bytes_scene(&Chat::of(twin).client, script.as_bytes(), lines.as_bytes());
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(String::from_utf8_lossy(&sent), wire, "the wire");
    assert_eq!(out.stdout_text(), shown, "stdout");
}

/// As irssi's, `/kick NICK [reason]` and `/invite NICK` name the current
/// channel when no channel is given; without one, the client says so, as
/// /part and /topic do.
fn kick_and_invite_name_the_current_channel_by_default(twin: Twin) {
    let script = "/kick bob\n\
                  /invite bob\n\
                  /join #room\n\
                  /kick bob\n\
                  /kick bob too loud\n\
                  /kick #room\n\
                  /kick #other bob\n\
                  /invite bob\n\
                  /invite bob #other\n\
                  /invite\n\
                  /quit\n";
    let wire = "NICK erin\r\nUSER erin 0 * erin\r\nJOIN #room\r\n\
                KICK #room bob\r\n\
                KICK #room bob :too loud\r\n\
                KICK #other bob\r\n\
                INVITE bob #room\r\n\
                INVITE bob #other\r\n\
                QUIT leaving\r\n";
    let shown = "-!- you are on no channel: /kick #chan NICK [reason]\n\
                 -!- you are on no channel: /invite NICK #chan\n\
                 -!- /kick needs more: /help shows how to use it\n\
                 -!- /invite needs more: /help shows how to use it\n";
    let (sent, out) = bytes_scene(&Chat::of(twin).client, script.as_bytes(), b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(String::from_utf8_lossy(&sent), wire, "the wire");
    assert_eq!(out.stdout_text(), shown, "stdout");
}

/// A stand-in server with one client, `client --nick erin` typed to as a
/// person would: the test reads each line the client sends and writes the
/// server's lines itself, in turn.
struct StandIn {
    conn: TcpStream,
    reader: BufReader<TcpStream>,
}

impl StandIn {
    fn start(client: &str) -> (Interactive, StandIn) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port().to_string();
        let user = Interactive::start(client, &["127.0.0.1", &port, "--nick", "erin"]);
        let (conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let reader = BufReader::new(conn.try_clone().expect("clone"));
        let mut server = StandIn { conn, reader };
        assert_eq!(server.line(), "NICK erin\r\n");
        assert_eq!(server.line(), "USER erin 0 * erin\r\n");
        (user, server)
    }

    /// The next line from the client.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("a line from the client");
        line
    }

    fn send(&mut self, lines: &str) {
        self.conn.write_all(lines.as_bytes()).expect("write");
    }
}

/// `/quote QUIT`, in any case, leaves as `/quit` does: the server's ERROR
/// and close are the goodbye, and the client exits 0 (its input still
/// open). A command that only begins with QUIT is not one.
fn a_quit_sent_with_quote_is_a_leaving(twin: Twin) {
    for (typed, sent) in [
        ("/quote quit :gone for now", "quit :gone for now\r\n"),
        ("/quote  QUIT ", "QUIT\r\n"),
    ] {
        let (mut erin, mut server) = StandIn::start(&Chat::of(twin).client);
        erin.type_line("/quote QUITS now");
        assert_eq!(server.line(), "QUITS now\r\n");
        erin.type_line(typed);
        assert_eq!(server.line(), sent);
        server.send("ERROR :Closing Link: erin (Quit)\r\n");
        drop(server);
        let (code, stderr, rest) = erin.finish(false);
        assert_eq!(
            (code, stderr.as_str()),
            (Some(0), ""),
            "{typed:?}: then {rest:?}"
        );
        assert!(
            rest.is_empty(),
            "{typed:?}: the goodbye is quiet, not {rest:?}"
        );
    }
}

/// Kicked from a channel, the client forgets it: a plain line then goes to
/// the channel joined before, and with none left it goes nowhere, the
/// client saying so as it does before any /join.
fn a_kicked_client_forgets_the_channel(twin: Twin) {
    let (mut erin, mut server) = StandIn::start(&Chat::of(twin).client);
    erin.type_line("/join #hall");
    erin.type_line("/join #room");
    assert_eq!(server.line(), "JOIN #hall\r\n");
    assert_eq!(server.line(), "JOIN #room\r\n");
    server.send(
        ":srv 001 erin :Welcome, erin\r\n\
         :erin!erin@127.0.0.1 JOIN #hall\r\n\
         :erin!erin@127.0.0.1 JOIN #room\r\n\
         :alice!alice@127.0.0.1 KICK #room erin :out\r\n",
    );
    erin.expect("-!- you were kicked from #room by alice (out)");
    erin.type_line("still here");
    assert_eq!(erin.line(), "[#hall] erin: still here");
    assert_eq!(server.line(), "PRIVMSG #hall :still here\r\n");

    server.send(":alice!alice@127.0.0.1 KICK #hall erin :and out\r\n");
    erin.expect("-!- you were kicked from #hall by alice (and out)");
    erin.type_line("anyone?");
    assert_eq!(
        erin.line(),
        "-!- you are on no channel: /join #name, or /msg NICK text"
    );
    erin.type_line("/quit");
    // Nothing between: the plain line was not sent.
    assert_eq!(server.line(), "QUIT leaving\r\n");
    server.send("ERROR :Closing Link: erin (Quit: leaving)\r\n");
    drop(server);
    let (code, stderr, rest) = erin.finish(true);
    assert_eq!((code, stderr.as_str()), (Some(0), ""), "then {rest:?}");
}
