/*
 * chat.h: the chat client's conversation, without its sockets, shared by the
 * C clients of labs 07 and 08 (the twin of src/chat.rs): a typed line
 * becomes an IRC command (`/msg bob hi` -> `PRIVMSG bob :hi`), a line from
 * the server is shown as a person would read it (`*alice* hi`), and PING is
 * answered.
 *
 * The lesson, the poll(2) loop on stdin and the socket, stays in each
 * client.c. Nothing here reads or writes a descriptor: lines for the server
 * wait in chat_out, which the loop writes when poll(2) says the socket
 * takes them. Built with irc.c and labs.c:
 *
 *     cc -Wall -Wextra -O2 -I../common -o client-c client.c ../common/chat.c \
 *         ../common/irc.c ../common/labs.c
 */
#ifndef CHAT_H
#define CHAT_H

#include "irc.h"

/* Stdin is read only while less than this waits to go to the server. */
#define CHAT_MAX_QUEUED (64 * 1024)
/* The queue: CHAT_MAX_QUEUED, and what one turn may add on top of it (one
 * read of stdin: at most 256 lines; one read of the socket: a few PONGs).
 * A line that would not fit is dropped. */
#define CHAT_QUEUE_SIZE (CHAT_MAX_QUEUED + 256 * IRC_MAX_LINE + 4 * IRC_MAX_LINE)

/* What waits to go to the server: chat_outlen bytes. */
extern char chat_out[CHAT_QUEUE_SIZE];
extern size_t chat_outlen;

/* What a lab adds to the chat (lab 08: file transfers): lines for /help,
 * commands of its own, and a first look at each message from the server.
 * Any of them may be NULL. */
struct chat_extension {
    const char *help; /* "\n  /send NICK PATH ..." lines, laid out as the chat's own */
    /* A typed /name args that the chat does not know: 1 if the lab knows it. */
    int (*command)(const char *name, const char *args);
    /* A message from the server, before the chat shows it (from: the nick
     * of its sender): 1 if the lab took it, and the chat shows nothing. */
    int (*message)(const struct irc_message *m, const char *from);
};

/* Starts the conversation, not registered yet. raw: also show each IRC
 * line sent (>>) and received (<<). ext may be NULL. */
void chat_start(int raw, const struct chat_extension *ext);
/* Sends NICK, and USER the first time: registration (RFC 2812 §3.1). */
void chat_register(const char *nick);
/* A piece of typed input (irc_next_line's): whole lines are used, a line
 * too long for one message is refused once and the rest of it skipped. */
void chat_typed(enum irc_piece piece, const char *line, size_t len);
/* A line from the server, shown as a person would read it. */
void chat_receive(const char *line, size_t len);
/* Queues one IRC message for the server. */
void chat_queue(const char *command, const char **params, int n);
/* Whether /quit was sent: the server's close is then the goodbye. */
int chat_quitting(void);
/* Our nickname, `?` before we have one. */
const char *chat_me(void);

/* A line for the person on stdout, printf-style, flushed as it is printed;
 * a status line on the terminal is erased first. */
void chat_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* text as the terminal's status line (lab 08's progress), drawn over the
 * previous one; only for a terminal (isatty(3)). */
void chat_status(const char *text);
/* Erases the status line, if one is shown (before writing to stderr). */
void chat_status_erase(void);

#endif
