"""Reads of the Audience: filtered, searched, keyset-paginated lists that stay fast on large teams."""

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet

from accounts.models import Team
from loopsync.budget import within_budget
from loopsync.ids import parse_id
from loopsync.keyset import after, cursor_decode, cursor_encode

from .billing import BILLING_LABELS, BILLING_PROPERTIES
from .builder import ConditionsBuilder
from .conditions import Field, conditions_lists, fields_for
from .models import Contact, ContactProperty, MailingList, Segment
from .querying import conditions_q

PAGE_SIZE = 50
# A search term shorter than this matches the start of an email, first or last name ("al" finds Alice and
# al@…, not Sally): trigram indexes need 3 characters, and a 1-2 character substring is in most contacts anyway.
SUBSTRING_MIN = 3
SOURCES_MAX = 50


@dataclass(frozen=True)
class AudienceFilter:
    q: str = ""
    source: str = ""
    subscribed: str = ""  # "", "yes" or "no"
    oldest_first: bool = False
    # The id of one of the team's mailing lists (the caller checks it is the team's); 0: any.
    mailing_list_id: int = 0
    # False: the test-mode contacts (the "Test data" switch), kept apart from live ones.
    livemode: bool = True
    # A checked condition tree (contacts.conditions): a segment's, the filter builder's, or both together
    conditions: dict | None = None


@dataclass
class AudienceQuery:
    """The Audience's filters as a query string gives them: the filter, the team's mailing list and segment it
    names, the filter builder as typed (with its mistakes), and whether it can match anyone (not for `?list=` or
    `?segment=` naming one that is not the team's, nor while the builder has a mistake)."""

    filters: AudienceFilter
    mailing_list: MailingList | None
    segment: Segment | None
    builder: ConditionsBuilder
    can_match: bool
    advanced: bool  # the filter builder has rules

    @property
    def filtered(self) -> bool:
        f = self.filters
        return bool(f.q or f.source or f.subscribed or f.mailing_list_id or self.segment or self.advanced)


@dataclass(frozen=True)
class Page:
    contacts: list[Contact]
    next_cursor: str  # "" on the last page
    continued: bool = False  # True: it continues after a cursor (a later page), not the first page


def audience_filter(*, team: Team, params, livemode: bool = True) -> AudienceQuery:
    """The Audience's filters from a query string (`params`): search, source, subscribed, list, sort, a segment
    (`segment=<id>`) and the filter builder's rows (`c-…`, contacts.builder)."""
    list_id, segment_id = str(params.get("list", ""))[:20], str(params.get("segment", ""))[:20]
    list_pk, segment_pk = parse_id(list_id), parse_id(segment_id)
    mailing_list = MailingList.objects.filter(team=team, pk=list_pk).first() if list_pk else None
    segment = Segment.objects.filter(team=team, pk=segment_pk).first() if segment_pk else None
    builder = ConditionsBuilder("c", audience_catalogue(team=team), data=params if "c-match" in params else None)
    tree = builder.tree(lenient=builder.acting) if "c-match" in params else {"match": "all", "rules": []}
    trees = [t for t in ((segment.conditions if segment else None), tree) if t and t.get("rules")]
    filters = AudienceFilter(
        q=str(params.get("q", ""))[:200],
        source=str(params.get("source", ""))[:64],
        subscribed=str(params.get("subscribed", "")),
        oldest_first=params.get("sort") == "oldest",
        mailing_list_id=mailing_list.pk if mailing_list else 0,
        livemode=livemode,
        conditions={"match": "all", "rules": trees} if trees else None,
    )
    can_match = not (list_id and mailing_list is None) and not (segment_id and segment is None) and tree is not None
    return AudienceQuery(filters, mailing_list, segment, builder, can_match, advanced=bool(tree and tree["rules"]))


AUDIENCE_PARAMS = ("q", "source", "subscribed", "list", "sort", "segment")  # besides the builder's c-… rows


def audience_params(data, *, test: bool = False) -> list[tuple[str, str]]:
    """The Audience's filters in a query string or a post (and `test`, the "Test data" switch): what a form carries
    from the page to a segment, a bulk action or back."""
    kept = (*AUDIENCE_PARAMS, "test") if test else AUDIENCE_PARAMS
    return [(key, value) for key, value in data.items() if key in kept or key.startswith("c-")]


def audience_queryset(*, team: Team, filters: AudienceFilter) -> QuerySet[Contact]:
    contacts = Contact.objects.filter(team=team, livemode=filters.livemode)
    # A NUL can be in no PostgreSQL text column, and psycopg refuses it in a parameter (a 500): drop it.
    q, source = filters.q.replace("\x00", "").strip(), filters.source.replace("\x00", "")
    if q:
        # On PostgreSQL, UPPER(column::text) LIKE UPPER('%q%') (or 'q%'): the expressions of the trigram indexes.
        lookup = "icontains" if len(q) >= SUBSTRING_MIN else "istartswith"
        match = Q(**{f"email__{lookup}": q}) | Q(**{f"first_name__{lookup}": q}) | Q(**{f"last_name__{lookup}": q})
        first, _, last = q.partition(" ")
        if last.strip():  # a full name: "Ada Lovelace" (or the start of each: "ada love")
            match |= Q(first_name__istartswith=first, last_name__istartswith=last.strip())
        contacts = contacts.filter(match)
    if source:
        contacts = contacts.filter(source=source)
    if filters.subscribed in {"yes", "no"}:
        contacts = contacts.filter(subscribed=filters.subscribed == "yes")
    if filters.mailing_list_id:
        contacts = contacts.filter(listmembership__mailing_list_id=filters.mailing_list_id)
    if filters.conditions:
        contacts = contacts.filter(conditions_q(filters.conditions))
    return contacts


def team_properties(*, team_id: int) -> list[tuple[str, str, str]]:
    """(key, label, type) of the built-in billing properties and of the team's declared ones."""
    built_in = [(key, BILLING_LABELS.get(key, key), kind) for key, kind in BILLING_PROPERTIES.items()]
    return built_in + list(ContactProperty.objects.filter(team_id=team_id).values_list("key", "label", "type"))


def audience_catalogue(*, team: Team) -> dict[str, Field]:
    """What the Audience's filters and segments may name: the contact's fields, the built-in billing properties
    and the team's declared ones, and its mailing lists (no event: there is none)."""
    lists = dict(MailingList.objects.filter(team=team).values_list("pk", "name"))
    return fields_for(properties=team_properties(team_id=team.pk), lists=lists)


def list_segments(*, team_id: int, list_id: int) -> list[Segment]:
    """The team's segments with a rule on the mailing list `list_id` (what its delete confirmation names)."""
    return [s for s in Segment.objects.filter(team_id=team_id) if list_id in conditions_lists(s.conditions)]


COUNT_BUDGET_MS = 1_000  # a count that takes longer is shown as "more than … can count"


@dataclass(frozen=True)
class Counts:
    total: int | None  # the team's contacts (live or test); None: not counted within COUNT_BUDGET_MS
    matching: int | None  # those the filters match (None also when nothing is filtered)


def bounded_count(contacts: QuerySet) -> int | None:
    """COUNT(*), or None when it takes over COUNT_BUDGET_MS (PostgreSQL's statement_timeout, for this statement
    only): a team of millions never holds the page up."""
    return within_budget(contacts.count, milliseconds=COUNT_BUDGET_MS)


def audience_counts(*, team: Team, filters: AudienceFilter, filtered: bool) -> Counts:
    total = bounded_count(Contact.objects.filter(team=team, livemode=filters.livemode))
    matching = bounded_count(audience_queryset(team=team, filters=filters)) if filtered else None
    return Counts(total=total, matching=matching)


def audience_page(*, team: Team, filters: AudienceFilter, cursor: str = "", size: int = PAGE_SIZE) -> Page:
    """One page, newest (or oldest) first, continuing after `cursor`: a keyset, not an OFFSET, so page
    2,000 costs what page 1 costs. The redundant `created_at >=`/`<=` bound is what makes that true: it is
    an index condition, where the OR alone would only filter the rows before the cursor one by one."""
    contacts = audience_queryset(team=team, filters=filters)
    position = cursor_decode(cursor) if cursor else None
    order = ("created_at", "id") if filters.oldest_first else ("-created_at", "-id")
    contacts = contacts.order_by(*order)
    if position:
        contacts = after(contacts, "created_at", position, oldest_first=filters.oldest_first)
    rows = list(contacts[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = cursor_encode(rows[-1].created_at, rows[-1].pk) if more and rows else ""
    return Page(contacts=rows, next_cursor=next_cursor, continued=position is not None)


def audience_sources(*, team: Team) -> list[str]:
    """The team's distinct non-empty sources, in order (at most SOURCES_MAX).

    A "loose index scan": each step finds the next source after the previous one with one probe of
    contact_team_source_idx, so it costs (sources × a probe), not a pass over every contact of the team
    (SELECT DISTINCT read all 1,000,000 of them: ~170 ms). Plain SQL that PostgreSQL and SQLite both run.
    """
    table = connection.ops.quote_name(Contact._meta.db_table)
    query = f"""
        WITH RECURSIVE found(source, n) AS (
            SELECT MIN(source), 1 FROM {table} WHERE team_id = %s AND source > ''
            UNION ALL
            SELECT (SELECT MIN(c.source) FROM {table} c WHERE c.team_id = %s AND c.source > found.source), n + 1
            FROM found WHERE found.source IS NOT NULL AND n < %s
        )
        SELECT source FROM found WHERE source IS NOT NULL ORDER BY source
    """  # noqa: S608 - the table name is the model's; the values are parameters
    with connection.cursor() as cursor:
        cursor.execute(query, [team.pk, team.pk, SOURCES_MAX])
        return [row[0] for row in cursor.fetchall()]


def contact_find(*, team: Team, email: str = "", user_id: str = "", livemode: bool = True) -> Contact | None:
    """The team's live contact (test contact, with `livemode=False`) with this userId, or else with this
    email (in any case)."""
    contacts = Contact.objects.filter(team=team, livemode=livemode)
    if user_id:
        return contacts.filter(user_id=user_id).first()
    if email:
        return contacts.with_email(email).first()
    return None
