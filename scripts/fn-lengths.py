#!/usr/bin/env python3
"""Lists the functions in crates/*/src whose body is longer than a limit (default 120 lines).

Usage: scripts/fn-lengths.py [LIMIT] [--all]
Exit status 1 when any function is over the limit. A function's length is counted from the line of
its `fn` keyword to the line of its closing brace. Strings, chars and comments are skipped when
matching braces, so braces inside them do not count.
"""
import pathlib
import re
import sys

FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def strip(src: str) -> str:
    """Blanks out comments, strings and char literals, keeping newlines, so braces can be matched."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path: pathlib.Path):
    text = strip(path.read_text())
    for m in FN.finditer(text):
        start = m.start()
        # the body opens at the first '{' after the signature, unless a ';' comes first (a declaration)
        j = start
        while j < len(text) and text[j] not in "{;":
            j += 1
        if j >= len(text) or text[j] == ";":
            continue
        depth, k = 0, j
        while k < len(text):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        first = text.count("\n", 0, start) + 1
        last = text.count("\n", 0, k) + 1
        yield m.group(1), first, last - first + 1


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    limit = int(args[0]) if args else 120
    show_all = "--all" in sys.argv
    root = pathlib.Path(__file__).resolve().parent.parent
    rows = []
    for path in sorted(root.glob("crates/*/src/**/*.rs")):
        for name, line, length in functions(path):
            if show_all or length > limit:
                rows.append((length, f"{path.relative_to(root)}:{line}", name))
    for length, place, name in sorted(rows, reverse=True):
        print(f"{length:5}  {place}  {name}")
    over = [r for r in rows if r[0] > limit]
    print(f"{len(over)} function(s) over {limit} lines", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
