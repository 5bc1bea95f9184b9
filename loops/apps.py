from django.apps import AppConfig


class LoopsConfig(AppConfig):
    name = "loops"

    def ready(self) -> None:
        from contacts.signals import contacts_changed, contacts_created, lists_joined

        from .services import contacts_added, contacts_updated
        from .services import lists_joined as enrol_list_joined

        def on_contacts_created(sender, contacts, **kwargs):
            # Any source that creates a contact (Stripe, the app, the API, the admin) starts "Contact added" loops.
            contacts_added(contacts=contacts)

        def on_contacts_changed(sender, changes, **kwargs):
            contacts_updated(changes=changes)

        def on_lists_joined(sender, list_ids, contact=None, contacts=(), **kwargs):
            # One contact (its lists page, the API), or many that joined the same lists (a bulk action)
            enrol_list_joined(contacts=[contact] if contact is not None else list(contacts), list_ids=list_ids)

        from contacts.timeline import list_uses_register, property_uses_register, timeline_source_register

        from .timeline import contact_story, list_usage, property_usage

        timeline_source_register(name="loops", source=contact_story)
        property_uses_register(name="loops", source=property_usage)
        list_uses_register(name="loops", source=list_usage)

        contacts_created.connect(on_contacts_created, dispatch_uid="loops.contacts_added", weak=False)
        contacts_changed.connect(on_contacts_changed, dispatch_uid="loops.contacts_updated", weak=False)
        lists_joined.connect(on_lists_joined, dispatch_uid="loops.lists_joined", weak=False)

        from anymail.signals import tracking

        from .provider_webhooks import tracking_received

        tracking.connect(tracking_received, dispatch_uid="loops.provider_tracking", weak=False)
