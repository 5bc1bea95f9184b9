"""Reads that span the apps: the dashboard."""

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Team
from contacts.models import Contact
from loops.models import EmailMessage, Event, Loop
from loops.selectors import tracking_series
from loopsync.budget import within_budget
from webhooks.models import Delivery, Endpoint


def dashboard_for(*, team: Team) -> dict[str, Any]:
    """The team's counts on the dashboard, and what an empty team needs to do next."""
    since = timezone.now() - timedelta(days=1)
    sent = EmailMessage.objects.filter(team=team, status=EmailMessage.Status.SENT)
    return {
        "contacts": Contact.objects.live().filter(team=team).count(),
        # Test data, counted apart: what Stripe test-mode events and "Send test event" made.
        "test_contacts": Contact.objects.filter(team=team, livemode=False).count(),
        "test_emails_sent": sent.filter(contact__livemode=False).count(),
        "events_today": Event.objects.filter(team=team, livemode=True, created_at__gte=since).count(),
        # Test-mode contacts' emails (to the team's own members) are not counted; transactional ones are.
        "emails_sent": sent.exclude(contact__livemode=False).count(),
        "deliveries_failed": Delivery.objects.filter(team=team, status=Delivery.Status.FAILED).count(),
        "has_endpoint": Endpoint.objects.filter(team=team).exists(),
        "has_active_loop": Loop.objects.filter(team=team, status=Loop.Status.ACTIVE).exists(),
        "email_chart": email_chart(team=team),
    }


CHART_DAYS = 30
CHART_BUDGET_MS = 1_000  # each of the chart's queries; past it the dashboard says so instead
CHART_WIDTH, CHART_HEIGHT = 600, 100
SERIES_LABELS = {"sent": "Sent", "opened": "Opened", "clicked": "Clicked", "bounced": "Bounced"}


def email_chart(*, team: Team, days: int = CHART_DAYS) -> dict[str, Any]:
    """The dashboard's emails over the last `days` days (UTC), today included: sent, opened, clicked and bounced
    per day (loops.selectors.tracking_series), as SVG polylines on one scale, with each series' total."""
    first = timezone.now().astimezone(UTC).date() - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    series = within_budget(
        lambda: tracking_series(team=team, since=since, until=since + timedelta(days=days)),
        milliseconds=CHART_BUDGET_MS,
    )
    if series is None:
        return {"too_slow": CHART_BUDGET_MS, "days": days, "first": first}
    top = max((n for points in series.days.values() for _, n in points), default=0) or 1
    step = CHART_WIDTH / max(days - 1, 1)

    def y(n: int) -> float:
        return CHART_HEIGHT - 2 - n * (CHART_HEIGHT - 4) / top  # 2 units of margin: a line at 0 or the top shows

    lines = [
        {
            "name": name,
            "label": SERIES_LABELS[name],
            "total": series.totals[name],
            "points": " ".join(f"{i * step:.1f},{y(n):.1f}" for i, (_, n) in enumerate(points)),
            "dots": [
                {"x": round(i * step, 1), "y": round(y(n), 1), "day": day, "n": n}
                for i, (day, n) in enumerate(points)
                if n
            ],
        }
        for name, points in series.days.items()
    ]
    return {
        "lines": lines,
        "first": first,
        "last": first + timedelta(days=days - 1),
        "top": top,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "days": days,
        "empty": not any(line["total"] for line in lines),
    }
