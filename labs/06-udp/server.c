/*
 * Lab 06: the UDP echo server, in C (the twin of server.rs).
 *
 * socket(SOCK_DGRAM) -> bind -> loop { recvfrom -> sendto }. No listen, no
 * accept, no connection: one socket receives the datagrams of every client,
 * and recvfrom(2) says who sent each one, so that sendto(2) can answer.
 *
 * Nobody checks that sender's address: a datagram forged to come from the
 * server itself, or from another echo server, would start an echo loop that
 * never ends. So the server never answers its own port nor a service port
 * (below 1024), and a token bucket bounds its echoes, and another its log
 * (the lab sheet's "Echo loops and reflection").
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
#include <time.h>
#include <unistd.h>

#define SYNOPSIS "usage: server [PORT] [--bind ADDR] [--drop PERCENT]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 06: UDP echo server. Sends every datagram back to whoever sent it; one\n"
    "socket serves every client, with no connection to anyone.\n"
    "\n"
    "Never answers a datagram from its own port or from a port below 1024 (a\n"
    "service's): either would start an echo loop. Echoes at most 500 datagrams\n"
    "at once, then 1000 a second; logs at most 100 at once, then 10 a second,\n"
    "and says how many it did not log.\n"
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

/* Echoes at most: ECHO_BURST at once, then ECHO_RATE a second, whoever asks.
 * Far more than any ping needs; it ends the loop of two echo servers that
 * bounce one forged datagram, and bounds what a flood of forged datagrams
 * can make us send to their victim. */
#define ECHO_BURST 500
#define ECHO_RATE 1000
/* Datagram lines logged at most: LOG_BURST at once, then LOG_RATE a second;
 * the others are counted, and said in one line. A flood must not fill the
 * disk. */
#define LOG_BURST 100
#define LOG_RATE 10
/* Source ports below this one are services' (echo 7, chargen 19, DNS 53,
 * NTP 123), which answer too; clients send from higher ones. */
#define FIRST_CLIENT_PORT 1024

/* A token bucket: it holds at most burst tokens and gains rate a second;
 * each use takes one, and with none left the use is refused. So burst uses
 * pass at once, then rate a second. Counted in millionths of a token, in
 * integers, so that the Rust server counts the very same. */
struct bucket {
    unsigned long long burst, rate;
    unsigned long long millionths; /* what it holds */
    unsigned long long filled_us;  /* when it was last filled */
};

/* The log of datagrams: one line each, as long as its bucket allows
 * (LOG_BURST at once, then LOG_RATE a second). The others are counted, and
 * said in one line before the next line logged. */
struct datagram_log {
    struct bucket lines;
    unsigned long long echoed, dropped; /* not logged since the last line */
};

static _Noreturn void die(const char *call, const char *what);
static int drops(unsigned long long n, unsigned long percent);
static unsigned port_of(const struct sockaddr_storage *ss);
static int take_token(struct bucket *b, unsigned long long now);
static void log_datagram(struct datagram_log *dlog, unsigned long long now, ssize_t n,
                         const struct sockaddr_storage *peer, const char *dropped);
static unsigned long long now_us(void);
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
    unsigned our_port = port_of(&local);
    char drop_note[32];
    snprintf(drop_note, sizeof drop_note, "--drop %lu", drop_percent);
    struct bucket echoes = { ECHO_BURST, ECHO_RATE, ECHO_BURST * 1000000ULL, 0 };
    struct datagram_log datagram_log = { { LOG_BURST, LOG_RATE, LOG_BURST * 1000000ULL, 0 }, 0, 0 };
    unsigned long long started = now_us();
    for (;;) {
        struct sockaddr_storage peer;
        len = sizeof peer;
        ssize_t n = recvfrom(sock, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("recvfrom", local_str);
        }
        unsigned long long now = now_us() - started;
        /* n == 0 is an empty datagram, not an end of file: there is no
         * connection to end. It gets its empty echo like any other.
         *
         * The sender's address is whatever the sender wrote in it: UDP
         * checks nothing. Why this datagram gets no echo, if it gets none: */
        unsigned from_port = port_of(&peer);
        const char *dropped = NULL;
        if (from_port == our_port) {
            /* Ourselves, forged: we would echo to ourselves for ever. Or
             * another echo server on our port: the port-7-to-port-7 loop. */
            dropped = "from our own port: an echo loop";
        } else if (from_port < FIRST_CLIENT_PORT) {
            /* A service that answers too: we would bounce with it for ever. */
            dropped = "from a service port below 1024";
        } else {
            received++;
            if (drops(received, drop_percent))
                dropped = drop_note;
            else if (!take_token(&echoes, now))
                /* Two echo servers bounce a forged datagram until one of
                 * them runs out of echoes: here it ends. */
                dropped = "over the echo limit";
        }
        log_datagram(&datagram_log, now, n, &peer, dropped);
        if (dropped)
            continue;
        /* A datagram goes whole or not at all: no partial sends, no writen
         * loop (udp(7)). A failure concerns this client only: say so and go on. */
        if (sendto(sock, buf, (size_t)n, 0, (struct sockaddr *)&peer, len) < 0) {
            char peer_str[ADDR_TEXT];
            fprintf(stderr, "sendto %s: %s\n", addr_text(&peer, peer_str), strerror(errno));
        }
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

/* The port of an IPv4 or IPv6 address (0 for any other family). */
static unsigned port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return 0;
}

/* Takes a token from b at now (microseconds since the server started), if
 * there is one: 1, or 0 when it is empty. */
static int take_token(struct bucket *b, unsigned long long now)
{
    unsigned long long full = b->burst * 1000000ULL;
    unsigned long long elapsed = now - b->filled_us;
    if (elapsed > full) /* full anyway; and elapsed * rate cannot overflow */
        elapsed = full;
    /* rate tokens a second are rate millionths a microsecond. */
    b->millionths += elapsed * b->rate;
    if (b->millionths > full)
        b->millionths = full;
    b->filled_us = now;
    if (b->millionths < 1000000ULL)
        return 0;
    b->millionths -= 1000000ULL;
    return 1;
}

/* The datagram of n bytes from peer, dropped for a reason or (NULL) echoed. */
static void log_datagram(struct datagram_log *dlog, unsigned long long now, ssize_t n,
                         const struct sockaddr_storage *peer, const char *dropped)
{
    if (!take_token(&dlog->lines, now)) {
        if (dropped)
            dlog->dropped++;
        else
            dlog->echoed++;
        return;
    }
    if (dlog->echoed + dlog->dropped > 0) {
        printf("... %llu more datagrams not logged (%llu echoed, %llu dropped)\n",
               dlog->echoed + dlog->dropped, dlog->echoed, dlog->dropped);
        dlog->echoed = dlog->dropped = 0;
    }
    char peer_str[ADDR_TEXT];
    addr_text(peer, peer_str);
    if (dropped)
        printf("datagram of %zd bytes from %s dropped (%s)\n", n, peer_str, dropped);
    else
        printf("datagram of %zd bytes from %s\n", n, peer_str);
}

/* Microseconds on a clock that never jumps (clock_gettime(2), CLOCK_MONOTONIC). */
static unsigned long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000 + (unsigned long long)ts.tv_nsec / 1000;
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
