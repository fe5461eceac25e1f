/*
 * Lab 01: the echo client, in C (the twin of client.rs).
 *
 * getaddrinfo -> socket -> connect -> loop { read a line from stdin -> write
 * it -> read its echo -> print it } -> at the end of stdin, shutdown(SHUT_WR)
 * and read what is left.
 *
 * Build: make (or: cc -Wall -Wextra -O2 -o client-c client.c)
 * Run:   ./client-c [HOST] [PORT]
 *
 * Same arguments, messages and system calls as ./client (client.rs):
 * `make trace LAB=01-echo` shows the two side by side.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
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
    "Lab 01: echo client. Sends each line of stdin to the server and prints the\n"
    "echo; at the end of stdin (Ctrl-D) it half-closes the connection and exits.\n"
    "\n"
    "  HOST    server name or address (default 127.0.0.1; localhost and IPv6 such as ::1 work)\n"
    "  PORT    server port (default 4242)\n"
    "  --help  print this help\n";

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 4242
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* Longer lines are sent in pieces of this size: memory stays bounded
 * whatever stdin holds. */
#define MAX_LINE (64 * 1024)

static char buf[16 * 1024]; /* for the echo */

static void send_line(int sock, const char *server, const char *line, size_t len);
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

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "connected to %s; type lines, Ctrl-D to end\n", server);

    /* Lines are framed by hand from read(2) on descriptor 0, as client.rs
     * does, not with fgets(3): stdio keeps what it read ahead in a buffer
     * of its own, hidden from poll(2) (lab 04). A line longer than MAX_LINE
     * goes in pieces of MAX_LINE bytes. */
    static char line[MAX_LINE];
    size_t len = 0; /* bytes held in line[] */
    for (;;) {
        ssize_t n = read(STDIN_FILENO, line + len, sizeof line - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read", "stdin");
        }
        if (n == 0) {
            /* End of stdin; a last line without newline still goes. */
            if (len > 0)
                send_line(sock, server, line, len);
            break;
        }
        len += (size_t)n;
        size_t start = 0; /* where the next line begins */
        for (;;) {
            char *newline = memchr(line + start, '\n', len - start);
            size_t end;
            if (newline != NULL)
                end = (size_t)(newline - line) + 1;
            else if (start == 0 && len == sizeof line)
                end = len; /* a full buffer and no newline: send this piece */
            else
                break;
            send_line(sock, server, line + start, end - start);
            start = end;
        }
        memmove(line, line + start, len - start);
        len -= start;
    }

    /* End of stdin: shutdown(2) sends our FIN ("no more lines") but keeps
     * the socket open for reading, so nothing the server still sends is
     * lost, as it could be with close(2). */
    if (shutdown(sock, SHUT_WR) < 0)
        die("shutdown", server);
    for (;;) {
        ssize_t got = read(sock, buf, sizeof buf);
        if (got == 0)
            break;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            die("read", server);
        }
        if (writen(STDOUT_FILENO, buf, (size_t)got) < 0)
            die("write", "stdout");
    }
    close(sock);
    return 0;
}

/* Writes one line to the server and copies its echo to stdout. The echo may
 * come back in several pieces: read until as many bytes came back as went. */
static void send_line(int sock, const char *server, const char *line, size_t len)
{
    if (writen(sock, line, len) < 0)
        die("write", server);
    size_t missing = len;
    while (missing > 0) {
        size_t want = missing < sizeof buf ? missing : sizeof buf;
        ssize_t got = read(sock, buf, want);
        if (got == 0) {
            fprintf(stderr, "server %s closed the connection\n", server);
            exit(1);
        }
        if (got < 0) {
            if (errno == EINTR)
                continue;
            die("read", server);
        }
        if (writen(STDOUT_FILENO, buf, (size_t)got) < 0)
            die("write", "stdout");
        missing -= (size_t)got;
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
 * any other error: EPIPE or ECONNRESET when the peer is gone. */
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
