/*
 * Lab 07: a chat server speaking a small, honest subset of IRC (RFC 2812).
 *
 * Beej's pollserver.c is a chat server of this kind: a line read from one
 * client goes out to the others. UNP has no IRC server; the loop is lab
 * 04's, UNP's tcpservpoll01 (figures 6.25-6.26). The server is the
 * go-between of its users: a line from one client is a command (`PRIVMSG
 * #room :hi`) that queues lines for others, so each client has an output
 * queue that others fill, bounded for one that stops reading.
 *
 * socket -> setsockopt(SO_REUSEADDR) -> bind -> listen -> loop { poll(the
 * listener and every client, until the next PING or timeout is due) -> read
 * from the readable, each whole line a command (its format: irc.c), as fast
 * as flood control allows -> PING the silent, drop the late -> write every
 * queue -> close those gone -> accept the new ones }.
 *
 * Flood control is RFC 1459's (§8.10): each line a client sends moves its
 * flood timer 2 s ahead; while the timer is more than 10 s ahead, its socket
 * is left unread (no POLLIN). Past a burst of six lines a spammer is read at
 * one line every 2 s; what else it sends waits in its own socket buffers.
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o server-c server.c ../common/irc.c ../common/labs.c
 * Run:   ./server-c [PORT] [--bind ADDR] [--name NAME] [--ping-timeout SECS]
 *                   [--register-timeout SECS] [--flood-penalty SECS] [--motd FILE]
 */
#include "labs.h"
#include "irc.h"

#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/param.h> /* MIN, MAX */
#include <time.h>

static const char usage[] =
    "usage: server [PORT] [--bind ADDR] [--name NAME] [--ping-timeout SECS]\n"
    "              [--register-timeout SECS] [--flood-penalty SECS] [--motd FILE]\n"
    "\n"
    "Lab 07: chat server, one process, poll(). Speaks a subset of IRC (RFC 2812):\n"
    "connect with lab 07's client, with irssi (irssi -c 127.0.0.1 -p 4242 -n alice)\n"
    "or by hand (nc -C 127.0.0.1 4242, then NICK alice and USER alice 0 * :Alice).\n"
    "\n"
    "  PORT                 port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR          address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --name NAME          the server's name, the prefix of its replies (default chat.socket-labs)\n"
    "  --ping-timeout SECS  a client silent this long is sent a PING; one still silent\n"
    "                       as long again is dropped (default 120, at most 86400)\n"
    "  --register-timeout SECS\n"
    "                       a connection not registered (NICK and USER) this long\n"
    "                       after it connected is dropped (default 60, at most 86400)\n"
    "  --flood-penalty SECS each line a client sends costs it this long; past a burst of\n"
    "                       10 s of them, its lines are read one per SECS (RFC 1459 §8.10;\n"
    "                       default 2, at most 60; 0 = no flood control)\n"
    "  --motd FILE          the message of the day, sent on registration and MOTD\n"
    "                       (read once at start-up: its first 100 lines, 400 bytes each)\n"
    "  --help               print this help\n";

#define VERSION "socket-labs-0.1.0" /* the Rust server's Cargo version, for 002 and 004 */
#define MAX_QUEUED (256 * 1024) /* a client's output queue: past it, "too slow" */
#define FLOOD_WINDOW 10000     /* ms a flood timer may run ahead (RFC 1459 §8.10) */
#define NICKLEN 30     /* RFC 2812 §1.2.1 says 9; today's servers allow 30 */
#define USERLEN 10     /* the longest user name kept from USER */
#define CHANNELLEN 50  /* '#' included (RFC 2812 §1.3) */
#define TOPICLEN 390   /* bytes */
#define MAX_CHANNELS 20 /* per user: with the descriptor limit, bounds the channels */
#define MAX_TARGETS 4   /* per PRIVMSG: each `$*` is a copy for every user */
#define MAX_USERHOST 5  /* nicks per USERHOST (RFC 2812 §4.8) */
#define MAX_KICKS 4     /* nicks per KICK (TARGMAX): each is a line to every member */
#define KICKLEN 255     /* bytes of a KICK's reason */
#define MAX_INVITES 10  /* per user: a new one past that makes the oldest forgotten */
#define KEYLEN 23       /* a channel key (+k), as ratbox's and Solanum's */
#define MAXBANS 20      /* per channel (MAXLIST=b:20) */
#define BANLEN 80       /* a whole nick!user@host of ours fits; four fit in one MODE line */
#define MAX_LIMIT 99999 /* the highest +l */
#define MODES 4         /* changes with a parameter (b k l o v) per MODE line */
#define MAX_REPLY 15    /* parameters of a reply */
#define WHOWAS_MAX 100  /* departed nicks remembered; past it the oldest goes */
#define MOTD_BYTES (64 * 1024) /* read of the --motd file: its first 64 KiB, */
#define MOTD_LINES 100  /* at most 100 lines, each cut at 400 bytes: its 372 */
#define MOTD_LINE 400   /* fits in 512 whatever the server's name and the nick */
#define PREFIXLEN (NICKLEN + USERLEN + INET6_ADDRSTRLEN + 3) /* nick!user@host */

struct channel;

/* Who is behind a connection, once NICK and USER are done. */
struct user {
    char host[INET6_ADDRSTRLEN + 1]; /* the IP as text: the host of nick!user@host */
    char nick[NICKLEN + 1];          /* "" until NICK */
    char name[USERLEN + 1];          /* the user name, "" until USER */
    char realname[IRC_MAX_LINE];
    int registered;
    int negotiating; /* CAP LS or REQ before registration: no welcome until CAP END */
    int invisible; /* user mode +i: WHO * lists it only to itself and its peers */
    char away[IRC_MAX_LINE]; /* AWAY's text, "" when here: 301, WHO's G */
    struct channel *channels[MAX_CHANNELS]; /* in the order joined */
    int nchannels;
    struct channel *invited[MAX_INVITES]; /* invited to, not joined yet */
    int ninvited;
    time_t signon;          /* when it registered, and (ms) when it last spoke */
    long long last_message; /* (PRIVMSG, NOTICE): WHOIS shows both (317) */
    int mark;               /* shares a channel with a given client: mark_peers() */
};

/* One client's connection: its socket, its two buffers, its clock; and its user. */
struct client {
    int fd;
    char peer[ADDR_TEXT];
    struct irc_lines in; /* bytes read and not yet run as lines */
    int held;            /* in may hold whole lines that flood control held */
    long long flood_at;  /* its flood timer: each line run moves it ahead */
    char *out;           /* queued, not yet taken by write(2): outlen bytes */
    size_t outlen, outcap;
    int gone;               /* to be closed at the end of this turn; its */
    char why[IRC_MAX_LINE]; /* channels then see this as its QUIT */
    long long ping_at;      /* when to PING it (or, if pinged, drop it) */
    int pinged;
    long long register_by; /* when to drop it if it has not registered */
    struct user u;
};

/* A channel: created by its first JOIN, removed with its last member. */
struct channel {
    char name[CHANNELLEN + 1]; /* as its creator wrote it */
    char topic[TOPICLEN + 1];  /* "" when none */
    char topic_by[NICKLEN + 1];
    time_t topic_at, created;
    struct member {
        struct client *c;
        int operator; /* +o: @nick in NAMES, @#chan in WHOIS, H@ in WHO */
        int voice;    /* +v: may speak under +m; +nick, +#chan, H+ */
    } *member;        /* in the order they joined: NAMES lists them so */
    int nmembers, maxmembers;
    /* Its modes (RFC 2811 §4): the flags set, letters of "imnst" in order;
     * +k the key ("" none); +l the most members (0 none); +b the bans. */
    char flags[8];
    char key[KEYLEN + 1];
    int limit;
    struct ban {
        char mask[BANLEN + 1]; /* nick!user@host, made whole: whole_mask() */
        char by[NICKLEN + 1];  /* who set it, and when: 367 */
        time_t at;
    } bans[MAXBANS];
    int nbans;
    struct channel *next;
};

/* The clients, in the order they came (each turn, WHO and `PRIVMSG $*` go
 * through them so): client[i] is the poll(2) entry i + 1, rebuilt each turn. */
static struct client **client;
static struct pollfd *fds; /* [0] the listener, [i + 1] client[i]: room for maxclients + 1 */
static int nclients, maxclients;
static struct channel *channels; /* sorted by folded name: NAMES and LIST show them so */
static int nchannels;
static const char *server_name = "chat.socket-labs";
static char created[UTC_LEN]; /* when the server started, for 003 */
static int max_users;    /* the most users registered at once (265) */
static char (*motd_text)[MOTD_LINE + 1]; /* --motd's lines; NULL without a file */
static int motd_lines;

/* A nick as it was, for WHOWAS: written down when its user changes it or
 * leaves. history[] is a ring, the most recent just before history_next. */
static struct was {
    char nick[NICKLEN + 1], name[USERLEN + 1], host[INET6_ADDRSTRLEN + 1];
    char realname[IRC_MAX_LINE];
    time_t when; /* when it was given up */
} history[WHOWAS_MAX];
static int nhistory, history_next;
static unsigned long ping_secs = 120, register_secs = 60, penalty_secs = 2;

/* Milliseconds on a clock that never jumps (clock_gettime(2), CLOCK_MONOTONIC). */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- queues and replies: only flush() writes to a socket */

/* c is closed at the end of this turn; its channels see why as its QUIT. */
static void hang_up(struct client *c, const char *why)
{
    c->gone = 1;
    snprintf(c->why, sizeof c->why, "%s", why);
}

/* Writes what is queued, as much as the non-blocking socket takes now. */
static void flush(struct client *c)
{
    while (c->outlen > 0) {
        ssize_t n = write(c->fd, c->out, c->outlen);
        if (n >= 0) {
            c->outlen -= n;
            memmove(c->out, c->out + n, c->outlen);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) { /* EPIPE or ECONNRESET: the client left */
            const char *why = strerror(errno);
            fprintf(stderr, "write %s: %s\n", c->peer, why);
            if (!c->gone)
                hang_up(c, why);
            c->outlen = 0;
        }
    }
}

/* Queues a line for c. Past MAX_QUEUED, the queue is first written as far as
 * the socket takes it; if still too full, c is dropped (too slow). */
static void queue(struct client *c, const char *line, size_t len)
{
    if (!c->gone && c->outlen + len > MAX_QUEUED)
        flush(c);
    if (c->gone)
        return;
    if (c->outlen + len > MAX_QUEUED) {
        printf("%s too slow: %zu KiB waiting to be sent, dropped\n", c->peer, c->outlen / 1024);
        c->outlen = 0;
        hang_up(c, "Too slow: output queue full");
        return;
    }
    if (c->outlen + len > c->outcap) {
        c->outcap = MIN(c->outcap ? 2 * c->outcap : 4096, MAX_QUEUED);
        if ((c->out = realloc(c->out, c->outcap)) == NULL)
            die("realloc", c->peer);
    }
    memcpy(c->out + c->outlen, line, len);
    c->outlen += len;
}

/* Formats one line and queues it for c. */
static void send_to(struct client *c, const char *prefix, const char *command,
                    const char **params, int n, int trailing)
{
    char line[IRC_MAX_LINE + 1];
    size_t len = irc_format(line, prefix, command, params, n, trailing);
    queue(c, line, len);
}

/* Queues `:server NUMERIC nick params... :last` for c; params end with NULL. */
static void reply(struct client *c, const char *numeric, ...)
{
    const char *params[MAX_REPLY + 1] = { c->u.nick[0] ? c->u.nick : "*" };
    int n = 1;
    va_list ap;
    va_start(ap, numeric);
    while (n <= MAX_REPLY && (params[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    send_to(c, server_name, numeric, params, n, 1);
}

/* Queues a reply whose last parameter is a list of words (353 names, 319
 * channels), over as many lines as it takes to keep each within 512 bytes. */
static void reply_list(struct client *c, const char *numeric, const char *a, const char *b,
                       const char *words)
{
    char line[IRC_MAX_LINE + 1], text[IRC_MAX_LINE];
    const char *params[] = { c->u.nick, a, b != NULL ? b : "", "" };
    int n = b != NULL ? 3 : 2;
    size_t room = IRC_MAX_LINE - irc_format(line, server_name, numeric, params, n + 1, 1), len = 0;
    params[n] = text;
    while (*(words += strspn(words, " ")) != '\0') {
        size_t word = strcspn(words, " ");
        if (len > 0 && len + 1 + word > room) {
            send_to(c, server_name, numeric, params, n + 1, 1);
            len = 0;
        }
        len += snprintf(text + len, sizeof text - len, "%s%.*s", len ? " " : "", (int)word, words);
        words += word;
    }
    if (len > 0)
        send_to(c, server_name, numeric, params, n + 1, 1);
}

/* `nick!user@host`, the prefix of what c says; out holds PREFIXLEN. */
static const char *prefix_of(const struct client *c, char *out)
{
    snprintf(out, PREFIXLEN, "%s!%s@%s", c->u.nick[0] ? c->u.nick : "*",
             c->u.name[0] ? c->u.name : "*", c->u.host);
    return out;
}

/* Marks everyone who shares a channel with c (c too, if on one): the
 * caller goes through client[] and clears each mark. */
static void mark_peers(struct client *c)
{
    for (int k = 0; k < c->u.nchannels; k++)
        for (int j = 0; j < c->u.channels[k]->nmembers; j++)
            c->u.channels[k]->member[j].c->u.mark = 1;
}

/* Queues line for everyone who shares a channel with c, once each, in the
 * order they came. */
static void relay_to_peers(struct client *c, const char *line, size_t len)
{
    mark_peers(c);
    for (int i = 0; i < nclients; i++) {
        if (client[i]->u.mark && client[i] != c)
            queue(client[i], line, len);
        client[i]->u.mark = 0;
    }
}

/* Queues line for every member of ch but `except` (NULL: all of them). */
static void tell_channel(struct channel *ch, const struct client *except, const char *line,
                         size_t len)
{
    for (int j = 0; j < ch->nmembers; j++)
        if (ch->member[j].c != except)
            queue(ch->member[j].c, line, len);
}

/* The client that holds this nick, whatever its case, or NULL. */
static struct client *find_nick(const char *nick)
{
    for (int i = 0; i < nclients; i++)
        if (client[i]->u.nick[0] && irc_casecmp(client[i]->u.nick, nick) == 0)
            return client[i];
    return NULL;
}

static struct channel *find_channel(const char *name)
{
    for (struct channel *ch = channels; ch != NULL; ch = ch->next)
        if (irc_casecmp(ch->name, name) == 0)
            return ch;
    return NULL;
}

static struct member *member_of(struct channel *ch, const struct client *c)
{
    for (int j = 0; j < ch->nmembers; j++)
        if (ch->member[j].c == c)
            return &ch->member[j];
    return NULL;
}

/* Takes c out of ch; the last member out removes the channel. */
static void remove_member(struct channel *ch, const struct client *c)
{
    struct channel **link = &channels;
    int k = 0;
    for (int j = 0; j < ch->nmembers; j++)
        if (ch->member[j].c != c)
            ch->member[k++] = ch->member[j];
    if ((ch->nmembers = k) > 0)
        return;
    while (*link != ch)
        link = &(*link)->next;
    *link = ch->next;
    nchannels--;
    for (int i = 0; i < nclients; i++) { /* and the invitations to it */
        struct user *u = &client[i]->u;
        k = 0;
        for (int j = 0; j < u->ninvited; j++)
            if (u->invited[j] != ch)
                u->invited[k++] = u->invited[j];
        u->ninvited = k;
    }
    free(ch->member);
    free(ch);
}

/* Takes ch out of the channels u is on. */
static void drop_channel(struct user *u, const struct channel *ch)
{
    int k = 0;
    for (int j = 0; j < u->nchannels; j++)
        if (u->channels[j] != ch)
            u->channels[k++] = u->channels[j];
    u->nchannels = k;
}

/* A member's highest status, as NAMES, WHO and WHOIS show it. */
static const char *status_of(const struct member *m)
{
    return m == NULL ? "" : m->operator ? "@" : m->voice ? "+" : "";
}

static int has_mode(const struct channel *ch, char flag)
{
    return strchr(ch->flags, flag) != NULL;
}

/* Whether c may know of ch: a secret one (+s) is hidden from LIST, NAMES
 * and WHOIS but for its members. */
static int visible_to(struct channel *ch, const struct client *c)
{
    return !has_mode(ch, 's') || member_of(ch, c) != NULL;
}

/* Whether one of ch's bans matches c's nick!user@host. */
static int banned(const struct channel *ch, const struct client *c)
{
    char prefix[PREFIXLEN];
    prefix_of(c, prefix);
    for (int k = 0; k < ch->nbans; k++)
        if (irc_mask_matches(ch->bans[k].mask, prefix))
            return 1;
    return 0;
}

/* Whether c may send to ch: an operator or a voiced member always; from
 * outside not under +n; not under +m; not when banned (+b). */
static int may_speak(struct channel *ch, const struct client *c)
{
    struct member *m = member_of(ch, c);
    if (m != NULL && (m->operator || m->voice))
        return 1;
    if (m == NULL && has_mode(ch, 'n'))
        return 0;
    return !has_mode(ch, 'm') && !banned(ch, c);
}

/* The next non-empty item of a comma-separated list (strsep(3)), or NULL. */
static char *next_item(char **list)
{
    char *item;
    while ((item = strsep(list, ",")) != NULL)
        if (item[0] != '\0')
            return item;
    return NULL;
}

/* ERROR :Closing link, the last line a client gets: after QUIT or a timeout. */
static void close_link(struct client *c, const char *why)
{
    char error[IRC_MAX_LINE + 64];
    snprintf(error, sizeof error, "Closing link: %s (%s)", c->u.host, why);
    const char *params[] = { error };
    send_to(c, NULL, "ERROR", params, 1, 1);
    hang_up(c, why);
}

/* Writes down c's nick for WHOWAS as it gives it up (NICK, or it leaves):
 * a registered user's only, over the oldest once history[] is full. */
static void remember(const struct client *c)
{
    struct was *w = &history[history_next];
    if (!c->u.registered)
        return;
    snprintf(w->nick, sizeof w->nick, "%s", c->u.nick);
    snprintf(w->name, sizeof w->name, "%s", c->u.name);
    snprintf(w->host, sizeof w->host, "%s", c->u.host);
    snprintf(w->realname, sizeof w->realname, "%s", c->u.realname);
    w->when = time(NULL);
    history_next = (history_next + 1) % WHOWAS_MAX;
    nhistory = MIN(nhistory + 1, WHOWAS_MAX);
}

/* ---- the commands: each answers with numerics (RFC 2812 §5) and may relay
 * a line with the sender's prefix. Text is bytes, relayed as it came: IRC
 * names no character set (§2.2). First, coming and going (§3.1). */

static void lusers(struct client *c, char **p, int n);
static void motd(struct client *c, char **p, int n);

/* Once NICK and USER are both in, in either order, and CAP negotiation (if
 * any) is over: the welcome burst. */
static void welcome(struct client *c)
{
    char prefix[PREFIXLEN], text[IRC_MAX_LINE];
    if (c->u.nick[0] == '\0' || c->u.name[0] == '\0' || c->u.negotiating)
        return;
    c->u.registered = 1;
    c->u.signon = time(NULL);
    c->u.last_message = now_ms();
    printf("%s registered as %s\n", c->peer, c->u.nick);
    snprintf(text, sizeof text, "Welcome to the socket-labs Network, %s", prefix_of(c, prefix));
    reply(c, "001", text, NULL);
    snprintf(text, sizeof text, "Your host is %s, running version %s", server_name, VERSION);
    reply(c, "002", text, NULL);
    snprintf(text, sizeof text, "This server was created %s", created);
    reply(c, "003", text, NULL);
    /* <nick> <server> <version> <user modes> <channel modes> <those with a
     * parameter>: mode letters, no trailing colon. */
    const char *info[] = { c->u.nick, server_name, VERSION, "i", "biklmnostv", "bklov" };
    send_to(c, server_name, "004", info, 6, 0);
    /* What a real client reads from 005 (RPL_ISUPPORT) to learn our rules. */
    reply(c, "005", "CASEMAPPING=rfc1459", "CHANTYPES=#", "CHANLIMIT=#:20", "CHANNELLEN=50",
          "NICKLEN=30", "TOPICLEN=390", "PREFIX=(ov)@+", "CHANMODES=b,k,l,imnst", "MODES=4",
          "MAXLIST=b:20", "KICKLEN=255", "TARGMAX=PRIVMSG:4,NOTICE:4,KICK:4",
          "NETWORK=socket-labs", "are supported by this server", NULL);
    int users = 0;
    for (int i = 0; i < nclients; i++)
        users += client[i]->u.registered;
    max_users = MAX(max_users, users);
    /* Then what LUSERS and MOTD say, as real servers do. */
    lusers(c, NULL, 0);
    motd(c, NULL, 0);
}

/* CAP (IRCv3), which irssi sends first: we offer no capability, and say so.
 * A CAP LS or CAP REQ before registration holds the welcome until CAP END. */
static void cap(struct client *c, char **p, int n)
{
    if (!c->u.registered && (strcasecmp(p[0], "LS") == 0 || strcasecmp(p[0], "REQ") == 0))
        c->u.negotiating = 1;
    if (strcasecmp(p[0], "LS") == 0 || strcasecmp(p[0], "LIST") == 0) {
        reply(c, "CAP", strcasecmp(p[0], "LS") == 0 ? "LS" : "LIST", "", NULL);
    } else if (strcasecmp(p[0], "REQ") == 0) {
        reply(c, "CAP", "NAK", n > 1 ? p[1] : "", NULL);
    } else if (strcasecmp(p[0], "END") == 0) {
        c->u.negotiating = 0;
        if (!c->u.registered)
            welcome(c);
    } else {
        reply(c, "410", p[0], "Invalid CAP command", NULL);
    }
}

/* NICK: choose a nickname, or change it once registered. */
static void nick(struct client *c, char **p, int n)
{
    char old[NICKLEN + 1], prefix[PREFIXLEN], line[IRC_MAX_LINE + 1];
    struct client *owner = n > 0 ? find_nick(p[0]) : NULL;
    if (n < 1 || p[0][0] == '\0') {
        reply(c, "431", "No nickname given", NULL);
    } else if (!irc_valid_nick(p[0], NICKLEN)) {
        reply(c, "432", p[0], "Erroneous nickname", NULL);
    } else if (owner != NULL && owner != c) {
        /* Unique whatever the case: alice, Alice and ALICE are one nick. */
        reply(c, "433", p[0], "Nickname is already in use", NULL);
    } else if (strcmp(c->u.nick, p[0]) != 0) {
        prefix_of(c, prefix);
        remember(c); /* the old nick, for WHOWAS */
        strcpy(old, c->u.nick);
        strcpy(c->u.nick, p[0]); /* irc_valid_nick: at most NICKLEN bytes */
        if (!c->u.registered) {
            welcome(c);
            return;
        }
        /* The user and everyone who shares a channel with them see it. */
        size_t len = irc_format(line, prefix, "NICK", (const char **)p, 1, 0);
        printf("%s %s is now known as %s\n", c->peer, old[0] ? old : "*", c->u.nick);
        relay_to_peers(c, line, len);
        queue(c, line, len);
    }
}

/* USER <user> <mode> <unused> :<realname> (RFC 2812 §3.1.3). */
static void user(struct client *c, char **p, int n)
{
    size_t k = 0;
    (void)n;
    if (p[3][0] == '\0') { /* USER name * * : an empty real name lacks a parameter too */
        reply(c, "461", "USER", "Not enough parameters", NULL);
        return;
    }
    if (c->u.registered) {
        reply(c, "462", "You may not reregister", NULL);
        return;
    }
    /* The user name goes into every prefix: keep it short and plain. */
    for (const char *s = p[0]; *s != '\0' && k < USERLEN; s++)
        if (*s > ' ' && *s < 127 && *s != '!' && *s != '@' && *s != ':')
            c->u.name[k++] = *s;
    snprintf(c->u.name + k, sizeof c->u.name - k, "%s", k == 0 ? "user" : "");
    snprintf(c->u.realname, sizeof c->u.realname, "%s", p[3]);
    welcome(c);
}

/* PING <token>: PONG, with the same token. */
static void ping(struct client *c, char **p, int n)
{
    (void)n;
    send_to(c, server_name, "PONG", (const char *[]){ server_name, p[0] }, 2, 1);
}

/* QUIT [:message]: ERROR; its channels see the QUIT when it is closed. */
static void quit(struct client *c, char **p, int n)
{
    const char *why = n > 0 && p[0][0] != '\0' ? p[0] : "Client quit";
    printf("%s %s quit: %s\n", c->peer, c->u.nick[0] ? c->u.nick : "*", why);
    close_link(c, why);
}

/* A client gone (out of client[]: its nick is free) leaves its channels,
 * which see `:nick!user@host QUIT :why`. */
static void disconnected(struct client *c)
{
    char prefix[PREFIXLEN], line[IRC_MAX_LINE + 1];
    const char *params[] = { c->why };
    remember(c); /* for WHOWAS */
    if (c->u.registered)
        relay_to_peers(c, line, irc_format(line, prefix_of(c, prefix), "QUIT", params, 1, 1));
    for (int k = 0; k < c->u.nchannels; k++)
        remove_member(c->u.channels[k], c);
}

/* ---- messages: PRIVMSG and NOTICE (RFC 2812 §3.3) */

/* PRIVMSG and NOTICE <target>{,<target>} :<text>, to a nick, a channel or
 * `$*`, every user (a server mask, §3.3.1). A NOTICE is never answered, not
 * even with an error (§3.3.2): two programs could answer each other forever. */
static void message(struct client *c, const char *command, char **p, int n)
{
    int is_notice = strcmp(command, "NOTICE") == 0, count = 0;
    char prefix[PREFIXLEN], line[IRC_MAX_LINE + 1], *target;
    if (n < 1 || p[0][0] == '\0') {
        if (!is_notice)
            reply(c, "411", "No recipient given (PRIVMSG)", NULL);
        return;
    }
    if (n < 2 || p[1][0] == '\0') {
        if (!is_notice)
            reply(c, "412", "No text to send", NULL);
        return;
    }
    c->u.last_message = now_ms();
    prefix_of(c, prefix);
    const char *params[] = { NULL, p[1] };
    while ((target = next_item(&p[0])) != NULL) {
        struct channel *ch = target[0] == '#' ? find_channel(target) : NULL;
        struct client *to = target[0] != '#' && target[0] != '$' ? find_nick(target) : NULL;
        if (count++ == MAX_TARGETS) {
            if (!is_notice)
                reply(c, "407", target, "Too many targets", NULL);
            break;
        }
        if (target[0] == '$' && irc_mask_matches(target + 1, server_name)) {
            params[0] = target;
            size_t len = irc_format(line, prefix, command, params, 2, 1);
            for (int i = 0; i < nclients; i++)
                if (client[i]->u.registered && client[i] != c)
                    queue(client[i], line, len);
        } else if (ch != NULL && may_speak(ch, c)) {
            params[0] = ch->name;
            tell_channel(ch, c, line, irc_format(line, prefix, command, params, 2, 1));
        } else if (to != NULL && to->u.registered) {
            params[0] = to->u.nick;
            send_to(to, prefix, command, params, 2, 1);
            if (!is_notice && to->u.away[0] != '\0') /* 301 RPL_AWAY, to the sender */
                reply(c, "301", to->u.nick, to->u.away, NULL);
        } else if (is_notice) {
            continue;
        } else if (ch != NULL) { /* +n: only members; +m: only @ and +; +b: not the banned */
            reply(c, "404", target, "Cannot send to channel", NULL);
        } else {
            reply(c, "401", target, "No such nick/channel", NULL);
        }
    }
}

static void privmsg(struct client *c, char **p, int n) { message(c, "PRIVMSG", p, n); }
static void notice(struct client *c, char **p, int n) { message(c, "NOTICE", p, n); }

/* ---- channels: JOIN, PART, NAMES, LIST, TOPIC, KICK, INVITE, a channel's
 * MODE (§3.2) */

/* 332 RPL_TOPIC and 333 RPL_TOPICWHOTIME: the topic, who set it and when. */
static void reply_topic(struct client *c, struct channel *ch)
{
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)ch->topic_at);
    reply(c, "332", ch->name, ch->topic, NULL);
    reply(c, "333", ch->name, ch->topic_by, at, NULL);
}

/* 353 RPL_NAMREPLY lines: who is on the channel ("=" a public one, "@" a
 * secret one). */
static void names_of(struct client *c, struct channel *ch)
{
    char *words = malloc(ch->nmembers * (NICKLEN + 2) + 1), *w = words;
    if (words == NULL)
        die("malloc", ch->name);
    for (int j = 0; j < ch->nmembers; j++)
        w += sprintf(w, " %s%s", status_of(&ch->member[j]), ch->member[j].c->u.nick);
    *w = '\0';
    reply_list(c, "353", has_mode(ch, 's') ? "@" : "=", ch->name, words);
    free(words);
}

/* Tells the channel, c included, that c leaves it. */
static void leave(struct client *c, struct channel *ch, const char *why)
{
    char prefix[PREFIXLEN], line[IRC_MAX_LINE + 1];
    const char *params[] = { ch->name, why };
    drop_channel(&c->u, ch);
    prefix_of(c, prefix);
    size_t len = irc_format(line, prefix, "PART", params, why != NULL ? 2 : 1, why != NULL);
    tell_channel(ch, NULL, line, len);
    printf("%s %s left %s\n", c->peer, c->u.nick, ch->name);
    remove_member(ch, c);
}

/* Whether c was invited to ch; forgotten if `forget` (c joins it). */
static int invited(struct client *c, const struct channel *ch, int forget)
{
    for (int j = 0; j < c->u.ninvited; j++) {
        if (c->u.invited[j] != ch)
            continue;
        if (forget)
            memmove(&c->u.invited[j], &c->u.invited[j + 1],
                    (--c->u.ninvited - j) * sizeof c->u.invited[0]);
        return 1;
    }
    return 0;
}

/* Why c may not join ch with this key (NULL: none given): a numeric, its
 * text in *why; NULL if it may. An invitation lets it past +i and +b (as
 * ngIRCd), not past +k or +l. */
static const char *refuses(struct channel *ch, struct client *c, const char *key, const char **why)
{
    int invite = invited(c, ch, 0);
    if (!invite && banned(ch, c)) {
        *why = "Cannot join channel (+b)";
        return "474";
    } else if (!invite && has_mode(ch, 'i')) {
        *why = "Cannot join channel (+i)";
        return "473";
    } else if (ch->key[0] != '\0' && (key == NULL || strcmp(key, ch->key) != 0)) {
        *why = "Cannot join channel (+k)";
        return "475";
    } else if (ch->limit > 0 && ch->nmembers >= ch->limit) {
        *why = "Cannot join channel (+l)";
        return "471";
    }
    return NULL;
}

/* JOIN #a,#b [keyA,keyB], or JOIN 0 to leave every channel. */
static void join(struct client *c, char **p, int n)
{
    char prefix[PREFIXLEN], line[IRC_MAX_LINE + 1], *name, *keys = n > 1 ? p[1] : NULL;
    const char *numeric, *why;
    if (strcmp(p[0], "0") == 0) {
        while (c->u.nchannels > 0)
            leave(c, c->u.channels[0], NULL);
        return;
    }
    while ((name = next_item(&p[0])) != NULL) {
        struct channel *ch = find_channel(name);
        char *key = keys != NULL ? strsep(&keys, ",") : NULL;
        if (!irc_valid_channel(name, CHANNELLEN)) {
            reply(c, "403", name, "No such channel", NULL);
            continue;
        }
        if (ch != NULL && member_of(ch, c) != NULL)
            continue;
        if (c->u.nchannels >= MAX_CHANNELS) {
            reply(c, "405", name, "You have joined too many channels", NULL);
            continue;
        }
        if (ch != NULL && (numeric = refuses(ch, c, key, &why)) != NULL) {
            reply(c, numeric, ch->name, why, NULL);
            continue;
        }
        if (ch == NULL) { /* a new channel, in its place in the sorted list */
            struct channel **link = &channels;
            if ((ch = calloc(1, sizeof *ch)) == NULL)
                die("calloc", name);
            snprintf(ch->name, sizeof ch->name, "%s", name); /* irc_valid_channel: it fits */
            ch->created = time(NULL);
            /* +nt, as most servers (ratbox, Solanum, InspIRCd): +n because a
             * message from outside is nearly always spam (and this server
             * never took one); +t because the topic is the channel's notice
             * board, its operators' to write. */
            strcpy(ch->flags, "nt");
            while (*link != NULL && irc_casecmp((*link)->name, name) < 0)
                link = &(*link)->next;
            ch->next = *link;
            *link = ch;
            nchannels++;
        }
        if (ch->nmembers == ch->maxmembers) {
            ch->maxmembers = ch->maxmembers ? 2 * ch->maxmembers : 4;
            if ((ch->member = realloc(ch->member, ch->maxmembers * sizeof *ch->member)) == NULL)
                die("realloc", ch->name);
        }
        /* Whoever creates the channel is its operator. */
        ch->member[ch->nmembers].c = c;
        ch->member[ch->nmembers].operator = ch->nmembers == 0;
        ch->member[ch->nmembers].voice = 0;
        ch->nmembers++;
        invited(c, ch, 1); /* an invitation lasts until the invitee joins */
        c->u.channels[c->u.nchannels++] = ch;
        const char *params[] = { ch->name };
        tell_channel(ch, NULL, line, irc_format(line, prefix_of(c, prefix), "JOIN", params, 1, 0));
        printf("%s %s joined %s\n", c->peer, c->u.nick, ch->name);
        if (ch->topic[0] != '\0')
            reply_topic(c, ch);
        names_of(c, ch);
        reply(c, "366", ch->name, "End of /NAMES list", NULL);
    }
}

/* PART #a,#b [:reason] */
static void part(struct client *c, char **p, int n)
{
    char *name;
    while ((name = next_item(&p[0])) != NULL) {
        struct channel *ch = find_channel(name);
        if (ch == NULL)
            reply(c, "403", name, "No such channel", NULL);
        else if (member_of(ch, c) == NULL)
            reply(c, "442", name, "You're not on that channel", NULL);
        else
            leave(c, ch, n > 1 ? p[1] : NULL);
    }
}

/* NAMES [#a,#b]: who is on these channels (all without a parameter); a
 * secret one (+s) only to its members. */
static void names(struct client *c, char **p, int n)
{
    char *name;
    for (struct channel *ch = channels; n == 0 && ch != NULL; ch = ch->next)
        if (visible_to(ch, c))
            names_of(c, ch);
    if (n == 0)
        reply(c, "366", "*", "End of /NAMES list", NULL);
    while (n > 0 && (name = next_item(&p[0])) != NULL) {
        struct channel *ch = find_channel(name);
        if (ch != NULL && visible_to(ch, c))
            names_of(c, ch);
        reply(c, "366", name, "End of /NAMES list", NULL);
    }
}

/* LIST [#a,#b]: 322 per channel (not a secret one, +s, to an outsider),
 * then 323. The optional 321 is not sent. */
static void list(struct client *c, char **p, int n)
{
    char count[16], *name;
    struct channel *ch = channels;
    /* Every channel, or those named that exist. */
    while (n == 0 ? ch != NULL : (name = next_item(&p[0])) != NULL) {
        if (n > 0 && (ch = find_channel(name)) == NULL)
            continue;
        snprintf(count, sizeof count, "%d", ch->nmembers);
        if (visible_to(ch, c))
            reply(c, "322", ch->name, count, ch->topic, NULL);
        ch = ch->next;
    }
    reply(c, "323", "End of /LIST", NULL);
}

/* TOPIC #chan [:text]: anyone may read it; a member may set it, an operator
 * only under +t. */
static void topic(struct client *c, char **p, int n)
{
    char prefix[PREFIXLEN], line[IRC_MAX_LINE + 1];
    struct channel *ch = find_channel(p[0]);
    if (ch == NULL) {
        reply(c, "403", p[0], "No such channel", NULL);
    } else if (n < 2 && ch->topic[0] != '\0') {
        reply_topic(c, ch);
    } else if (n < 2) {
        reply(c, "331", ch->name, "No topic is set", NULL);
    } else if (member_of(ch, c) == NULL) {
        reply(c, "442", ch->name, "You're not on that channel", NULL);
    } else if (has_mode(ch, 't') && !member_of(ch, c)->operator) {
        reply(c, "482", ch->name, "You're not channel operator", NULL);
    } else {
        snprintf(ch->topic, sizeof ch->topic, "%s", p[1]); /* cut at TOPICLEN bytes */
        strcpy(ch->topic_by, c->u.nick);
        ch->topic_at = time(NULL);
        const char *params[] = { ch->name, ch->topic };
        tell_channel(ch, NULL, line, irc_format(line, prefix_of(c, prefix), "TOPIC", params, 2, 1));
    }
}

/* KICK #chan nick[,nick] [:reason] (RFC 2812 §3.2.8), by an operator: the
 * channel, the kicked included, sees the KICK; the last out removes it. */
static void kick(struct client *c, char **p, int n)
{
    char prefix[PREFIXLEN], line[IRC_MAX_LINE + 1], why[KICKLEN + 1], *nick;
    struct channel *ch = find_channel(p[0]);
    struct member *me = ch != NULL ? member_of(ch, c) : NULL;
    int count = 0;
    if (ch == NULL) {
        reply(c, "403", p[0], "No such channel", NULL);
        return;
    } else if (me == NULL) {
        reply(c, "442", ch->name, "You're not on that channel", NULL);
        return;
    } else if (!me->operator) {
        reply(c, "482", ch->name, "You're not channel operator", NULL);
        return;
    }
    /* Without a reason, the kicker's nick, as most servers say. */
    snprintf(why, sizeof why, "%s", n > 2 && p[2][0] != '\0' ? p[2] : c->u.nick);
    prefix_of(c, prefix);
    while ((nick = next_item(&p[1])) != NULL) {
        struct client *u = find_nick(nick);
        if (count++ == MAX_KICKS) {
            reply(c, "407", nick, "Too many targets", NULL);
            break;
        }
        if (u == NULL) {
            reply(c, "401", nick, "No such nick/channel", NULL);
            continue;
        }
        if (ch == NULL)
            return; /* the kicker kicked itself out, the last member */
        if (member_of(ch, u) == NULL) {
            reply(c, "441", nick, ch->name, "They aren't on that channel", NULL);
            continue;
        }
        const char *params[] = { ch->name, u->u.nick, why };
        tell_channel(ch, NULL, line, irc_format(line, prefix, "KICK", params, 3, 1));
        printf("%s %s kicked %s from %s\n", c->peer, c->u.nick, u->u.nick, ch->name);
        drop_channel(&u->u, ch);
        int last = ch->nmembers == 1;
        remove_member(ch, u);
        if (last)
            ch = NULL; /* removed */
    }
}

/* INVITE nick #chan (RFC 2812 §3.2.7), by a member, an operator under +i:
 * 341 to c, the INVITE to the invitee, who may then join past +i and +b
 * until it does (or the channel ends). */
static void invite(struct client *c, char **p, int n)
{
    char prefix[PREFIXLEN];
    struct client *u = find_nick(p[0]);
    struct channel *ch = find_channel(p[1]);
    struct member *me = ch != NULL ? member_of(ch, c) : NULL;
    (void)n;
    if (u == NULL || !u->u.registered) {
        reply(c, "401", p[0], "No such nick/channel", NULL);
    } else if (ch == NULL) {
        reply(c, "403", p[1], "No such channel", NULL);
    } else if (me == NULL) {
        reply(c, "442", ch->name, "You're not on that channel", NULL);
    } else if (has_mode(ch, 'i') && !me->operator) {
        reply(c, "482", ch->name, "You're not channel operator", NULL);
    } else if (member_of(ch, u) != NULL) {
        reply(c, "443", u->u.nick, ch->name, "is already on channel", NULL);
    } else {
        const char *params[] = { u->u.nick, ch->name }, *inviting[] = { c->u.nick, u->u.nick, ch->name };
        send_to(u, prefix_of(c, prefix), "INVITE", params, 2, 0);
        send_to(c, server_name, "341", inviting, 3, 0);
        if (u->u.away[0] != '\0')
            reply(c, "301", u->u.nick, u->u.away, NULL);
        if (!invited(u, ch, 0)) {
            if (u->u.ninvited == MAX_INVITES)
                invited(u, u->u.invited[0], 1);
            u->u.invited[u->u.ninvited++] = ch;
        }
    }
}

/* ---- questions: WHO, WHOIS, a user's MODE, LUSERS (§3.5, §3.6) */

/* MODE nick [changes]: a user's own modes, +i only (invisible: see who()). */
static void user_mode(struct client *c, char **p, int n)
{
    int before = c->u.invisible, adding = 1, unknown = 0;
    if (irc_casecmp(p[0], c->u.nick) != 0) {
        if (find_nick(p[0]) != NULL)
            reply(c, "502", "Can't change mode for other users", NULL);
        else
            reply(c, "401", p[0], "No such nick/channel", NULL);
        return;
    }
    if (n < 2) {
        reply(c, "221", c->u.invisible ? "+i" : "+", NULL);
        return;
    }
    for (const char *s = p[1]; *s != '\0'; s++) {
        if (*s == '+' || *s == '-')
            adding = *s == '+';
        else if (*s == 'i')
            c->u.invisible = adding;
        else
            unknown = 1;
    }
    if (c->u.invisible != before) {
        const char *params[] = { c->u.nick, c->u.invisible ? "+i" : "-i" };
        send_to(c, c->u.nick, "MODE", params, 2, 0);
    }
    if (unknown)
        reply(c, "501", "Unknown MODE flag", NULL);
}

/* 324 RPL_CHANNELMODEIS and 329 RPL_CREATIONTIME: the modes, with the limit
 * and, only to a member, the key (l before k, so that a client shown no key
 * still reads the limit as l's parameter). */
static void reply_modes(struct client *c, struct channel *ch)
{
    char letters[16], limit[16], when[24];
    const char *params[5] = { c->u.nick, ch->name, letters };
    int n = 3;
    snprintf(letters, sizeof letters, "+%s%s%s", ch->flags, ch->limit > 0 ? "l" : "",
             ch->key[0] != '\0' ? "k" : "");
    snprintf(limit, sizeof limit, "%d", ch->limit);
    if (ch->limit > 0)
        params[n++] = limit;
    if (ch->key[0] != '\0' && member_of(ch, c) != NULL)
        params[n++] = ch->key;
    send_to(c, server_name, "324", params, n, 0); /* mode letters: no trailing colon */
    snprintf(when, sizeof when, "%lld", (long long)ch->created);
    reply(c, "329", ch->name, when, NULL);
}

/* 367 RPL_BANLIST for each ban (mask, who set it, when), then 368. */
static void reply_bans(struct client *c, struct channel *ch)
{
    char at[24];
    for (int k = 0; k < ch->nbans; k++) {
        snprintf(at, sizeof at, "%lld", (long long)ch->bans[k].at);
        const char *params[] = { c->u.nick, ch->name, ch->bans[k].mask, ch->bans[k].by, at };
        send_to(c, server_name, "367", params, 5, 0);
    }
    reply(c, "368", ch->name, "End of channel ban list", NULL);
}

/* A ban mask made whole, as servers store it: `bob` is bob!*@*, `*@host`
 * is *!*@host, `bob!x` is bob!x@*. out has room for IRC_MAX_LINE + 8. */
static void whole_mask(const char *mask, char *out)
{
    const char *bang = strchr(mask, '!'), *rest = "", *at, *host;
    int nick = (int)strlen(mask), user;
    if (bang != NULL) {
        nick = (int)(bang - mask);
        rest = bang + 1;
    } else if (strchr(mask, '@') != NULL) {
        nick = 0;
        rest = mask;
    }
    at = strchr(rest, '@');
    user = at != NULL ? (int)(at - rest) : (int)strlen(rest);
    host = at != NULL ? at + 1 : "";
    snprintf(out, IRC_MAX_LINE + 8, "%.*s!%.*s@%s", nick ? nick : 1, nick ? mask : "*",
             user ? user : 1, user ? rest : "*", host[0] != '\0' ? host : "*");
}

/* A key JOIN could give: printable ASCII, no comma (JOIN's separator), at
 * most KEYLEN bytes. */
static int valid_key(const char *key)
{
    size_t len = strlen(key);
    for (const char *s = key; *s != '\0'; s++)
        if (*s <= ' ' || *s >= 127 || *s == ',')
            return 0;
    return len > 0 && len <= KEYLEN;
}

/* Adds (or takes off) a ban of ch: 1 if that changed anything, 0 if not,
 * -1 when the list is full. */
static int ban(struct channel *ch, int adding, const char *mask, const char *by)
{
    int k = 0;
    while (k < ch->nbans && irc_casecmp(ch->bans[k].mask, mask) != 0)
        k++;
    if (adding && k < ch->nbans)
        return 0;
    if (adding && ch->nbans == MAXBANS)
        return -1;
    if (adding) {
        struct ban *b = &ch->bans[ch->nbans++];
        snprintf(b->mask, sizeof b->mask, "%s", mask); /* at most BANLEN: checked */
        snprintf(b->by, sizeof b->by, "%s", by);
        b->at = time(NULL);
        return 1;
    }
    if (k == ch->nbans)
        return 0;
    memmove(&ch->bans[k], &ch->bans[k + 1], (--ch->nbans - k) * sizeof ch->bans[0]);
    return 1;
}

/* One change of a channel's modes as relayed: + or -, its letter, its
 * parameter ("" for none). */
struct change {
    int adding;
    char letter;
    char param[BANLEN + 1];
};

/* MODE #chan [changes [params]]: 324 and 329 without changes; the ban list
 * (367, 368) for `b` alone, to anyone; changes from an operator, relayed to
 * the channel in one MODE line. MODE nick: user_mode. */
static void mode(struct client *c, char **p, int n)
{
    char prefix[PREFIXLEN], line[IRC_MAX_LINE + 1], mask[IRC_MAX_LINE + 8], text[32];
    struct channel *ch = find_channel(p[0]);
    struct member *me = ch != NULL ? member_of(ch, c) : NULL;
    /* The changes of bans and statuses, in order; then all that changed. */
    struct change listed[MODES], all[5 + 2 + MODES];
    int next = 2, adding = 1, with_param = 0, nlisted = 0, nall = 0;
    if (p[0][0] != '#') {
        user_mode(c, p, n);
        return;
    } else if (ch == NULL) {
        reply(c, "403", p[0], "No such channel", NULL);
        return;
    } else if (n < 2) {
        reply_modes(c, ch);
        return;
    } else if (n == 2 && p[1][strspn(p[1], "+-b")] == '\0' && strchr(p[1], 'b') != NULL) {
        reply_bans(c, ch);
        return;
    } else if (me == NULL || !me->operator) {
        reply(c, "482", ch->name, "You're not channel operator", NULL);
        return;
    }
    /* The flags, key and limit as the line leaves them: what changed is
     * relayed once, whatever the line said (+i-i+i is +i). */
    char flags[8], key[KEYLEN + 1];
    int limit = ch->limit;
    strcpy(flags, ch->flags);
    strcpy(key, ch->key);
    for (const char *s = p[1]; *s != '\0'; s++) {
        char letter[2] = { *s, '\0' };
        const char *param = NULL;
        if (*s == '+' || *s == '-') {
            adding = *s == '+';
            continue;
        }
        if (strchr("imnst", *s) != NULL) {
            char was[8];
            int k = 0;
            strcpy(was, flags);
            for (const char *f = "imnst"; *f != '\0'; f++) /* kept in order */
                if (*f == *s ? adding : strchr(was, *f) != NULL)
                    flags[k++] = *f;
            flags[k] = '\0';
            continue;
        }
        if (strchr("bklov", *s) == NULL) {
            reply(c, "472", letter, "is unknown mode char to me", NULL);
            continue;
        }
        /* -l takes no parameter; -k takes the key if given, any key. */
        if (*s == 'l' && !adding) {
            param = NULL;
        } else if (*s == 'k' && !adding) {
            if (next < n) {
                next++;
                param = "*";
            }
        } else if (next < n) {
            param = p[next++];
        } else if (*s == 'b') {
            reply_bans(c, ch);
            continue;
        } else {
            reply(c, "461", "MODE", "Not enough parameters", NULL);
            continue;
        }
        if (param != NULL || *s == 'l') {
            if (with_param == MODES)
                continue; /* past MODES changes with a parameter: ignored */
            with_param++;
        }
        if (*s == 'k' && !adding) {
            key[0] = '\0';
        } else if (*s == 'k' && valid_key(param)) {
            strcpy(key, param);
        } else if (*s == 'k') {
            reply(c, "525", ch->name, "Key is not well-formed", NULL);
        } else if (*s == 'l' && !adding) {
            limit = 0;
        } else if (*s == 'l') {
            char *end;
            errno = 0;
            unsigned long value = strtoul(param, &end, 10);
            if (param[0] >= '0' && param[0] <= '9' && *end == '\0' && errno == 0 && value >= 1 &&
                value <= MAX_LIMIT)
                limit = (int)value;
            else
                reply(c, "696", ch->name, "l", param, "Invalid limit", NULL);
        } else if (*s == 'b') {
            whole_mask(param, mask);
            int changed = strlen(mask) > BANLEN ? -2 : ban(ch, adding, mask, c->u.nick);
            if (changed == -2)
                reply(c, "696", ch->name, "b", param, "Ban mask too long", NULL);
            else if (changed == -1)
                reply(c, "478", ch->name, "b", "Channel list is full", NULL);
            else if (changed == 1) {
                listed[nlisted] = (struct change){ adding, *s, "" };
                snprintf(listed[nlisted++].param, BANLEN + 1, "%s", mask);
            }
        } else { /* o and v: a member's status */
            struct client *u = find_nick(param);
            struct member *m = u != NULL ? member_of(ch, u) : NULL;
            if (u == NULL) {
                reply(c, "401", param, "No such nick/channel", NULL);
                continue;
            }
            if (m == NULL) {
                reply(c, "441", param, ch->name, "They aren't on that channel", NULL);
                continue;
            }
            int *status = *s == 'o' ? &m->operator : &m->voice;
            if (*status != adding) {
                *status = adding;
                listed[nlisted] = (struct change){ adding, *s, "" };
                snprintf(listed[nlisted++].param, BANLEN + 1, "%s", u->u.nick);
            }
        }
    }
    /* What changed, in the order flags, limit, key, then the rest. */
    for (const char *f = "imnst"; *f != '\0'; f++)
        if ((strchr(flags, *f) != NULL) != has_mode(ch, *f))
            all[nall++] = (struct change){ strchr(flags, *f) != NULL, *f, "" };
    if (limit != ch->limit) {
        all[nall] = (struct change){ limit > 0, 'l', "" };
        if (limit > 0)
            snprintf(all[nall].param, BANLEN + 1, "%d", limit);
        nall++;
    }
    if (strcmp(key, ch->key) != 0) {
        all[nall] = (struct change){ key[0] != '\0', 'k', "" };
        snprintf(all[nall++].param, BANLEN + 1, "%s", key[0] != '\0' ? key : "*");
    }
    for (int k = 0; k < nlisted; k++)
        all[nall++] = listed[k];
    strcpy(ch->flags, flags);
    strcpy(ch->key, key);
    ch->limit = limit;
    if (nall == 0)
        return;
    /* +mt-n+l 10: a sign where it changes, then the parameters in order. */
    const char *params[2 + 2 + MODES] = { ch->name, text };
    int nparams = 2, sign = -1;
    size_t len = 0;
    for (int k = 0; k < nall; k++) {
        if (all[k].adding != sign)
            text[len++] = (sign = all[k].adding) ? '+' : '-';
        text[len++] = all[k].letter;
        if (all[k].param[0] != '\0')
            params[nparams++] = all[k].param;
    }
    text[len] = '\0';
    tell_channel(ch, NULL, line, irc_format(line, prefix_of(c, prefix), "MODE", params, nparams, 0));
}

/* 352: <channel> <user> <host> <server> <nick> <flags> :<hops> <realname> */
static void who_row(struct client *c, const struct user *u, const char *channel,
                    const char *status)
{
    char last[IRC_MAX_LINE + 2], flags[4];
    /* H: here, G: gone (AWAY); then @ a channel operator, + voiced. */
    snprintf(flags, sizeof flags, "%c%s", u->away[0] != '\0' ? 'G' : 'H', status);
    snprintf(last, sizeof last, "0 %s", u->realname);
    reply(c, "352", channel, u->name, u->host, server_name, u->nick, flags, last, NULL);
}

/* WHO [mask]: a 352 per user matching (`#chan`: its members, but a secret
 * one's to outsiders; otherwise not the invisible who share no channel with
 * c), then 315. */
static void who(struct client *c, char **p, int n)
{
    const char *mask = n > 0 ? p[0] : "*";
    struct channel *ch = mask[0] == '#' ? find_channel(mask) : NULL;
    if (ch != NULL && !visible_to(ch, c))
        ch = NULL; /* a secret channel's (+s) members only to its members */
    for (int j = 0; ch != NULL && j < ch->nmembers; j++)
        who_row(c, &ch->member[j].c->u, ch->name, status_of(&ch->member[j]));
    if (mask[0] != '#')
        mark_peers(c); /* an invisible user (+i) is listed only to itself and its peers */
    for (int i = 0; mask[0] != '#' && i < nclients; i++) {
        struct user *u = &client[i]->u;
        if (u->registered && (!u->invisible || u->mark || client[i] == c) &&
            (strcmp(mask, "0") == 0 || irc_mask_matches(mask, u->nick) ||
             irc_mask_matches(mask, u->host) || irc_mask_matches(mask, u->realname)))
            who_row(c, u, "*", "");
        u->mark = 0;
    }
    reply(c, "315", mask, "End of WHO list", NULL);
}

/* WHOIS [server] nick: who, from where, on which channels (not the secret
 * ones c is not on), idle how long. */
static void whois(struct client *c, char **p, int n)
{
    char idle[24], signon[24], words[MAX_CHANNELS * (CHANNELLEN + 3) + 1] = "", *w = words;
    struct client *who = n > 0 ? find_nick(p[n - 1]) : NULL;
    if (n == 0 || p[n - 1][0] == '\0') {
        reply(c, "431", "No nickname given", NULL);
        return;
    }
    if (who == NULL || !who->u.registered) {
        reply(c, "401", p[n - 1], "No such nick/channel", NULL);
        reply(c, "318", p[n - 1], "End of /WHOIS list", NULL);
        return;
    }
    const struct user *u = &who->u;
    reply(c, "311", u->nick, u->name, u->host, "*", u->realname, NULL);
    reply(c, "312", u->nick, server_name, "socket-labs chat server, lab 07", NULL);
    if (u->away[0] != '\0')
        reply(c, "301", u->nick, u->away, NULL);
    for (int k = 0; k < u->nchannels; k++) {
        struct member *m = member_of(u->channels[k], who);
        if (visible_to(u->channels[k], c)) /* not a secret channel c is not on */
            w += sprintf(w, " %s%s", status_of(m), u->channels[k]->name);
    }
    reply_list(c, "319", u->nick, NULL, words);
    /* 338 RPL_WHOISACTUALLY: the address and port the user connects from. */
    reply(c, "338", u->nick, who->peer, "is actually using this address and port", NULL);
    snprintf(idle, sizeof idle, "%lld", (now_ms() - u->last_message) / 1000);
    snprintf(signon, sizeof signon, "%lld", (long long)u->signon);
    reply(c, "317", u->nick, idle, signon, "seconds idle, signon time", NULL);
    reply(c, "318", u->nick, "End of /WHOIS list", NULL);
}

/* USERHOST nick [nick...]: one 302 with nick=+user@host for each of the
 * first five nicks in use (- for + when away), none for the others. */
static void userhost(struct client *c, char **p, int n)
{
    char words[MAX_USERHOST * (PREFIXLEN + 2) + 1] = "", *w = words;
    for (int k = 0; k < n && k < MAX_USERHOST; k++) {
        struct client *who = find_nick(p[k]);
        if (who != NULL && who->u.registered)
            w += sprintf(w, "%s%s=%c%s@%s", w == words ? "" : " ", who->u.nick,
                         who->u.away[0] != '\0' ? '-' : '+', who->u.name, who->u.host);
    }
    reply(c, "302", words, NULL);
}

/* AWAY [:text]: with a text, away (306) until an AWAY without one (305). */
static void away(struct client *c, char **p, int n)
{
    snprintf(c->u.away, sizeof c->u.away, "%s", n > 0 ? p[0] : "");
    if (c->u.away[0] != '\0')
        reply(c, "306", "You have been marked as being away", NULL);
    else
        reply(c, "305", "You are no longer marked as being away", NULL);
}

/* WHOWAS nick [count]: who last held nick, most recent first, count of them
 * if it is a positive number (all otherwise): 314 and 312 (until when) for
 * each, 406 if none; always ended by 369 (RFC 2812 §3.6.3). */
static void whowas(struct client *c, char **p, int n)
{
    char until[UTC_LEN], *end;
    long count = n > 1 ? strtol(p[1], &end, 10) : 0;
    int found = 0;
    if (n < 1 || p[0][0] == '\0') {
        reply(c, "431", "No nickname given", NULL);
        return;
    }
    if (n < 2 || p[1][0] == '\0' || *end != '\0' || count <= 0)
        count = WHOWAS_MAX;
    for (int k = 0; k < nhistory && found < count; k++) {
        const struct was *w = &history[(history_next - 1 - k + WHOWAS_MAX) % WHOWAS_MAX];
        if (irc_casecmp(w->nick, p[0]) != 0) /* the same nick whatever its case */
            continue;
        found++;
        reply(c, "314", w->nick, w->name, w->host, "*", w->realname, NULL);
        reply(c, "312", w->nick, server_name, utc_date(w->when, until), NULL);
    }
    if (!found)
        reply(c, "406", p[0], "There was no such nickname", NULL);
    reply(c, "369", p[0], "End of WHOWAS", NULL);
}

/* ---- the server: LUSERS, TIME, MOTD (§3.4), LUSERS and MOTD also in the
 * welcome burst. One server, no operator: no 252 (a positive count of
 * operators, says the Modern IRC document). A <target> server is ignored. */

/* LUSERS: users (the invisible apart: u + i is every user, as RFC 1459's 251
 * and ircd-hybrid count them), unregistered connections, channels; then 265
 * and 266, the users now and the most at once, here and on the network. */
static void lusers(struct client *c, char **p, int n)
{
    char there[80], unknown[16], formed[16], have[64], now[16], max[16], text[80];
    int users = 0, invisible = 0;
    (void)p, (void)n;
    for (int i = 0; i < nclients; i++) {
        users += client[i]->u.registered;
        invisible += client[i]->u.registered && client[i]->u.invisible;
    }
    snprintf(there, sizeof there, "There are %d users and %d invisible on 1 servers",
             users - invisible, invisible);
    snprintf(unknown, sizeof unknown, "%d", nclients - users);
    snprintf(formed, sizeof formed, "%d", nchannels);
    snprintf(have, sizeof have, "I have %d clients and 0 servers", users);
    reply(c, "251", there, NULL);
    if (nclients > users)
        reply(c, "253", unknown, "unknown connection(s)", NULL);
    reply(c, "254", formed, "channels formed", NULL);
    reply(c, "255", have, NULL);
    snprintf(now, sizeof now, "%d", users);
    snprintf(max, sizeof max, "%d", max_users);
    snprintf(text, sizeof text, "Current local users %d, max %d", users, max_users);
    reply(c, "265", now, max, text, NULL);
    snprintf(text, sizeof text, "Current global users %d, max %d", users, max_users);
    reply(c, "266", now, max, text, NULL);
}

/* TIME: 391, the time in seconds since 1970 (for a program) and as a person
 * reads it, in UTC as 003 and the log: the same on every machine. */
static void server_time(struct client *c, char **p, int n)
{
    char unix_time[24], text[UTC_LEN];
    time_t now = time(NULL);
    (void)p, (void)n;
    snprintf(unix_time, sizeof unix_time, "%lld", (long long)now);
    reply(c, "391", server_name, unix_time, utc_date(now, text), NULL);
}

/* MOTD: 375, a 372 per line of the --motd file, 376; 422 without a file. */
static void motd(struct client *c, char **p, int n)
{
    char text[MOTD_LINE + 64];
    (void)p, (void)n;
    if (motd_text == NULL) {
        reply(c, "422", "MOTD File is missing", NULL);
        return;
    }
    snprintf(text, sizeof text, "- %s Message of the day - ", server_name);
    reply(c, "375", text, NULL);
    for (int k = 0; k < motd_lines; k++) {
        snprintf(text, sizeof text, "- %s", motd_text[k]);
        reply(c, "372", text, NULL);
    }
    reply(c, "376", "End of /MOTD command.", NULL);
}

/* Reads the message of the day from path, once, at start-up: its first
 * MOTD_BYTES, at most MOTD_LINES lines without their CR LF or LF, each
 * ending at a NUL (IRC allows none, §2.3.1) and cut at MOTD_LINE bytes, not
 * inside a UTF-8 character. A file that cannot be read: exit 1. */
static void read_motd(const char *path)
{
    static char text[MOTD_BYTES];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die("open", path);
    size_t len = fread(text, 1, sizeof text, f);
    if (ferror(f))
        die("read", path);
    fclose(f);
    if ((motd_text = calloc(MOTD_LINES, sizeof *motd_text)) == NULL)
        die("malloc", path);
    if (len > 0 && text[len - 1] == '\n')
        len--; /* the last line's newline ends it, it starts no other */
    for (char *line = text; len > 0 && motd_lines < MOTD_LINES;) {
        char *nl = memchr(line, '\n', text + len - line);
        size_t n = nl != NULL ? (size_t)(nl - line) : (size_t)(text + len - line);
        char *next = line + n + 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        n = strnlen(line, n);
        if (n > MOTD_LINE) /* a UTF-8 continuation byte (10xxxxxx) starts nothing */
            for (n = MOTD_LINE; n > 0 && (line[n] & 0xC0) == 0x80; n--)
                ;
        memcpy(motd_text[motd_lines++], line, n);
        if (nl == NULL)
            break;
        line = next;
    }
}

/* Each command: the parameters it needs, whether it may come before
 * registration, what does it. PASS and PONG do nothing. */
static const struct command {
    const char *name;
    int needs, anytime;
    void (*run)(struct client *c, char **p, int n);
} commands[] = {
    { "CAP", 1, 1, cap },       { "PASS", 0, 1, NULL },       { "NICK", 0, 1, nick },
    { "USER", 4, 1, user },     { "PING", 1, 1, ping },       { "PONG", 0, 1, NULL },
    { "QUIT", 0, 1, quit },     { "PRIVMSG", 0, 0, privmsg }, { "NOTICE", 0, 0, notice },
    { "JOIN", 1, 0, join },     { "PART", 1, 0, part },       { "NAMES", 0, 0, names },
    { "LIST", 0, 0, list },     { "TOPIC", 1, 0, topic },     { "MODE", 1, 0, mode },
    { "WHO", 0, 0, who },       { "WHOIS", 0, 0, whois },     { "MOTD", 0, 0, motd },
    { "LUSERS", 0, 0, lusers }, { "USERHOST", 1, 0, userhost }, { "AWAY", 0, 0, away },
    { "WHOWAS", 0, 0, whowas }, { "TIME", 0, 0, server_time },
    { "KICK", 2, 0, kick },     { "INVITE", 2, 0, invite },
};

/* Handles one line from c (CR LF or LF included). */
static void command(struct client *c, const char *line, size_t len)
{
    struct irc_message m;
    const struct command *cmd = NULL;
    if (!irc_parse(&m, line, len))
        return; /* an empty line: nothing to do (RFC 2812 §2.3.1) */
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcasecmp(m.command, commands[k].name) == 0)
            cmd = &commands[k];
    if (!c->u.registered && (cmd == NULL || !cmd->anytime))
        reply(c, "451", "You have not registered", NULL);
    else if (cmd == NULL)
        reply(c, "421", m.command, "Unknown command", NULL);
    else if (m.nparams < cmd->needs)
        reply(c, "461", m.command, "Not enough parameters", NULL);
    else if (cmd->run != NULL)
        cmd->run(c, m.params, m.nparams);
}

/* ---- the loop's steps: accept, read, time out, close */

/* A new client, not registered yet, at the end of client[]. */
static void new_client(int connfd, const struct sockaddr_storage *cliaddr, long long now)
{
    struct client *c = calloc(1, sizeof *c);
    if (nclients == maxclients) {
        maxclients = maxclients ? 2 * maxclients : 64;
        client = realloc(client, maxclients * sizeof *client);
        fds = realloc(fds, (maxclients + 1) * sizeof *fds);
    }
    if (c == NULL || client == NULL || fds == NULL)
        die("malloc", "client");
    client[nclients++] = c;
    c->fd = connfd;
    sock_ntop((const struct sockaddr *)cliaddr, c->peer);
    c->ping_at = now + ping_secs * 1000LL;
    c->register_by = now + register_secs * 1000LL;
    c->flood_at = now;
    c->u.last_message = now;
    /* The host: ::ffff:a.b.c.d (IPv4 on a `::` listener) as a.b.c.d; ::1 as
     * 0::1, since ':' would start a trailing parameter. */
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)cliaddr)->sin6_addr;
    char ip[INET6_ADDRSTRLEN];
    if (cliaddr->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)cliaddr)->sin_addr, ip, sizeof ip);
    else if (IN6_IS_ADDR_V4MAPPED(a6))
        inet_ntop(AF_INET, &a6->s6_addr[12], ip, sizeof ip);
    else
        inet_ntop(AF_INET6, a6, ip, sizeof ip);
    snprintf(c->u.host, sizeof c->u.host, "%s%s", ip[0] == ':' ? "0" : "", ip);
    printf("connection from %s\n", c->peer);
}

/* Whether to read c's socket now (POLLIN): once the lines read are run, and
 * while its flood timer is at most 10 s ahead (RFC 1459 §8.10). */
static int reading(const struct client *c, long long now)
{
    return !c->held && c->flood_at <= now + FLOOD_WINDOW;
}

/* One read(2) from c if poll(2) says it is ready, then the commands its
 * whole lines make, as many as flood control allows now. */
static void read_lines(struct client *c, int ready, long long now)
{
    char line[IRC_MAX_LINE];
    size_t len;
    if (ready && !reading(c, now)) {
        /* POLLHUP or POLLERR, which poll(2) reports unasked: a reset while
         * flood control held its lines. Nobody is left to answer. */
        hang_up(c, "Connection closed");
        return;
    }
    if (ready) {
        ssize_t n = read(c->fd, c->in.buf + c->in.len, sizeof c->in.buf - c->in.len);
        if (n == 0) {
            /* End of file. A last line without its newline still counts. */
            if (irc_rest_line(&c->in, line, &len) == IRC_WHOLE)
                command(c, line, len);
            if (!c->gone)
                hang_up(c, "Connection closed");
            return;
        } else if (n > 0) {
            c->in.len += n;
            c->held = 1;
        } else if (errno != EAGAIN && errno != EINTR) { /* ECONNRESET: gone without a word */
            hang_up(c, strerror(errno));
            fprintf(stderr, "read %s: %s\n", c->peer, c->why);
            return;
        }
    }
    /* Every line costs the penalty, registration and PONG too: the burst
     * covers CAP, NICK, USER, CAP END, and a JOIN with irssi's MODE and WHO. */
    while (c->held && !c->gone && c->flood_at <= now + FLOOD_WINDOW) {
        enum irc_piece piece = irc_next_line(&c->in, line, &len);
        if (piece == IRC_NONE) {
            c->held = 0;
            break;
        }
        c->flood_at = MAX(c->flood_at, now) + penalty_secs * 1000LL;
        /* A complete line proves the client alive; bytes without a
         * newline do not, or a slowloris would hold its nick for ever. */
        if (line[len - 1] == '\n') {
            c->ping_at = now + ping_secs * 1000LL;
            c->pinged = 0;
        }
        if (piece == IRC_WHOLE)
            command(c, line, len);
        else if (piece == IRC_LONG) /* 512 bytes of a longer line; IRC_REST, the rest */
            reply(c, "417", "Input line was too long", NULL);
    }
}

/* Drops those not registered in time, PINGs those silent for the ping
 * timeout, drops those still silent as long after. */
static void check_timeouts(long long now)
{
    for (int i = 0; i < nclients; i++) {
        struct client *c = client[i];
        char why[64];
        if (c->gone)
            continue;
        /* Whatever it says (a PONG now and then), a connection has this
         * long to register, or it would hold a nick for ever. */
        if (!c->u.registered && now >= c->register_by) {
            printf("%s registration timeout: not registered after %lu s, dropped\n", c->peer,
                   register_secs);
            close_link(c, "Registration timed out");
        } else if (now >= c->ping_at && !c->pinged) {
            c->ping_at = now + ping_secs * 1000LL;
            c->pinged = 1;
            send_to(c, server_name, "PING", &server_name, 1, 1);
        } else if (now >= c->ping_at) {
            printf("%s ping timeout: silent for %lu s, dropped\n", c->peer, 2 * ping_secs);
            snprintf(why, sizeof why, "Ping timeout: %lu seconds", ping_secs);
            close_link(c, why);
        }
    }
}

/* Closes every client marked gone, after its channels have heard (QUIT):
 * that may drop a slow peer in turn, so go round until none is left. */
static void close_gone(void)
{
    int closed;
    do {
        closed = 0;
        for (int i = nclients - 1; i >= 0; i--) {
            struct client *c = client[i];
            if (!c->gone)
                continue;
            memmove(&client[i], &client[i + 1], (--nclients - i) * sizeof *client);
            disconnected(c);
            printf("%s disconnected\n", c->peer);
            if (close(c->fd) < 0)
                fprintf(stderr, "close %s: %s\n", c->peer, strerror(errno));
            free(c->out);
            free(c);
            closed = 1;
        }
    } while (closed);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "bind", required_argument, NULL, 'b' },
        { "name", required_argument, NULL, 'n' },
        { "ping-timeout", required_argument, NULL, 'p' },
        { "register-timeout", required_argument, NULL, 'r' },
        { "flood-penalty", required_argument, NULL, 'f' },
        { "motd", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *bind_ip = "0.0.0.0", *motd_path = NULL;
    int port = DEFAULT_PORT, c;

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': bind_ip = optarg; break;
        case 'n': server_name = optarg; break;
        case 'p': ping_secs = parse_number(optarg, "SECS", 1, 86400); break;
        case 'r': register_secs = parse_number(optarg, "SECS", 1, 86400); break;
        case 'f': penalty_secs = parse_number(optarg, "SECS", 0, 60); break;
        case 'm': motd_path = optarg; break;
        case 'h': help();
        default: bad_usage(); /* getopt_long(3) said what was wrong */
        }
    }
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    /* The name is the prefix of every reply: one word, as a host name is. */
    const char *letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
    size_t len = strspn(server_name, letters);
    if (len == 0 || len > 63 || server_name[len] != '\0')
        usage_error("invalid NAME '%s': letters, digits, '.' and '-', at most 63", server_name);

    struct sockaddr_storage servaddr, cliaddr;
    socklen_t servlen = parse_addr(bind_ip, port, &servaddr), clilen;
    char addr[ADDR_TEXT], local[ADDR_TEXT];
    sock_ntop((struct sockaddr *)&servaddr, addr);
    if (motd_path != NULL) /* once the arguments are known good */
        read_motd(motd_path);

    /* Each log line as it is printed (setvbuf(3)); EPIPE, not SIGPIPE, from a
     * write(2) to a reset client (signal(7)), as Rust's runtime does. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    /* Every client costs a descriptor: up to the hard limit (getrlimit(2)). */
    unsigned long long limit = raise_nofile_limit();

    /* Non-blocking: accept4(2) returns EAGAIN once the backlog is empty. */
    int listenfd = socket(servaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0), on = 1;
    if (listenfd < 0)
        die("socket", addr);
    if (setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("setsockopt", addr);
    if (bind(listenfd, (struct sockaddr *)&servaddr, servlen) < 0)
        die("bind", addr);
    if (listen(listenfd, SOMAXCONN) < 0)
        die("listen", addr);
    servlen = sizeof servaddr;
    if (getsockname(listenfd, (struct sockaddr *)&servaddr, &servlen) < 0)
        die("getsockname", addr);
    sock_ntop((struct sockaddr *)&servaddr, local);
    /* The reserve descriptor for EMFILE, as in lab 04 (labs.c). */
    int spare = reserve_spare(limit), out_of_descriptors = 0;
    printf("listening on %s\n", local);
    printf("descriptor limit %llu (RLIMIT_NOFILE)\n", limit);

    utc_date(time(NULL), created);

    if ((fds = malloc(sizeof *fds)) == NULL)
        die("malloc", "pollfd");
    for (;;) {
        /* Sleep in poll(2) until something happens or the next deadline (a
         * PING, a drop, the end of a flood hold) is due: its timeout is the
         * server's only clock, rounded up (+1 ms) not to wake just before. */
        long long now = now_ms(), first = LLONG_MAX;
        for (int i = 0; i < nclients; i++) {
            struct client *cl = client[i];
            long long due = cl->u.registered ? cl->ping_at : MIN(cl->ping_at, cl->register_by);
            if (!reading(cl, now))
                due = MIN(due, cl->flood_at - FLOOD_WINDOW);
            first = MIN(first, due);
        }
        int timeout = nclients == 0 ? -1 : (int)MIN(MAX(first - now, 0), INT_MAX - 1) + 1;

        /* [0] is the listener, [i + 1] is client[i], rebuilt each turn (lab 04). */
        fds[0].fd = listenfd;
        fds[0].events = POLLIN;
        for (int i = 0; i < nclients; i++) {
            fds[i + 1].fd = client[i]->fd;
            fds[i + 1].events = (reading(client[i], now) ? POLLIN : 0)
                                | (client[i]->outlen > 0 ? POLLOUT : 0);
        }
        if (poll(fds, nclients + 1, timeout) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", local);
        }
        now = now_ms();

        /* Read: each whole line is a command, as far as flood control
         * allows, which may queue lines for anyone. Nobody is removed
         * before the turn ends. */
        for (int i = 0; i < nclients; i++)
            if (!client[i]->gone)
                read_lines(client[i], fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR), now);

        check_timeouts(now);

        /* Write every queue as far as each socket takes it now, rather than
         * wait for POLLOUT: there is almost always room. */
        for (int i = 0; i < nclients; i++)
            if (client[i]->outlen > 0)
                flush(client[i]);

        /* Close: those who quit, left, failed, timed out or were too slow. */
        close_gone();

        if (fds[0].revents & POLLIN) {
            /* Every connection waiting in the backlog, as in lab 04. */
            for (;;) {
                clilen = sizeof cliaddr;
                int connfd = accept4(listenfd, (struct sockaddr *)&cliaddr, &clilen, SOCK_NONBLOCK);
                if (connfd < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        break;
                    if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                    if (errno != EMFILE && errno != ENFILE)
                        die("accept", local);
                    if (!out_of_descriptors) {
                        fprintf(stderr, "accept %s: %s; closing new connections until one frees\n",
                                local, strerror(errno));
                        out_of_descriptors = 1;
                    }
                    if (refuse_one(listenfd, &spare, local))
                        continue;
                    break; /* nobody was waiting */
                }
                out_of_descriptors = 0;
                new_client(connfd, &cliaddr, now);
            }
        }
    }
}
