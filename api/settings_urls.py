from django.urls import path

from . import settings_views as views

app_name = "api-settings"

urlpatterns = [
    path("", views.key_list, name="list"),
    path("new/", views.key_create, name="new"),
    path("<int:pk>/revoke/", views.key_revoke, name="revoke"),
]
