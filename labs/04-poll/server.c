/*
 * Lab 04: one process serving thousands of clients with poll(2), in C (the
 * twin of server.rs).
 *
 * socket(SOCK_NONBLOCK) -> setsockopt(SO_REUSEADDR) -> bind -> listen ->
 * loop { poll(listener and every client) -> read from the readable, write to
 * the writable -> accept4 the new ones until EAGAIN }. Unlike select(2),
 * poll(2) takes an array of any length: no FD_SETSIZE.
 *
 * Build: make c (or: cc -Wall -Wextra -O2 -o server-c server.c)
 * Run:   ./server-c [PORT] [--bind ADDR]
 *
 * Same arguments, messages and system calls as ./server (server.rs):
 * `make trace LAB=04-poll` shows the two side by side.
 */

#define _GNU_SOURCE /* accept4(2) */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define SYNOPSIS "usage: server [PORT] [--bind ADDR]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 04: echo server, one process, poll(). Serves thousands of clients at\n"
    "once: it raises its descriptor limit (RLIMIT_NOFILE) to the hard limit.\n"
    "\n"
    "  PORT         port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --help       print this help\n";

#define DEFAULT_PORT 4242
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* While more than this waits to be sent to a client, the server stops
 * reading from it: a client that sends without reading cannot make the
 * server's memory grow, and it delays nobody else. */
#define MAX_PENDING (64 * 1024)

struct client {
    int fd;
    char peer[ADDR_TEXT];
    /* Echo not yet accepted by write(2): at most MAX_PENDING + one read.
     * len bytes used of cap allocated. */
    char *pending;
    size_t len, cap;
    /* The client has shut down its side: send what is pending, then close. */
    int eof;
};

/* The clients, and the pollfd array beside them: [0] is the listener,
 * [i + 1] is clients[i]. Both grow as clients come (at most one per
 * descriptor). */
static struct client *clients;
static size_t nclients, clients_cap;
static struct pollfd *fds;
static size_t fds_cap;

static int serve(struct client *c, short revents, char *buf, size_t size);
static void add_client(int fd, const char *peer);
static void *grow(void *array, size_t *cap, size_t want, size_t size);
static _Noreturn void die(const char *call, const char *what);
static int reserve_spare(unsigned long long limit);
static int refuse_one(int listener, int *spare, const char *local);
static const char *addr_text(const struct sockaddr_storage *ss, char *out);
static void read_args(int argc, char **argv);
static const char *take_value(const char *name, const char *what);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
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
    set_port(&addr, take_port());
    finish_args();

    char addr_str[ADDR_TEXT];
    addr_text(&addr, addr_str);

    /* A write(2) to a connection the client has reset raises SIGPIPE, whose
     * default action kills the whole server, every client with it
     * (signal(7)). Ignored, write(2) fails with EPIPE instead; Rust's
     * runtime does this before main. */
    signal(SIGPIPE, SIG_IGN);

    /* Every client costs a descriptor. The soft limit (often 1024) is ours
     * to raise up to the hard limit set by the administrator (getrlimit(2)). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit", "RLIMIT_NOFILE");
    rlim_t limit = rl.rlim_max;
    rlim_t soft = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "setrlimit RLIMIT_NOFILE: %s\n", strerror(errno));
        limit = soft;
    }

    /* Non-blocking: we accept until EAGAIN, never waiting in accept(2).
     * Protocol 0: the default for a stream socket, TCP (socket(2)). */
    int listener = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (listener < 0)
        die("socket", addr_str);
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt", addr_str);
    if (bind(listener, (struct sockaddr *)&addr, addrlen) < 0)
        die("bind", addr_str);
    /* A burst of thousands of connects overflows a small backlog (listen(2)). */
    if (listen(listener, SOMAXCONN) < 0)
        die("listen", addr_str);
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(listener, (struct sockaddr *)&local, &len) < 0)
        die("getsockname", addr_str);
    char local_str[ADDR_TEXT];
    addr_text(&local, local_str);
    /* A descriptor in reserve for when accept(2) fails with EMFILE: without
     * it the connection stays in the backlog, poll(2) reports the listener
     * readable again at once, and we spin at 100% CPU. If the limit leaves
     * no room for it and one client, we say so and exit. */
    int spare = reserve_spare((unsigned long long)limit);
    printf("listening on %s\n", local_str);
    printf("descriptor limit %llu (RLIMIT_NOFILE)\n", (unsigned long long)limit);
    int out_of_descriptors = 0;

    static char buf[16 * 1024];
    for (;;) {
        /* poll(2) reads one pollfd per descriptor: [0] is the listener,
         * [i + 1] is clients[i]. The array is filled afresh each turn, as
         * the Rust server builds it. */
        fds = grow(fds, &fds_cap, nclients + 1, sizeof *fds);
        fds[0].fd = listener;
        fds[0].events = POLLIN;
        for (size_t i = 0; i < nclients; i++) {
            struct client *c = &clients[i];
            short events = 0;
            if (!c->eof && c->len < MAX_PENDING)
                events |= POLLIN;
            if (c->len > 0)
                events |= POLLOUT;
            fds[i + 1].fd = c->fd;
            fds[i + 1].events = events;
        }
        if (poll(fds, nclients + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", local_str);
        }

        /* From the last client to the first: removing clients[i] moves the
         * last client into slot i, and that one has been handled already. */
        for (size_t i = nclients; i-- > 0;) {
            if (!serve(&clients[i], fds[i + 1].revents, buf, sizeof buf)) {
                struct client *c = &clients[i];
                printf("%s disconnected\n", c->peer);
                if (close(c->fd) < 0)
                    fprintf(stderr, "close %s: %s\n", c->peer, strerror(errno));
                free(c->pending);
                clients[i] = clients[--nclients];
            }
        }

        if (fds[0].revents & POLLIN) {
            /* Take every connection waiting in the backlog, not only one:
             * at thousands of clients, one accept per turn falls behind.
             * accept4(2) makes the connection non-blocking in the same call;
             * NULL, NULL: getpeername(2) below asks for its address, as the
             * Rust server does. */
            for (;;) {
                int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        break;
                    if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                    if (errno == EMFILE || errno == ENFILE) {
                        if (!out_of_descriptors) {
                            fprintf(stderr,
                                    "accept %s: %s; closing new connections until one frees\n",
                                    local_str, strerror(errno));
                            out_of_descriptors = 1;
                        }
                        /* Close the spare, accept and close the waiting
                         * connection, take the spare back: until nobody waits. */
                        if (!refuse_one(listener, &spare, local_str))
                            break;
                        continue;
                    }
                    die("accept", local_str);
                }
                out_of_descriptors = 0;
                struct sockaddr_storage peer;
                len = sizeof peer;
                if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0) {
                    /* ENOTCONN: the client reset before we looked. */
                    fprintf(stderr, "getpeername %s: %s\n", local_str, strerror(errno));
                    close(fd);
                    continue;
                }
                char peer_str[ADDR_TEXT];
                printf("connection from %s\n", addr_text(&peer, peer_str));
                add_client(fd, peer_str);
            }
        }
    }
}

/* Handles what poll(2) reported for one client. Returns 0 when the client
 * is gone and must be removed. */
static int serve(struct client *c, short revents, char *buf, size_t size)
{
    /* POLLHUP and POLLERR are reported even when not asked for: the read or
     * write below then fails and says why. */
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c->eof && c->len < MAX_PENDING) {
        ssize_t n = read(c->fd, buf, size);
        if (n == 0) {
            c->eof = 1; /* it shut down its side; it may still read its echo */
        } else if (n > 0) {
            if (c->len + (size_t)n > c->cap)
                c->pending = grow(c->pending, &c->cap, c->len + (size_t)n, 1);
            memcpy(c->pending + c->len, buf, (size_t)n);
            c->len += (size_t)n;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fprintf(stderr, "read %s: %s\n", c->peer, strerror(errno));
            return 0;
        }
    }
    /* Write at once, without waiting for POLLOUT: the socket buffer almost
     * always has room, and poll(2) reports POLLOUT next turn if it had not. */
    if (c->len > 0) {
        ssize_t n = write(c->fd, c->pending, c->len);
        if (n >= 0) {
            memmove(c->pending, c->pending + n, c->len - (size_t)n);
            c->len -= (size_t)n;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            /* EPIPE or ECONNRESET: the client left without its echo. */
            fprintf(stderr, "write %s: %s\n", c->peer, strerror(errno));
            return 0;
        }
    }
    return !(c->eof && c->len == 0);
}

static void add_client(int fd, const char *peer)
{
    clients = grow(clients, &clients_cap, nclients + 1, sizeof *clients);
    struct client *c = &clients[nclients++];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    strcpy(c->peer, peer);
}

/* array, with room for at least want elements of size bytes: reallocated
 * (doubling) when *cap is smaller. Out of memory, the server stops. */
static void *grow(void *array, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap)
        return array;
    size_t cap2 = *cap * 2 > want ? *cap * 2 : want;
    if (cap2 < 16)
        cap2 = 16;
    void *bigger = realloc(array, cap2 * size);
    if (bigger == NULL) {
        fprintf(stderr, "realloc: %s\n", strerror(errno));
        exit(1);
    }
    *cap = cap2;
    return bigger;
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

static void die(const char *call, const char *what)
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

/* A port as Rust's str::parse::<u16> reads one: an optional '+', then
 * decimal digits only, at most 65535. */
static unsigned long take_port(void)
{
    if (nargs == 0)
        return DEFAULT_PORT;
    const char *text = args[0];
    if (strlen(text) > 1 && text[0] == '-')
        usage_error("unknown option '%s'", text);
    take(0);
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

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n" SYNOPSIS "\n(--help for details)\n", stderr);
    exit(2);
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
