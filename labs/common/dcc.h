/*
 * dcc.h: what lab 08's C client needs and is not its lesson (the second
 * connection is), as src/dcc.rs, src/download.rs and src/progress.rs are
 * for client.rs.
 *
 * DCC SEND, the IRC convention for sending a file directly between two
 * clients: the offer travels through the server inside a PRIVMSG as a CTCP
 * message (text between two \1 bytes), and names the address and port
 * where the sender listens.
 *
 *     PRIVMSG bob :\1DCC SEND report.pdf 2130706433 41234 1234567\1
 *                            name       IPv4 as a   port  size in
 *                                       32-bit number      bytes
 *     NOTICE alice :\1DCC REJECT SEND report.pdf\1      bob says no
 *
 * Also here: the name a received file may have (the sender chose it), the
 * file itself while it arrives (NAME.part), and sizes, rates and progress
 * as text. Built into the client with chat.c, irc.c and labs.c:
 *
 *     cc -Wall -Wextra -O2 -I../common -o client-c client.c ../common/dcc.c \
 *         ../common/chat.c ../common/irc.c ../common/labs.c
 */
#ifndef DCC_H
#define DCC_H

#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>

#include "irc.h"

/* The longest file name kept, in bytes: NAME_MAX is 255, and a numbered
 * name (-12) and the .part suffix must still fit. */
#define DCC_MAX_NAME 200

/* One DCC SEND offer as it came: the name as offered (unquoted, not yet
 * made safe), where the sender listens, and the size it announces. */
struct dcc_offer {
    char name[IRC_MAX_LINE + 1];
    struct sockaddr_storage addr;
    uint64_t size;
};

/* What a CTCP body is (dcc_parse). */
enum dcc_kind {
    DCC_NOT,         /* not a DCC at all (ACTION, VERSION...) */
    DCC_SEND,        /* a file offered: *offer filled */
    DCC_REJECT,      /* DCC REJECT SEND name: text is the name */
    DCC_UNSUPPORTED, /* a DCC this client does not do (CHAT, passive SEND): text says which */
    DCC_INVALID      /* a DCC that makes no sense: text says why */
};

/* The text between the \1 marks if text is a CTCP message (the closing
 * mark optional, as in most clients), into body (IRC_MAX_LINE + 1 bytes);
 * 0 if it is not one. */
int ctcp_body(char *body, const char *text);
/* Reads a CTCP body; text has room for IRC_MAX_LINE + 64 bytes. */
enum dcc_kind dcc_parse(const char *body, struct dcc_offer *offer, char *text);
/* \1DCC SEND name ip port size\1 into out (IRC_MAX_LINE + 1 bytes): IPv4
 * as a 32-bit number, IPv6 as text (irssi's way), the name quoted if it
 * holds a space. */
void dcc_send_text(char *out, const char *name, const struct sockaddr_storage *addr,
                   uint64_t size);

/* An IP address as text (a WHOIS reply's host, a prefix's) into *ip: 1, or
 * 0 if it is not one (a host name). */
int host_ip(const char *text, struct sockaddr_storage *ip);
/* Whether two addresses are the same host, IPv4 and IPv4-mapped IPv6 alike. */
int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* The IP address alone as text, into out (INET6_ADDRSTRLEN bytes). */
char *ip_text(const struct sockaddr_storage *ip, char *out);

/* The name under which an offered file may be saved, into out
 * (DCC_MAX_NAME + 1 bytes), or 0 if nothing usable is left. Only the last
 * component (after / or \) is kept: no directory, no .., no absolute path
 * leads out of the download directory. Names made only of dots are
 * refused, a leading dot becomes _ (no hidden files); control characters,
 * quotes and the Unicode controls that reverse text become _. */
int safe_name(char *out, const char *offered);
/* The nth name to try when name exists: report.pdf, report-1.pdf... */
void numbered(char *out, size_t size, const char *name, unsigned n);
/* text between quotes, control and invisible characters escaped (\n,
 * \u{1b}): a hostile name shown, never obeyed by the terminal. */
char *quoted(char *out, size_t size, const char *text);

/* A file being received, written as dir/NAME.part until it is complete: a
 * transfer that fails leaves nothing (part_remove), and a client killed
 * midway leaves a name that says it is partial. */
struct part {
    int fd; /* -1 when there is none */
    char path[PATH_MAX];
    const char *dir;
    const char *name;
    unsigned number; /* the number tried first for the final name */
};
/* Creates dir/NAME.part, or NAME-1.part... for the first number whose final
 * name and part are both free, with O_EXCL: an existing file, or a symlink
 * planted there, is never opened. 0 on failure, with errno. */
int part_create(struct part *p, const char *dir, const char *name);
/* Gives the complete file its final name (into target, PATH_MAX bytes)
 * with link(2), which fails with EEXIST where rename(2) would replace a
 * file created meanwhile; the part's name goes. 0 on failure, with errno. */
int part_keep(struct part *p, char *target);
/* Closes the part and removes it, unless it was kept. */
void part_remove(struct part *p);
/* mkdir -p: the directory and its missing parents. 0, or -1 with errno. */
int mkdir_all(const char *path);
/* Why size bytes may not be received into dir (into why, whysize bytes):
 * more than max (if has_max), more than the free space statvfs(3) gives,
 * or a dir it cannot look at. 0 if it fits. */
int will_not_fit(const char *dir, uint64_t size, int has_max, uint64_t max, char *why,
                 size_t whysize);

/* Sizes for people: 512 B, 1.2 MB (decimal units, as network rates are);
 * out has 32 bytes. */
char *human(char *out, uint64_t bytes);
/* A size given on the command line: bytes, or with k, M, G, T (kB, MB...
 * too). 0 if it is not one. */
int parse_size(const char *text, uint64_t *out);
/* `12.3 MB of 52.4 MB (23%), 61.2 MB/s, 1 s left` after elapsed ns. */
void progress_text(char *out, size_t size, uint64_t done, uint64_t total, int64_t elapsed);
/* `52.4 MB (52428800 bytes) in 0.90 s, 58.1 MB/s` */
void summary_text(char *out, size_t size, uint64_t bytes, int64_t elapsed);
/* A monotonic clock, in nanoseconds (clock_gettime(2)). */
int64_t now_ns(void);

#endif
