from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self) -> None:
        from loops.triggers import TriggerSource, trigger_source_register

        from .selectors import stripe_types_firing, stripe_types_suggesting, trigger_names_configured
        from .stripe_events import SUPPORTED_EVENTS

        # The names Stripe events fire, offered in the loop editor (loops never imports webhooks).
        trigger_source_register(
            name="stripe",
            source=TriggerSource(
                suggested=lambda: [s.suggested_trigger for s in SUPPORTED_EVENTS.values() if s.suggested_trigger],
                configured=lambda team, limit: trigger_names_configured(team=team, limit=limit),
                firing=lambda team, name: [s.label for s in stripe_types_firing(team=team, name=name)],
                suggesting=lambda name: [s.label for s in stripe_types_suggesting(name)],
            ),
        )
