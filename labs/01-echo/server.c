/*
 * Lab 01: the iterative TCP echo server (UNP's tcpserv01 and str_echo
 * without the fork; Beej's server.c, serving one client at a time).
 *
 * socket -> setsockopt(SO_REUSEADDR) -> bind -> listen -> loop { accept ->
 * read/write until EOF -> close }. The next client waits in the backlog.
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o server-c server.c ../common/labs.c
 * Run:   ./server-c [PORT] [--bind ADDR] [--write-timeout SECS]
 */
#include "labs.h"

static const char usage[] =
    "usage: server [PORT] [--bind ADDR] [--write-timeout SECS]\n"
    "\n"
    "Lab 01: iterative TCP echo server. Serves one client at a time; the others\n"
    "wait in the listen backlog until it leaves.\n"
    "\n"
    "  PORT                  port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR           address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --write-timeout SECS  drop a client that has not read its echo within SECS\n"
    "                        (default 10, from 1 to 86400)\n"
    "  --help                print this help\n";

/* Echoes until the client closes. A client that never reads would block
 * write(2) for ever, and everyone with it: SO_SNDTIMEO makes write(2) return
 * (socket(7)), and writen_before gives each echo write_timeout seconds. */
static void str_echo(int connfd, const char *peer, unsigned long write_timeout)
{
    char buf[16384];
    ssize_t n;
    struct timespec deadline;
    struct timeval tv = { .tv_sec = (time_t)write_timeout, .tv_usec = 0 };
    if (setsockopt(connfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        die("setsockopt", peer);
    while ((n = read(connfd, buf, sizeof buf)) != 0) { /* 0: EOF, the client closed */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) { /* ECONNRESET: the client reset the connection */
            fprintf(stderr, "read %s: %s\n", peer, strerror(errno));
            return;
        }
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t)write_timeout;
        if (writen_before(connfd, buf, (size_t)n, &deadline) < 0) {
            if (errno == EAGAIN)
                fprintf(stderr, "write %s: client did not read its echo within %lu s, dropping it\n",
                        peer, write_timeout);
            else /* EPIPE or ECONNRESET: the client is gone (SIGPIPE is ignored) */
                fprintf(stderr, "write %s: %s\n", peer, strerror(errno));
            return;
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "bind", required_argument, NULL, 'b' },
        { "write-timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *bind_ip = NULL;
    unsigned long write_timeout = 0;
    unsigned short port = DEFAULT_PORT;
    int c;

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (bind_ip != NULL)
                usage_error("--bind given twice");
            bind_ip = optarg;
            break;
        case 't':
            if (write_timeout != 0)
                usage_error("--write-timeout given twice");
            /* Not 0: an SO_SNDTIMEO of 0 means no timeout at all (socket(7)). */
            write_timeout = parse_number(optarg, "SECS", 1, 86400);
            break;
        case 'h': help();
        default: bad_usage(); /* getopt_long(3) said what was wrong */
        }
    }
    if (write_timeout == 0)
        write_timeout = 10;
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);

    struct sockaddr_storage servaddr, cliaddr;
    socklen_t servlen = parse_addr(bind_ip ? bind_ip : "0.0.0.0", port, &servaddr), clilen;
    char addr[ADDR_TEXT], local[ADDR_TEXT], peer[ADDR_TEXT];
    sock_ntop((struct sockaddr *)&servaddr, addr);

    /* Each log line leaves as printed, even into a pipe (setvbuf(3)). Ignored,
     * SIGPIPE no longer kills us on a write to a reset peer: EPIPE (signal(7)). */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    int listenfd = socket(servaddr.ss_family, SOCK_STREAM, 0);
    if (listenfd < 0)
        die("socket", addr);
    /* Without SO_REUSEADDR, bind(2) fails with EADDRINUSE for a minute after
     * a restart, while the last run's connections sit in TIME_WAIT (socket(7)). */
    int on = 1;
    if (setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("setsockopt", addr);
    if (bind(listenfd, (struct sockaddr *)&servaddr, servlen) < 0)
        die("bind", addr);
    /* The backlog holds connections the kernel has completed but we have
     * not accepted yet: that is where the second client waits (listen(2)). */
    if (listen(listenfd, SOMAXCONN) < 0)
        die("listen", addr);
    /* With port 0 the kernel chose the port: getsockname(2) tells which. */
    servlen = sizeof servaddr;
    if (getsockname(listenfd, (struct sockaddr *)&servaddr, &servlen) < 0)
        die("getsockname", addr);
    printf("listening on %s\n", sock_ntop((struct sockaddr *)&servaddr, local));

    for (;;) {
        clilen = sizeof cliaddr;
        int connfd = accept(listenfd, (struct sockaddr *)&cliaddr, &clilen);
        if (connfd < 0) {
            /* The client gave up in the backlog, or a signal came (accept(2)). */
            if (errno == ECONNABORTED || errno == EINTR)
                continue;
            die("accept", local);
        }
        printf("connection from %s\n", sock_ntop((struct sockaddr *)&cliaddr, peer));
        str_echo(connfd, peer, write_timeout);
        printf("%s disconnected\n", peer);
        /* close(2) sends our FIN; forget it and the client sits in CLOSE_WAIT. */
        close(connfd);
    }
}
