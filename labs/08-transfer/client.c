/*
 * Lab 08: sending a file to another chat user, directly between the two
 * clients, in C (the twin of client.rs). Lab 07's chat client (client.c
 * there), plus /send, /accept and /refuse.
 *
 * The chat server only introduces the two users; the file goes over a
 * second TCP connection opened between the clients themselves. For a
 * moment the sender is a server: it listens, and the receiver connects.
 *
 * alice: /send bob report.pdf                    bob
 *   WHOIS bob -> where bob connects from (311)
 *   socket -> bind(chat address, port 0) -> listen -> getsockname
 *   PRIVMSG bob :\1DCC SEND report.pdf IP PORT SIZE\1 --(server)--> "alice offers..."
 *                                                                   /accept alice
 *   accept <------------------------------------------------ socket -> connect(IP, PORT)
 *   the peer is bob's address? close the listener
 *   read(file) -> write(socket)  ---------- the file ---------> read(socket) -> write(file)
 *   read(socket)                 <-- bytes received, 4 bytes -- write(socket)
 *   close                                                       close, NAME.part -> NAME
 *
 * All of it in lab 07's single poll() loop: stdin, the chat socket, and
 * one descriptor per transfer (its listening socket, then its
 * connection). No threads: a transfer never stops the chat. Memory is
 * fixed: at most 16 transfers each way, a 64 KiB chunk for each while it
 * moves bytes, whatever the size of the file.
 *
 * Build: make c (or: cc -Wall -Wextra -O2 -o client-c client.c)
 * Run:   ./client-c [HOST] [PORT] [--nick NICK] [--raw] [--downloads DIR]
 *                   [--max-size SIZE] [--offer-timeout SECS]
 *
 * Same arguments, messages, output and exit codes as ./client (client.rs,
 * whose conversation is in src/chat.rs and whose DCC rules are in
 * src/dcc.rs).
 */

#define _GNU_SOURCE /* accept4(2) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define SYNOPSIS                                                          \
    "usage: client [HOST] [PORT] [--nick NICK] [--raw] [--downloads DIR]\n" \
    "              [--max-size SIZE] [--offer-timeout SECS]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 08: the chat client of lab 07, plus files sent directly to another\n"
    "user (DCC SEND, as irssi and mIRC do): /send NICK PATH offers a file,\n"
    "/accept NICK receives one, /refuse NICK declines. Type /help once\n"
    "connected. The server is lab 07's (../07-chat/server).\n"
    "\n"
    "  HOST                 server name or address (default 127.0.0.1)\n"
    "  PORT                 server port (default 4242)\n"
    "  --nick NICK          nickname to register with (else choose one with /nick NAME)\n"
    "  --raw                also show the IRC lines as sent (>>) and received (<<)\n"
    "  --downloads DIR      where received files go (default ./downloads, created if missing)\n"
    "  --max-size SIZE      refuse offers larger than SIZE (bytes, or 500k, 10M, 2G);\n"
    "                       offers larger than the free space are always refused\n"
    "  --offer-timeout SECS how long an offer waits for the peer to connect, and\n"
    "                       how long a transfer may stall (default 120)\n"
    "  --help               print this help\n"
    "\n"
    "Exit status: 0 after /quit or the end of input (once the transfers are\n"
    "over), 1 if a call failed or the server closed the connection first, 2 for\n"
    "bad arguments.\n";

/* What /help shows: lab 07's commands, then lab 08's. */
static const char commands[] =
    "commands:\n"
    "  /nick NEW          change your nickname (or choose the first one)\n"
    "  /who               list the connected users\n"
    "  /whois NICK        details on one user: address, port, channels, idle time\n"
    "  /msg NICK text     private message\n"
    "  /msgall text       message to every connected user\n"
    "  /join #chan        join (or create) a channel; plain lines then go there\n"
    "  /part [#chan]      leave the current channel (or #chan)\n"
    "  /names [#chan]     who is on a channel\n"
    "  /list              the channels\n"
    "  /quit [message]    leave\n"
    "  /help              this list\n"
    "  /send NICK PATH    offer a file to NICK; it goes straight to NICK's client\n"
    "  /accept NICK       receive the file NICK offers (into --downloads)\n"
    "  /refuse NICK       decline NICK's offer";

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 4242
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* Lines from the server are at most 512 bytes (RFC 2812 §2.3); typed lines
 * longer than a message can carry are refused, not cut. */
#define MAX_LINE 512
/* A line as text: bytes that are not UTF-8 become U+FFFD (3 bytes each),
 * as the Rust client reads them, so text may be 3 times the line. */
#define LINE_TEXT (3 * MAX_LINE + 1)
#define MAX_PARAMS 15

/* Stdin is read only while less than this waits to go to the server. */
#define MAX_QUEUED (64 * 1024)
/* The queue itself: MAX_QUEUED, and what one turn may add on top of it
 * (lab 07's client.c explains the sum), plus one offer for each of our
 * transfers: a WHOIS reply may let them all go out in the same turn. */
#define QUEUE_SIZE (MAX_QUEUED + 256 * MAX_LINE + 4 * MAX_LINE + MAX_TRANSFERS * MAX_LINE)

/* The channels joined, the current one last (see lab 07). */
#define MAX_JOINED 100

/* C strings end at a NUL byte; a NUL in a line (kept by the Rust client as
 * a character) becomes this byte, which UTF-8 text never holds: dropped
 * when a line is written, printed as the NUL it was. */
#define NUL_MARK '\xff'

/* A file goes through a buffer of this size, one read(2) and one write(2)
 * at a time: a 1 GB file uses the memory of one chunk. */
#define CHUNK (64 * 1024)

/* Offers received and not yet answered, and transfers of our own, at
 * most: a flood of offers cannot take the client's memory or descriptors.
 * Received files under way are capped too (client.rs keeps no count of
 * those: each needs an /accept typed by the user). */
#define MAX_OFFERS 16
#define MAX_TRANSFERS 16
/* The incoming list holds the offers waiting, the files being received,
 * and what ended this turn (forgotten at its end). */
#define MAX_INCOMING (MAX_OFFERS + MAX_TRANSFERS + 32)

/* The longest file name kept, in bytes (src/dcc.rs): NAME_MAX is 255, and
 * a numbered name (-12) and the .part suffix must still fit. */
#define MAX_NAME 200
#define NAME_TEXT (MAX_NAME + 1)

/* A progress line on a terminal is redrawn at most this often (ns). */
#define REDRAW_NS 200000000LL

/* Bytes read and not yet a whole line (src/lines.rs): at most 512; a
 * longer line comes out in pieces, LONG then REST. */
struct lines {
    char buf[MAX_LINE];
    size_t len;
    size_t scanned; /* buf[0..scanned] holds no newline: not searched again */
    int in_long_line;
};
enum piece { NONE, WHOLE, LONG, REST };

/* One parsed line from the server; the pieces point into text. */
struct message {
    char text[LINE_TEXT];
    char *prefix; /* NULL when there is none */
    char *command;
    char *params[MAX_PARAMS];
    int nparams;
};

/* When a transfer started moving bytes, and the quarters of it reported
 * as plain lines (not on a terminal). */
struct progress {
    int64_t started;
    uint64_t quarters;
};

/* A file we offer (/send). */
enum out_state {
    LOOKING_UP, /* WHOIS sent: waiting for the server to say where the peer is */
    LISTENING,  /* the offer is out; listening for the peer */
    SENDING,    /* connected: the file goes out, acknowledgements come back */
    OUT_DONE    /* over: forgotten at the end of the turn */
};
struct outgoing {
    char to[LINE_TEXT];
    char name[NAME_TEXT]; /* the base name, made safe as a receiver would */
    int file;
    uint64_t size;
    int64_t deadline; /* when to give up: the offer's timeout, then a stall's */
    enum out_state state;
    /* LISTENING: where, and the address the peer must connect from
     * (has_peer is 0 when the server gave a host name, not an address). */
    int listener;
    struct sockaddr_storage bound;
    char addr[ADDR_TEXT];
    struct sockaddr_storage peer;
    int has_peer;
    /* SENDING: chunk[start..end] has been read from the file, not yet
     * written; the receiver's last acknowledgement (bytes received,
     * modulo 2^32), and one arriving in pieces. */
    int sock;
    char peer_text[ADDR_TEXT];
    char *chunk;
    size_t start, end;
    uint64_t sent;
    int has_acked;
    uint32_t acked;
    unsigned char ack[4];
    size_t ack_len;
    struct progress progress;
};

/* One DCC SEND offer as it came: the name as offered (unquoted, not yet
 * made safe), where the sender listens, and the size it announces. */
struct offer {
    char name[LINE_TEXT];
    struct sockaddr_storage addr;
    uint64_t size;
};

/* An offer received. */
enum in_state {
    OFFERED,    /* shown to the user, who may /accept or /refuse it */
    CONNECTING, /* /accept: connect(2) in progress (non-blocking) */
    RECEIVING,  /* the file comes in, into NAME.part */
    IN_DONE     /* over: forgotten at the end of the turn */
};
struct incoming {
    char from[LINE_TEXT];
    char name[NAME_TEXT]; /* the name it will be saved under (safe_name) */
    struct offer offer;
    int64_t deadline;
    enum in_state state;
    int sock;
    /* The part file: dir/NAME.part (or NAME-number.part) until it is
     * complete; removed if the transfer fails. */
    int part;
    unsigned number; /* the number tried first for the final name */
    char part_path[PATH_MAX];
    /* RECEIVING: the acknowledgement being written, and how much of it is
     * out (4 when all of it is). */
    char *chunk;
    uint64_t received;
    unsigned char ack[4];
    size_t ack_sent;
    struct progress progress;
};

/* What the client knows of the conversation. */
static char nick[LINE_TEXT];
static int has_nick, registered, user_sent, raw, quitting;
static char *joined[MAX_JOINED];
static int njoined;

/* What waits to go to the server: write(2) takes what fits when poll(2)
 * says the socket is writable. */
static char queued[QUEUE_SIZE];
static size_t queued_len;

/* The transfers: what lab 08 adds to the chat. */
static const char *downloads = "downloads";
static int has_max_size;
static uint64_t max_size;
static unsigned long timeout_secs = 120;
static struct sockaddr_storage local; /* our address on the chat connection */
static int tty;                       /* stdout is a terminal: a progress line */
static struct outgoing outgoing[MAX_TRANSFERS];
static int noutgoing;
static struct incoming incoming[MAX_INCOMING];
static int nincoming;
/* Folded nicks we sent a WHOIS about: its replies, up to its 318, are
 * ours and not shown. */
static char whois[MAX_TRANSFERS][LINE_TEXT];
static int nwhois;
static int64_t redrawn;
static int status_shown; /* a status line is on the terminal, without its newline */

static void typed_piece(enum piece piece, const char *line, size_t len);
static void typed(const char *bytes, size_t len);
static void receive(const char *bytes, size_t len);
static void do_register(const char *name);
static void send_irc(const char *command, const char **params, int n);
static const char *me(void);
static void set_nick(const char *name);
static void join_channel(const char *name);
static void forget_channel(const char *name);
static int parse_message(struct message *m, const char *bytes, size_t len);
static size_t irc_format(char *out, const char *command, const char **params, int n);
static size_t utf8_lossy(char *dst, const char *src, size_t len);
static size_t space_len(const char *s);
static char *trim(char *s);
static void trim_end(char *s);
static void fold(char *out, const char *s);
static int fold_eq(const char *a, const char *b);
static enum piece next_line(struct lines *r, char *out, size_t *len);
static enum piece rest_line(struct lines *r, char *out, size_t *len);
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void erase_status(void);
static _Noreturn void die(const char *call, const char *what);
static const char *addr_text(const struct sockaddr *sa, char *out);
static void read_args(int argc, char **argv);
static const char *take_value(const char *name, const char *what);
static int take_flag(const char *name);
static const char *take_positional(void);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int transfer_command(const char *name, const char *args);
static int transfer_message(const struct message *m, const char *from);
static int interests(struct pollfd *fds, int *slots);
static void outgoing_ready(int i, short revents);
static void incoming_ready(int i, short revents);
static int busy(void);
static int64_t next_deadline(void);
static void check_deadlines(int64_t now);
static void show_progress(void);
static void remove_done(void);
static void abandon_all(int say_so);
static int64_t now_ns(void);
static int parse_size(const char *text, uint64_t *out, const char **why);
static int parse_unsigned(const char *text, uint64_t max, uint64_t *out);

int main(int argc, char **argv)
{
    /* stdout is a pipe when a test or a script reads us: flush each line as
     * it is printed, not when a 4 KiB buffer fills (setvbuf(3)). */
    setvbuf(stdout, NULL, _IOLBF, 0);

    read_args(argc, argv);
    const char *nick_text = take_value("--nick", "NICK");
    raw = take_flag("--raw");
    const char *dir = take_value("--downloads", "DIR");
    if (dir != NULL)
        downloads = dir;
    const char *size_text = take_value("--max-size", "SIZE");
    if (size_text != NULL) {
        const char *why;
        if (!parse_size(size_text, &max_size, &why))
            usage_error("invalid SIZE '%s': %s", size_text, why);
        has_max_size = 1;
    }
    const char *secs_text = take_value("--offer-timeout", "SECS");
    if (secs_text != NULL) {
        /* As Rust's str::parse::<u64> says it. */
        uint64_t secs;
        if (!parse_unsigned(secs_text, UINT64_MAX, &secs)) {
            const char *p = secs_text + (secs_text[0] == '+' && secs_text[1] != '\0');
            const char *why = secs_text[0] == '\0' ? "cannot parse integer from empty string"
                              : p[strspn(p, "0123456789")] != '\0'
                                  ? "invalid digit found in string"
                                  : "number too large to fit in target type";
            usage_error("invalid SECS '%s': %s", secs_text, why);
        }
        if (secs < 1 || secs > 86400)
            usage_error("invalid SECS '%llu': from 1 to 86400 seconds", (unsigned long long)secs);
        timeout_secs = (unsigned long)secs;
    }
    const char *host = take_positional();
    if (host == NULL)
        host = DEFAULT_HOST;
    unsigned long port = take_port();
    finish_args();

    /* A peer that resets a connection would make our next write(2) raise
     * SIGPIPE and kill us without a word (signal(7)). Ignored, write(2)
     * fails with EPIPE and we say so; Rust's runtime does this before main. */
    signal(SIGPIPE, SIG_IGN);

    /* The chat connection: lab 07's, unchanged. */
    struct addrinfo hints, *list;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%lu", port);
    int rc = getaddrinfo(host, port_text, &hints, &list);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo %s: %s\n", host,
                rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        exit(1);
    }
    int sock = -1;
    char server[ADDR_TEXT];
    int last_error = EADDRNOTAVAIL;
    char last_addr[ADDR_TEXT];
    snprintf(last_addr, sizeof last_addr, "127.0.0.1:%lu", port);
    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        addr_text(ai->ai_addr, server);
        int fd = socket(ai->ai_family, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket", server);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            sock = fd;
            break;
        }
        last_error = errno;
        strcpy(last_addr, server);
        close(fd);
    }
    freeaddrinfo(list);
    if (sock < 0) {
        errno = last_error;
        die("connect", last_addr);
    }
    int flags = fcntl(sock, F_GETFL);
    if (flags < 0)
        die("fcntl", server);
    if (fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl", server);

    /* Our own address, as the chat connection uses it (getsockname(2)):
     * the address we offer files on is one the chat server, at least, can
     * reach us at. Behind NAT it is a private address nobody outside can. */
    socklen_t local_len = sizeof local;
    if (getsockname(sock, (struct sockaddr *)&local, &local_len) < 0)
        die("getsockname", server);
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) {
        errno = EAFNOSUPPORT;
        die("getsockname", server);
    }

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "connected to %s; /help for the commands, Ctrl-D or /quit to leave\n",
                server);
    tty = isatty(STDOUT_FILENO);
    redrawn = now_ns();

    if (nick_text != NULL)
        do_register(nick_text);
    else
        say("-!- choose a nickname: /nick NAME");

    static struct lines from_server, from_user;
    char line[MAX_LINE];
    size_t len;
    enum piece piece;
    int stdin_open = 1;
    for (;;) {
        /* [0] stdin, [1] the chat socket, [2..] one per transfer: a
         * listening socket or a connection (lab 07's set, rebuilt each
         * turn). slots[k] says which transfer fds[2 + k] is: i for
         * outgoing[i], MAX_TRANSFERS + i for incoming[i]. */
        int watch_stdin = stdin_open && !quitting && queued_len < MAX_QUEUED;
        struct pollfd fds[2 + MAX_TRANSFERS + MAX_INCOMING];
        int slots[MAX_TRANSFERS + MAX_INCOMING];
        fds[0].fd = STDIN_FILENO;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        fds[1].fd = sock;
        fds[1].events = POLLIN;
        if (queued_len > 0)
            fds[1].events |= POLLOUT;
        int n_transfers = interests(fds + 2, slots);
        /* The poll timeout is the transfers' clock: the next deadline. */
        int timeout = -1;
        int64_t deadline = next_deadline();
        if (deadline != INT64_MAX) {
            int64_t left = deadline - now_ns();
            int64_t ms = (left > 0 ? left / 1000000 : 0) + 1;
            timeout = ms > INT_MAX ? INT_MAX : (int)ms;
        }
        /* Unwatched, stdin is left out of the array (see lab 04): a pipe
         * whose writer has gone reports POLLHUP whatever was asked. */
        int first = watch_stdin ? 0 : 1;
        if (poll(fds + first, (nfds_t)(2 + n_transfers - first), timeout) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", server);
        }
        int stdin_ready = watch_stdin && (fds[0].revents & (POLLIN | POLLHUP | POLLERR));
        int sock_readable = fds[1].revents & (POLLIN | POLLHUP | POLLERR);
        int sock_writable = fds[1].revents & (POLLOUT | POLLHUP | POLLERR);

        /* The transfers first: their places in the lists are those poll
         * saw. Nothing is removed before the end of the turn. */
        for (int k = 0; k < n_transfers; k++) {
            short revents = fds[2 + k].revents;
            if (revents == 0)
                continue;
            if (slots[k] < MAX_TRANSFERS)
                outgoing_ready(slots[k], revents);
            else
                incoming_ready(slots[k] - MAX_TRANSFERS, revents);
        }

        if (sock_readable) {
            ssize_t n = read(sock, from_server.buf + from_server.len,
                             sizeof from_server.buf - from_server.len);
            if ((n == 0 || (n < 0 && errno == ECONNRESET)) && quitting) {
                /* After our QUIT the server closes: that is the goodbye.
                 * A reset is one too: the server closed with some of our
                 * input unread, and close(2) then sends a RST (tcp(7)). */
                abandon_all(0);
                close(sock);
                return 0;
            } else if (n == 0) {
                erase_status();
                fprintf(stderr, "server %s closed the connection\n", server);
                abandon_all(1);
                exit(1);
            } else if (n > 0) {
                from_server.len += (size_t)n;
                /* Longer than IRC allows: not a message of ours to show. */
                while ((piece = next_line(&from_server, line, &len)) != NONE)
                    if (piece == WHOLE)
                        receive(line, len);
            } else if (errno != EAGAIN && errno != EINTR) {
                die("read", server);
            }
        }

        if (stdin_ready) {
            ssize_t n = read(STDIN_FILENO, from_user.buf + from_user.len,
                             sizeof from_user.buf - from_user.len);
            if (n == 0) {
                stdin_open = 0;
                if ((piece = rest_line(&from_user, line, &len)) != NONE)
                    typed_piece(piece, line, len);
            } else if (n > 0) {
                from_user.len += (size_t)n;
                while ((piece = next_line(&from_user, line, &len)) != NONE)
                    typed_piece(piece, line, len);
            } else if (errno != EINTR) {
                die("read", "stdin");
            }
        }
        /* End of input: leave once our offers and transfers are over (lab
         * 07 leaves at once), so that `... | ./client-c` can send a file. */
        if (!stdin_open && !quitting && !busy())
            typed("/quit", 5);

        if (sock_writable && queued_len > 0) {
            ssize_t n = write(sock, queued, queued_len);
            if (n > 0) {
                memmove(queued, queued + n, queued_len - (size_t)n);
                queued_len -= (size_t)n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                die("write", server);
            }
        }

        check_deadlines(now_ns());
        show_progress();
        remove_done();
    }
}

/* A piece of typed input: whole lines are used; a line too long for one
 * IRC message is refused once, and the rest of it skipped. */
static void typed_piece(enum piece piece, const char *line, size_t len)
{
    if (piece == WHOLE)
        typed(line, len);
    else if (piece == LONG)
        say("-!- line too long: a message holds about 400 characters");
}

/* A line the user typed: a /command or text for the current channel. */
static void typed(const char *bytes, size_t len)
{
    char text[LINE_TEXT];
    size_t n = utf8_lossy(text, bytes, len);
    while (n > 0 && (text[n - 1] == '\r' || text[n - 1] == '\n'))
        text[--n] = '\0';
    const char *s = text;
    while (space_len(s) > 0)
        s += space_len(s);
    if (*s == '\0')
        return; /* only blanks */
    if (text[0] != '/') {
        if (njoined == 0) {
            say("-!- you are on no channel: /join #name, or /msg NICK text");
            return;
        }
        const char *channel = joined[njoined - 1];
        const char *params[] = { channel, text };
        send_irc("PRIVMSG", params, 2);
        say("[%s] %s: %s", channel, me(), text);
        return;
    }
    /* /name args: args without its blanks, then its first word and the rest. */
    char *name = text + 1, *args = "";
    char *space = strchr(name, ' ');
    if (space != NULL) {
        *space = '\0';
        args = trim(space + 1);
    }
    char first[LINE_TEXT];
    const char *rest = "";
    space = strchr(args, ' ');
    size_t first_len = space ? (size_t)(space - args) : strlen(args);
    memcpy(first, args, first_len);
    first[first_len] = '\0';
    if (space != NULL)
        rest = space + 1;

    if (!user_sent && strcmp(name, "nick") && strcmp(name, "help") && strcmp(name, "quit")) {
        say("-!- choose a nickname first: /nick NAME");
        return;
    }
    if (!strcmp(name, "nick") && first[0]) {
        if (registered) {
            const char *params[] = { first };
            send_irc("NICK", params, 1);
        } else {
            do_register(first);
        }
    } else if (!strcmp(name, "who")) {
        const char *params[] = { first[0] ? first : "*" };
        send_irc("WHO", params, 1);
    } else if (!strcmp(name, "whois") && first[0]) {
        const char *params[] = { first };
        send_irc("WHOIS", params, 1);
    } else if (!strcmp(name, "msg") && first[0] && rest[0]) {
        const char *params[] = { first, rest };
        send_irc("PRIVMSG", params, 2);
        say("-> *%s* %s", first, rest);
    } else if (!strcmp(name, "msgall") && args[0]) {
        /* $* is the mask "every user on this server" (RFC 2812 §3.3.1). */
        const char *params[] = { "$*", args };
        send_irc("PRIVMSG", params, 2);
        say("[all] %s: %s", me(), args);
    } else if (!strcmp(name, "join") && first[0]) {
        char channel[LINE_TEXT + 1];
        snprintf(channel, sizeof channel, "%s%s", first[0] == '#' ? "" : "#", first);
        const char *params[] = { channel };
        send_irc("JOIN", params, 1);
        /* Lines typed next go there at once, without waiting for the
         * server's JOIN: piped input does not wait. An error about the
         * channel undoes it. */
        join_channel(channel);
    } else if (!strcmp(name, "part") || !strcmp(name, "names")) {
        int part = !strcmp(name, "part");
        const char *params[1];
        if (first[0])
            params[0] = first;
        else if (njoined > 0)
            params[0] = joined[njoined - 1];
        else if (part) {
            say("-!- you are on no channel");
            return;
        }
        send_irc(part ? "PART" : "NAMES", params, first[0] || njoined > 0);
    } else if (!strcmp(name, "list")) {
        send_irc("LIST", NULL, 0);
    } else if (!strcmp(name, "quit")) {
        if (!user_sent)
            exit(0);
        const char *params[] = { args[0] ? args : "leaving" };
        send_irc("QUIT", params, 1);
        quitting = 1;
    } else if (!strcmp(name, "help")) {
        say("%s", commands);
    } else if (!strcmp(name, "nick") || !strcmp(name, "whois") || !strcmp(name, "msg") ||
               !strcmp(name, "msgall") || !strcmp(name, "join")) {
        say("-!- /%s needs more: /help shows how to use it", name);
    } else if (!transfer_command(name, args)) {
        say("-!- unknown command /%s: /help lists them", name);
    }
}

/* A line from the server, shown as a person would read it. */
static void receive(const char *bytes, size_t len)
{
    static struct message m; /* 1.6 KB: static rather than on the stack */
    if (!parse_message(&m, bytes, len))
        return;
    if (raw) {
        char text[LINE_TEXT];
        utf8_lossy(text, bytes, len);
        trim_end(text);
        say("<< %s", text);
    }
    /* Who sent it: the nick of a nick!user@host prefix, the server's name
     * for a numeric, "" without a prefix. */
    char from[LINE_TEXT] = "";
    if (m.prefix != NULL) {
        size_t k = strcspn(m.prefix, "!");
        memcpy(from, m.prefix, k);
        from[k] = '\0';
    }
    /* Lab 08 looks first: DCC offers and refusals, our WHOIS replies. */
    if (transfer_message(&m, from))
        return;
    int is_me = fold_eq(from, me());
#define P(i) ((i) < m.nparams ? m.params[i] : "")
    const char *last = m.nparams > 0 ? m.params[m.nparams - 1] : "";
    char code[LINE_TEXT];
    size_t k;
    for (k = 0; m.command[k]; k++)
        code[k] = m.command[k] >= 'a' && m.command[k] <= 'z' ? m.command[k] - 32 : m.command[k];
    code[k] = '\0';
    int numeric = k == 3 && code[0] >= '0' && code[0] <= '9' && code[1] >= '0' &&
                  code[1] <= '9' && code[2] >= '0' && code[2] <= '9';

    if (!strcmp(code, "PING")) {
        const char *params[] = { last };
        send_irc("PONG", params, 1);
    } else if (!strcmp(code, "PRIVMSG") || !strcmp(code, "NOTICE")) {
        const char *target = P(0), *text = P(1);
        if (!strcmp(code, "NOTICE"))
            say("-%s- %s", from, text);
        else if (target[0] == '$')
            say("[all] %s: %s", from, text);
        else if (target[0] == '#' || target[0] == '&')
            say("[%s] %s: %s", target, from, text);
        else
            say("*%s* %s", from, text);
    } else if (!strcmp(code, "JOIN")) {
        if (is_me) {
            say("-!- you joined %s", P(0));
            join_channel(P(0));
        } else {
            say("-!- %s joined %s", from, P(0));
        }
    } else if (!strcmp(code, "PART")) {
        if (is_me) {
            say("-!- you left %s", P(0));
            forget_channel(P(0));
        } else {
            say("-!- %s left %s", from, P(0));
        }
    } else if (!strcmp(code, "QUIT")) {
        say("-!- %s quit (%s)", from, P(0));
    } else if (!strcmp(code, "NICK")) {
        if (is_me) {
            set_nick(P(0));
            say("-!- you are now known as %s", P(0));
        } else {
            say("-!- %s is now known as %s", from, P(0));
        }
    } else if (!strcmp(code, "TOPIC")) {
        say("-!- %s set the topic of %s: %s", from, P(0), P(1));
    } else if (!strcmp(code, "ERROR")) {
        if (!quitting)
            say("-!- server: %s", last);
    } else if (!strcmp(code, "001")) {
        /* RPL_WELCOME: registered, under the nick the server confirms. */
        registered = 1;
        set_nick(P(0));
        say("-!- %s", last);
    } else if (strstr(" 002 003 004 005 251 252 253 254 255 265 266 375 376 422 366 321 ",
                      code) != NULL && numeric) {
        /* The rest of the welcome burst, the server's statistics, no
         * message of the day, the ends of NAMES and the start of LIST. */
    } else if (!strcmp(code, "372")) {
        say("%s", last);
    } else if (!strcmp(code, "352")) {
        /* WHO: <me> <channel> <user> <host> <server> <nick> <flags> :<hops> <realname> */
        if (!strcmp(P(1), "*"))
            say("%s (%s@%s)", P(5), P(2), P(3));
        else
            say("%s (%s@%s) on %s", P(5), P(2), P(3), P(1));
    } else if (!strcmp(code, "315")) {
        say("-!- end of /who");
    } else if (!strcmp(code, "311")) {
        say("%s is %s@%s (%s)", P(1), P(2), P(3), last);
    } else if (!strcmp(code, "312")) {
        say("%s is on server %s", P(1), P(2));
    } else if (!strcmp(code, "317")) {
        say("%s has been idle %s s", P(1), P(2));
    } else if (!strcmp(code, "319")) {
        say("%s is on %s", P(1), last);
    } else if (!strcmp(code, "338")) {
        /* RPL_WHOISACTUALLY: the address and port the user connects from. */
        say("%s is connected from %s", P(1), P(2));
    } else if (!strcmp(code, "318")) {
        say("-!- end of /whois");
    } else if (!strcmp(code, "353")) {
        /* NAMES: 353 <me> <type> <channel> :<names>, then 366. */
        say("users on %s: %s", P(2), last);
    } else if (!strcmp(code, "322")) {
        /* LIST: 322 <me> <channel> <visible> :<topic> */
        char text[2 * LINE_TEXT + 16];
        snprintf(text, sizeof text, "%s (%s users) %s", P(1), P(2), last);
        trim_end(text);
        say("%s", text);
    } else if (!strcmp(code, "323")) {
        say("-!- end of /list");
    } else if (!strcmp(code, "331")) {
        say("-!- %s has no topic", P(1));
    } else if (!strcmp(code, "332")) {
        say("-!- topic of %s: %s", P(1), last);
    } else if (!strcmp(code, "433")) {
        say("-!- nickname %s is taken: choose another with /nick NAME", P(1));
        if (!registered)
            has_nick = 0;
    } else if (k == 3 && (code[0] == '4' || code[0] == '5')) {
        /* Errors: "<me> [<subject>] :<sentence>"; show one plain sentence. */
        const char *subject = m.nparams > 2 ? P(1) : "";
        /* 403, 405, 471-476: we are not on that channel after all. */
        if (strstr(" 403 405 471 473 474 475 476 ", code) != NULL && numeric)
            forget_channel(subject);
        if (subject[0] == '\0')
            say("-!- error: %s", last);
        else
            say("-!- error: %s (%s)", last, subject);
    } else if (numeric) {
        /* Any other reply (WHOIS extras such as the address, 338/378): its text. */
        char text[LINE_TEXT] = "";
        size_t used = 0;
        for (int i = 1; i < m.nparams; i++) {
            size_t part = strlen(m.params[i]);
            if (used + part + 2 > sizeof text)
                break;
            if (i > 1)
                text[used++] = ' ';
            memcpy(text + used, m.params[i], part + 1);
            used += part;
        }
        say("%s", text);
    }
#undef P
}

/* NICK, and USER the first time: registration (RFC 2812 §3.1). */
static void do_register(const char *name)
{
    const char *params[] = { name, "0", "*", name };
    send_irc("NICK", params, 1);
    if (!user_sent) {
        /* USER <user> <mode> <unused> :<realname> (RFC 2812 §3.1.3) */
        send_irc("USER", params, 4);
        user_sent = 1;
    }
    set_nick(name);
}

/* Queues one IRC message for the server. */
static void send_irc(const char *command, const char **params, int n)
{
    char line[MAX_LINE + 1];
    size_t len = irc_format(line, command, params, n);
    if (raw) {
        char shown[MAX_LINE + 1];
        memcpy(shown, line, len + 1);
        trim_end(shown);
        say(">> %s", shown);
    }
    if (queued_len + len > sizeof queued)
        return; /* see QUEUE_SIZE */
    memcpy(queued + queued_len, line, len);
    queued_len += len;
}

/* Our nickname, `?` before we have one. */
static const char *me(void)
{
    return has_nick ? nick : "?";
}

static void set_nick(const char *name)
{
    snprintf(nick, sizeof nick, "%s", name);
    has_nick = 1;
}

/* The channel becomes the current one (the last of joined). */
static void join_channel(const char *name)
{
    forget_channel(name);
    char *copy = strdup(name);
    if (copy == NULL)
        return;
    if (njoined == MAX_JOINED) {
        free(joined[0]);
        memmove(joined, joined + 1, (MAX_JOINED - 1) * sizeof joined[0]);
        njoined--;
    }
    joined[njoined++] = copy;
}

static void forget_channel(const char *name)
{
    int k = 0;
    for (int j = 0; j < njoined; j++) {
        if (fold_eq(joined[j], name))
            free(joined[j]);
        else
            joined[k++] = joined[j];
    }
    njoined = k;
}

/* ---- the transfers: what lab 08 adds --------------------------------------------- */

static int listen_for_peer(struct outgoing *out, char *call);
static int connect_to_sender(const struct sockaddr_storage *addr);
static int part_create(struct incoming *inc);
static int part_keep(struct incoming *inc, char *target);
static void out_done(struct outgoing *out);
static void in_done(struct incoming *inc);
static int send_ack(struct incoming *inc);
static int ack_pending(const struct incoming *inc);
static int sending_ready(struct outgoing *out, short revents, char *why);
static int receiving_ready(struct incoming *inc, short revents, char *why);
static void receiving_finish(struct incoming *inc);
static void summary(char *out, size_t size, const struct progress *p, uint64_t bytes);
static int parse_dcc(const char *body, struct offer *offer, char *text);
static int safe_name(char *out, const char *offered);
static void numbered(char *out, const char *name, unsigned n);
static void human(char *out, uint64_t bytes);
static void rate(char *out, uint64_t bytes, int64_t elapsed);
static void progress_text(char *out, size_t size, uint64_t done, uint64_t total, int64_t elapsed);
static void debug_text(char *out, size_t size, const char *s);
static int parse_ip(const char *text, struct sockaddr_storage *ip);
static int parse_host(const char *text, struct sockaddr_storage *ip);
static void ip_text(const struct sockaddr_storage *ip, char *out);
static int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
static uint16_t port_of(const struct sockaddr_storage *addr);
static int join_path(char *out, const char *dir, const char *name, const char *suffix);
static int mkdir_all(const char *path);
static const char *reason(int err);
static int send_file(const char *to, const char *path);
static void listen_for(const char *nick, const char *host);
static void no_peer(const char *nick, const char *why);
static void rejected(const char *from, const char *name);
static void offered(const char *from, const char *host, const struct offer *offer);
static struct incoming *offer_from(const char *nick);
static void refuse(const char *nick);
static void accept_offer(const char *nick);

/* Errors of our own, for reason(): what Rust's io::Error says for them. */
#define ERR_NO_FREE_NAME (-1) /* 1000 numbered names taken */
#define ERR_SHORT_WRITE (-2)  /* write(2) of a file wrote nothing */

/* A typed `/name args` that the chat does not know (the user has a
 * nickname by then): 1 if it is one of ours. */
static int transfer_command(const char *name, const char *args)
{
    char nick_arg[LINE_TEXT], rest[LINE_TEXT];
    const char *space = strchr(args, ' ');
    size_t k = space ? (size_t)(space - args) : strlen(args);
    memcpy(nick_arg, args, k);
    nick_arg[k] = '\0';
    snprintf(rest, sizeof rest, "%s", space ? space + 1 : "");
    char *path = trim(rest);
    int send = !strcmp(name, "send"), accept = !strcmp(name, "accept"),
        refuse_it = !strcmp(name, "refuse");
    if (send && nick_arg[0] && path[0])
        send_file(nick_arg, path);
    else if (accept && nick_arg[0])
        accept_offer(nick_arg);
    else if (refuse_it && nick_arg[0])
        refuse(nick_arg);
    else if (send || accept || refuse_it)
        say("-!- /%s needs more: /help shows how to use it", name);
    else
        return 0;
    return 1;
}

/* A message from the server, before the chat shows it: 1 if it is ours
 * (a DCC offer or refusal, a reply to our WHOIS), and the chat shows
 * nothing. */
static int transfer_message(const struct message *m, const char *from)
{
#define P(i) ((i) < m->nparams ? m->params[i] : "")
    int privmsg = !strcasecmp(m->command, "PRIVMSG"), notice = !strcasecmp(m->command, "NOTICE");
    if (privmsg || notice) {
        /* A CTCP message: the text between two \1 bytes (the closing one
         * optional, as in most clients). */
        const char *text = P(1);
        if (text[0] != '\1')
            return 0;
        char body[LINE_TEXT];
        snprintf(body, sizeof body, "%s", text + 1);
        size_t len = strlen(body);
        if (len > 0 && body[len - 1] == '\1')
            body[len - 1] = '\0';
        static struct offer offer;
        char what[2 * LINE_TEXT];
        switch (parse_dcc(body, &offer, what)) {
        case 0:
            return 0; /* a CTCP that is not DCC (ACTION...): the chat shows it */
        case 1: /* DCC SEND */
            if (privmsg) {
                const char *at = m->prefix ? strchr(m->prefix, '@') : NULL;
                offered(from, at ? at + 1 : NULL, &offer);
            } else {
                say("-!- %s sent an offer in a NOTICE: ignored", from);
            }
            break;
        case 2: /* DCC REJECT SEND name */
            rejected(from, what);
            break;
        case 3:
            say("-!- %s sent a %s: this client does not do that, ignored", from, what);
            break;
        default:
            say("-!- %s sent a DCC offer that makes no sense (%s): ignored", from, what);
            break;
        }
        return 1;
    }
    /* The replies to our WHOIS: where the peer of an offer is. */
    const char *who = P(1);
    const char *c = m->command;
    int numeric = strlen(c) == 3 && c[0] >= '0' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9' &&
                  c[2] >= '0' && c[2] <= '9';
    int asked = 0, w;
    for (w = 0; w < nwhois && !asked; w++)
        asked = fold_eq(whois[w], who);
    if (!numeric || !asked)
        return 0;
    if (!strcmp(c, "311")) {
        /* RPL_WHOISUSER: <me> <nick> <user> <host> * :<real name> */
        listen_for(who, P(3));
    } else if (!strcmp(c, "401")) {
        /* ERR_NOSUCHNICK */
        no_peer(who, "there is no such nick");
    } else if (!strcmp(c, "318")) {
        /* RPL_ENDOFWHOIS: without a 311 before it, nobody to offer to. */
        char folded[LINE_TEXT];
        fold(folded, who);
        int k = 0;
        for (int j = 0; j < nwhois; j++)
            if (strcmp(whois[j], folded) != 0)
                memcpy(whois[k++], whois[j], sizeof whois[j]);
        nwhois = k;
        no_peer(who, "the server did not say where they are");
    }
    return 1;
#undef P
}

/* /send NICK PATH: open the file, then ask the server where NICK is
 * (WHOIS); the offer goes out with its reply (see listen_for). */
static int send_file(const char *to, const char *path)
{
    if (noutgoing >= MAX_TRANSFERS) {
        say("-!- %d files are offered or sent already: wait for one to end", MAX_TRANSFERS);
        return 0;
    }
    /* O_NONBLOCK: open(2) of a FIFO would wait for a writer; a regular
     * file, the only kind sent, ignores the flag. */
    int file = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (file < 0 || fstat(file, &st) < 0) {
        say("-!- open %s: %s: not sent", path, reason(errno));
        if (file >= 0)
            close(file);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        say("-!- %s is not a regular file: not sent", path);
        close(file);
        return 0;
    }
    /* The receiver gets the base name only, made safe as ours would make it. */
    const char *slash = strrchr(path, '/');
    char name[NAME_TEXT];
    if (!safe_name(name, slash ? slash + 1 : path)) {
        say("-!- %s has no usable file name: not sent", path);
        close(file);
        return 0;
    }
    const char *params[] = { to };
    send_irc("WHOIS", params, 1);
    /* Its replies are ours until its end (318); a server that never ends
     * one cannot make the list grow. */
    char folded[LINE_TEXT];
    fold(folded, to);
    int known = 0;
    for (int j = 0; j < nwhois && !known; j++)
        known = !strcmp(whois[j], folded);
    if (!known) {
        if (nwhois == MAX_TRANSFERS) {
            memmove(whois[0], whois[1], (MAX_TRANSFERS - 1) * sizeof whois[0]);
            nwhois--;
        }
        memcpy(whois[nwhois++], folded, sizeof folded);
    }
    struct outgoing *out = &outgoing[noutgoing++];
    memset(out, 0, sizeof *out);
    snprintf(out->to, sizeof out->to, "%s", to);
    memcpy(out->name, name, sizeof name);
    out->file = file;
    out->size = (uint64_t)st.st_size;
    out->deadline = now_ns() + (int64_t)timeout_secs * 1000000000LL;
    out->state = LOOKING_UP;
    out->listener = out->sock = -1;
    return 1;
}

/* The server says `nick` connects from `host` (WHOIS, 311): for each file
 * waiting for `nick`, listen on a port of our own and offer it. */
static void listen_for(const char *nick_name, const char *host)
{
    struct sockaddr_storage peer;
    int has_peer = parse_host(host, &peer);
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if (out->state != LOOKING_UP || !fold_eq(out->to, nick_name))
            continue;
        char call[ADDR_TEXT + 16];
        if (!listen_for_peer(out, call)) {
            int err = errno;
            out_done(out);
            say("-!- %s: %s: %s not offered", call, reason(err), out->name);
            continue;
        }
        /* \1DCC SEND name ip port size\1: IPv4 as a 32-bit number, IPv6 as
         * text; a name with spaces quoted. */
        const struct sockaddr_storage *bound = &out->bound;
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)bound;
        char ip[INET6_ADDRSTRLEN + 16];
        if (bound->ss_family == AF_INET)
            snprintf(ip, sizeof ip, "%lu",
                     (unsigned long)ntohl(((const struct sockaddr_in *)bound)->sin_addr.s_addr));
        else if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            snprintf(ip, sizeof ip, "%lu",
                     (unsigned long)ntohl(((const uint32_t *)&in6->sin6_addr)[3]));
        else
            ip_text(bound, ip);
        int quote = strchr(out->name, ' ') != NULL;
        char ctcp[MAX_LINE + 64];
        snprintf(ctcp, sizeof ctcp, "\1DCC SEND %s%s%s %s %u %llu\1", quote ? "\"" : "",
                 out->name, quote ? "\"" : "", ip, port_of(bound),
                 (unsigned long long)out->size);
        const char *params[] = { out->to, ctcp };
        send_irc("PRIVMSG", params, 2);
        char size[32];
        human(size, out->size);
        say("-!- offering %s (%s) to %s at %s: listening on %s for %lu s", out->name, size,
            out->to, host, out->addr, timeout_secs);
        if (!has_peer)
            say("-!- %s is not an address: whoever connects first gets %s", host, out->name);
        out->deadline = now_ns() + (int64_t)timeout_secs * 1000000000LL;
        out->state = LISTENING;
        out->has_peer = has_peer;
        out->peer = peer;
    }
}

/* No WHOIS answer for `nick`: the files waiting for them are not offered. */
static void no_peer(const char *nick_name, const char *why)
{
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if (out->state == LOOKING_UP && fold_eq(out->to, nick_name)) {
            say("-!- %s: %s: %s not offered", nick_name, why, out->name);
            out_done(out);
        }
    }
}

/* `DCC REJECT SEND name` from `from`: they refuse our offer. */
static void rejected(const char *from, const char *name)
{
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        int offered_it = out->state == LOOKING_UP || out->state == LISTENING;
        if (offered_it && fold_eq(out->to, from) && !strcmp(out->name, name)) {
            out_done(out); /* closes the listener */
            say("-!- %s refused %s", from, out->name);
            return;
        }
    }
}

/* A DCC SEND offer from `from`, whose host the server gave in the
 * message's prefix: shown, kept until /accept or /refuse. */
static void offered(const char *from, const char *host, const struct offer *offer)
{
    char name[NAME_TEXT], shown[8 * LINE_TEXT];
    if (!safe_name(name, offer->name)) {
        debug_text(shown, sizeof shown, offer->name);
        say("-!- %s offers a file without a usable name (%s): ignored", from, shown);
        return;
    }
    /* A port below 1024 is a service (mail, ssh...), not a client: an
     * offer pointing there would make us connect to it for someone. */
    char addr[ADDR_TEXT];
    addr_text((const struct sockaddr *)&offer->addr, addr);
    if (port_of(&offer->addr) < 1024) {
        say("-!- %s's offer of %s points to %s, a service's port: ignored", from, name, addr);
        return;
    }
    /* A newer offer of the same file replaces the old one; past
     * MAX_OFFERS the oldest waiting offer goes. */
    int k = 0, waiting = 0;
    for (int j = 0; j < nincoming; j++) {
        struct incoming *inc = &incoming[j];
        if (inc->state == OFFERED && fold_eq(inc->from, from) && !strcmp(inc->name, name))
            continue;
        if (k != j)
            incoming[k] = *inc;
        waiting += incoming[k].state == OFFERED;
        k++;
    }
    nincoming = k;
    if (waiting >= MAX_OFFERS) {
        for (int j = 0; j < nincoming; j++) {
            if (incoming[j].state == OFFERED) {
                say("-!- too many offers waiting: %s from %s forgotten", incoming[j].name,
                    incoming[j].from);
                in_done(&incoming[j]);
                break;
            }
        }
    }
    if (nincoming == MAX_INCOMING) {
        /* Full of what ended this turn: forget it now (it holds nothing). */
        k = 0;
        for (int j = 0; j < nincoming; j++)
            if (incoming[j].state != IN_DONE)
                incoming[k++] = incoming[j];
        nincoming = k;
        if (nincoming == MAX_INCOMING)
            return; /* cannot happen: at most 16 waiting and 16 under way */
    }
    char size[32];
    human(size, offer->size);
    say("-!- %s offers %s (%s): /accept %s or /refuse %s", from, name, size, from, from);
    if (strcmp(name, offer->name) != 0) {
        debug_text(shown, sizeof shown, offer->name);
        say("-!- (offered as %s: saved as %s)", shown, name);
    }
    struct sockaddr_storage host_ip;
    if (host != NULL && parse_host(host, &host_ip) && !same_ip(&host_ip, &offer->addr)) {
        char ip[INET6_ADDRSTRLEN + 16];
        ip_text(&offer->addr, ip);
        say("-!- (the offer points to %s, but %s connects from %s)", ip, from, host);
    }
    struct incoming *inc = &incoming[nincoming++];
    memset(inc, 0, sizeof *inc);
    snprintf(inc->from, sizeof inc->from, "%s", from);
    memcpy(inc->name, name, sizeof name);
    inc->offer = *offer;
    inc->deadline = now_ns();
    inc->state = OFFERED;
    inc->sock = inc->part = -1;
}

/* The first waiting offer from `nick`. */
static struct incoming *offer_from(const char *nick_name)
{
    for (int j = 0; j < nincoming; j++)
        if (incoming[j].state == OFFERED && fold_eq(incoming[j].from, nick_name))
            return &incoming[j];
    say("-!- no offer from %s", nick_name);
    return NULL;
}

/* The CTCP text that refuses an offer, sent in a NOTICE as irssi and mIRC
 * do: \1DCC REJECT SEND name\1. */
static void send_reject(const struct incoming *inc)
{
    char ctcp[LINE_TEXT + 32];
    snprintf(ctcp, sizeof ctcp, "\1DCC REJECT SEND %s\1", inc->offer.name);
    const char *params[] = { inc->from, ctcp };
    send_irc("NOTICE", params, 2);
}

/* /refuse NICK: tell the sender no (DCC REJECT, in a NOTICE), forget it. */
static void refuse(const char *nick_name)
{
    struct incoming *inc = offer_from(nick_name);
    if (inc == NULL)
        return;
    send_reject(inc);
    say("-!- refused %s from %s", inc->name, inc->from);
    in_done(inc);
}

/* /accept NICK: check the size, create NAME.part, connect to the sender. */
static void accept_offer(const char *nick_name)
{
    struct incoming *inc = offer_from(nick_name);
    if (inc == NULL)
        return;
    int active = 0;
    for (int j = 0; j < nincoming; j++)
        active += incoming[j].state == CONNECTING || incoming[j].state == RECEIVING;
    if (active >= MAX_TRANSFERS) {
        say("-!- %d files are being received already: wait for one to end", MAX_TRANSFERS);
        return;
    }
    if (mkdir_all(downloads) < 0) {
        say("-!- mkdir %s: %s", downloads, reason(errno));
        return;
    }
    /* Before any byte is written: does the file fit? statvfs(3): the
     * blocks available to an unprivileged user, times the fragment size. */
    uint64_t size = inc->offer.size;
    char why[PATH_MAX + 128] = "", amount[32];
    struct statvfs fs;
    int fs_ok = statvfs(downloads, &fs) == 0;
    int fs_err = errno;
    uint64_t free_bytes = 0;
    if (fs_ok) {
        uint64_t blocks = fs.f_bavail, frsize = fs.f_frsize;
        free_bytes = frsize != 0 && blocks > UINT64_MAX / frsize ? UINT64_MAX : blocks * frsize;
    }
    if (has_max_size && size > max_size) {
        human(amount, max_size);
        snprintf(why, sizeof why, "more than --max-size %s", amount);
    } else if (fs_ok && size > free_bytes) {
        human(amount, free_bytes);
        snprintf(why, sizeof why, "more than the free space in %s (%s)", downloads, amount);
    } else if (!fs_ok) {
        snprintf(why, sizeof why, "%s: %s", downloads, reason(fs_err));
    }
    if (why[0]) {
        human(amount, size);
        say("-!- %s (%s) refused: %s", inc->name, amount, why);
        send_reject(inc);
        in_done(inc);
        return;
    }
    if (!part_create(inc)) {
        say("-!- create a file in %s: %s", downloads, reason(errno));
        in_done(inc);
        return;
    }
    char addr[ADDR_TEXT];
    addr_text((const struct sockaddr *)&inc->offer.addr, addr);
    inc->sock = connect_to_sender(&inc->offer.addr);
    if (inc->sock < 0) {
        int err = errno;
        in_done(inc); /* the part file removed before the line says so */
        say("-!- connect %s: %s: %s not received", addr, reason(err), inc->name);
        return;
    }
    say("-!- connecting to %s at %s for %s", inc->from, addr, inc->name);
    inc->deadline = now_ns() + (int64_t)timeout_secs * 1000000000LL;
    inc->state = CONNECTING;
}

/* What each transfer waits for, for the poll set: fds and slots filled,
 * their number returned. */
static int interests(struct pollfd *fds, int *slots)
{
    int n = 0;
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if (out->state == LISTENING) {
            /* A connection waiting in the backlog makes the listener readable. */
            fds[n].fd = out->listener;
            fds[n].events = POLLIN;
        } else if (out->state == SENDING) {
            /* Always readable: acknowledgements, or the receiver's close. */
            fds[n].fd = out->sock;
            fds[n].events = POLLIN;
            if (out->sent < out->size)
                fds[n].events |= POLLOUT;
        } else {
            continue;
        }
        fds[n].revents = 0;
        slots[n++] = i;
    }
    for (int i = 0; i < nincoming; i++) {
        struct incoming *inc = &incoming[i];
        if (inc->state == CONNECTING) {
            /* A non-blocking connect(2) is done when the socket is writable. */
            fds[n].fd = inc->sock;
            fds[n].events = POLLOUT;
        } else if (inc->state == RECEIVING) {
            fds[n].fd = inc->sock;
            fds[n].events = POLLIN;
            if (ack_pending(inc))
                fds[n].events |= POLLOUT;
        } else {
            continue;
        }
        fds[n].revents = 0;
        slots[n++] = MAX_TRANSFERS + i;
    }
    return n;
}

/* The sender's side of a connection (or of its listening socket) is ready. */
static void outgoing_ready(int i, short revents)
{
    struct outgoing *out = &outgoing[i];
    char line[4 * LINE_TEXT];
    if (out->state == LISTENING) {
        struct sockaddr_storage from;
        socklen_t from_len = sizeof from;
        int conn = accept4(out->listener, NULL, NULL, SOCK_NONBLOCK);
        if (conn < 0) {
            /* Gone before we took it (ECONNABORTED), or not there yet. */
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                return;
            int err = errno;
            snprintf(line, sizeof line, "accept %s: %s: %s not sent", out->addr, reason(err),
                     out->name);
            out_done(out);
            say("-!- %s", line);
            return;
        }
        if (getpeername(conn, (struct sockaddr *)&from, &from_len) < 0 ||
            (from.ss_family != AF_INET && from.ss_family != AF_INET6)) {
            close(conn); /* gone already */
            return;
        }
        char from_text[ADDR_TEXT];
        addr_text((const struct sockaddr *)&from, from_text);
        /* Only the offered peer may take the file. What this proves: the
         * connection comes from the address the server saw the peer at,
         * not that it is the peer. Anyone else on that address (the same
         * machine, all of loopback, the same NAT) passes; an address the
         * server calls by name cannot be checked at all. */
        if (out->has_peer && !same_ip(&from, &out->peer)) {
            char expected[INET6_ADDRSTRLEN + 16];
            ip_text(&out->peer, expected);
            say("-!- refused a connection from %s for %s: %s is at %s", from_text, out->name,
                out->to, expected);
            close(conn); /* the offer still stands */
            return;
        }
        /* The peer is in: nobody else may come. The listener is closed. */
        say("-!- %s connected from %s: sending %s", out->to, from_text, out->name);
        char *chunk = malloc(CHUNK);
        if (chunk == NULL) {
            close(conn);
            out_done(out);
            say("-!- %s to %s failed: %s", out->name, out->to, reason(ENOMEM));
            return;
        }
        close(out->listener);
        out->listener = -1;
        out->deadline = now_ns() + (int64_t)timeout_secs * 1000000000LL;
        out->state = SENDING;
        out->sock = conn;
        memcpy(out->peer_text, from_text, sizeof from_text);
        out->chunk = chunk;
        out->start = out->end = 0;
        out->sent = 0;
        out->has_acked = 0;
        out->ack_len = 0;
        out->progress.started = now_ns();
        out->progress.quarters = 0;
    } else if (out->state == SENDING) {
        char why[2 * LINE_TEXT];
        int moved = sending_ready(out, revents, why);
        if (moved < 0) {
            snprintf(line, sizeof line, "%s to %s failed: %s", out->name, out->to, why);
        } else if (out->sent == out->size && out->has_acked &&
                   out->acked == (uint32_t)(out->size & 0xffffffffu)) {
            char text[256];
            summary(text, sizeof text, &out->progress, out->sent);
            snprintf(line, sizeof line, "sent %s to %s: %s", out->name, out->to, text);
        } else {
            if (moved)
                out->deadline = now_ns() + (int64_t)timeout_secs * 1000000000LL;
            return;
        }
        out_done(out); /* closes the connection */
        say("-!- %s", line);
    }
}

/* Reads acknowledgements (and the receiver's close), writes the next piece
 * of the file. 1 if something moved, 0 if not, -1 on failure (why says it). */
static int sending_ready(struct outgoing *out, short revents, char *why)
{
    int moved = 0;
    size_t room = 2 * LINE_TEXT;
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        /* Each acknowledgement is 4 bytes, big-endian: how many bytes the
         * receiver has so far, modulo 2^32. They may arrive split or
         * several at once, as any bytes on a TCP stream. */
        unsigned char acks[512];
        ssize_t n = read(out->sock, acks, sizeof acks);
        if (n == 0 && out->sent == out->size) {
            /* Closed after everything: classic receivers close at the end
             * instead of (or after) the last acknowledgement. */
            out->has_acked = 1;
            out->acked = (uint32_t)(out->size & 0xffffffffu);
        } else if (n == 0) {
            snprintf(why, room, "%s closed the connection after %llu of %llu bytes",
                     out->peer_text, (unsigned long long)out->sent,
                     (unsigned long long)out->size);
            return -1;
        } else if (n > 0) {
            for (ssize_t k = 0; k < n; k++) {
                out->ack[out->ack_len++] = acks[k];
                if (out->ack_len == 4) {
                    out->acked = (uint32_t)out->ack[0] << 24 | (uint32_t)out->ack[1] << 16 |
                                 (uint32_t)out->ack[2] << 8 | out->ack[3];
                    out->has_acked = 1;
                    out->ack_len = 0;
                }
            }
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, room, "read %s: %s", out->peer_text, reason(errno));
            return -1;
        }
    }
    if ((revents & POLLOUT) && out->sent < out->size) {
        if (out->start == out->end) {
            /* The next chunk, and never past the size we announced. */
            uint64_t left = out->size - out->sent;
            size_t want = left < CHUNK ? (size_t)left : CHUNK;
            ssize_t n = read(out->file, out->chunk, want);
            if (n == 0) {
                snprintf(why, room, "the file shrank to %llu bytes",
                         (unsigned long long)out->sent);
                return -1;
            } else if (n < 0 && errno == EINTR) {
                return moved;
            } else if (n < 0) {
                snprintf(why, room, "read the file: %s", reason(errno));
                return -1;
            }
            out->start = 0;
            out->end = (size_t)n;
        }
        /* One write(2): the socket takes what fits; poll says when more will. */
        ssize_t n = write(out->sock, out->chunk + out->start, out->end - out->start);
        if (n >= 0) {
            out->start += (size_t)n;
            out->sent += (uint64_t)n;
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, room, "write %s: %s", out->peer_text, reason(errno));
            return -1;
        }
    }
    return moved;
}

/* The receiver's connection is ready. */
static void incoming_ready(int i, short revents)
{
    struct incoming *inc = &incoming[i];
    if (inc->state == CONNECTING) {
        /* SO_ERROR holds the outcome of a non-blocking connect(2). */
        int err = 0;
        socklen_t err_len = sizeof err;
        if (getsockopt(inc->sock, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0)
            err = errno;
        if (err == 0) {
            inc->chunk = malloc(CHUNK);
            if (inc->chunk == NULL)
                err = ENOMEM;
        }
        if (err != 0) {
            char addr[ADDR_TEXT];
            addr_text((const struct sockaddr *)&inc->offer.addr, addr);
            in_done(inc); /* the part file removed before the line says so */
            say("-!- connect %s: %s: %s not received", addr, reason(err), inc->name);
            return;
        }
        say("-!- connected to %s: receiving %s", inc->from, inc->name);
        inc->deadline = now_ns() + (int64_t)timeout_secs * 1000000000LL;
        inc->received = 0;
        inc->ack_sent = 4;
        memset(inc->ack, 0, sizeof inc->ack);
        inc->progress.started = now_ns();
        inc->progress.quarters = 0;
        inc->state = RECEIVING;
        if (inc->offer.size == 0)
            receiving_finish(inc);
    } else if (inc->state == RECEIVING) {
        char why[2 * LINE_TEXT + PATH_MAX];
        int moved = receiving_ready(inc, revents, why);
        if (moved < 0) {
            in_done(inc); /* the part file removed before the line says so */
            say("-!- %s from %s failed: %s; nothing kept", inc->name, inc->from, why);
        } else if (inc->received == inc->offer.size) {
            receiving_finish(inc);
        } else if (moved) {
            inc->deadline = now_ns() + (int64_t)timeout_secs * 1000000000LL;
        }
    }
}

/* Reads the next piece, appends it to the part file, acknowledges. 1 if
 * something moved, 0 if not, -1 on failure (why says it). */
static int receiving_ready(struct incoming *inc, short revents, char *why)
{
    int moved = 0;
    size_t room = 2 * LINE_TEXT + PATH_MAX;
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        /* Never more than announced: a sender that sends more is cut off
         * at the size, the rest never read. */
        uint64_t left = inc->offer.size - inc->received;
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        ssize_t n = read(inc->sock, inc->chunk, want);
        if (n == 0) {
            snprintf(why, room, "the sender closed the connection after %llu of %llu bytes",
                     (unsigned long long)inc->received, (unsigned long long)inc->offer.size);
            return -1;
        } else if (n > 0) {
            /* All of it to the file (write(2) may take less, and EINTR). */
            for (ssize_t done = 0; done < n;) {
                ssize_t w = write(inc->part, inc->chunk + done, (size_t)(n - done));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    snprintf(why, room, "write %s: %s", inc->part_path,
                             reason(w == 0 ? ERR_SHORT_WRITE : errno));
                    return -1;
                }
                done += w;
            }
            inc->received += (uint64_t)n;
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, room, "read: %s", reason(errno));
            return -1;
        }
    }
    if (send_ack(inc) < 0) {
        snprintf(why, room, "write the acknowledgement: %s", reason(errno));
        return -1;
    }
    return moved;
}

/* Whether an acknowledgement is still to go out. */
static int ack_pending(const struct incoming *inc)
{
    uint32_t acked = (uint32_t)inc->ack[0] << 24 | (uint32_t)inc->ack[1] << 16 |
                     (uint32_t)inc->ack[2] << 8 | inc->ack[3];
    return inc->ack_sent < 4 || acked != (uint32_t)(inc->received & 0xffffffffu);
}

/* Tells the sender how many bytes arrived: 4 bytes, big-endian, modulo
 * 2^32 (the classic DCC acknowledgement, which irssi waits for before it
 * closes). Only the latest count matters, so one is kept, never a queue;
 * one begun is finished first, or the stream would lose its 4-byte
 * framing. 0, or -1 with errno. */
static int send_ack(struct incoming *inc)
{
    for (;;) {
        if (inc->ack_sent == 4) {
            if (!ack_pending(inc))
                return 0;
            uint32_t count = (uint32_t)(inc->received & 0xffffffffu);
            inc->ack[0] = (unsigned char)(count >> 24);
            inc->ack[1] = (unsigned char)(count >> 16);
            inc->ack[2] = (unsigned char)(count >> 8);
            inc->ack[3] = (unsigned char)count;
            inc->ack_sent = 0;
        }
        ssize_t n = write(inc->sock, inc->ack + inc->ack_sent, 4 - inc->ack_sent);
        if (n >= 0)
            inc->ack_sent += (size_t)n;
        else if (errno == EINTR)
            continue;
        else if (errno == EAGAIN)
            return 0; /* poll says POLLOUT when there is room */
        else
            return -1;
    }
}

/* All announced bytes are in: the last acknowledgement, the part file
 * linked to its final name, the connection closed. */
static void receiving_finish(struct incoming *inc)
{
    /* Best effort: 4 bytes into an empty send buffer. A sender that never
     * reads its acknowledgements may not get this one; it sees our close
     * instead. */
    send_ack(inc);
    char text[256], target[PATH_MAX];
    summary(text, sizeof text, &inc->progress, inc->received);
    int kept = part_keep(inc, target);
    int err = errno;
    in_done(inc); /* closes the connection (and removes a part not kept) */
    if (kept)
        say("-!- received %s from %s: %s, saved as %s", inc->name, inc->from, text, target);
    else
        say("-!- keep %s: %s: nothing kept", inc->name, reason(err));
}

/* Whether anything of ours is under way: an offer out, a transfer. */
static int busy(void)
{
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state != OUT_DONE)
            return 1;
    for (int i = 0; i < nincoming; i++)
        if (incoming[i].state == CONNECTING || incoming[i].state == RECEIVING)
            return 1;
    return 0;
}

/* The next deadline of an offer or a transfer, INT64_MAX if none. */
static int64_t next_deadline(void)
{
    int64_t next = INT64_MAX;
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state != OUT_DONE && outgoing[i].deadline < next)
            next = outgoing[i].deadline;
    for (int i = 0; i < nincoming; i++)
        if ((incoming[i].state == CONNECTING || incoming[i].state == RECEIVING) &&
            incoming[i].deadline < next)
            next = incoming[i].deadline;
    return next;
}

/* Offers nobody took, transfers that stalled: given up. */
static void check_deadlines(int64_t now)
{
    unsigned long secs = timeout_secs;
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        enum out_state state = out->state;
        if (now < out->deadline || state == OUT_DONE)
            continue;
        out_done(out); /* closes its descriptor before the line says so */
        const char *name = out->name, *to = out->to;
        if (state == LOOKING_UP)
            say("-!- no answer about %s in %lu s: %s not offered", to, secs, name);
        else if (state == LISTENING)
            say("-!- nobody came for %s in %lu s: the offer to %s is withdrawn", name, secs, to);
        else if (out->sent == out->size)
            say("-!- sent %s to %s, but %s did not confirm the end within %lu s", name, to, to,
                secs);
        else
            say("-!- %s to %s stalled for %lu s: abandoned", name, to, secs);
    }
    for (int i = 0; i < nincoming; i++) {
        struct incoming *inc = &incoming[i];
        int active = inc->state == CONNECTING || inc->state == RECEIVING;
        if (active && now >= inc->deadline) {
            in_done(inc); /* removes the part file */
            say("-!- %s from %s stalled for %lu s: abandoned, nothing kept", inc->name,
                inc->from, secs);
        }
    }
}

/* Progress: one line redrawn in place on a terminal; elsewhere a plain
 * line at each quarter of each transfer. */
static void progress_one(char *status, size_t *used, const char *name, const char *dir,
                         const char *who, uint64_t done, uint64_t total, struct progress *p)
{
    char text[256], line[4 * LINE_TEXT];
    progress_text(text, sizeof text, done, total, now_ns() - p->started);
    snprintf(line, sizeof line, "%s %s %s: %s", name, dir, who, text);
    if (tty) {
        /* Parts joined with " | "; what does not fit the status is left out. */
        size_t len = strlen(line), sep = *used > 0 ? 3 : 0;
        if (*used + sep + len < 8 * LINE_TEXT) {
            memcpy(status + *used, " | ", sep);
            memcpy(status + *used + sep, line, len + 1);
            *used += sep + len;
        }
    } else {
        uint64_t quarters = (uint64_t)((unsigned __int128)done * 4 / (total > 0 ? total : 1));
        if (quarters > p->quarters && quarters < 4) {
            p->quarters = quarters;
            say("-!- %s", line);
        }
    }
}

static void show_progress(void)
{
    static char status[8 * LINE_TEXT];
    size_t used = 0;
    status[0] = '\0';
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if (out->state == SENDING)
            progress_one(status, &used, out->name, "to", out->to, out->sent, out->size,
                         &out->progress);
    }
    for (int i = 0; i < nincoming; i++) {
        struct incoming *inc = &incoming[i];
        if (inc->state == RECEIVING)
            progress_one(status, &used, inc->name, "from", inc->from, inc->received,
                         inc->offer.size, &inc->progress);
    }
    if (used > 0 && now_ns() - redrawn >= REDRAW_NS) {
        /* CR goes back to the start of the line, ESC [ K (ECMA-48 EL)
         * erases what was there: the line is rewritten in place. Log lines
         * erase it first (say), so the two never mix. */
        printf("\r\033[K%s", status);
        fflush(stdout);
        status_shown = 1;
        redrawn = now_ns();
    }
}

/* The end of the turn: forget what is over (its descriptors are closed and
 * a part file left is removed already, by out_done and in_done). */
static void remove_done(void)
{
    int k = 0;
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state != OUT_DONE)
            outgoing[k++] = outgoing[i];
    noutgoing = k;
    k = 0;
    for (int i = 0; i < nincoming; i++)
        if (incoming[i].state != IN_DONE)
            incoming[k++] = incoming[i];
    nincoming = k;
}

/* The client is leaving: every transfer is dropped, part files removed. */
static void abandon_all(int say_so)
{
    if (say_so && busy())
        say("-!- transfers abandoned");
    for (int i = 0; i < noutgoing; i++)
        out_done(&outgoing[i]);
    for (int i = 0; i < nincoming; i++)
        in_done(&incoming[i]);
    noutgoing = nincoming = 0;
}

/* An offer or transfer of ours is over: its descriptors closed, its
 * chunk freed. Called once per state change; safe to call again. */
static void out_done(struct outgoing *out)
{
    if (out->state == OUT_DONE)
        return;
    if (out->listener >= 0)
        close(out->listener);
    if (out->sock >= 0)
        close(out->sock);
    if (out->file >= 0)
        close(out->file);
    free(out->chunk);
    out->listener = out->sock = out->file = -1;
    out->chunk = NULL;
    out->state = OUT_DONE;
}

/* An offer received is over: its connection closed, its part file closed
 * and removed unless it was kept (part_keep removes its name itself). */
static void in_done(struct incoming *inc)
{
    if (inc->state == IN_DONE)
        return;
    if (inc->sock >= 0)
        close(inc->sock);
    if (inc->part >= 0) {
        close(inc->part);
        unlink(inc->part_path);
    }
    free(inc->chunk);
    inc->sock = inc->part = -1;
    inc->chunk = NULL;
    inc->state = IN_DONE;
}

/* The second connection's server side, as lab 01's server: a socket bound
 * to our address on the chat connection and port 0, so that the kernel
 * picks a free port, listen(2) with a backlog of 1 (one peer is expected),
 * and getsockname(2) to learn which port we got (in out->addr). 0 on
 * failure, with errno, and call saying which call on what. */
static int listen_for_peer(struct outgoing *out, char *call)
{
    struct sockaddr_storage addr = local;
    socklen_t len;
    if (addr.ss_family == AF_INET) {
        ((struct sockaddr_in *)&addr)->sin_port = 0;
        len = sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
        in6->sin6_port = 0;
        in6->sin6_flowinfo = 0;
        in6->sin6_scope_id = 0;
        len = sizeof(struct sockaddr_in6);
    }
    char text[ADDR_TEXT];
    addr_text((const struct sockaddr *)&addr, text);
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        sprintf(call, "socket %s", text);
        return 0;
    }
    const char *failed = NULL;
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;
    if (bind(fd, (struct sockaddr *)&addr, len) < 0)
        failed = "bind";
    else if (listen(fd, 1) < 0)
        failed = "listen";
    else if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) < 0)
        failed = "getsockname";
    if (failed != NULL) {
        int err = errno;
        sprintf(call, "%s %s", failed, text);
        close(fd);
        errno = err;
        return 0;
    }
    out->bound = bound;
    addr_text((const struct sockaddr *)&bound, out->addr);
    out->listener = fd;
    return 1;
}

/* The second connection's client side, as lab 01's client, but
 * non-blocking: connect(2) answers EINPROGRESS at once, and poll(2) says
 * POLLOUT when the handshake is over (connect(2), "EINPROGRESS"), so the
 * chat goes on meanwhile, even towards an address that never answers.
 * The socket, or -1 with errno. */
static int connect_to_sender(const struct sockaddr_storage *addr)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    socklen_t len = addr->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                               : sizeof(struct sockaddr_in6);
    if (connect(fd, (const struct sockaddr *)addr, len) < 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* Creates dir/NAME.part, or dir/NAME-1.part... for the first number whose
 * final name and part are both free. O_EXCL: an existing file, or a
 * symlink planted there, is never opened, let alone overwritten. 0 on
 * failure, with errno. */
static int part_create(struct incoming *inc)
{
    char candidate[NAME_TEXT + 16], path[PATH_MAX];
    struct stat st;
    for (unsigned number = 0; number < 1000; number++) {
        numbered(candidate, inc->name, number);
        if (!join_path(path, downloads, candidate, ""))
            return 0;
        if (lstat(path, &st) == 0)
            continue;
        if (!join_path(path, downloads, candidate, ".part"))
            return 0;
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            return 0;
        inc->part = fd;
        inc->number = number;
        memcpy(inc->part_path, path, sizeof path);
        return 1;
    }
    errno = ERR_NO_FREE_NAME;
    return 0;
}

/* Gives the complete file its final name (in target) without overwriting
 * anything: link(2) fails with EEXIST where rename(2) would replace a file
 * created meanwhile; then the next number is tried. 0 on failure, with
 * errno. */
static int part_keep(struct incoming *inc, char *target)
{
    char candidate[NAME_TEXT + 16];
    struct stat st;
    for (unsigned number = inc->number; number < inc->number + 1000; number++) {
        numbered(candidate, inc->name, number);
        if (!join_path(target, downloads, candidate, ""))
            return 0;
        int rc = link(inc->part_path, target);
        if (rc < 0 && errno == EPERM) {
            /* No hard links on this file system (FAT): rename(2), if the
             * name is free. */
            if (lstat(target, &st) == 0) {
                errno = EEXIST;
            } else {
                rc = rename(inc->part_path, target);
            }
        }
        if (rc == 0) {
            /* The part's name goes (gone already after a rename); in_done
             * must not remove it again. */
            unlink(inc->part_path);
            close(inc->part);
            inc->part = -1;
            return 1;
        }
        if (errno != EEXIST)
            return 0;
    }
    errno = ERR_NO_FREE_NAME;
    return 0;
}

/* `52.4 MB (52428800 bytes) in 0.9 s, 58.1 MB/s` */
static void summary(char *out, size_t size, const struct progress *p, uint64_t bytes)
{
    int64_t elapsed = now_ns() - p->started;
    char amount[32], speed[40];
    human(amount, bytes);
    rate(speed, bytes, elapsed);
    snprintf(out, size, "%s (%llu bytes) in %.2f s, %s", amount, (unsigned long long)bytes,
             (double)elapsed / 1e9, speed);
}

/* ---- DCC, names, sizes (src/dcc.rs) ----------------------------------------------
 *
 *   PRIVMSG bob :\1DCC SEND report.pdf 2130706433 41234 1234567\1
 *                          name       IPv4 as a   port  size in
 *                                     32-bit number      bytes
 *   NOTICE alice :\1DCC REJECT SEND report.pdf\1      bob says no
 */

#define FEWER "fewer than 4 fields (name, address, port, size)"

/* Reads a CTCP body. 0 if it is not a DCC at all (an ACTION...); 1 for
 * DCC SEND (offer filled); 2 for DCC REJECT SEND (text: the name); 3 for a
 * DCC this client does not do (text: what it is); -1 for a DCC that makes
 * no sense (text: why). */
static int parse_dcc(const char *body, struct offer *offer, char *text)
{
    char copy[LINE_TEXT];
    snprintf(copy, sizeof copy, "%s", body);
    char *space = strchr(copy, ' ');
    char *rest = space ? (*space = '\0', space + 1) : copy + strlen(copy);
    if (strcasecmp(copy, "DCC") != 0)
        return 0;
    while (*rest == ' ')
        rest++;
    char *kind = rest;
    space = strchr(rest, ' ');
    char *args = space ? (*space = '\0', space + 1) : rest + strlen(rest);
    for (char *s = kind; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 32);
    if (!strcmp(kind, "REJECT")) {
        while (*args == ' ')
            args++;
        space = strchr(args, ' ');
        if (space != NULL) {
            *space = '\0';
            if (!strcasecmp(args, "SEND")) {
                /* The name, unquoted when it came between two quotes. */
                char *name = trim(space + 1);
                size_t len = strlen(name);
                if (len >= 2 && name[0] == '"' && name[len - 1] == '"') {
                    name[len - 1] = '\0';
                    name++;
                }
                strcpy(text, name);
                return 2;
            }
            *space = ' ';
        }
        sprintf(text, "DCC REJECT %s", args);
        return 3;
    }
    if (kind[0] == '\0') {
        strcpy(text, "an empty DCC request");
        return -1;
    }
    if (strcmp(kind, "SEND") != 0) {
        sprintf(text, "DCC %s", kind);
        return 3;
    }

    /* DCC SEND name ip port size, the name quoted if it holds spaces. A
     * fifth field is the token of a passive (reverse) offer, port 0: the
     * receiver would have to listen, which this client does not do. */
    while (*args == ' ')
        args++;
    size_t len = strlen(args);
    while (len > 0 && args[len - 1] == ' ')
        args[--len] = '\0';
    char *fields[LINE_TEXT];
    int nfields = 0;
    if (args[0] == '"') {
        char *close_quote = strchr(args + 1, '"');
        if (close_quote == NULL) {
            strcpy(text, "a quoted name without its closing quote");
            return -1;
        }
        *close_quote = '\0';
        snprintf(offer->name, sizeof offer->name, "%s", args + 1);
        for (char *f = strtok(close_quote + 1, " "); f != NULL; f = strtok(NULL, " "))
            fields[nfields++] = f;
    } else {
        /* Some clients do not quote names with spaces: the name is
         * everything before the numeric fields at the end. */
        char *all[LINE_TEXT];
        int nall = 0;
        for (char *f = strtok(args, " "); f != NULL; f = strtok(NULL, " "))
            all[nall++] = f;
        if (nall < 4) {
            strcpy(text, FEWER);
            return -1;
        }
        int passive = nall >= 5 && !strcmp(all[nall - 3], "0");
        int cut = nall - (passive ? 4 : 3);
        offer->name[0] = '\0';
        for (int k = 0; k < cut; k++) {
            if (k > 0)
                strcat(offer->name, " ");
            strcat(offer->name, all[k]);
        }
        for (int k = cut; k < nall; k++)
            fields[nfields++] = all[k];
    }
    if (nfields < 3) {
        strcpy(text, FEWER);
        return -1;
    }
    if (nfields > 4) {
        strcpy(text, "too many fields");
        return -1;
    }
    char shown[8 * LINE_TEXT];
    uint64_t port, size;
    if (!parse_ip(fields[0], &offer->addr)) {
        debug_text(shown, sizeof shown, fields[0]);
        sprintf(text, "bad address %.*s", LINE_TEXT, shown);
        return -1;
    }
    if (!parse_unsigned(fields[1], 65535, &port)) {
        debug_text(shown, sizeof shown, fields[1]);
        sprintf(text, "bad port %.*s", LINE_TEXT, shown);
        return -1;
    }
    if (!parse_unsigned(fields[2], UINT64_MAX, &size)) {
        debug_text(shown, sizeof shown, fields[2]);
        sprintf(text, "bad size %.*s", LINE_TEXT, shown);
        return -1;
    }
    if (port == 0 || nfields == 4) {
        strcpy(text, "passive DCC SEND (port 0)");
        return 3;
    }
    if (offer->addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&offer->addr)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&offer->addr)->sin6_port = htons((uint16_t)port);
    offer->size = size;
    return 1;
}

/* The address of an offer: an IPv4 address as a 32-bit number in network
 * order (2130706433 is 127.0.0.1), or IPv6 (or dotted IPv4) as text.
 * Nobody listens on 0.0.0.0 or a multicast address. */
static int parse_ip(const char *text, struct sockaddr_storage *ip)
{
    memset(ip, 0, sizeof *ip);
    struct sockaddr_in *in = (struct sockaddr_in *)ip;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ip;
    uint64_t number;
    if (text[strspn(text, "0123456789")] == '\0') {
        if (!parse_unsigned(text, UINT32_MAX, &number) || text[0] == '+')
            return 0;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl((uint32_t)number);
    } else if (strchr(text, ':') != NULL) {
        in6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, text, &in6->sin6_addr) != 1)
            return 0;
    } else {
        in->sin_family = AF_INET;
        if (inet_pton(AF_INET, text, &in->sin_addr) != 1)
            return 0;
    }
    if (ip->ss_family == AF_INET) {
        uint32_t a = ntohl(in->sin_addr.s_addr);
        return a != 0 && (a >> 28) != 0xE;
    }
    return !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) && !IN6_IS_ADDR_MULTICAST(&in6->sin6_addr);
}

/* A host as the server gives it (WHOIS, a prefix): an IP address, or 0. */
static int parse_host(const char *text, struct sockaddr_storage *ip)
{
    memset(ip, 0, sizeof *ip);
    struct sockaddr_in *in = (struct sockaddr_in *)ip;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ip;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return 1;
    }
    memset(ip, 0, sizeof *ip);
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return 1;
    }
    return 0;
}

/* The address of ip as 16 bytes, IPv4 as an IPv4-mapped IPv6 address: two
 * addresses that are the same host compare equal (Rust's to_canonical). */
static void canonical(const struct sockaddr_storage *ip, unsigned char *out)
{
    if (ip->ss_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)ip)->sin_addr, 4);
    } else {
        memcpy(out, &((const struct sockaddr_in6 *)ip)->sin6_addr, 16);
    }
}

static int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    unsigned char x[16], y[16];
    canonical(a, x);
    canonical(b, y);
    return memcmp(x, y, 16) == 0;
}

/* The IP address alone, as text (inet_ntop(3)). */
static void ip_text(const struct sockaddr_storage *ip, char *out)
{
    if (ip->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ip)->sin6_addr, out,
                  INET6_ADDRSTRLEN);
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ip)->sin_addr, out, INET6_ADDRSTRLEN);
}

static uint16_t port_of(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    return ntohs(((const struct sockaddr_in *)addr)->sin_port);
}

/* Unicode's explicit direction controls (LRM, RLM, embeddings, overrides,
 * isolates), as UTF-8: invisible, and they reorder what follows. */
static int bidi(const unsigned char *u)
{
    return u[0] == 0xE2 && ((u[1] == 0x80 && (u[2] == 0x8E || u[2] == 0x8F ||
                                               (u[2] >= 0xAA && u[2] <= 0xAE))) ||
                            (u[1] == 0x81 && u[2] >= 0xA6 && u[2] <= 0xA9));
}

/* The length of the UTF-8 character at s (valid UTF-8: utf8_lossy made it). */
static size_t char_len(const char *s)
{
    unsigned char b = (unsigned char)*s;
    return b < 0x80 || b == (unsigned char)NUL_MARK ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

/* The name under which an offered file may be saved (into out), or 0 if
 * nothing usable is left. A name is the sender's choice, so:
 * - only its last component is kept, after / or \: no directory, no ..,
 *   no absolute path can lead outside the download directory;
 * - names made only of dots (., ..) are refused, and a leading dot
 *   becomes _ (no hidden files);
 * - control characters (a terminal escape, a newline in a log), quotes,
 *   and the Unicode controls that reverse text become _;
 * - blanks around it go, and it is cut to MAX_NAME bytes (at a
 *   character's start). */
static int safe_name(char *out, const char *offered_name)
{
    const char *base = offered_name;
    for (const char *s = offered_name; *s; s++)
        if (*s == '/' || *s == '\\')
            base = s + 1;
    char copy[LINE_TEXT];
    snprintf(copy, sizeof copy, "%s", base);
    char *name = trim(copy);
    if (name[strspn(name, ".")] == '\0')
        return 0; /* "", ".", ".." */
    size_t n = 0;
    for (const char *s = name; *s;) {
        const unsigned char *u = (const unsigned char *)s;
        size_t len = char_len(s);
        int control = u[0] < 0x20 || u[0] == 0x7F || u[0] == (unsigned char)NUL_MARK ||
                      (u[0] == 0xC2 && u[1] >= 0x80 && u[1] <= 0x9F);
        if (control || u[0] == '"' || bidi(u)) {
            if (n + 1 > MAX_NAME)
                break;
            out[n++] = '_';
        } else {
            if (n + len > MAX_NAME)
                break;
            memcpy(out + n, s, len);
            n += len;
        }
        s += len;
    }
    out[n] = '\0';
    if (out[0] == '.')
        out[0] = '_';
    return 1;
}

/* The nth name to try when name exists: report.pdf, then report-1.pdf,
 * report-2.pdf... (README-1 without an extension). */
static void numbered(char *out, const char *name, unsigned n)
{
    const char *dot = strrchr(name, '.');
    if (n == 0)
        strcpy(out, name);
    else if (dot != NULL && dot > name)
        sprintf(out, "%.*s-%u%s", (int)(dot - name), name, n, dot);
    else
        sprintf(out, "%s-%u", name, n);
}

/* A size for people: 512 B, 1.2 MB (decimal units, as network rates are). */
static void human(char *out, uint64_t bytes)
{
    static const char *units[] = { "kB", "MB", "GB", "TB", "PB", "EB" };
    if (bytes < 1000) {
        sprintf(out, "%llu B", (unsigned long long)bytes);
        return;
    }
    double value = (double)bytes / 1000.0;
    int unit = 0;
    while (value >= 999.95 && unit + 1 < 6) {
        value /= 1000.0;
        unit++;
    }
    sprintf(out, "%.1f %s", value, units[unit]);
}

/* Bytes per second over elapsed nanoseconds, as 61.2 MB/s. */
static void rate(char *out, uint64_t bytes, int64_t elapsed)
{
    double secs = (double)elapsed / 1e9;
    if (secs < 1e-3)
        secs = 1e-3;
    double per_sec = (double)bytes / secs;
    human(out, per_sec >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)per_sec);
    strcat(out, "/s");
}

/* A progress report: 12.3 MB of 52.4 MB (23%), 61.2 MB/s, 1 s left */
static void progress_text(char *out, size_t size, uint64_t done, uint64_t total, int64_t elapsed)
{
    uint64_t percent = total == 0 ? 100 : (uint64_t)((unsigned __int128)done * 100 / total);
    double secs = (double)elapsed / 1e9;
    char left[64], a[32], b[32], r[40];
    if (done == 0 || secs <= 0.0)
        strcpy(left, "?");
    else
        snprintf(left, sizeof left, "%.0f", (double)(total > done ? total - done : 0) *
                                                (secs / (double)done));
    human(a, done);
    human(b, total);
    rate(r, done, elapsed);
    snprintf(out, size, "%s of %s (%llu%%), %s, %s s left", a, b, (unsigned long long)percent, r,
             left);
}

/* A string as Rust's {:?} shows it: between quotes, with \" \\ \n \r \t
 * \0 and \u{..} for the other control and invisible characters. */
static void debug_text(char *out, size_t size, const char *s)
{
    size_t n = 0;
    out[n++] = '"';
    while (*s && n + 12 < size) {
        const unsigned char *u = (const unsigned char *)s;
        size_t len = char_len(s);
        unsigned long cp = u[0];
        if (len == 2)
            cp = (u[0] & 0x1Fu) << 6 | (u[1] & 0x3Fu);
        else if (len == 3)
            cp = (u[0] & 0x0Fu) << 12 | (u[1] & 0x3Fu) << 6 | (u[2] & 0x3Fu);
        else if (len == 4)
            cp = (u[0] & 0x07ul) << 18 | (u[1] & 0x3Ful) << 12 | (u[2] & 0x3Ful) << 6 |
                 (u[3] & 0x3Ful);
        if (u[0] == (unsigned char)NUL_MARK)
            n += (size_t)sprintf(out + n, "\\0");
        else if (cp == '"' || cp == '\\')
            n += (size_t)sprintf(out + n, "\\%c", (char)cp);
        else if (cp == '\n')
            n += (size_t)sprintf(out + n, "\\n");
        else if (cp == '\r')
            n += (size_t)sprintf(out + n, "\\r");
        else if (cp == '\t')
            n += (size_t)sprintf(out + n, "\\t");
        else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0xAD ||
                 (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
                 (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF)
            n += (size_t)sprintf(out + n, "\\u{%lx}", cp);
        else {
            memcpy(out + n, s, len);
            n += len;
        }
        s += len;
    }
    out[n++] = '"';
    out[n] = '\0';
}

/* A size given on the command line: bytes, or with a decimal unit (500k,
 * 10M, 2G, 1T; kB, MB... too), as human() writes them. */
static int parse_size(const char *text, uint64_t *out, const char **why)
{
    char copy[LINE_TEXT];
    snprintf(copy, sizeof copy, "%s", text);
    char *t = trim(copy);
    size_t digits = strspn(t, "0123456789");
    char number[LINE_TEXT];
    memcpy(number, t, digits);
    number[digits] = '\0';
    char *unit = trim(t + digits);
    uint64_t value, factor;
    *why = "a number of bytes, with k, M, G or T if you like";
    if (!parse_unsigned(number, UINT64_MAX, &value))
        return 0;
    for (char *s = unit; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
    size_t len = strlen(unit);
    if (len > 0 && unit[len - 1] == 'b')
        unit[--len] = '\0';
    if (len == 0)
        factor = 1;
    else if (!strcmp(unit, "k"))
        factor = 1000;
    else if (!strcmp(unit, "m"))
        factor = 1000000;
    else if (!strcmp(unit, "g"))
        factor = 1000000000;
    else if (!strcmp(unit, "t"))
        factor = 1000000000000ULL;
    else
        return 0;
    if (value > UINT64_MAX / factor) {
        *why = "too large";
        return 0;
    }
    *out = value * factor;
    return 1;
}

/* A number as Rust's str::parse reads an unsigned one: an optional '+',
 * then decimal digits only, at most max. */
static int parse_unsigned(const char *text, uint64_t max, uint64_t *out)
{
    const char *p = text;
    if (p[0] == '+' && p[1] != '\0')
        p++;
    if (*p == '\0')
        return 0;
    uint64_t value = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        unsigned digit = (unsigned)(*p - '0');
        if (value > (max - digit) / 10)
            return 0;
        value = value * 10 + digit;
    }
    *out = value;
    return 1;
}

/* dir/name + suffix into out (PATH_MAX bytes), as Rust's Path::join puts
 * them together; 0 with ENAMETOOLONG if it does not fit. */
static int join_path(char *out, const char *dir, const char *name, const char *suffix)
{
    size_t len = strlen(dir);
    const char *sep = len == 0 || dir[len - 1] == '/' ? "" : "/";
    if ((size_t)snprintf(out, PATH_MAX, "%s%s%s%s", dir, sep, name, suffix) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return 0;
    }
    return 1;
}

/* mkdir -p: the directory and its missing parents (Rust's create_dir_all);
 * one that exists already is fine. 0, or -1 with errno. */
static int mkdir_all(const char *path)
{
    struct stat st;
    if (path[0] == '\0')
        return 0; /* as create_dir_all(""): nothing to make */
    if (mkdir(path, 0777) == 0)
        return 0;
    int err = errno;
    if (err != ENOENT) {
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        errno = err;
        return -1;
    }
    /* The parent first, then this one again. */
    char parent[PATH_MAX];
    if (snprintf(parent, sizeof parent, "%s", path) >= (int)sizeof parent) {
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t len = strlen(parent);
    while (len > 1 && parent[len - 1] == '/')
        parent[--len] = '\0';
    char *slash = strrchr(parent, '/');
    if (slash == NULL) {
        errno = ENOENT;
        return -1;
    }
    *slash = '\0';
    if (parent[0] != '\0' && mkdir_all(parent) < 0)
        return -1;
    if (mkdir(path, 0777) == 0)
        return 0;
    err = errno;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    errno = err;
    return -1;
}

/* The strerror(3) text of an error, or what Rust's io::Error says for the
 * errors that are ours. */
static const char *reason(int err)
{
    if (err == ERR_NO_FREE_NAME)
        return "entity already exists";
    if (err == ERR_SHORT_WRITE)
        return "failed to write whole buffer";
    return strerror(err);
}

/* A monotonic clock, in nanoseconds (Rust's Instant). */
static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


/* ---- IRC messages (src/irc.rs) --------------------------------------------------
 *
 *   message  =  [ ":" prefix SPACE ] command [ params ] crlf
 *   params   =  *14( SPACE middle ) [ SPACE ":" trailing ]
 */

/* Parses one line, with or without its CR LF; bytes that are not UTF-8
 * become U+FFFD. Returns 0 for a line with no command. */
static int parse_message(struct message *m, const char *bytes, size_t len)
{
    size_t n = utf8_lossy(m->text, bytes, len);
    while (n > 0 && (m->text[n - 1] == '\r' || m->text[n - 1] == '\n'))
        m->text[--n] = '\0';
    char *rest = m->text, *space;
    m->prefix = NULL;
    if (*rest == ':') {
        m->prefix = rest + 1;
        space = strchr(rest, ' ');
        rest = space ? (*space = '\0', space + 1) : rest + n;
    }
    while (*rest == ' ')
        rest++;
    m->command = rest;
    space = strchr(rest, ' ');
    rest = space ? (*space = '\0', space + 1) : rest + strlen(rest);
    if (*m->command == '\0')
        return 0;
    m->nparams = 0;
    for (;;) {
        while (*rest == ' ')
            rest++;
        if (*rest == '\0')
            break;
        if (*rest == ':') { /* trailing: the rest of the line, spaces and all */
            m->params[m->nparams++] = rest + 1;
            break;
        }
        if (m->nparams == MAX_PARAMS - 1) { /* the 15th takes the rest */
            m->params[m->nparams++] = rest;
            break;
        }
        m->params[m->nparams++] = rest;
        space = strchr(rest, ' ');
        if (space == NULL)
            break;
        *space = '\0';
        rest = space + 1;
    }
    return 1;
}

/* Writes a message without prefix into out (room for MAX_LINE + 1) as a
 * line ending in CR LF; returns its length. The last parameter gets its
 * colon when it must (empty, starting with a colon, holding a space); CR,
 * LF and NUL are dropped; a line longer than 512 bytes is cut at a
 * character's start. */
static size_t irc_format(char *out, const char *command, const char **params, int n)
{
    size_t len = 0;
    /* One byte more than fits (511) is kept: it says whether the cut at 510
     * falls inside a character. */
#define PUT(ch)                                                                      \
    do {                                                                             \
        char c_ = (ch);                                                              \
        if (c_ != '\r' && c_ != '\n' && c_ != NUL_MARK && len < MAX_LINE - 1)       \
            out[len++] = c_;                                                         \
    } while (0)
    for (const char *s = command; *s; s++)
        PUT(*s);
    for (int k = 0; k < n; k++) {
        const char *param = params[k];
        PUT(' ');
        if (k == n - 1 && (param[0] == '\0' || param[0] == ':' || strchr(param, ' ') != NULL))
            PUT(':');
        for (const char *s = param; *s; s++)
            PUT(*s);
    }
#undef PUT
    if (len > MAX_LINE - 2) {
        len = MAX_LINE - 2;
        while (len > 0 && ((unsigned char)out[len] & 0xC0) == 0x80)
            len--; /* out[len] continues a character: cut before that character */
    }
    out[len++] = '\r';
    out[len++] = '\n';
    out[len] = '\0';
    return len;
}

/* The bytes of src as UTF-8 text in dst (room for 3 * len + 1), as Rust's
 * String::from_utf8_lossy gives them: valid sequences are kept, and each
 * invalid one (the longest start of a valid sequence, or one byte) becomes
 * U+FFFD. NUL becomes NUL_MARK. Returns the length. */
static size_t utf8_lossy(char *dst, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, n = 0;
    while (i < len) {
        unsigned char b = s[i];
        if (b < 0x80) {
            dst[n++] = b == 0 ? NUL_MARK : (char)b;
            i++;
            continue;
        }
        /* How many continuation bytes the lead byte b needs, and the range
         * of the first one (RFC 3629 §4). */
        size_t need = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF)
            need = 1;
        else if (b == 0xE0)
            need = 2, lo = 0xA0;
        else if (b == 0xED)
            need = 2, hi = 0x9F;
        else if (b >= 0xE1 && b <= 0xEF)
            need = 2;
        else if (b == 0xF0)
            need = 3, lo = 0x90;
        else if (b == 0xF4)
            need = 3, hi = 0x8F;
        else if (b >= 0xF1 && b <= 0xF3)
            need = 3;
        size_t k = 1;
        while (k <= need && i + k < len && s[i + k] >= lo && s[i + k] <= hi) {
            k++;
            lo = 0x80;
            hi = 0xBF;
        }
        if (need > 0 && k == need + 1) {
            memcpy(dst + n, s + i, k);
            n += k;
        } else {
            memcpy(dst + n, "\xEF\xBF\xBD", 3);
            n += 3;
        }
        i += k;
    }
    dst[n] = '\0';
    return n;
}

/* The length of the white-space character at s, or 0: what Rust's trim()
 * takes away (Unicode White_Space: tab to CR, space, U+0085, U+00A0,
 * U+1680, U+2000 to U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). */
static size_t space_len(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    if ((u[0] >= 0x09 && u[0] <= 0x0D) || u[0] == 0x20)
        return 1;
    if (u[0] == 0xC2 && (u[1] == 0x85 || u[1] == 0xA0))
        return 2;
    if (u[0] == 0xE1 && u[1] == 0x9A && u[2] == 0x80)
        return 3;
    if (u[0] == 0xE2 && u[1] == 0x80 &&
        ((u[2] >= 0x80 && u[2] <= 0x8A) || u[2] == 0xA8 || u[2] == 0xA9 || u[2] == 0xAF))
        return 3;
    if (u[0] == 0xE2 && u[1] == 0x81 && u[2] == 0x9F)
        return 3;
    if (u[0] == 0xE3 && u[1] == 0x80 && u[2] == 0x80)
        return 3;
    return 0;
}

/* s without white space at either end (in place). */
static char *trim(char *s)
{
    while (space_len(s) > 0)
        s += space_len(s);
    trim_end(s);
    return s;
}

static void trim_end(char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        size_t start = len - 1; /* where the last character starts */
        while (start > 0 && ((unsigned char)s[start] & 0xC0) == 0x80)
            start--;
        if (space_len(s + start) != len - start)
            break;
        len = start;
    }
    s[len] = '\0';
}

/* IRC's case mapping (CASEMAPPING=rfc1459): ASCII letters fold, and `[]\~`
 * are the upper case of `{}|^` (RFC 2812 §2.2). */
static char fold_char(char c)
{
    switch (c) {
    case '[': return '{';
    case ']': return '}';
    case '\\': return '|';
    case '~': return '^';
    default: return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
}

/* name folded, into out (as long as name). */
static void fold(char *out, const char *s)
{
    while (*s)
        *out++ = fold_char(*s++);
    *out = '\0';
}

/* Whether a and b are the same name once folded. */
static int fold_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (fold_char(*a) != fold_char(*b))
            return 0;
    return *a == *b;
}

/* ---- lines across reads (src/lines.rs) --------------------------------------- */

/* The next complete line, or a piece of a line that filled the buffer,
 * copied to out (room for MAX_LINE); NONE when what is left needs more
 * input. Call it until NONE before reading again. */
static enum piece next_line(struct lines *r, char *out, size_t *len)
{
    char *newline = memchr(r->buf + r->scanned, '\n', r->len - r->scanned);
    size_t end;
    if (newline != NULL)
        end = (size_t)(newline - r->buf) + 1;
    else if (r->len == sizeof r->buf)
        end = r->len;
    else {
        r->scanned = r->len;
        return NONE;
    }
    memcpy(out, r->buf, end);
    memmove(r->buf, r->buf + end, r->len - end);
    r->len -= end;
    r->scanned = 0;
    *len = end;
    int complete = out[end - 1] == '\n';
    enum piece piece = r->in_long_line ? REST : complete ? WHOLE : LONG;
    r->in_long_line = !complete;
    return piece;
}

/* At end of file: what is left, a last line that had no newline. */
static enum piece rest_line(struct lines *r, char *out, size_t *len)
{
    if (r->len == 0)
        return NONE;
    memcpy(out, r->buf, r->len);
    *len = r->len;
    enum piece piece = r->in_long_line ? REST : WHOLE;
    r->len = r->scanned = 0;
    r->in_long_line = 0;
    return piece;
}

/* ---- what every lab has ------------------------------------------------------------ */

/* A line for the person on stdout (flushed: stdout is line-buffered). A
 * NUL that came in a line is printed as the NUL it was. */
static void say(const char *fmt, ...)
{
    char text[8 * LINE_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    erase_status();
    for (const char *s = text; *s; s++)
        putchar(*s == NUL_MARK ? '\0' : *s);
    putchar('\n');
}

/* A progress status line on the terminal is erased before a log line, so
 * the two never mix. */
static void erase_status(void)
{
    if (status_shown) {
        status_shown = 0;
        fputs("\r\033[K", stdout);
        fflush(stdout);
    }
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
static _Noreturn void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    erase_status();
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
    exit(1);
}

/* ADDR as every lab prints it: 127.0.0.1:4242, [::1]:4242 (inet_ntop(3)). */
static const char *addr_text(const struct sockaddr *sa, char *out)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        if (in6->sin6_scope_id != 0)
            snprintf(out, ADDR_TEXT, "[%s%%%u]:%u", ip, (unsigned)in6->sin6_scope_id,
                     ntohs(in6->sin6_port));
        else
            snprintf(out, ADDR_TEXT, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, ADDR_TEXT, "%s:%u", ip, ntohs(in->sin_port));
    }
    return out;
}

/*
 * The command line, read as every lab reads it (src/cli.rs): --help anywhere
 * prints the usage; options are taken out first, wherever they stand; then
 * the positional arguments in order; anything left over is an error. A bad
 * argument prints what is wrong and the synopsis on stderr, and exits 2.
 */
static char **args; /* the arguments not taken yet */
static int nargs;

static void read_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
    }
    args = argv + 1;
    nargs = argc - 1;
}

static void take(int i)
{
    memmove(&args[i], &args[i + 1], (size_t)(nargs - i - 1) * sizeof *args);
    nargs--;
}

/* `--name VALUE` or `--name=VALUE`: the value, or NULL when absent. */
static const char *take_value(const char *name, const char *what)
{
    size_t len = strlen(name);
    for (int i = 0; i < nargs; i++) {
        const char *arg = args[i];
        if (strncmp(arg, name, len) == 0 && arg[len] == '=') {
            take(i);
            return arg + len + 1;
        }
        if (strcmp(arg, name) == 0) {
            take(i);
            if (i == nargs)
                usage_error("%s needs a value (%s)", name, what);
            const char *value = args[i];
            take(i);
            return value;
        }
    }
    return NULL;
}

/* `--name`: whether it was there (every copy of it is taken). */
static int take_flag(const char *name)
{
    int found = 0;
    for (int i = 0; i < nargs;) {
        if (strcmp(args[i], name) == 0) {
            take(i);
            found = 1;
        } else {
            i++;
        }
    }
    return found;
}

/* The next positional argument, or NULL; `-x` there is an unknown option. */
static const char *take_positional(void)
{
    if (nargs == 0)
        return NULL;
    const char *text = args[0];
    if (strlen(text) > 1 && text[0] == '-')
        usage_error("unknown option '%s'", text);
    take(0);
    return text;
}

/* A port as Rust's str::parse::<u16> reads one: an optional '+', then
 * decimal digits only, at most 65535. */
static unsigned long take_port(void)
{
    const char *text = take_positional();
    if (text == NULL)
        return DEFAULT_PORT;
    const char *p = text;
    if (p[0] == '+' && p[1] != '\0')
        p++;
    unsigned long port = 0;
    int ok = *p != '\0';
    for (; ok && *p != '\0'; p++) {
        ok = *p >= '0' && *p <= '9';
        if (ok) {
            port = port * 10 + (unsigned long)(*p - '0');
            ok = port <= 65535;
        }
    }
    if (!ok)
        usage_error("invalid PORT '%s': a port is a number from 0 to 65535", text);
    return port;
}

static void finish_args(void)
{
    if (nargs == 0)
        return;
    if (strlen(args[0]) > 1 && args[0][0] == '-')
        usage_error("unknown option '%s'", args[0]);
    usage_error("unexpected argument '%s'", args[0]);
}

static _Noreturn void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n" SYNOPSIS "\n(--help for details)\n", stderr);
    exit(2);
}
