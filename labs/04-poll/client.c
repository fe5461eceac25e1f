/*
 * Lab 04: the client that polls the keyboard and the socket at once, in C
 * (the twin of client.rs).
 *
 * getaddrinfo -> socket -> connect -> fcntl(O_NONBLOCK) -> loop { poll(stdin,
 * socket) -> socket readable: print it -> stdin readable: read, queue for
 * the server -> socket writable: write what is queued } -> at the end of
 * stdin, once all is sent, shutdown(SHUT_WR), and on until the server closes.
 * What the server sends shows up at once, even while the user types
 * nothing: lab 01's client noticed only after the next line.
 *
 * Build: make c (or: cc -Wall -Wextra -O2 -o client-c client.c)
 * Run:   ./client-c [HOST] [PORT]
 *
 * Same arguments, messages and system calls as ./client (client.rs):
 * `make trace LAB=04-poll` shows the two side by side.
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

#define SYNOPSIS "usage: client [HOST] [PORT]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 04: client that waits on stdin and the socket at once with poll(). What\n"
    "you type goes to the server; what the server sends is printed as it arrives.\n"
    "At the end of stdin (Ctrl-D) it half-closes the connection, prints what the\n"
    "server still sends, and exits.\n"
    "\n"
    "  HOST    server name or address (default 127.0.0.1; localhost and IPv6 such as ::1 work)\n"
    "  PORT    server port (default 4242)\n"
    "  --help  print this help\n";

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 4242
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* Stdin is read only while less than this waits to go to the server: a
 * server that stops reading cannot make the client's memory grow. */
#define MAX_QUEUED (64 * 1024)

static _Noreturn void die(const char *call, const char *what);
static int writen(int fd, const char *buf, size_t len);
static const char *addr_text(const struct sockaddr *sa, char *out);
static void read_args(int argc, char **argv);
static const char *take_positional(void);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int main(int argc, char **argv)
{
    read_args(argc, argv);
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
     * addresses to try, IPv4 and IPv6 alike (ai_family 0 = AF_UNSPEC). */
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

    /* A name may have several addresses (localhost: ::1 and 127.0.0.1):
     * try each in turn, as getaddrinfo(3)'s example does. */
    int sock = -1;
    char server[ADDR_TEXT];
    int last_error = EADDRNOTAVAIL;
    char last_addr[ADDR_TEXT];
    snprintf(last_addr, sizeof last_addr, "127.0.0.1:%lu", port);
    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        addr_text(ai->ai_addr, server);
        /* Protocol 0: the default for a stream socket, TCP (socket(2)). */
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
    /* A blocking write(2) of more than the socket buffer holds would wait
     * for the server to read, and meanwhile nobody reads what the server
     * sends: both sides stuck. Non-blocking, write(2) takes what fits and
     * poll(2) says when more will (fcntl(2), O_NONBLOCK). */
    int flags = fcntl(sock, F_GETFL);
    if (flags < 0 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl", server);

    /* stdin is read with read(2) on descriptor 0, never with fgets(3):
     * bytes hidden in stdio's buffer are invisible to poll(2). */
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "connected to %s; type lines, Ctrl-D to end\n", server);

    static char queued[MAX_QUEUED]; /* what stdin brought, not yet sent */
    size_t nqueued = 0;
    int stdin_open = 1;
    int shut_down = 0;
    static char buf[16 * 1024];
    for (;;) {
        /* stdin is watched until its end, while there is room to queue what
         * it brings. Not watched means left out of the array (poll from
         * fds + 1), not asked for no events: POLLHUP comes whether asked
         * for or not (poll(2)), and a pipe whose writer has gone reports it
         * for ever. Kept in the array, a stdin at its end would make poll(2)
         * return at once, turn after turn, at 100% CPU until the server
         * closes; and a read(2) of 0 bytes into a full queue would return 0,
         * which reads as the end of stdin. */
        int watch_stdin = stdin_open && nqueued < MAX_QUEUED;
        struct pollfd fds[2];
        fds[0].fd = STDIN_FILENO;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        fds[1].fd = sock;
        fds[1].events = POLLIN;
        if (nqueued > 0)
            fds[1].events |= POLLOUT;
        fds[1].revents = 0;
        int first = watch_stdin ? 0 : 1;
        if (poll(fds + first, (nfds_t)(2 - first), -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", server);
        }
        /* POLLHUP and POLLERR come whether asked for or not (poll(2)): the
         * read or write that follows reports what happened. */
        int stdin_ready = watch_stdin && (fds[0].revents & (POLLIN | POLLHUP | POLLERR));
        int sock_readable = fds[1].revents & (POLLIN | POLLHUP | POLLERR);
        int sock_writable = fds[1].revents & (POLLOUT | POLLHUP | POLLERR);

        if (sock_readable) {
            ssize_t n = read(sock, buf, sizeof buf);
            if (n == 0 && shut_down) {
                close(sock); /* the server answered our FIN with its own */
                return 0;
            }
            if (n == 0) {
                fprintf(stderr, "server %s closed the connection\n", server);
                exit(1);
            }
            if (n > 0) {
                if (writen(STDOUT_FILENO, buf, (size_t)n) < 0)
                    die("write", "stdout");
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                die("read", server);
            }
        }

        if (stdin_ready) {
            size_t room = MAX_QUEUED - nqueued;
            if (room > sizeof buf)
                room = sizeof buf;
            ssize_t n = read(STDIN_FILENO, queued + nqueued, room);
            if (n == 0)
                stdin_open = 0;
            else if (n > 0)
                nqueued += (size_t)n;
            else if (errno != EINTR)
                die("read", "stdin");
        }

        if (sock_writable && nqueued > 0) {
            ssize_t n = write(sock, queued, nqueued);
            if (n >= 0) {
                memmove(queued, queued + n, nqueued - (size_t)n);
                nqueued -= (size_t)n;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                die("write", server);
            }
        }

        /* End of stdin and everything sent: shutdown(2) tells the server
         * "no more" but keeps reading what it still sends. */
        if (!stdin_open && nqueued == 0 && !shut_down) {
            if (shutdown(sock, SHUT_WR) < 0)
                die("shutdown", server);
            shut_down = 1;
        }
    }
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
static void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
    exit(1);
}

/* Writes all of buf (Stevens' writen). write(2) may write less than asked
 * (a partial write) or be interrupted by a signal before writing anything
 * (EINTR): both mean "again with the rest". Returns -1 with errno set on
 * any other error. */
static int writen(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) { /* write(2) never does this for a non-empty buffer */
            errno = EIO;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
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
 * prints the usage; then the positional arguments in order; anything left
 * over is an error. A bad argument prints what is wrong and the synopsis on
 * stderr, and exits 2.
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

/* The next positional argument, or NULL; `-x` there is an unknown option. */
static const char *take_positional(void)
{
    if (nargs == 0)
        return NULL;
    const char *text = args[0];
    if (strlen(text) > 1 && text[0] == '-')
        usage_error("unknown option '%s'", text);
    args++;
    nargs--;
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

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n" SYNOPSIS "\n(--help for details)\n", stderr);
    exit(2);
}
