"""Scoping nobody can forget: one mixin resolves the project from the URL, checks the
caller's membership and role, and hands every project-owned queryset through it.

A non-member gets 404 (a project's existence is not leaked); a member whose role may not
do the operation gets 403 naming the roles that may.
"""

from __future__ import annotations

from typing import ClassVar

from django.shortcuts import get_object_or_404
from rest_framework.exceptions import NotFound, PermissionDenied

from labeling.models import Project, Role
from labeling.selectors import role_in_project

READ_ROLES = frozenset({Role.VIEWER, Role.LABELER, Role.SME, Role.MANAGER})
REVIEW_ROLES = frozenset({Role.VIEWER, Role.SME, Role.MANAGER})  # may see everyone's labels
SME_ROLES = frozenset({Role.SME, Role.MANAGER})
MANAGER_ROLES = frozenset({Role.MANAGER})
LABEL_ROLES = frozenset({Role.LABELER, Role.SME, Role.MANAGER})


class ProjectScopedMixin:
    """For views under ``/projects/{project_id}/...``.

    Subclasses declare ``allowed_roles = {"GET": READ_ROLES, "POST": MANAGER_ROLES}``;
    a method missing from the map is refused. ``self.project`` and ``self.role`` are set
    before the handler runs. Subclasses must not override ``initial`` or ``get_project``.
    """

    allowed_roles: ClassVar[dict[str, frozenset]] = {"GET": READ_ROLES}
    project_url_kwarg = "project_id"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for hook in ("initial", "get_project"):
            if hook in cls.__dict__:
                raise TypeError(f"{cls.__name__} must not override {hook}(): scoping lives there")

    def get_project(self) -> Project:
        return get_object_or_404(Project, pk=self.kwargs[self.project_url_kwarg])

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        project = self.get_project()
        role = role_in_project(request.user, project)
        if role is None:
            raise NotFound("no such project")
        self.project, self.role = project, role
        check_role(role, self.allowed_roles.get(request.method.upper(), frozenset()))


def check_role(role: str | None, allowed: frozenset) -> None:
    """Raise 403 unless ``role`` is one of ``allowed``."""
    if role not in allowed:
        names = ", ".join(sorted(allowed)) or "nobody"
        raise PermissionDenied(f"your role ({role}) may not do this; allowed: {names}")


def project_for_object(request, project: Project, allowed: frozenset) -> str:
    """For views addressed by an object id (``/items/{id}/``, ``/flags/{id}/``): 404 for a
    non-member, 403 for a member with the wrong role. Returns the caller's role."""
    role = role_in_project(request.user, project)
    if role is None:
        raise NotFound("not found")
    check_role(role, allowed)
    return role
