from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import team_views
from accounts import views as accounts_views

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", accounts_views.signup, name="signup"),
    path("password-reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("teams/switch/", accounts_views.team_switch, name="team-switch"),
    path("teams/new/", accounts_views.team_new, name="team-new"),
    path("team/", team_views.team_members, name="team-members"),
    path("team/members/<int:pk>/role/", team_views.team_member_role, name="team-member-role"),
    path("team/members/<int:pk>/remove/", team_views.team_member_remove, name="team-member-remove"),
    path("team/invitations/<int:pk>/revoke/", team_views.team_invitation_revoke, name="team-invitation-revoke"),
    path("invitations/<str:token>/", accounts_views.invitation, name="invitation"),
    path("invitations/<str:token>/signup/", accounts_views.invitation_signup, name="invitation-signup"),
    path("audience/", include("contacts.urls")),
    path("settings/webhooks/stripe/", include("webhooks.endpoint_urls")),
    path("settings/api/", include("api.settings_urls")),
    path("settings/sending/", include("accounts.sending_urls")),
    path("events/webhooks/", include("webhooks.log_urls")),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("webhooks/", include("webhooks.urls")),
    path("anymail/", include("loops.provider_webhooks")),
    path("", include("loops.urls")),
    path("healthz", views.healthz, name="healthz"),
]
