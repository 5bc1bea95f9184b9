from celery import shared_task

from .models import SenderDomain
from .senders import sender_domain_verify


@shared_task(acks_late=True)
def check_sender_domain(sender_domain_id: int) -> bool:
    """The DNS lookup Verify asked for (accounts.senders.sender_domain_check_request). Running it twice
    (a redelivery) only looks again. False when the domain was deleted meanwhile: nothing to check."""
    sender_domain = SenderDomain.objects.filter(pk=sender_domain_id).first()
    if sender_domain is None:
        return False
    sender_domain_verify(sender_domain=sender_domain)
    return True
