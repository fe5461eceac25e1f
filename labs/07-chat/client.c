/*
 * Lab 07: the chat client, in C (the twin of client.rs). Lab 04's poll
 * client, speaking IRC.
 *
 * connect -> NICK, USER -> loop { poll(stdin, socket) -> a typed line
 * becomes an IRC command (/msg -> PRIVMSG...) queued for the server -> a
 * line from the server is shown as a person would read it (PING is
 * answered) }.
 *
 * Build: make c (or: cc -Wall -Wextra -O2 -o client-c client.c)
 * Run:   ./client-c [HOST] [PORT] [--nick NICK] [--raw]
 *
 * Same arguments, messages, output and system calls as ./client (client.rs,
 * whose conversation is in src/chat.rs): `make trace LAB=07-chat` shows the
 * two side by side.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SYNOPSIS "usage: client [HOST] [PORT] [--nick NICK] [--raw]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 07: chat client. Speaks IRC with the chat server (or any IRC server).\n"
    "Type /help once connected for the commands; a plain line goes to the\n"
    "channel you joined last.\n"
    "\n"
    "  HOST         server name or address (default 127.0.0.1)\n"
    "  PORT         server port (default 4242)\n"
    "  --nick NICK  nickname to register with (else choose one with /nick NAME)\n"
    "  --raw        also show the IRC lines as sent (>>) and received (<<)\n"
    "  --help       print this help\n"
    "\n"
    "Exit status: 0 after /quit or the end of input, 1 if a call failed or the\n"
    "server closed the connection first, 2 for bad arguments.\n";

/* What /help shows. */
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
    "  /help              this list";

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
/* The queue itself: MAX_QUEUED, and what one turn may add on top of it.
 * One read(2) of stdin brings at most 512 bytes, so at most 256 lines,
 * each at most one IRC line of 512 bytes; one read of the socket at most
 * 512 bytes, whose PINGs make PONGs hardly longer than themselves. A line
 * that would not fit (a server that sends PINGs without ever reading our
 * PONGs) is dropped, as src/chat.rs does. */
#define QUEUE_SIZE (MAX_QUEUED + 256 * MAX_LINE + 4 * MAX_LINE)

/* The channels joined, the current one last. The server lets a user be on
 * 20; more are kept while typed JOINs wait for their refusal. Past this
 * many, the oldest is forgotten: memory stays bounded whatever the server
 * sends. */
#define MAX_JOINED 100

/* C strings end at a NUL byte; a NUL in a line (kept by the Rust client as
 * a character) becomes this byte, which UTF-8 text never holds: dropped
 * when a line is written, printed as the NUL it was. */
#define NUL_MARK '\xff'

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

/* What the client knows of the conversation. */
static char nick[LINE_TEXT];
static int has_nick, registered, user_sent, raw, quitting;
static char *joined[MAX_JOINED];
static int njoined;

/* What waits to go to the server: write(2) takes what fits when poll(2)
 * says the socket is writable. */
static char queued[QUEUE_SIZE];
static size_t queued_len;

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
static int fold_eq(const char *a, const char *b);
static enum piece next_line(struct lines *r, char *out, size_t *len);
static enum piece rest_line(struct lines *r, char *out, size_t *len);
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *call, const char *what);
static const char *addr_text(const struct sockaddr *sa, char *out);
static void read_args(int argc, char **argv);
static const char *take_value(const char *name, const char *what);
static int take_flag(const char *name);
static const char *take_positional(void);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int main(int argc, char **argv)
{
    /* stdout is a pipe when a test or a script reads us: flush each line as
     * it is printed, not when a 4 KiB buffer fills (setvbuf(3)). */
    setvbuf(stdout, NULL, _IOLBF, 0);

    read_args(argc, argv);
    const char *nick_text = take_value("--nick", "NICK");
    raw = take_flag("--raw");
    const char *host = take_positional();
    if (host == NULL)
        host = DEFAULT_HOST;
    unsigned long port = take_port();
    finish_args();

    /* If the server resets the connection, our next write(2) would raise
     * SIGPIPE and kill us without a word (signal(7)). Ignored, write(2)
     * fails with EPIPE and we say so; Rust's runtime does this before main. */
    signal(SIGPIPE, SIG_IGN);

    /* getaddrinfo(3) turns a name (localhost) or a literal (::1) into the
     * addresses to try, IPv4 and IPv6 alike; each is tried in turn. */
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
    /* Non-blocking, as in lab 04: a write takes what fits, poll says when
     * more will. */
    int flags = fcntl(sock, F_GETFL);
    if (flags < 0)
        die("fcntl", server);
    if (fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl", server);

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "connected to %s; /help for the commands, Ctrl-D or /quit to leave\n",
                server);

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
        /* [0] stdin, watched until its end while its lines have somewhere
         * to go; [1] the socket, for writing too while something waits to
         * go. Unwatched, stdin is left out of the array (as in lab 04): a
         * pipe whose writer has gone reports POLLHUP whatever is asked, and
         * would make poll(2) return at once, turn after turn. */
        int watch_stdin = stdin_open && !quitting && queued_len < MAX_QUEUED;
        struct pollfd fds[2];
        fds[0].fd = STDIN_FILENO;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        fds[1].fd = sock;
        fds[1].events = POLLIN;
        if (queued_len > 0)
            fds[1].events |= POLLOUT;
        int first = watch_stdin ? 0 : 1;
        if (poll(fds + first, (nfds_t)(2 - first), -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", server);
        }
        /* POLLHUP and POLLERR come whether asked for or not (poll(2)): the
         * read or write that follows reports what happened. */
        int stdin_ready = fds[0].revents & (POLLIN | POLLHUP | POLLERR);
        int sock_readable = fds[1].revents & (POLLIN | POLLHUP | POLLERR);
        int sock_writable = fds[1].revents & (POLLOUT | POLLHUP | POLLERR);

        if (sock_readable) {
            ssize_t n = read(sock, from_server.buf + from_server.len,
                             sizeof from_server.buf - from_server.len);
            if ((n == 0 || (n < 0 && errno == ECONNRESET)) && quitting) {
                /* After our QUIT the server closes: that is the goodbye.
                 * A reset is one too: the server closed with some of our
                 * input unread, and close(2) then sends a RST (tcp(7)). */
                close(sock);
                return 0;
            } else if (n == 0) {
                fprintf(stderr, "server %s closed the connection\n", server);
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
                /* End of input: leave politely, and read until the
                 * server's ERROR and close. */
                if (!quitting)
                    typed("/quit", 5);
            } else if (n > 0) {
                from_user.len += (size_t)n;
                while ((piece = next_line(&from_user, line, &len)) != NONE)
                    typed_piece(piece, line, len);
            } else if (errno != EINTR) {
                die("read", "stdin");
            }
        }

        if (sock_writable && queued_len > 0) {
            ssize_t n = write(sock, queued, queued_len);
            if (n > 0) {
                memmove(queued, queued + n, queued_len - (size_t)n);
                queued_len -= (size_t)n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                die("write", server);
            }
        }
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
    } else {
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
    char text[4 * LINE_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (const char *s = text; *s; s++)
        putchar(*s == NUL_MARK ? '\0' : *s);
    putchar('\n');
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
static _Noreturn void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
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
