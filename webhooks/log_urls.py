from django.urls import path

from . import log_views

app_name = "webhook-log"

urlpatterns = [
    path("", log_views.log_index, name="index"),
    path("replay/", log_views.deliveries_replay, name="replay-many"),
    path("endpoints/<int:pk>/", log_views.log_endpoint, name="endpoint"),
    path("deliveries/<int:pk>/", log_views.delivery_detail, name="delivery"),
    path("deliveries/<int:pk>/replay/", log_views.delivery_replay_view, name="replay"),
]
