/*
 * Lab 01: the iterative TCP echo server, in C (the twin of server.rs).
 *
 * socket -> setsockopt(SO_REUSEADDR) -> bind -> listen -> loop { accept ->
 * read/write until EOF -> close }. One client at a time: while it is served,
 * the next client's connection waits in the listen backlog.
 *
 * Build: make (or: cc -Wall -Wextra -O2 -o server-c server.c)
 * Run:   ./server-c [PORT] [--bind ADDR] [--write-timeout SECS]
 *
 * Same arguments, messages and system calls as ./server (server.rs):
 * `make trace LAB=01-echo` shows the two side by side.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SYNOPSIS "usage: server [PORT] [--bind ADDR] [--write-timeout SECS]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 01: iterative TCP echo server. Serves one client at a time; the others\n"
    "wait in the listen backlog until it leaves.\n"
    "\n"
    "  PORT                  port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR           address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --write-timeout SECS  drop a client that has not read its echo within SECS\n"
    "                        (default 10, from 1 to 86400)\n"
    "  --help                print this help\n";

#define DEFAULT_PORT 4242
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

static _Noreturn void die(const char *call, const char *what);
static int writen_before(int fd, const char *buf, size_t len, const struct timespec *deadline);
static const char *addr_text(const struct sockaddr_storage *ss, char *out);
static void read_args(int argc, char **argv);
static const char *take_value(const char *name, const char *what);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
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
    const char *timeout_text = take_value("--write-timeout", "SECS");
    unsigned long write_timeout = 10;
    const char *why;
    if (timeout_text && parse_number(timeout_text, 4294967295UL, &write_timeout, &why) < 0)
        usage_error("invalid SECS '%s': %s", timeout_text, why);
    /* An SO_SNDTIMEO of 0 means "no timeout" (socket(7)): a client that never
     * reads would hold the server for ever. 0 is refused; a day is the most,
     * as lab 07's --ping-timeout. */
    if (write_timeout < 1 || write_timeout > 86400)
        usage_error("invalid SECS '%lu': from 1 to 86400 seconds", write_timeout);
    set_port(&addr, take_port());
    finish_args();

    char addr_str[ADDR_TEXT];
    addr_text(&addr, addr_str);

    /* A write(2) to a connection the client has reset raises SIGPIPE, whose
     * default action kills the whole server (signal(7)). Ignored, write(2)
     * fails with EPIPE instead; Rust's runtime does this before main. */
    signal(SIGPIPE, SIG_IGN);

    /* Protocol 0: the default for a stream socket, TCP (socket(2)). */
    int listener = socket(addr.ss_family, SOCK_STREAM, 0);
    if (listener < 0)
        die("socket", addr_str);
    /* Without SO_REUSEADDR, bind(2) fails with EADDRINUSE for a minute after
     * a restart, while the last run's connections sit in TIME_WAIT (socket(7)). */
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt", addr_str);
    if (bind(listener, (struct sockaddr *)&addr, addrlen) < 0)
        die("bind", addr_str);
    /* The backlog holds connections the kernel has completed but we have
     * not accepted yet: that is where the second client waits (listen(2)). */
    if (listen(listener, SOMAXCONN) < 0)
        die("listen", addr_str);
    /* With port 0 the kernel chose the port: getsockname(2) tells which. */
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(listener, (struct sockaddr *)&local, &len) < 0)
        die("getsockname", addr_str);
    char local_str[ADDR_TEXT];
    printf("listening on %s\n", addr_text(&local, local_str));

    char buf[16 * 1024];
    for (;;) {
        /* NULL, NULL: we ask for the client's address with getpeername(2)
         * below, as the Rust server does (nix's accept() has no address). */
        int conn = accept(listener, NULL, NULL);
        if (conn < 0) {
            /* The client gave up while it waited in the backlog, or a signal
             * interrupted us: neither is a reason to stop serving (accept(2)). */
            if (errno == ECONNABORTED || errno == EINTR)
                continue;
            die("accept", local_str);
        }
        struct sockaddr_storage peer;
        len = sizeof peer;
        if (getpeername(conn, (struct sockaddr *)&peer, &len) < 0) {
            /* ENOTCONN: the client reset before we looked. */
            fprintf(stderr, "getpeername %s: %s\n", local_str, strerror(errno));
            close(conn);
            continue;
        }
        char peer_str[ADDR_TEXT];
        printf("connection from %s\n", addr_text(&peer, peer_str));

        /* A client that sends but never reads fills both socket buffers, and
         * then write(2) blocks for ever: everyone else waits. SO_SNDTIMEO
         * makes such a write return, with EAGAIN or a short count (socket(7)).
         * It bounds one call, not the echo: writen_before keeps the deadline
         * across the calls of one echo. */
        struct timeval timeout = { .tv_sec = (time_t)write_timeout, .tv_usec = 0 };
        if (setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) < 0)
            die("setsockopt", peer_str);

        for (;;) {
            ssize_t n = read(conn, buf, sizeof buf);
            if (n == 0)
                break; /* EOF: the client closed (or shut down) its side */
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                /* ECONNRESET: the client reset the connection. */
                fprintf(stderr, "read %s: %s\n", peer_str, strerror(errno));
                break;
            }
            /* The client has write_timeout seconds to read this echo, from
             * now: however many write(2) calls it takes (see writen_before). */
            struct timespec deadline;
            clock_gettime(CLOCK_MONOTONIC, &deadline);
            deadline.tv_sec += (time_t)write_timeout;
            if (writen_before(conn, buf, (size_t)n, &deadline) < 0) {
                if (errno == EAGAIN)
                    fprintf(stderr,
                            "write %s: client did not read its echo within %lu s, dropping it\n",
                            peer_str, write_timeout);
                else /* EPIPE or ECONNRESET: the client is gone (SIGPIPE is ignored). */
                    fprintf(stderr, "write %s: %s\n", peer_str, strerror(errno));
                break;
            }
        }
        printf("%s disconnected\n", peer_str);
        /* close(2) sends our FIN (or a RST if unread data remains). Forget
         * it and the descriptor leaks: the client's side sits in CLOSE_WAIT. */
        if (close(conn) < 0)
            fprintf(stderr, "close %s: %s\n", peer_str, strerror(errno));
    }
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
static _Noreturn void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
    exit(1);
}

/* Writes all of buf (Stevens' writen) before the CLOCK_MONOTONIC time
 * *deadline, or fails with EAGAIN once it has passed.
 *
 * Why not writen itself and SO_SNDTIMEO alone: the send timeout bounds each
 * write(2) call, not the whole write-all (socket(7)). A blocked write that
 * times out after sending part of buf returns that count; called again for
 * the rest, write(2) waits a whole timeout more: a client that stopped
 * reading would be dropped after twice the timeout, and one that reads a
 * little now and then, never.
 *
 * So fd must be a blocking socket whose SO_SNDTIMEO is already set, to at
 * most the time until the deadline (set once per connection: a write that
 * completes costs no other call). A blocking write(2) stops early only when
 * that timeout fired or a signal came: it returns a short count, EAGAIN
 * (nothing sent) or EINTR. Each time, SO_SNDTIMEO is set again to the time
 * left, and the rest is written; when no time is left, EAGAIN, as write(2)
 * says it. The last SO_SNDTIMEO set stays on the socket: a later call may
 * then stop early once, and is resumed the same way. Not for a non-blocking
 * socket, whose EAGAIN would be retried in a busy loop.
 *
 * Returns -1 with errno set on any other error: EPIPE or ECONNRESET when the
 * peer is gone, or setsockopt(2)'s. */
static int writen_before(int fd, const char *buf, size_t len, const struct timespec *deadline)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n == (ssize_t)len)
            return 0;
        if (n == 0) { /* write(2) never does this for a non-empty buffer */
            errno = EIO;
            return -1;
        }
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left_ns = (long long)(deadline->tv_sec - now.tv_sec) * 1000000000LL +
                            (deadline->tv_nsec - now.tv_nsec);
        if (left_ns <= 0) {
            errno = EAGAIN;
            return -1;
        }
        /* Rounded up to the microsecond: an SO_SNDTIMEO of zero would mean
         * "no timeout" and block for ever (socket(7)). */
        long long left_us = (left_ns + 999) / 1000;
        struct timeval left = { .tv_sec = (time_t)(left_us / 1000000),
                                .tv_usec = (suseconds_t)(left_us % 1000000) };
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &left, sizeof left) < 0)
            return -1;
    }
    return 0;
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
        n = n * 10 + (unsigned long)(*p - '0');
        if (n > max) {
            *why = "number too large to fit in target type";
            return -1;
        }
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
    return 0;
}

/* The port, in network byte order (htons(3)), where the family keeps it. */
static void set_port(struct sockaddr_storage *ss, unsigned long port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}
