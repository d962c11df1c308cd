"""The one gate: who may do what in which project.

Every membership and role check of the REST API and of the web pages goes through this
module. The role sets are defined here once; ``role_in_project`` answers the caller's role;
the scoping helpers resolve a project (or an object through its project) for a caller and
refuse with the same rules everywhere:

- a caller who is not a member gets 404, so a project's (or an object's) existence does
  not leak;
- a member whose role may not do the operation gets 403 naming the roles that may.

A *caller* is a user or a pipeline token. A token (``datasets``' ``PipelineToken``,
recognised by its ``project_id`` and ``scopes``) acts with a fixed role on its own project
only: ``viewer`` when read-only, ``sme`` with the ``write`` scope; every other project
answers 404 to it. A superuser acts as a manager of every project.

This module imports no app but labeling: models and querysets of other apps are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, Protocol, runtime_checkable

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from labeling.models import Project, ProjectMembership, Role

# --- Role sets (the only definitions) ----------------------------------------------------
READ_ROLES = frozenset({Role.VIEWER, Role.LABELER, Role.SME, Role.MANAGER})
# May see everyone's labels (a labeler sees only their own).
REVIEW_ROLES = frozenset({Role.VIEWER, Role.SME, Role.MANAGER})
LABEL_ROLES = frozenset({Role.LABELER, Role.SME, Role.MANAGER})
SME_ROLES = frozenset({Role.SME, Role.MANAGER})
MANAGER_ROLES = frozenset({Role.MANAGER})

# The fixed role of a pipeline token on its own project.
TOKEN_READ_ROLE = Role.VIEWER
TOKEN_WRITE_ROLE = Role.SME


@runtime_checkable
class ProjectToken(Protocol):
    """What this module needs of a pipeline token: its one project and its scopes."""

    project_id: int
    scopes: list


Caller = AbstractBaseUser | ProjectToken


def is_token(caller: Any) -> bool:
    """True for a pipeline token (bound to one project), False for a user."""
    return not isinstance(caller, AbstractBaseUser) and isinstance(caller, ProjectToken)


def caller_of(request) -> Caller:
    """The caller of a request: its pipeline token when it authenticated with one (DRF
    puts it in ``request.auth``), else its user."""
    auth = getattr(request, "auth", None)
    return auth if is_token(auth) else request.user


def role_in_project(caller: Caller, project: Project | int) -> str | None:
    """The caller's role in ``project``: ``"manager"`` for a superuser, the token's fixed
    role on its own project, None for a non-member (and for a token elsewhere)."""
    project_id = project.pk if isinstance(project, Project) else project
    if is_token(caller):
        if caller.project_id != project_id:
            return None
        return TOKEN_WRITE_ROLE if "write" in caller.scopes else TOKEN_READ_ROLE
    if not caller.is_authenticated:
        return None
    if caller.is_superuser:
        return Role.MANAGER
    return (
        ProjectMembership.objects.filter(project_id=project_id, user_id=caller.pk)
        .values_list("role", flat=True)
        .first()
    )


def check_role(role: str | None, allowed: Iterable[str]) -> None:
    """403 unless ``role`` is one of ``allowed``; the message names the roles that may."""
    if role not in allowed:
        names = ", ".join(sorted(allowed)) or "nobody"
        raise PermissionDenied(f"your role ({role}) may not do this; allowed: {names}")


def _checked(caller: Caller, project: Project | int, allowed: Iterable[str], what: str) -> str:
    role = role_in_project(caller, project)
    if role is None:
        raise Http404(f"no such {what}")
    check_role(role, allowed)
    return role


# --- Scoping helpers ---------------------------------------------------------------------
def project_for(
    caller: Caller,
    project_id: int | str,
    allowed: Iterable[str],
    *,
    projects: QuerySet[Project] | None = None,
) -> tuple[Project, str]:
    """The project ``project_id`` and the caller's role in it: 404 when it does not exist
    (in ``projects``, e.g. only unarchived ones) or the caller is not a member, 403 when
    the caller's role is not in ``allowed``."""
    queryset = Project.objects.all() if projects is None else projects
    project = queryset.filter(pk=project_id).first()
    if project is None:
        raise Http404("no such project")
    return project, _checked(caller, project, allowed, "project")


def object_for(
    caller: Caller,
    scope: type[Model] | QuerySet,
    pk: int | str,
    allowed: Iterable[str],
    *,
    project_field: str = "project",
) -> tuple[Any, Project, str]:
    """A project-owned object by id (an item, flag, agreement run, dataset version, model
    run, token ...), its project and the caller's role there, checked through the
    project: 404 when missing or the caller is not a member, 403 for a wrong role.

    ``scope`` is the model or a queryset of it (with its select_related/prefetch);
    ``project_field`` is the path from the object to its project.
    """
    queryset = scope if isinstance(scope, QuerySet) else scope._default_manager.all()
    name = queryset.model._meta.verbose_name
    obj = queryset.select_related(project_field.replace(".", "__")).filter(pk=pk).first()
    if obj is None:
        raise Http404(f"no such {name}")
    project = obj
    for part in project_field.split("."):
        project = getattr(project, part)
    return obj, project, _checked(caller, project, allowed, name)


def visible_projects(caller: Caller, roles: Iterable[str] | None = None) -> QuerySet[Project]:
    """The projects the caller may see (where its role is in ``roles`` when given): all
    for a superuser, its own for a token, the member projects of a user."""
    roles = None if roles is None else frozenset(roles)
    if is_token(caller):
        role = role_in_project(caller, caller.project_id)
        if roles is not None and role not in roles:
            return Project.objects.none()
        return Project.objects.filter(pk=caller.project_id)
    if not caller.is_authenticated:
        return Project.objects.none()
    if caller.is_superuser:
        return (
            Project.objects.all()
            if roles is None or Role.MANAGER in roles
            else Project.objects.none()
        )
    memberships = ProjectMembership.objects.filter(user_id=caller.pk)
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return Project.objects.filter(pk__in=memberships.values("project_id"))


def roles_in_projects(caller: Caller, projects: Iterable[Project]) -> dict[int, str]:
    """The caller's role in each of ``projects`` (one query), keyed by project id."""
    ids = [p.pk for p in projects]
    if is_token(caller) or not caller.is_authenticated or caller.is_superuser:
        return {pk: role for pk in ids if (role := role_in_project(caller, pk)) is not None}
    return dict(
        ProjectMembership.objects.filter(user_id=caller.pk, project_id__in=ids).values_list(
            "project_id", "role"
        )
    )


def scope_queryset(
    caller: Caller,
    queryset: QuerySet,
    *,
    project_field: str = "project",
    roles: Iterable[str] | None = None,
) -> QuerySet:
    """``queryset`` narrowed to the rows of projects the caller may see."""
    lookup = project_field.replace(".", "__") + "__in"
    return queryset.filter(**{lookup: visible_projects(caller, roles)})


def is_any_manager(caller: Caller) -> bool:
    """A superuser or a manager of some project (who may create and activate accounts)."""
    if is_token(caller) or not caller.is_authenticated:
        return False
    return (
        caller.is_superuser
        or ProjectMembership.objects.filter(user_id=caller.pk, role=Role.MANAGER).exists()
    )


def account_for(caller: Caller, username: str) -> AbstractBaseUser:
    """The account ``username`` if ``caller`` may change it (activate or deactivate).

    A superuser may change any account; a manager only the non-staff members of projects
    they manage (any other account is 404 to them, so its existence does not leak), and
    never another manager's account (403). Everyone else gets 403.
    """
    from django.contrib.auth import get_user_model

    if not is_any_manager(caller):
        raise PermissionDenied("only managers and superusers may change accounts")
    target = get_user_model().objects.filter(username=username).first()
    if target is None:
        raise Http404("no such user")
    if caller.is_superuser:
        return target
    managed = scope_queryset(
        caller, ProjectMembership.objects.filter(user_id=target.pk), roles=MANAGER_ROLES
    )
    if target.is_staff or target.is_superuser or not managed.exists():
        raise Http404("no such user")
    if is_any_manager(target):
        raise PermissionDenied("only a superuser may change a manager's account")
    return target


def may_create_projects(caller: Caller) -> bool:
    """Staff and superusers create projects (never a pipeline token)."""
    if is_token(caller) or not caller.is_authenticated:
        return False
    return bool(caller.is_staff or caller.is_superuser)


# --- Web pages ---------------------------------------------------------------------------
def page_access(
    allowed: Iterable[str],
    *,
    scope: type[Model] | QuerySet | None = None,
    url_kwarg: str | None = None,
    project_field: str = "project",
    projects: QuerySet[Project] | None = None,
) -> Callable:
    """The decorator of every project page: login required (else the login page), then
    the project (``project_id`` in the URL) or a project-owned object (``scope`` with its
    id in ``url_kwarg``) is resolved for the signed-in user with ``allowed`` roles.

    The view is called as ``view(request, project, role, **rest)`` for a project page and
    ``view(request, obj, role, **rest)`` for an object page (the id kwarg is replaced).
    """
    allowed = frozenset(allowed)
    if scope is not None and url_kwarg is None:
        raise TypeError("page_access(scope=...) needs the url_kwarg holding the object's id")

    def decorator(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if scope is None:
                target, role = project_for(
                    request.user, kwargs.pop(url_kwarg or "project_id"), allowed, projects=projects
                )
            else:
                target, _, role = object_for(
                    request.user, scope, kwargs.pop(url_kwarg), allowed, project_field=project_field
                )
            return view(request, target, role, *args, **kwargs)

        return wrapper

    return decorator
