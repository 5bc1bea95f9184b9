"""A loop's steps as a tree: reading it (`Tree`), where a run goes next, and changing it while runs are under way.

Every step but the root hangs from one port of its parent (LoopStep.parent, .port): one port for most kinds,
one per path of a branch or variant of an experiment. A run's next step is the first step on its way from the
root that it has not passed (LoopRun.passed), following the port it took at each branch (LoopRun.choices). So:
- adding a step puts it on a port, before what hung there; runs already past that point have it marked passed,
  so a step added behind a run is not sent to it late;
- removing a step hangs its child where it was; runs at it go on with the next step;
- moving a step up or down swaps it with its neighbour in a chain;
and no run does a step twice or misses one that is ahead of it.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from loopsync import work

from ..models import PASSED_BEHIND, Loop, LoopRun, LoopStep, step_key

MAX_STEPS = 200  # per loop: the editor draws them all, a run walks them


class Tree:
    """A loop's steps, loaded once, with their children by port."""

    def __init__(self, steps: Iterable[LoopStep]):
        self.steps: dict[int, LoopStep] = {step.id: step for step in steps}
        self.children: dict[tuple[int, int], LoopStep] = {}
        self.roots: list[LoopStep] = []
        for step in sorted(self.steps.values(), key=lambda s: s.id):
            if step.parent_id is None:
                self.roots.append(step)
            else:
                self.children[(step.parent_id, step.port)] = step

    @property
    def root(self) -> LoopStep | None:
        return self.roots[0] if self.roots else None

    def child(self, step: LoopStep, port: int = 0) -> LoopStep | None:
        return self.children.get((step.id, port))

    def next_for(self, passed: dict, choices: dict) -> LoopStep | None:
        """The first step on the run's way from the root that it has not passed; None: nothing is left."""
        step = self.root
        seen = 0
        while step is not None and step_key(step.id) in passed:
            seen += 1
            if seen > len(self.steps):  # a cycle (never saved by the services): stop rather than spin
                return None
            if branching(step):
                port = choices.get(step_key(step.id))
                if port is None:
                    return None  # passed a branch with no recorded way: the run ended there
                step = self.child(step, port)
            else:
                step = self.child(step, 0)
        return step

    def walk(self) -> Iterator[tuple[LoopStep, int]]:
        """Every step, depth first from the root (each port's chain in port order), with its depth in branches."""

        def down(step: LoopStep | None, depth: int) -> Iterator[tuple[LoopStep, int]]:
            while step is not None:
                yield step, depth
                if branching(step):
                    for port in range(step.ports):
                        yield from down(self.child(step, port), depth + 1)
                    return
                step = self.child(step, 0)

        for root in self.roots:
            yield from down(root, 0)

    def chain_from(self, step: LoopStep | None) -> list[LoopStep]:
        """`step` and what follows it on port 0, up to a branch (included) or the end."""
        chain = []
        while step is not None:
            chain.append(step)
            if branching(step):
                break
            step = self.child(step, 0)
        return chain

    def below(self, step: LoopStep) -> list[LoopStep]:
        """Every step under `step` (not itself)."""
        found, todo = [], [step]
        while todo:
            current = todo.pop()
            for port in range(max(current.ports, 1)):
                child = self.child(current, port)
                if child is not None:
                    found.append(child)
                    todo.append(child)
        return found


def tree_load(loop: Loop) -> Tree:
    return Tree(LoopStep.objects.filter(loop=loop))


def trees_load(loop_ids: Iterable[int]) -> dict[int, Tree]:
    by_loop: dict[int, list[LoopStep]] = defaultdict(list)
    for step in LoopStep.objects.filter(loop_id__in=set(loop_ids)):
        by_loop[step.loop_id].append(step)
    return defaultdict(lambda: Tree([]), {loop_id: Tree(steps) for loop_id, steps in by_loop.items()})


# --- changing the tree ---------------------------------------------------------------------------


class StepsLimit(ValidationError):
    pass


def _runs_in_progress(loop: Loop):
    return LoopRun.objects.filter(loop=loop, status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING])


def _lock(loop: Loop) -> Loop:
    """The loop's row, locked: one change of its shape at a time, and none while a runs batch advances its runs
    (they hold it FOR SHARE: runs._loops_hold)."""
    return Loop.objects.select_for_update().get(pk=loop.pk)


def _touch(loop: Loop) -> None:
    Loop.objects.filter(pk=loop.pk).update(updated_at=timezone.now())


TEMPORARY_PORT = 32767  # a child is parked here while another takes its port (one child per port)


@transaction.atomic
def step_insert(*, loop: Loop, step: LoopStep, parent: LoopStep | None, port: int = 0) -> LoopStep:
    """Put a validated, unsaved step on `parent`'s `port` (None: at the start of the loop), before the step that
    hung there, which now hangs from the new step. Runs already past that point (they passed, or are at, the step
    that hung there) have the new step marked passed: it is behind them."""
    loop = _lock(loop)
    tree = tree_load(loop)
    if len(tree.steps) >= MAX_STEPS:
        raise StepsLimit(f"A loop has at most {MAX_STEPS} steps.")
    if parent is not None and (parent.loop_id != loop.id or not 0 <= port < max(parent.ports, 1)):
        raise ValidationError("No such place in this loop.")
    after = tree.child(parent, port) if parent is not None else tree.root
    step.team_id, step.loop = loop.team_id, loop
    step.parent, step.port = parent, port if parent is not None else 0
    step.full_clean(exclude=["parent"])
    if after is not None:
        LoopStep.objects.filter(pk=after.pk).update(parent=parent, port=TEMPORARY_PORT)
    step.save()
    if after is not None:
        LoopStep.objects.filter(pk=after.pk).update(parent=step, port=0)
        _mark_passed_behind(loop, after, step)
    _touch(loop)
    return step


def _mark_passed_behind(loop: Loop, after: LoopStep, added: LoopStep) -> None:
    """Runs that passed `after`, or are in it (a timer or a wait they started), are past the place `added` took: it
    is marked passed for them. A run merely due to start `after` (its turn ran out just before) is not."""
    key = step_key(added.id)
    runs = _runs_in_progress(loop).select_for_update()
    for run in runs:
        if (run.step_id == after.id and run.wait_until is not None) or step_key(after.id) in run.passed:
            run.passed[key] = PASSED_BEHIND  # not counted as done on the loop's page
            LoopRun.objects.filter(pk=run.pk).update(passed=run.passed)
        elif run.step_id == after.id:  # due to start `after`: the new step is its next, and where it shows
            LoopRun.objects.filter(pk=run.pk).update(step=added)


@dataclass(frozen=True)
class Removal:
    steps: int  # removed: the step and, for a branch or an experiment, everything under it
    runs_moved: int  # at a removed step, moved on to what follows it
    runs_stopped: int  # at a removed step under a branch: stopped
    then: LoopStep | None = None  # for a step with one port: the step its runs go on with (None: they finish)
    then_number: int = 0  # that step's number on the loop's page


def step_removal(*, step: LoopStep) -> Removal:
    """What removing `step` would do (the confirmation page says it)."""
    tree = tree_load(step.loop)
    step = tree.steps[step.id]
    gone = [step, *tree.below(step)] if branching(step) else [step]
    at = _runs_in_progress(step.loop).filter(step_id__in=[s.id for s in gone]).count()
    if branching(step):
        return Removal(steps=len(gone), runs_moved=0, runs_stopped=at)
    then = tree.child(step, 0)
    numbers = {walked.id: number for number, (walked, _) in enumerate(tree.walk(), start=1)}
    return Removal(
        steps=1, runs_moved=at, runs_stopped=0, then=then, then_number=numbers.get(then.id, 0) if then else 0
    )


def branching(step: LoopStep) -> bool:
    """A branch or an experiment: a step with a port per path."""
    return step.kind in {LoopStep.Kind.BRANCH, LoopStep.Kind.EXPERIMENT}


@transaction.atomic
def step_remove(*, step: LoopStep) -> Removal:
    """Delete a step. A step with one port: its child hangs where it was, and runs at it go on with the next step
    on their way, due now. A branch or an experiment goes with everything under it; runs in there are stopped,
    with a note. Emails the steps sent stay on their contacts' pages."""
    loop = _lock(step.loop)
    tree = tree_load(loop)
    step = tree.steps.get(step.id) or step
    removal = step_removal(step=step)
    now = timezone.now()
    if branching(step):
        gone = [step.id, *(s.id for s in tree.below(step))]
        stopped = _runs_in_progress(loop).filter(step_id__in=gone)
        for run in stopped.select_for_update():
            run.history.append({"at": now.isoformat(), "step": run.step_id, "what": "stopped: its step was removed"})
            run.status, run.next_due_at, run.waiting_for, run.wait_until = LoopRun.Status.STOPPED, None, "", None
            run.save(update_fields=["history", "status", "next_due_at", "waiting_for", "wait_until", "updated_at"])
        LoopStep.objects.filter(pk=step.pk).delete()  # its subtree by cascade
    else:
        child = tree.child(step, 0)
        _runs_in_progress(loop).filter(step=step).update(
            status=LoopRun.Status.ACTIVE, step=None, wait_until=None, waiting_for="", next_due_at=now
        )
        if child is not None:
            LoopStep.objects.filter(pk=child.pk).update(parent=None, port=TEMPORARY_PORT)
        LoopStep.objects.filter(pk=step.pk).delete()
        if child is not None:
            LoopStep.objects.filter(pk=child.pk).update(parent_id=step.parent_id, port=step.port)
    _touch(loop)
    work.wake_on_commit(work.DRAIN_RUNS)
    return removal


@transaction.atomic
def step_move(*, step: LoopStep, offset: int) -> bool:
    """Swap a step with the one before it (-1) or after it (+1) in its chain. Only steps with one port swap (a
    branch is moved with what is under it by moving its neighbours). False when there is nothing to swap with.

    A run's next step is the first it has not passed from the root, so a run between the two, or waiting in
    one of them, still does each of them once."""
    loop = _lock(step.loop)
    tree = tree_load(loop)
    step = tree.steps[step.id]
    upper: LoopStep | None
    lower: LoopStep | None
    if offset < 0:
        upper = tree.steps.get(step.parent_id) if step.parent_id else None
        lower = step
    else:
        upper, lower = step, tree.child(step, 0)
    if upper is None or lower is None or lower.parent_id != upper.id or branching(upper) or branching(lower):
        return False
    below = tree.child(lower, 0)
    # upper (on P:p) -> lower -> below   becomes   lower (on P:p) -> upper -> below
    parked = [lower.pk] if below is None else [below.pk, lower.pk]
    LoopStep.objects.filter(pk__in=parked).update(parent=None, port=TEMPORARY_PORT)  # no parent: no port taken
    LoopStep.objects.filter(pk=upper.pk).update(parent=lower, port=0)
    LoopStep.objects.filter(pk=lower.pk).update(parent_id=upper.parent_id, port=upper.port)
    if below is not None:
        LoopStep.objects.filter(pk=below.pk).update(parent=upper, port=0)
    _touch(loop)
    return True
