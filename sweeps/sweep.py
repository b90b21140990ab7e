"""Running a sweep: ``run_sweep(SweepOptions(...))`` resolves it, audits the data, reaches Ray,
forecasts the cost and runs the trials through Ray Tune.

``python -m sweeps.run`` (sweeps/run.py) is the command line over it; tests call ``run_sweep``
directly.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from search_spaces import search_space_path
from sweeps.arguments import AUTO, FIXED_AT_START
from sweeps.data import SweepData, check_classes, check_decoded_size, prepare_sweep_data
from sweeps.environment import (
    capture_environment,
    check_data_unchanged,
    mismatch_warning,
    record_data_changes,
    write_splits,
)
from sweeps.packing import auto_gpus_per_trial, calibrate_step_time, no_gpu_choice
from sweeps.plan import Forecast, Timing, calibrated_timing, comparison, forecast_for, size_warning
from sweeps.progress import SweepProgress
from sweeps.ray_session import (
    alive_nodes,
    check_dashboard,
    check_trial_resources,
    ensure_ray,
    local_capacity,
    node_capacities,
    wait_for_cluster,
)
from sweeps.registry import SWEEPS, get_sweep
from sweeps.space import ResolvedSweep, SearchSpaceError, from_saved, grid_size_of, resolve
from sweeps.spec import Resources, SweepSpec
from sweeps.storage import (
    STUDY_FILE,
    SWEEP_FILE,
    ExperimentLocation,
    check_experiment_name,
    check_shared_storage,
    check_writable_storage,
    create_experiment,
    discard_unstarted,
    find_experiment,
    has_tune_state,
    new_experiment,
)
from sweeps.study_file import load_study, study_files
from sweeps.summary import INTERRUPTED, exit_code, format_table, saved_trials, trial_rows
from sweeps.tuner import (
    RunSettings,
    check_optuna_storage,
    configure_tune_environment,
    quiet_tune_output,
    with_resolved_data_path,
)
from sweeps.wandb_logging import report_to_wandb, wandb_callbacks
from trainables.datasets.base import DatasetError
from trainables.errors import INTERRUPTED_EXIT, PretrainedWeightsError
from trainables.registry import get_trainable

# The largest --seed: NumPy's generators take 32-bit seeds.
MAX_SEED = 2**32 - 1


class StrictDataError(DatasetError):
    """``--strict-data`` found dropped items or differences from the pinned manifest."""


class SweepInterrupted(KeyboardInterrupt):
    """A Ctrl-C that Tune did not handle itself (a second one while it stopped), once it had
    saved the state of ``location``: the run can be resumed."""

    def __init__(self, location: ExperimentLocation) -> None:
        super().__init__()
        self.location = location


@dataclass(frozen=True)
class SweepOptions:
    """What the command line can ask for; the defaults are the CLI's defaults."""

    name: str
    overrides: tuple[str, ...] = ()
    profile: str = "auto"
    smoke: bool = False
    num_samples: int | None = None
    storage: str = "runs"
    storage_shared: bool = False
    experiment_name: str | None = None
    resume: bool = False
    address: str | None = None
    gpus_per_trial: float | str | None = AUTO
    cpus_per_trial: float | None = None
    max_failures: int = 3
    seed: int | None = None
    search: str = "grid"
    optuna_storage: str | None = None
    wandb: bool = False
    data_dir: str | None = None
    check_data: bool = False
    strict_data: bool = False
    plan: bool = False
    plan_seconds_per_epoch: float | None = None
    verbose: bool = False
    dashboard: bool = False
    allow_large_images: bool = False
    allow_data_change: bool = False
    # Where each of ``overrides`` came from, by position ("--set" where there are fewer).
    override_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse counts, resources and combinations that make no sense, before anything is
        resolved or started."""
        if self.plan and self.resume:
            raise SearchSpaceError("--plan forecasts a new run; it cannot be combined with --resume")
        if self.resume and (ignored := self._fixed_at_start()):
            raise SearchSpaceError(f"--resume continues an experiment with the settings it started with, so "
                                   f"{', '.join(ignored)} cannot change them; drop them, or start a new run "
                                   f"with them (without --resume)")
        if self.allow_data_change and not self.resume:
            raise SearchSpaceError("--allow-data-change lets --resume continue on data that differs from the "
                                   "experiment's record; a new run records the data as it is: drop it, or add --resume")
        if self.experiment_name is not None:
            check_experiment_name(self.experiment_name)
        if self.seed is not None:
            self._require_whole("--seed", self.seed, least=0, meaning="the trials' random seed")
            if self.seed > MAX_SEED:
                raise SearchSpaceError(f"--seed {self.seed}: must be at most {MAX_SEED} (NumPy's seeds are 32-bit)")
        if self.optuna_storage is not None and self.search != "optuna":
            raise SearchSpaceError(f"--optuna-storage {self.optuna_storage}: keeps the study of --search optuna, "
                                   f"but the search is {self.search}; add --search optuna or drop --optuna-storage")
        if self.optuna_storage is not None:
            check_optuna_storage(self.optuna_storage)
        seconds = self.plan_seconds_per_epoch
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                    or not 0 < seconds < float("inf")):
            raise SearchSpaceError(f"--plan-seconds-per-epoch {seconds!r}: must be a finite number of seconds "
                                   f"above 0 (one trial's epoch on its resources)")
        if self.num_samples is not None:
            self._require_whole("--num-samples", self.num_samples, least=1,
                                meaning="trials, or repeats of the whole grid with --search grid")
        self._require_whole("--max-failures", self.max_failures, least=0, meaning="retries of a failed trial")
        gpus = None if self.gpus_per_trial == AUTO else self.gpus_per_trial
        for flag, value in (("--cpus-per-trial", self.cpus_per_trial), ("--gpus-per-trial", gpus)):
            # Comparisons with nan are false, so nan fails the range as inf and negatives do.
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 <= value < float("inf")):
                raise SearchSpaceError(f"{flag} {value!r}: must be a finite number, 0 or more "
                                       f"(fractions pack trials onto one device)")
        if self.cpus_per_trial == 0:
            raise SearchSpaceError(f"--cpus-per-trial {self.cpus_per_trial!r}: must be above 0, since each trial "
                                   f"runs in a process that needs a CPU; give a fraction such as 0.5 to share one")

    def _fixed_at_start(self) -> list[str]:
        """The flags given that set what an experiment fixes when it starts (``--resume`` keeps
        its saved settings)."""
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        return ["--set/--set-file" if name == "overrides" else "--" + name.replace("_", "-")
                for name in FIXED_AT_START if name in defaults and getattr(self, name) != defaults[name]]

    @staticmethod
    def _require_whole(flag: str, value: int, *, least: int, meaning: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SearchSpaceError(f"{flag} {value!r}: must be a whole number of at least {least} ({meaning})")


@dataclass
class SweepOutcome:
    exit_code: int
    location: ExperimentLocation | None = None
    summary: object = None
    audit: object = None

    @property
    def experiment_dir(self) -> Path | None:
        return self.location.local_dir if self.location else None


def list_sweeps(directory: str | None = None) -> str:
    """The built-in studies (or the study files in ``directory``, each loaded and validated)
    with their trainable, grid size and metric."""
    specs = SWEEPS.values() if directory is None else [load_study(path) for path in study_files(directory)]
    if not specs:
        return f"{directory}: no study files (*.yaml, *.yml) in this folder"
    width = max(len("sweep"), *(len(spec.name) for spec in specs))
    lines = [f"{'sweep':<{width}} {'trainable':<15} {'grid':>5}  metric", "-" * (width + 42)]
    for spec in specs:
        lines.append(f"{spec.name:<{width}} {spec.trainable:<15} {grid_size_of(spec):>5}  "
                     f"{spec.metric} ({spec.mode})  — {spec.study}")
    return "\n".join(lines)


def experiment_spec(location: ExperimentLocation, spec: SweepSpec) -> SweepSpec:
    """The spec an experiment ran: its copy of the study file (``study.yaml``), so neither a
    resume nor a report depends on where the file was or whether it changed since; ``spec``
    (from the name it was saved under) for an experiment written before experiments kept one."""
    if not location.exists(STUDY_FILE):
        return spec
    if location.local_dir is not None:
        return load_study(location.local_dir / STUDY_FILE)
    import tempfile
    with tempfile.TemporaryDirectory() as staging:
        copy = Path(staging) / STUDY_FILE
        copy.write_text(location.read_text(STUDY_FILE), encoding="utf-8")
        return dataclasses.replace(load_study(copy), search_space=f"{location.path}/{STUDY_FILE}")


def resolve_profile(profile: str) -> tuple[str, str]:
    """The concrete profile for ``auto``, and a sentence saying why."""
    if profile != "auto":
        return profile, f"profile {profile} (asked for)"
    import torch
    if torch.cuda.is_available():
        return "full", f"profile full: {torch.cuda.device_count()} GPU(s) visible, the document's settings"
    return "cpu", ("profile cpu: no GPU visible, so a reduced sweep sized for a 2-core machine "
                   "(small patches, from scratch, short epochs; see README 'Profiles')")


def run_sweep(options: SweepOptions, *, echo: Callable[[str], None] = print) -> SweepOutcome:
    """Resolve, reach Ray, audit the data, forecast the cost, run the sweep through Ray Tune,
    write ``summary.csv``; with ``plan``, stop after the forecast.

    Every check that needs no Ray runs first: the options, the resource request against this
    machine (or the Ray already up) and whether ``--address`` answers, then the data audit and
    the pretrained weights; Ray starts only then. Nothing is written before Tune starts, and a
    start that fails before Tune saved its state removes the experiment folder again, so a bad
    input leaves no experiment behind (and ``--plan`` never writes one).
    """
    began = time.perf_counter()
    spec = get_sweep(options.name)
    if options.dashboard:
        check_dashboard(address=options.address)
    if options.resume:
        check_writable_storage(storage=options.storage)
        location = find_experiment(options.storage, spec.name, options.experiment_name)
        spec = experiment_spec(location, spec)
        saved = json.loads(location.read_text(SWEEP_FILE))
        resolved = from_saved(spec, saved)
        echo(f"Resuming {location.path}")
        if warning := mismatch_warning(saved.get("environment"), doing="resuming"):
            echo(warning)
    else:
        resolved = resolve_for_run(spec, options, echo)
        location = None if options.check_data or options.plan else new_experiment(
            options.storage, spec.name, options.experiment_name)
    if options.check_data:
        data = audited_data(resolved, options, echo)
        write_check_data_files(spec.name, data, storage=options.storage, echo=echo)
        return SweepOutcome(exit_code=0, audit=data.audit)

    configure_tune_environment()
    check_before_ray(resolved, options, echo)
    data = audited_data(resolved, options, echo)
    if options.resume:
        check_resumed_data(location, data, allow_change=options.allow_data_change, echo=echo)
    else:
        preflight_pretrained(resolved, data)
    started_ray = ensure_ray(options.address, dashboard=options.dashboard, warn=echo)
    try:
        if options.gpus_per_trial == AUTO and not options.resume and resolved.resources.gpus > 0 \
                and not any(node.gpus >= 1 for node in node_capacities()):
            echo(no_gpu_choice().reason)
            resolved = with_resources(resolved, None, 0.0)
        check_trial_resources(cpus=resolved.resources.cpus, gpus=resolved.resources.gpus,
                              local=options.address is None, warn=echo)
        if not options.resume:
            resolved = with_resolved_data_path(resolved, data, echo=echo)
        if not options.plan:
            check_shared_storage(options.storage, nodes=alive_nodes(), declared_shared=options.storage_shared)
        if not options.resume and options.gpus_per_trial == AUTO and resolved.resources.gpus > 0:
            choice = auto_gpus_per_trial(resolved, data, nodes=node_capacities())
            echo(choice.reason)
            resolved = with_resources(resolved, None, choice.gpus_per_trial)
        forecast = sweep_forecast(resolved, data, options, began=began)
        echo("\n".join(forecast.lines()))
        if warning := size_warning(forecast, num_samples=options.num_samples):
            echo(warning)
        if options.plan:
            return SweepOutcome(exit_code=0, audit=data.audit)
        if not options.resume:  # the name is taken now, atomically; new_experiment only checked it
            location = create_experiment(options.storage, spec.name, options.experiment_name)
        try:
            if not options.resume:
                write_experiment_files(location, resolved, data, data_dir=options.data_dir)
            echo("Trials get: " + data.describe_training_splits())
            rows, elapsed = fit_and_summarise(spec, resolved, data, location, options, echo, forecast=forecast)
        except BaseException as exc:
            if not options.resume:  # a start that failed before Tune saved anything leaves no folder behind
                discard_unstarted(location)
            if isinstance(exc, KeyboardInterrupt) and has_tune_state(location):
                raise SweepInterrupted(location) from None
            raise
    finally:
        if started_ray:
            import ray
            ray.shutdown()
    if options.wandb:
        report_to_wandb(spec, location, rows, echo)
    counts = rows["stop_reason"].value_counts().to_dict()
    echo(f"{len(rows)} trials in {elapsed:.0f} s: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    echo(comparison(forecast, trial_epochs=int(rows["epochs"].sum()), wall_seconds=elapsed))
    echo(f"Experiment directory: {location.path}")
    if counts.get(INTERRUPTED):
        echo(f"Interrupted: {counts[INTERRUPTED]} trial(s) did not finish. Continue with:\n  "
             + resume_command(options, location))
        return SweepOutcome(exit_code=INTERRUPTED_EXIT, location=location, summary=rows, audit=data.audit)
    return SweepOutcome(exit_code=exit_code(rows), location=location, summary=rows, audit=data.audit)


def sweep_forecast(resolved: ResolvedSweep, data: SweepData, options: SweepOptions, *,
                   began: float | None = None) -> Forecast:
    """The sweep's ``Forecast`` on the nodes Ray has now. Its time comes from
    ``--plan-seconds-per-epoch``, else from a short calibration of the trainable on a trial's
    resources (``packing.calibrate_step_time``); a resumed run gets none (its trials are
    partly done), nor does a smoke run without ``--plan`` (it is over in about the time a
    calibration takes). ``began``: the command's start (``time.perf_counter()``), for the time it
    took to get here."""
    nodes = node_capacities()
    untimed_because = Forecast.untimed_because
    if options.plan_seconds_per_epoch is not None:
        timing = Timing(epoch_seconds=options.plan_seconds_per_epoch, trial_overhead_seconds=0.0,
                        source="--plan-seconds-per-epoch")
    elif options.resume:
        timing = None
    elif options.smoke and not options.plan:
        timing, untimed_because = None, "a smoke run is not calibrated; --plan estimates one"
    else:
        timing, untimed_because = calibrated(resolved, data, nodes)
    return forecast_for(resolved, trials=trial_count(options, resolved), nodes=nodes, local=options.address is None,
                        timing=timing, untimed_because=untimed_because,
                        preparation_seconds=None if began is None else time.perf_counter() - began)


def calibrated(resolved: ResolvedSweep, data: SweepData, nodes: list) -> tuple[Timing | None, str]:
    """The calibrated ``Timing``, or None and why not. The forecast is advice, so a calibration
    that cannot run (no node holds a trial yet: it would wait for the autoscaler) or that fails
    (the trainable raised; its trials will say why) leaves the sweep without a time estimate
    rather than stopping it."""
    from ray.exceptions import RayTaskError

    cpus, gpus = resolved.resources.cpus, resolved.resources.gpus
    if not any(node.fits(cpus, gpus) for node in nodes):
        return None, "no node holds a trial yet, so nothing was calibrated; give --plan-seconds-per-epoch"
    try:
        return calibrated_timing(resolved, data, calibrate_step_time(resolved, data)), ""
    except RayTaskError as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        return None, f"the calibration failed: {lines[-1][:200] if lines else type(exc).__name__}"


def check_before_ray(resolved: ResolvedSweep, options: SweepOptions, echo: Callable[[str], None]) -> None:
    """Before the data audit and before Ray starts: that a new run's ``pretrained_path`` files
    exist, the trial's resource request against the Ray already up, or for a local run against
    this machine (a local Ray gets no more), and whether the cluster at ``--address`` answers.
    With ``--gpus-per-trial auto`` the GPUs are chosen once Ray is up, so only the CPUs are
    checked here."""
    if not options.resume:
        check_pretrained_paths(resolved)
    import ray
    if ray.is_initialized():
        nodes = node_capacities()
    elif options.address is None:
        nodes = [local_capacity()]
    else:
        wait_for_cluster(options.address)
        return
    gpus = resolved.resources.gpus if options.resume or options.gpus_per_trial != AUTO else 0.0
    check_trial_resources(cpus=resolved.resources.cpus, gpus=gpus, local=options.address is None, warn=echo,
                          nodes=nodes)


def audited_data(resolved: ResolvedSweep, options: SweepOptions, echo: Callable[[str], None]) -> SweepData:
    """The sweep's data, its audit printed. Before decoding, an image size whose decoded data
    would not fit in memory is an error (unless ``--allow-large-images``); after, a
    classification split with fewer than two classes is one, and with ``--strict-data`` any
    dropped item, difference from the pinned manifest or split without a class that another split
    holds."""
    check_decoded_size(resolved, allowed=options.allow_large_images)
    data = prepare_sweep_data(resolved, data_dir=options.data_dir)
    echo(data.audit_text())
    check_classes(resolved, data)
    if options.strict_data:
        problems = [problem for audit in data.audits.values() for problem in audit.strict_problems()]
        if problems:
            shown = "\n  ".join(problems[:20]) + (f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else "")
            raise StrictDataError(f"--strict-data: the data has problems a strict run refuses (dropped items, "
                                  f"differences from the pinned manifest, splits without a class) "
                                  f"({len(problems)} problem(s)):\n  {shown}\nFix or remove these items, or "
                                  f"run without --strict-data to train on the rest")
    return data


def write_check_data_files(name: str, data: SweepData, *, storage: str, echo: Callable[[str], None]) -> None:
    """``--check-data``'s audit files (the experiment's, see ``write_experiment_files``) in
    ``<storage>/<sweep>_data_audit/``, replacing the previous check's; under ``./runs`` when
    ``storage`` is not a local folder. A folder that cannot be written is said, not fatal:
    the audit was printed."""
    from sweeps.storage import is_uri
    from trainables.datasets.audit_files import write_audit_files
    if is_uri(storage):
        echo(f"--storage {storage} is not local: --check-data writes its audit files under ./runs")
    folder = Path("runs" if is_uri(storage) else storage).resolve() / f"{name}_data_audit"
    try:
        echo(f"Audit files: {folder} ({', '.join(path.name for path in write_audit_files(folder, data))})")
    except OSError as exc:
        echo(f"Audit files not written: {exc}")


def write_experiment_files(location: ExperimentLocation, resolved: ResolvedSweep, data: SweepData, *,
                           data_dir: str | None) -> None:
    """The audit's files (``audit_files.write_audit_files``; staged locally and copied for an
    experiment in cloud storage), ``sweep.json``: the resolved sweep and the environment that
    runs it, and ``study.yaml``: a copy of the study file it came from."""
    from trainables.datasets.audit_files import write_audit_files
    if location.local_dir is not None:
        write_audit_files(location.local_dir, data)
    else:
        import tempfile

        import pyarrow.fs as pafs
        with tempfile.TemporaryDirectory() as staging:
            write_audit_files(Path(staging), data)
            filesystem, base = pafs.FileSystem.from_uri(location.path)
            filesystem.create_dir(base, recursive=True)
            pafs.copy_files(staging, base, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem)
    environment = capture_environment(data=data, data_dir=data_dir)
    location.write_text(SWEEP_FILE, json.dumps({**resolved.to_dict(), "environment": environment}, indent=2))
    location.write_text(STUDY_FILE, search_space_path(resolved.spec.search_space).read_text(encoding="utf-8"))
    write_splits(location, data)


def check_resumed_data(location: ExperimentLocation, data: SweepData, *, allow_change: bool,
                       echo: Callable[[str], None]) -> None:
    """Before a resume reaches Ray: the data read today is the data the experiment recorded
    (fingerprint and ``splits.json``), else ``DataChangedError`` naming what changed; with
    ``--allow-data-change`` the changes are said and recorded for the report."""
    check = check_data_unchanged(location, data, allow_change=allow_change)
    echo(f"Data compared with the experiment's record: {check.compared}")
    for change in check.changes:
        echo(f"warning: data changed since the experiment started (--allow-data-change): {change}")
    record_data_changes(location, check, doing="resume")


def resume_command(options: SweepOptions, location: ExperimentLocation) -> str:
    """The exact command that continues ``location``."""
    parts = ["python -m sweeps.run", options.name, "--resume", "--name", location.name]
    if options.storage != SweepOptions.storage:
        parts += ["--storage", options.storage]
    if options.address:
        parts += ["--address", options.address]
    if options.data_dir:
        parts += ["--data-dir", options.data_dir]
    return " ".join(shlex.quote(part) if part != "python -m sweeps.run" else part for part in parts)


def resolve_for_run(spec: SweepSpec, options: SweepOptions, echo: Callable[[str], None]) -> ResolvedSweep:
    profile, why = resolve_profile(options.profile)
    overrides, origins = options.overrides, options.override_origins
    if options.seed is not None:
        origins += ("--set",) * (len(overrides) - len(origins)) + ("--seed",)
        overrides += (f"seed={options.seed}",)
    resolved = resolve(spec, profile=profile, smoke=options.smoke, overrides=overrides, origins=origins)
    resolved = dataclasses.replace(resolved, search=options.search)
    if options.search == "grid":
        resolved.require_grid_values()
    resolved = with_resources(resolved, options.cpus_per_trial,
                              None if options.gpus_per_trial == AUTO else options.gpus_per_trial)
    echo(f"{spec.name}: {why}{' + smoke' if options.smoke else ''}; {resolved.grid_size} grid point(s), "
         f"{trial_count(options, resolved)} trial(s) by {options.search} search")
    return resolved


def num_samples(options: SweepOptions, resolved: ResolvedSweep) -> int:
    """Grid: repeats of the whole grid (default 1). A sampler: trials (default the grid size)."""
    if options.num_samples is not None:
        return options.num_samples
    return 1 if options.search == "grid" else resolved.grid_size


def trial_count(options: SweepOptions, resolved: ResolvedSweep) -> int:
    """Trials the sweep runs: every repeat of the grid, or a sampler's samples."""
    return num_samples(options, resolved) * (resolved.grid_size if options.search == "grid" else 1)


def fit_and_summarise(spec: SweepSpec, resolved: ResolvedSweep, data, location: ExperimentLocation,
                      options: SweepOptions, echo: Callable[[str], None], *, forecast: Forecast):
    from sweeps.tuner import build_tuner, remove_checkpoint_staging, restore_tuner

    if options.resume:
        quiet_tune_output(options.verbose)
        tuner = restore_tuner(resolved, data, location)
    else:
        progress = () if options.verbose else (SweepProgress(metric=spec.metric, mode=spec.mode,
                                                             budget=forecast.asha_trial_epochs),)
        settings = RunSettings(num_samples=num_samples(options, resolved), max_failures=options.max_failures,
                               search=options.search, seed=int(resolved.fixed.get("seed", 0)),
                               optuna_storage=options.optuna_storage, ray_table=options.verbose,
                               callbacks=progress + (wandb_callbacks(spec, location) if options.wandb else ()))
        tuner = build_tuner(resolved, data, location, settings)
    started = time.perf_counter()
    try:
        result_grid = tuner.fit()
    finally:
        remove_checkpoint_staging(location.name)
    elapsed = time.perf_counter() - started
    rows = trial_rows(result_grid, axes=resolved.axes, metric=spec.metric, mode=spec.mode,
                      saved=saved_trials(location.path))
    location.write_text("summary.csv", rows.drop(columns=["path"]).to_csv(index=False))
    echo(format_table(rows, spec.metric))
    return rows, elapsed


def with_resources(resolved: ResolvedSweep, cpus: float | None, gpus: float | None) -> ResolvedSweep:
    if cpus is None and gpus is None:
        return resolved
    resources = Resources(cpus=resolved.resources.cpus if cpus is None else cpus,
                          gpus=resolved.resources.gpus if gpus is None else gpus)
    return dataclasses.replace(resolved, resources=resources)


def check_pretrained_paths(resolved: ResolvedSweep) -> None:
    """Every ``pretrained_path`` a trial config names is a file here (the weights in it are
    read by ``preflight_pretrained``, after the data audit)."""
    for path in sorted({str(config["pretrained_path"]) for config in resolved.possible_configs()
                        if config.get("pretrained_path")}):
        if not Path(path).expanduser().is_file():
            raise PretrainedWeightsError(f"pretrained_path {path}: no such file; point --set pretrained_path= at a "
                                         f"weights file on this machine, or leave it unset (--set pretrained=false "
                                         f"trains from scratch)")


def preflight_pretrained(resolved: ResolvedSweep, data: SweepData) -> None:
    """Fetch (or find) pretrained weights once in the driver, so a missing download is one
    clear error now rather than every trial failing on a worker later."""
    fetch = get_trainable(resolved.spec.trainable).fetch_weights
    wanted = {}
    for config in resolved.possible_configs():
        if config.get("pretrained") or config.get("pretrained_path"):
            variant, trial_config = data.for_config(config)
            wanted.setdefault(json.dumps({k: trial_config.get(k) for k in ("model", "backbone", "pretrained_path")},
                                         sort_keys=True), (trial_config, variant))
    for trial_config, variant in wanted.values():
        fetch(trial_config, data=variant)


def interrupted_message(options: SweepOptions | None, interrupt: KeyboardInterrupt) -> str:
    """What a Ctrl-C that ``run_sweep`` did not handle left: the command that resumes the
    experiment when Tune had saved its state, else that there is nothing to resume."""
    if isinstance(interrupt, SweepInterrupted):  # raised by run_sweep, so the options were read
        return f"Interrupted. Continue with: {resume_command(options, interrupt.location)}"
    if options is not None and options.resume:
        return "Interrupted before Tune resumed the experiment; it is as it was: run the same command to continue it."
    return "Interrupted before any trial started; no experiment was written, so there is nothing to resume."
