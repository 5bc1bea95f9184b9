from django.urls import path

from . import views

app_name = "loops"

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("events/", views.event_list, name="events"),
    path("events/<int:pk>/", views.event_detail, name="event"),
    path("loops/", views.loop_list, name="loops"),
    path("loops/new/", views.loop_new, name="loop-new"),
    path("loops/<int:pk>/", views.loop_detail, name="loop"),
    path("loops/<int:pk>/status/", views.loop_status, name="loop-status"),
]
