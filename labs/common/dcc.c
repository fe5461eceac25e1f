/*
 * dcc.c: the helpers of dcc.h, for lab 08's C client (the twin of
 * src/dcc.rs, src/download.rs and src/progress.rs). Every input, however
 * hostile, gives a value or an error: each piece is copied into a buffer of
 * known size.
 */
#include "dcc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* ---- the offer */

int ctcp_body(char *body, const char *text)
{
    if (text[0] != '\1')
        return 0;
    snprintf(body, IRC_MAX_LINE + 1, "%s", text + 1);
    size_t len = strlen(body);
    if (len > 0 && body[len - 1] == '\1')
        body[len - 1] = '\0';
    return 1;
}

/* A decimal number, digits only after an optional '+' (as strtoul(3)
 * takes it, and the Rust client), at most max. */
static int parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    uint64_t n = 0;
    if (*text == '+')
        text++;
    if (*text == '\0')
        return 0;
    for (; *text; text++) {
        unsigned digit = (unsigned)(*text - '0');
        if (digit > 9 || n > (max - digit) / 10)
            return 0;
        n = n * 10 + digit;
    }
    *out = n;
    return 1;
}

/* The address of an offer: IPv4 as a 32-bit number in network order
 * (2130706433 is 127.0.0.1), or IPv6 (or dotted IPv4) as text. Nobody
 * listens on 0.0.0.0 or a multicast address. */
static int offer_ip(const char *text, struct sockaddr_storage *ip)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ip;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ip;
    uint64_t number;
    memset(ip, 0, sizeof *ip);
    if (text[strspn(text, "0123456789")] == '\0') {
        if (!parse_u64(text, UINT32_MAX, &number))
            return 0;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl((uint32_t)number);
    } else if (strchr(text, ':') != NULL) {
        in6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, text, &in6->sin6_addr) != 1)
            return 0;
    } else {
        in->sin_family = AF_INET;
        if (inet_pton(AF_INET, text, &in->sin_addr) != 1)
            return 0;
    }
    if (ip->ss_family == AF_INET) {
        uint32_t a = ntohl(in->sin_addr.s_addr);
        return a != 0 && !IN_MULTICAST(a);
    }
    return !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) && !IN6_IS_ADDR_MULTICAST(&in6->sin6_addr);
}

#define FEWER "fewer than 4 fields (name, address, port, size)"

/* DCC SEND name ip port size, the name quoted if it holds spaces. A fifth
 * field is the token of a passive (reverse) offer, port 0: the receiver
 * would have to listen, which this client does not do. */
static enum dcc_kind parse_send(char *args, struct dcc_offer *offer, char *text)
{
    char *fields[IRC_MAX_LINE], *f, shown[IRC_MAX_LINE];
    int n = 0, cut;
    uint64_t port, size;

    args += strspn(args, " ");
    if (args[0] == '"') {
        char *end = strchr(args + 1, '"');
        if (end == NULL) {
            strcpy(text, "a quoted name without its closing quote");
            return DCC_INVALID;
        }
        *end = '\0';
        snprintf(offer->name, sizeof offer->name, "%s", args + 1);
        for (f = strtok(end + 1, " "); f != NULL; f = strtok(NULL, " "))
            fields[n++] = f;
        cut = 0;
    } else {
        /* Some clients do not quote names with spaces: the name is
         * everything before the numeric fields at the end. */
        for (f = strtok(args, " "); f != NULL; f = strtok(NULL, " "))
            fields[n++] = f;
        if (n < 4) {
            strcpy(text, FEWER);
            return DCC_INVALID;
        }
        cut = n - (n >= 5 && strcmp(fields[n - 3], "0") == 0 ? 4 : 3);
        offer->name[0] = '\0';
        for (int k = 0; k < cut; k++) {
            strcat(offer->name, k > 0 ? " " : "");
            strcat(offer->name, fields[k]);
        }
    }
    if (n - cut < 3) {
        strcpy(text, FEWER);
        return DCC_INVALID;
    }
    if (n - cut > 4) {
        strcpy(text, "too many fields");
        return DCC_INVALID;
    }
    if (!offer_ip(fields[cut], &offer->addr)) {
        sprintf(text, "bad address %s", quoted(shown, sizeof shown, fields[cut]));
        return DCC_INVALID;
    }
    if (!parse_u64(fields[cut + 1], 65535, &port)) {
        sprintf(text, "bad port %s", quoted(shown, sizeof shown, fields[cut + 1]));
        return DCC_INVALID;
    }
    if (!parse_u64(fields[cut + 2], UINT64_MAX, &size)) {
        sprintf(text, "bad size %s", quoted(shown, sizeof shown, fields[cut + 2]));
        return DCC_INVALID;
    }
    if (port == 0 || n - cut == 4) {
        strcpy(text, "passive DCC SEND (port 0)");
        return DCC_UNSUPPORTED;
    }
    if (offer->addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&offer->addr)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&offer->addr)->sin6_port = htons((uint16_t)port);
    offer->size = size;
    return DCC_SEND;
}

enum dcc_kind dcc_parse(const char *body, struct dcc_offer *offer, char *text)
{
    char copy[IRC_MAX_LINE + 1], *kind, *args, *space;

    snprintf(copy, sizeof copy, "%s", body);
    kind = strchr(copy, ' ');
    if (kind != NULL)
        *kind++ = '\0';
    if (strcasecmp(copy, "DCC") != 0)
        return DCC_NOT;
    if (kind == NULL)
        kind = copy + strlen(copy);
    kind += strspn(kind, " ");
    args = strchr(kind, ' ');
    if (args != NULL)
        *args++ = '\0';
    else
        args = kind + strlen(kind);
    for (char *s = kind; *s; s++)
        *s = (char)toupper((unsigned char)*s);

    if (strcmp(kind, "SEND") == 0) {
        size_t len = strlen(args);
        while (len > 0 && args[len - 1] == ' ')
            args[--len] = '\0';
        return parse_send(args, offer, text);
    }
    if (strcmp(kind, "REJECT") == 0) {
        args += strspn(args, " ");
        if ((space = strchr(args, ' ')) != NULL && space - args == 4 &&
            strncasecmp(args, "SEND", 4) == 0) {
            /* The name, unquoted if it came between two quotes. */
            char *name = space + 1;
            name += strspn(name, " \t");
            size_t len = strlen(name);
            while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
                name[--len] = '\0';
            if (len >= 2 && name[0] == '"' && name[len - 1] == '"') {
                name[len - 1] = '\0';
                name++;
            }
            strcpy(text, name);
            return DCC_REJECT;
        }
        sprintf(text, "DCC REJECT %s", args);
        return DCC_UNSUPPORTED;
    }
    if (kind[0] == '\0') {
        strcpy(text, "an empty DCC request");
        return DCC_INVALID;
    }
    sprintf(text, "DCC %s", kind);
    return DCC_UNSUPPORTED;
}

void dcc_send_text(char *out, const char *name, const struct sockaddr_storage *addr,
                   uint64_t size)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    char ip[INET6_ADDRSTRLEN];
    unsigned short port;
    if (addr->ss_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        ip_text(addr, ip);
        port = ntohs(in6->sin6_port);
    } else if (addr->ss_family == AF_INET6) {
        uint32_t v4;
        memcpy(&v4, &in6->sin6_addr.s6_addr[12], 4);
        snprintf(ip, sizeof ip, "%lu", (unsigned long)ntohl(v4));
        port = ntohs(in6->sin6_port);
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        snprintf(ip, sizeof ip, "%lu", (unsigned long)ntohl(in->sin_addr.s_addr));
        port = ntohs(in->sin_port);
    }
    const char *q = strchr(name, ' ') != NULL ? "\"" : "";
    snprintf(out, IRC_MAX_LINE + 1, "\1DCC SEND %s%s%s %s %u %llu\1", q, name, q, ip, port,
             (unsigned long long)size);
}

/* ---- addresses */

int host_ip(const char *text, struct sockaddr_storage *ip)
{
    memset(ip, 0, sizeof *ip);
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)ip)->sin_addr) == 1) {
        ip->ss_family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)ip)->sin6_addr) == 1) {
        ip->ss_family = AF_INET6;
        return 1;
    }
    return 0;
}

/* The address as 16 bytes, IPv4 as an IPv4-mapped IPv6 address. */
static void canonical(const struct sockaddr_storage *ip, unsigned char *out)
{
    if (ip->ss_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)ip)->sin_addr, 4);
    } else {
        memcpy(out, &((const struct sockaddr_in6 *)ip)->sin6_addr, 16);
    }
}

int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    unsigned char x[16], y[16];
    canonical(a, x);
    canonical(b, y);
    return memcmp(x, y, 16) == 0;
}

char *ip_text(const struct sockaddr_storage *ip, char *out)
{
    if (ip->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ip)->sin6_addr, out,
                  INET6_ADDRSTRLEN);
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ip)->sin_addr, out, INET6_ADDRSTRLEN);
    return out;
}

/* ---- names */

/* The length of a character that must not reach a file name or a
 * terminal as it is, at s: an ASCII control, a C1 control (U+0080 to
 * U+009F), or one of Unicode's explicit direction controls (LRM, RLM,
 * embeddings, overrides, isolates), which reorder what follows; else 0. */
static size_t control_len(const unsigned char *s)
{
    if (s[0] < 0x20 || s[0] == 0x7f)
        return 1;
    if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
        return 2;
    if (s[0] == 0xe2 && ((s[1] == 0x80 && (s[2] == 0x8e || s[2] == 0x8f ||
                                           (s[2] >= 0xaa && s[2] <= 0xae))) ||
                         (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9)))
        return 3;
    return 0;
}

int safe_name(char *out, const char *offered)
{
    const char *base = offered, *end, *s;
    size_t n = 0, len;

    for (s = offered; *s; s++)
        if (*s == '/' || *s == '\\')
            base = s + 1;
    while (*base == ' ' || (*base >= '\t' && *base <= '\r'))
        base++;
    end = base + strlen(base);
    while (end > base && (end[-1] == ' ' || (end[-1] >= '\t' && end[-1] <= '\r')))
        end--;
    if (base + strspn(base, ".") >= end)
        return 0; /* "", ".", ".." */
    for (s = base; s < end && n < DCC_MAX_NAME; s += len) {
        len = control_len((const unsigned char *)s);
        out[n++] = len > 0 || *s == '"' ? '_' : *s;
        len = len > 0 ? len : 1;
    }
    if (s < end && ((unsigned char)*s & 0xc0) == 0x80) {
        /* Cut inside a UTF-8 character: the whole character goes. */
        while (n > 0 && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
            n--;
        n -= n > 0;
    }
    out[n] = '\0';
    if (out[0] == '.')
        out[0] = '_';
    return 1;
}

void numbered(char *out, size_t size, const char *name, unsigned n)
{
    const char *dot = strrchr(name, '.');
    if (n == 0)
        snprintf(out, size, "%s", name);
    else if (dot != NULL && dot > name)
        snprintf(out, size, "%.*s-%u%s", (int)(dot - name), name, n, dot);
    else
        snprintf(out, size, "%s-%u", name, n);
}

char *quoted(char *out, size_t size, const char *text)
{
    size_t n = 0;
    out[n++] = '"';
    for (const char *s = text; *s && n + 12 < size; s++) {
        const unsigned char *u = (const unsigned char *)s;
        size_t len = control_len(u);
        if (*s == '"' || *s == '\\')
            n += (size_t)sprintf(out + n, "\\%c", *s);
        else if (*s == '\n' || *s == '\r' || *s == '\t')
            n += (size_t)sprintf(out + n, "\\%c", *s == '\n' ? 'n' : *s == '\r' ? 'r' : 't');
        else if (len == 1)
            n += (size_t)sprintf(out + n, "\\u{%x}", u[0]);
        else if (len == 2)
            n += (size_t)sprintf(out + n, "\\u{%x}", u[1]);
        else if (len == 3)
            n += (size_t)sprintf(out + n, "\\u{%x}", (u[0] & 0x0fu) << 12 |
                                                        (u[1] & 0x3fu) << 6 | (u[2] & 0x3fu));
        else
            out[n++] = *s;
        s += len > 1 ? len - 1 : 0;
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

/* ---- the received file */

/* dir/name + suffix into out (PATH_MAX bytes); ENAMETOOLONG if it does not fit. */
static int join_path(char *out, const char *dir, const char *name, const char *suffix)
{
    size_t len = strlen(dir);
    const char *sep = len == 0 || dir[len - 1] == '/' ? "" : "/";
    if ((size_t)snprintf(out, PATH_MAX, "%s%s%s%s", dir, sep, name, suffix) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return 0;
    }
    return 1;
}

int part_create(struct part *p, const char *dir, const char *name)
{
    char candidate[DCC_MAX_NAME + 16], path[PATH_MAX];
    struct stat st;
    for (unsigned number = 0; number < 1000; number++) {
        numbered(candidate, sizeof candidate, name, number);
        if (!join_path(path, dir, candidate, ""))
            return 0;
        if (lstat(path, &st) == 0)
            continue;
        if (!join_path(p->path, dir, candidate, ".part"))
            return 0;
        p->fd = open(p->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (p->fd >= 0) {
            p->dir = dir;
            p->name = name;
            p->number = number;
            return 1;
        }
        if (errno != EEXIST)
            return 0;
    }
    errno = EEXIST;
    return 0;
}

int part_keep(struct part *p, char *target)
{
    char candidate[DCC_MAX_NAME + 16];
    struct stat st;
    for (unsigned number = p->number; number < p->number + 1000; number++) {
        numbered(candidate, sizeof candidate, p->name, number);
        if (!join_path(target, p->dir, candidate, ""))
            return 0;
        int rc = link(p->path, target);
        if (rc < 0 && errno == EPERM) {
            /* No hard links on this file system (FAT): rename(2), if the
             * name is free. */
            if (lstat(target, &st) == 0)
                errno = EEXIST;
            else
                rc = rename(p->path, target);
        }
        if (rc == 0) {
            unlink(p->path); /* the part's name; gone already after a rename */
            close(p->fd);
            p->fd = -1;
            return 1;
        }
        if (errno != EEXIST)
            return 0;
    }
    errno = EEXIST;
    return 0;
}

void part_remove(struct part *p)
{
    if (p->fd >= 0) {
        close(p->fd);
        unlink(p->path);
        p->fd = -1;
    }
}

int mkdir_all(const char *path)
{
    char dir[PATH_MAX];
    struct stat st;
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *s = dir + 1; *dir != '\0'; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(dir, 0777) < 0 && errno != EEXIST)
            return -1;
        if (c == '\0')
            break;
        *s = c;
    }
    if (*dir != '\0' && stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        errno = EEXIST;
        return -1;
    }
    return 0;
}

int will_not_fit(const char *dir, uint64_t size, int has_max, uint64_t max, char *why,
                 size_t whysize)
{
    struct statvfs fs;
    char amount[32];
    if (has_max && size > max) {
        snprintf(why, whysize, "more than --max-size %s", human(amount, max));
        return 1;
    }
    if (statvfs(dir, &fs) < 0) {
        snprintf(why, whysize, "%s: %s", dir, strerror(errno));
        return 1;
    }
    /* The blocks available to an unprivileged user, times the fragment size. */
    uint64_t blocks = fs.f_bavail, frsize = fs.f_frsize;
    uint64_t free_bytes = frsize != 0 && blocks > UINT64_MAX / frsize ? UINT64_MAX
                                                                      : blocks * frsize;
    if (size > free_bytes) {
        snprintf(why, whysize, "more than the free space in %s (%s)", dir,
                 human(amount, free_bytes));
        return 1;
    }
    return 0;
}

/* ---- sizes, rates, progress */

char *human(char *out, uint64_t bytes)
{
    static const char *units[] = { "kB", "MB", "GB", "TB", "PB", "EB" };
    double value = (double)bytes / 1000.0;
    int unit = 0;
    if (bytes < 1000) {
        snprintf(out, 32, "%llu B", (unsigned long long)bytes);
        return out;
    }
    while (value >= 999.95 && unit < 5) {
        value /= 1000.0;
        unit++;
    }
    snprintf(out, 32, "%.1f %s", value, units[unit]);
    return out;
}

int parse_size(const char *text, uint64_t *out)
{
    unsigned long long value, factor = 1;
    char *end;
    text += strspn(text, " \t");
    if (!isdigit((unsigned char)*text))
        return 0;
    errno = 0;
    value = strtoull(text, &end, 10);
    if (errno == ERANGE)
        return 0;
    end += strspn(end, " \t");
    switch (tolower((unsigned char)*end)) {
    case 'k': factor = 1000ULL; end++; break;
    case 'm': factor = 1000000ULL; end++; break;
    case 'g': factor = 1000000000ULL; end++; break;
    case 't': factor = 1000000000000ULL; end++; break;
    }
    if (tolower((unsigned char)*end) == 'b')
        end++;
    if (end[strspn(end, " \t")] != '\0' || value > UINT64_MAX / factor)
        return 0;
    *out = value * factor;
    return 1;
}

/* Bytes per second over elapsed ns, as 61.2 MB/s. */
static char *rate(char *out, uint64_t bytes, int64_t elapsed)
{
    double secs = (double)elapsed / 1e9, per_sec;
    if (secs < 1e-3)
        secs = 1e-3;
    per_sec = (double)bytes / secs;
    human(out, per_sec >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)per_sec);
    strcat(out, "/s");
    return out;
}

void progress_text(char *out, size_t size, uint64_t done, uint64_t total, int64_t elapsed)
{
    char a[32], b[32], r[40], left[32] = "?";
    double secs = (double)elapsed / 1e9;
    /* done * 100 / total, without overflow for any size */
    uint64_t percent = total == 0                ? 100
                       : done <= UINT64_MAX / 100 ? done * 100 / total
                                                  : done / (total / 100);
    if (done > 0 && secs > 0.0)
        snprintf(left, sizeof left, "%.0f",
                 (double)(total > done ? total - done : 0) * (secs / (double)done));
    snprintf(out, size, "%s of %s (%llu%%), %s, %s s left", human(a, done), human(b, total),
             (unsigned long long)percent, rate(r, done, elapsed), left);
}

void summary_text(char *out, size_t size, uint64_t bytes, int64_t elapsed)
{
    char amount[32], speed[40];
    snprintf(out, size, "%s (%llu bytes) in %.2f s, %s", human(amount, bytes),
             (unsigned long long)bytes, (double)elapsed / 1e9, rate(speed, bytes, elapsed));
}

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
