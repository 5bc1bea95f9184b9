from django.urls import path

from . import views

app_name = "loops"

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("events/", views.event_list, name="events"),
    path("events/<int:pk>/", views.event_detail, name="event"),
]
