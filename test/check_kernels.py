#!/usr/bin/env python3
"""Every kernel and device function in the CUDA programs is code that runs (issue 17: copy only
what runs).

For each program (train_gpt_window.cu, train_gpt_full.cu, attention_compare.cu) the check builds the
call graph of its source: every top-level definition (function, kernel, struct, variable, macro)
points to the names it mentions, and the roots are `main` and the library's `extern "C"` entry
points. Every `__global__` kernel and every `__device__` function must be reachable from a root;
one that is not is a copy of a version the program never runs (dev/cuda keeps those). Preprocessor
branches all count (the sm_90a and the compute_90 paths both run somewhere), names are matched
without their overloads or template arguments, and host functions are not checked (the host code
shared with train_gpt_cpu.c keeps helpers that only the CPU trainer calls).

The contents list atop each program must name every copy block in it (and no block that no program
has). Where a
program's binary is built and newer than its source, `nm` must find every kernel of the source in
it: a template kernel that no running code instantiates has no code there.

    python3 test/check_kernels.py [PROGRAM.cu ...]    default: the three programs

The last line is `kernels: N passed, M failed` (test/summary.sh counts it).
"""
import os
import re
import shutil
import subprocess
import sys

PROGRAMS = ["train_gpt_window.cu", "train_gpt_full.cu", "attention_compare.cu"]
IDENT = re.compile(r"[A-Za-z_]\w*")
# names that look like calls in a declaration but are not the declared function
NOT_NAMES = {"__launch_bounds__", "__align__", "__attribute__", "alignas", "decltype", "sizeof",
             "__declspec", "if", "for", "while", "switch", "return", "static_assert", "operator"}


def strip(text):
    """Comments and string / char literals blanked (newlines kept, so line numbers hold)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_preprocessor(text):
    """(code with preprocessor lines blanked, [(macro name, body)] of the #defines)."""
    lines, macros, code = text.split("\n"), [], []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("#"):
            full = line
            while full.endswith("\\") and i + 1 < len(lines):   # continued directive
                code.append("")
                i += 1
                full = full[:-1] + " " + lines[i]
            m = re.match(r"\s*#\s*define\s+([A-Za-z_]\w*)(.*)", full)
            if m:
                macros.append((m.group(1), m.group(2)))
            code.append("")
        else:
            code.append(line)
        i += 1
    return "\n".join(code), macros


KEYWORDS = {"static", "const", "constexpr", "inline", "extern", "typedef", "struct", "class", "union",
            "enum", "unsigned", "signed", "int", "long", "short", "char", "float", "double", "bool", "void",
            "auto", "volatile", "__device__", "__host__", "__global__", "__constant__", "__shared__",
            "__forceinline__", "__managed__", "template", "typename", "size_t"}


def top_level_statements(code):
    """[(head, body, tail, line)] of the top-level statements: head is the text before the first
    brace at depth 0 (the whole statement if there is none), body the text from that brace to the end,
    tail what follows the last closing brace (the names of `typedef struct {...} Name;`). `extern "C" {`
    and `namespace X {` blocks are looked through."""
    stmts, depth, start, brace, last_close, i, n = [], 0, 0, None, None, 0, len(code)

    def emit(end):
        head = code[start:brace] if brace is not None else code[start:end]
        body = code[brace + 1:last_close] if brace is not None else ""
        tail = code[last_close + 1:end] if brace is not None else ""
        lead = len(head) - len(head.lstrip())
        stmts.append((head, body, tail, code.count("\n", 0, start + lead) + 1))

    while i < n:
        c = code[i]
        if c == "{":
            if depth == 0 and brace is None:
                if re.fullmatch(r"\s*(extern\s+\"\s*\"|namespace(\s+\w+)?)\s*", code[start:i]):
                    start = i + 1   # look through
                    i += 1
                    continue
                brace = i
            depth += 1
        elif c == "}":
            if depth == 0:      # closes a looked-through block
                start = i + 1
            else:
                depth -= 1
                if depth == 0:
                    last_close = i
                    if is_function_header(code[start:brace]):   # a function body ends the statement
                        emit(i + 1)
                        start, brace = i + 1, None
        elif c == ";" and depth == 0:
            emit(i)
            start, brace = i + 1, None
        i += 1
    if depth:   # a definition never closed: the rest of the file is one statement, with no main in it
        stmts.append((None, None, None, code.count("\n", 0, brace if brace is not None else start) + 1))
    return stmts


def strip_templates(head):
    return re.sub(r"\btemplate\s*<(?:[^<>]|<[^<>]*>)*>", " ", head)


def call_names(head):
    """Identifiers directly followed by '(' at parenthesis depth 0 of a declaration header."""
    names, depth = [], 0
    for m in re.finditer(r"[A-Za-z_]\w*|[()]", head):
        t = m.group(0)
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0 and re.match(r"\s*\(", head[m.end():]):
            names.append(t)
    return [n for n in names if n not in NOT_NAMES]


def is_function_header(head):
    """A function definition's (or declaration's) header: a call-like name at depth 0, not a type,
    no initializer."""
    h = strip_templates(head)
    if re.match(r"\s*(typedef|struct|class|union|enum)\b", h):
        return False
    depth = 0
    for c in h:
        depth += c in "([<"
        depth -= c in ")]>"
        if c == "=" and depth == 0:
            return False
    return bool(call_names(h))


def declared_names(head, tail):
    """The names a type or variable statement declares."""
    h = strip_templates(head)
    names = set(IDENT.findall(tail)) - KEYWORDS
    m = re.match(r"\s*(?:typedef\s+)?(?:struct|class|union|enum)\s+(?:__align__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)", h)
    if m:
        names.add(m.group(1))
        return names
    parts, depth, cur = [], 0, ""
    for c in h:
        depth += c in "([<"
        depth -= c in ")]>"
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    for part in parts:
        part = part.split("=")[0]
        fp = re.search(r"\(\s*\*\s*([A-Za-z_]\w*)\s*\)", part)   # a function pointer type
        if fp:
            names.add(fp.group(1))
            continue
        ids = [x for x in IDENT.findall(re.sub(r"\[[^\]]*\]", "", part)) if x not in KEYWORDS]
        if ids:
            names.add(ids[-1])
    return names


def analyze(path):
    """({name: {kinds, line, refs}} of the top-level definitions, the set of root names)."""
    code, macros = split_preprocessor(strip(open(path, encoding="utf-8").read()))
    defs, roots = {}, set()

    def add(name, kind, line, refs):
        d = defs.setdefault(name, {"kinds": set(), "line": line, "refs": set()})
        d["kinds"].add(kind)
        d["refs"] |= refs - {name}

    for name, body in macros:
        add(name, "macro", 0, set(IDENT.findall(body)))
    for head, body, tail, line in top_level_statements(code):
        if head is None:
            roots.add(f"(none: the braces opened at line {line} never close)")
            continue
        refs = set(IDENT.findall(head + " " + body + " " + tail))
        if is_function_header(head):
            if not body:
                continue   # a declaration
            h = strip_templates(head)
            name = call_names(h)[-1]
            words = set(IDENT.findall(h[:h.rfind(name + "(") if name + "(" in h else len(h)]))
            kind = "kernel" if "__global__" in words else ("device" if "__device__" in words else "host")
            add(name, kind, line, refs)
            if name == "main" or re.search(r"\bextern\s+\"", head):
                roots.add(name)
        else:
            for name in declared_names(head, tail):
                add(name, "data", line, refs)
    return defs, roots


def reachable(defs, roots):
    seen, todo = set(), [r for r in roots if r in defs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(r for r in defs[name]["refs"] if r in defs and r not in seen)
    return seen


def binary_kernels(binary, names):
    """Which of the kernel names have code in a built program (nm: nvcc gives every kernel a host
    symbol of its name, a template one per instantiation), or None when nm is missing or fails."""
    nm = shutil.which("nm")
    if not nm:
        return None
    out = subprocess.run([nm, "-C", binary], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    held = set()
    for line in out.stdout.splitlines():
        m = re.match(r"\S*\s+[TtWw]\s+(?:void\s+)?([A-Za-z_]\w*)[<(]", line)
        if m and m.group(1) in names:
            held.add(m.group(1))
    return held


COPY_BEGIN = re.compile(r"^\s*//\s*@copy-begin\s+(\S+)\s*$", re.M)


def copy_blocks(text):
    return COPY_BEGIN.findall(text)


def contents_names(text, known):
    """The block names that the file's contents list (the comment that holds `Contents`) mentions."""
    m = re.search(r"Contents\b(.*?)\*/", text, re.S)
    if not m:
        return None
    return {w for w in re.findall(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)+", m.group(1)) if w in known}


def main(argv):
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    programs = argv or [os.path.join(root, p) for p in PROGRAMS]
    originals = set()
    for d, pattern in ((os.path.join(root, "dev", "cuda"), (".cu", ".h")), (root, (".c",))):
        for f in sorted(os.listdir(d)):
            if f.endswith(pattern):
                originals |= set(copy_blocks(open(os.path.join(d, f), encoding="utf-8").read()))
    in_programs = set()   # a twin's contents list may name the other twin's blocks
    for path in programs:
        in_programs |= set(copy_blocks(open(path, encoding="utf-8").read()))
    passed = failed = 0

    def report(ok, what):
        nonlocal passed, failed
        print(f"{'PASS' if ok else 'FAIL'} {what}")
        passed, failed = passed + ok, failed + (not ok)

    for path in programs:
        name = os.path.basename(path)
        defs, roots = analyze(path)
        seen = reachable(defs, roots)
        for kind, what in (("kernel", "__global__ kernels"), ("device", "__device__ functions")):
            all_ = sorted(n for n, d in defs.items() if kind in d["kinds"])
            dead = [n for n in all_ if n not in seen]
            report(not dead, f"{name}: {len(all_) - len(dead)} of {len(all_)} {what} reached from "
                             f"{' / '.join(sorted(roots)) or 'no root'}"
                             + (f"; never run: {', '.join(dead)}" if dead else ""))
        text = open(path, encoding="utf-8").read()
        blocks = set(copy_blocks(text))
        listed = contents_names(text, originals | blocks)
        if listed is None:
            report(False, f"{name}: no contents list (a comment that starts `Contents`)")
        else:
            missing, extra = sorted(blocks - listed), sorted(listed - in_programs)
            report(not missing and not extra, f"{name}: the contents list names its {len(blocks)} copy blocks"
                   + (f"; not listed: {', '.join(missing)}" if missing else "")
                   + (f"; listed, in no program: {', '.join(extra)}" if extra else ""))
        binary = os.path.splitext(path)[0]
        if not os.path.exists(binary):
            print(f"note: {os.path.basename(binary)} not built: its kernels are not listed")
        elif os.path.getmtime(binary) < os.path.getmtime(path):
            print(f"note: {os.path.basename(binary)} is older than {name}: its kernels are not listed "
                  f"(make {os.path.basename(binary)})")
        else:
            kernels = {n for n, d in defs.items() if "kernel" in d["kinds"]}
            held = binary_kernels(binary, kernels)
            if held is None:
                print(f"note: nm could not list {os.path.basename(binary)}: its kernels are not listed")
            else:
                missing = sorted(kernels - held)
                report(not missing, f"{os.path.basename(binary)}: every kernel of {name} is built into it (nm)"
                       + (f"; never instantiated: {', '.join(missing)}" if missing else ""))
    print(f"kernels: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
