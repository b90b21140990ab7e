"""What ``cluster/slurm/medsweep.sbatch`` asks of medsweep inside a Slurm job, as two commands:

    python -m sweeps.slurm wait-for-nodes --address HEAD:PORT --nodes N --timeout S
    python -m sweeps.slurm driver-args --job-id ID --restarts K -- SWEEP [ARGUMENTS]

The first waits until every Ray node of the job has joined and prints the line the job's log
and the tests look for. The second prints the sweep's arguments for this run of the job, NUL
separated: the user's, a ``--name`` fixed by the job id (a requeued job keeps its id, so it
continues the same experiment), and on a restarted run ``--resume`` without the flags that an
experiment fixes when it starts (``--resume`` refuses them).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sweeps.arguments import FIXED_AT_START, build_parser
from sweeps.storage import ExperimentLocation, discard_unstarted, has_tune_state
from sweeps.study_file import is_study_path


def experiment_name(sweep: str, job_id: str) -> str:
    """The experiment of a Slurm job: the same for every run of the job, requeued ones included
    (a study file's path gives its file name without the suffix)."""
    return f"{Path(sweep).stem if is_study_path(sweep) else sweep}_slurm{job_id}"


def without_fixed_at_start(argv: Sequence[str]) -> list[str]:
    """``argv`` less each flag (with its value) that sets what an experiment fixes at its start."""
    parser = build_parser()
    flags = {option: action for action in parser._actions for option in action.option_strings}
    kept, skip_value = [], False
    for token in argv:
        if skip_value:
            skip_value = False
            continue
        option = token.split("=", 1)[0] if token.startswith("--") else None
        action = flags.get(option) if option else None
        if action is not None and action.dest in FIXED_AT_START:
            skip_value = "=" not in token and action.nargs != 0
            continue
        kept.append(token)
    return kept


def driver_arguments(argv: Sequence[str], *, job_id: str, restarts: int,
                     echo: Callable[[str], None] = print) -> list[str]:
    """The sweep's arguments for this run of the job (see the module's docstring). A restarted
    run whose experiment holds no Tune state (the first run stopped before any trial) starts
    the experiment afresh under the same name."""
    args = build_parser().parse_args(list(argv))
    out = list(argv)
    name = args.experiment_name
    if name is None:
        name = experiment_name(args.name, job_id)
        out += ["--name", name]
    if restarts == 0 or args.resume:
        return out
    location = ExperimentLocation(args.storage, name)
    if has_tune_state(location):
        echo(f"medsweep: restart {restarts}: resuming experiment {name}")
        return without_fixed_at_start(out) + ["--resume"]
    if discard_unstarted(location):
        echo(f"medsweep: {name} stopped before Tune saved any state: starting it afresh")
    return out


def wait_for_nodes(address: str, *, nodes: int, timeout: float) -> str:
    """Once ``nodes`` Ray nodes are alive at ``address``, the line saying so; SystemExit with the
    count that joined when ``timeout`` seconds pass first."""
    import ray

    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    deadline = time.monotonic() + timeout
    while len(alive := [node for node in ray.nodes() if node.get("Alive")]) < nodes:
        if time.monotonic() > deadline:
            raise SystemExit(f"medsweep: only {len(alive)} of {nodes} Ray nodes joined within {timeout:g} s")
        time.sleep(1)
    cpus = sum(node["Resources"].get("CPU", 0) for node in alive)
    gpus = sum(node["Resources"].get("GPU", 0) for node in alive)
    return f"medsweep: Ray cluster ready: {len(alive)} nodes, {cpus:g} CPUs, {gpus:g} GPUs at {address}"


def build_slurm_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sweeps.slurm",
                                     description="Steps of cluster/slurm/medsweep.sbatch inside a Slurm job.")
    commands = parser.add_subparsers(dest="command", required=True)
    wait = commands.add_parser("wait-for-nodes", help="wait until every Ray node of the job has joined")
    wait.add_argument("--address", required=True, help="the Ray head's HOST:PORT")
    wait.add_argument("--nodes", type=int, required=True, help="Ray nodes the job starts")
    wait.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")
    driver = commands.add_parser("driver-args", help="print this run's sweep arguments, NUL separated")
    driver.add_argument("--job-id", required=True, help="SLURM_JOB_ID")
    driver.add_argument("--restarts", type=int, default=0, help="SLURM_RESTART_COUNT (0 on the first run)")
    driver.add_argument("sweep_args", nargs=argparse.REMAINDER, help="the sweep and its arguments, after --")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_slurm_parser().parse_args(argv)
    if args.command == "wait-for-nodes":
        print(wait_for_nodes(args.address, nodes=args.nodes, timeout=args.timeout), flush=True)
        return 0
    sweep_args = args.sweep_args[1:] if args.sweep_args[:1] == ["--"] else args.sweep_args
    out = driver_arguments(sweep_args, job_id=args.job_id, restarts=args.restarts,
                           echo=lambda line: print(line, file=sys.stderr))
    sys.stdout.write("".join(f"{token}\0" for token in out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
