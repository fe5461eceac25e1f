/*
 * Lab 07: the chat client. Lab 04's poll client, speaking IRC: UNP's
 * strcliselect02 (figure 6.13) with poll(2) for select(2), or Beej's
 * poll example on stdin and a socket.
 *
 * connect -> NICK, USER -> loop { poll(stdin, socket) -> a typed line
 * becomes an IRC command (/msg -> PRIVMSG...) queued for the server -> a
 * line from the server is shown as a person would read it (PING is
 * answered) }.
 *
 * The loop is the lesson and stays here; what a typed line becomes and how
 * a server line reads is in ../common/chat.c (shared with lab 08's client).
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o client-c client.c ../common/chat.c \
 *         ../common/irc.c ../common/labs.c
 * Run:   ./client-c [HOST] [PORT] [--nick NICK] [--raw]
 */
#include "labs.h"
#include "chat.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>

static const char usage[] =
    "usage: client [HOST] [PORT] [--nick NICK] [--raw]\n"
    "\n"
    "Lab 07: chat client. Speaks IRC with the chat server (or any IRC server).\n"
    "Type /help once connected for the commands; a plain line goes to the\n"
    "channel you joined last.\n"
    "\n"
    "  HOST         server name or address (default 127.0.0.1)\n"
    "  PORT         server port (default 4242)\n"
    "  --nick NICK  nickname to register with (else choose one with /nick NAME)\n"
    "  --raw        also show the IRC lines as sent (>>) and received (<<)\n"
    "  --help       print this help\n"
    "\n"
    "Exit status: 0 after /quit or the end of input, 1 if a call failed or the\n"
    "server closed the connection first, 2 for bad arguments.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "nick", required_argument, NULL, 'n' },
        { "raw", no_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *nick = NULL, *host = DEFAULT_HOST;
    unsigned short port = DEFAULT_PORT;
    int raw = 0, c;

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': nick = optarg; break;
        case 'r': raw = 1; break;
        case 'h': help();
        default: bad_usage(); /* getopt_long(3) said what was wrong */
        }
    }
    if (optind < argc)
        host = argv[optind++];
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    /* Each line for the person as it happens, even into a pipe (setvbuf(3));
     * a server that resets us gives EPIPE, not SIGPIPE (signal(7)), as
     * Rust's runtime does. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    /* getaddrinfo(3) turns a name (localhost) or a literal (::1) into the
     * addresses to try, IPv4 and IPv6 alike; each is tried in turn. */
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *list, *ai;
    char server[ADDR_TEXT], service[8];
    snprintf(service, sizeof service, "%u", port);
    int rc = getaddrinfo(host, service, &hints, &list), sockfd = -1, err = EADDRNOTAVAIL;
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo %s: %s\n", host,
                rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        exit(1);
    }
    snprintf(server, sizeof server, "127.0.0.1:%u", port); /* if there is no address */
    for (ai = list; ai != NULL && sockfd < 0; ai = ai->ai_next) {
        sock_ntop(ai->ai_addr, server);
        if ((sockfd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0)
            die("socket", server);
        if (connect(sockfd, ai->ai_addr, ai->ai_addrlen) < 0) {
            err = errno;
            close(sockfd);
            sockfd = -1;
        }
    }
    freeaddrinfo(list);
    if (sockfd < 0) {
        errno = err;
        die("connect", server);
    }
    /* Non-blocking, as in lab 04: a write takes what fits, poll says when
     * more will. */
    int flags = fcntl(sockfd, F_GETFL);
    if (flags < 0 || fcntl(sockfd, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl", server);

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "connected to %s; /help for the commands, Ctrl-D or /quit to leave\n",
                server);
    chat_start(raw, NULL);
    if (nick != NULL)
        chat_register(nick);
    else
        chat_say("-!- choose a nickname: /nick NAME");

    /* Lines from the server are at most 512 bytes (RFC 2812 §2.3); typed
     * lines longer than a message can carry are refused, not cut. */
    static struct irc_lines from_server, from_user;
    char line[IRC_MAX_LINE];
    size_t len;
    enum irc_piece piece;
    int stdin_open = 1;
    for (;;) {
        /* [0] stdin, watched while its lines have somewhere to go; [1] the
         * socket, for writing too while something waits to go. Unwatched,
         * stdin is left out of the array (lab 04): a pipe whose writer has
         * gone reports POLLHUP whatever is asked. */
        int watch_stdin = stdin_open && !chat_quitting() && chat_outlen < CHAT_MAX_QUEUED;
        struct pollfd fds[2] = {
            { .fd = STDIN_FILENO, .events = POLLIN },
            { .fd = sockfd, .events = chat_outlen > 0 ? POLLIN | POLLOUT : POLLIN },
        };
        if (poll(fds + !watch_stdin, 2 - !watch_stdin, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", server);
        }
        /* POLLHUP and POLLERR come whether asked for or not (poll(2)): the
         * read or write that follows says what happened. */
        int stdin_ready = fds[0].revents & (POLLIN | POLLHUP | POLLERR);
        int sock_readable = fds[1].revents & (POLLIN | POLLHUP | POLLERR);
        int sock_writable = fds[1].revents & (POLLOUT | POLLHUP | POLLERR);

        if (sock_readable) {
            ssize_t n = read(sockfd, from_server.buf + from_server.len,
                             sizeof from_server.buf - from_server.len);
            if ((n == 0 || (n < 0 && errno == ECONNRESET)) && chat_quitting()) {
                /* After our QUIT the server closes: that is the goodbye. A
                 * reset is one too: it closed with some of our input
                 * unread, and close(2) then sends a RST (tcp(7)). */
                close(sockfd);
                return 0;
            } else if (n == 0) {
                fprintf(stderr, "server %s closed the connection\n", server);
                exit(1);
            } else if (n > 0) {
                from_server.len += n;
                /* Longer than IRC allows: not a message of ours to show. */
                while ((piece = irc_next_line(&from_server, line, &len)) != IRC_NONE)
                    if (piece == IRC_WHOLE)
                        chat_receive(line, len);
            } else if (errno != EAGAIN && errno != EINTR) {
                die("read", server);
            }
        }

        if (stdin_ready) {
            ssize_t n = read(STDIN_FILENO, from_user.buf + from_user.len,
                             sizeof from_user.buf - from_user.len);
            if (n == 0) {
                stdin_open = 0;
                if ((piece = irc_rest_line(&from_user, line, &len)) != IRC_NONE)
                    chat_typed(piece, line, len);
                /* End of input: leave politely, and read until the server's
                 * ERROR and close. */
                if (!chat_quitting())
                    chat_typed(IRC_WHOLE, "/quit", 5);
            } else if (n > 0) {
                from_user.len += n;
                while ((piece = irc_next_line(&from_user, line, &len)) != IRC_NONE)
                    chat_typed(piece, line, len);
            } else if (errno != EINTR) {
                die("read", "stdin");
            }
        }

        if (sock_writable && chat_outlen > 0) {
            ssize_t n = write(sockfd, chat_out, chat_outlen);
            if (n > 0) {
                chat_outlen -= n;
                memmove(chat_out, chat_out + n, chat_outlen);
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                die("write", server);
            }
        }
    }
}
