from celery import shared_task

from loopsync import work

from .models import SenderDomain
from .services.senders import sender_domain_verify


@shared_task(name=work.CHECK_SENDER_DOMAIN)
def check_sender_domain(sender_domain_id: int) -> bool:
    """The DNS lookup Verify asked for (accounts.services.senders.sender_domain_check_request). Running it twice
    (a redelivery) only looks again. False when the domain was deleted meanwhile: nothing to check, or when the
    database failed: a check nobody answers is "lost" after SENDER_DOMAIN_CHECK_INTERVAL, and Verify works again."""

    def check() -> bool:
        sender_domain = SenderDomain.objects.filter(pk=sender_domain_id).first()
        if sender_domain is None:
            return False
        sender_domain_verify(sender_domain=sender_domain)
        return True

    return work.guarded(f"Checking sender domain {sender_domain_id}", check, default=False)
