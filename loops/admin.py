from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from contacts.admin import ContactAdmin

from .models import EmailActivity, EmailMessage, Event, Loop, LoopRun, LoopStep, LoopTemplate
from .services import loop_activate, loop_create_from_template, loop_pause, step_remove, step_save


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "contact", "team", "source", "created_at"]
    list_filter = ["name", "source", "team"]
    search_fields = ["name", "contact__email", "idempotency_key"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["contact"]
    list_select_related = ["contact", "team"]


class LoopStepInline(admin.StackedInline):
    """A loop's steps: their content. Where a step stands in the tree (adding, removing, moving one) is the
    loop editor's work, through the loops services, which keep the runs under way in place."""

    model = LoopStep
    extra = 0
    exclude = ["team"]
    ordering = ["id"]
    readonly_fields = ["parent", "port"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Loop)
class LoopAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "trigger_label", "status", "updated_at"]
    list_filter = ["status", "trigger", "team"]
    search_fields = ["name", "trigger_event_name"]
    readonly_fields = ["status", "template_slug"]  # activation goes through its checks: use the actions
    inlines = [LoopStepInline]
    actions = ["activate", "pause"]

    def save_formset(self, request, form, formset, change):
        """Through the services, as the editor saves steps: a refused change (the loop was activated meanwhile)
        is reported, not saved behind their back."""
        try:
            for step in formset.save(commit=False):
                step_save(step=step)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)

    @admin.action(description="Activate the selected loops")
    def activate(self, request, queryset):
        for loop in queryset:
            try:
                loop_activate(loop=loop)
                self.message_user(request, f"“{loop.name}” is active.", messages.SUCCESS)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)

    @admin.action(description="Pause the selected loops")
    def pause(self, request, queryset):
        for loop in queryset:
            loop_pause(loop=loop)
        self.message_user(request, f"Paused {queryset.count()} loop(s).", messages.SUCCESS)


@admin.register(LoopStep)
class LoopStepAdmin(admin.ModelAdmin):
    """Steps one by one: their content, as in the loop's page. Added, removed and reordered only there."""

    list_display = ["loop", "kind", "subject"]
    list_filter = ["kind"]
    exclude = ["team"]
    readonly_fields = ["loop", "parent", "port"]

    def has_add_permission(self, request):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through step_remove, which mends the tree
        return actions

    def save_model(self, request, obj, form, change):
        step_save(step=obj)

    def delete_model(self, request, obj):
        step_remove(step=obj)


@admin.register(LoopRun)
class LoopRunAdmin(admin.ModelAdmin):
    list_display = ["contact", "loop", "status", "step", "waiting_for", "next_due_at", "created_at"]
    list_filter = ["status", "loop"]
    search_fields = ["contact__email", "loop__name"]
    raw_id_fields = ["contact", "event", "step"]
    readonly_fields = ["history", "passed", "choices", "created_at", "updated_at"]
    list_select_related = ["contact", "loop"]


@admin.register(EmailMessage)
class EmailMessageAdmin(admin.ModelAdmin):
    list_display = ["subject", "to_email", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status"]
    search_fields = ["to_email", "subject", "provider_message_id"]
    raw_id_fields = ["contact", "run", "step"]
    readonly_fields = [f.name for f in EmailMessage._meta.fields]
    list_select_related = ["contact"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(EmailActivity)
class EmailActivityAdmin(admin.ModelAdmin):
    """Opens, clicks and what the provider reported: recorded by loops.services.tracking, never edited."""

    list_display = ["kind", "message", "contact", "team", "created_at"]
    list_filter = ["kind"]
    search_fields = ["message__to_email", "url", "provider_event_id"]
    raw_id_fields = ["message", "contact"]
    readonly_fields = [f.name for f in EmailActivity._meta.fields]
    list_select_related = ["message", "contact", "team"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(LoopTemplate)
class LoopTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "trigger_event_name", "description"]
    readonly_fields = ["slug"]
    actions = ["create_loop"]

    @admin.action(description="Create a draft loop from this template for my current team")
    def create_loop(self, request, queryset):
        team = getattr(request, "team", None)
        if not team:
            self.message_user(request, "You are not a member of any team.", messages.ERROR)
            return
        for template in queryset:
            loop = loop_create_from_template(team=team, template=template)
            self.message_user(request, f"Created the draft loop “{loop.name}” for {team.name}.", messages.SUCCESS)


class EmailMessageInline(admin.TabularInline):
    """The emails sent to a contact, on the contact's admin page."""

    model = EmailMessage
    fk_name = "contact"
    fields = ["subject", "status", "created_at", "sent_at", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class LoopRunInline(admin.TabularInline):
    model = LoopRun
    fk_name = "contact"
    fields = ["loop", "status", "step", "waiting_for", "next_due_at", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


# loops depends on contacts, never the other way: the contact page gets its loop sections from here.
ContactAdmin.inlines = [*ContactAdmin.inlines, LoopRunInline, EmailMessageInline]
