/*
 * Lab 07: the chat server, in C (the twin of server.rs and commands.rs).
 *
 * Lab 04's structure: one process, poll(2), non-blocking sockets. What is
 * new is the server's role: it is the go-between of its users. A line read
 * from one client is a command (`PRIVMSG #room :hi`) that makes the server
 * queue lines for other clients, so each client now has an output queue
 * that others fill, and a client that stops reading must not let its queue
 * grow without bound or stall the rest.
 *
 * socket -> setsockopt(SO_REUSEADDR) -> bind -> listen -> loop { poll(the
 * listener and every client, until the next PING or timeout is due) -> read
 * from the readable, each whole line a command -> PING the silent, drop the
 * late (no answer to a PING, or not registered in time) -> write every
 * queue -> close those gone -> accept the new ones }.
 *
 * The protocol is a subset of IRC (RFC 2812): a line is
 * [":" prefix " "] command [" " param]* [" :" trailing] CR LF, at most 512
 * bytes. The rules the Rust server takes from src/irc.rs (parsing,
 * formatting with its 512-byte cut, rfc1459 case folding, nick and channel
 * names, masks) are written out here, after the commands.
 *
 * Build: make c (or: cc -Wall -Wextra -O2 -o server-c server.c)
 * Run:   ./server-c [PORT] [--bind ADDR] [--name NAME] [--ping-timeout SECS]
 *                   [--register-timeout SECS]
 *
 * Same arguments, messages, replies and system calls as ./server (server.rs,
 * commands.rs): `make trace LAB=07-chat` shows the two side by side.
 */

#define _GNU_SOURCE /* accept4(2) */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "irc.h"

#define SYNOPSIS                                                               \
    "usage: server [PORT] [--bind ADDR] [--name NAME] [--ping-timeout SECS]\n" \
    "              [--register-timeout SECS]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 07: chat server, one process, poll(). Speaks a subset of IRC (RFC 2812):\n"
    "connect with lab 07's client, with irssi (irssi -c 127.0.0.1 -p 4242 -n alice)\n"
    "or by hand (nc -C 127.0.0.1 4242, then NICK alice and USER alice 0 * :Alice).\n"
    "\n"
    "  PORT                 port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR          address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --name NAME          the server's name, the prefix of its replies (default chat.socket-labs)\n"
    "  --ping-timeout SECS  a client silent this long is sent a PING; one still silent\n"
    "                       as long again is dropped (default 120, at most 86400)\n"
    "  --register-timeout SECS\n"
    "                       a connection not registered (NICK and USER) this long\n"
    "                       after it connected is dropped (default 60, at most 86400)\n"
    "  --help               print this help\n";

#define DEFAULT_PORT 4242
#define DEFAULT_NAME "chat.socket-labs"
/* The Rust server's version is Cargo's (socket-labs-CARGO_PKG_VERSION):
 * both answer 002 and 004 with the same one. */
#define VERSION "socket-labs-0.1.0"
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* The longest line IRC allows, CR LF included (RFC 2812 §2.3). */
#define MAX_LINE 512
#define LINE_TEXT (MAX_LINE + 1)
/* RFC 2812 allows at most 15 parameters; the 15th takes the rest. */
#define MAX_PARAMS 15
/* A reply: the client's nick, then at most this many parameters. */
#define MAX_REPLY 16

/* The most a client's output queue may hold. The queue only grows when the
 * client reads less than others send it: past this bound it is dropped
 * ("too slow") rather than let one peer take the server's memory. */
#define MAX_QUEUED (256 * 1024)

/* RFC 2812 §1.2.1: nicknames have at most 9 characters. */
#define NICKLEN 9
/* Channel names, `#` included (RFC 2812 §1.3 allows 50). */
#define CHANNELLEN 50
/* The longest user name kept from USER, and the longest topic, in bytes. */
#define USERLEN 10
#define TOPICLEN 390
/* How many channels one user may be on at once: with the descriptor limit
 * on users, it bounds the number of channels. */
#define MAX_CHANNELS 20
/* How many targets one PRIVMSG or NOTICE may name: each `$*` is a copy for
 * every user, so one line must not be allowed to make thousands. */
#define MAX_TARGETS 4

/* What a real client reads from 005 (RPL_ISUPPORT) to learn our rules. */
static const char *const isupport[] = {
    "CASEMAPPING=rfc1459", "CHANTYPES=#",   "CHANLIMIT=#:20",
    "CHANNELLEN=50",       "NICKLEN=9",     "TOPICLEN=390",
    "PREFIX=(o)@",         "TARGMAX=PRIVMSG:4,NOTICE:4", "NETWORK=socket-labs",
};

struct channel;

/* One connection; a user once NICK and USER are done. */
struct client {
    unsigned long long id; /* never reused: the order of peers (see peers()) */
    int fd;
    char peer[ADDR_TEXT];  /* IP:PORT, for the log and WHOIS */
    char host[INET6_ADDRSTRLEN + 1]; /* the IP as text: the host of nick!user@host */
    struct irc_lines in;
    /* Lines queued for this client, not yet taken by write(2): at most MAX_QUEUED. */
    char *out;
    size_t out_len, out_cap;
    /* Why the client must be closed (the QUIT message its channels see). */
    int gone;
    char gone_why[LINE_TEXT];
    /* When to PING it (or, if pinged, to drop it) unless it sends a line. */
    long long deadline;
    int pinged;
    /* Until it registers: when to drop it if it still has not, counted
     * from its connect whatever it sends meanwhile. */
    long long register_by;
    char nick[NICKLEN + 1]; /* "" until NICK */
    char user[USERLEN + 1]; /* "" until USER */
    char realname[LINE_TEXT];
    int registered;
    int invisible; /* user mode +i: kept and reported, changes nothing here */
    /* The channels joined, in the order joined. */
    struct channel *channels[MAX_CHANNELS];
    int nchannels;
    /* Registration time (seconds since 1970) and the last PRIVMSG or NOTICE
     * sent (monotonic nanoseconds): WHOIS shows both (317). */
    unsigned long long signon;
    long long last_message;
};

struct member {
    struct client *client;
    int operator; /* @nick in NAMES, @#chan in WHOIS, H@ in WHO */
};

struct topic_info {
    char text[TOPICLEN + 1];
    char by[NICKLEN + 1];
    unsigned long long at;
};

/* A channel: created by its first JOIN, removed with its last member. */
struct channel {
    char name[CHANNELLEN + 1]; /* as its creator wrote it */
    char key[CHANNELLEN + 1];  /* folded: how it is looked up */
    int has_topic;
    struct topic_info topic;
    struct member *members; /* in the order they joined: NAMES lists them so */
    size_t nmembers, cap;
    unsigned long long created; /* seconds since 1970, for MODE's 329 */
    struct channel *next;
};

/*
 * The clients are an array of pointers, as lab 04 keeps its clients: index
 * i is the poll(2) entry i + 1, rebuilt each turn, in the order the clients
 * came: WHO and `PRIVMSG $*` go through the users in that order, as the
 * Rust server does. Channels and their members hold a client by its pointer, which
 * stays valid while the array moves (server.rs names clients by a number,
 * since Rust will not keep a reference into a Vec that changes).
 *
 * The channels are a linked list: created and removed at any time, looked
 * up by name with a linear search (with the folded name, as the Rust
 * server's HashMap key). NAMES and LIST sort them by that name first.
 */
static struct client **clients;
static size_t nclients, clients_cap;
static struct channel *channels;
static size_t nchannels;
static unsigned long long next_id;

static const char *server_name = DEFAULT_NAME;
static char created[64];   /* for 003: when the server started */
static long long ping_ns;  /* the ping timeout */
static unsigned long ping_secs;
static long long register_ns; /* the registration timeout */
static unsigned long register_secs;
static int spare = -1;         /* /dev/null, kept for when descriptors run out */
static int out_of_descriptors; /* said so already */

static void accept_clients(int listener, const char *local_str, long long now);
static void read_client(struct client *c, long long now);
static long long next_deadline(const struct client *c);
static void check_timeouts(long long now);
static struct client *remove_client(size_t i);
static void free_client(struct client *c);
static void command(struct client *c, const char *bytes, size_t len);
static void cap(struct client *c, char **p, int n);
static void nick(struct client *c, char **p, int n);
static void user(struct client *c, char **p);
static void try_register(struct client *c);
static void quit(struct client *c, char **p, int n);
static void message(struct client *c, const char *command, char **p, int n);
static void join(struct client *c, char **p);
static void part(struct client *c, char **p, int n);
static void leave(struct client *c, struct channel *ch, const char *why);
static void names_of(struct client *c, struct channel *ch);
static void names(struct client *c, char **p, int n);
static void list(struct client *c, char **p, int n);
static void topic(struct client *c, char **p, int n);
static void who(struct client *c, char **p, int n);
static void whois(struct client *c, char **p, int n);
static void channel_mode(struct client *c, char **p, int n);
static void user_mode(struct client *c, char **p, int n);
static void lusers(struct client *c);
static void reply(struct client *c, const char *numeric, ...);
static void reply_v(struct client *c, const char *numeric, const char **params, int n);
static void reply_list(struct client *c, const char *numeric, const char **params, int n,
                       const char (*items)[CHANNELLEN + 2], size_t nitems);
static void reply_topic(struct client *c, struct channel *ch);
static void send_to(struct client *c, const char *prefix, const char *command,
                    const char **params, int n, int trailing);
static void client_send(struct client *c, const char *line, size_t len);
static void client_flush(struct client *c);
static void set_gone(struct client *c, const char *why);
static const char *prefix_of(const struct client *c, char *out);
static struct client **peers(const struct client *c, size_t *count);
static struct client *find_nick(const char *nick);
static struct channel *find_channel(const char *name);
static struct channel **sorted_channels(void);
static struct member *member_of(struct channel *ch, const struct client *c);
static void remove_member(struct channel *ch, const struct client *c);
static void drop_channel(struct channel *ch);
static char *next_item(char **list);
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long now_ns(void);
static int reserve_spare(unsigned long long limit);
static int refuse_one(int listener, int *spare, const char *local);
static _Noreturn void die(const char *call, const char *what);
static const char *addr_text(const struct sockaddr_storage *ss, char *out);
static void read_args(int argc, char **argv);
static const char *take_value(const char *name, const char *what);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int parse_number(const char *text, unsigned long max, unsigned long *value,
                        const char **why);
static socklen_t parse_ip(const char *text, struct sockaddr_storage *ss);
static void set_port(struct sockaddr_storage *ss, unsigned long port);

int main(int argc, char **argv)
{
    /* stdout is a pipe when a test or a script reads our log: flush each
     * line as it is printed, not when a 4 KiB buffer fills (setvbuf(3)). */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Each option is checked as it is taken, in this order, as server.rs
     * does: the same mistakes get the same message. */
    read_args(argc, argv);
    const char *bind_text = take_value("--bind", "ADDR");
    struct sockaddr_storage addr;
    socklen_t addrlen = parse_ip(bind_text ? bind_text : "0.0.0.0", &addr);
    const char *name_text = take_value("--name", "NAME");
    const char *ping_text = take_value("--ping-timeout", "SECS");
    ping_secs = 120;
    const char *why;
    if (ping_text && parse_number(ping_text, ULONG_MAX, &ping_secs, &why) < 0)
        usage_error("invalid SECS '%s': %s", ping_text, why);
    const char *register_text = take_value("--register-timeout", "SECS");
    register_secs = 60;
    if (register_text && parse_number(register_text, ULONG_MAX, &register_secs, &why) < 0)
        usage_error("invalid SECS '%s': %s", register_text, why);
    unsigned long port = take_port();
    if (name_text != NULL)
        server_name = name_text;
    /* The name is the prefix of every reply: one word, as a host name is. */
    int name_ok = server_name[0] != '\0' && strlen(server_name) <= 63;
    for (const char *s = server_name; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '.' || *s == '-'))
            name_ok = 0;
    }
    if (!name_ok)
        usage_error("invalid NAME '%s': letters, digits, '.' and '-', at most 63", server_name);
    if (ping_secs < 1 || ping_secs > 86400)
        usage_error("invalid SECS '%lu': from 1 to 86400 seconds", ping_secs);
    if (register_secs < 1 || register_secs > 86400)
        usage_error("invalid SECS '%lu': from 1 to 86400 seconds", register_secs);
    finish_args();
    set_port(&addr, port);
    char addr_str[ADDR_TEXT];
    addr_text(&addr, addr_str);
    ping_ns = (long long)ping_secs * 1000000000LL;
    register_ns = (long long)register_secs * 1000000000LL;

    /* A write(2) to a connection the client has reset raises SIGPIPE, whose
     * default action kills the whole server (signal(7)). Ignored, write(2)
     * fails with EPIPE instead; Rust's runtime does this before main. */
    signal(SIGPIPE, SIG_IGN);

    /* Every user costs a descriptor: raise the soft limit to the hard one
     * (getrlimit(2)), as lab 04 does. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit", "RLIMIT_NOFILE");
    unsigned long long limit = rl.rlim_max;
    rlim_t soft = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "setrlimit RLIMIT_NOFILE: %s\n", strerror(errno));
        limit = soft;
    }

    /* SOCK_NONBLOCK: accept4(2) below returns EAGAIN, not a wait, once the
     * backlog is empty. */
    int listener = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (listener < 0)
        die("socket", addr_str);
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt", addr_str);
    if (bind(listener, (struct sockaddr *)&addr, addrlen) < 0)
        die("bind", addr_str);
    if (listen(listener, SOMAXCONN) < 0)
        die("listen", addr_str);
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(listener, (struct sockaddr *)&local, &len) < 0)
        die("getsockname", addr_str);
    char local_str[ADDR_TEXT];
    addr_text(&local, local_str);
    /* The reserve descriptor for EMFILE, as in lab 04 (see accept_clients). */
    spare = reserve_spare(limit);
    say("listening on %s", local_str);
    say("descriptor limit %llu (RLIMIT_NOFILE)", limit);

    time_t started = time(NULL);
    struct tm tm;
    gmtime_r(&started, &tm);
    strftime(created, sizeof created, "%Y-%m-%d %H:%M:%S UTC", &tm);

    struct pollfd *fds = NULL;
    size_t fds_cap = 0;
    for (;;) {
        /* Sleep in poll(2) until something happens or a client's next
         * deadline (a PING, a drop for silence or for not registering) is
         * due: the timeout argument is the server's only clock.
         * Rounded up (+1 ms): rounded down, it would wake us just before
         * the deadline, to find nothing due and poll again at once. */
        int timeout = -1;
        if (nclients > 0) {
            long long first = next_deadline(clients[0]);
            for (size_t i = 1; i < nclients; i++)
                if (next_deadline(clients[i]) < first)
                    first = next_deadline(clients[i]);
            long long left = first - now_ns();
            long long ms = (left > 0 ? left : 0) / 1000000 + 1;
            timeout = ms > INT_MAX ? INT_MAX : (int)ms;
        }
        /* [0] is the listener, [i + 1] is clients[i], rebuilt each turn (lab 04). */
        if (nclients + 1 > fds_cap) {
            size_t cap = fds_cap ? 2 * fds_cap : 64;
            while (cap < nclients + 1)
                cap *= 2;
            struct pollfd *bigger = realloc(fds, cap * sizeof *fds);
            if (bigger == NULL)
                die("poll", local_str); /* errno is ENOMEM */
            fds = bigger;
            fds_cap = cap;
        }
        fds[0].fd = listener;
        fds[0].events = POLLIN;
        for (size_t i = 0; i < nclients; i++) {
            fds[i + 1].fd = clients[i]->fd;
            fds[i + 1].events = POLLIN;
            if (clients[i]->out_len > 0)
                fds[i + 1].events |= POLLOUT;
        }
        if (poll(fds, nclients + 1, timeout) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", local_str);
        }
        long long now = now_ns();

        /* Read: one read(2) per readable client. Each whole line is a
         * command, which may queue lines for any client; nobody is removed
         * before the turn ends, so the indexes stay valid. */
        for (size_t i = 0; i < nclients; i++) {
            if ((fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) && !clients[i]->gone)
                read_client(clients[i], now);
        }

        check_timeouts(now);

        /* Write: every queue, as far as each socket takes it now, at once
         * rather than waiting for POLLOUT (there is almost always room). */
        for (size_t i = 0; i < nclients; i++) {
            if (clients[i]->out_len > 0)
                client_flush(clients[i]);
        }

        /* Close: those who quit, left, failed, timed out or were too slow.
         * Their channels see a QUIT; that may overflow a slow peer's queue
         * and mark it gone in turn: go round until nobody is left marked. */
        for (;;) {
            int any = 0;
            for (size_t i = 0; i < nclients; i++)
                any |= clients[i]->gone;
            if (!any)
                break;
            for (size_t i = nclients; i-- > 0;) {
                if (i < nclients && clients[i]->gone) {
                    struct client *c = remove_client(i);
                    say("%s disconnected", c->peer);
                    if (close(c->fd) < 0)
                        fprintf(stderr, "close %s: %s\n", c->peer, strerror(errno));
                    free_client(c);
                }
            }
        }

        if (fds[0].revents & POLLIN)
            accept_clients(listener, local_str, now);
    }
}

/* Every connection waiting in the backlog, as in lab 04. When no
 * descriptor is left (EMFILE), the reserve one is closed, the waiting
 * connection accepted and closed at once, and the reserve opened again:
 * the client learns at once, instead of waiting in the backlog. */
static void accept_clients(int listener, const char *local_str, long long now)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                if (!out_of_descriptors) {
                    fprintf(stderr, "accept %s: %s; closing new connections until one frees\n",
                            local_str, strerror(errno));
                    out_of_descriptors = 1;
                }
                if (!refuse_one(listener, &spare, local_str))
                    break; /* nobody was waiting */
                continue;
            }
            die("accept", local_str);
        }
        out_of_descriptors = 0;
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0) {
            fprintf(stderr, "getpeername %s: %s\n", local_str, strerror(errno));
            close(fd);
            continue;
        }
        if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6) {
            close(fd); /* not an IP connection: cannot happen on an IP listener */
            continue;
        }
        /* Out of memory: this connection is closed, the others go on. */
        struct client *c = calloc(1, sizeof *c);
        if (c != NULL && nclients == clients_cap) {
            size_t cap = clients_cap ? 2 * clients_cap : 64;
            struct client **bigger = realloc(clients, cap * sizeof *clients);
            if (bigger != NULL) {
                clients = bigger;
                clients_cap = cap;
            }
        }
        if (c == NULL || nclients == clients_cap) {
            fprintf(stderr, "accept %s: %s\n", local_str, strerror(ENOMEM));
            free(c);
            close(fd);
            continue;
        }
        addr_text(&peer, c->peer);
        say("connection from %s", c->peer);
        /* An IPv4 client of a `::` listener shows as ::ffff:a.b.c.d: name
         * it by its IPv4 address. An IPv6 host may not start with ':' in a
         * parameter (":" starts the trailing one): ::1 is written 0::1,
         * the same address. */
        if (peer.ss_family == AF_INET6) {
            const struct in6_addr *a6 = &((struct sockaddr_in6 *)&peer)->sin6_addr;
            if (IN6_IS_ADDR_V4MAPPED(a6)) {
                inet_ntop(AF_INET, &a6->s6_addr[12], c->host, sizeof c->host);
            } else {
                char ip[INET6_ADDRSTRLEN];
                inet_ntop(AF_INET6, a6, ip, sizeof ip);
                snprintf(c->host, sizeof c->host, "%s%s", ip[0] == ':' ? "0" : "", ip);
            }
        } else {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, c->host, sizeof c->host);
        }
        c->id = next_id++;
        c->fd = fd;
        c->deadline = now + ping_ns;
        c->register_by = now + register_ns;
        c->last_message = now;
        clients[nclients++] = c;
    }
}

/* One read(2) from a readable client, and the commands it completes. */
static void read_client(struct client *c, long long now)
{
    char line[MAX_LINE];
    size_t len;
    ssize_t n = read(c->fd, c->in.buf + c->in.len, sizeof c->in.buf - c->in.len);
    if (n == 0) {
        /* End of file. A last line without its newline still counts. */
        if (irc_rest_line(&c->in, line, &len) == IRC_WHOLE)
            command(c, line, len);
        if (!c->gone)
            set_gone(c, "Connection closed");
    } else if (n > 0) {
        c->in.len += (size_t)n;
        enum irc_piece piece;
        while ((piece = irc_next_line(&c->in, line, &len)) != IRC_NONE) {
            if (c->gone)
                break; /* QUIT: what follows is not read */
            /* A complete line proves the client alive: no PING needed.
             * Bytes without a newline do not, or one byte a second (a
             * slowloris) would hold a connection, and its nick, for ever. */
            if (len > 0 && line[len - 1] == '\n') {
                c->deadline = now + ping_ns;
                c->pinged = 0;
            }
            if (piece == IRC_WHOLE)
                command(c, line, len);
            else if (piece == IRC_LONG) /* the first 512 bytes of a longer line: refused */
                reply(c, "417", "Input line was too long", NULL);
            /* REST: more of that line, ignored */
        }
    } else if (errno != EAGAIN && errno != EINTR) {
        /* ECONNRESET: the client is gone without a goodbye. */
        int err = errno;
        fprintf(stderr, "read %s: %s\n", c->peer, strerror(err));
        set_gone(c, strerror(err));
    }
}

/* When check_timeouts() next has something to do for c: its PING (or
 * drop), or before that its registration deadline. */
static long long next_deadline(const struct client *c)
{
    if (!c->registered && c->register_by < c->deadline)
        return c->register_by;
    return c->deadline;
}

/* Drops every connection not registered in time, sends a PING to every
 * client silent for the ping timeout, and drops those still silent as long
 * after it. */
static void check_timeouts(long long now)
{
    for (size_t i = 0; i < nclients; i++) {
        struct client *c = clients[i];
        if (c->gone)
            continue;
        /* A PONG now and then would keep an unregistered connection for
         * ever, holding a nick and a descriptor: whatever it says, it has
         * this long from its connect to send NICK and USER (ircd-hybrid
         * allows 30 s; ngIRCd drops it too). */
        if (!c->registered && now >= c->register_by) {
            say("%s registration timeout: not registered after %lu s, dropped", c->peer,
                register_secs);
            char error[160];
            snprintf(error, sizeof error, "Closing link: %s (Registration timed out)", c->host);
            const char *params[] = { error };
            send_to(c, NULL, "ERROR", params, 1, 1);
            set_gone(c, "Registration timed out");
            continue;
        }
        if (now < c->deadline)
            continue;
        c->deadline = now + ping_ns;
        if (!c->pinged) {
            c->pinged = 1;
            const char *params[] = { server_name };
            send_to(c, server_name, "PING", params, 1, 1);
        } else {
            say("%s ping timeout: silent for %lu s, dropped", c->peer, 2 * ping_secs);
            char why[64], error[160];
            snprintf(why, sizeof why, "Ping timeout: %lu seconds", ping_secs);
            snprintf(error, sizeof error, "Closing link: %s (%s)", c->host, why);
            const char *params[] = { error };
            send_to(c, NULL, "ERROR", params, 1, 1);
            set_gone(c, why);
        }
    }
}

/* Takes clients[i] out of the array (those after it move down) and
 * forgets it: frees its nick, tells those who shared a channel with it
 * (`:nick!user@host QUIT :reason`), leaves its channels. The caller closes
 * the descriptor and frees the client. */
static struct client *remove_client(size_t i)
{
    struct client *c = clients[i];
    memmove(&clients[i], &clients[i + 1], (--nclients - i) * sizeof clients[0]);
    if (c->registered) {
        char prefix[ADDR_TEXT * 2];
        const char *params[] = { c->gone ? c->gone_why : "Client quit" };
        char line[MAX_LINE + 1];
        size_t len = irc_format(line, prefix_of(c, prefix), "QUIT", params, 1, 1);
        size_t count;
        struct client **them = peers(c, &count);
        for (size_t k = 0; k < count; k++)
            client_send(them[k], line, len);
        free(them);
    }
    for (int k = 0; k < c->nchannels; k++) {
        remove_member(c->channels[k], c);
        if (c->channels[k]->nmembers == 0)
            drop_channel(c->channels[k]);
    }
    c->nchannels = 0;
    return c;
}

static void free_client(struct client *c)
{
    free(c->out);
    free(c);
}

/* ---- the commands: what one line from a client does ------------------------
 *
 * Each command answers its sender with numerics (`:server 001 alice :...`,
 * RFC 2812 §5) and may relay a line to others with the sender's prefix
 * (`:alice!alice@127.0.0.1 PRIVMSG #room :hi`). Nothing here reads or writes
 * a socket: lines are queued with client_send, and the loop writes them. */

/* Handles one line from c (CR LF or LF included). */
static void command(struct client *c, const char *bytes, size_t len)
{
    struct irc_message m;
    if (!irc_parse(&m, bytes, len))
        return; /* an empty line: nothing to do (RFC 2812 §2.3.1) */
    char **p = m.params;
    int n = m.nparams;
    char command[LINE_TEXT];
    size_t k;
    for (k = 0; m.command[k] && k < sizeof command - 1; k++)
        command[k] = (m.command[k] >= 'a' && m.command[k] <= 'z') ? m.command[k] - 32
                                                                   : m.command[k];
    command[k] = '\0';
    int before_registration =
        !strcmp(command, "CAP") || !strcmp(command, "PASS") || !strcmp(command, "NICK") ||
        !strcmp(command, "USER") || !strcmp(command, "PING") || !strcmp(command, "PONG") ||
        !strcmp(command, "QUIT");
    if (!c->registered && !before_registration) {
        reply(c, "451", "You have not registered", NULL);
        return;
    }
    int needed = 0;
    if (!strcmp(command, "USER"))
        needed = 4;
    else if (!strcmp(command, "CAP") || !strcmp(command, "PING") || !strcmp(command, "JOIN") ||
             !strcmp(command, "PART") || !strcmp(command, "TOPIC") || !strcmp(command, "MODE"))
        needed = 1;
    if (n < needed) {
        reply(c, "461", m.command, "Not enough parameters", NULL);
        return;
    }
    if (!strcmp(command, "CAP"))
        cap(c, p, n);
    else if (!strcmp(command, "PASS") || !strcmp(command, "PONG"))
        ; /* no passwords here; any line resets the ping clock */
    else if (!strcmp(command, "NICK"))
        nick(c, p, n);
    else if (!strcmp(command, "USER"))
        user(c, p);
    else if (!strcmp(command, "PING")) {
        const char *params[] = { server_name, p[0] };
        send_to(c, server_name, "PONG", params, 2, 1);
    } else if (!strcmp(command, "QUIT"))
        quit(c, p, n);
    else if (!strcmp(command, "PRIVMSG") || !strcmp(command, "NOTICE"))
        message(c, command, p, n);
    else if (!strcmp(command, "JOIN"))
        join(c, p);
    else if (!strcmp(command, "PART"))
        part(c, p, n);
    else if (!strcmp(command, "NAMES"))
        names(c, p, n);
    else if (!strcmp(command, "LIST"))
        list(c, p, n);
    else if (!strcmp(command, "TOPIC"))
        topic(c, p, n);
    else if (!strcmp(command, "WHO"))
        who(c, p, n);
    else if (!strcmp(command, "WHOIS"))
        whois(c, p, n);
    else if (!strcmp(command, "MODE")) {
        if (p[0][0] == '#')
            channel_mode(c, p, n);
        else
            user_mode(c, p, n);
    } else if (!strcmp(command, "MOTD"))
        reply(c, "422", "MOTD File is missing", NULL);
    else if (!strcmp(command, "LUSERS"))
        lusers(c);
    else
        reply(c, "421", m.command, "Unknown command", NULL);
}

/* CAP (IRCv3 capability negotiation), which irssi and weechat send first:
 * we offer no capability, and say so, so that they go on. */
static void cap(struct client *c, char **p, int n)
{
    char sub[8] = "";
    if (strlen(p[0]) < sizeof sub)
        for (size_t k = 0; k <= strlen(p[0]); k++)
            sub[k] = (p[0][k] >= 'a' && p[0][k] <= 'z') ? p[0][k] - 32 : p[0][k];
    if (!strcmp(sub, "LS"))
        reply(c, "CAP", "LS", "", NULL);
    else if (!strcmp(sub, "LIST"))
        reply(c, "CAP", "LIST", "", NULL);
    else if (!strcmp(sub, "REQ"))
        reply(c, "CAP", "NAK", n > 1 ? p[1] : "", NULL);
    else if (strcmp(sub, "END") != 0)
        reply(c, "410", p[0], "Invalid CAP command", NULL);
}

/* NICK: choose a nickname, or change it once registered. */
static void nick(struct client *c, char **p, int n)
{
    if (n < 1 || p[0][0] == '\0') {
        reply(c, "431", "No nickname given", NULL);
        return;
    }
    const char *new = p[0];
    if (!irc_valid_nick(new, NICKLEN)) {
        reply(c, "432", new, "Erroneous nickname", NULL);
        return;
    }
    /* Unique whatever the case: alice, Alice and ALICE are one nick. */
    struct client *owner = find_nick(new);
    if (owner != NULL && owner != c) {
        reply(c, "433", new, "Nickname is already in use", NULL);
        return;
    }
    if (strcmp(c->nick, new) == 0)
        return;
    char old_prefix[ADDR_TEXT * 2];
    prefix_of(c, old_prefix);
    char old[NICKLEN + 1];
    strcpy(old, c->nick);
    strcpy(c->nick, new); /* valid_nick: at most NICKLEN bytes */
    if (!c->registered) {
        try_register(c);
        return;
    }
    /* The user and everyone who shares a channel with them see it. */
    const char *params[] = { new };
    char line[MAX_LINE + 1];
    size_t len = irc_format(line, old_prefix, "NICK", params, 1, 0);
    say("%s %s is now known as %s", c->peer, old[0] ? old : "*", new);
    size_t count;
    struct client **them = peers(c, &count);
    for (size_t k = 0; k < count; k++)
        client_send(them[k], line, len);
    free(them);
    client_send(c, line, len);
}

/* USER <user> <mode> <unused> :<realname> (RFC 2812 §3.1.3). */
static void user(struct client *c, char **p)
{
    if (c->registered) {
        reply(c, "462", "You may not reregister", NULL);
        return;
    }
    /* The user name goes into every prefix: keep it short and plain. */
    size_t k = 0;
    for (const char *s = p[0]; *s && k < USERLEN; s++) {
        if (*s > ' ' && *s < 127 && *s != '!' && *s != '@' && *s != ':')
            c->user[k++] = *s;
    }
    c->user[k] = '\0';
    if (k == 0)
        strcpy(c->user, "user");
    snprintf(c->realname, sizeof c->realname, "%s", p[3]);
    try_register(c);
}

/* Once NICK and USER are both in, in either order: the welcome burst. */
static void try_register(struct client *c)
{
    if (c->nick[0] == '\0' || c->user[0] == '\0')
        return;
    c->registered = 1;
    c->signon = (unsigned long long)time(NULL);
    c->last_message = now_ns();
    char prefix[ADDR_TEXT * 2], text[LINE_TEXT];
    prefix_of(c, prefix);
    say("%s registered as %s", c->peer, c->nick);
    snprintf(text, sizeof text, "Welcome to the socket-labs Network, %s", prefix);
    reply(c, "001", text, NULL);
    snprintf(text, sizeof text, "Your host is %s, running version %s", server_name, VERSION);
    reply(c, "002", text, NULL);
    snprintf(text, sizeof text, "This server was created %s", created);
    reply(c, "003", text, NULL);
    /* <client> <servername> <version> <user modes> <channel modes>: mode
     * letters, not text, so without the trailing colon of reply(). */
    const char *info[] = { c->nick, server_name, VERSION, "i", "o" };
    send_to(c, server_name, "004", info, 5, 0);
    const char *params[MAX_REPLY];
    int n = 0;
    for (size_t k = 0; k < sizeof isupport / sizeof isupport[0]; k++)
        params[n++] = isupport[k];
    params[n++] = "are supported by this server";
    reply_v(c, "005", params, n);
    reply(c, "422", "MOTD File is missing", NULL);
}

/* QUIT [:message]: answered with ERROR; its channels see the QUIT when the
 * connection is closed, at the end of this turn. */
static void quit(struct client *c, char **p, int n)
{
    const char *why = n > 0 && p[0][0] != '\0' ? p[0] : "Client quit";
    say("%s %s quit: %s", c->peer, c->nick[0] ? c->nick : "*", why);
    char error[LINE_TEXT + 128];
    snprintf(error, sizeof error, "Closing link: %s (%s)", c->host, why);
    const char *params[] = { error };
    send_to(c, NULL, "ERROR", params, 1, 1);
    set_gone(c, why);
}

/* PRIVMSG and NOTICE <target>{,<target>} :<text>, to a nick, a channel or
 * `$*`, every user of this server (RFC 2812 §3.3.1: a server mask). A
 * NOTICE is never answered, not even with an error (§3.3.2): two programs
 * answering each other's notices would loop forever. */
static void message(struct client *c, const char *command, char **p, int n)
{
    int notice = strcmp(command, "NOTICE") == 0;
    if (n < 1 || p[0][0] == '\0') {
        if (!notice)
            reply(c, "411", "No recipient given (PRIVMSG)", NULL);
        return;
    }
    if (n < 2 || p[1][0] == '\0') {
        if (!notice)
            reply(c, "412", "No text to send", NULL);
        return;
    }
    const char *text = p[1];
    c->last_message = now_ns();
    char prefix[ADDR_TEXT * 2];
    prefix_of(c, prefix);
    char *targets = p[0], *target;
    char line[MAX_LINE + 1];
    for (int count = 0; (target = next_item(&targets)) != NULL; count++) {
        if (count == MAX_TARGETS) {
            if (!notice)
                reply(c, "407", target, "Too many targets", NULL);
            break;
        }
        const char *refused = NULL, *numeric = "401";
        if (target[0] == '$') {
            if (irc_mask_matches(target + 1, server_name)) {
                const char *params[] = { target, text };
                size_t len = irc_format(line, prefix, command, params, 2, 1);
                for (size_t i = 0; i < nclients; i++)
                    if (clients[i]->registered && clients[i] != c)
                        client_send(clients[i], line, len);
            } else {
                refused = "No such nick/channel";
            }
        } else if (target[0] == '#') {
            struct channel *ch = find_channel(target);
            if (ch == NULL) {
                refused = "No such nick/channel";
            } else if (member_of(ch, c) == NULL) {
                /* Only members may speak in a channel (mode +n, always). */
                numeric = "404";
                refused = "Cannot send to channel";
            } else {
                const char *params[] = { ch->name, text };
                size_t len = irc_format(line, prefix, command, params, 2, 1);
                for (size_t k = 0; k < ch->nmembers; k++)
                    if (ch->members[k].client != c)
                        client_send(ch->members[k].client, line, len);
            }
        } else {
            struct client *to = find_nick(target);
            if (to != NULL && to->registered) {
                const char *params[] = { to->nick, text };
                size_t len = irc_format(line, prefix, command, params, 2, 1);
                client_send(to, line, len);
            } else {
                refused = "No such nick/channel";
            }
        }
        if (refused != NULL && !notice)
            reply(c, numeric, target, refused, NULL);
    }
}

/* JOIN #a,#b (keys ignored), or JOIN 0 to leave every channel. */
static void join(struct client *c, char **p)
{
    if (strcmp(p[0], "0") == 0) {
        struct channel *joined[MAX_CHANNELS];
        int count = c->nchannels;
        memcpy(joined, c->channels, sizeof joined);
        for (int k = 0; k < count; k++)
            leave(c, joined[k], NULL);
        return;
    }
    char *names = p[0], *name;
    while ((name = next_item(&names)) != NULL) {
        if (!irc_valid_channel(name, CHANNELLEN)) {
            reply(c, "403", name, "No such channel", NULL);
            continue;
        }
        struct channel *ch = find_channel(name);
        int already = 0;
        for (int k = 0; k < c->nchannels; k++)
            already |= ch != NULL && c->channels[k] == ch;
        if (already)
            continue;
        if (c->nchannels >= MAX_CHANNELS) {
            reply(c, "405", name, "You have joined too many channels", NULL);
            continue;
        }
        if (ch == NULL) {
            ch = calloc(1, sizeof *ch);
            if (ch == NULL)
                continue; /* out of memory: as if the JOIN had not come */
            strcpy(ch->name, name); /* valid_channel: at most CHANNELLEN bytes */
            irc_fold(ch->key, name, sizeof ch->key);
            ch->created = (unsigned long long)time(NULL);
            ch->next = channels;
            channels = ch;
            nchannels++;
        }
        if (ch->nmembers == ch->cap) {
            size_t cap = ch->cap ? 2 * ch->cap : 4;
            struct member *bigger = realloc(ch->members, cap * sizeof *bigger);
            if (bigger == NULL) {
                if (ch->nmembers == 0)
                    drop_channel(ch);
                continue;
            }
            ch->members = bigger;
            ch->cap = cap;
        }
        c->channels[c->nchannels++] = ch;
        /* Whoever creates the channel is its operator. */
        ch->members[ch->nmembers].client = c;
        ch->members[ch->nmembers].operator = ch->nmembers == 0;
        ch->nmembers++;
        char prefix[ADDR_TEXT * 2], line[MAX_LINE + 1];
        const char *params[] = { ch->name };
        size_t len = irc_format(line, prefix_of(c, prefix), "JOIN", params, 1, 0);
        for (size_t k = 0; k < ch->nmembers; k++)
            client_send(ch->members[k].client, line, len);
        say("%s %s joined %s", c->peer, c->nick, ch->name);
        if (ch->has_topic)
            reply_topic(c, ch);
        names_of(c, ch);
        reply(c, "366", ch->name, "End of /NAMES list", NULL);
    }
}

/* PART #a,#b [:reason] */
static void part(struct client *c, char **p, int n)
{
    char *names = p[0], *name;
    while ((name = next_item(&names)) != NULL) {
        struct channel *ch = find_channel(name);
        if (ch == NULL)
            reply(c, "403", name, "No such channel", NULL);
        else if (member_of(ch, c) == NULL)
            reply(c, "442", name, "You're not on that channel", NULL);
        else
            leave(c, ch, n > 1 ? p[1] : NULL);
    }
}

/* Tells the channel (the leaver included) that c leaves it, then forgets
 * the membership; the last member out removes the channel. */
static void leave(struct client *c, struct channel *ch, const char *why)
{
    int k = 0;
    for (int j = 0; j < c->nchannels; j++)
        if (c->channels[j] != ch)
            c->channels[k++] = c->channels[j];
    c->nchannels = k;
    char prefix[ADDR_TEXT * 2], line[MAX_LINE + 1];
    const char *params[] = { ch->name, why };
    size_t len = irc_format(line, prefix_of(c, prefix), "PART", params, why ? 2 : 1,
                            why != NULL);
    for (size_t j = 0; j < ch->nmembers; j++)
        client_send(ch->members[j].client, line, len);
    remove_member(ch, c);
    say("%s %s left %s", c->peer, c->nick, ch->name);
    if (ch->nmembers == 0)
        drop_channel(ch);
}

/* 353 RPL_NAMREPLY lines for the channel. */
static void names_of(struct client *c, struct channel *ch)
{
    char (*items)[CHANNELLEN + 2] = malloc((ch->nmembers ? ch->nmembers : 1) * sizeof *items);
    if (items == NULL)
        return;
    for (size_t k = 0; k < ch->nmembers; k++)
        snprintf(items[k], sizeof items[k], "%s%s", ch->members[k].operator ? "@" : "",
                 ch->members[k].client->nick);
    /* "=" a public channel (RFC 2812 §5.1, RPL_NAMREPLY). */
    const char *params[] = { "=", ch->name };
    reply_list(c, "353", params, 2, (const char (*)[CHANNELLEN + 2])items, ch->nmembers);
    free(items);
}

/* NAMES [#a,#b]: who is on these channels (all of them without a
 * parameter). An unknown channel gets only its 366. */
static void names(struct client *c, char **p, int n)
{
    if (n == 0) {
        struct channel **sorted = sorted_channels();
        for (size_t k = 0; sorted != NULL && k < nchannels; k++)
            names_of(c, sorted[k]);
        free(sorted);
        reply(c, "366", "*", "End of /NAMES list", NULL);
        return;
    }
    char *list = p[0], *name;
    while ((name = next_item(&list)) != NULL) {
        struct channel *ch = find_channel(name);
        if (ch != NULL)
            names_of(c, ch);
        reply(c, "366", name, "End of /NAMES list", NULL);
    }
}

/* LIST [#a,#b]: 322 per channel, then 323. The optional 321 is not sent. */
static void list(struct client *c, char **p, int n)
{
    char count[24];
    if (n == 0) {
        struct channel **sorted = sorted_channels();
        for (size_t k = 0; sorted != NULL && k < nchannels; k++) {
            snprintf(count, sizeof count, "%zu", sorted[k]->nmembers);
            reply(c, "322", sorted[k]->name, count,
                  sorted[k]->has_topic ? sorted[k]->topic.text : "", NULL);
        }
        free(sorted);
    } else {
        char *names = p[0], *name;
        while ((name = next_item(&names)) != NULL) {
            struct channel *ch = find_channel(name);
            if (ch == NULL)
                continue;
            snprintf(count, sizeof count, "%zu", ch->nmembers);
            reply(c, "322", ch->name, count, ch->has_topic ? ch->topic.text : "", NULL);
        }
    }
    reply(c, "323", "End of /LIST", NULL);
}

/* TOPIC #chan [:text]. Anyone on the channel may set the topic: this
 * server has no mode +t (topic reserved to operators). */
static void topic(struct client *c, char **p, int n)
{
    struct channel *ch = find_channel(p[0]);
    if (ch == NULL) {
        reply(c, "403", p[0], "No such channel", NULL);
        return;
    }
    if (n < 2) {
        if (ch->has_topic)
            reply_topic(c, ch);
        else
            reply(c, "331", ch->name, "No topic is set", NULL);
        return;
    }
    if (member_of(ch, c) == NULL) {
        reply(c, "442", ch->name, "You're not on that channel", NULL);
        return;
    }
    size_t len = strlen(p[1]);
    if (len > TOPICLEN)
        p[1][len = TOPICLEN] = '\0';
    ch->has_topic = len > 0;
    if (ch->has_topic) {
        memcpy(ch->topic.text, p[1], len + 1);
        strcpy(ch->topic.by, c->nick);
        ch->topic.at = (unsigned long long)time(NULL);
    }
    char prefix[ADDR_TEXT * 2], line[MAX_LINE + 1];
    const char *params[] = { ch->name, p[1] };
    size_t line_len = irc_format(line, prefix_of(c, prefix), "TOPIC", params, 2, 1);
    for (size_t k = 0; k < ch->nmembers; k++)
        client_send(ch->members[k].client, line, line_len);
}

/* One 352 RPL_WHOREPLY: <channel> <user> <host> <server> <nick> <flags>
 * :<hopcount> <realname> */
static void who_row(struct client *c, const struct client *u, const char *channel, int op)
{
    char last[LINE_TEXT + 2];
    snprintf(last, sizeof last, "0 %s", u->realname);
    reply(c, "352", channel, u->user, u->host, server_name, u->nick, op ? "H@" : "H", last,
          NULL);
}

/* WHO [mask]: one 352 per user matching (a channel's members for `#chan`;
 * `*` or nothing for everyone), then 315 repeating the mask. */
static void who(struct client *c, char **p, int n)
{
    const char *mask = n > 0 ? p[0] : "*";
    if (mask[0] == '#') {
        struct channel *ch = find_channel(mask);
        for (size_t k = 0; ch != NULL && k < ch->nmembers; k++)
            who_row(c, ch->members[k].client, ch->name, ch->members[k].operator);
    } else {
        for (size_t i = 0; i < nclients; i++) {
            const struct client *u = clients[i];
            if (!u->registered)
                continue;
            if (strcmp(mask, "0") == 0 || irc_mask_matches(mask, u->nick) ||
                irc_mask_matches(mask, u->host) || irc_mask_matches(mask, u->realname))
                who_row(c, u, "*", 0);
        }
    }
    reply(c, "315", mask, "End of WHO list", NULL);
}

/* WHOIS [server] nick: who they are, where from (address and port), on
 * which channels, idle how long; always ended by 318. */
static void whois(struct client *c, char **p, int n)
{
    if (n == 0 || p[n - 1][0] == '\0') {
        reply(c, "431", "No nickname given", NULL);
        return;
    }
    const char *nick = p[n - 1];
    struct client *u = find_nick(nick);
    if (u == NULL || !u->registered) {
        reply(c, "401", nick, "No such nick/channel", NULL);
        reply(c, "318", nick, "End of /WHOIS list", NULL);
        return;
    }
    char items[MAX_CHANNELS][CHANNELLEN + 2];
    for (int k = 0; k < u->nchannels; k++) {
        struct member *m = member_of(u->channels[k], u);
        snprintf(items[k], sizeof items[k], "%s%s", m && m->operator ? "@" : "",
                 u->channels[k]->name);
    }
    char idle[24], signon[24];
    snprintf(idle, sizeof idle, "%lld", (now_ns() - u->last_message) / 1000000000LL);
    snprintf(signon, sizeof signon, "%llu", u->signon);
    reply(c, "311", u->nick, u->user, u->host, "*", u->realname, NULL);
    reply(c, "312", u->nick, server_name, "socket-labs chat server, lab 07", NULL);
    if (u->nchannels > 0) {
        const char *params[] = { u->nick };
        reply_list(c, "319", params, 1, (const char (*)[CHANNELLEN + 2])items,
                   (size_t)u->nchannels);
    }
    /* 338 RPL_WHOISACTUALLY: the address and port the user connects from. */
    reply(c, "338", u->nick, u->peer, "is actually using this address and port", NULL);
    reply(c, "317", u->nick, idle, signon, "seconds idle, signon time", NULL);
    reply(c, "318", u->nick, "End of /WHOIS list", NULL);
}

/* MODE, the little of it that clients ask on their own: a user's modes (+i
 * only, kept but without effect), a channel's (none but operator status,
 * +o/-o given by an operator), and the ban list (always empty) that irssi
 * asks for on joining. */
static void user_mode(struct client *c, char **p, int n)
{
    if (irc_casecmp(p[0], c->nick) != 0) {
        if (find_nick(p[0]) != NULL)
            reply(c, "502", "Can't change mode for other users", NULL);
        else
            reply(c, "401", p[0], "No such nick/channel", NULL);
        return;
    }
    if (n < 2) {
        reply(c, "221", c->invisible ? "+i" : "+", NULL);
        return;
    }
    int before = c->invisible, adding = 1, unknown = 0;
    for (const char *s = p[1]; *s; s++) {
        if (*s == '+')
            adding = 1;
        else if (*s == '-')
            adding = 0;
        else if (*s == 'i')
            c->invisible = adding;
        else
            unknown = 1;
    }
    if (c->invisible != before) {
        const char *params[] = { c->nick, c->invisible ? "+i" : "-i" };
        send_to(c, c->nick, "MODE", params, 2, 0);
    }
    if (unknown)
        reply(c, "501", "Unknown MODE flag", NULL);
}

static void channel_mode(struct client *c, char **p, int n)
{
    struct channel *ch = find_channel(p[0]);
    if (ch == NULL) {
        reply(c, "403", p[0], "No such channel", NULL);
        return;
    }
    if (n < 2) {
        char when[24];
        snprintf(when, sizeof when, "%llu", ch->created);
        reply(c, "324", ch->name, "+", NULL);
        reply(c, "329", ch->name, when, NULL);
        return;
    }
    const char *changes = p[1];
    const char *plain = changes + strspn(changes, "+");
    if (n == 2 && strcmp(plain, "b") == 0) {
        reply(c, "368", ch->name, "End of channel ban list", NULL);
        return;
    }
    struct member *me = member_of(ch, c);
    if (me == NULL || !me->operator) {
        reply(c, "482", ch->name, "You're not channel operator", NULL);
        return;
    }
    char prefix[ADDR_TEXT * 2];
    prefix_of(c, prefix);
    int next_arg = 2, adding = 1;
    for (const char *s = changes; *s; s++) {
        if (*s == '+') {
            adding = 1;
        } else if (*s == '-') {
            adding = 0;
        } else if (*s == 'o') {
            if (next_arg >= n) {
                reply(c, "461", "MODE", "Not enough parameters", NULL);
                return;
            }
            const char *nick = p[next_arg++];
            struct client *target = find_nick(nick);
            struct member *m = target ? member_of(ch, target) : NULL;
            if (m == NULL) {
                reply(c, "441", nick, ch->name, "They aren't on that channel", NULL);
                continue;
            }
            m->operator = adding;
            char line[MAX_LINE + 1];
            const char *params[] = { ch->name, adding ? "+o" : "-o", nick };
            size_t len = irc_format(line, prefix, "MODE", params, 3, 0);
            for (size_t k = 0; k < ch->nmembers; k++)
                client_send(ch->members[k].client, line, len);
        } else {
            char mode[2] = { *s, '\0' };
            reply(c, "472", mode, "is unknown mode char to me", NULL);
        }
    }
}

/* LUSERS: how many users, unregistered connections and channels. */
static void lusers(struct client *c)
{
    size_t users = 0;
    for (size_t i = 0; i < nclients; i++)
        users += clients[i]->registered != 0;
    char text[80], number[24];
    snprintf(text, sizeof text, "There are %zu users and 0 invisible on 1 servers", users);
    reply(c, "251", text, NULL);
    if (nclients > users) {
        snprintf(number, sizeof number, "%zu", nclients - users);
        reply(c, "253", number, "unknown connection(s)", NULL);
    }
    snprintf(number, sizeof number, "%zu", nchannels);
    reply(c, "254", number, "channels formed", NULL);
    snprintf(text, sizeof text, "I have %zu clients and 0 servers", users);
    reply(c, "255", text, NULL);
}

/* ---- replies and queues ------------------------------------------------------ */

/* Queues `:server NUMERIC <client> params...` for c: the first parameter is
 * the client's nick (`*` before it has one), the last one trailing. The
 * parameters end with NULL. */
static void reply(struct client *c, const char *numeric, ...)
{
    const char *params[MAX_REPLY];
    int n = 0;
    va_list ap;
    va_start(ap, numeric);
    const char *param;
    while ((param = va_arg(ap, const char *)) != NULL && n < MAX_REPLY)
        params[n++] = param;
    va_end(ap);
    reply_v(c, numeric, params, n);
}

static void reply_v(struct client *c, const char *numeric, const char **params, int n)
{
    const char *all[MAX_REPLY + 1];
    all[0] = c->nick[0] ? c->nick : "*";
    for (int k = 0; k < n && k < MAX_REPLY; k++)
        all[k + 1] = params[k];
    send_to(c, server_name, numeric, all, n + 1, 1);
}

/* A reply whose last parameter is a list (353 names, 319 channels), spread
 * over as many lines as it takes to keep each within 512 bytes. */
static void reply_list(struct client *c, const char *numeric, const char **params, int n,
                       const char (*items)[CHANNELLEN + 2], size_t nitems)
{
    const char *all[MAX_REPLY + 2];
    all[0] = c->nick[0] ? c->nick : "*";
    for (int k = 0; k < n; k++)
        all[k + 1] = params[k];
    all[n + 1] = "";
    char line[MAX_LINE + 1];
    size_t empty = irc_format(line, server_name, numeric, all, n + 2, 1);
    size_t room = empty < MAX_LINE ? MAX_LINE - empty : 0;
    char text[MAX_LINE + CHANNELLEN + 4] = "";
    size_t len = 0;
    for (size_t k = 0; k < nitems; k++) {
        size_t item = strlen(items[k]);
        if (len > 0 && len + 1 + item > room) {
            all[n + 1] = text;
            send_to(c, server_name, numeric, all, n + 2, 1);
            len = 0;
        }
        if (len > 0)
            text[len++] = ' ';
        memcpy(text + len, items[k], item + 1);
        len += item;
    }
    if (len > 0) {
        all[n + 1] = text;
        send_to(c, server_name, numeric, all, n + 2, 1);
    }
}

/* 332 RPL_TOPIC and 333 RPL_TOPICWHOTIME: the topic, who set it and when. */
static void reply_topic(struct client *c, struct channel *ch)
{
    char at[24];
    snprintf(at, sizeof at, "%llu", ch->topic.at);
    reply(c, "332", ch->name, ch->topic.text, NULL);
    reply(c, "333", ch->name, ch->topic.by, at, NULL);
}

/* Formats one line and queues it for c. */
static void send_to(struct client *c, const char *prefix, const char *command,
                    const char **params, int n, int trailing)
{
    char line[MAX_LINE + 1];
    size_t len = irc_format(line, prefix, command, params, n, trailing);
    client_send(c, line, len);
}

/* Queues line for c. A client whose queue would pass MAX_QUEUED even after
 * the socket took what it could is marked gone. */
static void client_send(struct client *c, const char *line, size_t len)
{
    if (c->gone)
        return;
    if (c->out_len + len > MAX_QUEUED) {
        client_flush(c);
        if (c->gone)
            return;
        if (c->out_len + len > MAX_QUEUED) {
            say("%s too slow: %zu KiB waiting to be sent, dropped", c->peer, c->out_len / 1024);
            free(c->out);
            c->out = NULL;
            c->out_len = c->out_cap = 0;
            set_gone(c, "Too slow: output queue full");
            return;
        }
    }
    if (c->out_len + len > c->out_cap) {
        /* Grows by doubling, never past MAX_QUEUED (checked above). */
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + len)
            cap *= 2;
        if (cap > MAX_QUEUED)
            cap = MAX_QUEUED;
        char *bigger = realloc(c->out, cap);
        if (bigger == NULL) {
            set_gone(c, strerror(ENOMEM));
            return;
        }
        c->out = bigger;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, line, len);
    c->out_len += len;
}

/* Writes what is queued, as much as the socket takes now. The socket is
 * non-blocking: EAGAIN means "full, try when poll says POLLOUT". */
static void client_flush(struct client *c)
{
    while (c->out_len > 0) {
        ssize_t n = write(c->fd, c->out, c->out_len);
        if (n > 0) {
            memmove(c->out, c->out + n, c->out_len - (size_t)n);
            c->out_len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        /* EPIPE or ECONNRESET: the client left. */
        int err = errno;
        fprintf(stderr, "write %s: %s\n", c->peer, strerror(err));
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_cap = 0;
        if (!c->gone)
            set_gone(c, strerror(err));
        break;
    }
}

static void set_gone(struct client *c, const char *why)
{
    c->gone = 1;
    snprintf(c->gone_why, sizeof c->gone_why, "%s", why);
}

/* `nick!user@host`, the prefix of what c says. */
static const char *prefix_of(const struct client *c, char *out)
{
    snprintf(out, ADDR_TEXT * 2, "%s!%s@%s", c->nick[0] ? c->nick : "*",
             c->user[0] ? c->user : "*", c->host);
    return out;
}

static int by_id(const void *a, const void *b)
{
    unsigned long long x = (*(struct client *const *)a)->id;
    unsigned long long y = (*(struct client *const *)b)->id;
    return x < y ? -1 : x > y;
}

/* The clients who share a channel with c, each once, in the order they
 * connected (malloc'd; free it). */
static struct client **peers(const struct client *c, size_t *count)
{
    size_t total = 0;
    for (int k = 0; k < c->nchannels; k++)
        total += c->channels[k]->nmembers;
    *count = 0;
    struct client **them = malloc((total ? total : 1) * sizeof *them);
    if (them == NULL)
        return NULL;
    for (int k = 0; k < c->nchannels; k++)
        for (size_t j = 0; j < c->channels[k]->nmembers; j++)
            if (c->channels[k]->members[j].client != c)
                them[(*count)++] = c->channels[k]->members[j].client;
    qsort(them, *count, sizeof *them, by_id);
    size_t unique = 0;
    for (size_t k = 0; k < *count; k++)
        if (unique == 0 || them[unique - 1] != them[k])
            them[unique++] = them[k];
    *count = unique;
    return them;
}

/* The client that holds this nick, whatever its case, or NULL. */
static struct client *find_nick(const char *nick)
{
    for (size_t i = 0; i < nclients; i++)
        if (clients[i]->nick[0] && irc_casecmp(clients[i]->nick, nick) == 0)
            return clients[i];
    return NULL;
}

static struct channel *find_channel(const char *name)
{
    for (struct channel *ch = channels; ch != NULL; ch = ch->next)
        if (irc_casecmp(ch->key, name) == 0)
            return ch;
    return NULL;
}

static int by_key(const void *a, const void *b)
{
    return strcmp((*(struct channel *const *)a)->key, (*(struct channel *const *)b)->key);
}

/* Every channel, sorted by folded name: NAMES and LIST show them so
 * (malloc'd, NULL when there is none or no memory). */
static struct channel **sorted_channels(void)
{
    struct channel **sorted = nchannels ? malloc(nchannels * sizeof *sorted) : NULL;
    if (sorted == NULL)
        return NULL;
    size_t k = 0;
    for (struct channel *ch = channels; ch != NULL; ch = ch->next)
        sorted[k++] = ch;
    qsort(sorted, nchannels, sizeof *sorted, by_key);
    return sorted;
}

static struct member *member_of(struct channel *ch, const struct client *c)
{
    for (size_t k = 0; k < ch->nmembers; k++)
        if (ch->members[k].client == c)
            return &ch->members[k];
    return NULL;
}

static void remove_member(struct channel *ch, const struct client *c)
{
    size_t k = 0;
    for (size_t j = 0; j < ch->nmembers; j++)
        if (ch->members[j].client != c)
            ch->members[k++] = ch->members[j];
    ch->nmembers = k;
}

/* Unlinks and frees a channel (its last member has left). */
static void drop_channel(struct channel *ch)
{
    for (struct channel **link = &channels; *link != NULL; link = &(*link)->next) {
        if (*link == ch) {
            *link = ch->next;
            nchannels--;
            break;
        }
    }
    free(ch->members);
    free(ch);
}

/* The next non-empty item of a comma-separated list, cut out of it in
 * place, or NULL at the end. */
static char *next_item(char **list)
{
    while (**list == ',')
        (*list)++;
    if (**list == '\0')
        return NULL;
    char *item = *list;
    char *comma = strchr(item, ',');
    if (comma != NULL) {
        *comma = '\0';
        *list = comma + 1;
    } else {
        *list = item + strlen(item);
    }
    return item;
}

/* ---- what every lab has --------------------------------------------------------- */

/* A log line on stdout (flushed: stdout is line-buffered). */
static void say(const char *fmt, ...)
{
    char text[2 * LINE_TEXT + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    puts(text);
}

/* Nanoseconds on a clock that never jumps (clock_gettime(2), CLOCK_MONOTONIC). */
static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
/* Opens the spare descriptor (on /dev/null) and checks that one more is
 * left for a client: dup(2) takes the lowest free descriptor, as accept(2)
 * will. If not, says so and exits 1: a server that could accept nobody
 * would close every connection for ever. */
static int reserve_spare(unsigned long long limit)
{
    int spare = open("/dev/null", O_RDONLY);
    if (spare < 0 && errno != EMFILE)
        die("open", "/dev/null");
    int probe = spare < 0 ? -1 : dup(spare);
    if (probe < 0) {
        if (errno != EMFILE)
            die("dup", "/dev/null");
        fprintf(stderr, "descriptor limit %llu (RLIMIT_NOFILE) leaves no room for a client\n",
                limit);
        exit(1);
    }
    close(probe);
    return spare;
}

/* After accept(2) on the (non-blocking) listener failed with EMFILE or
 * ENFILE: close the spare, accept the first waiting connection and close it
 * at once, open the spare again. Returns 0 when nobody was waiting (EMFILE
 * comes even with an empty backlog). If nothing can be opened even with the
 * spare closed, the whole system is out of files: say so and exit. */
static int refuse_one(int listener, int *spare, const char *local)
{
    int refused = 1;
    close(*spare);
    int fd = accept4(listener, NULL, NULL, 0);
    if (fd >= 0)
        close(fd);
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        refused = 0; /* nobody waits */
    else if (errno != ECONNABORTED && errno != EINTR)
        die("accept", local);
    *spare = open("/dev/null", O_RDONLY);
    if (*spare < 0)
        die("open", "/dev/null");
    return refused;
}

static _Noreturn void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
    exit(1);
}

/* ADDR as every lab prints it: 127.0.0.1:4242, [::1]:4242 (inet_ntop(3)). */
static const char *addr_text(const struct sockaddr_storage *ss, char *out)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        if (in6->sin6_scope_id != 0)
            snprintf(out, ADDR_TEXT, "[%s%%%u]:%u", ip, (unsigned)in6->sin6_scope_id,
                     ntohs(in6->sin6_port));
        else
            snprintf(out, ADDR_TEXT, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
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

static unsigned long take_port(void)
{
    if (nargs == 0)
        return DEFAULT_PORT;
    const char *text = args[0];
    if (strlen(text) > 1 && text[0] == '-')
        usage_error("unknown option '%s'", text);
    take(0);
    unsigned long port;
    const char *why;
    if (parse_number(text, 65535, &port, &why) < 0)
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

/* A decimal number from 0 to max, read as Rust's str::parse reads one: an
 * optional '+', then digits only. On error *why says why, in Rust's words. */
static int parse_number(const char *text, unsigned long max, unsigned long *value,
                        const char **why)
{
    const char *p = text;
    unsigned long n = 0;
    if (*p == '\0') {
        *why = "cannot parse integer from empty string";
        return -1;
    }
    if (p[0] == '+' && p[1] != '\0')
        p++;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            *why = "invalid digit found in string";
            return -1;
        }
        unsigned long digit = (unsigned long)(*p - '0');
        if (n > (max - digit) / 10) {
            *why = "number too large to fit in target type";
            return -1;
        }
        n = n * 10 + digit;
    }
    *value = n;
    return 0;
}

/* An IPv4 or IPv6 literal into a socket address, its port still 0
 * (inet_pton(3)); returns the address's length, or exits 2 if TEXT is no
 * address. */
static socklen_t parse_ip(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return sizeof *in;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return sizeof *in6;
    }
    usage_error("invalid ADDR '%s': invalid IP address syntax", text);
}

/* The port, in network byte order (htons(3)), where the family keeps it. */
static void set_port(struct sockaddr_storage *ss, unsigned long port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}
