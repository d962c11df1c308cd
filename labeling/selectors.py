"""Reads of labeling data that more than one caller needs."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet

from labeling.models import (
    Annotation,
    Guideline,
    Item,
    LabelClass,
    Project,
    ProjectMembership,
    Role,
)

# What each role may do; a superuser acts as a manager of every project.
ROLE_RANK = {Role.VIEWER: 0, Role.LABELER: 1, Role.SME: 2, Role.MANAGER: 3}


def role_in_project(user: AbstractBaseUser, project: Project | int) -> str | None:
    """The user's role in ``project``, ``"manager"`` for a superuser, None for a non-member."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.MANAGER
    project_id = project.pk if isinstance(project, Project) else project
    return (
        ProjectMembership.objects.filter(project_id=project_id, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def projects_for_user(user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects the user may see: all for a superuser, else those they are a member of."""
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user_id=user.pk).distinct()


def current_guideline(project: Project) -> Guideline | None:
    return project.guidelines.order_by("-version").first()


def active_classes(project: Project) -> QuerySet[LabelClass]:
    """Classes a labeler can choose: those not merged into another."""
    return project.classes.filter(merged_into__isnull=True).order_by("order", "id")


def current_annotations(project: Project) -> QuerySet[Annotation]:
    return Annotation.objects.filter(project=project, is_current=True)


def labeler_progress(project: Project) -> list[dict]:
    """Per labeler: how many current annotations they have in the project."""
    rows = (
        current_annotations(project)
        .values("labeler_id", "labeler__username")
        .annotate(n=Count("id"))
        .order_by("labeler__username")
    )
    return [
        {"labeler_id": r["labeler_id"], "labeler": r["labeler__username"], "n": r["n"]}
        for r in rows
    ]


def project_progress(project: Project) -> dict:
    """Items, current annotations and the share of the overlap target reached (0–1)."""
    n_items = project.items.count()
    n_annotations = current_annotations(project).count()
    target = n_items * project.overlap
    done_items = (
        Item.objects.filter(project=project)
        .annotate(n=Count("annotations", filter=Q(annotations__is_current=True)))
        .filter(n__gte=project.overlap)
        .count()
    )
    return {
        "n_items": n_items,
        "n_annotations": n_annotations,
        "n_items_complete": done_items,
        "fraction": (min(n_annotations, target) / target) if target else 0.0,
    }
