from django.contrib import admin

from .forms import ContactAdminForm
from .models import Contact
from .services import contact_save


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactAdminForm
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
        # Through the service, as the app saves a contact: who unsubscribed is recorded, the properties are
        # typed, and a new contact is announced (contacts_created), so "Contact added" loops start. The form
        # checked what the service refuses; a race lost meanwhile is the only error left to it.
        contact_save(
            team=obj.team,
            contact=obj,
            properties=obj.properties or {},
            was_subscribed=form.initial.get("subscribed", True) if change else True,
        )
