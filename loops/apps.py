from django.apps import AppConfig


class LoopsConfig(AppConfig):
    name = "loops"

    def ready(self) -> None:
        from contacts.signals import contact_created, contacts_created

        from .services import contact_added, contacts_added

        def on_contact_created(sender, contact, **kwargs):
            # Any source that creates a contact (Stripe, the app, the API, the admin) starts "Contact added" loops.
            contact_added(contact=contact)

        def on_contacts_created(sender, contacts, **kwargs):
            contacts_added(contacts=contacts)

        contact_created.connect(on_contact_created, dispatch_uid="loops.contact_added", weak=False)
        contacts_created.connect(on_contacts_created, dispatch_uid="loops.contacts_added", weak=False)
