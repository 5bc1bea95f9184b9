from celery import shared_task

from . import runs, sending


@shared_task(acks_late=True)
def advance_run(run_id: int) -> None:
    runs.run_advance(run_id=run_id)


@shared_task(bind=True, acks_late=True, max_retries=sending.MAX_SEND_ATTEMPTS)
def send_email(self, message_id: int) -> None:
    try:
        sending.email_send(message_id=message_id)
    except sending.TemporarySendError as exc:
        raise self.retry(exc=exc, countdown=min(30 * 2**self.request.retries, 3600)) from exc


@shared_task
def advance_due_runs() -> int:
    return runs.runs_advance_due()


@shared_task
def sweep_emails() -> dict[str, int]:
    return sending.emails_sweep()
