from django.contrib import admin

from .models import Invitation, Membership, SenderDomain, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "team__name"]
    autocomplete_fields = ["user", "team"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "team", "role", "invited_by", "created_at", "accepted_at"]
    search_fields = ["email", "team__name"]
    # The token is the invitation itself: whoever sees it could join as the invitee's email. Never shown.
    exclude = ["token"]
    readonly_fields = ["created_at", "accepted_at", "accepted_by"]

    def has_add_permission(self, request) -> bool:
        return False  # invitations are sent from the Team page, which mails the link


@admin.register(SenderDomain)
class SenderDomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "team", "verified_at", "last_checked_at"]
    search_fields = ["domain", "team__name"]
    readonly_fields = [
        "token",
        "created_at",
        "verified_at",
        "last_checked_at",
        "last_error",
        "check_requested_at",
        "check_pending",
    ]
