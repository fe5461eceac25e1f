/*
 * labs.c: the helpers of labs.h, shared by every lab's C programs as UNP's
 * library is (lib/error.c, lib/writen.c, lib/readline.c, lib/sock_ntop.c,
 * lib/tcp_connect.c).
 */
#include "labs.h"

#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>

void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
    exit(1);
}

void todo(const char *what)
{
    fprintf(stderr, "TODO %s: not written yet\n", what);
    exit(1);
}

int writen(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t done = write(fd, p, n);
        if (done < 0) {
            if (errno == EINTR)
                continue; /* a signal came before anything was written */
            return -1;
        }
        p += done;
        n -= (size_t)done;
    }
    return 0;
}

/*
 * Why not writen and SO_SNDTIMEO alone: the send timeout bounds each write(2)
 * call, not the whole loop (socket(7)). A blocked write that times out after
 * sending part of buf returns that count; called again for the rest, write(2)
 * waits a whole timeout more: a peer that stopped reading would be given up
 * after twice the timeout, and one that reads a little now and then, never.
 *
 * So fd must be a blocking socket whose SO_SNDTIMEO is already set, to at
 * most the time until the deadline (set once per connection: a write that
 * completes costs no other call). A blocking write(2) stops early only when
 * that timeout fired or a signal came: it returns a short count, EAGAIN
 * (nothing sent) or EINTR. Each time, SO_SNDTIMEO is set again to the time
 * left, and the rest is written; when no time is left, EAGAIN, as write(2)
 * says it. The last SO_SNDTIMEO set stays on the socket: a later call may
 * then stop early once, and is resumed the same way. Not for a non-blocking
 * socket, whose EAGAIN would be retried in a busy loop.
 */
int writen_before(int fd, const void *buf, size_t n, const struct timespec *deadline)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t done = write(fd, p, n);
        if (done == (ssize_t)n)
            return 0;
        if (done == 0) { /* write(2) never does this for a non-empty buffer */
            errno = EIO;
            return -1;
        }
        if (done > 0) {
            p += done;
            n -= (size_t)done;
        } else if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left_ns = (long long)(deadline->tv_sec - now.tv_sec) * 1000000000LL +
                            (deadline->tv_nsec - now.tv_nsec);
        if (left_ns <= 0) {
            errno = EAGAIN;
            return -1;
        }
        /* Rounded up to the microsecond: an SO_SNDTIMEO of zero would mean
         * "no timeout" and block for ever (socket(7)). */
        long long left_us = (left_ns + 999) / 1000;
        struct timeval left = { .tv_sec = (time_t)(left_us / 1000000),
                                .tv_usec = (suseconds_t)(left_us % 1000000) };
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &left, sizeof left) < 0)
            return -1;
    }
    return 0;
}

/* What read(2) gave and readline has not handed out yet. */
static char rl_buf[65536];
static size_t rl_pos, rl_len;
static int rl_eof;

ssize_t readline(int fd, void *buf, size_t maxlen)
{
    char *out = buf;
    size_t n = 0;
    while (n < maxlen) {
        if (rl_pos == rl_len) {
            if (rl_eof)
                break; /* a terminal gives more after Ctrl-D: we stopped at the first */
            ssize_t got = read(fd, rl_buf, sizeof rl_buf);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            if (got == 0) {
                rl_eof = 1;
                break;
            }
            rl_pos = 0;
            rl_len = (size_t)got;
        }
        size_t take = rl_len - rl_pos < maxlen - n ? rl_len - rl_pos : maxlen - n;
        char *newline = memchr(rl_buf + rl_pos, '\n', take);
        if (newline != NULL)
            take = (size_t)(newline - (rl_buf + rl_pos)) + 1;
        memcpy(out + n, rl_buf + rl_pos, take);
        rl_pos += take;
        n += take;
        if (newline != NULL)
            break;
    }
    return (ssize_t)n;
}

char *sock_ntop(const struct sockaddr *sa, char *out)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        if (in6->sin6_scope_id != 0)
            snprintf(out, ADDR_TEXT, "[%s%%%u]:%u", ip, (unsigned)in6->sin6_scope_id,
                     ntohs(in6->sin6_port));
        else
            snprintf(out, ADDR_TEXT, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, ADDR_TEXT, "%s:%u", ip, ntohs(in->sin_port));
    }
    return out;
}

unsigned short port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

int tcp_connect(const char *host, unsigned short port, char *server)
{
    struct addrinfo hints, *res, *ai;
    char service[8];
    int sockfd = -1, err = EADDRNOTAVAIL, n;

    /* ai_family 0 (AF_UNSPEC): IPv4 and IPv6 alike. */
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%u", port);
    if ((n = getaddrinfo(host, service, &hints, &res)) != 0) {
        fprintf(stderr, "getaddrinfo %s: %s\n", host,
                n == EAI_SYSTEM ? strerror(errno) : gai_strerror(n));
        exit(1);
    }
    snprintf(server, ADDR_TEXT, "127.0.0.1:%u", port);
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        sock_ntop(ai->ai_addr, server);
        if ((sockfd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0)
            die("socket", server);
        if (connect(sockfd, ai->ai_addr, ai->ai_addrlen) == 0)
            break; /* connected */
        err = errno;
        close(sockfd);
        sockfd = -1;
    }
    freeaddrinfo(res);
    if (sockfd < 0) {
        errno = err;
        die("connect", server); /* the last address tried */
    }
    return sockfd;
}

/* ---- the command line */

static const char *usage_text = "usage: ?\n";

void set_usage(const char *text)
{
    usage_text = text;
}

void help(void)
{
    fputs(usage_text, stdout);
    exit(0);
}

void bad_usage(void)
{
    const char *end = strchr(usage_text, '\n');
    int len = end ? (int)(end - usage_text) : (int)strlen(usage_text);
    fprintf(stderr, "%.*s\nTry '--help' for more information.\n", len, usage_text);
    exit(2);
}

void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    bad_usage();
}

unsigned long parse_number(const char *text, const char *what, unsigned long min,
                           unsigned long max)
{
    char *end;
    /* A '+' may come first, as strtoul(3) and Rust's parse take it; no
     * blank and no '-' (strtoul would take "-1" as ULONG_MAX). */
    const char *digits = text[0] == '+' ? text + 1 : text;
    errno = 0;
    unsigned long n = strtoul(digits, &end, 10);
    if (digits[0] < '0' || digits[0] > '9' || *end != '\0' || errno == ERANGE || n < min || n > max)
        usage_error("%s must be a number from %lu to %lu, not '%s'", what, min, max, text);
    return n;
}

unsigned short parse_port(const char *text)
{
    return (unsigned short)parse_number(text, "PORT", 0, 65535);
}

socklen_t parse_addr(const char *ip, unsigned short port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        return sizeof *in;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        return sizeof *in6;
    }
    usage_error("ADDR must be an IPv4 or IPv6 address, not '%s'", ip);
}

/* ---- descriptors */

unsigned long long raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit", "RLIMIT_NOFILE");
    rlim_t soft = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "setrlimit RLIMIT_NOFILE: %s\n", strerror(errno));
        return (unsigned long long)soft;
    }
    return (unsigned long long)rl.rlim_max;
}

int reserve_spare(unsigned long long limit)
{
    int spare = open("/dev/null", O_RDONLY);
    if (spare < 0 && errno != EMFILE)
        die("open", "/dev/null");
    /* dup(2) takes the lowest free descriptor, as accept(2) will. */
    int probe = spare < 0 ? -1 : dup(spare);
    if (probe < 0) {
        if (errno != EMFILE)
            die("dup", "/dev/null");
        fprintf(stderr, "descriptor limit %llu (RLIMIT_NOFILE) leaves no room for a client\n",
                limit);
        exit(1);
    }
    close(probe);
    return spare;
}

int refuse_one(int listener, int *spare, const char *local)
{
    int refused = 1;
    close(*spare);
    int fd = accept4(listener, NULL, NULL, 0);
    if (fd >= 0)
        close(fd);
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        refused = 0; /* nobody waits */
    else if (errno != ECONNABORTED && errno != EINTR)
        die("accept", local); /* even with the spare closed: the system is out of files */
    *spare = open("/dev/null", O_RDONLY);
    if (*spare < 0)
        die("open", "/dev/null");
    return refused;
}

/* ---- time and rates */

long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

char *utc_date(time_t t, char *out)
{
    struct tm *tm = gmtime(&t);
    if (tm == NULL || strftime(out, UTC_LEN, "%Y-%m-%d %H:%M:%S UTC", tm) == 0)
        out[0] = '\0';
    return out;
}

void token_bucket_init(struct token_bucket *b, unsigned long long burst, unsigned long long rate)
{
    b->burst = burst;
    b->rate = rate;
    b->millionths = burst * 1000000ULL; /* full */
    b->filled_us = 0;
}

int token_bucket_take(struct token_bucket *b, unsigned long long now)
{
    unsigned long long full = b->burst * 1000000ULL;
    /* Full anyway after `full` microseconds; and the product cannot overflow. */
    unsigned long long elapsed = now > b->filled_us ? now - b->filled_us : 0;
    if (elapsed > full)
        elapsed = full;
    /* rate tokens a second are rate millionths a microsecond. */
    b->millionths += elapsed * b->rate;
    if (b->millionths > full)
        b->millionths = full;
    b->filled_us = now;
    if (b->millionths < 1000000ULL)
        return 0;
    b->millionths -= 1000000ULL;
    return 1;
}
