# tools/starter.awk: cuts a lab's reference program into its starter, the
# file a student completes (`make starters` writes them; tests/starters.rs
# checks that each committed starter is what this cut gives, so that a
# change to a lab cannot leave its starter behind).
#
# In the reference, each gap is marked around the code a student writes:
#
#     // starter: TODO accept(2): take the next connection waiting in the backlog
#     // starter| let (conn, peer): (OwnedFd, SockaddrStorage) = socket_labs::todo("accept(2)");
#     ...the reference code...
#     // starter: end
#
# (in C: /* starter: TODO ... */, /* starter| ... */, /* starter: end */).
# The starter keeps the TODO line as a comment, puts the `starter|` lines in
# as code (a placeholder that compiles and says what is missing when run),
# and leaves the reference code out. Everything else is copied as it is.
#
# Variables: lab = the lab's folder name (01-echo), lang = rust or c,
# answer = the reference file's name (server.rs).

function indent(line) { match(line, /^[ \t]*/); return substr(line, 1, RLENGTH) }
function body(line) {
    sub(/^[ \t]*(\/\/|\/\*) starter[:|] ?/, "", line)
    sub(/ \*\/$/, "", line)
    return line
}

BEGIN { gap = 0; header_done = 0 }

# The note that says what this file is, after the reference's own header.
!header_done && lang == "rust" && $0 !~ /^\/\/!/ {
    print "//!"
    print "//! The starter: write each TODO (the lesson's calls), then `make` and"
    print "//! `make check LAB=" lab "`. The answer is the lab's " answer "."
    print "// While gaps remain, their placeholders make code unused or unreachable."
    print "#![allow("
    print "    unused,"
    print "    unreachable_code,"
    print "    clippy::diverging_sub_expression,"
    print "    clippy::never_loop"
    print ")]"
    header_done = 1
}
!header_done && lang == "c" && /\*\/$/ {
    print
    print "/* The starter: write each TODO (the lesson's calls), then `make` and"
    print " * `make check LAB=" lab "`. The answer is the lab's " answer ". */"
    header_done = 1
    next
}

/^[ \t]*(\/\/|\/\*) starter: TODO / {
    if (lang == "rust") print indent($0) "// " body($0)
    else print indent($0) "/* " body($0) " */"
    gap = 1
    next
}
gap && /^[ \t]*(\/\/|\/\*) starter\| / { print indent($0) body($0); next }
/^[ \t]*(\/\/|\/\*) starter: end/ { gap = 0; next }
gap { next }
{ print }
