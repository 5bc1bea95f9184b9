from django.contrib import admin

from .models import ApiKey, IdempotencyRecord
from .services import api_key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created on Settings → API or with `manage.py api_key create`: the full key exists only then."""

    list_display = ["name", "team", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "team__name"]
    list_select_related = ["team"]
    fields = ["team", "name", "prefix", "key_hash", "created_by", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["team", "prefix", "key_hash", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} key{'s' if count != 1 else ''}.")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["key", "team", "path", "status_code", "created_at"]
    list_filter = ["status_code"]
    search_fields = ["key", "path", "team__name"]
    list_select_related = ["team"]
    readonly_fields = ["team", "key", "path", "status_code", "body", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
