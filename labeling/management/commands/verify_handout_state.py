"""``manage.py verify_handout_state [--project ID ...] [--repair]``: compare the hand-out
state kept on every item (``labeling.handout``) and every labeler's progress counter with
a full recount; list the differences; with ``--repair`` store the recount.

Exit status: 0 when everything agreed (or was repaired), 1 (CommandError) when
differences were found and not repaired.
"""

from django.core.management.base import BaseCommand, CommandError

from labeling import handout
from labeling.models import Project

SHOWN = 20  # differences listed per project; the count is always complete


class Command(BaseCommand):
    help = "Verify the per-item hand-out state against a full recount (and --repair it)."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, action="append", help="project id (repeat)")
        parser.add_argument("--repair", action="store_true", help="store the recount")

    def handle(self, *args, project=None, repair=False, **options):
        projects = Project.objects.order_by("pk")
        if project:
            projects = projects.filter(pk__in=project)
            missing = sorted(set(project) - set(projects.values_list("pk", flat=True)))
            if missing:
                raise CommandError(f"no such project: {missing}")
        unrepaired = 0
        for p in projects:
            found = handout.verify_project(p, repair=repair)
            if found.ok:
                self.stdout.write(f"project {p.pk} ({p.name}): state agrees with a recount")
                continue
            self.stdout.write(
                f"project {p.pk} ({p.name}): {len(found.items)} item(s) and "
                f"{len(found.labelers)} labeler counter(s) differ from a recount"
                + ("; repaired" if repair else "")
            )
            for item_id, (stored, fresh) in list(found.items.items())[:SHOWN]:
                self.stdout.write(f"  item {item_id}: stored {stored} recount {fresh}")
            for labeler_id, (stored, fresh) in list(found.labelers.items())[:SHOWN]:
                self.stdout.write(f"  labeler {labeler_id}: n_done stored {stored} recount {fresh}")
            if not repair:
                unrepaired += 1
        if unrepaired:
            raise CommandError(
                f"{unrepaired} project(s) differ from a recount; run with --repair to fix"
            )
