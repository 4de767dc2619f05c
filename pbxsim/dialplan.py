"""The dialplan pbxsim runs: extensions.conf text, Asterisk pattern matching, ${...} and $[...] expansion."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# ctid's dialplan contract (config/asterisk/extensions_ctid.conf) plus the sim-* contexts that played the
# other side when the reference transcripts were captured (../shared/asterisk/conf/extensions.conf).
# sim-callees also answers plain numbers (`_X.`): pbxsim decides their fate per call from the traffic profile.
REFERENCE_DIALPLAN = r"""
[globals]
CTID_HOST = 127.0.0.1
CTID_RING_TIMEOUT = 15

[ctid-inbound]
exten => _X.,1,Answer()
 same => n,AGI(agi://${CTID_HOST}:4573/inbound)
 same => n,Goto(ctid-wait,s,1)

[ctid-wait]
exten => s,1,MusicOnHold(${IF($["${CTID_MOH}"!=""]?${CTID_MOH}:default)})

[ctid-connect]
exten => s,1,Dial(${CTID_AGENT_DIAL},${CTID_RING_TIMEOUT},gt)
 same => n,GotoIf($["${DIALSTATUS}"="ANSWER"]?ctid-after,s,1)
 same => n,Goto(ctid-wait,s,1)

[ctid-after]
exten => s,1,GotoIf($["${CTID_SURVEY}"="yes"]?survey)
 same => n,Hangup()
 same => n(survey),AGI(agi://${CTID_HOST}:4573/survey)
 same => n,Hangup()

[ctid-transfer]
exten => _X.,1,Set(CTID_QUEUE=${EXTEN})
 same => n,Goto(ctid-wait,s,1)

[ctid-outbound]
exten => s,1,AMD()
 same => n,AGI(agi://${CTID_HOST}:4573/outbound)
 same => n,Goto(ctid-wait,s,1)

[ctid-abandon]
exten => s,1,Playback(ctid-abandon-info)
 same => n,Hangup()

[ctid-callback]
exten => s,1,AGI(agi://${CTID_HOST}:4573/callback)
 same => n,Hangup()

[ctid-voicemail]
exten => s,1,VoiceMail(${CTID_QUEUE}@ctid,su)
 same => n,Hangup()

[ctid-hold]
exten => s,1,MusicOnHold(${IF($["${CTID_MOH}"!=""]?${CTID_MOH}:default)})

[ctid-message]
exten => s,1,Playback(${CTID_MESSAGE})
 same => n,Goto(ctid-wait,s,1)

[sim-callers]
exten => _pX!,1,Answer()
 same => n,Wait(${EXTEN:1})
 same => n,Hangup()

[sim-phones]
exten => _1XXX,1,Ringing()
 same => n,Wait(1)
 same => n,Answer()
 same => n,Echo()
exten => _9XXX,1,Ringing()
 same => n,Wait(300)

[sim-hints]
exten => 1001,hint,Custom:agent-1001
exten => 1002,hint,Custom:agent-1002

[sim-callees]
exten => _hX.,1,Wait(2)
 same => n,Answer()
 same => n,Wait(0.5)
 same => n,Playback(hello)
 same => n,Wait(600)
exten => _mX.,1,Wait(2)
 same => n,Answer()
 same => n,Playback(demo-congrats)
 same => n,Wait(5)
 same => n,Hangup()
exten => _bX.,1,Busy(3)
exten => _qX.,1,Wait(60)
exten => _X.,1,Wait(${SIM_RING})
 same => n,GotoIf($["${SIM_FATE}"="busy"]?busy)
 same => n,GotoIf($["${SIM_FATE}"="noanswer"]?noanswer)
 same => n,Answer()
 same => n,GotoIf($["${SIM_FATE}"="machine"]?machine)
 same => n,Wait(0.5)
 same => n,Playback(hello)
 same => n,Wait(${SIM_TALK})
 same => n,Hangup()
 same => n(machine),Playback(demo-congrats)
 same => n,Wait(5)
 same => n,Hangup()
 same => n(busy),Busy(3)
 same => n(noanswer),Wait(600)
"""


@dataclass(frozen=True, slots=True)
class Step:
    app: str
    data: str
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Hint:
    exten: str
    context: str
    device: str


@dataclass
class Extension:
    pattern: str
    steps: dict[int, Step]

    def label_priority(self, label: str) -> int | None:
        return next((p for p, s in self.steps.items() if s.label == label), None)


class DialplanError(ValueError):
    """The dialplan text cannot be read."""


_APP = re.compile(r"^\s*(?P<app>[A-Za-z0-9_]+)\s*(?:\((?P<data>.*)\))?\s*$")
_PRIORITY = re.compile(r"^(?P<prio>\d+|n|hint)(?:\((?P<label>[^)]*)\))?$")


def _strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            out.append(line[i + 1])
            i += 2
            continue
        if ch == ";":
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


class Dialplan:
    """Contexts of extensions, each a numbered list of application steps, plus globals and hints."""

    def __init__(self, text: str = REFERENCE_DIALPLAN) -> None:
        self.contexts: dict[str, list[Extension]] = {}
        self.globals: dict[str, str] = {}
        self.hints: list[Hint] = []
        self._read(text)

    def _read(self, text: str) -> None:
        context: str | None = None
        last: Extension | None = None
        last_prio = 0
        for number, raw in enumerate(text.splitlines(), 1):
            line = _strip_comment(raw)
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                context = line[1:-1].strip()
                last = None
                if context not in ("general", "globals"):
                    self.contexts.setdefault(context, [])
                continue
            if context == "general":
                continue
            if context == "globals":
                key, _, value = line.partition("=")
                self.globals[key.strip()] = value.strip()
                continue
            if context is None:
                raise DialplanError(f"line {number}: outside any context")
            kind, _, rest = line.partition("=>")
            kind = kind.strip()
            if kind == "exten":
                pattern, _, rest = rest.strip().partition(",")
                pattern = pattern.strip()
            elif kind == "same" and last is not None:
                pattern = last.pattern
                rest = rest.strip()
            else:
                raise DialplanError(f"line {number}: cannot read {raw!r}")
            prio_text, _, app_text = rest.partition(",")
            m = _PRIORITY.match(prio_text.strip())
            if not m:
                raise DialplanError(f"line {number}: bad priority {prio_text!r}")
            if m["prio"] == "hint":
                self.hints.append(Hint(pattern, context, app_text.strip()))
                continue
            prio = last_prio + 1 if m["prio"] == "n" else int(m["prio"])
            app = _APP.match(app_text)
            if not app:
                raise DialplanError(f"line {number}: bad application {app_text!r}")
            ext = next((e for e in self.contexts[context] if e.pattern == pattern), None)
            if ext is None:
                ext = Extension(pattern, {})
                self.contexts[context].append(ext)
            ext.steps[prio] = Step(app["app"], app["data"] or "", m["label"])
            last, last_prio = ext, prio

    def find(self, context: str, exten: str) -> Extension | None:
        """The extension that `exten` dials in `context`: an exact name first, then patterns in order."""
        extensions = self.contexts.get(context, [])
        for ext in extensions:
            if not ext.pattern.startswith("_") and ext.pattern == exten:
                return ext
        for ext in extensions:
            if ext.pattern.startswith("_") and pattern_matches(ext.pattern, exten):
                return ext
        return None

    def step(self, context: str, exten: str, priority: int) -> Step | None:
        ext = self.find(context, exten)
        return ext.steps.get(priority) if ext else None

    def exists(self, context: str, exten: str, priority: int = 1) -> bool:
        return self.step(context, exten, priority) is not None


def pattern_matches(pattern: str, exten: str) -> bool:
    """Asterisk extension pattern matching: X Z N [...] . ! and case-insensitive literals."""
    regex = []
    i = 1
    while i < len(pattern):
        ch = pattern[i]
        if ch in "xX":
            regex.append("[0-9]")
        elif ch in "zZ":
            regex.append("[1-9]")
        elif ch in "nN":
            regex.append("[2-9]")
        elif ch == ".":
            regex.append(".+")
        elif ch == "!":
            regex.append(".*")
        elif ch == "[":
            end = pattern.index("]", i)
            regex.append("[" + pattern[i + 1 : end] + "]")
            i = end
        else:
            regex.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(regex), exten, re.IGNORECASE) is not None


def split_args(data: str, sep: str = ",") -> list[str]:
    """Split application arguments on `sep`, respecting parentheses, brackets and double quotes."""
    out: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for ch in data:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and ch == sep:
            out.append("".join(current))
            current = []
            continue
        current.append(ch)
    out.append("".join(current))
    return out


Lookup = Callable[[str], str | None]


def _matching(text: str, start: int, open_: str, close: str) -> int:
    """Index of the `close` matching the `open_` just before `start`."""
    depth = 1
    i = start
    while i < len(text):
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise DialplanError(f"unbalanced {open_}{close} in {text!r}")


def substitute(text: str, lookup: Lookup) -> str:
    """Expand ${VAR}, ${VAR:offset:length}, ${FUNC(args)} and $[expression] as Asterisk does."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("${", i):
            end = _matching(text, i + 2, "{", "}")
            out.append(_expand(substitute(text[i + 2 : end], lookup), lookup))
            i = end + 1
        elif text.startswith("$[", i):
            end = _matching(text, i + 2, "[", "]")
            out.append(evaluate(substitute(text[i + 2 : end], lookup)))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


_FUNC = re.compile(r"^(?P<name>[A-Z_]+)\((?P<args>.*)\)$", re.DOTALL)


def _expand(expr: str, lookup: Lookup) -> str:
    m = _FUNC.match(expr)
    if m and m["name"] == "IF":
        cond, _, branches = m["args"].partition("?")
        yes, _, no = branches.partition(":")
        return yes if _truthy(cond) else no
    if m:
        return lookup(expr) or ""
    name, _, slicing = expr.partition(":")
    value = lookup(name) or ""
    if not slicing:
        return value
    offset_text, _, length_text = slicing.partition(":")
    sliced = value[int(offset_text or 0) :]
    return sliced[: int(length_text)] if length_text else sliced


def _truthy(value: str) -> bool:
    value = value.strip()
    return value not in ("", "0")


def _unquote(token: str) -> str:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return token[1:-1]
    return token


def evaluate(expression: str) -> str:
    """The $[...] expressions the dialplan uses: string (in)equality of quoted or bare operands."""
    for op in ("!=", "="):
        left, sep, right = expression.partition(op)
        if sep:
            equal = _unquote(left) == _unquote(right)
            return "1" if equal == (op == "=") else "0"
    return _unquote(expression)
