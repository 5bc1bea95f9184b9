from django.contrib import admin

from .models import Contact


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["email", "first_name", "last_name", "team", "source", "subscribed", "created_at"]
    list_filter = ["subscribed", "source", "team"]
    search_fields = ["email", "first_name", "last_name", "stripe_customer_id", "user_id"]
    readonly_fields = ["created_at", "updated_at", "stripe_event_created"]
    list_select_related = ["team"]
