/*
 * labs.h: what the C programs of every lab share, as UNP's unp.h does.
 *
 * None of it is a lab's lesson: reporting a failed call, the write-all
 * loops, reading a line, an address as text, the command line's numbers and
 * addresses, the descriptor limit, the clock and a token bucket. The socket
 * calls themselves stay in each program, at the call site; only a client's
 * connect loop, once lab 01 has taught it, is tcp_connect here, as in UNP.
 * Built into each program with labs.c:
 *
 *     cc -Wall -Wextra -O2 -I../common -o server-c server.c ../common/labs.c
 */
#ifndef LABS_H
#define LABS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4(2), strsignal(3) */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 4242
#define DEFAULT_HOST "127.0.0.1"
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* `call what: reason` on stderr, as perror(3) says it, and exit 1. */
_Noreturn void die(const char *call, const char *what);

/* A starter's gap (make exercise): `TODO what: not written yet` on stderr,
 * and exit 1. */
_Noreturn void todo(const char *what);

/* Writes all n bytes: again after a partial write or EINTR (UNP's writen).
 * Returns 0, or -1 with errno set (EPIPE, ECONNRESET: the peer is gone). */
int writen(int fd, const void *buf, size_t n);

/* As writen, to a blocking socket whose SO_SNDTIMEO is set, but gives up
 * with EAGAIN once the CLOCK_MONOTONIC time *deadline has passed: a send
 * timeout bounds one write(2), not the whole loop (labs.c says more; lab
 * 01's sheet; src/io.rs). */
int writen_before(int fd, const void *buf, size_t n, const struct timespec *deadline);

/* Reads one line into buf, its '\n' included, and returns its length (UNP's
 * readline, without the '\0': a line may hold any byte). A line longer than
 * maxlen comes in pieces of maxlen bytes; a last line without '\n' as it
 * is; then 0 at end of file. -1 with errno set on error. It reads ahead into
 * a buffer of its own, as stdio does: for one descriptor only (stdin). */
ssize_t readline(int fd, void *buf, size_t maxlen);

/* An address as every lab prints it: 127.0.0.1:4242, [::1]:4242. out holds
 * ADDR_TEXT bytes. Returns out. (UNP's sock_ntop.) */
char *sock_ntop(const struct sockaddr *sa, char *out);

/* Connects to host (a name such as localhost, or an address) on port,
 * trying each address getaddrinfo(3) gives in turn (UNP's tcp_connect).
 * Returns the socket, and the server's address as text in server
 * (ADDR_TEXT bytes). If none accepts, says why and exits 1. */
int tcp_connect(const char *host, unsigned short port, char *server);

/* The command line. Each program parses its options with getopt_long(3);
 * these say what is wrong and exit 2, after the program's usage line. */
void set_usage(const char *text);       /* the --help text; its first line is the synopsis */
_Noreturn void help(void);              /* the --help text on stdout, exit 0 */
_Noreturn void bad_usage(void);         /* the synopsis on stderr, exit 2 */
_Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
unsigned long parse_number(const char *text, const char *what, unsigned long min,
                           unsigned long max);
unsigned short parse_port(const char *text);
/* An IPv4 or IPv6 literal and a port into *ss (inet_pton(3)); returns the
 * address's length. */
socklen_t parse_addr(const char *ip, unsigned short port, struct sockaddr_storage *ss);
/* The port of an IPv4 or IPv6 address, in host order. */
unsigned short port_of(const struct sockaddr *sa);

/* Raises the soft limit on descriptors (RLIMIT_NOFILE) to the hard one, so
 * that thousands of clients fit (getrlimit(2)); returns the limit in force. */
unsigned long long raise_nofile_limit(void);

/* The spare descriptor: how a multiplexing server survives EMFILE (lab 04's
 * sheet). reserve_spare opens it on /dev/null and checks that one more
 * descriptor is left for a client, or says so and exits 1. refuse_one, after
 * accept(2) on the non-blocking listener failed with EMFILE: closes the
 * spare, accepts and closes the waiting connection, opens the spare again;
 * returns 0 when nobody was waiting. */
int reserve_spare(unsigned long long limit);
int refuse_one(int listener, int *spare, const char *local);

/* Microseconds on a clock that never jumps (clock_gettime(2),
 * CLOCK_MONOTONIC), from an arbitrary start. */
long long now_us(void);

/* t as the labs write a date, "2025-01-31 14:05:09 UTC" (src/date.rs's
 * utc), into out, of at least UTC_LEN bytes: out, or "" if gmtime(3) fails. */
#define UTC_LEN 32
char *utc_date(time_t t, char *out);

/* A token bucket (src/rate.rs): it holds at most burst tokens and gains
 * rate a second; each use takes one, and with none left the use is refused.
 * So burst uses pass at once, then rate a second. Counted in millionths of
 * a token, in integers, so that the Rust twin counts the very same. */
struct token_bucket {
    unsigned long long burst, rate;
    unsigned long long millionths; /* what it holds */
    unsigned long long filled_us;  /* when it was last filled */
};
void token_bucket_init(struct token_bucket *b, unsigned long long burst, unsigned long long rate);
/* Takes a token at now (microseconds since the program started): 1, or
 * 0 when the bucket is empty. */
int token_bucket_take(struct token_bucket *b, unsigned long long now);

#endif
