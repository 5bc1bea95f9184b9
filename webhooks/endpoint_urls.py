from django.urls import path

from . import endpoint_views as views

app_name = "webhook-settings"

urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("new/", views.endpoint_new, name="new"),
    path("<int:pk>/", views.endpoint_detail, name="detail"),
    path("<int:pk>/secret/", views.endpoint_secret, name="secret"),
    path("<int:pk>/events/", views.endpoint_events, name="events"),
    path("<int:pk>/options/", views.endpoint_options, name="options"),
    path("<int:pk>/stripe-key/", views.endpoint_api_key, name="api-key"),
    path("<int:pk>/sync/<str:kind>/", views.endpoint_sync_start, name="sync"),
    path("<int:pk>/syncs/<int:sync_id>/", views.endpoint_sync_progress, name="sync-progress"),
    path("<int:pk>/toggle/", views.endpoint_toggle, name="toggle"),
    path("<int:pk>/delete/", views.endpoint_delete, name="delete"),
    path("<int:pk>/test/<str:event_type>/", views.endpoint_test, name="test"),
    path("<int:pk>/deliveries/<int:delivery_id>/result/", views.endpoint_test_result, name="test-result"),
]
