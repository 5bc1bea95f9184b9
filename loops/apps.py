from django.apps import AppConfig


class LoopsConfig(AppConfig):
    name = "loops"

    def ready(self) -> None:
        from contacts.signals import contact_created

        from .services import contact_added

        def on_contact_created(sender, contact, **kwargs):
            # Any source that creates a contact (Stripe, the app, the API, the admin) starts "Contact added" loops.
            contact_added(contact=contact)

        contact_created.connect(on_contact_created, dispatch_uid="loops.contact_added", weak=False)
