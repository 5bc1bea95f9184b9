from django.contrib import admin

from .models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "contact", "team", "source", "created_at"]
    list_filter = ["name", "source", "team"]
    search_fields = ["name", "contact__email", "idempotency_key"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["contact"]
    list_select_related = ["contact", "team"]
