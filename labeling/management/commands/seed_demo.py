"""``manage.py seed_demo --seed N``: deterministic demo projects, users and labels."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from labeling.demo.loader import LABELER_PASSWORD, demo_password, seed_demo


class Command(BaseCommand):
    help = "Load the demo projects (idempotent; DEBUG only: demo accounts have known passwords)."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--images", type=int, default=320, help="number of phone images")

    def handle(self, *args, seed, images, **options):
        try:
            report = seed_demo(seed=seed, n_images=images)
        except (ImproperlyConfigured, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if report.created:
            created = ", ".join(f"{n} {what}" for what, n in sorted(report.created.items()))
            self.stdout.write(self.style.SUCCESS(f"Demo data loaded: {created}."))
        else:
            self.stdout.write("Demo data already present; nothing to do.")
        self.stdout.write(
            "Demo log-ins: admin / {}  (manager, superuser) · sme / {}  (SME) · "
            "labeler1 … labeler8 / {}".format(
                demo_password("admin"), demo_password("sme"), LABELER_PASSWORD
            )
        )
