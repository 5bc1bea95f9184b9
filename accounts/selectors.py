from typing import TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model, QuerySet
from django.http import Http404

from .models import Team


def teams_for_user(user) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user).order_by("name", "id")


M = TypeVar("M", bound=Model)


def team_object_or_404(queryset: QuerySet[M] | type[M], team: Team | None, **lookup) -> M:
    """This object, for this team, or a 404. Views fetch tenant objects only through here."""
    if not team:  # None, or the current-team middleware's lazy None
        raise Http404
    qs = queryset._default_manager.all() if isinstance(queryset, type) else queryset
    try:
        return qs.get(team=team, **lookup)
    except ObjectDoesNotExist as exc:  # qs.model.DoesNotExist: the base class, as M is any model
        raise Http404 from exc
