from django.apps import AppConfig


class LoopsConfig(AppConfig):
    name = "loops"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from contacts.models import Contact

        from .services import contact_added

        def on_contact_saved(sender, instance, created, raw=False, **kwargs):
            # Any source that creates a contact (Stripe, the admin, the API) starts "Contact added" loops.
            if created and not raw:
                contact_added(contact=instance)

        post_save.connect(on_contact_saved, sender=Contact, dispatch_uid="loops.contact_added", weak=False)
