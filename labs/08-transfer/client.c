/*
 * Lab 08: a file sent directly between two chat users (DCC SEND), the C
 * twin of client.rs. Lab 07's chat client, plus /send, /accept, /refuse.
 *
 * The chat server only introduces the two users; the file goes over a
 * second TCP connection between the clients themselves. For a moment the
 * sender is a server (lab 01's socket, bind, listen, accept), and the
 * receiver a client whose connect must not stop the chat (UNP's
 * connect_nonb, figure 16.11):
 *
 *   alice: /send bob report.pdf                    bob
 *     WHOIS bob -> where bob connects from (311)
 *     socket -> bind(chat address, port 0) -> listen -> getsockname
 *     PRIVMSG bob :\1DCC SEND report.pdf IP PORT SIZE\1 ---> "alice offers..."
 *                                                            /accept alice
 *     accept <----------------------- socket(O_NONBLOCK) -> connect: EINPROGRESS
 *     the peer is bob's address?      poll: POLLOUT -> getsockopt(SO_ERROR)
 *     read(file) -> write(socket) ======= the file ======> read(socket) -> write(file)
 *     read(socket) <======== bytes received, 4 bytes ===== write(socket)
 *     close                                                close, NAME.part -> NAME
 *
 * All of it in one poll() loop, main(): stdin, the chat socket, and one
 * descriptor per transfer. The two state machines are outgoing_ready()
 * and incoming_ready(). Lab 07's conversation is ../common/chat.c (this
 * client adds its commands to it), the DCC format, the received file's
 * name and the progress text ../common/dcc.c, the IRC format
 * ../common/irc.c.
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o client-c client.c ../common/dcc.c \
 *         ../common/chat.c ../common/irc.c ../common/labs.c
 * Run:   ./client-c [HOST] [PORT] [--nick NICK] [--raw] [--downloads DIR]
 *                   [--max-size SIZE] [--offer-timeout SECS]
 */
#include "labs.h"
#include "irc.h"
#include "chat.h"
#include "dcc.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: client [HOST] [PORT] [--nick NICK] [--raw] [--downloads DIR]\n"
    "              [--max-size SIZE] [--offer-timeout SECS]\n"
    "\n"
    "Lab 08: the chat client of lab 07, plus files sent directly to another\n"
    "user (DCC SEND, as irssi and mIRC do): /send NICK PATH offers a file,\n"
    "/accept NICK receives one, /refuse NICK declines. Type /help once\n"
    "connected. The server is lab 07's (../07-chat/server).\n"
    "\n"
    "  HOST                 server name or address (default 127.0.0.1)\n"
    "  PORT                 server port (default 4242)\n"
    "  --nick NICK          nickname to register with (else choose one with /nick NAME)\n"
    "  --raw                also show the IRC lines as sent (>>) and received (<<)\n"
    "  --downloads DIR      where received files go (default ./downloads, created if missing)\n"
    "  --max-size SIZE      refuse offers larger than SIZE (bytes, or 500k, 10M, 2G);\n"
    "                       offers larger than the free space are always refused\n"
    "  --offer-timeout SECS how long an offer waits for the peer to connect, and\n"
    "                       how long a transfer may stall (default 120)\n"
    "  --help               print this help\n"
    "\n"
    "Exit status: 0 after /quit or the end of input (once the transfers are\n"
    "over), 1 if a call failed or the server closed the connection first, 2 for\n"
    "bad arguments.\n";

/* What /help shows after the chat's own commands (chat.c). */
static const char transfer_help[] =
    "\n"
    "  /send NICK PATH    offer a file to NICK; it goes straight to NICK's client\n"
    "  /accept NICK       receive the file NICK offers (into --downloads)\n"
    "  /refuse NICK       decline NICK's offer";

#define LINE (IRC_MAX_LINE + 1) /* a line, or a piece of one, as a C string */
/* A file goes through a buffer of this size, one read(2) and one write(2)
 * at a time: a 1 GB file uses the memory of one chunk. */
#define CHUNK (64 * 1024)
/* Offers waiting for an answer, and transfers each way, at most: a flood
 * of offers cannot take our memory or descriptors. The incoming list also
 * holds what ended this turn, forgotten at its end. */
#define MAX_OFFERS 16
#define MAX_TRANSFERS 16
#define MAX_INCOMING (MAX_OFFERS + MAX_TRANSFERS + 32)
#define REDRAW_NS 200000000LL /* a progress line is redrawn at most every 200 ms */

/* A transfer's clock, and the quarters of it reported as plain lines. */
struct progress {
    int64_t started;
    uint64_t quarters;
};

/* A file we offer (/send). */
enum out_state { LOOKING_UP, LISTENING, SENDING, OUT_DONE };
struct outgoing {
    enum out_state state;
    char to[LINE];
    char name[DCC_MAX_NAME + 1]; /* the base name, made safe as a receiver would */
    int file;
    uint64_t size;
    int64_t deadline; /* the offer's timeout, then a stall's */
    /* LISTENING: where, and the address the peer must come from (has_peer
     * is 0 when the server gave a host name, not an address). */
    int listenfd;
    struct sockaddr_storage bound, peer;
    char addr[ADDR_TEXT];
    int has_peer;
    /* SENDING: chunk[start..end] read from the file, not yet written; the
     * receiver's last acknowledgement, and one arriving in pieces. */
    int connfd;
    char peer_text[ADDR_TEXT];
    char *chunk;
    size_t start, end;
    uint64_t sent;
    int has_acked;
    uint32_t acked;
    unsigned char ack[4];
    size_t ack_len;
    struct progress progress;
};

/* An offer received. */
enum in_state { OFFERED, CONNECTING, RECEIVING, IN_DONE };
struct incoming {
    enum in_state state;
    char from[LINE];
    char name[DCC_MAX_NAME + 1]; /* the name it will be saved under (safe_name) */
    struct dcc_offer offer;
    int64_t deadline;
    int sockfd;
    struct part part; /* downloads/NAME.part until complete */
    /* RECEIVING: the acknowledgement being written, and how much of it is
     * out (4 when all of it is). */
    char *chunk;
    uint64_t received;
    unsigned char ack[4];
    size_t ack_sent;
    struct progress progress;
};

/* The transfers. */
static const char *downloads = "downloads";
static int has_max_size;
static uint64_t max_size;
static unsigned long timeout_secs = 120;
static int64_t timeout_ns;
static struct sockaddr_storage local; /* our address on the chat connection */
static struct outgoing outgoing[MAX_TRANSFERS];
static int noutgoing;
static struct incoming incoming[MAX_INCOMING];
static int nincoming;
static char whois[MAX_TRANSFERS][LINE]; /* folded nicks whose WHOIS replies are ours */
static int nwhois;
static int tty; /* stdout is a terminal: a progress line */
static int64_t redrawn;

static int transfer_command(const char *name, const char *args);
static int transfer_message(const struct irc_message *m, const char *from);

/* What lab 08 adds to lab 07's conversation (chat.c): its commands, and a
 * first look at each message from the server. */
static const struct chat_extension transfers = { transfer_help, transfer_command,
                                                 transfer_message };

/* ---- the transfers: the end of each, and the lesson's two machines ---- */

/* An offer or a transfer of ours is over: its descriptors closed, its
 * chunk freed. Every path that ends one comes here (C has no drop). */
static void out_done(struct outgoing *out)
{
    if (out->state == OUT_DONE)
        return;
    if (out->listenfd >= 0)
        close(out->listenfd);
    if (out->connfd >= 0)
        close(out->connfd);
    close(out->file);
    free(out->chunk);
    out->listenfd = out->connfd = out->file = -1;
    out->chunk = NULL;
    out->state = OUT_DONE;
}

/* An offer received is over: the connection closed, the part file closed
 * and removed unless it was kept. */
static void in_done(struct incoming *inc)
{
    if (inc->state == IN_DONE)
        return;
    if (inc->sockfd >= 0)
        close(inc->sockfd);
    part_remove(&inc->part);
    free(inc->chunk);
    inc->sockfd = -1;
    inc->chunk = NULL;
    inc->state = IN_DONE;
}

/* The second connection's server side, as lab 01's server: a socket bound
 * to our address on the chat connection and port 0, so that the kernel
 * picks a free port; listen(2) with a backlog of 1 (one peer is
 * expected); getsockname(2) for the port we got. 0 on failure, with errno
 * and the call and address in call[]. */
static int listen_for_peer(struct outgoing *out, char *call)
{
    struct sockaddr_storage servaddr = local;
    socklen_t servlen, len = sizeof out->bound;
    char addr[ADDR_TEXT];
    int listenfd, err;

    if (servaddr.ss_family == AF_INET) {
        ((struct sockaddr_in *)&servaddr)->sin_port = 0;
        servlen = sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&servaddr;
        in6->sin6_port = 0;
        in6->sin6_flowinfo = in6->sin6_scope_id = 0;
        servlen = sizeof(struct sockaddr_in6);
    }
    sock_ntop((struct sockaddr *)&servaddr, addr);
    if ((listenfd = socket(servaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0) {
        sprintf(call, "socket %s", addr);
        return 0;
    }
    if (bind(listenfd, (struct sockaddr *)&servaddr, servlen) < 0)
        sprintf(call, "bind %s", addr);
    else if (listen(listenfd, 1) < 0)
        sprintf(call, "listen %s", addr);
    else if (getsockname(listenfd, (struct sockaddr *)&out->bound, &len) < 0)
        sprintf(call, "getsockname %s", addr);
    else {
        sock_ntop((struct sockaddr *)&out->bound, out->addr);
        out->listenfd = listenfd;
        return 1;
    }
    err = errno;
    close(listenfd);
    errno = err;
    return 0;
}

/* A connection waits on the listener: accept(2) it, with the peer's
 * address, and keep it if that is the address the server gave for the
 * peer. Then the listener is closed: nobody else may come. */
static void accept_peer(struct outgoing *out)
{
    struct sockaddr_storage cliaddr;
    socklen_t clilen = sizeof cliaddr;
    char peer[ADDR_TEXT], expected[INET6_ADDRSTRLEN];
    int connfd = accept4(out->listenfd, (struct sockaddr *)&cliaddr, &clilen, SOCK_NONBLOCK);

    if (connfd < 0) {
        /* Gone before we took it (ECONNABORTED), or not there yet. */
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
            return;
        int err = errno;
        out_done(out);
        chat_say("-!- accept %s: %s: %s not sent", out->addr, strerror(err), out->name);
        return;
    }
    sock_ntop((struct sockaddr *)&cliaddr, peer);
    /* Only the offered peer may take the file. What this proves: the
     * connection comes from the address the server saw the peer at, not
     * that it is the peer. Anyone else on that address (the same machine,
     * all of loopback, the same NAT) passes; an address the server calls
     * by name cannot be checked at all. */
    if (out->has_peer && !same_ip(&cliaddr, &out->peer)) {
        chat_say("-!- refused a connection from %s for %s: %s is at %s", peer, out->name, out->to,
            ip_text(&out->peer, expected));
        close(connfd); /* the offer still stands */
        return;
    }
    chat_say("-!- %s connected from %s: sending %s", out->to, peer, out->name);
    close(out->listenfd);
    out->listenfd = -1;
    out->connfd = connfd;
    strcpy(out->peer_text, peer);
    if ((out->chunk = malloc(CHUNK)) == NULL) {
        out_done(out);
        chat_say("-!- %s to %s failed: %s", out->name, out->to, strerror(ENOMEM));
        return;
    }
    out->deadline = now_ns() + timeout_ns;
    out->progress.started = now_ns();
    out->state = SENDING;
}

/* Reads acknowledgements (and the receiver's close), writes the next piece
 * of the file. 1 if something moved, 0 if not, -1 on failure (why says it). */
static int send_file_piece(struct outgoing *out, short revents, char *why, size_t whysize)
{
    int moved = 0;
    ssize_t n;
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        /* Each acknowledgement is 4 bytes, big-endian: how many bytes the
         * receiver has so far, modulo 2^32. They may arrive split, or
         * several at once, as any bytes on a TCP stream. */
        unsigned char acks[512];
        if ((n = read(out->connfd, acks, sizeof acks)) == 0 && out->sent == out->size) {
            /* Closed after everything: classic receivers close at the end
             * instead of (or after) the last acknowledgement. */
            out->has_acked = 1;
            out->acked = (uint32_t)out->size;
        } else if (n == 0) {
            snprintf(why, whysize, "%s closed the connection after %llu of %llu bytes",
                     out->peer_text, (unsigned long long)out->sent,
                     (unsigned long long)out->size);
            return -1;
        } else if (n > 0) {
            for (ssize_t k = 0; k < n; k++) {
                out->ack[out->ack_len++] = acks[k];
                if (out->ack_len == 4) {
                    uint32_t be;
                    memcpy(&be, out->ack, 4);
                    out->acked = ntohl(be);
                    out->has_acked = 1;
                    out->ack_len = 0;
                }
            }
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, whysize, "read %s: %s", out->peer_text, strerror(errno));
            return -1;
        }
    }
    if ((revents & POLLOUT) && out->sent < out->size) {
        if (out->start == out->end) {
            /* The next chunk, and never past the size we announced. */
            uint64_t left = out->size - out->sent;
            if ((n = read(out->file, out->chunk, left < CHUNK ? left : CHUNK)) == 0) {
                snprintf(why, whysize, "the file shrank to %llu bytes",
                         (unsigned long long)out->sent);
                return -1;
            } else if (n < 0 && errno == EINTR) {
                return moved;
            } else if (n < 0) {
                snprintf(why, whysize, "read the file: %s", strerror(errno));
                return -1;
            }
            out->start = 0;
            out->end = (size_t)n;
        }
        /* One write(2): the socket takes what fits; poll says when more will. */
        if ((n = write(out->connfd, out->chunk + out->start, out->end - out->start)) >= 0) {
            out->start += (size_t)n;
            out->sent += (uint64_t)n;
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, whysize, "write %s: %s", out->peer_text, strerror(errno));
            return -1;
        }
    }
    return moved;
}

/* The sender's machine: poll says its listener or its connection is ready. */
static void outgoing_ready(struct outgoing *out, short revents)
{
    char why[2 * LINE], text[128];
    int moved;
    if (out->state == LISTENING) {
        accept_peer(out);
        return;
    }
    if (out->state != SENDING)
        return;
    if ((moved = send_file_piece(out, revents, why, sizeof why)) < 0) {
        out_done(out); /* closes the connection before the line says so */
        chat_say("-!- %s to %s failed: %s", out->name, out->to, why);
    } else if (out->sent == out->size && out->has_acked && out->acked == (uint32_t)out->size) {
        summary_text(text, sizeof text, out->sent, now_ns() - out->progress.started);
        out_done(out);
        chat_say("-!- sent %s to %s: %s", out->name, out->to, text);
    } else if (moved) {
        out->deadline = now_ns() + timeout_ns;
    }
}

/* The second connection's client side, as lab 01's client, but
 * non-blocking (UNP's connect_nonb): connect(2) answers EINPROGRESS at
 * once, and poll(2) says POLLOUT when the handshake is over, so the chat
 * goes on meanwhile, even towards an address that never answers. The
 * socket, or -1 with errno. */
static int connect_nonb(const struct sockaddr_storage *servaddr)
{
    int sockfd, err;
    socklen_t len = servaddr->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                   : sizeof(struct sockaddr_in6);
    if ((sockfd = socket(servaddr->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
        return -1;
    if (connect(sockfd, (const struct sockaddr *)servaddr, len) < 0 && errno != EINPROGRESS) {
        err = errno;
        close(sockfd);
        errno = err;
        return -1;
    }
    return sockfd;
}

/* Tells the sender how many bytes arrived: 4 bytes, big-endian, modulo
 * 2^32 (the classic DCC acknowledgement, which irssi waits for before it
 * closes). Only the latest count matters, so one is kept, never a queue;
 * one begun is finished first, or the stream would lose its framing.
 * 0, or -1 with errno. */
static int write_ack(struct incoming *inc)
{
    uint32_t be = htonl((uint32_t)inc->received);
    for (;;) {
        if (inc->ack_sent == 4) {
            if (memcmp(inc->ack, &be, 4) == 0)
                return 0; /* the sender knows it already */
            memcpy(inc->ack, &be, 4);
            inc->ack_sent = 0;
        }
        ssize_t n = write(inc->sockfd, inc->ack + inc->ack_sent, 4 - inc->ack_sent);
        if (n >= 0)
            inc->ack_sent += (size_t)n;
        else if (errno == EAGAIN)
            return 0; /* poll says POLLOUT when there is room */
        else if (errno != EINTR)
            return -1;
    }
}

/* Whether an acknowledgement is still to go out. */
static int ack_pending(const struct incoming *inc)
{
    uint32_t be = htonl((uint32_t)inc->received);
    return inc->ack_sent < 4 || memcmp(inc->ack, &be, 4) != 0;
}

/* All announced bytes are in: the last acknowledgement, the part file
 * linked to its final name, the connection closed. */
static void receive_finish(struct incoming *inc)
{
    char text[128], target[PATH_MAX];
    int kept, err;
    /* Best effort: 4 bytes into an empty send buffer. A sender that never
     * reads its acknowledgements sees our close instead. */
    write_ack(inc);
    summary_text(text, sizeof text, inc->received, now_ns() - inc->progress.started);
    kept = part_keep(&inc->part, target);
    err = errno;
    in_done(inc);
    if (kept)
        chat_say("-!- received %s from %s: %s, saved as %s", inc->name, inc->from, text, target);
    else
        chat_say("-!- keep %s: %s: nothing kept", inc->name, strerror(err));
}

/* Reads the next piece, appends it to the part file, acknowledges. 1 if
 * something moved, 0 if not, -1 on failure (why says it). */
static int receive_file_piece(struct incoming *inc, short revents, char *why, size_t whysize)
{
    int moved = 0;
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        /* Never more than announced: a sender that sends more is cut off
         * at the size, the rest never read. */
        uint64_t left = inc->offer.size - inc->received;
        ssize_t n = read(inc->sockfd, inc->chunk, left < CHUNK ? left : CHUNK);
        if (n == 0) {
            snprintf(why, whysize, "the sender closed the connection after %llu of %llu bytes",
                     (unsigned long long)inc->received, (unsigned long long)inc->offer.size);
            return -1;
        } else if (n > 0) {
            if (writen(inc->part.fd, inc->chunk, (size_t)n) < 0) {
                snprintf(why, whysize, "write %s: %s", inc->part.path, strerror(errno));
                return -1;
            }
            inc->received += (uint64_t)n;
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, whysize, "read: %s", strerror(errno));
            return -1;
        }
    }
    if (write_ack(inc) < 0) {
        snprintf(why, whysize, "write the acknowledgement: %s", strerror(errno));
        return -1;
    }
    return moved;
}

/* The receiver's machine: poll says its connection is ready. */
static void incoming_ready(struct incoming *inc, short revents)
{
    char why[2 * LINE + PATH_MAX], addr[ADDR_TEXT];
    int err = 0, moved;
    socklen_t len = sizeof err;

    if (inc->state == CONNECTING) {
        /* Writable: the handshake is over, and SO_ERROR says how it went
         * (0, or what a blocking connect(2) would have returned). */
        if (getsockopt(inc->sockfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err == 0 && (inc->chunk = malloc(CHUNK)) == NULL)
            err = ENOMEM;
        if (err != 0) {
            in_done(inc); /* the part file removed before the line says so */
            chat_say("-!- connect %s: %s: %s not received",
                sock_ntop((struct sockaddr *)&inc->offer.addr, addr), strerror(err), inc->name);
            return;
        }
        chat_say("-!- connected to %s: receiving %s", inc->from, inc->name);
        inc->deadline = now_ns() + timeout_ns;
        inc->progress.started = now_ns();
        inc->ack_sent = 4;
        inc->state = RECEIVING;
        if (inc->offer.size == 0)
            receive_finish(inc);
    } else if (inc->state == RECEIVING) {
        if ((moved = receive_file_piece(inc, revents, why, sizeof why)) < 0) {
            in_done(inc);
            chat_say("-!- %s from %s failed: %s; nothing kept", inc->name, inc->from, why);
        } else if (inc->received == inc->offer.size) {
            receive_finish(inc);
        } else if (moved) {
            inc->deadline = now_ns() + timeout_ns;
        }
    }
}

/* ---- how a transfer is set up through the chat ------------------------- */

/* /send NICK PATH: open the file, then ask the server where NICK is
 * (WHOIS); the offer goes out with its reply (listen_for). */
static void offer_file(const char *to, const char *path)
{
    struct stat st;
    char name[DCC_MAX_NAME + 1], folded[LINE];
    const char *slash = strrchr(path, '/'), *params[] = { to };
    int file, known = 0;

    if (noutgoing >= MAX_TRANSFERS) {
        chat_say("-!- %d files are offered or sent already: wait for one to end", MAX_TRANSFERS);
        return;
    }
    /* O_NONBLOCK: open(2) of a FIFO would wait for a writer; a regular
     * file, the only kind sent, ignores the flag. */
    if ((file = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0 || fstat(file, &st) < 0) {
        chat_say("-!- open %s: %s: not sent", path, strerror(errno));
        if (file >= 0)
            close(file);
        return;
    }
    if (!S_ISREG(st.st_mode) || !safe_name(name, slash ? slash + 1 : path)) {
        if (!S_ISREG(st.st_mode))
            chat_say("-!- %s is not a regular file: not sent", path);
        else
            chat_say("-!- %s has no usable file name: not sent", path);
        close(file);
        return;
    }
    chat_queue("WHOIS", params, 1);
    /* Its replies are ours until its end (318); a server that never ends
     * one cannot make the list grow. */
    irc_fold(folded, to, sizeof folded);
    for (int j = 0; j < nwhois; j++)
        known |= !strcmp(whois[j], folded);
    if (!known) {
        if (nwhois == MAX_TRANSFERS) {
            memmove(whois[0], whois[1], (MAX_TRANSFERS - 1) * sizeof whois[0]);
            nwhois--;
        }
        strcpy(whois[nwhois++], folded);
    }
    struct outgoing *out = &outgoing[noutgoing++];
    memset(out, 0, sizeof *out);
    snprintf(out->to, sizeof out->to, "%s", to);
    strcpy(out->name, name);
    out->file = file;
    out->size = (uint64_t)st.st_size;
    out->deadline = now_ns() + timeout_ns;
    out->listenfd = out->connfd = -1;
    out->state = LOOKING_UP;
}

/* The server says nick connects from host (WHOIS, 311): each file waiting
 * for nick is offered, on a port of its own. */
static void listen_for(const char *who, const char *host)
{
    struct sockaddr_storage peer;
    int has_peer = host_ip(host, &peer);
    char call[ADDR_TEXT + 16], ctcp[LINE], size[32];
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if (out->state != LOOKING_UP || irc_casecmp(out->to, who) != 0)
            continue;
        if (!listen_for_peer(out, call)) {
            int err = errno;
            out_done(out);
            chat_say("-!- %s: %s: %s not offered", call, strerror(err), out->name);
            continue;
        }
        dcc_send_text(ctcp, out->name, &out->bound, out->size);
        const char *params[] = { out->to, ctcp };
        chat_queue("PRIVMSG", params, 2);
        chat_say("-!- offering %s (%s) to %s at %s: listening on %s for %lu s", out->name,
            human(size, out->size), out->to, host, out->addr, timeout_secs);
        if (!has_peer)
            chat_say("-!- %s is not an address: whoever connects first gets %s", host, out->name);
        out->deadline = now_ns() + timeout_ns;
        out->has_peer = has_peer;
        out->peer = peer;
        out->state = LISTENING;
    }
}

/* No WHOIS answer for nick: the files waiting for them are not offered. */
static void no_peer(const char *who, const char *why)
{
    for (int i = 0; i < noutgoing; i++) {
        if (outgoing[i].state == LOOKING_UP && irc_casecmp(outgoing[i].to, who) == 0) {
            chat_say("-!- %s: %s: %s not offered", who, why, outgoing[i].name);
            out_done(&outgoing[i]);
        }
    }
}

/* DCC REJECT SEND name from `from`: they refuse our offer. */
static void rejected(const char *from, const char *name)
{
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if ((out->state == LOOKING_UP || out->state == LISTENING) &&
            irc_casecmp(out->to, from) == 0 && strcmp(out->name, name) == 0) {
            out_done(out); /* closes the listener */
            chat_say("-!- %s refused %s", from, out->name);
            return;
        }
    }
}

/* A DCC SEND offer from `from`, whose host the server gave in the
 * message's prefix: shown, kept until /accept or /refuse. */
static void offered(const char *from, const char *host, const struct dcc_offer *offer)
{
    char name[DCC_MAX_NAME + 1], shown[8 * LINE], addr[ADDR_TEXT], size[32];
    struct sockaddr_storage host_addr;
    int k = 0, waiting = 0;

    if (!safe_name(name, offer->name)) {
        chat_say("-!- %s offers a file without a usable name (%s): ignored", from,
            quoted(shown, sizeof shown, offer->name));
        return;
    }
    /* A port below 1024 is a service (mail, ssh...), not a client: an
     * offer pointing there would make us connect to it for someone. */
    sock_ntop((const struct sockaddr *)&offer->addr, addr);
    if (port_of((const struct sockaddr *)&offer->addr) < 1024) {
        chat_say("-!- %s's offer of %s points to %s, a service's port: ignored", from, name, addr);
        return;
    }
    /* A newer offer of the same file replaces the old one; past MAX_OFFERS
     * the oldest waiting offer goes; what ended this turn makes room. */
    for (int j = 0; j < nincoming; j++) {
        struct incoming *inc = &incoming[j];
        int same = inc->state == OFFERED && irc_casecmp(inc->from, from) == 0 &&
                   strcmp(inc->name, name) == 0;
        if (same || (inc->state == IN_DONE && nincoming == MAX_INCOMING))
            continue;
        waiting += inc->state == OFFERED;
        incoming[k++] = *inc;
    }
    nincoming = k;
    for (int j = 0; j < nincoming && waiting >= MAX_OFFERS; j++) {
        if (incoming[j].state == OFFERED) {
            chat_say("-!- too many offers waiting: %s from %s forgotten", incoming[j].name,
                incoming[j].from);
            in_done(&incoming[j]);
            waiting = 0;
        }
    }
    if (nincoming == MAX_INCOMING)
        return; /* cannot happen: at most 16 waiting, 16 under way */
    chat_say("-!- %s offers %s (%s): /accept %s or /refuse %s", from, name,
        human(size, offer->size), from, from);
    if (strcmp(name, offer->name) != 0)
        chat_say("-!- (offered as %s: saved as %s)", quoted(shown, sizeof shown, offer->name), name);
    if (host != NULL && host_ip(host, &host_addr) && !same_ip(&host_addr, &offer->addr))
        chat_say("-!- (the offer points to %s, but %s connects from %s)",
            ip_text(&offer->addr, addr), from, host);
    struct incoming *inc = &incoming[nincoming++];
    memset(inc, 0, sizeof *inc);
    snprintf(inc->from, sizeof inc->from, "%s", from);
    strcpy(inc->name, name);
    inc->offer = *offer;
    inc->sockfd = inc->part.fd = -1;
    inc->state = OFFERED;
}

/* The first waiting offer from nick. */
static struct incoming *offer_from(const char *who)
{
    for (int j = 0; j < nincoming; j++)
        if (incoming[j].state == OFFERED && irc_casecmp(incoming[j].from, who) == 0)
            return &incoming[j];
    chat_say("-!- no offer from %s", who);
    return NULL;
}

/* NOTICE from :\1DCC REJECT SEND name\1, as irssi and mIRC say no. */
static void queue_reject(const struct incoming *inc)
{
    char ctcp[LINE + 32];
    snprintf(ctcp, sizeof ctcp, "\1DCC REJECT SEND %s\1", inc->offer.name);
    const char *params[] = { inc->from, ctcp };
    chat_queue("NOTICE", params, 2);
}

/* /accept NICK: does it fit? create NAME.part, connect to the sender. */
static void accept_offer(const char *who)
{
    struct incoming *inc = offer_from(who);
    char why[PATH_MAX + 128], size[32], addr[ADDR_TEXT];
    int active = 0;
    if (inc == NULL)
        return;
    for (int j = 0; j < nincoming; j++)
        active += incoming[j].state == CONNECTING || incoming[j].state == RECEIVING;
    if (active >= MAX_TRANSFERS) {
        chat_say("-!- %d files are being received already: wait for one to end", MAX_TRANSFERS);
        return;
    }
    if (mkdir_all(downloads) < 0) {
        chat_say("-!- mkdir %s: %s", downloads, strerror(errno));
        return;
    }
    /* Before any byte is written: does the file fit? */
    if (will_not_fit(downloads, inc->offer.size, has_max_size, max_size, why, sizeof why)) {
        chat_say("-!- %s (%s) refused: %s", inc->name, human(size, inc->offer.size), why);
        queue_reject(inc);
        in_done(inc);
        return;
    }
    if (!part_create(&inc->part, downloads, inc->name)) {
        chat_say("-!- create a file in %s: %s", downloads, strerror(errno));
        in_done(inc);
        return;
    }
    sock_ntop((struct sockaddr *)&inc->offer.addr, addr);
    if ((inc->sockfd = connect_nonb(&inc->offer.addr)) < 0) {
        int err = errno;
        in_done(inc); /* the part file removed before the line says so */
        chat_say("-!- connect %s: %s: %s not received", addr, strerror(err), inc->name);
        return;
    }
    chat_say("-!- connecting to %s at %s for %s", inc->from, addr, inc->name);
    inc->deadline = now_ns() + timeout_ns;
    inc->state = CONNECTING;
}

/* A /command the chat does not know: 1 if it is one of ours. */
static int transfer_command(const char *name, const char *args)
{
    char who[LINE], *rest;
    int send = !strcmp(name, "send"), accept = !strcmp(name, "accept"),
        refuse = !strcmp(name, "refuse");
    /* NICK, then the rest (args comes without blanks at either end). */
    snprintf(who, sizeof who, "%s", args);
    rest = who + strcspn(who, " ");
    if (*rest != '\0')
        *rest++ = '\0';
    rest += strspn(rest, " \t");
    if (send && *who && *rest) {
        offer_file(who, rest);
    } else if (accept && *who) {
        accept_offer(who);
    } else if (refuse && *who) {
        struct incoming *inc = offer_from(who);
        if (inc != NULL) {
            queue_reject(inc);
            chat_say("-!- refused %s from %s", inc->name, inc->from);
            in_done(inc);
        }
    } else if (send || accept || refuse) {
        chat_say("-!- /%s needs more: /help shows how to use it", name);
    } else {
        return 0;
    }
    return 1;
}

/* A message from the server, before the chat shows it: 1 if it is ours (a
 * DCC offer or refusal, a reply to our WHOIS), and the chat shows nothing. */
static int transfer_message(const struct irc_message *m, const char *from)
{
    static struct dcc_offer offer;
    char body[LINE], text[LINE + 64], folded[LINE];
    const char *c = m->command, *who = irc_param(m, 1);
    int privmsg = !strcasecmp(c, "PRIVMSG"), asked = 0;

    if (privmsg || !strcasecmp(c, "NOTICE")) {
        if (!ctcp_body(body, irc_param(m, 1)))
            return 0;
        switch (dcc_parse(body, &offer, text)) {
        case DCC_NOT:
            return 0; /* a CTCP that is not DCC (ACTION...): the chat shows it */
        case DCC_SEND:
            if (privmsg) {
                const char *at = m->prefix ? strchr(m->prefix, '@') : NULL;
                offered(from, at ? at + 1 : NULL, &offer);
            } else {
                chat_say("-!- %s sent an offer in a NOTICE: ignored", from);
            }
            break;
        case DCC_REJECT:
            rejected(from, text);
            break;
        case DCC_UNSUPPORTED:
            chat_say("-!- %s sent a %s: this client does not do that, ignored", from, text);
            break;
        case DCC_INVALID:
            chat_say("-!- %s sent a DCC offer that makes no sense (%s): ignored", from, text);
            break;
        }
        return 1;
    }
    /* The replies to our WHOIS: where the peer of an offer is. */
    irc_fold(folded, who, sizeof folded);
    for (int j = 0; j < nwhois; j++)
        asked |= !strcmp(whois[j], folded);
    if (!asked || strlen(c) != 3 || strspn(c, "0123456789") != 3)
        return 0;
    if (!strcmp(c, "311")) { /* RPL_WHOISUSER: <me> <nick> <user> <host> * :<real name> */
        listen_for(who, irc_param(m, 3));
    } else if (!strcmp(c, "401")) { /* ERR_NOSUCHNICK */
        no_peer(who, "there is no such nick");
    } else if (!strcmp(c, "318")) { /* RPL_ENDOFWHOIS: without a 311, nobody to offer to */
        int k = 0;
        for (int j = 0; j < nwhois; j++)
            if (strcmp(whois[j], folded) != 0)
                memmove(whois[k++], whois[j], LINE);
        nwhois = k;
        no_peer(who, "the server did not say where they are");
    }
    return 1;
}

/* ---- the transfers in the poll loop ------------------------------------- */

/* What each transfer waits for: fds[] filled, their number returned;
 * slots[k] says whose fds[k] is (i: outgoing[i], MAX_TRANSFERS + i:
 * incoming[i]). */
static int interests(struct pollfd *fds, int *slots)
{
    int n = 0;
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        if (out->state != LISTENING && out->state != SENDING)
            continue;
        /* A connection waiting in the backlog makes the listener readable;
         * a connection is always read (acknowledgements, the close). */
        fds[n].fd = out->state == LISTENING ? out->listenfd : out->connfd;
        fds[n].events = POLLIN | (out->state == SENDING && out->sent < out->size ? POLLOUT : 0);
        slots[n++] = i;
    }
    for (int i = 0; i < nincoming; i++) {
        struct incoming *inc = &incoming[i];
        if (inc->state != CONNECTING && inc->state != RECEIVING)
            continue;
        /* A non-blocking connect(2) is done when the socket is writable. */
        fds[n].fd = inc->sockfd;
        fds[n].events = inc->state == CONNECTING ? POLLOUT
                                                 : POLLIN | (ack_pending(inc) ? POLLOUT : 0);
        slots[n++] = MAX_TRANSFERS + i;
    }
    return n;
}

static int in_active(const struct incoming *inc)
{
    return inc->state == CONNECTING || inc->state == RECEIVING;
}

/* Whether anything of ours is under way: an offer out, a transfer. */
static int busy(void)
{
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state != OUT_DONE)
            return 1;
    for (int i = 0; i < nincoming; i++)
        if (in_active(&incoming[i]))
            return 1;
    return 0;
}

/* poll's timeout: the next deadline of an offer or a transfer, in ms. */
static int next_timeout(void)
{
    int64_t next = INT64_MAX, ms;
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state != OUT_DONE && outgoing[i].deadline < next)
            next = outgoing[i].deadline;
    for (int i = 0; i < nincoming; i++)
        if (in_active(&incoming[i]) && incoming[i].deadline < next)
            next = incoming[i].deadline;
    if (next == INT64_MAX)
        return -1;
    ms = (next > now_ns() ? (next - now_ns()) / 1000000 : 0) + 1;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Offers nobody took, transfers that stalled: given up. */
static void check_deadlines(int64_t now)
{
    unsigned long secs = timeout_secs;
    for (int i = 0; i < noutgoing; i++) {
        struct outgoing *out = &outgoing[i];
        enum out_state state = out->state;
        if (now < out->deadline || state == OUT_DONE)
            continue;
        out_done(out); /* closes its descriptor before the line says so */
        if (state == LOOKING_UP)
            chat_say("-!- no answer about %s in %lu s: %s not offered", out->to, secs, out->name);
        else if (state == LISTENING)
            chat_say("-!- nobody came for %s in %lu s: the offer to %s is withdrawn", out->name,
                secs, out->to);
        else if (out->sent == out->size)
            chat_say("-!- sent %s to %s, but %s did not confirm the end within %lu s", out->name,
                out->to, out->to, secs);
        else
            chat_say("-!- %s to %s stalled for %lu s: abandoned", out->name, out->to, secs);
    }
    for (int i = 0; i < nincoming; i++) {
        struct incoming *inc = &incoming[i];
        if (in_active(inc) && now >= inc->deadline) {
            in_done(inc); /* removes the part file */
            chat_say("-!- %s from %s stalled for %lu s: abandoned, nothing kept", inc->name,
                inc->from, secs);
        }
    }
}

/* One transfer's progress: a part of the status line on a terminal, else a
 * plain line as it passes each quarter. */
static void progress_one(char *status, const char *name, const char *dir, const char *who,
                         uint64_t done, uint64_t total, struct progress *p)
{
    char text[256], line[4 * LINE];
    uint64_t quarters = total == 0 ? 0 : done <= UINT64_MAX / 4 ? done * 4 / total
                                                                 : done / (total / 4);
    if (!tty && (quarters <= p->quarters || quarters >= 4))
        return;
    progress_text(text, sizeof text, done, total, now_ns() - p->started);
    snprintf(line, sizeof line, "%s %s %s: %s", name, dir, who, text);
    if (!tty) {
        p->quarters = quarters;
        chat_say("-!- %s", line);
    } else if (strlen(status) + strlen(line) + 4 < 8 * LINE) {
        strcat(strcat(status, *status ? " | " : ""), line);
    }
}

static void show_progress(void)
{
    char status[8 * LINE] = "";
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state == SENDING)
            progress_one(status, outgoing[i].name, "to", outgoing[i].to, outgoing[i].sent,
                         outgoing[i].size, &outgoing[i].progress);
    for (int i = 0; i < nincoming; i++)
        if (incoming[i].state == RECEIVING)
            progress_one(status, incoming[i].name, "from", incoming[i].from,
                         incoming[i].received, incoming[i].offer.size, &incoming[i].progress);
    if (*status && now_ns() - redrawn >= REDRAW_NS) {
        chat_status(status); /* drawn over the last one; chat_say erases it */
        redrawn = now_ns();
    }
}

/* The end of the turn: what is over is forgotten (closed already). */
static void remove_done(void)
{
    int k = 0;
    for (int i = 0; i < noutgoing; i++)
        if (outgoing[i].state != OUT_DONE)
            outgoing[k++] = outgoing[i];
    noutgoing = k;
    k = 0;
    for (int i = 0; i < nincoming; i++)
        if (incoming[i].state != IN_DONE)
            incoming[k++] = incoming[i];
    nincoming = k;
}

/* The client leaves: every transfer is dropped, part files removed. */
static void abandon_all(int say_so)
{
    if (say_so && busy())
        chat_say("-!- transfers abandoned");
    for (int i = 0; i < noutgoing; i++)
        out_done(&outgoing[i]);
    for (int i = 0; i < nincoming; i++)
        in_done(&incoming[i]);
    noutgoing = nincoming = 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "nick", required_argument, NULL, 'n' },
        { "raw", no_argument, NULL, 'r' },
        { "downloads", required_argument, NULL, 'd' },
        { "max-size", required_argument, NULL, 'm' },
        { "offer-timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *host = DEFAULT_HOST, *first_nick = NULL;
    unsigned short port = DEFAULT_PORT;
    int sockfd, c, raw = 0, stdin_open = 1;

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': first_nick = optarg; break;
        case 'r': raw = 1; break;
        case 'd': downloads = optarg; break;
        case 'm':
            if (!parse_size(optarg, &max_size))
                usage_error("invalid SIZE '%s': a number of bytes, with k, M, G or T", optarg);
            has_max_size = 1;
            break;
        case 't': timeout_secs = parse_number(optarg, "SECS", 1, 86400); break;
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
    timeout_ns = (int64_t)timeout_secs * 1000000000LL;

    /* Line-buffered even into a pipe: each event is seen as it happens. A
     * write(2) to a reset peer raises SIGPIPE, which kills (signal(7));
     * ignored, write fails with EPIPE. Rust's runtime does this too. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    char server[ADDR_TEXT];
    sockfd = tcp_connect(host, port, server); /* lab 07's connection, as UNP's tcp_connect */
    /* Non-blocking, as in lab 07: a write takes what fits, poll says when
     * more will. */
    if ((c = fcntl(sockfd, F_GETFL)) < 0 || fcntl(sockfd, F_SETFL, c | O_NONBLOCK) < 0)
        die("fcntl", server);
    /* Our own address, as the chat connection uses it (getsockname(2)):
     * the address we offer files on is one the chat server, at least, can
     * reach us at. Behind NAT it is a private address nobody outside can. */
    socklen_t len = sizeof local;
    if (getsockname(sockfd, (struct sockaddr *)&local, &len) < 0)
        die("getsockname", server);

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "connected to %s; /help for the commands, Ctrl-D or /quit to leave\n",
                server);
    tty = isatty(STDOUT_FILENO);
    redrawn = now_ns();
    chat_start(raw, &transfers);
    if (first_nick != NULL)
        chat_register(first_nick);
    else
        chat_say("-!- choose a nickname: /nick NAME");

    static struct irc_lines from_server, from_user;
    struct pollfd fds[2 + MAX_TRANSFERS + MAX_INCOMING];
    int slots[MAX_TRANSFERS + MAX_INCOMING];
    char line[LINE];
    size_t n_line;
    enum irc_piece piece;
    for (;;) {
        /* [0] stdin, [1] the chat socket, [2..] one per transfer (lab 07's
         * set, rebuilt each turn). Unwatched, stdin is left out of the
         * array: a pipe whose writer has gone reports POLLHUP whatever was
         * asked. The timeout is the transfers' clock. */
        int watch_stdin = stdin_open && !chat_quitting() && chat_outlen < CHAT_MAX_QUEUED;
        int first = watch_stdin ? 0 : 1;
        fds[0].fd = STDIN_FILENO;
        fds[0].events = POLLIN;
        fds[1].fd = sockfd;
        fds[1].events = POLLIN | (chat_outlen > 0 ? POLLOUT : 0);
        int ntransfers = interests(fds + 2, slots);
        for (int k = 0; k < 2 + ntransfers; k++)
            fds[k].revents = 0;
        if (poll(fds + first, (nfds_t)(2 + ntransfers - first), next_timeout()) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", server);
        }

        /* The transfers first: their places in the lists are those poll
         * saw. Nothing is removed before the end of the turn. */
        for (int k = 0; k < ntransfers; k++) {
            if (fds[2 + k].revents == 0)
                continue;
            if (slots[k] < MAX_TRANSFERS)
                outgoing_ready(&outgoing[slots[k]], fds[2 + k].revents);
            else
                incoming_ready(&incoming[slots[k] - MAX_TRANSFERS], fds[2 + k].revents);
        }

        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(sockfd, from_server.buf + from_server.len,
                             sizeof from_server.buf - from_server.len);
            if ((n == 0 || (n < 0 && errno == ECONNRESET)) && chat_quitting()) {
                /* After our QUIT the server closes: that is the goodbye. A
                 * reset is one too: the server closed with some of our
                 * input unread, and close(2) then sends a RST (tcp(7)). */
                abandon_all(0);
                close(sockfd);
                return 0;
            } else if (n == 0) {
                chat_status_erase();
                fprintf(stderr, "server %s closed the connection\n", server);
                abandon_all(1);
                exit(1);
            } else if (n > 0) {
                from_server.len += (size_t)n;
                /* Longer than IRC allows: not a message of ours to show. */
                while ((piece = irc_next_line(&from_server, line, &n_line)) != IRC_NONE)
                    if (piece == IRC_WHOLE)
                        chat_receive(line, n_line);
            } else if (errno != EAGAIN && errno != EINTR) {
                die("read", server);
            }
        }

        if (watch_stdin && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(STDIN_FILENO, from_user.buf + from_user.len,
                             sizeof from_user.buf - from_user.len);
            if (n == 0) {
                stdin_open = 0;
                if ((piece = irc_rest_line(&from_user, line, &n_line)) != IRC_NONE)
                    chat_typed(piece, line, n_line);
            } else if (n > 0) {
                from_user.len += (size_t)n;
                while ((piece = irc_next_line(&from_user, line, &n_line)) != IRC_NONE)
                    chat_typed(piece, line, n_line);
            } else if (errno != EINTR) {
                die("read", "stdin");
            }
        }
        /* End of input: leave once our offers and transfers are over (lab
         * 07 leaves at once), so that `... | ./client-c` can send a file. */
        if (!stdin_open && !chat_quitting() && !busy())
            chat_typed(IRC_WHOLE, "/quit", 5);

        if ((fds[1].revents & (POLLOUT | POLLHUP | POLLERR)) && chat_outlen > 0) {
            ssize_t n = write(sockfd, chat_out, chat_outlen);
            if (n > 0) {
                memmove(chat_out, chat_out + n, chat_outlen - (size_t)n);
                chat_outlen -= (size_t)n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                die("write", server);
            }
        }

        check_deadlines(now_ns());
        show_progress();
        remove_done();
    }
}
