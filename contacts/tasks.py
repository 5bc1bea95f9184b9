"""The Audience's background work: CSV imports (contacts.services.importing)."""

from celery import shared_task

from loopsync import work

from .services import importing


@shared_task(name=work.RUN_CONTACT_IMPORT)
def run_contact_import(import_id: int) -> str:
    """An import for a time budget; then a fresh task takes over from where it stopped."""
    return importing.IMPORTS.task_run(
        import_id, lambda: importing.import_run(import_id=import_id, budget_seconds=importing.TASK_BUDGET_SECONDS)
    )


@shared_task(name=work.SWEEP_CONTACT_IMPORTS)
def sweep_contact_imports() -> int:
    return work.guarded("Sweeping contact imports", importing.imports_sweep, default=0)
