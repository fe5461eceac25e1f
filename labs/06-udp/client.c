/*
 * Lab 06: the UDP echo client, with timeouts and retransmission, in C (the
 * twin of client.rs).
 *
 * socket(SOCK_DGRAM) -> loop { sendto a numbered datagram -> poll with a
 * timeout -> recvmsg its echo, or sendto again } -> statistics. Nothing tells
 * a UDP sender that a datagram was lost: the client notices that no echo
 * came in time, and sends again. Echoes that come late or twice carry an old
 * sequence number: they are recognised and ignored.
 *
 * With --connect: connect -> send/recv, and a port nobody listens on is
 * reported at once (ICMP port unreachable becomes ECONNREFUSED).
 *
 * Build: make c (or: cc -Wall -Wextra -O2 -o client-c client.c)
 * Run:   ./client-c [HOST] [PORT] [--timeout MS] [--retries N] [--connect]
 *                   [--count N [--interval MS] [--size B]]
 *
 * Same arguments, messages, exit status and system calls as ./client (client.rs).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SYNOPSIS                                                                        \
    "usage: client [HOST] [PORT] [--timeout MS] [--retries N] [--connect] [--count N " \
    "[--interval MS] [--size B]]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 06: UDP echo client. Sends each line of stdin as one datagram with a\n"
    "sequence number, waits for its echo with poll(), and sends it again when no\n"
    "echo comes in time. With --count it pings instead, as ping(8) does: N\n"
    "datagrams, the round-trip time of each, and the statistics.\n"
    "\n"
    "  HOST           server name or address (default 127.0.0.1; localhost and IPv6 such as ::1 work)\n"
    "  PORT           server port (default 4242)\n"
    "  --timeout MS   how long to wait for the echo of each send before sending again\n"
    "                 (default 1000; 1 to 60000)\n"
    "  --retries N    how many times to send again before counting a datagram lost (default 3)\n"
    "  --connect      connect() the socket, then send/recv: a port nobody listens on is\n"
    "                 reported at once (ICMP port unreachable comes back as ECONNREFUSED)\n"
    "  --count N      ping mode: send N datagrams, print each round trip and the statistics\n"
    "  --interval MS  ping mode: time from one datagram to the next (default 1000)\n"
    "  --size B       ping mode: bytes in each datagram, its 4-byte sequence number\n"
    "                 included (default 64; 4 to 65535)\n"
    "  --help         print this help\n"
    "\n"
    "Exit status: 0 every datagram was echoed; 1 a call failed, or a datagram got\n"
    "no echo after all its retransmissions; 2 bad arguments.\n";

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 4242
#define U32_MAX 4294967295UL
#define MAX_TIMEOUT_MS 60000UL /* the longest --timeout: one minute */
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* A line longer than this goes in pieces, one datagram each. With its
 * sequence number a piece fills a 65536-byte datagram: larger than UDP
 * allows (65507 bytes over IPv4, 65527 over IPv6), so sendto(2) refuses
 * such a line with EMSGSIZE rather than cut it. */
#define MAX_LINE (65536 - 4)

/* What the client has seen, for the statistics at the end. */
static struct {
    unsigned long long sent;     /* datagrams sent, one per sequence number */
    unsigned long long received; /* of those, how many got their echo */
    unsigned long long retransmissions;
    unsigned long long ignored;  /* datagrams that were not the echo awaited */
    unsigned long long rtt_min_us, rtt_max_us, rtt_sum_us;
} stats;

/* The socket, where it sends, and how patient it is. */
static int sock;
static struct sockaddr_storage server;
static socklen_t server_len;
static char server_str[ADDR_TEXT];
static int connected; /* connect(2) was called: send/recv */
static unsigned long timeout_ms, retries;
/* Where echoes are received: as large as the largest datagram we send. A
 * longer datagram is cut to fit and flagged MSG_TRUNC. */
static unsigned char buf[MAX_LINE + 4];
static size_t buf_len;

static void echo_lines(void);
static void send_line(uint32_t *seq, const char *line, size_t len);
static void ping(unsigned long count, unsigned long interval_ms, size_t size);
static int exchange(uint32_t seq, const unsigned char *datagram, size_t len,
                    unsigned long long *rtt_us);
static void send_datagram(const unsigned char *datagram, size_t len);
static int wait_echo(long long deadline_us, uint32_t seq, const unsigned char *datagram,
                     size_t len, int awaited);
static ssize_t receive(struct sockaddr_storage *from);
static int is_echo(size_t n, const struct sockaddr_storage *from, uint32_t seq,
                   const unsigned char *datagram, size_t len, int awaited);
static void record(unsigned long long rtt_us);
static void print_stats(FILE *out);
static _Noreturn void fail(const char *call);
static _Noreturn void die(const char *call, const char *what);
static long long now_us(void);
static const char *millis(unsigned long long us, char *out);
static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
static int writen(int fd, const char *data, size_t len);
static const char *addr_text(const struct sockaddr_storage *ss, char *out);
static void read_args(int argc, char **argv);
static int take_flag(const char *name);
static const char *take_value(const char *name, const char *what);
static unsigned long take_number(const char *name, const char *what, unsigned long dflt,
                                 int *given);
static const char *take_positional(void);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int parse_number(const char *text, unsigned long max, unsigned long *value,
                        const char **why);

int main(int argc, char **argv)
{
    /* stdout is a pipe when a test or a script reads us: flush each line as
     * it is printed, not when a 4 KiB buffer fills (setvbuf(3)). */
    setvbuf(stdout, NULL, _IOLBF, 0);

    read_args(argc, argv);
    int given, count_given, interval_given, size_given;
    timeout_ms = take_number("--timeout", "MS", 1000, &given);
    retries = take_number("--retries", "N", 3, &given);
    connected = take_flag("--connect");
    unsigned long count = take_number("--count", "N", 0, &count_given);
    unsigned long interval_ms = take_number("--interval", "MS", 1000, &interval_given);
    unsigned long size = take_number("--size", "B", 64, &size_given);
    /* An echo takes some time even on loopback: with 0 every datagram would
     * count as lost. 60 s is the smallest cap RFC 6298 (2.5) allows on TCP's
     * retransmission timeout; a lab client need not wait longer. */
    if (timeout_ms < 1 || timeout_ms > MAX_TIMEOUT_MS)
        usage_error("invalid MS '%lu': from 1 to %lu milliseconds", timeout_ms, MAX_TIMEOUT_MS);
    if (!count_given && (interval_given || size_given))
        usage_error("%s goes with --count (ping mode)", size_given ? "--size" : "--interval");
    if (size < 4 || size > 65535)
        usage_error("invalid B '%lu': a datagram of this client holds 4 to 65535 bytes", size);
    const char *host = take_positional();
    if (host == NULL)
        host = DEFAULT_HOST;
    unsigned long port = take_port();
    finish_args();

    /* getaddrinfo(3) turns the name into addresses. UDP has no handshake to
     * try them with: take the first. */
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *found;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%lu", port);
    int rc = getaddrinfo(host, port_text, &hints, &found);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo %s: %s\n", host, gai_strerror(rc));
        exit(1);
    }
    memcpy(&server, found->ai_addr, found->ai_addrlen);
    server_len = found->ai_addrlen;
    freeaddrinfo(found);
    addr_text(&server, server_str);

    sock = socket(server.ss_family, SOCK_DGRAM, 0);
    if (sock < 0)
        die("socket", server_str);
    if (connected) {
        /* connect(2) on a UDP socket sends nothing: it records the peer, so
         * that send/recv need no address, datagrams from anyone else are
         * dropped, and ICMP errors about the peer are reported to us. */
        if (connect(sock, (struct sockaddr *)&server, server_len) < 0)
            die("connect", server_str);
    }
    buf_len = count_given ? size : sizeof buf;

    if (count_given)
        ping(count, interval_ms, size);
    else
        echo_lines();

    if (stats.sent > 0 && stats.received == 0)
        fprintf(stderr, "no echo at all from %s: is a server running there?\n", server_str);
    return stats.received == stats.sent ? 0 : 1;
}

/* Line mode: each line of stdin goes as one datagram; its echo, without the
 * sequence number, goes to stdout. The statistics go to stderr at the end. */
static void echo_lines(void)
{
    if (isatty(0))
        fprintf(stderr, "sending to %s over UDP; type lines, Ctrl-D to end\n", server_str);
    static char line[MAX_LINE]; /* what stdin gave that is not sent yet */
    size_t len = 0;
    uint32_t seq = 0;
    for (;;) {
        ssize_t n = read(0, line + len, sizeof line - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read", "stdin");
        }
        if (n == 0) {
            /* End of stdin; a last line without newline still goes. */
            if (len > 0)
                send_line(&seq, line, len);
            break;
        }
        len += (size_t)n;
        /* Cut out the complete lines; a full buffer without a newline goes
         * as a piece of a longer line. */
        size_t start = 0;
        for (;;) {
            char *newline = memchr(line + start, '\n', len - start);
            size_t end;
            if (newline != NULL)
                end = (size_t)(newline - line) + 1;
            else if (start == 0 && len == sizeof line)
                end = len;
            else
                break;
            send_line(&seq, line + start, end - start);
            start = end;
        }
        memmove(line, line + start, len - start);
        len -= start;
    }
    print_stats(stderr);
}

/* Sends one line under the next sequence number; prints its echo. */
static void send_line(uint32_t *seq, const char *line, size_t len)
{
    static unsigned char datagram[4 + MAX_LINE];
    (*seq)++; /* unsigned: wraps after 2^32 lines */
    uint32_t net = htonl(*seq);
    memcpy(datagram, &net, 4);
    memcpy(datagram + 4, line, len);
    unsigned long long rtt_us;
    if (exchange(*seq, datagram, 4 + len, &rtt_us) && writen(1, line, len) < 0)
        die("write", "stdout");
}

/* Ping mode: count datagrams of size bytes, one every interval_ms. */
static void ping(unsigned long count, unsigned long interval_ms, size_t size)
{
    static unsigned char datagram[65535];
    printf("UDP PING %s: %lu datagrams of %zu bytes\n", server_str, count, size);
    for (unsigned long seq = 1; seq <= count; seq++) {
        long long started = now_us();
        /* The sequence number in network byte order (htonl(3)), then filler bytes. */
        for (size_t i = 0; i < size; i++)
            datagram[i] = (unsigned char)i;
        uint32_t net = htonl((uint32_t)seq);
        memcpy(datagram, &net, 4);
        unsigned long long retransmissions = stats.retransmissions;
        unsigned long long rtt_us;
        if (exchange((uint32_t)seq, datagram, size, &rtt_us)) {
            unsigned long long again = stats.retransmissions - retransmissions;
            char suffix[64] = "";
            if (again == 1)
                snprintf(suffix, sizeof suffix, " (1 retransmission)");
            else if (again > 1)
                snprintf(suffix, sizeof suffix, " (%llu retransmissions)", again);
            char ms[32];
            printf("%zu bytes from %s: seq=%lu time=%s ms%s\n", size, server_str, seq,
                   millis(rtt_us, ms), suffix);
        }
        if (seq < count) /* meanwhile, late echoes are read and ignored */
            wait_echo(started + (long long)interval_ms * 1000, (uint32_t)seq, datagram, size, 0);
    }
    printf("\n--- %s udp ping statistics ---\n", server_str);
    print_stats(stdout);
}

/* Sends datagram and waits for its echo, sending it again after each
 * timeout, retries times at most. Returns 1 with the round-trip time from
 * the first send in *rtt_us, or 0 when the datagram counts as lost. */
static int exchange(uint32_t seq, const unsigned char *datagram, size_t len,
                    unsigned long long *rtt_us)
{
    stats.sent++;
    long long first_sent = now_us();
    for (unsigned long attempt = 0; attempt <= retries; attempt++) {
        if (attempt > 0) {
            stats.retransmissions++;
            fprintf(stderr, "seq %u: no echo within %lu ms, sending it again (%lu of %lu)\n",
                    seq, timeout_ms, attempt, retries);
        }
        send_datagram(datagram, len);
        if (wait_echo(now_us() + (long long)timeout_ms * 1000, seq, datagram, len, 1)) {
            *rtt_us = (unsigned long long)(now_us() - first_sent);
            record(*rtt_us);
            return 1;
        }
    }
    fprintf(stderr, "seq %u: no echo within %lu ms, lost\n", seq, timeout_ms);
    return 0;
}

/* One datagram out: whole, or not at all (udp(7)). */
static void send_datagram(const unsigned char *datagram, size_t len)
{
    for (;;) {
        ssize_t sent = connected
                           ? send(sock, datagram, len, 0)
                           : sendto(sock, datagram, len, 0, (struct sockaddr *)&server, server_len);
        if (sent >= 0)
            return;
        if (errno == EINTR)
            continue;
        fail(connected ? "send" : "sendto");
    }
}

/* Reads what arrives until deadline_us. Returns 1 as soon as the echo of
 * datagram (numbered seq) arrives while awaited, 0 at the deadline.
 * Anything else is reported and ignored. */
static int wait_echo(long long deadline_us, uint32_t seq, const unsigned char *datagram,
                     size_t len, int awaited)
{
    for (;;) {
        long long left = deadline_us - now_us();
        if (left <= 0)
            return 0;
        /* poll(2) counts in milliseconds: round up, or we would wake early
         * and call it again and again for the last fraction. */
        long long ms = (left + 999) / 1000;
        struct pollfd fds[1] = { { .fd = sock, .events = POLLIN } };
        int ready = poll(fds, 1, ms > INT_MAX ? INT_MAX : (int)ms);
        if (ready == 0)
            return 0; /* the timeout: nothing came */
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            die("poll", server_str);
        }
        /* POLLERR too means "call recv": it returns the pending error. */
        struct sockaddr_storage from;
        ssize_t n = receive(&from);
        if (n < 0)
            continue;
        if (is_echo((size_t)n, &from, seq, datagram, len, awaited))
            return 1;
        stats.ignored++;
    }
}

/* One datagram in: its length, with its sender in *from, or -1 (reported)
 * when it was cut because it was longer than any echo of ours. */
static ssize_t receive(struct sockaddr_storage *from)
{
    ssize_t n;
    int truncated;
    if (connected) {
        /* Linux: with MSG_TRUNC, recv(2) returns the datagram's real length
         * even when it did not fit (udp(7)); the sender can only be the
         * connected peer. */
        n = recv(sock, buf, buf_len, MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR)
                return -1;
            fail("recv");
        }
        truncated = (size_t)n > buf_len;
        if (truncated)
            n = (ssize_t)buf_len;
        *from = server;
    } else {
        /* recvfrom(2) would cut a long datagram without a word; recvmsg(2)
         * also tells the sender, and sets MSG_TRUNC in msg_flags when the
         * datagram did not fit (recv(2)). */
        struct iovec iov = { .iov_base = buf, .iov_len = buf_len };
        struct msghdr msg = { .msg_name = from, .msg_namelen = sizeof *from,
                              .msg_iov = &iov, .msg_iovlen = 1 };
        n = recvmsg(sock, &msg, 0);
        if (n < 0) {
            if (errno == EINTR)
                return -1;
            fail("recvmsg");
        }
        truncated = (msg.msg_flags & MSG_TRUNC) != 0;
    }
    if (truncated) {
        char from_str[ADDR_TEXT];
        stats.ignored++;
        fprintf(stderr,
                "datagram from %s ignored: longer than the %zu bytes of any echo of ours "
                "(MSG_TRUNC)\n",
                addr_text(from, from_str), buf_len);
        return -1;
    }
    return n;
}

/* Whether the n bytes in buf from *from are the echo awaited; reports why not. */
static int is_echo(size_t n, const struct sockaddr_storage *from, uint32_t seq,
                   const unsigned char *datagram, size_t len, int awaited)
{
    char from_str[ADDR_TEXT];
    addr_text(from, from_str);
    if (!connected && !same_addr(from, &server)) {
        /* An unconnected socket takes datagrams from anyone. */
        fprintf(stderr, "datagram of %zu bytes from %s ignored: not from %s\n", n, from_str,
                server_str);
        return 0;
    }
    uint32_t got_seq = 0;
    if (n >= 4) {
        memcpy(&got_seq, buf, 4);
        got_seq = ntohl(got_seq);
    }
    int same = n == len && memcmp(buf, datagram, len) == 0;
    if (awaited && same)
        return 1;
    if (got_seq != 0 && (got_seq < seq || (got_seq == seq && same)))
        fprintf(stderr, "echo of seq %u ignored: late or duplicate\n", got_seq);
    else
        fprintf(stderr, "datagram of %zu bytes from %s ignored: not an echo of ours\n", n,
                from_str);
    return 0;
}

static void record(unsigned long long rtt_us)
{
    if (stats.received == 0 || rtt_us < stats.rtt_min_us)
        stats.rtt_min_us = rtt_us;
    if (rtt_us > stats.rtt_max_us)
        stats.rtt_max_us = rtt_us;
    stats.rtt_sum_us += rtt_us;
    stats.received++;
}

/* The statistics, as ping(8) gives them. */
static void print_stats(FILE *out)
{
    /* Loss in tenths of a percent, rounded, in integers: the Rust client
     * prints the very same figures. */
    unsigned long long lost = stats.sent - stats.received;
    unsigned long long tenths = stats.sent == 0 ? 0 : (lost * 1000 + stats.sent / 2) / stats.sent;
    fprintf(out, "%llu datagrams sent, %llu received, %llu.%llu%% loss, %llu retransmissions, "
                 "%llu ignored\n",
            stats.sent, stats.received, tenths / 10, tenths % 10, stats.retransmissions,
            stats.ignored);
    if (stats.received > 0) {
        char min[32], avg[32], max[32];
        fprintf(out, "rtt min/avg/max = %s/%s/%s ms\n", millis(stats.rtt_min_us, min),
                millis(stats.rtt_sum_us / stats.received, avg), millis(stats.rtt_max_us, max));
    }
}

/* `call ADDR: reason` and exit 1, with a word on the two errors a datagram
 * socket teaches. */
static _Noreturn void fail(const char *call)
{
    int err = errno;
    fprintf(stderr, "%s %s: %s\n", call, server_str, strerror(err));
    if (err == ECONNREFUSED)
        fprintf(stderr, "(an ICMP port unreachable came back: nothing receives on %s)\n",
                server_str);
    else if (err == EMSGSIZE)
        fprintf(stderr, "(a UDP datagram holds at most 65507 bytes over IPv4, 65527 over IPv6)\n");
    exit(1);
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
static _Noreturn void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
    exit(1);
}

/* Microseconds on a clock that never jumps (clock_gettime(2), CLOCK_MONOTONIC). */
static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Microseconds as milliseconds with three decimals: 1234 -> "1.234". */
static const char *millis(unsigned long long us, char *out)
{
    snprintf(out, 32, "%llu.%03llu", us / 1000, us % 1000);
    return out;
}

/* Same family, address and port. */
static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    const struct sockaddr_in *x = (const struct sockaddr_in *)a;
    const struct sockaddr_in *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

/* Writes all of data (Stevens' writen): write(2) may write less than asked
 * or be interrupted (EINTR); both mean "again with the rest". */
static int writen(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) { /* write(2) never does this for a non-empty buffer */
            errno = EIO;
            return -1;
        }
        data += n;
        len -= (size_t)n;
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

/* `--name N` with N from 0 to 2^32 - 1, or dflt; *given says which. */
static unsigned long take_number(const char *name, const char *what, unsigned long dflt,
                                 int *given)
{
    const char *text = take_value(name, what);
    *given = text != NULL;
    if (text == NULL)
        return dflt;
    unsigned long value;
    const char *why;
    if (parse_number(text, U32_MAX, &value, &why) < 0)
        usage_error("invalid %s '%s': %s", what, text, why);
    return value;
}

/* The next positional argument, or NULL. */
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

static unsigned long take_port(void)
{
    const char *text = take_positional();
    if (text == NULL)
        return DEFAULT_PORT;
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
