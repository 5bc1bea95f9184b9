from django.urls import path

from . import editor_views, lifecycle_views, tracking_views, transactional_views, views

app_name = "loops"

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("e/<slug:token>/o.gif", tracking_views.track_open, name="track-open"),
    path("e/<slug:token>/c/", tracking_views.track_click, name="track-click"),
    path("events/", views.event_list, name="events"),
    path("events/catalogue/", views.event_catalogue, name="event-catalogue"),
    path("events/<int:pk>/", views.event_detail, name="event"),
    path("emails/<int:pk>/", views.email_detail, name="email"),
    path("loops/", views.loop_list, name="loops"),
    path("loops/new/", views.loop_new, name="loop-new"),
    path("loops/transactional/", transactional_views.transactional_list, name="transactional-list"),
    path("loops/transactional/new/", transactional_views.transactional_new, name="transactional-new"),
    path("loops/transactional/preview/", transactional_views.transactional_preview, name="transactional-preview"),
    path("loops/transactional/<int:pk>/", transactional_views.transactional_edit, name="transactional"),
    path("loops/transactional/<int:pk>/delete/", transactional_views.transactional_delete, name="transactional-delete"),
    path("loops/<int:pk>/", editor_views.loop_detail, name="loop"),
    path("loops/<int:pk>/status/", editor_views.loop_status, name="loop-status"),
    path("loops/<int:pk>/duplicate/", lifecycle_views.loop_duplicate, name="loop-duplicate"),
    path("loops/<int:pk>/delete/", lifecycle_views.loop_delete, name="loop-delete"),
    path("loops/<int:pk>/download/", lifecycle_views.loop_download, name="loop-download"),
    path("loops/upload/", lifecycle_views.loop_upload, name="loop-upload"),
    path("loops/<int:pk>/runs/", lifecycle_views.loop_runs, name="loop-runs"),
    path("loops/<int:pk>/steps/new/", editor_views.step_new, name="step-new"),
    path("loops/<int:pk>/steps/<int:step_pk>/", editor_views.step_edit, name="step"),
    path("loops/<int:pk>/steps/<int:step_pk>/move/", editor_views.step_move, name="step-move"),
    path("loops/<int:pk>/steps/<int:step_pk>/delete/", editor_views.step_delete, name="step-delete"),
    path("loops/<int:pk>/preview/", editor_views.step_preview, name="step-preview"),
    path("loops/<int:pk>/test-email/", editor_views.step_test, name="step-test"),
]
