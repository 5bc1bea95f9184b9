from django import forms
from django.contrib import admin

from .models import Delivery, Endpoint, EventSetting
from .services import secret_validate
from .stripe_events import SUPPORTED_EVENTS


class EndpointAdminForm(forms.ModelForm):
    # The secret is never rendered back: leave blank to keep the saved one.
    signing_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current secret.",
    )

    class Meta:
        model = Endpoint
        fields = ["team", "platform", "mode", "name", "signing_secret", "tolerance", "enabled"]

    def clean_signing_secret(self):
        secret = self.cleaned_data.get("signing_secret", "")
        if not secret:
            return self.instance.signing_secret if self.instance.pk else ""
        try:
            return secret_validate(secret)
        except Exception as exc:
            raise forms.ValidationError(str(getattr(exc, "message", exc))) from exc


class EventSettingInline(admin.TabularInline):
    model = EventSetting
    extra = 0
    fields = ["event_type", "enabled", "trigger_event_name", "additional_event_name"]
    readonly_fields = ["event_type"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointAdminForm
    list_display = ["name", "team", "platform", "mode", "receive_path", "secret_hint", "enabled", "created_at"]
    list_filter = ["enabled", "platform", "mode"]
    search_fields = ["name", "team__name", "uuid"]
    readonly_fields = ["uuid", "receive_path", "secret_hint", "created_at", "updated_at"]
    inlines = [EventSettingInline]

    def get_readonly_fields(self, request, obj=None):
        # The mode is chosen when the endpoint is made: its deliveries and contacts belong to that mode.
        return [*self.readonly_fields, "mode"] if obj is not None else self.readonly_fields

    @admin.display(description="URL path")
    def receive_path(self, obj: Endpoint) -> str:
        return obj.get_receive_path() if obj.pk else ""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:
            endpoint = form.instance
            EventSetting.objects.bulk_create(
                [EventSetting(team_id=endpoint.team_id, endpoint=endpoint, event_type=t) for t in SUPPORTED_EVENTS],
                ignore_conflicts=True,
            )


@admin.register(EventSetting)
class EventSettingAdmin(admin.ModelAdmin):
    list_display = ["endpoint", "event_type", "enabled", "trigger_event_name"]
    list_filter = ["event_type", "enabled"]
    readonly_fields = ["team", "endpoint", "event_type"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["event_type", "status", "ignored_reason", "received_at", "attempts", "team", "stripe_event_id"]
    list_filter = ["status", "event_type", "ignored_reason", "livemode", "sample"]
    search_fields = ["stripe_event_id", "event_type"]
    list_select_related = ["team"]
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
