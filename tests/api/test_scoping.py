"""The API mixin guards its scoping: a subclass cannot override the hooks, and an object
route must name the URL kwarg of its object."""

from __future__ import annotations

import pytest
from rest_framework.views import APIView

from api.base import ProjectScopedMixin
from labeling.models import Item


def test_a_scoped_view_cannot_override_the_scoping_hooks():
    with pytest.raises(TypeError, match="must not override initial"):

        class Sneaky(ProjectScopedMixin, APIView):
            def initial(self, request, *args, **kwargs):
                pass

    with pytest.raises(TypeError, match="scope_url_kwarg"):

        class Unnamed(ProjectScopedMixin, APIView):
            scope_model = Item
