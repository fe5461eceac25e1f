/*
 * chat.c: the chat client's conversation of chat.h, for the C clients of
 * labs 07 and 08 (the twin of src/chat.rs). Text is bytes, as the server
 * relays it: shown and sent as it came.
 */
#include "chat.h"
#include "labs.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The most channels remembered; the server lets a user be on 20, and more
 * are kept while typed JOINs wait for their refusal. */
#define MAX_JOINED 100

/* What /help shows. */
static const char commands[] =
    "commands:\n"
    "  /nick NEW          change your nickname (or choose the first one)\n"
    "  /who               list the connected users\n"
    "  /whois NICK        details on one user: address, port, channels, idle time\n"
    "  /msg NICK text     private message\n"
    "  /msgall text       message to every connected user\n"
    "  /join #chan        join (or create) a channel; plain lines then go there\n"
    "  /part [#chan]      leave the current channel (or #chan)\n"
    "  /names [#chan]     who is on a channel\n"
    "  /list              the channels\n"
    "  /away [text]       say you are away: a /msg to you gets text back\n"
    "  /back              no longer away\n"
    "  /topic [#chan] [text]\n"
    "                     see or set the topic of #chan (the current one by default)\n"
    "  /kick [#chan] NICK [reason]\n"
    "                     put NICK out of #chan, the current one by default\n"
    "                     (a channel operator's command)\n"
    "  /invite NICK [#chan]\n"
    "                     ask NICK to join #chan (the current one by default),\n"
    "                     even an invite-only one\n"
    "  /mode TARGET [MODES [ARGS]]\n"
    "                     show or change the modes of a channel, or your own:\n"
    "                     /mode #chan +k key, /mode #chan +o NICK, /mode #chan b\n"
    "  /lusers            how many users and channels the server has\n"
    "  /whowas NICK       who had NICK last\n"
    "  /time              the server's clock\n"
    "  /motd              the server's message of the day\n"
    "  /quote RAW         send RAW as it is, e.g. /quote TOPIC #chan : (no topic)\n"
    "  /quit [message]    leave\n"
    "  /help              this list";

char chat_out[CHAT_QUEUE_SIZE];
size_t chat_outlen;

/* What the client knows of the conversation. */
static char nick[IRC_MAX_LINE]; /* "" before we have one */
static int registered, user_sent, raw, quitting, status_shown;
/* The welcome burst is over (376 or 422 ended its message of the day): the
 * server's statistics and the MOTD's frame, quiet until then, are now
 * answers to /lusers or /motd. */
static int welcomed;
static char *joined[MAX_JOINED]; /* the channels joined, the current one last */
static int njoined;
static const struct chat_extension *extension;

void chat_start(int show_raw, const struct chat_extension *ext)
{
    raw = show_raw;
    extension = ext;
}

int chat_quitting(void)
{
    return quitting;
}

const char *chat_me(void)
{
    return nick[0] ? nick : "?";
}

void chat_status_erase(void)
{
    if (status_shown) {
        /* CR goes back to the start of the line, ESC [ K (ECMA-48 EL)
         * erases what was there. */
        fputs("\r\033[K", stdout);
        fflush(stdout);
        status_shown = 0;
    }
}

void chat_status(const char *text)
{
    printf("\r\033[K%s", text);
    fflush(stdout);
    status_shown = 1;
}

void chat_say(const char *fmt, ...)
{
    va_list ap;
    chat_status_erase();
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* s without the white space at its end, in place. */
static char *trim_end(char *s)
{
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

static void queue_line(const char *line, size_t len)
{
    if (raw) {
        char shown[IRC_MAX_LINE + 1];
        memcpy(shown, line, len + 1);
        chat_say(">> %s", trim_end(shown));
    }
    /* Bounded whatever the server does: stdin is read only below
     * CHAT_MAX_QUEUED, but a server that sends PINGs and never reads our
     * PONGs would make the queue grow. Past the bound, a line is dropped. */
    if (chat_outlen + len <= sizeof chat_out) {
        memcpy(chat_out + chat_outlen, line, len);
        chat_outlen += len;
    }
}

void chat_queue(const char *command, const char **params, int n)
{
    char line[IRC_MAX_LINE + 1];
    queue_line(line, irc_format(line, NULL, command, params, n, 0));
}

/* Queues text as it was typed (/quote), without CR (a typed line holds no
 * LF): a line of at most 512 bytes, as irc_format makes them. */
static void queue_raw(const char *text)
{
    char line[IRC_MAX_LINE + 1];
    size_t len = 0;
    for (; *text != '\0' && len < IRC_MAX_LINE - 2; text++)
        if (*text != '\r')
            line[len++] = *text;
    memcpy(line + len, "\r\n", 3);
    queue_line(line, len + 2);
}

static void forget_channel(const char *name)
{
    int k = 0;
    for (int j = 0; j < njoined; j++) {
        if (irc_casecmp(joined[j], name) == 0)
            free(joined[j]);
        else
            joined[k++] = joined[j];
    }
    njoined = k;
}

/* name becomes the current channel (the last of joined). Past MAX_JOINED,
 * the oldest is forgotten: memory stays bounded whatever the server sends. */
static void join_channel(const char *name)
{
    char *copy = strdup(name);
    if (copy == NULL)
        return;
    forget_channel(name);
    if (njoined == MAX_JOINED) {
        free(joined[0]);
        memmove(joined, joined + 1, (MAX_JOINED - 1) * sizeof joined[0]);
        njoined--;
    }
    joined[njoined++] = copy;
}

void chat_register(const char *name)
{
    /* USER <user> <mode> <unused> :<realname> (RFC 2812 §3.1.3) */
    const char *params[] = { name, "0", "*", name };
    chat_queue("NICK", params, 1);
    if (!user_sent) {
        chat_queue("USER", params, 4);
        user_sent = 1;
    }
    snprintf(nick, sizeof nick, "%s", name);
}

/* A line the user typed: a /command or text for the current channel. */
static void typed(const char *line, size_t len)
{
    char text[IRC_MAX_LINE + 1], *name, *args = "", *rest = "", *space;
    memcpy(text, line, len);
    text[len] = '\0';
    while (len > 0 && (text[len - 1] == '\r' || text[len - 1] == '\n'))
        text[--len] = '\0';
    if (text[strspn(text, " \t\n\v\f\r")] == '\0')
        return; /* only blanks */
    if (text[0] != '/') {
        const char *params[] = { njoined > 0 ? joined[njoined - 1] : "", text };
        if (njoined == 0) {
            chat_say("-!- you are on no channel: /join #name, or /msg NICK text");
            return;
        }
        chat_queue("PRIVMSG", params, 2);
        chat_say("[%s] %s: %s", params[0], chat_me(), text);
        return;
    }
    /* /name args, args without its blanks; its first word, and the rest. */
    name = text + 1;
    if ((space = strchr(name, ' ')) != NULL) {
        *space = '\0';
        args = trim_end(space + 1 + strspn(space + 1, " \t\n\v\f\r"));
    }
    char first[IRC_MAX_LINE + 1];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(args, " "), args);
    if ((space = strchr(args, ' ')) != NULL)
        rest = space + 1;
    const char *current = njoined > 0 ? joined[njoined - 1] : NULL;

    if (!user_sent && strcmp(name, "nick") && strcmp(name, "help") && strcmp(name, "quit")) {
        chat_say("-!- choose a nickname first: /nick NAME");
    } else if (!strcmp(name, "nick") && first[0] && registered) {
        chat_queue("NICK", (const char *[]){ first }, 1);
    } else if (!strcmp(name, "nick") && first[0]) {
        chat_register(first);
    } else if (!strcmp(name, "who")) {
        chat_queue("WHO", (const char *[]){ first[0] ? first : "*" }, 1);
    } else if (!strcmp(name, "whois") && first[0]) {
        chat_queue("WHOIS", (const char *[]){ first }, 1);
    } else if (!strcmp(name, "msg") && first[0] && rest[0]) {
        chat_queue("PRIVMSG", (const char *[]){ first, rest }, 2);
        chat_say("-> *%s* %s", first, rest);
    } else if (!strcmp(name, "msgall") && args[0]) {
        /* $* is the mask "every user on this server" (RFC 2812 §3.3.1). */
        chat_queue("PRIVMSG", (const char *[]){ "$*", args }, 2);
        chat_say("[all] %s: %s", chat_me(), args);
    } else if (!strcmp(name, "join") && first[0]) {
        char channel[IRC_MAX_LINE + 2];
        snprintf(channel, sizeof channel, "%s%s", first[0] == '#' ? "" : "#", first);
        chat_queue("JOIN", (const char *[]){ channel }, 1);
        /* Lines typed next go there at once, without waiting for the
         * server's JOIN: piped input does not wait. An error about the
         * channel undoes it. */
        join_channel(channel);
    } else if (!strcmp(name, "part") && !first[0] && current == NULL) {
        chat_say("-!- you are on no channel");
    } else if (!strcmp(name, "part") || !strcmp(name, "names")) {
        const char *channel = first[0] ? first : current;
        chat_queue(name[0] == 'p' ? "PART" : "NAMES", &channel, channel != NULL);
    } else if (!strcmp(name, "list")) {
        chat_queue("LIST", NULL, 0);
    } else if (!strcmp(name, "away")) { /* AWAY with a text: away; alone: back (RFC 2812 §4.1) */
        chat_queue("AWAY", (const char *[]){ args[0] ? args : "away" }, 1);
    } else if (!strcmp(name, "back")) {
        chat_queue("AWAY", NULL, 0);
    } else if (!strcmp(name, "topic")) {
        /* TOPIC <channel> [:<topic>]: without a text, the server tells the
         * topic (RFC 2812 §3.2.4). */
        int named = first[0] == '#' || first[0] == '&';
        const char *params[] = { named ? first : current, named ? rest : args };
        if (params[0] == NULL)
            chat_say("-!- you are on no channel: /topic #chan [text]");
        else
            chat_queue("TOPIC", params, params[1][0] ? 2 : 1);
    } else if (!strcmp(name, "kick") && first[0]) {
        /* KICK <channel> <user> [:<comment>] (RFC 2812 §3.2.8); as in irssi,
         * the channel is the current one when the first word is not a
         * channel's name. */
        int named = first[0] == '#' || first[0] == '&';
        const char *channel = named ? first : current;
        char *who = named ? rest : args, *reason = strchr(who, ' ');
        if (reason != NULL)
            *reason++ = '\0';
        if (channel != NULL && who[0] == '\0')
            chat_say("-!- /kick needs more: /help shows how to use it");
        else if (channel == NULL)
            chat_say("-!- you are on no channel: /kick #chan NICK [reason]");
        else
            chat_queue("KICK", (const char *[]){ channel, who, reason }, reason ? 3 : 2);
    } else if (!strcmp(name, "invite") && first[0]) {
        /* INVITE <nickname> <channel> (RFC 2812 §3.2.7), to the current
         * channel by default, as in irssi. */
        if (rest[0] != '\0')
            rest[strcspn(rest, " ")] = '\0'; /* its first word */
        const char *channel = rest[0] ? rest : current;
        if (channel == NULL)
            chat_say("-!- you are on no channel: /invite NICK #chan");
        else
            chat_queue("INVITE", (const char *[]){ first, channel }, 2);
    } else if (!strcmp(name, "mode") && first[0]) {
        /* MODE <target> [<modes> [<mode params>]]: one parameter per word,
         * at most the 15 a message holds (RFC 2812 §2.3). */
        const char *params[15];
        int n = 0;
        for (char *word = strtok(args, " "); word != NULL && n < 15; word = strtok(NULL, " "))
            params[n++] = word;
        chat_queue("MODE", params, n);
    } else if (!strcmp(name, "lusers")) {
        chat_queue("LUSERS", NULL, 0);
    } else if (!strcmp(name, "whowas") && first[0]) {
        chat_queue("WHOWAS", (const char *[]){ first }, 1);
    } else if (!strcmp(name, "time")) {
        chat_queue("TIME", NULL, 0);
    } else if (!strcmp(name, "motd")) {
        chat_queue("MOTD", NULL, 0);
    } else if (!strcmp(name, "quote") && args[0]) {
        queue_raw(args); /* the protocol with nothing in between */
        /* A QUIT so sent is a leaving as /quit's: the server's ERROR and
         * close are then the goodbye (RFC 2812 §3.1.7). */
        if (!strcasecmp(first, "QUIT"))
            quitting = 1;
    } else if (!strcmp(name, "quit") && !user_sent) {
        exit(0);
    } else if (!strcmp(name, "quit")) {
        chat_queue("QUIT", (const char *[]){ args[0] ? args : "leaving" }, 1);
        quitting = 1;
    } else if (!strcmp(name, "help")) {
        chat_say("%s%s", commands, extension && extension->help ? extension->help : "");
    } else if (!strcmp(name, "nick") || !strcmp(name, "whois") || !strcmp(name, "msg") ||
               !strcmp(name, "msgall") || !strcmp(name, "join") || !strcmp(name, "kick") ||
               !strcmp(name, "invite") || !strcmp(name, "mode") || !strcmp(name, "whowas") ||
               !strcmp(name, "quote")) {
        chat_say("-!- /%s needs more: /help shows how to use it", name);
    } else if (extension == NULL || extension->command == NULL ||
               !extension->command(name, args)) {
        chat_say("-!- unknown command /%s: /help lists them", name);
    }
}

void chat_typed(enum irc_piece piece, const char *line, size_t len)
{
    if (piece == IRC_WHOLE)
        typed(line, len);
    else if (piece == IRC_LONG)
        chat_say("-!- line too long: a message holds about 400 characters");
}

/* Whether code is one of the numerics in list (" 403 405 "). */
static int one_of(const char *code, const char *list)
{
    char word[8];
    snprintf(word, sizeof word, " %.3s ", code);
    return strlen(code) == 3 && strstr(list, word) != NULL;
}

/* m's parameters from the from-th to the one before until, a space between
 * each, into out. */
static char *words(const struct irc_message *m, int from, int until, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = from; i < until && used < size; i++)
        used += snprintf(out + used, size - used, "%s%s", i > from ? " " : "", m->params[i]);
    return out;
}

/* A time in seconds since 1970 (333, 329) as 2025-01-31 14:05:09 UTC;
 * anything else, or past the year 9999, as it came. */
static const char *date(const char *text, char out[UTC_LEN])
{
    size_t len = strlen(text);
    unsigned long long secs = strtoull(text, NULL, 10);
    if (len == 0 || strspn(text, "0123456789") != len || secs >= 253402300800ULL ||
        utc_date((time_t)secs, out)[0] == '\0')
        return text;
    return out;
}

void chat_receive(const char *line, size_t len)
{
    struct irc_message m;
    char from[IRC_MAX_LINE + 1] = "", text[2 * IRC_MAX_LINE], when[UTC_LEN];
    if (!irc_parse(&m, line, len))
        return;
    if (raw) {
        snprintf(text, sizeof text, "%.*s", (int)len, line);
        chat_say("<< %s", trim_end(text));
    }
    /* Who sent it: the nick of a nick!user@host prefix, the server's name
     * for a numeric, "" without a prefix. */
    if (m.prefix != NULL)
        snprintf(from, sizeof from, "%.*s", (int)strcspn(m.prefix, "!"), m.prefix);
    if (extension != NULL && extension->message != NULL && extension->message(&m, from))
        return;
    const char *code = m.command, *last = m.nparams > 0 ? m.params[m.nparams - 1] : "";
    int is_me = irc_casecmp(from, chat_me()) == 0;
    int numeric = strlen(code) == 3 && strspn(code, "0123456789") == 3;
#define P(i) irc_param(&m, i)

    if (!strcasecmp(code, "PING")) {
        chat_queue("PONG", &last, 1);
    } else if (!strcasecmp(code, "NOTICE")) {
        chat_say("-%s- %s", from, P(1));
    } else if (!strcasecmp(code, "PRIVMSG") && P(0)[0] == '$') {
        chat_say("[all] %s: %s", from, P(1));
    } else if (!strcasecmp(code, "PRIVMSG") && (P(0)[0] == '#' || P(0)[0] == '&')) {
        chat_say("[%s] %s: %s", P(0), from, P(1));
    } else if (!strcasecmp(code, "PRIVMSG")) {
        chat_say("*%s* %s", from, P(1));
    } else if (!strcasecmp(code, "JOIN") && is_me) {
        chat_say("-!- you joined %s", P(0));
        join_channel(P(0));
    } else if (!strcasecmp(code, "JOIN")) {
        chat_say("-!- %s joined %s", from, P(0));
    } else if (!strcasecmp(code, "PART") && is_me) {
        chat_say("-!- you left %s", P(0));
        forget_channel(P(0));
    } else if (!strcasecmp(code, "PART")) {
        chat_say("-!- %s left %s", from, P(0));
    } else if (!strcasecmp(code, "QUIT")) {
        chat_say("-!- %s quit (%s)", from, P(0));
    } else if (!strcasecmp(code, "NICK") && is_me) {
        snprintf(nick, sizeof nick, "%s", P(0));
        chat_say("-!- you are now known as %s", P(0));
    } else if (!strcasecmp(code, "NICK")) {
        chat_say("-!- %s is now known as %s", from, P(0));
    } else if (!strcasecmp(code, "TOPIC") && P(1)[0] == '\0') {
        chat_say("-!- %s cleared the topic of %s", from, P(0));
    } else if (!strcasecmp(code, "TOPIC")) {
        chat_say("-!- %s set the topic of %s: %s", from, P(0), P(1));
    } else if (!strcasecmp(code, "KICK") && irc_casecmp(P(1), chat_me()) == 0) {
        /* KICK <channel> <nick> :<comment> */
        chat_say("-!- you were kicked from %s by %s (%s)", P(0), from, P(2));
        forget_channel(P(0));
    } else if (!strcasecmp(code, "KICK")) {
        chat_say("-!- %s was kicked from %s by %s (%s)", P(1), P(0), from, P(2));
    } else if (!strcasecmp(code, "INVITE") && irc_casecmp(P(0), chat_me()) == 0) {
        /* INVITE <nick> <channel>: to us (or, with invite-notify, to another) */
        chat_say("-!- %s invites you to %s: /join %s", from, P(1), P(1));
    } else if (!strcasecmp(code, "INVITE")) {
        chat_say("-!- %s invited %s to %s", from, P(0), P(1));
    } else if (!strcasecmp(code, "MODE")) {
        /* MODE <target> <changes> [<args>...], a channel's or ours */
        chat_say("-!- %s sets mode %s on %s", from, words(&m, 1, m.nparams, text, sizeof text),
                 P(0));
    } else if (!strcasecmp(code, "ERROR")) {
        if (!quitting)
            chat_say("-!- server: %s", last);
    } else if (!strcmp(code, "001")) {
        /* RPL_WELCOME: registered, under the nick the server confirms. */
        registered = 1;
        snprintf(nick, sizeof nick, "%s", P(0));
        chat_say("-!- %s", last);
    } else if (one_of(code, " 002 003 004 005 366 321 ")) {
        /* The rest of the welcome burst, the end of NAMES, the start of LIST. */
    } else if (one_of(code, " 250 251 252 253 254 255 265 266 375 376 422 ") && !welcomed) {
        /* Quiet in the burst, up to its end (the MOTD's: 376, or 422 for
         * none); after it, answers to /lusers and /motd. */
        welcomed = one_of(code, " 376 422 ");
    } else if (one_of(code, " 250 251 255 265 266 ")) {
        /* LUSERS: sentences (250: the most connections at once), or a count
         * and its words. */
        chat_say("-!- %s", last);
    } else if (one_of(code, " 252 253 254 ")) {
        chat_say("-!- %s %s", P(1), last);
    } else if (one_of(code, " 375 372 ")) {
        /* MOTD: 375, a 372 per line, 376. */
        chat_say("%s", last);
    } else if (!strcmp(code, "376")) {
        chat_say("-!- end of /motd");
    } else if (!strcmp(code, "352")) {
        /* WHO: <me> <channel> <user> <host> <server> <nick> <flags> :<hops> <realname> */
        if (!strcmp(P(1), "*"))
            chat_say("%s (%s@%s)", P(5), P(2), P(3));
        else
            chat_say("%s (%s@%s) on %s", P(5), P(2), P(3), P(1));
    } else if (!strcmp(code, "315")) {
        chat_say("-!- end of /who");
    } else if (!strcmp(code, "311")) {
        chat_say("%s is %s@%s (%s)", P(1), P(2), P(3), last);
    } else if (!strcmp(code, "312")) {
        /* In WHOIS and in WHOWAS (whose 312 may tell when instead). */
        chat_say("%s on server %s (%s)", P(1), P(2), last);
    } else if (!strcmp(code, "317")) {
        chat_say("%s has been idle %s s", P(1), P(2));
    } else if (!strcmp(code, "319")) {
        chat_say("%s is on %s", P(1), last);
    } else if (!strcmp(code, "338")) {
        /* RPL_WHOISACTUALLY: the address and port the user connects from. */
        chat_say("%s is connected from %s", P(1), P(2));
    } else if (!strcmp(code, "318")) {
        chat_say("-!- end of /whois");
    } else if (!strcmp(code, "314")) {
        /* WHOWAS: 314 <me> <nick> <user> <host> * :<realname>, 312, 369. */
        chat_say("%s was %s@%s (%s)", P(1), P(2), P(3), last);
    } else if (!strcmp(code, "369")) {
        chat_say("-!- end of /whowas");
    } else if (!strcmp(code, "391")) {
        /* TIME: 391 <me> <server> [<timestamp> [<offset>]] :<the time, to read> */
        chat_say("-!- time on %s: %s", P(1), last);
    } else if (!strcmp(code, "353")) {
        /* NAMES: 353 <me> <type> <channel> :<names>, then 366. */
        chat_say("users on %s: %s", P(2), last);
    } else if (!strcmp(code, "322")) {
        /* LIST: 322 <me> <channel> <visible> :<topic> */
        snprintf(text, sizeof text, "%s (%s users) %s", P(1), P(2), last);
        chat_say("%s", trim_end(text));
    } else if (!strcmp(code, "323")) {
        chat_say("-!- end of /list");
    } else if (!strcmp(code, "301")) {
        /* AWAY: 301 RPL_AWAY <me> <nick> :<text>, after a message to an away
         * user or in WHOIS; 305 back, 306 away. */
        chat_say("-!- %s is away: %s", P(1), last);
    } else if (!strcmp(code, "305")) {
        chat_say("-!- you are back");
    } else if (!strcmp(code, "306")) {
        chat_say("-!- you are marked as away: /back when you return");
    } else if (!strcmp(code, "331")) {
        chat_say("-!- %s has no topic", P(1));
    } else if (!strcmp(code, "332")) {
        chat_say("-!- topic of %s: %s", P(1), last);
    } else if (!strcmp(code, "333")) {
        /* 333 <me> <channel> <nick> <set at> */
        chat_say("-!- topic of %s set by %s on %s", P(1), P(2), date(P(3), when));
    } else if (!strcmp(code, "324")) {
        /* Channel modes: 324 <me> <channel> <modes> [<args>...],
         * 329 <me> <channel> <created> */
        chat_say("-!- modes of %s: %s", P(1), words(&m, 2, m.nparams, text, sizeof text));
    } else if (!strcmp(code, "329")) {
        chat_say("-!- %s was created on %s", P(1), date(P(2), when));
    } else if (!strcmp(code, "341")) {
        /* INVITE: 341 RPL_INVITING <me> <nick> <channel> */
        chat_say("-!- you invited %s to %s", P(1), P(2));
    } else if (!strcmp(code, "367") && P(3)[0] == '\0') {
        /* Bans: 367 <me> <channel> <mask> [<who> <set at>] each, then 368. */
        chat_say("-!- ban on %s: %s", P(1), P(2));
    } else if (!strcmp(code, "367")) {
        chat_say("-!- ban on %s: %s (set by %s)", P(1), P(2), P(3));
    } else if (!strcmp(code, "368")) {
        chat_say("-!- end of the ban list of %s", P(1));
    } else if (!strcmp(code, "433")) {
        chat_say("-!- nickname %s is taken: choose another with /nick NAME", P(1));
        if (!registered)
            nick[0] = '\0';
    } else if (strlen(code) == 3 && (code[0] == '4' || code[0] == '5' || !strcmp(code, "696"))) {
        /* Errors, and 696 ERR_INVALIDMODEPARAM (Modern IRC): "<me>
         * [<subjects>...] :<sentence>" (441: <nick> <channel>); show one
         * plain sentence. */
        const char *subject = words(&m, 1, m.nparams - 1, text, sizeof text);
        /* 403, 405, 471-476: we are not on that channel after all. */
        if (one_of(code, " 403 405 471 473 474 475 476 "))
            forget_channel(P(1));
        if (subject[0] == '\0')
            chat_say("-!- error: %s", last);
        else
            chat_say("-!- error: %s (%s)", last, subject);
    } else if (numeric) {
        /* Any other reply (WHOIS extras such as 378): its text. */
        chat_say("%s", words(&m, 1, m.nparams, text, sizeof text));
    } else {
        /* Any other command (a PONG to /quote PING...): its words. */
        words(&m, 0, m.nparams, text, sizeof text);
        chat_say("-!- %s%s%s%s%s", from, from[0] ? " " : "", code, text[0] ? " " : "", text);
    }
#undef P
}
