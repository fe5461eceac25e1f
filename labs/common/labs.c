/*
 * labs.c: the helpers of labs.h, shared by every lab's C programs as UNP's
 * library is (lib/error.c, lib/writen.c, lib/sock_ntop.c).
 */
#include "labs.h"

#include <fcntl.h>
#include <stdarg.h>

void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
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
    errno = 0;
    unsigned long n = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno == ERANGE || n < min || n > max)
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
