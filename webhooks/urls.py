from django.urls import path

from . import views

app_name = "webhooks"

urlpatterns = [
    path("stripe/<uuid:endpoint_uuid>/", views.stripe_receive, name="stripe-receive"),
    # Stripe keeps the URL as pasted: answer without the slash too, never redirect a POST.
    path("stripe/<uuid:endpoint_uuid>", views.stripe_receive),
]
