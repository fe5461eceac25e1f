/*
 * Lab 04: the client that polls the keyboard and the socket at once (UNP's
 * str_cli of strcliselect02, figure 6.13, with poll(2) for select(2)).
 *
 * tcp_connect -> fcntl(O_NONBLOCK) -> loop { poll(stdin, socket) -> socket
 * readable: print it -> stdin readable: read, queue for the server ->
 * socket writable: write what is queued } -> at the end of stdin, once all
 * is sent, shutdown(SHUT_WR), and on until the server closes. What the
 * server sends shows up at once, even while the user types nothing: lab
 * 01's client noticed only after the next line. Unlike strcliselect02, the
 * socket is non-blocking and what stdin brings waits in a queue until the
 * socket takes it: a big paste cannot block us while the server's echo
 * waits to be read.
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o client-c client.c ../common/labs.c
 * Run:   ./client-c [HOST] [PORT]
 */
#include "labs.h"

#include <fcntl.h>
#include <poll.h>

static const char usage[] =
    "usage: client [HOST] [PORT]\n"
    "\n"
    "Lab 04: client that waits on stdin and the socket at once with poll(). What\n"
    "you type goes to the server; what the server sends is printed as it arrives.\n"
    "At the end of stdin (Ctrl-D) it half-closes the connection, prints what the\n"
    "server still sends, and exits.\n"
    "\n"
    "  HOST    server name or address (default 127.0.0.1; localhost and IPv6 such as ::1 work)\n"
    "  PORT    server port (default 4242)\n"
    "  --help  print this help\n";

/* Stdin is read only while less than this waits to go to the server: a
 * server that stops reading cannot make the client's memory grow. */
#define MAX_QUEUED (64 * 1024)

/* What stdin brings goes to the server, what the server sends goes to
 * stdout, whichever comes first. Returns when the server has closed after
 * our shutdown(2). */
static void str_cli(int sockfd, const char *server)
{
    static char queued[MAX_QUEUED], buf[16 * 1024];
    size_t nqueued = 0, room;
    int stdineof = 0, shut = 0, first, stdin_ready, sock_readable, sock_writable;
    struct pollfd fds[2];
    ssize_t n;

    for (;;) {
        fds[0].fd = STDIN_FILENO;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        fds[1].fd = sockfd;
        fds[1].events = nqueued > 0 ? POLLIN | POLLOUT : POLLIN;
        fds[1].revents = 0;
        /* stdin is watched until its end, while there is room to queue what
         * it brings. Not watched means left out of the array (poll from
         * fds + 1), not asked for no events: POLLHUP comes whether asked
         * for or not (poll(2)), and a pipe whose writer has gone reports it
         * for ever: poll(2) would return at once, turn after turn, at 100%
         * CPU. And a read(2) of 0 bytes into a full queue returns 0, which
         * reads as the end of stdin. */
        first = !stdineof && nqueued < MAX_QUEUED ? 0 : 1;
        if (poll(fds + first, 2 - first, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", server);
        }
        /* POLLHUP and POLLERR come whether asked for or not (poll(2)): the
         * read or write that follows reports what happened. */
        stdin_ready = fds[0].revents & (POLLIN | POLLHUP | POLLERR);
        sock_readable = fds[1].revents & (POLLIN | POLLHUP | POLLERR);
        sock_writable = fds[1].revents & (POLLOUT | POLLHUP | POLLERR);

        if (sock_readable) {
            if ((n = read(sockfd, buf, sizeof buf)) == 0) {
                if (shut)
                    return; /* the server answered our FIN with its own */
                fprintf(stderr, "server %s closed the connection\n", server);
                exit(1);
            }
            if (n > 0) {
                if (writen(STDOUT_FILENO, buf, (size_t)n) < 0)
                    die("write", "stdout");
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                die("read", server);
            }
        }

        if (stdin_ready) {
            room = MAX_QUEUED - nqueued < sizeof buf ? MAX_QUEUED - nqueued : sizeof buf;
            if ((n = read(STDIN_FILENO, queued + nqueued, room)) == 0)
                stdineof = 1;
            else if (n > 0)
                nqueued += (size_t)n;
            else if (errno != EINTR)
                die("read", "stdin");
        }

        if (sock_writable && nqueued > 0) {
            if ((n = write(sockfd, queued, nqueued)) >= 0) {
                memmove(queued, queued + n, nqueued - (size_t)n);
                nqueued -= (size_t)n;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                die("write", server);
            }
        }

        /* End of stdin and everything sent: shutdown(2) tells the server
         * "no more" but keeps reading what it still sends. */
        if (stdineof && nqueued == 0 && !shut) {
            if (shutdown(sockfd, SHUT_WR) < 0)
                die("shutdown", server);
            shut = 1;
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *host = DEFAULT_HOST;
    unsigned short port = DEFAULT_PORT;
    int sockfd, flags, opt, bad = 0;
    char server[ADDR_TEXT];

    set_usage(usage);
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h')
            help();
        bad = 1; /* getopt_long(3) said what was wrong; --help later still wins */
    }
    if (bad)
        bad_usage();
    if (optind < argc)
        host = argv[optind++];
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);

    /* If the server resets the connection, our next write(2) would raise
     * SIGPIPE and kill us without a word (signal(7)); ignored, write fails
     * with EPIPE and we say so. Rust's runtime does this too. */
    signal(SIGPIPE, SIG_IGN);

    /* socket(2) and connect(2) to each of the name's addresses in turn, as
     * lab 01's client does (labs/common). */
    sockfd = tcp_connect(host, port, server);
    /* A blocking write(2) of more than the socket buffer holds would wait
     * for the server to read, and meanwhile nobody reads what the server
     * sends: both sides stuck. Non-blocking, write(2) takes what fits and
     * poll(2) says when more will (fcntl(2), O_NONBLOCK). */
    if ((flags = fcntl(sockfd, F_GETFL)) < 0 || fcntl(sockfd, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl", server);

    /* stdin is read with read(2) on descriptor 0, never with fgets(3):
     * bytes hidden in stdio's buffer are invisible to poll(2). */
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "connected to %s; type lines, Ctrl-D to end\n", server);
    str_cli(sockfd, server);
    close(sockfd);
    return 0;
}
