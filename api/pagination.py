"""The one page-number pagination of every REST list: 50 rows a page, ``?page_size`` up
to 500 (the REST framework's default for views that paginate themselves, and what the
views that build their own paginator use)."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """Page-number pagination; ``?page_size`` up to 500."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
