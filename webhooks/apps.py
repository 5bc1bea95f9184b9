from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from loops.triggers import TriggerSource, trigger_source_register

        from .models import Endpoint, EventSetting
        from .selectors import (
            stripe_event_properties,
            stripe_types_firing,
            stripe_types_suggesting,
            trigger_names_configured,
        )
        from .stripe_events import SUPPORTED_EVENTS

        # The names Stripe events fire, offered in the loop editor (loops never imports webhooks).
        trigger_source_register(
            name="stripe",
            source=TriggerSource(
                suggested=lambda: [s.suggested_trigger for s in SUPPORTED_EVENTS.values() if s.suggested_trigger],
                configured=lambda team, limit: trigger_names_configured(team=team, limit=limit),
                firing=lambda team, name: [s.label for s in stripe_types_firing(team=team, name=name)],
                suggesting=lambda name: [s.label for s in stripe_types_suggesting(name)],
                properties=stripe_event_properties,
            ),
        )

        # A contact's timeline shows the webhooks behind its Stripe events (contacts never imports webhooks).
        from contacts.timeline import timeline_source_register

        from .selectors import contact_deliveries

        timeline_source_register(name="webhooks", source=contact_deliveries)

        # The receive path's cache of endpoints (services.receiving), as django.contrib.sites clears its own: any
        # saved or deleted endpoint or type setting, from the app, the admin or a shell, is read afresh here.
        for model in (Endpoint, EventSetting):
            for signal in (post_save, post_delete):
                signal.connect(_forget_endpoints, sender=model, dispatch_uid=f"endpoints_forget:{model.__name__}")


def _forget_endpoints(**kwargs: object) -> None:
    from .services.receiving import endpoints_forget

    endpoints_forget()
