from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_cache_table(sender, using="default", **kwargs) -> None:
    """``migrate`` also creates the database cache table (a no-op when it exists or the
    cache is Redis): the log-in failure counts live there (config.ratelimit)."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        post_migrate.connect(_create_cache_table, sender=self, dispatch_uid="concord-cache-table")
