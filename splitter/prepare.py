"""Intake: the one way a job is taken, whoever takes it.

``render``, ``submit`` (to a server or a Pachyderm cluster), ``render`` on a served store,
and the server's own intake all go through ``prepared``: open the .blend or job directory,
add the variant ``--set`` makes, make a job of each variant (a job without variants is its
own one), plan each with render's checks, and stage each with its files packed. What the
caller does with the staged jobs (put them into a store, send them) is its own; nothing is
put before every job of the entry has passed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tilefarm.blender import runtimes
from tilefarm.errors import JobSourceError
from tilefarm.plan.model import Plan
from tilefarm.plan.settings import JobSettings
from tilefarm.splitter.contents import packed_dir, stage_job, stage_template
from tilefarm.splitter.intake import JobSource, open_job
from tilefarm.splitter.split import RunnerFor, job_versions, plan_contents
from tilefarm.splitter.variants import expanded, with_sets


@dataclass(frozen=True)
class Prepared:
    """One job, checked and staged."""

    job: str
    variant: str  # the template's variant it is ("" for a job without variants)
    settings: JobSettings  # its own merged with the flags
    plan: Plan
    entries: list[tuple[str, Path]]  # its files in ``blends``, packed


@dataclass(frozen=True)
class Intake:
    template: JobSource  # the entry as opened (with --set applied)
    jobs: list[Prepared]  # a template's variants, or the one job

    def template_entries(self, flags: JobSettings, staging: Path) -> list[tuple[str, Path]]:
        """The template packed whole, with the variants made here (for a server, which
        makes them itself and keeps the template: ``contents.stage_template``). A template
        is no job of its own: its variants' facts stand for it."""
        variants = self.template.settings.variants or {}
        settings = replace(self.template.settings.merged(flags),
                           variants={job.variant: variants[job.variant] for job in self.jobs})
        return stage_template(self.template, settings, staging / self.template.job,
                              self.jobs[0].plan.facts)


@contextmanager
def prepared(entry: Path, flags: JobSettings, staging: Path, *,
             variants: Sequence[str] | None = None, sets: Sequence[str] = (),
             runners: RunnerFor = runtimes.runner_for,
             tagged: bool = True) -> Iterator[Intake]:
    """Every job ``entry`` makes, planned and staged under ``staging``; variants' substituted
    copies exist while the context lasts. ``runners``: the Blender of each runtime (the
    server's are warm). ``tagged``: whether the farm has tagged nodes (a Ray cluster's);
    without, a job with tags is refused. Raises, naming the file and key, before anything
    is put."""
    template = with_sets(open_job(entry), variants, sets)
    tags = template.settings.merged(flags).tags
    if tags and not tagged:
        raise JobSourceError(f"the job asks for nodes tagged {', '.join(tags)}, and only a "
                             "Ray cluster has tagged nodes (serve or render with --ray); "
                             "leave out tags to render here", path=entry)
    runner = runners(job_versions(template, flags).rendered_by)
    with expanded(template, variants, runner) as found:
        jobs = []
        for variant in found:
            source = variant.source
            job_staging = staging / source.job
            plan, contents = plan_contents(source, flags, runners,
                                           packed_dir(source, job_staging))
            settings = source.settings.merged(flags)
            jobs.append(Prepared(source.job, variant.name, settings, plan,
                                 stage_job(source, settings, job_staging, plan.facts, contents)))
        yield Intake(template, jobs)
