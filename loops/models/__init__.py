"""The loops app's models, a module per concept: events, loops (and their templates), steps, runs, emails."""

from .emails import EmailActivity, EmailMessage, TransactionalEmail
from .events import Event
from .loops import Loop, LoopTemplate
from .runs import PASSED_BEHIND, LoopRun, step_key
from .steps import LoopStep

__all__ = [
    "PASSED_BEHIND",
    "EmailActivity",
    "EmailMessage",
    "Event",
    "Loop",
    "LoopRun",
    "LoopStep",
    "LoopTemplate",
    "TransactionalEmail",
    "step_key",
]
