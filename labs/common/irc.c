/*
 * irc.c: the IRC message format of irc.h, for the C programs of labs 07 and
 * 08 (the twin of src/irc.rs). Every input, however hostile, gives a
 * message or nothing: each piece is found with strchr(3) in a buffer of
 * known size, and there are at most 15 parameters.
 */
#include "irc.h"

#include <string.h>

int irc_parse(struct irc_message *m, const char *line, size_t len)
{
    if (len > IRC_MAX_LINE)
        len = IRC_MAX_LINE;
    len = strnlen(line, len); /* a NUL ends the line */
    memcpy(m->text, line, len);
    m->text[len] = '\0';
    while (len > 0 && (m->text[len - 1] == '\r' || m->text[len - 1] == '\n'))
        m->text[--len] = '\0';

    char *rest = m->text, *space;
    m->prefix = NULL;
    if (*rest == ':') {
        m->prefix = rest + 1;
        if ((space = strchr(rest, ' ')) != NULL) {
            *space = '\0';
            rest = space + 1;
        } else {
            rest += len;
        }
    }
    while (*rest == ' ')
        rest++;
    m->command = rest;
    if ((space = strchr(rest, ' ')) != NULL) {
        *space = '\0';
        rest = space + 1;
    } else {
        rest += strlen(rest);
    }
    if (*m->command == '\0')
        return 0;

    m->nparams = 0;
    for (;;) {
        while (*rest == ' ')
            rest++;
        if (*rest == '\0')
            break;
        if (*rest == ':') { /* trailing: the rest of the line, spaces and all */
            m->params[m->nparams++] = rest + 1;
            break;
        }
        if (m->nparams == IRC_MAX_PARAMS - 1) { /* the 15th takes the rest */
            m->params[m->nparams++] = rest;
            break;
        }
        m->params[m->nparams++] = rest;
        if ((space = strchr(rest, ' ')) == NULL)
            break;
        *space = '\0';
        rest = space + 1;
    }
    return 1;
}

const char *irc_param(const struct irc_message *m, int i)
{
    return i < m->nparams ? m->params[i] : "";
}

/* Appends s to the line out[0..*len], without CR or LF, as far as it fits
 * before the CR LF. */
static void put(char *out, size_t *len, const char *s)
{
    for (; *s != '\0' && *len < IRC_MAX_LINE - 2; s++)
        if (*s != '\r' && *s != '\n')
            out[(*len)++] = *s;
}

size_t irc_format(char *out, const char *prefix, const char *command, const char **params,
                  int n, int trailing)
{
    size_t len = 0;
    if (prefix != NULL) {
        put(out, &len, ":");
        put(out, &len, prefix);
        put(out, &len, " ");
    }
    put(out, &len, command);
    for (int i = 0; i < n; i++) {
        const char *param = params[i];
        put(out, &len, " ");
        if (i == n - 1 &&
            (trailing || param[0] == '\0' || param[0] == ':' || strchr(param, ' ') != NULL))
            put(out, &len, ":");
        put(out, &len, param);
    }
    out[len++] = '\r';
    out[len++] = '\n';
    out[len] = '\0';
    return len;
}

char irc_fold_char(char c)
{
    switch (c) {
    case '[': return '{';
    case ']': return '}';
    case '\\': return '|';
    case '~': return '^';
    default: return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
}

void irc_fold(char *out, const char *name, size_t size)
{
    size_t i;
    for (i = 0; name[i] != '\0' && i + 1 < size; i++)
        out[i] = irc_fold_char(name[i]);
    out[i] = '\0';
}

int irc_casecmp(const char *a, const char *b)
{
    unsigned char x, y;
    do {
        x = (unsigned char)irc_fold_char(*a++);
        y = (unsigned char)irc_fold_char(*b++);
    } while (x != '\0' && x == y);
    return x - y;
}

static int is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_special(char c) { return c != '\0' && strchr("[]\\`_^{|}", c) != NULL; }

int irc_valid_nick(const char *nick, size_t max)
{
    if (!is_letter(nick[0]) && !is_special(nick[0]))
        return 0;
    for (const char *s = nick + 1; *s != '\0'; s++)
        if (!is_letter(*s) && !is_digit(*s) && !is_special(*s) && *s != '-')
            return 0;
    return strlen(nick) <= max;
}

int irc_valid_channel(const char *name, size_t max)
{
    size_t len = strlen(name);
    return len > 1 && len <= max && name[0] == '#' && strpbrk(name, " ,:\a\r\n") == NULL;
}

/* Without backtracking beyond the last '*', it takes at most the product of
 * the two lengths: no mask can make it take long. */
int irc_mask_matches(const char *mask, const char *name)
{
    size_t m = 0, n = 0;
    /* After a '*': where it stands in the mask, and where in the name the
     * run it swallows ends so far. On a mismatch, the star takes one more. */
    size_t star_at = 0, swallowed = 0;
    int star = 0;
    while (name[n] != '\0') {
        if (mask[m] == '*') {
            star = 1;
            star_at = m++;
            swallowed = n;
        } else if (mask[m] != '\0' &&
                   (mask[m] == '?' || irc_fold_char(mask[m]) == irc_fold_char(name[n]))) {
            m++;
            n++;
        } else if (star) {
            m = star_at + 1;
            n = ++swallowed;
        } else {
            return 0;
        }
    }
    while (mask[m] == '*')
        m++;
    return mask[m] == '\0';
}

enum irc_piece irc_next_line(struct irc_lines *r, char *out, size_t *len)
{
    char *newline = memchr(r->buf + r->scanned, '\n', r->len - r->scanned);
    size_t end;
    if (newline != NULL) {
        end = (size_t)(newline - r->buf) + 1;
    } else if (r->len == sizeof r->buf) {
        end = r->len; /* full without a newline: the start of a long line */
    } else {
        r->scanned = r->len;
        return IRC_NONE;
    }
    memcpy(out, r->buf, end);
    memmove(r->buf, r->buf + end, r->len - end);
    r->len -= end;
    r->scanned = 0;
    *len = end;
    int complete = out[end - 1] == '\n';
    enum irc_piece piece = r->in_long_line ? IRC_REST : complete ? IRC_WHOLE : IRC_LONG;
    r->in_long_line = !complete;
    return piece;
}

enum irc_piece irc_rest_line(struct irc_lines *r, char *out, size_t *len)
{
    if (r->len == 0)
        return IRC_NONE;
    memcpy(out, r->buf, r->len);
    *len = r->len;
    enum irc_piece piece = r->in_long_line ? IRC_REST : IRC_WHOLE;
    r->len = r->scanned = 0;
    r->in_long_line = 0;
    return piece;
}
