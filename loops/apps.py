from django.apps import AppConfig


class LoopsConfig(AppConfig):
    name = "loops"

    def ready(self) -> None:
        from contacts.signals import contacts_created

        from .services import contacts_added

        def on_contacts_created(sender, contacts, **kwargs):
            # Any source that creates a contact (Stripe, the app, the API, the admin) starts "Contact added" loops.
            contacts_added(contacts=contacts)

        contacts_created.connect(on_contacts_created, dispatch_uid="loops.contacts_added", weak=False)
