/*
 * Lab 02: the echo server that forks one process per client, in C (the twin
 * of server.rs).
 *
 * socket -> setsockopt(SO_REUSEADDR) -> bind -> listen -> loop { accept ->
 * fork: the child closes the listening socket, serves its client and exits;
 * the parent closes the connected socket and accepts again }. Children that
 * exit are reaped with waitpid(2) when SIGCHLD interrupts accept(2).
 *
 * Build: make (or: cc -Wall -Wextra -O2 -o server-c server.c)
 * Run:   ./server-c [PORT] [--bind ADDR] [--no-reap]
 *
 * Same arguments, messages and system calls as ./server (server.rs):
 * `make trace LAB=02-fork` shows the two side by side.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SYNOPSIS "usage: server [PORT] [--bind ADDR] [--no-reap]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 02: echo server with one process per client (fork). Every client is\n"
    "served by a child process of its own, so clients no longer wait for each other.\n"
    "\n"
    "  PORT         port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --no-reap    never call waitpid(2): children that exit stay zombies (Z in ps)\n"
    "  --help       print this help\n";

#define DEFAULT_PORT 4242
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* Set by the SIGCHLD handler: some child has exited and waits to be reaped. */
static volatile sig_atomic_t child_exited;
/* Set by the SIGINT/SIGTERM handler: stop accepting and exit. */
static volatile sig_atomic_t stop;

/* A handler may only do async-signal-safe work (signal-safety(7)): setting
 * a sig_atomic_t is; printing and waitpid bookkeeping happen in the main
 * loop. These handlers call nothing, so errno needs no saving here. */
static void on_sigchld(int sig)
{
    (void)sig;
    child_exited = 1;
}

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
}

static void serve(int conn, const struct sockaddr_storage *peer, const char *peer_str);
static unsigned long reap_children(void);
static void handle(int sig, void (*handler)(int));
static const char *signal_name(int sig);
static _Noreturn void die(const char *call, const char *what);
static int writen(int fd, const char *buf, size_t len);
static const char *addr_text(const struct sockaddr_storage *ss, char *out);
static void read_args(int argc, char **argv);
static const char *take_value(const char *name, const char *what);
static int take_flag(const char *name);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static socklen_t parse_ip(const char *text, struct sockaddr_storage *ss);
static void set_port(struct sockaddr_storage *ss, unsigned long port);

int main(int argc, char **argv)
{
    /* stdout is a pipe when a test or a script reads our log: flush each
     * line as it is printed (setvbuf(3)). Line buffering matters twice here:
     * a fork(2) with unflushed lines in the buffer would print them twice,
     * once from each process. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Each option is checked as it is taken, in this order, as server.rs
     * does: the same mistakes get the same message. */
    read_args(argc, argv);
    const char *bind_text = take_value("--bind", "ADDR");
    struct sockaddr_storage addr;
    socklen_t addrlen = parse_ip(bind_text ? bind_text : "0.0.0.0", &addr);
    int no_reap = take_flag("--no-reap");
    set_port(&addr, take_port());
    finish_args();

    char addr_str[ADDR_TEXT];
    addr_text(&addr, addr_str);

    /* A write(2) to a reset connection raises SIGPIPE, which would kill a
     * child mid-echo without a word (signal(7)). Ignored, write(2) fails
     * with EPIPE instead; Rust's runtime does this before main. */
    signal(SIGPIPE, SIG_IGN);

    /* No SA_RESTART: we want accept(2) to fail with EINTR when a child
     * exits or we are asked to stop, so the loop below can react at once. */
    handle(SIGCHLD, on_sigchld);
    handle(SIGINT, on_stop);
    handle(SIGTERM, on_stop);

    /* Protocol 0: the default for a stream socket, TCP (socket(2)). */
    int listener = socket(addr.ss_family, SOCK_STREAM, 0);
    if (listener < 0)
        die("socket", addr_str);
    /* Children may still hold connections on this port when we restart (socket(7)). */
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt", addr_str);
    if (bind(listener, (struct sockaddr *)&addr, addrlen) < 0)
        die("bind", addr_str);
    if (listen(listener, SOMAXCONN) < 0)
        die("listen", addr_str);
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(listener, (struct sockaddr *)&local, &len) < 0)
        die("getsockname", addr_str);
    char local_str[ADDR_TEXT];
    printf("listening on %s\n", addr_text(&local, local_str));

    unsigned long children = 0;
    for (;;) {
        /* Check again after reaping: a child may exit while we reap others.
         * The flag is cleared before reaping, so such a child sets it anew. */
        while (!no_reap && child_exited) {
            child_exited = 0;
            unsigned long reaped = reap_children();
            children = reaped > children ? 0 : children - reaped;
        }
        if (stop)
            break;
        int conn = accept(listener, NULL, NULL);
        if (conn < 0) {
            /* EINTR: a signal (SIGCHLD, SIGTERM) interrupted the wait: go
             * round the loop to handle it. ECONNABORTED: the client gave up
             * while it waited in the backlog (accept(2)). */
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            die("accept", local_str);
        }
        struct sockaddr_storage peer;
        len = sizeof peer;
        if (getpeername(conn, (struct sockaddr *)&peer, &len) < 0) {
            fprintf(stderr, "getpeername %s: %s\n", local_str, strerror(errno));
            close(conn);
            continue;
        }
        char peer_str[ADDR_TEXT];
        printf("connection from %s\n", addr_text(&peer, peer_str));

        pid_t pid = fork();
        if (pid == 0) {
            /* The child only serves conn. If it kept the listening socket,
             * the port would stay open as long as any child lives. */
            if (close(listener) < 0)
                fprintf(stderr, "close %s: %s\n", local_str, strerror(errno));
            /* The child serves its client to the end: Ctrl-C in the terminal
             * (SIGINT to the whole process group) is meant for the parent;
             * `kill PID` (SIGTERM) still ends one child. The handlers copied
             * from the parent would only set flags nobody reads here. */
            handle(SIGINT, SIG_IGN);
            handle(SIGTERM, SIG_DFL);
            handle(SIGCHLD, SIG_DFL);
            serve(conn, &peer, peer_str);
            exit(0);
        } else if (pid > 0) {
            children++;
            /* The child has its own copy of the descriptor. Without this
             * close(2), the connection would never end: the client's FIN
             * would leave a socket that we, the parent, still hold. */
            if (close(conn) < 0)
                fprintf(stderr, "close %s: %s\n", peer_str, strerror(errno));
        } else {
            /* EAGAIN or ENOMEM: too many processes. Drop this client and
             * keep serving the others. */
            fprintf(stderr, "fork %s: %s\n", peer_str, strerror(errno));
            close(conn);
        }
    }
    /* Children still serving are not killed: they finish with their client;
     * once we exit, init(1) becomes their parent and reaps them. */
    printf("shutting down; %lu children still serving\n", children);
    close(listener);
    return 0;
}

/* The child's whole life: echo until the client closes, as in lab 01. */
static void serve(int conn, const struct sockaddr_storage *peer, const char *peer_str)
{
    int pid = (int)getpid();
    /* comm is what ps and htop (F2 -> "Show custom thread names") display;
     * at most 15 bytes (prctl(2), PR_SET_NAME). Only cosmetic: if it fails,
     * serving goes on. */
    unsigned port = ntohs(peer->ss_family == AF_INET6
                              ? ((const struct sockaddr_in6 *)peer)->sin6_port
                              : ((const struct sockaddr_in *)peer)->sin_port);
    char name[16];
    snprintf(name, sizeof name, "server:%u", port);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    printf("[pid %d] serving %s\n", pid, peer_str);

    char buf[16 * 1024];
    for (;;) {
        ssize_t n = read(conn, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "[pid %d] read %s: %s\n", pid, peer_str, strerror(errno));
            break;
        }
        /* A client that never reads blocks only this child's write(2):
         * every other client has its own process. */
        if (writen(conn, buf, (size_t)n) < 0) {
            fprintf(stderr, "[pid %d] write %s: %s\n", pid, peer_str, strerror(errno));
            break;
        }
    }
    printf("[pid %d] %s disconnected\n", pid, peer_str);
    close(conn);
}

/* Collects every child that has exited; returns how many. */
static unsigned long reap_children(void)
{
    unsigned long reaped = 0;
    /* Signals do not queue: one SIGCHLD may stand for several exited
     * children, so call waitpid(2) until none is left (WNOHANG: never block). */
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            if (WIFEXITED(status)) {
                printf("child %d exited (status %d)\n", (int)pid, WEXITSTATUS(status));
                reaped++;
            } else if (WIFSIGNALED(status)) {
                printf("child %d killed by %s\n", (int)pid, signal_name(WTERMSIG(status)));
                reaped++;
            } /* else stopped or continued: still a child of ours */
        } else if (pid == 0 || errno == ECHILD) {
            return reaped; /* 0: children left, none finished; ECHILD: none left */
        } else if (errno != EINTR) {
            fprintf(stderr, "waitpid: %s\n", strerror(errno));
            return reaped;
        }
    }
}

/* Installs handler for sig with sigaction(2): no flags (so no SA_RESTART),
 * no extra signals blocked while it runs. */
static void handle(int sig, void (*handler)(int))
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    if (sigaction(sig, &action, NULL) < 0)
        die("sigaction", signal_name(sig));
}

/* SIGKILL for 9: the name as the Rust server prints it. */
static const char *signal_name(int sig)
{
    static const char *const names[] = {
        "0",         "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",    "SIGTRAP", "SIGABRT",
        "SIGBUS",    "SIGFPE",  "SIGKILL",   "SIGUSR1", "SIGSEGV",   "SIGUSR2", "SIGPIPE",
        "SIGALRM",   "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT",   "SIGSTOP", "SIGTSTP",
        "SIGTTIN",   "SIGTTOU", "SIGURG",    "SIGXCPU", "SIGXFSZ",   "SIGVTALRM",
        "SIGPROF",   "SIGWINCH", "SIGIO",    "SIGPWR",  "SIGSYS",
    };
    static char other[16];
    if (sig > 0 && sig < (int)(sizeof names / sizeof names[0]))
        return names[sig];
    snprintf(other, sizeof other, "signal %d", sig);
    return other;
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
static void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
    exit(1);
}

/* Writes all of buf (Stevens' writen). write(2) may write less than asked
 * (a partial write) or be interrupted by a signal before writing anything
 * (EINTR): both mean "again with the rest". Returns -1 with errno set on
 * any other error: EPIPE or ECONNRESET when the peer is gone. */
static int writen(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) { /* write(2) never does this for a non-empty buffer */
            errno = EIO;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ADDR as every lab prints it: 127.0.0.1:4242, [::1]:4242 (inet_ntop(3)). */
static const char *addr_text(const struct sockaddr_storage *ss, char *out)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        if (in6->sin6_scope_id != 0)
            snprintf(out, ADDR_TEXT, "[%s%%%u]:%u", ip, (unsigned)in6->sin6_scope_id,
                     ntohs(in6->sin6_port));
        else
            snprintf(out, ADDR_TEXT, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, ADDR_TEXT, "%s:%u", ip, ntohs(in->sin_port));
    }
    return out;
}

/*
 * The command line, read as every lab reads it (src/cli.rs): --help anywhere
 * prints the usage; options are taken out first, wherever they stand; then
 * the positional arguments in order; anything left over is an error. A bad
 * argument prints what is wrong and the synopsis on stderr, and exits 2.
 */
static char **args; /* the arguments not taken yet */
static int nargs;

static void read_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
    }
    args = argv + 1;
    nargs = argc - 1;
}

static void take(int i)
{
    memmove(&args[i], &args[i + 1], (size_t)(nargs - i - 1) * sizeof *args);
    nargs--;
}

/* `--name VALUE` or `--name=VALUE`: the value, or NULL when absent. */
static const char *take_value(const char *name, const char *what)
{
    size_t len = strlen(name);
    for (int i = 0; i < nargs; i++) {
        const char *arg = args[i];
        if (strncmp(arg, name, len) == 0 && arg[len] == '=') {
            take(i);
            return arg + len + 1;
        }
        if (strcmp(arg, name) == 0) {
            take(i);
            if (i == nargs)
                usage_error("%s needs a value (%s)", name, what);
            const char *value = args[i];
            take(i);
            return value;
        }
    }
    return NULL;
}

/* `--name`, as often as it is given: whether it was there. */
static int take_flag(const char *name)
{
    int found = 0;
    for (int i = 0; i < nargs;) {
        if (strcmp(args[i], name) == 0) {
            take(i);
            found = 1;
        } else {
            i++;
        }
    }
    return found;
}

/* A port as Rust's str::parse::<u16> reads one: an optional '+', then
 * decimal digits only, at most 65535. */
static unsigned long take_port(void)
{
    if (nargs == 0)
        return DEFAULT_PORT;
    const char *text = args[0];
    if (strlen(text) > 1 && text[0] == '-')
        usage_error("unknown option '%s'", text);
    take(0);
    const char *p = text;
    if (p[0] == '+' && p[1] != '\0')
        p++;
    unsigned long port = 0;
    int ok = *p != '\0';
    for (; ok && *p != '\0'; p++) {
        ok = *p >= '0' && *p <= '9';
        if (ok) {
            port = port * 10 + (unsigned long)(*p - '0');
            ok = port <= 65535;
        }
    }
    if (!ok)
        usage_error("invalid PORT '%s': a port is a number from 0 to 65535", text);
    return port;
}

static void finish_args(void)
{
    if (nargs == 0)
        return;
    if (strlen(args[0]) > 1 && args[0][0] == '-')
        usage_error("unknown option '%s'", args[0]);
    usage_error("unexpected argument '%s'", args[0]);
}

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n" SYNOPSIS "\n(--help for details)\n", stderr);
    exit(2);
}

/* An IPv4 or IPv6 literal into a socket address, its port still 0
 * (inet_pton(3)); returns the address's length, or exits 2 if TEXT is no
 * address. */
static socklen_t parse_ip(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return sizeof *in;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return sizeof *in6;
    }
    usage_error("invalid ADDR '%s': invalid IP address syntax", text);
}

/* The port, in network byte order (htons(3)), where the family keeps it. */
static void set_port(struct sockaddr_storage *ss, unsigned long port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}
