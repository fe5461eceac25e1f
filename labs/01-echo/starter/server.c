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
/* The starter: write each TODO (the lesson's calls), then `make` and
 * `make check LAB=01-echo`. The answer is the lab's server.c. */
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
    /* TODO read(2) until 0, each piece echoed by writen_before (drop on error) */
    todo("read(2) and the echo");
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

    /* TODO socket(2), setsockopt(2) SO_REUSEADDR, bind(2), listen(2), getsockname(2) */
    int listenfd = -1;
    todo("socket(2), bind(2), listen(2)");
    printf("listening on %s\n", sock_ntop((struct sockaddr *)&servaddr, local));

    for (;;) {
        /* TODO accept(2) the next client, with its address in cliaddr */
        int connfd = -1;
        todo("accept(2)");
        printf("connection from %s\n", sock_ntop((struct sockaddr *)&cliaddr, peer));
        str_echo(connfd, peer, write_timeout);
        printf("%s disconnected\n", peer);
        /* close(2) sends our FIN; forget it and the client sits in CLOSE_WAIT. */
        /* TODO close(2) the connection: the client waits for its FIN */
        todo("close(2)");
    }
}
