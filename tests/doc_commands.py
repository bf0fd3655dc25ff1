"""The commands the docs show: every command line in README.md, docs/*.md and examples/*/README.md, as a reader would
copy it. tests/test_readme_commands.py runs each (or names why it cannot, in its exemption table).

What counts as a command: a line of a fenced code block, an indented code line (4+ spaces, outside a list's prose), or
an inline `code span` of prose or a table, that starts with one of the COMMAND prefixes below (after optional
`VAR=value` environment assignments). What is done to it, and only this:

- a `\\` at the end of a code line joins the next line;
- a trailing comment (whitespace + `#` outside quotes) is dropped;
- `a && b` is split into its commands (each is checked on its own);
- `.venv/bin/python` / `python3` are read as `python`, `.venv/bin/<tool>` as `<tool>`, and a bare `scripts/<x>.py`
  (not executable: no shebang, no x bit) as `python scripts/<x>.py`;
- a span of one word (`dlf-sample`, `scripts/bench.py`) names a tool in prose: not a command;
- `a|b` as an argument of prose (`scripts/bench.py rnn|lstm`) names one command per alternative;
- a prose aside after the command, an unquoted `(` after whitespace up to its `)`, is dropped, except two forms that
  name more commands: `(and key=value)` adds the same command with that key's value replaced (`seed=1 (and seed=2)`),
  and `(or <cmd> ...)` adds `<cmd>` with the first command's arguments (`python train.py x=1 (or dlf-train ...)`);
- a `cd <dir>` line of a code block is not a command: the block's later commands run in that dir; the commands of
  examples/<x>/README.md run in examples/<x> (the folder it says to run them from).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_ENV = r"(?:[A-Za-z_][A-Za-z0-9_]*=(?:'[^']*'|\"[^\"]*\"|\S)*\s+)*"
_HEAD = (r"(?:(?:\.venv/bin/)?python3?\s+(?:train\.py|scripts/|-m\s)"
         r"|(?:\.venv/bin/)?dlf-(?:train|generate|sample|compare)(?=\s|$)|(?:\.venv/bin/)?(?:tensorboard|jupyter|pip)\s|torchrun\s|srun\s|sbatch\s|bash\s+scripts/"
         r"|(?:\./)?scripts/\S+\.(?:sh|py)\b)")
COMMAND = re.compile(rf"^{_ENV}{_HEAD}")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*/README.md"))]


@dataclass
class Command:
    text: str  # the command as normalised (see the module docstring)
    where: list[str] = field(default_factory=list)  # "file:line" of every place it appears
    cwd: str = ""  # a `cd` of its code block, relative to the repository root

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text)


def _unquoted(s: str):
    """Yield (index, char, inside_quotes) over s, shell-style quotes."""
    q = ""
    for i, c in enumerate(s):
        if q:
            if c == q:
                q = ""
            yield i, c, True
        elif c in "'\"":
            q = c
            yield i, c, True
        else:
            yield i, c, False


def strip_comment(s: str) -> str:
    for i, c, quoted in _unquoted(s):
        if c == "#" and not quoted and (i == 0 or s[i - 1].isspace()):
            return s[:i].rstrip()
    return s.rstrip()


def _asides(s: str) -> tuple[str, list[str]]:
    """Split off prose asides: an unquoted `(` after whitespace up to its matching `)` (or the end)."""
    out, asides, depth, start = [], [], 0, 0
    for i, c, quoted in _unquoted(s):
        if depth == 0:
            if c == "(" and not quoted and (i == 0 or s[i - 1].isspace()):
                depth, start = 1, i
            else:
                out.append(c)
        elif not quoted:
            depth += c == "("
            depth -= c == ")"
            if depth == 0:
                asides.append(s[start + 1:i].strip())
    if depth:
        asides.append(s[start + 1:].strip())
    return re.sub(r"\s+", " ", "".join(out)).strip(), asides


def _normalise(cmd: str) -> str:
    cmd = re.sub(r"(^|\s)\.venv/bin/python3?(?=\s)", r"\1python", cmd)
    cmd = re.sub(r"(^|\s)python3(?=\s)", r"\1python", cmd)
    cmd = re.sub(r"(^|\s)\.venv/bin/(?=\S)", r"\1", cmd)
    cmd = re.sub(rf"^({_ENV})(?:\./)?(scripts/\S+\.py)(?=\s|$)", r"\1python \2", cmd)
    return cmd.strip()


def _split_chain(line: str) -> list[str]:
    parts, last = [], 0
    for i, _c, quoted in _unquoted(line):
        if not quoted and line.startswith("&&", i) and i >= last:
            parts.append(line[last:i])
            last = i + 2
    parts.append(line[last:])
    return [p.strip() for p in parts if p.strip()]


def _expand(cmd: str) -> list[str]:
    """One extracted text -> the commands it names (asides resolved, normalised)."""
    main, asides = _asides(cmd)
    cmds = [main]
    for a in asides:
        m = re.fullmatch(r"and\s+(\S+?)=(\S+)", a)
        if m:
            key = m.group(1)
            words = main.split()
            idx = [i for i, w in enumerate(words) if w.startswith(key + "=")]
            if idx:
                words[idx[-1]] = f"{key}={m.group(2)}"
                cmds.append(" ".join(words))
            continue
        m = re.fullmatch(r"or\s+(\S+)\s+\.\.\.", a)
        if m and COMMAND.match(m.group(1) + " "):
            rest = re.sub(rf"^{_ENV}(?:python\s+train\.py|dlf-train)\s*", "", main)
            cmds.append(f"{m.group(1)} {rest}".strip())
    out = []
    for c in cmds:  # `scripts/bench.py rnn|lstm`: one command per alternative
        words = c.split(" ")
        alt = [i for i, w in enumerate(words) if re.fullmatch(r"[\w.-]+(?:\|[\w.-]+)+", w)]
        if alt:
            out.extend(" ".join(words[:alt[0]] + [a] + words[alt[0] + 1:]) for a in words[alt[0]].split("|"))
        else:
            out.append(c)
    return [_normalise(c) for c in out]


def _code_commands(line: str) -> list[str]:
    line = strip_comment(line).strip()
    out = []
    for part in _split_chain(line):
        if COMMAND.match(part):
            out.extend(_expand(part))
    return out


def extract(path: Path) -> list[tuple[int, str, str]]:
    """[(line number, command, cd dir)] of one markdown file, in order."""
    lines = path.read_text().splitlines()
    found: list[tuple[int, str, str]] = []
    rel = path.resolve().parent.relative_to(ROOT).as_posix()
    home = rel if rel.startswith("examples/") else ""  # an example's README: "run from this folder"
    fence, cwd, i = None, home, 0
    prose: list[tuple[int, str]] = []

    def flush_prose():
        # inline code spans of one paragraph (spans may cross line breaks)
        if not prose:
            return
        text, starts = "", []
        for n, ln in prose:
            starts.append((len(text), n))
            text += ln + " "
        for m in re.finditer(r"(`+)(.+?)\1", text):
            span = re.sub(r"\s+", " ", m.group(2)).strip()
            if " " not in span:  # a bare program name (`dlf-sample`, `scripts/bench.py`) names a tool, runs nothing
                continue
            n = max(n for off, n in starts if off <= m.start())
            for part in _split_chain(span):
                if COMMAND.match(part):
                    for c in _expand(strip_comment(part)):
                        found.append((n, c, home))
        prose.clear()

    while i < len(lines):
        ln, n = lines[i], i + 1
        m = re.match(r"^\s*(```+|~~~+)", ln)
        if m:
            flush_prose()
            if fence is None:
                fence, cwd = m.group(1), home
            elif ln.strip().startswith(fence) and ln.strip().strip(fence[0]) == "":
                fence = None
            i += 1
            continue
        code = fence is not None or (ln.startswith("    ") and not ln.lstrip().startswith(("-", "*", "|", "`"))
                                     and (i == 0 or not lines[i - 1].strip() or lines[i - 1].startswith("    ")))
        if code:
            flush_prose()
            while ln.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                ln = ln.rstrip()[:-1] + " " + lines[i].strip()
            s = ln.strip()
            cd = re.match(r"^cd\s+(\S+)\s*(?:#.*)?$", s)
            if cd:
                cwd = cd.group(1)
            else:
                for c in _code_commands(s):
                    found.append((n, c, cwd))
        elif not ln.strip():
            flush_prose()
        else:
            prose.append((n, ln))
        i += 1
    flush_prose()
    return found


def all_commands() -> list[Command]:
    """Every command of the docs, once each (same text and dir), with every place it appears."""
    by: dict[tuple[str, str], Command] = {}
    for path in doc_files():
        rel = path.relative_to(ROOT).as_posix()
        for n, text, cwd in extract(path):
            c = by.setdefault((text, cwd), Command(text, cwd=cwd))
            c.where.append(f"{rel}:{n}")
    return list(by.values())


if __name__ == "__main__":
    for c in all_commands():
        print(f"{c.text!r:140} {c.cwd} {' '.join(c.where)}")
