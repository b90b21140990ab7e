"""The choices the command line offers and the layers below check, in a module that imports
nothing, so that ``python -m sweeps.run --help`` answers without loading PyTorch or Ray."""

# --profile: the document's settings (full), a 2-core CPU machine's (cpu), or by what is visible.
PROFILES = ("auto", "cpu", "full")
# --search: every grid point, or Optuna's seeded TPE sampler over the same space.
SEARCH_ALGORITHMS = ("grid", "optuna")
# analysis.report --retrain: which candidates the confirmation retrains, every one or the overall
# winner alone (the others scored from their sweep checkpoints), where retraining all takes hours.
RETRAIN_CHOICES = ("candidates", "winner")
