/*
 * Lab 03: one process serves every client with select(2) (UNP's
 * tcpservselect01, figures 6.21-6.22; Beej's selectserver.c).
 *
 * socket -> setsockopt(SO_REUSEADDR) -> bind -> listen -> fcntl(O_NONBLOCK)
 * -> loop { rset = allset, wset = allwset -> select -> accept until EAGAIN
 * -> read from the readable clients -> write their echo -> close those gone }.
 * Every socket is non-blocking: the one process must never wait for one
 * client while others are ready. Unlike tcpservselect01, a client that
 * sends without reading its echo is taken out of allset (backpressure).
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o server-c server.c ../common/labs.c
 * Run:   ./server-c [PORT] [--bind ADDR]
 */
#include "labs.h"

#include <fcntl.h>
#include <sys/select.h>
#include <time.h>

static const char usage[] =
    "usage: server [PORT] [--bind ADDR]\n"
    "\n"
    "Lab 03: echo server in one process with select(2). Serves every client at\n"
    "once; a client that sends without reading its echo is throttled, never waited for.\n"
    "\n"
    "  PORT         port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --help       print this help\n";

/* Above this much unsent echo, the server stops reading from a client until
 * the client has read some of it: backpressure. */
#define HIGH_WATER (64 * 1024)
/* At most this much is read from a client per turn: its pending echo never
 * exceeds HIGH_WATER + READ_SIZE. */
#define READ_SIZE (16 * 1024)
/* How long accepting stays paused after accept(2) ran out of descriptors,
 * unless a client leaves first (seconds). */
#define ACCEPT_PAUSE 1

/* One connected client; fd -1: a free entry. Every descriptor watched is
 * below FD_SETSIZE (others are refused), so FD_SETSIZE entries are enough. */
struct client {
    int fd;
    char peer[ADDR_TEXT];
    char *pending; /* echo that write(2) could not take yet: len bytes */
    size_t len;
    int eof; /* it shut down its side: close it once pending is sent */
};
static struct client client[FD_SETSIZE];

/* The accept pause (the sheet says why): after accept(2) ran out of
 * descriptors, the listener leaves allset until a client leaves or
 * ACCEPT_PAUSE seconds pass. */
static int paused;
static struct timespec paused_at; /* CLOCK_MONOTONIC: it never jumps */

static void pause_accept(int listenfd, fd_set *allset)
{
    paused = 1;
    clock_gettime(CLOCK_MONOTONIC, &paused_at);
    FD_CLR(listenfd, allset);
}

static void resume_accept(int listenfd, fd_set *allset)
{
    paused = 0;
    FD_SET(listenfd, allset);
}

static int pause_over(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec - paused_at.tv_sec > ACCEPT_PAUSE ||
           (now.tv_sec - paused_at.tv_sec == ACCEPT_PAUSE && now.tv_nsec >= paused_at.tv_nsec);
}

/* fcntl(2): F_GETFL, then F_SETFL with O_NONBLOCK added. */
static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Serves a client that select(2) reported ready: one read(2) if it is
 * readable, then a write(2) of what is pending. Returns 0 when the client
 * is gone, or has shut down its side and has all its echo. */
static int serve(struct client *c, int readable)
{
    ssize_t n;

    if (readable && c->len <= HIGH_WATER) { /* allset asks only then */
        /* One read(2) per turn: a client that sends a lot gets its turn
         * like the others, and its pending echo stays bounded. */
        if ((n = read(c->fd, c->pending + c->len, READ_SIZE)) == 0) {
            c->eof = 1; /* its echo still goes out */
        } else if (n > 0) {
            c->len += (size_t)n;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            /* EAGAIN: readiness can be spurious (select(2), BUGS). Anything
             * else, such as ECONNRESET, means the client is gone. */
            fprintf(stderr, "read %s: %s\n", c->peer, strerror(errno));
            return 0;
        }
    }
    /* Either select(2) said there is room, or we just read an echo to send:
     * try at once, and most echoes go out without another turn. */
    if (c->len > 0) {
        if ((n = write(c->fd, c->pending, c->len)) >= 0) {
            /* Possibly a partial write: the rest waits for room. */
            memmove(c->pending, c->pending + n, c->len - (size_t)n);
            c->len -= (size_t)n;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            /* EPIPE or ECONNRESET: the client is gone (SIGPIPE is ignored).
             * EAGAIN: the send buffer is full; select(2) says when it is not. */
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
    int i, maxi, maxfd, listenfd, connfd, sockfd, nready, opt, readable, writable;
    fd_set rset, wset, allset, allwset;
    struct sockaddr_storage servaddr, cliaddr;
    socklen_t servlen, clilen;
    char addr[ADDR_TEXT], local[ADDR_TEXT], peer[ADDR_TEXT];

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

    if ((listenfd = socket(servaddr.ss_family, SOCK_STREAM, 0)) < 0)
        die("socket", addr);
    /* The listener goes in an fd_set too (see FD_SETSIZE below). */
    if (listenfd >= FD_SETSIZE) {
        errno = EMFILE;
        die("socket", addr);
    }
    /* Without SO_REUSEADDR, bind(2) fails with EADDRINUSE for a minute after
     * a restart, while the last run's connections sit in TIME_WAIT (socket(7)). */
    int on = 1;
    if (setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("setsockopt", addr);
    if (bind(listenfd, (struct sockaddr *)&servaddr, servlen) < 0)
        die("bind", addr);
    /* A burst of clients waits here between two turns of the loop (listen(2)). */
    if (listen(listenfd, SOMAXCONN) < 0)
        die("listen", addr);
    /* Non-blocking: accept(2) is called until EAGAIN (the backlog is empty),
     * and a client that resets before we accept cannot leave us blocked. */
    if (set_nonblocking(listenfd) < 0)
        die("fcntl", addr);
    servlen = sizeof servaddr;
    if (getsockname(listenfd, (struct sockaddr *)&servaddr, &servlen) < 0)
        die("getsockname", addr);
    printf("listening on %s\n", sock_ntop((struct sockaddr *)&servaddr, local));

    maxfd = listenfd;
    maxi = -1; /* highest index in use in client[] */
    for (i = 0; i < FD_SETSIZE; i++)
        client[i].fd = -1;
    /* What select(2) is asked each turn: it overwrites its sets with the
     * answer, so these masters are copied into rset and wset first. */
    FD_ZERO(&allset);
    FD_ZERO(&allwset);
    FD_SET(listenfd, &allset);
    int reported = 0; /* this shortage of descriptors is said: once */

    for (;;) {
        if (paused && pause_over())
            resume_accept(listenfd, &allset);
        /* Paused, wake up after ACCEPT_PAUSE anyway to try accept(2) again:
         * with ENFILE another process may free descriptors. */
        struct timeval timeout = { ACCEPT_PAUSE, 0 };
        rset = allset;
        wset = allwset;
        /* nfds is not a count: the kernel looks at descriptors 0 to nfds-1. */
        if ((nready = select(maxfd + 1, &rset, &wset, NULL, paused ? &timeout : NULL)) < 0) {
            if (errno == EINTR)
                continue; /* a signal came: ask again */
            die("select", local);
        }

        if (FD_ISSET(listenfd, &rset)) {
            nready--;
            /* Accept every connection waiting in the backlog, not just one:
             * with one accept per turn a burst of clients waits turn after turn. */
            for (;;) {
                clilen = sizeof cliaddr;
                if ((connfd = accept(listenfd, (struct sockaddr *)&cliaddr, &clilen)) < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        reported = 0; /* nobody waits for a descriptor any more */
                        break;
                    }
                    /* The client gave up in the backlog, or a signal came (accept(2)). */
                    if (errno == ECONNABORTED || errno == EINTR)
                        continue;
                }
                if (connfd < 0) {
                    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                        /* The connection stays in the backlog and the listener
                         * readable: watched, it would wake select(2) at once,
                         * for ever, at 100% CPU. Pause accepting. */
                        if (!reported)
                            fprintf(stderr, "accept %s: %s; new clients wait in the backlog\n",
                                    local, strerror(errno));
                        reported = 1;
                        pause_accept(listenfd, &allset);
                        break;
                    }
                    die("accept", local);
                }
                sock_ntop((struct sockaddr *)&cliaddr, peer);
                /* An fd_set is a bitmap of FD_SETSIZE bits (select(2)): a
                 * higher descriptor cannot be watched, and FD_SET would
                 * write past the end of the set. */
                if (connfd >= FD_SETSIZE) {
                    printf("refusing %s: fd %d >= FD_SETSIZE (select limit)\n", peer, connfd);
                    close(connfd);
                    continue;
                }
                /* Not inherited from the listener (accept(2)): a blocking
                 * write(2) to a client that does not read would stop the
                 * whole server. */
                if (set_nonblocking(connfd) < 0) {
                    fprintf(stderr, "fcntl %s: %s\n", peer, strerror(errno));
                    close(connfd);
                    continue;
                }
                printf("connection from %s\n", peer);
                for (i = 0; client[i].fd >= 0; i++)
                    ; /* a free entry: there are fewer clients than descriptors */
                if ((client[i].pending = malloc(HIGH_WATER + READ_SIZE)) == NULL)
                    die("malloc", peer);
                client[i].fd = connfd;
                strcpy(client[i].peer, peer);
                client[i].len = 0;
                client[i].eof = 0;
                FD_SET(connfd, &allset);
                if (connfd > maxfd)
                    maxfd = connfd;
                if (i > maxi)
                    maxi = i;
            }
        }

        for (i = 0; i <= maxi && nready > 0; i++) {
            if ((sockfd = client[i].fd) < 0)
                continue;
            readable = FD_ISSET(sockfd, &rset) != 0;
            writable = FD_ISSET(sockfd, &wset) != 0;
            if (!readable && !writable)
                continue;
            nready -= readable + writable;
            struct client *c = &client[i];
            if (!serve(c, readable)) {
                printf("%s disconnected\n", c->peer);
                /* close(2) sends our FIN (or a RST if unread data remains). */
                if (close(sockfd) < 0)
                    fprintf(stderr, "close %s: %s\n", c->peer, strerror(errno));
                FD_CLR(sockfd, &allset);
                FD_CLR(sockfd, &allwset);
                free(c->pending);
                c->fd = -1;
                /* A descriptor is free: a paused accept(2) may succeed now. */
                if (paused)
                    resume_accept(listenfd, &allset);
                continue;
            }
            /* Backpressure: a client with more than HIGH_WATER of unread
             * echo is not read from; TCP flow control stops it sending. */
            if (!c->eof && c->len <= HIGH_WATER)
                FD_SET(sockfd, &allset);
            else
                FD_CLR(sockfd, &allset);
            if (c->len > 0)
                FD_SET(sockfd, &allwset);
            else
                FD_CLR(sockfd, &allwset);
        }
    }
}
