"""The Liquid environment every template is parsed and rendered with: python-liquid's, with the limits
of loops/render_limits.py applied to its context (loops, lookups, assignments, output), its
expressions (`for` and `tablerow` loops, `contains`; no `include` or `render`), its filters, its lexer
and its parser."""

import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from liquid import BoundTemplate, Environment, RenderContext
from liquid.builtin.expressions import LoopExpression
from liquid.builtin.expressions.logical import ContainsExpression
from liquid.exceptions import LiquidError, LiquidSyntaxError, LiquidTypeError
from liquid.expression import Expression
from liquid.output import LimitedStringIO
from liquid.token import TOKEN_EOF, TOKEN_EXPRESSION, TOKEN_TAG, Token
from liquid.undefined import UNDEFINED

from .render_limits import (
    RenderLimitError,
    concat_filter,
    current_budget,
    date_filter,
    depth_message,
    guarded_filter,
    loop_message,
    offset_message,
    operators_message,
    range_contains,
    range_length,
    send_budget,
    strip_html_filter,
    uniq_filter,
    value_kind,
)

# python-liquid's expression tokenizer scans the rest of an expression from every `(` and `['`; with
# thousands of them in one expression that is quadratic (10,000 `(` took a second). Real ones have a few.
EXPRESSION_BRACKETS_MAX = 100
# python-liquid parses `a and b and …` by recursion: about 500 of them exhaust Python's stack.
EXPRESSION_OPERATORS_MAX = 100
# Unclosed openers the lexer may retry, times the characters it scans for each: python-liquid's lexer
# scans to the end of the source for every `{{` after the last `}}` (and every `{% raw %}` after the
# last `{% endraw %}`), which is quadratic; past this many characters scanned it takes a noticeable time.
_LEXER_SCAN_MAX = 200_000


def brackets_message() -> str:
    return f"an expression is limited to {EXPRESSION_BRACKETS_MAX} brackets and parentheses"


# --- loops, lookups and output -------------------------------------------------------------------


class _Output(LimitedStringIO):
    """python-liquid's limited output buffer, which also keeps the time budget."""

    def __init__(self, limit: int, context: "_Context") -> None:
        super().__init__(limit=limit)
        self._context = context

    def write(self, text: str) -> int:
        self._context.deadline_check()
        return super().write(text)


class _Context(RenderContext):
    __slots__ = ("_budget", "_iterations")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._budget = current_budget() or send_budget()
        self._iterations = 0

    def deadline_check(self) -> None:
        self._budget.check()

    def _counted(self, items: Iterator[Any]) -> Iterator[Any]:
        # python-liquid checks each loop's length (times its enclosing loops') before it starts; this
        # counts every iteration of the render, so loops one after another are bounded too.
        limit = self.env.loop_iteration_limit
        for item in items:
            self._iterations += 1
            if self._iterations > limit:
                raise RenderLimitError(loop_message())
            self.deadline_check()
            yield item

    def loop(self, namespace, forloop):  # noqa: ANN001, ANN201 - python-liquid's signature
        forloop.it = self._counted(forloop.it)
        return super().loop(namespace, forloop)

    def get(self, path, *, token, default=UNDEFINED):  # noqa: ANN001, ANN201 - python-liquid's signature
        self.deadline_check()
        return super().get(path, token=token, default=default)

    def assign(self, key: str, val: Any) -> None:
        self.deadline_check()
        super().assign(key, val)

    def get_buffer(self, buf=None) -> _Output:  # noqa: ANN001 - python-liquid's signature
        carry = buf.size if isinstance(buf, LimitedStringIO) else 0
        return _Output(self.env.output_stream_limit - carry, self)

    def get_item(self, obj: Any, key: Any) -> Any:
        if isinstance(obj, range) and key == "size":
            return range_length(obj)  # len() raises OverflowError past sys.maxsize
        return super().get_item(obj, key)


class _Template(BoundTemplate):
    context_class = _Context

    def render(self, *args: Any, **kwargs: Any) -> str:
        context = self.context_class(self, globals=self.make_globals(dict(*args, **kwargs)))
        buffer = context.get_buffer()
        self.render_with_context(context, buffer)
        return buffer.getvalue()


class _BoundedLoopExpression(LoopExpression):
    """A `for` or `tablerow` loop's expression. python-liquid skips an offset item by item (islice), in C:
    `(1..n) offset: n - 10` with n a contact's 10^18 never ends. A range is sliced by index here, and an
    offset is at most LIQUID_LOOP_LIMIT for anything else."""

    __slots__ = ()

    def _to_iter(self, obj, context):  # noqa: ANN001, ANN202 - python-liquid's
        if isinstance(obj, range):
            return obj, range_length(obj)  # sliced, then iterated, in _slice
        return super()._to_iter(obj, context)

    def _to_int(self, obj: object, *, token: Token) -> int:
        try:
            return super()._to_int(obj, token=token)
        except LiquidTypeError:
            raise LiquidTypeError(f"expected a whole number, found {value_kind(obj)}", token=token) from None
        except OverflowError:  # int(infinity)
            raise LiquidTypeError("expected a whole number, found infinity", token=token) from None

    def _slice(self, it, length, context, *, limit, offset):  # noqa: ANN001, ANN202, C901 - python-liquid's
        env = context.env
        if isinstance(offset, int) and offset > env.loop_iteration_limit:
            raise RenderLimitError(offset_message())
        if not isinstance(it, range):
            if self.reversed and length > env.loop_iteration_limit:
                # python-liquid makes a list of a reversed loop's items before it checks the loop limit.
                raise RenderLimitError(loop_message())
            return super()._slice(it, length, context, limit=limit, offset=offset)
        # python-liquid's arithmetic, on a range: by index, never by skipping items.
        offset_key = f"{self.identifier}-{self.iterable}"
        start = context.stopindex(offset_key) if offset == "continue" else int(offset or 0)
        stop = None if limit is None else limit + start
        start = min(max(start, 0), length)
        stop = min(stop or length, length)
        context.stopindex(key=offset_key, index=stop)
        items = it[start:stop] if start < stop else range(0)
        return iter(reversed(items) if self.reversed else items), range_length(items)


class _BoundedContainsExpression(ContainsExpression):
    """`contains`, answered arithmetically for a range (see render_limits.range_contains)."""

    __slots__ = ()

    def evaluate(self, context: RenderContext) -> object:
        left = self.left.evaluate(context)
        if isinstance(left, range):
            return range_contains(left, self.right.evaluate(context))
        return super().evaluate(context)


_BOUNDED_EXPRESSIONS = {LoopExpression: _BoundedLoopExpression, ContainsExpression: _BoundedContainsExpression}


def _bound_expressions(template: BoundTemplate) -> None:
    """Swap every loop and `contains` expression of a parsed template for its bounded kind (the same
    slots: only the class changes). Iterative: a tree's depth is bounded, but not by much."""
    static = RenderContext(template)
    nodes: list[Any] = list(template.nodes)
    expressions: list[Expression] = []
    while nodes or expressions:
        if expressions:
            expression = expressions.pop()
            bounded = _BOUNDED_EXPRESSIONS.get(type(expression))
            if bounded is not None:
                expression.__class__ = bounded
            expressions.extend(expression.children())
            continue
        node = nodes.pop()
        expressions.extend(node.expressions())
        nodes.extend(node.children(static, include_partials=False))


# --- the lexer -----------------------------------------------------------------------------------

_OPENING_BRACES = re.compile(r"\{(?=\{)")
_RAW_OPEN = re.compile(r"\{%-?\s*+(raw|doc)\s*+-?%\}")
_RAW_CLOSE = {"raw": re.compile(r"\{%-?\s*+endraw\s*+-?%\}"), "doc": re.compile(r"\{%-?\s*+enddoc\s*+-?%\}")}


def lexer_problem(source: str) -> tuple[str, int] | None:
    """(reason, index) when `source` would make python-liquid's lexer quadratic; python-liquid refuses
    all of these sources too, but only once it has scanned to their end for each opener."""
    tail_start = source.rfind("}}") + 2 if "}}" in source else 0
    openers = [found.start() for found in _OPENING_BRACES.finditer(source, tail_start)]
    if len(openers) * (len(source) - tail_start) > _LEXER_SCAN_MAX:
        return "'{{' is never closed with '}}'", openers[0]
    for name, closing in _RAW_CLOSE.items():
        last_close = max((found.end() for found in closing.finditer(source)), default=0)
        opened = [found.start() for found in _RAW_OPEN.finditer(source, last_close) if found.group(1) == name]
        if len(opened) * (len(source) - last_close) > _LEXER_SCAN_MAX:
            return f"'{{% {name} %}}' is never closed with '{{% end{name} %}}'", opened[0]
    return None


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LOGICAL = re.compile(r"\b(?:and|or)\b")


def _expressions_checked(tokens: Iterator[Token]) -> Iterator[Token]:
    """The lexer's tokens, refusing an expression with more brackets than EXPRESSION_BRACKETS_MAX or more
    `and`/`or` than EXPRESSION_OPERATORS_MAX (a `{% liquid %}` tag's lines are expressions of their own)."""
    tag = ""
    for token in tokens:
        if token.kind == TOKEN_EXPRESSION and tag != "#":
            parts = token.value.splitlines() if tag == "liquid" else (token.value,)
            if any(part.count("(") + part.count("[") > EXPRESSION_BRACKETS_MAX for part in parts):
                raise LiquidSyntaxError(brackets_message(), token=token)
            for part in parts:
                if ("and" in part or "or" in part) and len(
                    _LOGICAL.findall(_QUOTED.sub("", part))
                ) > EXPRESSION_OPERATORS_MAX:
                    raise LiquidSyntaxError(operators_message(EXPRESSION_OPERATORS_MAX), token=token)
        tag = token.value if token.kind == TOKEN_TAG else ""
        yield token


# --- the environment -----------------------------------------------------------------------------


class BoundedEnvironment(Environment):
    """A Liquid environment whose every render is bounded by the LIQUID_* settings (read at each render,
    so a change of settings applies at once)."""

    template_class = _Template

    @property
    def loop_iteration_limit(self) -> int:  # type: ignore[override]
        return settings.LIQUID_LOOP_LIMIT

    @property
    def output_stream_limit(self) -> int:  # type: ignore[override]
        return settings.LIQUID_OUTPUT_LIMIT

    @property
    def local_namespace_limit(self) -> int:  # type: ignore[override]
        return settings.LIQUID_NAMESPACE_LIMIT

    @property
    def block_nesting_limit(self) -> int:  # type: ignore[override]
        return settings.LIQUID_NESTING_LIMIT

    @property
    def context_depth_limit(self) -> int:  # type: ignore[override]
        # A render starts with 5 scopes (locals, globals, built-ins, counters, the template's); past
        # those, each level is a loop, which block nesting already bounds: that limit is the one hit.
        return settings.LIQUID_NESTING_LIMIT + 5

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        del self.tags["include"], self.tags["render"]
        self.filters.update(
            {"uniq": uniq_filter, "date": date_filter, "strip_html": strip_html_filter, "concat": concat_filter}
        )
        self.filters = {name: guarded_filter(name, func) for name, func in self.filters.items()}

    def from_string(self, source: str, *args: Any, **kwargs: Any) -> BoundTemplate:
        """python-liquid's, with its loops and `contains` bounded. python-liquid turns any exception while
        parsing into LiquidError("unexpected liquid parsing error"): Celery's SoftTimeLimitExceeded
        (the task must end, not fail this run for good), MemoryError, RecursionError. Each is itself
        again here, a RecursionError as the limit it stands for."""
        try:
            template = super().from_string(source, *args, **kwargs)
        except LiquidError as exc:
            cause = exc.__cause__
            if type(exc) is not LiquidError or cause is None or isinstance(cause, LiquidError):
                raise
            if isinstance(cause, RecursionError):
                raise RenderLimitError(depth_message()) from None
            raise cause from None
        _bound_expressions(template)
        return template

    def tokenizer(self):  # noqa: ANN201 - python-liquid's
        lex = super().tokenizer()

        def bounded(source: str) -> Iterator[Token]:
            problem = lexer_problem(source)
            if problem is not None:
                reason, index = problem
                raise LiquidSyntaxError(reason, token=Token(TOKEN_EOF, source[index : index + 2], index, source))
            return _expressions_checked(lex(source))

        return bounded
