# tools/trace-layout.awk: lays out the comparison of two normalised call
# lists (tools/trace) so that it fits the terminal, with no call cut short.
#
# Input: GNU diff's merged listing of the two lists, one line per call, its
# first character saying where it is: " " both, "<" only the first (Rust),
# ">" only the second (C). A run of "<" then ">" lines between two common
# lines is where the two differ.
#
# Input variables: width = the columns to fill; sides = 1 for the two lists
# side by side (diff -y's layout: the Rust call, a mark, the C call; the
# mark "|" when the two differ, "<" a call only Rust makes, ">" one only C
# makes), 0 for one column (a common call once, after two spaces; a call
# only Rust makes after "< ", one only C makes after "> ", so a call that
# differs shows as its "<" line then its ">" line).
# A call longer than its column goes on over the next lines, indented.
# Plain POSIX awk (Debian's mawk does): no gawk extensions.

BEGIN {
    if (width < 40) width = 40
    # The last column stays empty: a line that fills it leaves the cursor
    # there, and some terminals then add an empty line.
    width--
    # Side by side: two columns and a gutter of three (" | ").
    column = sides ? int((width - 3) / 2) : width - 2
    nrust = 0
    nc = 0
}

{
    mark = substr($0, 1, 1)
    line = substr($0, 2)
    if (mark == "<") rust[++nrust] = line
    else if (mark == ">") c[++nc] = line
    else {
        flush()
        both(line)
    }
}

END { flush() }

# A call both make.
function both(line,    n, i, left, right) {
    if (!sides) {
        n = fold(line, column, left)
        for (i = 1; i <= n; i++) print "  " left[i]
        return
    }
    n = fold(line, column, left)
    fold(line, column, right)
    for (i = 1; i <= n; i++) row(left[i], " ", right[i])
}

# The calls only one side makes, since the last common call: side by side,
# paired in order ("|"), the rest alone ("<" or ">").
function flush(    i, j, n, m, k, left, right) {
    if (!sides) {
        for (i = 1; i <= nrust; i++) alone("<", rust[i])
        for (i = 1; i <= nc; i++) alone(">", c[i])
    } else {
        for (i = 1; i <= nrust || i <= nc; i++) {
            n = i <= nrust ? fold(rust[i], column, left) : 0
            m = i <= nc ? fold(c[i], column, right) : 0
            for (j = 1; j <= n || j <= m; j++) {
                k = (i <= nrust && i <= nc) ? "|" : (i <= nrust ? "<" : ">")
                row(j <= n ? left[j] : "", j == 1 ? k : " ", j <= m ? right[j] : "")
            }
        }
    }
    nrust = 0
    nc = 0
}

# One column: a call one side makes, after its mark.
function alone(mark, line,    n, i, piece) {
    n = fold(line, column, piece)
    for (i = 1; i <= n; i++) print (i == 1 ? mark : " ") " " piece[i]
}

# Side by side: one row, no spaces at the end.
function row(left, mark, right,    out) {
    out = sprintf("%-" column "s %s %s", left, mark, right)
    sub(/ +$/, "", out)
    print out
}

# fold(LINE, W, PIECES): cuts LINE into pieces of at most W columns, after
# a ", " or a space where it can (past the first third of the column), the
# pieces after the first indented by four spaces; returns how many.
function fold(line, w, pieces,    n, cut, i, room) {
    n = 0
    room = w
    while (length(line) > room) {
        cut = 0
        for (i = room; i > int(room / 3); i--) {
            if (substr(line, i, 1) == " ") { cut = i; break }
        }
        if (cut == 0) cut = room
        n++
        pieces[n] = (n > 1 ? "    " : "") substr(line, 1, cut)
        sub(/ +$/, "", pieces[n])
        line = substr(line, cut + 1)
        room = w - 4
    }
    n++
    pieces[n] = (n > 1 ? "    " : "") line
    return n
}
