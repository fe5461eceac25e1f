# socket-labs: `make` builds every lab and leaves its programs in its folder.
#
# A lab folder labs/NN-NAME gets ./server and ./client from the Cargo
# binaries NAME-server and NAME-client, and ./server-c and ./client-c from
# its C twins server.c and client.c. A lab without a client of its own gets
# lab 01's echo client. Lab 06 also gets ./link (udp-link) and ./link-c
# (link.c), its lossy link.

# A hand-out (make handout) has a handout.mk that says so (HANDOUT_LANG)
# and how its starters build; the course has none.
-include handout.mk

CARGO  ?= cargo
CC     ?= cc
CFLAGS ?= -Wall -Wextra -Werror -O2

LABS   := $(sort $(wildcard labs/[0-9][0-9]-*))
C_SRCS := $(wildcard labs/*/server.c labs/*/client.c labs/*/link.c)
# The starters (labs/NN-name/starter/, the reference changed by a patch, tools/starter):
# built too, so that CI proves they compile; their gaps leave variables unused.
# A lab in steps has a starter per step (labs/07-chat/starter/step1/...).
STARTER_C_BINS := $(patsubst %.c,%-c,$(wildcard labs/*/starter/*.c labs/*/starter/step*/*.c))
C_BINS := $(C_SRCS:.c=-c)
# A lab with a C server but no client of its own gets lab 01's client-c.
C_CLIENTS := $(filter-out $(C_BINS),$(patsubst %/server.c,%/client-c,$(wildcard labs/*/server.c)))

.PHONY: all rust c trace test fmt-check clippy cargo-test clean help bench bench-smoke udp-loss-demo check check-proof starters exercise exercises handout

all: rust c exercises ## build everything (release) and copy the programs into the lab folders
	@echo "built: $(foreach l,$(LABS),$(wildcard $(l)/server $(l)/client $(l)/link $(l)/server-c $(l)/client-c $(l)/link-c))"
	@echo "next: cd labs/01-echo && ./server   (and ./client in another terminal)"

rust:
	$(CARGO) build --release --bins
	@for lab in $(LABS); do \
	  name=$${lab#labs/[0-9][0-9]-}; \
	  for prog in server client link; do \
	    bin=target/release/$$name-$$prog; \
	    [ -f "$$bin" ] || [ $$prog != client ] || bin=target/release/echo-client; \
	    if [ -f "$$bin" ]; then cp -f "$$bin" "$$lab/$$prog"; fi; \
	  done; \
	done

c: $(C_BINS) $(C_CLIENTS) $(STARTER_C_BINS) ## build the C twins (server-c, client-c), warnings as errors

# Every C program is built with labs/common/labs.c, the helpers that are not
# the lesson (as UNP's programs are with its library and unp.h).
COMMON := labs/common/labs.c
labs/%-c: labs/%.c $(COMMON) labs/common/labs.h
	$(CC) $(CFLAGS) -Ilabs/common -o $@ $< $(COMMON) $(LIBS)

# The chat programs also share the IRC message format (labs/common/irc.c).
CHAT_C := labs/07-chat/server-c labs/07-chat/client-c labs/08-transfer/client-c \
	$(patsubst %.c,%-c,$(wildcard labs/07-chat/starter/step*/server.c))
$(CHAT_C): LIBS += labs/common/irc.c
$(CHAT_C): labs/common/irc.c labs/common/irc.h
# And the chat clients, the conversation (labs/common/chat.c).
CHAT_CLIENTS := labs/07-chat/client-c labs/08-transfer/client-c
$(CHAT_CLIENTS): LIBS += labs/common/chat.c
$(CHAT_CLIENTS): labs/common/chat.c labs/common/chat.h
# Lab 08's client also has the DCC format and the received file (labs/common/dcc.c).
labs/08-transfer/client-c: LIBS += labs/common/dcc.c
labs/08-transfer/client-c: labs/common/dcc.c labs/common/dcc.h

$(STARTER_C_BINS): CFLAGS += -Wno-unused-variable -Wno-unused-but-set-variable -Wno-unused-parameter -Wno-unused-function

$(C_CLIENTS): labs/01-echo/client-c
	cp -f $< $@

# tools/trace runs a short session against both servers under strace and
# compares their calls; tests/syscall_parity.rs runs it in `make test`.
trace: all ## a lab's Rust and C system calls compared: make trace LAB=01-echo (no LAB: all)
	bash tools/trace $(LAB)

ifndef HANDOUT_LANG
test: fmt-check clippy c cargo-test check-proof bench-smoke ## every check CI runs
else
# In a hand-out the course's suite would run the starters as the answers.
test:
	@echo "make test is the course's own suite: it runs the course's programs, starters in this hand-out." >&2
	@echo "Grade your programs with make check LAB=NN-name (HANDOUT.md)." >&2
	@exit 1
endif

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

cargo-test:
	$(CARGO) test

# A student's exercise (exercise/NN-name/, which git ignores): the starter
# of a lab, to complete. LANG only from the command line: the shell's LANG
# is the locale.
EXERCISE_LANG := $(if $(filter command line,$(origin LANG)),$(LANG),rust)
# STEP=N for a lab in steps (lab 07): step 1 goes to exercise/NN-name/, a
# later step to exercise/NN-name-stepN/ (tools/exercise).
exercise: ## start a lab's exercise from its starter: make exercise LAB=01-echo [LANG=rust|c] [STEP=N]
	@bash tools/exercise "$(LAB)" "$(EXERCISE_LANG)" "$(STEP)"

exercises:
	@bash tools/build-exercises

# The starters, written again from each reference and its patch (a change
# to a reference is carried into its starter; tests/starters.rs checks that
# the committed ones are up to date). After editing a starter by hand:
# tools/starter save labs/NN-name/starter/FILE.
starters: ## write each lab's starter/ again from its reference and patch
	@bash tools/starter write

# A lab's checks (its tests) against a student's programs: a checklist with
# hints. SERVER and CLIENT default to the exercise's (exercise/NN-name/).
# FORMAT=tap or FORMAT=junit: the results for a course's CI, on stdout.
# STEP=N: only the checks of that step, on exercise/NN-name-stepN/ (N > 1).
check: ## grade programs with a lab's checks: make check LAB=01-echo SERVER=path [CLIENT=path] [ONLY=part] [FORMAT=tap|junit] [STEP=N]
	@bash tools/check "$(LAB)" "$(SERVER)" "$(CLIENT)" "$(ONLY)" "$(or $(FORMAT),human)" "$(STEP)"

# Proof that make check grades and can fail: in each lab with seeded bugs
# (labs/NN-name/seeded-bugs), the C twins pass every check, and each seeded
# bug fails the check that names it.
check-proof: c
	@bash tools/check-proof

# The course without the answer keys of LANG, for students: a new git
# repository in DEST (tools/handout). LANG only from the command line.
HANDOUT_TO := $(if $(filter command line,$(origin LANG)),$(LANG))
# ANSWERS=keep keeps the sheets' answers (left out by default).
handout: ## the course for students, LANG's answers left out, as a new git repository: make handout LANG=rust|c DEST=dir [ANSWERS=keep]
	@bash tools/handout "$(HANDOUT_TO)" "$(DEST)" "$(ANSWERS)"

# `make bench QUICK=1`: the counts, then fewer points, one run each, about a
# minute; poll and epoll beside 10,000 idle connections included
# (bench/README.md). The counts need valgrind and strace.
bench: all ## every server design, Rust against C: instructions and syscalls per round trip, then under load; writes bench/results/ (QUICK=1: ~1 min)
	$(CARGO) run --release -q -p socket-labs-bench --bin bench-suite -- $(if $(filter-out 0 no,$(QUICK)),--quick)

# The load generator's own tests, and a second of it against lab 04's server.
bench-smoke: ## the load generator checked, and against lab 04 for a second
	$(CARGO) build -q --bin poll-server
	$(CARGO) test -p socket-labs-bench

clean: ## remove build output and the programs copied into the lab folders
	$(CARGO) clean
	rm -f $(foreach l,$(LABS),$(l)/server $(l)/client $(l)/link $(l)/server-c $(l)/client-c $(l)/link-c) $(STARTER_C_BINS)

udp-loss-demo: rust ## lab 06: UDP loss, delay, duplicates and retransmission across a lossy link (the lab's link; tc netem as root)
	@sh labs/06-udp/loss-demo.sh

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) $(if $(HANDOUT_LANG),| grep -Ev '^(starters|handout|test):') | sed 's/:.*## /\t/' | expand -t 15
