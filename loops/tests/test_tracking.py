"""Opens and clicks: the pixel and the signed redirects written into an email when it is queued, what they count,
and the switches that turn them off (loops.tracking, loops.services.tracking)."""

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from contacts.models import Contact
from contacts.services import contact_sync
from loops.models import EmailActivity, EmailMessage, Loop, LoopRun, LoopStep, TransactionalEmail
from loops.services import ACTIVITY_PER_EMAIL, loop_export, loop_import
from loops.services.queueing import email_queue, transactional_queue
from loops.services.sending import emails_drain
from loops.tracking import click_url, html_for_viewing, html_track

pytestmark = pytest.mark.django_db

BODY = (
    "Hi {{ contact.first_name }}, [pay your invoice](https://pay.example.com/i/1?a=1&b=two%20words){.button} "
    "or [write to us](mailto:help@example.com). Docs: <a class='x' href='https://docs.example.com/'>docs</a>"
)


def _queue(team, *, step_tracking=True, email="ada@example.com"):
    contact = contact_sync(team=team, email=email, full_name="Ada Lovelace").contact
    loop = Loop.objects.create(team=team, name=f"L {email}", trigger_event_name="x", status="active")
    step = LoopStep.objects.create(
        team=team, loop=loop, kind="email", subject="Your invoice", body=BODY, tracking=step_tracking
    )
    run = LoopRun.objects.create(team=team, loop=loop, contact=contact)
    return email_queue(run=run, step=step)


def _links(html: str) -> list[str]:
    return [unescape(href) for href in re.findall(r'href="([^"]*)"', html)] + [
        unescape(href) for href in re.findall(r"href='([^']*)'", html)
    ]


def _pixel(html: str) -> str:
    [src] = re.findall(r'<img src="([^"]*)"[^>]*data-loopsync-pixel', html)
    return unescape(src)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def _click_link(html: str, destination: str) -> str:
    for link in _links(html):
        query = parse_qs(urlsplit(link).query)
        if query.get("u") == [destination]:
            return link
    raise AssertionError(f"no tracked link to {destination}")


def test_a_queued_email_is_stored_with_its_links_through_signed_redirects_and_a_pixel(team, smtp_server):
    message = _queue(team)
    assert message.tracking_token
    links = _links(message.html_body)
    tracked = [link for link in links if "/e/" in link]
    assert {parse_qs(urlsplit(link).query)["u"][0] for link in tracked} == {
        "https://pay.example.com/i/1?a=1&b=two%20words",
        "https://docs.example.com/",
    }
    assert "mailto:help@example.com" in links  # not a web link: as written
    assert any("/unsubscribe/" in link and "/e/" not in link for link in links)  # the unsubscribe link too
    assert "/e/" in _pixel(message.html_body) and _pixel(message.html_body).endswith("/o.gif")
    assert "pay.example.com" in message.text_body and "/e/" not in message.text_body  # the text part as written
    emails_drain()
    [received] = smtp_server.messages
    sent_html = received.get_body(preferencelist=("html",)).get_content()
    assert sent_html.replace("\r\n", "\n").strip() == message.html_body.replace("\r\n", "\n").strip()


def test_the_pixel_counts_each_open_and_keeps_the_first(client, team):
    message = _queue(team)
    pixel = _path(_pixel(message.html_body))
    first = client.get(pixel)
    assert first.status_code == 200 and first["Content-Type"] == "image/gif" and first.content.startswith(b"GIF89a")
    assert "no-cache" in first["Cache-Control"] and not first.cookies
    message.refresh_from_db()
    opened_at = message.opened_at
    assert message.opens == 1 and opened_at is not None
    client.get(pixel)
    client.head(pixel)  # a HEAD (a proxy checking the image) counts nothing
    message.refresh_from_db()
    assert message.opens == 2 and message.opened_at == opened_at
    assert EmailActivity.objects.filter(message=message, kind="open", contact=message.contact).count() == 2


def test_a_click_redirects_to_the_link_and_counts_as_a_click_and_an_open(client, team):
    message = _queue(team)
    link = _click_link(message.html_body, "https://pay.example.com/i/1?a=1&b=two%20words")
    response = client.get(_path(link))
    assert response.status_code == 302 and response["Location"] == "https://pay.example.com/i/1?a=1&b=two%20words"
    message.refresh_from_db()
    assert message.clicks == 1 and message.clicked_at and message.opened_at and message.opens == 0
    [click] = EmailActivity.objects.filter(message=message, kind="click")
    assert click.url == "https://pay.example.com/i/1?a=1&b=two%20words"


def test_a_link_changed_by_hand_leads_nowhere_and_counts_nothing(client, team):
    message = _queue(team)
    link = _click_link(message.html_body, "https://docs.example.com/")
    forged = link.replace("docs.example.com", "evil.example.net")
    response = client.get(_path(forged))
    assert response.status_code == 400 and "This link does not work" in response.content.decode()
    unsigned = client.get(_path(link.split("&s=")[0]))
    assert unsigned.status_code == 400
    message.refresh_from_db()
    assert message.clicks == 0 and not EmailActivity.objects.exists()


def test_a_signed_link_of_a_deleted_email_still_leads_to_its_page(client, team):
    message = _queue(team)
    link = _click_link(message.html_body, "https://docs.example.com/")
    message.delete()
    response = client.get(_path(link))
    assert response.status_code == 302 and response["Location"] == "https://docs.example.com/"
    assert not EmailActivity.objects.exists()


def test_an_unknown_pixel_is_still_an_image_and_counts_nothing(client, team):
    message = _queue(team)
    response = client.get(reverse("loops:track-open", kwargs={"token": "x" * 22}))
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    message.refresh_from_db()
    assert message.opens == 0 and not EmailActivity.objects.exists()


def test_a_click_url_only_sends_to_web_addresses(client, team):
    message = _queue(team)
    token = message.tracking_token
    response = client.get(_path(click_url(token, "javascript:alert(1)")))
    assert response.status_code == 400  # signed, but not an address a redirect may go to
    message.refresh_from_db()
    assert message.clicks == 0


def test_only_so_many_opens_and_clicks_are_kept_as_rows_but_all_are_counted(client, team):
    message = _queue(team)
    EmailMessage.objects.filter(pk=message.pk).update(opens=ACTIVITY_PER_EMAIL)
    client.get(_path(_pixel(message.html_body)))
    message.refresh_from_db()
    assert message.opens == ACTIVITY_PER_EMAIL + 1 and not EmailActivity.objects.exists()


def test_a_step_with_tracking_off_sends_its_links_as_written_and_no_pixel(team):
    message = _queue(team, step_tracking=False)
    assert message.tracking_token is None
    assert "/e/" not in message.html_body and "data-loopsync-pixel" not in message.html_body
    assert "https://pay.example.com/i/1?a=1&amp;b=two%20words" in message.html_body


def test_a_team_with_tracking_off_tracks_none_of_its_emails(team):
    team.email_tracking = False
    team.save()
    message = _queue(team)
    transactional = TransactionalEmail.objects.create(team=team, public_id="t1", name="T", subject="S", body=BODY)
    sent = transactional_queue(transactional=transactional, to_email="bob@example.com", contact=None, data={})
    for email in (message, sent):
        assert email.tracking_token is None and "/e/" not in email.html_body


def test_a_transactional_email_is_tracked_unless_it_turns_tracking_off(team):
    on = TransactionalEmail.objects.create(team=team, public_id="t1", name="On", subject="S", body=BODY)
    off = TransactionalEmail.objects.create(
        team=team, public_id="t2", name="Off", subject="S", body=BODY, tracking=False
    )
    tracked = transactional_queue(transactional=on, to_email="bob@example.com", contact=None, data={})
    untracked = transactional_queue(transactional=off, to_email="bob@example.com", contact=None, data={})
    assert tracked.tracking_token and "/e/" in tracked.html_body
    assert untracked.tracking_token is None and "/e/" not in untracked.html_body


def test_a_skipped_email_is_not_tracked(team):
    contact = contact_sync(team=team, email="gone@example.com").contact
    contact.subscribed = False
    contact.unsubscribed_by = "team"
    from django.utils import timezone

    contact.unsubscribed_at = timezone.now()
    contact.save()
    message = _queue(team, email="gone@example.com")
    assert message.status == "skipped" and message.tracking_token is None


def test_the_email_page_shows_opens_and_clicks_and_viewing_it_counts_nothing(client, logged_in, team):
    message = _queue(team)
    link = _click_link(message.html_body, "https://docs.example.com/")
    client.get(_path(_pixel(message.html_body)))
    client.get(_path(link))
    client.get(_path(link))
    page = logged_in.get(reverse("loops:email", args=[message.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert re.search(r'data-testid="opens">1 time, first on', html)
    assert re.search(r'data-testid="clicks">2 times, first on', html)
    assert "<code>https://docs.example.com/</code></td><td>2</td>" in html
    frame = unescape(re.search(r'srcdoc="([^"]*)"', html)[1])
    assert "data-loopsync-pixel" not in frame and "/e/" not in frame
    assert 'href="https://docs.example.com/"' in frame  # the view's links go straight to where they lead
    assert frame == html_for_viewing(message.html_body)


def test_the_email_page_of_another_team_is_404(client, outsider, team):
    message = _queue(team)
    client.force_login(outsider)
    assert client.get(reverse("loops:email", args=[message.pk])).status_code == 404


def test_the_loop_page_shows_each_email_steps_opens_and_clicks(client, logged_in, team):
    first = _queue(team)
    step = first.step
    second_contact = contact_sync(team=team, email="bob@example.com").contact
    second = email_queue(run=LoopRun.objects.create(team=team, loop=step.loop, contact=second_contact), step=step)
    EmailMessage.objects.filter(pk__in=[first.pk, second.pk]).update(status="sent")
    client.get(_path(_pixel(first.html_body)))
    client.get(_path(_pixel(first.html_body)))  # opened twice: one email opened
    client.get(_path(_click_link(second.html_body, "https://docs.example.com/")))
    page = logged_in.get(reverse("loops:loop", args=[step.loop_id])).content.decode()
    figures = re.sub(r"<[^>]+>", "", re.search(r'data-testid="email-figures">(.*?)</p>', page)[1])
    assert figures == "2 sent · 2 opened (100.0%) · 1 clicked (50.0%)"


def test_the_tracking_switch_is_kept_by_a_loop_export(team):
    message = _queue(team, step_tracking=False)
    spec = loop_export(loop=message.step.loop)
    [node] = spec["nodes"]
    assert node["tracking"] is False
    copy = loop_import(team=team, spec=spec, name="Copy")
    assert copy.steps.get().tracking is False


def test_only_an_admin_turns_the_teams_tracking_off(client, as_member, team):
    url = reverse("sending-settings:tracking")
    assert as_member.post(url, {}).status_code == 403
    team.refresh_from_db()
    assert team.email_tracking is True


def test_an_admin_turns_the_teams_tracking_off_and_on(as_admin, team):
    url = reverse("sending-settings:tracking")
    response = as_admin.post(url, {})
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.email_tracking is False
    page = as_admin.get(reverse("sending-settings:list")).content.decode()
    assert 'name="email_tracking">' in page.replace(" >", ">")  # shown unticked
    as_admin.post(url, {"email_tracking": "on"})
    team.refresh_from_db()
    assert team.email_tracking is True


def _total(page: str, series: str) -> int:
    return int(re.search(rf'data-testid="total-{series}">.*?<strong>(\d+)</strong>', page)[1])


def test_the_dashboard_charts_sent_opened_clicked_and_bounced_emails_of_its_team_only(
    client, logged_in, team, other_team
):
    from django.utils import timezone

    ours, theirs = _queue(team), _queue(other_team, email="eve@example.com")
    EmailMessage.objects.filter(pk__in=[ours.pk, theirs.pk]).update(status="sent", sent_at=timezone.now())
    for message in (ours, theirs):
        client.get(_path(_pixel(message.html_body)))
        client.get(_path(_pixel(message.html_body)))  # one email opened twice: one opened
        client.get(_path(_click_link(message.html_body, "https://docs.example.com/")))
    EmailActivity.objects.create(team=team, message=ours, contact=ours.contact, kind="bounce")
    page = logged_in.get(reverse("home")).content.decode()
    assert [_total(page, s) for s in ("sent", "opened", "clicked", "bounced")] == [1, 1, 1, 1]
    [today] = re.findall(r"<title>[^<]*: 1 opened</title>", page)
    assert timezone.now().strftime("%b %-d") in today
    assert page.count("<polyline") == 4


def test_the_contacts_timeline_shows_its_opens_and_clicks_linked_to_the_email(client, logged_in, team):
    message = _queue(team)
    client.get(_path(_pixel(message.html_body)))
    client.get(_path(_click_link(message.html_body, "https://docs.example.com/")))
    page = logged_in.get(reverse("contacts:detail", args=[message.contact_id])).content.decode()
    email_url = reverse("loops:email", args=[message.pk])
    for kind, title in (("open", "Opened “Your invoice”"), ("click", "Clicked “Your invoice”")):
        item = re.search(rf'<li class="activity-{kind}">(.*?)</li>', page, re.S)[1]
        assert title in item and f'href="{email_url}"' in item


def test_the_email_page_undoes_every_tracked_link_however_its_href_was_written(team):
    markup = "<a HREF=\"https://a.example/1\">one</a> <a href = 'https://a.example/2'>two</a></body>"
    viewed = html_for_viewing(html_track(markup, token="t" * 22))
    assert "/e/" not in viewed and "data-loopsync-pixel" not in viewed
    assert 'HREF="https://a.example/1"' in viewed and 'href = "https://a.example/2"' in viewed


def test_the_email_page_leaves_a_look_alike_of_a_click_link_as_it_was_sent(team):
    look_alike = '<a href="https://x.example/e/abc/c/?u=javascript%3Aalert(1)&amp;s=forged">x</a>'
    assert html_for_viewing(look_alike) == look_alike  # an untracked email's link is never made a javascript: one


def test_a_link_no_redirect_can_parse_is_left_as_written_and_never_a_500(client, team):
    message = _queue(team)
    markup = '<a href="https://[oops/">broken</a>'
    assert html_track(markup, token=message.tracking_token).startswith(markup)
    response = client.get(_path(click_url(message.tracking_token, "https://[oops/")))  # signed all the same
    assert response.status_code == 400
    message.refresh_from_db()
    assert message.clicks == 0


def test_the_charts_totals_count_each_email_once_and_a_click_as_an_open_too(client, logged_in, team):
    from datetime import timedelta

    from django.utils import timezone

    opened_twice, clicked_only = _queue(team), _queue(team, email="bob@example.com")
    now = timezone.now()
    EmailMessage.objects.filter(pk__in=[opened_twice.pk, clicked_only.pk]).update(status="sent", sent_at=now)
    for days_ago in (0, 3):  # opened today and three days ago
        EmailActivity.objects.create(
            team=team, message=opened_twice, contact=opened_twice.contact, kind="open",
            created_at=now - timedelta(days=days_ago),
        )  # fmt: skip
    client.get(_path(_click_link(clicked_only.html_body, "https://docs.example.com/")))  # its pixel never loaded
    page = logged_in.get(reverse("home")).content.decode()
    assert [_total(page, s) for s in ("sent", "opened", "clicked", "bounced")] == [2, 2, 1, 0]
    assert re.findall(r"<title>[^<]*: (\d+) opened</title>", page) == ["1", "2"]  # three days ago; today


def test_an_email_that_tracking_would_take_past_the_html_limit_is_sent_untracked(team, settings):
    from loops.rendering import email_render

    contact = contact_sync(team=team, email="ada@example.com", full_name="Ada Lovelace").contact
    body = " ".join(f"[link {i}](https://example.com/{i})" for i in range(40))
    loop = Loop.objects.create(team=team, name="Links", trigger_event_name="x", status="active")
    step = LoopStep.objects.create(team=team, loop=loop, kind="email", subject="Links", body=body)
    rendered = email_render(subject="Links", preview_text="", body=body, context={"contact": {}, "unsubscribe_url": ""})
    settings.EMAIL_HTML_LIMIT = len(rendered.html) + 1_000  # room for the unsubscribe link, not for 40 redirects
    message = email_queue(run=LoopRun.objects.create(team=team, loop=loop, contact=contact), step=step)
    assert message.status == "queued" and message.tracking_token is None
    assert "/e/" not in message.html_body and 'href="https://example.com/39"' in message.html_body


def test_with_the_teams_tracking_off_the_step_and_transactional_figures_say_opens_are_not_counted(logged_in, team):
    message = _queue(team)
    transactional = TransactionalEmail.objects.create(team=team, public_id="t-1", name="T", subject="T", body="Hi")
    pages = (
        reverse("loops:loop", args=[message.step.loop_id]),
        reverse("loops:transactional", args=[transactional.pk]),
    )
    for url in pages:
        assert "not tracked" not in logged_in.get(url).content.decode()
    team.email_tracking = False
    team.save(update_fields=["email_tracking"])
    for url in pages:
        page = logged_in.get(url).content.decode()
        figures = re.search(r'data-testid="email-figures">(.*?)</p>', page)[1]
        assert "opens and clicks not tracked: off for the team in Settings → Sending" in figures


def test_the_dashboard_chart_says_when_there_is_no_email_and_draws_only_the_series_that_have_some(logged_in, team):
    from django.utils import timezone

    page = logged_in.get(reverse("home")).content.decode()
    assert 'data-testid="chart-empty">No emails sent in the last 30 days.' in page
    assert "<polyline" not in page
    message = _queue(team)
    EmailMessage.objects.filter(pk=message.pk).update(status="sent", sent_at=timezone.now())
    page = logged_in.get(reverse("home")).content.decode()
    assert "chart-empty" not in page
    assert re.findall(r'<polyline class="series-(\w+)"', page) == ["sent"]  # opened, clicked, bounced: 0, not drawn
    assert "top of the chart: 1 a day" in page


def test_the_page_of_a_test_contacts_email_says_test_data_and_leads_back_to_the_test_audience(logged_in, team):
    live = _queue(team)
    test_contact = contact_sync(team=team, email="ada@example.com", livemode=False).contact
    test = email_queue(run=LoopRun.objects.create(team=team, loop=live.step.loop, contact=test_contact), step=live.step)
    audience = reverse("contacts:list")
    page = logged_in.get(reverse("loops:email", args=[test.pk])).content.decode()
    assert f'href="{audience}?test=1">Audience</a>' in page and "badge-test" in page
    page = logged_in.get(reverse("loops:email", args=[live.pk])).content.decode()
    assert f'href="{audience}">Audience</a>' in page and "badge-test" not in page


def test_a_steps_figures_leave_out_test_mode_contacts_emails(client, logged_in, team):
    live = _queue(team)
    tester = contact_sync(team=team, email="owner@acme.test").contact
    Contact.objects.filter(pk=tester.pk).update(livemode=False)
    tester.refresh_from_db()
    test_email = email_queue(run=LoopRun.objects.create(team=team, loop=live.step.loop, contact=tester), step=live.step)
    EmailMessage.objects.filter(pk__in=[live.pk, test_email.pk]).update(status="sent")
    page = logged_in.get(reverse("loops:loop", args=[live.step.loop_id])).content.decode()
    figures = re.sub(r"<[^>]+>", "", re.search(r'data-testid="email-figures">(.*?)</p>', page)[1])
    assert figures.startswith("1 sent · 0 opened")
