/*
 * Lab 01: the echo client (UNP's tcpcli01 and str_cli, with the half-close
 * of strcliselect02; Beej's client.c for the getaddrinfo loop).
 *
 * getaddrinfo -> socket -> connect -> loop { read a line from stdin -> write
 * it -> read its echo -> print it } -> at the end of stdin, shutdown(SHUT_WR)
 * and read what is left.
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o client-c client.c ../common/labs.c
 * Run:   ./client-c [HOST] [PORT]
 */
#include "labs.h"

#include <netdb.h>

static const char usage[] =
    "usage: client [HOST] [PORT]\n"
    "\n"
    "Lab 01: echo client. Sends each line of stdin to the server and prints the\n"
    "echo; at the end of stdin (Ctrl-D) it half-closes the connection and exits.\n"
    "\n"
    "  HOST    server name or address (default 127.0.0.1; localhost and IPv6 such as ::1 work)\n"
    "  PORT    server port (default 4242)\n"
    "  --help  print this help\n";

/* Longer lines are sent in pieces of this size: memory stays bounded
 * whatever stdin holds. */
#define MAXLINE (64 * 1024)

/* Sends each line of stdin and copies its echo to stdout (UNP's str_cli);
 * at the end of stdin, half-closes and copies what is left. */
static void str_cli(int sockfd, const char *server)
{
    static char sendline[MAXLINE];
    char recvline[16384];
    ssize_t n, got;

    /* readline (labs.c) reads descriptor 0 with read(2), not fgets(3): a
     * line may hold any byte, '\0' included, and a longer one comes in pieces. */
    while ((n = readline(STDIN_FILENO, sendline, sizeof sendline)) > 0) {
        if (writen(sockfd, sendline, (size_t)n) < 0)
            die("write", server);
        /* The echo may come back in several pieces: read until as many bytes
         * came back as went. */
        size_t missing = (size_t)n;
        while (missing > 0) {
            got = read(sockfd, recvline, missing < sizeof recvline ? missing : sizeof recvline);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                die("read", server);
            if (got == 0) {
                fprintf(stderr, "server %s closed the connection\n", server);
                exit(1);
            }
            if (writen(STDOUT_FILENO, recvline, (size_t)got) < 0)
                die("write", "stdout");
            missing -= (size_t)got;
        }
    }
    if (n < 0)
        die("read", "stdin");

    /* End of stdin: shutdown(2) sends our FIN ("no more lines") but keeps
     * the socket open for reading, so nothing the server still sends is
     * lost, as it could be with close(2). */
    if (shutdown(sockfd, SHUT_WR) < 0)
        die("shutdown", server);
    while ((got = read(sockfd, recvline, sizeof recvline)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            die("read", server);
        if (writen(STDOUT_FILENO, recvline, (size_t)got) < 0)
            die("write", "stdout");
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
    int errors = 0, c;

    set_usage(usage);
    /* --help wins wherever it stands: a mistake is reported once every
     * option is read (as getopt(3)'s example counts them in errflg). */
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h')
            help();
        errors++; /* getopt_long(3) said what was wrong */
    }
    if (errors)
        bad_usage();
    if (optind < argc)
        host = argv[optind++];
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);

    /* If the server resets the connection, our next write(2) would raise
     * SIGPIPE and kill us without a word (signal(7)). Ignored, write(2)
     * fails with EPIPE and we say so; Rust's runtime does this before main. */
    signal(SIGPIPE, SIG_IGN);

    /* getaddrinfo(3) turns a name (localhost) or a literal (::1) into the
     * addresses to try, IPv4 and IPv6 alike. */
    struct addrinfo hints, *res, *ai;
    char service[8], server[ADDR_TEXT] = "";
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%u", port);
    int rv = getaddrinfo(host, service, &hints, &res);
    if (rv != 0) {
        fprintf(stderr, "getaddrinfo %s: %s\n", host,
                rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
        exit(1);
    }
    /* A name may have several addresses (localhost: ::1 and 127.0.0.1):
     * try each in turn; if none answers, say why the last one failed. */
    int sockfd = -1, err = EADDRNOTAVAIL;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        sock_ntop(ai->ai_addr, server);
        if ((sockfd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0)
            die("socket", server);
        if (connect(sockfd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(sockfd);
        sockfd = -1;
    }
    freeaddrinfo(res);
    if (sockfd < 0) {
        errno = err;
        die("connect", server);
    }

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "connected to %s; type lines, Ctrl-D to end\n", server);
    str_cli(sockfd, server);
    close(sockfd);
    return 0;
}
