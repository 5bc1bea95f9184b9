from django.urls import path

from . import sending_views as views

app_name = "sending-settings"

urlpatterns = [
    path("", views.sending_settings, name="list"),
    path("tracking/", views.tracking_set, name="tracking"),
    path("domains/new/", views.sender_domain_new, name="new"),
    path("domains/<int:pk>/verify/", views.sender_domain_check, name="verify"),
    path("domains/<int:pk>/status/", views.sender_domain_status, name="status"),
    path("domains/<int:pk>/delete/", views.sender_domain_remove, name="delete"),
]
