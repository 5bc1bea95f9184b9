"""Account use cases: teams, members, invitations, sender domains.

One module per use case. Views, API views, tasks, commands and the admin call these. Each public name is
re-exported here, so `from accounts.services import ...` works (operators' scripts in `manage.py shell`)."""

from .senders import (
    LABEL,
    WHERE,
    domain_normalize,
    sender_domain_add,
    sender_domain_check_request,
    sender_domain_delete,
    sender_domain_verify,
    sender_email_allowed,
    sender_email_problem,
)
from .teams import (
    INVITATION_DAYS,
    invitation_accept,
    invitation_create,
    invitation_email_matches,
    invitation_for,
    invitation_revoke,
    invitation_roles_for,
    invitations_open,
    membership_add,
    membership_can_remove,
    membership_remove,
    membership_role_set,
    team_create,
    team_get_or_create,
    user_signup,
    user_signup_invited,
)

__all__ = [
    "INVITATION_DAYS",
    "LABEL",
    "WHERE",
    "domain_normalize",
    "invitation_accept",
    "invitation_create",
    "invitation_email_matches",
    "invitation_for",
    "invitation_revoke",
    "invitation_roles_for",
    "invitations_open",
    "membership_add",
    "membership_can_remove",
    "membership_remove",
    "membership_role_set",
    "sender_domain_add",
    "sender_domain_check_request",
    "sender_domain_delete",
    "sender_domain_verify",
    "sender_email_allowed",
    "sender_email_problem",
    "team_create",
    "team_get_or_create",
    "user_signup",
    "user_signup_invited",
]
