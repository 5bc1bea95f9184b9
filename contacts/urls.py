from django.urls import path

from . import list_views, views

app_name = "contacts"

urlpatterns = [
    path("", views.contact_list, name="list"),
    path("new/", views.contact_new, name="new"),
    path("<int:pk>/", views.contact_detail, name="detail"),
    path("<int:pk>/edit/", views.contact_edit, name="edit"),
    path("<int:pk>/delete/", views.contact_delete, name="delete"),
    path("<int:pk>/subscription/", views.contact_subscription, name="subscription"),
    path("lists/", list_views.list_index, name="lists"),
    path("lists/new/", list_views.list_new, name="list-new"),
    path("lists/<int:pk>/edit/", list_views.list_edit, name="list-edit"),
    path("lists/<int:pk>/delete/", list_views.list_delete, name="list-delete"),
]
