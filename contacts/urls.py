from django.urls import path

from . import bulk_views, import_views, list_views, property_views, segment_views, views

app_name = "contacts"

urlpatterns = [
    path("", views.contact_list, name="list"),
    path("new/", views.contact_new, name="new"),
    path("<int:pk>/", views.contact_detail, name="detail"),
    path("<int:pk>/edit/", views.contact_edit, name="edit"),
    path("<int:pk>/delete/", views.contact_delete, name="delete"),
    path("<int:pk>/subscription/", views.contact_subscription, name="subscription"),
    path("import/", import_views.import_index, name="imports"),
    path("import/upload/", import_views.import_upload, name="import-upload"),
    path("import/<int:pk>/", import_views.import_detail, name="import"),
    path("import/<int:pk>/cancel/", import_views.import_cancel, name="import-cancel"),
    path("import/<int:pk>/refused.csv", import_views.import_errors, name="import-errors"),
    path("export.csv", import_views.contacts_export, name="export"),
    path("bulk/", bulk_views.contacts_bulk, name="bulk"),
    path("segments/new/", segment_views.segment_new, name="segment-new"),
    path("segments/<int:pk>/delete/", segment_views.segment_delete, name="segment-delete"),
    path("properties/", property_views.property_index, name="properties"),
    path("properties/new/", property_views.property_new, name="property-new"),
    path("properties/<int:pk>/delete/", property_views.property_delete, name="property-delete"),
    path("lists/", list_views.list_index, name="lists"),
    path("lists/new/", list_views.list_new, name="list-new"),
    path("lists/<int:pk>/edit/", list_views.list_edit, name="list-edit"),
    path("lists/<int:pk>/delete/", list_views.list_delete, name="list-delete"),
]
