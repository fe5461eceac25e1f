/*
 * Lab 03: one process serves every client, with select(2), in C (the twin
 * of server.rs).
 *
 * socket -> setsockopt(SO_REUSEADDR) -> bind -> listen -> fcntl(O_NONBLOCK)
 * -> loop { build the read and write sets -> select -> accept until EAGAIN
 * -> read from the readable clients -> write their echo -> close those gone }.
 * Every socket is non-blocking: the one process must never wait for one
 * client while others are ready.
 *
 * Build: make c (or: cc -Wall -Wextra -O2 -o server-c server.c)
 * Run:   ./server-c [PORT] [--bind ADDR]
 *
 * Same arguments, messages and system calls as ./server (server.rs):
 * `make trace LAB=03-select` shows the two side by side.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SYNOPSIS "usage: server [PORT] [--bind ADDR]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 03: echo server in one process with select(2). Serves every client at\n"
    "once; a client that sends without reading its echo is throttled, never waited for.\n"
    "\n"
    "  PORT         port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --help       print this help\n";

#define DEFAULT_PORT 4242
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* Above this much unsent echo, the server stops reading from a client until
 * the client has read some of it: backpressure. */
#define HIGH_WATER (64 * 1024)
/* At most this much is read from one client per turn, so that its pending
 * output never exceeds HIGH_WATER + READ_SIZE. */
#define READ_SIZE (16 * 1024)
/* How long accepting stays paused after accept(2) ran out of descriptors,
 * unless a client leaves first (seconds). */
#define ACCEPT_PAUSE 1

/* One connected client. Every descriptor the table holds is below
 * FD_SETSIZE (others are refused), so FD_SETSIZE entries are enough. */
struct client {
    int fd;
    char peer[ADDR_TEXT];
    /* Echo that write(2) could not take yet: the socket's send buffer was
     * full. len bytes are used of cap allocated. */
    char *pending;
    size_t len, cap;
    /* The client has shut down its side (read returned 0): close it once
     * pending is sent, so that a half-closing client gets all its echo. */
    int eof;
};

static struct client clients[FD_SETSIZE];
static int nclients;
/* What select(2) said about clients[i], copied out of the sets. */
static struct {
    int readable, writable;
} ready[FD_SETSIZE];

static void append(struct client *c, const char *data, size_t n);
static void remove_client(int i);
static double seconds_since(const struct timespec *since);
static _Noreturn void die(const char *call, const char *what);
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

    /* Protocol 0: the default for a stream socket, TCP (socket(2)). */
    int listener = socket(addr.ss_family, SOCK_STREAM, 0);
    if (listener < 0)
        die("socket", addr_str);
    /* The listener goes in an fd_set too (see FD_SETSIZE below). */
    if (listener >= FD_SETSIZE) {
        errno = EMFILE;
        die("socket", addr_str);
    }
    /* Without SO_REUSEADDR, bind(2) fails with EADDRINUSE for a minute after
     * a restart, while the last run's connections sit in TIME_WAIT (socket(7)). */
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt", addr_str);
    if (bind(listener, (struct sockaddr *)&addr, addrlen) < 0)
        die("bind", addr_str);
    /* A burst of clients waits here between two turns of the loop (listen(2)). */
    if (listen(listener, SOMAXCONN) < 0)
        die("listen", addr_str);
    /* The listener is non-blocking so that accept(2) can be called until it
     * fails with EAGAIN (the backlog is empty), and so that a client that
     * resets between select(2) and accept(2) cannot leave us blocked in
     * accept while every other client waits. */
    int flags = fcntl(listener, F_GETFL);
    if (flags < 0 || fcntl(listener, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl", addr_str);
    /* With port 0 the kernel chose the port: getsockname(2) tells which. */
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(listener, (struct sockaddr *)&local, &len) < 0)
        die("getsockname", addr_str);
    char local_str[ADDR_TEXT];
    printf("listening on %s\n", addr_text(&local, local_str));

    static char buf[READ_SIZE];
    /* When accept(2) last ran out of descriptors (EMFILE): until a client
     * leaves or ACCEPT_PAUSE passes, the listener stays out of the read set. */
    int paused = 0;
    struct timespec paused_since = { 0, 0 };
    /* Whether this shortage of descriptors has been reported: once, not once
     * per turn. It ends when the backlog is empty. */
    int shortage_reported = 0;

    for (;;) {
        int accepting = !paused || seconds_since(&paused_since) >= ACCEPT_PAUSE;
        /* select(2) overwrites the sets with the descriptors that are ready:
         * they are built again, from the client table, every turn. */
        fd_set readfds, writefds;
        FD_ZERO(&readfds);
        FD_ZERO(&writefds);
        int maxfd = listener;
        if (accepting)
            FD_SET(listener, &readfds);
        for (int i = 0; i < nclients; i++) {
            struct client *c = &clients[i];
            /* Backpressure: while a client has more than HIGH_WATER of echo
             * it has not read, read nothing more from it; its unread data
             * waits in the kernel's buffers, and TCP flow control stops it
             * sending. */
            if (!c->eof && c->len <= HIGH_WATER)
                FD_SET(c->fd, &readfds);
            if (c->len > 0)
                FD_SET(c->fd, &writefds);
            if (c->fd > maxfd)
                maxfd = c->fd;
        }
        /* While accepting is paused, wake up anyway to try again: with
         * ENFILE the descriptors may be freed by another process. */
        struct timeval timeout = { .tv_sec = ACCEPT_PAUSE, .tv_usec = 0 };
        /* nfds is the highest descriptor plus one, not a count: the kernel
         * looks at descriptors 0 to nfds-1 of each set (select(2)). */
        while (select(maxfd + 1, &readfds, &writefds, NULL, accepting ? NULL : &timeout) < 0) {
            /* A signal interrupted the wait; the sets are unchanged. */
            if (errno != EINTR)
                die("select", local_str);
        }
        /* Copied out of the sets: the table changes below (accept, close). */
        int nready = nclients;
        for (int i = 0; i < nready; i++) {
            ready[i].readable = FD_ISSET(clients[i].fd, &readfds);
            ready[i].writable = FD_ISSET(clients[i].fd, &writefds);
        }

        if (accepting && FD_ISSET(listener, &readfds)) {
            /* Accept every connection waiting in the backlog, not just one:
             * with one accept per turn a burst of clients waits turn after turn. */
            for (;;) {
                /* NULL, NULL: we ask for the client's address with
                 * getpeername(2) below, as the Rust server does. */
                int fd = accept(listener, NULL, NULL);
                if (fd < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        shortage_reported = 0; /* nobody waits for a descriptor any more */
                        break;
                    }
                    /* The client gave up while it waited in the backlog, or a
                     * signal interrupted us: try the next one (accept(2)). */
                    if (errno == ECONNABORTED || errno == EINTR)
                        continue;
                    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                        errno == ENOMEM) {
                        /* The connection stays in the backlog and the listener
                         * stays readable: watching it now would make select(2)
                         * return at once, for ever, at 100% CPU. Stop watching
                         * it for a while. */
                        if (!shortage_reported) {
                            fprintf(stderr, "accept %s: %s; new clients wait in the backlog\n",
                                    local_str, strerror(errno));
                            shortage_reported = 1;
                        }
                        paused = 1;
                        clock_gettime(CLOCK_MONOTONIC, &paused_since);
                        break;
                    }
                    die("accept", local_str);
                }
                struct sockaddr_storage peer;
                len = sizeof peer;
                if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0) {
                    /* ENOTCONN: the client reset before we looked. */
                    fprintf(stderr, "getpeername %s: %s\n", local_str, strerror(errno));
                    close(fd);
                    continue;
                }
                char peer_str[ADDR_TEXT];
                addr_text(&peer, peer_str);
                /* An fd_set is a bitmap of FD_SETSIZE bits (select(2)): a
                 * higher descriptor cannot be watched. FD_SET(fd, &set) would
                 * write past the end of the set, onto whatever lies next to it. */
                if (fd >= FD_SETSIZE) {
                    printf("refusing %s: fd %d >= FD_SETSIZE (select limit)\n", peer_str, fd);
                    if (close(fd) < 0)
                        fprintf(stderr, "close %s: %s\n", peer_str, strerror(errno));
                    continue;
                }
                /* A blocking write(2) to a client that does not read would
                 * stop the whole server once that client's buffers are full.
                 * On Linux, accept(2) does not pass O_NONBLOCK on from the
                 * listener: set it on every connection. */
                flags = fcntl(fd, F_GETFL);
                if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                    fprintf(stderr, "fcntl %s: %s\n", peer_str, strerror(errno));
                    close(fd);
                    continue;
                }
                printf("connection from %s\n", peer_str);
                struct client *c = &clients[nclients++];
                memset(c, 0, sizeof *c);
                c->fd = fd;
                strcpy(c->peer, peer_str);
            }
        }

        /* Backwards, so that remove_client(i), which moves the last client
         * into slot i, only moves there a client already handled this turn,
         * or one just accepted (not in ready[]). */
        for (int i = nready - 1; i >= 0; i--) {
            if (!ready[i].readable && !ready[i].writable)
                continue;
            struct client *c = &clients[i];
            int gone = 0;
            if (ready[i].readable) {
                /* One read(2) per turn: a client that sends a lot gets its
                 * turn like the others, and its pending output stays bounded. */
                ssize_t n = read(c->fd, buf, sizeof buf);
                if (n == 0) {
                    c->eof = 1; /* it shut down its side; its echo still goes out */
                } else if (n > 0) {
                    append(c, buf, (size_t)n);
                } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    /* Readiness can be spurious (select(2), BUGS); a signal may
                     * interrupt: either way, next turn. Anything else, such as
                     * ECONNRESET, means the client is gone. */
                    fprintf(stderr, "read %s: %s\n", c->peer, strerror(errno));
                    gone = 1;
                }
            }
            /* Either select(2) said there is room, or we just read an echo to
             * send: try at once, and most echoes go out without another turn. */
            if (!gone && c->len > 0) {
                ssize_t n = write(c->fd, c->pending, c->len);
                if (n >= 0) {
                    /* Possibly a partial write: the rest waits for room. */
                    memmove(c->pending, c->pending + n, c->len - (size_t)n);
                    c->len -= (size_t)n;
                } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    /* EPIPE or ECONNRESET: the client is gone (SIGPIPE is
                     * ignored, so write(2) returns EPIPE instead of killing us).
                     * EAGAIN: the send buffer is full; select(2) will say
                     * when it is not. */
                    fprintf(stderr, "write %s: %s\n", c->peer, strerror(errno));
                    gone = 1;
                }
                if (c->len == 0 && c->cap > READ_SIZE) {
                    /* A client that has caught up gives back what its backlog took. */
                    char *smaller = realloc(c->pending, READ_SIZE);
                    if (smaller != NULL) {
                        c->pending = smaller;
                        c->cap = READ_SIZE;
                    }
                }
            }
            if (gone || (c->eof && c->len == 0)) {
                remove_client(i);
                /* A descriptor is free: a paused accept(2) may succeed now. */
                paused = 0;
            }
        }
    }
}

/* Appends n bytes to c's pending echo, growing it as needed (at most
 * HIGH_WATER + READ_SIZE: nothing is read from a client above HIGH_WATER). */
static void append(struct client *c, const char *data, size_t n)
{
    if (c->len + n > c->cap) {
        size_t cap = c->cap * 2 > c->len + n ? c->cap * 2 : c->len + n;
        char *bigger = realloc(c->pending, cap);
        if (bigger == NULL) {
            fprintf(stderr, "realloc: %s\n", strerror(errno));
            exit(1);
        }
        c->pending = bigger;
        c->cap = cap;
    }
    memcpy(c->pending + c->len, data, n);
    c->len += n;
}

/* Logs the departure of clients[i], closes it and fills its slot with the
 * last client. */
static void remove_client(int i)
{
    struct client *c = &clients[i];
    printf("%s disconnected\n", c->peer);
    /* close(2) sends our FIN (or a RST if unread data remains). */
    if (close(c->fd) < 0)
        fprintf(stderr, "close %s: %s\n", c->peer, strerror(errno));
    free(c->pending);
    clients[i] = clients[--nclients];
}

/* Seconds since a time on the clock that never jumps (CLOCK_MONOTONIC). */
static double seconds_since(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
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
