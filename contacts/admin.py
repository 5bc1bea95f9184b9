from django.contrib import admin
from django.utils.timezone import now

from .models import Contact, UnsubscribedBy


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["email", "first_name", "last_name", "team", "source", "subscribed", "created_at"]
    list_filter = ["subscribed", "source", "team"]
    search_fields = ["email", "first_name", "last_name", "stripe_customer_id", "user_id"]
    # The mode is where the contact came from; who unsubscribed is recorded when `subscribed` changes.
    readonly_fields = [
        "livemode",
        "unsubscribed_by",
        "unsubscribed_at",
        "created_at",
        "updated_at",
        "stripe_event_created",
    ]
    list_select_related = ["team"]

    def save_model(self, request, obj, form, change):
        if "subscribed" in form.changed_data:
            obj.unsubscribed_by, obj.unsubscribed_at = ("", None) if obj.subscribed else (UnsubscribedBy.TEAM, now())
        super().save_model(request, obj, form, change)
