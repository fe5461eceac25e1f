//! Lab 07: the chat server, spoken to in IRC over real sockets, several
//! clients at once. Replies are checked numeric by numeric, parameter by
//! parameter (RFC 2812 §5, modern.ircdocs.horse); "nothing else arrived" is
//! checked with a PING whose PONG must be the next line (`Irc::sync`).
//!
//! Every test runs twice, with one body: against the Rust server
//! (`NAME::rust`) and against its C twin (`NAME::c`, labs/07-chat/server-c,
//! built by `make c`).

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    Irc, Server, Twin, busy_during, check_no_room_for_a_client, check_server_arguments,
    check_twins_agree_on_arguments, check_usage_error, descriptors_for, program, reset,
    resident_kib,
};
use socket_labs::irc::Message;

const NAME: &str = "chat.socket-labs";

/// The welcome burst of a user alone on a server without --motd: 001 to
/// 005, what LUSERS says (no 253: no other connection), and 422, no MOTD.
const WELCOME_ALONE: [&str; 11] = [
    "001", "002", "003", "004", "005", "251", "254", "255", "265", "266", "422",
];

crate::for_rust_and_c!(
    registration_in_either_order_gives_the_welcome_burst,
    the_server_name_is_the_prefix_of_replies,
    nicknames_follow_the_rules_and_are_unique_whatever_their_case,
    a_rename_is_seen_by_the_user_and_its_channel_peers_only,
    messages_go_to_a_nick_a_channel_or_everyone,
    a_notice_is_never_answered,
    channels_join_part_names_topic_and_list,
    the_names_of_a_big_channel_span_several_lines_of_512_bytes,
    who_and_whois_tell_who_is_there_and_from_where,
    mode_answers_what_clients_ask_and_operators_give_operator_status,
    quit_is_relayed_and_any_disconnect_frees_the_nick,
    a_client_that_leaves_is_closed_at_once_and_costs_nothing,
    an_overlong_line_gets_417_and_the_connection_stays_usable,
    text_is_relayed_as_the_bytes_it_came_in,
    a_client_that_never_reads_is_dropped_while_the_others_carry_on,
    a_silent_client_is_pinged_then_dropped,
    bytes_without_a_newline_do_not_keep_a_client_alive,
    a_connection_that_does_not_register_in_time_is_dropped_and_its_nick_freed,
    an_unregistered_trickle_is_dropped_by_the_registration_timeout,
    a_thousand_users_register_and_exchange_messages,
    the_server_shares_the_common_interface,
    a_reset_before_registration_frees_the_nick_it_held,
    a_limit_with_no_room_for_a_client_is_said_at_once,
    out_of_descriptors_new_connections_are_closed_without_spinning,
    cap_negotiation_holds_the_welcome_until_cap_end,
    mode_o_tells_an_unknown_nick_from_one_not_on_the_channel,
    user_with_an_empty_real_name_gets_461,
    an_invisible_user_is_left_out_of_who_but_for_its_channel_peers,
    thirty_character_nicks_keep_names_who_and_whois_within_512_bytes,
    away_is_told_to_senders_whois_who_and_userhost,
    lusers_counts_the_users_the_invisible_and_the_most_at_once,
    whowas_remembers_the_nicks_given_up_most_recent_first,
    time_tells_the_server_s_clock,
    motd_comes_from_the_file_given_at_start_up,
    kick_and_invite_let_an_operator_choose_who_is_on_the_channel,
    modes_t_n_m_and_v_decide_who_sets_the_topic_and_who_speaks,
    modes_k_and_l_ask_for_a_key_and_bound_the_members,
    mode_b_bans_nick_user_host_masks_from_joining_and_speaking,
    mode_s_hides_a_channel_from_outsiders,
    channel_modes_are_advertised_and_changed_in_one_line,
    a_spammer_is_read_at_the_rfc_pace_and_fills_its_own_socket,
);

/// The chat server, in one implementation or the other.
fn server_bin(twin: Twin) -> String {
    program(twin, "07-chat", "server", env!("CARGO_BIN_EXE_chat-server"))
}

/// The server without flood control (`--flood-penalty 0`): the tests send
/// lines as fast as they go, and are not about flood control. Those that
/// are use `start_with_flood_control`.
fn start(twin: Twin, extra: &[&str]) -> Server {
    let mut args = vec!["0", "--bind", "127.0.0.1", "--flood-penalty", "0"];
    args.extend_from_slice(extra);
    Server::start(&server_bin(twin), &args)
}

/// The server as it starts by default: flood control on, 2 s a line.
fn start_with_flood_control(twin: Twin) -> Server {
    Server::start(&server_bin(twin), &["0", "--bind", "127.0.0.1"])
}

fn parse(line: &str) -> Message {
    Message::parse(line.as_bytes()).unwrap_or_else(|| panic!("not an IRC line: {line:?}"))
}

/// The parameters of `line`, which must be the reply `numeric` from the server.
fn reply(line: &str, numeric: &str) -> Vec<String> {
    let m = parse(line);
    assert_eq!(m.prefix.as_deref(), Some(NAME), "{line:?}");
    assert_eq!(m.command, numeric, "{line:?}");
    m.params
}

/// The parameters of each line of `lines` that is the reply `numeric`.
fn replies(lines: &[String], numeric: &str) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| parse(l))
        .filter(|m| m.command == numeric)
        .map(|m| m.params)
        .collect()
}

/// The numerics (or commands) of `lines`, in order.
fn commands(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| parse(l).command).collect()
}

/// Registered users, each on its own connection.
fn users<const N: usize>(server: &Server, nicks: [&str; N]) -> [Irc; N] {
    nicks.map(|nick| Irc::register(server, nick).0)
}

/// Every user in `users` joins `channel`; everyone has read every JOIN.
fn join_all(users: &mut [&mut Irc], channel: &str) {
    for i in 0..users.len() {
        users[i].send(&format!("JOIN {channel}"));
        users[i].expect(" 366 ");
        let joined = format!(":{}!", users[i].nick);
        for earlier in users[..i].iter_mut() {
            let line = earlier.expect(" JOIN ");
            assert!(line.starts_with(&joined), "{line:?}");
        }
    }
}

/// Step: 1
/// Hint: step 1: a line read(2) into the connection is a command, and its
/// replies go out with write(2): no welcome means the read, the queue's write
/// or POLLOUT is missing (README.md, "Write it yourself", step 1).
fn registration_in_either_order_gives_the_welcome_burst(twin: Twin) {
    let mut server = start(twin, &[]);
    let (_alice, burst) = Irc::register(&server, "alice");
    assert_eq!(commands(&burst), WELCOME_ALONE, "{burst:#?}");
    let welcome = reply(&burst[0], "001");
    assert_eq!(welcome[0], "alice");
    assert!(
        welcome[1].ends_with(" alice!alice@127.0.0.1"),
        "{welcome:?}"
    );
    // 004: <client> <servername> <version> <user modes> <channel modes>
    let info = reply(&burst[3], "004");
    assert!(info.len() >= 5, "{info:?}");
    assert_eq!(info[1], NAME);
    assert!(!info[3].is_empty() && !info[4].is_empty(), "{info:?}");
    let isupport = reply(&burst[4], "005");
    for token in ["CHANTYPES=#", "NICKLEN=30", "CASEMAPPING=rfc1459"] {
        assert!(
            isupport.iter().any(|t| t == token),
            "{token} in {isupport:?}"
        );
    }
    server.expect("registered as alice");

    // USER first, lines ending in a bare LF, after a CAP LS as irssi and
    // weechat send it; commands before registration are refused.
    let mut bob = Irc::connect(&server);
    bob.send("CAP LS 302");
    assert_eq!(reply(&bob.next(), "CAP"), ["*", "LS", ""]);
    bob.send("JOIN #early");
    assert_eq!(reply(&bob.next(), "451"), ["*", "You have not registered"]);
    bob.send("USER bob");
    assert_eq!(reply(&bob.next(), "461")[..2], ["*", "USER"]);
    bob.send_raw(b"USER bob 0 * :Bob B\nNICK bob\n");
    bob.nick = "bob".into();
    bob.send("CAP END"); // the welcome waits for the end of CAP negotiation
    let burst = bob.welcome();
    assert_eq!(commands(&burst)[0], "001");
    assert_eq!(reply(&burst[0], "001")[0], "bob");
    assert!(bob.sync().is_empty());
    bob.send("USER again 0 * :Again");
    assert_eq!(reply(&bob.next(), "462")[0], "bob");
    bob.send("FROB x");
    assert_eq!(reply(&bob.next(), "421")[..2], ["bob", "FROB"]);
    bob.send("JOIN");
    assert_eq!(reply(&bob.next(), "461")[..2], ["bob", "JOIN"]);
    bob.send("MOTD");
    assert_eq!(reply(&bob.next(), "422")[0], "bob");
    bob.send("LUSERS");
    let lusers = bob.until(" 266 ");
    assert!(
        reply(&lusers[0], "251")[1].starts_with("There are 2 users"),
        "{lusers:?}"
    );
    server.expect("registered as bob");
}

/// Step: 1
/// Hint: step 1: replies come back once read(2) and write(2) work; the name is
/// given (README.md, "Write it yourself", step 1).
fn the_server_name_is_the_prefix_of_replies(twin: Twin) {
    let server = start(twin, &["--name", "irc.example.org"]);
    let mut irc = Irc::connect(&server);
    irc.login("ann");
    let first = parse(&irc.next());
    assert_eq!(first.prefix.as_deref(), Some("irc.example.org"));
    assert_eq!(first.command, "001");
    irc.welcome();
    irc.send("PING :token 1");
    assert_eq!(irc.next(), ":irc.example.org PONG irc.example.org :token 1");
}

/// Step: 2
/// Hint: step 2: NICK refuses an empty nick (431), a bad one (432, valid_nick)
/// and one held by another user whatever its case (433: compare folded nicks,
/// fold_bytes or irc_casecmp) (README.md, "Write it yourself", step 2).
fn nicknames_follow_the_rules_and_are_unique_whatever_their_case(twin: Twin) {
    let mut server = start(twin, &[]);
    let [alice, _brackets] = users(&server, ["alice", "[x]"]);
    let mut other = Irc::connect(&server);
    other.send("NICK ALICE");
    assert_eq!(
        reply(&other.next(), "433"),
        ["*", "ALICE", "Nickname is already in use"]
    );
    // rfc1459 case mapping: {x} is the lower case of [x].
    other.send("NICK {X}");
    assert_eq!(reply(&other.next(), "433")[1], "{X}");
    other.send("NICK");
    assert_eq!(reply(&other.next(), "431")[0], "*");
    let long = "abcdefghij".repeat(3); // 30 characters: NICKLEN=30 in 005
    let too_long = format!("{long}x");
    for bad in ["2pac", &too_long, "a.b", "-x"] {
        other.send(&format!("NICK {bad}"));
        assert_eq!(reply(&other.next(), "432")[..2], ["*", bad]);
    }
    other.send(&format!("NICK {long}")); // more than RFC 2812's 9, as ngIRCd
    other.send("USER thirty 0 * :Thirty");
    assert_eq!(reply(&other.next(), "001")[0], long);
    other.welcome();

    // A nick is free again once its owner has gone.
    let address = alice.local_addr();
    drop(alice);
    server.expect(&format!("{address} disconnected"));
    other.send("NICK Alice");
    assert_eq!(
        other.expect(" NICK "),
        format!(":{long}!thirty@127.0.0.1 NICK Alice")
    );
}

/// Needs: nicknames_follow_the_rules_and_are_unique_whatever_their_case
/// Step: 2
/// Hint: step 2: the user's own nick in another case is not "in use": only
/// another user's nick is (433) (README.md, "Write it yourself", step 2).
fn a_rename_is_seen_by_the_user_and_its_channel_peers_only(twin: Twin) {
    let mut server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);
    join_all(&mut [&mut alice, &mut bob], "#room");

    alice.send("NICK Alicia");
    let rename = ":alice!alice@127.0.0.1 NICK Alicia";
    assert_eq!(alice.next(), rename);
    assert_eq!(bob.next(), rename);
    assert!(
        carol.sync().is_empty(),
        "carol shares no channel with alice"
    );
    server.expect("alice is now known as Alicia");

    bob.send("PRIVMSG alicia :hi");
    assert_eq!(alice.next(), ":bob!bob@127.0.0.1 PRIVMSG Alicia :hi");
    // Only the case changes: still the same user's nick.
    alice.send("NICK ALICIA");
    assert_eq!(alice.next(), ":Alicia!alice@127.0.0.1 NICK ALICIA");
    // The old nick is free.
    carol.send("NICK alice");
    assert_eq!(carol.next(), ":carol!carol@127.0.0.1 NICK alice");
    assert!(bob.sync().iter().all(|l| !l.contains("carol")));
}

/// Needs: nicknames_follow_the_rules_and_are_unique_whatever_their_case
/// Step: 2
/// Hint: step 2: PRIVMSG to a nick goes to its user whatever the case, with its
/// own nick as the target; to $* to every registered user but the sender; else
/// 401 (README.md, "Write it yourself", step 2).
fn messages_go_to_a_nick_a_channel_or_everyone(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);
    join_all(&mut [&mut alice, &mut bob], "#room");

    alice.send("PRIVMSG bob :hello bob");
    assert_eq!(bob.next(), ":alice!alice@127.0.0.1 PRIVMSG bob :hello bob");
    alice.send("PRIVMSG #ROOM :hello room");
    assert_eq!(
        bob.next(),
        ":alice!alice@127.0.0.1 PRIVMSG #room :hello room"
    );
    alice.send("PRIVMSG bob,carol :both of you");
    assert_eq!(
        bob.next(),
        ":alice!alice@127.0.0.1 PRIVMSG bob :both of you"
    );
    assert_eq!(
        carol.next(),
        ":alice!alice@127.0.0.1 PRIVMSG carol :both of you"
    );
    assert!(alice.sync().is_empty(), "no echo to the sender");
    assert!(carol.sync().is_empty(), "carol is not on #room");

    // `PRIVMSG $*`: every registered user but the sender (what /msgall sends).
    let mut unregistered = Irc::connect(&server);
    carol.send("PRIVMSG $* :to everyone");
    for user in [&mut alice, &mut bob] {
        assert_eq!(
            user.next(),
            ":carol!carol@127.0.0.1 PRIVMSG $* :to everyone"
        );
    }
    assert!(carol.sync().is_empty());
    assert!(unregistered.sync().is_empty());

    // The errors, each with its numeric.
    carol.send("PRIVMSG #room :let me in");
    assert_eq!(
        reply(&carol.next(), "404"),
        ["carol", "#room", "Cannot send to channel"]
    );
    carol.send("PRIVMSG nobody :hello?");
    assert_eq!(
        reply(&carol.next(), "401"),
        ["carol", "nobody", "No such nick/channel"]
    );
    carol.send("PRIVMSG #nowhere :hello?");
    assert_eq!(reply(&carol.next(), "401")[1], "#nowhere");
    carol.send("PRIVMSG");
    assert_eq!(reply(&carol.next(), "411")[0], "carol");
    carol.send("PRIVMSG bob");
    assert_eq!(reply(&carol.next(), "412"), ["carol", "No text to send"]);
    carol.send("PRIVMSG bob :");
    assert_eq!(reply(&carol.next(), "412")[0], "carol");
    // At most 4 targets (TARGMAX): a line may not make thousands of copies.
    carol.send("PRIVMSG $*,$*,$*,$*,$* :echo");
    assert_eq!(reply(&carol.next(), "407")[..2], ["carol", "$*"]);
    for _ in 0..4 {
        assert_eq!(alice.next(), ":carol!carol@127.0.0.1 PRIVMSG $* :echo");
    }
    assert!(alice.sync().is_empty());
    assert_eq!(
        bob.sync().len(),
        4,
        "the four copies, nothing else, reached bob"
    );
}

/// Step: 1
/// Hint: step 1: the commands are given; a notice needs read(2) and write(2) to
/// work (README.md, "Write it yourself", step 1).
fn a_notice_is_never_answered(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob] = users(&server, ["alice", "bob"]);
    bob.send("JOIN #room");
    bob.expect(" 366 ");
    for notice in [
        "NOTICE nobody :x",
        "NOTICE #nowhere :x",
        "NOTICE #room :not a member",
        "NOTICE $nomatch :x",
        "NOTICE",
        "NOTICE bob",
        "NOTICE bob :",
    ] {
        alice.send(notice);
    }
    assert!(alice.sync().is_empty(), "a NOTICE was answered");
    alice.send("NOTICE bob :psst");
    assert_eq!(bob.next(), ":alice!alice@127.0.0.1 NOTICE bob :psst");
}

/// Step: 1
/// Hint: step 1: the channels are given; they need lines read and queues
/// written for several clients at once (README.md, "Write it yourself", step
/// 1).
fn channels_join_part_names_topic_and_list(twin: Twin) {
    let mut server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);

    // The creator is the operator; there is no topic yet (no 332).
    alice.send("JOIN #Room");
    let joined = alice.until(" 366 ");
    assert_eq!(joined[0], ":alice!alice@127.0.0.1 JOIN #Room");
    assert_eq!(reply(&joined[1], "353"), ["alice", "=", "#Room", "@alice"]);
    assert_eq!(
        reply(&joined[2], "366"),
        ["alice", "#Room", "End of /NAMES list"]
    );
    assert_eq!(joined.len(), 3);
    server.expect("alice joined #Room");
    alice.send("TOPIC #room");
    assert_eq!(
        reply(&alice.next(), "331"),
        ["alice", "#Room", "No topic is set"]
    );
    bob.send("TOPIC #room :from outside");
    assert_eq!(reply(&bob.next(), "442")[..2], ["bob", "#Room"]);

    bob.send("JOIN #room");
    assert_eq!(alice.next(), ":bob!bob@127.0.0.1 JOIN #Room");
    let joined = bob.until(" 366 ");
    assert_eq!(joined[0], ":bob!bob@127.0.0.1 JOIN #Room");
    assert_eq!(reply(&joined[1], "353")[3], "@alice bob");

    // A new channel is +t: its operators set the topic; all members see it.
    bob.send("TOPIC #room :mine");
    assert_eq!(
        reply(&bob.next(), "482"),
        ["bob", "#Room", "You're not channel operator"]
    );
    alice.send("TOPIC #room :Lab 07: chat");
    let topic = ":alice!alice@127.0.0.1 TOPIC #Room :Lab 07: chat";
    assert_eq!(alice.next(), topic);
    assert_eq!(bob.next(), topic);
    carol.send("JOIN #room");
    let joined = carol.until(" 366 ");
    assert_eq!(
        commands(&joined),
        ["JOIN", "332", "333", "353", "366"],
        "{joined:?}"
    );
    assert_eq!(reply(&joined[1], "332"), ["carol", "#Room", "Lab 07: chat"]);
    assert_eq!(reply(&joined[2], "333")[..3], ["carol", "#Room", "alice"]);
    assert_eq!(reply(&joined[3], "353")[3], "@alice bob carol");
    alice.expect(" JOIN ");
    bob.expect(" JOIN ");

    // NAMES and LIST; an unknown channel gets only the end numeric.
    carol.send("NAMES #room,#nowhere");
    let names = carol.sync();
    assert_eq!(commands(&names), ["353", "366", "366"], "{names:?}");
    assert_eq!(reply(&names[2], "366")[1], "#nowhere");
    carol.send("LIST");
    let list = carol.sync();
    assert_eq!(
        replies(&list, "322"),
        [["carol", "#Room", "3", "Lab 07: chat"]]
    );
    assert_eq!(commands(&list), ["322", "323"]);
    carol.send("LIST #nowhere");
    assert_eq!(commands(&carol.sync()), ["323"]);

    // PART: the channel (the leaver included) sees it.
    carol.send("PART #room :bye all");
    let part = ":carol!carol@127.0.0.1 PART #Room :bye all";
    for user in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(user.next(), part);
    }
    server.expect("carol left #Room");
    carol.send("PART #room");
    assert_eq!(
        reply(&carol.next(), "442"),
        ["carol", "#room", "You're not on that channel"]
    );
    carol.send("PART #nowhere");
    assert_eq!(
        reply(&carol.next(), "403"),
        ["carol", "#nowhere", "No such channel"]
    );
    carol.send("JOIN room");
    assert_eq!(reply(&carol.next(), "403")[1], "room");

    // The channel goes with its last member.
    alice.send("PART #room");
    bob.send("PART #room");
    bob.expect(":alice!alice@127.0.0.1 PART #Room");
    bob.expect(":bob!bob@127.0.0.1 PART #Room");
    carol.send("LIST");
    assert_eq!(commands(&carol.sync()), ["323"]);

    // A user may be on 20 channels at once (CHANLIMIT=#:20).
    let twenty: Vec<String> = (0..20).map(|n| format!("#c{n}")).collect();
    carol.send(&format!("JOIN {}", twenty.join(",")));
    assert_eq!(replies(&carol.sync(), "366").len(), 20);
    carol.send("JOIN #c20");
    assert_eq!(reply(&carol.next(), "405")[..2], ["carol", "#c20"]);
    carol.send("JOIN 0");
    assert_eq!(carol.sync().len(), 20, "JOIN 0 leaves every channel");
}

/// Step: 1
/// Hint: step 1: many clients at once: accept4(2) until EAGAIN, and every queue
/// written each turn (README.md, "Write it yourself", step 1).
fn the_names_of_a_big_channel_span_several_lines_of_512_bytes(twin: Twin) {
    let server = start(twin, &[]);
    let mut crowd: Vec<Irc> = (0..150)
        .map(|n| Irc::register(&server, &format!("member{n:03}")).0)
        .collect();
    for member in &mut crowd {
        member.send("JOIN #big");
    }
    // The last JOIN has been handled once the last member has its 366.
    crowd[149].expect(" 366 ");
    let (mut late, _) = Irc::register(&server, "late");
    late.send("JOIN #big");
    let joined = late.until(" 366 ");
    let lines = replies(&joined, "353");
    assert!(lines.len() >= 3, "{joined:?}");
    assert!(joined.iter().all(|l| l.len() + 2 <= 512));
    let names: Vec<&str> = lines.iter().flat_map(|p| p[3].split(' ')).collect();
    assert_eq!(names.len(), 151);
    assert_eq!(names[0], "@member000");
    assert_eq!(names[150], "late");
    late.send("WHO #big");
    assert_eq!(replies(&late.sync(), "352").len(), 151);
}

/// Needs: nicknames_follow_the_rules_and_are_unique_whatever_their_case
/// Step: 2
/// Hint: step 2: nicks have up to 30 characters (NICKLEN): NAMES goes over as
/// many 353 lines as it takes, and no reply passes 512 bytes (README.md,
/// "Write it yourself", step 2).
fn thirty_character_nicks_keep_names_who_and_whois_within_512_bytes(twin: Twin) {
    let server = start(twin, &[]);
    let mut crowd: Vec<Irc> = (0..40)
        .map(|n| Irc::register(&server, &format!("n{n:02}{}", "x".repeat(27))).0)
        .collect();
    for member in &mut crowd {
        member.send("JOIN #wide");
    }
    crowd[39].expect(" 366 ");
    // The longest nick, user name and real name a client may send.
    let nick = format!("w{}", "y".repeat(29));
    let mut wide = Irc::connect(&server);
    wide.nick = nick.clone();
    wide.send(&format!(
        "NICK {nick}\r\nUSER wide 0 * :{}",
        "r".repeat(480)
    ));
    assert!(wide.welcome().iter().all(|l| l.len() + 2 <= 512));
    wide.send("JOIN #wide");
    let joined = wide.until(" 366 ");
    assert!(joined.iter().all(|l| l.len() + 2 <= 512), "{joined:?}");
    let names: Vec<String> = replies(&joined, "353")
        .iter()
        .flat_map(|p| p[3].split(' ').map(String::from).collect::<Vec<_>>())
        .collect();
    assert_eq!(names.len(), 41, "{joined:?}");
    assert_eq!(names[0], format!("@n00{}", "x".repeat(27)));
    assert_eq!(names[40], nick);

    for command in [
        "WHO #wide",
        &format!("WHO {nick}"),
        &format!("WHOIS {nick}"),
    ] {
        wide.send(command);
        let lines = wide.sync();
        assert!(
            lines.iter().all(|l| l.len() + 2 <= 512),
            "{command}: {lines:?}"
        );
    }
    wide.send(&format!("WHO {nick}"));
    let who = reply(&wide.sync()[0], "352");
    assert_eq!(who[5], nick);
    assert!(who[7].starts_with("0 rrr"), "{who:?}");
    crowd[0].send(&format!("WHOIS {nick}"));
    assert_eq!(reply(&crowd[0].expect(" 311 "), "311")[1], nick);
}

/// Needs: nicknames_follow_the_rules_and_are_unique_whatever_their_case
/// Step: 2
/// Hint: step 2: WHO lists a channel's members or the users the mask matches,
/// then 315; WHOIS sends 311 312 319 338 317 318, 338 with the address and port
/// the user connects from (README.md, "Write it yourself", step 2).
fn who_and_whois_tell_who_is_there_and_from_where(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob, carol] = users(&server, ["alice", "bob", "carol"]);
    join_all(&mut [&mut alice, &mut bob], "#room");
    join_all(&mut [&mut alice, &mut bob], "#two");

    bob.send("WHO #room");
    let who = bob.sync();
    assert_eq!(commands(&who), ["352", "352", "315"], "{who:?}");
    assert_eq!(
        reply(&who[0], "352"),
        [
            "bob",
            "#room",
            "alice",
            "127.0.0.1",
            NAME,
            "alice",
            "H@",
            "0 Real alice"
        ]
    );
    assert_eq!(reply(&who[1], "352")[5..7], ["bob", "H"]);
    assert_eq!(reply(&who[2], "315"), ["bob", "#room", "End of WHO list"]);

    // Everyone, each once although alice and bob share two channels.
    bob.send("WHO *");
    let who = bob.sync();
    let mut nicks: Vec<String> = replies(&who, "352")
        .into_iter()
        .map(|p| p[5].clone())
        .collect();
    nicks.sort();
    assert_eq!(nicks, ["alice", "bob", "carol"]);
    assert_eq!(reply(who.last().expect("315"), "315")[1], "*");
    bob.send("WHO C*");
    let who = bob.sync();
    assert_eq!(commands(&who), ["352", "315"]);
    assert_eq!(reply(&who[0], "352")[5], "carol");
    assert_eq!(reply(&who[1], "315")[1], "C*");
    bob.send("WHO #nowhere");
    assert_eq!(commands(&bob.sync()), ["315"]);

    bob.send("WHOIS alice");
    let whois = bob.sync();
    assert_eq!(
        commands(&whois),
        ["311", "312", "319", "338", "317", "318"],
        "{whois:?}"
    );
    assert_eq!(
        reply(&whois[0], "311"),
        ["bob", "alice", "alice", "127.0.0.1", "*", "Real alice"]
    );
    assert_eq!(reply(&whois[1], "312")[..3], ["bob", "alice", NAME]);
    assert_eq!(reply(&whois[2], "319"), ["bob", "alice", "@#room @#two"]);
    // The address and port alice connects from, as the coursework's whois shows.
    assert_eq!(
        reply(&whois[3], "338")[..3],
        ["bob", "alice", &alice.local_addr().to_string()]
    );
    let idle = reply(&whois[4], "317");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let idle_secs: u64 = idle[2].parse().expect("idle seconds");
    let signon: u64 = idle[3].parse().expect("signon time");
    assert!(
        idle_secs < 60 && signon <= now && now - signon < 60,
        "{idle:?}"
    );
    assert_eq!(
        reply(&whois[5], "318"),
        ["bob", "alice", "End of /WHOIS list"]
    );
    bob.send("WHOIS carol");
    let whois = bob.sync();
    assert_eq!(commands(&whois), ["311", "312", "338", "317", "318"]);
    assert_eq!(reply(&whois[2], "338")[2], carol.local_addr().to_string());

    bob.send("WHOIS nobody");
    let whois = bob.sync();
    assert_eq!(commands(&whois), ["401", "318"]);
    assert_eq!(reply(&whois[0], "401")[1], "nobody");
    assert_eq!(reply(&whois[1], "318")[1], "nobody");
    bob.send("WHOIS");
    assert_eq!(reply(&bob.next(), "431")[0], "bob");
}

/// Step: 1
/// Hint: step 1: MODE is given; it needs read(2) and write(2) to work
/// (README.md, "Write it yourself", step 1).
fn mode_answers_what_clients_ask_and_operators_give_operator_status(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob] = users(&server, ["alice", "bob"]);
    join_all(&mut [&mut alice, &mut bob], "#room");
    bob.send("MODE #room");
    assert_eq!(commands(&bob.sync()), ["324", "329"]);
    bob.send("MODE #room b");
    assert_eq!(commands(&bob.sync()), ["368"]);
    bob.send("MODE #room +o bob");
    assert_eq!(reply(&bob.next(), "482")[..2], ["bob", "#room"]);
    alice.send("MODE #room +o bob");
    let mode = ":alice!alice@127.0.0.1 MODE #room +o bob";
    assert_eq!(alice.next(), mode);
    assert_eq!(bob.next(), mode);
    bob.send("NAMES #room");
    assert_eq!(replies(&bob.sync(), "353")[0][3], "@alice @bob");
    bob.send("MODE bob +i");
    assert_eq!(bob.next(), ":bob MODE bob +i");
    bob.send("MODE bob");
    assert_eq!(reply(&bob.next(), "221"), ["bob", "+i"]);
    bob.send("MODE alice +i");
    assert_eq!(reply(&bob.next(), "502")[0], "bob");
}

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing
/// Step: 1
/// Hint: step 1: read(2) of 0 or an error (ECONNRESET) marks the client gone;
/// the end of the turn takes it out of the list and close(2)s its socket
/// (README.md, "Write it yourself", step 1).
fn quit_is_relayed_and_any_disconnect_frees_the_nick(twin: Twin) {
    let mut server = start(twin, &[]);
    let [mut alice, mut bob, carol, mut dave] = users(&server, ["alice", "bob", "carol", "dave"]);
    let mut carol = carol;
    join_all(&mut [&mut alice, &mut bob, &mut carol, &mut dave], "#room");

    bob.send("QUIT :see you");
    assert_eq!(bob.next(), "ERROR :Closing link: 127.0.0.1 (see you)");
    assert_eq!(bob.line(), None, "the server closes after ERROR");
    assert_eq!(alice.next(), ":bob!bob@127.0.0.1 QUIT :see you");
    server.expect("bob quit: see you");

    // A reset, then a plain close: the channel hears of both.
    reset(carol.into_stream());
    assert_eq!(
        alice.next(),
        ":carol!carol@127.0.0.1 QUIT :Connection reset by peer"
    );
    dave.sync(); // nothing left unread: close(2) then sends a FIN, not a RST
    drop(dave);
    assert_eq!(alice.next(), ":dave!dave@127.0.0.1 QUIT :Connection closed");

    // Their nicks are free again.
    for nick in ["bob", "carol", "dave"] {
        let (mut again, burst) = Irc::register(&server, nick);
        assert_eq!(reply(&burst[0], "001")[0], nick);
        again.send("QUIT");
        assert_eq!(again.next(), "ERROR :Closing link: 127.0.0.1 (Client quit)");
    }
    assert!(
        alice.sync().is_empty(),
        "they were on no channel of alice's"
    );
}

/// Step: 1
/// Hint: step 1: at the end of the turn, a gone client is taken out of the
/// list the pollfd array is made of, and its socket is close(2)d: the client
/// then reads the end of file at once (README.md, "Write it yourself", step 1).
fn a_client_that_leaves_is_closed_at_once_and_costs_nothing(twin: Twin) {
    use std::io::Read;
    let mut server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);
    // The server's FIN, within 3 s: short, since a server that never
    // closes the socket never sends it.
    let end_of_file = |irc: Irc, what: &str| {
        let mut stream = irc.into_stream();
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("a read timeout");
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "{what}: bytes after the end: {rest:?}"),
            Err(e) => panic!("{what}: no end of file from the server within 3 s: {e}"),
        }
    };
    alice.send("QUIT :bye");
    assert_eq!(alice.next(), "ERROR :Closing link: 127.0.0.1 (bye)");
    end_of_file(alice, "after QUIT");
    server.expect(" alice quit: bye");
    // An end of file without QUIT: the server closes too.
    bob.sync();
    bob.stream()
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let address = bob.local_addr();
    end_of_file(bob, "after the client's end of file");
    server.expect(&format!("{address} disconnected"));
    // Gone from the list, they cost nothing: poll(2) sleeps.
    let busy = busy_during(server.pid(), Duration::from_millis(300));
    assert!(
        busy < Duration::from_millis(150),
        "the server ran (or waited to run) {busy:?} of 0.3 s: spinning"
    );
    assert!(carol.sync().is_empty());
    let (_again, burst) = Irc::register(&server, "alice");
    assert_eq!(reply(&burst[0], "001")[0], "alice");
}

/// Step: 1
/// Hint: step 1: read(2) into conn.input.space() (c->in.buf after its c->in.len
/// bytes), never past the room left (README.md, "Write it yourself", step 1).
fn an_overlong_line_gets_417_and_the_connection_stays_usable(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob] = users(&server, ["alice", "bob"]);
    // 512 bytes with CR LF: the longest line allowed. Relayed with a longer
    // prefix, it is cut to 512 bytes.
    let text = "x".repeat(512 - "PRIVMSG bob :".len() - 2);
    alice.send(&format!("PRIVMSG bob :{text}"));
    let relayed = bob.next();
    assert!(relayed.len() <= 510, "{}", relayed.len());
    assert!(relayed.starts_with(":alice!alice@127.0.0.1 PRIVMSG bob :xxx"));
    // One byte more: refused with 417, and none of it is delivered.
    alice.send(&format!("PRIVMSG bob :{text}x"));
    assert_eq!(
        reply(&alice.next(), "417"),
        ["alice", "Input line was too long"]
    );
    // 100 KB without a newline: one 417, not a growing buffer.
    alice.send_raw(format!("PRIVMSG bob :{}", "y".repeat(100_000)).as_bytes());
    alice.send("");
    assert_eq!(commands(&alice.sync()), ["417"]);
    assert!(bob.sync().is_empty());
    // A bare LF ends a line too.
    alice.send_raw(b"PRIVMSG bob :still here\n");
    assert_eq!(bob.next(), ":alice!alice@127.0.0.1 PRIVMSG bob :still here");
}

/// The next `count` lines that come on `stream`, as bytes, CR LF included:
/// lines that need not be UTF-8, which `Irc::next` could not read.
fn raw_lines(stream: &std::net::TcpStream, count: usize) -> Vec<Vec<u8>> {
    use std::io::Read;
    let mut stream = stream;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let mut lines = vec![Vec::new()];
    let mut byte = [0u8];
    while lines.len() <= count {
        stream
            .read_exact(&mut byte)
            .expect("a line from the server");
        let line = lines.last_mut().expect("one line at least");
        line.push(byte[0]);
        if line.ends_with(b"\r\n") {
            lines.push(Vec::new());
        }
    }
    lines.pop();
    lines
}

/// Step: 1
/// Hint: step 1: read(2) and write(2) move bytes, no text: nothing converts or
/// cuts them (README.md, "Write it yourself", step 1).
fn text_is_relayed_as_the_bytes_it_came_in(twin: Twin) {
    // IRC names no character set (RFC 2812 §2.2): a server relays bytes
    // without reading them as text.
    let server = start(twin, &[]);
    let [mut alice, mut bob] = users(&server, ["alice", "bob"]);
    bob.sync(); // nothing more is coming: the raw reads below see it all
    let from = b":alice!alice@127.0.0.1 PRIVMSG bob :";
    // Latin-1, which is not UTF-8, comes out as it went in.
    alice.send_raw(b"PRIVMSG bob :caf\xe9 cr\xe8me\r\n");
    // A NUL, which no message may hold, ends the line.
    alice.send_raw(b"PRIVMSG bob :hi\0QUIT\r\n");
    // Relayed with a longer prefix, a line of 512 bytes is cut at its 510th
    // byte, here in the middle of a character (é is two bytes, C3 A9).
    let text = format!("x{}", "é".repeat(248));
    alice.send(&format!("PRIVMSG bob :{text}"));
    let lines = raw_lines(bob.stream(), 3);
    assert_eq!(lines[0], [&from[..], b"caf\xe9 cr\xe8me\r\n"].concat());
    assert_eq!(lines[1], [&from[..], b"hi\r\n"].concat());
    assert_eq!(lines[2].len(), 512);
    let kept = &text.as_bytes()[..510 - from.len()];
    assert!(kept.ends_with(b"\xc3"), "the cut falls inside a character");
    assert_eq!(lines[2], [&from[..], kept, b"\r\n"].concat());
}

/// Step: 1
/// Hint: step 1: write(2) to a full socket fails with EAGAIN: stop there
/// (break), keep the rest queued and ask poll(2) for POLLOUT; never wait for
/// that client (README.md, "Write it yourself", step 1).
fn a_client_that_never_reads_is_dropped_while_the_others_carry_on(twin: Twin) {
    let mut server = start(twin, &[]);
    let before = resident_kib(server.pid());
    let [mut hog, mut talker, mut carol] = users(&server, ["hog", "talker", "carol"]);
    join_all(&mut [&mut carol, &mut hog], "#room");
    // The hog reads nothing from now on; a small receive buffer makes its
    // socket fill sooner.
    nix::sys::socket::setsockopt(hog.stream(), nix::sys::socket::sockopt::RcvBuf, &4096)
        .expect("SO_RCVBUF");
    let hog_address = hog.local_addr();

    let stop = Arc::new(AtomicBool::new(false));
    let flooding = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let line = format!("PRIVMSG hog :{}\r\n", "z".repeat(400));
            let batch = line.repeat(64);
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && sent < 512 * 1024 * 1024 {
                talker.send_raw(batch.as_bytes());
                sent += batch.len();
            }
            talker
        })
    };
    // Served during the flood.
    assert!(carol.sync().is_empty());
    let dropped = server.expect(" too slow: ");
    stop.store(true, Ordering::Relaxed);
    let mut talker = flooding.join().expect("the flooding thread");
    assert!(dropped.starts_with(&hog_address.to_string()), "{dropped}");
    server.expect(&format!("{hog_address} disconnected"));

    // Its channel hears why it left.
    assert_eq!(
        carol.expect(" QUIT "),
        ":hog!hog@127.0.0.1 QUIT :Too slow: output queue full"
    );
    talker.send("PRIVMSG carol :still here");
    assert_eq!(
        carol.next(),
        ":talker!talker@127.0.0.1 PRIVMSG carol :still here"
    );
    let growth = resident_kib(server.pid()).saturating_sub(before);
    assert!(growth < 8 * 1024, "the server grew by {growth} KiB");
    drop(hog);
}

/// Lines of spam, numbered from `from`, as one batch to write.
fn spam(from: usize, count: usize) -> Vec<u8> {
    (from..from + count)
        .map(|n| format!("PRIVMSG #flood :spam {n}\r\n"))
        .collect::<String>()
        .into_bytes()
}

/// Step: 1
/// Hint: step 1: each connection gets POLLIN only while `conn.reading(now)`
/// (C: `reading(client[i], now)`), flood control (RFC 1459 §8.10): a
/// connection whose flood timer is more than 10 s ahead is not read, so that
/// its sender, not the server, holds the flood (README.md, "Write it yourself").
fn a_spammer_is_read_at_the_rfc_pace_and_fills_its_own_socket(twin: Twin) {
    let server = start_with_flood_control(twin);
    let [mut reader, mut other] = users(&server, ["reader", "other"]);
    reader.send("JOIN #flood");
    reader.expect(" 366 ");
    let before = resident_kib(server.pid());

    // The spammer's lines are counted from its connect: NICK, USER, JOIN.
    let connected = Instant::now();
    let mut spammer = Irc::connect(&server);
    spammer.login("spammer");
    spammer.welcome();
    spammer.send("JOIN #flood");
    spammer.expect(" 366 ");
    reader.expect(" JOIN ");
    const BEFORE_SPAM: usize = 3;
    // Spam as fast as the socket takes it. The server reads 512 bytes and
    // then no more: the spammer's socket buffers fill and its write blocks.
    let mut stream = spammer.stream();
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("SO_SNDTIMEO");
    let (mut sent, mut lines, mut blocked) = (0, 0, false);
    while !blocked && sent < 64 * 1024 * 1024 {
        match stream.write(&spam(lines, 1000)) {
            Ok(n) => (sent, lines) = (sent + n, lines + 1000),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                blocked = true
            }
            // With SO_SNDTIMEO set, a stop and continue of this process
            // fails a blocked write with EINTR (signal(7)): write again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("spam: {e}"),
        }
    }
    assert!(
        blocked,
        "the server took {} MiB of spam without the spammer's write blocking",
        sent >> 20
    );

    // RFC 1459 §8.10: by `t` after its connect, at most 6 + t / 2 s of a
    // client's lines are run (the timer may run 10 s ahead, 2 s a line).
    // A loaded machine only makes them later. The fifth spam line is the
    // spammer's eighth: not before 4 s.
    for k in 1..=5 {
        let line = reader.expect(" PRIVMSG #flood ");
        let t = connected.elapsed().as_secs_f64();
        assert!(
            line.ends_with(&format!(":spam {}", k - 1)),
            "{line:?}: lines lost or reordered"
        );
        assert!(
            (BEFORE_SPAM + k) as f64 <= 6.0 + t / 2.0 + 0.05,
            "the spammer's line {} reached the channel {t:.2} s after its connect: \
             faster than RFC 1459 §8.10's one line every 2 s after a burst of 6",
            BEFORE_SPAM + k
        );
    }
    // Held, the spammer costs nothing: poll(2) sleeps until its next line.
    let busy = busy_during(server.pid(), Duration::from_millis(500));
    assert!(
        busy < Duration::from_millis(200),
        "the server ran (or waited to run) {busy:?} of 0.5 s while holding a spammer: spinning"
    );
    // The others are served meanwhile, ahead of the spam that waits.
    other.send("PRIVMSG reader :served meanwhile");
    let lines = reader.until("served meanwhile");
    assert!(
        lines.len() <= 2,
        "the others wait behind the spam: {lines:?}"
    );
    assert!(other.sync().is_empty());
    // A reader that keeps up stays, and the spam waits in the spammer's
    // socket, not in the server's memory.
    assert!(
        reader
            .sync()
            .iter()
            .all(|l| l.contains(" PRIVMSG #flood :spam "))
    );
    let growth = resident_kib(server.pid()).saturating_sub(before);
    assert!(
        growth < 2048,
        "the server grew by {growth} KiB with {} MiB of spam waiting",
        sent >> 20
    );
    drop(spammer);
}

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing
/// Step: 1
/// Hint: step 1: poll(2) gets the given timeout (the next deadline), not -1:
/// that is the server's only clock (README.md, "Write it yourself", step 1).
fn a_silent_client_is_pinged_then_dropped(twin: Twin) {
    let mut server = start(twin, &["--ping-timeout", "1"]);
    let [mut quiet, mut chatty] = users(&server, ["quiet", "chatty"]);
    quiet.answer_pings = false;
    join_all(&mut [&mut quiet, &mut chatty], "#room");
    let started = Instant::now();
    assert_eq!(quiet.expect("PING"), format!(":{NAME} PING :{NAME}"));
    chatty.expect(" PING "); // and answers it
    assert_eq!(
        quiet.next(),
        "ERROR :Closing link: 127.0.0.1 (Ping timeout: 1 seconds)"
    );
    assert_eq!(quiet.line(), None);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // chatty answered its PINGs (Irc::until does) and stays.
    assert_eq!(
        chatty.expect(" QUIT "),
        ":quiet!quiet@127.0.0.1 QUIT :Ping timeout: 1 seconds"
    );
    server.expect(" ping timeout: ");
    // Still there: nothing but the server's PINGs, which it answers (a slow
    // machine may take a second more, and chatty is pinged again).
    let since = chatty.sync();
    assert!(since.iter().all(|l| l.contains(" PING ")), "{since:?}");
}

/// Sends one byte (`x`, never a newline) every 0.3 s on `irc`'s connection
/// from another thread, at most `count` times, until told to stop or a
/// write fails. The thread's result says whether it sent all `count`.
fn trickle(irc: &Irc, count: u32) -> (Arc<AtomicBool>, thread::JoinHandle<bool>) {
    let mut stream = irc.stream().try_clone().expect("clone the stream");
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            for _ in 0..count {
                if stop.load(Ordering::Relaxed) || stream.write_all(b"x").is_err() {
                    return false;
                }
                thread::sleep(Duration::from_millis(300));
            }
            true
        })
    };
    (stop, handle)
}

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing
/// Step: 1
/// Hint: step 1: poll(2) with the given timeout; the read lines' code is given
/// (README.md, "Write it yourself", step 1).
fn bytes_without_a_newline_do_not_keep_a_client_alive(twin: Twin) {
    let mut server = start(twin, &["--ping-timeout", "1"]);
    let [mut slow] = users(&server, ["slow"]);
    slow.answer_pings = false;
    // A slowloris: one byte every 0.3 s for 6 s, never a whole line. The
    // ping timeout (1 s, then 1 s more) is over long before.
    let (stop, trickling) = trickle(&slow, 20);
    assert_eq!(slow.expect(" PING "), format!(":{NAME} PING :{NAME}"));
    assert_eq!(
        slow.next(),
        "ERROR :Closing link: 127.0.0.1 (Ping timeout: 1 seconds)"
    );
    assert_eq!(slow.line(), None);
    stop.store(true, Ordering::Relaxed);
    let sent_all = trickling.join().expect("the trickling thread");
    assert!(!sent_all, "dropped only once the bytes stopped coming");
    server.expect(" ping timeout: silent for 2 s, dropped");
}

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing
/// Step: 1
/// Hint: step 1: poll(2) with the given timeout, and a dropped client closed at
/// the end of the turn (README.md, "Write it yourself", step 1).
fn a_connection_that_does_not_register_in_time_is_dropped_and_its_nick_freed(twin: Twin) {
    let mut server = start(twin, &["--register-timeout", "2", "--ping-timeout", "100"]);
    let started = Instant::now();
    let mut squatter = Irc::connect(&server);
    squatter.nick = "squatter".into();
    let address = squatter.local_addr();
    squatter.send("NICK alice");
    // Registered in time: the registration timeout is nothing to bob.
    let [mut bob] = users(&server, ["bob"]);
    bob.send("NICK alice");
    assert_eq!(reply(&bob.next(), "433")[..2], ["bob", "alice"]);

    // The squatter keeps talking, a PONG and a PING every 0.2 s for 1.2 s,
    // but never sends USER: none of it delays the deadline, 2 s from its
    // connect (counted from its last line, it would be 3.2 s or later). It
    // is silent when the deadline comes: a line crossing the server's
    // close(2) would make it a reset, which can take the ERROR with it.
    for n in 0..7 {
        squatter.send_raw(format!("PONG :x\r\nPING :{n}\r\n").as_bytes());
        assert_eq!(squatter.next(), format!(":{NAME} PONG {NAME} :{n}"));
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        squatter.next(),
        "ERROR :Closing link: 127.0.0.1 (Registration timed out)"
    );
    let elapsed = started.elapsed();
    assert_eq!(squatter.line(), None);
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_millis(3000),
        "dropped after {elapsed:?}, not 2 s after the connect"
    );
    server.expect(&format!(
        "{address} registration timeout: not registered after 2 s, dropped"
    ));
    server.expect(&format!("{address} disconnected"));

    // The nick is free, and bob is still there.
    let (_alice, burst) = Irc::register(&server, "alice");
    assert_eq!(reply(&burst[0], "001")[0], "alice");
    assert!(bob.sync().is_empty());
}

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing
/// Step: 1
/// Hint: step 1: poll(2) with the given timeout, and a dropped client closed at
/// the end of the turn (README.md, "Write it yourself", step 1).
fn an_unregistered_trickle_is_dropped_by_the_registration_timeout(twin: Twin) {
    let mut server = start(twin, &["--register-timeout", "1", "--ping-timeout", "100"]);
    let mut slow = Irc::connect(&server);
    slow.nick = "slow".into();
    slow.send("NICK slow");
    let (stop, trickling) = trickle(&slow, 20);
    assert_eq!(
        slow.next(),
        "ERROR :Closing link: 127.0.0.1 (Registration timed out)"
    );
    assert_eq!(slow.line(), None);
    stop.store(true, Ordering::Relaxed);
    let sent_all = trickling.join().expect("the trickling thread");
    assert!(!sent_all, "dropped only once the bytes stopped coming");
    server.expect(" registration timeout: not registered after 1 s, dropped");
}

/// Step: 1
/// Hint: step 1: accept4(2) until EAGAIN, the pollfd array as long as the
/// clients, every queue written each turn (README.md, "Write it yourself", step
/// 1).
fn a_thousand_users_register_and_exchange_messages(twin: Twin) {
    const USERS: usize = 1000;
    if !descriptors_for(twin, 2 * USERS as u64 + 100) {
        return;
    }
    let mut server = start(twin, &[]);
    server.expect("descriptor limit ");
    let started = Instant::now();
    let mut users: Vec<Irc> = (0..USERS).map(|_| Irc::connect(&server)).collect();
    for (i, user) in users.iter_mut().enumerate() {
        user.login(&format!("u{i}"));
    }
    for user in &mut users {
        assert_eq!(commands(&user.welcome())[0], "001");
    }
    let registered = started.elapsed();
    // Each tells the next one; u0, once it has heard from the last one (so
    // that its own message is not read first, in the same turn: a server
    // that sends $* back to its sender would fail here by chance), tells
    // everyone.
    for (i, user) in users.iter_mut().enumerate() {
        user.send(&format!("PRIVMSG u{} :from u{i}", (i + 1) % USERS));
    }
    let last = USERS - 1;
    assert_eq!(
        users[0].next(),
        format!(":u{last}!u{last}@127.0.0.1 PRIVMSG u0 :from u{last}")
    );
    users[0].send("PRIVMSG $* :hello everyone");
    for (i, user) in users.iter_mut().enumerate().skip(1) {
        let previous = i - 1;
        let mut want = vec![
            format!(":u{previous}!u{previous}@127.0.0.1 PRIVMSG u{i} :from u{previous}"),
            ":u0!u0@127.0.0.1 PRIVMSG $* :hello everyone".to_string(),
        ];
        let mut got: Vec<String> = (0..want.len()).map(|_| user.next()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "u{i}");
    }
    let elapsed = started.elapsed();
    eprintln!("{USERS} users: registered in {registered:?}, messages exchanged in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    assert!(server.is_running());
}

/// Step: 1
/// Hint: step 1: the arguments are given; the listening socket is yours:
/// socket(2), bind(2), listen(2), getsockname(2) (README.md, "Write it
/// yourself", step 1).
fn the_server_shares_the_common_interface(twin: Twin) {
    let server = server_bin(twin);
    check_server_arguments(&server);
    check_usage_error(&server, &["--ping-timeout", "0"], "invalid SECS '0'");
    check_usage_error(&server, &["--ping-timeout", "soon"], "invalid SECS 'soon'");
    check_usage_error(&server, &["--register-timeout", "0"], "invalid SECS '0'");
    check_usage_error(
        &server,
        &["--register-timeout", "86401"],
        "invalid SECS '86401'",
    );
    check_usage_error(
        &server,
        &["--name", "my server"],
        "invalid NAME 'my server'",
    );
    check_usage_error(&server, &["--name"], "--name needs a value");
}

/// Step: 1
/// Hint: step 1: read(2) failing with ECONNRESET marks the client gone: it is
/// closed and forgotten at the end of the turn (README.md, "Write it yourself",
/// step 1).
fn a_reset_before_registration_frees_the_nick_it_held(twin: Twin) {
    let mut server = start(twin, &[]);
    let mut half = Irc::connect(&server);
    half.send("NICK ghost");
    half.sync(); // the server has the NICK (and has accepted the connection)
    let address = half.local_addr();
    reset(half.into_stream());
    server.expect(&format!("{address} disconnected"));
    let (_ghost, burst) = Irc::register(&server, "ghost");
    assert_eq!(reply(&burst[0], "001")[0], "ghost");
}

/// `--help` and every mistake on the command line: the same bytes on
/// stdout and stderr, and the same exit status, from both servers.
#[test]
fn both_servers_agree_on_their_arguments() {
    check_twins_agree_on_arguments(
        &server_bin(Twin::Rust),
        &server_bin(Twin::C),
        &[
            &["--help"],
            &["-h", "--bogus"],
            &["abc"],
            &["70000"],
            &["+"],
            &["-1"],
            &["--bogus"],
            &["4242", "4243"],
            &["--bind"],
            &["--bind", "nowhere"],
            &["--bind=::1x"],
            &["--name"],
            &["--name", ""],
            &["--name", "my server"],
            &["--name", "a_b"],
            &["--name", &"x".repeat(64)],
            &["--name=bad!", "--ping-timeout", "0"],
            &["--ping-timeout"],
            &["--ping-timeout", "0"],
            &["--ping-timeout", "86401"],
            &["--ping-timeout", "+0"],
            &["--ping-timeout", "soon"],
            &["--ping-timeout", ""],
            &["--ping-timeout", "99999999999999999999999"],
            &["--ping-timeout", "-5"],
            &["--register-timeout"],
            &["--register-timeout", "0"],
            &["--register-timeout", "86401"],
            &["--register-timeout=+0"],
            &["--register-timeout", "soon"],
            &["--register-timeout", ""],
            &["--register-timeout", "99999999999999999999999"],
            &["--register-timeout", "-5"],
            &["--register-timeout", "0", "--ping-timeout", "0"],
            &["--register-timeout", "soon", "--ping-timeout", "0"],
            &["--register-timeout", "0", "--name", "bad name"],
            &["--register-timeout", "86400", "extra"],
            &["--flood-penalty"],
            &["--flood-penalty", "61"],
            &["--flood-penalty", "-1"],
            &["--flood-penalty", "2s"],
            &["--flood-penalty", ""],
            &["--flood-penalty=99999999999999999999999"],
            &["--flood-penalty", "0", "--ping-timeout", "0"],
            &["--flood-penalty", "60", "extra"],
            &["--name", "ok", "extra", "more"],
            &["--bind", "nowhere", "--name", "bad name"],
            &["--motd"],
            &["--motd", "/nonexistent/motd"],
            &["--motd", ""],
            &["--motd", "/"],
            &["--motd", "/nonexistent/motd", "--name", "bad name"],
            &["--motd", "/nonexistent/motd", "--ping-timeout", "0"],
        ],
    );
}

/// Step: 1
/// Hint: step 1: keep the given limit and spare descriptor code before
/// listening (README.md, "Write it yourself", step 1).
fn a_limit_with_no_room_for_a_client_is_said_at_once(twin: Twin) {
    // 4: stdio and the listener, no room for the spare; 5: no room for a client.
    check_no_room_for_a_client(&server_bin(twin), &[4, 5]);
}

/// Needs: a_client_that_leaves_is_closed_at_once_and_costs_nothing
/// Step: 1
/// Hint: step 1: accept4(2) failing with EMFILE: warn once, and
/// spare.refuse_one (refuse_one) closes the waiting connection, as in lab 04
/// (README.md, "Write it yourself", step 1).
fn out_of_descriptors_new_connections_are_closed_without_spinning(twin: Twin) {
    // 7: stdio, the listener, the spare and two clients (the server raises
    // its soft limit to the hard one: both are set).
    let script = format!(
        "ulimit -n 7 && exec {} 0 --bind 127.0.0.1",
        server_bin(twin)
    );
    let mut server = Server::start("/bin/sh", &["-c", &script]);
    server.expect("descriptor limit 7");
    let (mut alice, _) = Irc::register(&server, "alice");
    let (bob, _) = Irc::register(&server, "bob");
    let mut third = Irc::connect(&server);
    third.nick = "third".to_string();
    assert_eq!(third.line(), None, "a third client must be closed at once");
    server.expect_err("Too many open files; closing new connections until one frees");
    // Nothing signals "not spinning": measure the CPU used over a while.
    let busy = busy_during(server.pid(), Duration::from_millis(500));
    assert!(
        busy < Duration::from_millis(200),
        "the server ran (or waited to run) {busy:?} of 0.5 s: spinning"
    );
    // The two users still talk, and when one leaves a new one gets in.
    alice.send("PRIVMSG bob :still here?");
    drop(bob);
    server.expect(" disconnected");
    let (mut carol, _) = Irc::register(&server, "carol");
    carol.send("PRIVMSG alice :room again");
    alice.expect("room again");
}

/// Step: 1
/// Hint: step 1: CAP is given: a client that opens with CAP LS or CAP REQ
/// (irssi, weechat) is welcomed only after its CAP END, even once NICK and
/// USER are in; one that never sends CAP registers as before (README.md,
/// "Registration").
fn cap_negotiation_holds_the_welcome_until_cap_end(twin: Twin) {
    let server = start(twin, &[]);
    let mut bob = Irc::connect(&server);
    bob.send("CAP LS 302");
    assert_eq!(bob.next(), format!(":{NAME} CAP * LS :"));
    bob.send("CAP REQ :multi-prefix sasl");
    assert_eq!(bob.next(), format!(":{NAME} CAP * NAK :multi-prefix sasl"));
    bob.send("CAP LIST");
    assert_eq!(bob.next(), format!(":{NAME} CAP * LIST :"));
    bob.login("bob");
    let held = bob.sync();
    assert!(held.is_empty(), "no welcome before CAP END: {held:?}");
    bob.send("JOIN #early");
    assert_eq!(reply(&bob.next(), "451")[0], "bob");
    bob.send("CAP END");
    let burst = bob.welcome();
    assert_eq!(commands(&burst), WELCOME_ALONE, "{burst:#?}");
    assert_eq!(reply(&burst[0], "001")[0], "bob");
    bob.send("CAP END");
    assert!(bob.sync().is_empty());
    bob.send("CAP LS");
    assert_eq!(reply(&bob.next(), "CAP"), ["bob", "LS", ""]);
    assert!(bob.sync().is_empty());

    // CAP REQ alone holds it too; CAP END before NICK and USER holds nothing.
    let mut carol = Irc::connect(&server);
    carol.send("CAP REQ :away-notify");
    assert_eq!(reply(&carol.next(), "CAP"), ["*", "NAK", "away-notify"]);
    carol.login("carol");
    assert!(carol.sync().is_empty());
    carol.send("CAP END");
    assert_eq!(commands(&carol.welcome())[0], "001");
    let mut dave = Irc::connect(&server);
    dave.send("CAP LS 302");
    assert_eq!(reply(&dave.next(), "CAP"), ["*", "LS", ""]);
    dave.send("CAP END");
    assert!(dave.sync().is_empty());
    dave.login("dave");
    assert_eq!(commands(&dave.welcome())[0], "001");
}

/// Step: 1
/// Hint: step 1: MODE is given: `MODE #chan +o nick` answers 401 (no such
/// nick) for a nick nobody holds, 441 for a user not on the channel (README.md,
/// "Commands and their replies").
fn mode_o_tells_an_unknown_nick_from_one_not_on_the_channel(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, _carol] = users(&server, ["alice", "carol"]);
    alice.send("JOIN #room");
    alice.expect(" 366 ");
    alice.send("MODE #room +o nobody");
    assert_eq!(
        reply(&alice.next(), "401"),
        ["alice", "nobody", "No such nick/channel"]
    );
    alice.send("MODE #room +o CAROL");
    assert_eq!(
        reply(&alice.next(), "441"),
        ["alice", "CAROL", "#room", "They aren't on that channel"]
    );
    assert!(alice.sync().is_empty());
}

/// Step: 1
/// Hint: step 1: USER is given: `USER name * * :` with an empty real name
/// lacks a parameter, 461, and does not register (README.md, "Registration").
fn user_with_an_empty_real_name_gets_461(twin: Twin) {
    let server = start(twin, &[]);
    let mut bob = Irc::connect(&server);
    bob.send("NICK bob");
    bob.send("USER bob * * :");
    assert_eq!(
        reply(&bob.next(), "461"),
        ["bob", "USER", "Not enough parameters"]
    );
    assert!(bob.sync().is_empty());
    bob.send("JOIN #early");
    assert_eq!(reply(&bob.next(), "451")[0], "bob");
    bob.send("USER bob * * :Bob");
    assert_eq!(commands(&bob.welcome())[0], "001");
}

/// Needs: nicknames_follow_the_rules_and_are_unique_whatever_their_case
/// Step: 2
/// Hint: step 2: WHO * and WHO mask leave out a user with mode +i unless it is
/// the asker or shares a channel with the asker; WHO #chan lists every member
/// (README.md, "Commands and their replies").
fn an_invisible_user_is_left_out_of_who_but_for_its_channel_peers(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);
    join_all(&mut [&mut alice, &mut bob], "#room");
    alice.send("MODE alice +i");
    assert_eq!(alice.next(), ":alice MODE alice +i");
    let who_nicks = |irc: &mut Irc, mask: &str| -> Vec<String> {
        irc.send(&format!("WHO {mask}"));
        let who = irc.sync();
        assert_eq!(reply(who.last().expect("315"), "315")[1], mask, "{who:?}");
        let mut nicks: Vec<String> = replies(&who, "352")
            .into_iter()
            .map(|p| p[5].clone())
            .collect();
        nicks.sort();
        nicks
    };
    // carol shares no channel with alice: alice is not there for her.
    assert_eq!(who_nicks(&mut carol, "*"), ["bob", "carol"]);
    assert_eq!(who_nicks(&mut carol, "al*"), Vec::<String>::new());
    assert_eq!(who_nicks(&mut carol, "0"), ["bob", "carol"]);
    // bob shares #room with her; alice always sees herself.
    assert_eq!(who_nicks(&mut bob, "*"), ["alice", "bob", "carol"]);
    assert_eq!(who_nicks(&mut bob, "al*"), ["alice"]);
    assert_eq!(who_nicks(&mut alice, "*"), ["alice", "bob", "carol"]);
    // A channel's members are listed to anyone, as before.
    assert_eq!(who_nicks(&mut carol, "#room"), ["alice", "bob"]);
    // Once she is visible again, carol sees her.
    alice.send("MODE alice -i");
    assert_eq!(alice.next(), ":alice MODE alice -i");
    assert_eq!(who_nicks(&mut carol, "al*"), ["alice"]);
}

/// Needs: nicknames_follow_the_rules_and_are_unique_whatever_their_case
/// Step: 2
/// Hint: step 2: AWAY is given (306, 305); a PRIVMSG to an away user sends
/// 301 back to its sender (not for a NOTICE), WHOIS adds 301, WHO flags it G
/// for H, USERHOST says `-` for `+` (README.md, "Commands and their replies").
fn away_is_told_to_senders_whois_who_and_userhost(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);
    join_all(&mut [&mut alice, &mut bob], "#room");
    bob.send("AWAY :gone fishing");
    assert_eq!(
        reply(&bob.next(), "306"),
        ["bob", "You have been marked as being away"]
    );

    alice.send("PRIVMSG bob :hi");
    assert_eq!(bob.next(), ":alice!alice@127.0.0.1 PRIVMSG bob :hi");
    assert_eq!(
        reply(&alice.next(), "301"),
        ["alice", "bob", "gone fishing"]
    );
    alice.send("NOTICE bob :psst"); // a NOTICE is never answered
    alice.send("PRIVMSG #room :all"); // nor a message to a channel
    assert!(alice.sync().is_empty());
    assert_eq!(commands(&bob.sync()), ["NOTICE", "PRIVMSG"]);

    carol.send("WHOIS bob");
    let whois = carol.until(" 318 ");
    assert_eq!(replies(&whois, "301"), [["carol", "bob", "gone fishing"]]);
    carol.send("WHO #room");
    let who = replies(&carol.sync(), "352");
    let flags: Vec<&str> = who.iter().map(|p| p[6].as_str()).collect();
    assert_eq!(flags, ["H@", "G"], "{who:?}");
    carol.send("USERHOST bob nobody ALICE");
    assert_eq!(
        reply(&carol.next(), "302"),
        ["carol", "bob=-bob@127.0.0.1 alice=+alice@127.0.0.1"]
    );
    // Five nicks at most; none known: an empty 302.
    carol.send("USERHOST x1 x2 x3 x4 x5 carol");
    assert_eq!(reply(&carol.next(), "302"), ["carol", ""]);
    carol.send("USERHOST");
    assert_eq!(reply(&carol.next(), "461")[..2], ["carol", "USERHOST"]);

    bob.send("AWAY");
    assert_eq!(
        reply(&bob.next(), "305"),
        ["bob", "You are no longer marked as being away"]
    );
    alice.send("PRIVMSG bob :back?");
    assert!(alice.sync().is_empty());
    carol.send("WHO bob");
    assert_eq!(reply(&carol.sync()[0], "352")[6], "H");
    carol.send("USERHOST bob");
    assert_eq!(reply(&carol.next(), "302")[1], "bob=+bob@127.0.0.1");
}

/// The replies of LUSERS, from `irc`, as (numeric, parameters) pairs.
fn lusers(irc: &mut Irc) -> Vec<(String, Vec<String>)> {
    irc.send("LUSERS");
    irc.sync()
        .iter()
        .map(|l| parse(l))
        .map(|m| (m.command, m.params))
        .collect()
}

/// Step: 1
/// Hint: step 1: LUSERS is given: 251 (users not +i, and the +i), 253 (the
/// unregistered, if any), 254, 255, then 265 and 266 (users now, and the most
/// at once), in the welcome burst too; that needs many clients read and
/// written at once (README.md, "Commands and their replies").
fn lusers_counts_the_users_the_invisible_and_the_most_at_once(twin: Twin) {
    let mut server = start(twin, &[]);
    let [mut alice, mut bob] = users(&server, ["alice", "bob"]);
    bob.send("MODE bob +i");
    bob.expect(" MODE ");
    alice.send("JOIN #room");
    alice.expect(" 366 ");
    let mut unknown = Irc::connect(&server);
    unknown.send("NICK ghost");
    unknown.sync(); // the server has accepted it
    let mut expected = vec![
        (
            "251",
            vec!["alice", "There are 1 users and 1 invisible on 1 servers"],
        ),
        ("253", vec!["alice", "1", "unknown connection(s)"]),
        ("254", vec!["alice", "1", "channels formed"]),
        ("255", vec!["alice", "I have 2 clients and 0 servers"]),
        (
            "265",
            vec!["alice", "2", "2", "Current local users 2, max 2"],
        ),
        (
            "266",
            vec!["alice", "2", "2", "Current global users 2, max 2"],
        ),
    ];
    let owned = |pairs: &[(&str, Vec<&str>)]| -> Vec<(String, Vec<String>)> {
        pairs
            .iter()
            .map(|(n, p)| (n.to_string(), p.iter().map(|s| s.to_string()).collect()))
            .collect()
    };
    assert_eq!(lusers(&mut alice), owned(&expected));
    // No operators here: no 252 (it counts them, a positive number).

    // The burst says the same, after 005 and before the MOTD's 422.
    let (_carol, burst) = Irc::register(&server, "carol");
    let burst = commands(&burst);
    assert_eq!(
        burst[5..],
        ["251", "253", "254", "255", "265", "266", "422"],
        "{burst:?}"
    );
    // Gone: the most at once stays 3, who left is no longer counted.
    for gone in [unknown, bob] {
        let address = gone.local_addr();
        drop(gone);
        server.expect(&format!("{address} disconnected"));
    }
    expected[0].1[1] = "There are 2 users and 0 invisible on 1 servers";
    expected.remove(1);
    expected[2].1[1] = "I have 2 clients and 0 servers";
    expected[3].1 = vec!["alice", "2", "3", "Current local users 2, max 3"];
    expected[4].1 = vec!["alice", "2", "3", "Current global users 2, max 3"];
    assert_eq!(lusers(&mut alice), owned(&expected));
    alice.send("PART #room");
    alice.expect(" PART ");
    assert_eq!(lusers(&mut alice)[1].1, ["alice", "0", "channels formed"]);
}

/// Needs: nicknames_follow_the_rules_and_are_unique_whatever_their_case
/// Step: 2
/// Hint: step 2: WHOWAS is given; it answers from the nicks written down as
/// a registered user gives one up: NICK must go on to the change (and its
/// self.remember / remember) once the rules are checked (README.md, "The
/// commands").
fn whowas_remembers_the_nicks_given_up_most_recent_first(twin: Twin) {
    let mut server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);
    alice.send("NICK alicia");
    alice.expect(" NICK ");
    // Another user takes the nick and gives it up in turn, by leaving.
    let mut second = Irc::connect(&server);
    second.nick = "Alice".into();
    second.send("NICK Alice\r\nUSER second 0 * :Second Alice");
    second.welcome();
    second.send("QUIT :bye");
    second.expect("ERROR");
    server.expect("Alice quit: bye");
    // An unregistered connection's nick is no one's: not remembered.
    let mut ghost = Irc::connect(&server);
    ghost.send("NICK ghost");
    ghost.sync();
    let address = ghost.local_addr();
    drop(ghost);
    server.expect(&format!("{address} disconnected"));

    let whowas = |irc: &mut Irc, args: &str| -> Vec<(String, Vec<String>)> {
        irc.send(&format!("WHOWAS {args}"));
        irc.until(" 369 ")
            .iter()
            .map(|l| parse(l))
            .map(|m| (m.command, m.params))
            .collect()
    };
    let lines = whowas(&mut carol, "ALICE");
    let numerics: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(numerics, ["314", "312", "314", "312", "369"], "{lines:?}");
    let second_was = ["carol", "Alice", "second", "127.0.0.1", "*", "Second Alice"];
    assert_eq!(lines[0].1, second_was);
    let alice_was = ["carol", "alice", "alice", "127.0.0.1", "*", "Real alice"];
    assert_eq!(lines[2].1, alice_was);
    // 312: the server, and when the nick was given up, as 003 writes dates.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (since, until) = (
        socket_labs::date::utc(now - 60),
        socket_labs::date::utc(now),
    );
    for i in [1, 3] {
        let params = &lines[i].1;
        assert_eq!(params[..3], ["carol", lines[i - 1].1[1].as_str(), NAME]);
        assert!(since <= params[3] && params[3] <= until, "{params:?}");
    }
    assert_eq!(lines[4].1, ["carol", "ALICE", "End of WHOWAS"]);
    // A count: the most recent only; a count that is not a positive number: all.
    let numerics = |lines: Vec<(String, Vec<String>)>| -> Vec<String> {
        lines.into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(
        numerics(whowas(&mut carol, "alice 1")),
        ["314", "312", "369"]
    );
    assert_eq!(whowas(&mut carol, "alice 1")[0].1, second_was);
    assert_eq!(numerics(whowas(&mut carol, "alice 0")).len(), 5);
    assert_eq!(numerics(whowas(&mut carol, "alice x")).len(), 5);
    for nick in ["ghost", "alicia", "nobody"] {
        let lines = whowas(&mut carol, nick);
        assert_eq!(lines[0].1, ["carol", nick, "There was no such nickname"]);
        assert_eq!(numerics(lines), ["406", "369"]);
    }
    carol.send("WHOWAS");
    assert_eq!(reply(&carol.next(), "431"), ["carol", "No nickname given"]);
    assert!(carol.sync().is_empty());

    // The history is bounded: 100 nicks, the oldest forgotten first. After
    // alice and Alice, bob's 100 renames write down bob and r1 to r99.
    for i in 1..=100 {
        bob.send(&format!("NICK r{i}"));
    }
    bob.nick = "r100".into();
    assert_eq!(commands(&bob.sync()), vec!["NICK"; 100]);
    let found = |irc: &mut Irc, nick: &str| whowas(irc, nick)[0].0 == "314";
    assert!(!found(&mut carol, "alice"), "the two oldest are forgotten");
    assert!(found(&mut carol, "bob") && found(&mut carol, "r99"));
    assert!(!found(&mut carol, "r100"), "r100 is bob's nick now");
    bob.send("NICK r101");
    bob.sync();
    assert!(!found(&mut carol, "bob"), "bob was the oldest");
    assert!(found(&mut carol, "r100"));
}

/// Step: 1
/// Hint: step 1: TIME is given: 391 with the server's name, the time in
/// seconds since 1970 and as a date; its reply needs read(2) and write(2) to
/// work (README.md, "Commands and their replies").
fn time_tells_the_server_s_clock(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice] = users(&server, ["alice"]);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    alice.send("TIME");
    let time = reply(&alice.next(), "391");
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(time.len(), 4, "{time:?}");
    assert_eq!(time[..2], ["alice", NAME]);
    let unix: u64 = time[2].parse().expect("seconds since 1970");
    // time(2) may read a coarser clock than SystemTime's, a tick behind:
    // across a second's boundary it says the second before.
    assert!(before - 1 <= unix && unix <= after, "{time:?}");
    assert_eq!(time[3], socket_labs::date::utc(unix), "in UTC, as 003");
    assert!(alice.sync().is_empty());
}

/// Step: 1
/// Hint: step 1: --motd and MOTD are given: the file is read once, before the
/// socket; its lines come as 375, a 372 each and 376, in the burst and for
/// MOTD; a file that cannot be read is `open FILE: reason`, exit 1 (README.md,
/// "Commands and their replies").
fn motd_comes_from_the_file_given_at_start_up(twin: Twin) {
    let dir = std::env::temp_dir().join(format!("lab07-motd-{}-{twin:?}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let file = dir.join("motd.txt");
    let mut text = b"Welcome to lab 07\r\n\ntab\there\0hidden\n".to_vec();
    text.extend("é".repeat(300).as_bytes()); // 600 bytes: cut at 400
    text.push(b'\n');
    for i in 5..=120 {
        text.extend(format!("line {i}\n").as_bytes());
    }
    std::fs::write(&file, &text).expect("write the MOTD file");
    let path = file.to_str().expect("a UTF-8 path");
    let server = start(twin, &["--motd", path]);
    let mut motd = vec![
        "- Welcome to lab 07".to_string(),
        "- ".to_string(),
        "- tab\there".to_string(),
        format!("- {}", "é".repeat(200)),
    ];
    motd.extend((5..=100).map(|i| format!("- line {i}")));
    let check = |lines: &[String]| {
        let start = lines.iter().position(|l| parse(l).command == "375");
        let lines = &lines[start.unwrap_or_else(|| panic!("no 375 in {lines:?}"))..];
        assert_eq!(
            reply(&lines[0], "375"),
            ["alice", &format!("- {NAME} Message of the day - ")]
        );
        let got: Vec<String> = lines[1..lines.len() - 1]
            .iter()
            .map(|l| reply(l, "372")[1].clone())
            .collect();
        assert_eq!(got, motd);
        let end = reply(lines.last().expect("376"), "376");
        assert_eq!(end, ["alice", "End of /MOTD command."]);
    };
    let (mut alice, burst) = Irc::register(&server, "alice");
    assert_eq!(commands(&burst)[5..10], ["251", "254", "255", "265", "266"]);
    check(&burst);
    alice.send("MOTD");
    check(&alice.until(" 376 "));
    assert!(alice.sync().is_empty());

    // An empty file: a message of the day with no line.
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, b"").expect("write the empty file");
    let server = start(twin, &["--motd", empty.to_str().expect("a UTF-8 path")]);
    let (_bob, burst) = Irc::register(&server, "bob");
    assert_eq!(commands(&burst)[10..], ["375", "376"], "{burst:?}");

    // A file that cannot be read: said, exit 1, before listening.
    let bin = server_bin(twin);
    let missing = dir.join("missing.txt");
    let missing = missing.to_str().expect("a UTF-8 path");
    let folder = dir.to_str().expect("a UTF-8 path");
    for (file, said) in [
        (
            missing,
            format!("open {missing}: No such file or directory\n"),
        ),
        (folder, format!("read {folder}: Is a directory\n")),
    ] {
        let run = common::run(&bin, &["0", "--bind", "127.0.0.1", "--motd", file], b"");
        assert_eq!(run.code(), Some(1), "{}", run.stderr);
        assert_eq!(run.stderr, said);
        assert!(run.stdout.is_empty(), "{}", run.stdout_text());
    }
    let help = common::run(&bin, &["--help"], b"").stdout_text();
    assert!(help.contains("--motd FILE"), "{help}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Step: 1
/// Hint: step 1: KICK and INVITE are given: an operator's KICK goes to every
/// member, the kicked included; an INVITE lets its invitee into a +i channel
/// once, and goes with the channel (README.md, "Commands and their replies").
fn kick_and_invite_let_an_operator_choose_who_is_on_the_channel(twin: Twin) {
    let mut server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);
    join_all(&mut [&mut alice, &mut bob], "#room");

    carol.send("KICK #room");
    assert_eq!(reply(&carol.next(), "461")[..2], ["carol", "KICK"]);
    carol.send("KICK #nowhere bob");
    assert_eq!(reply(&carol.next(), "403")[..2], ["carol", "#nowhere"]);
    carol.send("KICK #room bob");
    assert_eq!(
        reply(&carol.next(), "442"),
        ["carol", "#room", "You're not on that channel"]
    );
    bob.send("KICK #room alice");
    assert_eq!(
        reply(&bob.next(), "482"),
        ["bob", "#room", "You're not channel operator"]
    );
    alice.send("KICK #room nobody,carol");
    assert_eq!(reply(&alice.next(), "401")[..2], ["alice", "nobody"]);
    assert_eq!(
        reply(&alice.next(), "441"),
        ["alice", "carol", "#room", "They aren't on that channel"]
    );
    // At most four nicks (TARGMAX=...,KICK:4).
    alice.send("KICK #room n1,n2,n3,n4,n5");
    let refused = alice.sync();
    assert_eq!(commands(&refused), ["401", "401", "401", "401", "407"]);
    assert_eq!(reply(&refused[4], "407")[1], "n5");

    // Every member sees the KICK, the kicked included, who is then out.
    alice.send("KICK #room BOB :out");
    let kick = ":alice!alice@127.0.0.1 KICK #room bob :out";
    assert_eq!(alice.next(), kick);
    assert_eq!(bob.next(), kick);
    server.expect("alice kicked bob from #room");
    bob.send("PRIVMSG #room :still here?");
    assert_eq!(reply(&bob.next(), "404")[..2], ["bob", "#room"]);

    // +i: only the invited join, each invitation once.
    alice.send("MODE #room +i");
    assert_eq!(alice.next(), ":alice!alice@127.0.0.1 MODE #room +i");
    bob.send("JOIN #room");
    assert_eq!(
        reply(&bob.next(), "473"),
        ["bob", "#room", "Cannot join channel (+i)"]
    );
    bob.send("INVITE carol #room");
    assert_eq!(reply(&bob.next(), "442")[..2], ["bob", "#room"]);
    alice.send("INVITE bob");
    assert_eq!(reply(&alice.next(), "461")[..2], ["alice", "INVITE"]);
    alice.send("INVITE nobody #room");
    assert_eq!(reply(&alice.next(), "401")[..2], ["alice", "nobody"]);
    alice.send("INVITE bob #nowhere");
    assert_eq!(reply(&alice.next(), "403")[..2], ["alice", "#nowhere"]);
    alice.send("INVITE ALICE #room");
    assert_eq!(
        reply(&alice.next(), "443"),
        ["alice", "alice", "#room", "is already on channel"]
    );
    alice.send("INVITE Bob #room");
    assert_eq!(reply(&alice.next(), "341"), ["alice", "bob", "#room"]);
    assert_eq!(bob.next(), ":alice!alice@127.0.0.1 INVITE bob #room");
    bob.send("JOIN #room");
    assert_eq!(bob.until(" 366 ")[0], ":bob!bob@127.0.0.1 JOIN #room");
    assert_eq!(alice.next(), ":bob!bob@127.0.0.1 JOIN #room");
    bob.send("INVITE carol #room");
    assert_eq!(
        reply(&bob.next(), "482"),
        ["bob", "#room", "You're not channel operator"]
    );
    bob.send("PART #room");
    bob.next();
    alice.next();
    bob.send("JOIN #room");
    assert_eq!(
        reply(&bob.next(), "473")[1],
        "#room",
        "the invitation was used"
    );

    // A KICK that empties a channel removes it, and the invitations to it.
    alice.send("INVITE carol #room");
    assert_eq!(reply(&alice.next(), "341")[1], "carol");
    assert_eq!(carol.next(), ":alice!alice@127.0.0.1 INVITE carol #room");
    alice.send("KICK #room alice");
    assert_eq!(
        alice.next(),
        ":alice!alice@127.0.0.1 KICK #room alice :alice"
    );
    alice.send("LIST");
    assert_eq!(commands(&alice.sync()), ["323"]);
    bob.send("JOIN #room");
    assert_eq!(reply(&bob.until(" 366 ")[1], "353")[3], "@bob");
    bob.send("MODE #room +i");
    bob.next();
    carol.send("JOIN #room");
    assert_eq!(reply(&carol.next(), "473")[1], "#room");
}

/// Step: 1
/// Hint: step 1: the channel modes are given: +t keeps the topic to the
/// operators, +n keeps out messages from outside, +m lets only @ and + speak;
/// NAMES, WHO and WHOIS show @ or + (README.md, "Commands and their replies").
fn modes_t_n_m_and_v_decide_who_sets_the_topic_and_who_speaks(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);
    join_all(&mut [&mut alice, &mut bob], "#room");
    let both = |alice: &mut Irc, bob: &mut Irc, line: &str| {
        assert_eq!(alice.next(), line);
        assert_eq!(bob.next(), line);
    };

    // A new channel is +nt.
    bob.send("MODE #room");
    assert_eq!(bob.next(), ":chat.socket-labs 324 bob #room +nt");
    assert_eq!(reply(&bob.next(), "329")[1], "#room");
    bob.send("TOPIC #room :bob's");
    assert_eq!(reply(&bob.next(), "482")[1], "#room");
    alice.send("MODE #room -t");
    both(&mut alice, &mut bob, ":alice!alice@127.0.0.1 MODE #room -t");
    bob.send("TOPIC #room :bob's");
    both(
        &mut alice,
        &mut bob,
        ":bob!bob@127.0.0.1 TOPIC #room :bob's",
    );

    carol.send("PRIVMSG #room :from outside");
    assert_eq!(reply(&carol.next(), "404")[1], "#room");
    alice.send("MODE #room -n");
    both(&mut alice, &mut bob, ":alice!alice@127.0.0.1 MODE #room -n");
    carol.send("PRIVMSG #room :from outside");
    let outside = ":carol!carol@127.0.0.1 PRIVMSG #room :from outside";
    both(&mut alice, &mut bob, outside);

    // +m: only operators and voiced members speak.
    alice.send("MODE #room +m");
    both(&mut alice, &mut bob, ":alice!alice@127.0.0.1 MODE #room +m");
    bob.send("PRIVMSG #room :hello?");
    assert_eq!(
        reply(&bob.next(), "404"),
        ["bob", "#room", "Cannot send to channel"]
    );
    carol.send("PRIVMSG #room :and me?");
    assert_eq!(reply(&carol.next(), "404")[1], "#room");
    alice.send("MODE #room +v bob");
    both(
        &mut alice,
        &mut bob,
        ":alice!alice@127.0.0.1 MODE #room +v bob",
    );
    bob.send("PRIVMSG #room :voiced");
    assert_eq!(alice.next(), ":bob!bob@127.0.0.1 PRIVMSG #room :voiced");
    alice.send("PRIVMSG #room :operator");
    assert_eq!(bob.next(), ":alice!alice@127.0.0.1 PRIVMSG #room :operator");
    assert!(alice.sync().is_empty() && carol.sync().is_empty());

    // @ and + in NAMES, WHO and WHOIS.
    carol.send("NAMES #room");
    assert_eq!(replies(&carol.sync(), "353")[0][3], "@alice +bob");
    carol.send("WHO #room");
    let flags: Vec<String> = replies(&carol.sync(), "352")
        .into_iter()
        .map(|row| row[6].clone())
        .collect();
    assert_eq!(flags, ["H@", "H+"]);
    carol.send("WHOIS bob");
    assert_eq!(
        replies(&carol.until(" 318 "), "319"),
        [["carol", "bob", "+#room"]]
    );
    // The highest status only (no multi-prefix).
    alice.send("MODE #room +o bob");
    both(
        &mut alice,
        &mut bob,
        ":alice!alice@127.0.0.1 MODE #room +o bob",
    );
    carol.send("NAMES #room");
    assert_eq!(replies(&carol.sync(), "353")[0][3], "@alice @bob");
    alice.send("MODE #room -v bob");
    both(
        &mut alice,
        &mut bob,
        ":alice!alice@127.0.0.1 MODE #room -v bob",
    );
    alice.send("MODE #room -v bob");
    assert!(alice.sync().is_empty(), "no change, no MODE line");
}

/// Step: 1
/// Hint: step 1: the channel modes are given: +k asks JOIN for the key (475),
/// shown in 324 to members only; +l bounds the members (471) (README.md, "The
/// commands").
fn modes_k_and_l_ask_for_a_key_and_bound_the_members(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob, mut carol, mut dave] =
        users(&server, ["alice", "bob", "carol", "dave"]);
    alice.send("JOIN #room");
    alice.expect(" 366 ");
    alice.send("MODE #room +k");
    assert_eq!(
        reply(&alice.next(), "461"),
        ["alice", "MODE", "Not enough parameters"]
    );
    alice.send("MODE #room +k :two words");
    assert_eq!(
        reply(&alice.next(), "525"),
        ["alice", "#room", "Key is not well-formed"]
    );
    alice.send("MODE #room +k secret");
    assert_eq!(alice.next(), ":alice!alice@127.0.0.1 MODE #room +k secret");
    for join in ["JOIN #room", "JOIN #room wrong"] {
        bob.send(join);
        assert_eq!(
            reply(&bob.next(), "475"),
            ["bob", "#room", "Cannot join channel (+k)"]
        );
    }
    bob.send("MODE #room");
    assert_eq!(reply(&bob.sync()[0], "324"), ["bob", "#room", "+ntk"]);
    bob.send("JOIN #room secret");
    assert_eq!(bob.until(" 366 ")[0], ":bob!bob@127.0.0.1 JOIN #room");
    alice.next();
    // JOIN's keys go with its channels, in order.
    carol.send("JOIN #carol,#room any,secret");
    carol.expect(" 366 carol #carol ");
    assert_eq!(carol.until(" 366 ")[0], ":carol!carol@127.0.0.1 JOIN #room");
    alice.next();
    bob.next();
    bob.send("MODE #room");
    assert_eq!(
        reply(&bob.sync()[0], "324"),
        ["bob", "#room", "+ntk", "secret"]
    );

    alice.send("MODE #room +l many");
    assert_eq!(
        reply(&alice.next(), "696"),
        ["alice", "#room", "l", "many", "Invalid limit"]
    );
    alice.send("MODE #room +l 0");
    assert_eq!(reply(&alice.next(), "696")[3], "0");
    alice.send("MODE #room -k+l * 3");
    let change = ":alice!alice@127.0.0.1 MODE #room +l-k 3 *";
    for user in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(user.next(), change);
    }
    dave.send("JOIN #room");
    assert_eq!(
        reply(&dave.next(), "471"),
        ["dave", "#room", "Cannot join channel (+l)"]
    );
    dave.send("MODE #room");
    assert_eq!(
        reply(&dave.sync()[0], "324"),
        ["dave", "#room", "+ntl", "3"]
    );
    alice.send("MODE #room -l");
    for user in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(user.next(), ":alice!alice@127.0.0.1 MODE #room -l");
    }
    dave.send("JOIN #room");
    assert_eq!(dave.until(" 366 ")[0], ":dave!dave@127.0.0.1 JOIN #room");
}

/// Step: 1
/// Hint: step 1: the channel modes are given: +b takes a nick!user@host mask
/// (* and ?), keeps whoever it matches from joining (474) and speaking (404),
/// and MODE #chan b lists the bans (367, 368) (README.md, "Commands and their replies").
fn mode_b_bans_nick_user_host_masks_from_joining_and_speaking(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut bob, mut carol] = users(&server, ["alice", "bob", "carol"]);
    join_all(&mut [&mut alice, &mut bob], "#room");

    // A nick alone is made a whole mask.
    alice.send("MODE #room +b carol");
    let ban = ":alice!alice@127.0.0.1 MODE #room +b carol!*@*";
    assert_eq!(alice.next(), ban);
    assert_eq!(bob.next(), ban);
    carol.send("JOIN #room");
    assert_eq!(
        reply(&carol.next(), "474"),
        ["carol", "#room", "Cannot join channel (+b)"]
    );
    carol.send("MODE #room b");
    let list = carol.sync();
    assert_eq!(commands(&list), ["367", "368"]);
    assert_eq!(
        reply(&list[0], "367")[..4],
        ["carol", "#room", "carol!*@*", "alice"]
    );

    // Wildcards; a banned member may not speak; an invitation lets in.
    alice.send("MODE #room +b b?b!*@127.0.0.*");
    let ban = ":alice!alice@127.0.0.1 MODE #room +b b?b!*@127.0.0.*";
    assert_eq!(alice.next(), ban);
    assert_eq!(bob.next(), ban);
    bob.send("PRIVMSG #room :muted?");
    assert_eq!(reply(&bob.next(), "404")[1], "#room");
    alice.send("INVITE carol #room");
    alice.next();
    carol.next();
    carol.send("JOIN #room");
    carol.expect(" 366 ");
    alice.next();
    bob.next();
    alice.send("MODE #room -b b?b!*@127.0.0.*");
    let unban = ":alice!alice@127.0.0.1 MODE #room -b b?b!*@127.0.0.*";
    for user in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(user.next(), unban);
    }
    bob.send("PRIVMSG #room :free");
    assert_eq!(alice.next(), ":bob!bob@127.0.0.1 PRIVMSG #room :free");
    alice.send("MODE #room +b CAROL!*@*");
    assert!(alice.sync().is_empty(), "the same ban, whatever its case");

    // Four changes with a parameter a line (MODES=4), twenty bans
    // (MAXLIST=b:20), masks of at most 80 bytes.
    alice.send("MODE #room +bbbbb x1 x2 x3 x4 x5");
    assert_eq!(
        alice.next(),
        ":alice!alice@127.0.0.1 MODE #room +bbbb x1!*@* x2!*@* x3!*@* x4!*@*"
    );
    for n in 6..=20 {
        alice.send(&format!("MODE #room +b x{n}"));
    }
    assert_eq!(alice.sync().len(), 15);
    alice.send("MODE #room +b one-too-many");
    assert_eq!(
        reply(&alice.next(), "478"),
        ["alice", "#room", "b", "Channel list is full"]
    );
    let long = "x".repeat(80);
    alice.send(&format!("MODE #room -b {long}"));
    assert_eq!(
        reply(&alice.next(), "696"),
        ["alice", "#room", "b", &long, "Ban mask too long"]
    );
    bob.send("MODE #room +b");
    let list = bob.sync();
    assert_eq!(list.len(), 16 + 20 + 1, "{list:?}"); // the MODE lines, 20 bans, 368
    assert_eq!(replies(&list, "367").len(), 20);
}

/// Step: 1
/// Hint: step 1: the channel modes are given: a secret channel (+s) is left
/// out of LIST, NAMES, WHO and WHOIS for those not on it, and NAMES shows it
/// with "@" (README.md, "Commands and their replies").
fn mode_s_hides_a_channel_from_outsiders(twin: Twin) {
    let server = start(twin, &[]);
    let [mut alice, mut carol] = users(&server, ["alice", "carol"]);
    for channel in ["#hidden", "#open"] {
        alice.send(&format!("JOIN {channel}"));
        alice.expect(" 366 ");
    }
    alice.send("MODE #hidden +s");
    assert_eq!(alice.next(), ":alice!alice@127.0.0.1 MODE #hidden +s");

    carol.send("LIST");
    let list = replies(&carol.sync(), "322");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0][1], "#open");
    carol.send("NAMES");
    let names = replies(&carol.sync(), "353");
    assert_eq!(names, [["carol", "=", "#open", "@alice"]]);
    carol.send("NAMES #hidden");
    assert_eq!(commands(&carol.sync()), ["366"]);
    carol.send("WHO #hidden");
    assert_eq!(commands(&carol.sync()), ["315"]);
    carol.send("WHOIS alice");
    assert_eq!(
        replies(&carol.until(" 318 "), "319"),
        [["carol", "alice", "@#open"]]
    );

    // Its members see it, "@" for secret in 353.
    alice.send("NAMES #hidden");
    assert_eq!(
        replies(&alice.sync(), "353"),
        [["alice", "@", "#hidden", "@alice"]]
    );
    alice.send("LIST");
    assert_eq!(replies(&alice.sync(), "322").len(), 2);
    alice.send("WHO #hidden");
    assert_eq!(commands(&alice.sync()), ["352", "315"]);
    alice.send("WHOIS alice");
    assert_eq!(
        replies(&alice.until(" 318 "), "319"),
        [["alice", "alice", "@#hidden @#open"]]
    );
}

/// Step: 1
/// Hint: step 1: the channel modes are given: 004 and 005 name them, 324
/// shows them, and one MODE line relays only what changed (README.md, "The
/// commands").
fn channel_modes_are_advertised_and_changed_in_one_line(twin: Twin) {
    let server = start(twin, &[]);
    let (mut alice, burst) = Irc::register(&server, "alice");
    let info = reply(&burst[3], "004");
    assert_eq!(info[3..], ["i", "biklmnostv", "bklov"]);
    let isupport = reply(&burst[4], "005");
    for token in [
        "PREFIX=(ov)@+",
        "CHANMODES=b,k,l,imnst",
        "MODES=4",
        "MAXLIST=b:20",
        "KICKLEN=255",
        "TARGMAX=PRIVMSG:4,NOTICE:4,KICK:4",
    ] {
        assert!(
            isupport.iter().any(|t| t == token),
            "{token} in {isupport:?}"
        );
    }
    alice.send("JOIN #room");
    alice.expect(" 366 ");
    alice.send("MODE #room");
    let modes = alice.sync();
    assert_eq!(modes[0], ":chat.socket-labs 324 alice #room +nt");
    assert!(reply(&modes[1], "329")[2].parse::<u64>().is_ok());

    alice.send("MODE #room +i-i+imst-n+l 9");
    assert_eq!(alice.next(), ":alice!alice@127.0.0.1 MODE #room +im-n+sl 9");
    alice.send("MODE #room +t");
    assert!(alice.sync().is_empty(), "no change, no MODE line");
    alice.send("MODE #room +xz");
    let unknown = alice.sync();
    assert_eq!(
        reply(&unknown[0], "472"),
        ["alice", "x", "is unknown mode char to me"]
    );
    assert_eq!(reply(&unknown[1], "472")[1], "z");
    alice.send("MODE #room");
    assert_eq!(
        reply(&alice.sync()[0], "324"),
        ["alice", "#room", "+imstl", "9"]
    );
    // A long KICK reason is cut at KICKLEN.
    let [mut bob] = users(&server, ["bob"]);
    alice.send("INVITE bob #room");
    alice.next();
    bob.next();
    bob.send("JOIN #room");
    bob.expect(" 366 ");
    alice.next();
    let why = "y".repeat(300);
    alice.send(&format!("KICK #room bob :{why}"));
    let kick = bob.next();
    assert_eq!(parse(&kick).params[2], "y".repeat(255));
}
