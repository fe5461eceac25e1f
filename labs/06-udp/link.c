/*
 * Lab 06: a lossy link, a UDP relay that plays a bad network on loopback.
 *
 * It stands between the client and the server: the client sends to the
 * link, the link sends on to the server, and the echoes come back the same
 * way. On the way, in each direction, it loses some datagrams, delays the
 * others (a fixed delay, plus or minus a random jitter), sends some twice,
 * and lets some overtake those it holds: what `tc qdisc ... netem` does to
 * a real interface, without root and without netem.
 *
 * Two sockets: one faces the client (bound to the link's port; recvfrom(2)
 * says who the client is), one faces the server (an ephemeral port, as any
 * client's). The datagrams it delays wait in a bounded queue, and poll(2)'s
 * timeout wakes the loop when the first of them is due. Its randomness is
 * a small generator (splitmix64), the same in the Rust twin: with --seed,
 * two runs (and the two twins) lose the very same datagrams.
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o link-c link.c ../common/labs.c
 * Run:   ./link-c [PORT] --to HOST:PORT [--bind ADDR] [--loss PCT] [--delay MS]
 *                 [--jitter MS] [--dup PCT] [--reorder PCT] [--seed N]
 */
#include "labs.h"

#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>

static const char usage[] =
    "usage: link [PORT] --to HOST:PORT [--bind ADDR] [--loss PCT] [--delay MS] [--jitter MS] "
    "[--dup PCT] [--reorder PCT] [--seed N]\n"
    "\n"
    "Lab 06: a lossy link. Relays UDP datagrams between a client and a server,\n"
    "and on the way, in each direction, loses, delays, duplicates and reorders\n"
    "them, as a bad network does (as tc netem does, without root). The client\n"
    "sends to the link's PORT instead of the server's.\n"
    "\n"
    "  PORT           port the client sends to (default 4243; 0 = any free port)\n"
    "  --to HOST:PORT the server, where the datagrams go on to (required)\n"
    "  --bind ADDR    address to receive on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --loss PCT     lose PCT% of the datagrams (default 0)\n"
    "  --delay MS     hold each datagram MS milliseconds (default 0; at most 60000)\n"
    "  --jitter MS    add to each delay a random -MS to +MS milliseconds (default 0)\n"
    "  --dup PCT      send PCT% of the datagrams twice (default 0)\n"
    "  --reorder PCT  send PCT% of the datagrams at once, ahead of those held\n"
    "                 (needs --delay, as netem's reorder)\n"
    "  --seed N       start of the random draws: the same seed, the same fates\n"
    "                 (default: from the clock; the first lines say which)\n"
    "  --help         print this help\n"
    "\n"
    "Ctrl-C (SIGINT) or SIGTERM: prints what it did in each direction, and exits 0.\n";

#define DEFAULT_LINK_PORT 4243 /* the server's default, plus one */
#define MAX_DATAGRAM 65536     /* larger than any UDP datagram (udp(7)) */
#define MAX_DELAY_MS 60000     /* the longest --delay and --jitter: one minute */
/* The queue of delayed datagrams holds at most this many, and this many
 * bytes: whatever the traffic, the link's memory is bounded. Beyond, a
 * datagram is dropped, as a full router queue drops it. */
#define QUEUE_MAX 4096
#define QUEUE_MAX_BYTES (8 << 20)
/* With nothing held, poll(2) still wakes once a second: a signal that came
 * just before the call is then seen within a second. */
#define IDLE_WAKEUP_MS 1000

/* Set by the SIGINT and SIGTERM handler: print the statistics and exit. */
static volatile sig_atomic_t stop;

static void on_stop(int signo)
{
    (void)signo;
    stop = 1;
}

/* splitmix64 (Steele, Lea, Flood 2014): a few lines, good enough draws, the
 * same numbers in Rust (link.rs). */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* True percent times in 100. */
static int draw_percent(uint64_t *state, unsigned long percent)
{
    return next_random(state) % 100 < percent;
}

/* What the link does to each datagram. */
static unsigned long loss_pct, dup_pct, reorder_pct;
static unsigned long long delay_us, jitter_us;

/* One direction of the link: its draws and what it did. */
struct direction {
    const char *name;
    uint64_t random;
    unsigned long long received, lost, duplicated, ahead, queue_full, sent;
};

/* The fate of the next datagram: the delays of its copies, in microseconds,
 * in delays[]; returns how many copies (0: lost; 2: duplicated). The draws,
 * always in this order: loss; then duplication; then for each copy, reorder
 * and jitter. */
static int fate(struct direction *d, unsigned long long delays[2])
{
    int copies;

    d->received++;
    if (draw_percent(&d->random, loss_pct)) {
        d->lost++;
        return 0;
    }
    copies = 1;
    if (draw_percent(&d->random, dup_pct)) {
        d->duplicated++;
        copies = 2;
    }
    for (int i = 0; i < copies; i++) {
        int ahead = draw_percent(&d->random, reorder_pct);
        unsigned long long offset = next_random(&d->random) % (2 * jitter_us + 1);
        if (ahead) {
            d->ahead++;
            delays[i] = 0;
        } else {
            /* delay + offset - jitter, and never below 0. */
            delays[i] = delay_us + offset > jitter_us ? delay_us + offset - jitter_us : 0;
        }
    }
    return copies;
}

/* What it did; held: how many of its datagrams the queue still holds. */
static void report(const struct direction *d, size_t held)
{
    printf("%s: %llu datagrams received, %llu lost, %llu duplicated, %llu sent ahead, "
           "%llu dropped (queue full), %llu sent, %zu still held\n",
           d->name, d->received, d->lost, d->duplicated, d->ahead, d->queue_full, d->sent, held);
}

/* A datagram held until its time: where it goes, and when. */
struct held {
    unsigned long long due_us;
    unsigned long long order; /* arrival order: those due at once keep it */
    int to_server;
    struct sockaddr_storage to;
    socklen_t tolen;
    size_t len;
    char *data;
};

/* The held datagrams, bounded in number and bytes. */
static struct held queue[QUEUE_MAX];
static size_t nheld, held_bytes;
static unsigned long long order;
/* Datagrams dropped since the queue was last full, to say when it has room
 * again. */
static unsigned long long dropped_while_full;

/* Holds the n bytes of data for d until due_us, or drops them if the queue
 * is full. */
static void hold(struct direction *d, unsigned long long due_us, int to_server,
                 const struct sockaddr_storage *to, socklen_t tolen, const char *data, size_t n)
{
    if (nheld >= QUEUE_MAX || held_bytes + n > QUEUE_MAX_BYTES) {
        if (dropped_while_full == 0)
            printf("queue full (%zu datagrams, %zu bytes held): dropping datagrams until it drains\n",
                   nheld, held_bytes);
        dropped_while_full++;
        d->queue_full++;
        return;
    }
    if (dropped_while_full > 0) {
        printf("queue has room again: %llu datagrams dropped while it was full\n",
               dropped_while_full);
        dropped_while_full = 0;
    }
    struct held *h = &queue[nheld];
    if ((h->data = malloc(n > 0 ? n : 1)) == NULL)
        die("malloc", "the queue");
    memcpy(h->data, data, n);
    h->len = n;
    h->due_us = due_us;
    h->order = ++order;
    h->to_server = to_server;
    h->to = *to;
    h->tolen = tolen;
    held_bytes += n;
    nheld++;
}

/* The next datagram to go: the earliest due, first come first; -1 if none. */
static long first_due(void)
{
    long best = -1;
    for (size_t i = 0; i < nheld; i++)
        if (best < 0 || queue[i].due_us < queue[best].due_us ||
            (queue[i].due_us == queue[best].due_us && queue[i].order < queue[best].order))
            best = (long)i;
    return best;
}

/* One datagram in: its length and sender, or -1 after EINTR or an error
 * that concerns one datagram (an ICMP error pending on the socket). */
static ssize_t receive(int sockfd, char *buf, struct sockaddr_storage *from, socklen_t *fromlen,
                       const char *local)
{
    *fromlen = sizeof *from;
    ssize_t n = recvfrom(sockfd, buf, MAX_DATAGRAM, 0, (struct sockaddr *)from, fromlen);
    if (n < 0) {
        if (errno == EINTR)
            return -1;
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) {
            fprintf(stderr, "recvfrom %s: %s\n", local, strerror(errno));
            return -1;
        }
        die("recvfrom", local);
    }
    return n;
}

/* One datagram out, whole or not at all; a failure concerns that datagram. */
static void forward(int sockfd, const struct held *h, struct direction *d)
{
    char text[ADDR_TEXT];
    ssize_t n;

    do
        n = sendto(sockfd, h->data, h->len, 0, (const struct sockaddr *)&h->to, h->tolen);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        fprintf(stderr, "sendto %s: %s\n", sock_ntop((const struct sockaddr *)&h->to, text),
                strerror(errno));
    else
        d->sent++;
}

/* HOST:PORT or [IPV6]:PORT into host (hostlen bytes) and port; 0 if it is
 * neither. */
static int split_host_port(const char *text, char *host, size_t hostlen, unsigned short *port)
{
    const char *colon, *start = text, *end;

    if (text[0] == '[') {
        start = text + 1;
        if ((end = strstr(start, "]:")) == NULL)
            return 0;
        colon = end + 1;
    } else {
        if ((colon = strrchr(text, ':')) == NULL)
            return 0;
        end = colon;
    }
    const char *digits = colon + 1;
    if (end == start || (size_t)(end - start) >= hostlen || digits[0] == '\0' ||
        strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 5 ||
        strtoul(digits, NULL, 10) > 65535)
        return 0;
    memcpy(host, start, (size_t)(end - start));
    host[end - start] = '\0';
    *port = (unsigned short)strtoul(digits, NULL, 10);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "to", required_argument, NULL, 't' },
        { "bind", required_argument, NULL, 'b' },
        { "loss", required_argument, NULL, 'l' },
        { "delay", required_argument, NULL, 'd' },
        { "jitter", required_argument, NULL, 'j' },
        { "dup", required_argument, NULL, 'u' },
        { "reorder", required_argument, NULL, 'r' },
        { "seed", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static char buf[MAX_DATAGRAM];
    const char *bind_ip = "0.0.0.0", *to = NULL;
    unsigned short port = DEFAULT_LINK_PORT, server_port;
    unsigned long delay_ms = 0, jitter_ms = 0;
    uint64_t seed = 0;
    int seed_given = 0, c;
    char host[256];

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 't': to = optarg; break;
        case 'b': bind_ip = optarg; break;
        case 'l': loss_pct = parse_number(optarg, "PCT", 0, 100); break;
        case 'd': delay_ms = parse_number(optarg, "MS", 0, MAX_DELAY_MS); break;
        case 'j': jitter_ms = parse_number(optarg, "MS", 0, MAX_DELAY_MS); break;
        case 'u': dup_pct = parse_number(optarg, "PCT", 0, 100); break;
        case 'r': reorder_pct = parse_number(optarg, "PCT", 0, 100); break;
        case 's': seed = parse_number(optarg, "N", 0, ULONG_MAX); seed_given = 1; break;
        case 'h': help();
        default: bad_usage(); /* getopt_long(3) said what was wrong */
        }
    }
    if (reorder_pct > 0 && delay_ms == 0)
        usage_error("--reorder goes with --delay: a datagram goes ahead of those held");
    if (to == NULL)
        usage_error("--to HOST:PORT is required: where the server is");
    if (!split_host_port(to, host, sizeof host, &server_port))
        usage_error("invalid HOST:PORT '%s'", to);
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    delay_us = delay_ms * 1000ULL;
    jitter_us = jitter_ms * 1000ULL;
    if (!seed_given) {
        /* A seed when none is given: the clock's nanoseconds and the pid. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^
               ((uint64_t)getpid() << 32);
    }

    /* Each log line leaves as printed, even into a pipe (setvbuf(3)). */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* The server's address: getaddrinfo(3), the first one. */
    struct addrinfo hints, *res;
    char service[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    snprintf(service, sizeof service, "%u", server_port);
    int rv = getaddrinfo(host, service, &hints, &res);
    if (rv != 0) {
        fprintf(stderr, "getaddrinfo %s: %s\n", host,
                rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
        exit(1);
    }
    struct sockaddr_storage servaddr;
    socklen_t servlen = res->ai_addrlen;
    memcpy(&servaddr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    char server[ADDR_TEXT];
    sock_ntop((struct sockaddr *)&servaddr, server);

    /* The socket the client sends to, as a server's: socket, bind, getsockname. */
    struct sockaddr_storage linkaddr;
    socklen_t linklen = parse_addr(bind_ip, port, &linkaddr);
    char addr[ADDR_TEXT], local[ADDR_TEXT];
    sock_ntop((struct sockaddr *)&linkaddr, addr);
    int near = socket(linkaddr.ss_family, SOCK_DGRAM, 0);
    if (near < 0)
        die("socket", addr);
    if (bind(near, (struct sockaddr *)&linkaddr, linklen) < 0)
        die("bind", addr);
    linklen = sizeof linkaddr;
    if (getsockname(near, (struct sockaddr *)&linkaddr, &linklen) < 0)
        die("getsockname", addr);
    sock_ntop((struct sockaddr *)&linkaddr, local);
    /* The socket that faces the server, as a client's: no bind, the first
     * sendto(2) gives it an ephemeral port. */
    int far = socket(servaddr.ss_family, SOCK_DGRAM, 0);
    if (far < 0)
        die("socket", server);

    /* No SA_RESTART: poll(2) returns EINTR, and the loop sees stop. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0)
        die("sigaction", "SIGINT");
    if (sigaction(SIGTERM, &sa, NULL) < 0)
        die("sigaction", "SIGTERM");

    printf("listening on %s\n", local);
    printf("forwarding to %s: loss %lu%%, delay %lu ms, jitter %lu ms, dup %lu%%, reorder %lu%%, "
           "seed %llu\n",
           server, loss_pct, delay_ms, jitter_ms, dup_pct, reorder_pct, (unsigned long long)seed);

    /* Each direction draws from its own generator: the fate of the n-th
     * datagram from the client does not depend on the echoes in between. */
    struct direction up = { .name = "client -> server", .random = seed };
    struct direction down = { .name = "server -> client", .random = seed ^ 0x5555555555555555ULL };
    struct sockaddr_storage cliaddr, from;
    socklen_t clilen = 0, fromlen;
    char text[ADDR_TEXT];
    unsigned long long delays[2];
    long long started = now_us();

    while (!stop) {
        /* What is due goes now; poll(2) waits until the next is due. */
        long long wait_ms = IDLE_WAKEUP_MS;
        long i;
        while ((i = first_due()) >= 0) {
            unsigned long long now = (unsigned long long)(now_us() - started);
            if (queue[i].due_us > now) {
                /* Rounded up: never wake before it is due, and spin. */
                wait_ms = (long long)((queue[i].due_us - now + 999) / 1000);
                break;
            }
            struct held h = queue[i];
            queue[i] = queue[--nheld];
            held_bytes -= h.len;
            if (h.to_server)
                forward(far, &h, &up);
            else
                forward(near, &h, &down);
            free(h.data);
        }
        struct pollfd fds[2] = { { .fd = near, .events = POLLIN }, { .fd = far, .events = POLLIN } };
        int nready = poll(fds, 2, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms);
        if (nready == 0 || (nready < 0 && errno == EINTR))
            continue;
        if (nready < 0)
            die("poll", local);

        if (fds[0].revents & (POLLIN | POLLERR)) {
            /* A datagram from the client: whoever sends to the link's port. */
            ssize_t n = receive(near, buf, &from, &fromlen, local);
            if (n >= 0) {
                if (clilen != fromlen || memcmp(&cliaddr, &from, fromlen) != 0) {
                    printf("client %s\n", sock_ntop((struct sockaddr *)&from, text));
                    cliaddr = from;
                    clilen = fromlen;
                }
                unsigned long long now = (unsigned long long)(now_us() - started);
                int copies = fate(&up, delays);
                for (int k = 0; k < copies; k++)
                    hold(&up, now + delays[k], 1, &servaddr, servlen, buf, (size_t)n);
            }
        }
        if (fds[1].revents & (POLLIN | POLLERR)) {
            /* From the server, an echo for the client; anyone else's datagram
             * (another port, another host) is no business of the link's. */
            ssize_t n = receive(far, buf, &from, &fromlen, local);
            if (n >= 0 && fromlen == servlen && memcmp(&from, &servaddr, servlen) == 0 &&
                clilen > 0) {
                unsigned long long now = (unsigned long long)(now_us() - started);
                int copies = fate(&down, delays);
                for (int k = 0; k < copies; k++)
                    hold(&down, now + delays[k], 0, &cliaddr, clilen, buf, (size_t)n);
            }
        }
    }
    size_t to_server = 0;
    for (size_t k = 0; k < nheld; k++)
        to_server += queue[k].to_server != 0;
    report(&up, to_server);
    report(&down, nheld - to_server);
    return 0;
}
