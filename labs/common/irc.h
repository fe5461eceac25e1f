/*
 * irc.h: the IRC message format (RFC 1459 §2.3, RFC 2812 §2.3), shared by
 * the C programs of labs 07 and 08 as src/irc.rs is by the Rust ones.
 *
 *     message  =  [ ":" prefix SPACE ] command [ params ] crlf
 *     params   =  *14( SPACE middle ) [ SPACE ":" trailing ]
 *
 * A line is bytes: IRC names no character set (RFC 2812 §2.2), so nothing
 * here decodes text; a NUL, which no message may hold, ends the line.
 * Also here: lines cut out of what read(2) returns, at most IRC_MAX_LINE
 * bytes each (src/lines.rs). Built into a program with irc.c and labs.c:
 *
 *     cc -Wall -Wextra -O2 -I../common -o server-c server.c ../common/irc.c ../common/labs.c
 */
#ifndef IRC_H
#define IRC_H

#include <stddef.h>

/* The longest line IRC allows, CR LF included (RFC 2812 §2.3). */
#define IRC_MAX_LINE 512
/* At most 15 parameters; the 15th takes the rest of the line. */
#define IRC_MAX_PARAMS 15

/* One parsed message; the pieces point into text. The trailing parameter,
 * if any, is the last of params. */
struct irc_message {
    char text[IRC_MAX_LINE + 1];
    char *prefix; /* nick!user@host or a server name, without the colon; NULL if none */
    char *command; /* as sent: compare with strcasecmp(3), commands ignore case */
    char *params[IRC_MAX_PARAMS];
    int nparams;
};

/* Parses one line (len bytes, at most IRC_MAX_LINE, with or without its CR
 * LF). Returns 0 for a line with no command (empty, blanks, a lone prefix). */
int irc_parse(struct irc_message *m, const char *line, size_t len);

/* The parameter i of m, or "" if it has fewer. */
const char *irc_param(const struct irc_message *m, int i);

/* Writes one message into out (room for IRC_MAX_LINE + 1 bytes) as a line
 * ending in CR LF, and returns its length. prefix may be NULL. The last
 * parameter gets its colon when it must (empty, starting with a colon,
 * holding a space), or always if `trailing` (the usual form for text). CR
 * and LF are dropped, so that no parameter can smuggle in a second message;
 * what does not fit in IRC_MAX_LINE is cut from the end. */
size_t irc_format(char *out, const char *prefix, const char *command, const char **params,
                  int n, int trailing);

/* IRC's case mapping (CASEMAPPING=rfc1459): ASCII letters fold, and []\~
 * are the upper case of {}|^ (RFC 2812 §2.2). irc_fold writes at most size
 * bytes, NUL included. */
char irc_fold_char(char c);
void irc_fold(char *out, const char *name, size_t size);
/* Compares two names folded, as strcmp(3) does: 0 when they are the same
 * name, and an order (the folded names' bytes) to sort them. */
int irc_casecmp(const char *a, const char *b);

/* A nickname (RFC 2812 §2.3.1): a letter or one of []\`_^{|}, then letters,
 * digits, those or '-'; at most max bytes. */
int irc_valid_nick(const char *nick, size_t max);
/* A channel name (RFC 2812 §1.3, '#' channels only): '#', then at least one
 * byte, at most max in all, none of them space, comma, colon, BEL, CR, LF. */
int irc_valid_channel(const char *name, size_t max);
/* Whether name matches mask, IRC's wildcards (RFC 2812 §2.5): '*' any run
 * of bytes, '?' any one; compared folded. */
int irc_mask_matches(const char *mask, const char *name);

/* Lines across reads. TCP is a byte stream: one read(2) may return half a
 * line, or three lines and the start of a fourth. read(2) into
 * buf + len, up to sizeof buf; add what it returned to len; then take the
 * lines out with irc_next_line until it returns IRC_NONE. A line longer than
 * the buffer comes out in pieces: its first IRC_MAX_LINE bytes (IRC_LONG),
 * then the rest (IRC_REST): the buffer never grows. */
struct irc_lines {
    char buf[IRC_MAX_LINE];
    size_t len;
    size_t scanned; /* buf[0..scanned] holds no newline: not searched again */
    int in_long_line;
};
enum irc_piece { IRC_NONE, IRC_WHOLE, IRC_LONG, IRC_REST };

/* The next line, newline included, or piece of a long one, copied to out
 * (room for IRC_MAX_LINE); IRC_NONE when what is left needs more input. */
enum irc_piece irc_next_line(struct irc_lines *r, char *out, size_t *len);
/* At end of file: what is left, a last line without its newline. */
enum irc_piece irc_rest_line(struct irc_lines *r, char *out, size_t *len);

#endif
