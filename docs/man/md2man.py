#!/usr/bin/env python3
"""Turn one of the tree's Markdown documents into a man page.

usage: md2man.py IN.md OUT NAME SECTION DATE VERSION [TITLE]

recipes/SCHEMA.md and audit/FORMAT.md are the reference for the recipe and
the audit journal; their man pages are made from them at build time, so the
two never drift.  Only the Markdown those files use is understood: headings,
paragraphs, "-" lists (nested by indentation), fenced code blocks, pipe
tables, `code`, **bold**, *emphasis* and [links](target).  Anything else is
an error naming the line, so a new construct in a document fails the build
instead of rendering as garbage.
"""
import re
import sys


def fail(path, lineno, msg):
    sys.exit(f"{path}:{lineno}: {msg}")


def roff_text(s):
    """Plain text to roff: backslashes, and characters roff would read as
    requests or special characters at the start of a line."""
    s = s.replace("\\", "\\e")
    s = s.replace("-", "\\-")
    return s


def inline(s):
    """Markdown inline markup to roff font changes."""
    out = []
    i = 0
    while i < len(s):
        if s[i] == "`":
            j = s.find("`", i + 1)
            if j < 0:
                raise ValueError("unclosed ` in: " + s)
            out.append("\\fB" + roff_text(s[i + 1:j]) + "\\fR")
            i = j + 1
        elif s.startswith("**", i):
            j = s.find("**", i + 2)
            if j < 0:
                raise ValueError("unclosed ** in: " + s)
            out.append("\\fB" + inline(s[i + 2:j]) + "\\fR")
            i = j + 2
        elif s[i] == "[":
            m = re.match(r"\[([^\]]*)\]\(([^)]*)\)", s[i:])
            if not m:
                out.append("[")
                i += 1
                continue
            out.append(inline(m.group(1)))
            i += m.end()
        elif s[i] == "*" and i + 1 < len(s) and s[i + 1] not in " *":
            j = s.find("*", i + 1)
            if j < 0:
                out.append("*")
                i += 1
                continue
            out.append("\\fI" + inline(s[i + 1:j]) + "\\fR")
            i = j + 1
        else:
            j = i
            while j < len(s) and s[j] not in "`*[":
                j += 1
            if j == i:
                j = i + 1
            out.append(roff_text(s[i:j]))
            i = j
    return "".join(out)


def line_safe(s):
    """A roff text line must not start with . or ' (a request)."""
    if s.startswith(".") or s.startswith("'"):
        return "\\&" + s
    return s


def split_row(row):
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    cells = re.split(r"(?<!\\)\|", row)
    return [c.strip().replace("\\|", "|") for c in cells]


def convert(path, lines, name, section, date, version, title):
    out = [
        '.\\" Generated from ' + path.split("/")[-2] + "/" + path.split("/")[-1] + " by docs/man/md2man.py; edit that file.",
        f'.TH {name.upper()} {section} "{date}" "station {version}" "{title}"',
        ".nh",
        ".ad l",
    ]
    i = 0
    n = len(lines)
    para = []
    list_depth = 0

    def flush():
        nonlocal para
        if para:
            out.append(line_safe(inline(" ".join(para))))
            para = []

    def close_lists(to=0):
        nonlocal list_depth
        while list_depth > to:
            out.append(".RE")
            list_depth -= 1

    while i < n:
        raw = lines[i]
        ln = i + 1
        s = raw.rstrip("\n")
        try:
            if s.startswith("```"):
                flush()
                close_lists()
                j = i + 1
                code = []
                while j < n and not lines[j].startswith("```"):
                    code.append(lines[j].rstrip("\n"))
                    j += 1
                if j == n:
                    fail(path, ln, "unclosed code block")
                out.append(".PP")
                out.append(".RS 4")
                out.append(".EX")
                for c in code:
                    out.append(line_safe(roff_text(c)))
                out.append(".EE")
                out.append(".RE")
                i = j + 1
                continue
            m = re.match(r"^(#{1,4}) (.*)$", s)
            if m:
                flush()
                close_lists()
                level = len(m.group(1))
                text = m.group(2)
                if level == 1:
                    out.append(".SH NAME")
                    out.append(roff_text(name) + " \\- " + inline(text[0].lower() + text[1:]))
                    out.append(".SH DESCRIPTION")
                elif level == 2:
                    out.append(".SH " + inline(re.sub(r"^\d+\. ", "", text)).upper())
                else:
                    out.append(".SS " + inline(text))
                i += 1
                continue
            if s.startswith("|"):
                flush()
                close_lists()
                header = split_row(s)
                if i + 1 >= n or not re.match(r"^\|[-| :]+\|?$", lines[i + 1].strip()):
                    fail(path, ln, "a table row without a header separator line")
                j = i + 2
                while j < n and lines[j].startswith("|"):
                    cells = split_row(lines[j])
                    if len(cells) != len(header):
                        fail(path, j + 1, f"table row has {len(cells)} cells, header has {len(header)}")
                    out.append(".TP")
                    out.append(line_safe(inline(cells[0])))
                    if len(header) == 2:
                        out.append(line_safe(inline(cells[1])))
                    else:
                        parts = []
                        for h, c in zip(header[1:], cells[1:]):
                            parts.append("\\fI" + roff_text(h) + "\\fR: " + inline(c))
                        out.append(line_safe(parts[0]))
                        for p in parts[1:]:
                            out.append(".br")
                            out.append(line_safe(p))
                    j += 1
                out.append(".PP")
                i = j
                continue
            m = re.match(r"^( *)- (.*)$", s)
            if m:
                flush()
                depth = len(m.group(1)) // 2 + 1
                close_lists(depth)
                while list_depth < depth:
                    out.append(".RS " + ("2" if list_depth == 0 else "4"))
                    list_depth += 1
                item = [m.group(2)]
                j = i + 1
                indent = len(m.group(1)) + 2
                while j < n and lines[j].strip() and lines[j].startswith(" " * indent) and \
                        not re.match(r"^ *- ", lines[j]):
                    item.append(lines[j].strip())
                    j += 1
                out.append(".IP \\(bu 2")
                out.append(line_safe(inline(" ".join(item))))
                i = j
                continue
            if not s.strip():
                flush()
                close_lists()
                out.append(".PP")
                i += 1
                continue
            if list_depth and s.startswith(" "):
                fail(path, ln, "indented text after a list item that is not part of it")
            close_lists()
            para.append(s.strip())
            i += 1
        except ValueError as e:
            fail(path, ln, str(e))
    flush()
    close_lists()
    # Drop paragraph breaks that begin a section or follow another break.
    cleaned = []
    for line in out:
        if line == ".PP" and cleaned and (cleaned[-1] == ".PP" or cleaned[-1].startswith(".SH")
                                           or cleaned[-1].startswith(".SS") or cleaned[-1].startswith(".TH")):
            continue
        cleaned.append(line)
    while cleaned and cleaned[-1] == ".PP":
        cleaned.pop()
    return cleaned


def main():
    if len(sys.argv) not in (7, 8):
        sys.exit(__doc__.strip().splitlines()[2])
    src, dst, name, section, date, version = sys.argv[1:7]
    title = sys.argv[7] if len(sys.argv) == 8 else "File Formats"
    with open(src, encoding="utf-8") as f:
        lines = f.readlines()
    page = convert(src, lines, name, section, date, version, title)
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n".join(page) + "\n")


if __name__ == "__main__":
    main()
