/*
 * Lab 08: a file sent directly between two chat users (DCC SEND), the C
 * twin of client.rs. Lab 07's chat client, plus /send, /accept, /refuse.
 *
 * The chat server only introduces the two users; the file goes over a
 * second TCP connection between the clients themselves. For a moment the
 * sender is a server (lab 01's socket, bind, listen, accept), and the
 * receiver a client whose connect must not stop the chat (UNP's
 * connect_nonb, figure 16.11):
 *
 *   alice: /send bob report.pdf                    bob
 *     WHOIS bob -> where bob connects from (311)
 *     socket -> bind(chat address, port 0) -> listen -> getsockname
 *     PRIVMSG bob :\1DCC SEND report.pdf IP PORT SIZE\1 ---> "alice offers..."
 *                                                            /accept alice
 *     accept <----------------------- socket(O_NONBLOCK) -> connect: EINPROGRESS
 *     the peer is bob's address?      poll: POLLOUT -> getsockopt(SO_ERROR)
 *     read(file) -> write(socket) ======= the file ======> read(socket) -> write(file)
 *     read(socket) <======== bytes received, 4 bytes ===== write(socket)
 *     close                                                close, NAME.part -> NAME
 *
 * All of it in one poll() loop, main(): stdin, the chat socket, and one
 * descriptor per transfer. The two state machines are outgoing_ready()
 * and incoming_ready(); the DCC format, the received file's name and the
 * progress text are in ../common/dcc.c, the IRC format in ../common/irc.c.
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o client-c client.c ../common/dcc.c \
 *         ../common/irc.c ../common/labs.c
 * Run:   ./client-c [HOST] [PORT] [--nick NICK] [--raw] [--downloads DIR]
 *                   [--max-size SIZE] [--offer-timeout SECS]
 */
#include "labs.h"
#include "irc.h"
#include "dcc.h"

#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: client [HOST] [PORT] [--nick NICK] [--raw] [--downloads DIR]\n"
    "              [--max-size SIZE] [--offer-timeout SECS]\n"
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

#define LINE (IRC_MAX_LINE + 1) /* a line, or a piece of one, as a C string */
/* Stdin is read only while less than this waits to go to the server. The
 * queue holds that, what one turn may add (256 typed lines of 512 bytes,
 * PONGs) and one offer per transfer: a WHOIS reply may let them all go. */
#define MAX_QUEUED (64 * 1024)
#define QUEUE_SIZE (MAX_QUEUED + 256 * IRC_MAX_LINE + 4 * IRC_MAX_LINE + MAX_TRANSFERS * LINE)
#define MAX_JOINED 100 /* channels remembered, the current one last */
/* A file goes through a buffer of this size, one read(2) and one write(2)
 * at a time: a 1 GB file uses the memory of one chunk. */
#define CHUNK (64 * 1024)
/* Offers waiting for an answer, and transfers each way, at most: a flood
 * of offers cannot take our memory or descriptors. The incoming list also
 * holds what ended this turn, forgotten at its end. */
#define MAX_OFFERS 16
#define MAX_TRANSFERS 16
#define MAX_INCOMING (MAX_OFFERS + MAX_TRANSFERS + 32)
#define REDRAW_NS 200000000LL /* a progress line is redrawn at most every 200 ms */

/* A transfer's clock, and the quarters of it reported as plain lines. */
struct progress {
    int64_t started;
    uint64_t quarters;
};

/* A file we offer (/send). */
enum out_state { LOOKING_UP, LISTENING, SENDING, OUT_DONE };
struct outgoing {
    enum out_state state;
    char to[LINE];
    char name[DCC_MAX_NAME + 1]; /* the base name, made safe as a receiver would */
    int file;
    uint64_t size;
    int64_t deadline; /* the offer's timeout, then a stall's */
    /* LISTENING: where, and the address the peer must come from (has_peer
     * is 0 when the server gave a host name, not an address). */
    int listenfd;
    struct sockaddr_storage bound, peer;
    char addr[ADDR_TEXT];
    int has_peer;
    /* SENDING: chunk[start..end] read from the file, not yet written; the
     * receiver's last acknowledgement, and one arriving in pieces. */
    int connfd;
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

/* An offer received. */
enum in_state { OFFERED, CONNECTING, RECEIVING, IN_DONE };
struct incoming {
    enum in_state state;
    char from[LINE];
    char name[DCC_MAX_NAME + 1]; /* the name it will be saved under (safe_name) */
    struct dcc_offer offer;
    int64_t deadline;
    int sockfd;
    struct part part; /* downloads/NAME.part until complete */
    /* RECEIVING: the acknowledgement being written, and how much of it is
     * out (4 when all of it is). */
    char *chunk;
    uint64_t received;
    unsigned char ack[4];
    size_t ack_sent;
    struct progress progress;
};

/* The conversation, as lab 07's client knows it. */
static char nick[LINE];
static int has_nick, registered, user_sent, raw, quitting;
static char joined[MAX_JOINED][LINE];
static int njoined;
static char queued[QUEUE_SIZE]; /* for the server, written when poll says so */
static size_t queued_len;

/* The transfers. */
static const char *downloads = "downloads";
static int has_max_size;
static uint64_t max_size;
static unsigned long timeout_secs = 120;
static int64_t timeout_ns;
static struct sockaddr_storage local; /* our address on the chat connection */
static struct outgoing outgoing[MAX_TRANSFERS];
static int noutgoing;
static struct incoming incoming[MAX_INCOMING];
static int nincoming;
static char whois[MAX_TRANSFERS][LINE]; /* folded nicks whose WHOIS replies are ours */
static int nwhois;
static int tty, status_shown; /* stdout is a terminal; a progress line is on it */
static int64_t redrawn;

/* ---- what the person sees, what goes to the server --------------------- */

/* The progress line is erased before a log line, so the two never mix. */
static void erase_status(void)
{
    if (status_shown) {
        status_shown = 0;
        fputs("\r\033[K", stdout);
        fflush(stdout);
    }
}

/* One event line on stdout (line-buffered: flushed as it is printed). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    erase_status();
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static void trim_end(char *s)
{
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    trim_end(s);
    return s;
}

/* Queues one IRC message for the server. Past QUEUE_SIZE (a server that
 * sends PINGs and never reads our PONGs) the line is dropped. */
static void queue_irc(const char *command, const char **params, int n)
{
    char line[LINE];
    size_t len = irc_format(line, NULL, command, params, n, 0);
    if (raw) {
        char shown[LINE];
        strcpy(shown, line);
        trim_end(shown);
        say(">> %s", shown);
    }
    if (queued_len + len <= sizeof queued) {
        memcpy(queued + queued_len, line, len);
        queued_len += len;
    }
}

static const char *me(void)
{
    return has_nick ? nick : "?";
}

static void set_nick(const char *name)
{
    snprintf(nick, sizeof nick, "%s", name);
    has_nick = 1;
}

/* NICK, and USER the first time: registration (RFC 2812 §3.1). */
static void do_register(const char *name)
{
    const char *params[] = { name, "0", "*", name };
    queue_irc("NICK", params, 1);
    if (!user_sent) {
        queue_irc("USER", params, 4); /* USER <user> <mode> <unused> :<realname> */
        user_sent = 1;
    }
    set_nick(name);
}

static void forget_channel(const char *name)
{
    int k = 0;
    for (int j = 0; j < njoined; j++)
        if (irc_casecmp(joined[j], name) != 0)
            memmove(joined[k++], joined[j], LINE);
    njoined = k;
}

/* The channel becomes the current one, the last of joined[]. */
static void join_channel(const char *name)
{
    forget_channel(name);
    if (njoined == MAX_JOINED) {
        memmove(joined[0], joined[1], (MAX_JOINED - 1) * sizeof joined[0]);
        njoined--;
    }
    snprintf(joined[njoined++], LINE, "%s", name);
}

static int transfer_command(const char *name, char *args);
static int transfer_message(const struct irc_message *m, const char *from);

/* A line the user typed: a /command, or text for the current channel. */
static void typed(char *text)
{
    char *name, *args = "", *first, *rest = "", *space;
    const char *params[2];

    for (space = text; isspace((unsigned char)*space); space++)
        ;
    if (*space == '\0')
        return; /* only blanks */
    if (text[0] != '/') {
        if (njoined == 0) {
            say("-!- you are on no channel: /join #name, or /msg NICK text");
            return;
        }
        params[0] = joined[njoined - 1];
        params[1] = text;
        queue_irc("PRIVMSG", params, 2);
        say("[%s] %s: %s", params[0], me(), text);
        return;
    }
    name = text + 1;
    if ((space = strchr(name, ' ')) != NULL) {
        *space = '\0';
        args = trim(space + 1);
    }
    char firstbuf[LINE];
    first = strcpy(firstbuf, args);
    if ((space = strchr(first, ' ')) != NULL) {
        *space = '\0';
        rest = args + (space - first) + 1;
    }
    params[0] = first;
    params[1] = rest;

    if (!user_sent && strcmp(name, "nick") && strcmp(name, "help") && strcmp(name, "quit"))
        say("-!- choose a nickname first: /nick NAME");
    else if (!strcmp(name, "nick") && *first && registered)
        queue_irc("NICK", params, 1);
    else if (!strcmp(name, "nick") && *first)
        do_register(first);
    else if (!strcmp(name, "who")) {
        params[0] = *first ? first : "*";
        queue_irc("WHO", params, 1);
    } else if (!strcmp(name, "whois") && *first)
        queue_irc("WHOIS", params, 1);
    else if (!strcmp(name, "msg") && *first && *rest) {
        queue_irc("PRIVMSG", params, 2);
        say("-> *%s* %s", first, rest);
    } else if (!strcmp(name, "msgall") && *args) {
        /* $* is the mask "every user on this server" (RFC 2812 §3.3.1). */
        params[0] = "$*";
        params[1] = args;
        queue_irc("PRIVMSG", params, 2);
        say("[all] %s: %s", me(), args);
    } else if (!strcmp(name, "join") && *first) {
        char channel[LINE + 1];
        snprintf(channel, sizeof channel, "%s%s", *first == '#' ? "" : "#", first);
        params[0] = channel;
        queue_irc("JOIN", params, 1);
        /* Lines typed next go there at once: piped input does not wait
         * for the server's JOIN. An error about the channel undoes it. */
        join_channel(channel);
    } else if (!strcmp(name, "part") || !strcmp(name, "names")) {
        int part = !strcmp(name, "part");
        if (!*first && njoined > 0)
            params[0] = joined[njoined - 1];
        if (part && !*first && njoined == 0)
            say("-!- you are on no channel");
        else
            queue_irc(part ? "PART" : "NAMES", params, *first || njoined > 0);
    } else if (!strcmp(name, "list"))
        queue_irc("LIST", NULL, 0);
    else if (!strcmp(name, "quit")) {
        if (!user_sent)
            exit(0);
        params[0] = *args ? args : "leaving";
        queue_irc("QUIT", params, 1);
        quitting = 1;
    } else if (!strcmp(name, "help"))
        say("%s", commands);
    else if (!strcmp(name, "nick") || !strcmp(name, "whois") || !strcmp(name, "msg") ||
             !strcmp(name, "msgall") || !strcmp(name, "join"))
        say("-!- /%s needs more: /help shows how to use it", name);
    else if (!transfer_command(name, args))
        say("-!- unknown command /%s: /help lists them", name);
}

/* A piece of typed input: a whole line is used; a line too long for one
 * message is refused once, and the rest of it skipped. */
static void typed_piece(enum irc_piece piece, char *line, size_t len)
{
    if (piece == IRC_LONG)
        say("-!- line too long: a message holds about 400 characters");
    if (piece != IRC_WHOLE)
        return;
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    typed(line);
}

/* A line from the server, shown as a person would read it. */
static void receive(const char *line, size_t len)
{
    static struct irc_message m;
    char from[LINE] = "", text[2 * LINE];
    if (!irc_parse(&m, line, len))
        return;
    if (raw) {
        snprintf(text, sizeof text, "%.*s", (int)len, line);
        trim_end(text);
        say("<< %s", text);
    }
    /* Who sent it: the nick of a nick!user@host prefix, the server's name
     * for a numeric, "" without a prefix. */
    if (m.prefix != NULL)
        snprintf(from, sizeof from, "%.*s", (int)strcspn(m.prefix, "!"), m.prefix);
    if (transfer_message(&m, from)) /* DCC offers and refusals, our WHOIS replies */
        return;
#define P(i) irc_param(&m, i)
    const char *c = m.command, *last = m.nparams > 0 ? m.params[m.nparams - 1] : "";
    int is_me = irc_casecmp(from, me()) == 0;
    int numeric = strlen(c) == 3 && isdigit((unsigned char)c[0]) &&
                  isdigit((unsigned char)c[1]) && isdigit((unsigned char)c[2]);
    const char *params[1] = { last };

    if (!strcasecmp(c, "PING"))
        queue_irc("PONG", params, 1);
    else if (!strcasecmp(c, "NOTICE"))
        say("-%s- %s", from, P(1));
    else if (!strcasecmp(c, "PRIVMSG") && P(0)[0] == '$')
        say("[all] %s: %s", from, P(1));
    else if (!strcasecmp(c, "PRIVMSG") && (P(0)[0] == '#' || P(0)[0] == '&'))
        say("[%s] %s: %s", P(0), from, P(1));
    else if (!strcasecmp(c, "PRIVMSG"))
        say("*%s* %s", from, P(1));
    else if (!strcasecmp(c, "JOIN") && is_me) {
        say("-!- you joined %s", P(0));
        join_channel(P(0));
    } else if (!strcasecmp(c, "JOIN"))
        say("-!- %s joined %s", from, P(0));
    else if (!strcasecmp(c, "PART") && is_me) {
        say("-!- you left %s", P(0));
        forget_channel(P(0));
    } else if (!strcasecmp(c, "PART"))
        say("-!- %s left %s", from, P(0));
    else if (!strcasecmp(c, "QUIT"))
        say("-!- %s quit (%s)", from, P(0));
    else if (!strcasecmp(c, "NICK") && is_me) {
        set_nick(P(0));
        say("-!- you are now known as %s", P(0));
    } else if (!strcasecmp(c, "NICK"))
        say("-!- %s is now known as %s", from, P(0));
    else if (!strcasecmp(c, "TOPIC"))
        say("-!- %s set the topic of %s: %s", from, P(0), P(1));
    else if (!strcasecmp(c, "ERROR")) {
        if (!quitting)
            say("-!- server: %s", last);
    } else if (!strcmp(c, "001")) { /* RPL_WELCOME, under the nick the server confirms */
        registered = 1;
        set_nick(P(0));
        say("-!- %s", last);
    } else if (numeric && strstr(" 002 003 004 005 251 252 253 254 255 265 266 375 376 "
                                 "422 366 321 ", c) != NULL) {
        /* the welcome burst, statistics, no MOTD, ends of NAMES, start of LIST */
    } else if (!strcmp(c, "372"))
        say("%s", last);
    else if (!strcmp(c, "352") && !strcmp(P(1), "*")) /* WHO: <me> <chan> <user> <host> <server> <nick> ... */
        say("%s (%s@%s)", P(5), P(2), P(3));
    else if (!strcmp(c, "352"))
        say("%s (%s@%s) on %s", P(5), P(2), P(3), P(1));
    else if (!strcmp(c, "315"))
        say("-!- end of /who");
    else if (!strcmp(c, "311"))
        say("%s is %s@%s (%s)", P(1), P(2), P(3), last);
    else if (!strcmp(c, "312"))
        say("%s is on server %s", P(1), P(2));
    else if (!strcmp(c, "317"))
        say("%s has been idle %s s", P(1), P(2));
    else if (!strcmp(c, "319"))
        say("%s is on %s", P(1), last);
    else if (!strcmp(c, "338")) /* RPL_WHOISACTUALLY: the address the user connects from */
        say("%s is connected from %s", P(1), P(2));
    else if (!strcmp(c, "318"))
        say("-!- end of /whois");
    else if (!strcmp(c, "353"))
        say("users on %s: %s", P(2), last);
    else if (!strcmp(c, "322")) {
        snprintf(text, sizeof text, "%s (%s users) %s", P(1), P(2), last);
        trim_end(text);
        say("%s", text);
    } else if (!strcmp(c, "323"))
        say("-!- end of /list");
    else if (!strcmp(c, "331"))
        say("-!- %s has no topic", P(1));
    else if (!strcmp(c, "332"))
        say("-!- topic of %s: %s", P(1), last);
    else if (!strcmp(c, "433")) {
        say("-!- nickname %s is taken: choose another with /nick NAME", P(1));
        if (!registered)
            has_nick = 0;
    } else if (strlen(c) == 3 && (c[0] == '4' || c[0] == '5')) {
        /* Errors: "<me> [<subject>] :<sentence>". 403, 405, 471-476: we
         * are not on that channel after all. */
        const char *subject = m.nparams > 2 ? P(1) : "";
        if (numeric && strstr(" 403 405 471 473 474 475 476 ", c) != NULL)
            forget_channel(subject);
        if (*subject)
            say("-!- error: %s (%s)", last, subject);
        else
            say("-!- error: %s", last);
    } else if (numeric) { /* any other reply: its text */
        size_t used = 0;
        text[0] = '\0';
        for (int i = 1; i < m.nparams; i++)
            used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", i > 1 ? " " : "",
                                     m.params[i]);
        say("%s", text);
    }
#undef P
}

/* ---- the transfers: the end of each, and the lesson's two machines ---- */

/* An offer or a transfer of ours is over: its descriptors closed, its
 * chunk freed. Every path that ends one comes here (C has no drop). */
static void out_done(struct outgoing *out)
{
    if (out->state == OUT_DONE)
        return;
    if (out->listenfd >= 0)
        close(out->listenfd);
    if (out->connfd >= 0)
        close(out->connfd);
    close(out->file);
    free(out->chunk);
    out->listenfd = out->connfd = out->file = -1;
    out->chunk = NULL;
    out->state = OUT_DONE;
}

/* An offer received is over: the connection closed, the part file closed
 * and removed unless it was kept. */
static void in_done(struct incoming *inc)
{
    if (inc->state == IN_DONE)
        return;
    if (inc->sockfd >= 0)
        close(inc->sockfd);
    part_remove(&inc->part);
    free(inc->chunk);
    inc->sockfd = -1;
    inc->chunk = NULL;
    inc->state = IN_DONE;
}

/* The second connection's server side, as lab 01's server: a socket bound
 * to our address on the chat connection and port 0, so that the kernel
 * picks a free port; listen(2) with a backlog of 1 (one peer is
 * expected); getsockname(2) for the port we got. 0 on failure, with errno
 * and the call and address in call[]. */
static int listen_for_peer(struct outgoing *out, char *call)
{
    struct sockaddr_storage servaddr = local;
    socklen_t servlen, len = sizeof out->bound;
    char addr[ADDR_TEXT];
    int listenfd, err;

    if (servaddr.ss_family == AF_INET) {
        ((struct sockaddr_in *)&servaddr)->sin_port = 0;
        servlen = sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&servaddr;
        in6->sin6_port = 0;
        in6->sin6_flowinfo = in6->sin6_scope_id = 0;
        servlen = sizeof(struct sockaddr_in6);
    }
    sock_ntop((struct sockaddr *)&servaddr, addr);
    if ((listenfd = socket(servaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0) {
        sprintf(call, "socket %s", addr);
        return 0;
    }
    if (bind(listenfd, (struct sockaddr *)&servaddr, servlen) < 0)
        sprintf(call, "bind %s", addr);
    else if (listen(listenfd, 1) < 0)
        sprintf(call, "listen %s", addr);
    else if (getsockname(listenfd, (struct sockaddr *)&out->bound, &len) < 0)
        sprintf(call, "getsockname %s", addr);
    else {
        sock_ntop((struct sockaddr *)&out->bound, out->addr);
        out->listenfd = listenfd;
        return 1;
    }
    err = errno;
    close(listenfd);
    errno = err;
    return 0;
}

/* A connection waits on the listener: accept(2) it, with the peer's
 * address, and keep it if that is the address the server gave for the
 * peer. Then the listener is closed: nobody else may come. */
static void accept_peer(struct outgoing *out)
{
    struct sockaddr_storage cliaddr;
    socklen_t clilen = sizeof cliaddr;
    char peer[ADDR_TEXT], expected[INET6_ADDRSTRLEN];
    int connfd = accept4(out->listenfd, (struct sockaddr *)&cliaddr, &clilen, SOCK_NONBLOCK);

    if (connfd < 0) {
        /* Gone before we took it (ECONNABORTED), or not there yet. */
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
            return;
        int err = errno;
        out_done(out);
        say("-!- accept %s: %s: %s not sent", out->addr, strerror(err), out->name);
        return;
    }
    sock_ntop((struct sockaddr *)&cliaddr, peer);
    /* Only the offered peer may take the file. What this proves: the
     * connection comes from the address the server saw the peer at, not
     * that it is the peer. Anyone else on that address (the same machine,
     * all of loopback, the same NAT) passes; an address the server calls
     * by name cannot be checked at all. */
    if (out->has_peer && !same_ip(&cliaddr, &out->peer)) {
        say("-!- refused a connection from %s for %s: %s is at %s", peer, out->name, out->to,
            ip_text(&out->peer, expected));
        close(connfd); /* the offer still stands */
        return;
    }
    say("-!- %s connected from %s: sending %s", out->to, peer, out->name);
    close(out->listenfd);
    out->listenfd = -1;
    out->connfd = connfd;
    strcpy(out->peer_text, peer);
    if ((out->chunk = malloc(CHUNK)) == NULL) {
        out_done(out);
        say("-!- %s to %s failed: %s", out->name, out->to, strerror(ENOMEM));
        return;
    }
    out->deadline = now_ns() + timeout_ns;
    out->progress.started = now_ns();
    out->state = SENDING;
}

/* Reads acknowledgements (and the receiver's close), writes the next piece
 * of the file. 1 if something moved, 0 if not, -1 on failure (why says it). */
static int send_file_piece(struct outgoing *out, short revents, char *why, size_t whysize)
{
    int moved = 0;
    ssize_t n;
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        /* Each acknowledgement is 4 bytes, big-endian: how many bytes the
         * receiver has so far, modulo 2^32. They may arrive split, or
         * several at once, as any bytes on a TCP stream. */
        unsigned char acks[512];
        if ((n = read(out->connfd, acks, sizeof acks)) == 0 && out->sent == out->size) {
            /* Closed after everything: classic receivers close at the end
             * instead of (or after) the last acknowledgement. */
            out->has_acked = 1;
            out->acked = (uint32_t)out->size;
        } else if (n == 0) {
            snprintf(why, whysize, "%s closed the connection after %llu of %llu bytes",
                     out->peer_text, (unsigned long long)out->sent,
                     (unsigned long long)out->size);
            return -1;
        } else if (n > 0) {
            for (ssize_t k = 0; k < n; k++) {
                out->ack[out->ack_len++] = acks[k];
                if (out->ack_len == 4) {
                    uint32_t be;
                    memcpy(&be, out->ack, 4);
                    out->acked = ntohl(be);
                    out->has_acked = 1;
                    out->ack_len = 0;
                }
            }
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, whysize, "read %s: %s", out->peer_text, strerror(errno));
            return -1;
        }
    }
    if ((revents & POLLOUT) && out->sent < out->size) {
        if (out->start == out->end) {
            /* The next chunk, and never past the size we announced. */
            uint64_t left = out->size - out->sent;
            if ((n = read(out->file, out->chunk, left < CHUNK ? left : CHUNK)) == 0) {
                snprintf(why, whysize, "the file shrank to %llu bytes",
                         (unsigned long long)out->sent);
                return -1;
            } else if (n < 0 && errno == EINTR) {
                return moved;
            } else if (n < 0) {
                snprintf(why, whysize, "read the file: %s", strerror(errno));
                return -1;
            }
            out->start = 0;
            out->end = (size_t)n;
        }
        /* One write(2): the socket takes what fits; poll says when more will. */
        if ((n = write(out->connfd, out->chunk + out->start, out->end - out->start)) >= 0) {
            out->start += (size_t)n;
            out->sent += (uint64_t)n;
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, whysize, "write %s: %s", out->peer_text, strerror(errno));
            return -1;
        }
    }
    return moved;
}

/* The sender's machine: poll says its listener or its connection is ready. */
static void outgoing_ready(struct outgoing *out, short revents)
{
    char why[2 * LINE], text[128];
    int moved;
    if (out->state == LISTENING) {
        accept_peer(out);
        return;
    }
    if (out->state != SENDING)
        return;
    if ((moved = send_file_piece(out, revents, why, sizeof why)) < 0) {
        out_done(out); /* closes the connection before the line says so */
        say("-!- %s to %s failed: %s", out->name, out->to, why);
    } else if (out->sent == out->size && out->has_acked && out->acked == (uint32_t)out->size) {
        summary_text(text, sizeof text, out->sent, now_ns() - out->progress.started);
        out_done(out);
        say("-!- sent %s to %s: %s", out->name, out->to, text);
    } else if (moved) {
        out->deadline = now_ns() + timeout_ns;
    }
}

/* The second connection's client side, as lab 01's client, but
 * non-blocking (UNP's connect_nonb): connect(2) answers EINPROGRESS at
 * once, and poll(2) says POLLOUT when the handshake is over, so the chat
 * goes on meanwhile, even towards an address that never answers. The
 * socket, or -1 with errno. */
static int connect_nonb(const struct sockaddr_storage *servaddr)
{
    int sockfd, err;
    socklen_t len = servaddr->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                   : sizeof(struct sockaddr_in6);
    if ((sockfd = socket(servaddr->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
        return -1;
    if (connect(sockfd, (const struct sockaddr *)servaddr, len) < 0 && errno != EINPROGRESS) {
        err = errno;
        close(sockfd);
        errno = err;
        return -1;
    }
    return sockfd;
}

/* Tells the sender how many bytes arrived: 4 bytes, big-endian, modulo
 * 2^32 (the classic DCC acknowledgement, which irssi waits for before it
 * closes). Only the latest count matters, so one is kept, never a queue;
 * one begun is finished first, or the stream would lose its framing.
 * 0, or -1 with errno. */
static int write_ack(struct incoming *inc)
{
    uint32_t be = htonl((uint32_t)inc->received);
    for (;;) {
        if (inc->ack_sent == 4) {
            if (memcmp(inc->ack, &be, 4) == 0)
                return 0; /* the sender knows it already */
            memcpy(inc->ack, &be, 4);
            inc->ack_sent = 0;
        }
        ssize_t n = write(inc->sockfd, inc->ack + inc->ack_sent, 4 - inc->ack_sent);
        if (n >= 0)
            inc->ack_sent += (size_t)n;
        else if (errno == EAGAIN)
            return 0; /* poll says POLLOUT when there is room */
        else if (errno != EINTR)
            return -1;
    }
}

/* Whether an acknowledgement is still to go out. */
static int ack_pending(const struct incoming *inc)
{
    uint32_t be = htonl((uint32_t)inc->received);
    return inc->ack_sent < 4 || memcmp(inc->ack, &be, 4) != 0;
}

/* All announced bytes are in: the last acknowledgement, the part file
 * linked to its final name, the connection closed. */
static void receive_finish(struct incoming *inc)
{
    char text[128], target[PATH_MAX];
    int kept, err;
    /* Best effort: 4 bytes into an empty send buffer. A sender that never
     * reads its acknowledgements sees our close instead. */
    write_ack(inc);
    summary_text(text, sizeof text, inc->received, now_ns() - inc->progress.started);
    kept = part_keep(&inc->part, target);
    err = errno;
    in_done(inc);
    if (kept)
        say("-!- received %s from %s: %s, saved as %s", inc->name, inc->from, text, target);
    else
        say("-!- keep %s: %s: nothing kept", inc->name, strerror(err));
}

/* Reads the next piece, appends it to the part file, acknowledges. 1 if
 * something moved, 0 if not, -1 on failure (why says it). */
static int receive_file_piece(struct incoming *inc, short revents, char *why, size_t whysize)
{
    int moved = 0;
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        /* Never more than announced: a sender that sends more is cut off
         * at the size, the rest never read. */
        uint64_t left = inc->offer.size - inc->received;
        ssize_t n = read(inc->sockfd, inc->chunk, left < CHUNK ? left : CHUNK);
        if (n == 0) {
            snprintf(why, whysize, "the sender closed the connection after %llu of %llu bytes",
                     (unsigned long long)inc->received, (unsigned long long)inc->offer.size);
            return -1;
        } else if (n > 0) {
            if (writen(inc->part.fd, inc->chunk, (size_t)n) < 0) {
                snprintf(why, whysize, "write %s: %s", inc->part.path, strerror(errno));
                return -1;
            }
            inc->received += (uint64_t)n;
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, whysize, "read: %s", strerror(errno));
            return -1;
        }
    }
    if (write_ack(inc) < 0) {
        snprintf(why, whysize, "write the acknowledgement: %s", strerror(errno));
        return -1;
    }
    return moved;
}

/* The receiver's machine: poll says its connection is ready. */
static void incoming_ready(struct incoming *inc, short revents)
{
    char why[2 * LINE + PATH_MAX], addr[ADDR_TEXT];
    int err = 0, moved;
    socklen_t len = sizeof err;

    if (inc->state == CONNECTING) {
        /* Writable: the handshake is over, and SO_ERROR says how it went
         * (0, or what a blocking connect(2) would have returned). */
        if (getsockopt(inc->sockfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err == 0 && (inc->chunk = malloc(CHUNK)) == NULL)
            err = ENOMEM;
        if (err != 0) {
            in_done(inc); /* the part file removed before the line says so */
            say("-!- connect %s: %s: %s not received",
                sock_ntop((struct sockaddr *)&inc->offer.addr, addr), strerror(err), inc->name);
            return;
        }
        say("-!- connected to %s: receiving %s", inc->from, inc->name);
        inc->deadline = now_ns() + timeout_ns;
        inc->progress.started = now_ns();
        inc->ack_sent = 4;
        inc->state = RECEIVING;
        if (inc->offer.size == 0)
            receive_finish(inc);
    } else if (inc->state == RECEIVING) {
        if ((moved = receive_file_piece(inc, revents, why, sizeof why)) < 0) {
            in_done(inc);
            say("-!- %s from %s failed: %s; nothing kept", inc->name, inc->from, why);
        } else if (inc->received == inc->offer.size) {
            receive_finish(inc);
        } else if (moved) {
            inc->deadline = now_ns() + timeout_ns;
        }
    }
}

/* ---- how a transfer is set up through the chat ------------------------- */

/* /send NICK PATH: open the file, then ask the server where NICK is
 * (WHOIS); the offer goes out with its reply (listen_for). */
static void offer_file(const char *to, const char *path)
{
    struct stat st;
    char name[DCC_MAX_NAME + 1], folded[LINE];
    const char *slash = strrchr(path, '/'), *params[] = { to };
    int file, known = 0;

    if (noutgoing >= MAX_TRANSFERS) {
        say("-!- %d files are offered or sent already: wait for one to end", MAX_TRANSFERS);
        return;
    }
    /* O_NONBLOCK: open(2) of a FIFO would wait for a writer; a regular
     * file, the only kind sent, ignores the flag. */
    if ((file = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0 || fstat(file, &st) < 0) {
        say("-!- open %s: %s: not sent", path, strerror(errno));
        if (file >= 0)
            close(file);
        return;
    }
    if (!S_ISREG(st.st_mode) || !safe_name(name, slash ? slash + 1 : path)) {
        if (!S_ISREG(st.st_mode))
            say("-!- %s is not a regular file: not sent", path);
        else
            say("-!- %s has no usable file name: not sent", path);
        close(file);
        return;
    }
    queue_irc("WHOIS", params, 1);
    /* Its replies are ours until its end (318); a server that never ends
     * one cannot make the list grow. */
    irc_fold(folded, to, sizeof folded);
    for (int j = 0; j < nwhois; j++)
        known |= !strcmp(whois[j], folded);
    if (!known) {
        if (nwhois == MAX_TRANSFERS) {
            memmove(whois[0], whois[1], (MAX_TRANSFERS - 1) * sizeof whois[0]);
            nwhois--;
        }
        strcpy(whois[nwhois++], folded);
    }
    struct outgoing *out = &outgoing[noutgoing++];
    memset(out, 0, sizeof *out);
    snprintf(out->to, sizeof out->to, "%s", to);
    strcpy(out->name, name);
    out->file = file;
    out->size = (uint64_t)st.st_size;
    out->deadline = now_ns() + timeout_ns;
    out->listenfd = out->connfd = -1;
    out->state = LOOKING_UP;
}

/* The server says nick connects from host (WHOIS, 311): each file waiting
 * for nick is offered, on a port of its own. */
static void listen_for(const char *who, const char *host)
{
    struct sockaddr_storage peer;
    int has_peer = host_ip(host, &peer);
    char call[ADDR_TEXT + 16], ctcp[LINE], size[32];
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if (out->state != LOOKING_UP || irc_casecmp(out->to, who) != 0)
            continue;
        if (!listen_for_peer(out, call)) {
            int err = errno;
            out_done(out);
            say("-!- %s: %s: %s not offered", call, strerror(err), out->name);
            continue;
        }
        dcc_send_text(ctcp, out->name, &out->bound, out->size);
        const char *params[] = { out->to, ctcp };
        queue_irc("PRIVMSG", params, 2);
        say("-!- offering %s (%s) to %s at %s: listening on %s for %lu s", out->name,
            human(size, out->size), out->to, host, out->addr, timeout_secs);
        if (!has_peer)
            say("-!- %s is not an address: whoever connects first gets %s", host, out->name);
        out->deadline = now_ns() + timeout_ns;
        out->has_peer = has_peer;
        out->peer = peer;
        out->state = LISTENING;
    }
}

/* No WHOIS answer for nick: the files waiting for them are not offered. */
static void no_peer(const char *who, const char *why)
{
    for (int i = 0; i < noutgoing; i++) {
        if (outgoing[i].state == LOOKING_UP && irc_casecmp(outgoing[i].to, who) == 0) {
            say("-!- %s: %s: %s not offered", who, why, outgoing[i].name);
            out_done(&outgoing[i]);
        }
    }
}

/* DCC REJECT SEND name from `from`: they refuse our offer. */
static void rejected(const char *from, const char *name)
{
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if ((out->state == LOOKING_UP || out->state == LISTENING) &&
            irc_casecmp(out->to, from) == 0 && strcmp(out->name, name) == 0) {
            out_done(out); /* closes the listener */
            say("-!- %s refused %s", from, out->name);
            return;
        }
    }
}

/* A DCC SEND offer from `from`, whose host the server gave in the
 * message's prefix: shown, kept until /accept or /refuse. */
static void offered(const char *from, const char *host, const struct dcc_offer *offer)
{
    char name[DCC_MAX_NAME + 1], shown[8 * LINE], addr[ADDR_TEXT], size[32];
    struct sockaddr_storage host_addr;
    int k = 0, waiting = 0;

    if (!safe_name(name, offer->name)) {
        say("-!- %s offers a file without a usable name (%s): ignored", from,
            quoted(shown, sizeof shown, offer->name));
        return;
    }
    /* A port below 1024 is a service (mail, ssh...), not a client: an
     * offer pointing there would make us connect to it for someone. */
    sock_ntop((const struct sockaddr *)&offer->addr, addr);
    if (port_of((const struct sockaddr *)&offer->addr) < 1024) {
        say("-!- %s's offer of %s points to %s, a service's port: ignored", from, name, addr);
        return;
    }
    /* A newer offer of the same file replaces the old one; past MAX_OFFERS
     * the oldest waiting offer goes; what ended this turn makes room. */
    for (int j = 0; j < nincoming; j++) {
        struct incoming *inc = &incoming[j];
        int same = inc->state == OFFERED && irc_casecmp(inc->from, from) == 0 &&
                   strcmp(inc->name, name) == 0;
        if (same || (inc->state == IN_DONE && nincoming == MAX_INCOMING))
            continue;
        waiting += inc->state == OFFERED;
        incoming[k++] = *inc;
    }
    nincoming = k;
    for (int j = 0; j < nincoming && waiting >= MAX_OFFERS; j++) {
        if (incoming[j].state == OFFERED) {
            say("-!- too many offers waiting: %s from %s forgotten", incoming[j].name,
                incoming[j].from);
            in_done(&incoming[j]);
            waiting = 0;
        }
    }
    if (nincoming == MAX_INCOMING)
        return; /* cannot happen: at most 16 waiting, 16 under way */
    say("-!- %s offers %s (%s): /accept %s or /refuse %s", from, name,
        human(size, offer->size), from, from);
    if (strcmp(name, offer->name) != 0)
        say("-!- (offered as %s: saved as %s)", quoted(shown, sizeof shown, offer->name), name);
    if (host != NULL && host_ip(host, &host_addr) && !same_ip(&host_addr, &offer->addr))
        say("-!- (the offer points to %s, but %s connects from %s)",
            ip_text(&offer->addr, addr), from, host);
    struct incoming *inc = &incoming[nincoming++];
    memset(inc, 0, sizeof *inc);
    snprintf(inc->from, sizeof inc->from, "%s", from);
    strcpy(inc->name, name);
    inc->offer = *offer;
    inc->sockfd = inc->part.fd = -1;
    inc->state = OFFERED;
}

/* The first waiting offer from nick. */
static struct incoming *offer_from(const char *who)
{
    for (int j = 0; j < nincoming; j++)
        if (incoming[j].state == OFFERED && irc_casecmp(incoming[j].from, who) == 0)
            return &incoming[j];
    say("-!- no offer from %s", who);
    return NULL;
}

/* NOTICE from :\1DCC REJECT SEND name\1, as irssi and mIRC say no. */
static void queue_reject(const struct incoming *inc)
{
    char ctcp[LINE + 32];
    snprintf(ctcp, sizeof ctcp, "\1DCC REJECT SEND %s\1", inc->offer.name);
    const char *params[] = { inc->from, ctcp };
    queue_irc("NOTICE", params, 2);
}

/* /accept NICK: does it fit? create NAME.part, connect to the sender. */
static void accept_offer(const char *who)
{
    struct incoming *inc = offer_from(who);
    char why[PATH_MAX + 128], size[32], addr[ADDR_TEXT];
    int active = 0;
    if (inc == NULL)
        return;
    for (int j = 0; j < nincoming; j++)
        active += incoming[j].state == CONNECTING || incoming[j].state == RECEIVING;
    if (active >= MAX_TRANSFERS) {
        say("-!- %d files are being received already: wait for one to end", MAX_TRANSFERS);
        return;
    }
    if (mkdir_all(downloads) < 0) {
        say("-!- mkdir %s: %s", downloads, strerror(errno));
        return;
    }
    /* Before any byte is written: does the file fit? */
    if (will_not_fit(downloads, inc->offer.size, has_max_size, max_size, why, sizeof why)) {
        say("-!- %s (%s) refused: %s", inc->name, human(size, inc->offer.size), why);
        queue_reject(inc);
        in_done(inc);
        return;
    }
    if (!part_create(&inc->part, downloads, inc->name)) {
        say("-!- create a file in %s: %s", downloads, strerror(errno));
        in_done(inc);
        return;
    }
    sock_ntop((struct sockaddr *)&inc->offer.addr, addr);
    if ((inc->sockfd = connect_nonb(&inc->offer.addr)) < 0) {
        int err = errno;
        in_done(inc); /* the part file removed before the line says so */
        say("-!- connect %s: %s: %s not received", addr, strerror(err), inc->name);
        return;
    }
    say("-!- connecting to %s at %s for %s", inc->from, addr, inc->name);
    inc->deadline = now_ns() + timeout_ns;
    inc->state = CONNECTING;
}

/* A /command the chat does not know: 1 if it is one of ours. */
static int transfer_command(const char *name, char *args)
{
    char *rest = args + strcspn(args, " ");
    int send = !strcmp(name, "send"), accept = !strcmp(name, "accept"),
        refuse = !strcmp(name, "refuse");
    if (*rest != '\0')
        *rest++ = '\0';
    rest = trim(rest);
    if (send && *args && *rest) {
        offer_file(args, rest);
    } else if (accept && *args) {
        accept_offer(args);
    } else if (refuse && *args) {
        struct incoming *inc = offer_from(args);
        if (inc != NULL) {
            queue_reject(inc);
            say("-!- refused %s from %s", inc->name, inc->from);
            in_done(inc);
        }
    } else if (send || accept || refuse) {
        say("-!- /%s needs more: /help shows how to use it", name);
    } else {
        return 0;
    }
    return 1;
}

/* A message from the server, before the chat shows it: 1 if it is ours (a
 * DCC offer or refusal, a reply to our WHOIS), and the chat shows nothing. */
static int transfer_message(const struct irc_message *m, const char *from)
{
    static struct dcc_offer offer;
    char body[LINE], text[LINE + 64], folded[LINE];
    const char *c = m->command, *who = irc_param(m, 1);
    int privmsg = !strcasecmp(c, "PRIVMSG"), asked = 0;

    if (privmsg || !strcasecmp(c, "NOTICE")) {
        if (!ctcp_body(body, irc_param(m, 1)))
            return 0;
        switch (dcc_parse(body, &offer, text)) {
        case DCC_NOT:
            return 0; /* a CTCP that is not DCC (ACTION...): the chat shows it */
        case DCC_SEND:
            if (privmsg) {
                const char *at = m->prefix ? strchr(m->prefix, '@') : NULL;
                offered(from, at ? at + 1 : NULL, &offer);
            } else {
                say("-!- %s sent an offer in a NOTICE: ignored", from);
            }
            break;
        case DCC_REJECT:
            rejected(from, text);
            break;
        case DCC_UNSUPPORTED:
            say("-!- %s sent a %s: this client does not do that, ignored", from, text);
            break;
        case DCC_INVALID:
            say("-!- %s sent a DCC offer that makes no sense (%s): ignored", from, text);
            break;
        }
        return 1;
    }
    /* The replies to our WHOIS: where the peer of an offer is. */
    irc_fold(folded, who, sizeof folded);
    for (int j = 0; j < nwhois; j++)
        asked |= !strcmp(whois[j], folded);
    if (!asked || strlen(c) != 3 || strspn(c, "0123456789") != 3)
        return 0;
    if (!strcmp(c, "311")) { /* RPL_WHOISUSER: <me> <nick> <user> <host> * :<real name> */
        listen_for(who, irc_param(m, 3));
    } else if (!strcmp(c, "401")) { /* ERR_NOSUCHNICK */
        no_peer(who, "there is no such nick");
    } else if (!strcmp(c, "318")) { /* RPL_ENDOFWHOIS: without a 311, nobody to offer to */
        int k = 0;
        for (int j = 0; j < nwhois; j++)
            if (strcmp(whois[j], folded) != 0)
                memmove(whois[k++], whois[j], LINE);
        nwhois = k;
        no_peer(who, "the server did not say where they are");
    }
    return 1;
}

/* ---- the transfers in the poll loop ------------------------------------- */

/* What each transfer waits for: fds[] filled, their number returned;
 * slots[k] says whose fds[k] is (i: outgoing[i], MAX_TRANSFERS + i:
 * incoming[i]). */
static int interests(struct pollfd *fds, int *slots)
{
    int n = 0;
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if (out->state != LISTENING && out->state != SENDING)
            continue;
        /* A connection waiting in the backlog makes the listener readable;
         * a connection is always read (acknowledgements, the close). */
        fds[n].fd = out->state == LISTENING ? out->listenfd : out->connfd;
        fds[n].events = POLLIN | (out->state == SENDING && out->sent < out->size ? POLLOUT : 0);
        slots[n++] = i;
    }
    for (int i = 0; i < nincoming; i++) {
        struct incoming *inc = &incoming[i];
        if (inc->state != CONNECTING && inc->state != RECEIVING)
            continue;
        /* A non-blocking connect(2) is done when the socket is writable. */
        fds[n].fd = inc->sockfd;
        fds[n].events = inc->state == CONNECTING ? POLLOUT
                                                 : POLLIN | (ack_pending(inc) ? POLLOUT : 0);
        slots[n++] = MAX_TRANSFERS + i;
    }
    return n;
}

static int in_active(const struct incoming *inc)
{
    return inc->state == CONNECTING || inc->state == RECEIVING;
}

/* Whether anything of ours is under way: an offer out, a transfer. */
static int busy(void)
{
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state != OUT_DONE)
            return 1;
    for (int i = 0; i < nincoming; i++)
        if (in_active(&incoming[i]))
            return 1;
    return 0;
}

/* poll's timeout: the next deadline of an offer or a transfer, in ms. */
static int next_timeout(void)
{
    int64_t next = INT64_MAX, ms;
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state != OUT_DONE && outgoing[i].deadline < next)
            next = outgoing[i].deadline;
    for (int i = 0; i < nincoming; i++)
        if (in_active(&incoming[i]) && incoming[i].deadline < next)
            next = incoming[i].deadline;
    if (next == INT64_MAX)
        return -1;
    ms = (next > now_ns() ? (next - now_ns()) / 1000000 : 0) + 1;
    return ms > INT_MAX ? INT_MAX : (int)ms;
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
        if (state == LOOKING_UP)
            say("-!- no answer about %s in %lu s: %s not offered", out->to, secs, out->name);
        else if (state == LISTENING)
            say("-!- nobody came for %s in %lu s: the offer to %s is withdrawn", out->name,
                secs, out->to);
        else if (out->sent == out->size)
            say("-!- sent %s to %s, but %s did not confirm the end within %lu s", out->name,
                out->to, out->to, secs);
        else
            say("-!- %s to %s stalled for %lu s: abandoned", out->name, out->to, secs);
    }
    for (int i = 0; i < nincoming; i++) {
        struct incoming *inc = &incoming[i];
        if (in_active(inc) && now >= inc->deadline) {
            in_done(inc); /* removes the part file */
            say("-!- %s from %s stalled for %lu s: abandoned, nothing kept", inc->name,
                inc->from, secs);
        }
    }
}

/* One transfer's progress: a part of the status line on a terminal, else a
 * plain line as it passes each quarter. */
static void progress_one(char *status, const char *name, const char *dir, const char *who,
                         uint64_t done, uint64_t total, struct progress *p)
{
    char text[256], line[4 * LINE];
    uint64_t quarters = total == 0 ? 0 : done <= UINT64_MAX / 4 ? done * 4 / total
                                                                 : done / (total / 4);
    if (!tty && (quarters <= p->quarters || quarters >= 4))
        return;
    progress_text(text, sizeof text, done, total, now_ns() - p->started);
    snprintf(line, sizeof line, "%s %s %s: %s", name, dir, who, text);
    if (!tty) {
        p->quarters = quarters;
        say("-!- %s", line);
    } else if (strlen(status) + strlen(line) + 4 < 8 * LINE) {
        strcat(strcat(status, *status ? " | " : ""), line);
    }
}

static void show_progress(void)
{
    char status[8 * LINE] = "";
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state == SENDING)
            progress_one(status, outgoing[i].name, "to", outgoing[i].to, outgoing[i].sent,
                         outgoing[i].size, &outgoing[i].progress);
    for (int i = 0; i < nincoming; i++)
        if (incoming[i].state == RECEIVING)
            progress_one(status, incoming[i].name, "from", incoming[i].from,
                         incoming[i].received, incoming[i].offer.size, &incoming[i].progress);
    if (*status && now_ns() - redrawn >= REDRAW_NS) {
        /* CR goes back to the start of the line, ESC [ K (ECMA-48 EL)
         * erases it: the line is rewritten in place. */
        printf("\r\033[K%s", status);
        fflush(stdout);
        status_shown = 1;
        redrawn = now_ns();
    }
}

/* The end of the turn: what is over is forgotten (closed already). */
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

/* The client leaves: every transfer is dropped, part files removed. */
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

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "nick", required_argument, NULL, 'n' },
        { "raw", no_argument, NULL, 'r' },
        { "downloads", required_argument, NULL, 'd' },
        { "max-size", required_argument, NULL, 'm' },
        { "offer-timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *host = DEFAULT_HOST, *first_nick = NULL;
    unsigned short port = DEFAULT_PORT;
    int sockfd, c, stdin_open = 1;

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': first_nick = optarg; break;
        case 'r': raw = 1; break;
        case 'd': downloads = optarg; break;
        case 'm':
            if (!parse_size(optarg, &max_size))
                usage_error("invalid SIZE '%s': a number of bytes, with k, M, G or T", optarg);
            has_max_size = 1;
            break;
        case 't': timeout_secs = parse_number(optarg, "SECS", 1, 86400); break;
        case 'h': help();
        default: bad_usage(); /* getopt_long(3) said what was wrong */
        }
    }
    if (optind < argc)
        host = argv[optind++];
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    timeout_ns = (int64_t)timeout_secs * 1000000000LL;

    /* Line-buffered even into a pipe: each event is seen as it happens. A
     * write(2) to a reset peer raises SIGPIPE, which kills (signal(7));
     * ignored, write fails with EPIPE. Rust's runtime does this too. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    char server[ADDR_TEXT];
    sockfd = tcp_connect(host, port, server); /* lab 07's connection, as UNP's tcp_connect */
    /* Non-blocking, as in lab 07: a write takes what fits, poll says when
     * more will. */
    if ((c = fcntl(sockfd, F_GETFL)) < 0 || fcntl(sockfd, F_SETFL, c | O_NONBLOCK) < 0)
        die("fcntl", server);
    /* Our own address, as the chat connection uses it (getsockname(2)):
     * the address we offer files on is one the chat server, at least, can
     * reach us at. Behind NAT it is a private address nobody outside can. */
    socklen_t len = sizeof local;
    if (getsockname(sockfd, (struct sockaddr *)&local, &len) < 0)
        die("getsockname", server);

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "connected to %s; /help for the commands, Ctrl-D or /quit to leave\n",
                server);
    tty = isatty(STDOUT_FILENO);
    redrawn = now_ns();
    if (first_nick != NULL)
        do_register(first_nick);
    else
        say("-!- choose a nickname: /nick NAME");

    static struct irc_lines from_server, from_user;
    struct pollfd fds[2 + MAX_TRANSFERS + MAX_INCOMING];
    int slots[MAX_TRANSFERS + MAX_INCOMING];
    char line[LINE];
    size_t n_line;
    enum irc_piece piece;
    for (;;) {
        /* [0] stdin, [1] the chat socket, [2..] one per transfer (lab 07's
         * set, rebuilt each turn). Unwatched, stdin is left out of the
         * array: a pipe whose writer has gone reports POLLHUP whatever was
         * asked. The timeout is the transfers' clock. */
        int watch_stdin = stdin_open && !quitting && queued_len < MAX_QUEUED;
        int first = watch_stdin ? 0 : 1;
        fds[0].fd = STDIN_FILENO;
        fds[0].events = POLLIN;
        fds[1].fd = sockfd;
        fds[1].events = POLLIN | (queued_len > 0 ? POLLOUT : 0);
        int ntransfers = interests(fds + 2, slots);
        for (int k = 0; k < 2 + ntransfers; k++)
            fds[k].revents = 0;
        if (poll(fds + first, (nfds_t)(2 + ntransfers - first), next_timeout()) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", server);
        }

        /* The transfers first: their places in the lists are those poll
         * saw. Nothing is removed before the end of the turn. */
        for (int k = 0; k < ntransfers; k++) {
            if (fds[2 + k].revents == 0)
                continue;
            if (slots[k] < MAX_TRANSFERS)
                outgoing_ready(&outgoing[slots[k]], fds[2 + k].revents);
            else
                incoming_ready(&incoming[slots[k] - MAX_TRANSFERS], fds[2 + k].revents);
        }

        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(sockfd, from_server.buf + from_server.len,
                             sizeof from_server.buf - from_server.len);
            if ((n == 0 || (n < 0 && errno == ECONNRESET)) && quitting) {
                /* After our QUIT the server closes: that is the goodbye. A
                 * reset is one too: the server closed with some of our
                 * input unread, and close(2) then sends a RST (tcp(7)). */
                abandon_all(0);
                close(sockfd);
                return 0;
            } else if (n == 0) {
                erase_status();
                fprintf(stderr, "server %s closed the connection\n", server);
                abandon_all(1);
                exit(1);
            } else if (n > 0) {
                from_server.len += (size_t)n;
                /* Longer than IRC allows: not a message of ours to show. */
                while ((piece = irc_next_line(&from_server, line, &n_line)) != IRC_NONE)
                    if (piece == IRC_WHOLE)
                        receive(line, n_line);
            } else if (errno != EAGAIN && errno != EINTR) {
                die("read", server);
            }
        }

        if (watch_stdin && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(STDIN_FILENO, from_user.buf + from_user.len,
                             sizeof from_user.buf - from_user.len);
            if (n == 0) {
                stdin_open = 0;
                if ((piece = irc_rest_line(&from_user, line, &n_line)) != IRC_NONE)
                    typed_piece(piece, line, n_line);
            } else if (n > 0) {
                from_user.len += (size_t)n;
                while ((piece = irc_next_line(&from_user, line, &n_line)) != IRC_NONE)
                    typed_piece(piece, line, n_line);
            } else if (errno != EINTR) {
                die("read", "stdin");
            }
        }
        /* End of input: leave once our offers and transfers are over (lab
         * 07 leaves at once), so that `... | ./client-c` can send a file. */
        if (!stdin_open && !quitting && !busy())
            typed(strcpy(line, "/quit"));

        if ((fds[1].revents & (POLLOUT | POLLHUP | POLLERR)) && queued_len > 0) {
            ssize_t n = write(sockfd, queued, queued_len);
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
