/*
 * Lab 06: the UDP echo server, in C (the twin of server.rs).
 *
 * socket(SOCK_DGRAM) -> bind -> loop { recvfrom -> sendto }. No listen, no
 * accept, no connection: one socket receives the datagrams of every client,
 * and recvfrom(2) says who sent each one, so that sendto(2) can answer.
 *
 * Build: make c (or: cc -Wall -Wextra -O2 -o server-c server.c)
 * Run:   ./server-c [PORT] [--bind ADDR] [--drop PERCENT]
 *
 * Same arguments, messages and system calls as ./server (server.rs).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SYNOPSIS "usage: server [PORT] [--bind ADDR] [--drop PERCENT]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 06: UDP echo server. Sends every datagram back to whoever sent it; one\n"
    "socket serves every client, with no connection to anyone.\n"
    "\n"
    "  PORT              port to receive on (default 4242; 0 = any free port)\n"
    "  --bind ADDR       address to receive on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --drop PERCENT    play a lossy network: leave PERCENT of the datagrams unanswered,\n"
    "                    spread evenly (20: every fifth), as if they were lost (default 0)\n"
    "  --help            print this help\n";

#define DEFAULT_PORT 4242
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* Larger than any UDP datagram: the payload of an IPv4 datagram is at most
 * 65507 bytes, of an IPv6 one 65527 (udp(7), ipv6(7)). With a smaller
 * buffer recvfrom(2) would silently discard the end of a longer datagram. */
#define MAX_DATAGRAM 65536

static _Noreturn void die(const char *call, const char *what);
static int drops(unsigned long long n, unsigned long percent);
static const char *addr_text(const struct sockaddr_storage *ss, char *out);
static void read_args(int argc, char **argv);
static const char *take_value(const char *name, const char *what);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int parse_number(const char *text, unsigned long max, unsigned long *value,
                        const char **why);
static socklen_t parse_ip(const char *text, unsigned port, struct sockaddr_storage *ss);

int main(int argc, char **argv)
{
    /* stdout is a pipe when a test or a script reads our log: flush each
     * line as it is printed, not when a 4 KiB buffer fills (setvbuf(3)). */
    setvbuf(stdout, NULL, _IOLBF, 0);

    read_args(argc, argv);
    const char *bind_text = take_value("--bind", "ADDR");
    const char *drop_text = take_value("--drop", "PERCENT");
    unsigned long drop_percent = 0;
    const char *why;
    if (drop_text && parse_number(drop_text, 18446744073709551615UL, &drop_percent, &why) < 0)
        usage_error("invalid PERCENT '%s': %s", drop_text, why);
    if (drop_percent > 100)
        usage_error("invalid PERCENT '%lu': a percentage is a number from 0 to 100",
                    drop_percent);
    unsigned long port = take_port();
    finish_args();

    struct sockaddr_storage addr;
    socklen_t addrlen = parse_ip(bind_text ? bind_text : "0.0.0.0", port, &addr);
    char addr_str[ADDR_TEXT];
    addr_text(&addr, addr_str);

    /* SOCK_DGRAM: UDP, datagrams instead of a byte stream (socket(2), udp(7)). */
    int sock = socket(addr.ss_family, SOCK_DGRAM, 0);
    if (sock < 0)
        die("socket", addr_str);
    /* No SO_REUSEADDR: UDP leaves nothing in TIME_WAIT, and on a UDP socket
     * the option would let a second server bind the same port (socket(7)). */
    if (bind(sock, (struct sockaddr *)&addr, addrlen) < 0)
        die("bind", addr_str);
    /* With port 0 the kernel chose the port: getsockname(2) tells which. */
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(sock, (struct sockaddr *)&local, &len) < 0)
        die("getsockname", addr_str);
    char local_str[ADDR_TEXT];
    printf("listening on %s\n", addr_text(&local, local_str));

    /* No listen(), no accept(): datagrams from every client arrive on this
     * one socket, each whole, in one recvfrom(2) call each. */
    static char buf[MAX_DATAGRAM];
    unsigned long long received = 0;
    for (;;) {
        struct sockaddr_storage peer;
        len = sizeof peer;
        ssize_t n = recvfrom(sock, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("recvfrom", local_str);
        }
        /* n == 0 is an empty datagram, not an end of file: there is no
         * connection to end. It gets its empty echo like any other. */
        char peer_str[ADDR_TEXT];
        addr_text(&peer, peer_str);
        received++;
        if (drops(received, drop_percent)) {
            printf("datagram of %zd bytes from %s dropped (--drop %lu)\n", n, peer_str,
                   drop_percent);
            continue;
        }
        printf("datagram of %zd bytes from %s\n", n, peer_str);
        /* A datagram goes whole or not at all: no partial sends, no writen
         * loop (udp(7)). A failure concerns this client only: say so and go on. */
        if (sendto(sock, buf, (size_t)n, 0, (struct sockaddr *)&peer, len) < 0)
            fprintf(stderr, "sendto %s: %s\n", peer_str, strerror(errno));
    }
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
static _Noreturn void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
    exit(1);
}

/* Whether --drop PERCENT leaves the datagram numbered n (from 1) unanswered:
 * exactly PERCENT of every 100, spread evenly, so that runs repeat exactly
 * (and the Rust server drops the same ones). */
static int drops(unsigned long long n, unsigned long percent)
{
    return n * percent / 100 != (n - 1) * percent / 100;
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

/* An IPv4 or IPv6 literal and a port into a socket address (inet_pton(3));
 * returns the address's length, or exits 2 if TEXT is no address. */
static socklen_t parse_ip(const char *text, unsigned port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return sizeof *in;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return sizeof *in6;
    }
    usage_error("invalid ADDR '%s': invalid IP address syntax", text);
    return 0;
}
