from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from loopsync.csp import redoc_policy

from . import views
from .errors import not_found

app_name = "api"


def route(pattern: str, view, name: str):
    """`v1/contacts/create`, as Loops' clients call it, and with a trailing slash (left out of the schema)."""
    return [path(pattern, view.as_view(), name=name), path(f"{pattern}/", view.as_view(schema=None))]


urlpatterns = [
    *route("v1/api-key", views.ApiKeyView, "api-key"),
    *route("v1/contacts/create", views.ContactCreateView, "contacts-create"),
    *route("v1/contacts/update", views.ContactUpdateView, "contacts-update"),
    *route("v1/contacts/find", views.ContactFindView, "contacts-find"),
    *route("v1/contacts/delete", views.ContactDeleteView, "contacts-delete"),
    *route("v1/contacts/properties", views.ContactPropertiesView, "contacts-properties"),
    *route("v1/contacts/suppression", views.ContactSuppressionView, "contacts-suppression"),
    *route("v1/lists", views.MailingListsView, "lists"),
    *route("v1/events/send", views.EventSendView, "events-send"),
    *route("v1/transactional", views.TransactionalView, "transactional"),
    *route("v1/events", views.EventListView, "events"),
    *route("v1/webhooks/deliveries", views.DeliveryListView, "deliveries"),
    re_path(r"^schema/?$", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (?script): the CSP forbids inline script.
    re_path(r"^docs/?$", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    # ReDoc writes its <style> elements at run time: see loopsync/csp.py.
    re_path(r"^redoc/?$", redoc_policy(SpectacularRedocView.as_view(url_name="api:schema")), name="redoc"),
    re_path(r"^.*$", not_found),
]
