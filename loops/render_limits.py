"""Bounded Liquid: a team's template gets only so much time, iteration, output and memory.

python-liquid 2.3 has limits for loop iterations, output, the local namespace and nesting, all unset
by default; `BoundedEnvironment` (loops/liquid_environment.py) sets them from settings. What they
leave open is closed here and there:

- Time. A budget of processing time (LIQUID_RENDER_TIMEOUT of the rendering thread's CPU time, so a
  busy machine does not fail a template that renders in time on an idle one), with a wall-clock
  backstop of RENDER_WALL_FACTOR times as long; checked at every loop iteration, variable lookup,
  filter call, assignment and write. It needs no signal, so it works in any thread: a gunicorn or
  runserver request, and every Celery pool (solo and threads pools have no time limits). A save check
  gets half the budget (CHECK_SHARE): a template that passes has room to spare when it is sent.
- Single steps the budget cannot interrupt, each bounded instead: a filter's input and result
  (`{{ (1..100000000) | join }}`, a list of 10,000 copies of one long string, `replace: "", s`),
  numbers that grow in a loop (`times` and `divided_by` on huge integers), `reversed` loops
  (python-liquid lists their items before it checks the loop limit), `uniq` (quadratic in
  python-liquid), `date` on long text (dateutil is quadratic on digits) and `strip_html` (HTMLParser
  is slow, and raises on some input), and the sources that make python-liquid's lexer quadratic
  (`{{{{…` never closed) or its expression tokenizer quadratic (thousands of `(` in one expression).
- Ranges, whose bounds can be any number a contact's or an event's value holds: python-liquid answers
  `contains` by scanning the range in C, and skips a loop's `offset` item by item, which no check can
  interrupt. Here membership is arithmetic (`range_contains`), a loop over a range is sliced by index,
  and an offset is at most LIQUID_LOOP_LIMIT.
- `include` and `render` are removed: there are no partials, so they could only fail or recurse.

Every limit error is a `RenderLimitError` whose message names the limit and its setting. The
environment that applies all this is in loops/liquid_environment.py; the filters' bounds are here.
"""

import contextlib
import contextvars
import functools
import json
import math
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from liquid import Environment
from liquid.builtin.filters.array import concat as liquid_concat
from liquid.builtin.filters.misc import date as liquid_date
from liquid.exceptions import (
    BlockNestingError,
    ContextDepthError,
    FilterArgumentError,
    FilterError,
    LiquidError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
)
from liquid.filter import flatten, sequence_filter, string_filter, with_environment
from liquid.undefined import is_undefined
from markupsafe import Markup


class _Deadlined(Protocol):
    """The render context of liquid_environment (which imports this module): its environment and its clock."""

    env: Environment

    def deadline_check(self) -> None: ...


NUMBER_DIGITS_MAX = 100  # plenty for money and counts; bigger integers make one `times` or `divided_by` slow
_NUMBER_BITS_MAX = 333  # 2**333 is about 10**100
DATE_TEXT_MAX = 64  # longer text is no date: `date` shows it as it is, as it does any text that is not a date
CHECK_SHARE = 0.5  # a save check (and the preview's) renders within this share of LIQUID_RENDER_TIMEOUT
RENDER_WALL_FACTOR = 5  # and no render takes longer than this many times its budget on the clock
_CPU_SAMPLE_SECONDS = 0.005  # reading the thread's CPU clock costs a system call: at most once per 5 ms


class RenderLimitError(LiquidError):
    """A template went over a render limit; the message names the limit and its setting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, token=None)


class RenderTimeoutError(RenderLimitError):
    """A render ran out of time. Unlike the other limits this may heal (the machine was busy), so at send
    time it is retried."""


# --- what each limit says ------------------------------------------------------------------------


def loop_message() -> str:
    return f"loops are limited to {settings.LIQUID_LOOP_LIMIT:,} iterations (LIQUID_LOOP_LIMIT)"


def list_message() -> str:
    return f"a list is limited to {settings.LIQUID_LOOP_LIMIT:,} items (LIQUID_LOOP_LIMIT)"


def output_message() -> str:
    return f"its output is limited to {settings.LIQUID_OUTPUT_LIMIT:,} bytes (LIQUID_OUTPUT_LIMIT)"


def value_message() -> str:
    return f"a value is limited to {settings.LIQUID_OUTPUT_LIMIT:,} bytes (LIQUID_OUTPUT_LIMIT)"


def namespace_message() -> str:
    return (
        "variables made with assign and capture are limited to "
        f"{settings.LIQUID_NAMESPACE_LIMIT:,} bytes in all (LIQUID_NAMESPACE_LIMIT)"
    )


def nesting_message() -> str:
    return f"blocks can be nested at most {settings.LIQUID_NESTING_LIMIT} deep (LIQUID_NESTING_LIMIT)"


def timeout_message() -> str:
    return f"rendering is limited to {settings.LIQUID_RENDER_TIMEOUT:g} s (LIQUID_RENDER_TIMEOUT)"


def check_timeout_message() -> str:
    seconds = settings.LIQUID_RENDER_TIMEOUT
    return (
        f"a template must render within {seconds * CHECK_SHARE:g} s when checked, half of LIQUID_RENDER_TIMEOUT "
        f"({seconds:g} s), so that it renders in time when sent"
    )


def wall_timeout_message(seconds: float) -> str:
    return (
        f"rendering took over {seconds * RENDER_WALL_FACTOR:g} s on the clock, {RENDER_WALL_FACTOR} times its "
        "budget (LIQUID_RENDER_TIMEOUT): the server is busy, try again"
    )


def offset_message() -> str:
    return f"a loop's offset is limited to {settings.LIQUID_LOOP_LIMIT:,} (LIQUID_LOOP_LIMIT)"


def operators_message(limit: int) -> str:
    return f"an expression is limited to {limit} 'and' and 'or'"


def depth_message() -> str:
    return "an expression or block is nested too deeply"


def number_message() -> str:
    return f"numbers are limited to {NUMBER_DIGITS_MAX} digits"


def template_size_message() -> str:
    return f"a template is limited to {settings.LIQUID_TEMPLATE_LIMIT:,} characters (LIQUID_TEMPLATE_LIMIT)"


_LIQUID_LIMITS = {
    LoopIterationLimitError: loop_message,
    OutputStreamLimitError: output_message,
    LocalNamespaceLimitError: namespace_message,
    ContextDepthError: nesting_message,
    BlockNestingError: nesting_message,
}


def limit_reason(exc: Exception) -> str | None:
    """The named limit `exc` (python-liquid's or ours) stands for, None when it is no limit."""
    if isinstance(exc, RenderLimitError):
        return str(exc.message)
    for kind, message in _LIQUID_LIMITS.items():
        if isinstance(exc, kind):
            return message()
    return None


# --- the time budget -----------------------------------------------------------------------------


class RenderBudget:
    """Time for one email's renders: `seconds` of the rendering thread's CPU time (time spent waiting for
    the CPU on a busy machine is not the template's), and at most RENDER_WALL_FACTOR times that on the
    clock, so a render always ends. `check()` is called very often: it reads the monotonic clock and only
    every few milliseconds the CPU clock."""

    __slots__ = ("_cpu_deadline", "_message", "_next_sample", "_wall_deadline", "seconds")

    def __init__(self, seconds: float, message: str) -> None:
        self.seconds = seconds
        self._message = message
        now = time.monotonic()
        self._wall_deadline = now + seconds * RENDER_WALL_FACTOR
        self._cpu_deadline = time.thread_time() + seconds
        self._next_sample = now

    def check(self) -> None:
        now = time.monotonic()
        if now < self._next_sample:
            return
        self._next_sample = min(now + _CPU_SAMPLE_SECONDS, self._wall_deadline)
        if time.thread_time() > self._cpu_deadline:
            raise RenderTimeoutError(self._message)
        if now >= self._wall_deadline:
            raise RenderTimeoutError(wall_timeout_message(self.seconds))


_budget: contextvars.ContextVar[RenderBudget | None] = contextvars.ContextVar("liquid_render_budget", default=None)


def send_budget() -> RenderBudget:
    return RenderBudget(settings.LIQUID_RENDER_TIMEOUT, timeout_message())


def check_budget() -> RenderBudget:
    return RenderBudget(settings.LIQUID_RENDER_TIMEOUT * CHECK_SHARE, check_timeout_message())


@contextlib.contextmanager
def render_deadline(*, checking: bool = False) -> Iterator[None]:
    """Renders inside share one budget: LIQUID_RENDER_TIMEOUT, or half of it for a save check
    (`checking`). An enclosing budget is kept, so nesting never extends it: an email's three parts,
    or a check's, share one."""
    if _budget.get() is not None:
        yield
        return
    token = _budget.set(check_budget() if checking else send_budget())
    try:
        yield
    finally:
        _budget.reset(token)


def current_budget() -> RenderBudget | None:
    """The budget of the renders in progress, if a `render_deadline` is open."""
    return _budget.get()


def deadline_check() -> None:
    """Raise when the current budget is spent (for work between renders, such as Markdown)."""
    budget = _budget.get()
    if budget is not None:
        budget.check()


# --- ranges --------------------------------------------------------------------------------------


def range_length(items: range) -> int:
    """len(items), for a range of any length (len() stops at sys.maxsize)."""
    try:
        return len(items)
    except OverflowError:
        return max(0, -(-(items.stop - items.start) // items.step))


def range_contains(items: range, value: Any) -> bool:
    """`items contains value` in constant time. range.__contains__ compares a value that is not an int
    with every item in C, which nothing can interrupt: `(1..10000000000) contains 'x'` never ended. An
    item of a range is an int, so only a number equal to one can be in it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return False
    if not isinstance(value, int):
        if not (math.isfinite(value) and value == int(value)):  # 1.5, nan and infinity are in no range
            return False
        value = int(value)
    return value in items  # an int: arithmetic


# --- sizes ---------------------------------------------------------------------------------------


def text_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _weight(value: Any, budget: int) -> int:
    """About how many characters `value` makes as text, counting each copy of a shared item (a join or
    a comparison walks every copy). Stops counting once past `budget`."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple, dict)):
            if len(item) > budget:
                return budget + 1
            total += 1
            for child in item.items() if isinstance(item, dict) else item:
                if isinstance(child, str):  # most items: counted here, not pushed and popped
                    total += len(child)
                else:
                    stack.append(child)
        elif isinstance(item, range):
            try:
                total += len(item)
            except OverflowError:  # longer than sys.maxsize
                return budget + 1
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 1
        if total > budget:
            return total
    return total


def _value_check(value: Any, env: Environment) -> None:
    """Refuse a filter argument or result that is too big for the work a filter does on it."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return
    if isinstance(value, int):
        if value.bit_length() > _NUMBER_BITS_MAX:
            raise RenderLimitError(number_message())
        return
    if isinstance(value, str):
        if len(value) > env.output_stream_limit or text_bytes(value) > env.output_stream_limit:
            raise RenderLimitError(value_message())
        return
    if isinstance(value, (list, tuple, range, dict)):
        try:
            items = len(value)
        except OverflowError:  # a range longer than sys.maxsize
            items = env.loop_iteration_limit + 1
        if items > env.loop_iteration_limit:
            raise RenderLimitError(list_message())
        if _weight(value, env.output_stream_limit) > env.output_stream_limit:
            raise RenderLimitError(value_message())


# --- filters -------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A filter argument as python-liquid's string filters see it."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _replace_check(env: Environment, value: Any, old: Any = "", new: Any = "", *_: Any) -> None:
    """`replace` makes len(value) + count(old) × (len(new) − len(old)) characters: with an empty `old`, the
    square of its input. Refused before it is made."""
    value, old, new = _text(value), _text(old), _text(new)
    count = len(value) + 1 if old == "" else value.count(old)
    if len(value) + count * (len(new) - len(old)) > env.output_stream_limit:
        raise RenderLimitError(value_message())


def _join_check(env: Environment, items: Any, separator: Any = " ", *_: Any) -> None:
    """A join of n items repeats its separator n − 1 times."""
    if isinstance(items, (list, tuple)):
        count = len(flatten(items))
    elif isinstance(items, range):
        count = len(items)
    else:
        return
    size = _weight(items, env.output_stream_limit) + max(count - 1, 0) * len(_text(separator))
    if size > env.output_stream_limit:
        raise RenderLimitError(value_message())


_PRECHECKS = {"replace": _replace_check, "join": _join_check}
# Exceptions python-liquid's filters let escape on odd input (a timestamp out of range, `round` of
# infinity, HTMLParser's assertion): a filter error of the template, never a crash.
_FILTER_FAILURES = (ArithmeticError, ValueError, AssertionError, LookupError, UnicodeError, OSError)


def guarded_filter(name: str, func: Any) -> Any:
    """`func` with the deadline checked, and its arguments and result bounded."""
    forwards_context = getattr(func, "with_context", False)
    precheck = _PRECHECKS.get(name)

    @functools.wraps(func)
    def guarded(left: Any, *args: Any, context: _Deadlined, **kwargs: Any) -> Any:
        context.deadline_check()
        env = context.env
        arguments = {key: value for key, value in kwargs.items() if key != "environment"}
        for value in (left, *args, *arguments.values()):
            _value_check(value, env)
        if precheck is not None:
            precheck(env, left, *args, *arguments.values())
        if forwards_context:
            kwargs["context"] = context
        try:
            result = func(left, *args, **kwargs)
        except LiquidError:
            raise
        except _FILTER_FAILURES as exc:
            raise FilterError(f"{name}: {exc}", token=None) from exc
        _value_check(result, env)
        return result

    guarded.__dict__.pop("filter_async", None)  # async rendering is not used; it must not bypass the guard
    guarded.with_context = True
    return guarded


_MISSING = object()


@sequence_filter
def uniq_filter(sequence: list[Any], key: object = None) -> list[object]:
    """python-liquid's `uniq`, in linear time (its own compares every item with every earlier one)."""
    seen: set[Any] = set()
    unique = []
    for obj in sequence:
        item = obj
        if key is not None:
            try:
                item = obj[key]
            except KeyError:
                item = _MISSING
            except TypeError as err:
                raise FilterArgumentError(f"can't read property '{key}' of {obj}", token=None) from err
        try:
            mark: Any = (0, item)
            hash(mark)
        except TypeError:  # a dict or a list: compared by its content
            try:
                mark = (1, json.dumps(item, sort_keys=True, default=str))
            except (TypeError, ValueError):
                mark = (2, repr(item))
        if mark not in seen:
            seen.add(mark)
            unique.append(obj)
    return unique


@functools.wraps(liquid_concat)
def concat_filter(sequence: Any, second_array: Any) -> Any:
    """python-liquid's `concat`, which also takes a range (`| concat: (1..3)`); its own fails on one with
    a TypeError of its own making rather than a message."""
    if isinstance(second_array, range):
        second_array = list(second_array)  # no longer than LIQUID_LOOP_LIMIT: the guard checked it
    if not isinstance(second_array, (list, tuple)):
        raise FilterArgumentError(f"concat expected an array, found {value_kind(second_array)}", token=None)
    return liquid_concat(sequence, second_array)


def value_kind(value: Any) -> str:
    """What a value is, in a template author's words (not "Markup" or "str")."""
    if is_undefined(value):
        return "an undefined variable"
    if isinstance(value, bool):
        return "true or false"
    if value is None:
        return "nil"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple, range)):
        return "an array"
    return type(value).__name__


@functools.wraps(liquid_date)
def date_filter(value: Any, fmt: Any, *, environment: Environment) -> str:
    if isinstance(value, str) and len(value) > DATE_TEXT_MAX:
        return value
    return liquid_date(value, fmt, environment=environment)


_HTML_MARKUP = re.compile(r"<!--|<(script|style)\b|<[^<>]*>", re.IGNORECASE)


@with_environment
@string_filter
def strip_html_filter(value: str, *, environment: Environment) -> str:
    """Text without its tags, comments, scripts and styles, in one pass (python-liquid's uses
    HTMLParser: slow on long input, and it raises on some)."""
    if "<" not in value:
        return value
    kept = []
    position = 0
    while (found := _HTML_MARKUP.search(value, position)) is not None:
        kept.append(value[position : found.start()])
        if found.group() == "<!--":
            end = value.find("-->", found.end())
            position = len(value) if end < 0 else end + 3
        elif found.group(1):
            close = re.compile(rf"</{found.group(1)}\s*>", re.IGNORECASE).search(value, found.end())
            position = len(value) if close is None else close.end()
        else:
            position = found.end()
    kept.append(value[position:])
    stripped = "".join(kept)
    # Safe HTML with its tags taken out is still safe (python-liquid's strip_html does the same).
    return Markup(stripped) if environment.autoescape and isinstance(value, Markup) else stripped  # noqa: S704
