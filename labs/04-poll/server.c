/*
 * Lab 04: one process serves thousands of clients with poll(2) (UNP's
 * tcpservpoll01, figures 6.25-6.26; Beej's pollserver.c).
 *
 * socket(SOCK_NONBLOCK) -> setsockopt(SO_REUSEADDR) -> bind -> listen ->
 * loop { poll(client, maxi + 1) -> accept4 the new ones until EAGAIN ->
 * read from the readable, write to the writable -> close those gone }.
 * Unlike select(2), poll(2) takes an array of any length: no FD_SETSIZE.
 * Unlike tcpservpoll01, the server raises its descriptor limit, keeps a
 * spare descriptor for EMFILE (both in labs/common), and stops reading
 * from a client whose echo waits (backpressure).
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o server-c server.c ../common/labs.c
 * Run:   ./server-c [PORT] [--bind ADDR]
 */
#include "labs.h"

#include <poll.h>

static const char usage[] =
    "usage: server [PORT] [--bind ADDR]\n"
    "\n"
    "Lab 04: echo server, one process, poll(). Serves thousands of clients at\n"
    "once: it raises its descriptor limit (RLIMIT_NOFILE) to the hard limit.\n"
    "\n"
    "  PORT         port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --help       print this help\n";

/* While more than this waits to be sent to a client, the server stops
 * reading from it: a client that sends without reading cannot make the
 * server's memory grow, and it delays nobody else. */
#define MAX_PENDING (64 * 1024)
/* At most this much is read from a client per turn. */
#define READ_SIZE (16 * 1024)

/* client[0] is the listener, client[i] (i >= 1) a connection, fd -1 a free
 * entry (poll(2) skips it); conn[i] is what the server keeps for client[i].
 * Both grow together, with realloc(3), when every entry is taken. */
static struct pollfd *client;
static struct conn {
    char peer[ADDR_TEXT];
    char *pending; /* echo not yet taken by write(2): len bytes of cap */
    size_t len, cap;
    int eof; /* it shut down its side: send what is pending, then close */
} *conn;
static int nentries;

static void grow(void)
{
    int i, n = nentries == 0 ? 256 : 2 * nentries;

    if ((client = realloc(client, n * sizeof *client)) == NULL ||
        (conn = realloc(conn, n * sizeof *conn)) == NULL)
        die("realloc", "client[]");
    for (i = nentries; i < n; i++)
        client[i].fd = -1;
    nentries = n;
}

/* Handles what poll(2) reported for client[i]. Returns 0 when the client
 * is gone and must be closed. */
static int serve(int i)
{
    struct conn *c = &conn[i];
    int fd = client[i].fd;
    ssize_t n;

    /* POLLHUP and POLLERR are reported even when not asked for: the read or
     * write below then fails and says why. */
    if ((client[i].revents & (POLLIN | POLLHUP | POLLERR)) && !c->eof && c->len < MAX_PENDING) {
        if (c->cap < c->len + READ_SIZE) { /* room for one read */
            c->cap = c->len + READ_SIZE;
            if ((c->pending = realloc(c->pending, c->cap)) == NULL)
                die("realloc", c->peer);
        }
        if ((n = read(fd, c->pending + c->len, READ_SIZE)) == 0) {
            c->eof = 1; /* it may still read its echo */
        } else if (n > 0) {
            c->len += (size_t)n;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fprintf(stderr, "read %s: %s\n", c->peer, strerror(errno));
            return 0;
        }
    }
    /* Write at once, without waiting for POLLOUT: the socket buffer almost
     * always has room, and poll(2) reports POLLOUT next turn if it had not. */
    if (c->len > 0) {
        if ((n = write(fd, c->pending, c->len)) >= 0) {
            memmove(c->pending, c->pending + n, c->len - (size_t)n);
            c->len -= (size_t)n;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            /* EPIPE or ECONNRESET: the client left without its echo. */
            fprintf(stderr, "write %s: %s\n", c->peer, strerror(errno));
            return 0;
        }
    }
    return !(c->eof && c->len == 0);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "bind", required_argument, NULL, 'b' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *bind_ip = NULL;
    unsigned short port = DEFAULT_PORT;
    int i, maxi, listenfd, connfd, nready, opt, spare, out_of_descriptors = 0;
    struct sockaddr_storage servaddr, cliaddr;
    socklen_t servlen, clilen;
    char addr[ADDR_TEXT], local[ADDR_TEXT];

    set_usage(usage);
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            if (bind_ip != NULL)
                usage_error("--bind given twice");
            bind_ip = optarg;
            break;
        case 'h': help();
        default: bad_usage(); /* getopt_long(3) said what was wrong */
        }
    }
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    servlen = parse_addr(bind_ip ? bind_ip : "0.0.0.0", port, &servaddr);
    sock_ntop((struct sockaddr *)&servaddr, addr);

    /* Line-buffered even into a pipe: each event is seen as it happens. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* A write(2) to a reset peer raises SIGPIPE, which kills (signal(7));
     * ignored, write fails with EPIPE. Rust's runtime does this too. */
    signal(SIGPIPE, SIG_IGN);
    /* Every client costs a descriptor: the soft limit (often 1024) goes up
     * to the hard one (getrlimit(2)). */
    unsigned long long limit = raise_nofile_limit();

    /* Non-blocking: we accept until EAGAIN, never waiting in accept(2). */
    if ((listenfd = socket(servaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
        die("socket", addr);
    int on = 1;
    if (setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("setsockopt", addr);
    if (bind(listenfd, (struct sockaddr *)&servaddr, servlen) < 0)
        die("bind", addr);
    /* A burst of thousands of connects overflows a small backlog (listen(2)). */
    if (listen(listenfd, SOMAXCONN) < 0)
        die("listen", addr);
    servlen = sizeof servaddr;
    if (getsockname(listenfd, (struct sockaddr *)&servaddr, &servlen) < 0)
        die("getsockname", addr);
    sock_ntop((struct sockaddr *)&servaddr, local);
    /* A descriptor in reserve for when accept(2) fails with EMFILE: without
     * it the connection stays in the backlog, poll(2) reports the listener
     * readable again at once, and we spin at 100% CPU (labs/common). If the
     * limit leaves no room for it and one client, we say so and exit. */
    spare = reserve_spare(limit);
    printf("listening on %s\n", local);
    printf("descriptor limit %llu (RLIMIT_NOFILE)\n", limit);

    grow();
    client[0].fd = listenfd;
    client[0].events = POLLIN;
    maxi = 0; /* highest index in use in client[] */

    for (;;) {
        if ((nready = poll(client, maxi + 1, -1)) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", local);
        }

        if (client[0].revents & POLLIN) {
            nready--;
            /* Take every connection waiting in the backlog, not only one:
             * at thousands of clients, one accept per turn falls behind.
             * accept4(2) makes it non-blocking in the same call. */
            for (;;) {
                clilen = sizeof cliaddr;
                connfd = accept4(listenfd, (struct sockaddr *)&cliaddr, &clilen, SOCK_NONBLOCK);
                if (connfd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (connfd < 0 && (errno == EINTR || errno == ECONNABORTED))
                    continue;
                if (connfd < 0) {
                    if (errno == EMFILE || errno == ENFILE) {
                        if (!out_of_descriptors)
                            fprintf(stderr,
                                    "accept %s: %s; closing new connections until one frees\n",
                                    local, strerror(errno));
                        out_of_descriptors = 1;
                        /* Close the spare, accept and close the waiting
                         * connection, take the spare back: until nobody waits. */
                        if (!refuse_one(listenfd, &spare, local))
                            break;
                        continue;
                    }
                    die("accept", local);
                }
                out_of_descriptors = 0;
                for (i = 1; i < nentries; i++)
                    if (client[i].fd < 0)
                        break; /* the first free entry */
                if (i == nentries)
                    grow();
                client[i].fd = connfd;
                client[i].events = POLLIN;
                client[i].revents = 0; /* poll(2) has not seen it yet */
                memset(&conn[i], 0, sizeof conn[i]);
                printf("connection from %s\n",
                       sock_ntop((struct sockaddr *)&cliaddr, conn[i].peer));
                if (i > maxi)
                    maxi = i;
            }
        }

        for (i = 1; i <= maxi && nready > 0; i++) {
            if (client[i].fd < 0 || client[i].revents == 0)
                continue;
            nready--;
            struct conn *c = &conn[i];
            if (!serve(i)) {
                printf("%s disconnected\n", c->peer);
                if (close(client[i].fd) < 0)
                    fprintf(stderr, "close %s: %s\n", c->peer, strerror(errno));
                free(c->pending);
                client[i].fd = -1;
                continue;
            }
            /* Backpressure: while MAX_PENDING waits to be sent to a client,
             * nothing more is read from it. */
            client[i].events = 0;
            if (!c->eof && c->len < MAX_PENDING)
                client[i].events |= POLLIN;
            if (c->len > 0)
                client[i].events |= POLLOUT;
        }
        /* poll(2) need not look past the last client. */
        while (maxi > 0 && client[maxi].fd < 0)
            maxi--;
    }
}
