/*
 * Lab 06: the UDP echo server (UNP's udpserv01 and dg_echo; Beej's
 * listener.c, answering each datagram).
 *
 * socket(SOCK_DGRAM) -> bind -> loop { recvfrom -> sendto }. No listen, no
 * accept, no connection: one socket receives the datagrams of every client,
 * and recvfrom(2) says who sent each one, so that sendto(2) can answer.
 *
 * Nobody checks that sender's address: a datagram forged to come from the
 * server itself, or from another echo server, would start an echo loop that
 * never ends. So dg_echo never answers its own port nor a service port
 * (below 1024), and a token bucket bounds its echoes, and another its log
 * (the lab sheet's "Echo loops and reflection").
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o server-c server.c ../common/labs.c
 * Run:   ./server-c [PORT] [--bind ADDR] [--drop PERCENT]
 */
/* The starter: write each TODO (the lesson's calls), then `make` and
 * `make check LAB=06-udp`. The answer is the lab's server.c. */
#include "labs.h"

static const char usage[] =
    "usage: server [PORT] [--bind ADDR] [--drop PERCENT]\n"
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

/* Whether --drop PERCENT leaves the datagram numbered n (from 1) unanswered:
 * exactly PERCENT of every 100, spread evenly, so that runs repeat exactly
 * (and the Rust server drops the same ones). */
static int drops(unsigned long long n, unsigned long percent)
{
    return n * percent / 100 != (n - 1) * percent / 100;
}

/* The log: one line per datagram, as long as its bucket allows. The others
 * are counted, and said in one line before the next line logged. */
static struct token_bucket log_lines;
static unsigned long long not_logged_echoed, not_logged_dropped;

static void log_datagram(unsigned long long now, ssize_t n, const struct sockaddr *cliaddr,
                         const char *dropped)
{
    char peer[ADDR_TEXT];

    if (!token_bucket_take(&log_lines, now)) {
        if (dropped)
            not_logged_dropped++;
        else
            not_logged_echoed++;
        return;
    }
    if (not_logged_echoed + not_logged_dropped > 0) {
        printf("... %llu more datagrams not logged (%llu echoed, %llu dropped)\n",
               not_logged_echoed + not_logged_dropped, not_logged_echoed, not_logged_dropped);
        not_logged_echoed = not_logged_dropped = 0;
    }
    sock_ntop(cliaddr, peer);
    if (dropped)
        printf("datagram of %zd bytes from %s dropped (%s)\n", n, peer, dropped);
    else
        printf("datagram of %zd bytes from %s\n", n, peer);
}

/* Sends every datagram back to its sender, unless the sender must not be
 * answered. No listen(), no accept(): datagrams from every client arrive
 * on this one socket, each whole, in one recvfrom(2) call each. */
static void dg_echo(int sockfd, const char *local, unsigned short our_port,
                    unsigned long drop_percent)
{
    static char mesg[MAX_DATAGRAM];
    struct sockaddr_storage cliaddr;
    socklen_t len;
    ssize_t n;
    unsigned long long received = 0, started = (unsigned long long)now_us();
    struct token_bucket echoes;
    char drop_note[32], peer[ADDR_TEXT];

    token_bucket_init(&echoes, ECHO_BURST, ECHO_RATE);
    token_bucket_init(&log_lines, LOG_BURST, LOG_RATE);
    snprintf(drop_note, sizeof drop_note, "--drop %lu", drop_percent);
    for (;;) {
        /* TODO recvfrom(2) into mesg, the sender in cliaddr (len set before each call);
         * EINTR: again; another error: die("recvfrom", local) */
        todo("recvfrom(2)");
        unsigned long long now = (unsigned long long)now_us() - started;
        /* n == 0 is an empty datagram, not an end of file: there is no
         * connection to end. It gets its empty echo like any other.
         *
         * The sender's address is whatever the sender wrote in it: UDP
         * checks nothing. Why this datagram gets no echo, if it gets none: */
        unsigned short from_port = port_of((struct sockaddr *)&cliaddr);
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
            else if (!token_bucket_take(&echoes, now))
                /* Two echo servers bounce a forged datagram until one of
                 * them runs out of echoes: here it ends. */
                dropped = "over the echo limit";
        }
        log_datagram(now, n, (struct sockaddr *)&cliaddr, dropped);
        if (dropped)
            continue;
        /* A datagram goes whole or not at all: no partial sends, no writen
         * loop (udp(7)). A failure concerns this client only: say so and go on. */
        /* TODO sendto(2) the n bytes back to cliaddr; a failure: "sendto PEER: reason" on stderr */
        todo("sendto(2)");
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "bind", required_argument, NULL, 'b' },
        { "drop", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *bind_ip = "0.0.0.0";
    unsigned short port = DEFAULT_PORT;
    unsigned long drop_percent = 0;
    int c;

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': bind_ip = optarg; break;
        case 'd': drop_percent = parse_number(optarg, "PERCENT", 0, 100); break;
        case 'h': help();
        default: bad_usage(); /* getopt_long(3) said what was wrong */
        }
    }
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);

    struct sockaddr_storage servaddr;
    socklen_t servlen = parse_addr(bind_ip, port, &servaddr);
    char addr[ADDR_TEXT], local[ADDR_TEXT];
    sock_ntop((struct sockaddr *)&servaddr, addr);

    /* Each log line leaves as printed, even into a pipe (setvbuf(3)). */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* SOCK_DGRAM: UDP, datagrams instead of a byte stream (socket(2), udp(7)). */
    int sockfd = -1;
    /* TODO socket(2) SOCK_DGRAM of servaddr's family, bind(2) to servaddr, then
     * getsockname(2) back into servaddr (the port chosen); errors: die("socket", addr)... */
    todo("socket(2), bind(2)");
    printf("listening on %s\n", sock_ntop((struct sockaddr *)&servaddr, local));

    dg_echo(sockfd, local, port_of((struct sockaddr *)&servaddr), drop_percent);
}
