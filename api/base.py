"""Scoping nobody can forget: one mixin resolves the project (from the URL, or through the
object the URL addresses), checks the caller's role with :mod:`labeling.access`, and
hands the resolved project and object to the handler.

A non-member gets 404 (a project's existence is not leaked); a member whose role may not
do the operation gets 403 naming the roles that may. A pipeline token acts with its
fixed role on its own project only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model, QuerySet

from labeling import access
from labeling.models import Project

# Hooks a subclass must not override: the scoping lives there.
SCOPING_HOOKS = ("initial", "get_project", "get_scoped_object", "resolve_scope")


class ProjectScopedMixin:
    """For every project-owned endpoint.

    Subclasses declare ``allowed_roles = {"GET": access.READ_ROLES, "POST":
    access.MANAGER_ROLES}``; a method missing from the map is refused.

    - A project route (``/projects/{project_id}/...``) needs nothing more.
    - An object route (``/items/{item_id}/``, ``/flags/{flag_id}/`` ...) declares
      ``scope_model`` (a model, or a queryset with its select_related) and
      ``scope_url_kwarg`` (the URL kwarg holding its id); ``scope_field`` is the path from
      the object to its project (``"project"`` by default). The object is looked up through
      the caller's access, never bare.

    ``self.project``, ``self.role`` (and ``self.object`` on an object route) are set
    before the handler runs.
    """

    allowed_roles: ClassVar[dict[str, frozenset]] = {"GET": access.READ_ROLES}
    project_url_kwarg: ClassVar[str] = "project_id"
    scope_model: ClassVar[type[Model] | QuerySet | None] = None
    scope_url_kwarg: ClassVar[str | None] = None
    scope_field: ClassVar[str] = "project"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for hook in SCOPING_HOOKS:
            if hook in cls.__dict__:
                raise TypeError(f"{cls.__name__} must not override {hook}(): scoping lives there")
        if cls.scope_model is not None and not cls.scope_url_kwarg:
            raise TypeError(f"{cls.__name__} declares scope_model without scope_url_kwarg")

    def _allowed(self) -> frozenset:
        return self.allowed_roles.get(self.request.method.upper(), frozenset())

    def resolve_scope(self) -> None:
        caller = access.caller_of(self.request)
        self.object = None
        if self.scope_model is not None:
            self.object, self.project, self.role = access.object_for(
                caller,
                self.scope_model,
                self.kwargs[self.scope_url_kwarg],
                self._allowed(),
                project_field=self.scope_field,
            )
        else:
            self.project, self.role = access.project_for(
                caller, self.kwargs[self.project_url_kwarg], self._allowed()
            )

    def get_project(self) -> Project:
        return self.project

    def get_scoped_object(self, scope: type[Model] | QuerySet, pk: Any) -> Any:
        """Another object the request names (e.g. the second version of a diff), checked
        with the same roles; 404 when the caller may not see it."""
        obj, _, _ = access.object_for(
            access.caller_of(self.request),
            scope,
            pk,
            self._allowed(),
            project_field=self.scope_field,
        )
        return obj

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.resolve_scope()
