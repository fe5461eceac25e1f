/*
 * Lab 06: the UDP echo client, with timeouts and retransmission (UNP's
 * udpcli01 and dg_cli, with the sequence numbers, timeout and retransmission
 * of dg_send_recv in UNP's section 22.5, poll(2) in place of alarm(2); Beej's
 * talker.c for sendto).
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
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o client-c client.c ../common/labs.c
 * Run:   ./client-c [HOST] [PORT] [--timeout MS] [--retries N] [--connect]
 *                   [--count N [--interval MS] [--size B]]
 */
/* The starter: write each TODO (the lesson's calls), then `make` and
 * `make check LAB=06-udp`. The answer is the lab's client.c. */
#include "labs.h"

#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <sys/uio.h>

static const char usage[] =
    "usage: client [HOST] [PORT] [--timeout MS] [--retries N] [--connect] [--count N "
    "[--interval MS] [--size B]]\n"
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

/* A line longer than this goes in pieces, one datagram each. With its
 * sequence number a piece fills a 65536-byte datagram: larger than UDP
 * allows (65507 bytes over IPv4, 65527 over IPv6), so sendto(2) refuses
 * such a line with EMSGSIZE rather than cut it. */
#define MAXLINE (65536 - 4)
#define MAX_TIMEOUT_MS 60000 /* the longest --timeout: one minute */

/* The socket, where it sends, and how patient it is. */
static int sockfd;
static struct sockaddr_storage servaddr;
static socklen_t servlen;
static char server[ADDR_TEXT];
static int connected; /* connect(2) was called: send/recv */
static unsigned long timeout_ms = 1000, retries = 3;
/* Where echoes are received: as large as the largest datagram we send. A
 * longer datagram is cut to fit and flagged MSG_TRUNC. */
static unsigned char recvline[MAXLINE + 4];
static size_t recvlen = sizeof recvline;

/* What the client has seen, for the statistics at the end. */
static struct {
    unsigned long long sent;     /* datagrams sent, one per sequence number */
    unsigned long long received; /* of those, how many got their echo */
    unsigned long long retransmissions;
    unsigned long long ignored; /* datagrams that were not the echo awaited */
    unsigned long long rtt_min_us, rtt_max_us, rtt_sum_us;
} stats;

/* `call ADDR: reason` and exit 1, with a word on the two errors a datagram
 * socket teaches. */
static _Noreturn void fail(const char *call)
{
    int err = errno;
    fprintf(stderr, "%s %s: %s\n", call, server, strerror(err));
    if (err == ECONNREFUSED)
        fprintf(stderr, "(an ICMP port unreachable came back: nothing receives on %s)\n", server);
    else if (err == EMSGSIZE)
        fprintf(stderr, "(a UDP datagram holds at most 65507 bytes over IPv4, 65527 over IPv6)\n");
    exit(1);
}

/* One datagram in: its length, its sender in *from, or -1 when there is
 * none to look at: a signal came, or it was cut (said here). */
static ssize_t receive(struct sockaddr_storage *from, socklen_t *fromlen)
{
    ssize_t n;
    int truncated;
    char text[ADDR_TEXT];

    if (connected) {
        /* Linux: with MSG_TRUNC, recv(2) returns the datagram's real length
         * even when it did not fit (udp(7)); the sender can only be the
         * connected peer. */
        if ((n = recv(sockfd, recvline, recvlen, MSG_TRUNC)) < 0 && errno != EINTR)
            fail("recv");
        truncated = n > (ssize_t)recvlen;
        if (truncated)
            n = (ssize_t)recvlen;
        *from = servaddr;
        *fromlen = servlen;
    } else {
        /* recvfrom(2) would cut a long datagram without a word; recvmsg(2)
         * also tells the sender, and sets MSG_TRUNC in msg_flags when the
         * datagram did not fit (recv(2)). */
        struct iovec iov = { .iov_base = recvline, .iov_len = recvlen };
        struct msghdr msg = { .msg_name = from, .msg_namelen = sizeof *from,
                              .msg_iov = &iov, .msg_iovlen = 1 };
        if ((n = recvmsg(sockfd, &msg, 0)) < 0 && errno != EINTR)
            fail("recvmsg");
        truncated = (msg.msg_flags & MSG_TRUNC) != 0;
        *fromlen = msg.msg_namelen;
    }
    if (n < 0)
        return -1; /* EINTR */
    if (truncated) {
        stats.ignored++;
        fprintf(stderr, "datagram from %s ignored: longer than the %zu bytes of any echo of ours (MSG_TRUNC)\n",
                sock_ntop((struct sockaddr *)from, text), recvlen);
        return -1;
    }
    return n;
}

/* Whether the n bytes received from *from are the echo of datagram (seq)
 * awaited; says why not. */
static int is_echo(size_t n, const struct sockaddr_storage *from, socklen_t fromlen,
                   uint32_t seq, const unsigned char *datagram, size_t len, int awaited)
{
    char text[ADDR_TEXT];
    uint32_t got_seq = 0;

    sock_ntop((const struct sockaddr *)from, text);
    /* An unconnected socket takes datagrams from anyone (UNP, section 8.8). */
    if (!connected && (fromlen != servlen || memcmp(from, &servaddr, servlen) != 0)) {
        fprintf(stderr, "datagram of %zu bytes from %s ignored: not from %s\n", n, text, server);
        return 0;
    }
    if (n >= 4) {
        memcpy(&got_seq, recvline, 4);
        got_seq = ntohl(got_seq);
    }
    int same = n == len && memcmp(recvline, datagram, len) == 0;
    if (awaited && same)
        return 1;
    if (got_seq != 0 && (got_seq < seq || (got_seq == seq && same)))
        fprintf(stderr, "echo of seq %u ignored: late or duplicate\n", got_seq);
    else
        fprintf(stderr, "datagram of %zu bytes from %s ignored: not an echo of ours\n", n, text);
    return 0;
}

/* Reads what arrives until deadline_us. Returns 1 as soon as the echo of
 * datagram (numbered seq) arrives while awaited, 0 at the deadline.
 * Anything else is reported and ignored. */
static int wait_echo(long long deadline_us, uint32_t seq, const unsigned char *datagram,
                     size_t len, int awaited)
{
    struct pollfd fds[1] = { { .fd = sockfd, .events = POLLIN } };
    struct sockaddr_storage from;
    socklen_t fromlen;
    long long left;
    ssize_t n;

    while ((left = deadline_us - now_us()) > 0) {
        /* TODO poll(2) fds for at most left microseconds (in ms, rounded up):
         * 0 ready is the timeout (return 0); EINTR: again; an error: die("poll", server) */
        todo("poll(2) with a timeout");
        /* POLLERR too means "call recv": it returns the pending error. */
        if ((n = receive(&from, &fromlen)) < 0)
            continue;
        if (is_echo((size_t)n, &from, fromlen, seq, datagram, len, awaited))
            return 1;
        stats.ignored++;
    }
    return 0;
}

/* An echo came, rtt_us after the first send of its datagram: the statistics. */
static void record(unsigned long long rtt_us)
{
    if (stats.received == 0 || rtt_us < stats.rtt_min_us)
        stats.rtt_min_us = rtt_us;
    if (rtt_us > stats.rtt_max_us)
        stats.rtt_max_us = rtt_us;
    stats.rtt_sum_us += rtt_us;
    stats.received++;
}

/* Sends datagram and waits for its echo, sending it again after each
 * timeout, retries times at most (UNP's dg_send_recv). Returns 1 with the
 * round-trip time from the first send in *rtt_us, or 0 when the datagram
 * counts as lost. */
static int dg_send_recv(uint32_t seq, const unsigned char *datagram, size_t len,
                        unsigned long long *rtt_us)
{
    long long first_sent = now_us();
    ssize_t sent;

    stats.sent++;
    /* TODO the retransmission: for each attempt from 0 to retries: send the datagram,
     * then wait_echo(now_us() + timeout_ms * 1000, seq, datagram, len, 1); its echo
     * came: *rtt_us = now_us() - first_sent, record(*rtt_us), return 1. Each attempt
     * after the first counts in stats.retransmissions and is said on stderr first:
     * "seq %u: no echo within %lu ms, sending it again (%lu of %lu)\n" */
    /* TODO send the datagram: send(2) if connected, else sendto(2) to servaddr;
     * EINTR: again; an error: fail("send") or fail("sendto") */
    todo("the retransmission, sendto(2)");
    fprintf(stderr, "seq %u: no echo within %lu ms, lost\n", seq, timeout_ms);
    return 0;
}

/* Microseconds as milliseconds with three decimals: 1234 -> "1.234". */
static const char *millis(unsigned long long us, char *out)
{
    snprintf(out, 32, "%llu.%03llu", us / 1000, us % 1000);
    return out;
}

/* The statistics, as ping(8) gives them. Loss in tenths of a percent,
 * rounded, in integers: the Rust client prints the very same figures. */
static void print_stats(FILE *out)
{
    unsigned long long lost = stats.sent - stats.received;
    unsigned long long tenths = stats.sent == 0 ? 0 : (lost * 1000 + stats.sent / 2) / stats.sent;
    char min[32], avg[32], max[32];

    fprintf(out, "%llu datagrams sent, %llu received, %llu.%llu%% loss, %llu retransmissions, %llu ignored\n",
            stats.sent, stats.received, tenths / 10, tenths % 10, stats.retransmissions,
            stats.ignored);
    if (stats.received > 0)
        fprintf(out, "rtt min/avg/max = %s/%s/%s ms\n", millis(stats.rtt_min_us, min),
                millis(stats.rtt_sum_us / stats.received, avg), millis(stats.rtt_max_us, max));
}

/* Line mode (UNP's dg_cli): each line of stdin goes as one datagram, after
 * its sequence number; its echo, without the number, goes to stdout. */
static void dg_cli(void)
{
    static unsigned char sendline[4 + MAXLINE];
    unsigned long long rtt_us;
    uint32_t seq = 0, net;
    ssize_t n;

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "sending to %s over UDP; type lines, Ctrl-D to end\n", server);
    while ((n = readline(STDIN_FILENO, sendline + 4, MAXLINE)) > 0) {
        seq++; /* unsigned: wraps after 2^32 lines */
        net = htonl(seq);
        memcpy(sendline, &net, 4);
        if (dg_send_recv(seq, sendline, 4 + (size_t)n, &rtt_us) &&
            writen(STDOUT_FILENO, sendline + 4, (size_t)n) < 0)
            die("write", "stdout");
    }
    if (n < 0)
        die("read", "stdin");
    print_stats(stderr);
}

/* Ping mode: count datagrams of size bytes, one every interval_ms. */
static void ping(unsigned long count, unsigned long interval_ms, size_t size)
{
    static unsigned char datagram[65535];
    unsigned long long rtt_us, retransmissions;
    char ms[32], again[64];

    printf("UDP PING %s: %lu datagrams of %zu bytes\n", server, count, size);
    for (unsigned long seq = 1; seq <= count; seq++) {
        long long started = now_us();
        /* The sequence number in network byte order (htonl(3)), then filler. */
        uint32_t net = htonl((uint32_t)seq);
        for (size_t i = 0; i < size; i++)
            datagram[i] = (unsigned char)i;
        memcpy(datagram, &net, 4);
        retransmissions = stats.retransmissions;
        if (dg_send_recv((uint32_t)seq, datagram, size, &rtt_us)) {
            retransmissions = stats.retransmissions - retransmissions;
            if (retransmissions == 0)
                again[0] = '\0';
            else
                snprintf(again, sizeof again, " (%llu retransmission%s)", retransmissions,
                         retransmissions == 1 ? "" : "s");
            printf("%zu bytes from %s: seq=%lu time=%s ms%s\n", size, server, seq,
                   millis(rtt_us, ms), again);
        }
        if (seq < count) /* meanwhile, late echoes are read and ignored */
            wait_echo(started + (long long)interval_ms * 1000, (uint32_t)seq, datagram, size, 0);
    }
    printf("\n--- %s udp ping statistics ---\n", server);
    print_stats(stdout);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "timeout", required_argument, NULL, 't' },
        { "retries", required_argument, NULL, 'r' },
        { "connect", no_argument, NULL, 'c' },
        { "count", required_argument, NULL, 'n' },
        { "interval", required_argument, NULL, 'i' },
        { "size", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *host = DEFAULT_HOST;
    unsigned short port = DEFAULT_PORT;
    unsigned long count = 0, interval_ms = 1000, size = 64;
    int ping_mode = 0, interval_given = 0, size_given = 0, c;

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        /* An echo takes some time even on loopback: with 0 every datagram
         * would count as lost. 60 s is the smallest cap RFC 6298 (2.5)
         * allows on TCP's retransmission timeout. */
        case 't': timeout_ms = parse_number(optarg, "MS", 1, MAX_TIMEOUT_MS); break;
        case 'r': retries = parse_number(optarg, "N", 0, UINT32_MAX); break;
        case 'c': connected = 1; break;
        case 'n': count = parse_number(optarg, "N", 0, UINT32_MAX); ping_mode = 1; break;
        case 'i': interval_ms = parse_number(optarg, "MS", 0, UINT32_MAX); interval_given = 1; break;
        case 's': size = parse_number(optarg, "B", 4, 65535); size_given = 1; break;
        case 'h': help();
        default: bad_usage(); /* getopt_long(3) said what was wrong */
        }
    }
    if (!ping_mode && (interval_given || size_given))
        usage_error("%s goes with --count (ping mode)", size_given ? "--size" : "--interval");
    if (optind < argc)
        host = argv[optind++];
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);

    /* Each line of the ping leaves as printed, even into a pipe (setvbuf(3)). */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* getaddrinfo(3) turns the name into addresses. UDP has no handshake to
     * try them with: take the first. */
    struct addrinfo hints, *res;
    char service[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    snprintf(service, sizeof service, "%u", port);
    int rv = getaddrinfo(host, service, &hints, &res);
    if (rv != 0) {
        fprintf(stderr, "getaddrinfo %s: %s\n", host,
                rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
        exit(1);
    }
    memcpy(&servaddr, res->ai_addr, res->ai_addrlen);
    servlen = res->ai_addrlen;
    freeaddrinfo(res);
    sock_ntop((struct sockaddr *)&servaddr, server);

    /* TODO socket(2) SOCK_DGRAM of servaddr's family into sockfd; with --connect
     * (connected), connect(2) it to servaddr; errors: die("socket", server)... */
    todo("socket(2), connect(2) with --connect");

    if (ping_mode) {
        recvlen = size;
        ping(count, interval_ms, size);
    } else {
        dg_cli();
    }
    if (stats.sent > 0 && stats.received == 0)
        fprintf(stderr, "no echo at all from %s: is a server running there?\n", server);
    return stats.received == stats.sent ? 0 : 1;
}
